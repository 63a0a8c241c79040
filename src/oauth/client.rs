//! [`AuthorizedClient`]: rmcp's `AuthClient` (bearer token, refresh before expiry, one
//! refresh-and-retry on 401) plus what it leaves to the caller, handled in place so the MCP
//! session survives:
//! - 401 after the refresh failed (refresh token revoked or expired): a new login, then the
//!   request again;
//! - refresh refused with `invalid_client` (the server forgot a registered client): register
//!   again, log in, then the request again;
//! - 403 `insufficient_scope`: a login asking for the union of the granted and the required
//!   scopes, then the request again; none when the token already has the required scopes,
//!   and at most three per scope set (then none for a cool-down).
//!
//! Logins started here obey the same cool-down and single-flight rules as
//! [`Authorizer::ensure_authorized`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::auth::{AuthClient, AuthError, WWWAuthenticateParams};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::Sse;

use super::authorizer::{Authorizer, LoginRequest};
use super::error::OAuthError;
use super::register;
use super::store::REFRESHED_ELSEWHERE;

/// Scope step-ups allowed before a request that needs more scope fails for good.
const MAX_STEP_UPS: u32 = 3;

type Error = StreamableHttpError<reqwest::Error>;

/// The HTTP client to give `StreamableHttpClientTransport::with_client` for an OAuth server.
#[derive(Clone)]
pub struct AuthorizedClient {
    authorizer: Authorizer,
    http: reqwest::Client,
}

impl std::fmt::Debug for AuthorizedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedClient")
            .field("server", &self.authorizer.server())
            .finish_non_exhaustive()
    }
}

/// What a failed request asks for.
enum Recovery {
    Login {
        challenge: Option<String>,
    },
    Register,
    /// Another process refreshed the tokens while this one waited to: the call goes again
    /// with them.
    Retry,
    StepUp {
        challenge: String,
        scope: Option<String>,
    },
}

impl Authorizer {
    /// The HTTP client for `StreamableHttpClientTransport::with_client`: requests go out
    /// through `http` with the bearer token. Call [`Self::ensure_authorized`] first.
    pub fn http_client(&self, http: reqwest::Client) -> AuthorizedClient {
        AuthorizedClient::new(self.clone(), http)
    }
}

impl AuthorizedClient {
    pub(crate) fn new(authorizer: Authorizer, http: reqwest::Client) -> Self {
        AuthorizedClient { authorizer, http }
    }

    async fn auth_client(&self) -> Result<AuthClient<reqwest::Client>, Error> {
        let mut client = self
            .authorizer
            .client()
            .await
            .map_err(as_transport)?
            .clone();
        client.http_client = self.http.clone();
        Ok(client)
    }

    /// Runs `call` and recovers from what the authorization server or the resource says.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(AuthClient<reqwest::Client>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let client = self.auth_client().await?;
        let mut logged_in_again = false;
        let mut retried = false;
        loop {
            let generation = self.authorizer.generation();
            let error = match call(client.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some(recovery) = recovery(&error) else {
                return Err(error);
            };
            let request = match recovery {
                Recovery::Login { challenge } if !logged_in_again => {
                    logged_in_again = true;
                    LoginRequest {
                        challenge,
                        seen_generation: Some(generation),
                        ..Default::default()
                    }
                }
                Recovery::Register if !logged_in_again => {
                    logged_in_again = true;
                    self.authorizer
                        .client_rejected()
                        .await
                        .map_err(as_transport)?;
                    LoginRequest {
                        seen_generation: Some(generation),
                        ..Default::default()
                    }
                }
                Recovery::StepUp { challenge, scope } => {
                    self.step_up(&client, challenge, scope).await?;
                    continue;
                }
                Recovery::Retry if !retried => {
                    retried = true;
                    continue;
                }
                _ => return Err(error),
            };
            self.authorizer.login(request).await.map_err(as_transport)?;
        }
    }
}

impl AuthorizedClient {
    /// A login for more scope after a 403 `insufficient_scope`. When mcpo cannot get the
    /// scope (the login was denied or failed, the limit was reached, or the token has the
    /// scope already), the error carries a [`ScopeRefused`] naming it, so the call is
    /// answered 403 rather than as a lost connection; the session and its tokens stay.
    async fn step_up(
        &self,
        client: &AuthClient<reqwest::Client>,
        challenge: String,
        required: Option<String>,
    ) -> Result<(), Error> {
        let server = self.authorizer.server();
        let (granted, scopes) = {
            let manager = client.auth_manager.lock().await;
            (
                manager.get_current_scopes().await,
                manager.select_scopes(required.as_deref(), &[]),
            )
        };
        let missing: Vec<&str> = required
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .filter(|s| !granted.iter().any(|g| g == s))
            .collect();
        let refused = |reason: String| {
            let scope = match (missing.is_empty(), required.as_deref()) {
                (false, _) => missing.join(" "),
                (true, Some(required)) => required.to_owned(),
                // The challenge named none: say so rather than quote an empty scope.
                (true, None) => "(not named by the server)".to_owned(),
            };
            StreamableHttpError::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                ScopeRefused {
                    server: server.to_owned(),
                    scope,
                    reason,
                },
            ))
        };
        if required.is_some() && missing.is_empty() {
            // A new login would ask for what the token already has.
            tracing::warn!(
                "server '{server}': 403 insufficient_scope for scope '{}', which is already \
                 granted; not logging in again",
                required.as_deref().unwrap_or_default()
            );
            return Err(refused(
                "the access token has it already, yet the server refused the call".to_owned(),
            ));
        }
        if let Err(why) = self.authorizer.allow_step_up(&scopes, MAX_STEP_UPS) {
            tracing::warn!("server '{server}': {why}");
            return Err(refused(why));
        }
        tracing::info!(
            "server '{server}': the server wants more scope ({}); logging in again",
            scopes.join(" ")
        );
        let before = self
            .authorizer
            .store()
            .load_registration()
            .await
            .ok()
            .flatten();
        let request = LoginRequest {
            challenge: Some(challenge),
            scopes: Some(scopes),
            ..Default::default()
        };
        if let Err(e) = self.authorizer.login(request).await {
            register::restore(
                self.authorizer.store(),
                &client.auth_manager,
                before,
                server,
            )
            .await;
            let reason = e.to_string();
            let prefix = format!("server '{server}': ");
            let reason = reason.strip_prefix(&prefix).unwrap_or(&reason);
            return Err(refused(format!("the step-up login failed: {reason}")));
        }
        Ok(())
    }
}

