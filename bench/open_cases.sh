#!/usr/bin/env bash
# Start the embedded stack on spare ports in a fresh data dir, run
# `aftersales bench --open-cases` against it (the bench brings its own worker), stop it.
# Usage: bench/open_cases.sh [CASES] [WINDOW_SECONDS] [WORKER_CACHE]
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-10000}"
WINDOW="${2:-300}"
CACHE="${3:-10000}"
DATA="$(mktemp -d)"
PORT=5089
TPORT=7289
.venv/bin/aftersales dev --port "$PORT" --temporal-port "$TPORT" --data-dir "$DATA" \
    > "$DATA/dev.log" 2>&1 &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 120); do grep -q ready "$DATA/dev.log" && break; sleep 1; done
grep -q ready "$DATA/dev.log" || { cat "$DATA/dev.log"; exit 1; }
AFTERSALES_DATA_DIR="$DATA" AFTERSALES_TEMPORAL_ADDRESS="127.0.0.1:$TPORT" \
    .venv/bin/aftersales bench --open-cases "$CASES" --window "$WINDOW" \
    --worker-cache "$CACHE" --concurrency 32
