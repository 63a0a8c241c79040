//! MCP tool lists → OpenAPI 3.1 documents. Pure: tools in, JSON out.
//!
//! Each tool becomes `POST /{tool}` (or `/{server}/{tool}` in the combined document) whose
//! JSON body is the tool's arguments. `{tool}` is the tool's published name
//! ([`PreparedTool::published_name`]): its own name when that is a safe path segment, else a
//! safe, stable name derived from it ([`path_segment`]).
//!
//! **Schemas are embedded verbatim.** An OpenAPI 3.1 schema object is JSON Schema 2020-12, so
//! a tool's `inputSchema` goes into the document as JSON, untouched except for references.
//! Going through a typed schema model (utoipa's `Schema`, or pydantic in Python mcpo) drops
//! `const`, `$defs`, `not`, `if`/`then`/`else`, boolean schemas, `default: null`, … and
//! Python mcpo's conversion also loses `enum`, `oneOf`/`allOf`, formats and constraints.
//! Only `$schema`, `$id` and anchors are removed (they would change how references resolve
//! inside the document). A few forms that mean something else (or nothing) in 3.1 are
//! translated, not dropped: OpenAPI 3.0 `nullable` becomes a `"null"` type, and draft-04/07
//! boolean `exclusiveMinimum`, tuple `items` and `dependencies` take their 2020-12 forms.
//!
//! **What is hoisted.** Inside the document a `$ref` resolves against the document root, and
//! Open WebUI only follows `#/components/schemas/…`. So every `$defs`/`definitions` entry (at
//! any depth), and every other place a reference points to (`#/properties/a/properties/b`,
//! `#/properties/a/anyOf/1`, `#` itself for recursion), is cut out into a component named
//! `{tool}__{Name}` (`{server}__{tool}__{Name}` in the combined document; names sanitised to
//! `[A-Za-z0-9._-]`), and the reference is rewritten. A referenced root becomes
//! `{tool}__Input` and the request body refers to it. A reference that cannot be resolved
//! (remote, or pointing nowhere) becomes `{}` with `x-mcpo-unresolved-ref`.
//!
//! **The wrap rule.** A request body must be a JSON object, and so must MCP `arguments`. An
//! input schema whose top-level `type` excludes `object` (`{"type":"string"}`, an array, …) is
//! therefore published as `{"input": <schema>}` (required, no other keys), and the arguments
//! sent upstream are that same `{"input": …}` object; see [`PreparedTool::wraps_body`].
//! `{}`, `true` and property-less objects are published as "any object", and the keys are
//! passed through. Top-level `anyOf`/`oneOf` schemas are kept as they are.
//!
//! Arguments are checked per request against a validator compiled once per tool from the
//! tool's *original* schema ([`PreparedTool::validate`]), so its references resolve the way
//! the server meant them.

mod credentials;
mod document;
mod operations;
mod prompts;
mod resources;
mod schema;
mod segment;
mod tool;

#[cfg(test)]
mod tests;

pub use credentials::add_credentials_operation;
pub use document::{add_login_operation, combined_document, server_document};
pub use prompts::{PROMPTS_TAG, add_prompt_operations};
pub use resources::{ListingPlace, RESOURCES_TAG, add_resource_operations};
pub use segment::{is_safe_segment, path_segment};
pub use tool::{ArgumentError, ArgumentIssue, PreparedTool, WRAP_PROPERTY, prepare_tool};

/// The document-level facts: `info`, `servers` and security.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecInfo {
    /// `info.title`: the MCP server's `serverInfo.title` or `name`.
    pub title: String,
    /// `info.version`: the MCP server's `serverInfo.version`.
    pub version: String,
    /// `info.description`: the MCP server's `instructions`, if any.
    pub description: Option<String>,
    /// `servers: [{url}]`, so clients call the right base path.
    pub server_url: Option<String>,
    /// Declare an HTTP bearer scheme (`components.securitySchemes.bearer`) required by every
    /// operation, and document 401/403.
    pub api_key_security: bool,
}
