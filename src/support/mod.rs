//! Small shared utilities, each written once: leaves that depend on nothing else in mcpo and
//! that several modules use.
//!
//! - [`atomic_file`]: replace a file whole, durably (token files, the tool cache);
//! - [`html`]: the one HTML escape every rendered page goes through;
//! - [`http_client`]: every outbound HTTP client, with its timeout, proxy, TLS and redirect
//!   policy.

pub(crate) mod atomic_file;
pub(crate) mod html;
pub(crate) mod http_client;
