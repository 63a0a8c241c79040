#!/usr/bin/env bash
# Soak test: bounded load against mcpo in front of the repo's fixture MCP servers (two stdio, one
# streamable HTTP, one legacy SSE) while upstream processes are killed at random intervals and
# the HTTP fixtures are restarted on their ports. Everything listens on 127.0.0.1 only, and every
# process this script starts is stopped on exit (by the pid it recorded).
#
#   scripts/soak.sh                     # 10 minutes
#   SOAK_SECONDS=60 scripts/soak.sh     # shorter
#
# Knobs (environment): SOAK_SECONDS (600), SOAK_THREADS (8), SOAK_RPS (200, total),
# SOAK_MAX_REQUESTS (1000000), SOAK_CHAOS_MIN/SOAK_CHAOS_MAX (2/8 s between faults),
# SOAK_PROFILE (debug | release), SOAK_SEED (random seed for the fault schedule).
#
# Prints requests sent, succeeded, failed by status, mcpo's RSS at start and end, the faults
# injected and the reconnect counts from /status. Exits non-zero if mcpo died, did not recover
# after the faults stopped, or answered with a status other than 200/502/503/504.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds="${SOAK_SECONDS:-600}"
threads="${SOAK_THREADS:-8}"
rps="${SOAK_RPS:-200}"
max_requests="${SOAK_MAX_REQUESTS:-1000000}"
chaos_min="${SOAK_CHAOS_MIN:-2}"
chaos_max="${SOAK_CHAOS_MAX:-8}"
profile="${SOAK_PROFILE:-debug}"
RANDOM="${SOAK_SEED:-$$}"

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- build -----------------------------------------------------------------------------------
build_flags=(--bins --examples)
[[ "$profile" == release ]] && build_flags+=(--release)
log "building mcpo and the fixture ($profile)"
cargo build "${build_flags[@]}" >&2
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
mcpo_bin="$target_dir/$profile/mcpo"
fixture_bin="$target_dir/$profile/examples/mcp_fixture"
[[ -x "$mcpo_bin" && -x "$fixture_bin" ]] || { log "build outputs missing"; exit 1; }

# --- process bookkeeping -------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/mcpo-soak.XXXXXX")"
mcpo_pid=""
load_pid=""
declare -A fixture_pid=() fixture_port=()

stop_pid() { # pid: TERM, wait up to 5 s, then KILL
  local pid="$1" i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n "$load_pid" ]] && stop_pid "$load_pid"
  [[ -n "$mcpo_pid" ]] && stop_pid "$mcpo_pid"
  local name
  for name in "${!fixture_pid[@]}"; do stop_pid "${fixture_pid[$name]}"; done
  if [[ $rc -ne 0 && -f "$work/mcpo.log" ]]; then
    log "last lines of mcpo's log:"
    tail -n 40 "$work/mcpo.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until a file has a line matching a sed expression; prints the captured group.
wait_line() { # file sed-expr seconds
  local file="$1" expr="$2" deadline=$((SECONDS + $3)) found
  while ((SECONDS < deadline)); do
    found="$(sed -n "$expr" "$file" 2>/dev/null | head -n 1)"
    [[ -n "$found" ]] && { printf '%s\n' "$found"; return 0; }
    sleep 0.05
  done
  return 1
}

# Starts the fixture in http|sse mode on a port (0: any); records pid and port.
start_fixture() { # name mode port
  local name="$1" mode="$2" port="$3" out="$work/$1.out" attempt addr
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    : >"$out"
    "$fixture_bin" "$mode" --port "$port" >"$out" 2>>"$work/$name.err" &
    fixture_pid[$name]=$!
    if addr="$(wait_line "$out" 's/^LISTENING http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' 10)"; then
      fixture_port[$name]="$addr"
      return 0
    fi
    stop_pid "${fixture_pid[$name]}"
    unset 'fixture_pid[$name]'
    log "fixture $name did not listen on port $port (attempt $attempt); retrying"
    sleep 0.2
  done
  log "fixture $name could not be started"
  return 1
}

