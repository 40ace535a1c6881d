# CI stand-in for pgvector/pgvector:pg15 (no registry is reachable on the CI machines): Debian's
# PostgreSQL 15 on the local Debian base, with the pgvector that scripts/install-pgvector.sh built on
# the CI host from Debian's source package (copied in by scripts/ci-docker.sh), and an entrypoint
# that honours the official image's contract (POSTGRES_USER/PASSWORD/DB, PGDATA, listens on all
# addresses with password auth). Built by scripts/ci-docker.sh only.
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
ENV PG_MAJOR=15
RUN set -eux; \
    mkdir -p /etc/postgresql-common; \
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/*
COPY pgvector/ /usr/share/postgresql/${PG_MAJOR}/extension/
RUN mv /usr/share/postgresql/${PG_MAJOR}/extension/vector.so /usr/lib/postgresql/${PG_MAJOR}/lib/vector.so
COPY pgvector-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
