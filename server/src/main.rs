//! `siwa-server`: serve the backend (`siwa-server` or `siwa-server serve`), try it out with a
//! fake Apple (`siwa-server dev`), or find what is wrong with a set-up or a token
//! (`siwa-server doctor`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// A sign-in allocates many small, short-lived buffers on every worker thread; glibc's malloc
// spent about an eighth of the server's CPU on them under load (bench/profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "dev")]
use siwa_server::dev;
use siwa_server::{Config, init_logging};

#[derive(Debug, Parser)]
#[command(version, about = "The Sign in with Apple backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve, configured from the environment and `.env` (the default).
    Serve,
    /// Check the set-up `serve` would run with (configuration, the developer key and Apple's
    /// verdict on it, Apple's keys, the database, webhooks): exit 0 when every check passes,
    /// 1 otherwise. `doctor token` explains an identity token.
    Doctor {
        /// One JSON document instead of lines.
        #[arg(long, global = true)]
        json: bool,
        /// Read the variables from this file (as `siwa-server dev` writes them) before the
        /// environment; without it, `.env` is loaded as `serve` does.
        #[arg(long, global = true)]
        env_file: Option<std::path::PathBuf>,
        #[command(subcommand)]
        what: Option<DoctorCommand>,
    },
    /// Move the app's users to another Apple team (docs/transfer.md): `prepare` with the
    /// sending team's key before the move, `complete` with the recipient's after it, `status`
    /// at any time. Configured from the environment and `.env`, as `serve` is.
    Transfer {
        #[command(subcommand)]
        step: TransferCommand,
        /// The transferred app's client id (default: the first of SIWA_APPLE_CLIENT_IDS).
        #[arg(long, global = true)]
        client_id: Option<String>,
        /// Count what the step would do; call Apple for nothing and write nothing.
        #[arg(long, global = true)]
        dry_run: bool,
        /// Calls to Apple per second at most.
        #[arg(long, global = true, default_value_t = 5.0)]
        per_second: f64,
    },
    /// Print the API's OpenAPI document (what `GET /openapi.json` answers), from which the
    /// TypeScript client's types are generated (`scripts/generate-bindings.sh`).
    Openapi,
    /// Serve against an in-process mock of Apple, with an SQLite file: a full sign-in with no
    /// Apple account.
    #[cfg(feature = "dev")]
    Dev {
        #[arg(long, default_value_t = siwa_server::DEFAULT_PORT)]
        port: u16,
        #[arg(long, default_value_t = 4000)]
        mock_port: u16,
        #[arg(long, default_value = "sqlite://siwa-dev.db?mode=rwc")]
        database_url: String,
        /// Send the webhooks to this URL; without it, each event is printed (type and user id).
        #[arg(long)]
        webhook_url: Option<url::Url>,
        /// The webhook secret (`whsec_...`); a fresh one, printed, when not given.
        #[arg(long, requires = "webhook_url")]
        webhook_secret: Option<String>,
        /// Where the sandbox's variables are written, for `siwa-server doctor --env-file`.
        #[arg(long, default_value = "siwa-dev.env")]
        env_file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TransferCommand {
    /// Before the move, with the sending team's key: keep every user's transfer identifier.
    Prepare {
        /// The recipient's Team ID.
        #[arg(long)]
        to_team: String,
    },
    /// After the move, with the recipient team's key: relink every prepared account.
    Complete,
    /// How many users are prepared, completed, failed and left.
    Status,
}

#[derive(Debug, Subcommand)]
enum DoctorCommand {
    /// Decode an identity token without trusting it, say what each claim means, and verify it
    /// with this server's configuration and Apple's keys. The token itself is never printed.
    Token {
        /// The token; read from standard input when absent (keeps it out of shell history).
        token: Option<String>,
        /// The raw nonce the app sent with it, to check the token's hashed nonce against.
        #[arg(long)]
        nonce: Option<String>,
        /// Print the email claim (hidden otherwise).
        #[arg(long)]
        show_email: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // First: jsonwebtoken's provider is fixed by its first use.
    siwa_server::install_jwt_signer();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Transfer {
            step,
            client_id,
            dry_run,
            per_second,
        } => {
            let options = siwa_server::transfer::TransferOptions {
                client_id,
                dry_run,
                per_second,
                ..Default::default()
            };
            transfer(step, &options).await
        }
        Command::Openapi => {
            println!("{}", siwa_server::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Doctor {
            json,
            env_file,
            what,
        } => doctor(json, env_file, what).await,
        #[cfg(feature = "dev")]
        Command::Dev {
            port,
            mock_port,
            database_url,
            webhook_url,
            webhook_secret,
            env_file,
        } => {
            let webhooks = match dev_webhooks(webhook_url, webhook_secret) {
                Ok(webhooks) => webhooks,
                Err(error) => {
                    eprintln!("siwa-server dev: --webhook-secret: {error}");
                    return ExitCode::from(2);
                }
            };
            run_dev(port, mock_port, database_url, webhooks, env_file).await
        }
    }
}

async fn transfer(
    step: TransferCommand,
    options: &siwa_server::transfer::TransferOptions,
) -> ExitCode {
    use siwa_server::transfer;
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("siwa-server transfer: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    let dry = if options.dry_run {
        " (dry run: nothing asked, nothing written)"
    } else {
        ""
    };
    let outcome = match step {
        TransferCommand::Prepare { to_team } => transfer::prepare(&config, &to_team, options)
            .await
            .map(|s| format!("prepared {} users, {} refused by Apple (run again to retry them), {} to ask{dry}", s.done, s.failed, s.would)),
        TransferCommand::Complete => transfer::complete(&config, options).await.map(|s| {
            format!("relinked {} accounts, {} already relinked by a sign-in, {} refused (run again to retry them), {} to ask{dry}", s.done, s.already, s.failed, s.would)
        }),
        TransferCommand::Status => transfer::status(&config).await.map(|status| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            transfer::describe(&status, now)
        }),
    };
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("siwa-server transfer: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("siwa-server: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_json);
    let apple_configured = config.apple_key.is_some();
    let web_missing = config.web.missing();
    let custom_schemes: Vec<String> = config
        .web
        .custom_scheme_redirects()
        .map(String::from)
        .collect();
    let server = match siwa_server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "siwa-server could not start");
            if error.is_setup() {
                eprintln!("siwa-server: {error}");
                return ExitCode::from(2);
            }
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %server.address, apple_credentials = apple_configured, "siwa-server listening");
    match web_missing {
        None => tracing::info!("web flow on: the sign-in page is served at /"),
        Some(missing) => tracing::info!(
            missing,
            "web flow off: set SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL to sign in from browsers"
        ),
    }
    for uri in &custom_schemes {
        tracing::warn!(
            app_redirect_uri = %uri,
            "SIWA_APP_REDIRECT_URIS lists a custom scheme, which any app on the device can claim \
             (RFC 8252, 8.1): prefer a claimed https link (Android App Links, universal links) \
             or, for desktop apps, a loopback redirect such as http://127.0.0.1/callback (any port)"
        );
    }
    if !apple_configured {
        tracing::warn!(
            "no Apple credentials: authorization codes are not exchanged and deleted accounts cannot be revoked at Apple"
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

async fn doctor(
    json: bool,
    env_file: Option<std::path::PathBuf>,
    what: Option<DoctorCommand>,
) -> ExitCode {
    use siwa_server::doctor;
    let file: std::collections::HashMap<String, String> = match &env_file {
        None => {
            let _ = dotenvy::dotenv();
            Default::default()
        }
        Some(path) => match dotenvy::from_path_iter(path).and_then(Iterator::collect) {
            Ok(variables) => variables,
            Err(error) => {
                eprintln!("siwa-server doctor: --env-file {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let lookup = |name: &str| file.get(name).cloned().or_else(|| std::env::var(name).ok());
    let (passed, text, document) = match what {
        None => {
            let report = doctor::check_setup(lookup).await;
            let document = serde_json::to_string_pretty(&report);
            (report.passed(), report.to_text(), document)
        }
        Some(DoctorCommand::Token {
            token,
            nonce,
            show_email,
        }) => {
            let token = match token {
                Some(token) => token,
                None => {
                    let mut read = String::new();
                    if let Err(error) =
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut read)
                    {
                        eprintln!("siwa-server doctor token: standard input: {error}");
                        return ExitCode::from(2);
                    }
                    read
                }
            };
            let options = doctor::TokenOptions {
                raw_nonce: nonce,
                show_email,
            };
            let report = doctor::explain_token(lookup, &token, &options).await;
            let document = serde_json::to_string_pretty(&report);
            (report.passed(), report.to_text(), document)
        }
    };
    if json {
        match document {
            Ok(document) => println!("{document}"),
            Err(error) => {
                eprintln!("siwa-server doctor: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{text}");
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `dev`'s webhooks: to `--webhook-url`, signed with `--webhook-secret` or a fresh secret
/// (printed, for the receiver), or printed.
#[cfg(feature = "dev")]
fn dev_webhooks(
    url: Option<url::Url>,
    secret: Option<String>,
) -> Result<siwa_server::WebhookTarget, String> {
    use siwa_server::{WebhookTarget, parse_webhook_secrets as parse_secrets};
    let Some(url) = url else {
        return Ok(WebhookTarget::Print);
    };
    let secret = secret.unwrap_or_else(|| {
        let secret = format!("whsec_{}", siwa_server::new_token_base64());
        println!("Webhooks to {url}, signed with {secret}");
        secret
    });
    Ok(WebhookTarget::Url {
        url,
        secrets: parse_secrets(&secret)?,
    })
}

#[cfg(feature = "dev")]
async fn run_dev(
    port: u16,
    mock_port: u16,
    database_url: String,
    webhooks: siwa_server::WebhookTarget,
    env_file: std::path::PathBuf,
) -> ExitCode {
    init_logging(false);
    let sandbox = match dev::start(dev::DevOptions {
        port,
        mock_port,
        database_url,
        webhooks,
        env_file: Some(env_file.clone()),
    })
    .await
    {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("siwa-server dev: {error}");
            return ExitCode::FAILURE;
        }
    };
    let server = sandbox.server.base_url();
    let apple = sandbox.apple.base_url().to_owned();
    println!();
    println!("siwa-server dev: the server at {server}, a fake Apple at {apple}");
    println!();
    match dev::demo_sign_in(&sandbox).await {
        Ok(answer) => {
            println!(
                "A sign-in, as an app makes it (identity token, code and nonce from the fake Apple):"
            );
            println!(
                "  POST {server}/v1/auth/apple -> user {} (new: {}), access token {}…",
                answer["user"]["id"].as_str().unwrap_or("?"),
                answer["isNewUser"],
                answer["session"]["accessToken"]
                    .as_str()
                    .map(|t| &t[..24.min(t.len())])
                    .unwrap_or("?")
            );
        }
        Err(error) => println!("The demonstration sign-in failed: {error}"),
    }
    let metrics_token = sandbox
        .server
        .state
        .config
        .metrics_token
        .clone()
        .unwrap_or_default();
    // One write for the whole guide: the webhook events the demonstration made are printed by
    // another task, and must not land between the lines to paste (stdout is locked per write).
    // Each line works when pasted into a shell, in order: the variables it sets are used by
    // the next ones (server/tests/binary.rs runs them).
    let guide = [
        String::new(),
        "Try it yourself (paste the lines in order):".to_owned(),
        format!(
            "  TOKEN=$(curl -s -X POST {apple}/mock/identity-token | sed 's/.*\"identityToken\":\"\\([^\"]*\\)\".*/\\1/')"
        ),
        format!(
            "  ACCESS=$(curl -s {server}/v1/auth/apple -H 'content-type: application/json' -d \"{{\\\"identityToken\\\":\\\"$TOKEN\\\"}}\" | sed 's/.*\"accessToken\":\"\\([^\"]*\\)\".*/\\1/')"
        ),
        format!("  curl -s {server}/v1/me -H \"authorization: Bearer $ACCESS\""),
        format!("  curl -s -X DELETE {server}/v1/me -H \"authorization: Bearer $ACCESS\""),
        format!(
            "The seed's route: curl -s {server}/auth/apple -H 'content-type: application/json' -d \"{{\\\"identityToken\\\":\\\"$TOKEN\\\"}}\""
        ),
        format!(
            "Sign in on the web: open {server}/ in a browser (the fake Apple's consent page stands in for Apple's)."
        ),
        format!(
            "Check this set-up: siwa-server doctor --env-file {0}   a token: siwa-server doctor --env-file {0} token \"$TOKEN\"",
            env_file.display()
        ),
        format!(
            "API: {server}/openapi.json   metrics: curl -s {server}/metrics -H 'authorization: Bearer {metrics_token}'   Ctrl-C stops."
        ),
    ];
    println!("{}", guide.join("\n"));
    shutdown_signal().await;
    sandbox.server.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
