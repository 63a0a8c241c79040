//! What is served, to whom, and in what state: the layer between the upstream sessions
//! ([`crate::upstream`], [`crate::oauth`]) and the HTTP side ([`crate::http`]), which only asks it.
//!
//! - [`Registry`] owns the live set and applies a reload as one diff (added servers start,
//!   removed ones stop, changed ones restart, unchanged ones keep their sessions and calls).
//! - A [`Server`] is shared (one [`Endpoint`] for every caller) or multi-user ([`PerUser`]: an
//!   endpoint per caller from a bounded [`pool`], the last known tools, web logins for OAuth);
//!   [`Server::route`] picks a caller's endpoint or says why there is none ([`Refusal`]).
//! - An endpoint's [`Catalog`] (prepared tools + spec) is built once per tool list; multi-user
//!   servers keep their last one on disk ([`tool_cache`]).
//! - [`ServerState`] is the one vocabulary of every state report.
//!
//! Nothing here knows about HTTP requests or statuses.

mod catalog;
pub mod credentials;
mod endpoint;
mod offerings;
mod per_user;
pub mod pool;
mod registry;
mod server;
mod state;
pub mod tool_cache;

pub use catalog::{
    CREDENTIALS_PATH, Catalog, CombinedCache, LOGIN_PATH, SessionCatalog, SpecContext,
};
pub use endpoint::Endpoint;
pub use offerings::add_to_combined as add_offerings;
pub use per_user::{NoEndpoint, PerUser, SecretsNotTaken};
pub use registry::{Registry, ReloadSummary, Servers};
pub use server::{Kind, Refusal, Server, shared_upstream};
pub use state::ServerState;
