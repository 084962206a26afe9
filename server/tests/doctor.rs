//! `siwa-server doctor` against `mock-apple`, which answers `invalid_client` and `invalid_grant`
//! as Apple does: a good set-up passes, and each broken one fails with its own message.

use std::collections::HashMap;

use mock_apple::{IdentityTokenRequest, MockApple};
use siwa_server::doctor::{self, Report, Status, TokenOptions};
use wiremock::matchers::{header_exists, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP: &str = "com.example.app";
const WEB: &str = "com.example.web";
const TEAM: &str = "DOCTEAM001";
const KEY: &str = "DOCKEY0001";
const ENCRYPTION_KEY: &str = "c2l3YS10ZXN0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=";
const OTHER_ENCRYPTION_KEY: &str = "b3RoZXItZW5jcnlwdGlvbi1rZXktb2YtMzItYnl0ZXM=";

/// A mock Apple whose developer key serves the app and the Services ID (as dev's does), and the
/// variables of a server set up against it, its `.p8` in a file named as Apple names it.
struct SetUp {
    apple: MockApple,
    dir: std::path::PathBuf,
    variables: HashMap<String, String>,
}

impl SetUp {
    async fn new() -> Self {
        let apple = MockApple::start().await.unwrap();
        let key = apple.generate_developer_key(Some(TEAM), Some(KEY)).unwrap();
        apple
            .enable_developer_key_for(KEY, &[APP.to_owned(), WEB.to_owned()])
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "siwa-doctor-{}",
            siwa_server::new_token_base64().replace(['/', '+'], "_")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join(format!("AuthKey_{KEY}.p8"));
        std::fs::write(&key_file, &key.private_key_pem).unwrap();
        let variables = [
            ("SIWA_APPLE_CLIENT_IDS", format!("{APP},{WEB}")),
            ("SIWA_APPLE_BASE_URL", apple.base_url().to_owned()),
            ("SIWA_APPLE_TEAM_ID", TEAM.to_owned()),
            ("SIWA_APPLE_KEY_ID", KEY.to_owned()),
            (
                "SIWA_APPLE_PRIVATE_KEY_FILE",
                key_file.display().to_string(),
            ),
            (
                "SIWA_DATABASE_URL",
                format!("sqlite://{}/siwa.db?mode=rwc", dir.display()),
            ),
            ("SIWA_ENCRYPTION_KEY", ENCRYPTION_KEY.to_owned()),
            ("SIWA_APPLE_SERVICES_ID", WEB.to_owned()),
            ("SIWA_PUBLIC_URL", "https://auth.example.com".to_owned()),
            (
                "SIWA_APP_REDIRECT_URIS",
                "https://example.com/signed-in,http://127.0.0.1/callback".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            apple,
            dir,
            variables,
        }
    }

    fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.variables.insert(name.to_owned(), value.into());
        self
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.variables.get(name).cloned()
    }

    /// Starts and stops a server with these variables: the database exists, migrated, with a
    /// sealed signing key, as after a first deployment.
    async fn deploy(&self) {
        let mut config = siwa_server::Config::from_lookup(self.lookup()).unwrap();
        config.port = 0;
        config.host = "127.0.0.1".parse().unwrap();
        siwa_server::start(config).await.unwrap().shutdown().await;
    }

    async fn doctor(&self) -> Report {
        doctor::check_setup(self.lookup()).await
    }
}

impl Drop for SetUp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn status_of(report: &Report, check: &str) -> Vec<Status> {
    report
        .checks
        .iter()
        .filter(|c| c.check == check)
        .map(|c| c.status)
        .collect()
}

/// The one failed check of the report (there must be exactly one of this kind), as text.
fn failure(report: &Report, check: &str) -> String {
    let failed: Vec<_> = report.failures().filter(|c| c.check == check).collect();
    assert!(
        !failed.is_empty(),
        "no {check} failure in:\n{}",
        report.to_text()
    );
    failed
        .iter()
        .map(|c| format!("{} {}", c.message, c.fix.clone().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_good_set_up_passes_every_check() {
    let set_up = SetUp::new().await;
    set_up.deploy().await;
    let report = set_up.doctor().await;
    assert!(report.passed(), "{}", report.to_text());
    for check in [
        "configuration",
        "developer_key",
        "apple_keys",
        "database",
        "migrations",
        "encryption_key",
        "file_permissions",
    ] {
        assert_eq!(
            status_of(&report, check),
            [Status::Ok],
            "{check}:\n{}",
            report.to_text()
        );
    }
    // Apple's verdict is asked for each client id, and each made-up code got invalid_grant.
    assert_eq!(
        status_of(&report, "apple_verdict"),
        [Status::Ok, Status::Ok]
    );
    let text = report.to_text();
    assert!(
        text.contains("return URL https://auth.example.com/v1/web/callback"),
        "{text}"
    );
    assert!(text.ends_with("All checks passed.\n"), "{text}");
    // The probe is a token request with a made-up code, one per client id: nothing else.
    assert_eq!(set_up.apple.request_count(mock_apple::Endpoint::Token), 2);
}

#[tokio::test]
async fn a_key_apple_does_not_know_is_refused_for_every_client_id() {
    let mut set_up = SetUp::new().await;
    let unknown = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let file = set_up.dir.join("AuthKey_DOCKEY0001.p8");
    std::fs::write(&file, unknown).unwrap();
    set_up.set("SIWA_APPLE_PRIVATE_KEY_FILE", file.display().to_string());
    let report = set_up.doctor().await;
    assert!(!report.passed());
    assert_eq!(
        status_of(&report, "apple_verdict"),
        [Status::Fail, Status::Fail]
    );
    let message = failure(&report, "apple_verdict");
    assert!(
        message.contains(
            "invalid_client: Apple refuses key DOCKEY0001 of team DOCTEAM001 for every client id"
        ),
        "{message}"
    );
    assert!(message.contains("the key was revoked"), "{message}");
}

#[tokio::test]
async fn a_wrong_key_id_is_named_from_the_key_files_name() {
    let mut set_up = SetUp::new().await;
    set_up.set("SIWA_APPLE_KEY_ID", "OTHERKEY01");
    let report = set_up.doctor().await;
    let message = failure(&report, "developer_key");
    assert!(
        message.contains("the key file is AuthKey_DOCKEY0001.p8, Apple's download of key DOCKEY0001, but SIWA_APPLE_KEY_ID is OTHERKEY01"),
        "{message}"
    );
    assert!(
        message.contains("set SIWA_APPLE_KEY_ID=DOCKEY0001"),
        "{message}"
    );
    // And Apple agrees: the key id names no key of the team.
    assert!(failure(&report, "apple_verdict").contains("for every client id"));
}

#[tokio::test]
async fn a_wrong_team_id_gets_apples_invalid_client_naming_the_team() {
    let mut set_up = SetUp::new().await;
    set_up.set("SIWA_APPLE_TEAM_ID", "OTHERTEAM1");
    let report = set_up.doctor().await;
    assert_eq!(
        status_of(&report, "developer_key"),
        [Status::Ok],
        "nothing local tells a wrong team"
    );
    let message = failure(&report, "apple_verdict");
    assert!(
        message.contains("key DOCKEY0001 of team OTHERTEAM1 for every client id"),
        "{message}"
    );
    assert!(
        message.contains("SIWA_APPLE_TEAM_ID (OTHERTEAM1) is not the team that owns the key"),
        "{message}"
    );
}

#[tokio::test]
async fn a_services_id_not_grouped_with_the_keys_app_id_fails_alone() {
    let set_up = SetUp::new().await;
    set_up
        .apple
        .enable_developer_key_for(KEY, &[APP.to_owned()])
        .unwrap();
    let report = set_up.doctor().await;
    assert_eq!(
        status_of(&report, "apple_verdict"),
        [Status::Ok, Status::Fail]
    );
    let message = failure(&report, "apple_verdict");
    assert!(
        message.contains(&format!(
            "Apple accepts key {KEY} for other client ids, but not for {WEB}"
        )),
        "{message}"
    );
    assert!(
        message.contains("not grouped with the key's primary App ID"),
        "{message}"
    );
}

#[tokio::test]
async fn a_services_id_missing_from_the_client_ids_is_probed_and_warned_about() {
    let mut set_up = SetUp::new().await;
    set_up.set("SIWA_APPLE_CLIENT_IDS", APP);
    let report = set_up.doctor().await;
    let warning = report
        .checks
        .iter()
        .find(|c| c.check == "web_flow" && c.status == Status::Warn)
        .unwrap_or_else(|| panic!("no warning:\n{}", report.to_text()));
    assert!(
        warning
            .message
            .contains("com.example.web is not in SIWA_APPLE_CLIENT_IDS"),
        "{}",
        warning.message
    );
    // The web flow's Services ID is still asked about at Apple.
    assert_eq!(
        status_of(&report, "apple_verdict"),
        [Status::Ok, Status::Ok]
    );
}

#[tokio::test]
async fn an_unreachable_apple_fails_the_verdict_and_the_keys() {
    let mut set_up = SetUp::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    set_up.set("SIWA_APPLE_BASE_URL", url.clone());
    let report = set_up.doctor().await;
    let verdict = failure(&report, "apple_verdict");
    assert!(
        verdict.contains(&format!(
            "Apple could not be reached at {url}: connection failed"
        )),
        "{verdict}"
    );
    let keys = failure(&report, "apple_keys");
    assert!(
        keys.contains("could not be fetched: connection failed"),
        "{keys}"
    );
}

#[tokio::test]
async fn a_wrong_encryption_key_cannot_open_the_sealed_signing_key() {
    let mut set_up = SetUp::new().await;
    set_up.deploy().await;
    set_up.set("SIWA_ENCRYPTION_KEY", OTHER_ENCRYPTION_KEY);
    let report = set_up.doctor().await;
    let message = failure(&report, "encryption_key");
    assert!(
        message.contains("SIWA_ENCRYPTION_KEY does not open the stored signing key"),
        "{message}"
    );
    assert!(
        message.contains("sealed with a key that is not configured"),
        "{message}"
    );
    // The old key listed after the new one, as while rotating: it opens again.
    set_up.set(
        "SIWA_ENCRYPTION_KEY",
        format!("{OTHER_ENCRYPTION_KEY},{ENCRYPTION_KEY}"),
    );
    assert_eq!(
        status_of(&set_up.doctor().await, "encryption_key"),
        [Status::Ok]
    );
}

#[tokio::test]
async fn a_world_readable_database_fails_and_a_missing_one_is_not_created() {
    let mut set_up = SetUp::new().await;
    set_up.set(
        "SIWA_DATABASE_URL",
        format!("sqlite://{}/later.db?mode=rwc", set_up.dir.display()),
    );
    let report = set_up.doctor().await;
    assert!(report.passed(), "{}", report.to_text());
    assert!(
        !set_up.dir.join("later.db").exists(),
        "the doctor created the database"
    );

    set_up.set(
        "SIWA_DATABASE_URL",
        format!("sqlite://{}/siwa.db?mode=rwc", set_up.dir.display()),
    );
    set_up.deploy().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = set_up.dir.join("siwa.db");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let message = failure(&set_up.doctor().await, "file_permissions");
        assert!(
            message.contains("readable by every user of the machine"),
            "{message}"
        );
        assert!(message.contains("mode 644"), "{message}");
    }
}

#[tokio::test]
async fn a_bad_variable_is_named_and_nothing_else_is_tried() {
    let mut set_up = SetUp::new().await;
    set_up.set("SIWA_PUBLIC_URL", "auth.example.com");
    let report = set_up.doctor().await;
    assert_eq!(report.checks.len(), 1, "{}", report.to_text());
    assert!(failure(&report, "configuration").starts_with("SIWA_PUBLIC_URL: "));
    assert_eq!(set_up.apple.request_count(mock_apple::Endpoint::Token), 0);
}

#[tokio::test]
async fn the_webhook_receiver_gets_a_signed_test_event_and_its_refusal_fails() {
    let mut set_up = SetUp::new().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header_exists("webhook-signature"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    set_up.set(
        "SIWA_WEBHOOK_URL",
        format!("{}/hooks?token=hidden", receiver.uri()),
    );
    set_up.set(
        "SIWA_WEBHOOK_SECRET",
        "whsec_c2l3YS10ZXN0LXdlYmhvb2stc2VjcmV0",
    );
    let report = set_up.doctor().await;
    assert_eq!(
        status_of(&report, "webhooks"),
        [Status::Ok],
        "{}",
        report.to_text()
    );
    let received = receiver.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], "siwa.test");
    assert!(
        !report.to_text().contains("token=hidden"),
        "the URL's query is shown"
    );

    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&receiver)
        .await;
    let message = failure(&set_up.doctor().await, "webhooks");
    assert!(
        message.contains("did not take a signed siwa.test event: answered 500"),
        "{message}"
    );
}

// `doctor token`.

async fn explain(set_up: &SetUp, token: &str, options: TokenOptions) -> doctor::TokenReport {
    doctor::explain_token(set_up.lookup(), token, &options).await
}

#[tokio::test]
async fn a_good_token_is_explained_and_accepted_without_showing_secrets() {
    let set_up = SetUp::new().await;
    let minted = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest {
            raw_nonce: Some("the-raw-nonce".into()),
            ..Default::default()
        })
        .unwrap();
    let report = explain(
        &set_up,
        &minted.identity_token,
        TokenOptions {
            raw_nonce: Some("the-raw-nonce".into()),
            show_email: false,
        },
    )
    .await;
    assert!(report.passed(), "{}", report.to_text());
    let text = report.to_text();
    assert!(
        text.contains("valid: signed by Apple for com.example.app, one of SIWA_APPLE_CLIENT_IDS"),
        "{text}"
    );
    assert!(
        text.contains("the SHA-256 of the raw nonce given: as it must be"),
        "{text}"
    );
    assert!(text.contains("(hidden: --show-email shows it)"), "{text}");
    let claims = siwa_core::decode_unverified(&minted.identity_token)
        .unwrap()
        .claims;
    let email = claims.email.unwrap();
    assert!(!text.contains(&email), "the email is shown");
    assert!(
        !text.contains(claims.nonce.as_deref().unwrap()),
        "the nonce is shown"
    );
    assert!(!text.contains(&minted.identity_token), "the token is shown");
    let shown = explain(
        &set_up,
        &minted.identity_token,
        TokenOptions {
            raw_nonce: None,
            show_email: true,
        },
    )
    .await;
    assert!(shown.to_text().contains(&email));
}

