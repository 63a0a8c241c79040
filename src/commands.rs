//! `mcpo validate`, `mcpo tools`, `mcpo auth`, `mcpo store`, `mcpo completions`, `mcpo man`:
//! operator tools that run
//! instead of the daemon.

use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::{Action, AuthOp, Cli, StoreOp};
use crate::config::{self, ServerConfig};
use crate::upstream::{Status, Upstream, UpstreamOptions};

/// Runs `action`; the exit code is for scripts (0 fine, 1 a server failed, 2 bad config).
pub fn run(cli: &Cli, action: &Action) -> ExitCode {
    match action {
        Action::Validate { config } => validate(config, cli),
        Action::Tools { config, server } => tools(config, server.as_deref()),
        Action::Auth { op } => auth(op),
        Action::Store { op } => store(op),
        Action::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "mcpo", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Action::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("mcpo: cannot write the man page: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The multi-threaded tokio runtime, or the exit code to end with (after saying why).
///
/// Its workers are half the cores (see [`default_workers`]) unless `TOKIO_WORKER_THREADS`
/// says otherwise.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        builder.worker_threads(default_workers(cores));
    }
    builder.enable_all().build().map_err(|e| {
        eprintln!("mcpo: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Half the cores, at least one. mcpo shares the machine with the stdio servers it starts,
/// which do the real work of a call (a Python SDK server burns ~2 ms of CPU per call, mcpo
/// ~30 µs): every worker more is another thread that wakes for each call and takes a core
/// from them. Measured on 2 cores (`bench/README.md`): one worker instead of two served a
/// Python SDK server 12% more calls/s at one client with half mcpo's CPU per call, and
/// cost 2-5% of the calls/s at 64 clients in front of the fast echo server, where mcpo
/// alone still fills a core (~46k calls/s).
fn default_workers(cores: usize) -> usize {
    (cores / 2).max(1)
}

/// `path` checked as the daemon would check it with this `--public-url` (flag or
/// `MCPO_PUBLIC_URL`) and `--store`: a config that passes starts.
fn validate(path: &std::path::Path, cli: &Cli) -> ExitCode {
    let loaded = config::load_file(path).and_then(|(cfg, warnings)| {
        let mut problems = config::public_url_problems(cli.public_url.as_deref(), &cfg);
        if let Err((flag, why)) = config::store_location(cli) {
            problems.push(config::Problem::new(
                config::COMMAND_LINE,
                None,
                Some(flag),
                why,
            ));
        }
        if problems.is_empty() {
            Ok((cfg, warnings))
        } else {
            Err(config::ConfigError::Invalid { problems })
        }
    });
    match loaded {
        Ok((cfg, warnings)) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: OK ({} server{}{})",
                path.display(),
                cfg.servers.len(),
                if cfg.servers.len() == 1 { "" } else { "s" },
                if warnings.is_empty() {
                    String::new()
                } else {
                    format!(", {} warning(s)", warnings.len())
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn tools(path: &std::path::Path, only: Option<&str>) -> ExitCode {
    let (cfg, warnings) = match config::load_file(path) {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let servers: Vec<ServerConfig> = cfg
        .servers
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        .collect();
    if servers.is_empty() {
        eprintln!(
            "{}: no server named '{}'",
            path.display(),
            only.unwrap_or_default()
        );
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let options = UpstreamOptions::default();
        let upstreams: Vec<Upstream> = servers
            .into_iter()
            .map(|s| crate::servers::shared_upstream(&s, &options, Default::default()))
            .collect();
        let mut failed = false;
        for up in &upstreams {
            let mut rx = up.subscribe();
            let settled = tokio::time::timeout(
                options.connect_timeout + Duration::from_secs(1),
                rx.wait_for(|s| {
                    matches!(
                        s,
                        Status::Ready(_)
                            | Status::Connecting {
                                failure: Some(_),
                                ..
                            }
                    )
                }),
            )
            .await;
            let status = match settled {
                Ok(Ok(s)) => s.clone(),
                _ => up.status(),
            };
            match status {
                Status::Ready(session) => {
                    println!("{} ({} tools)", up.name, session.tools.len());
                    for tool in session.tools.iter() {
                        println!("  {}", tool.name);
                        if let Some(d) = &tool.description {
                            let first = d.lines().next().unwrap_or_default();
                            println!("      {first}");
                        }
                        let props = tool
                            .input_schema
                            .get("properties")
                            .and_then(|p| p.as_object());
                        let required: Vec<&str> = tool
                            .input_schema
                            .get("required")
                            .and_then(|r| r.as_array())
                            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                            .unwrap_or_default();
                        for (name, schema) in props.into_iter().flatten() {
                            let ty = schema
                                .get("type")
                                .map(|t| t.to_string().replace('"', ""))
                                .unwrap_or_else(|| "any".into());
                            let req = if required.contains(&name.as_str()) {
                                ", required"
                            } else {
                                ""
                            };
                            println!("      - {name} ({ty}{req})");
                        }
                    }
                }
                Status::Connecting { failure, .. } => {
                    failed = true;
                    let why = failure.map_or_else(|| "timed out".into(), |f| f.to_string());
                    println!("{}: not connected: {why}", up.name);
                }
                Status::Stopped => {
                    failed = true;
                    println!("{}: stopped", up.name);
                }
            }
        }
        futures::future::join_all(upstreams.iter().map(|u| u.shutdown())).await;
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn auth(op: &AuthOp) -> ExitCode {
    let (path, name, login) = match op {
        AuthOp::Login { config, server } => (config, server, true),
        AuthOp::Logout { config, server } => (config, server, false),
    };
    let server = match config::load_file(path) {
        Ok((cfg, _)) => cfg.servers.into_iter().find(|s| &s.name == name),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(server) = server.filter(|s| s.oauth.is_some()) else {
        eprintln!(
            "{}: no server named '{name}' with an \"oauth\" block",
            path.display()
        );
        return ExitCode::from(2);
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let options = crate::oauth::AuthOptions::default();
    let outcome = runtime.block_on(async {
        if login {
            crate::oauth::login(&server, options)
                .await
                .map(|()| format!("{name}: logged in; tokens stored"))
        } else {
            // Revoked first (the server forgets them), then deleted whatever it said.
            let revoked = match crate::oauth::revoke(&server, options.clone()).await {
                Ok(revocation) => revocation,
                Err(e) => crate::oauth::Revocation::Failed(e.to_string()),
            };
            let revoked = match revoked {
                crate::oauth::Revocation::NothingStored => String::new(),
                crate::oauth::Revocation::Unsupported => {
                    "; the authorization server offers no token revocation".to_owned()
                }
                crate::oauth::Revocation::Revoked(_) => {
                    "; revoked at the authorization server".to_owned()
                }
                crate::oauth::Revocation::Failed(why) => {
                    eprintln!("mcpo: {name}: could not revoke the tokens: {why}");
                    "; not revoked at the authorization server".to_owned()
                }
            };
            crate::oauth::logout(&server, options).await.map(|had| {
                if had {
                    format!("{name}: tokens and client registration deleted{revoked}")
                } else {
                    format!("{name}: nothing was stored")
                }
            })
        }
    });
    match outcome {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpo: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mcpo store list|rekey`.
fn store(op: &StoreOp) -> ExitCode {
    use crate::oauth::store_files::{self, Rekeyed};
    let root = match store_files::token_folder() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("mcpo: {e}");
            return ExitCode::from(2);
        }
    };
    match op {
        StoreOp::List { .. } => match store_files::list(&root) {
            Ok(entries) if entries.is_empty() => {
                println!("{}: no stored credentials", root.display());
                ExitCode::SUCCESS
            }
            Ok(entries) => {
                println!("server\tuser\trecord\tstate\tfile");
                for e in entries {
                    // Escaped: the API-key holder's and anonymous callers' names start
                    // with NUL, and nothing stops an id from holding a tab or a newline.
                    let shown = |s: &str| s.escape_debug().to_string();
                    let (server, user, kind) = match &e.owner {
                        Some(o) => (
                            shown(&o.server),
                            o.user.as_deref().map_or_else(|| "-".to_owned(), shown),
                            shown(&o.kind),
                        ),
                        None => ("?".to_owned(), "?".to_owned(), "?".to_owned()),
                    };
                    println!(
                        "{server}\t{user}\t{kind}\t{}\t{}",
                        e.state,
                        e.path.display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mcpo: {e}");
                ExitCode::FAILURE
            }
        },
        StoreOp::Rekey { new_key_file, .. } => {
            let new = match store_files::new_key(new_key_file.as_deref(), &root) {
                Ok(key) => key,
                Err(e) => {
                    eprintln!("mcpo: {e}");
                    return ExitCode::from(2);
                }
            };
            let done = match store_files::rekey(&root, new.key()) {
                Ok(done) => done,
                Err(e) => {
                    eprintln!("mcpo: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut failed = false;
            for (path, outcome) in &done {
                let path = path.display();
                match outcome {
                    Rekeyed::Done => println!("{path}: re-encrypted"),
                    Rekeyed::Already => println!("{path}: already encrypted with the new key"),
                    Rekeyed::Plaintext => println!(
                        "{path}: plaintext of an earlier mcpo, left as it is: mcpo encrypts it \
                         with its store key when it next reads it"
                    ),
                    Rekeyed::Failed(why) => {
                        failed = true;
                        eprintln!("mcpo: {path}: not re-encrypted: {why}");
                    }
                }
            }
            println!(
                "{}: {} file(s) re-encrypted with the new key (key id {})",
                root.display(),
                done.iter()
                    .filter(|(_, o)| matches!(o, Rekeyed::Done))
                    .count(),
                new.key().id_hex()
            );
            if failed {
                eprintln!("mcpo: not every file was re-encrypted; fix the cause and run again");
                return ExitCode::FAILURE;
            }
            match store_files::finish(&new) {
                Ok(Some(path)) => println!("{}: now holds the new key", path.display()),
                Ok(None) => println!("start mcpo with the new key"),
                Err(e) => {
                    eprintln!("mcpo: {e}; run again to finish");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
    }
}
