//! A session's resources and prompts in its documents, as the server's `expose` setting asks:
//! the one place that decides, for the server's own document and the combined one alike.

use serde_json::Value;

use crate::config::Expose;
use crate::openapi::{self, ListingPlace};
use crate::upstream::Listing;

/// Adds the resource and prompt operations `expose` asks for (and the server offers) to `doc`.
pub fn add_to_document(doc: &mut Value, listing: &Listing, expose: Expose, at: ListingPlace<'_>) {
    if expose.resources && listing.offers_resources {
        openapi::add_resource_operations(doc, at, &listing.resources, &listing.templates);
    }
    if expose.prompts && listing.offers_prompts {
        openapi::add_prompt_operations(doc, at, &listing.prompts);
    }
}

/// Adds a server's resource and prompt operations to the combined document: under
/// `{prefix}{server}`, with operationIds `{server}_…`.
/// `listing` and `expose` are the server's catalog's.
pub fn add_to_combined(
    doc: &mut Value,
    (listing, expose): (Option<&Listing>, Expose),
    prefix: &str,
    server: &str,
) {
    let Some(listing) = listing else {
        return;
    };
    // `prefix` is `--path-prefix`, which starts and ends with `/`.
    let base = format!("{prefix}{server}");
    let id_prefix = format!("{server}_");
    let at = ListingPlace {
        server,
        base: &base,
        id_prefix: &id_prefix,
    };
    add_to_document(doc, listing, expose, at);
}
