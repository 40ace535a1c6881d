#!/usr/bin/env bash
# Build and install the fcdn_search extension (pg/fcdn_search: exact Joint-distance top-k in C
# over packed code blocks; docs/benchmarks/search.md) for the machine's PostgreSQL, and create
# it in every database where the service's migration 0002 already ran without it.
# Idempotent: rebuilds only when the installed library differs from the sources' build.
#
# Usage (as root, after scripts/install-pgvector.sh):
#   env PG_MAJOR=15 bash scripts/install-fcdn-search.sh
# Env: PG_HOST (127.0.0.1), PG_PORT (5432), PG_USER (postgres), PG_MAJOR (the newest cluster in
# /etc/postgresql, else 15), FCDN_SEARCH_FORCE_BUILD=1 (build and install even when up to date).
# Needs postgresql-server-dev-$PG_MAJOR and a C compiler (installed with apt when missing).
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)}"
PG_MAJOR="${PG_MAJOR:-15}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-postgres}"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../pg/fcdn_search" && pwd)"

log() { echo "[install-fcdn-search] $*"; }
psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 "$@"; }

if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  log "PostgreSQL ${PG_MAJOR} is not answering on ${PG_HOST}:${PG_PORT}; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
fi

if [ ! -x "$PG_CONFIG" ] || ! command -v gcc >/dev/null || ! command -v make >/dev/null; then
  [ "$(id -u)" = 0 ] || { log "postgresql-server-dev-${PG_MAJOR} / build-essential missing and installing them needs root"; exit 1; }
  log "apt-get install postgresql-server-dev-${PG_MAJOR} build-essential"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "postgresql-server-dev-${PG_MAJOR}" build-essential
fi

start=$(date +%s)
work=$(mktemp -d /tmp/fcdn-search-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$SRC_DIR"/. "$work"/
rm -f "$work"/*.o "$work"/*.so "$work"/*.bc
# with_llvm=no (below): no JIT bitcode (clang may be missing; nothing there for JIT to inline).

libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)/extension
# The sources' checksum (and the server's version) is stamped beside the control file.
stamp="$sharedir/fcdn_search.srcsum"
sum="$( (cd "$SRC_DIR" && cat Makefile fcdn_search.c fcdn_search.control fcdn_search--*.sql; "$PG_CONFIG" --version) | sha256sum | cut -d' ' -f1)"
if [ "${FCDN_SEARCH_FORCE_BUILD:-0}" != 1 ] && [ -f "$libdir/fcdn_search.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
  log "fcdn_search is installed and up to date"
else
  [ "$(id -u)" = 0 ] || [ -w "$libdir" ] || { log "installing into ${libdir} needs root"; exit 1; }
  make -s -C "$work" PG_CONFIG="$PG_CONFIG" with_llvm=no >/dev/null
  make -s -C "$work" install PG_CONFIG="$PG_CONFIG" with_llvm=no >/dev/null
  echo "$sum" >"$stamp"
  log "built and installed ${libdir}/fcdn_search.so and ${sharedir}/fcdn_search.control"
fi

# Verify in a scratch database: pack one case, rank it.
scratch="fcdn_search_check_$$"
psql_q -d postgres -c "DROP DATABASE IF EXISTS ${scratch}" -c "CREATE DATABASE ${scratch}" >/dev/null
ok=0
if psql_q -d "$scratch" -At >/dev/null <<'SQL'
CREATE SCHEMA fcdn_search;
CREATE EXTENSION fcdn_search SCHEMA fcdn_search;
CREATE TABLE b (model_id int4, block_no int4, data bytea, PRIMARY KEY (model_id, block_no));
INSERT INTO b VALUES (1, 0, fcdn_search.pack_block(fcdn_search.pack_case(7, 1, 1, 5.0, 3, '{1,2}', '{4,8}')));
DO $$ BEGIN
  IF (SELECT joint FROM fcdn_search.topk('b', 1, '{0}', 0, '{0}', 1, 1, 1, 10, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL)) <> 4 THEN
    RAISE 'fcdn_search gives a wrong distance';
  END IF;
END $$;
SQL
then ok=1; fi
# Databases migrated before the extension existed: create it there now (0002 made the schema).
# Databases with an older version: update it (1.1 revokes topk from PUBLIC). Where the service's
# tables belong to another role than the extension's owner (created here, as ${PG_USER}), that
# role is granted EXECUTE on topk: it is the role the service searches as.
for db in $(psql_q -d postgres -Atc "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> '${scratch}'"); do
  [ "$(psql_q -d "$db" -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = 'fcdn_search'" 2>/dev/null || echo 0)" = 1 ] || continue
  if [ "$(psql_q -d "$db" -Atc "SELECT count(*) FROM pg_extension WHERE extname = 'fcdn_search'")" = 0 ]; then
    psql_q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS fcdn_search SCHEMA fcdn_search" && log "created the extension in database ${db}"
  elif [ "$(psql_q -d "$db" -Atc "SELECT extversion <> (SELECT default_version FROM pg_available_extensions WHERE name = 'fcdn_search') FROM pg_extension WHERE extname = 'fcdn_search'")" = t ]; then
    psql_q -d "$db" -c "ALTER EXTENSION fcdn_search UPDATE" && log "updated the extension in database ${db}"
  fi
  psql_q -d "$db" <<'SQL'
DO $$
DECLARE svc name := (SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'slice_codes');
BEGIN
  IF svc IS NOT NULL AND svc <> (SELECT r.rolname FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner WHERE e.extname = 'fcdn_search') THEN
    EXECUTE format('GRANT EXECUTE ON FUNCTION fcdn_search.topk(regclass, int4, int8[], int8, int8[], float8, float8, float8, int4, int4, int4[], int4, float8, float8, bool, int4, int4[]) TO %I', svc);
  END IF;
END $$;
SQL
done
psql_q -d postgres -c "DROP DATABASE IF EXISTS ${scratch}" >/dev/null
[ "$ok" = 1 ] || { log "fcdn_search installed but the check in a scratch database failed"; exit 1; }
log "fcdn_search installed and verified in $(( $(date +%s) - start )) s"
