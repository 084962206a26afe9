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
    // Everything it prints, up to its last line.
    while let Some(Ok(line)) = lines.next() {
        let last = line.starts_with("API:");
        seen.push(line);
        if last || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let printed = seen.join("\n");
    let line = seen
        .iter()
        .find(|l| l.contains("POST ") && l.contains("/v1/auth/apple ->"))
        .unwrap_or_else(|| panic!("no sign-in shown:\n{printed}"));
    assert!(line.contains("(new: true)"), "{line}");
    assert!(line.contains("access token ey"), "{line}");

    // The commands it prints work when pasted, in order.
    let commands: Vec<&str> = seen
        .iter()
        .skip_while(|l| !l.starts_with("Try it yourself"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim())
        .collect();
    assert_eq!(commands.len(), 4, "{printed}");
    let pasted = Command::new("sh")
        .arg("-c")
        .arg(commands.join("\n"))
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let out = String::from_utf8_lossy(&pasted.stdout);
    assert!(
        out.contains("\"emailVerified\""),
        "GET /v1/me answered: {out}"
    );
    assert!(
        out.contains("\"deleted\":true"),
        "DELETE /v1/me answered: {out}"
    );
}

#[test]
fn a_port_already_taken_is_named_before_any_database_file_is_made() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = std::env::temp_dir().join(format!("siwa-port-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("siwa.db");
    let database = format!("sqlite://{}?mode=rwc", file.display());

    let dev = siwa_server()
        .args([
            "dev",
            "--port",
            &port,
            "--mock-port",
            "0",
            "--database-url",
            &database,
        ])
        .output()
        .unwrap();
    assert!(!dev.status.success());
    assert!(
        String::from_utf8_lossy(&dev.stderr).contains("--port"),
        "{dev:?}"
    );
    let mock = siwa_server()
        .args([
            "dev",
            "--port",
            "0",
            "--mock-port",
            &port,
            "--database-url",
            &database,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&mock.stderr).contains("--mock-port"),
        "{mock:?}"
    );

    let serve = siwa_server()
        .env("SIWA_APPLE_CLIENT_IDS", "com.example.app")
        .env("SIWA_HOST", "127.0.0.1")
        .env("PORT", &port)
        .env("SIWA_DATABASE_URL", &database)
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(
        !file.exists(),
        "a database file was made before the port was found taken"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreachable_database_is_named_with_its_cause() {
    let output = siwa_server()
        .env("SIWA_APPLE_CLIENT_IDS", "com.example.app")
        .env("PORT", "0")
        .env(
            "SIWA_DATABASE_URL",
            "postgres://siwa:secret-password@127.0.0.1:1/siwa",
        )
        .env(
            "SIWA_ENCRYPTION_KEY",
            "c2l3YS10ZXN0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("SIWA_DATABASE_URL"), "{said}");
    assert!(said.to_lowercase().contains("refused"), "the cause: {said}");
    assert!(
        !said.contains("secret-password"),
        "the URL's password was shown: {said}"
    );
}

#[test]
fn postgresql_without_an_encryption_key_refuses_to_start_naming_it() {
    let output = siwa_server()
        .env("SIWA_APPLE_CLIENT_IDS", "com.example.app")
        .env("SIWA_DATABASE_URL", "postgres://siwa@127.0.0.1:1/siwa")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SIWA_ENCRYPTION_KEY"));
}

#[test]
fn start_up_warns_for_each_custom_scheme_redirect() {
    let dir = std::env::temp_dir().join(format!("siwa-scheme-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = siwa_server()
        .env("SIWA_APPLE_CLIENT_IDS", "com.example.app")
        .env("SIWA_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env(
            "SIWA_DATABASE_URL",
            format!("sqlite://{}/siwa.db?mode=rwc", dir.display()),
        )
        .env("SIWA_APPLE_SERVICES_ID", "com.example.web")
        .env("SIWA_PUBLIC_URL", "https://auth.example.com")
        .env(
            "SIWA_APP_REDIRECT_URIS",
            "myapp://signed-in,https://app.example.com/callback,http://127.0.0.1/callback,other-app:/cb",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("shutting down") || seen.len() > 50;
        seen.push(line);
        if done || seen.iter().filter(|l| l.contains("custom scheme")).count() == 2 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let warnings: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("custom scheme"))
        .collect();
    assert_eq!(warnings.len(), 2, "{seen:#?}");
    assert!(warnings[0].contains("myapp://signed-in"), "{warnings:?}");
    assert!(warnings[1].contains("other-app:/cb"), "{warnings:?}");
    assert!(warnings[0].contains("WARN"), "{warnings:?}");
}
