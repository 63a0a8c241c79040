#!/usr/bin/env bash
# The client that the MCP conformance suite (npm @modelcontextprotocol/conformance) runs for a
# client scenario: mcpo, as a daemon, in front of the scenario's OAuth-protected MCP server.
#
#   conformance client --command "bash scripts/conformance-client.sh" --scenario auth/...
#
# The suite appends the scenario's MCP URL as the last argument and passes
# MCP_CONFORMANCE_SCENARIO and, for some scenarios, MCP_CONFORMANCE_CONTEXT (JSON). Per run:
#   1. a private temp dir: HOME and MCPO_TOKEN_DIR point into it (fresh token store);
#   2. a config with one streamable-http server "conformance" and an "oauth" block (a free
#      callback port; credentials from the context (a private key to a file, for
#      private_key_jwt); `grant_type: client_credentials` for the
#      auth/client-credentials-* scenarios; for auth/basic-cimd the Client ID Metadata
#      Document URL the scenario expects, as an operator would configure it, unless
#      CONFORMANCE_CIMD=0);
#   3. BROWSER = tests/oauth/peer/fake_browser.py (it follows the suite's auto-approving
#      /authorize redirect and delivers the callback to mcpo);
#   4. mcpo on a free loopback port; waits for /conformance/openapi.json to list a tool;
#   5. POST /conformance/<first tool> {} and prints the answer;
#   6. stops mcpo (TERM, then KILL after 5 s) and any fake browser still running, by PID.
# Exit 0 when the tool call answered 2xx.
#
# Environment: MCPO_BIN (default: the newest of target/{release,debug}/mcpo),
# WRAPPER_TIMEOUT (seconds, default 55: keep it below the suite's --timeout),
# CONFORMANCE_RUST_LOG (mcpo's RUST_LOG, default info), CONFORMANCE_KEEP=1 keeps the temp dir.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "$#" -lt 1 ]; then
  echo "usage: $0 [...] MCP_SERVER_URL" >&2
  exit 2
fi
url="${!#}"
scenario="${MCP_CONFORMANCE_SCENARIO:-}"
context="${MCP_CONFORMANCE_CONTEXT:-}"
budget="${WRAPPER_TIMEOUT:-55}"
started=$SECONDS

python=python3
command -v "$python" >/dev/null 2>&1 || python="$root/.test-peers/oauth/venv/bin/python"

