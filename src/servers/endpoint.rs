//! One upstream session as the HTTP side uses it: the supervised connection plus the catalog
//! built from its current tool list. A shared server has one endpoint; a multi-user server has
//! one per user (and, to learn its tool list, a discovery endpoint).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::ServerConfig;
use crate::oauth::{Authorizer, LoginState};
use crate::upstream::{Session, Status, Upstream};

use super::catalog::{self, LastCatalog, SessionCatalog, SpecContext};
use super::tool_cache::SharedTools;

/// A supervised session and the catalog of its current tool list.
pub struct Endpoint {
    pub upstream: Upstream,
    /// The catalog of the current session, rebuilt when its generation changes.
    cache: Mutex<Option<Arc<SessionCatalog>>>,
    /// Where a new catalog is also published: the server's last known tools.
    last: Arc<LastCatalog>,
    spec: Arc<SpecContext>,
}

impl Endpoint {
    pub(super) fn new(upstream: Upstream, last: Arc<LastCatalog>, spec: Arc<SpecContext>) -> Self {
        Self {
            upstream,
            cache: Mutex::new(None),
            last,
            spec,
        }
    }

    pub fn name(&self) -> &str {
        &self.upstream.name
    }

    fn config(&self) -> &ServerConfig {
        &self.upstream.config
    }

    /// The catalog of the current session, or the status that explains why there is none.
    pub fn catalog(&self) -> Result<Arc<SessionCatalog>, Status> {
        match self.upstream.status() {
            Status::Ready(session) => Ok(self.catalog_for(session)),
            other => Err(other),
        }
    }

    /// Like [`Endpoint::catalog`], but waits up to `wait` for a (re)connecting server.
    /// A session waiting for its user's web login stops the wait at once: only the user can
    /// end that wait, and the caller is better told to sign in.
    pub async fn catalog_waiting(&self, wait: Duration) -> Result<Arc<SessionCatalog>, Status> {
        let session = match self.upstream.authorizer.as_ref().filter(|a| a.is_web()) {
            Some(authorizer) => tokio::select! {
                ready = self.upstream.ready_session(wait) => ready?,
                () = login_pending(authorizer) => return Err(self.upstream.status()),
            },
            // Credentials the upstream refused are not retried into a 503: the caller is
            // told at once (a multi-user server asks its user for new secrets).
            None => tokio::select! {
                ready = self.upstream.ready_session(wait) => ready?,
                () = credentials_refused(&self.upstream) => return Err(self.upstream.status()),
            },
        };
        Ok(self.catalog_for(session))
    }

    /// The catalog of `session`, built once per generation. A multi-user server's new tool
    /// list is also published as its last known tools and written to the tool cache.
    pub(super) fn catalog_for(&self, session: Arc<Session>) -> Arc<SessionCatalog> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.session.generation == session.generation
        {
            return c.clone();
        }
        let config = self.config();
        // A multi-user server's sessions mostly show the same list: the catalog another
        // session built from it (its validators, its document) is shared, not built again.
        // Not when this session listed resources or prompts by name: those may be its user's
        // alone, and the shared catalog never names them.
        let offers = (
            session.listing.offers_resources,
            session.listing.offers_prompts,
        );
        let shared = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|_| !session.listing.names_anything())
            .filter(|last| {
                last.listing
                    .as_ref()
                    .is_some_and(|l| (l.offers_resources, l.offers_prompts) == offers)
            })
            .filter(|last| last.source.as_ref().is_some_and(|s| s.matches(&session)));
        if let Some(catalog) = shared {
            let built = Arc::new(SessionCatalog { session, catalog });
            *cache = Some(built.clone());
            return built;
        }
        let links = catalog::Links::of(config);
        let listing = Some(session.listing.clone());
        let build = |listing| {
            let offered = (config.expose, listing);
            let (name, tools) = (self.name(), &session.tools);
            Arc::new(catalog::build(
                name,
                tools,
                Some(&session),
                &self.spec,
                links,
                offered,
            ))
        };
        let catalog = build(listing);
        // A user's resources and prompts may be theirs alone: what other callers see of a
        // multi-user server has the routes, never the names one user's session listed.
        let shared = match config.multi_user {
            Some(_) if session.listing.names_anything() => {
                build(Some(Arc::new(session.listing.without_names())))
            }
            _ => catalog.clone(),
        };
        // A list that may be one user's (`per_user_tools`) is not written to the shared cache
        // (the file, or the shared store every replica reads).
        if let Some(multi) = &config.multi_user
            && !multi.per_user_tools
        {
            if let Some(tool_cache) = &self.spec.tool_cache {
                let (tool_cache, config, tools) =
                    (tool_cache.clone(), config.clone(), session.tools.clone());
                tokio::task::spawn_blocking(move || tool_cache.save(&config, &tools));
            }
            if let Some(shared) = SharedTools::installed() {
                let (config, tools) = (config.clone(), session.tools.clone());
                tokio::spawn(async move { shared.save(&config, &tools).await });
            }
        }
        let built = Arc::new(SessionCatalog {
            session,
            catalog: catalog.clone(),
        });
        *cache = Some(built.clone());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(shared);
        built
    }

    /// Closes the session (and stops a stdio child with its process group).
    pub async fn shutdown(&self) {
        self.upstream.shutdown().await;
    }
}

/// Returns once `authorizer`'s session is waiting for a web login.
async fn login_pending(authorizer: &Authorizer) {
    let mut login = authorizer.watch_login();
    // At once when the login is already pending; never when the authorizer is gone.
    let pending = login.wait_for(|state| matches!(state, LoginState::Pending { .. }));
    if pending.await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Returns once `upstream`'s last attempt failed because the upstream refused its credentials.
async fn credentials_refused(upstream: &crate::upstream::Upstream) {
    use crate::upstream::{Failure, Status};
    let mut status = upstream.subscribe();
    let _ = status
        .wait_for(|s| {
            matches!(
                s,
                Status::Connecting {
                    failure: Some(Failure::Refused(_)),
                    ..
                }
            )
        })
        .await;
    // A closed channel (the upstream stopped) is not a refusal: wait for the other branch.
    if !matches!(
        &*status.borrow(),
        Status::Connecting {
            failure: Some(Failure::Refused(_)),
            ..
        }
    ) {
        std::future::pending::<()>().await;
    }
}
