//! `mcpo-bench`: the helpers `bench/run.sh` needs, in one binary (one build, one link).
//!
//! ```text
//! mcpo-bench echo                       # minimal MCP server over stdio (hand-written JSON-RPC)
//! mcpo-bench echo-http --port P         # the same over streamable HTTP (JSON responses)
//! mcpo-bench direct -c N -s SECS [-w SECS] [--tool T --args JSON] -- CMD ARGS...
//!                                       # rmcp client, one session, N concurrent call_tool loops
//! mcpo-bench startup -n N -- CMD ARGS   # N upstreams spawned at once by rmcp clients: time
//!                                       # until each answered one call (cold-start floor)
//! mcpo-bench hello --port P             # bare axum handler: POST /{a}/{b} -> "hello"
//! mcpo-bench coldstart --timeout SECS --settle SECS --log FILE
//!            --call URL JSON [--call URL JSON ...] -- CMD ARGS...
//!                                       # start a bridge, time until every call answered 200,
//!                                       # read its idle RSS, stop it and everything it started
//! mcpo-bench users --url URL --secret S --users N -c C --pid PID [--body JSON] [--idle-wait SECS]
//!                                       # N Open WebUI users' first calls to a multi-user
//!                                       # server, C at a time: the bridge's RSS per user
//! mcpo-bench mint --secret S -- USER...  # Open WebUI session JWTs, one per line
//! mcpo-bench calls -c C -s SECS [-w SECS] [--body JSON] --target URL BEARER [--target ...]
//!                                       # C clients, client i calling the (i mod n)-th
//!                                       # target's URL as its bearer: calls/s, p50/p99,
//!                                       # overall and per URL
//! ```
//!
//! Every mode prints its result as one JSON line on stdout (except `echo`, whose stdout is the
//! protocol, and `hello`, which prints `LISTENING` once bound).

mod calls;
mod coldstart;
mod direct;
mod echo;
mod echo_http;
mod hello;
mod users;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: mcpo-bench echo | echo-http | direct | startup | hello | coldstart | users | mint | calls (see src/main.rs)");
        return ExitCode::from(2);
    }
    let mode = args.remove(0);
    let outcome = match mode.as_str() {
        "echo" => echo::run().map_err(|e| e.to_string()),
        "echo-http" => echo_http::run(args),
        "direct" => direct::run(args),
        "startup" => direct::startup(args),
        "hello" => hello::run(args),
        "coldstart" => coldstart::run(args),
        "users" => users::run(args),
        "mint" => calls::mint(args),
        "calls" => calls::run(args),
        other => Err(format!("unknown mode: {other}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpo-bench {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tiny flag parser: `--name value` pairs before `--`, the command after it.
pub struct Flags {
    pairs: Vec<(String, String)>,
    pub command: Vec<String>,
}

impl Flags {
    pub fn parse(args: Vec<String>, multi: &[&str]) -> Result<Self, String> {
        let mut pairs = Vec::new();
        let mut it = args.into_iter();
        let mut command = Vec::new();
        while let Some(a) = it.next() {
            if a == "--" {
                command = it.collect();
                break;
            }
            let name = a
                .strip_prefix("--")
                .or_else(|| a.strip_prefix('-'))
                .ok_or_else(|| format!("unexpected argument {a:?}"))?
                .to_owned();
            // `--call URL JSON` takes two values.
            if multi.contains(&name.as_str()) {
                let a = it.next().ok_or(format!("--{name} needs two values"))?;
                let b = it.next().ok_or(format!("--{name} needs two values"))?;
                pairs.push((name, format!("{a}\n{b}")));
            } else {
                let v = it.next().ok_or(format!("--{name} needs a value"))?;
                pairs.push((name, v));
            }
        }
        Ok(Self { pairs, command })
    }

    pub fn get(&self, names: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn num<T: std::str::FromStr>(&self, names: &[&str], default: T) -> Result<T, String> {
        match self.get(names) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value for --{}: {v}", names[0])),
        }
    }
}

/// Percentile (0..=100) of sorted microsecond samples, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted_us.len() as f64 - 1.0)).round() as usize;
    f64::from(sorted_us[rank.min(sorted_us.len() - 1)]) / 1000.0
}
