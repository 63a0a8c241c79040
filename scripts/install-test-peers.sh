#!/usr/bin/env bash
# Installs the published MCP servers and tools the integration tests run against, into
# .test-peers/ inside the repo (nothing global but bubblewrap and redis-server): npm
# @modelcontextprotocol/server-everything, PyPI mcp-server-time and openapi-spec-validator, and
# bubblewrap and redis-server (as root, with apt-get).
# Safe to run again: it skips what is there.
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
# bubblewrap, for the sandboxed stdio servers (tests/it/sandbox.rs). A system package: as root
# (CI) it is installed with apt-get; otherwise the sandbox tests say they were skipped (and
# fail under MCPO_REQUIRE_OAUTH_PEERS, as scripts/test.sh sets).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (apt-get)"
    apt-get install -y -qq bubblewrap >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }
  else
    echo "bwrap is missing and this is not root with apt-get: not installing bubblewrap;" \
      "install it (Debian/Ubuntu: apt-get install bubblewrap) or the sandbox tests fail" >&2
  fi
fi
# redis-server, the shared store of several replicas (tests/common/redis.rs starts its own on a
# free loopback port for each test that needs one). A system package, installed like bubblewrap:
# as root (CI) with apt-get; otherwise the Redis tests say they were skipped (and fail under
# MCPO_REQUIRE_REDIS or CI).
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)"
    apt-get install -y -qq redis-server >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
  else
    echo "redis-server is missing and this is not root with apt-get: not installing redis-server;" \
      "install it (Debian/Ubuntu: apt-get install redis-server) or the Redis tests fail" >&2
  fi
fi
# The OAuth authorization server and protected MCP server (tests/it/oauth.rs).
MCPO_TEST_PEERS="$peers" bash "$root/scripts/install-oauth-peers.sh"
echo "test peers ready in $peers"
