//! The `{server}_credentials` operation of a multi-user server whose users supply their own
//! secrets (`user_secrets`): a model calls it to get a fresh link to the page where its user
//! enters them.

use serde_json::{Value, json};

use super::schema::COMPONENTS;

/// Name of the operation's response schema.
const CREDENTIALS_LINK_SCHEMA: &str = "CredentialsLink";

/// Adds `POST path` with operationId `operation_id`. Nothing is added when a tool already
/// uses that operationId or path (users still get links in 401 answers).
pub fn add_credentials_operation(doc: &mut Value, server: &str, path: &str, operation_id: &str) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let taken = paths.contains_key(path)
        || paths.values().filter_map(Value::as_object).any(|item| {
            item.values()
                .any(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
        });
    if taken {
        return;
    }
    let op = json!({
        "tags": [server],
        "summary": format!("Enter your credentials for {server}"),
        "description": format!(
            "Returns a link where the calling user enters (or replaces, or forgets) their own \
             credentials for the '{server}' MCP server, such as a personal access token. Tools \
             of '{server}' answer 401 with such a link until the user has entered them. Give \
             the link to the user: it is personal, works once and expires in 10 minutes. Never \
             ask the user to paste a secret into the chat."
        ),
        "operationId": operation_id,
        "requestBody": {
            "required": false,
            "content": { "application/json": { "schema": { "type": "object", "properties": {} } } },
        },
        "responses": {
            "200": {
                "description": "The calling user's credentials link",
                "content": { "application/json": { "schema": { "$ref": format!("{COMPONENTS}{CREDENTIALS_LINK_SCHEMA}") } } },
            },
            "401": { "description": "No verified caller" },
        },
    });
    paths.insert(path.to_owned(), json!({ "post": op }));
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert(
            CREDENTIALS_LINK_SCHEMA.into(),
            json!({
                "type": "object",
                "required": ["credentials_url", "stored"],
                "properties": {
                    "credentials_url": { "type": "string", "format": "uri", "description": "Where the user enters their credentials (one use, 10 minutes)" },
                    "stored": { "type": "boolean", "description": "The user has stored credentials already" },
                    "message": { "type": "string" },
                },
            }),
        );
    }
}
