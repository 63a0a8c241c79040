//! Issue #17, "Users' stdio servers kept apart": `"sandbox"` on a multi-user stdio server runs
//! each user's process under bubblewrap. A probe server (a python3 script written here) tries
//! what a tool that runs code could do: list the processes it sees, write a `tools/call` into
//! another user's server through `/proc/<pid>/fd/0`, read mcpo's token folder, tool cache,
//! `~/.mcpo` and config file, write outside the writable paths, reach the network. With
//! `sandbox` every attempt fails; without it the same probes succeed (so the tests prove the
//! sandbox, not the probe). Without a working `bwrap` the server does not start and says why,
//! while the other servers serve.
//!
//! Everything the probes look for lives under Cargo's target `tmp` folder, not `/tmp`: the
//! sandbox's `/tmp` is its own, which would hide files there whatever else it does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use crate::multi_user::{token, uuid4};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "owui-test-secret-9f2c";
const TOKEN_MARK: &str = "TOKEN-FILE-CONTENT-71c3";
const CACHE_MARK: &str = "CACHE-FILE-CONTENT-4be0";
const STORE_MARK: &str = "STORE-KEY-CONTENT-90d2";
const CONFIG_MARK: &str = "CONFIG-FILE-CONTENT-2a8f";
const NOTE: &str = "injected-by-another-user";

/// A stdio MCP server whose tools try to reach beyond their own user's process.
const PROBE: &str = r#"
import json, os, socket, sys

SCRIPT = os.path.basename(__file__)
notes = []

def processes():
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except Exception:
            continue
        found.append({"pid": int(name), "argv": argv})
    return found

def is_probe(p):
    a = p["argv"]
    return len(a) >= 2 and "python" in os.path.basename(a[0]) and a[1].endswith(SCRIPT)

def tool(name, args):
    me = os.getpid()
    if name == "whoami":
        return {"pid": me, "cwd": os.getcwd(), "env": os.environ.get("PROBE_SETTING")}
    if name == "processes":
        ps = processes()
        return {"pid": me, "all": [p["pid"] for p in ps],
                "probes": [p["pid"] for p in ps if is_probe(p) and p["pid"] != me],
                "mcpo": [p["pid"] for p in ps
                         if p["argv"] and os.path.basename(p["argv"][0]) == "mcpo"]}
    if name == "inject":
        targets = set(args.get("pids", [])) | {p["pid"] for p in processes() if is_probe(p)}
        targets.discard(me)
        line = json.dumps({"jsonrpc": "2.0", "id": "injected-1", "method": "tools/call",
                           "params": {"name": "remember", "arguments": {"note": args["note"]}}})
        results = {}
        for pid in sorted(targets):
            try:
                with open("/proc/%d/fd/0" % pid, "w") as f:
                    f.write(line + "\n")
                results[str(pid)] = "written"
            except Exception as e:
                results[str(pid)] = "ERROR " + repr(e)
        return {"results": results}
    if name == "remember":
        notes.append(args.get("note"))
        return {"ok": True}
    if name == "notes":
        return {"notes": notes}
    if name == "read":
        try:
            with open(args["path"]) as f:
                return {"content": f.read()}
        except Exception as e:
            return {"error": repr(e)}
    if name == "write":
        try:
            with open(args["path"], "w") as f:
                f.write("written from the server")
            return {"written": True}
        except Exception as e:
            return {"error": repr(e)}
    if name == "escape":
        # Root's way out of covering mounts: unmount them, remount / writable.
        import subprocess
        tried = []
        for cmd in (["umount", args["covered"]], ["mount", "-o", "remount,rw", "/"]):
            try:
                r = subprocess.run(cmd, capture_output=True, timeout=5)
                tried.append(r.returncode)
            except Exception as e:
                tried.append(repr(e))
        return {"tried": tried}
    if name == "connect":
        try:
            socket.create_connection(("127.0.0.1", args["port"]), timeout=3).close()
            return {"connected": True}
        except Exception as e:
            return {"error": repr(e)}
    return {"error": "no tool " + name}

TOOLS = ["whoami", "processes", "inject", "remember", "notes", "read", "write", "escape",
         "connect"]

