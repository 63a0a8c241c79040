#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the test peers, builds, runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/install-test-peers.sh
export MCPO_TEST_PEERS="${MCPO_TEST_PEERS:-$root/.test-peers}"
# The peers were just installed: a test that cannot find them must fail, not skip.
export MCPO_REQUIRE_OAUTH_PEERS=1
# Examples hold the MCP fixture server the integration tests run behind mcpo.
cargo build --all-targets --locked
cargo test --all-targets --locked "$@"
