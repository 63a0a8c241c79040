//! Where per-user data other than OAuth tokens is kept: today the secrets users supply for
//! multi-user servers ([`user_secrets`]). Every record is sealed (`support::sealed`) under
//! the same store key as the token files, in the same token folder.

pub mod user_secrets;

pub use user_secrets::{FileSecrets, SecretStore, Secrets};
