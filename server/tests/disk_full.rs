//! SQLite on a disk that fills and empties again (issue: a connection left inside a failed
//! transaction made the server answer 200 for sign-ins it never saved, until restart). On a
//! small tmpfs, so it needs root (as CI runs); elsewhere it says it was skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use mock_apple::MockApple;
use siwa_core::DeveloperKey;
use sqlx::Connection;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("siwa-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .ok()?
            .success();
        mounted.then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fills the file system with a file until it is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// One sign-in of a new user, on `/v1/auth/apple` (a transaction) or the seed route (the
/// group-commit writer). Returns the status and the user's `sub`.
async fn sign_in(
    http: &reqwest::Client,
    server: &str,
    apple: &MockApple,
    n: usize,
) -> (u16, String) {
    let sub = format!("001000.disk{n:05}.0001");
    let (route, body) = new_user_sign_in(apple, &sub, n);
    let status = match http
        .post(format!("{server}{route}"))
        .json(&body)
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    (status, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_and_empties_again_loses_no_answered_sign_in() {
    let Some(disk) = Tmpfs::mount("2m") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let database_url = format!("sqlite://{}/siwa.db?mode=rwc", disk.0.display());
    if std::env::var("SIWA_TEST_LOG").is_ok() {
        siwa_server::init_logging(false);
    }
    let apple = MockApple::start().await.unwrap();
    let generated = apple.generate_developer_key(None, None).unwrap();
    let key = || {
        DeveloperKey::from_p8_pem(
            &generated.team_id,
            &generated.key_id,
            &generated.private_key_pem,
        )
        .unwrap()
    };
    let server = siwa_server::start(config_for(&apple, key(), &database_url))
        .await
        .unwrap();
    let url = server.base_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut answered = Vec::new();
    let mut n = 0;
    let mut round = |count: usize| {
        let range = n..n + count;
        n += count;
        range
    };
    for i in round(10) {
        let (status, sub) = sign_in(&http, &url, &apple, i).await;
        assert_eq!(status, 200, "before the disk fills");
        answered.push(sub);
    }

    // The disk fills: sign-ins may fail (503), but one answered 200 must be saved.
    fill(&disk.0.join("filler"));
    let mut refused = 0;
    for i in round(30) {
        let (status, sub) = sign_in(&http, &url, &apple, i).await;
        match status {
            200 => answered.push(sub),
            503 => refused += 1,
            other => panic!("a full disk answered {other}"),
        }
    }
    assert!(refused > 0, "nothing was refused: the disk never filled");

    // Space comes back: the server recovers without a restart, once its watch of the database
    // has seen a write go through (until then it refuses at once: `store::health`).
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let emptied = std::time::Instant::now();
    while http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            emptied.elapsed() < siwa_server::testing::READINESS_INTERVAL * 4,
            "not ready again after the disk emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut recovered = 0;
    for i in round(30) {
        let (status, sub) = sign_in(&http, &url, &apple, i).await;
        if status == 200 {
            answered.push(sub);
            recovered += 1;
        }
    }
    assert!(
        recovered >= 25,
        "only {recovered} of 30 sign-ins succeeded after the disk emptied"
    );
    server.shutdown().await;

    // After a restart, every sign-in that was answered 200 is there.
    let restarted = siwa_server::start(config_for(&apple, key(), &database_url))
        .await
        .unwrap();
    restarted.shutdown().await;
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&database_url).await.unwrap();
    let saved: Vec<(String,)> = sqlx::query_as("SELECT apple_sub FROM users")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let saved: std::collections::HashSet<String> = saved.into_iter().map(|(s,)| s).collect();
    let lost: Vec<&String> = answered.iter().filter(|s| !saved.contains(*s)).collect();
    assert!(
        lost.is_empty(),
        "{} answered sign-ins were lost: {lost:?}",
        lost.len()
    );
}