#[tokio::test]
async fn an_expired_token_says_when_and_what_to_do() {
    let set_up = SetUp::new().await;
    let minted = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest {
            issued_at: Some(time::OffsetDateTime::now_utc().unix_timestamp() - 3 * 3600),
            lifetime_secs: Some(600),
            ..Default::default()
        })
        .unwrap();
    let report = explain(&set_up, &minted.identity_token, TokenOptions::default()).await;
    assert_eq!(report.verdict.status, Status::Fail);
    assert!(
        report
            .verdict
            .message
            .starts_with("refused (token_expired): it expired 2 h ago"),
        "{}",
        report.verdict.message
    );
    assert!(
        report
            .verdict
            .fix
            .as_deref()
            .unwrap()
            .contains("right after Apple gives it")
    );
}

#[tokio::test]
async fn a_token_for_the_web_flow_sent_where_only_the_app_is_accepted_names_both() {
    let mut set_up = SetUp::new().await;
    set_up.set("SIWA_APPLE_CLIENT_IDS", APP);
    set_up.variables.remove("SIWA_APPLE_SERVICES_ID");
    set_up.variables.remove("SIWA_PUBLIC_URL");
    set_up.variables.remove("SIWA_APP_REDIRECT_URIS");
    let minted = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest {
            client_id: Some("com.example.other".into()),
            ..Default::default()
        })
        .unwrap();
    let report = explain(&set_up, &minted.identity_token, TokenOptions::default()).await;
    assert_eq!(
        report.verdict.message,
        "refused (wrong_audience): this token was issued for com.example.other; this server accepts com.example.app"
    );

    // With the web flow on, a web token is named as such.
    set_up
        .set("SIWA_APPLE_SERVICES_ID", WEB)
        .set("SIWA_PUBLIC_URL", "https://auth.example.com");
    let web = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest {
            client_id: Some(WEB.into()),
            ..Default::default()
        })
        .unwrap();
    let report = explain(&set_up, &web.identity_token, TokenOptions::default()).await;
    assert!(report.passed());
    assert!(
        report
            .verdict
            .message
            .contains("the web flow accepts it, /v1/auth/apple does not"),
        "{}",
        report.verdict.message
    );
}

