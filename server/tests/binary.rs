//! The `siwa-server` binary: configuration errors, and the `dev` sandbox a newcomer runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn siwa_server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siwa-server"));
    // Run where no `.env` is, with no inherited configuration.
    command
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    let output = siwa_server().arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIWA_APPLE_CLIENT_IDS"), "{stderr}");

    let output = siwa_server()
        .env("SIWA_APPLE_CLIENT_IDS", "com.example.app")
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PORT"));
}

#[test]
fn dev_shows_a_complete_sign_in_with_no_apple_account() {
    let dir = std::env::temp_dir().join(format!("siwa-dev-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}/dev.db?mode=rwc", dir.display());
    let mut child = siwa_server()
        .args([
            "dev",
            "--port",
            "0",
            "--mock-port",
            "0",
            "--database-url",
            &database,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let outcome = loop {
        let Some(Ok(line)) = lines.next() else {
            break None;
        };
        seen.push(line.clone());
        if line.contains("POST ") && line.contains("/v1/auth/apple ->") {
            break Some(line);
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let line = outcome.unwrap_or_else(|| panic!("no sign-in shown:\n{}", seen.join("\n")));
    assert!(line.contains("(new: true)"), "{line}");
    assert!(line.contains("access token ey"), "{line}");
}
