//! Moving the app to another Apple team (`siwa_server::transfer`; docs/transfer.md), against
//! mock-apple's teams on both databases: a few hundred users prepared with the sending team's
//! key, the move, and every account relinked with the recipient's; interruption and resume, a
//! second run that changes nothing, users who sign in during the window, Apple's refusals.

mod common;

use std::time::Duration;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest, NewUser};
use serde_json::json;
use siwa_core::DeveloperKey;
use siwa_server::transfer::{self, RunSummary, TransferError, TransferOptions};

on_both_databases!(
    a_few_hundred_users_move_to_another_team_with_their_sessions_and_names,
    an_interrupted_prepare_resumes_without_asking_twice,
    a_prepare_killed_mid_run_resumes_without_asking_twice,
    apples_refusals_stop_the_run_or_are_recorded_per_user,
);

/// The harness's own key's team: the app's owner before the move.
const SENDER: &str = "TEAM123456";
const RECIPIENT: &str = "TEAMBBBBBB";
const USERS: usize = 300;

fn fast() -> TransferOptions {
    TransferOptions {
        per_second: 100_000.0,
        retry_base: Duration::from_millis(5),
        ..Default::default()
    }
}

/// A configuration of the same database with a new key of `team`'s.
fn with_key_of(h: &Harness, team: &str) -> siwa_server::Config {
    let generated = h.apple.generate_developer_key(Some(team), None).unwrap();
    let key =
        DeveloperKey::from_p8_pem(team, &generated.key_id, &generated.private_key_pem).unwrap();
    config_for(&h.apple, key, &h.database_url)
}

fn directory_sub(i: usize) -> String {
    format!("001{i:03}.{:032x}.0001", i)
}

/// `USERS` users of the fake Apple's directory, each signed in once (every other one hiding
/// their email); returns the first one's answer.
async fn sign_up_everyone(h: &Harness) -> serde_json::Value {
    h.apple.assign_client_team(APP, SENDER).unwrap();
    let mut first = None;
    for i in 0..USERS {
        let sub = directory_sub(i);
        h.apple
            .add_user(NewUser {
                sub: Some(sub.clone()),
                given_name: Some(format!("Given{i}")),
                ..Default::default()
            })
            .unwrap();
        let request = IdentityTokenRequest {
            sub: Some(sub),
            hide_email: i.is_multiple_of(2),
            ..Default::default()
        };
        let (status, body) = h
            .sign_in(request, Some(json!({"givenName": format!("Given{i}")})))
            .await;
        assert_eq!(status, 200, "{body}");
        first.get_or_insert(body);
    }
    first.unwrap()
}

async fn count(h: &Harness, sql: &str) -> i64 {
    h.query(&format!("SELECT CAST(({sql}) AS TEXT)")).await[0]
        .parse()
        .unwrap()
}

