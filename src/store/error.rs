//! The store's one error type.

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The shared store did not answer: nothing was read or written; a 503 naming it.
    #[error("the store {store} is unavailable ({why})")]
    Unavailable { store: String, why: String },
    /// Anything else (a token folder that is not mcpo's own, a failed write…).
    #[error("{0}")]
    Io(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl From<StoreError> for std::io::Error {
    fn from(e: StoreError) -> Self {
        std::io::Error::other(e.to_string())
    }
}
