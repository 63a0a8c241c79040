//! A session's resources and prompts: `resources/list`, `resources/templates/list` and
//! `prompts/list` with every page followed (within the same kind of caps as `tools/list`),
//! `resources/read` and `prompts/get` bounded and cancelled like tool calls, and reading the
//! [`Listing`] a session's specs are built from.

use std::future::Future;
use std::time::Duration;

use rmcp::model::{
    ClientRequest, GetPromptRequest, GetPromptRequestParams, GetPromptResult, JsonObject,
    PaginatedRequestParams, Prompt, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResult, Resource, ResourceTemplate, ServerResult,
};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde::Serialize;

use super::session::Listing;
use super::session::classify;
use super::{CallError, Session};
use crate::config::Expose;

/// Pages of one listing mcpo reads at most (as for `tools/list`).
pub const MAX_LIST_PAGES: usize = 100;
/// Items one listing may have.
pub const MAX_LIST_ITEMS: usize = 10_000;
/// Bytes (as JSON) of one whole listing.
pub const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

impl Listing {
    /// It names resources, templates or prompts (not only what the server offers).
    pub fn names_anything(&self) -> bool {
        !(self.resources.is_empty() && self.templates.is_empty() && self.prompts.is_empty())
    }

    /// What the server offers, without the names of its resources and prompts.
    pub fn without_names(&self) -> Self {
        Self {
            offers_resources: self.offers_resources,
            offers_prompts: self.offers_prompts,
            ..Default::default()
        }
    }

    /// Reads what `expose` needs from the server behind `peer`. A list that cannot be read is
    /// logged and left empty: the tools are still served.
    pub(super) async fn fetch(
        server: &str,
        peer: &Peer<RoleClient>,
        expose: Expose,
        timeout: Duration,
    ) -> Self {
        let caps = peer.peer_info().map(|i| i.capabilities.clone());
        let offers_resources = caps.as_ref().is_some_and(|c| c.resources.is_some());
        let offers_prompts = caps.as_ref().is_some_and(|c| c.prompts.is_some());
        let mut listing = Listing {
            offers_resources,
            offers_prompts,
            ..Default::default()
        };
        if expose.resources && offers_resources {
            let list = list_resources(peer);
            listing.resources = or_none(server, "resources/list", timeout, list).await;
            let list = list_resource_templates(peer);
            listing.templates = or_none(server, "resources/templates/list", timeout, list).await;
        }
        if expose.prompts && offers_prompts {
            let list = list_prompts(peer);
            listing.prompts = or_none(server, "prompts/list", timeout, list).await;
        }
        listing
    }
}

/// The list, or none (logged) when it fails or takes longer than `timeout`.
async fn or_none<T>(
    server: &str,
    what: &str,
    timeout: Duration,
    list: impl Future<Output = Result<Vec<T>, CallError>>,
) -> Vec<T> {
    match tokio::time::timeout(timeout, list).await {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => {
            tracing::warn!(server, error = %e, "{what} failed; the spec shows none");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(server, "{what} timed out; the spec shows none");
            Vec::new()
        }
    }
}

impl Session {
    /// The server declared the `resources` capability.
    pub fn offers_resources(&self) -> bool {
        self.listing.offers_resources
    }

    /// The server declared the `prompts` capability.
    pub fn offers_prompts(&self) -> bool {
        self.listing.offers_prompts
    }

    /// Every resource the server lists, all pages, within the call timeout.
    pub async fn list_resources(&self) -> Result<Vec<Resource>, CallError> {
        self.timed(list_resources(&self.peer)).await
    }

    /// Every resource template the server lists, all pages, within the call timeout.
    pub async fn list_resource_templates(&self) -> Result<Vec<ResourceTemplate>, CallError> {
        self.timed(list_resource_templates(&self.peer)).await
    }

    /// Every prompt the server lists, all pages, within the call timeout.
    pub async fn list_prompts(&self) -> Result<Vec<Prompt>, CallError> {
        self.timed(list_prompts(&self.peer)).await
    }

