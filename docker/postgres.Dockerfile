# The compose file's Postgres: PostgreSQL 15 with pgvector (POSTGRES_IMAGE, by default the official
# pgvector/pgvector:pg15) plus the project's fcdn_search extension (pg/fcdn_search: exact
# Joint-distance top-k in C), which the service's migration creates when it is available; without
# it searches fall back to plain SQL (docs/benchmarks/search.md).
# Built from the repository root: docker build -f docker/postgres.Dockerfile .
ARG POSTGRES_IMAGE=pgvector/pgvector:pg15
FROM ${POSTGRES_IMAGE}

# The official images set PG_MAJOR; the default here is for images that do not.
ARG PG_MAJOR=15
COPY pg/fcdn_search /tmp/fcdn_search
# Compilers and server headers only for the build, removed in the same layer (as pgvector's own
# image does). with_llvm=no: no JIT bitcode, so clang is not needed at build time.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends make gcc libc6-dev "postgresql-server-dev-${PG_MAJOR}"; \
    make -C /tmp/fcdn_search with_llvm=no PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" install; \
    apt-mark manual "postgresql-${PG_MAJOR}" >/dev/null 2>&1 || true; \
    apt-get purge -y --auto-remove make gcc libc6-dev "postgresql-server-dev-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/* /tmp/fcdn_search; \
    test -f "/usr/share/postgresql/${PG_MAJOR}/extension/fcdn_search.control"
