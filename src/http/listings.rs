//! `GET {server}/{name}`: the one GET a tool's route answers. `resources` and `prompts` are
//! the server's listings ([`super::resources`], [`super::prompts`]); any other name is a tool,
//! which is called with POST.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::{prompts, resources};

/// `GET {server}/{name}`: `resources` and `prompts` are listings; any other name is a tool,
/// which is called with POST.
pub async fn get_named(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match params.get("tool").map(String::as_str) {
        Some("resources") => resources::list(&state, &params, &headers).await,
        Some("prompts") => prompts::list(&state, &params, &headers).await,
        _ => Err(ApiError::MethodNotAllowed {
            message: "tools are called with POST and a JSON body".into(),
            allow: "POST",
        }),
    }
}
