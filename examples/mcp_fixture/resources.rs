//! The fixture's resources, resource templates and prompts: only with `FIXTURE_RESOURCES=1` in
//! its environment (without it the server declares tools only, as every other test expects).
//!
//! - resources: `fixture://items/1` … `/25` (text; listed 10 per page), `fixture://blob/pixel.png`
//!   (a PNG blob), `fixture://json/config` (JSON text), `fixture://page.html` (HTML with a
//!   script), `fixture://multi` (read: a text and a blob content), and what `add` created;
//! - templates (one per page): `fixture://items/{id}`, `fixture://echo/{text}`;
//! - prompts (two per page): `greet` (`name` required, `style` optional), `picture` (an image
//!   message), `embedded` (an embedded resource), `odd/name?` (not a safe path segment), and
//!   what `add` created;
//! - reading `fixture://control/add/{name}` adds the resource `fixture://added/{name}` and the
//!   prompt `added_{name}`, then sends `notifications/resources/list_changed` and
//!   `notifications/prompts/list_changed`;
//! - `fixture://hostile/{case}` (read only, never listed): contents a hostile server could send
//!   (`svg`: an SVG with a script; `upper-html`: HTML as `TEXT/HTML`; `utf7`: a text said to be
//!   UTF-7; `two-types`: the type
//!   `text/html, image/png`; `crlf-type`: a type with CR/LF and a header after it; `data-type`:
//!   a blob whose type would end a `data:` URL's type early; `bad-base64`: a blob that is not
//!   base64);
//! - an unknown `fixture://` URI is `-32002` (resource not found); any other scheme is
//!   `-32602` (invalid params); `fixture://slow` answers after a minute and logs
//!   `slow read cancelled` when cancelled first.

use std::sync::Mutex;

use rmcp::{
    ErrorData, RoleServer,
    model::{
        ContentBlock, EmbeddedResource, GetPromptRequestParams, GetPromptResult, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, Prompt,
        PromptArgument, PromptMessage, PromptsCapability, ReadResourceRequestParams,
        ReadResourceResult, Resource, ResourceContents, ResourceTemplate, ResourcesCapability,
        Role, ServerCapabilities,
    },
    service::RequestContext,
};

use crate::tools::PNG_1X1;

const RESOURCES_PER_PAGE: usize = 10;
const TEMPLATES_PER_PAGE: usize = 1;
const PROMPTS_PER_PAGE: usize = 2;

/// Names `fixture://control/add/{name}` added (per process: one stdio session each).
static ADDED: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn enabled() -> bool {
    std::env::var_os("FIXTURE_RESOURCES").is_some_and(|v| v == "1")
}

/// `caps` with the resources and prompts capabilities (both with `listChanged`) when enabled.
pub fn capabilities(mut caps: ServerCapabilities) -> ServerCapabilities {
    if enabled() {
        let mut resources = ResourcesCapability::default();
        resources.list_changed = Some(true);
        caps.resources = Some(resources);
        let mut prompts = PromptsCapability::default();
        prompts.list_changed = Some(true);
        caps.prompts = Some(prompts);
    }
    caps
}

fn added() -> Vec<String> {
    ADDED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn all_resources() -> Vec<Resource> {
    let mut list: Vec<Resource> = (1..=25)
        .map(|i| {
            Resource::new(format!("fixture://items/{i}"), format!("item-{i}"))
                .with_title(format!("Item {i}"))
                .with_description(format!("The {i}th item"))
                .with_mime_type("text/plain")
                .with_size(format!("item {i}").len() as u64)
        })
        .collect();
    list.push(
        Resource::new("fixture://blob/pixel.png", "pixel")
            .with_description("A 1x1 PNG")
            .with_mime_type("image/png"),
    );
    list.push(Resource::new("fixture://json/config", "config").with_mime_type("application/json"));
    list.push(Resource::new("fixture://page.html", "page").with_mime_type("text/html"));
    for name in added() {
        list.push(Resource::new(format!("fixture://added/{name}"), name));
    }
    list
}

fn all_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("fixture://items/{id}", "item")
            .with_description("Any item by number")
            .with_mime_type("text/plain"),
        ResourceTemplate::new("fixture://echo/{text}", "echo").with_description("Echoes the text"),
    ]
}