async fn sign_in_as(h: &Harness, i: usize) -> serde_json::Value {
    let request = IdentityTokenRequest {
        sub: Some(directory_sub(i)),
        hide_email: i.is_multiple_of(2),
        ..Default::default()
    };
    let (status, body) = h.sign_in(request, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn a_few_hundred_users_move_to_another_team_with_their_sessions_and_names(h: Harness) {
    let first = sign_up_everyone(&h).await;
    let ids_before = h.query("SELECT id FROM users ORDER BY id").await;
    let emails_before = h.query("SELECT email FROM users ORDER BY id").await;
    let sender = with_key_of(&h, SENDER);

    let dry = TransferOptions {
        dry_run: true,
        ..fast()
    };
    let counted = transfer::prepare(&sender, RECIPIENT, &dry).await.unwrap();
    assert_eq!(counted.would, USERS as u64);
    assert_eq!(
        count(&h, "SELECT COUNT(*) FROM user_transfers").await,
        0,
        "a dry run writes nothing"
    );
    assert_eq!(h.count(Endpoint::UserMigrationInfo), 0, "nor asks Apple");

    let prepared = transfer::prepare(&sender, RECIPIENT, &fast())
        .await
        .unwrap();
    assert_eq!(prepared.done, USERS as u64);
    let again = transfer::prepare(&sender, RECIPIENT, &fast())
        .await
        .unwrap();
    assert_eq!(again, RunSummary::default(), "a second run changes nothing");

    h.apple.transfer_client(APP, RECIPIENT).unwrap();
    // A user who signs in during the window, before `complete`: relinked by the token's
    // transfer_sub, the same account.
    let early = sign_in_as(&h, 1).await;
    assert_eq!(early["isNewUser"], false);
    let early_id = early["user"]["id"].as_str().unwrap().to_owned();
    assert!(ids_before.contains(&early_id));

    let recipient = with_key_of(&h, RECIPIENT);
    let completed = transfer::complete(&recipient, &fast()).await.unwrap();
    assert_eq!(completed.done, USERS as u64 - 1);
    assert_eq!(completed.already + completed.failed, 0, "{completed:?}");
    let again = transfer::complete(&recipient, &fast()).await.unwrap();
    assert_eq!(again, RunSummary::default(), "a second run changes nothing");

    // Every account is its old self under the new team's sub: signing in finds it. Those who
    // hid their email have the new team's relay address.
    assert_eq!(
        h.query("SELECT id FROM users ORDER BY id").await,
        ids_before
    );
    let emails_after = h.query("SELECT email FROM users ORDER BY id").await;
    let changed = emails_before
        .iter()
        .zip(&emails_after)
        .filter(|(before, after)| before != after)
        .count();
    assert_eq!(changed, USERS / 2);
    for i in [0, 2, 150, USERS - 1] {
        let body = sign_in_as(&h, i).await;
        assert_eq!(body["isNewUser"], false, "user {i}");
        assert_eq!(
            body["user"]["givenName"],
            format!("Given{i}"),
            "the name is kept"
        );
        if i.is_multiple_of(2) {
            assert_eq!(body["user"]["isPrivateEmail"], true);
        }
    }
    assert_eq!(count(&h, "SELECT COUNT(*) FROM users").await, USERS as i64);
    // The session made before the move still refreshes.
    let refreshed = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": first["session"]["refreshToken"]}),
        )
        .await;
    assert_eq!(refreshed.0, 200, "{}", refreshed.1);

    let status = transfer::status(&recipient).await.unwrap();
    assert_eq!(
        (status.prepared, status.completed, status.failed),
        (300, 300, 0)
    );
    let described = transfer::describe(&status, status.first_completed_at.unwrap());
    assert!(described.contains("left: 0"), "{described}");
    assert!(described.contains("at most 60 left"), "{described}");
    for user in ["@", "001"] {
        assert!(
            !described.contains(user),
            "no email or sub printed: {described}"
        );
    }
}

async fn an_interrupted_prepare_resumes_without_asking_twice(h: Harness) {
    sign_up_everyone(&h).await;
    let sender = with_key_of(&h, SENDER);
    // Apple rate-limits twice on the way: retried with backoff, not a failure.
    h.apple.set_fault(
        Endpoint::UserMigrationInfo,
        Fault {
            status: Some(429),
            count: Some(2),
            ..Default::default()
        },
    );
    // Stopped in the middle, as by kill -9: the run is dropped wherever it is.
    let options = fast();
    let run = transfer::prepare(&sender, RECIPIENT, &options);
    let hundred_done = async {
        while count(&h, "SELECT COUNT(*) FROM user_transfers").await < 100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        finished = run => panic!("the run finished before it was stopped: {finished:?}"),
        () = hundred_done => {}
    }
    let before = count(&h, "SELECT COUNT(*) FROM user_transfers").await;
    assert!(before < USERS as i64, "stopped in the middle ({before})");
    let resumed = transfer::prepare(&sender, RECIPIENT, &fast())
        .await
        .unwrap();
    assert_eq!(resumed.done as i64, USERS as i64 - before);
    assert_eq!(
        count(
            &h,
            "SELECT COUNT(*) FROM user_transfers WHERE attempts = 1 AND transfer_sub IS NOT NULL"
        )
        .await,
        USERS as i64,
        "every user prepared once"
    );
    // At most the one call in flight when the run was stopped is asked again, plus the two
    // rate-limited ones.
    assert!(h.count(Endpoint::UserMigrationInfo) <= USERS as u64 + 3);
}

async fn apples_refusals_stop_the_run_or_are_recorded_per_user(h: Harness) {
    h.apple.assign_client_team(APP, SENDER).unwrap();
    let (status, _) = h
        .sign_in(
            IdentityTokenRequest {
                sub: Some("001.known.to.us".into()),
                ..Default::default()
            },
            None,
        )
        .await;
    assert_eq!(status, 200);
    // A user Apple does not know under this team (never in its directory): refused for that
    // user alone, recorded, and the run goes on.
    let sender = with_key_of(&h, SENDER);
    let run = transfer::prepare(&sender, RECIPIENT, &fast())
        .await
        .unwrap();
    assert_eq!((run.done, run.failed), (0, 1));
    assert_eq!(
        h.query("SELECT failure FROM user_transfers").await,
        ["invalid_request"]
    );
    // The recipient's key before the move: the team's credentials are refused, the run stops.
    let recipient = with_key_of(&h, RECIPIENT);
    let refused = transfer::prepare(&recipient, "TEAMCCCCCC", &fast()).await;
    assert!(
        matches!(refused, Err(TransferError::Credentials(_))),
        "{refused:?}"
    );
    // Its own team as the target.
    let own = transfer::prepare(&sender, SENDER, &fast()).await;
    assert!(matches!(own, Err(TransferError::Setup(_))), "{own:?}");
    // Apple down for good: the run stops, to be resumed.
    let user = h.apple.add_user(NewUser::default()).unwrap();
    let (status, _) = h
        .sign_in(
            IdentityTokenRequest {
                sub: Some(user.sub.clone()),
                ..Default::default()
            },
            None,
        )
        .await;
    assert_eq!(status, 200);
    h.apple.set_fault(
        Endpoint::UserMigrationInfo,
        Fault {
            status: Some(503),
            ..Default::default()
        },
    );
    let down = transfer::prepare(&sender, RECIPIENT, &fast()).await;
    assert!(
        matches!(down, Err(TransferError::Unavailable(_))),
        "{down:?}"
    );
    h.apple.clear_faults(Some(Endpoint::UserMigrationInfo));
    // After the 60 days the recipient's exchange is refused: the run stops and says why.
    let prepared = transfer::prepare(&sender, RECIPIENT, &fast())
        .await
        .unwrap();
    assert_eq!(prepared.done, 1);
    h.apple.transfer_client(APP, RECIPIENT).unwrap();
    let later = h.apple.advance_clock(61 * 86_400);
    // Client secrets signed at the fake Apple's time, 61 days on.
    let options = TransferOptions {
        clock: std::sync::Arc::new(siwa_core::FixedClock::new(later)),
        ..fast()
    };
    let late = transfer::complete(&recipient, &options).await;
    assert!(
        matches!(late, Err(TransferError::PeriodOver(_))),
        "{late:?}"
    );
}

/// The binary, killed with SIGKILL in the middle of `prepare`, then run again: every user is
/// prepared once, none lost, none asked twice (but the one in flight).
async fn a_prepare_killed_mid_run_resumes_without_asking_twice(h: Harness) {
    sign_up_everyone(&h).await;
    let key = h.apple.generate_developer_key(Some(SENDER), None).unwrap();
    let prepare = || {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_siwa-server"));
        command
            .args([
                "transfer",
                "prepare",
                "--to-team",
                RECIPIENT,
                "--per-second",
                "300",
            ])
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SIWA_DATABASE_URL", &h.database_url)
            .env("SIWA_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)
            .env("SIWA_APPLE_CLIENT_IDS", APP)
            .env("SIWA_APPLE_BASE_URL", h.apple.base_url())
            .env("SIWA_APPLE_TEAM_ID", SENDER)
            .env("SIWA_APPLE_KEY_ID", &key.key_id)
            .env("SIWA_APPLE_PRIVATE_KEY", &key.private_key_pem)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let mut child = prepare().spawn().unwrap();
    while count(&h, "SELECT COUNT(*) FROM user_transfers").await < 60 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it finished before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let before = count(&h, "SELECT COUNT(*) FROM user_transfers").await;
    assert!(before < USERS as i64, "killed in the middle ({before})");

    let output = prepare().output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("prepared {} users", USERS as i64 - before)),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for secret in ["001", "@", "eyJ", "BEGIN"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the output names no identifier: {stdout} {stderr}"
        );
    }
    assert_eq!(
        count(
            &h,
            "SELECT COUNT(*) FROM user_transfers WHERE attempts = 1 AND transfer_sub IS NOT NULL"
        )
        .await,
        USERS as i64,
        "every user prepared once"
    );
    assert!(h.count(Endpoint::UserMigrationInfo) <= USERS as u64 + 1);
}