bin="${MCPO_BIN:-}"
if [ -z "$bin" ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  for candidate in "$target/release/mcpo" "$target/debug/mcpo"; do
    if [ -x "$candidate" ] && { [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; }; then
      bin="$candidate"
    fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "conformance-client: no mcpo binary (build one, or set MCPO_BIN)" >&2
  exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/mcpo-conformance.XXXXXX")"
mcpo_pid=""

stop_pid() { # pid grace-seconds
  local pid="$1" grace="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
}

cleanup() {
  if [ -n "$mcpo_pid" ]; then
    stop_pid "$mcpo_pid" 5
    wait "$mcpo_pid" 2>/dev/null
    mcpo_pid=""
  fi
  if [ -f "$tmp/browser.pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && stop_pid "$pid" 1
    done <"$tmp/browser.pids"
  fi
  if [ -f "$tmp/mcpo.log" ]; then
    echo "----- mcpo log ($bin) -----" >&2
    cat "$tmp/mcpo.log" >&2
  fi
  if [ -f "$tmp/browser.log" ]; then
    echo "----- fake browser log -----" >&2
    cat "$tmp/browser.log" >&2
  fi
  if [ "${CONFORMANCE_KEEP:-0}" = 1 ]; then
    echo "conformance-client: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

callback_port="$(free_port)"

# The "browser": records its PID (so it can be stopped) and runs the fake browser.
cat >"$tmp/browser" <<EOF
#!/bin/sh
echo \$\$ >> "$tmp/browser.pids"
exec "$python" "$root/tests/oauth/peer/fake_browser.py" --record "$tmp/browser.jsonl" --log "$tmp/browser.log" "\$@"
EOF
chmod +x "$tmp/browser"

URL="$url" SCENARIO="$scenario" CONTEXT="$context" CALLBACK_PORT="$callback_port" TMPDIR_RUN="$tmp" \
  "$python" - >"$tmp/config.json" <<'EOF'
import json, os
scenario = os.environ["SCENARIO"]
context = json.loads(os.environ["CONTEXT"]) if os.environ.get("CONTEXT") else {}
oauth = {
    "storage_type": "file",
    "callback_port": int(os.environ["CALLBACK_PORT"]),
    "login_timeout": 40,
}
for key in ("client_id", "client_secret"):
    if context.get(key):
        oauth[key] = context[key]
# private_key_jwt (auth/client-credentials-jwt): the key goes to a file, as a user keeps it.
if context.get("private_key_pem"):
    key_file = os.path.join(os.environ["TMPDIR_RUN"], "client-key.pem")
    with open(key_file, "w") as f:
        f.write(context["private_key_pem"])
    os.chmod(key_file, 0o600)
    oauth["signing_key_file"] = key_file
    if context.get("signing_algorithm"):
        oauth["signing_algorithm"] = context["signing_algorithm"]
if scenario.startswith("auth/client-credentials"):
    oauth["grant_type"] = "client_credentials"
if scenario == "auth/basic-cimd" and os.environ.get("CONFORMANCE_CIMD", "1") != "0":
    oauth["client_metadata_url"] = "https://conformance-test.local/client-metadata.json"
server = {"type": "streamable-http", "url": os.environ["URL"], "oauth": oauth}
print(json.dumps({"mcpServers": {"conformance": server}}, indent=2))
EOF
echo "conformance-client: scenario ${scenario:-?}, config:" >&2
cat "$tmp/config.json" >&2

HOME="$tmp/home" MCPO_TOKEN_DIR="$tmp/tokens" BROWSER="$tmp/browser" NO_COLOR=1 \
  RUST_LOG="${CONFORMANCE_RUST_LOG:-info}" \
  "$bin" --config "$tmp/config.json" --host 127.0.0.1 --port 0 \
  </dev/null >"$tmp/mcpo.out" 2>"$tmp/mcpo.log" &
mcpo_pid=$!
mkdir -p "$tmp/home"

left() { echo $((budget - (SECONDS - started))); }

# mcpo logs "listening on ADDR" once it accepts connections.
base=""
while [ -z "$base" ]; do
  if ! kill -0 "$mcpo_pid" 2>/dev/null; then
    echo "conformance-client: mcpo exited before listening" >&2
    exit 1
  fi
  if [ "$(left)" -le 0 ]; then
    echo "conformance-client: mcpo did not start listening" >&2
    exit 1
  fi
  addr="$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/mcpo.log" | head -n 1)"
  [ -n "$addr" ] && base="http://$addr"
  sleep 0.1
done

# The server's spec once it lists a tool: the first tool's route.
route=""
while [ -z "$route" ]; do
  if ! kill -0 "$mcpo_pid" 2>/dev/null; then
    echo "conformance-client: mcpo exited" >&2
    exit 1
  fi
  if [ "$(left)" -le 0 ]; then
    echo "conformance-client: no tool in $base/conformance/openapi.json within ${budget} s" >&2
    curl -s "$base/status" >&2
    exit 1
  fi
  if curl -sf -o "$tmp/spec.json" "$base/conformance/openapi.json"; then
    route="$("$python" -c '
import json, sys
paths = json.load(open(sys.argv[1])).get("paths") or {}
posts = [p for p, ops in paths.items() if "post" in ops]
print(posts[0] if posts else "")' "$tmp/spec.json")"
  fi
  [ -z "$route" ] && sleep 0.25
done

echo "conformance-client: POST $base/conformance$route" >&2
status="$(curl -s -o "$tmp/answer" -w '%{http_code}' --max-time "$(left)" \
  -H 'Content-Type: application/json' -d '{}' "$base/conformance$route")"
echo "HTTP $status"
cat "$tmp/answer"
echo
case "$status" in
  2??) exit 0 ;;
  *) exit 1 ;;
esac
