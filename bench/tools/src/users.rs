//! Many users: N distinct Open WebUI users each call one route of a multi-user server once
//! (their first call, which starts their upstream session), C at a time, then once more (warm).
//! Reports the bridge's RSS before, after the first calls and, with `--idle-wait`, that many
//! seconds after the last call (long enough for the idle timeout to close every session), plus first-call and
//! warm-call latencies. The bridge's own process only (`/proc/<pid>/status`), never its children.
//!
//! Tokens are minted as Open WebUI 0.12 mints a login session JWT (PyJWT, HS256 over the UTF-8
//! bytes of `WEBUI_SECRET_KEY`, header `{"alg":"HS256","typ":"JWT"}`, claims
//! `id`/`exp`/`iat`/`jti`/`typ`), like `tests/it/multi_user.rs`; HMAC-SHA256 is written out here
//! on `sha2` so the bench needs no JWT crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::Flags;
use crate::coldstart::memory;

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &[])?;
    let url = flags.get(&["url"]).ok_or("--url URL is needed")?.to_owned();
    let body = flags.get(&["body"]).unwrap_or("{}").to_owned();
    let secret = flags.get(&["secret"]).ok_or("--secret is needed")?.to_owned();
    let users: usize = flags.num(&["users", "n"], 100)?;
    let concurrency: usize = flags.num(&["c"], 16)?;
    let pid: i32 = flags.num(&["pid"], 0)?;
    let settle = Duration::from_secs_f64(flags.num(&["settle"], 1.0)?);
    let idle_wait = Duration::from_secs_f64(flags.num(&["idle-wait"], 0.0)?);
    let tag = flags.get(&["tag"]).unwrap_or("u").to_owned();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(concurrency)
                .timeout(Duration::from_secs(120))
                .build()
                .map_err(|e| e.to_string())?;
            let tokens: Arc<Vec<String>> = Arc::new(
                (0..users)
                    .map(|i| mint(&secret, &format!("{tag}-{i}-{}", nonce())))
                    .collect(),
            );
            let rss_start = memory(pid);
            let first = calls(&client, &url, &body, &tokens, concurrency).await;
            tokio::time::sleep(settle).await;
            let rss_users = memory(pid);
            let warm = calls(&client, &url, &body, &tokens, concurrency).await;
            let rss_warm = memory(pid);
            let mut rss_idle = [None; 4];
            if !idle_wait.is_zero() {
                tokio::time::sleep(idle_wait).await;
                rss_idle = memory(pid);
            }
            let per_user = match (rss_start[0], rss_users[0]) {
                (Some(a), Some(b)) if users > 0 => Some((b as f64 - a as f64) / users as f64),
                _ => None,
            };
            println!(
                "{}",
                serde_json::json!({
                    "users": users,
                    "c": concurrency,
                    "first_ok": first.ok,
                    "first_failed": first.failed,
                    "first_errors": first.errors,
                    "first_seconds": first.seconds,
                    "first_p50_ms": crate::percentile_ms(&first.sorted_us, 50.0),
                    "first_p99_ms": crate::percentile_ms(&first.sorted_us, 99.0),
                    "warm_ok": warm.ok,
                    "warm_p50_ms": crate::percentile_ms(&warm.sorted_us, 50.0),
                    "warm_p99_ms": crate::percentile_ms(&warm.sorted_us, 99.0),
                    "rss_start_kib": rss_start[0],
                    "rss_users_kib": rss_users[0],
                    "rss_warm_kib": rss_warm[0],
                    "rss_anon_users_kib": rss_users[2],
                    "rss_idle_kib": rss_idle[0],
                    "rss_hwm_kib": memory(pid)[1],
                    "kib_per_user": per_user,
                })
            );
            Ok(())
        })
}

struct Outcome {
    ok: usize,
    failed: usize,
    /// The first few failures' status and body.
    errors: Vec<String>,
    seconds: f64,
    sorted_us: Vec<u32>,
}

/// One call per token, `concurrency` at a time; each call's latency in µs.
async fn calls(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    tokens: &Arc<Vec<String>>,
    concurrency: usize,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, body, tokens, next) = (
            client.clone(),
            url.to_owned(),
            body.to_owned(),
            tokens.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut out = (Vec::new(), 0usize, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else { break };
                let t0 = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {token}"))
                    .body(body.clone())
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        out.0.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    Ok(r) => {
                        out.1 += 1;
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        if out.2.len() < 3 {
                            out.2.push(format!("{status}: {}", &text[..text.len().min(300)]));
                        }
                    }
                    Err(e) => {
                        out.1 += 1;
                        if out.2.len() < 3 {
                            out.2.push(e.to_string());
                        }
                    }
                }
            }
            out
        }));
    }
    let (mut sorted_us, mut failed, mut errors) = (Vec::new(), 0, Vec::new());
    for w in workers {
        if let Ok((lat, f, e)) = w.await {
            sorted_us.extend(lat);
            failed += f;
            errors.extend(e);
        }
    }
    sorted_us.sort_unstable();
    errors.truncate(3);
    Outcome {
        ok: sorted_us.len(),
        failed,
        errors,
        seconds: started.elapsed().as_secs_f64(),
        sorted_us,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 16 random hex digits (the OS-seeded `RandomState`), for user ids and `jti`s.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// An Open WebUI session JWT for `user`, HS256 with `secret`.
pub fn mint(secret: &str, user: &str) -> String {
    let t = now();
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "id": user, "exp": t + 3600, "iat": t, "jti": format!("{}{}", nonce(), nonce()), "typ": "session"
    });
    let payload = b64url(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let signature = b64url(&hmac_sha256(secret.as_bytes(), signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// RFC 2104 HMAC with SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= block[i];
        opad[i] ^= block[i];
    }
    let inner = Sha256::new().chain_update(ipad).chain_update(message).finalize();
    Sha256::new().chain_update(opad).chain_update(inner).finalize().into()
}

/// Base64url without padding.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = super::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn b64url_without_padding() {
        assert_eq!(super::b64url(b"f"), "Zg");
        assert_eq!(super::b64url(b"fo"), "Zm8");
        assert_eq!(super::b64url(b"foo"), "Zm9v");
        assert_eq!(super::b64url(&[0xfb, 0xff]), "-_8");
    }
}
