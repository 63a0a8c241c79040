//! The authorization-code login on this machine: a loopback listener and a browser, or a
//! URL printed and the redirected address pasted back; and the check of an authorization
//! response, which the web login shares.

use std::sync::atomic::{AtomicBool, Ordering};

use rmcp::transport::auth::{AuthClient, AuthError};
use subtle::ConstantTimeEq;
use tracing::instrument::WithSubscriber;
use tracing::subscriber::NoSubscriber;

use super::{Authorizer, JUST_DISCOVERED, LoginRequest};
use crate::oauth::browser;
use crate::oauth::callback::{self, CallbackListener, Page, Params, PasteSource};
use crate::oauth::discovery;
use crate::oauth::error::OAuthError;

/// What the flow makes of one authorization response.
pub(super) enum Verdict {
    /// Not for this login (or not usable): answer the browser, keep waiting.
    Ignore(String),
    Done(Result<(), OAuthError>),
}

impl Authorizer {
    /// The authorization-code login: discovery, identity, URL, browser or paste, callback,
    /// code exchange.
    pub(super) async fn interactive(
        &self,
        client: &AuthClient<reqwest::Client>,
        request: &LoginRequest,
        prompted: &AtomicBool,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let server = settings.server.clone();
        if self.inner.web.is_some() {
            // Nobody is at this machine's screen: the user signs in through the login link
            // the next tool call answers with.
            self.pending(None);
            return Err(OAuthError::LoginRequired { server });
        }
        let lock = if settings.use_loopback {
            callback::port_lock(settings.callback_port)
        } else {
            callback::stdin_lock()
        };
        self.pending(None);
        let _port = lock.lock_owned().await;
        // Listen before the browser can come back.
        let mut listener = if settings.use_loopback {
            Some(
                CallbackListener::bind(settings.callback_port)
                    .await
                    .map_err(|e| OAuthError::CallbackPort {
                        server: server.clone(),
                        port: settings.callback_port,
                        message: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        let (url, expected_state) = match self.prepare_login(client, request).await {
            Ok(prepared) => prepared,
            Err(e) => {
                if let Some(listener) = listener {
                    listener.close().await;
                }
                return Err(e);
            }
        };
        // The callback path this login's authorization URL names: a request to any other
        // path of the listener (the documented `/callback` included, when this client has
        // its own path) is not this login's.
        let expected_path = redirect_path(&url);
        prompted.store(true, Ordering::SeqCst);
        self.pending(Some(url.clone()));
        tracing::info!(
            "server '{server}': waiting up to {} s for the OAuth login",
            settings.login_timeout.as_secs()
        );
        browser::print_url(&server, &url, settings.use_loopback);
        let wait = async {
            match listener.as_mut() {
                Some(listener) => {
                    if let Err(why) = browser::open(&url, self.inner.options.browser.as_ref()).await
                    {
                        eprintln!(
                            "mcpo: {why}; open the URL above yourself. Waiting for the login..."
                        );
                    }
                    self.wait_for_callback(client, listener, &expected_path, &expected_state)
                        .await
                }
                None => self.wait_for_paste(client, &url, &expected_state).await,
            }
        };
        let result = tokio::time::timeout(settings.login_timeout, wait).await;
        if let Some(listener) = listener {
            listener.close().await;
        }
        match result {
            Ok(done) => done,
            Err(_) => Err(OAuthError::TimedOut {
                server,
                timeout: settings.login_timeout,
            }),
        }
    }

    /// Discovery, client identity and the authorization URL; returns it with its `state`.
    pub(super) async fn prepare_login(
        &self,
        client: &AuthClient<reqwest::Client>,
        request: &LoginRequest,
    ) -> Result<(String, String), OAuthError> {
        let settings = &self.inner.settings;
        let server = settings.server.clone();
        let mut manager = client.auth_manager.lock().await;
        let recent = self
            .inner
            .just_discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|(at, _)| request.challenge.is_none() && at.elapsed() < JUST_DISCOVERED)
            .map(|(_, found)| found);
        let found = match recent {
            Some(found) => found,
            None => discovery::discover(&manager, settings, request.challenge.as_deref()).await?,
        };
        let scopes = match (&request.scopes, &settings.scopes) {
            (Some(scopes), _) | (None, Some(scopes)) => scopes.clone(),
            (None, None) => manager.select_initial_scopes(&[]).await,
        };
        self.adopt(&mut manager, found, Some(&scopes)).await?;
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let url = manager
            .get_authorization_url(&refs)
            .await
            .map_err(|e| OAuthError::Login {
                server: server.clone(),
                message: e.to_string(),
            })?;
        // Discovery checked the endpoint; this is the URL itself, opened, shown or
        // redirected to from here on.
        discovery::openable(&server, "authorization URL", &url)?;
        let state = query_param(&url, "state").ok_or_else(|| OAuthError::Login {
            server: server.clone(),
            message: "the authorization URL has no state".to_owned(),
        })?;
        Ok((url, state))
    }

    async fn wait_for_callback(
        &self,
        client: &AuthClient<reqwest::Client>,
        listener: &mut CallbackListener,
        expected_path: &str,
        expected_state: &str,
    ) -> Result<(), OAuthError> {
        let server = self.server();
        loop {
            let Some(callback) = listener.next().await else {
                return Err(self.login_error("the callback listener stopped".to_owned()));
            };
            if !bool::from(callback.path.as_bytes().ct_eq(expected_path.as_bytes())) {
                tracing::warn!(
                    "server '{server}': ignored a request to the OAuth callback port that is \
                     not this login's callback"
                );
                let _ = callback.reply.send(Page::failure(
                    reqwest::StatusCode::NOT_FOUND,
                    "mcpo is not waiting for a sign-in at this address.".to_owned(),
                ));
                continue;
            }
            match self
                .consider(client, &callback.params, expected_state)
                .await
            {
                Verdict::Ignore(why) => {
                    let _ = callback.reply.send(Page::failure(
                        reqwest::StatusCode::BAD_REQUEST,
                        format!("{why} It was ignored; mcpo is still waiting for the login."),
                    ));
                }
                Verdict::Done(Ok(())) => {
                    let _ = callback.reply.send(Page::success(server));
                    return Ok(());
                }
                Verdict::Done(Err(e)) => {
                    let _ = callback.reply.send(Page::failure(
                        reqwest::StatusCode::BAD_REQUEST,
                        e.to_string(),
                    ));
                    return Err(e);
                }
            }
        }
    }

    async fn wait_for_paste(
        &self,
        client: &AuthClient<reqwest::Client>,
        url: &str,
        expected_state: &str,
    ) -> Result<(), OAuthError> {
        let settings = &self.inner.settings;
        let redirect = query_param(url, "redirect_uri").unwrap_or_else(|| settings.redirect_uri());
        let source = self
            .inner
            .options
            .paste
            .clone()
            .unwrap_or(PasteSource::Stdin);
        eprintln!(
            "After you approve, the browser is sent to {}?code=... (the page may not load: \
             that is expected).\nPaste that whole address here and press Enter:",
            redirect
        );
        loop {
            let Some(line) = source.next_line().await else {
                return Err(self.login_error(
                    "standard input closed before a callback URL was pasted; run `mcpo auth \
                     login` in a terminal"
                        .to_owned(),
                ));
            };
            if line.trim().is_empty() {
                continue;
            }
            let params = match callback::params_of_url(&line) {
                Ok(params) => params,
                Err(why) => {
                    eprintln!("mcpo: {why}");
                    continue;
                }
            };
            if !params.contains_key("code") && !params.contains_key("error") {
                return Err(self.login_error(
                    "the pasted URL has no `code` parameter: after approving, copy the whole \
                     address of the page the browser was sent to (it starts with the callback \
                     URL)"
                        .to_owned(),
                ));
            }
            match self.consider(client, &params, expected_state).await {
                Verdict::Ignore(why) => eprintln!("mcpo: {why} Paste the URL of the latest login:"),
                Verdict::Done(result) => return result,
            }
        }
    }

    /// Checks one authorization response and, when it carries this login's code, exchanges
    /// it for tokens.
    pub(super) async fn consider(
        &self,
        client: &AuthClient<reqwest::Client>,
        params: &Params,
        expected_state: &str,
    ) -> Verdict {
        let state_ok = params
            .get("state")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(expected_state.as_bytes())));
        if !state_ok {
            tracing::warn!(
                "server '{}': ignored an OAuth callback whose state does not match the login \
                 in progress",
                self.server()
            );
            return Verdict::Ignore(
                "This sign-in response does not belong to the login mcpo is waiting for \
                 (wrong or missing state)."
                    .to_owned(),
            );
        }
        if let Some(error) = params.get("error") {
            return Verdict::Done(Err(OAuthError::Denied {
                server: self.server().to_owned(),
                error: error.clone(),
                description: params.get("error_description").cloned(),
            }));
        }
        let Some(code) = params.get("code") else {
            return Verdict::Done(Err(self.login_error(
                "the authorization response has neither a code nor an error".to_owned(),
            )));
        };
        let issuer = params.get("iss").map(String::as_str);
        let manager = client.auth_manager.lock().await;
        // rmcp logs the code and the token response at debug level here.
        let exchanged = manager
            .exchange_code_for_token_with_issuer(code, expected_state, issuer)
            .with_subscriber(NoSubscriber::default())
            .await;
        match exchanged {
            Ok(_) => Verdict::Done(Ok(())),
            // rmcp keeps the PKCE verifier in this case, so the genuine response still works.
            Err(
                e @ (AuthError::AuthorizationServerMismatch { .. }
                | AuthError::AuthorizationServerMissingIssuer { .. }),
            ) => {
                tracing::warn!("server '{}': ignored an OAuth callback: {e}", self.server());
                Verdict::Ignore(format!(
                    "This sign-in response came from the wrong server ({e})."
                ))
            }
            // The tokens came, the store did not take them (a shared store that is away):
            // the user is told the sign-in could not be saved, and tries again later.
            Err(AuthError::CredentialStoreError(why)) => Verdict::Done(Err(OAuthError::Storage {
                server: self.server().to_owned(),
                message: format!("the sign-in could not be saved: {why}"),
            })),
            Err(e) => Verdict::Done(Err(OAuthError::Token {
                server: self.server().to_owned(),
                message: format!("exchanging the authorization code failed: {e}"),
            })),
        }
    }
}

/// The query parameter `name` of `url`.
fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

/// The path of the `redirect_uri` an authorization URL names (`/callback` when it names
/// none a loopback listener could serve).
fn redirect_path(url: &str) -> String {
    query_param(url, "redirect_uri")
        .and_then(|r| url::Url::parse(&r).ok())
        .map(|r| r.path().to_owned())
        .unwrap_or_else(|| "/callback".to_owned())
}