fn all_prompts() -> Vec<Prompt> {
    let mut list = vec![
        Prompt::new(
            "greet",
            Some("Greets someone"),
            Some(vec![
                PromptArgument::new("name")
                    .with_description("Who to greet")
                    .with_required(true),
                PromptArgument::new("style").with_description("How (optional)"),
            ]),
        )
        .with_title("Greeting"),
        Prompt::new("picture", Some("A picture message"), None),
        Prompt::new(
            "embedded",
            Some("A message with an embedded resource"),
            None,
        ),
        Prompt::new("odd/name?", Some("A name that is no path segment"), None),
    ];
    for name in added() {
        list.push(Prompt::new(
            format!("added_{name}"),
            Some("Added at run time"),
            None,
        ));
    }
    list
}

/// The page of `items` that `request`'s cursor (an offset) starts, and the next cursor.
fn page<T>(
    items: Vec<T>,
    request: Option<PaginatedRequestParams>,
    per: usize,
) -> (Vec<T>, Option<String>) {
    let start: usize = request
        .and_then(|r| r.cursor)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + per).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    (
        items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect(),
        next,
    )
}

pub fn list_resources(request: Option<PaginatedRequestParams>) -> ListResourcesResult {
    let (items, next) = page(all_resources(), request, RESOURCES_PER_PAGE);
    let mut result = ListResourcesResult::with_all_items(items);
    result.next_cursor = next;
    result
}

pub fn list_resource_templates(
    request: Option<PaginatedRequestParams>,
) -> ListResourceTemplatesResult {
    let (items, next) = page(all_templates(), request, TEMPLATES_PER_PAGE);
    let mut result = ListResourceTemplatesResult::with_all_items(items);
    result.next_cursor = next;
    result
}

pub fn list_prompts(request: Option<PaginatedRequestParams>) -> ListPromptsResult {
    let (items, next) = page(all_prompts(), request, PROMPTS_PER_PAGE);
    let mut result = ListPromptsResult::with_all_items(items);
    result.next_cursor = next;
    result
}

