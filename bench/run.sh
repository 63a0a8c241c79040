#!/usr/bin/env bash
# mcpo (Rust) against Python mcpo 0.0.20 in one run: same upstreams, same load generator,
# interleaved A/B, loopback only, bounded in time, stops everything it started.
# See bench/README.md for what is measured and how to read the table.
#
#   bench/run.sh                       # the real run (≈ 14 min with the defaults, after builds)
#   BENCH_SECONDS=2 BENCH_REPS=1 bench/run.sh     # a quick smoke run
#
# Knobs (environment): BENCH_SECONDS (5; length of each measured load run), BENCH_REPS (3;
# medians are taken over them), BENCH_CONCURRENCY ("1 8 64"), BENCH_UPSTREAMS ("echo pysdk
# echohttp pyhttp"), BENCH_COLD_REPS (3), BENCH_PORT_BASE (18900), BENCH_SKIP_BUILD (unset; 1 = use the
# binaries already built), CARGO_TARGET_DIR (where mcpo's release build goes; default target/).
#
#   bench/run.sh users                 # the many-users scenario instead (see bench/README.md):
#                                      # BENCH_USERS ("100 1000 10000"), BENCH_USERS_STDIO (100),
#                                      # BENCH_USERS_C (16), MCPO_BEFORE (a second mcpo binary,
#                                      # measured interleaved with this one as "before")
#   bench/run.sh catalog | results     # see bench/README.md (issue #16)
#   bench/run.sh replicas              # OAuth users on two replicas sharing Redis vs the file
#                                      # store (≈ 4 min): BENCH_REPLICAS_USERS (8),
#                                      # BENCH_REPLICAS_C (64), BENCH_REPLICAS_SECONDS (10),
#                                      # BENCH_REPLICAS_REPS (3), BENCH_REPLICAS_CONFIGS
#                                      # ("file redis2 redis1"); needs redis-server and the
#                                      # OAuth peers (MCPO_TEST_PEERS, default .test-peers)
set -euo pipefail
SCENARIO=${1:-bridges}

BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_REPS=${BENCH_REPS:-3}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-"1 8 64"}
BENCH_UPSTREAMS=${BENCH_UPSTREAMS:-"echo pysdk echohttp pyhttp"}
BENCH_COLD_REPS=${BENCH_COLD_REPS:-3}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18900}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/.work
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TOOLS_TARGET=$WORK/target
VENV=$WORK/pyvenv
RUN=$WORK/run-$(date +%Y%m%d-%H%M%S)
LOGS=$RUN/logs
RESULTS=$RUN/results.jsonl
mkdir -p "$LOGS"
: >"$RESULTS"

P_RS=$((BENCH_PORT_BASE + 1))
P_PY=$((BENCH_PORT_BASE + 2))
P_HELLO=$((BENCH_PORT_BASE + 3))
P_ECHOHTTP=$((BENCH_PORT_BASE + 4))
P_PYHTTP=$((BENCH_PORT_BASE + 5))
P_COLD=$((BENCH_PORT_BASE + 6))

MCPO_RS=$TARGET/release/mcpo
TOOLS=$TOOLS_TARGET/release/mcpo-bench
MCPO_PY=$VENV/bin/mcpo
PY=$VENV/bin/python

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- process bookkeeping: everything started is stopped on exit --------------------------------
PIDS=()
COLD_PIDFILE=$RUN/cold.pid
export BENCH_PIDFILE=$COLD_PIDFILE # mcpo-bench coldstart writes the bridge's pid there

descendants() { # every process below $1 (by parent pid)
  local child
  for child in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$child"
    descendants "$child"
  done
}

kill_tree() { # TERM $1, wait up to 5 s, then KILL it and whatever it started
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    local alive=0 k
    for k in $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [ -n "${CHILD:-}" ]; then kill_tree "$CHILD"; fi
  for pid in "${PIDS[@]}"; do kill_tree "$pid"; done
  if [ -s "$COLD_PIDFILE" ]; then kill_tree "$(cat "$COLD_PIDFILE")"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_child OUT CMD...: run a measuring tool with stdout to OUT, in the background and waited
# for, so that a signal to this script is handled at once (and cleanup stops the tool).
CHILD=
run_child() {
  local out=$1 rc=0
  shift
  "$@" >"$out" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=
  return $rc
}

start() { # start NAME CMD...: run in the background, logs in $LOGS/NAME.log, pid saved
  local name=$1
  shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_${name//-/_}=$!"
}

# --- prerequisites -----------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is needed"
command -v curl >/dev/null || die "curl is needed"
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get)"
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }) >/dev/null
  else
    sudo apt-get install -y -qq wrk >/dev/null
  fi
  command -v wrk >/dev/null || die "cannot install wrk"
