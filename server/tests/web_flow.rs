//! The web flow (`siwa_server::web`) over HTTP, without a browser: the start, Apple's consent
//! (the mock's own page, posted to as a browser would), the cross-site form post to the
//! callback, the page's cookie and forms, and a native app's one-time code. The browser itself
//! is `scripts/test-web.sh`.

mod common;

use common::*;
use mock_apple::Endpoint;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use siwa_core::{Clock, CodeVerifier, SystemClock};

on_both_databases!(
    web: web_sign_in_keeps_the_name_and_makes_the_same_session_as_the_app_route,
    a_replayed_or_tampered_state_is_refused_and_signs_no_one_in,
    a_victim_made_to_post_an_attackers_callback_is_not_signed_in,
    a_callback_from_another_origin_is_refused,
    several_sign_ins_in_one_browser_each_complete,
    a_first_authorizations_name_survives_a_failed_web_sign_in,
    a_duplicated_binding_cookie_completes_nothing,
    a_native_callback_completes_only_in_its_browser,
    cancelling_brings_the_user_back_to_the_page,
    the_page_forms_need_the_sessions_csrf_token,
    deleting_from_the_page_revokes_at_apple,
    a_native_apps_code_is_single_use_and_bound_to_its_verifier,
    native_starts_need_a_listed_redirect_and_an_s256_challenge,
    expired_states_and_codes_are_refused,
    the_client_library_signs_in_through_the_browser,
    a_loopback_redirect_is_allowed_on_any_port,
    a_web_app_signs_in_by_redirect_and_gets_access_tokens_over_its_cookie,
    a_web_apps_popup_tells_the_apps_origin_alone,
    a_web_apps_return_to_must_be_on_a_listed_origin,
    cookie_routes_answer_listed_origins_alone,
);
on_both_databases!(without_configuration_the_routes_say_what_is_missing);

/// The user's choices on Apple's consent page.
#[derive(Default)]
struct Consent<'a> {
    name: Option<(&'a str, &'a str)>,
    hide_email: bool,
    cancel: bool,
}

/// A browser's cookies for our server (one site), kept from each answer as a browser keeps
/// them.
#[derive(Default)]
struct Browser {
    jar: std::sync::Mutex<Vec<(String, String)>>,
}

