#!/usr/bin/env bash
# Runs schemathesis against a live `arbiter serve` built from this checkout: a bounded number of
# generated requests per operation; fails on any 5xx or any response that does not conform to
# GET /v1/openapi.json. Needs `python3 -m pip install schemathesis` (CI installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${ARBITER_BIN:-${CARGO_TARGET_DIR:-target}/debug/arbiter}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-40}
data_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$data_dir/serve.log"

key=$("$bin" --data-dir "$data_dir" keys create --tenant schemathesis --name fuzz --plan enterprise \
  --scope analyze,batch,requests:read,audit:read,policies:read,webhooks,review --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

# The loopback address is the webhook destination of tools/schemathesis_hooks.py.
ARBITER_OUTBOUND_ALLOW_CIDRS="127.0.0.1/32" "$bin" --data-dir "$data_dir" serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data_dir"' EXIT
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

schemathesis --config-file tools/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --max-examples "$max_examples" \
  --seed 1 \
  --no-color || { echo "--- server log ---"; tail -50 "$log"; exit 1; }
