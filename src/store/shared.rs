//! The process's shared store (`--store redis://…`), installed once at start-up like the
//! store key, and its state for `/status`, `/readyz` and `/metrics`.

use std::sync::{Arc, OnceLock};

use super::redis::RedisStore;

/// The process's shared store, when `--store` names one.
static SHARED: OnceLock<Arc<RedisStore>> = OnceLock::new();

/// Installs the shared store for the whole process (at start-up, inside the runtime).
pub fn install(store: Arc<RedisStore>) {
    let _ = SHARED.set(store);
}

/// The shared store, when one is installed.
pub fn shared() -> Option<&'static Arc<RedisStore>> {
    SHARED.get()
}

/// The shared store's state, for `/status` and `/readyz`: `None` with the file store.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoreStatus {
    /// The URL without its password.
    pub store: String,
    /// `available` or `unavailable`.
    pub state: &'static str,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The shared store's state, when there is one.
pub fn status() -> Option<StoreStatus> {
    let store = shared()?;
    let available = store.available();
    Some(StoreStatus {
        store: store.shown(),
        state: if available {
            "available"
        } else {
            "unavailable"
        },
        error: store.last_error(),
    })
}