#[tokio::test]
async fn a_missing_nonce_and_a_raw_nonce_given_to_apple_are_told_apart() {
    let set_up = SetUp::new().await;
    let without = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest::default())
        .unwrap();
    let report = explain(
        &set_up,
        &without.identity_token,
        TokenOptions {
            raw_nonce: Some("abc".into()),
            show_email: false,
        },
    )
    .await;
    assert!(
        report
            .verdict
            .message
            .starts_with("refused (nonce_missing)"),
        "{}",
        report.verdict.message
    );
    assert!(
        report
            .verdict
            .fix
            .as_deref()
            .unwrap()
            .contains("SHA-256 (lowercase hex) of its raw nonce")
    );

    // The classic mistake: the app gave Apple the raw nonce, not its hash.
    let raw_to_apple = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest {
            nonce: Some("abc".into()),
            ..Default::default()
        })
        .unwrap();
    let report = explain(
        &set_up,
        &raw_to_apple.identity_token,
        TokenOptions {
            raw_nonce: Some("abc".into()),
            show_email: false,
        },
    )
    .await;
    assert!(
        report
            .verdict
            .message
            .starts_with("refused (nonce_mismatch)"),
        "{}",
        report.verdict.message
    );
    assert!(
        report
            .to_text()
            .contains("the raw nonce itself: the app gave Apple the raw value"),
        "{}",
        report.to_text()
    );
    assert!(
        report
            .verdict
            .fix
            .as_deref()
            .unwrap()
            .contains("the app gave Apple the raw nonce")
    );
}

#[tokio::test]
async fn a_forged_signature_is_refused_as_such() {
    let set_up = SetUp::new().await;
    let minted = set_up
        .apple
        .mint_identity_token(IdentityTokenRequest::default())
        .unwrap();
    let (signed, _) = minted.identity_token.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    // The same header, a payload of the attacker's, the old signature.
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        serde_json::json!({"iss": siwa_core::ISSUER, "aud": APP, "sub": "someone.else",
                           "iat": time::OffsetDateTime::now_utc().unix_timestamp(),
                           "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 600})
        .to_string(),
    );
    let signature = minted.identity_token.rsplit_once('.').unwrap().1;
    let forged = format!("{header}.{payload}.{signature}");
    let report = explain(&set_up, &forged, TokenOptions::default()).await;
    assert!(
        report
            .verdict
            .message
            .starts_with("refused (bad_signature): the signature does not verify"),
        "{}",
        report.verdict.message
    );
    // What the token claims is still shown, to see what was forged.
    assert!(report.to_text().contains("\"someone.else\""));

    let garbage = explain(&set_up, "not-a-token", TokenOptions::default()).await;
    assert!(
        garbage.verdict.message.starts_with("not a token"),
        "{}",
        garbage.verdict.message
    );
}
