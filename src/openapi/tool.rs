//! One MCP tool, prepared once per tool list: its schemas normalised for the documents and its
//! argument validator compiled for the requests.

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::schema::{self, Names, Normalized, SEP};
use super::segment::path_segment;

/// The property a non-object input schema is wrapped in (see [`PreparedTool::wraps_body`]).
pub const WRAP_PROPERTY: &str = "input";

/// How many validation errors one 422 reports; more only bury the first ones.
const MAX_ISSUES: usize = 10;

/// Longest message kept per issue: messages quote the offending value, which may be huge.
const MAX_MESSAGE_CHARS: usize = 300;

/// A tool's schemas in OpenAPI form plus what a request needs to check and pass on its
/// arguments. Built by [`prepare_tool`]; cheap to use per request.
#[derive(Debug, Clone)]
pub struct PreparedTool {
    name: String,
    /// The path segment and operationId base it is published under (see [`path_segment`]).
    published: String,
    summary: String,
    description: Option<String>,
    /// Sanitised tool name; stored component names are `{prefix}__{local}`.
    prefix: String,
    body: Value,
    body_required: bool,
    wrapped: bool,
    output: Option<Value>,
    components: Vec<(String, Value)>,
    extensions: Map<String, Value>,
    /// Compiled on the tool's first call, not when the list is prepared: a large catalog's
    /// validators took ~12 KiB per tool, for tools most of which are never called. Set to
    /// `None` at once when the schema does not compile (then a warning says so).
    validator: std::sync::OnceLock<Option<jsonschema::Validator>>,
    /// The tool's own input schema (shared with the session's tool list), to compile from.
    input_schema: std::sync::Arc<rmcp::model::JsonObject>,
    warnings: Vec<String>,
}

/// One reason the arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgumentIssue {
    /// What is wrong, e.g. `"abc" is not of type "integer"`.
    pub message: String,
    /// JSON pointer into the request body (`/address/zip`; empty for the body itself).
    pub instance_path: String,
    /// JSON pointer to the failing keyword in the tool's input schema (`/properties/…/type`).
    pub schema_path: String,
}

/// The request body does not match the tool's input schema (HTTP 422). Holds every issue found,
/// up to ten, first one first.
/// Serializes as `{"message", "errors": [{message, instance_path, schema_path}], "truncated"}`,
/// the shape the documents declare for `detail.data` of a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct ArgumentError {
    /// One line naming every issue, for people and models reading `detail.message`.
    pub message: String,
    /// Never empty.
    pub errors: Vec<ArgumentIssue>,
    /// More issues existed than are listed.
    pub truncated: bool,
}

impl ArgumentError {
    fn new(errors: Vec<ArgumentIssue>, truncated: bool) -> Self {
        let listed: Vec<String> = errors.iter().map(issue_message).collect();
        let more = if truncated { "; …" } else { "" };
        let message = match errors.len() {
            1 => format!("invalid arguments: {}", listed.join("")),
            n => format!("{n} invalid arguments: {}{more}", listed.join("; ")),
        };
        Self {
            message,
            errors,
            truncated,
        }
    }

    fn single(message: impl Into<String>, instance_path: &str) -> Self {
        Self::new(
            vec![ArgumentIssue {
                message: message.into(),
                instance_path: instance_path.into(),
                schema_path: String::new(),
            }],
            false,
        )
    }

    /// Where the first issue is in the request body (JSON pointer).
    pub fn instance_path(&self) -> &str {
        self.errors.first().map_or("", |i| i.instance_path.as_str())
    }

    /// Which schema keyword the first issue failed (JSON pointer).
    pub fn schema_path(&self) -> &str {
        self.errors.first().map_or("", |i| i.schema_path.as_str())
    }
}

fn issue_message(issue: &ArgumentIssue) -> String {
    if issue.instance_path.is_empty() {
        issue.message.clone()
    } else {
        format!("{}: {}", issue.instance_path, issue.message)
    }
}

