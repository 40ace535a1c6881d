#!/usr/bin/env bash
# Build and install pgvector for the machine's PostgreSQL 15 (Debian 12 ships no
# pgvector package). Idempotent: exits 0 at once when `CREATE EXTENSION vector`
# already works on the local server.
#
# How (see docs/deploy.md and PRODUCT.md 'Facts of this environment'):
#   1. add a `deb-src` line for suite trixie, built from the Debian mirror that is
#      already configured in /etc/apt/sources.list.d/, in its own list file
#      (deb-src only: no binary package can ever come from trixie, so apt's choice
#      of binaries for everything else is unchanged);
#   2. apt-get update; install postgresql-server-dev-15, dpkg-dev, build-essential;
#   3. `apt-get source pgvector` in a temp dir, `make OPTFLAGS=""` (no -march=native,
#      so the build runs on any x86_64), `make install` against PostgreSQL 15;
#   4. verify in a scratch database.
#
# Needs root (apt, make install). Env: PG_HOST (127.0.0.1), PG_PORT (5432),
# PG_USER (postgres), PG_MAJOR (the newest cluster in /etc/postgresql, else 15),
# PGVECTOR_FORCE_BUILD=1 (build and install even when the extension already works).
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)}"
PG_MAJOR="${PG_MAJOR:-15}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-postgres}"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
SRC_LIST=/etc/apt/sources.list.d/fcdn-pgvector-src.list

log() { echo "[install-pgvector] $*"; }

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 "$@"; }

ensure_server() {
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
    log "PostgreSQL ${PG_MAJOR} is not answering on ${PG_HOST}:${PG_PORT}; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start
    for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return 0; sleep 1; done
    log "PostgreSQL did not come up"; return 1
  fi
}

# Does CREATE EXTENSION vector work? Tried inside a transaction that is rolled
# back, so the check leaves nothing behind.
vector_works() {
  psql_q -d postgres >/dev/null 2>&1 <<'SQL'
BEGIN;
CREATE EXTENSION IF NOT EXISTS vector;
SELECT '101'::bit(3) <~> '111'::bit(3);
ROLLBACK;
SQL
}

# The mirror of the first `Types: deb` stanza (deb822) or `deb URL` line (one-line
# format) for Debian's main archive, from the files already configured.
find_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '
      /^[[:space:]]*$/ { if (deb && uri != "") { print uri; exit } deb=0; uri=""; next }
      /^Types:/ { deb = ($0 ~ /(^|[[:space:]])deb([[:space:]]|$)/) }
      /^URIs:/  { uri = $2 }
      END { if (deb && uri != "") print uri }' "$f" | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
    if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    [ "$f" = "$SRC_LIST" ] && continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f" \
      | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
    if [ -n "$uri" ]; then echo "${uri%/}"; return 0; fi
  done
  return 1
}

ensure_server
if [ "${PGVECTOR_FORCE_BUILD:-0}" != 1 ] && vector_works; then
  log "CREATE EXTENSION vector already works on ${PG_HOST}:${PG_PORT}; nothing to do"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "pgvector is missing and installing it needs root"; exit 1
fi

start=$(date +%s)
mirror=$(find_mirror) || { log "no Debian mirror found in /etc/apt/sources.list(.d)"; exit 1; }
log "Debian mirror: ${mirror}"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if [ -f "$keyring" ]; then
  echo "deb-src [signed-by=${keyring}] ${mirror} trixie main" >"$SRC_LIST"
else
  echo "deb-src ${mirror} trixie main" >"$SRC_LIST"
fi
log "wrote ${SRC_LIST}: $(cat "$SRC_LIST")"

log "apt-get update"
apt-get update -q
need=()
for p in "postgresql-server-dev-${PG_MAJOR}" dpkg-dev build-essential; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

work=$(mktemp -d /tmp/pgvector-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"; chown _apt "$work" 2>/dev/null || true   # apt's _apt user downloads into it
cd "$work"
log "apt-get source pgvector (in ${work})"
apt-get source -q pgvector
srcdir=$(find . -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
[ -n "$srcdir" ] || { log "apt-get source gave no pgvector-* directory"; exit 1; }
cd "$srcdir"
log "building $(basename "$srcdir") against $("$PG_CONFIG" --version)"
make -s OPTFLAGS="" PG_CONFIG="$PG_CONFIG" -j"$(nproc)"
make -s install OPTFLAGS="" PG_CONFIG="$PG_CONFIG"

# Verify in a scratch database.
scratch="pgvector_check_$$"
psql_q -d postgres -c "DROP DATABASE IF EXISTS ${scratch}" -c "CREATE DATABASE ${scratch}" >/dev/null
ok=0
if psql_q -d "$scratch" -Atc "CREATE EXTENSION IF NOT EXISTS vector" \
     -c "SELECT 'pgvector ' || extversion || ', <~> = ' || ('1010'::bit(4) <~> '0110'::bit(4)) FROM pg_extension WHERE extname = 'vector'"; then
  ok=1
fi
psql_q -d postgres -c "DROP DATABASE IF EXISTS ${scratch}" >/dev/null
[ "$ok" = 1 ] || { log "pgvector installed but CREATE EXTENSION vector fails"; exit 1; }
log "pgvector installed and verified in $(( $(date +%s) - start )) s"
