#!/usr/bin/env python3
"""Bounded HTTP load for scripts/soak.sh (standard library only).

Sends `POST /{server}/{tool}` requests to mcpo from a few threads, paced to a total rate, until
the time or request budget is spent, then prints one JSON summary line on stdout:

    {"sent": N, "ok": N, "by_status": {"200": N, "503": N, "error": N, ...},
     "latency_ms": {"p50": x, "p99": x, "max": x}, "unexpected": ["..."]}

`error` counts requests that got no HTTP answer at all (connection refused/reset, timeout).
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time

# (tool, arguments, expected JSON result or None to skip the check)
CALLS = [
    ("echo", lambda i: {"text": f"soak-{i}"}, lambda i: f"soak-{i}"),
    ("add", lambda i: {"a": i, "b": 1}, lambda i: i + 1),
    ("whoami", lambda i: {}, None),
    ("slow", lambda i: {"seconds": 0.05}, lambda i: "done after 0.05"),
]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--servers", required=True, help="comma-separated server names")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--rps", type=float, default=200.0, help="total requests per second")
    p.add_argument("--max-requests", type=int, default=1_000_000)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    servers = [s for s in args.servers.split(",") if s]
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    budget = [args.max_requests]
    by_status: dict[str, int] = {}
    latencies: list[float] = []
    unexpected: list[str] = []
    interval = args.threads / args.rps if args.rps > 0 else 0.0

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = None
        i = seed * 10_000_000
        next_at = time.monotonic() + rng.random() * interval
        while time.monotonic() < deadline and take():
            i += 1
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_at = max(next_at + interval, time.monotonic() - interval)
            server = rng.choice(servers)
            tool, make_args, expect = rng.choice(CALLS)
            body = json.dumps(make_args(i))
            started = time.monotonic()
            key = "error"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                conn.request(
                    "POST",
                    f"/{server}/{tool}",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                data = resp.read()
                key = str(resp.status)
                if resp.status == 200 and expect is not None:
                    got = json.loads(data)
                    if got != expect(i):
                        key = "wrong-result"
                        with lock:
                            if len(unexpected) < 20:
                                unexpected.append(f"{server}/{tool}: {got!r} != {expect(i)!r}")
                elif resp.status not in (200, 502, 503, 504):
                    with lock:
                        if len(unexpected) < 20:
                            unexpected.append(f"{server}/{tool}: {resp.status} {data[:300]!r}")
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                with lock:
                    if len(unexpected) < 20:
                        unexpected.append(f"{server}/{tool}: no answer: {e!r}")
            elapsed = (time.monotonic() - started) * 1000.0
            with lock:
                by_status[key] = by_status.get(key, 0) + 1
                latencies.append(elapsed)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n + 1,), daemon=True) for n in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        # Bounded: a worker is at most one request timeout past the deadline.
        t.join(timeout=max(0.0, deadline - time.monotonic()) + args.timeout + 5)

    with lock:
        lat = sorted(latencies)
        sent = len(lat)

        def pct(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else 0.0

        summary = {
            "sent": sent,
            "ok": by_status.get("200", 0),
            "by_status": dict(sorted(by_status.items())),
            "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": round(lat[-1], 1) if lat else 0.0},
            "unexpected": unexpected,
        }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
