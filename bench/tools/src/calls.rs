//! Calls under load with callers of one's choosing: `c` concurrent clients, client `i` sending
//! `POST <url>` with `Authorization: Bearer <bearer>` of the `i mod n`-th `--target URL BEARER`
//! pair, one call after the other, for a warm-up (not counted) and then `-s` seconds. Reports
//! calls/s and latency percentiles overall and per URL (a replica), counting 2xx answers only.
//! `mint` prints Open WebUI session JWTs for the callers (as `users` mints them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::{Flags, percentile_ms};

/// `mcpo-bench mint --secret S -- USER...`: one JWT per line, in the order of the users.
pub fn mint(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let secret = flags.get(&["secret"]).ok_or("--secret is needed")?;
    for user in &flags.command {
        println!("{}", crate::users::mint(secret, user));
    }
    Ok(())
}

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &["target"])?;
    let targets: Vec<(String, String)> = flags
        .all("target")
        .map(|t| {
            let (url, bearer) = t.split_once('\n').unwrap_or((t, ""));
            (url.to_owned(), bearer.to_owned())
        })
        .collect();
    if targets.is_empty() {
        return Err("at least one --target URL BEARER is needed".into());
    }
    let concurrency: usize = flags.num(&["c"], 64)?;
    let seconds: f64 = flags.num(&["s", "seconds"], 5.0)?;
    let warmup: f64 = flags.num(&["w", "warmup"], 1.0)?;
    let threads: usize = flags.num(&["t", "threads"], 2)?;
    let body = flags.get(&["body"]).unwrap_or("{}").to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(load(targets, concurrency.max(1), seconds, warmup, body))
}

#[derive(Default)]
struct Tally {
    /// Every answered call, warm-up included (for per-call ratios of counters read around
    /// the whole run).
    answered: usize,
    latencies_us: Vec<u32>,
    failed: usize,
    errors: Vec<String>,
}

async fn load(
    targets: Vec<(String, String)>,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    body: String,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let counted_from = start + Duration::from_secs_f64(warmup);
    let until = counted_from + Duration::from_secs_f64(seconds);
    let mut workers = Vec::new();
    for i in 0..concurrency {
        let (url, bearer) = targets[i % targets.len()].clone();
        let (client, body) = (client.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let auth = format!("Bearer {bearer}");
            let mut tally = Tally::default();
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", &auth)
                    .body(body.clone())
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(r) if r.status().is_success() => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        Err(format!("{status}: {}", &text[..text.len().min(300)]))
                    }
                    Err(e) => Err(e.to_string()),
                };
                let t1 = Instant::now();
                tally.answered += 1;
                if t1 < counted_from || t1 > until {
                    continue;
                }
                match outcome {
                    Ok(()) => tally.latencies_us.push((t1 - t0).as_micros().min(u32::MAX as u128) as u32),
                    Err(e) => {
                        tally.failed += 1;
                        if tally.errors.len() < 3 {
                            tally.errors.push(e);
                        }
                    }
                }
            }
            (url, tally)
        }));
    }
    let mut per_url: BTreeMap<String, Tally> = BTreeMap::new();
    for w in workers {
        let (url, tally) = w.await.map_err(|e| e.to_string())?;
        let t = per_url.entry(url).or_default();
        t.latencies_us.extend(tally.latencies_us);
        t.answered += tally.answered;
        t.failed += tally.failed;
        t.errors.extend(tally.errors);
    }
    let summary = |t: &mut Tally| {
        t.latencies_us.sort_unstable();
        t.errors.truncate(3);
        serde_json::json!({
            "ok": t.latencies_us.len(),
            "answered_with_warmup": t.answered,
            "failed": t.failed,
            "errors": t.errors,
            "rps": t.latencies_us.len() as f64 / seconds,
            "p50_ms": percentile_ms(&t.latencies_us, 50.0),
            "p99_ms": percentile_ms(&t.latencies_us, 99.0),
        })
    };
    let mut all = Tally::default();
    let mut urls = serde_json::Map::new();
    for (url, t) in per_url.iter_mut() {
        urls.insert(url.clone(), summary(t));
        all.latencies_us.extend(&t.latencies_us);
        all.answered += t.answered;
        all.failed += t.failed;
        all.errors.extend(t.errors.iter().cloned());
    }
    let mut total = summary(&mut all);
    total["c"] = concurrency.into();
    total["seconds"] = seconds.into();
    total["targets"] = targets.len().into();
    total["per_url"] = urls.into();
    println!("{total}");
    Ok(())
}