fn truncate(mut s: String) -> String {
    if let Some((cut, _)) = s.char_indices().nth(MAX_MESSAGE_CHARS) {
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Pushes the issues one validation error stands for (paths prefixed by `at`). A failed
/// `anyOf`/`oneOf` where every branch but one fails only on the value's type is replaced by
/// that branch's own errors: `"address": {"anyOf": [{"$ref": "…/Address"}, {"type": "null"}]}`
/// then reports `/address/zip: "12" is not of type "integer"`, not "not valid under any of
/// the schemas", which tells a model nothing about what to fix.
fn push_issues(error: &ValidationError<'_>, at: &str, out: &mut Vec<ArgumentIssue>) {
    match only_relevant_branch(error) {
        Some(branch) => branch.iter().for_each(|e| push_issues(e, at, out)),
        None => out.push(ArgumentIssue {
            message: truncate(error.to_string()),
            instance_path: format!("{at}{}", error.instance_path().as_str()),
            schema_path: error.schema_path().as_str().to_owned(),
        }),
    }
}

fn only_relevant_branch<'e>(
    error: &'e ValidationError<'_>,
) -> Option<&'e [ValidationError<'static>]> {
    let context = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context
        }
        _ => return None,
    };
    let here = error.instance_path();
    let wrong_type = |e: &ValidationError<'_>| {
        matches!(
            e.kind(),
            ValidationErrorKind::Type { .. } | ValidationErrorKind::FalseSchema
        ) && e.instance_path() == here
    };
    let mut relevant = context
        .iter()
        .filter(|branch| !branch.iter().all(&wrong_type));
    match (relevant.next(), relevant.next()) {
        (Some(branch), None) => Some(branch.as_slice()),
        _ => None,
    }
}

/// Prepares one tool: normalises its input and output schemas (see the module docs) and
/// compiles its argument validator. Never fails: a schema the validator cannot compile (remote
/// `$ref`, a regex it does not support, …) leaves the tool unvalidated, with a warning, and
/// the upstream checks the arguments itself.
pub fn prepare_tool(server: &str, tool: &rmcp::model::Tool) -> PreparedTool {
    let name = tool.name.to_string();
    let prefix = schema::sanitize(&name);
    let mut names = Names::default();

    let mut input = Value::Object((*tool.input_schema).clone());
    schema::convert_nullable(&mut input);
    let mut warnings = Vec::new();
    // Compiled once here to know whether it can be (the spec says so), then dropped; the
    // first call compiles it again and keeps it.
    let validator = match compile(&input) {
        Ok(_) => std::sync::OnceLock::new(),
        Err(e) => {
            warnings.push(format!(
                "{server}/{name}: input schema not usable for validation, arguments are passed on unchecked: {e}"
            ));
            std::sync::OnceLock::from(None)
        }
    };
    let wrapped = needs_wrap(&input);
    let normalized = schema::normalize(&input, &prefix, "Input", &mut names);
    let body = shape_body(normalized.schema, wrapped);
    let mut components = normalized.components;

    let output = tool.output_schema.as_ref().map(|o| {
        let mut out = Value::Object((**o).clone());
        schema::convert_nullable(&mut out);
        let Normalized {
            schema,
            components: more,
        } = schema::normalize(&out, &prefix, "Output", &mut names);
        components.extend(more);
        schema
    });

    let published = path_segment(&name).into_owned();
    let description = tool.description.as_ref().map(|d| d.to_string());
    PreparedTool {
        summary: summary(tool),
        description: if published == name {
            description
        } else {
            Some(renamed_description(&name, description))
        },
        published,
        body_required: wrapped || has_required(&input),
        prefix,
        body,
        wrapped,
        output,
        components,
        extensions: extensions(tool),
        validator,
        input_schema: tool.input_schema.clone(),
        warnings,
        name,
    }
}

/// Compiles the validator from the tool's own schema (not the normalised one), so its internal
/// references resolve as the server meant them. Formats are not asserted: in 2020-12 they are
/// annotations, and a bridge refusing what the server would accept is worse than letting the
/// server decide. No network: remote references fail compilation instead.
fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    let options = jsonschema::options()
        .offline()
        .should_validate_formats(false);
    let first = match options.build(schema) {
        Ok(v) => return Ok(v),
        Err(e) => e.to_string(),
    };
    // Servers get two things wrong that the validator is strict about, while the schema is
    // otherwise fine: an unknown `$schema` URI (then 2020-12 is assumed) and references with
    // characters a URI may not contain (`#/$defs/Foo Bar`), which are percent-encoded.
    let mut repaired = schema.clone();
    if let Some(obj) = repaired.as_object_mut() {
        obj.remove("$schema");
    }
    schema::encode_refs(&mut repaired);
    if repaired != *schema
        && let Ok(v) = options.build(&repaired)
    {
        return Ok(v);
    }
    Err(first)
}

/// Whether the top level declares a type that excludes objects. The request body must be an
/// object (MCP `arguments` are one), so such schemas are wrapped in `{"input": …}`.
fn needs_wrap(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t != "object",
        Some(Value::Array(types)) => !types.is_empty() && !types.iter().any(|t| t == "object"),
        _ => false,
    }
}

/// Keywords that make a top-level schema more than "any object".
const OBJECT_CONSTRAINTS: &[&str] = &[
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "required",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "minProperties",
    "maxProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "enum",
    "const",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "x-mcpo-unresolved-ref",
];

