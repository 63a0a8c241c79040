//! The login state machine of one authorizer and the cool-down after failed logins. Pure:
//! every transition takes the time it happens at, so the rules are tested with a made-up
//! clock.

use std::time::{Duration, Instant};

/// Default first cool-down after a login the user did not complete.
pub(super) const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);
/// Longest cool-down, reached by doubling.
const MAX_COOL_DOWN: Duration = Duration::from_secs(15 * 60);

/// Where a server's login stands, for status pages and 503 bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginState {
    /// Nothing checked yet.
    Unknown,
    /// Tokens are there and were usable at the last check.
    Authorized,
    /// A login is under way; `url` is where the user signs in, once known.
    Pending { url: Option<String> },
    /// The last attempt failed. `retry_after`: time left before mcpo will start another
    /// interactive login on its own (`None`: it may retry at any time).
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// What an authorizer remembers about its logins.
#[derive(Debug)]
pub(super) struct LoginRecord {
    state: LoginState,
    cool_down_until: Option<Instant>,
    /// Failed logins in a row that imposed a cool-down; each one doubles the next wait.
    failures: u32,
}

impl LoginRecord {
    pub(super) fn new() -> Self {
        LoginRecord {
            state: LoginState::Unknown,
            cool_down_until: None,
            failures: 0,
        }
    }

    /// The state at `now`; a failure says how long its cool-down still runs.
    pub(super) fn state(&self, now: Instant) -> LoginState {
        match &self.state {
            LoginState::Failed { reason, .. } => LoginState::Failed {
                reason: reason.clone(),
                retry_after: self.left(now),
            },
            other => other.clone(),
        }
    }

    /// A login is under way (`url`: where the user signs in, once known).
    pub(super) fn pending(&mut self, url: Option<String>) {
        self.state = LoginState::Pending { url };
    }

    /// Usable tokens: no cool-down, and the next failure starts from the first wait again.
    pub(super) fn authorized(&mut self) {
        self.state = LoginState::Authorized;
        self.cool_down_until = None;
        self.failures = 0;
    }

    /// An attempt failed at `now`. `cool_down` (the first wait) when the user had been asked:
    /// retrying at once would open another browser window, so the wait doubles with each
    /// such failure in a row, up to 15 min (or the first wait, if longer).
    pub(super) fn failed(&mut self, reason: String, cool_down: Option<Duration>, now: Instant) {
        if let Some(base) = cool_down {
            let wait = base
                .saturating_mul(1 << self.failures.min(10))
                .min(MAX_COOL_DOWN.max(base));
            self.failures = self.failures.saturating_add(1);
            self.cool_down_until = Some(now + wait);
        }
        self.state = LoginState::Failed {
            reason,
            retry_after: None,
        };
    }

    /// A login abandoned half-way (its future dropped) leaves a failure, not a login that
    /// looks under way forever.
    pub(super) fn interrupted(&mut self) {
        if let LoginState::Pending { .. } = self.state {
            self.state = LoginState::Failed {
                reason: "the login was interrupted".to_owned(),
                retry_after: None,
            };
        }
    }

    /// While a cool-down runs at `now`: why the last login failed and how long is left.
    pub(super) fn cooling_down(&self, now: Instant) -> Option<(String, Duration)> {
        let left = self.left(now)?;
        let reason = match &self.state {
            LoginState::Failed { reason, .. } => reason.clone(),
            _ => "the last login did not complete".to_owned(),
        };
        Some((reason, left))
    }

    fn left(&self, now: Instant) -> Option<Duration> {
        self.cool_down_until?
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn retry_after(record: &LoginRecord, now: Instant) -> Option<Duration> {
        match record.state(now) {
            LoginState::Failed { retry_after, .. } => retry_after,
            other => panic!("not failed: {other:?}"),
        }
    }

    #[test]
    fn a_failure_after_asking_the_user_cools_down_doubling_up_to_the_cap() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        assert_eq!(record.state(t0), LoginState::Unknown);
        let mut waits = Vec::new();
        for i in 0..7 {
            let now = t0 + Duration::from_secs(10_000 * i);
            record.failed("denied".to_owned(), Some(MIN), now);
            waits.push(retry_after(&record, now).unwrap().as_secs());
        }
        assert_eq!(waits, [60, 120, 240, 480, 900, 900, 900]);
        // A first wait beyond the cap is kept as it is.
        let mut record = LoginRecord::new();
        record.failed("denied".to_owned(), Some(MIN * 20), t0);
        record.failed("denied".to_owned(), Some(MIN * 20), t0);
        assert_eq!(retry_after(&record, t0), Some(MIN * 20));
    }

    #[test]
    fn the_cool_down_counts_down_and_ends() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        record.failed("nobody signed in".to_owned(), Some(MIN), t0);
        let later = t0 + Duration::from_secs(45);
        assert_eq!(retry_after(&record, later), Some(Duration::from_secs(15)));
        assert_eq!(
            record.cooling_down(later),
            Some(("nobody signed in".to_owned(), Duration::from_secs(15)))
        );
        assert_eq!(record.cooling_down(t0 + MIN), None);
        assert_eq!(retry_after(&record, t0 + MIN), None);
    }

    #[test]
    fn a_failure_before_asking_the_user_imposes_no_wait() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        record.failed("discovery failed".to_owned(), None, t0);
        assert_eq!(
            record.state(t0),
            LoginState::Failed {
                reason: "discovery failed".to_owned(),
                retry_after: None
            }
        );
        assert_eq!(record.cooling_down(t0), None);
    }

    #[test]
    fn signing_in_resets_the_doubling() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        record.failed("denied".to_owned(), Some(MIN), t0);
        record.failed("denied".to_owned(), Some(MIN), t0);
        record.authorized();
        assert_eq!(record.state(t0), LoginState::Authorized);
        assert_eq!(record.cooling_down(t0), None);
        record.failed("denied".to_owned(), Some(MIN), t0);
        assert_eq!(retry_after(&record, t0), Some(MIN));
    }

    #[test]
    fn a_new_login_during_a_cool_down_keeps_the_wait_with_a_generic_reason() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        record.failed("denied".to_owned(), Some(MIN), t0);
        record.pending(None);
        let (reason, left) = record.cooling_down(t0).unwrap();
        assert_eq!(reason, "the last login did not complete");
        assert_eq!(left, MIN);
    }

    #[test]
    fn an_interrupted_login_is_a_failure_but_tokens_stay_authorized() {
        let t0 = Instant::now();
        let mut record = LoginRecord::new();
        record.pending(Some("https://as.example/authorize".to_owned()));
        assert_eq!(
            record.state(t0),
            LoginState::Pending {
                url: Some("https://as.example/authorize".to_owned())
            }
        );
        record.interrupted();
        assert_eq!(
            record.state(t0),
            LoginState::Failed {
                reason: "the login was interrupted".to_owned(),
                retry_after: None
            }
        );
        record.authorized();
        record.interrupted();
        assert_eq!(record.state(t0), LoginState::Authorized);
    }
}
