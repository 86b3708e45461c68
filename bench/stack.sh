# Sourced by the bench scripts: start the embedded stack on the given ports in a fresh
# data dir (DATA), wait until it is ready, and stop it and remove DATA on exit.
# Usage: start_stack WEB_PORT TEMPORAL_PORT
start_stack() {
    DATA="$(mktemp -d)"
    .venv/bin/aftersales dev --port "$1" --temporal-port "$2" --data-dir "$DATA" \
        > "$DATA/dev.log" 2>&1 &
    DEV=$!
    trap 'kill -TERM $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$DATA"' EXIT
    for _ in $(seq 1 120); do grep -q ready "$DATA/dev.log" && break; sleep 1; done
    grep -q ready "$DATA/dev.log" || { cat "$DATA/dev.log"; exit 1; }
}
