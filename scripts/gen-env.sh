#!/usr/bin/env bash
# Print a .env for docker compose with fresh random secrets: scripts/gen-env.sh > .env
set -euo pipefail
rand() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40; }
for name in ADMIN_TOKEN EDGE_SECRET NATS_ADMIN_PASSWORD NATS_AUTH_PASSWORD NATS_RATELIMIT_PASSWORD \
            NATS_RUNTIME_PASSWORD NATS_WS_GATEWAY_PASSWORD NATS_HTTP_API_PASSWORD \
            NATS_EDGE_SYNC_PASSWORD; do
  echo "AISOPOD_${name}=$(rand)"
done
echo "AISOPOD_BIND=127.0.0.1"
echo "AISOPOD_HTTP_PORT=8080"
echo "AISOPOD_HTTPS_PORT=8443"
echo "AISOPOD_HTTPS_REDIRECT=false"