/// A call that needs OAuth scope mcpo could not get (see [`scope_refusal`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "server '{server}' requires the OAuth scope '{scope}' for this call, which mcpo does not \
     have: {reason}"
)]
pub struct ScopeRefused {
    server: String,
    scope: String,
    reason: String,
}

impl ScopeRefused {
    /// The scope that is missing (space-separated), as far as the server named it.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

/// The [`ScopeRefused`] behind a failed MCP request, if that is why it failed: `error` is
/// what rmcp reports for the request (a transport error wrapping ours).
pub fn scope_refusal<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ScopeRefused> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(refused) = e.downcast_ref::<ScopeRefused>() {
            return Some(refused);
        }
        // `io::Error::source` skips the error it wraps.
        if let Some(refused) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<ScopeRefused>())
        {
            return Some(refused);
        }
        next = e.source();
    }
    None
}

fn recovery(error: &Error) -> Option<Recovery> {
    match error {
        StreamableHttpError::AuthRequired(e) => Some(Recovery::Login {
            challenge: Some(e.www_authenticate_header.clone()),
        }),
        StreamableHttpError::InsufficientScope(e) => {
            // rmcp reports any 403 with a challenge this way; only insufficient_scope asks
            // for a step-up.
            let base = url::Url::parse("http://localhost/").ok()?;
            let params = WWWAuthenticateParams::parse(&e.www_authenticate_header, &base);
            params.is_insufficient_scope().then(|| Recovery::StepUp {
                challenge: e.www_authenticate_header.clone(),
                scope: e.required_scope.clone().or(params.scope),
            })
        }
        StreamableHttpError::Auth(AuthError::CredentialStoreError(m))
            if m == REFRESHED_ELSEWHERE =>
        {
            Some(Recovery::Retry)
        }
        StreamableHttpError::Auth(AuthError::TokenRefreshFailed(m))
            if m.contains("invalid_client") =>
        {
            Some(Recovery::Register)
        }
        StreamableHttpError::Auth(
            AuthError::AuthorizationRequired | AuthError::TokenRefreshRejected(_),
        ) => Some(Recovery::Login { challenge: None }),
        _ => None,
    }
}

fn as_transport(e: OAuthError) -> Error {
    StreamableHttpError::Auth(AuthError::AuthorizationFailed(e.to_string()))
}

impl StreamableHttpClient for AuthorizedClient {
    type Error = reqwest::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, Error>> + Send + '_ {
        self.run(move |c| {
            let (uri, message, session_id, auth_header, custom_headers) = (
                uri.clone(),
                message.clone(),
                session_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
            );
            async move {
                c.post_message(uri, message, session_id, auth_header, custom_headers)
                    .await
            }
        })
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, Error>> + Send + '_ {
        self.run(move |c| {
            let (uri, message, session_id, auth_header, custom_headers) = (
                uri.clone(),
                message.clone(),
                session_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
            );
            async move {
                c.post_message_with_max_sse_event_size(
                    uri,
                    message,
                    session_id,
                    auth_header,
                    custom_headers,
                    max_sse_event_size,
                )
                .await
            }
        })
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Error> {
        // Closing a session is not worth a login: one attempt, as rmcp makes it.
        let client = self.auth_client().await?;
        client
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Sse, SseError>>, Error>> + Send + '_
    {
        self.run(move |c| {
            let (uri, session_id, last_event_id, auth_header, custom_headers) = (
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
            );
            async move {
                c.get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
                    .await
            }
        })
    }

    fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Sse, SseError>>, Error>> + Send + '_
    {
        self.run(move |c| {
            let (uri, session_id, last_event_id, auth_header, custom_headers) = (
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
            );
            async move {
                c.get_stream_with_max_sse_event_size(
                    uri,
                    session_id,
                    last_event_id,
                    auth_header,
                    custom_headers,
                    max_sse_event_size,
                )
                .await
            }
        })
    }
}
