//! The web flow: the consent page, Apple's rules for the authorization request, and the answer
//! to the app (form_post, query, fragment), with `user` sent only on the first authorization.

mod common;

use common::*;
use siwa_core::RawNonce;
use std::collections::HashMap;

const REDIRECT: &str = "https://app.example.com/callback";

fn authorize_url(apple: &mock_apple::MockApple, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&apple.endpoints().authorize()).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.into()
}

fn web_params(nonce: &str) -> Vec<(&str, &str)> {
    vec![
        ("client_id", WEB),
        ("redirect_uri", REDIRECT),
        ("response_type", "code id_token"),
        ("scope", "name email"),
        ("response_mode", "form_post"),
        ("state", "state-123"),
        ("nonce", nonce),
    ]
}

/// The hidden fields of the auto-submitting form the mock answers with.
fn form_fields(html: &str) -> HashMap<String, String> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|chunk| {
            let name = chunk.split("name=\"").nth(1)?.split('"').next()?;
            let value = chunk.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

/// Submits the consent sheet as a browser would after the user pressed a button.
async fn consent(
    apple: &mock_apple::MockApple,
    params: &[(&str, &str)],
    choices: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend_from_slice(choices);
    http()
        .post(apple.endpoints().authorize())
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_consent_page_looks_like_apples_sheet() {
    let apple = apple().await;
    let response = http()
        .get(authorize_url(&apple, &web_params("n")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    for text in [
        "Sign in with Apple",
        WEB,
        "Continue",
        "Share My Email",
        "Hide My Email",
        "jane.appleseed@example.com",
        "name=\"first_name\"",
    ] {
        assert!(html.contains(text), "page lacks {text}");
    }
    assert!(
        html.contains("value=\"state-123\""),
        "the request travels in hidden fields"
    );
}

#[tokio::test]
async fn form_post_carries_code_id_token_state_and_user_on_the_first_authorization_only() {
    let apple = apple().await;
    let raw = RawNonce::generate();
    let hashed = raw.hashed().to_string();
    let params = web_params(&hashed);
    let choices = [
        ("first_name", "Janet"),
        ("last_name", "Seed"),
        ("email_choice", "share"),
        ("action", "continue"),
    ];

    let first = form_fields(
        &consent(&apple, &params, &choices)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(first["state"], "state-123");
    assert!(first["code"].starts_with('c'));
    let user: serde_json::Value = serde_json::from_str(&first["user"]).unwrap();
    assert_eq!(
        user,
        serde_json::json!({"name": {"firstName": "Janet", "lastName": "Seed"}, "email": "jane.appleseed@example.com"})
    );
    let claims = verifier(&apple)
        .verify(&first["id_token"], Some(&raw))
        .await
        .unwrap();
    assert_eq!(claims.aud, WEB);

    let second = form_fields(
        &consent(&apple, &params, &choices)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(second.contains_key("code") && second.contains_key("id_token"));
    assert!(!second.contains_key("user"), "the name comes only once");
}

#[tokio::test]
async fn the_answer_auto_submits_to_the_redirect_uri() {
    let apple = apple().await;
    let html = consent(&apple, &web_params("n"), &[("action", "continue")])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")));
    assert!(html.contains("method=\"post\""));
    assert!(html.contains("document.forms[0].submit()"));
}

#[tokio::test]
async fn hide_my_email_gives_the_relay_address_and_the_choice_sticks() {
    let apple = apple().await;
    let params = web_params("n");
    let first = form_fields(
        &consent(
            &apple,
            &params,
            &[("email_choice", "hide"), ("action", "continue")],
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    let user: serde_json::Value = serde_json::from_str(&first["user"]).unwrap();
    let relay = user["email"].as_str().unwrap().to_owned();
    assert!(relay.ends_with("@privaterelay.appleid.com"));

    let again = form_fields(
        &consent(
            &apple,
            &params,
            &[("email_choice", "share"), ("action", "continue")],
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    let claims = siwa_core::decode_unverified(&again["id_token"])
        .unwrap()
        .claims;
    assert_eq!(
        claims.email.as_deref(),
        Some(relay.as_str()),
        "the first choice stays"
    );
    assert!(claims.is_private_email);
}

#[tokio::test]
async fn revoking_the_apps_tokens_shows_the_sheet_and_sends_the_name_again() {
    let apple = apple().await;
    let (client, key) = developer(&apple);
    let secret = secret(&apple, &key, WEB);
    let params = web_params("n");

    let first = form_fields(
        &consent(&apple, &params, &[("action", "continue")])
            .await
            .text()
            .await
            .unwrap(),
    );
    let tokens = client
        .exchange_code(WEB, &secret, &first["code"], Some(REDIRECT))
        .await
        .unwrap();
    client
        .revoke(
            WEB,
            &secret,
            tokens.refresh_token.as_deref().unwrap(),
            siwa_core::TokenTypeHint::RefreshToken,
        )
        .await
        .unwrap();

    let after = form_fields(
        &consent(&apple, &params, &[("action", "continue")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(after.contains_key("user"));
}

#[tokio::test]
async fn a_web_code_is_bound_to_its_redirect_uri() {
    let apple = apple().await;
    let (client, key) = developer(&apple);
    let secret = secret(&apple, &key, WEB);
    let fields = form_fields(
        &consent(&apple, &web_params("n"), &[("action", "continue")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(
        client
            .exchange_code(WEB, &secret, &fields["code"], None)
            .await
            .is_err()
    );
    assert!(
        client
            .exchange_code(WEB, &secret, &fields["code"], Some(REDIRECT))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn query_mode_redirects_with_code_and_state() {
    let apple = apple().await;
    let params = [
        ("client_id", WEB),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("response_mode", "query"),
        ("state", "s1"),
    ];
    let response = consent(&apple, &params, &[("action", "continue")]).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(location.as_str().starts_with(REDIRECT));
    assert!(query["code"].starts_with('c'));
    assert_eq!(query["state"], "s1");
    assert!(!query.contains_key("id_token") && !query.contains_key("user"));
}

#[tokio::test]
async fn fragment_mode_puts_the_answer_in_the_fragment() {
    let apple = apple().await;
    let params = [
        ("client_id", WEB),
        ("redirect_uri", REDIRECT),
        ("response_type", "code id_token"),
        ("response_mode", "fragment"),
    ];
    let response = consent(&apple, &params, &[("action", "continue")]).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.query(), None);
    let fields: HashMap<_, _> =
        url::form_urlencoded::parse(location.fragment().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert!(fields.contains_key("code") && fields.contains_key("id_token"));
}

#[tokio::test]
async fn cancelling_tells_the_app_the_user_cancelled() {
    let apple = apple().await;
    let fields = form_fields(
        &consent(&apple, &web_params("n"), &[("action", "cancel")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(fields["error"], "user_cancelled_authorize");
    assert_eq!(fields["state"], "state-123");
    assert!(!fields.contains_key("code"));
}

#[tokio::test]
async fn apples_rules_for_the_request_are_enforced() {
    let apple = apple().await;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "scopes need form_post",
            vec![
                ("client_id", WEB),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "email"),
                ("response_mode", "query"),
            ],
            "form_post",
        ),
        (
            "no id_token in a query",
            vec![
                ("client_id", WEB),
                ("redirect_uri", REDIRECT),
                ("response_type", "code id_token"),
                ("response_mode", "query"),
            ],
            "query string",
        ),
        (
            "response_type",
            vec![
                ("client_id", WEB),
                ("redirect_uri", REDIRECT),
                ("response_type", "token"),
            ],
            "unsupported_response_type",
        ),
        (
            "unknown scope",
            vec![
                ("client_id", WEB),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "phone"),
                ("response_mode", "form_post"),
            ],
            "invalid_scope",
        ),
        (
            "client_id",
            vec![("redirect_uri", REDIRECT), ("response_type", "code")],
            "client_id is missing",
        ),
        (
            "plain http",
            vec![
                ("client_id", WEB),
                ("redirect_uri", "http://app.example.com/cb"),
                ("response_type", "code"),
            ],
            "https",
        ),
    ];
    for (what, params, expected) in cases {
        let response = http()
            .get(authorize_url(&apple, &params))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let html = response.text().await.unwrap();
        assert!(html.contains(expected), "{what}: page lacks `{expected}`");
        // And the same request cannot be pushed through by posting the form directly.
        assert_eq!(
            consent(&apple, &params, &[("action", "continue")])
                .await
                .status(),
            400,
            "{what}"
        );
    }
}

#[tokio::test]
async fn loopback_redirects_are_allowed_for_local_development() {
    let apple = apple().await;
    let params = [
        ("client_id", WEB),
        ("redirect_uri", "http://localhost:3000/cb"),
        ("response_type", "code"),
    ];
    assert_eq!(
        http()
            .get(authorize_url(&apple, &params))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
