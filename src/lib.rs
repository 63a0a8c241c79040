//! mcpo: publish the tools of MCP servers as a plain HTTP/OpenAPI tool server.
//!
//! Data flows one way: [`config`] → [`upstream`] sessions and [`oauth`] clients → [`servers`]
//! (what is served, to whom, in what state) → [`http`] routes; [`openapi`] is a pure leaf.
//! See `docs/architecture.md` for the module map and a request's way through it.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod oauth;
pub mod openapi;
pub mod reload;
pub mod servers;
pub mod store;
mod support;
/// URLs' userinfo, query and fragment hidden (`support::redact`), for the log writer in
/// `main.rs`, which lives outside the library.
pub use support::redact::urls_in as redact_urls;
pub mod upstream;

/// The shape rules of `docs/architecture.md` (layers, no file cycles), checked on the source.
#[cfg(test)]
mod layers;
