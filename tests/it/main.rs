//! Every integration test, as one test crate. Each file directly under `tests/` is linked as
//! a crate of its own (the whole `mcpo` library plus the shared helpers, again and again); as
//! modules of this one crate they are compiled and linked once. A test keeps the name of the
//! file it came from as its module path: `cargo test --test it oauth_daemon::` runs what
//! `cargo test --test oauth_daemon` used to.
//!
//! Within this binary, libtest runs tests on as many threads as there are CPUs (as it did in
//! each former binary), so no more tests run at once than before; tests that must not share
//! the machine say so themselves.

#[path = "../common/mod.rs"]
mod common;
#[path = "../oauth/peers.rs"]
mod peers;

mod auth_cli;
mod bridge;
mod commands;
mod demo;
mod docs_examples;
mod fixture_oauth;
mod hardening_browsers;
mod hardening_callers;
mod hardening_docs_page;
mod hardening_error_details;
mod hardening_fake_http;
mod hardening_limits;
mod hardening_logs;
mod hardening_oauth;
mod hardening_per_user_tools;
mod hardening_processes;
mod hardening_redirects;
mod hardening_secrets;
mod hardening_token_dir;
mod hardening_tool_cache;
mod hardening_tool_names;
mod hardening_web_login;
mod metrics;
mod multi_user;
mod multi_user_oauth;
mod oauth;
mod oauth_daemon;
mod oauth_store;
mod prompts;
mod redis_harness;
mod replicas_oauth;
mod replicas_secrets;
mod resilience;
mod resources;
mod resources_hostile;
mod resources_spec;
mod result_limit;
mod sandbox;
mod spec_cache;
mod store_migrate;
mod store_redis_ops;
mod transports;
mod user_secrets;
