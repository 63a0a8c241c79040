//! Cold start: spawn a bridge, then call every `--call URL JSON` in turn, each retried every
//! 5 ms until it answers 200. Reports the time from spawn to the first and to the last OK
//! answer, then (after `--settle` seconds) the bridge's idle RSS, its own process only, from
//! `/proc/<pid>/status`. Finally stops the bridge (SIGTERM, then SIGKILL after 5 s) and every
//! process it started (found through /proc before stopping it).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Flags;

pub fn run(args: Vec<String>) -> Result<(), String> {
    let flags = Flags::parse(args, &["call"])?;
    let timeout = Duration::from_secs_f64(flags.num(&["timeout"], 60.0)?);
    let settle = Duration::from_secs_f64(flags.num(&["settle"], 2.0)?);
    let calls: Vec<(String, String)> = flags
        .all("call")
        .map(|v| {
            let (url, body) = v.split_once('\n').unwrap_or((v, "{}"));
            (url.to_owned(), body.to_owned())
        })
        .collect();
    if calls.is_empty() || flags.command.is_empty() {
        return Err("need at least one --call URL JSON and a command after --".into());
    }
    let log = match flags.get(&["log"]) {
        Some(path) => Stdio::from(std::fs::File::create(path).map_err(|e| format!("{path}: {e}"))?),
        None => Stdio::null(),
    };
    let log2 = match flags.get(&["log"]) {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| format!("{path}: {e}"))?,
        ),
        None => Stdio::null(),
    };

    let started = Instant::now();
    let mut child = Command::new(&flags.command[0])
        .args(&flags.command[1..])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", flags.command))?;
    let pid = child.id() as i32;
    if let Ok(path) = std::env::var("BENCH_PIDFILE") {
        let _ = std::fs::write(path, format!("{pid}\n"));
    }

    let mut first_ok_ms = None;
    let mut failure = None;
    'calls: for (url, body) in &calls {
        loop {
            if started.elapsed() > timeout {
                failure = Some(format!("no 200 from {url} within {timeout:?}"));
                break 'calls;
            }
            if let Ok(Some(status)) = child.try_wait() {
                failure = Some(format!("the bridge exited ({status}) before answering"));
                break 'calls;
            }
            if post(url, body) == Some(200) {
                first_ok_ms.get_or_insert(started.elapsed().as_secs_f64() * 1e3);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let all_ok_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut mem = [None; 4];
    if failure.is_none() {
        std::thread::sleep(settle);
        mem = memory(pid);
    }
    let descendants = descendants(pid);
    stop(&mut child, pid, &descendants);
    println!(
        "{}",
        serde_json::json!({
            "ok": failure.is_none(),
            "error": failure,
            "servers": calls.len(),
            "first_ok_ms": first_ok_ms,
            "all_ok_ms": failure.is_none().then_some(all_ok_ms),
            "rss_idle_kib": mem[0],
            "rss_hwm_kib": mem[1],
            "rss_anon_kib": mem[2],
            "rss_file_kib": mem[3],
            "children": descendants.len(),
        })
    );
    Ok(())
}

/// One HTTP/1.1 POST with `Connection: close`; the status code, or `None` on any failure.
fn post(url: &str, body: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let head = std::str::from_utf8(&response[..response.len().min(64)]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// `VmRSS`, `VmHWM`, `RssAnon` and `RssFile` of one process, in KiB.
pub fn memory(pid: i32) -> [Option<u64>; 4] {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return [None; 4];
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    [field("VmRSS:"), field("VmHWM:"), field("RssAnon:"), field("RssFile:")]
}

/// Every live process below `root`, from the parent links in /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

fn stop(child: &mut std::process::Child, pid: i32, descendants: &[i32]) {
    // SAFETY: plain kill(2) on pids we started (or that our child started).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
    }
    // Children get a moment to exit on their own (stdin closed), then are killed.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && descendants.iter().any(|&d| alive(d)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &d in descendants {
        if alive(d) {
            unsafe { libc::kill(d, libc::SIGKILL) };
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has no memory lines left; treat it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
        .unwrap_or(false)
}
