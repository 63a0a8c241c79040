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