http_get() { curl -sS --max-time 10 "http://127.0.0.1:$mcpo_port$1"; }
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$mcpo_port$1" || true; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$mcpo_pid/status"; }
fd_count() { find "/proc/$mcpo_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# mcpo's direct children, and how many of them are zombies (exited but never reaped).
children() { # prints "N Z"
  local n=0 z=0 stat f
  for f in /proc/[0-9]*/stat; do
    stat="$(cat "$f" 2>/dev/null)" || continue
    stat="${stat##*) }"
    set -- $stat
    [[ "$2" == "$mcpo_pid" ]] || continue
    n=$((n + 1))
    [[ "$1" == Z ]] && z=$((z + 1))
  done
  echo "$n $z"
}

# The pid a stdio fixture reports through whoami, if it is mcpo's child (else empty).
stdio_pid() { # server
  local pid ppid
  pid="$(curl -sS --max-time 10 -X POST -H 'Content-Type: application/json' -d '{}' \
    "http://127.0.0.1:$mcpo_port/$1/whoami" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)" || return 0
  ppid="$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)" || return 0
  [[ "$ppid" == "$mcpo_pid" ]] && printf '%s\n' "$pid"
  return 0
}

# --- start everything ----------------------------------------------------------------------
start_fixture http http 0
start_fixture sse sse 0
cat >"$work/config.json" <<EOF
{
  "mcpServers": {
    "stdio_a": {"command": "$fixture_bin", "args": ["stdio"]},
    "stdio_b": {"command": "$fixture_bin", "args": ["stdio"]},
    "http": {"type": "streamable-http", "url": "http://127.0.0.1:${fixture_port[http]}/mcp"},
    "sse": {"type": "sse", "url": "http://127.0.0.1:${fixture_port[sse]}/sse"}
  }
}
EOF
servers="stdio_a,stdio_b,http,sse"

RUST_LOG="${RUST_LOG:-info,mcpo::upstream::stderr=warn}" NO_COLOR=1 "$mcpo_bin" --host 127.0.0.1 --port 0 \
  --config "$work/config.json" \
  --reconnect-min-delay 0.2 --reconnect-max-delay 2 --reconnect-wait 2 \
  --keepalive-interval 2 --tool-timeout 10 --connect-timeout 10 \
  >"$work/mcpo.out" 2>"$work/mcpo.log" &
mcpo_pid=$!
mcpo_port="$(wait_line "$work/mcpo.log" 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' 30)" ||
  { log "mcpo did not start"; exit 1; }
deadline=$((SECONDS + 30))
until [[ "$(http_code /readyz)" == 200 ]]; do
  ((SECONDS < deadline)) || { log "mcpo never became ready"; http_get /status >&2 || true; exit 1; }
  sleep 0.1
done
rss_start="$(rss_kb)"
fds_start="$(fd_count)"
log "mcpo pid $mcpo_pid on port $mcpo_port, ready; RSS ${rss_start} kB; load for ${seconds}s"

# --- load and faults -----------------------------------------------------------------------
python3 "$root/scripts/soak_load.py" --port "$mcpo_port" --servers "$servers" \
  --seconds "$seconds" --threads "$threads" --rps "$rps" --max-requests "$max_requests" \
  >"$work/load.json" &
load_pid=$!

kills=0
http_restarts=0
sse_restarts=0
end=$((SECONDS + seconds))
while kill -0 "$load_pid" 2>/dev/null && ((SECONDS < end)); do
  pause=$((chaos_min + RANDOM % (chaos_max - chaos_min + 1)))
  for ((i = 0; i < pause * 10; i++)); do
    kill -0 "$load_pid" 2>/dev/null && ((SECONDS < end)) || break
    sleep 0.1
  done
  kill -0 "$load_pid" 2>/dev/null && ((SECONDS < end - 3)) || break
  kill -0 "$mcpo_pid" 2>/dev/null || { log "mcpo died"; exit 1; }
  echo "$((SECONDS - end + seconds)) $(rss_kb) $(fd_count)" >>"$work/samples"
  case $((RANDOM % 4)) in
  0 | 1)
    server="stdio_$([[ $((RANDOM % 2)) == 0 ]] && echo a || echo b)"
    pid="$(stdio_pid "$server")"
    if [[ -n "$pid" ]]; then
      log "SIGKILL $server (pid $pid, from whoami)"
      kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
    else
      log "$server did not report a pid (reconnecting?); skipped"
    fi
    ;;
  2 | 3)
    name="$([[ $((RANDOM % 2)) == 0 ]] && echo http || echo sse)"
    log "restarting the $name fixture on port ${fixture_port[$name]}"
    if [[ $((RANDOM % 2)) == 0 ]]; then
      kill -KILL "${fixture_pid[$name]}" 2>/dev/null || true
      wait "${fixture_pid[$name]}" 2>/dev/null || true
    else
      stop_pid "${fixture_pid[$name]}"
    fi
    sleep "0.$((RANDOM % 10))"
    start_fixture "$name" "$name" "${fixture_port[$name]}"
    if [[ "$name" == http ]]; then http_restarts=$((http_restarts + 1)); else sse_restarts=$((sse_restarts + 1)); fi
    ;;
  esac
