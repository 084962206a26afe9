//! Signing in through the browser, for apps that cannot show Apple's sheet (Android, Windows):
//! the app opens the server's `GET /v1/web/sign-in` with its redirect URI and a PKCE challenge,
//! the browser goes through Apple and comes back to the app's URL with a one-time code (or an
//! `error`), and the app trades the code and its verifier at `POST /v1/auth/exchange`.

use reqwest::Url;

use crate::api::{AppCallback, BrowserSignInQuery};
use crate::authorize::{AuthorizeError, CodeChallengeMethod};
use crate::web::CodeVerifier;

use super::error::ClientError;

/// A browser sign-in in progress: the verifier never leaves the app until the code is traded.
pub(super) struct BrowserAttempt {
    app_redirect_uri: Url,
    pub verifier: CodeVerifier,
}

impl BrowserAttempt {
    /// A fresh attempt, and the URL to open for it.
    pub fn start(server: &Url, app_redirect_uri: &str) -> Result<(Self, String), ClientError> {
        let app_redirect_uri =
            Url::parse(app_redirect_uri).map_err(|_| ClientError::InvalidRedirectUri)?;
        let verifier = CodeVerifier::generate();
        let mut url = server
            .join("v1/web/sign-in")
            .expect("the route is a valid relative URL");
        let query = BrowserSignInQuery {
            app_redirect_uri: Some(app_redirect_uri.to_string()),
            code_challenge: Some(verifier.challenge()),
            code_challenge_method: Some(CodeChallengeMethod::S256.to_string()),
            ..Default::default()
        };
        url.set_query(Some(
            &serde_urlencoded::to_string(&query).expect("the query serializes"),
        ));
        Ok((
            Self {
                app_redirect_uri,
                verifier,
            },
            url.into(),
        ))
    }

    /// The one-time code of the URL the browser came back to; the URL must be the attempt's
    /// redirect URI (same scheme, host, port and path).
    pub fn code_from(&self, callback_url: &str) -> Result<String, ClientError> {
        let url = Url::parse(callback_url).map_err(|_| ClientError::UnknownAttempt)?;
        let expected = &self.app_redirect_uri;
        let same_target = url.scheme() == expected.scheme()
            && url.host_str() == expected.host_str()
            && url.port_or_known_default() == expected.port_or_known_default()
            && url.path() == expected.path();
        if !same_target {
            return Err(ClientError::UnknownAttempt);
        }
        let callback: AppCallback = serde_urlencoded::from_str(url.query().unwrap_or_default())
            .map_err(|_| ClientError::UnknownAttempt)?;
        if let Some(error) = callback.error {
            // Apple's cancel, which the server passes on to the app's URL.
            return Err(
                if error.parse() == Ok(AuthorizeError::UserCancelledAuthorize) {
                    ClientError::Cancelled
                } else {
                    ClientError::BrowserSignInFailed(error)
                },
            );
        }
        callback
            .code
            .filter(|c| !c.is_empty())
            .ok_or(ClientError::UnknownAttempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt() -> (BrowserAttempt, String) {
        let server = Url::parse("https://auth.example.com/").unwrap();
        BrowserAttempt::start(&server, "com.example.app://signed-in").unwrap()
    }

    #[test]
    fn the_start_url_carries_the_redirect_and_the_verifiers_challenge() {
        let (attempt, url) = attempt();
        let url = Url::parse(&url).unwrap();
        assert_eq!(url.path(), "/v1/web/sign-in");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("app_redirect_uri").as_deref(),
            Some("com.example.app://signed-in")
        );
        assert_eq!(get("code_challenge"), Some(attempt.verifier.challenge()));
        assert_eq!(get("code_challenge_method").as_deref(), Some("S256"));
        assert!(!url.as_str().contains(attempt.verifier.expose()));
    }

    #[test]
    fn the_callback_gives_the_code_or_why_not() {
        let (attempt, _) = attempt();
        assert_eq!(
            attempt
                .code_from("com.example.app://signed-in?code=abc")
                .unwrap(),
            "abc"
        );
        assert_eq!(
            attempt.code_from("com.example.app://signed-in?error=user_cancelled_authorize"),
            Err(ClientError::Cancelled)
        );
        assert_eq!(
            attempt.code_from("com.example.app://signed-in?error=invalid_state"),
            Err(ClientError::BrowserSignInFailed("invalid_state".into()))
        );
        for other in [
            "com.example.evil://signed-in?code=abc",
            "com.example.app://elsewhere?code=abc",
            "com.example.app://signed-in",
            "not a url",
        ] {
            assert_eq!(
                attempt.code_from(other),
                Err(ClientError::UnknownAttempt),
                "{other}"
            );
        }
    }
}
