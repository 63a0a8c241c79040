//! The "no bridge" limit: an rmcp client (the same rmcp as mcpo) spawns the upstream over
//! stdio (`-- CMD ARGS`) or connects over streamable HTTP (`--url URL`, configured as mcpo
//! configures it), initializes one session, and runs `concurrency` tasks that each call the tool
//! in a loop on that shared session (JSON-RPC multiplexing, as mcpo does). Calls finished during
//! the warm-up are not counted; the rest give calls/s and latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::transport::TokioChildProcess;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};

use crate::{Flags, percentile_ms};

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let concurrency: usize = flags.num(&["c", "concurrency"], 1)?;
    let seconds: f64 = flags.num(&["s", "seconds"], 5.0)?;
    let warmup: f64 = flags.num(&["w", "warmup"], 1.0)?;
    let tool = flags.get(&["tool"]).unwrap_or("echo").to_owned();
    let arguments: JsonObject = serde_json::from_str(flags.get(&["args"]).unwrap_or(r#"{"message":"hello"}"#))
        .map_err(|e| format!("--args must be a JSON object: {e}"))?;
    let url = flags.get(&["url"]).map(str::to_owned);
    if flags.command.is_empty() && url.is_none() {
        return Err("need --url URL or an upstream command after --".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(measure(url, flags.command, concurrency.max(1), seconds, warmup, tool, arguments))
}

async fn measure(
    url: Option<String>,
    command: Vec<String>,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    tool: String,
    arguments: JsonObject,
) -> Result<(), String> {
    let client = match url {
        Some(url) => {
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).max_concurrent_requests(256);
            let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
            ().serve(transport).await
        }
        None => {
            let mut cmd = tokio::process::Command::new(&command[0]);
            cmd.args(&command[1..]).stderr(std::process::Stdio::null());
            let transport =
                TokioChildProcess::new(cmd).map_err(|e| format!("cannot start {command:?}: {e}"))?;
            ().serve(transport).await
        }
    }
    .map_err(|e| format!("initialize failed: {e}"))?;
    let peer = client.peer().clone();
    // One call first, so a broken setup fails loudly instead of measuring errors.
    let mut params = CallToolRequestParams::new(tool.clone());
    params.arguments = Some(arguments.clone());
    peer.call_tool_once(params)
        .await
        .map_err(|e| format!("first call failed: {e}"))?;

    let start = Instant::now();
    let counted_from = start + Duration::from_secs_f64(warmup);
    let deadline = counted_from + Duration::from_secs_f64(seconds);
    let tool: Arc<str> = tool.into();
    let arguments = Arc::new(arguments);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let peer = peer.clone();
        let tool = tool.clone();
        let arguments = arguments.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let mut params = CallToolRequestParams::new(tool.to_string());
                params.arguments = Some((*arguments).clone());
                let ok = matches!(peer.call_tool_once(params).await, Ok(_));
                let t1 = Instant::now();
                if t0 >= counted_from && t1 <= deadline {
                    if ok {
                        samples.push((t1 - t0).as_micros().min(u128::from(u32::MAX)) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (s, e) = t.await.map_err(|e| e.to_string())?;
        samples.extend(s);
        errors += e;
    }
    samples.sort_unstable();
    let calls = samples.len() as u64;
    println!(
        "{}",
        serde_json::json!({
            "calls": calls,
            "errors": errors,
            "seconds": seconds,
            "rps": calls as f64 / seconds,
            "p50_ms": percentile_ms(&samples, 50.0),
            "p90_ms": percentile_ms(&samples, 90.0),
            "p99_ms": percentile_ms(&samples, 99.0),
        })
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    Ok(())
}

/// `mcpo-bench startup -n N -- CMD ARGS`: the cold-start floor without a bridge. Spawns N
/// copies of the upstream at once, each initialized by an rmcp client and called once (`--tool`,
/// `--args`); prints the time until every one has answered, then closes them.
pub fn startup(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let n: usize = flags.num(&["n"], 1)?;
    let tool = flags.get(&["tool"]).unwrap_or("echo").to_owned();
    let arguments: JsonObject = serde_json::from_str(flags.get(&["args"]).unwrap_or(r#"{"message":"hello"}"#))
        .map_err(|e| format!("--args must be a JSON object: {e}"))?;
    if flags.command.is_empty() {
        return Err("missing upstream command after --".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..n.max(1) {
            let command = flags.command.clone();
            let tool = tool.clone();
            let arguments = arguments.clone();
            tasks.push(tokio::spawn(async move {
                let mut cmd = tokio::process::Command::new(&command[0]);
                cmd.args(&command[1..]).stderr(std::process::Stdio::null());
                let transport = TokioChildProcess::new(cmd).map_err(|e| e.to_string())?;
                let client = ().serve(transport).await.map_err(|e| e.to_string())?;
                let mut params = CallToolRequestParams::new(tool);
                params.arguments = Some(arguments);
                client.peer().call_tool_once(params).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(client)
            }));
        }
        let mut clients = Vec::new();
        for t in tasks {
            clients.push(t.await.map_err(|e| e.to_string())??);
        }
        let all_ok_ms = started.elapsed().as_secs_f64() * 1e3;
        println!("{}", serde_json::json!({"servers": n, "all_ok_ms": all_ok_ms}));
        for c in clients {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.cancel()).await;
        }
        Ok(())
    })
}
