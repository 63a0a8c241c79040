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
