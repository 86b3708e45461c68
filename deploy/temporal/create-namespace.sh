#!/bin/sh
# Registers the namespace Aftersales runs in once the Temporal server answers; an existing
# namespace is left as it is, so the `temporal-namespace` service of docker-compose.yml
# runs it on every `up`. The case search attributes are not registered here: the worker
# adds them at start (aftersales/temporal.py, ensure_search_attributes).
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}"
retention=${TEMPORAL_NAMESPACE_RETENTION:-24h}
tries=${TEMPORAL_WAIT_TRIES:-90}

# The server starts after its schema setup and takes a while to serve: ask it through its
# own API, up to `tries` times 2 s (three minutes by default).
attempt=1
until temporal operator cluster health >/dev/null; do
    if [ "$attempt" -ge "$tries" ]; then
        echo "Temporal at $TEMPORAL_ADDRESS did not answer after $tries tries" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
done

if temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $TEMPORAL_NAMESPACE exists"
else
    temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$retention"
    echo "namespace $TEMPORAL_NAMESPACE created (retention $retention)"
fi
