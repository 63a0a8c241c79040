//! Serving a spec's cached bytes: an `ETag` per document (304 to an `If-None-Match` that
//! names it) and gzip for a client that accepts it, both worked out once per document, not
//! per request. Open WebUI without Redis fetches every tool server's spec on every chat
//! request; a large catalog's document is megabytes of JSON that gzip shrinks ~10×.
//!
//! A document is a [`Bytes`] built once per tool list (`servers/catalog.rs`, the combined
//! cache); the same buffer is served until the list changes. What is worked out for it is
//! remembered by the buffer's address, next to a clone of the buffer itself: while it is
//! remembered the buffer cannot be freed, so no other document can come to have its address.
//! A few documents are remembered (the root and the servers' own); the oldest goes first.

use std::collections::VecDeque;
use std::hash::Hasher;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::swagger::{accepts_gzip, if_none_match};

/// Documents whose ETag and gzip are remembered.
const REMEMBERED: usize = 32;
/// Documents smaller than this go out as they are (gzip would save less than a packet).
const GZIP_FROM: usize = 1400;

struct Prepared {
    bytes: Bytes,
    etag: String,
    gzip: OnceLock<Option<Bytes>>,
}

fn remembered() -> &'static Mutex<VecDeque<Arc<Prepared>>> {
    static CACHE: OnceLock<Mutex<VecDeque<Arc<Prepared>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(VecDeque::with_capacity(REMEMBERED)))
}

/// What is worked out for `bytes`, once (a small document every time: not worth a place).
fn prepared(bytes: &Bytes) -> Arc<Prepared> {
    if bytes.len() < GZIP_FROM {
        return Arc::new(Prepared {
            bytes: bytes.clone(),
            etag: etag_of(bytes),
            gzip: OnceLock::new(),
        });
    }
    let cache = remembered().lock().unwrap_or_else(|p| p.into_inner());
    let same =
        |p: &Arc<Prepared>| p.bytes.as_ptr() == bytes.as_ptr() && p.bytes.len() == bytes.len();
    if let Some(found) = cache.iter().find(|p| same(p)) {
        return found.clone();
    }
    drop(cache);
    // Hashing a large document takes a while: outside the lock.
    let prepared = Arc::new(Prepared {
        bytes: bytes.clone(),
        etag: etag_of(bytes),
        gzip: OnceLock::new(),
    });
    let mut cache = remembered().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = cache.iter().find(|p| same(p)) {
        return found.clone();
    }
    if cache.len() == REMEMBERED {
        cache.pop_front();
    }
    cache.push_back(prepared.clone());
    prepared
}

/// A strong validator of the content: a keyed hash (fixed keys, so it is the same for the
/// same bytes across requests and restarts) and the length.
fn etag_of(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    format!("\"{:016x}-{:x}\"", h.finish(), bytes.len())
}

fn gzip(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::new(6),
    );
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// The response for a JSON document: 304 when the client has it, gzip when it accepts it.
pub fn json_document(bytes: Bytes, request: &HeaderMap) -> Response {
    let doc = prepared(&bytes);
    let gzip = (bytes.len() >= GZIP_FROM && accepts_gzip(request))
        .then(|| doc.gzip.get_or_init(|| gzip(&doc.bytes)).clone())
        .flatten();
    let etag = match gzip {
        // Another representation, another validator.
        Some(_) => format!("{}-gz\"", doc.etag.trim_end_matches('"')),
        None => doc.etag.clone(),
    };
    let common = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    if if_none_match(request, &etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    match gzip {
        Some(body) => {
            let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
            (common, encoding, body).into_response()
        }
        None => (common, bytes).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_follows_the_content_not_the_buffer() {
        let a = Bytes::from(vec![b'x'; 5000]);
        let b = Bytes::from(vec![b'x'; 5000]);
        let c = Bytes::from(vec![b'y'; 5000]);
        assert_eq!(prepared(&Bytes::from_static(b"{}")).etag, etag_of(b"{}"));
        assert_eq!(prepared(&a).etag, prepared(&b).etag);
        assert_ne!(prepared(&a).etag, prepared(&c).etag);
        // The same buffer is worked out once.
        assert!(Arc::ptr_eq(&prepared(&a), &prepared(&a.clone())));
    }

    #[test]
    fn gzip_inflates_to_the_document() {
        use std::io::Read;
        let doc = Bytes::from(serde_json::to_vec(&vec!["a tool"; 2000]).unwrap());
        let packed = gzip(&doc).unwrap();
        assert!(packed.len() * 5 < doc.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, doc);
    }
}
