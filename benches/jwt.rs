//! Verifying an Open WebUI session JWT, which every multi-user call does before anything else:
//! `cargo bench --bench jwt` (target: ≤ 5 µs per verification, issue #16).
//!
//! The verifier is `src/http/caller/jwt.rs` itself, compiled into this bench by path (it is
//! private to the `http` layer and depends on nothing of mcpo), so what is measured is the
//! code mcpo runs. Tokens are minted as Open WebUI 0.12 mints them (PyJWT, HS256 over the UTF-8
//! bytes of `WEBUI_SECRET_KEY`, claims `id`/`exp`/`iat`/`jti`/`typ`), like
//! `tests/it/multi_user.rs`.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

// Bench targets are built with cfg(test): the file's own tests come along, unused.
#[allow(dead_code, unused_imports)]
#[path = "../src/http/caller/jwt.rs"]
mod jwt;

/// What `jwt.rs` names of the crate: the verified caller's profile (`support/caller.rs`, which
/// depends on nothing of mcpo either).
#[path = "../src/support"]
mod support {
    #[allow(dead_code)]
    pub mod caller;
}

fn main() {
    divan::main();
}

const SECRET: &str = "a-webui-secret-key-of-usual-length";

fn token(secret: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "id": "5f0d4c3e-8a51-4b0e-9c7d-2a1e6f3b9d84",
        "exp": now + 3600,
        "iat": now,
        "jti": "0b6a1c52-7d3e-4f89-a2c4-91e5d7f3b608",
        "typ": "session",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid session token: the path of every multi-user call.
#[divan::bench]
fn verify_valid(bencher: divan::Bencher) {
    let token = token(SECRET);
    bencher.bench(|| jwt::verify_webui_jwt(black_box(&token), black_box(SECRET)).unwrap());
}

/// A token signed with another secret: refused after the signature check.
#[divan::bench]
fn verify_wrong_secret(bencher: divan::Bencher) {
    let token = token("not-the-secret");
    bencher.bench(|| jwt::verify_webui_jwt(black_box(&token), black_box(SECRET)).unwrap_err());
}
