//! Getting the authorization URL in front of the user: `$BROWSER`, else the system opener
//! (the `open` crate), and always the URL printed on stderr so a failed launch costs nothing.

use std::process::Stdio;
use std::time::Duration;

/// A browser command given in code (tests, or a future flag): run as `program args... URL`.
#[derive(Clone, Debug)]
pub struct BrowserCommand {
    pub program: String,
    pub args: Vec<String>,
}

/// Prints the URL for the user, prominently, whatever happens with the browser.
pub(crate) fn print_url(server: &str, url: &str, loopback: bool) {
    let rule = "=".repeat(72);
    let how = if loopback {
        "Opening your browser. If it does not open, visit this URL to sign in:"
    } else {
        "Visit this URL in a browser to sign in:"
    };
    eprintln!(
        "\n{rule}\nmcpo: MCP server '{server}' needs an OAuth login.\n{how}\n\n    {url}\n\n{rule}\n"
    );
}

/// Launches a browser on `url` without waiting for it; `Err` says why none could be started.
pub(crate) async fn open(url: &str, explicit: Option<&BrowserCommand>) -> Result<(), String> {
    if let Some(cmd) = explicit {
        return spawn(&cmd.program, &cmd.args, url);
    }
    if let Some(value) = std::env::var_os("BROWSER").filter(|v| !v.is_empty()) {
        let value = value.to_string_lossy().into_owned();
        let mut last = String::from("$BROWSER names no command");
        for (program, args) in parse_browser_env(&value) {
            match spawn(&program, &args, url) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        return Err(last);
    }
    let url = url.to_owned();
    // `open::that` waits for the launcher (xdg-open & co.), which returns quickly; bound it
    // anyway so a stuck launcher cannot hold the login.
    let launch = tokio::task::spawn_blocking(move || open::that(&url));
    match tokio::time::timeout(Duration::from_secs(10), launch).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("no browser could be opened: {e}")),
        Ok(Err(e)) => Err(format!("browser launcher failed: {e}")),
        Err(_) => Err("the browser launcher did not return within 10 s".to_owned()),
    }
}

/// `$BROWSER` as Python's `webbrowser` reads it: `:`-separated commands, each split on
/// whitespace; `%s` stands for the URL, otherwise the URL is appended.
pub(crate) fn parse_browser_env(value: &str) -> Vec<(String, Vec<String>)> {
    value
        .split(':')
        .filter_map(|entry| {
            let mut words = entry.split_whitespace().map(str::to_owned);
            let program = words.next()?;
            Some((program, words.collect()))
        })
        .collect()
}

fn spawn(program: &str, args: &[String], url: &str) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(program);
    let mut placed = false;
    for arg in args {
        if arg.contains("%s") {
            cmd.arg(arg.replace("%s", url));
            placed = true;
        } else {
            cmd.arg(arg);
        }
    }
    if !placed {
        cmd.arg(url);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start browser '{program}': {e}"))?;
    let program = program.to_owned();
    // Reap it in the background: browsers (and launchers) exit on their own.
    tokio::spawn(async move {
        if let Ok(status) = child.wait().await
            && !status.success()
        {
            tracing::warn!("browser command '{program}' exited with {status}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_env_forms() {
        assert_eq!(
            parse_browser_env("firefox"),
            vec![("firefox".to_owned(), vec![])]
        );
        assert_eq!(
            parse_browser_env("chromium --new-window %s:firefox"),
            vec![
                (
                    "chromium".to_owned(),
                    vec!["--new-window".to_owned(), "%s".to_owned()]
                ),
                ("firefox".to_owned(), vec![])
            ]
        );
        assert!(parse_browser_env(" : ").is_empty());
    }

    #[tokio::test]
    async fn explicit_command_receives_the_url() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("url");
        let cmd = BrowserCommand {
            program: "sh".to_owned(),
            args: vec![
                "-c".to_owned(),
                format!("printf %s \"$1\" > {}", out.display()),
                "browser".to_owned(),
            ],
        };
        open("http://127.0.0.1:1/authorize?x=1", Some(&cmd))
            .await
            .unwrap();
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&out)
                && !text.is_empty()
            {
                assert_eq!(text, "http://127.0.0.1:1/authorize?x=1");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("browser command did not run");
    }

    #[tokio::test]
    async fn missing_program_is_an_error_not_a_panic() {
        let cmd = BrowserCommand {
            program: "/nonexistent/browser".to_owned(),
            args: vec![],
        };
        let err = open("http://x/", Some(&cmd)).await.unwrap_err();
        assert!(err.contains("cannot start browser"), "{err}");
    }
}