fi
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python mcpo 0.0.20 needs Python >= 3.11 ($PYTHON)"
for port in $P_RS $P_PY $P_HELLO $P_ECHOHTTP $P_PYHTTP $P_COLD; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then die "port $port is in use (set BENCH_PORT_BASE)"; fi
done

# --- builds ------------------------------------------------------------------------------------
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  log "building mcpo (release) in $TARGET"
  (cd "$ROOT" && cargo build --release --quiet --bin mcpo)
  log "building the bench helpers (bench/tools) in $TOOLS_TARGET"
  CARGO_TARGET_DIR=$TOOLS_TARGET cargo build --release --quiet --manifest-path "$BENCH/tools/Cargo.toml"
fi
for bin in "$MCPO_RS" "$TOOLS"; do [ -x "$bin" ] || die "missing $bin"; done
# Run private copies: the target directory may be shared, and a rebuild by someone else must not
# swap a binary in the middle of the run.
mkdir -p "$RUN/bin"
cp "$MCPO_RS" "$RUN/bin/"
MCPO_RS=$RUN/bin/mcpo

if [ "$SCENARIO" != bridges ]; then
  # shellcheck source=bench/scenarios.sh
  source "$BENCH/scenarios.sh"
  "scenario_$SCENARIO"
  exit 0
fi

# --- Python mcpo 0.0.20 with its dependencies pinned --------------------------------------------
REQS=$BENCH/requirements-mcpo-py.txt
STAMP=$VENV/.requirements.sha256
want=$(sha256sum "$REQS" | cut -d' ' -f1)
if [ ! -x "$MCPO_PY" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "installing Python mcpo 0.0.20 into $VENV (pinned: $(basename "$REQS"))"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: -r "$REQS"
  echo "$want" >"$STAMP"
fi

# --- configs -----------------------------------------------------------------------------------
ECHO_CMD=("$TOOLS" echo)
PYSDK_CMD=("$PY" "$BENCH/py_server.py" stdio)

entry() { # the mcpServers entry of one upstream
  case $1 in
    echo) printf '"echo": {"command": "%s", "args": ["echo"]}' "$TOOLS" ;;
    pysdk) printf '"pysdk": {"command": "%s", "args": ["%s", "stdio"]}' "$PY" "$BENCH/py_server.py" ;;
    echohttp) printf '"echohttp": {"type": "streamable-http", "url": "%s"}' "$(upstream_url echohttp)" ;;
    pyhttp) printf '"pyhttp": {"type": "streamable-http", "url": "%s"}' "$(upstream_url pyhttp)" ;;
    *) die "unknown upstream $1 (echo, pysdk, echohttp, pyhttp)" ;;
  esac
}
upstream_url() { case $1 in echohttp) echo "http://127.0.0.1:$P_ECHOHTTP/mcp" ;; pyhttp) echo "http://127.0.0.1:$P_PYHTTP/mcp" ;; esac; }
call_path() { echo "/$1/echo"; }
call_body() { echo '{"message":"hello"}'; }

{
  printf '{"mcpServers": {'
  sep=
  for u in $BENCH_UPSTREAMS; do printf '%s%s' "$sep" "$(entry "$u")"; sep=', '; done
  printf '}}\n'
} >"$RUN/config.json"

cold_config() { # cold_config N FILE: N Python-SDK stdio servers py0..py{N-1}
  local n=$1 i sep=
  {
    printf '{"mcpServers": {'
    for ((i = 0; i < n; i++)); do
      printf '%s"py%d": {"command": "%s", "args": ["%s", "stdio"]}' "$sep" "$i" "$PY" "$BENCH/py_server.py"
      sep=', '
    done
    printf '}}\n'
  } >"$2"
}
cold_config 1 "$RUN/cold1.json"
cold_config 10 "$RUN/cold10.json"

