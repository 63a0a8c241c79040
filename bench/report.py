"""Turn a bench/run.sh run directory into the comparison table (markdown on stdout).

    python3 bench/report.py bench/.work/run-YYYYmmdd-HHMMSS

Every figure is the median over the repetitions of that point. Throughput counts only 2xx
answers (wrk's non-2xx count is subtracted and shown as errors).
"""

import json
import os
import statistics
import sys


def load(run):
    rows = []
    with open(os.path.join(run, "results.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    meta = {}
    try:
        with open(os.path.join(run, "meta.json")) as f:
            meta = json.load(f)
    except OSError:
        pass
    return rows, meta


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_point(rows, kind, bridge, upstream, c):
    """Median calls/s, p50 ms, p99 ms, total errors for one (bridge, upstream, concurrency)."""
    sel = [r for r in rows if r["kind"] == kind and r["bridge"] == bridge and r.get("upstream") == upstream and r["c"] == c]
    if not sel:
        return None
    rps, p50, p99, errors, lost = [], [], [], 0, 0
    for r in sel:
        lost += r.get("rs_sessions_lost", 0) if bridge == "rs" else 0
        if "wrk" in r:
            w = r["wrk"]
            ok = w["requests"] - w["err_status"]
            rps.append(ok / (w["duration_us"] / 1e6))
            p50.append(w["p50_us"] / 1e3)
            p99.append(w["p99_us"] / 1e3)
            errors += w["err_status"] + w["err_connect"] + w["err_read"] + w["err_timeout"]
        else:
            d = r["direct"]
            rps.append(d["rps"])
            p50.append(d["p50_ms"])
            p99.append(d["p99_ms"])
            errors += d["errors"]
    return {"rps": med(rps), "p50": med(p50), "p99": med(p99), "errors": errors, "lost": lost, "n": len(sel)}


def fmt_rps(v):
    return "–" if v is None else f"{v:,.0f}/s"


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:.3f} ms" if v < 10 else f"{v:.1f} ms"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def fmt_mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def users_report(run):
    """The many-users scenario (`bench/run.sh users`): one row per (transport, N, bridge)."""
    rows, _ = load(run)
    rows = [r for r in rows if r["kind"] == "users"]
    print("| transport | users | bridge | KiB per user | RSS start → N users → idle (MiB) | idle vs start | first call p50 / p99 (ms) | warm call p50 (ms) | failed |")
    print("|---|---:|---|---:|---|---:|---|---:|---:|")
    keys = sorted({(r["transport"], r["n"], r["bridge"]) for r in rows}, key=lambda k: (k[0], k[1], k[2] != "before"))
    mib = lambda kib: "–" if kib is None else f"{kib / 1024:.1f}"
    for transport, n, bridge in keys:
        sel = [r["users"] for r in rows if (r["transport"], r["n"], r["bridge"]) == (transport, n, bridge)]
        g = lambda k: med([u.get(k) for u in sel])
        start, users, idle = g("rss_start_kib"), g("rss_users_kib"), g("rss_idle_kib")
        ratio = "–" if idle is None or not start else f"{(idle / start - 1) * 100:+.0f}%"
        failed = sum(u.get("first_failed", 0) for u in sel)
        per = g("kib_per_user")
        print(f"| {transport} | {n:,} | {bridge} | {per:.1f} | {mib(start)} → {mib(users)} → {mib(idle)} | {ratio} | "
              f"{g('first_p50_ms'):.2f} / {g('first_p99_ms'):.2f} | {g('warm_p50_ms'):.2f} | {failed} |")


def catalog_report(run):
    """The catalog scenario (`bench/run.sh catalog`): medians over the repetitions per bridge."""
    rows, _ = load(run)
    rows = [r for r in rows if r["kind"] == "catalog"]
    print("| bridge | RSS 20×2 → 20×101 tools (MiB) | KiB per 1,000 tools | root doc (KiB, gzip) | first / second fetch (ms) | 8 clients p50 (ms) plain / gzip / 304 | calls/s plain / gzip / 304 |")
    print("|---|---|---:|---|---|---|---|")
    for bridge in ("before", "after"):
        sel = [r["catalog"] for r in rows if r["bridge"] == bridge]
        if not sel:
            continue
        g = lambda f: med([f(c) for c in sel])
        small, big = g(lambda c: c["rss_small_kib"]), g(lambda c: c["rss_big_kib"])
        tools = sel[0]["tools_big"] - sel[0]["tools_small"]
        per = (big - small) / tools * 1000
        p50 = lambda k: g(lambda c: c[k]["p50_us"] / 1000)
        rps = lambda k: g(lambda c: c[k]["requests"] / (c[k]["duration_us"] / 1e6))
        print(f"| {bridge} | {small / 1024:.1f} → {big / 1024:.1f} | {per:.0f} | {g(lambda c: c['root_bytes']) / 1024:.0f} ({g(lambda c: c['root_gzip_bytes']) / 1024:.0f}) | "
              f"{g(lambda c: c['first_fetch_s']) * 1000:.1f} / {g(lambda c: c['second_fetch_s']) * 1000:.1f} | "
              f"{p50('wrk_plain'):.3f} / {p50('wrk_gzip'):.3f} / {p50('wrk_304'):.3f} | {rps('wrk_plain'):,.0f} / {rps('wrk_gzip'):,.0f} / {rps('wrk_304'):,.0f} |")


def results_report(run):
    """The large-results scenario (`bench/run.sh results`)."""
    rows, _ = load(run)
    rows = [r for r in rows if r["kind"] == "results"]
    print("| call | bridge | status | payload (MB) | peak RSS growth (MB, × payload) | seconds | MB/s | bytes equal |")
    print("|---|---|---:|---:|---|---:|---:|---|")
    keys = []
    for r in rows:
        k = (r["tool"], json.dumps(r["args"], separators=(",", ":")), r["bridge"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[0], k[1], k[2] != "before"))
    for tool, args, bridge in keys:
        sel = [r["result"] for r in rows if (r["tool"], json.dumps(r["args"], separators=(",", ":")), r["bridge"]) == (tool, args, bridge)]
        g = lambda k: med([x.get(k) for x in sel])
        status = "/".join(sorted({str(x["status"]) for x in sel}))
        equal = "yes" if all(x["equal"] for x in sel) else ("–" if all(x["equal"] is None for x in sel) else "NO")
        mbps = g("mb_per_s")
        print(f"| {tool} {args} | {bridge} | {status} | {g('payload_bytes') / 1e6:.1f} | {g('peak_growth_bytes') / 1e6:.1f} ({g('growth_x_payload')}×) | "
              f"{g('seconds'):.3f} | {'–' if mbps is None else f'{mbps:.0f}'} | {equal} |")


# Commands the bench itself sends Redis around a measured run (not mcpo's).
OWN_REDIS_COMMANDS = {"info", "config|resetstat"}
# mcpo's availability probe (src/store/redis.rs): a PING every 5 s per replica, on a timer,
# whatever the traffic; counted apart from the commands of the call path.
PROBE_REDIS_COMMANDS = {"ping"}


def replicas_report(run):
    """The replicas scenario (`bench/run.sh replicas`): medians over the repetitions per
    configuration, and the issue's targets."""
    rows, meta = load(run)
    rows = [r for r in rows if r["kind"] == "replicas"]
    names = {
        "file": "file store, 1 mcpo",
        "file-before": "file store, 1 mcpo (MCPO_BEFORE)",
        "redis2": "Redis store, 2 replicas",
        "redis1": "Redis store, 1 mcpo",
    }
    if meta:
        print(
            f"{meta.get('date', '')} · {meta.get('cpu', '?')} · {meta.get('cores', '?')} cores · mcpo {meta.get('mcpo_rs_rev', '?')} · "
            f"load average at start {' '.join(meta.get('loadavg_start', []))}, at end {' '.join(meta.get('loadavg_end', []))}"
        )
        print()
    print("| configuration | users, clients | calls/s total | calls/s per replica | p50 / p99 (ms) | Redis commands per call (call path; with the probe's PINGs) | Redis commands during the load, summed over the runs | Redis commands to sign in and reach every replica (keys) | mcpo CPU per call (all replicas) | failed | RSS per replica |")
    print("|---|---|---:|---:|---|---:|---|---|---:|---:|---:|")
    summary = {}
    for config in [c for c in ("file-before", "file", "redis2", "redis1") if any(r["config"] == c for r in rows)]:
        sel = [r for r in rows if r["config"] == config]
        per_rep_per_replica, per_call, per_call_all, used = [], [], [], {}
        for r in sel:
            run_load = r["load"]
            per_rep_per_replica.append(statistics.mean(u["rps"] for u in run_load["per_url"].values()))
            commands = {k: v for k, v in r["redis_commands"].items() if k not in OWN_REDIS_COMMANDS}
            for k, v in commands.items():
                used[k] = used.get(k, 0) + v
            call_path = sum(v for k, v in commands.items() if k not in PROBE_REDIS_COMMANDS)
            per_call.append(call_path / max(run_load["answered_with_warmup"], 1))
            per_call_all.append(sum(commands.values()) / max(run_load["answered_with_warmup"], 1))
        total = med([r["load"]["rps"] for r in sel])
        replica = med(per_rep_per_replica)
        spread = (max(per_rep_per_replica) - min(per_rep_per_replica)) / replica if replica else None
        summary[config] = {"replica": replica, "spread": spread, "per_call": med(per_call), "max_per_call": max(per_call),
                           "max_per_call_all": max(per_call_all)}
        failed = sum(r["load"]["failed"] for r in sel)
        rss = med([statistics.mean(r["rss_kib"]) for r in sel if r["rss_kib"]])
        cpu_us = med([1000 * sum(r["cpu_ms"]) / max(r["load"]["answered_with_warmup"], 1) for r in sel if r.get("cpu_ms")])
        listed = ", ".join(f"{k} {v}" for k, v in sorted(used.items())) or "none"
        setup = {}
        for r in sel:
            for k, v in r.get("redis_commands_setup", {}).items():
                if k not in OWN_REDIS_COMMANDS:
                    setup.setdefault(k, []).append(v)
        setup_text = ", ".join(f"{k} {med(v):.0f}" for k, v in sorted(setup.items())) or "none"
        setup_text += f" ({med([r.get('redis_keys') for r in sel]):.0f} keys)"
        print(
            f"| {names.get(config, config)} | {sel[0]['users']}, {sel[0]['load']['c']} | {fmt_rps(total)} | {fmt_rps(replica)} "
            f"(spread {100 * spread:.0f}%) | {med([r['load']['p50_ms'] for r in sel]):.2f} / {med([r['load']['p99_ms'] for r in sel]):.2f} | "
            f"{med(per_call):.4f}; {med(per_call_all):.5f} | {listed} ({len(sel)} runs) | {setup_text} | {'–' if cpu_us is None else f'{cpu_us:.0f} µs'} | {failed} | {fmt_mib(rss)} |"
        )
    print()
    print("| target | measured | met |")
    print("|---|---:|:---:|")
    for config in ("redis2", "redis1"):
        if config in summary:
            m, m_all = summary[config]["max_per_call"], summary[config]["max_per_call_all"]
            print(f"| {names[config]}: Redis commands per call with the tokens in memory = 0 (the call path; the probe's timer PINGs apart) | "
                  f"{m:.4f} (largest run; {m_all:.5f} with the PINGs) | {'yes' if m == 0 else '**NO**'} |")
    base = summary.get("file")
    for config in ("redis2", "redis1"):
        if base and config in summary and base["replica"]:
            ratio = summary[config]["replica"] / base["replica"]
            noise = max(base["spread"] or 0, summary[config]["spread"] or 0)
            ok = abs(ratio - 1) <= noise
            print(f"| {names[config]}: calls/s per replica within noise of the file store | {ratio:.2f}× (noise ±{100 * noise:.0f}%) | {'yes' if ok else '**NO**'} |")
    totals = {c: med([r["load"]["rps"] for r in rows if r["config"] == c]) for c in ("file", "redis2")}
    if totals["file"] and totals["redis2"]:
        print(f"| (context, not a target) {names['redis2']}: calls/s of both together against the file store's one | {totals['redis2'] / totals['file']:.2f}× | |")


def main():
    run = sys.argv[1]
    rows, meta = load(run)
    concurrency = [int(c) for c in str(meta.get("concurrency", "1 8 64")).split()]
    upstreams = str(meta.get("upstreams", "echo pysdk echohttp pyhttp")).split()
    names = {
        "echo": "echo server (stdio)",
        "pysdk": "Python SDK server (stdio)",
        "echohttp": "echo server (streamable HTTP)",
        "pyhttp": "Python SDK server (streamable HTTP)",
    }

    out = []
    p = out.append
    p(f"# mcpo-rs vs mcpo-py ({meta.get('mcpo_py_version', '?')})")
    p("")
    p(
        f"{meta.get('date', '')} · {meta.get('cpu', '?')} · {meta.get('cores', '?')} cores · "
        f"kernel {meta.get('kernel', '?')} · mcpo-rs {meta.get('mcpo_rs_rev', '?')} · {meta.get('python', '')} · "
        f"{meta.get('wrk', 'wrk')}, medians of {meta.get('reps', '?')} × {meta.get('seconds', '?')} s per point, loopback · "
        f"load average at start {' '.join(meta.get('loadavg_start', []))}, at end {' '.join(meta.get('loadavg_end', []))}"
    )
    p("")
    p("| metric | mcpo-rs | mcpo-py | rs / py | context limit (same run) | rs / limit |")
    p("|---|---:|---:|---:|---|---:|")

    hello = {c: load_point(rows, "hello", "hello", "none", c) for c in concurrency}
    lost_notes = []
    checks = []
    pts = {}
    for u in upstreams:
        for c in concurrency:
            rs = load_point(rows, "bridge", "rs", u, c)
            py = load_point(rows, "bridge", "py", u, c)
            direct = load_point(rows, "direct", "direct", u, c)
            pts[(u, c)] = (rs, py, direct)
            if rs is None and py is None:
                continue
            limits, rel = [], []
            if direct:
                limits.append(f"direct rmcp client {fmt_rps(direct['rps'])}")
                rel.append(f"{100 * rs['rps'] / direct['rps']:.0f}% of direct" if rs and direct["rps"] else "")
            if u == "echo" and hello.get(c):
                limits.append(f"bare axum {fmt_rps(hello[c]['rps'])}")
                rel.append(f"{100 * rs['rps'] / hello[c]['rps']:.0f}% of axum" if rs and hello[c]["rps"] else "")
            err = ""
            if (rs and rs["errors"]) or (py and py["errors"]):
                err = f" (non-2xx/failed: rs {rs['errors'] if rs else 0}, py {py['errors'] if py else 0})"
            if rs and rs["lost"]:
                err += f" (upstream died {rs['lost']}× under mcpo-rs, see notes)"
                lost_notes.append(u)
            p(
                f"| {names.get(u, u)}, {c} client{'s' if c > 1 else ''}: calls/s{err} | {fmt_rps(rs and rs['rps'])} | "
                f"{fmt_rps(py and py['rps'])} | {fmt_ratio(rs and rs['rps'], py and py['rps'])} | {'; '.join(limits)} | {', '.join(x for x in rel if x)} |"
            )
            lim_lat = f"direct p50 {fmt_ms(direct['p50'])}, p99 {fmt_ms(direct['p99'])}" if direct else ""
            if u == "echo" and hello.get(c):
                lim_lat += ("; " if lim_lat else "") + f"axum p50 {fmt_ms(hello[c]['p50'])}, p99 {fmt_ms(hello[c]['p99'])}"
            p(
                f"| … p50 / p99 latency | {fmt_ms(rs and rs['p50'])} / {fmt_ms(rs and rs['p99'])} | "
                f"{fmt_ms(py and py['p50'])} / {fmt_ms(py and py['p99'])} | {fmt_ratio(rs and rs['p50'], py and py['p50'])} / "
                f"{fmt_ratio(rs and rs['p99'], py and py['p99'])} | {lim_lat} | |"
            )

    def cold(bridge, n):
        sel = [r["cold"] for r in rows if r["kind"] == "cold" and r["bridge"] == bridge and r["servers"] == n]
        ok = [s for s in sel if s.get("ok")]
        return {
            "all_ms": med([s["all_ok_ms"] for s in ok]),
            "rss": med([s["rss_idle_kib"] for s in ok]),
            "anon": med([s.get("rss_anon_kib") for s in ok]),
            "file": med([s.get("rss_file_kib") for s in ok]),
            "failed": len(sel) - len(ok),
            "n": len(sel),
        }

    def floor(n):
        return med([r["startup"]["all_ok_ms"] for r in rows if r["kind"] == "startup" and r["servers"] == n])

    for n in (1, 10):
        rs, py = cold("rs", n), cold("py", n)
        fl = floor(n)
        fail = f" ({rs['failed']}+{py['failed']} failed)" if rs["failed"] or py["failed"] else ""
        p(
            f"| start → every server answered a call, {n} Python SDK server{'s' if n > 1 else ''}{fail} | "
            f"{fmt_ms(rs['all_ms'])} | {fmt_ms(py['all_ms'])} | {fmt_ratio(rs['all_ms'], py['all_ms'])} | "
            f"{'the upstreams alone, spawned at once by rmcp clients: ' + fmt_ms(fl) if fl else ''} | "
            f"{fmt_ratio(rs['all_ms'], fl) if fl else ''} |"
        )
    for n in (1, 10):
        rs, py = cold("rs", n), cold("py", n)
        split = ""
        if rs["anon"] is not None and rs["file"] is not None:
            split = f"mcpo-rs: {fmt_mib(rs['anon'])} anonymous + {fmt_mib(rs['file'])} file-backed (its own code pages, shared libs)"
        p(
            f"| RSS idle, {n} server{'s' if n > 1 else ''} (bridge process only) | {fmt_mib(rs['rss'])} | {fmt_mib(py['rss'])} | "
            f"{fmt_ratio(rs['rss'], py['rss'])} | {split} | |"
        )

    def one(kind, bridge, field):
        sel = [r for r in rows if r["kind"] == kind and r["bridge"] == bridge]
        return sel[-1][field] if sel else None

    def load_rss(bridge):
        sel = [r["rss_max_kib"] for r in rows if r["kind"] == "bridge" and r["bridge"] == bridge]
        return max(sel) if sel else None

    nserv = one("rss_idle", "rs", "servers")
    p(
        f"| RSS idle, the {nserv} load-test servers (bridge process only) | {fmt_mib(one('rss_idle', 'rs', 'rss_kib'))} | "
        f"{fmt_mib(one('rss_idle', 'py', 'rss_kib'))} | {fmt_ratio(one('rss_idle', 'rs', 'rss_kib'), one('rss_idle', 'py', 'rss_kib'))} | | |"
    )
    p(
        f"| RSS under load: max sampled during the runs (bridge only) | {fmt_mib(load_rss('rs'))} | {fmt_mib(load_rss('py'))} | "
        f"{fmt_ratio(load_rss('rs'), load_rss('py'))} | | |"
    )
    p(
        f"| RSS peak over the whole load phase (VmHWM) | {fmt_mib(one('rss_after_load', 'rs', 'hwm_kib'))} | "
        f"{fmt_mib(one('rss_after_load', 'py', 'hwm_kib'))} | | | |"
    )
    size = meta.get("binary_bytes")
    p(f"| release binary (stripped) | {fmt_mib(size / 1024) if size else '–'} | (Python package) | | | |")
    p("")

    # --- targets --------------------------------------------------------------------------------
    def check(name, value, ok):
        checks.append((name, value, ok))

    cmax = max(concurrency)
    rs64, py64, _ = pts.get(("echo", cmax), (None, None, None))
    if rs64 and py64:
        check(f"echo, {cmax} clients: ≥ 30× mcpo-py throughput", fmt_ratio(rs64["rps"], py64["rps"]), rs64["rps"] >= 30 * py64["rps"])
    if rs64 and hello.get(cmax):
        share = rs64["rps"] / hello[cmax]["rps"]
        check(f"echo, {cmax} clients: ≥ 40% of bare axum", f"{100 * share:.0f}%", share >= 0.40)
    rs1 = pts.get(("echo", 1), (None,))[0]
    if rs1:
        check("echo, 1 client: p50 ≤ 0.15 ms", fmt_ms(rs1["p50"]), rs1["p50"] <= 0.15)
    if rs64:
        check(f"echo, {cmax} clients: p99 ≤ 5 ms", fmt_ms(rs64["p99"]), rs64["p99"] <= 5)
    for u in ("pysdk", "pyhttp"):
        for c in concurrency:
            rs, _, direct = pts.get((u, c), (None, None, None))
            if rs and direct:
                share = rs["rps"] / direct["rps"]
                check(f"{names[u]}, {c} client{'s' if c > 1 else ''}: ≥ 95% of direct client", f"{100 * share:.0f}%", share >= 0.95)
    r10 = cold("rs", 10)
    if r10["rss"] is not None:
        check("RSS idle with 10 servers ≤ 15 MiB", fmt_mib(r10["rss"]), r10["rss"] <= 15 * 1024)
    lr = load_rss("rs")
    if lr:
        check("RSS under load ≤ 30 MiB", fmt_mib(lr), lr <= 30 * 1024)
    for n in (1, 10):
        rs, py = cold("rs", n), cold("py", n)
        if rs["all_ms"] and py["all_ms"]:
            check(f"start to first OK call, {n} server{'s' if n > 1 else ''}: ≤ ⅓ of mcpo-py", fmt_ratio(rs["all_ms"], py["all_ms"]), rs["all_ms"] <= py["all_ms"] / 3)
    if size:
        check("release binary ≤ 15 MiB stripped", fmt_mib(size / 1024), size <= 15 * 1024 * 1024)

    if lost_notes:
        p(
            "Notes: an upstream session that mcpo-rs lost during or right after a run was reconnected "
            "before the next point was measured (`settle_ms` in results.jsonl says how long that took). "
            "A known cause with the Python SDK over stdio: its server (mcp 1.26) dies on "
            "`notifications/cancelled` for a running request (python-sdk issue #2610). mcpo-rs "
            "cancels a call whose HTTP client went away only if it is still running 1 s later, "
            "so a load run that stops with short calls in flight should no longer trigger it. "
            "Python mcpo never sends cancellations."
        )
        p("")
    p("| target | measured | met |")
    p("|---|---:|:---:|")
    for name, value, ok in checks:
        p(f"| {name} | {value} | {'yes' if ok else '**NO**'} |")
    print("\n".join(out))


def progress(kind, bridge, upstream, c):
    """One line per measurement while the run goes on (JSON from stdin)."""
    r = json.load(sys.stdin)
    if kind == "wrk":
        rps = (r["requests"] - r["err_status"]) / (r["duration_us"] / 1e6)
        p50, p99 = r["p50_us"] / 1e3, r["p99_us"] / 1e3
        errors = r["err_status"] + r["err_connect"] + r["err_read"] + r["err_timeout"]
    else:
        rps, p50, p99, errors = r["rps"], r["p50_ms"], r["p99_ms"], r["errors"]
    print(f"  {bridge:<6} {upstream:<9} c={c:<3} {rps:>10.0f}/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms  errors {errors}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--users":
        users_report(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--catalog":
        catalog_report(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--results":
        results_report(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--replicas":
        replicas_report(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "--progress":
        progress(*sys.argv[2:6])
    else:
        main()