    /// `resources/read`, bounded and cancelled as [`Session::call_tool`] is.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, CallError> {
        let params = ReadResourceRequestParams::new(uri);
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.request(request).await? {
            ServerResult::ReadResourceResult(result) => Ok(result),
            _ => Err(CallError::Other(
                "the server answered resources/read with another kind of result".into(),
            )),
        }
    }

    /// `prompts/get`, bounded and cancelled as [`Session::call_tool`] is.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: JsonObject,
    ) -> Result<GetPromptResult, CallError> {
        let mut params = GetPromptRequestParams::new(name);
        if !arguments.is_empty() {
            params = params.with_arguments(arguments);
        }
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.request(request).await? {
            ServerResult::GetPromptResult(result) => Ok(result),
            _ => Err(CallError::Other(
                "the server answered prompts/get with another kind of result".into(),
            )),
        }
    }

    async fn timed<T>(
        &self,
        listing: impl Future<Output = Result<T, CallError>>,
    ) -> Result<T, CallError> {
        tokio::time::timeout(self.call_timeout, listing)
            .await
            .unwrap_or(Err(CallError::Timeout(self.call_timeout)))
    }
}

async fn list_resources(peer: &Peer<RoleClient>) -> Result<Vec<Resource>, CallError> {
    all_pages("resources/list", |params| async move {
        let page = peer.list_resources(Some(params)).await?;
        Ok((page.resources, page.next_cursor))
    })
    .await
}

async fn list_resource_templates(
    peer: &Peer<RoleClient>,
) -> Result<Vec<ResourceTemplate>, CallError> {
    all_pages("resources/templates/list", |params| async move {
        let page = peer.list_resource_templates(Some(params)).await?;
        Ok((page.resource_templates, page.next_cursor))
    })
    .await
}

async fn list_prompts(peer: &Peer<RoleClient>) -> Result<Vec<Prompt>, CallError> {
    all_pages("prompts/list", |params| async move {
        let page = peer.list_prompts(Some(params)).await?;
        Ok((page.prompts, page.next_cursor))
    })
    .await
}

/// Follows `nextCursor` page after page within [`MAX_LIST_PAGES`], [`MAX_LIST_ITEMS`] and
/// [`MAX_LIST_BYTES`]: past one of them the listing fails, so a server that pages forever
/// costs bounded memory and time.
async fn all_pages<T, F, Fut>(what: &str, mut page: F) -> Result<Vec<T>, CallError>
where
    T: Serialize,
    F: FnMut(PaginatedRequestParams) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
{
    let (mut items, mut bytes, mut cursor) = (Vec::new(), 0usize, None);
    for n in 1..=MAX_LIST_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor);
        let (batch, next) = page(params).await.map_err(classify)?;
        bytes += batch
            .iter()
            .map(|t| serde_json::to_vec(t).map_or(0, |v| v.len()))
            .sum::<usize>();
        items.extend(batch);
        if items.len() > MAX_LIST_ITEMS {
            return Err(CallError::Other(format!(
                "{what}: the server lists more than {MAX_LIST_ITEMS} items (page {n}); mcpo stops there"
            )));
        }
        if bytes > MAX_LIST_BYTES {
            return Err(CallError::Other(format!(
                "{what}: the list is larger than {} MiB (page {n}); mcpo stops there",
                MAX_LIST_BYTES >> 20
            )));
        }
        cursor = next;
        if cursor.is_none() {
            return Ok(items);
        }
    }
    Err(CallError::Other(format!(
        "{what}: the server answered more than {MAX_LIST_PAGES} pages (a nextCursor on each); mcpo stops there"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(n: usize, next: bool) -> Result<(Vec<String>, Option<String>), ServiceError> {
        Ok((vec!["x".repeat(n); 1], next.then(|| "more".to_owned())))
    }

    #[tokio::test]
    async fn listings_are_bounded() {
        let mut pages = 0;
        let endless = all_pages("resources/list", |_| {
            pages += 1;
            std::future::ready(page_of(1, true))
        })
        .await;
        assert!(
            matches!(&endless, Err(CallError::Other(m)) if m.contains("more than 100 pages")),
            "{endless:?}"
        );
        assert_eq!(pages, MAX_LIST_PAGES);
        let huge = all_pages("prompts/list", |_| {
            std::future::ready(page_of(3 << 20, true))
        })
        .await;
        assert!(
            matches!(&huge, Err(CallError::Other(m)) if m.contains("larger than 8 MiB")),
            "{huge:?}"
        );
        let many = all_pages("resources/list", |_| {
            std::future::ready(Ok::<_, ServiceError>((
                vec![1u8; 5_000],
                Some("c".to_owned()),
            )))
        })
        .await;
        assert!(
            matches!(&many, Err(CallError::Other(m)) if m.contains("more than 10000 items")),
            "{many:?}"
        );
        let two = std::cell::Cell::new(0);
        let done = all_pages("prompts/list", |_| {
            two.set(two.get() + 1);
            std::future::ready(page_of(1, two.get() < 2))
        })
        .await;
        assert_eq!(done.map(|v| v.len()).ok(), Some(2));
    }
}
