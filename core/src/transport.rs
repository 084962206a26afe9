//! Why an HTTP request got no answer, in words fit for a log or an error: never reqwest's own
//! text, which may quote the URL (a webhook receiver's may hold a token).

/// `timed out`, `connection failed` or `transport error`.
pub fn transport_reason(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "transport error"
    }
}

/// An HTTP client could not be set up. In practice the TLS backend found no CA certificates on
/// the system (a container image without `ca-certificates`): a start-up error to report, never
/// a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the HTTP client could not be set up ({reason}); if the system has no CA certificates, install them (Debian: the ca-certificates package)"
)]
pub struct HttpClientError {
    reason: String,
}

/// Builds a client; the error names the cause (the TLS backend's own words, which hold no URL).
pub(crate) fn build_client(
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, HttpClientError> {
    builder.build().map_err(|error| {
        let mut reason = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
        while let Some(cause) = source {
            if !reason.is_empty() {
                reason.push_str(": ");
            }
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        if reason.is_empty() {
            reason = "the TLS backend could not start".into();
        }
        HttpClientError { reason }
    })
}
