# The API and the reindex worker (same image; the worker runs `npm run worker`).
# Built and run end to end by CI (scripts/ci-docker.sh) on a local stand-in for NODE_IMAGE.
# NODE_IMAGE: any Debian-based Node 20, 22 or 24 image with npm and a `node` user.
ARG NODE_IMAGE=node:24-bookworm-slim
FROM ${NODE_IMAGE}
# GPU workers: --build-arg WITH_VULKAN=true adds the Vulkan loader, all the WebGPU execution
# provider of the npm package needs besides the host's NVIDIA driver (its Vulkan ICD, mounted by
# the NVIDIA container toolkit with NVIDIA_DRIVER_CAPABILITIES=graphics,compute,utility); run the
# container with FCDN_EXECUTION_PROVIDER=webgpu (docs/deploy.md, "GPU workers").
ARG WITH_VULKAN=false
RUN if [ "$WITH_VULKAN" = true ]; then \
      apt-get update && apt-get install -y --no-install-recommends libvulkan1 && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    PORT=4000 \
    FCDN_DATA_DIR=/data

# Dependencies first (cached while package*.json do not change). .npmrc carries
# onnxruntime-node-install=skip: its install script would fetch CUDA binaries; the
# CPU provider ships in the npm package. No dependency's install script is needed (the
# binaries come as packages), and one fails without a compiler (cpu-features, an optional
# native part of ssh2 under testcontainers: `npm rebuild` stopped the build on it), so only the
# project's own postinstall (prisma generate) runs, after the sources are in: it reads prisma/
# and scripts/. Dev dependencies stay: the prisma CLI is one and generate needs it.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --include=dev --ignore-scripts --no-audit --no-fund

COPY . .
RUN npm run postinstall \
 && mkdir -p /data && chown node:node /data

USER node
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["npm", "start"]
