//! Where mcpo keeps what outlives a request: OAuth tokens and client registrations (through
//! `oauth::store`), users' secrets ([`user_secrets`]), and, with a shared store, web logins in
//! progress, one-time tickets ([`ticket`]) and locks. The file store (the token folder, `~/.mcpo/tokens`) is
//! the default; `--store redis://…` puts the same sealed records in a Redis that several
//! replicas share ([`records`], [`redis`]). Every record is sealed (`support::sealed`) under
//! the store key ([`key`]).

pub mod error;
pub mod file_lock;
pub mod folder;
pub mod key;
pub mod location;
pub mod migrate;
pub mod records;
pub mod redis;
pub mod shared;
pub mod ticket;
pub mod user_secrets;

pub use error::StoreError;
pub use folder::{TOKEN_DIR_ENV, default_token_dir};
pub use location::{Location, RedisLocation};
pub use records::Records;
pub use shared::StoreStatus;
pub use user_secrets::{RecordSecrets, SecretStore, Secrets};
