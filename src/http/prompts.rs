//! A server's MCP prompts over HTTP, through the caller's own session: `GET {server}/prompts`
//! (every page of `prompts/list`) and `POST {server}/prompts/{name}` with the arguments as a
//! JSON object (`prompts/get`), its messages' content mapped like tool results. `{name}` is the
//! prompt's published name (`openapi::path_segment`), as in the spec. A server that did not
//! declare the `prompts` capability has none of them (404).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ContentBlock, GetPromptResult, JsonObject, Prompt};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::session::{self, Opened, server_of};
use super::{reply, resources, tools};
use crate::openapi::path_segment;
use crate::servers::Server;

/// The caller's session of the server, if it offers prompts.
async fn open(state: &AppState, server: &Server, headers: &HeaderMap) -> Result<Opened, ApiError> {
    session::open_offering(state, server, headers, session::Offering::Prompts).await
}

/// `GET {server}/prompts`.
pub(super) async fn list(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let server = server_of(state, params)?;
    let opened = open(state, &server, headers).await?;
    let name = server.name();
    let listed = session::run(state, &server, &opened, "prompts/list", async {
        let list = opened.session.list_prompts().await;
        list.map_err(|e| session::upstream_error(name, "prompts/list", e))
    })
    .await?;
    Ok(Json(json!({ "prompts": listed })).into_response())
}

/// `POST {server}/prompts/{name}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let server = server_of(&state, &params)?;
    let published = params.get("name").cloned().unwrap_or_default();
    if let Ok(body) = &body {
        tools::json_body(&headers, body)?;
    }
    let opened = open(&state, &server, &headers).await?;
    let name = server.name();
    let prompt = find(&state, &server, &opened, &published).await?;
    let prompt = prompt.ok_or_else(|| {
        ApiError::NotFound(format!(
            "server '{name}' has no prompt named '{}'",
            resources::shown(&published)
        ))
    })?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.options.max_body_bytes)
        } else {
            ApiError::BadRequest {
                message: format!("cannot read the request body: {rejection}"),
                data: None,
            }
        }
    })?;
    let arguments = arguments(&prompt, tools::parse_body(&body)?)?;
    let result = session::run(&state, &server, &opened, "prompts/get", async {
        let got = opened.session.get_prompt(&prompt.name, arguments).await;
        got.map_err(|e| session::upstream_error(name, "prompts/get", e))
    })
    .await?;
    Ok(Json(prompt_value(name, result)?).into_response())
}

/// The prompt published as `published`: from the session's listing when it has the prompts,
/// else (not exposed, or listed since) from a fresh `prompts/list`, which is an upstream
/// request like any other (a slot of the server's limiter, counted, logged).
async fn find(
    state: &AppState,
    server: &Server,
    opened: &Opened,
    published: &str,
) -> Result<Option<Prompt>, ApiError> {
    let named = |p: &&Prompt| path_segment(&p.name) == published;
    if let Some(p) = opened.session.listing.prompts.iter().find(named) {
        return Ok(Some(p.clone()));
    }
    let name = server.name();
    let listed = session::run(state, server, opened, "prompts/list", async {
        let list = opened.session.list_prompts().await;
        list.map_err(|e| session::upstream_error(name, "prompts/list", e))
    })
    .await?;
    Ok(listed.iter().find(named).cloned())
}

