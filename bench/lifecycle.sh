#!/usr/bin/env bash
# Start the embedded stack on spare ports in a fresh data dir, run `aftersales bench`
# against it, stop it. Usage: bench/lifecycle.sh [CASES] [CONCURRENCY]
# With BENCH_DATABASE_URL set (an empty database), the stack's read model is there
# instead of a new SQLite file in the data dir.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/stack.sh
CASES="${1:-100}"
CONCURRENCY="${2:-16}"
PORT=5088
TPORT=7288
if [ -n "${BENCH_DATABASE_URL:-}" ]; then export AFTERSALES_DATABASE_URL="$BENCH_DATABASE_URL"; fi
start_stack "$PORT" "$TPORT"
AFTERSALES_DATABASE_URL="${AFTERSALES_DATABASE_URL:-sqlite:///$DATA/aftersales.db}" \
AFTERSALES_TEMPORAL_ADDRESS="127.0.0.1:$TPORT" \
    .venv/bin/aftersales bench --cases "$CASES" --concurrency "$CONCURRENCY" \
    --url "http://127.0.0.1:$PORT" --json
