//! The web flow's routes (`crate::web`): the start, Apple's form post, the native app's code
//! exchange, and the page with its two forms.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Form, Json};
use serde::Deserialize;
use siwa_core::{
    AuthorizationRequest, AuthorizationResponse, CodeChallengeMethod, CodeVerifier, Endpoints,
};

use super::JsonBody;
use crate::accounts::{self, CallbackOutcome, Completion, NativeApp, WebApp};
use crate::api::{
    AppCallback, AppRedirectQuery, BrowserSignInQuery, ExchangeRequest, SignInResponse, UserView,
    WebSignInMode,
};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::tokens::{SessionId, UserId, WebSessionSecret};
use crate::web::banner::{Banner, Notice};
use crate::web::page::{self, View};
pub use crate::web::respond::{favicon, popup_script, stylesheet};
use crate::web::respond::{
    html, html_under, see_other, to_app, to_web_app_with_error, with_cookie,
};
use crate::web::{self as flow, WebFlow, guard};

/// Sends the browser to Apple's consent page with a fresh, recorded `state` and nonce. A
/// native app adds `app_redirect_uri` (one of `SIWA_APP_REDIRECT_URIS`) and an S256
/// `code_challenge`; a web app adds `return_to` (on one of `SIWA_WEB_ORIGINS`) and `mode`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    params: QueryOf<BrowserSignInQuery>,
) -> Response {
    let (web, Query(params)) = match prepared(&state, params, UNREADABLE_QUERY) {
        Ok(prepared) => prepared,
        Err(page) => return page,
    };
    let given = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
    if given(&params.app_redirect_uri) && given(&params.return_to) {
        let error = "a sign-in is a native app's (app_redirect_uri) or a web app's (return_to)";
        return error_page(&state, ApiError::bad_request(error));
    }
    let apps = web_app(web, &params).and_then(|web_app| Ok((native_app(web, params)?, web_app)));
    let (app, web_app) = match apps {
        Ok(apps) => apps,
        Err(error) => return error_page(&state, error),
    };
    let started = state
        .accounts
        .start_in_browser(app.as_ref(), web_app.as_ref())
        .await;
    let started = match started {
        Ok(started) => started,
        Err(error) => return error_page(&state, error),
    };
    let cookie = web.binding_cookie(
        started.binding_hash.as_str(),
        &started.binding,
        accounts::STATE_TTL_SECS,
    );
    let url = AuthorizationRequest {
        client_id: &web.services_id,
        redirect_uri: &web.callback_url,
        state: &started.state,
        nonce: &started.hashed_nonce,
    }
    .url(&Endpoints::new(state.config.apple_base_url.clone()));
    see_other(&url, &[&cookie])
}

/// Whether a native app's start would take its redirect URI: the clients ask before they open
/// the browser, so that a URI the server does not list fails in the app at once rather than on
/// a page only the user sees. Writes nothing; the list is no secret (the start says as much).
#[utoipa::path(get, path = "/v1/web/app-redirect-uri", tag = "sign-in", params(AppRedirectQuery),
    responses((status = 204, description = "the start takes this redirect URI"),
              (status = 400, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub async fn check_app_redirect(
    State(state): State<Arc<AppState>>,
    query: QueryOf<AppRedirectQuery>,
) -> Result<StatusCode, ApiError> {
    let web = configured(&state)?;
    let Query(query) = query.map_err(|_| ApiError::bad_request(UNREADABLE_QUERY))?;
    if web.allows_app_redirect(&query.app_redirect_uri) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::AppRedirectUriNotAllowed)
    }
}

/// The native app's part of a start, if any: its redirect URI, checked exactly, and its
/// challenge.
fn native_app(web: &WebFlow, params: BrowserSignInQuery) -> Result<Option<NativeApp>, ApiError> {
    let Some(app_redirect_uri) = params.app_redirect_uri.filter(|u| !u.is_empty()) else {
        if params.code_challenge.is_some() {
            return Err(ApiError::bad_request(
                "code_challenge is for native apps: give app_redirect_uri too",
            ));
        }
        return Ok(None);
    };
    if !web.allows_app_redirect(&app_redirect_uri) {
        return Err(ApiError::AppRedirectUriNotAllowed);
    }
    let challenge = params
        .code_challenge
        .filter(|c| siwa_core::is_s256_challenge(c))
        .filter(|_| {
            params
                .code_challenge_method
                .as_deref()
                .is_none_or(|m| m.parse() == Ok(CodeChallengeMethod::S256))
        })
        .ok_or(ApiError::InvalidCodeChallenge)?;
    Ok(Some(NativeApp {
        redirect_uri: app_redirect_uri,
        code_challenge: challenge,
    }))
}

