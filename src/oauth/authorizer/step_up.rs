//! Step-up bookkeeping: how many logins for more scope (403 `insufficient_scope`) were made
//! for one scope set, so a server that keeps refusing cannot send mcpo into a login loop.
//! Pure: the time is passed in.

use std::time::{Duration, Instant};

/// Step-up logins made for one scope set.
#[derive(Debug, Default)]
pub(super) struct StepUps {
    /// The scope set asked for (sorted, without repeats).
    scopes: Vec<String>,
    count: u32,
    /// Once `count` reached the limit: no step-up for this scope set before then.
    cool_down_until: Option<Instant>,
}

impl StepUps {
    /// Counts a step-up login asking for `scopes` at `now`, or says why none may be made: at
    /// most `max` per scope set, then none until `wait` (at least 1 s) has passed. Another
    /// scope set starts a new count.
    pub(super) fn allow(
        &mut self,
        scopes: &[String],
        max: u32,
        wait: Duration,
        now: Instant,
    ) -> Result<(), String> {
        let mut key = scopes.to_vec();
        key.sort();
        key.dedup();
        if self.scopes != key || self.cool_down_until.is_some_and(|until| until <= now) {
            *self = StepUps {
                scopes: key,
                count: 0,
                cool_down_until: None,
            };
        }
        if self.count >= max {
            let left = self
                .cool_down_until
                .map(|until| until.saturating_duration_since(now).as_secs())
                .unwrap_or_default();
            return Err(format!(
                "the server still answers 403 insufficient_scope after {max} step-up logins \
                 for scope '{}'; no new login for {left} s",
                self.scopes.join(" ")
            ));
        }
        self.count += 1;
        if self.count >= max {
            self.cool_down_until = Some(now + wait.max(Duration::from_secs(1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const WAIT: Duration = Duration::from_secs(60);

    #[test]
    fn at_most_max_per_scope_set_then_a_cool_down() {
        let t0 = Instant::now();
        let mut step_ups = StepUps::default();
        let wanted = scopes(&["b", "a"]);
        for _ in 0..3 {
            assert!(step_ups.allow(&wanted, 3, WAIT, t0).is_ok());
        }
        let refused = step_ups
            .allow(
                &scopes(&["a", "b", "a"]),
                3,
                WAIT,
                t0 + Duration::from_secs(20),
            )
            .unwrap_err();
        assert!(
            refused.contains("after 3 step-up logins for scope 'a b'; no new login for 40 s"),
            "{refused}"
        );
        // The cool-down over, the count starts again.
        assert!(step_ups.allow(&wanted, 3, WAIT, t0 + WAIT).is_ok());
    }

    #[test]
    fn another_scope_set_starts_a_new_count() {
        let t0 = Instant::now();
        let mut step_ups = StepUps::default();
        assert!(step_ups.allow(&scopes(&["a"]), 1, WAIT, t0).is_ok());
        assert!(step_ups.allow(&scopes(&["a"]), 1, WAIT, t0).is_err());
        assert!(step_ups.allow(&scopes(&["a", "b"]), 1, WAIT, t0).is_ok());
    }

    #[test]
    fn the_cool_down_is_at_least_a_second() {
        let t0 = Instant::now();
        let mut step_ups = StepUps::default();
        assert!(
            step_ups
                .allow(&scopes(&["a"]), 1, Duration::ZERO, t0)
                .is_ok()
        );
        assert!(
            step_ups
                .allow(&scopes(&["a"]), 1, Duration::ZERO, t0)
                .is_err()
        );
        let later = t0 + Duration::from_secs(1);
        assert!(
            step_ups
                .allow(&scopes(&["a"]), 1, Duration::ZERO, later)
                .is_ok()
        );
    }
}