for line in sys.stdin:
    try:
        msg = json.loads(line)
    except Exception:
        continue
    mid, method = msg.get("id"), msg.get("method")
    if mid is None or method is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": msg["params"]["protocolVersion"],
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "probe", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": t, "description": t, "inputSchema": {"type": "object"}}
                            for t in TOOLS]}
    elif method == "tools/call":
        p = msg["params"]
        out = tool(p["name"], p.get("arguments") or {})
        result = {"content": [{"type": "text", "text": json.dumps(out)}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}), flush=True)
"#;

/// Whether `bwrap` can make a sandbox here; a loud skip otherwise, or a failure when the test
/// peers are required (`MCPO_REQUIRE_OAUTH_PEERS`, as scripts/test.sh and CI set):
/// scripts/install-test-peers.sh installs bubblewrap.
fn bwrap_works() -> bool {
    let works = std::process::Command::new("bwrap")
        .args([
            "--unshare-pid",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "true",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return true;
    }
    let message = "bwrap (bubblewrap) is missing or cannot create namespaces here; \
                   run scripts/install-test-peers.sh as root (it installs bubblewrap)";
    if std::env::var_os("MCPO_REQUIRE_OAUTH_PEERS").is_some() {
        panic!("{message}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n{0}\n!!! SKIPPED: {message}\n{0}\n",
        "!".repeat(78)
    );
    false
}

/// The folders and files of one run, under Cargo's target `tmp` folder.
struct Place {
    root: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("sandbox-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir");
        let place = Place { root };
        for dir in [
            "tokens",
            "cache",
            "home/.mcpo",
            "outside",
            "writable",
            "bin",
            "workdir",
        ] {
            std::fs::create_dir_all(place.path(dir)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        for dir in ["tokens", "cache", "home/.mcpo"] {
            std::fs::set_permissions(place.path(dir), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
        std::fs::write(place.token_file(), TOKEN_MARK).unwrap();
        std::fs::write(place.cache_file(), CACHE_MARK).unwrap();
        std::fs::write(place.store_file(), STORE_MARK).unwrap();
        std::fs::write(place.path("probe.py"), PROBE).unwrap();
        place
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn token_file(&self) -> PathBuf {
        self.path("tokens/some-user-token.json")
    }

    fn cache_file(&self) -> PathBuf {
        self.path("cache/some-tool-list.json")
    }

    fn store_file(&self) -> PathBuf {
        self.path("home/.mcpo/store.key")
    }

    fn config_file(&self) -> PathBuf {
        self.path("config.json")
    }

    /// A multi-user probe server entry with `sandbox` (JSON `false` for none).
    fn entry(&self, sandbox: Value) -> Value {
        json!({
            "command": "python3",
            "args": [self.path("probe.py").to_str().unwrap()],
            "multi_user": true,
            "webui_secret_key": SECRET,
            "sandbox": sandbox,
            "description": CONFIG_MARK,
            "cwd": self.path("workdir").to_str().unwrap(),
            "env": {"PROBE_SETTING": "from-the-config"},
        })
    }

    /// mcpo with `servers`, its stores in this place, `path` as its `PATH` (mcpo's own when
    /// `None`).
    fn start(&self, servers: Value, path: Option<&Path>) -> Mcpo {
        std::fs::write(
            self.config_file(),
            json!({ "mcpServers": servers }).to_string(),
        )
        .unwrap();
        let (tokens, cache, home) = (self.path("tokens"), self.path("cache"), self.path("home"));
        let mut env = vec![
            ("MCPO_TOKEN_DIR", tokens.to_str().unwrap().to_owned()),
            ("MCPO_CACHE_DIR", cache.to_str().unwrap().to_owned()),
            ("HOME", home.to_str().unwrap().to_owned()),
        ];
        if let Some(path) = path {
            env.push(("PATH", path.to_str().unwrap().to_owned()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Mcpo::start_with_env(&["--config", self.config_file().to_str().unwrap()], &env)
    }
}

/// Calls `tool` of `server` as the holder of `jwt`; its JSON answer.
async fn call(mcpo: &Mcpo, server: &str, jwt: &str, tool: &str, args: Value) -> Value {
    let r = post(mcpo, &format!("/{server}/{tool}"), Some(&bearer(jwt)), args).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{server}/{tool}: {r:?}\nmcpo stderr:\n{}",
        tail(&mcpo.stderr.text(), 30)
    );
    match r.body {
        Value::String(text) => serde_json::from_str(&text).expect("probe answers JSON"),
        other => other,
    }
}

/// Host pids of every probe process running `script` (all users' servers).
fn probe_pids(script: &Path) -> Vec<u32> {
    let script = script.to_str().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.len() >= 2 && argv[0].contains("python") && argv[1] == script {
            found.push(pid);
        }
    }
    found
}

fn port_of(mcpo: &Mcpo) -> u16 {
    mcpo.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// What alice's server managed against bob's server and mcpo's files.
struct Attempts {
    /// Pids alice saw running the probe besides herself, and running mcpo.
    saw_probes: Vec<u64>,
    saw_mcpo: Vec<u64>,
    saw_all: usize,
    inject: Value,
    /// Bob's notes after alice's injection.
    bob_notes: Value,
    bob_pid: u64,
    reads: Vec<(String, Value)>,
    wrote_outside: Value,
    outside_exists: bool,
    connect: Value,
}

/// Two users on server `srv` (sandboxed as `sandbox` says); alice's server tries everything.
async fn attempts(place: &Place, mcpo: &Mcpo) -> Attempts {
    let (alice, bob) = (token(&uuid4()), token(&uuid4()));
    let bob_pid = call(mcpo, "srv", &bob, "whoami", json!({})).await["pid"]
        .as_u64()
        .unwrap();
    call(mcpo, "srv", &alice, "whoami", json!({})).await;
    let seen = call(mcpo, "srv", &alice, "processes", json!({})).await;
    let pids = probe_pids(&place.path("probe.py"));
    let inject = call(
        mcpo,
        "srv",
        &alice,
        "inject",
        json!({"pids": pids, "note": NOTE}),
    )
    .await;
    // Give bob's server a moment to read what may have been written to its stdin.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob_notes = call(mcpo, "srv", &bob, "notes", json!({})).await["notes"].clone();
    // As root (CI, containers) the server first tries to undo what covers mcpo's files.
    let escape = call(
        mcpo,
        "srv",
        &alice,
        "escape",
        json!({"covered": place.path("tokens").to_str().unwrap()}),
    )
    .await;
    let mut reads = Vec::new();
    for (file, _) in files(place) {
        let got = call(
            mcpo,
            "srv",
            &alice,
            "read",
            json!({"path": file.to_str().unwrap()}),
        )
        .await;
        reads.push((
            file.display().to_string(),
            json!({"read": got, "after": escape}),
        ));
    }
    let outside = place.path("outside/from-the-server");
    let wrote_outside = call(
        mcpo,
        "srv",
        &alice,
        "write",
        json!({"path": outside.to_str().unwrap()}),
    )
    .await;
    let connect = call(
        mcpo,
        "srv",
        &alice,
        "connect",
        json!({"port": port_of(mcpo)}),
    )
    .await;
    let list = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    Attempts {
        saw_probes: list(&seen["probes"]),
        saw_mcpo: list(&seen["mcpo"]),
        saw_all: seen["all"].as_array().unwrap().len(),
        inject,
        bob_notes,
        bob_pid,
        reads,
        wrote_outside,
        outside_exists: outside.exists(),
        connect,
    }
}

/// mcpo's files and the text each holds.
fn files(place: &Place) -> [(PathBuf, &'static str); 4] {
    [
        (place.token_file(), TOKEN_MARK),
        (place.cache_file(), CACHE_MARK),
        (place.store_file(), STORE_MARK),
        (place.config_file(), CONFIG_MARK),
    ]
}

async fn started(place: &Place, sandbox: Value) -> Mcpo {
    let mcpo = place.start(json!({ "srv": place.entry(sandbox) }), None);
    wait_log(
        &mcpo,
        &["closing the discovery session"],
        1,
        Duration::from_secs(30),
    )
    .await;
    mcpo
}

#[tokio::test]
async fn a_sandboxed_server_reaches_no_other_user_and_none_of_mcpos_files() {
    if !bwrap_works() {
        return;
    }
    let place = Place::new();
    let mcpo = started(&place, json!(true)).await;
    let got = attempts(&place, &mcpo).await;

    // Its own pid namespace: bwrap's init, the server, nothing of mcpo or the other user.
    assert!(
        got.saw_probes.is_empty(),
        "saw other users' servers: {:?}",
        got.saw_probes
    );
    assert!(got.saw_mcpo.is_empty(), "saw mcpo: {:?}", got.saw_mcpo);
    assert!(got.saw_all <= 3, "saw {} processes", got.saw_all);
    // Every write to another server's stdin failed, and bob's server got nothing.
    let results = got.inject["results"].as_object().unwrap();
    assert!(!results.is_empty(), "the test found no probe pids to try");
    for (pid, result) in results {
        assert!(
            result.as_str().unwrap().starts_with("ERROR"),
            "wrote to pid {pid}'s stdin: {}",
            got.inject
        );
    }
    assert_eq!(got.bob_notes, json!([]), "bob's server got alice's call");
    for ((file, mark), (_, read)) in files(&place).iter().zip(&got.reads) {
        assert!(
            !read.to_string().contains(mark),
            "read {}: {read}",
            file.display()
        );
    }
    assert!(
        got.wrote_outside["error"].is_string() && !got.outside_exists,
        "wrote outside the writable paths: {}",
        got.wrote_outside
    );
    // The network is shared unless `network: false`.
    assert_eq!(got.connect, json!({"connected": true}), "connect");
    // The files are still there for mcpo itself.
    assert_eq!(
        std::fs::read_to_string(place.token_file()).unwrap(),
        TOKEN_MARK
    );
    // The server's `cwd` and `env` are as configured.
    let who = call(&mcpo, "srv", &token(&uuid4()), "whoami", json!({})).await;
    assert_eq!(who["cwd"], place.path("workdir").to_str().unwrap(), "{who}");
    assert_eq!(who["env"], "from-the-config", "{who}");
    // Stopping mcpo stops every sandboxed process (they left mcpo's process group).
    let mut mcpo = mcpo;
    assert!(!probe_pids(&place.path("probe.py")).is_empty());
    mcpo.stop();
    let gone = poll(Duration::from_secs(10), || async {
        probe_pids(&place.path("probe.py")).is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "sandboxed servers outlived mcpo: {:?}",
        probe_pids(&place.path("probe.py"))
    );
}

/// A sandboxed server dies with mcpo even when mcpo cannot stop it (killed with SIGKILL).
#[tokio::test]
async fn sandboxed_servers_die_with_mcpo() {
    if !bwrap_works() {
        return;
    }
    let place = Place::new();
    let mut mcpo = started(&place, json!(true)).await;
    call(&mcpo, "srv", &token(&uuid4()), "whoami", json!({})).await;
    assert!(!probe_pids(&place.path("probe.py")).is_empty());
    mcpo.child.kill().expect("SIGKILL mcpo");
    let _ = mcpo.child.wait();
    let gone = poll(Duration::from_secs(10), || async {
        probe_pids(&place.path("probe.py")).is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "sandboxed servers outlived a killed mcpo: {:?}",
        probe_pids(&place.path("probe.py"))
    );
}

/// The same probes without `sandbox`: each succeeds, so the test above proves the sandbox.
#[tokio::test]
async fn without_sandbox_the_same_probes_succeed() {
    let place = Place::new();
    let mcpo = started(&place, json!(false)).await;
    let got = attempts(&place, &mcpo).await;

    assert!(
        got.saw_probes.contains(&got.bob_pid),
        "did not see bob's server {} among {:?}",
        got.bob_pid,
        got.saw_probes
    );
    assert!(
        got.saw_mcpo.contains(&u64::from(mcpo.child.id())),
        "did not see mcpo: {:?}",
        got.saw_mcpo
    );
    assert_eq!(
        got.inject["results"][got.bob_pid.to_string()],
        "written",
        "{}",
        got.inject
    );
    assert_eq!(
        got.bob_notes,
        json!([NOTE]),
        "bob's server did not get the call"
    );
    for ((file, mark), (_, read)) in files(&place).iter().zip(&got.reads) {
        assert!(
            read["read"]["content"]
                .as_str()
                .unwrap_or("")
                .contains(mark),
            "could not read {}: {read}",
            file.display()
        );
    }
    assert!(got.outside_exists, "{}", got.wrote_outside);
}

/// `writable` paths can be written and nothing else; `network: false` leaves no way out.
#[tokio::test]
async fn writable_paths_and_network_are_the_operators_to_choose() {
    if !bwrap_works() {
        return;
    }
    let place = Place::new();
    let writable = place.path("writable");
    let mcpo = started(
        &place,
        json!({"writable": [writable.to_str().unwrap()], "network": false}),
    )
    .await;
    let alice = token(&uuid4());
    let inside = writable.join("from-the-server");
    let wrote = call(
        &mcpo,
        "srv",
        &alice,
        "write",
        json!({"path": inside.to_str().unwrap()}),
    )
    .await;
    assert_eq!(wrote, json!({"written": true}));
    assert_eq!(
        std::fs::read_to_string(&inside).unwrap(),
        "written from the server"
    );
    let outside = place.path("outside/from-the-server");
    let wrote = call(
        &mcpo,
        "srv",
        &alice,
        "write",
        json!({"path": outside.to_str().unwrap()}),
    )
    .await;
    assert!(wrote["error"].is_string() && !outside.exists(), "{wrote}");
    let connect = call(
        &mcpo,
        "srv",
        &alice,
        "connect",
        json!({"port": port_of(&mcpo)}),
    )
    .await;
    assert!(
        connect["error"].is_string(),
        "reached mcpo's port: {connect}"
    );
}

/// mcpo with a sandboxed server `boxed` and an open one `open`, `PATH` being `bin` only:
/// `boxed` fails with `expected` in its status, `open` serves.
async fn sandbox_refused(place: &Place, expected: &str) {
    let servers = json!({"boxed": place.entry(json!(true)), "open": place.entry(json!(false))});
    let mcpo = place.start(servers, Some(&place.path("bin")));
    let status = poll(Duration::from_secs(30), || async {
        let s = fetch_server_status(&mcpo, "boxed").await;
        s["last_error"].as_str().is_some().then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("no error for boxed\n{}", mcpo.stderr.text()));
    let error = status["last_error"].as_str().unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(error.starts_with("sandbox: "), "{error}");
    assert!(error.contains(expected), "{error}");
    let alice = token(&uuid4());
    let r = post(&mcpo, "/boxed/whoami", Some(&bearer(&alice)), json!({})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    let who = call(&mcpo, "open", &alice, "whoami", json!({})).await;
    assert!(who["pid"].is_u64(), "{who}");
    // Logged too, where the operator looks.
    assert!(
        mcpo.stderr.text().contains(expected),
        "{}",
        mcpo.stderr.text()
    );
}

/// A `PATH` with python3 and nothing else: no bwrap. The interpreter itself, not what `PATH`
/// finds (a pyenv shim is a bash script that needs the rest of `PATH`).
fn python_only(place: &Place) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("run python3");
    let python = String::from_utf8(out.stdout).unwrap();
    std::os::unix::fs::symlink(python.trim(), place.path("bin/python3")).unwrap();
}

#[tokio::test]
async fn without_bwrap_the_server_says_why_and_the_others_serve() {
    let place = Place::new();
    python_only(&place);
    sandbox_refused(&place, "bwrap (bubblewrap) is not in PATH").await;
}

#[tokio::test]
async fn a_bwrap_that_cannot_make_namespaces_is_no_sandbox() {
    let place = Place::new();
    python_only(&place);
    // What bwrap says where unprivileged user namespaces are off.
    let fake = place.path("bin/bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox_refused(&place, "cannot create namespaces here").await;
}

/// A writable path that holds mcpo's files does not uncover them.
#[tokio::test]
async fn mcpos_files_stay_covered_under_a_writable_path() {
    if !bwrap_works() {
        return;
    }
    let place = Place::new();
    let root = place.root.path().to_str().unwrap().to_owned();
    let mcpo = started(&place, json!({"writable": [root]})).await;
    let alice = token(&uuid4());
    let read = call(
        &mcpo,
        "srv",
        &alice,
        "read",
        json!({"path": place.token_file().to_str().unwrap()}),
    )
    .await;
    assert!(!read.to_string().contains(TOKEN_MARK), "{read}");
    let planted = place.path("tokens/planted.json");
    call(
        &mcpo,
        "srv",
        &alice,
        "write",
        json!({"path": planted.to_str().unwrap()}),
    )
    .await;
    assert!(!planted.exists(), "planted a file in the token folder");
    // The rest of the writable path is writable.
    let inside = place.path("outside/from-the-server");
    let wrote = call(
        &mcpo,
        "srv",
        &alice,
        "write",
        json!({"path": inside.to_str().unwrap()}),
    )
    .await;
    assert_eq!(wrote, json!({"written": true}));
}