/// Turns the normalised top-level schema into the request-body schema:
/// - non-object types are wrapped: `{"type":"object","properties":{"input": <schema>},
///   "required":["input"],"additionalProperties":false}`;
/// - `true`, `{}` and property-less objects become an explicit "any object" so clients see
///   that keys are passed through;
/// - everything else (objects with properties, top-level `anyOf`/`oneOf`, …) is kept as is.
fn shape_body(schema: Value, wrapped: bool) -> Value {
    if wrapped {
        return json!({
            "type": "object",
            "properties": { WRAP_PROPERTY: schema },
            "required": [WRAP_PROPERTY],
            "additionalProperties": false,
        });
    }
    match schema {
        Value::Bool(true) => json!({ "type": "object", "additionalProperties": true }),
        Value::Object(mut obj) if is_any_object(&obj) => {
            if !obj.contains_key("type") {
                obj.insert("type".into(), json!("object"));
            }
            obj.insert("additionalProperties".into(), Value::Bool(true));
            Value::Object(obj)
        }
        other => other,
    }
}

/// No constraint beyond (at most) `type: object`; empty `properties`/`required` count as
/// absent (FastMCP's no-parameter tools send `{"type":"object","properties":{}}`).
fn is_any_object(obj: &Map<String, Value>) -> bool {
    let empty = |v: &Value| match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    OBJECT_CONSTRAINTS
        .iter()
        .filter_map(|k| obj.get(*k).map(|v| (*k, v)))
        .all(|(k, v)| matches!(k, "properties" | "patternProperties" | "required") && empty(v))
}

/// Whether the top level requires properties, looking through a top-level `$ref` (some
/// generators emit `{"$ref": "#/$defs/Args", "$defs": {…}}`).
fn has_required(schema: &Value) -> bool {
    let requires = |s: &Value| {
        s.get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
    };
    requires(schema)
        || schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| schema::local_target(schema, r))
            .is_some_and(requires)
}

/// The operation summary: the tool's title, else its annotations' title, else its name.
fn summary(tool: &rmcp::model::Tool) -> String {
    tool.title
        .clone()
        .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone()))
        .unwrap_or_else(|| tool.name.to_string())
}

/// The description of a tool published under another name: says which MCP tool it is (the
/// name escaped: it may hold control characters), then the tool's own description.
fn renamed_description(name: &str, description: Option<String>) -> String {
    let first = format!(
        "MCP tool name: `{}` (published under a safe name: the original is not a safe URL path segment)",
        name.escape_debug()
    );
    match description {
        Some(d) => format!("{first}\n\n{d}"),
        None => first,
    }
}

/// MCP facts with no OpenAPI equivalent, as `x-` extensions on the operation.
fn extensions(tool: &rmcp::model::Tool) -> Map<String, Value> {
    let mut ext = Map::new();
    ext.insert("x-mcp-tool".into(), Value::String(tool.name.to_string()));
    if let Some(a) = &tool.annotations
        && let Ok(v) = serde_json::to_value(a)
    {
        ext.insert("x-mcp-annotations".into(), v);
    }
    if let Some(m) = &tool.meta
        && let Ok(v) = serde_json::to_value(m)
    {
        ext.insert("x-mcp-meta".into(), v);
    }
    ext
}

impl PreparedTool {
    /// The MCP tool name (what `tools/call` needs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name the tool is published under: its path segment (`/{server}/{published}`) and
    /// operationId. The MCP name when that is a safe path segment, else one derived from it
    /// ([`path_segment`]).
    pub fn published_name(&self) -> &str {
        &self.published
    }

    /// Published under a name other than its own.
    pub fn renamed(&self) -> bool {
        self.published != self.name
    }

    /// Title for the operation summary.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The request-body schema; its references point at [`Self::component_schemas`].
    pub fn input_schema(&self) -> &Value {
        &self.body
    }

    /// The normalised `outputSchema`, if the tool declares one.
    pub fn output_schema(&self) -> Option<&Value> {
        self.output.as_ref()
    }

    /// Component schemas cut out of the input and output schemas, named as in the per-server
    /// document (`{tool}__{Name}`).
    pub fn component_schemas(&self) -> impl Iterator<Item = (String, &Value)> {
        self.components
            .iter()
            .map(|(local, v)| (format!("{}{SEP}{local}", self.prefix), v))
    }

