//! The `{server}_credentials` operation of a multi-user server whose users supply their own
//! secrets (`user_secrets`): a model calls it to get a fresh link to the page where its user
//! enters them.

use serde_json::{Value, json};

use super::document::{ERROR_SCHEMA, add_link_operation};
use super::schema::COMPONENTS;

/// Name of the operation's response schema.
const CREDENTIALS_LINK_SCHEMA: &str = "CredentialsLink";

/// Adds `POST path` with operationId `operation_id` (see `add_link_operation`).
pub fn add_credentials_operation(doc: &mut Value, server: &str, path: &str, operation_id: &str) {
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
            "401": {
                "description": "No verified caller",
                "content": { "application/json": { "schema": { "$ref": format!("{COMPONENTS}{ERROR_SCHEMA}") } } },
            },
        },
    });
    let schema = json!({
        "type": "object",
        "required": ["credentials_url", "stored"],
        "properties": {
            "credentials_url": { "type": "string", "format": "uri", "description": "Where the user enters their credentials (one use, 10 minutes)" },
            "stored": { "type": "boolean", "description": "The user has stored credentials already" },
            "message": { "type": "string" },
        },
    });
    add_link_operation(doc, path, op, (CREDENTIALS_LINK_SCHEMA, schema));
}
