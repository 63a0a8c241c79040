//! [`AuthOptions`]: how logins reach the user and where tokens go, beyond the config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::browser::BrowserCommand;
use super::callback;

/// How logins reach the user, and where tokens go. `Default` is what the daemon and the
/// `mcpo auth` commands use.
#[derive(Clone, Default)]
pub struct AuthOptions {
    pub(super) browser: Option<BrowserCommand>,
    pub(super) paste: Option<callback::PasteSource>,
    pub(super) token_dir: Option<PathBuf>,
    pub(super) cool_down: Option<Duration>,
    /// Multi-user mode: the caller these tokens belong to. Such an authorizer never opens a
    /// browser or a loopback listener: its user signs in through mcpo's web login.
    pub(super) user: Option<String>,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("browser", &self.browser)
            .field("token_dir", &self.token_dir)
            .field("cool_down", &self.cool_down)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AuthOptions {
    /// Open authorization URLs with `program args... URL` instead of `$BROWSER` / the system
    /// opener.
    pub fn browser_command(mut self, program: impl Into<String>, args: Vec<String>) -> Self {
        self.browser = Some(BrowserCommand {
            program: program.into(),
            args,
        });
        self
    }

    /// Read pasted callback URLs (manual flow) from `lines` instead of standard input.
    pub fn pasted_lines(mut self, lines: mpsc::UnboundedReceiver<String>) -> Self {
        self.paste = Some(callback::PasteSource::Lines(Arc::new(
            tokio::sync::Mutex::new(lines),
        )));
        self
    }

    /// Keep `file` tokens in `dir` instead of `$MCPO_TOKEN_DIR` / `~/.mcpo/tokens`.
    pub fn token_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.token_dir = Some(dir.into());
        self
    }

    /// Tokens, registration and logins of one multi-user caller (see
    /// `WebLogins`).
    pub(crate) fn for_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The first wait after a denied or abandoned login (doubles up to 15 min; default 60 s).
    pub fn cool_down(mut self, wait: Duration) -> Self {
        self.cool_down = Some(wait);
        self
    }
}
