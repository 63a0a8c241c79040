//! Specs, Swagger UI (served from assets compiled into the binary: no CDN), the root index
//! and the JSON 404. Health routes are in `health.rs`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::caller::{Caller, identify};
use super::error::ApiError;
use crate::openapi::{self, SpecInfo};
use crate::servers::{Catalog, Kind, LOGIN_PATH, Server, SpecContext};

/// A spec's cached bytes, with its ETag, as gzip when accepted (`spec_bytes.rs`).
fn json_bytes(bytes: Bytes, headers: &HeaderMap) -> Response {
    super::spec_bytes::json_document(bytes, headers)
}

fn server_or_404(state: &AppState, name: &str) -> Result<Arc<Server>, ApiError> {
    state
        .server(name)
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}' is configured")))
}

pub async fn server_spec(
    State(state): State<Arc<AppState>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = match server_or_404(&state, &server) {
        Ok(entry) => spec_of(&state, &entry, &headers).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

pub async fn single_spec(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = match state.only_server() {
        Some(entry) => spec_of(&state, &entry, &headers).await,
        None => Err(ApiError::NotFound("no server is configured".into())),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// How long a user's spec fetch may wait for their own session to come up before falling back
/// to the server's known tool list (Open WebUI gives a spec fetch 10 s).
const USER_SPEC_WAIT: std::time::Duration = std::time::Duration::from_secs(6);

async fn spec_of(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let caller = identify(state, server.multi_user(), headers, false).await?;
    match server.kind() {
        Kind::Shared(endpoint) => match endpoint.catalog() {
            Ok(live) => Ok(json_bytes(live.catalog.spec.clone(), headers)),
            Err(status) => Err(ApiError::unavailable(server.name(), status.into())),
        },
        Kind::PerUser(per_user) => {
            if let Caller::User(_) = &caller
                && let Some(own) = per_user.signed_in_endpoint(&caller).await
                && let Ok(live) = own.catalog_waiting(USER_SPEC_WAIT).await
            {
                return Ok(json_bytes(live.catalog.spec.clone(), headers));
            }
            // Multi-user specs never fail: the last known tools, or none yet.
            let spec = match per_user.catalog() {
                Some(catalog) => catalog.spec.clone(),
                None => empty_spec(server.name(), state.spec()),
            };
            Ok(json_bytes(spec, headers))
        }
    }
}

/// `GET /openapi.json`: every connected server's tools in one document, so Open WebUI can
/// register all of them with one URL. Servers still connecting are listed in the description.
pub async fn combined_spec(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut ready: Vec<(String, Arc<Catalog>)> = Vec::new();
    let mut waiting = Vec::new();
    let snapshot = state.registry.snapshot();
    for server in snapshot.iter() {
        match server.catalog() {
            Some(c) => ready.push((server.name().to_owned(), c)),
            None => waiting.push(server.name().to_owned()),
        }
    }
    let spec = state.spec();
    let bytes = state.registry.combined.get(&ready, || {
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
                    base = spec.base
                )
            })
            .collect();
        description.push_str(&format!("\n\nServers:\n{}", links.join("\n")));
        let info = SpecInfo {
            title: o.name.clone(),
            version: o.api_version.clone(),
            description: Some(description),
            server_url: Some(if spec.root_path.is_empty() {
                "/".into()
            } else {
                spec.root_path.clone()
            }),
            api_key_security: o.api_key.is_some(),
        };
        let servers: Vec<(&str, &[openapi::PreparedTool])> = ready
            .iter()
            .map(|(n, c)| (n.as_str(), if c.expose.tools { &c.tools[..] } else { &[] }))
            .collect();
        let prefix = o.path_prefix.clone();
        let mut doc = openapi::combined_document(&info, &servers, |server, tool| {
            format!("{prefix}{server}/{tool}")
        });
        for (name, _) in &ready {
            if snapshot.get(name).is_some_and(|e| e.logins().is_some()) {
                let path = format!("{prefix}{name}{LOGIN_PATH}");
                openapi::add_login_operation(&mut doc, name, &path, &format!("{name}_login"));
            }
        }
        for (name, catalog) in &ready {
            let offered = (catalog.listing.as_deref(), catalog.expose);
            crate::servers::add_offerings(&mut doc, offered, &prefix, name);
        }
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    });
    json_bytes(bytes, &headers)
}

/// `GET /`: a small machine-readable index of servers, their state and their URLs. `state` is
/// the server's state word (`docs/configuration.md`, "Server states"); `status` the coarse one
/// earlier versions had. No failure texts: `/` is open unless `--strict-auth`, and they carry
/// stderr tails, upstream URLs and the pending login's authorization URL; `/status` has them.
pub async fn index(State(state): State<Arc<AppState>>) -> Json<Value> {
    let base = &state.spec().base;
    let servers: Vec<Value> = state
        .registry
        .snapshot()
        .iter()
        .map(|s| {
            let name = s.name();
            let server_state = s.state();
            json!({
                "name": name,
                "status": server_state.coarse_word(),
                "state": server_state.word(),
                "tools": server_state.tools(),
                "openapi": format!("{base}/{name}/openapi.json"),
                "docs": format!("{base}/{name}/docs"),
            })
        })
        .collect();
    let root = &state.spec().root_path;
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
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let entry = server_or_404(&state, &server)?;
    docs_guard(&state, &entry, &headers).await?;
    let spec = format!("{}/{server}/openapi.json", state.spec().base);
    Ok(docs_page(&spec, &format!("{server} tools"), uri.path()))
}

pub async fn single_docs(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(e) = identify(&state, None, &headers, false).await {
        return e.into_response();
    }
    let spec = format!("{}/openapi.json", state.spec().base);
    docs_page(&spec, &state.options.name, uri.path())
}

pub async fn root_docs(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let spec = format!("{}/openapi.json", state.spec().root_path);
    docs_page(&spec, &state.options.name, uri.path())
}

pub async fn server_docs_asset(
    State(state): State<Arc<AppState>>,
    Path((server, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let entry = server_or_404(&state, &server)?;
    docs_guard(&state, &entry, &headers).await?;
    swagger_asset(&file, &headers)
}

pub async fn single_docs_asset(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    identify(&state, None, &headers, false).await?;
    swagger_asset(&file, &headers)
}

pub async fn root_docs_asset(
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    swagger_asset(&file, &headers)
}

/// Docs pages follow the same rule as specs (open unless `--strict-auth`).
async fn docs_guard(
    state: &AppState,
    server: &Server,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    identify(state, server.multi_user(), headers, false)
        .await
        .map(|_| ())
}

/// A document with no operations, for a multi-user server whose tools are not known yet.
fn empty_spec(server: &str, ctx: &SpecContext) -> Bytes {
    let info = SpecInfo {
        title: server.to_owned(),
        version: "0.0.0".into(),
        description: Some(format!(
            "The tools of '{server}' are not known yet; they appear once a user has connected."
        )),
        server_url: Some(format!("{}/{server}", ctx.base)),
        api_key_security: ctx.api_key_security,
    };
    let doc = openapi::server_document(&info, server, &[], |t| format!("/{t}"));
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// Our own small HTML page, so the asset links work both at `…/docs` and `…/docs/` and behind
/// a reverse proxy (they are relative to the page).
fn docs_page(spec_url: &str, title: &str, path: &str) -> Response {
    let assets = if path.ends_with('/') { "./" } else { "docs/" };
    let title = crate::support::html::escape(title);
    let spec = script_string(spec_url);
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

/// `text` as a JavaScript string literal safe inside an inline `<script>`: JSON with `<`, `>`
/// and `&` written as `\u003c`… (so neither `</script>` nor `<!--` can end or bend the script
/// element, whatever `--root-path` says) and U+2028/U+2029 escaped (older engines end a string
/// literal at them).
fn script_string(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn swagger_asset(file: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    super::swagger::asset(file, headers)
        .ok_or_else(|| ApiError::NotFound(format!("no docs asset '{file}'")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn script_strings_cannot_end_the_script() {
        let s = super::script_string("/</script><!--&\u{2028}\u{2029}\"x");
        assert_eq!(s, r#""/\u003c/script\u003e\u003c!--\u0026\u2028\u2029\"x""#);
        let back: String = serde_json::from_str(&s).expect("still a JSON string");
        assert_eq!(back, "/</script><!--&\u{2028}\u{2029}\"x");
    }
}
