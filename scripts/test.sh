#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the test peers, builds every target
# (the examples hold the MCP fixture server the integration tests run behind mcpo), runs every
# test, and ends with the suite's wall time and one summary line.
#
# Arguments go to `cargo test`; those after `--` to the test binaries (a filter, --nocapture).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
started=$(date +%s)
bash scripts/install-test-peers.sh
export MCPO_TEST_PEERS="${MCPO_TEST_PEERS:-$root/.test-peers}"
# The peers were just installed: a test that cannot find them must fail, not skip.
export MCPO_REQUIRE_OAUTH_PEERS=1
# Likewise redis-server, for the Redis store tests (tests/common/redis.rs).
export MCPO_REQUIRE_REDIS=1
cargo build --all-targets --locked
cargo_args=()
test_args=()
after_dashes=0
for arg in "$@"; do
  if [[ $after_dashes == 0 && $arg == -- ]]; then
    after_dashes=1
  elif [[ $after_dashes == 1 ]]; then
    test_args+=("$arg")
  else
    cargo_args+=("$arg")
  fi
done
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
tests_started=$(date +%s)
# The OAuth tests are #[ignore]d as "needs the OAuth peers" (a plain `cargo test` shows them
# as ignored); here the peers are installed, so they run. `bug_*` tests stay ignored: they
# reproduce a bug not fixed yet (see tests/it/oauth_daemon.rs, REGRESSIONS).
cargo test --locked --no-fail-fast --lib --bins --tests ${cargo_args[@]+"${cargo_args[@]}"} \
  -- --include-ignored --skip ::bug_ ${test_args[@]+"${test_args[@]}"} 2>&1 | tee "$log" || status=$?
finished=$(date +%s)
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "wall time: $((finished - tests_started)) s running the tests, $((finished - started)) s in all (with the peer install and the build)"
echo "${passed} passed, ${failed} failed"
exit "$status"
