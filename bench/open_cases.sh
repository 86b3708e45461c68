#!/usr/bin/env bash
# Start the embedded stack on spare ports in a fresh data dir, run
# `aftersales bench --open-cases` against it (the bench brings its own workers), stop it.
# Usage: bench/open_cases.sh [CASES] [WINDOW_SECONDS] [WORKER_CACHE] [WORKERS]
# With BENCH_DATABASE_URL set (an empty database), the bench workers' read model is
# there instead of a new SQLite file; use PostgreSQL when WORKERS > 1.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/stack.sh
CASES="${1:-10000}"
WINDOW="${2:-600}"
CACHE="${3:-10000}"
WORKERS="${4:-1}"
PORT=5089
TPORT=7289
start_stack "$PORT" "$TPORT"
AFTERSALES_DATA_DIR="$DATA" AFTERSALES_TEMPORAL_ADDRESS="127.0.0.1:$TPORT" \
    .venv/bin/aftersales bench --open-cases "$CASES" --window "$WINDOW" \
    --worker-cache "$CACHE" --workers "$WORKERS" --concurrency 32 \
    ${BENCH_DATABASE_URL:+--database-url "$BENCH_DATABASE_URL"}
