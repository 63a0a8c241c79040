//! `mcpo validate`, `mcpo tools`, `mcpo auth`, `mcpo store`, `mcpo completions`, `mcpo man`:
//! operator tools that run
//! instead of the daemon.

use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::{Action, AuthOp, Cli, StoreOp};
use crate::config::{self, ServerConfig};
use crate::store::redis::RedisStore;
use crate::store::{Location, Records};
use crate::upstream::{Status, Upstream, UpstreamOptions};

/// Runs `action`; the exit code is for scripts (0 fine, 1 a server failed, 2 bad config).
pub fn run(cli: &Cli, action: &Action) -> ExitCode {
    match action {
        Action::Validate { config } => validate(config, cli),
        Action::Tools { config, server } => tools(cli, config, server.as_deref()),
        Action::Auth { op } => auth(cli, op),
        Action::Store { op } => store(cli, op),
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

/// `--store` for the subcommands that read or write credentials (`tools`, `auth`): checked as
/// the daemon checks it, and a Redis store installed as the daemon installs it, so a login
/// made here is the one every replica finds.
fn install_store(cli: &Cli, runtime: &tokio::runtime::Runtime) -> Result<(), ExitCode> {
    let location = config::store_location(cli).map_err(|(flag, why)| {
        eprintln!("mcpo: option '{flag}' {why}");
        ExitCode::from(2)
    })?;
    let _entered = runtime.enter();
    crate::app::install_store(&location).map_err(|e| {
        eprintln!("mcpo: {e}");
        ExitCode::from(2)
    })
}

fn tools(cli: &Cli, path: &std::path::Path, only: Option<&str>) -> ExitCode {
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
    if let Err(code) = install_store(cli, &runtime) {
        return code;
    }
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

fn auth(cli: &Cli, op: &AuthOp) -> ExitCode {
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
    if let Err(code) = install_store(cli, &runtime) {
        return code;
    }
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

/// `mcpo store list|rekey|migrate`, on the store `--store` names (the token folder by
/// default).
fn store(cli: &Cli, op: &StoreOp) -> ExitCode {
    let location = || {
        Location::parse(Some(&cli.store), Some(&cli.store_prefix)).map_err(|e| {
            eprintln!("mcpo: {e}");
            ExitCode::from(2)
        })
    };
    match op {
        StoreOp::Migrate {
            from,
            to,
            overwrite,
        } => migrate(cli, from.as_deref(), to.as_deref(), *overwrite),
        StoreOp::List { .. } => location().map_or_else(|code| code, |l| store_list(&l)),
        StoreOp::Rekey { new_key_file, .. } => match location() {
            Ok(Location::File) => store_rekey(new_key_file.as_deref()),
            Ok(Location::Redis(redis)) => {
                eprintln!(
                    "mcpo: store rekey re-encrypts the token folder only, not the store {}: \
                     migrate it to the token folder (`mcpo store migrate --to file`), rekey \
                     there, and migrate it back with --overwrite",
                    redis.shown()
                );
                ExitCode::from(2)
            }
            Err(code) => code,
        },
    }
}

/// `mcpo store list`: the records of the token folder or of the Redis store, no values.
fn store_list(location: &Location) -> ExitCode {
    use crate::oauth::store_files;
    if let (Location::File, Err(e)) = (location, store_files::token_folder()) {
        eprintln!("mcpo: {e}");
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let listed = runtime.block_on(async {
        let records = open_records(location)?;
        let entries = store_files::list(&records).await?;
        Ok::<_, String>((records.describe(), entries))
    });
    match listed {
        Ok((place, entries)) if entries.is_empty() => {
            println!("{place}: no stored credentials");
            ExitCode::SUCCESS
        }
        Ok((_, entries)) => {
            let column = match location {
                Location::File => "file",
                Location::Redis(_) => "key",
            };
            println!("server\tuser\trecord\tstate\t{column}");
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
                println!("{server}\t{user}\t{kind}\t{}\t{}", e.state, e.place);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcpo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mcpo store rekey`: every record of the token folder re-sealed with a new key.
fn store_rekey(new_key_file: Option<&std::path::Path>) -> ExitCode {
    use crate::oauth::store_files::{self, Rekeyed};
    let root = match store_files::token_folder() {
        Ok(root) => root,
        Err(e) => {
            eprintln!("mcpo: {e}");
            return ExitCode::from(2);
        }
    };
    let new = match store_files::new_key(new_key_file, &root) {
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

/// The records at `location`: the token folder the daemon would use, or the Redis store (not
/// connected yet: the first operation connects). Inside the runtime.
fn open_records(location: &Location) -> Result<Records, String> {
    match location {
        Location::File => crate::store::default_token_dir().map(Records::file),
        Location::Redis(redis) => RedisStore::open(redis.clone()).map(Records::redis),
    }
}

/// `mcpo store migrate --from STORE --to STORE [--overwrite]`; a side not given is `--store`
/// (`MCPO_STORE`), so a Redis password can stay off the command line.
fn migrate(cli: &Cli, from: Option<&str>, to: Option<&str>, overwrite: bool) -> ExitCode {
    let side = |given: Option<&str>, flag: &str| {
        let text = given.unwrap_or(&cli.store);
        Location::parse(Some(text), Some(&cli.store_prefix)).map_err(|e| {
            match e.strip_prefix("--store ") {
                Some(rest) => format!("{flag} {rest}"),
                None => e,
            }
        })
    };
    let (from, to) = match (side(from, "--from"), side(to, "--to")) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mcpo: {e}");
            return ExitCode::from(2);
        }
    };
    if from == to {
        eprintln!(
            "mcpo: --from and --to are the same store ({}): name the other one (`file`, or a \
             redis:// URL; a side not given is --store / MCPO_STORE)",
            match &from {
                Location::File => "file".to_owned(),
                Location::Redis(redis) => redis.shown(),
            }
        );
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(async {
        let source = open_records(&from)?;
        let target = open_records(&to)?;
        crate::store::migrate::migrate(&source, &target, overwrite)
            .await
            .map(|done| (source.describe(), target, done))
            .map_err(|e| e.to_string())
    });
    let (source, target, done) = match outcome {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("mcpo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{} record(s) copied from {source} to {}{}; {} already there, identical",
        done.copied,
        target.describe(),
        if done.overwritten > 0 {
            format!(" ({} overwritten)", done.overwritten)
        } else {
            String::new()
        },
        done.unchanged
    );
    let plaintext = !done.plaintext.is_empty();
    if plaintext {
        eprintln!(
            "mcpo: {} plaintext record(s) of an earlier mcpo not copied: {}; start mcpo once on \
             the token folder (it seals them when it reads them), then migrate again",
            done.plaintext.len(),
            done.plaintext.join(", ")
        );
    }
    if let (Location::Redis(redis), Ok(root)) = (&to, crate::store::default_token_dir()) {
        // The records are sealed with the store key they had; every replica needs it.
        let key = match crate::store::key::default_key_file(&root) {
            Ok(path) if crate::store::key::is_default() => format!(
                "the default key file {} (as --store-key-file, or its contents as \
                 MCPO_STORE_KEY)",
                path.display()
            ),
            _ => "the store key given now (MCPO_STORE_KEY or --store-key-file)".to_owned(),
        };
        println!(
            "start every replica with --store {} (MCPO_STORE) and the key these records are \
             sealed with: {key}",
            redis.shown()
        );
    }
    if plaintext {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
