//! Assembling OpenAPI 3.1 documents from prepared tools.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::SpecInfo;
use super::schema::{COMPONENTS, SEP, sanitize};
use super::tool::PreparedTool;

/// Shared error body, `{"detail": {"message": …, "data"?: …}}` (what the HTTP layer sends).
pub(super) const ERROR_SCHEMA: &str = "Error";
/// The 422 body: the error body whose `data` lists the argument issues.
const INVALID_ARGUMENTS_SCHEMA: &str = "InvalidArguments";
/// Name of the bearer security scheme.
const BEARER: &str = "bearer";

/// The document of one server: `POST path_of(tool)` per tool, operationId = the tool's
/// published name (Open WebUI turns it into the function name the model sees; the MCP name
/// unless that is not a safe path segment), components named
/// `{tool}__{Name}`.
pub fn server_document(
    info: &SpecInfo,
    server: &str,
    tools: &[PreparedTool],
    path_of: impl Fn(&str) -> String,
) -> Value {
    let mut doc = Builder::new(info);
    doc.tag(server);
    for tool in tools {
        doc.operation(Placement {
            tag: server,
            tool,
            path: path_of(tool.published_name()),
            operation_id: tool.published_name().to_owned(),
            prefix: tool.prefix().to_owned(),
        });
    }
    doc.finish()
}

/// One document with every server's tools: `POST path_of(server, tool)`, operationIds
/// `{server}_{tool}` (so same-named tools of different servers stay apart), components named
/// `{server}__{tool}__{Name}`.
pub fn combined_document(
    info: &SpecInfo,
    servers: &[(&str, &[PreparedTool])],
    path_of: impl Fn(&str, &str) -> String,
) -> Value {
    let mut doc = Builder::new(info);
    for (server, tools) in servers {
        doc.tag(server);
        for tool in tools.iter() {
            doc.operation(Placement {
                tag: server,
                tool,
                path: path_of(server, tool.published_name()),
                operation_id: format!("{server}_{}", tool.published_name()),
                prefix: format!("{}{SEP}{}", sanitize(server), tool.prefix()),
            });
        }
    }
    doc.finish()
}

/// Name of the login operation's response schema.
const LOGIN_LINK_SCHEMA: &str = "LoginLink";

/// Adds `POST path` with operationId `operation_id`: the login link of a multi-user OAuth
/// server, for a model to hand to its user. Nothing is added when a tool already uses that
/// operationId or path (the tool keeps its name; users still get links in 401 answers).
pub fn add_login_operation(doc: &mut Value, server: &str, path: &str, operation_id: &str) {
    let op = json!({
        "tags": [server],
        "summary": format!("Sign in to {server}"),
        "description": format!(
            "Returns a link where the calling user signs in to the '{server}' MCP server \
             (OAuth), and whether they are signed in already. Tools of '{server}' answer 401 \
             with such a link until the user has signed in. Give the link to the user: it is \
             personal, works once and expires in 10 minutes."
        ),
        "operationId": operation_id,
        "requestBody": {
            "required": false,
            "content": { "application/json": { "schema": { "type": "object", "properties": {} } } },
        },
        "responses": {
            "200": {
                "description": "The calling user's login link",
                "content": { "application/json": { "schema": { "$ref": format!("{COMPONENTS}{LOGIN_LINK_SCHEMA}") } } },
            },
            "401": {
                "description": "No verified caller",
                "content": { "application/json": { "schema": { "$ref": format!("{COMPONENTS}{ERROR_SCHEMA}") } } },
            },
        },
    });
    let schema = json!({
        "type": "object",
        "required": ["login_url", "authenticated"],
        "properties": {
            "login_url": { "type": "string", "format": "uri", "description": "Where the user signs in (one use, 10 minutes)" },
            "authenticated": { "type": "boolean", "description": "The user is signed in already" },
            "message": { "type": "string" },
        },
    });
    add_link_operation(doc, path, op, (LOGIN_LINK_SCHEMA, schema));
}