# --- helpers -----------------------------------------------------------------------------------
record() { echo "$1" >>"$RESULTS"; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_ok() { # wait_ok URL BODY TIMEOUT_S
  local deadline=$((SECONDS + $3)) code
  while ((SECONDS < deadline)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 -X POST -H 'Content-Type: application/json' -d "$2" "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

wait_listening() { # wait_listening PORT TIMEOUT_S
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

threads_for() { if [ "$1" -ge 2 ]; then echo 2; else echo 1; fi; }

# Upstream sessions mcpo-rs lost so far (its log says so each time it reconnects one).
lost_count() { grep -c "upstream connection lost" "$LOGS/mcpo_rs.log" 2>/dev/null || true; }

# settle PORT PATH BODY: after a load run, wait until the bridge answers this route again (an
# upstream that died when the run ended must be back before the next point is measured); sets
# SETTLE_MS to the milliseconds that took.
SETTLE_MS=0
settle() {
  local t0 t1
  t0=$(date +%s%N)
  wait_ok "http://127.0.0.1:$1$2" "$3" 60 || die "no OK answer from 127.0.0.1:$1$2 within 60 s after a run"
  t1=$(date +%s%N)
  SETTLE_MS=$(((t1 - t0) / 1000000))
}

# wrk_run KIND BRIDGE UPSTREAM C REP PORT PID PATH BODY: one measured load run; the bridge's RSS
# is sampled every 0.2 s while it runs (its own process only).
wrk_run() {
  local kind=$1 bridge=$2 up=$3 c=$4 rep=$5 port=$6 pid=$7 path=$8 body=$9
  local out=$LOGS/wrk-$kind-$bridge-$up-c$c-r$rep.txt max=0 r lost0 lost1 settle_ms=0
  lost0=$(lost_count)
  BODY=$body wrk -t"$(threads_for "$c")" -c"$c" -d"${BENCH_SECONDS}s" --timeout 10s \
    -s "$BENCH/post.lua" "http://127.0.0.1:$port$path" >"$out" 2>&1 &
  local wpid=$!
  CHILD=$wpid
  while kill -0 "$wpid" 2>/dev/null; do
    if [ "$pid" != 0 ]; then
      r=$(rss_kib "$pid")
      ((r > max)) && max=$r
    fi
    sleep 0.2
  done
  wait "$wpid" || die "wrk failed, see $out"
  CHILD=
  local json
  json=$(grep '^{' "$out" | tail -1)
  [ -n "$json" ] || die "no result from wrk, see $out"
  if [ "$kind" = bridge ]; then
    settle "$port" "$path" "$body"
    settle_ms=$SETTLE_MS
  fi
  lost1=$(lost_count)
  record "{\"kind\":\"$kind\",\"bridge\":\"$bridge\",\"upstream\":\"$up\",\"c\":$c,\"rep\":$rep,\"rss_max_kib\":$max,\"settle_ms\":$settle_ms,\"rs_sessions_lost\":$((lost1 - lost0)),\"wrk\":$json}"
  if ((lost1 > lost0)); then
    log "  note: mcpo-rs lost $((lost1 - lost0)) upstream session(s) during/after this run (back after ${settle_ms} ms)"
  fi
  printf '%s' "$json" | "$PYTHON" "$BENCH/report.py" --progress wrk "$bridge" "$up" "$c" >&2
}

direct_run() { # direct_run UPSTREAM C REP
  local up=$1 c=$2 rep=$3 json
  local -a cmd
  case $up in
    echo) cmd=(-- "${ECHO_CMD[@]}") ;;
    pysdk) cmd=(-- "${PYSDK_CMD[@]}") ;;
    *) cmd=(--url "$(upstream_url "$up")") ;;
  esac
  run_child "$RUN/last.json" "$TOOLS" direct -c "$c" -s "$BENCH_SECONDS" -w 1 --tool echo --args "$(call_body "$up")" "${cmd[@]}" 2>>"$LOGS/direct.log" ||
    die "direct client failed, see $LOGS/direct.log"
  json=$(cat "$RUN/last.json")
  record "{\"kind\":\"direct\",\"bridge\":\"direct\",\"upstream\":\"$up\",\"c\":$c,\"rep\":$rep,\"direct\":$json}"
  printf '%s' "$json" | "$PYTHON" "$BENCH/report.py" --progress direct direct "$up" "$c" >&2
}

# --- metadata ----------------------------------------------------------------------------------
# (`wrk -v` prints its version and exits non-zero.)
{ wrk -v 2>&1 || true; } | head -1 | cut -d' ' -f1-2 >"$RUN/wrk-version.txt"
"$PYTHON" - "$RUN/meta.json" <<EOF
import json, platform, subprocess, sys
def sh(*a):
    try: return subprocess.run(a, capture_output=True, text=True, check=True).stdout.strip()
    except Exception: return None
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
json.dump({
  "date": sh("date", "-Iseconds"), "cpu": cpu, "cores": sh("nproc"), "kernel": platform.release(),
  "mcpo_rs_rev": sh("git", "-C", "$ROOT", "describe", "--always", "--dirty"),
  "mcpo_rs_version": sh("$MCPO_RS", "--version"),
  "mcpo_py_version": sh("$VENV/bin/pip", "show", "mcpo").split("Version: ")[1].split()[0] if sh("$VENV/bin/pip", "show", "mcpo") else None,
  "python": sh("$PY", "--version"), "wrk": open("$RUN/wrk-version.txt").read().strip(),
  "seconds": $BENCH_SECONDS, "reps": $BENCH_REPS, "concurrency": "$BENCH_CONCURRENCY", "upstreams": "$BENCH_UPSTREAMS",
  "cold_reps": $BENCH_COLD_REPS,
  "binary_bytes": __import__("os").path.getsize("$MCPO_RS"),
  "loadavg_start": open("/proc/loadavg").read().split()[:3],
}, open(sys.argv[1], "w"), indent=1)
EOF

# --- the bridges and upstreams under load --------------------------------------------------------
log "run directory: $RUN"
if [[ " $BENCH_UPSTREAMS " == *" echohttp "* ]]; then
  start echohttp "$TOOLS" echo-http --port "$P_ECHOHTTP"
  wait_listening "$P_ECHOHTTP" 30 || die "echo-http server did not start (see $LOGS/echohttp.log)"
fi
if [[ " $BENCH_UPSTREAMS " == *" pyhttp "* ]]; then
  start pyhttp "$PY" "$BENCH/py_server.py" http "$P_PYHTTP"
  wait_listening "$P_PYHTTP" 60 || die "Python SDK http server did not start (see $LOGS/pyhttp.log)"
fi
start hello "$TOOLS" hello --port "$P_HELLO"
start mcpo_rs "$MCPO_RS" --config "$RUN/config.json" --port "$P_RS" --host 127.0.0.1
start mcpo_py "$MCPO_PY" --config "$RUN/config.json" --port "$P_PY" --host 127.0.0.1
for u in $BENCH_UPSTREAMS; do
  wait_ok "http://127.0.0.1:$P_RS$(call_path "$u")" "$(call_body "$u")" 60 || die "mcpo-rs: $u never answered (see $LOGS/mcpo_rs.log)"
  wait_ok "http://127.0.0.1:$P_PY$(call_path "$u")" "$(call_body "$u")" 90 || die "mcpo-py: $u never answered (see $LOGS/mcpo_py.log)"
  for b in rs py; do
    port=$P_RS
    [ $b = py ] && port=$P_PY
    reply=$(curl -s -X POST -H 'Content-Type: application/json' -d "$(call_body "$u")" "http://127.0.0.1:$port$(call_path "$u")")
    log "sanity: mcpo-$b $u/echo -> $reply"
    [[ $reply == *hello* ]] || die "mcpo-$b answered $u/echo with $reply"
  done
done
wait_listening "$P_HELLO" 10 || die "hello server did not start"
sleep 1
record "{\"kind\":\"rss_idle\",\"bridge\":\"rs\",\"servers\":$(wc -w <<<"$BENCH_UPSTREAMS"),\"rss_kib\":$(rss_kib "$PID_mcpo_rs")}"
record "{\"kind\":\"rss_idle\",\"bridge\":\"py\",\"servers\":$(wc -w <<<"$BENCH_UPSTREAMS"),\"rss_kib\":$(rss_kib "$PID_mcpo_py")}"

log "load: ${BENCH_REPS} x ${BENCH_SECONDS} s per point, concurrency $BENCH_CONCURRENCY, upstreams $BENCH_UPSTREAMS"
for u in $BENCH_UPSTREAMS; do
  path=$(call_path "$u")
  body=$(call_body "$u")
  # Warm-up (not recorded): connections, caches, the Python JIT-less interpreter's imports.
  BODY=$body wrk -t2 -c8 -d1s -s "$BENCH/post.lua" "http://127.0.0.1:$P_RS$path" >/dev/null 2>&1
  BODY=$body wrk -t2 -c8 -d1s -s "$BENCH/post.lua" "http://127.0.0.1:$P_PY$path" >/dev/null 2>&1
  settle "$P_RS" "$path" "$body"
  settle "$P_PY" "$path" "$body"
  for c in $BENCH_CONCURRENCY; do
    for ((rep = 1; rep <= BENCH_REPS; rep++)); do
      # A/B interleaved, and the order flips every repetition.
      if ((rep % 2)); then order="rs py"; else order="py rs"; fi
      for b in $order; do
        if [ $b = rs ]; then
          wrk_run bridge rs "$u" "$c" "$rep" "$P_RS" "$PID_mcpo_rs" "$path" "$body"
        else
          wrk_run bridge py "$u" "$c" "$rep" "$P_PY" "$PID_mcpo_py" "$path" "$body"
        fi
      done
      direct_run "$u" "$c" "$rep"
    done
  done
done
record "{\"kind\":\"rss_after_load\",\"bridge\":\"rs\",\"rss_kib\":$(rss_kib "$PID_mcpo_rs"),\"hwm_kib\":$(hwm_kib "$PID_mcpo_rs")}"
record "{\"kind\":\"rss_after_load\",\"bridge\":\"py\",\"rss_kib\":$(rss_kib "$PID_mcpo_py"),\"hwm_kib\":$(hwm_kib "$PID_mcpo_py")}"

log "bare axum handler (no MCP), same wrk"
for c in $BENCH_CONCURRENCY; do
  for ((rep = 1; rep <= BENCH_REPS; rep++)); do
    wrk_run hello hello none "$c" "$rep" "$P_HELLO" 0 /bench/echo '{"message":"hello"}'
  done
done

# The load phase is over: stop its processes so the cold starts run on a quiet machine.
for pid in "${PIDS[@]}"; do kill_tree "$pid"; done
PIDS=()

# --- cold start: spawn to every server answering, then idle RSS ----------------------------------
log "cold start: $BENCH_COLD_REPS x (1 and 10 Python SDK servers), A/B interleaved"
cold_run() { # cold_run BRIDGE N REP
  local bridge=$1 n=$2 rep=$3 json i
  local -a calls=() cmd
  for ((i = 0; i < n; i++)); do calls+=(--call "http://127.0.0.1:$P_COLD/py$i/echo" '{"message":"hello"}'); done
  if [ "$bridge" = rs ]; then
    cmd=("$MCPO_RS" --config "$RUN/cold$n.json" --port "$P_COLD" --host 127.0.0.1)
  else
    cmd=("$MCPO_PY" --config "$RUN/cold$n.json" --port "$P_COLD" --host 127.0.0.1)
  fi
  run_child "$RUN/last.json" "$TOOLS" coldstart --timeout 120 --settle 2 \
    --log "$LOGS/cold-$bridge-$n-r$rep.log" "${calls[@]}" -- "${cmd[@]}" || die "coldstart failed"
  json=$(cat "$RUN/last.json")
  : >"$COLD_PIDFILE"
  record "{\"kind\":\"cold\",\"bridge\":\"$bridge\",\"servers\":$n,\"rep\":$rep,\"cold\":$json}"
  log "  cold $bridge $n server(s): $json"
  sleep 0.5
}
startup_run() { # startup_run N REP: the same upstreams without a bridge (rmcp clients, all at once)
  local n=$1 rep=$2 json
  run_child "$RUN/last.json" "$TOOLS" startup -n "$n" -- "${PYSDK_CMD[@]}" 2>>"$LOGS/startup.log" ||
    die "startup floor failed, see $LOGS/startup.log"
  json=$(cat "$RUN/last.json")
  record "{\"kind\":\"startup\",\"bridge\":\"direct\",\"servers\":$n,\"rep\":$rep,\"startup\":$json}"
  log "  upstreams alone, $n server(s): $json"
  sleep 0.5
}
for ((rep = 1; rep <= BENCH_COLD_REPS; rep++)); do
  if ((rep % 2)); then order="rs py"; else order="py rs"; fi
  for n in 1 10; do
    for b in $order; do cold_run "$b" "$n" "$rep"; done
    startup_run "$n" "$rep"
  done
done

# --- report --------------------------------------------------------------------------------------
"$PYTHON" - "$RUN/meta.json" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
"$PYTHON" "$BENCH/report.py" "$RUN" | tee "$RUN/report.md"
log "raw results: $RESULTS; report: $RUN/report.md"
