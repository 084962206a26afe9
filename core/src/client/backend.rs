//! The siwa server's HTTP API, as the client calls it: `/v1/auth/apple`, `/v1/auth/refresh`,
//! `/v1/auth/logout` and `/v1/me`. Errors come back as `{"error": <code>, "message"}`.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::api::{
    AppRedirectQuery, ErrorBody, ExchangeRequest, FullName, LogoutRequest, RefreshRequest,
    SessionView, SignInRequest, SignInResponse, UserView,
};
use crate::nonce::RawNonce;
use crate::transport::transport_reason;
use crate::web::CodeVerifier;

use super::credential::AppleCredential;
use super::error::ClientError;

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
            // The API never redirects, and a 307 or 308 would send the JSON body (a refresh
            // token, an authorization code) on to wherever it points: plain http or another host.
            .redirect(reqwest::redirect::Policy::none())
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
    ) -> Result<SignInResponse, ClientError> {
        let full_name = credential
            .full_name()
            .map(|(given_name, family_name)| FullName {
                given_name: given_name.map(str::to_owned),
                family_name: family_name.map(str::to_owned),
            });
        let body = SignInRequest {
            identity_token: credential.identity_token.clone(),
            authorization_code: credential.authorization_code.clone(),
            raw_nonce: Some(raw_nonce.expose().to_owned()),
            full_name,
        };
        let request = self.request(Method::POST, "v1/auth/apple").json(&body);
        json(send(request).await?).await
    }

    /// Trades a browser sign-in's one-time code.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &CodeVerifier,
    ) -> Result<SignInResponse, ClientError> {
        let body = ExchangeRequest {
            code: code.to_owned(),
            code_verifier: verifier.expose().to_owned(),
        };
        let request = self.request(Method::POST, "v1/auth/exchange").json(&body);
        json(send(request).await?).await
    }

    /// Asks whether the server's browser sign-in takes `app_redirect_uri`
    /// (`GET /v1/web/app-redirect-uri`).
    pub async fn check_app_redirect(&self, app_redirect_uri: &str) -> Result<(), ClientError> {
        let query = AppRedirectQuery {
            app_redirect_uri: app_redirect_uri.to_owned(),
        };
        let mut url = self
            .base
            .join("v1/web/app-redirect-uri")
            .expect("the route is a valid relative URL");
        url.set_query(Some(
            &serde_urlencoded::to_string(&query).expect("the query serializes"),
        ));
        send(self.http.get(url)).await.map(drop)
    }

    /// The server's base URL (with a trailing slash).
    pub fn base(&self) -> &Url {
        &self.base
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionView, ClientError> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        let request = self.request(Method::POST, "v1/auth/refresh").json(&body);
        json(send(request).await?).await
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<(), ClientError> {
        let body = LogoutRequest {
            refresh_token: Some(refresh_token.to_owned()),
        };
        send(self.request(Method::POST, "v1/auth/logout").json(&body))
            .await
            .map(drop)
    }

    pub async fn me(&self, access_token: &str) -> Result<UserView, ClientError> {
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
    let response = request
        .send()
        .await
        .map_err(|e| ClientError::Network(transport_reason(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // A code this client does not know (a newer server's) is an answer it cannot act on.
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
