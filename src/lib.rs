//! mcpo: publish the tools of MCP servers as a plain HTTP/OpenAPI tool server.
//!
//! Data flows one way: [`config`] → [`upstream`] sessions → [`openapi`] specs and [`http`] routes.
//! See `docs/architecture.md` for the module map and a request's way through it.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod http;
pub mod oauth;
pub mod openapi;
pub mod reload;
pub mod sessions;
mod support;
pub mod upstream;