/// Adds `POST path` with `op` (a link operation: login, credentials) and its response schema
/// under `name`, unless a tool already uses that path or `op`'s operationId (the tool keeps
/// its name; users still get links in 401 answers).
pub(super) fn add_link_operation(
    doc: &mut Value,
    path: &str,
    op: Value,
    (name, schema): (&str, Value),
) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let id = op.get("operationId").and_then(Value::as_str);
    let taken = paths.contains_key(path)
        || paths.values().filter_map(Value::as_object).any(|item| {
            item.values()
                .any(|other| other.get("operationId").and_then(Value::as_str) == id)
        });
    if taken {
        return;
    }
    paths.insert(path.to_owned(), json!({ "post": op }));
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert(name.to_owned(), schema);
    }
}

/// Where one tool goes in a document.
struct Placement<'a> {
    tag: &'a str,
    tool: &'a PreparedTool,
    path: String,
    operation_id: String,
    /// Wanted component prefix; a numbered one is used if it collides.
    prefix: String,
}

struct Builder<'a> {
    info: &'a SpecInfo,
    paths: Map<String, Value>,
    schemas: Map<String, Value>,
    tags: Vec<Value>,
    operation_ids: HashSet<String>,
}

impl<'a> Builder<'a> {
    fn new(info: &'a SpecInfo) -> Self {
        let mut schemas = Map::new();
        schemas.insert(ERROR_SCHEMA.into(), error_schema(json!({})));
        schemas.insert(
            INVALID_ARGUMENTS_SCHEMA.into(),
            error_schema(invalid_arguments_data()),
        );
        Self {
            info,
            paths: Map::new(),
            schemas,
            tags: Vec::new(),
            operation_ids: HashSet::new(),
        }
    }

    fn tag(&mut self, name: &str) {
        self.tags.push(json!({ "name": name }));
    }

    /// Adds one tool. A path that is already taken keeps its first tool: two tools cannot
    /// share a route, and the router resolves the same way.
    fn operation(&mut self, p: Placement<'_>) {
        if self.paths.contains_key(&p.path) {
            return;
        }
        let prefix = self.free_prefix(p.tool, &p.prefix);
        let (body, output, components) = p.tool.schemas_with_prefix(&prefix);
        self.schemas.extend(components);
        let operation_id = self.unique_operation_id(p.operation_id);
        let op = operation(self.info, p.tag, p.tool, operation_id, body, output);
        self.paths.insert(p.path, json!({ "post": op }));
    }

    /// `wanted`, or `wanted_2`, `wanted_3`, … if another tool's components already use it
    /// (tool names that sanitise to the same string).
    fn free_prefix(&self, tool: &PreparedTool, wanted: &str) -> String {
        let free = |prefix: &str| {
            tool.local_component_names()
                .all(|l| !self.schemas.contains_key(&format!("{prefix}{SEP}{l}")))
        };
        if free(wanted) {
            return wanted.to_owned();
        }
        (2usize..)
            .map(|n| format!("{wanted}_{n}"))
            .find(|p| free(p))
            .unwrap_or_else(|| wanted.to_owned())
    }

    fn unique_operation_id(&mut self, wanted: String) -> String {
        if self.operation_ids.insert(wanted.clone()) {
            return wanted;
        }
        let id = (2usize..)
            .map(|n| format!("{wanted}_{n}"))
            .find(|id| !self.operation_ids.contains(id))
            .unwrap_or(wanted);
        self.operation_ids.insert(id.clone());
        id
    }

