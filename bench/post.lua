-- wrk script: POST $BODY as JSON to the URL given on the command line (or GET it with
-- METHOD=GET); at the end print one JSON line (latencies in microseconds, wrk's own histogram)
-- for bench/run.sh to collect.
wrk.method = os.getenv("METHOD") or "POST"
if wrk.method == "POST" then
  wrk.body = os.getenv("BODY") or "{}"
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