pub async fn read_resource(
    request: ReadResourceRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<ReadResourceResult, ErrorData> {
    let uri = request.uri;
    let Some(rest) = uri.strip_prefix("fixture://") else {
        return Err(ErrorData::invalid_params(
            format!("not a fixture URI: {uri}"),
            None,
        ));
    };
    let text = |t: String| ReadResourceResult::new(vec![ResourceContents::text(t, uri.clone())]);
    if let Some(n) = rest.strip_prefix("items/") {
        return match n.parse::<u32>() {
            Ok(n) => Ok(text(format!("item {n}"))),
            Err(_) => Err(ErrorData::resource_not_found(format!("no item {n}"), None)),
        };
    }
    if rest == "slow" {
        // Answers after a minute; logs `slow read cancelled` if the request is dropped first
        // (`notifications/cancelled`, or the session went away).
        // rmcp cancels `context.ct` on `notifications/cancelled` (it does not drop the future).
        let guard = CancelLog("slow read cancelled");
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => std::mem::forget(guard),
            () = context.ct.cancelled() => {
                return Err(ErrorData::internal_error("slow read cancelled", None));
            }
        }
        return Ok(text("slow".into()));
    }
    if let Some(echo) = rest.strip_prefix("echo/") {
        return Ok(text(echo.to_owned()));
    }
    if let Some(name) = rest.strip_prefix("control/add/") {
        {
            let mut added = ADDED.lock().unwrap_or_else(|p| p.into_inner());
            if !added.iter().any(|a| a == name) {
                added.push(name.to_owned());
            }
        }
        let peer = &context.peer;
        let sent = async {
            peer.notify_resource_list_changed().await?;
            peer.notify_prompt_list_changed().await
        };
        sent.await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        eprintln!("fixture resources changed: added {name}");
        return Ok(text(format!("added {name}")));
    }
    if let Some(name) = rest.strip_prefix("added/")
        && added().iter().any(|a| a == name)
    {
        return Ok(text(format!("added resource {name}")));
    }
    if let Some(case) = rest.strip_prefix("hostile/") {
        return hostile(case, &uri);
    }
    match rest {
        "blob/pixel.png" => Ok(ReadResourceResult::new(vec![
            ResourceContents::blob(PNG_1X1, uri.clone()).with_mime_type("image/png"),
        ])),
        "json/config" => Ok(ReadResourceResult::new(vec![
            ResourceContents::text(r#"{"answer": 42}"#, uri.clone())
                .with_mime_type("application/json"),
        ])),
        "page.html" => Ok(ReadResourceResult::new(vec![
            ResourceContents::text("<script>document.title='ran'</script>", uri.clone())
                .with_mime_type("text/html"),
        ])),
        "multi" => Ok(ReadResourceResult::new(vec![
            ResourceContents::text("first", uri.clone()),
            ResourceContents::blob(PNG_1X1, uri.clone()).with_mime_type("image/png"),
        ])),
        _ => Err(ErrorData::resource_not_found(
            format!("no resource {uri}"),
            None,
        )),
    }
}

/// What a hostile server could send for `fixture://hostile/{case}`.
fn hostile(case: &str, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let text = |t: &str, mime: &str| ResourceContents::text(t, uri).with_mime_type(mime);
    let contents = match case {
        "svg" => text(
            r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#,
            "image/svg+xml",
        ),
        "upper-html" => text("<script>alert(1)</script>", "TEXT/HTML"),
        "utf7" => text("+ADw-script+AD4-", "text/plain; charset=utf-7"),
        "two-types" => text("<script>alert(1)</script>", "text/html, image/png"),
        "crlf-type" => text("x", "text/plain\r\nSet-Cookie: a=b"),
        "data-type" => ResourceContents::blob("PHNjcmlwdD4=", uri)
            .with_mime_type("text/html,<script>alert(1)</script>"),
        "bad-base64" => {
            ResourceContents::blob("not base64!!", uri).with_mime_type("application/octet-stream")
        }
        _ => return Err(ErrorData::resource_not_found(format!("no {uri}"), None)),
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// Logs its text when dropped (forgotten once the work is done).
struct CancelLog(&'static str);

impl Drop for CancelLog {
    fn drop(&mut self) {
        eprintln!("{}", self.0);
    }
}

pub fn get_prompt(request: GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
    let args = request.arguments.unwrap_or_default();
    let arg = |k: &str| args.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let messages = match request.name.as_str() {
        "greet" => {
            let Some(name) = arg("name") else {
                return Err(ErrorData::invalid_params("missing argument: name", None));
            };
            let style = arg("style").map(|s| format!(" ({s})")).unwrap_or_default();
            vec![
                PromptMessage::new_text(Role::User, format!("Hello {name}{style}")),
                PromptMessage::new_text(Role::Assistant, "Hi!"),
            ]
        }
        "picture" => vec![PromptMessage::new(
            Role::User,
            ContentBlock::image(PNG_1X1, "image/png"),
        )],
        "embedded" => vec![PromptMessage::new(
            Role::User,
            ContentBlock::Resource(EmbeddedResource::new(ResourceContents::text(
                "embedded text",
                "fixture://items/3",
            ))),
        )],
        "odd/name?" => vec![PromptMessage::new_text(Role::User, "odd")],
        other
            if other
                .strip_prefix("added_")
                .is_some_and(|n| added().iter().any(|a| a == n)) =>
        {
            vec![PromptMessage::new_text(Role::User, other.to_owned())]
        }
        other => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt: {other}"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(messages).with_description(format!("the {} prompt", request.name)))
}
