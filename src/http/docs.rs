//! Specs, Swagger UI (served from assets compiled into the binary: no CDN), the root index,
//! liveness, and the JSON 404.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::catalog::{Catalog, ServerEntry};
use super::error::ApiError;
use super::tools::unavailable;
use crate::openapi::{self, SpecInfo};
use crate::upstream::Status;

fn json_bytes(bytes: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

fn server_or_404(state: &AppState, name: &str) -> Result<Arc<ServerEntry>, ApiError> {
    state
        .server(name)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}' is configured")))
}

pub async fn server_spec(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
) -> Result<Response, ApiError> {
    let entry = server_or_404(&state, &server)?;
    spec_of(&state, &entry)
}

pub async fn single_spec(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let entry = state
        .only_server()
        .ok_or_else(|| ApiError::NotFound("no server is configured".into()))?;
    spec_of(&state, &entry)
}

fn spec_of(state: &AppState, entry: &ServerEntry) -> Result<Response, ApiError> {
    let catalog = entry
        .catalog(&state.spec)
        .map_err(|s| unavailable(entry.name(), s))?;
    Ok(json_bytes(catalog.spec.clone()))
}

/// `GET /openapi.json`: every connected server's tools in one document, so Open WebUI can
/// register all of them with one URL. Servers still connecting are listed in the description.
pub async fn combined_spec(State(state): State<Arc<AppState>>) -> Response {
    let mut ready: Vec<(String, Arc<Catalog>)> = Vec::new();
    let mut waiting = Vec::new();
    let snapshot = state.registry.snapshot();
    for entry in snapshot.iter() {
        match entry.catalog(&state.spec) {
            Ok(c) => ready.push((entry.name().to_owned(), c)),
            Err(_) => waiting.push(entry.name().to_owned()),
        }
    }
    let bytes = state.combined.get(&ready, || {
        let o = &state.options;
        let mut description = o.description.clone();
        if !waiting.is_empty() {
            description.push_str(&format!(
                "\n\nNot connected yet (their tools are missing here): {}.",
                waiting.join(", ")
            ));
        }
        let links: Vec<String> = snapshot
            .iter()
            .map(|s| {
                format!(
                    "- [{name}]({base}/{name}/docs)",
                    name = s.name(),
                    base = state.spec.base
                )
            })
            .collect();
        description.push_str(&format!("\n\nServers:\n{}", links.join("\n")));
        let info = SpecInfo {
            title: o.name.clone(),
            version: o.api_version.clone(),
            description: Some(description),
            server_url: Some(if state.spec.root_path.is_empty() {
                "/".into()
            } else {
                state.spec.root_path.clone()
            }),
            api_key_security: o.api_key.is_some(),
        };
        let servers: Vec<(&str, &[openapi::PreparedTool])> = ready
            .iter()
            .map(|(n, c)| (n.as_str(), c.tools.as_slice()))
            .collect();
        let prefix = o.path_prefix.clone();
        let doc = openapi::combined_document(&info, &servers, |server, tool| {
            format!("{prefix}{server}/{tool}")
        });
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    });
    json_bytes(bytes)
}

/// `GET /`: a small machine-readable index of servers, their state and their URLs.
pub async fn index(State(state): State<Arc<AppState>>) -> Json<Value> {
    let base = &state.spec.base;
    let servers: Vec<Value> = state
        .registry
        .snapshot()
        .iter()
        .map(|s| {
            let name = s.name();
            let (status, tools, error) = match s.upstream.status() {
                Status::Ready(session) => ("connected", Some(session.tools.len()), None),
                Status::Connecting { last_error, .. } => ("connecting", None, last_error),
                Status::Stopped => ("stopped", None, None),
            };
            json!({
                "name": name,
                "status": status,
                "tools": tools,
                "last_error": error,
                "openapi": format!("{base}/{name}/openapi.json"),
                "docs": format!("{base}/{name}/docs"),
            })
        })
        .collect();
    let root = &state.spec.root_path;
    Json(json!({
        "name": state.options.name,
        "version": env!("CARGO_PKG_VERSION"),
        "openapi": format!("{root}/openapi.json"),
        "docs": format!("{root}/docs"),
        "servers": servers,
    }))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for '{}'", uri.path()))
}

pub async fn server_docs(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    server_or_404(&state, &server)?;
    let spec = format!("{}/{server}/openapi.json", state.spec.base);
    Ok(docs_page(&spec, &format!("{server} tools"), uri.path()))
}

pub async fn single_docs(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let spec = format!("{}/openapi.json", state.spec.base);
    docs_page(&spec, &state.options.name, uri.path())
}

pub async fn root_docs(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let spec = format!("{}/openapi.json", state.spec.root_path);
    docs_page(&spec, &state.options.name, uri.path())
}

pub async fn server_docs_asset(
    State(state): State<Arc<AppState>>,
    Path((server, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    server_or_404(&state, &server)?;
    let spec = format!("{}/{server}/openapi.json", state.spec.base);
    swagger_asset(&file, &spec)
}

pub async fn single_docs_asset(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let spec = format!("{}/openapi.json", state.spec.base);
    swagger_asset(&file, &spec)
}

pub async fn root_docs_asset(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let spec = format!("{}/openapi.json", state.spec.root_path);
    swagger_asset(&file, &spec)
}

/// Our own small HTML page, so the asset links work both at `…/docs` and `…/docs/` and behind
/// a reverse proxy (they are relative to the page).
fn docs_page(spec_url: &str, title: &str, path: &str) -> Response {
    let assets = if path.ends_with('/') { "./" } else { "docs/" };
    let title = html_escape(title);
    let spec = serde_json::to_string(spec_url).unwrap_or_else(|_| "\"\"".into());
    Html(format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{assets}swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script src="{assets}swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({{url: {spec}, dom_id: "#swagger-ui", deepLinking: true,
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout"}});</script>
</body></html>"##
    ))
    .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn swagger_asset(file: &str, spec_url: &str) -> Result<Response, ApiError> {
    let config = Arc::new(utoipa_swagger_ui::Config::from(spec_url.to_owned()));
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(f)) => {
            let mut resp = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, f.content_type)],
                f.bytes.into_owned(),
            )
                .into_response();
            if f.gzpipped {
                resp.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Ok(resp)
        }
        Ok(None) | Err(_) => Err(ApiError::NotFound(format!("no docs asset '{file}'"))),
    }
}