    fn finish(self) -> Value {
        let info = self.info;
        let mut doc = Map::new();
        doc.insert("openapi".into(), json!("3.1.0"));
        doc.insert("info".into(), info_object(info));
        if let Some(url) = &info.server_url {
            doc.insert("servers".into(), json!([{ "url": url }]));
        }
        doc.insert("tags".into(), Value::Array(self.tags));
        doc.insert("paths".into(), Value::Object(self.paths));
        let mut components = Map::new();
        components.insert("schemas".into(), Value::Object(self.schemas));
        if info.api_key_security {
            components.insert(
                "securitySchemes".into(),
                json!({ BEARER: { "type": "http", "scheme": "bearer" } }),
            );
            doc.insert("security".into(), json!([{ BEARER: [] }]));
        }
        doc.insert("components".into(), Value::Object(components));
        Value::Object(doc)
    }
}

fn info_object(info: &SpecInfo) -> Value {
    let mut obj = Map::new();
    obj.insert("title".into(), json!(info.title));
    obj.insert("version".into(), json!(info.version));
    if let Some(d) = &info.description {
        obj.insert("description".into(), json!(d));
    }
    Value::Object(obj)
}

fn operation(
    info: &SpecInfo,
    tag: &str,
    tool: &PreparedTool,
    operation_id: String,
    body: Value,
    output: Option<Value>,
) -> Value {
    let mut op = Map::new();
    op.insert("tags".into(), json!([tag]));
    op.insert("summary".into(), json!(tool.summary()));
    if let Some(d) = tool.description() {
        op.insert("description".into(), json!(d));
    }
    op.insert("operationId".into(), Value::String(operation_id));
    op.insert(
        "requestBody".into(),
        json!({
            "required": tool.body_required(),
            "content": { "application/json": { "schema": body } },
        }),
    );
    op.insert("responses".into(), responses(info.api_key_security, output));
    op.extend(tool.extensions().clone());
    if !tool.warnings().is_empty() {
        op.insert("x-mcpo-warnings".into(), json!(tool.warnings()));
    }
    Value::Object(op)
}

/// 200 with the tool's output schema (or any JSON), and the error statuses the HTTP layer
/// answers with, all with the shared error body.
fn responses(security: bool, output: Option<Value>) -> Value {
    let error = |description: &str, schema: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": format!("{COMPONENTS}{schema}") } } },
        })
    };
    let mut r = Map::new();
    r.insert(
        "200".into(),
        json!({
            "description": "Tool result",
            "content": { "application/json": { "schema": output.unwrap_or_else(|| json!({})) } },
        }),
    );
    r.insert(
        "400".into(),
        error("The request body is not valid JSON", ERROR_SCHEMA),
    );
    if security {
        r.insert("401".into(), error("Missing credentials", ERROR_SCHEMA));
        r.insert(
            "403".into(),
            error("Credentials not accepted", ERROR_SCHEMA),
        );
    }
    r.insert("404".into(), error("Unknown server or tool", ERROR_SCHEMA));
    r.insert(
        "422".into(),
        error(
            "The arguments do not match the tool's input schema",
            INVALID_ARGUMENTS_SCHEMA,
        ),
    );
    r.insert(
        "500".into(),
        error("The tool reported an error", ERROR_SCHEMA),
    );
    r.insert(
        "502".into(),
        error(
            "The MCP server answered with an error, or the connection broke",
            ERROR_SCHEMA,
        ),
    );
    r.insert(
        "503".into(),
        error(
            "The MCP server is not connected; retry after the Retry-After header's seconds",
            ERROR_SCHEMA,
        ),
    );
    r.insert("504".into(), error("The tool call timed out", ERROR_SCHEMA));
    Value::Object(r)
}

fn error_schema(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": { "type": "string" },
                    "data": data,
                },
            },
        },
    })
}

/// How [`super::ArgumentError`] serializes.
fn invalid_arguments_data() -> Value {
    json!({
        "type": "object",
        "properties": {
            "message": { "type": "string" },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["message", "instance_path", "schema_path"],
                    "properties": {
                        "message": { "type": "string" },
                        "instance_path": { "type": "string", "description": "JSON pointer into the request body" },
                        "schema_path": { "type": "string", "description": "JSON pointer into the input schema" },
                    },
                },
            },
            "truncated": { "type": "boolean", "description": "More issues existed than are listed" },
        },
    })
}
