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