    /// `x-` extensions for the operation (`x-mcp-tool`, `x-mcp-annotations`, `x-mcp-meta`).
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.extensions
    }

    /// Whether the body must be sent (the schema requires properties, or it is wrapped).
    pub fn body_required(&self) -> bool {
        self.body_required
    }

    /// Whether the tool's input schema is not an object type and the body is therefore
    /// `{"input": <value>}`. The MCP arguments are then that same object: MCP arguments are
    /// always an object, so the value cannot be sent bare.
    pub fn wraps_body(&self) -> bool {
        self.wrapped
    }

    /// The argument validator, compiled on first use (see the field).
    fn validator(&self) -> Option<&jsonschema::Validator> {
        self.validator
            .get_or_init(|| {
                let mut input = Value::Object((*self.input_schema).clone());
                schema::convert_nullable(&mut input);
                compile(&input).ok()
            })
            .as_ref()
    }

    /// Whether arguments are checked here (false when the schema could not be compiled).
    pub fn validates(&self) -> bool {
        self.validator().is_some()
    }

    /// Problems met while preparing the tool, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Checks a request body (`null` = no body = `{}`) against the tool's input schema,
    /// collecting up to ten issues with their paths in the body.
    pub fn validate(&self, body: &Value) -> Result<(), ArgumentError> {
        let empty = Value::Object(Map::new());
        let body = match body {
            Value::Null => &empty,
            Value::Object(_) => body,
            _ => {
                return Err(ArgumentError::single(
                    "the request body must be a JSON object",
                    "",
                ));
            }
        };
        let mut issues = Vec::new();
        let mut truncated = false;
        if self.wrapped {
            self.check_wrapped(body, &mut issues, &mut truncated);
        } else {
            self.check(body, "", &mut issues, &mut truncated);
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ArgumentError::new(issues, truncated))
        }
    }

    /// Turns a request body that passed [`Self::validate`] into MCP `arguments`: `null`
    /// becomes `{}`, an object is passed on as it is (for a wrapped tool that is
    /// `{"input": …}`). Anything else (which `validate` refuses) gives `{}`.
    pub fn arguments(&self, body: Value) -> Map<String, Value> {
        match body {
            Value::Object(args) => args,
            _ => Map::new(),
        }
    }

    /// A wrapped body must be exactly `{"input": <value>}`; the value is checked against the
    /// tool's schema, with paths under `/input`.
    fn check_wrapped(&self, body: &Value, issues: &mut Vec<ArgumentIssue>, truncated: &mut bool) {
        let Value::Object(obj) = body else { return };
        for key in obj.keys().filter(|k| *k != WRAP_PROPERTY) {
            issues.push(ArgumentIssue {
                message: format!(
                    "unexpected property {key:?}: this tool takes its whole argument as \"{WRAP_PROPERTY}\""
                ),
                instance_path: format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                schema_path: "/additionalProperties".into(),
            });
        }
        match obj.get(WRAP_PROPERTY) {
            Some(value) => self.check(value, "/input", issues, truncated),
            None => issues.push(ArgumentIssue {
                message: format!("\"{WRAP_PROPERTY}\" is a required property"),
                instance_path: String::new(),
                schema_path: "/required".into(),
            }),
        }
    }

    fn check(
        &self,
        instance: &Value,
        at: &str,
        issues: &mut Vec<ArgumentIssue>,
        truncated: &mut bool,
    ) {
        let Some(validator) = self.validator() else {
            return;
        };
        let mut errors = validator.iter_errors(instance);
        for error in errors.by_ref() {
            push_issues(&error, at, issues);
            if issues.len() >= MAX_ISSUES {
                break;
            }
        }
        if issues.len() > MAX_ISSUES || errors.next().is_some() {
            *truncated = true;
        }
        issues.truncate(MAX_ISSUES);
    }

    /// The schemas for a document that names this tool's components `{prefix}__{Name}`
    /// (the stored prefix is the sanitised tool name): body, output, components.
    pub(crate) fn schemas_with_prefix(
        &self,
        prefix: &str,
    ) -> (Value, Option<Value>, Vec<(String, Value)>) {
        let mut body = self.body.clone();
        let mut output = self.output.clone();
        let mut components = self.components.clone();
        if prefix != self.prefix {
            schema::rebase_refs(&mut body, &self.prefix, prefix);
            if let Some(o) = output.as_mut() {
                schema::rebase_refs(o, &self.prefix, prefix);
            }
            for (_, c) in components.iter_mut() {
                schema::rebase_refs(c, &self.prefix, prefix);
            }
        }
        let components = components
            .into_iter()
            .map(|(local, v)| (format!("{prefix}{SEP}{local}"), v))
            .collect();
        (body, output, components)
    }

    /// The stored component prefix (the sanitised tool name).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Local names of the components, to check a prefix for collisions.
    pub(crate) fn local_component_names(&self) -> impl Iterator<Item = &str> {
        self.components.iter().map(|(l, _)| l.as_str())
    }
}
