//! The words of Apple's authorization request and of its answer (docs/apple-protocol.md, F13,
//! P5), and PKCE's challenge method (RFC 7636), which siwa's own browser sign-in speaks. The
//! server builds the request with them, `mock-apple` reads it with them, and the client reads
//! the answer with them.

use crate::word::protocol_word;

protocol_word! {
    /// One word of `response_type`, a space-separated list: Apple takes `code` or
    /// `code id_token`.
    ResponseType, "response_type" {
        /// An authorization code.
        Code => "code",
        /// An identity token beside the code.
        IdToken => "id_token",
    }
}

protocol_word! {
    /// How Apple hands the answer to the redirect URI.
    ResponseMode, "response_mode" {
        /// In the redirect's query string (no identity token, no scope).
        Query => "query",
        /// In the redirect's fragment.
        Fragment => "fragment",
        /// An auto-submitted form POST: required whenever a scope is asked for (P5).
        FormPost => "form_post",
    }
}

protocol_word! {
    /// One word of `scope`, a space-separated list.
    Scope, "scope" {
        /// The user's name, sent once, on the first authorization (F6).
        Name => "name",
        /// The user's email (or a private relay address).
        Email => "email",
        /// OpenID Connect's scope, which Apple accepts and ignores.
        OpenId => "openid",
    }
}

protocol_word! {
    /// PKCE's `code_challenge_method` (RFC 7636 4.3): siwa takes S256 only.
    CodeChallengeMethod, "code_challenge_method" {
        /// base64url(SHA-256(verifier)).
        S256 => "S256",
    }
}

protocol_word! {
    /// The `error` of the authorization's answer (RFC 6749 4.1.2.1, and Apple's own).
    AuthorizeError, "error" {
        /// The user pressed Cancel on Apple's sheet.
        UserCancelledAuthorize => "user_cancelled_authorize",
        /// A parameter is missing or malformed.
        InvalidRequest => "invalid_request",
        /// `response_type` is not one Apple takes.
        UnsupportedResponseType => "unsupported_response_type",
        /// A scope is not one Apple knows.
        InvalidScope => "invalid_scope",
    }
}

/// What siwa's web flow asks of Apple: a code and an identity token, posted back with the name
/// and email (F13, P5).
pub(crate) const WEB_RESPONSE_TYPE: &[ResponseType] = &[ResponseType::Code, ResponseType::IdToken];
pub(crate) const WEB_SCOPE: &[Scope] = &[Scope::Name, Scope::Email];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::word::{join, split};

    #[test]
    fn lists_are_spelled_and_read_as_apple_does() {
        assert_eq!(join(WEB_RESPONSE_TYPE), "code id_token");
        assert_eq!(join(WEB_SCOPE), "name email");
        assert_eq!(
            split::<ResponseType>("id_token  code").unwrap(),
            [ResponseType::IdToken, ResponseType::Code]
        );
        let unknown = split::<Scope>("name phone").unwrap_err();
        assert_eq!((unknown.field, unknown.value.as_str()), ("scope", "phone"));
        assert_eq!(
            "user_cancelled_authorize".parse(),
            Ok(AuthorizeError::UserCancelledAuthorize)
        );
    }
}
