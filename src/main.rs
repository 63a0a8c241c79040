//! `mcpo`: parse flags, apply env flags, start logging, run the daemon.

mod logging;

use std::process::ExitCode;

use mcpo::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a tool call allocates ~170 times, and the runtime's
/// worker threads free each other's blocks; glibc serialises those frees on its arena locks
/// (about a fifth of mcpo's cycles at 64 clients in `perf`). With mimalloc a call costs ~30% less
/// CPU (wrk -c64 on the bench echo server: 37-45 against 56-61 us per call, 31-38k against
/// 23-25k calls/s). Built with `no_thp`: mimalloc otherwise asks for transparent huge pages
/// for its arenas, and an idle daemon then holds 17 MiB of mostly empty 2 MiB pages instead
/// of ~4 MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any secret is read: no core dumps, and no other process of mcpo's user (a stdio
    // server among them) may read this one's memory or /proc/PID/environ.
    #[cfg(target_os = "linux")]
    forbid_dumping();
    // One TLS backend for reqwest (upstreams, OAuth) and axum-server (--ssl-*): ring, installed
    // before anything builds a client or a server config.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cli = Cli::parse_and_check();
    if let Some(action) = &cli.action {
        // SAFETY: still single-threaded (see below).
        if let Err(code) = install_store_key(&cli, unsafe { mcpo::store::key::take_env() }) {
            return code;
        }
        // Read into `--store` by clap; `mcpo tools` and `mcpo auth` start stdio servers.
        // SAFETY: still single-threaded.
        unsafe { std::env::remove_var(mcpo::store::location::STORE_ENV) };
        if store_password_on_command_line() {
            eprintln!("mcpo: warning: {STORE_PASSWORD_WARNING}");
        }
        let _flush = init_logging("warn", LogFormat::Text, false, false);
        return mcpo::commands::run(&cli, action);
    }
    // `--env`/`--env-path` change mcpo's own environment, which `${VAR}` expansion reads and
    // stdio servers get part of; it must happen before any thread (the runtime) exists.
    // SAFETY: nothing has spawned a thread yet (no runtime, no logging workers).
    match unsafe { mcpo::config::apply_env_flags(&cli) } {
        Ok(names) => mcpo::upstream::child_env::pass_also(names),
        Err(e) => {
            eprintln!("mcpo: {e}");
            return ExitCode::from(2);
        }
    }
    // mcpo's own secrets: read (flags, variables, files), then gone from the environment.
    if let Err(e) = mcpo::config::secrets::resolve(&mut cli, &|name| std::env::var(name).ok()) {
        eprintln!("mcpo: invalid configuration:\n{e}");
        return ExitCode::from(2);
    }
    let secret_flags = secret_flags_on_command_line();
    // SAFETY: still single-threaded.
    unsafe { mcpo::config::secrets::remove_from_env() };
    // After `--env-path`, which may set it; removed so no stdio server inherits it.
    // SAFETY: nothing has spawned a thread yet (no runtime, no logging workers).
    if let Err(code) = install_store_key(&cli, unsafe { mcpo::store::key::take_env() }) {
        return code;
    }
    // Dropped last (declared before everything that may log): flushes the log queue at exit.
    let _flush = init_logging(
        cli.log_level.as_directive(),
        cli.log_format,
        true,
        cli.log_payloads,
    );
    let (config, options, warnings) = match mcpo::config::from_cli(&cli) {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!(
                "mcpo: invalid configuration:\n{}",
                mcpo::redact_urls(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    for flag in secret_flags {
        tracing::warn!(
            "{flag} on the command line can be read by every local user (ps, /proc/PID/cmdline); \
             give it through its environment variable or its {flag}-file instead"
        );
    }
    if store_password_on_command_line() {
        tracing::warn!("{STORE_PASSWORD_WARNING}");
    }
    let runtime = match mcpo::commands::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(mcpo::app::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mcpo: {}", mcpo::redact_urls(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Makes the process non-dumpable (`PR_SET_DUMPABLE` 0): no core file with the secrets in
/// it, and `/proc/PID/environ`, `mem` and friends become root's, so a stdio server running as
/// mcpo's user cannot read them or attach to mcpo. Children are dumpable again after `exec`.
#[cfg(target_os = "linux")]
fn forbid_dumping() {
    // SAFETY: PR_SET_DUMPABLE takes integer arguments and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        eprintln!(
            "mcpo: warning: cannot make the process non-dumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The secret flags given with a value on the command line (before `--`), which every local
/// user can read in `/proc/PID/cmdline`.
fn secret_flags_on_command_line() -> Vec<&'static str> {
    let mut found = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        for flag in ["--api-key", "--webui-secret-key", "--webui-user-jwt-secret"] {
            let given = arg == flag || arg.strip_prefix(flag).is_some_and(|r| r.starts_with('='));
            if given && !found.contains(&flag) {
                found.push(flag);
            }
        }
        if arg.starts_with("-k") && !found.contains(&"--api-key") {
            found.push("--api-key");
        }
    }
    found
}

const STORE_PASSWORD_WARNING: &str = "the store URL on the command line carries a password, \
    which every local user can read (ps, /proc/PID/cmdline); give it through MCPO_STORE instead";

/// Whether a store URL on the command line (before `--`: `--store`, or `mcpo store
/// migrate`'s `--from`/`--to`) holds a password.
fn store_password_on_command_line() -> bool {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        for flag in ["--store", "--from", "--to"] {
            let value = match arg.strip_prefix(flag) {
                Some("") => args.next().and_then(|v| v.to_str().map(str::to_owned)),
                Some(rest) => rest.strip_prefix('=').map(str::to_owned),
                None => None,
            };
            if value.is_some_and(|v| mcpo::store::location::has_password(&v)) {
                return true;
            }
        }
    }
    false
}

/// The store key of every token store: `MCPO_STORE_KEY` (`env`), else `--store-key-file`.
fn install_store_key(cli: &Cli, env: Option<String>) -> Result<(), ExitCode> {
    mcpo::store::key::install(env, cli.store_key_file.clone()).map_err(|e| {
        eprintln!("mcpo: {e}");
        ExitCode::from(2)
    })
}

/// `RUST_LOG` wins; otherwise `--log-level`.
/// rmcp logs every session's full `initialize` exchange at info; keep it to warnings unless
/// the user asked for debug output. Its lines that carry whole messages stay off unless
/// `payloads` (`--log-payloads`), whatever the level (`logging::PayloadFilter`). The daemon logs
/// through a writer thread (`logging`), so a request never waits for stderr; the subcommands
/// write directly. Every text line's fields go through `logging::PlainFields` (control
/// characters escaped in every value), and every line of any format through
/// `logging::clean_line` (URLs redacted).
fn init_logging(
    level: &str,
    format: LogFormat,
    background: bool,
    payloads: bool,
) -> Option<logging::FlushGuard> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let directives = match level {
        "debug" | "trace" => level.to_owned(),
        _ => format!("{level},rmcp=warn"),
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&directives))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let payloads = logging::PayloadFilter { payloads };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // With stderr closed (its reader gone), reporting the failed write would panic in
        // whatever task logged; losing log lines is better than losing the daemon.
        .log_internal_errors(false)
        .with_ansi(ansi);
    let queue = if background { logging::stderr() } else { None };
    // Without colours (stderr is a pipe or a file: where the per-call lines pile up) the
    // direct plain format writes the same text as the stock one, at a quarter of the cost.
    match (queue, format) {
        (Some((writer, guard)), LogFormat::Text) if !ansi => {
            builder
                .fmt_fields(logging::PlainFields)
                .event_format(logging::PlainFormat)
                .with_writer(writer)
                .finish()
                .with(payloads)
                .init();
            Some(guard)
        }
        (Some((writer, guard)), LogFormat::Text) => {
            builder
                .fmt_fields(logging::PlainFields)
                .with_writer(writer)
                .finish()
                .with(payloads)
                .init();
            Some(guard)
        }
        (Some((writer, guard)), LogFormat::Json) => {
            builder
                .with_writer(writer)
                .with_timer(logging::Timestamp)
                .json()
                .flatten_event(true)
                .finish()
                .with(payloads)
                .init();
            Some(guard)
        }
        (None, LogFormat::Text) => {
            builder
                .fmt_fields(logging::PlainFields)
                .with_writer(logging::DirectStderr)
                .finish()
                .with(payloads)
                .init();
            None
        }
        (None, LogFormat::Json) => {
            builder
                .with_writer(logging::DirectStderr)
                .json()
                .flatten_event(true)
                .finish()
                .with(payloads)
                .init();
            None
        }
    }
}
