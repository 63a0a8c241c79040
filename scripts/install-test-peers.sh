#!/usr/bin/env bash
# Installs the published MCP servers and tools the integration tests run against, into
# .test-peers/ inside the repo (nothing global): npm @modelcontextprotocol/server-everything,
# PyPI mcp-server-time and openapi-spec-validator. Safe to run again: it skips what is there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
peers="${MCPO_TEST_PEERS:-$root/.test-peers}"
mkdir -p "$peers"

if [ ! -x "$peers/node/node_modules/.bin/mcp-server-everything" ]; then
  echo "installing @modelcontextprotocol/server-everything into $peers/node"
  mkdir -p "$peers/node"
  npm install --prefix "$peers/node" --no-audit --no-fund --loglevel=error \
    @modelcontextprotocol/server-everything@2026.8.31
fi

if [ ! -x "$peers/venv/bin/mcp-server-time" ] || [ ! -x "$peers/venv/bin/openapi-spec-validator" ] \
  || ! "$peers/venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
  echo "installing mcp-server-time, openapi-spec-validator and prometheus-client into $peers/venv"
  python3 -m venv "$peers/venv"
  "$peers/venv/bin/pip" install --quiet --disable-pip-version-check \
    mcp-server-time==2026.10.19 openapi-spec-validator==0.9.0 prometheus-client==0.21.1
fi
# The OAuth authorization server and protected MCP server (tests/it/oauth.rs).
MCPO_TEST_PEERS="$peers" bash "$root/scripts/install-oauth-peers.sh"
echo "test peers ready in $peers"