done

log "waiting for the load generator to finish"
wait "$load_pid" || { load_pid=""; log "load generator failed"; exit 1; }
load_pid=""
kill -0 "$mcpo_pid" 2>/dev/null || { log "mcpo died"; exit 1; }

# After the last fault every server must come back.
deadline=$((SECONDS + 30))
until [[ "$(http_code /readyz)" == 200 ]]; do
  ((SECONDS < deadline)) || { log "mcpo did not recover"; http_get /status >&2 || true; exit 1; }
  sleep 0.1
done
rss_end="$(rss_kb)"
fds_end="$(fd_count)"
read -r children_end zombies_end < <(children)
http_get /status >"$work/status.json"

# --- report --------------------------------------------------------------------------------
python3 - "$work/load.json" "$work/status.json" "$seconds" "$rss_start" "$rss_end" \
  "$kills" "$http_restarts" "$sse_restarts" "$fds_start" "$fds_end" "$children_end" \
  "$zombies_end" "$work/samples" <<'EOF'
import json, sys
load = json.load(open(sys.argv[1]))
status = json.load(open(sys.argv[2]))
seconds, rss_start, rss_end, kills, http_r, sse_r, fds0, fds1, kids, zombies = sys.argv[3:13]
print(f"duration:          {seconds} s")
print(f"requests sent:     {load['sent']}")
print(f"succeeded (200):   {load['ok']}")
failed = {k: v for k, v in load["by_status"].items() if k != "200"}
print("failed by status:  " + (", ".join(f"{k}: {v}" for k, v in failed.items()) or "none"))
lat = load["latency_ms"]
print(f"latency ms:        p50 {lat['p50']}, p99 {lat['p99']}, max {lat['max']}")
print(f"mcpo RSS:          start {rss_start} kB, end {rss_end} kB")
print(f"mcpo open fds:     start {fds0}, end {fds1}")
try:
    samples = [line.split() for line in open(sys.argv[13]) if line.strip()]
except OSError:
    samples = []
if samples:
    picks = sorted({0, len(samples) // 4, len(samples) // 2, 3 * len(samples) // 4, len(samples) - 1})
    print("under load:        " + ", ".join(
        f"t={samples[i][0]}s RSS {samples[i][1]} kB fds {samples[i][2]}" for i in picks))
print(f"mcpo children:     {kids} at the end ({zombies} zombies); 2 stdio servers configured")
print(f"faults injected:   {kills} stdio SIGKILLs, {http_r} http restarts, {sse_r} sse restarts")
print("reconnects:        " + ", ".join(
    f"{s['name']}={s['reconnects']}" for s in status["servers"]))
print("calls (/status):   " + ", ".join(f"{s['name']}={s['calls']}" for s in status["servers"]))
print("final state:       " + ", ".join(f"{s['name']}={s['state']}" for s in status["servers"]))
bad = [k for k in load["by_status"] if k not in ("200", "502", "503", "504")]
for line in load["unexpected"]:
    print(f"  note: {line}")
if bad:
    print(f"UNEXPECTED statuses: {bad}")
    sys.exit(1)
EOF