impl Browser {
    fn header(&self) -> String {
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        let mut jar = self.jar.lock().unwrap();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            jar.retain(|(n, _)| n != name);
            if !set.contains("Max-Age=0") {
                jar.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// A top-level GET of `url`, with this browser's cookies.
    async fn get(&self, url: &str) -> reqwest::Response {
        let response = browser()
            .get(url)
            .header(COOKIE, self.header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }
}

/// `GET /v1/web/sign-in` (with `query`) in `b`: the Location Apple's page is at. The answer
/// sets the binding cookie.
async fn start_in(h: &Harness, b: &Browser, query: &str) -> String {
    let response = b.get(&h.url(&format!("/v1/web/sign-in{query}"))).await;
    assert_eq!(response.status(), 303);
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("siwa_binding_"), "{set}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/v1/web", "Max-Age=600"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain http: no Secure flag ({set})"
    );
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A start in a browser of its own.
async fn start(h: &Harness, query: &str) -> String {
    start_in(h, &Browser::default(), query).await
}

/// Follows the callback's answer (303 to `/v1/web/complete?handle=...`) in `b`.
async fn complete(h: &Harness, b: &Browser, callback: &reqwest::Response) -> reqwest::Response {
    assert_eq!(callback.status(), 303);
    assert!(
        session_cookie(callback).is_none(),
        "Apple's form post signs no one in"
    );
    let location = callback.headers()[LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("/v1/web/complete?handle="),
        "{location}"
    );
    b.get(&h.url(location)).await
}

/// Submits Apple's consent page for `authorize_url` and returns the fields Apple's answer
/// would post to the callback.
async fn consent(authorize_url: &str, choice: Consent<'_>) -> Vec<(String, String)> {
    let url = url::Url::parse(authorize_url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push((
        "action".into(),
        if choice.cancel { "cancel" } else { "continue" }.into(),
    ));
    if let Some((first, last)) = choice.name {
        form.push(("first_name".into(), first.into()));
        form.push(("last_name".into(), last.into()));
    }
    form.push((
        "email_choice".into(),
        if choice.hide_email { "hide" } else { "share" }.into(),
    ));
    let page = browser()
        .post(
            format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap(),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + url.path(),
        )
        .form(&form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    hidden_inputs(&page)
}

/// The hidden inputs of the mock's auto-submitting form.
fn hidden_inputs(page: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    page.split("<input ")
        .skip(1)
        .filter_map(|input| {
            let attr = |name: &str| {
                let start = input.find(&format!("{name}=\""))? + name.len() + 2;
                let end = start + input[start..].find('"')?;
                Some(unescape(&input[start..end]))
            };
            Some((attr("name")?, attr("value")?))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Posts Apple's answer to the callback, as the browser does.
async fn callback(h: &Harness, fields: &[(String, String)]) -> reqwest::Response {
    browser()
        .post(h.url("/v1/web/callback"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The session cookie (`name=value`) of a response.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("siwa_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// A whole sign-in from the page in `b`: returns the session cookie.
async fn sign_in_in(h: &Harness, b: &Browser, choice: Consent<'_>) -> String {
    let fields = consent(&start_in(h, b, "").await, choice).await;
    let response = complete(h, b, &callback(h, &fields).await).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/");
    let cookie = session_cookie(&response).expect("a session cookie");
    let set: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = set.iter().find(|s| s.starts_with("siwa_session=")).unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(
        !session.contains("Secure"),
        "plain http: no Secure flag ({session})"
    );
    assert!(
        set.iter()
            .any(|s| s.starts_with("siwa_binding_") && s.contains("=;") && s.contains("Max-Age=0")),
        "the binding cookie is spent: {set:?}"
    );
    cookie
}

/// A whole sign-in from the page in a fresh browser: returns the session cookie.
async fn sign_in_on_the_page(h: &Harness, choice: Consent<'_>) -> String {
    sign_in_in(h, &Browser::default(), choice).await
}

async fn page(h: &Harness, cookie: Option<&str>) -> String {
    let mut request = browser().get(h.url("/"));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "no framing (clickjacking): {csp}"
    );
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    response.text().await.unwrap()
}

/// The CSRF token in the page's forms.
fn csrf(page: &str) -> String {
    field(&hidden_inputs(page), "csrf").unwrap().to_owned()
}

async fn web_sign_in_keeps_the_name_and_makes_the_same_session_as_the_app_route(h: Harness) {
    let cookie = sign_in_on_the_page(
        &h,
        Consent {
            name: Some(("Ada", "Lovelace")),
            hide_email: true,
            ..Default::default()
        },
    )
    .await;
    let shown = page(&h, Some(&cookie)).await;
    assert!(shown.contains("Ada Lovelace"), "{shown}");
    assert!(
        shown.contains("@<wbr>privaterelay.<wbr>appleid.<wbr>com"),
        "{shown}"
    );
    assert_eq!(h.users().await, 1);
    // The code was exchanged with the Services ID (the mock refuses any other client id).
    assert_eq!(h.count(Endpoint::Token), 1);

    // The cookie's secret is the web session's own, not a refresh token: the API refuses it,
    // so a stolen cookie cannot fork a token family that the page's sign-out would not end.
    let secret = cookie.split_once('=').unwrap().1;
    let (status, refused) = h
        .post("/v1/auth/refresh", &json!({"refreshToken": secret}))
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    let (status, _) = h
        .post("/v1/auth/logout", &json!({"refreshToken": secret}))
        .await;
    assert_eq!(status, 204);
    assert!(
        page(&h, Some(&cookie)).await.contains("Ada Lovelace"),
        "the API's logout does not take it either"
    );

    // Signed in again: Apple sends no `user` field, the name stays.
    let b = Browser::default();
    let fields = consent(&start_in(&h, &b, "").await, Consent::default()).await;
    assert_eq!(field(&fields, "user"), None);
    let response = complete(&h, &b, &callback(&h, &fields).await).await;
    let cookie = session_cookie(&response).unwrap();
    assert!(page(&h, Some(&cookie)).await.contains("Ada Lovelace"));
    assert_eq!(h.users().await, 1);
}

async fn a_replayed_or_tampered_state_is_refused_and_signs_no_one_in(h: Harness) {
    let b = Browser::default();
    let fields = consent(&start_in(&h, &b, "").await, Consent::default()).await;
    let first = callback(&h, &fields).await;
    let done = complete(&h, &b, &first).await;
    assert!(session_cookie(&done).is_some());
    // The completion is single use too.
    let again = b
        .get(&h.url(first.headers()[LOCATION].to_str().unwrap()))
        .await;
    assert_eq!(again.status(), 400);
    assert!(session_cookie(&again).is_none());

    let replay = callback(&h, &fields).await;
    assert_eq!(replay.status(), 400);
    assert!(session_cookie(&replay).is_none());
    assert!(replay.text().await.unwrap().contains("invalid_state"));

    let users = h.users().await;
    let mut tampered = consent(&start(&h, "").await, Consent::default()).await;
    for (name, value) in &mut tampered {
        if name == "state" {
            value.push('x');
        }
    }
    let refused = callback(&h, &tampered).await;
    assert_eq!(refused.status(), 400);
    assert!(session_cookie(&refused).is_none());
    assert!(refused.text().await.unwrap().contains("invalid_state"));
    let mut missing = tampered.clone();
    missing.retain(|(name, _)| name != "state");
    assert_eq!(callback(&h, &missing).await.status(), 400);
    assert_eq!(h.users().await, users);
}

/// Login CSRF: the attacker consents with their own Apple Account, stops their browser's form post,
/// and makes the victim's browser post those fields (a page on another site that the browser
/// sends no `Origin` for, or a navigation). The victim follows the redirect to the completion
/// without the attacker's binding cookie: no one is signed in.
async fn a_victim_made_to_post_an_attackers_callback_is_not_signed_in(h: Harness) {
    let attacker = Browser::default();
    let captured = consent(&start_in(&h, &attacker, "").await, Consent::default()).await;
    let victim = Browser::default();
    // The victim has a sign-in of their own in progress: a binding, but another one.
    start_in(&h, &victim, "").await;
    let posted = callback(&h, &captured).await;
    let refused = complete(&h, &victim, &posted).await;
    assert_eq!(refused.status(), 400);
    assert!(session_cookie(&refused).is_none());
    assert!(refused.text().await.unwrap().contains("invalid_state"));
    // The handle is spent: the attacker cannot finish it either (nor race the victim to it).
    let late = attacker
        .get(&h.url(posted.headers()[LOCATION].to_str().unwrap()))
        .await;
    assert_eq!(late.status(), 400);
    assert!(session_cookie(&late).is_none());

    // A victim with no binding cookie at all, and a made-up or missing handle.
    let captured = consent(&start(&h, "").await, Consent::default()).await;
    let posted = callback(&h, &captured).await;
    let bare = complete(&h, &Browser::default(), &posted).await;
    assert_eq!(bare.status(), 400);
    assert!(session_cookie(&bare).is_none());
    for path in ["/v1/web/complete?handle=made-up", "/v1/web/complete"] {
        let response = attacker.get(&h.url(path)).await;
        assert_eq!(response.status(), 400, "{path}");
        assert!(response.text().await.unwrap().contains("invalid_state"));
    }
    // Nothing of the victim's: no session of any kind was made.
    assert_eq!(h.query("SELECT id FROM sessions").await.len(), 0);
}

/// A page that navigates the user to the start while they are at Apple (or the user opening a
/// second tab) starts a second sign-in in the same browser: each has its own binding cookie,
/// so the first still completes.
async fn several_sign_ins_in_one_browser_each_complete(h: Harness) {
    let b = Browser::default();
    let first = start_in(&h, &b, "").await;
    let second = start_in(&h, &b, "").await;
    assert_eq!(
        b.jar.lock().unwrap().len(),
        2,
        "one binding cookie per sign-in"
    );
    let first = callback(&h, &consent(&first, Consent::default()).await).await;
    let second = callback(&h, &consent(&second, Consent::default()).await).await;
    for posted in [first, second] {
        let done = complete(&h, &b, &posted).await;
        assert_eq!(done.status(), 303);
        assert_eq!(done.headers()[LOCATION], "/");
        assert!(session_cookie(&done).is_some());
    }
}

/// Apple's form post carries the name once. With Apple's token endpoint down at that moment,
/// the sign-in fails; the next one (Apple sends no name now) makes the account with the name.
async fn a_first_authorizations_name_survives_a_failed_web_sign_in(h: Harness) {
    h.apple.set_fault(
        Endpoint::Token,
        mock_apple::Fault {
            status: Some(503),
            count: Some(1),
            ..Default::default()
        },
    );
    let b = Browser::default();
    let named = Consent {
        name: Some(("Ada", "Lovelace")),
        ..Default::default()
    };
    let fields = consent(&start_in(&h, &b, "").await, named).await;
    assert!(
        fields.iter().any(|(k, _)| k == "user"),
        "the first authorization has the name"
    );
    let failed = callback(&h, &fields).await;
    assert_eq!(failed.status(), 503);
    assert!(failed.text().await.unwrap().contains("apple_unavailable"));
    assert_eq!(h.users().await, 0);
    let fields = consent(&start_in(&h, &b, "").await, Consent::default()).await;
    assert!(
        !fields.iter().any(|(k, _)| k == "user"),
        "Apple sends the name once"
    );
    let done = complete(&h, &b, &callback(&h, &fields).await).await;
    let cookie = session_cookie(&done).expect("signed in");
    assert!(page(&h, Some(&cookie)).await.contains("Ada Lovelace"));
}

/// On plain http a sibling host can set a cookie of the same name, which the browser sends
/// first: a second cookie of the sign-in's name makes its binding ambiguous, and nothing
/// completes, whichever comes first.
async fn a_duplicated_binding_cookie_completes_nothing(h: Harness) {
    for planted_first in [true, false] {
        let b = Browser::default();
        let posted = callback(
            &h,
            &consent(&start_in(&h, &b, "").await, Consent::default()).await,
        )
        .await;
        let (name, value) = b.jar.lock().unwrap()[0].clone();
        let planted = (name.clone(), "planted".to_owned());
        let own = (name, value);
        *b.jar.lock().unwrap() = if planted_first {
            vec![planted, own]
        } else {
            vec![own, planted]
        };
        let refused = complete(&h, &b, &posted).await;
        assert_eq!(refused.status(), 400);
        assert!(session_cookie(&refused).is_none());
        assert!(refused.text().await.unwrap().contains("invalid_state"));
    }
    assert_eq!(h.query("SELECT id FROM sessions").await.len(), 0);
}

async fn a_callback_from_another_origin_is_refused(h: Harness) {
    for origin in ["https://evil.example", "null"] {
        let b = Browser::default();
        let fields = consent(&start_in(&h, &b, "").await, Consent::default()).await;
        let refused = browser()
            .post(h.url("/v1/web/callback"))
            .header("origin", origin)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{origin}");
        assert!(session_cookie(&refused).is_none());
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("callback_origin_invalid"),
            "{origin}"
        );
    }
    // The operator is told, with `null` apart: should Apple's page ever be served with
    // `Referrer-Policy: no-referrer`, every real sign-in would be refused.
    let metrics = h.metrics().await;
    for origin in ["null", "other"] {
        let line = format!("siwa_callback_origins_refused_total{{origin=\"{origin}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    // Apple's own origin (the mock's base URL) is the one that may post.
    let b = Browser::default();
    let fields = consent(&start_in(&h, &b, "").await, Consent::default()).await;
    let apple_origin = url::Url::parse(h.apple.base_url())
        .unwrap()
        .origin()
        .ascii_serialization();
    let posted = browser()
        .post(h.url("/v1/web/callback"))
        .header("origin", apple_origin)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let done = complete(&h, &b, &posted).await;
    assert_eq!(done.headers()[LOCATION], "/");
    assert!(session_cookie(&done).is_some());
}

async fn a_native_callback_completes_only_in_its_browser(h: Harness) {
    let verifier = CodeVerifier::generate();
    let query = format!(
        "?app_redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(APP_REDIRECT_URI.as_bytes()).collect::<String>(),
        verifier.challenge()
    );
    let captured = consent(&start(&h, &query).await, Consent::default()).await;
    let refused = complete(&h, &Browser::default(), &callback(&h, &captured).await).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused.headers().get(LOCATION).is_none(),
        "no code goes to the app"
    );
    assert_eq!(
        h.query("SELECT code_hash FROM web_exchange_codes")
            .await
            .len(),
        0
    );
}

async fn cancelling_brings_the_user_back_to_the_page(h: Harness) {
    let fields = consent(
        &start(&h, "").await,
        Consent {
            cancel: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(field(&fields, "error"), Some("user_cancelled_authorize"));
    let response = callback(&h, &fields).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/?notice=cancelled");
    assert_eq!(h.users().await, 0);
}

async fn the_page_forms_need_the_sessions_csrf_token(h: Harness) {
    let cookie = sign_in_on_the_page(&h, Consent::default()).await;
    let token = csrf(&page(&h, Some(&cookie)).await);
    let post = |path: &'static str, csrf: String, origin: Option<&'static str>| {
        let mut request = browser()
            .post(h.url(path))
            .header(COOKIE, cookie.clone())
            .form(&[("csrf", csrf), ("confirm", "delete".into())]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let forged = post("/v1/web/sign-out", "0".repeat(32), None)
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // A stale tab's form: the page still shows who is signed in, with the error.
    let shown = forged.text().await.unwrap();
    assert!(shown.contains("csrf_token_invalid"), "{shown}");
    assert!(shown.contains("nothing was changed"), "{shown}");
    assert!(shown.contains("Sign out"), "{shown}");
    assert!(
        !shown.contains("apple-button"),
        "not the signed-out page: {shown}"
    );
    let elsewhere = post(
        "/v1/web/delete-account",
        token.clone(),
        Some("https://evil.example"),
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.status(), 403);
    assert_eq!(h.users().await, 1, "nothing was deleted");
    // Still signed in; the page's own form works.
    assert!(page(&h, Some(&cookie)).await.contains("Sign out"));
    let signed_out = post("/v1/web/sign-out", token, None).await.unwrap();
    assert_eq!(signed_out.status(), 303);
    assert_eq!(signed_out.headers()[LOCATION], "/?notice=signed_out");
    assert!(
        signed_out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(page(&h, Some(&cookie)).await.contains("Sign in with Apple"));
}

async fn deleting_from_the_page_revokes_at_apple(h: Harness) {
    let cookie = sign_in_on_the_page(&h, Consent::default()).await;
    let token = csrf(&page(&h, Some(&cookie)).await);
    let unconfirmed = browser()
        .post(h.url("/v1/web/delete-account"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(unconfirmed.status(), 400);
    assert_eq!(h.users().await, 1);
    let deleted = browser()
        .post(h.url("/v1/web/delete-account"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str()), ("confirm", "delete")])
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()[LOCATION], "/?notice=deleted");
    assert_eq!(h.users().await, 0);
    assert_eq!(h.count(Endpoint::Revoke), 1);
}

/// Starts a native app's browser sign-in and returns the code the app is sent back with.
async fn native_code(h: &Harness, verifier: &CodeVerifier) -> String {
    let query = format!(
        "?app_redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(APP_REDIRECT_URI.as_bytes()).collect::<String>(),
        verifier.challenge()
    );
    let b = Browser::default();
    let fields = consent(&start_in(h, &b, &query).await, Consent::default()).await;
    let response = complete(h, &b, &callback(h, &fields).await).await;
    assert_eq!(response.status(), 303);
    assert!(
        session_cookie(&response).is_none(),
        "the app gets a code, not a cookie"
    );
    let location = url::Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert!(
        location.as_str().starts_with(APP_REDIRECT_URI),
        "{location}"
    );
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

async fn exchange(h: &Harness, code: &str, verifier: &str) -> (u16, Value) {
    h.post(
        "/v1/auth/exchange",
        &json!({"code": code, "codeVerifier": verifier}),
    )
    .await
}

async fn a_native_apps_code_is_single_use_and_bound_to_its_verifier(h: Harness) {
    let verifier = CodeVerifier::generate();
    let code = native_code(&h, &verifier).await;
    let (status, wrong) = exchange(&h, &code, CodeVerifier::generate().expose()).await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (400, Some("code_verifier_mismatch"))
    );
    // Spent by the wrong verifier.
    let (status, spent) = exchange(&h, &code, verifier.expose()).await;
    assert_eq!(
        (status, spent["error"].as_str()),
        (400, Some("invalid_exchange_code"))
    );

    let code = native_code(&h, &verifier).await;
    let (status, answer) = exchange(&h, &code, verifier.expose()).await;
    assert_eq!(status, 200, "{answer}");
    let access = answer["session"]["accessToken"].as_str().unwrap();
    assert!(answer["session"]["refreshToken"].is_string());
    assert!(answer["user"]["id"].is_string());
    assert_eq!(h.get_auth("/v1/me", access).await.0, 200);

    let (status, again) = exchange(&h, &code, verifier.expose()).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_exchange_code"))
    );
    assert_eq!(
        h.get_auth("/v1/me", access).await.0,
        200,
        "the second use ends nothing"
    );
    let (status, malformed) = exchange(&h, "x", "short").await;
    assert_eq!(
        (status, malformed["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

async fn native_starts_need_a_listed_redirect_and_an_s256_challenge(h: Harness) {
    let challenge = CodeVerifier::generate().challenge();
    for (query, code) in [
        (
            format!("?app_redirect_uri=evil%3A%2F%2Fx&code_challenge={challenge}"),
            "app_redirect_uri_not_allowed",
        ),
        (
            format!(
                "?app_redirect_uri={}",
                url::form_urlencoded::byte_serialize(APP_REDIRECT_URI.as_bytes())
                    .collect::<String>()
            ),
            "invalid_code_challenge",
        ),
        (
            format!(
                "?app_redirect_uri={}&code_challenge={challenge}&code_challenge_method=plain",
                url::form_urlencoded::byte_serialize(APP_REDIRECT_URI.as_bytes())
                    .collect::<String>()
            ),
            "invalid_code_challenge",
        ),
    ] {
        let response = browser()
            .get(h.url(&format!("/v1/web/sign-in{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.text().await.unwrap().contains(code), "{query}");
    }
}

async fn expired_states_and_codes_are_refused(h: Harness) {
    let store = &h.server.state.store;
    let now = SystemClock.now();
    let pending = siwa_server::testing::WebSignIn {
        nonce: "n",
        app_redirect_uri: None,
        code_challenge: None,
        binding_hash: "b",
        return_to: None,
        popup: false,
    };
    store
        .start_web_sign_in("old-state", &pending, now - 700, now - 100)
        .await
        .unwrap();
    assert!(
        store
            .take_web_sign_in("old-state", now)
            .await
            .unwrap()
            .is_none()
    );

    // A user, then a code for them that has expired.
    let (status, body) = h
        .sign_in(mock_apple::IdentityTokenRequest::default(), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["user"]["id"].as_str().unwrap();
    let verifier = CodeVerifier::generate();
    let expired = siwa_server::testing::NewExchangeCode {
        user_id,
        is_new_user: false,
        code_challenge: &verifier.challenge(),
        now: now - 120,
        expires_at: now - 60,
    };
    let code = store.issue_exchange_code(&expired).await.unwrap();
    let (status, answer) = exchange(&h, &code, verifier.expose()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_exchange_code"))
    );

    // A completion whose browser came back after its 60 seconds, with the right binding.
    let binding = "the-browsers-binding";
    let completion = siwa_server::testing::WebCompletion {
        binding_hash: &siwa_server::testing::token_hash(binding),
        user_id,
        is_new_user: false,
        app_redirect_uri: None,
        code_challenge: None,
        return_to: None,
        popup: false,
    };
    let late = store
        .record_web_completion(&completion, now - 120, now - 60)
        .await
        .unwrap();
    let fresh = store
        .record_web_completion(&completion, now, now + 60)
        .await
        .unwrap();
    let tag = &siwa_server::testing::token_hash(binding)[..16];
    let b = Browser::default();
    b.jar
        .lock()
        .unwrap()
        .push((format!("siwa_binding_{tag}"), binding.into()));
    let refused = b
        .get(&h.url(&format!("/v1/web/complete?handle={late}&binding={tag}")))
        .await;
    assert_eq!(refused.status(), 400);
    assert!(session_cookie(&refused).is_none());
    let done = b
        .get(&h.url(&format!("/v1/web/complete?handle={fresh}&binding={tag}")))
        .await;
    assert_eq!(done.status(), 303, "the same binding in time completes");
    assert!(session_cookie(&done).is_some());
}

async fn without_configuration_the_routes_say_what_is_missing(h: Harness) {
    let response = browser()
        .get(h.url("/v1/web/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 501);
    let body = response.text().await.unwrap();
    assert!(body.contains("web_flow_not_configured"), "{body}");
    assert!(
        body.contains("SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL"),
        "{body}"
    );
    let (status, answer) = exchange(&h, "code", CodeVerifier::generate().expose()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (501, Some("web_flow_not_configured"))
    );
    let shown = page(&h, None).await;
    assert!(shown.contains("not set up"), "{shown}");
}

/// Whether a callback's answer goes on to the completion (a cancel goes straight back).
fn choice_completes(callback: &reqwest::Response) -> bool {
    callback.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/v1/web/complete")
}

/// The client library's browser sign-in (`siwa_core::client`), against the real server: the
/// start URL it builds, the browser's trip through Apple, and completion from the URL the
/// browser comes back to.
async fn the_client_library_signs_in_through_the_browser(h: Harness) {
    use siwa_core::client::{Client, ClientConfig, ClientError, InMemorySessionStore};
    use std::sync::Arc;

    let client = Client::new(
        ClientConfig::new(h.server.base_url()),
        Arc::new(InMemorySessionStore::new()),
    )
    .unwrap();
    // What the browser does: the server's start, Apple's page, the form post, the redirect.
    let h = &h;
    let browse = |start_url: String, choice: Consent<'static>| async move {
        let b = Browser::default();
        let apple = b.get(&start_url).await;
        assert_eq!(apple.status(), 303);
        let fields = consent(apple.headers()[LOCATION].to_str().unwrap(), choice).await;
        let mut back = callback(h, &fields).await;
        assert_eq!(back.status(), 303);
        if choice_completes(&back) {
            back = complete(h, &b, &back).await;
            assert_eq!(back.status(), 303);
        }
        back.headers()[LOCATION].to_str().unwrap().to_owned()
    };

    let cancelled = browse(
        client
            .start_browser_sign_in(APP_REDIRECT_URI)
            .await
            .unwrap(),
        Consent {
            cancel: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        client.complete_browser_sign_in(&cancelled).await,
        Err(ClientError::Cancelled)
    );

    let back = browse(
        client
            .start_browser_sign_in(APP_REDIRECT_URI)
            .await
            .unwrap(),
        Consent {
            name: Some(("Grace", "Hopper")),
            ..Default::default()
        },
    )
    .await;
    // Another link the app is opened with is not the callback, and does not spend the attempt.
    assert_eq!(
        client
            .complete_browser_sign_in("com.example.app://elsewhere?code=x")
            .await,
        Err(ClientError::UnknownAttempt)
    );
    let user = client.complete_browser_sign_in(&back).await.unwrap();
    assert_eq!(user.given_name.as_deref(), Some("Grace"));
    assert_eq!(client.current_user().unwrap().id, user.id);
    assert!(client.apple_user_id().is_some_and(|sub| !sub.is_empty()));
    assert_eq!(client.refresh_user().await.unwrap().id, user.id);
    // The attempt is spent: the same URL again is refused here, before any request.
    assert_eq!(
        client.complete_browser_sign_in(&back).await,
        Err(ClientError::UnknownAttempt)
    );
}

/// On https, every answer (the API's, the page's, a 404) tells browsers to keep to https.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_hsts_when_the_public_url_is_https() {
    let h = Harness::start_with(Db::Sqlite, |config| {
        config.web = siwa_server::WebConfig {
            services_id: Some(WEB_SERVICES_ID.into()),
            public_url: Some("https://auth.example.com".parse().unwrap()),
            app_redirect_uris: vec![],
            ..Default::default()
        };
    })
    .await
    .unwrap();
    for path in ["/healthz", "/", "/no-such-route", "/v1/me"] {
        let response = browser().get(h.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=63072000; includeSubDomains",
            "{path}"
        );
    }
    let plain = Harness::start_web(Db::Sqlite).await.unwrap();
    let response = browser().get(plain.url("/healthz")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

/// The page names the app people sign in to, never the server's own name, and keeps to what
/// assistive technology and browsers expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_names_the_app_and_has_no_loose_ends() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let h = Harness::start_with(Db::Sqlite, |config| {
        config.port = port;
        config.web = siwa_server::WebConfig {
            services_id: Some(WEB_SERVICES_ID.into()),
            public_url: Some(format!("http://127.0.0.1:{port}").parse().unwrap()),
            app_name: Some("Acme Notes".into()),
            app_icon_url: Some("/assets/icon.png".into()),
            ..Default::default()
        };
    })
    .await
    .unwrap();
    let shown = page(&h, None).await;
    assert!(
        shown.contains("<title>Sign in to Acme Notes</title>"),
        "{shown}"
    );
    assert!(
        shown.contains("Sign in to Acme Notes to continue"),
        "{shown}"
    );
    assert!(shown.contains(r#"src="/assets/icon.png""#), "{shown}");
    for name in ["siwa-server", ">siwa<", "served by"] {
        assert!(!shown.contains(name), "no developer-facing name: {shown}");
    }
    assert!(
        !shown.contains(r#"role="button""#),
        "a link is a link: {shown}"
    );
    let favicon = browser().get(h.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(favicon.status(), 204);

    let cookie = sign_in_on_the_page(
        &h,
        Consent {
            hide_email: true,
            ..Default::default()
        },
    )
    .await;
    let shown = page(&h, Some(&cookie)).await;
    // The relay address may wrap after its @ and dots, never inside a word.
    assert!(
        shown.contains("@<wbr>privaterelay.<wbr>appleid.<wbr>com"),
        "{shown}"
    );
}

/// RFC 8252 7.3: `http://127.0.0.1/callback` (and `[::1]`) in `SIWA_APP_REDIRECT_URIS` takes
/// that path on any port; `localhost`, another path or another scheme does not.
async fn a_loopback_redirect_is_allowed_on_any_port(h: Harness) {
    let challenge = CodeVerifier::generate().challenge();
    let status = |redirect: &'static str| {
        let url = h.url(&format!(
            "/v1/web/sign-in?app_redirect_uri={}&code_challenge={challenge}",
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        ));
        async move { browser().get(url).send().await.unwrap().status() }
    };
    for allowed in [
        "http://127.0.0.1:49152/callback",
        "http://127.0.0.1:8080/callback",
        "http://[::1]:49152/callback",
    ] {
        assert_eq!(status(allowed).await, 303, "{allowed}");
    }
    for refused in [
        "http://localhost:49152/callback",
        "http://127.0.0.1:49152/other",
        "https://127.0.0.1:49152/callback",
    ] {
        assert_eq!(status(refused).await, 400, "{refused}");
    }
}

// -- web apps (SIWA_WEB_ORIGINS): a single-page app on the server's site

const RETURN_TO: &str = "http://app.siwa.test:5173/signed-in?tab=1";

fn start_query(return_to: &str, mode: &str) -> String {
    let query = serde_urlencoded::to_string([("return_to", return_to), ("mode", mode)]).unwrap();
    format!("?{query}")
}

/// A web app's sign-in in `b`, as far as the completion's answer.
async fn web_app_sign_in(
    h: &Harness,
    b: &Browser,
    mode: &str,
    choice: Consent<'_>,
) -> reqwest::Response {
    let fields = consent(&start_in(h, b, &start_query(RETURN_TO, mode)).await, choice).await;
    let answer = callback(h, &fields).await;
    if field(&fields, "error").is_some() {
        return answer;
    }
    complete(h, b, &answer).await
}

/// A request of the web app's own script: its `Origin`, the `X-Siwa-Request` header, and
/// the browser's cookies.
fn from_web_app(
    b: &Browser,
    method: reqwest::Method,
    url: String,
    origin: &str,
) -> reqwest::RequestBuilder {
    browser()
        .request(method, url)
        .header(COOKIE, b.header())
        .header("origin", origin)
        .header("x-siwa-request", "1")
}

async fn error_code(response: reqwest::Response) -> String {
    response.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn a_web_app_signs_in_by_redirect_and_gets_access_tokens_over_its_cookie(h: Harness) {
    let b = Browser::default();
    let done = web_app_sign_in(&h, &b, "redirect", Consent::default()).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], RETURN_TO);
    assert!(session_cookie(&done).is_some());

    let session = from_web_app(
        &b,
        reqwest::Method::GET,
        h.url("/v1/web/session"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(session.status(), 200);
    assert_eq!(
        session.headers()["access-control-allow-origin"],
        WEB_APP_ORIGIN
    );
    assert_eq!(
        session.headers()["access-control-allow-credentials"],
        "true"
    );
    let user: Value = session.json().await.unwrap();
    assert!(
        user["id"].is_string() && user["appleUserId"].is_string(),
        "{user}"
    );

    let token = from_web_app(
        &b,
        reqwest::Method::POST,
        h.url("/v1/web/token"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    assert_eq!(token["tokenType"], "Bearer");
    assert!(
        token.get("refreshToken").is_none(),
        "no refresh token reaches the page"
    );
    let access = token["accessToken"].as_str().unwrap().to_owned();
    let me = browser()
        .get(h.url("/v1/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["id"], user["id"]);

    // The sign-out ends the session: the cookie is removed, the access token refused.
    let out = from_web_app(
        &b,
        reqwest::Method::DELETE,
        h.url("/v1/web/session"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(out.status(), 204);
    let cleared = out.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("siwa_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let stale = browser()
        .get(h.url("/v1/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(stale).await, "session_ended");
    b.keep(&out);
    let after = from_web_app(
        &b,
        reqwest::Method::GET,
        h.url("/v1/web/session"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(error_code(after).await, "not_signed_in");
    let token = from_web_app(
        &b,
        reqwest::Method::POST,
        h.url("/v1/web/token"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(error_code(token).await, "not_signed_in");

    // Cancelling at Apple sends the page back with Apple's error.
    let cancelled = web_app_sign_in(
        &h,
        &Browser::default(),
        "redirect",
        Consent {
            cancel: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(cancelled.status(), 303);
    assert_eq!(
        cancelled.headers()[LOCATION],
        format!("{RETURN_TO}&siwa_error=user_cancelled_authorize")
    );
}

async fn a_web_apps_popup_tells_the_apps_origin_alone(h: Harness) {
    let b = Browser::default();
    let done = web_app_sign_in(&h, &b, "popup", Consent::default()).await;
    assert_eq!(done.status(), 200);
    assert!(
        session_cookie(&done).is_some(),
        "the popup's browser is signed in"
    );
    let csp = done.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        done.headers().get("cross-origin-opener-policy").is_none(),
        "the opener is kept"
    );
    let page = done.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"data-origin="{WEB_APP_ORIGIN}""#)),
        "{page}"
    );
    assert!(page.contains(r#"data-outcome="signed-in""#), "{page}");
    assert!(page.contains(r#"src="/assets/siwa-popup.js""#), "{page}");
    for secret in ["eyJ", "siwa_session"] {
        assert!(!page.contains(secret), "the page holds no token: {secret}");
    }
    let script = browser()
        .get(h.url("/assets/siwa-popup.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("postMessage(message, data.origin)")
    );

    let cancelled = web_app_sign_in(
        &h,
        &Browser::default(),
        "popup",
        Consent {
            cancel: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(cancelled.status(), 200);
    let page = cancelled.text().await.unwrap();
    assert!(page.contains(r#"data-outcome="failed""#), "{page}");
    assert!(
        page.contains(r#"data-error="user_cancelled_authorize""#),
        "{page}"
    );
}

async fn a_web_apps_return_to_must_be_on_a_listed_origin(h: Harness) {
    for return_to in [
        "http://evil.siwa.test:5173/",
        "http://app.siwa.test:5174/",
        "https://app.siwa.test:5173/",
        "http://user@app.siwa.test:5173/",
        "javascript:alert(1)//http://app.siwa.test:5173/",
        "//app.siwa.test:5173/",
    ] {
        let refused = browser()
            .get(h.url(&format!(
                "/v1/web/sign-in{}",
                start_query(return_to, "popup")
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{return_to}");
        assert!(
            refused.headers().get(SET_COOKIE).is_none(),
            "{return_to}: nothing started"
        );
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("return_to_not_allowed"),
            "{return_to}"
        );
    }
    for query in [
        "?mode=popup".to_owned(),
        format!(
            "{}&app_redirect_uri={APP_REDIRECT_URI}",
            start_query(RETURN_TO, "redirect")
        ),
        start_query(RETURN_TO, "window"),
    ] {
        let refused = browser()
            .get(h.url(&format!("/v1/web/sign-in{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{query}");
        assert!(
            refused.text().await.unwrap().contains("invalid_request"),
            "{query}"
        );
    }
}

async fn cookie_routes_answer_listed_origins_alone(h: Harness) {
    let b = Browser::default();
    web_app_sign_in(&h, &b, "redirect", Consent::default()).await;
    let preflight = |origin: &'static str| {
        browser()
            .request(reqwest::Method::OPTIONS, h.url("/v1/web/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-siwa-request")
            .send()
    };
    let listed = preflight(WEB_APP_ORIGIN).await.unwrap();
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        WEB_APP_ORIGIN
    );
    assert_eq!(listed.headers()["access-control-allow-credentials"], "true");
    for origin in [
        "http://evil.siwa.test:5173",
        "null",
        "http://app.siwa.test:5173.evil.test",
    ] {
        let other = preflight(origin).await.unwrap();
        assert!(
            other.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        // A sibling page of the site sends the cookie; its script still gets no token.
        let token = from_web_app(&b, reqwest::Method::POST, h.url("/v1/web/token"), origin)
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 403, "{origin}");
        assert!(token.headers().get("access-control-allow-origin").is_none());
        assert_eq!(error_code(token).await, "origin_not_allowed");
        let session = from_web_app(&b, reqwest::Method::GET, h.url("/v1/web/session"), origin)
            .send()
            .await
            .unwrap();
        assert!(
            session
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }
    // A form (no custom header) from the listed origin itself, and a request without Origin.
    let form = browser()
        .post(h.url("/v1/web/token"))
        .header(COOKIE, b.header())
        .header("origin", WEB_APP_ORIGIN)
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(form).await, "origin_not_allowed");
    let no_origin = browser()
        .post(h.url("/v1/web/token"))
        .header(COOKIE, b.header())
        .header("x-siwa-request", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(no_origin).await, "origin_not_allowed");
    let sign_out = browser()
        .delete(h.url("/v1/web/session"))
        .header(COOKIE, b.header())
        .header("origin", "http://evil.siwa.test:5173")
        .header("x-siwa-request", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), 403);
    let still = from_web_app(
        &b,
        reqwest::Method::GET,
        h.url("/v1/web/session"),
        WEB_APP_ORIGIN,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(still.status(), 200, "a refused sign-out ends nothing");
}
