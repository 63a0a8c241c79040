//! Whether a failed connection was the upstream refusing the credentials it was given (HTTP
//! 401 or 403 to a streamable-HTTP request): for a multi-user server whose users supply their
//! own keys that asks the user for a new key, where any other failure is retried.

use rmcp::transport::streamable_http_client::StreamableHttpError;

use crate::support::causes;

/// `error` (or one of its causes) is an HTTP 401/403 from the upstream.
pub(super) fn refused_credentials(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|cause| {
        if let Some(e) = cause.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            return match e {
                StreamableHttpError::AuthRequired(_)
                | StreamableHttpError::InsufficientScope(_) => true,
                // A 401/403 without a challenge: rmcp keeps only its status in this text.
                StreamableHttpError::UnexpectedServerResponse(text) => {
                    text.starts_with("HTTP 401") || text.starts_with("HTTP 403")
                }
                _ => false,
            };
        }
        cause
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
            .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403)
    })
}
