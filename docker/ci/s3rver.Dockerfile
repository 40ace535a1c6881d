# CI stand-in for minio/minio and minio/mc: s3rver (npm), NOT MinIO. No MinIO binary can be had on
# the CI machines. s3rver speaks enough S3 for the service's minio client but CHECKS NO SIGNATURES
# and knows one access key, S3RVER (so CI sets MINIO_ROOT_USER=S3RVER). `minio server DIR ...` is
# answered by s3rver on :9000 storing under DIR; `mc alias set` / `mc mb --ignore-existing` by a
# small stand-in, enough for the compose file's minio-init. Built by scripts/ci-docker.sh only.
ARG NODE_IMAGE=fcdn-ci/node:24
FROM ${NODE_IMAGE}
WORKDIR /opt/s3rver
ARG S3RVER_VERSION=3.7.1
RUN npm install --no-audit --no-fund --omit=dev "s3rver@${S3RVER_VERSION}" && npm cache clean --force
COPY s3rver-standin.mjs /opt/s3rver/standin.mjs
RUN printf '#!/bin/sh\nexec node /opt/s3rver/standin.mjs mc "$@"\n' >/usr/local/bin/mc \
 && printf '#!/bin/sh\nexec node /opt/s3rver/standin.mjs minio "$@"\n' >/usr/local/bin/minio \
 && chmod +x /usr/local/bin/mc /usr/local/bin/minio
EXPOSE 9000
ENTRYPOINT ["minio"]
