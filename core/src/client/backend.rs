//! The siwa server's HTTP API, as the client calls it: `/v1/auth/apple`, `/v1/auth/refresh`,
//! `/v1/auth/logout` and `/v1/me`. Errors come back as `{"error": <code>, "message"}`.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::nonce::RawNonce;
use crate::web::CodeVerifier;

use super::credential::AppleCredential;
use super::error::ClientError;
use super::session::User;

/// The answer of `POST /v1/auth/apple`.
#[derive(Deserialize)]
pub(super) struct SignedIn {
    pub user: User,
    pub session: Tokens,
}

/// A session's tokens, as the server gives them on sign-in and refresh.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignInRequest<'a> {
    identity_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_code: Option<&'a str>,
    raw_nonce: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<FullName<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FullName<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeRequest<'a> {
    code: &'a str,
    code_verifier: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefreshTokenBody<'a> {
    refresh_token: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

pub(super) struct Backend {
    base: Url,
    http: reqwest::Client,
}

/// Whether `url` names this machine: `localhost` (RFC 6761) or a loopback address.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Backend {
    pub fn new(server_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let mut base = Url::parse(server_url).map_err(|_| ClientError::InvalidServerUrl)?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidServerUrl);
        }
        // Refresh tokens and Apple's authorization code travel to this server: in clear only
        // to this machine (a development server), never over a network.
        if base.scheme() == "http" && !is_loopback(&base) {
            return Err(ClientError::InsecureServerUrl);
        }
        // Routes are joined under the URL's path, so a server behind a path prefix works.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("siwa-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ClientError::Network("the HTTP client could not be set up"))?;
        Ok(Self { base, http })
    }

    pub async fn sign_in(
        &self,
        credential: &AppleCredential,
        raw_nonce: &RawNonce,
    ) -> Result<SignedIn, ClientError> {
        let full_name = credential
            .full_name()
            .map(|(given_name, family_name)| FullName {
                given_name,
                family_name,
            });
        let body = SignInRequest {
            identity_token: &credential.identity_token,
            authorization_code: credential.authorization_code.as_deref(),
            raw_nonce: raw_nonce.expose(),
            full_name,
        };
        let request = self.request(Method::POST, "v1/auth/apple").json(&body);
        json(send(request).await?).await
    }

    /// Trades a browser sign-in's one-time code; also returns the user's Apple `sub`.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &CodeVerifier,
    ) -> Result<(SignedIn, String), ClientError> {
        let body = ExchangeRequest {
            code,
            code_verifier: verifier.expose(),
        };
        let request = self.request(Method::POST, "v1/auth/exchange").json(&body);
        let answer: serde_json::Value = json(send(request).await?).await?;
        let apple_user_id = answer["user"]["appleUserId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let signed_in =
            serde_json::from_value(answer).map_err(|_| ClientError::UnexpectedResponse(200))?;
        Ok((signed_in, apple_user_id))
    }

    /// The server's base URL (with a trailing slash).
    pub fn base(&self) -> &Url {
        &self.base
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ClientError> {
        let body = RefreshTokenBody { refresh_token };
        let request = self.request(Method::POST, "v1/auth/refresh").json(&body);
        json(send(request).await?).await
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), ClientError> {
        let body = RefreshTokenBody { refresh_token };
        send(self.request(Method::POST, "v1/auth/logout").json(&body))
            .await
            .map(drop)
    }

    pub async fn me(&self, access_token: &str) -> Result<User, ClientError> {
        let request = self.request(Method::GET, "v1/me").bearer_auth(access_token);
        json(send(request).await?).await
    }

    pub async fn delete_me(&self, access_token: &str) -> Result<(), ClientError> {
        send(
            self.request(Method::DELETE, "v1/me")
                .bearer_auth(access_token),
        )
        .await
        .map(drop)
    }

    fn request(&self, method: Method, route: &str) -> RequestBuilder {
        let url = self
            .base
            .join(route)
            .expect("routes are valid relative URLs");
        self.http.request(method, url)
    }
}

/// Sends a request; a non-2xx answer becomes the server's error.
async fn send(request: RequestBuilder) -> Result<Response, ClientError> {
    // Without the URL or body in any error: reqwest's texts may quote the request.
    let response = request.send().await.map_err(|e| {
        ClientError::Network(if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "transport error"
        })
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    match response.json::<ErrorBody>().await {
        Ok(body) => Err(ClientError::Server {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
        }),
        Err(_) => Err(ClientError::UnexpectedResponse(status.as_u16())),
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    response.json().await.map_err(|e| {
        if e.is_timeout() {
            ClientError::Network("timed out")
        } else {
            ClientError::UnexpectedResponse(status)
        }
    })
}
