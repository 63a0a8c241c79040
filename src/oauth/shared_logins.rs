//! Web logins in progress in the shared store, so the callback of a login begun on one
//! replica can be finished on another (a load balancer sends the browser's return anywhere).
//!
//! One record per login, `login/<server>/<digest of state>`, sealed like every record (owner
//! kind `login`, the server), expiring with the login: whom it signs in, the secret of the
//! browser's cookie, mcpo's callback URL and rmcp's PKCE state (the verifier). It is taken
//! (read and deleted in one step) before the code is exchanged, so of two replicas that get
//! the same response, one exchanges it.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::auth::StoredAuthorizationState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::StoreError;
use crate::store::folder::folder_name;
use crate::store::redis::RedisStore;
use crate::support::caller::Caller;
use crate::support::sealed::{self, Owner};

/// The owner kind login records are sealed as.
const KIND: &str = "login";

/// A login in progress, as every replica sees it.
#[derive(Serialize, Deserialize)]
pub(super) struct SharedLogin {
    pub user: Caller,
    /// The secret of the cookie the starting browser got.
    pub browser: String,
    /// mcpo's callback URL the authorization was made with.
    pub redirect_uri: String,
    /// rmcp's PKCE state of the login.
    pub pkce: StoredAuthorizationState,
}

/// The logins in progress of one server in the shared store.
pub(super) struct SharedLogins {
    store: Arc<RedisStore>,
    server: String,
}

impl SharedLogins {
    /// `server`'s, when a shared store is installed.
    pub fn of(server: &str) -> Option<SharedLogins> {
        Some(SharedLogins {
            store: crate::store::shared::shared()?.clone(),
            server: server.to_owned(),
        })
    }

    fn name(&self, state: &str) -> String {
        let digest = Sha256::digest(state.as_bytes());
        format!(
            "login/{}/{}",
            folder_name(&self.server),
            base16ct::lower::encode_string(&digest[..16])
        )
    }

    fn owner(&self) -> Owner {
        Owner {
            kind: KIND.to_owned(),
            server: self.server.clone(),
            user: None,
        }
    }

    fn key(&self) -> Result<Arc<sealed::StoreKey>, StoreError> {
        crate::store::key::given()
            .map(|k| k.key)
            .ok_or_else(|| StoreError::Io("the shared store has no store key".to_owned()))
    }

    /// Keeps `login` for `ttl`.
    pub async fn put(
        &self,
        state: &str,
        login: &SharedLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(login).map_err(|e| StoreError::Io(e.to_string()))?;
        let bytes = sealed::seal(&*self.key()?, &self.owner(), &json)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        self.store.put_for(&self.name(state), &bytes, ttl).await
    }

    /// The login with `state`, if it is still in progress.
    pub async fn get(&self, state: &str) -> Result<Option<SharedLogin>, StoreError> {
        let Some(bytes) = self.store.get(&self.name(state)).await? else {
            return Ok(None);
        };
        let plain = sealed::open(&*self.key()?, &self.owner(), &bytes)
            .map_err(|e| StoreError::Io(format!("a login record does not open: {e}")))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| StoreError::Io(format!("a login record is not valid: {e}")))
    }

    /// Takes the login with `state` out of the store: `true` for the one caller that did.
    pub async fn take(&self, state: &str) -> Result<bool, StoreError> {
        Ok(self.store.take(&self.name(state)).await?.is_some())
    }
}
