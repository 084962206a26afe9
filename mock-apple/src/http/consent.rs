//! The web flow: `GET /auth/authorize` renders a consent sheet like Apple's, and submitting it
//! answers the app the way Apple does (an auto-submitting form POST, or a redirect).
//!
//! Apple's rules, enforced here: `response_type` is `code` or `code id_token`; `scope` is a
//! subset of `name email`; when any scope is asked for, `response_mode` must be `form_post`;
//! an identity token is never put in a query string. The `user` field (name and email, a JSON
//! string) is sent on the user's first authorization of the client only.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use siwa_core::apple_side::AUTHORIZE_PATH;
use siwa_core::{
    AuthorizationResponse, AuthorizeError, FormPostName, FormPostUser, ResponseMode, ResponseType,
    Scope, split_words,
};

use crate::mock::Mock;

pub fn routes() -> Router<Arc<Mock>> {
    Router::new().route(AUTHORIZE_PATH, get(show_consent).post(submit_consent))
}

/// The authorization request's parameters, as Apple names them.
#[derive(Debug, Default, Deserialize)]
struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    response_mode: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
}

/// What the consent sheet posts back: the request, and the user's choices.
#[derive(Debug, Deserialize)]
struct ConsentForm {
    #[serde(flatten)]
    params: AuthorizeParams,
    sub: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_choice: Option<String>,
    action: Option<String>,
}

/// A validated authorization request.
#[derive(Debug)]
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: url::Url,
    with_id_token: bool,
    wants_name: bool,
    wants_email: bool,
    mode: ResponseMode,
    state: Option<String>,
    nonce: Option<String>,
}

/// An error shown on Apple's page rather than sent to the app.
struct PageError {
    error: AuthorizeError,
    description: String,
}

fn page_error(error: AuthorizeError, description: impl Into<String>) -> PageError {
    PageError {
        error,
        description: description.into(),
    }
}

fn unsupported_response_type() -> PageError {
    page_error(
        AuthorizeError::UnsupportedResponseType,
        "response_type must be `code` or `code id_token`",
    )
}

impl AuthorizeParams {
    fn validate(&self) -> Result<AuthorizeRequest, PageError> {
        let present = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let client_id = present(&self.client_id)
            .ok_or_else(|| page_error(AuthorizeError::InvalidRequest, "client_id is missing"))?;
        let redirect_uri = present(&self.redirect_uri)
            .ok_or_else(|| page_error(AuthorizeError::InvalidRequest, "redirect_uri is missing"))?;
        let redirect_uri = url::Url::parse(&redirect_uri).map_err(|_| {
            page_error(
                AuthorizeError::InvalidRequest,
                "redirect_uri is not an absolute URL",
            )
        })?;
        // `.test` is reserved for testing (RFC 6761): never a real domain, and where the tests
        // put a server and its web app on two names of one site.
        let loopback = matches!(
            redirect_uri.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        ) || redirect_uri
            .host_str()
            .is_some_and(|host| host.ends_with(".test"));
        // Apple requires https on a real domain; the mock also takes http on loopback (and on
        // names reserved for tests) for tests.
        if !(redirect_uri.scheme() == "https" || redirect_uri.scheme() == "http" && loopback)
            || redirect_uri.fragment().is_some()
        {
            return Err(page_error(
                AuthorizeError::InvalidRequest,
                "redirect_uri must be https (or http on loopback), without a fragment",
            ));
        }
        let mut response_types: Vec<ResponseType> =
            split_words(self.response_type.as_deref().unwrap_or(""))
                .map_err(|_| unsupported_response_type())?;
        response_types.sort_unstable_by_key(|t| t.as_str());
        let with_id_token = match response_types.as_slice() {
            [ResponseType::Code] => false,
            [ResponseType::Code, ResponseType::IdToken] => true,
            _ => return Err(unsupported_response_type()),
        };
        let scopes: Vec<Scope> =
            split_words(self.scope.as_deref().unwrap_or("")).map_err(|unknown| {
                page_error(
                    AuthorizeError::InvalidScope,
                    format!("unknown scope `{}`", unknown.value),
                )
            })?;
        let wants_name = scopes.contains(&Scope::Name);
        let wants_email = scopes.contains(&Scope::Email);
        let mode = match self.response_mode.as_deref().filter(|m| !m.is_empty()) {
            None => ResponseMode::Query,
            Some(mode) => mode.parse().map_err(|_| {
                page_error(
                    AuthorizeError::InvalidRequest,
                    "response_mode must be query, fragment or form_post",
                )
            })?,
        };
        if (wants_name || wants_email) && mode != ResponseMode::FormPost {
            return Err(page_error(
                AuthorizeError::InvalidRequest,
                "response_mode must be form_post when name or email scope is requested",
            ));
        }
        if with_id_token && mode == ResponseMode::Query {
            return Err(page_error(
                AuthorizeError::InvalidRequest,
                "an id_token is never sent in a query string: use fragment or form_post",
            ));
        }
        Ok(AuthorizeRequest {
            client_id,
            redirect_uri,
            with_id_token,
            wants_name,
            wants_email,
            mode,
            state: present(&self.state),
            nonce: present(&self.nonce),
        })
    }
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (STYLE) }
            }
            body { main class="sheet" { (body) } }
        }
    }
}

