#!/usr/bin/env bash
# Runs a command with FRESHLINE_POSTGRES_URL pointing at a PostgreSQL server: the one already named by
# FRESHLINE_POSTGRES_URL, else a throwaway server (scripts/pg.sh: Debian's postgresql, its own data directory, a
# loopback port) started now and stopped when the command ends.
#
#   scripts/with-pg.sh swift test --skip-build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${FRESHLINE_POSTGRES_URL:-}" ]; then
  exec "$@"
fi
port=${FRESHLINE_PG_PORT:-55432}
FRESHLINE_POSTGRES_URL=$("$here/pg.sh" start "" "$port")
export FRESHLINE_POSTGRES_URL
trap '"$here/pg.sh" stop "" "$port"' EXIT
echo "PostgreSQL for this run: $FRESHLINE_POSTGRES_URL" >&2
"$@"
