#!/usr/bin/env bash
# Start the embedded stack on spare ports in a fresh data dir, run `aftersales bench`
# against it, stop it. Usage: bench/lifecycle.sh [CASES] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-100}"
CONCURRENCY="${2:-16}"
DATA="$(mktemp -d)"
PORT=5088
TPORT=7288
.venv/bin/aftersales dev --port "$PORT" --temporal-port "$TPORT" --data-dir "$DATA" \
    > "$DATA/dev.log" 2>&1 &
DEV=$!
trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 120); do grep -q ready "$DATA/dev.log" && break; sleep 1; done
grep -q ready "$DATA/dev.log" || { cat "$DATA/dev.log"; exit 1; }
AFTERSALES_DATABASE_URL="sqlite:///$DATA/aftersales.db" \
AFTERSALES_TEMPORAL_ADDRESS="127.0.0.1:$TPORT" \
    .venv/bin/aftersales bench --cases "$CASES" --concurrency "$CONCURRENCY" \
    --url "http://127.0.0.1:$PORT" --json
