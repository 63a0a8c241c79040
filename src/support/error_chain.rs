//! An error and its causes as one line, for logs and error bodies.

/// `error`'s text followed by each cause's (`": "` between them), leaving out a cause the line
/// already says, and without the Rust type names rmcp puts in transport errors
/// (`Transport [rmcp::transport::worker::…] error: `): operators need the cause ("Connection
/// refused"), not our internals.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = strip_type_names(&error.to_string());
    let mut source = next_cause(error);
    while let Some(cause) = source {
        let part = strip_type_names(&cause.to_string());
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = next_cause(cause);
    }
    text
}

/// `error` and its causes, outermost first, followed as [`error_chain`] does.
pub(crate) fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn std::error::Error + 'static)| {
        next_cause(*e)
    })
    .take(32)
}

/// `error`'s cause. rmcp's `initialize` transport error and its streamable-HTTP `Client`
/// error wrap their cause without naming it as their source, which would hide why a request
/// failed (a refused cross-origin redirect, a TLS failure); they are followed here.
fn next_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    use rmcp::service::ClientInitializeError;
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    if let Some(ClientInitializeError::TransportError { error, .. }) =
        error.downcast_ref::<ClientInitializeError>()
    {
        return Some(error);
    }
    if let Some(StreamableHttpError::Client(inner)) =
        error.downcast_ref::<StreamableHttpError<reqwest::Error>>()
    {
        return Some(inner);
    }
    error.source()
}

fn strip_type_names(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("Transport [") {
        let Some(end) = out[start..].find("] error: ") else {
            break;
        };
        out.replace_range(start..start + end + "] error: ".len(), "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// An error with a message and an optional cause, as thiserror's `#[source]` makes them.
    #[derive(Debug)]
    struct Wrapped(
        &'static str,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    );

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn refused() -> Box<io::Error> {
        Box::new(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ))
    }

    #[test]
    fn causes_follow_the_error_once_each() {
        let inner = Wrapped("error sending request", Some(refused()));
        let outer = Wrapped("POST request failed", Some(Box::new(inner)));
        assert_eq!(
            error_chain(&outer),
            "POST request failed: error sending request: Connection refused"
        );
        // A cause the message already quotes is not repeated.
        let quoting = Wrapped("connect failed: Connection refused", Some(refused()));
        assert_eq!(error_chain(&quoting), "connect failed: Connection refused");
    }

    #[test]
    fn rmcp_transport_type_names_are_left_out() {
        let transport = rmcp::transport::DynamicTransportError::from_parts(
            "rmcp::transport::worker::WorkerTransport<rmcp::transport::streamable_http_client::StreamableHttpClientWorker<reqwest::Client>>",
            std::any::TypeId::of::<()>(),
            refused(),
        );
        assert_eq!(error_chain(&transport), "Connection refused");
        let outer = Wrapped("send failed", Some(Box::new(transport)));
        assert_eq!(error_chain(&outer), "send failed: Connection refused");
    }
}
