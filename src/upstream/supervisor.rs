//! The task behind each [`Upstream`](super::Upstream): authorize (OAuth), connect with a
//! timeout, publish the session, keep it alive (pings, `list_changed`), and reconnect with capped,
//! jittered backoff when it ends. Every state it reaches is published as a typed [`Status`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use rmcp::service::ServiceError;
use tokio::sync::{Notify, watch};

use super::{Failure, Listing, Session, Stats, Status, UpstreamOptions, connect};
use crate::config::ServerConfig;

pub(super) struct Supervisor {
    pub(super) config: ServerConfig,
    pub(super) options: UpstreamOptions,
    /// The server's OAuth client, kept across reconnects (tokens, registration, login state),
    /// or why its settings are unusable.
    pub(super) authorizer: Result<Option<crate::oauth::Authorizer>, String>,
    pub(super) status: watch::Sender<Status>,
    pub(super) shutdown: Arc<Notify>,
    pub(super) stats: Arc<Stats>,
    /// The server's tool list as known from another session, taken instead of listing it.
    pub(super) known_tools: Option<KnownTools>,
}

/// Where a session finds the server's tool list without listing it (see
/// [`Upstream::start_with_known_tools`](super::Upstream::start_with_known_tools)); `None` from
/// it means "list them".
pub type KnownTools = Arc<dyn Fn() -> Option<Arc<Vec<Tool>>> + Send + Sync>;

static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

impl Supervisor {
    pub(super) async fn run(self) {
        let name = self.config.name.clone();
        let mut attempts: u32 = 0;
        let mut had_session = false;
        let mut delay = self.options.reconnect_min_delay;
        loop {
            let failure = match &*self.status.borrow() {
                Status::Connecting { failure, .. } => failure.clone(),
                _ => None,
            };
            self.status.send_replace(Status::Connecting {
                attempts,
                failure,
                retry_at: None,
            });
            attempts += 1;
            let authorized = tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                // Boxed here and below: a future keeps room for its largest state for as long as it
                // lives, and the supervisor lives as long as its server. Inline, connecting (with
                // rmcp's handshake), the OAuth step, a ping and a tools refresh made it 11.4 KB
                // per server; boxed, they take memory only while they run (3 KB).
                r = Box::pin(self.ensure_tokens(attempts)) => r,
            };
            if let Err((failure, retry_after)) = authorized {
                tracing::warn!(server = %name, error = %failure, "OAuth authorization failed");
                let wait = retry_after.unwrap_or_else(|| jittered(delay));
                if !self.retry_after(attempts, failure, wait).await {
                    break;
                }
                delay = (delay * 2).min(self.options.reconnect_max_delay);
                continue;
            }
            let attempt = tokio::select! {
                biased;
                _ = self.shutdown.notified() => break,
                r = tokio::time::timeout(self.options.connect_timeout, Box::pin(self.connect())) => r,
            };
            let failure = match attempt {
                Ok(Ok(live)) => {
                    // A reconnect is any session after the first one, however many attempts
                    // it took (a crash followed by an immediate restart counts too).
                    if had_session {
                        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    had_session = true;
                    attempts = 0;
                    delay = self.options.reconnect_min_delay;
                    match self.serve(live).await {
                        Ended::Shutdown => break,
                        Ended::Lost(reason) => {
                            let failure = Failure::Lost(self.scrub(&reason));
                            tracing::warn!(server = %name, reason = %failure, "upstream connection lost; reconnecting");
                            failure
                        }
                    }
                }
                Ok(Err(err)) => {
                    // Logged as the failure: its text has URLs (in a stderr tail too) redacted.
                    let failure = match err {
                        connect::ConnectError::Refused(_) => {
                            Failure::Refused(self.scrub(&err.to_string()))
                        }
                        _ => Failure::Connect(self.scrub(&err.to_string())),
                    };
                    tracing::warn!(server = %name, error = %failure, "cannot connect to upstream");
                    failure
                }
                Err(_) => {
                    let failure = Failure::TimedOut(self.options.connect_timeout);
                    tracing::warn!(server = %name, "{failure}");
                    failure
                }
            };
            if !self.retry_after(attempts, failure, jittered(delay)).await {
                break;
            }
            delay = (delay * 2).min(self.options.reconnect_max_delay);
        }
        self.status.send_replace(Status::Stopped);
    }

