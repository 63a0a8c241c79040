"""One large-result call of `bench/run.sh results`: is the answer the tool's payload, byte for
byte (as mcpo maps it: text as a JSON string, an image as a data: URL, structured content as
is)? Prints one JSON line with the figures.

    results_check.py TOOL ARGS_JSON OUT_FILE STATUS SECONDS BYTES RSS_BEFORE_KIB HWM_KIB
"""

import json
import sys

tool, args, path, status, seconds, size, before, hwm = sys.argv[1:9]
args = json.loads(args)
status, seconds, size, before, hwm = int(status), float(seconds), int(size), int(before), int(hwm)


def filler(n):  # the fixture's big_text
    line = "The quick brown fox jumps over the lazy dog; 0123456789.\n"
    return (line * (n // len(line) + 1))[:n]


payload = None
equal = None
if tool == "big_text":
    payload = args["bytes"]
    expected = filler(payload)
elif tool == "big_image":
    data = ("iVBORw0KGgo" * (args["bytes"] // 11 + 1))[: args["bytes"] // 4 * 4]
    payload = len(data)
    expected = "data:image/png;base64," + data
elif tool == "big_structured":
    items = [{"id": i, "name": f"item {i}", "ok": i % 2 == 0, "score": i / 7.0} for i in range(args["items"])]
    expected = {"items": items}
    payload = len(json.dumps(expected, separators=(",", ":")))
if status == 200:
    with open(path, "rb") as f:
        got = json.loads(f.read())
    equal = got == expected
growth = max(hwm - before, 0) * 1024
print(json.dumps({
    "status": status, "seconds": seconds, "answer_bytes": size, "payload_bytes": payload, "equal": equal,
    "rss_before_kib": before, "hwm_kib": hwm, "peak_growth_bytes": growth,
    "growth_x_payload": round(growth / payload, 2) if payload else None,
    "mb_per_s": round(payload / seconds / 1e6, 1) if status == 200 and seconds > 0 else None,
}))
