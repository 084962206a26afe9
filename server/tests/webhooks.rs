//! Webhooks (`siwa_server::webhooks`) against a real receiver: a small HTTP server in the test
//! that verifies every signature with the `standardwebhooks` crate and can be told to fail.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use mock_apple::{IdentityTokenRequest, NotificationRequest};
use serde_json::{Value, json};
use siwa_server::{WebhookConfig, WebhookTarget};
use standardwebhooks::Webhook;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

on_both_databases!(
    sign_up_deletion_and_each_notification_make_exactly_their_events,
    a_failing_receiver_gets_the_same_id_until_it_takes_the_event,
    a_receiver_that_is_down_neither_slows_nor_fails_a_sign_in,
    an_event_written_before_a_crash_is_delivered_after_restart,
    concurrent_sign_ups_are_each_delivered_once,
    the_seed_routes_grouped_sign_ups_each_make_one_event,
    a_rolled_back_sign_in_sends_nothing,
    two_instances_deliver_each_event_once,
    an_event_committed_before_a_kill_9_is_delivered_by_the_next_process,
);

/// What the receiver saw: each request's `webhook-id` and verified body.
#[derive(Default)]
struct Seen {
    deliveries: Vec<(String, Value)>,
    /// Answer 500 to this many requests first.
    fail_next: usize,
    refused_signatures: usize,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    async fn start_on(address: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            seen,
            task: Arc::new(task),
        }
    }

    /// A receiver whose port refuses connections: it is down until `start_on(address)`.
    async fn down() -> Self {
        let receiver = Self::start().await;
        receiver.task.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        receiver
    }

    fn address(&self) -> String {
        self.url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    }

    fn deliveries(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().deliveries.clone()
    }

    /// Waits (up to 10 s) until `n` deliveries were accepted (2xx) and returns them.
    async fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        self.wait_for_within(n, Duration::from_secs(10)).await
    }

    async fn wait_for_within(&self, n: usize, limit: Duration) -> Vec<(String, Value)> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self.accepted().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let accepted = self.accepted();
        assert!(accepted.len() >= n, "{} of {n} delivered", accepted.len());
        assert_eq!(self.seen.lock().unwrap().refused_signatures, 0);
        accepted
    }

    fn accepted(&self) -> Vec<(String, Value)> {
        self.deliveries()
            .into_iter()
            .filter(|(_, body)| body["accepted"] == true)
            .map(|(id, body)| (id, body["event"].clone()))
            .collect()
    }
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let mut seen = seen.lock().unwrap();
    // Verified with each secret of the rotation: either must match.
    let verified = [SECRET, OLD_SECRET].iter().all(|secret| {
        Webhook::new(secret)
            .unwrap()
            .verify(&body, &headers)
            .is_ok()
    });
    if !verified {
        seen.refused_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    let event: Value = serde_json::from_slice(&body).unwrap();
    let accepted = seen.fail_next == 0;
    seen.fail_next = seen.fail_next.saturating_sub(1);
    seen.deliveries
        .push((id, json!({"event": event, "accepted": accepted})));
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Webhooks to `receiver`, signed with both secrets, retried at once.
fn webhooks(receiver: &Receiver) -> WebhookConfig {
    WebhookConfig {
        target: WebhookTarget::Url {
            url: receiver.url.parse().unwrap(),
            secrets: vec![SECRET.into(), OLD_SECRET.into()],
        },
        retry_base: Duration::ZERO,
    }
}

/// The harness's server restarted with webhooks to `receiver` (same database, same mock).
async fn with_webhooks(h: &mut Harness, receiver: &Receiver) {
    let mut config = h.config();
    config.webhooks = Some(webhooks(receiver));
    let server = siwa_server::start(config).await.unwrap();
    let old = std::mem::replace(&mut h.server, server);
    old.shutdown().await;
}

fn types(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, e)| e["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn notify(h: &Harness, kind: &str) {
    let sent = h
        .apple
        .send_notification(NotificationRequest {
            url: h.url("/v1/apple/notifications"),
            kind: kind.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.status, 200);
}

async fn sign_up(h: &Harness, sub: &str) -> Value {
    let (status, body) = h
        .sign_in(
            IdentityTokenRequest {
                sub: Some(sub.into()),
                ..Default::default()
            },
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn sign_up_deletion_and_each_notification_make_exactly_their_events(mut h: Harness) {
    let receiver = Receiver::start().await;
    with_webhooks(&mut h, &receiver).await;

    // The mock's default user: the notifications are about it.
    let (status, body) = h.sign_in(IdentityTokenRequest::default(), None).await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();
    let created = receiver.wait_for(1).await;
    assert_eq!(types(&created), ["user.created"]);
    let sub = created[0].1["data"]["appleSub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created[0].1["data"]["userId"], user_id.as_str());
    assert!(created[0].1["data"].get("email").is_none());
    assert!(created[0].0.starts_with("msg_"));

    // Signing in again is not an event.
    h.sign_in(IdentityTokenRequest::default(), None).await;
    for kind in [
        "email-disabled",
        "email-enabled",
        "consent-revoked",
        "account-delete",
    ] {
        notify(&h, kind).await;
    }
    let events = receiver.wait_for(5).await;
    assert_eq!(
        types(&events),
        [
            "user.created",
            "user.email_disabled",
            "user.email_enabled",
            "user.consent_revoked",
            "user.deleted"
        ]
    );
    for (_, event) in &events[1..] {
        assert_eq!(event["data"]["userId"], user_id.as_str());
        assert_eq!(event["data"]["appleSub"], sub.as_str());
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert!(
        events[1].1["data"]["email"].is_string(),
        "the email events carry it"
    );
    assert_eq!(
        events[1].1["data"]["isPrivateEmail"], false,
        "the user's own address is said not to be a relay address"
    );
    assert!(events[3].1["data"].get("email").is_none());
    assert_eq!(events[4].1["data"]["reason"], "apple");

    // Deleted by the app.
    let body = sign_up(&h, "001111.aaaa.0001").await;
    let access = body["session"]["accessToken"].as_str().unwrap();
    assert_eq!(h.delete_auth("/v1/me", access).await.0, 200);
    let events = receiver.wait_for(7).await;
    assert_eq!(types(&events[5..]), ["user.created", "user.deleted"]);
    assert_eq!(events[6].1["data"]["reason"], "app");
    assert_eq!(events[6].1["data"]["appleSub"], "001111.aaaa.0001");

    // A team transfer moves the account to the new `sub`: the token's transfer_sub is the
    // transfer identifier `transfer prepare` kept for the account.
    let moved = sign_up(&h, "002222.bbbb.0002").await;
    h.execute(&format!(
        "INSERT INTO user_transfers (user_id, target_team, transfer_sub, prepared_at) \
         VALUES ('{}', 'TEAMBBBBBB', '000777.tttt.0007', 0)",
        moved["user"]["id"].as_str().unwrap()
    ))
    .await;
    let (status, body) = h
        .sign_in(
            IdentityTokenRequest {
                sub: Some("003333.cccc.0003".into()),
                claims: json!({"transfer_sub": "000777.tttt.0007"})
                    .as_object()
                    .unwrap()
                    .clone(),
                ..Default::default()
            },
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let events = receiver.wait_for(9).await;
    assert_eq!(types(&events[7..]), ["user.created", "user.transferred"]);
    assert_eq!(events[8].1["data"]["userId"], moved["user"]["id"]);
    assert_eq!(events[8].1["data"]["previousAppleSub"], "002222.bbbb.0002");
    assert_eq!(events[8].1["data"]["appleSub"], "003333.cccc.0003");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.deliveries().len(), 9, "nothing else was sent");
}

async fn a_failing_receiver_gets_the_same_id_until_it_takes_the_event(mut h: Harness) {
    let receiver = Receiver::start().await;
    receiver.seen.lock().unwrap().fail_next = 2;
    with_webhooks(&mut h, &receiver).await;
    sign_up(&h, "001.retry.1").await;
    receiver.wait_for(1).await;
    let all = receiver.deliveries();
    assert_eq!(all.len(), 3, "two failures, then the delivery");
    assert!(all.iter().all(|(id, _)| *id == all[0].0), "one webhook-id");
    // The receiver has answered; the server records the delivery just after.
    let mut counts = h.server.state.store.event_counts().await.unwrap();
    for _ in 0..100 {
        if counts.delivered == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        counts = h.server.state.store.event_counts().await.unwrap();
    }
    assert_eq!((counts.pending, counts.delivered, counts.failed), (0, 1, 0));
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("siwa_webhook_events{status=\"delivered\"} 1"),
        "{metrics}"
    );
    // Housekeeping forgets a delivered event after a week, not before.
    let store = &h.server.state.store;
    let now = siwa_core::Clock::now(&siwa_core::SystemClock);
    store.purge_expired(now + 6 * 24 * 3600, 10).await.unwrap();
    assert_eq!(store.event_counts().await.unwrap().delivered, 1);
    store.purge_expired(now + 8 * 24 * 3600, 10).await.unwrap();
    assert_eq!(store.event_counts().await.unwrap().delivered, 0);
}

async fn a_receiver_that_is_down_neither_slows_nor_fails_a_sign_in(mut h: Harness) {
    let receiver = Receiver::down().await;
    let address = receiver.address();
    with_webhooks(&mut h, &receiver).await;
    for i in 0..5 {
        sign_up(&h, &format!("001.down.{i}")).await;
    }
    let counts = h.server.state.store.event_counts().await.unwrap();
    assert_eq!(counts.pending, 5);
    // Back up: everything arrives.
    let back = Receiver::start_on(&address).await;
    let events = back.wait_for(5).await;
    assert_eq!(types(&events), vec!["user.created"; 5]);
}

async fn an_event_written_before_a_crash_is_delivered_after_restart(mut h: Harness) {
    let receiver = Receiver::down().await;
    let address = receiver.address();
    with_webhooks(&mut h, &receiver).await;
    sign_up(&h, "001.crash.1").await;
    // The server goes away with the event undelivered; a new process on the same database
    // delivers it.
    let config = {
        let mut config = h.config();
        config.webhooks = Some(webhooks(&receiver));
        config
    };
    let dead = std::mem::replace(
        &mut h.server,
        siwa_server::start(config.clone()).await.unwrap(),
    );
    dead.shutdown().await;
    let back = Receiver::start_on(&address).await;
    let events = back.wait_for(1).await;
    assert_eq!(types(&events), ["user.created"]);
}

async fn concurrent_sign_ups_are_each_delivered_once(mut h: Harness) {
    let receiver = Receiver::start().await;
    with_webhooks(&mut h, &receiver).await;
    let h = Arc::new(h);
    let sign_ups: Vec<_> = (0..200)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { sign_up(&h, &format!("001.many.{i:03}")).await })
        })
        .collect();
    for sign_up in sign_ups {
        sign_up.await.unwrap();
    }
    let events = receiver.wait_for(200).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = receiver.deliveries();
    assert_eq!(all.len(), 200, "each delivered once");
    let ids: std::collections::HashSet<_> = events.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids.len(), 200);
    let subs: std::collections::HashSet<_> = events
        .iter()
        .map(|(_, e)| e["data"]["appleSub"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subs.len(), 200);
}

/// The seed's route, many at once: its sign-ins are committed in groups, and each new user's
/// `user.created` commits with its group (SQLite: in the group's transaction; PostgreSQL: in the
/// group's one statement). 40 concurrent sign-ins of 10 users: exactly 10 events, one per user,
/// each naming the user as stored, and returning users make none.
async fn the_seed_routes_grouped_sign_ups_each_make_one_event(mut h: Harness) {
    let receiver = Receiver::start().await;
    with_webhooks(&mut h, &receiver).await;
    let tokens: Vec<String> = (0..40)
        .map(|i| {
            h.mint(IdentityTokenRequest {
                sub: Some(format!("001.seed.{:02}", i % 10)),
                ..Default::default()
            })
            .identity_token
        })
        .collect();
    let h = Arc::new(h);
    let sign_ins: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let h = h.clone();
            tokio::spawn(async move {
                h.post("/auth/apple", &json!({"identityToken": token}))
                    .await
            })
        })
        .collect();
    for sign_in in sign_ins {
        let (status, body) = sign_in.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let events = receiver.wait_for(10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = receiver.deliveries();
    assert_eq!(all.len(), 10, "one event per new user");
    assert!(types(&events).iter().all(|t| t == "user.created"));
    let subs: std::collections::HashSet<_> = events
        .iter()
        .map(|(_, e)| e["data"]["appleSub"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subs.len(), 10);
    assert_eq!(h.users().await, 10);
    let stored: std::collections::HashSet<String> = h
        .query("SELECT id || ' ' || apple_sub FROM users")
        .await
        .into_iter()
        .collect();
    let named: std::collections::HashSet<String> = events
        .iter()
        .map(|(_, e)| {
            format!(
                "{} {}",
                e["data"]["userId"].as_str().unwrap(),
                e["data"]["appleSub"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(named, stored, "each event names its user's id");
}

async fn a_rolled_back_sign_in_sends_nothing(mut h: Harness) {
    let receiver = Receiver::start().await;
    with_webhooks(&mut h, &receiver).await;
    // A code issued to the Services ID, sent with an app token: Apple refuses it, and the
    // sign-in writes nothing.
    let web_code = h
        .mint(IdentityTokenRequest {
            client_id: Some(WEB_SERVICES_ID.into()),
            ..Default::default()
        })
        .authorization_code;
    let token = h
        .mint(IdentityTokenRequest {
            sub: Some("001.refused.1".into()),
            ..Default::default()
        })
        .identity_token;
    let (status, body) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": token, "authorizationCode": web_code}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "authorization_code_rejected");
    assert_eq!(h.users().await, 0);
    let counts = h.server.state.store.event_counts().await.unwrap();
    assert_eq!((counts.pending, counts.delivered), (0, 0));
    // The next event is the first one sent.
    sign_up(&h, "001.accepted.1").await;
    let events = receiver.wait_for(1).await;
    assert_eq!(events[0].1["data"]["appleSub"], "001.accepted.1");
    assert_eq!(receiver.deliveries().len(), 1);
}

async fn two_instances_deliver_each_event_once(mut h: Harness) {
    let receiver = Receiver::start().await;
    with_webhooks(&mut h, &receiver).await;
    let mut config = h.config();
    config.webhooks = Some(webhooks(&receiver));
    let other = siwa_server::start(config).await.unwrap();
    for i in 0..40 {
        let server = if i % 2 == 0 { &h.server } else { &other };
        let minted = h.mint(IdentityTokenRequest {
            sub: Some(format!("001.two.{i:02}")),
            ..Default::default()
        });
        let (status, body) = h
            .post_to(
                server,
                "/v1/auth/apple",
                &json!({"identityToken": minted.identity_token}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    receiver.wait_for(40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for (id, _) in receiver.deliveries() {
        *per_id.entry(id).or_default() += 1;
    }
    assert_eq!(per_id.len(), 40);
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    other.shutdown().await;
}

/// The real binary, killed with SIGKILL right after answering a sign-in whose event it could
/// not deliver (the receiver is down): the next process on the database delivers it.
async fn an_event_committed_before_a_kill_9_is_delivered_by_the_next_process(h: Harness) {
    let receiver = Receiver::down().await;
    let address = receiver.address();
    // Killed also when the test fails, so no process outlives it.
    struct Process(std::process::Child);
    impl Drop for Process {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let start = |port: u16| {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_siwa-server"))
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("SIWA_HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("SIWA_DATABASE_URL", &h.database_url)
            .env("SIWA_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
            .env("SIWA_APPLE_CLIENT_IDS", APP)
            .env("SIWA_APPLE_BASE_URL", h.apple.base_url())
            .env("SIWA_WEBHOOK_URL", &receiver.url)
            .env("SIWA_WEBHOOK_SECRET", format!("{SECRET} {OLD_SECRET}"))
            .env("SIWA_WEBHOOK_RETRY_BASE_SECS", "0")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Process(child)
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let ready = |port: u16| {
        let http = h.http.clone();
        async move {
            for _ in 0..200 {
                let url = format!("http://127.0.0.1:{port}/healthz");
                if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("the binary did not start");
        }
    };
    let port = free_port();
    let mut first = start(port);
    ready(port).await;
    let minted = h.mint(IdentityTokenRequest {
        sub: Some("001.killed.1".into()),
        ..Default::default()
    });
    let answer = h
        .http
        .post(format!("http://127.0.0.1:{port}/v1/auth/apple"))
        .json(&json!({"identityToken": minted.identity_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    first.0.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    first.0.wait().unwrap();

    let back = Receiver::start_on(&address).await;
    let port = free_port();
    let _second = start(port);
    ready(port).await;
    // If the kill came while the first process held the event (between its lease and the
    // outcome of its attempt), the event waits for the lease to run out.
    let events = back.wait_for_within(1, Duration::from_secs(45)).await;
    assert_eq!(types(&events), ["user.created"]);
    assert_eq!(events[0].1["data"]["appleSub"], "001.killed.1");
}