    /// Publishes why the attempt failed and when the next starts, then waits for it; `false`
    /// when the daemon asked to stop meanwhile.
    async fn retry_after(&self, attempts: u32, failure: Failure, wait: Duration) -> bool {
        self.status.send_replace(Status::Connecting {
            attempts,
            failure: Some(failure),
            retry_at: Some(Instant::now() + wait),
        });
        tokio::select! {
            biased;
            _ = self.shutdown.notified() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }

    /// A failure's text without the secrets this (one user's) session was started with: an
    /// upstream's error body or a child's last words may quote them.
    fn scrub(&self, text: &str) -> String {
        match &self.config.multi_user {
            Some(multi) => multi.hidden.scrub(text).into_owned(),
            None => text.to_owned(),
        }
    }

    async fn connect(&self) -> Result<connect::Live, connect::ConnectError> {
        let authorizer = self.authorizer.as_ref().ok().and_then(Option::as_ref);
        let known = self.known_tools.as_ref().and_then(|known| known());
        connect::connect(&self.config, &self.options, authorizer, known).await
    }

    /// Makes sure an OAuth server has usable tokens before the (timed) connect: stored ones,
    /// or a login that may take minutes. While a login waits for the user, the status says so
    /// (with the sign-in URL), which is what 503 bodies show.
    async fn ensure_tokens(&self, attempts: u32) -> Result<(), (Failure, Option<Duration>)> {
        let auth = match &self.authorizer {
            Ok(Some(auth)) => auth,
            Ok(None) => return Ok(()),
            // Retrying cannot fix settings; wait long, the status says why.
            Err(reason) => {
                return Err((
                    Failure::BadSettings(reason.clone()),
                    Some(Duration::from_secs(3600)),
                ));
            }
        };
        let ensure = auth.ensure_authorized();
        tokio::pin!(ensure);
        // Pushed by the authorizer on every change; the current state is looked at first.
        let mut login = auth.watch_login();
        login.mark_changed();
        loop {
            tokio::select! {
                result = &mut ensure => {
                    return result.map_err(|e| (Failure::OAuth(e.to_string()), e.retry_after()));
                }
                Ok(()) = login.changed() => {
                    let state = login.borrow_and_update().clone();
                    if let crate::oauth::LoginState::Pending { url } = state {
                        let pending = Failure::LoginPending { url };
                        self.status.send_if_modified(|s| {
                            let changed = !matches!(s, Status::Connecting { failure: Some(f), .. } if *f == pending);
                            if changed {
                                *s = Status::Connecting { attempts, failure: Some(pending.clone()), retry_at: None };
                            }
                            changed
                        });
                    }
                }
            }
        }
    }

    /// Publishes the session and keeps its tool list current until the connection ends or
    /// the daemon asks us to stop.
    async fn serve(&self, live: connect::Live) -> Ended {
        let connect::Live {
            service,
            meta,
            tools,
            tools_changed,
            diagnostics,
        } = live;
        let name = &self.config.name;
        let peer = service.peer().clone();
        let call_timeout = self.config.timeout.unwrap_or(self.options.tool_timeout);
        let connected_at = Instant::now();
        let publish = |tools: Arc<Vec<Tool>>, listing: Arc<Listing>| {
            let tools = self.filter(tools);
            tracing::info!(server = %name, tools = tools.len(), "upstream ready");
            self.status.send_replace(Status::Ready(Arc::new(Session {
                generation: next_generation(),
                meta: meta.clone(),
                tools,
                connected_at,
                peer: peer.clone(),
                call_timeout,
                listing,
            })));
        };
        publish(tools, self.listing(&peer).await);
        let cancel = service.cancellation_token();
        let waiting = service.waiting();
        tokio::pin!(waiting);
        let keepalive = self.options.keepalive_interval;
        let mut ping = tokio::time::interval(if keepalive.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            keepalive
        });
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.notified() => {
                    cancel.cancel();
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
                    return Ended::Shutdown;
                }
                quit = &mut waiting => {
                    let mut reason = match quit {
                        Ok(q) => format!("session ended ({q:?})"),
                        Err(e) => format!("session task failed: {e}"),
                    };
                    if let Some(extra) = diagnostics.describe_exit().await {
                        reason.push_str(": ");
                        reason.push_str(&extra);
                    }
                    return Ended::Lost(reason);
                }
                _ = ping.tick(), if !keepalive.is_zero() => {
                    let probe = Box::pin(peer.send_request(rmcp::model::ClientRequest::PingRequest(Default::default())));
                    match tokio::time::timeout(self.options.connect_timeout.min(Duration::from_secs(15)), probe).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(ServiceError::McpError(_))) => {} // answered, even if it dislikes ping
                        Ok(Err(e)) => {
                            cancel.cancel();
                            return Ended::Lost(format!("keep-alive ping failed: {e}"));
                        }
                        Err(_) => {
                            cancel.cancel();
                            return Ended::Lost("keep-alive ping got no answer".into());
                        }
                    }
                }
                _ = tools_changed.notified() => {
                    match tokio::time::timeout(self.options.connect_timeout, Box::pin(connect::list_tools(&peer))).await {
                        // A resource or prompt list change wakes this too.
                        Ok(Ok(tools)) => publish(Arc::new(tools), self.listing(&peer).await),
                        Ok(Err(e)) => tracing::warn!(server = %name, error = %e, "tools/list after list_changed failed"),
                        Err(_) => tracing::warn!(server = %name, "tools/list after list_changed timed out"),
                    }
                }
            }
        }
    }

    /// The resources and prompts the server's specs show (what `expose` asks for).
    async fn listing(&self, peer: &rmcp::Peer<rmcp::RoleClient>) -> Arc<Listing> {
        let timeout = self.options.connect_timeout;
        let listing = Listing::fetch(&self.config.name, peer, self.config.expose, timeout);
        Arc::new(Box::pin(listing).await)
    }

    /// Leaves out `disabledTools`; a list without any of them is kept as it is (shared).
    fn filter(&self, tools: Arc<Vec<Tool>>) -> Arc<Vec<Tool>> {
        let disabled = &self.config.disabled_tools;
        if !tools.iter().any(|t| disabled.contains(t.name.as_ref())) {
            return tools;
        }
        let kept = tools
            .iter()
            .filter(|t| !disabled.contains(t.name.as_ref()))
            .cloned()
            .collect();
        Arc::new(kept)
    }
}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Adds up to 25% random jitter so many mcpo instances (or many users' sessions of one server)
/// don't retry in lockstep.
fn jittered(base: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    // The OS's generator (never fails on Linux after boot); without it, no jitter rather than
    // a panic.
    let _ = getrandom::getrandom(&mut bytes);
    base + base.mul_f64(jitter_fraction(u16::from_le_bytes(bytes)))
}

/// 0 to 0.25, evenly over the random value.
fn jitter_fraction(random: u16) -> f64 {
    f64::from(random) / f64::from(u16::MAX) / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        assert_eq!(jitter_fraction(0), 0.0);
        assert_eq!(jitter_fraction(u16::MAX), 0.25);
        let base = Duration::from_secs(4);
        let delays: Vec<Duration> = (0..64).map(|_| jittered(base)).collect();
        assert!(delays.iter().all(|d| *d >= base && *d <= base + base / 4));
        // 64 draws from the OS generator are not all equal (a constant would be no jitter).
        assert!(delays.iter().any(|d| *d != delays[0]));
    }
}