const STYLE: &str = "
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
background:#f5f5f7;font:15px -apple-system,BlinkMacSystemFont,'Helvetica Neue',Arial,sans-serif;color:#1d1d1f}
.sheet{background:#fff;border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.12);padding:28px 32px;width:360px}
h1{font-size:20px;text-align:center;margin:8px 0 4px}
.sub{text-align:center;color:#6e6e73;margin:0 0 18px}
fieldset{border:0;padding:0;margin:0 0 16px}
legend{font-weight:600;margin-bottom:6px}
label{display:block;margin:6px 0}
input[type=text],select{width:100%;box-sizing:border-box;padding:8px 10px;border:1px solid #d2d2d7;border-radius:8px;font:inherit}
.row{display:flex;gap:8px}
.primary{width:100%;padding:11px;border:0;border-radius:10px;background:#000;color:#fff;font-size:16px;font-weight:600;cursor:pointer}
.secondary{width:100%;padding:9px;border:0;background:none;color:#0066cc;font:inherit;cursor:pointer;margin-top:6px}
.note{color:#6e6e73;font-size:13px}
.error{color:#b00020}
";

fn error_page(error: &PageError) -> Response {
    let body = html! {
        h1 { "Sign in with Apple" }
        p class="error" { strong { (error.error.as_str()) } }
        p class="note" { (error.description) }
    };
    (
        StatusCode::BAD_REQUEST,
        Html(page("Sign in with Apple: error", body).into_string()),
    )
        .into_response()
}

fn hidden_params(p: &AuthorizeParams) -> Markup {
    let fields = [
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("response_type", &p.response_type),
        ("scope", &p.scope),
        ("response_mode", &p.response_mode),
        ("state", &p.state),
        ("nonce", &p.nonce),
    ];
    html! {
        @for (name, value) in fields {
            @if let Some(value) = value { input type="hidden" name=(name) value=(value); }
        }
    }
}

async fn show_consent(
    State(mock): State<Arc<Mock>>,
    params: Result<Query<AuthorizeParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return error_page(&page_error(
            AuthorizeError::InvalidRequest,
            "the query string could not be read",
        ));
    };
    let request = match params.validate() {
        Ok(request) => request,
        Err(error) => return error_page(&error),
    };
    let users = mock.users();
    let Some(default_user) = users.first() else {
        return error_page(&page_error(
            AuthorizeError::InvalidRequest,
            "the mock has no test users",
        ));
    };
    let returning = mock.has_authorized(&default_user.sub, &request.client_id);
    let asks = request.wants_name || request.wants_email;
    let body = html! {
        h1 { "Sign in with Apple" }
        p class="sub" { "Use your Apple Account to sign in to " strong { (request.client_id) } "." }
        form method="post" action=(AUTHORIZE_PATH) {
            (hidden_params(&params))
            fieldset {
                legend { "Apple Account" }
                select name="sub" aria-label="Apple Account" {
                    @for user in &users {
                        option value=(user.sub) { (user.email) }
                    }
                }
            }
            @if returning {
                p class="note" { "You already use Sign in with Apple with this app." }
            } @else if asks {
                @if request.wants_name {
                    fieldset {
                        legend { "Name" }
                        div class="row" {
                            input type="text" name="first_name" value=(default_user.given_name) aria-label="First name";
                            input type="text" name="last_name" value=(default_user.family_name) aria-label="Last name";
                        }
                    }
                }
                @if request.wants_email {
                    fieldset {
                        legend { "Email" }
                        label { input type="radio" name="email_choice" value="share" checked; " Share My Email" }
                        label { input type="radio" name="email_choice" value="hide"; " Hide My Email" }
                        p class="note" { "Hide My Email forwards from a private relay address unique to this app." }
                    }
                }
            }
            button class="primary" type="submit" name="action" value="continue" { "Continue" }
            button class="secondary" type="submit" name="action" value="cancel" { "Cancel" }
        }
    };
    Html(page("Sign in with Apple", body).into_string()).into_response()
}

async fn submit_consent(
    State(mock): State<Arc<Mock>>,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(&page_error(
            AuthorizeError::InvalidRequest,
            "the consent form could not be read",
        ));
    };
    let request = match form.params.validate() {
        Ok(request) => request,
        Err(error) => return error_page(&error),
    };
    let mut response = AuthorizationResponse {
        state: request.state.clone(),
        ..Default::default()
    };
    if form.action.as_deref() == Some("cancel") {
        response.error = Some(AuthorizeError::UserCancelledAuthorize.to_string());
    } else {
        let Some(user) = mock.user_for_consent(form.sub.as_deref()) else {
            return error_page(&page_error(
                AuthorizeError::InvalidRequest,
                "no such Apple Account",
            ));
        };
        let hide_email = form.email_choice.as_deref() == Some("hide");
        let authorized = mock.authorize(
            &user,
            &request.client_id,
            request.redirect_uri.as_str(),
            request.wants_email,
            hide_email,
            request.nonce.as_deref(),
        );
        response.code = Some(authorized.code);
        if request.with_id_token {
            response.id_token = Some(authorized.id_token);
        }
        if authorized.first && (request.wants_name || request.wants_email) {
            let name = request.wants_name.then(|| FormPostName {
                first_name: Some(form.first_name.unwrap_or_else(|| user.given_name.clone())),
                last_name: Some(form.last_name.unwrap_or_else(|| user.family_name.clone())),
            });
            let email = authorized.email.filter(|_| request.wants_email);
            let user_field = FormPostUser { name, email };
            response.user = Some(user_field.to_json());
        }
    }
    let encoded = serde_urlencoded::to_string(&response).expect("the response serializes");
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(encoded.as_bytes())
        .into_owned()
        .collect();
    respond_to_app(&request, &fields)
}

/// Hands the result to the app as `response_mode` asks.
fn respond_to_app(request: &AuthorizeRequest, fields: &[(String, String)]) -> Response {
    match request.mode {
        ResponseMode::FormPost => {
            let body = html! {
                (DOCTYPE)
                html lang="en" {
                    head { meta charset="utf-8"; title { "Signing in…" } }
                    body {
                        form method="post" action=(request.redirect_uri.as_str()) {
                            @for (name, value) in fields {
                                input type="hidden" name=(name) value=(value);
                            }
                            noscript { button type="submit" { "Continue" } }
                        }
                        script { "document.forms[0].submit();" }
                    }
                }
            };
            Html(body.into_string()).into_response()
        }
        ResponseMode::Query => {
            let mut target = request.redirect_uri.clone();
            target
                .query_pairs_mut()
                .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            redirect(target.as_str())
        }
        ResponseMode::Fragment => {
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .finish();
            let mut target = request.redirect_uri.clone();
            target.set_fragment(Some(&encoded));
            redirect(target.as_str())
        }
    }
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}
