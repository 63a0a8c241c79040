//! Small shared utilities, each written once: leaves that depend on nothing else in mcpo and
//! that several modules use.
//!
//! - [`atomic_file`]: replace a file whole, durably (token files, the tool cache);
//! - [`bounded_map`]: a map with a bound on its entries and an expiry on each (the API-key
//!   cache);
//! - [`caller`]: the verified caller, the typed key of per-user sessions and tokens;
//! - [`error_chain()`]: an error and its causes as one line;
//! - [`html`]: the one HTML escape every rendered page goes through;
//! - [`http_client`]: every outbound HTTP client, with its timeout, proxy, TLS and redirect
//!   policy;
//! - [`private_dir`]: the check that a folder mcpo keeps secrets or trusted files in is its own;
//! - [`redact`]: URLs' userinfo, query and fragment hidden in error texts and log lines;
//! - [`sealed`]: the sealed-record format of every credential at rest (AEAD, owner as
//!   associated data).

pub(crate) mod atomic_file;
pub(crate) mod bounded_map;
pub(crate) mod caller;
mod error_chain;
pub(crate) mod html;
pub(crate) mod http_client;
pub(crate) mod private_dir;
pub(crate) mod redact;
pub mod sealed;

pub(crate) use error_chain::{causes, error_chain};