/// The request body as `prompts/get` arguments: an object whose values are strings (numbers
/// and booleans are written as text, as a model may send them; `null` means absent), with every
/// argument the prompt requires. 422 otherwise, naming what is wrong.
fn arguments(prompt: &Prompt, body: Value) -> Result<JsonObject, ApiError> {
    let Value::Object(given) = body else {
        return Err(ApiError::Unprocessable {
            message: "the prompt's arguments must be a JSON object of strings".into(),
            data: None,
        });
    };
    let mut arguments = Map::new();
    for (key, value) in given {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) | Value::Object(_) => {
                let key = resources::shown(&key);
                return Err(ApiError::Unprocessable {
                    message: format!("argument '{key}' must be a string"),
                    data: Some(json!({ "invalid": [key] })),
                });
            }
        };
        arguments.insert(key, Value::String(text));
    }
    let missing: Vec<&str> = prompt
        .arguments
        .iter()
        .flatten()
        .filter(|a| a.required == Some(true) && !arguments.contains_key(&a.name))
        .map(|a| a.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Unprocessable {
            message: format!(
                "prompt '{}' needs the argument{} {}",
                prompt.name,
                if missing.len() == 1 { "" } else { "s" },
                missing
                    .iter()
                    .map(|m| format!("'{m}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            data: Some(json!({ "missing": missing })),
        });
    }
    Ok(arguments)
}

/// `{description?, messages: [{role, content}]}`, each content mapped as a tool result's item
/// is (text as text or JSON, images and audio as `data:` URLs, resources as objects). An
/// image or audio whose data is not base64 makes it a 502, as a resource blob does.
fn prompt_value(server: &str, result: GetPromptResult) -> Result<Value, ApiError> {
    let mut messages = Vec::with_capacity(result.messages.len());
    for mut m in result.messages {
        // An image's or audio's type and data go into a data: URL: a valid type and base64.
        let data = match &mut m.content {
            ContentBlock::Image(i) => {
                i.mime_type = reply::data_url_type(&i.mime_type);
                Some(&i.data)
            }
            ContentBlock::Audio(a) => {
                a.mime_type = reply::data_url_type(&a.mime_type);
                Some(&a.data)
            }
            _ => None,
        };
        if data.is_some_and(|d| !reply::is_base64(d)) {
            return Err(ApiError::BadGateway {
                message: format!(
                    "server '{server}' sent a prompt message whose image or audio is not base64"
                ),
                data: None,
            });
        }
        messages.push(json!({
            "role": serde_json::to_value(&m.role).unwrap_or(Value::Null),
            "content": reply::content_value(&m.content),
        }));
    }
    let mut out = Map::new();
    if let Some(d) = result.description {
        out.insert("description".into(), Value::String(d));
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::PromptArgument;

    fn prompt() -> Prompt {
        Prompt::new(
            "args-prompt",
            Some("d"),
            Some(vec![
                PromptArgument::new("city").with_required(true),
                PromptArgument::new("state"),
            ]),
        )
    }

    #[test]
    fn required_arguments_are_named_and_values_become_strings() {
        match arguments(&prompt(), json!({"state": "CA"})) {
            Err(ApiError::Unprocessable { message, data }) => {
                assert!(message.contains("'city'"), "{message}");
                assert_eq!(data, Some(json!({"missing": ["city"]})));
            }
            other => panic!("{other:?}"),
        }
        let args = arguments(&prompt(), json!({"city": 7, "state": null})).unwrap();
        assert_eq!(Value::Object(args), json!({"city": "7"}));
        assert!(arguments(&prompt(), json!({"city": ["x"]})).is_err());
        assert!(arguments(&prompt(), json!("x")).is_err());
        let long = "k".repeat(100_000);
        match arguments(&prompt(), json!({ long: [1] })) {
            Err(ApiError::Unprocessable { message, data }) => {
                assert!(message.len() < 300, "{} bytes", message.len());
                assert!(data.unwrap().to_string().len() < 300);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_images_type_is_valid_in_its_data_url() {
        use rmcp::model::{PromptMessage, Role};
        let message =
            |mime: &str| PromptMessage::new(Role::User, ContentBlock::image("PHNjcmlwdD4=", mime));
        let result = GetPromptResult::new(vec![
            message("text/html,<script>alert(1)</script>"),
            message("image/png"),
        ]);
        let value = prompt_value("s", result).unwrap();
        assert_eq!(
            value["messages"][0]["content"],
            "data:application/octet-stream;base64,PHNjcmlwdD4="
        );
        assert_eq!(
            value["messages"][1]["content"],
            "data:image/png;base64,PHNjcmlwdD4="
        );
        let bad = PromptMessage::new(
            Role::User,
            ContentBlock::image("\"><img src=x onerror=alert(1)>", "image/png"),
        );
        match prompt_value("s", GetPromptResult::new(vec![bad])) {
            Err(ApiError::BadGateway { message, .. }) => assert!(message.contains("not base64")),
            other => panic!("{other:?}"),
        }
    }
}
