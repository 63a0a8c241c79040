//! Swagger UI's own files for the `/docs` pages, compiled in gzipped (see `build.rs`).
//!
//! Browsers get the gzip bytes as they are (`Content-Encoding: gzip`); a client that does not
//! accept gzip (curl without `--compressed`) gets them inflated, so every client sees the same
//! file. The ETag names the Swagger UI release, so a browser revalidates with a 304 after an
//! upgrade of mcpo and never in between.

use std::io::Read;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    /// Length of the file before compression.
    len: usize,
    gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/swagger_ui_assets.rs"));

/// The response for `file` (`swagger-ui.css`, …), or `None` if there is no such asset.
pub fn asset(file: &str, headers: &HeaderMap) -> Option<Response> {
    let asset = ASSETS
        .binary_search_by(|a| a.name.cmp(file))
        .ok()
        .map(|i| &ASSETS[i])?;
    let gzip = accepts_gzip(headers);
    let etag = format!(
        "\"swagger-ui-{VERSION}-{}{}\"",
        asset.name,
        if gzip { "-gz" } else { "" }
    );
    let common = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("the ETag is ASCII"),
        ),
    ];
    if if_none_match(headers, &etag) {
        return Some((StatusCode::NOT_MODIFIED, common).into_response());
    }
    if gzip {
        let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
        return Some((common, encoding, asset.gzip).into_response());
    }
    let mut plain = Vec::with_capacity(asset.len);
    // The bytes were compressed by build.rs from this very table: inflating cannot fail short
    // of a corrupted binary, and then a 500 names the file rather than a panic.
    match flate2::read::GzDecoder::new(asset.gzip).read_to_end(&mut plain) {
        Ok(_) => Some((common, plain).into_response()),
        Err(e) => {
            tracing::error!(file, error = %e, "cannot inflate a built-in Swagger UI file");
            Some(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// `Accept-Encoding` lists `gzip` (or `*`) without `q=0`.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

pub(super) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn assets_are_sorted_and_inflate_to_their_length() {
        assert!(ASSETS.windows(2).all(|w| w[0].name < w[1].name));
        for a in ASSETS {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(a.gzip)
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain.len(), a.len, "{}", a.name);
            assert!(
                a.gzip.len() < a.len || a.name.ends_with(".png"),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1.0, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn unknown_files_are_none_and_etags_revalidate() {
        assert!(asset("index.html", &HeaderMap::new()).is_none());
        assert!(asset("../Cargo.toml", &HeaderMap::new()).is_none());
        let first = asset("swagger-ui.css", &headers(&[("accept-encoding", "gzip")])).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = first.headers()[header::ETAG].clone();
        let mut again = headers(&[("accept-encoding", "gzip")]);
        again.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(
            asset("swagger-ui.css", &again).unwrap().status(),
            StatusCode::NOT_MODIFIED
        );
        // The identity variant has its own ETag: a cached gzip body must not satisfy it.
        let mut plain = HeaderMap::new();
        plain.insert(header::IF_NONE_MATCH, etag);
        let r = asset("swagger-ui.css", &plain).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
