# The API and the reindex worker (same image; the worker runs `npm run worker`).
# Unverified here: no Docker engine on the build machines (see docs/deploy.md).
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    PORT=4000 \
    FCDN_DATA_DIR=/data

# Dependencies first (cached while package*.json do not change). .npmrc carries
# onnxruntime-node-install=skip: its install script would fetch CUDA binaries; the
# CPU provider ships in the npm package. Scripts run after the sources are in,
# because the project's postinstall (prisma generate) reads prisma/ and scripts/.
# Dev dependencies stay: the prisma CLI is one and generate needs it.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --include=dev --ignore-scripts --no-audit --no-fund

COPY . .
RUN npm rebuild && npm run postinstall \
 && mkdir -p /data && chown node:node /data

USER node
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["npm", "start"]
