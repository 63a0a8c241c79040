//! The per-user secrets side of a [`PerUser`] server: the config a user's session starts with
//! (templates filled in), trying secrets by starting the session with them before they are
//! stored, forgetting them, and what happens when the upstream refuses them.

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::store::{Secrets, StoreError};
use crate::support::caller::{Caller, Profile};
use crate::upstream::{Status, Upstream};

use super::super::credentials::user_values;
use super::{PerUser, SecretsNotTaken};

impl PerUser {
    /// The server's config for `user`'s session: templates filled in with their id, `profile`
    /// and `secrets` (else their stored ones, read from the store).
    pub(super) async fn config_for(
        &self,
        user: &Caller,
        profile: &Profile,
        secrets: Option<Secrets>,
    ) -> Result<ServerConfig, StoreError> {
        if self.settings.templates.is_empty() {
            return Ok(self.config.clone());
        }
        let secrets = match (secrets, &self.credentials) {
            (Some(secrets), _) => Some(secrets),
            (None, Some(credentials)) => credentials.load(user).await?,
            (None, None) => None,
        };
        Ok(self.config.for_user(&user_values(user, profile, secrets)))
    }

    /// Tries `secrets` for `user` by starting their session with them; stores them only when
    /// it comes up, and then that session serves the user (any older one is closed). The error
    /// says why not (the upstream refused them, the server exited…, or they could not be
    /// stored), never with a value.
    pub async fn try_secrets(
        &self,
        user: &Caller,
        profile: &Profile,
        secrets: Secrets,
    ) -> Result<(), SecretsNotTaken> {
        let Some(credentials) = &self.credentials else {
            return Err(SecretsNotTaken::Refused(format!(
                "server '{}' takes no user secrets",
                self.name()
            )));
        };
        let config = self
            .config_for(user, profile, Some(secrets.clone()))
            .await
            .map_err(SecretsNotTaken::NotSaved)?;
        let authorizer = self.authorizer(user).map_err(SecretsNotTaken::Refused)?;
        let upstream = Upstream::start(config, self.options.clone(), authorizer, Arc::default());
        let mut status = upstream.subscribe();
        let limit = self.options.connect_timeout + std::time::Duration::from_secs(1);
        let settled = tokio::time::timeout(
            limit,
            status.wait_for(|s| {
                matches!(
                    s,
                    Status::Ready(_)
                        | Status::Stopped
                        | Status::Connecting {
                            failure: Some(_),
                            ..
                        }
                )
            }),
        )
        .await
        .map(|r| r.map(|s| s.clone()));
        let why = match settled {
            Ok(Ok(Status::Ready(_))) => None,
            Ok(Ok(Status::Connecting {
                failure: Some(failure),
                ..
            })) => Some(failure.to_string()),
            Ok(_) => Some("the session stopped".to_owned()),
            Err(_) => Some(format!("the server did not answer within {limit:?}")),
        };
        if let Some(why) = why {
            upstream.shutdown().await;
            // Its failure text is already scrubbed of `secrets` (the session's `Hidden`).
            return Err(SecretsNotTaken::Refused(why));
        }
        // Not stored, not used: the session that came up with them closes, and the user is
        // told (a session other replicas cannot start would look like lost secrets later).
        if let Err(e) = credentials.save(user, &secrets).await {
            tracing::warn!(server = %self.name(), user = %user.log_id(), "a user's accepted secrets could not be stored: {e}");
            upstream.shutdown().await;
            return Err(SecretsNotTaken::NotSaved(e));
        }
        credentials.started_with(user, &secrets);
        if let Some(old) = self.pool.remove(user) {
            tokio::spawn(async move { old.shutdown().await });
        }
        // The page knows no email, name or role: a server that uses them gets its session
        // started by the user's next call, which carries their identity.
        if self.settings.templates.uses_profile() {
            upstream.shutdown().await;
        } else {
            let mut fresh = Some(upstream);
            self.insert(user, || fresh.take().expect("made once"));
            // A session that appeared meanwhile (the user's next call) is kept; this one closes.
            if let Some(unused) = fresh {
                unused.shutdown().await;
            }
        }
        Ok(())
    }

    /// Deletes `user`'s secrets and closes their session.
    pub async fn forget_secrets(&self, user: &Caller) -> Result<bool, StoreError> {
        let Some(credentials) = &self.credentials else {
            return Ok(false);
        };
        let had = credentials.forget(user).await?;
        if let Some(old) = self.pool.remove(user) {
            old.shutdown().await;
        }
        Ok(had)
    }

    /// The upstream refused `user`'s secrets: their session is closed (not retried against
    /// the upstream) and their next call asks for new ones.
    pub fn secrets_refused(&self, user: &Caller) {
        let Some(credentials) = &self.credentials else {
            return;
        };
        tracing::warn!(server = %self.name(), user = %user.log_id(), "the upstream refused the user's secrets; asking for new ones");
        credentials.mark_refused(user);
        if let Some(old) = self.pool.remove(user) {
            tokio::spawn(async move { old.shutdown().await });
        }
    }
}
