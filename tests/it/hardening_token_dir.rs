//! Issue #19, item 14 (token folder): without a home directory mcpo kept OAuth tokens under
//! the shared temporary folder (`/tmp/.mcpo/tokens`), where another local user can plant or
//! swap them. Now it asks for `MCPO_TOKEN_DIR` instead, and a token folder that is a symbolic
//! link or writable by others is refused. Checked through `mcpo auth logout`, which opens the
//! server's token store and touches no network when nothing is stored.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

/// A uid with no passwd entry (as an arbitrary container uid): `HOME` unset, no home at all.
const NO_PASSWD_UID: u32 = 4242;

/// A config with one OAuth server (nothing listens at its URL: nothing is fetched).
fn write_oauth_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.json");
    let url = format!("http://127.0.0.1:{}/mcp", free_port());
    let text = serde_json::json!({"mcpServers": {"fx": {"type": "streamable-http", "url": url, "oauth": {}}}});
    std::fs::write(&path, text.to_string()).expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

fn logout(config: &Path, cwd: &Path, configure: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(mcpo_bin());
    cmd.args(["auth", "logout", "--config"])
        .arg(config)
        .arg("fx")
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    configure(&mut cmd);
    cmd.output().expect("run mcpo auth logout")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs as another uid, so only as root (the test machine's user); elsewhere it says it did not
/// run instead of passing silently.
#[test]
fn without_a_home_directory_tokens_need_mcpo_token_dir() {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to run mcpo as a uid without a passwd entry");
        return;
    }
    let getent = Command::new("getent")
        .args(["passwd", &NO_PASSWD_UID.to_string()])
        .output()
        .expect("getent");
    assert!(
        !getent.status.success(),
        "uid {NO_PASSWD_UID} has a passwd entry"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_oauth_config(dir.path());
    // The shared temporary folder, as /tmp is: world-writable, sticky.
    let shared_tmp = dir.path().join("tmp");
    std::fs::create_dir(&shared_tmp).unwrap();
    std::fs::set_permissions(&shared_tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();

    let out = logout(&config, dir.path(), |cmd| {
        cmd.uid(NO_PASSWD_UID)
            .gid(NO_PASSWD_UID)
            .env("TMPDIR", &shared_tmp);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no home directory")
            && stderr.contains("MCPO_TOKEN_DIR"),
        "mcpo must refuse to keep tokens without a home directory and name MCPO_TOKEN_DIR; {}",
        describe(&out)
    );
    assert!(
        !shared_tmp.join(".mcpo").exists(),
        "nothing may be created in the shared temporary folder"
    );

    // With MCPO_TOKEN_DIR on a folder of that user's own, it works.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(NO_PASSWD_UID), Some(NO_PASSWD_UID)).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = logout(&config, dir.path(), |cmd| {
        cmd.uid(NO_PASSWD_UID)
            .gid(NO_PASSWD_UID)
            .env("TMPDIR", &shared_tmp)
            .env("MCPO_TOKEN_DIR", own.join("tokens"));
    });
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("nothing was stored"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_token_folder_others_control_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_oauth_config(dir.path());
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();

    let out = logout(&config, dir.path(), |cmd| {
        cmd.env("HOME", &home).env("MCPO_TOKEN_DIR", &link);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("symbolic link"),
        "a token folder that is a symbolic link must be refused; {}",
        describe(&out)
    );

    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = logout(&config, dir.path(), |cmd| {
        cmd.env("HOME", &home).env("MCPO_TOKEN_DIR", &real);
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("writable by other users"),
        "a world-writable token folder must be refused; {}",
        describe(&out)
    );

    // With a home directory, the default folder under it is used.
    let out = logout(&config, dir.path(), |cmd| {
        cmd.env("HOME", &home);
    });
    assert!(out.status.success(), "{}", describe(&out));
}
