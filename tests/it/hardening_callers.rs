//! #19 item 14: who a caller is. Open WebUI JWTs that are not valid yet are refused (`nbf`),
//! and no user id, however it is spelled, shares the `--api-key` holder's upstream session.
//!
//! The fixture's `whoami` tool answers its process id: over stdio every multi-user caller gets a
//! child process of their own, so equal pids mean a shared session.

use std::time::Duration;

use crate::common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "owui-hardening-secret-5e1d";
const USER_INFO_SECRET: &str = "owui-user-info-secret-77a0";
const API_KEY: &str = "service-key-hardening-31";

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode JWT")
}

/// mcpo with the stdio fixture `fx` as a multi-user server, past its discovery session.
async fn start_multi(args: &[&str]) -> (Mcpo, tempfile::NamedTempFile) {
    let mut entry = fixture_stdio_entry();
    entry["multi_user"] = json!(true);
    entry["webui_secret_key"] = json!(SECRET);
    let config = write_config(&json!({ "mcpServers": { "fx": entry } }).to_string());
    let mut all = vec!["--config", config.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let mcpo = Mcpo::start(&all);
    wait_log(
        &mcpo,
        &["closing the discovery session"],
        1,
        Duration::from_secs(30),
    )
    .await;
    (mcpo, config)
}

fn pid_of(r: &Reply, what: &str) -> u64 {
    assert_eq!(r.status, StatusCode::OK, "{what}: {r:?}");
    r.body["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no pid in {r:?}"))
}

/// A JWT whose `nbf` is an hour away is not valid yet, whether it comes as the session token
/// or as the signed user-info header; the same claims without `nbf` (or with one in the past)
/// are accepted, so it is `nbf` that is checked.
#[tokio::test]
async fn jwts_that_are_not_valid_yet_are_refused() {
    let (mcpo, _config) = start_multi(&["--webui-user-jwt-secret", USER_INFO_SECRET]).await;
    let t = now();
    let session = |nbf: Option<u64>| {
        let mut c = json!({"id": "user-nbf", "exp": t + 7200, "iat": t, "typ": "session"});
        if let Some(nbf) = nbf {
            c["nbf"] = json!(nbf);
        }
        sign(&c, SECRET)
    };
    let call = |headers: Vec<(&'static str, String)>| {
        let mut request = client().post(mcpo.url("/fx/whoami")).json(&json!({}));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        send(request)
    };

    let early = call(vec![("authorization", bearer(&session(Some(t + 3600))))]).await;
    assert_eq!(
        early.status,
        StatusCode::UNAUTHORIZED,
        "a session JWT not valid for another hour was accepted: {early:?}"
    );
    assert!(early.message().contains("not valid yet"), "{early:?}");
    let ok = call(vec![("authorization", bearer(&session(Some(t - 5))))]).await;
    pid_of(&ok, "session JWT valid since 5 s");
    let ok = call(vec![("authorization", bearer(&session(None)))]).await;
    pid_of(&ok, "session JWT without nbf");

    let user_info = |nbf: u64| {
        let c = json!({"sub": "user-nbf-2", "iss": "open-webui", "iat": t, "exp": t + 7200,
                       "nbf": nbf});
        sign(&c, USER_INFO_SECRET)
    };
    let early = call(vec![("x-openwebui-user-jwt", user_info(t + 3600))]).await;
    assert_eq!(
        early.status,
        StatusCode::UNAUTHORIZED,
        "a user-info JWT not valid for another hour was accepted: {early:?}"
    );
    let ok = call(vec![("x-openwebui-user-jwt", user_info(t - 5))]).await;
    pid_of(&ok, "user-info JWT valid since 5 s");
}

/// The API-key holder was keyed as the user id `"\0service"`: a JWT naming that id got the
/// API-key holder's own session (and OAuth tokens). It must get one of its own.
#[tokio::test]
async fn a_user_id_spelled_like_the_api_key_holder_gets_its_own_session() {
    let (mcpo, _config) = start_multi(&["--api-key", API_KEY]).await;
    let service = post(&mcpo, "/fx/whoami", Some(&bearer(API_KEY)), json!({})).await;
    let service = pid_of(&service, "API-key holder");
    let t = now();
    for id in ["\u{0}service", "service", "\u{0}anonymous"] {
        let jwt = sign(
            &json!({"id": id, "exp": t + 3600, "iat": t, "typ": "session"}),
            SECRET,
        );
        let r = post(&mcpo, "/fx/whoami", Some(&bearer(&jwt)), json!({})).await;
        let user = pid_of(&r, &format!("user {id:?}"));
        assert_ne!(
            user, service,
            "the Open WebUI user {id:?} was served on the API-key holder's session"
        );
    }
    let again = post(&mcpo, "/fx/whoami", Some(&bearer(API_KEY)), json!({})).await;
    assert_eq!(pid_of(&again, "API-key holder again"), service);
}