/// A web app's part of a start, if any: its `return_to`, on one of `SIWA_WEB_ORIGINS`, and
/// whether the sign-in runs in a popup.
fn web_app(web: &WebFlow, params: &BrowserSignInQuery) -> Result<Option<WebApp>, ApiError> {
    let mode = match params.mode.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(mode) => Some(
            mode.parse::<WebSignInMode>()
                .map_err(|_| ApiError::bad_request("mode must be redirect or popup"))?,
        ),
    };
    let Some(return_to) = params.return_to.as_deref().filter(|r| !r.is_empty()) else {
        if mode.is_some() {
            return Err(ApiError::bad_request(
                "mode is for web apps: give return_to too",
            ));
        }
        return Ok(None);
    };
    let (return_to, _) = web
        .web_app_return(return_to)
        .ok_or(ApiError::ReturnToNotAllowed)?;
    Ok(Some(WebApp {
        return_to,
        popup: mode == Some(WebSignInMode::Popup),
    }))
}

/// Apple's cross-site form post: the `state` is looked up (single use), the identity token
/// verified, the code exchanged and the user recorded; but no one is signed in here, since
/// anyone can make a browser post these fields (login CSRF). The outcome waits under a one-time
/// handle for the browser that started the sign-in, sent on to [`complete`].
pub async fn callback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: FormOf<AuthorizationResponse>,
) -> Response {
    let (web, Form(form)) = match prepared(&state, form, "the form post could not be read") {
        Ok(prepared) => prepared,
        Err(page) => return page,
    };
    if let Err(refused) = guard::posted_by_apple(web, &headers) {
        guard::record_refused_origin(refused);
        return error_page(&state, ApiError::CallbackOriginInvalid);
    }
    match state.accounts.receive_callback(&form).await {
        CallbackOutcome::Cancelled {
            app: Some((app, error)),
            ..
        } => to_app(
            &app.redirect_uri,
            &AppCallback {
                error: Some(error),
                ..Default::default()
            },
        ),
        CallbackOutcome::Cancelled {
            web_app: Some((web_app, error)),
            ..
        } => to_web_app(&state, web, &web_app, Some(&error), &[]),
        CallbackOutcome::Cancelled { .. } => see_other(&Notice::Cancelled.location(), &[]),
        CallbackOutcome::Failed {
            app,
            web_app,
            error,
        } => fail(&state, app.as_ref(), web_app.as_ref(), error),
        CallbackOutcome::Completed {
            handle,
            binding_hash,
        } => {
            let tag = flow::binding_tag(binding_hash.as_str());
            see_other(
                &format!("/v1/web/complete?handle={handle}&binding={tag}"),
                &[],
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CompleteParams {
    handle: Option<String>,
    /// Which binding cookie is the sign-in's ([`flow::binding_tag`]).
    binding: Option<String>,
}

/// The browser's top-level GET after Apple's form post: it carries the `SameSite=Lax` binding
/// cookie (a cross-site POST does not; a navigation does), and only when that cookie is the
/// one the sign-in started with is anyone signed in: the page gets its session cookie, a
/// native app its one-time code. Anything else is `invalid_state`, with nothing signed in.
pub async fn complete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: QueryOf<CompleteParams>,
) -> Response {
    let (web, Query(params)) = match prepared(&state, params, UNREADABLE_QUERY) {
        Ok(prepared) => prepared,
        Err(page) => return page,
    };
    let Some(handle) = params.handle.filter(|h| !h.is_empty()) else {
        return error_page(&state, ApiError::InvalidState);
    };
    let Some(tag) = params.binding.filter(|t| flow::is_binding_tag(t)) else {
        return error_page(&state, ApiError::InvalidState);
    };
    let binding = web.binding_from(&headers, &tag);
    let ttl = state.config.refresh_token_ttl.as_secs() as i64;
    let completion = state
        .accounts
        .complete_in_browser(&handle, binding.as_deref())
        .await;
    let done = web.cleared_binding_cookie(&tag);
    match completion {
        Ok(Completion::Page {
            session_secret,
            web_app,
        }) => {
            let session = web.session_cookie(session_secret.as_str(), ttl);
            match web_app {
                None => see_other("/", &[&session, &done]),
                Some(web_app) => to_web_app(&state, web, &web_app, None, &[&session, &done]),
            }
        }
        Ok(Completion::App {
            app_redirect_uri,
            code,
        }) => {
            let callback = AppCallback {
                code: Some(code),
                ..Default::default()
            };
            with_cookie(to_app(&app_redirect_uri, &callback), &done)
        }
        Ok(Completion::Refused) => error_page(&state, ApiError::InvalidState),
        Err(error) => error_page(&state, error),
    }
}

/// Trades a native app's one-time code and PKCE verifier for a session: the answer
/// `POST /v1/auth/apple` gives.
#[utoipa::path(post, path = "/v1/auth/exchange", tag = "sign-in", request_body = ExchangeRequest,
    responses((status = 200, body = SignInResponse), (status = 400, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn exchange(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<ExchangeRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    configured(&state)?;
    if !CodeVerifier::is_well_formed(&request.code_verifier) {
        return Err(ApiError::bad_request(
            "codeVerifier must be 43 to 128 characters of [A-Za-z0-9-._~]",
        ));
    }
    let verifier = CodeVerifier::new(request.code_verifier);
    Ok(Json(
        state.accounts.redeem_code(&request.code, &verifier).await?,
    ))
}

#[derive(Deserialize)]
pub struct PageParams {
    error: Option<String>,
    notice: Option<String>,
}

/// The page: the button, or the signed-in user with "Sign out" and "Delete account".
pub async fn show_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<PageParams>,
) -> Response {
    let banner = Banner::from_query(params.error.as_deref(), params.notice.as_deref());
    page_for(&state, &headers, StatusCode::OK, banner.as_ref()).await
}

/// The page as the request's cookie sees it (the signed-in user, or the button), with a banner.
async fn page_for(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    banner: Option<&Banner>,
) -> Response {
    let Some(web) = &state.web else {
        let view = View::SignedOut {
            unavailable: state.config.web.missing(),
        };
        return html(status, render(state, &view, banner));
    };
    match signed_in(state, web, headers).await {
        Ok(Some(page)) => {
            let csrf = guard::csrf_token(page.secret.as_str());
            let view = View::SignedIn {
                user: &page.user,
                csrf: &csrf,
            };
            html(status, render(state, &view, banner))
        }
        Ok(None) => html(
            status,
            render(state, &View::SignedOut { unavailable: None }, banner),
        ),
        Err(error) => error_page(state, error),
    }
}

/// A refused form of the page (a stale tab's CSRF token, an unconfirmed deletion): the page
/// for whoever is signed in, with the error, rather than a signed-out page beside a session
/// that is still there.
async fn refused_form(state: &AppState, headers: &HeaderMap, error: ApiError) -> Response {
    let banner = Some(Banner::error(error.code()));
    let page = page_for(state, headers, error.status(), banner.as_ref()).await;
    error.attach(page)
}

fn render(state: &AppState, view: &View<'_>, banner: Option<&Banner>) -> String {
    with_brand(state, |brand| page::render(brand, view, banner))
}

/// `draw` given the page's brand: the app's name and icon as configured.
fn with_brand<R>(state: &AppState, draw: impl FnOnce(&page::Brand<'_>) -> R) -> R {
    let name = state.config.web.app_name();
    draw(&page::Brand {
        name: &name,
        icon_url: state.config.web.app_icon_url.as_deref(),
    })
}

#[derive(Deserialize)]
pub struct PageForm {
    csrf: String,
    confirm: Option<String>,
}

/// The page's "Sign out": ends the session and removes the cookie.
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: FormOf<PageForm>,
) -> Response {
    let result = async {
        let web = configured(&state)?;
        let Some(page) = checked_session(&state, web, &headers, &form).await? else {
            return Ok(see_other("/", &[&web.cleared_cookie()]));
        };
        state.accounts.end_session(&page.session_id).await?;
        Ok(see_other(
            &Notice::SignedOut.location(),
            &[&web.cleared_cookie()],
        ))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(error) => refused_form(&state, &headers, error).await,
    }
}

/// The page's "Delete account" (after its confirmation): deletes the account and revokes
/// Apple's token, as `DELETE /v1/me` does.
pub async fn delete_account(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: FormOf<PageForm>,
) -> Response {
    let result = async {
        let web = configured(&state)?;
        let Some(page) = checked_session(&state, web, &headers, &form).await? else {
            return Ok(see_other("/", &[&web.cleared_cookie()]));
        };
        if form.as_ref().ok().and_then(|f| f.confirm.as_deref()) != Some("delete") {
            return Err(ApiError::bad_request("the deletion was not confirmed"));
        }
        state.accounts.delete(&page.user_id).await?;
        Ok(see_other(
            &Notice::Deleted.location(),
            &[&web.cleared_cookie()],
        ))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(error) => refused_form(&state, &headers, error).await,
    }
}

pub(super) fn configured(state: &AppState) -> Result<&WebFlow, ApiError> {
    state.web.as_ref().ok_or(ApiError::WebFlowNotConfigured)
}

const UNREADABLE_QUERY: &str = "the query string could not be read";

/// A browser's query string or form, as an extractor read it.
type QueryOf<T> = Result<Query<T>, QueryRejection>;
type FormOf<T> = Result<Form<T>, FormRejection>;

/// The flow and a browser request's parameters, or the error page saying why not.
// The error is the page answered at once, never carried further.
#[allow(clippy::result_large_err)]
fn prepared<'s, T, E>(
    state: &'s AppState,
    parsed: Result<T, E>,
    unreadable: &'static str,
) -> Result<(&'s WebFlow, T), Response> {
    let parsed = configured(state).and_then(|web| {
        let parsed = parsed.map_err(|_| ApiError::bad_request(unreadable))?;
        Ok((web, parsed))
    });
    parsed.map_err(|error| error_page(state, error))
}

/// Who the page's cookie signs in.
pub(super) struct PageSession {
    pub(super) user: UserView,
    pub(super) user_id: UserId,
    /// The cookie's secret, from which the page's CSRF token is derived.
    secret: WebSessionSecret,
    pub(super) session_id: SessionId,
}

/// The signed-in user of the page's cookie, if any.
pub(super) async fn signed_in(
    state: &AppState,
    web: &WebFlow,
    headers: &HeaderMap,
) -> Result<Option<PageSession>, ApiError> {
    let Some(secret) = web.session_from(headers).map(WebSessionSecret::new) else {
        return Ok(None);
    };
    Ok(state
        .accounts
        .web_session(&secret)
        .await?
        .map(|(user, user_id, session_id)| PageSession {
            user,
            user_id,
            secret,
            session_id,
        }))
}

/// The session of a form the page posted, once the form is shown to be the page's: the
/// browser says it came from the page ([`guard::posted_by_the_page`]), and its CSRF token is
/// the session's.
async fn checked_session(
    state: &AppState,
    web: &WebFlow,
    headers: &HeaderMap,
    form: &FormOf<PageForm>,
) -> Result<Option<PageSession>, ApiError> {
    if !guard::posted_by_the_page(web, headers) {
        return Err(ApiError::CsrfTokenInvalid);
    }
    let Some(page) = signed_in(state, web, headers).await? else {
        return Ok(None);
    };
    let posted = form.as_ref().map(|f| f.csrf.as_str()).unwrap_or_default();
    if !guard::csrf_matches(page.secret.as_str(), posted) {
        return Err(ApiError::CsrfTokenInvalid);
    }
    Ok(Some(page))
}

/// A failure after the `state` was found: the page shows it, a native app or a web app is
/// sent back with its code.
fn fail(
    state: &AppState,
    app: Option<&NativeApp>,
    web_app: Option<&WebApp>,
    error: ApiError,
) -> Response {
    let code = error.code().as_str();
    let back = match (app, web_app, &state.web) {
        (Some(app), ..) => {
            let callback = AppCallback {
                error: Some(code.to_owned()),
                ..Default::default()
            };
            to_app(&app.redirect_uri, &callback)
        }
        (None, Some(web_app), Some(web)) => to_web_app(state, web, web_app, Some(code), &[]),
        _ => return error_page(state, error),
    };
    error.attach(back)
}

/// Sends a web app's browser back to it, setting `cookies`: in a popup, the last page, which
/// tells the opener and closes; otherwise a redirect to its `return_to` (with `siwa_error`
/// when the sign-in failed). The `return_to` is checked again against today's
/// `SIWA_WEB_ORIGINS`.
fn to_web_app(
    state: &AppState,
    web: &WebFlow,
    web_app: &WebApp,
    error: Option<&str>,
    cookies: &[&str],
) -> Response {
    let Some((return_to, origin)) = web.web_app_return(&web_app.return_to) else {
        return error_page(state, ApiError::ReturnToNotAllowed);
    };
    let answer = match (web_app.popup, error) {
        (true, error) => {
            let outcome = page::PopupOutcome {
                return_to: &return_to,
                origin: &origin,
                error,
            };
            let body = with_brand(state, |brand| page::render_popup(brand, &outcome));
            html_under(page::POPUP_CONTENT_SECURITY_POLICY, StatusCode::OK, body)
        }
        (false, None) => see_other(&return_to, &[]),
        (false, Some(error)) => to_web_app_with_error(&return_to, error),
    };
    cookies
        .iter()
        .fold(answer, |answer, cookie| with_cookie(answer, cookie))
}

/// The page with the error's banner, under the error's status: a person reads it, so it is a
/// page rather than the API's JSON error.
fn error_page(state: &AppState, error: ApiError) -> Response {
    let banner = Some(Banner::error(error.code()));
    let view = View::SignedOut {
        unavailable: state
            .web
            .is_none()
            .then(|| state.config.web.missing())
            .flatten(),
    };
    let page = html(error.status(), render(state, &view, banner.as_ref()));
    error.attach(page)
}
