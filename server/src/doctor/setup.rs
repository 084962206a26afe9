//! The set-up checks, in order: configuration, the developer key and Apple's verdict on it,
//! Apple's keys, the database, webhooks.

use std::time::Duration;

use sqlx::Connection;

use siwa_core::apple_side::JwkSet;
use siwa_core::{
    AppleApiError, AppleClient, Clock, DeveloperKey, Endpoints, OAuthErrorCode, SystemClock,
};

use super::Report;
use crate::config::Config;
use crate::db::{self, DatabaseKind};
use crate::sealing::{Purpose, Sealer};

/// How long any one call to Apple, the database or the webhook receiver may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The made-up authorization code of Apple's verdict: never a real one, so Apple answers
/// `invalid_grant` once it has accepted the client (TN3107).
const PROBE_CODE: &str = "siwa-doctor-probe.0.made-up-code";

/// Runs every set-up check against the configuration `lookup` reads (the environment and `.env`
/// for the command line).
pub async fn check_setup(lookup: impl Fn(&str) -> Option<String>) -> Report {
    let mut report = Report::default();
    let config = match Config::from_lookup(&lookup) {
        Ok(config) => config,
        Err(error) => {
            report.fail(
                "configuration",
                "configuration",
                format!("{}: {}", error.variable, error.reason),
                format!(
                    "set {} correctly; `serve` refuses to start until it is",
                    error.variable
                ),
            );
            return report;
        }
    };
    report.ok(
        "configuration",
        "configuration",
        format!(
            "every variable parses (database {}, web flow {}, webhooks {})",
            DatabaseKind::of(&config.database_url).name(),
            if config.web.missing().is_none() {
                "on"
            } else {
                "off"
            },
            if config.webhooks.is_some() {
                "on"
            } else {
                "off"
            },
        ),
    );
    client_ids(&config, &mut report);
    web_flow(&config, &mut report);
    redirect_uris(&config, &mut report);
    developer_key(&config, &lookup, &mut report).await;
    apple_keys(&config, &mut report).await;
    database(&config, &mut report).await;
    webhooks(&config, &mut report).await;
    report
}

/// A bundle ID or Services ID: reverse-DNS labels of letters, digits and hyphens.
fn looks_like_client_id(id: &str) -> bool {
    let labels: Vec<&str> = id.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn client_ids(config: &Config, report: &mut Report) {
    let mut problems = Vec::new();
    for id in &config.client_ids {
        let first = id.split('.').next().unwrap_or_default();
        if siwa_core::apple_side::is_apple_id(first) && id.split('.').count() > 2 {
            problems.push(format!(
                "{id} starts with a Team ID: tokens carry the bundle ID alone ({})",
                &id[first.len() + 1..]
            ));
        } else if !looks_like_client_id(id) {
            problems.push(format!(
                "{id} is not a bundle ID or Services ID (such as com.example.app)"
            ));
        }
    }
    if problems.is_empty() {
        report.ok(
            "client_ids",
            "client ids",
            format!(
                "{} accepted as token audiences",
                config.client_ids.join(", ")
            ),
        );
    } else {
        report.warn(
            "client_ids",
            "client ids",
            problems.join("; "),
            "list in SIWA_APPLE_CLIENT_IDS the app's bundle IDs and the web flow's Services ID exactly as Apple shows them",
        );
    }
}

fn web_flow(config: &Config, report: &mut Report) {
    let web = &config.web;
    let (Some(services_id), Some(public_url)) = (&web.services_id, &web.public_url) else {
        match web.missing() {
            Some("SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL") | None => report.ok(
                "web_flow",
                "web flow",
                "off (SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL unset): only apps sign in",
            ),
            Some(missing) => report.fail(
                "web_flow",
                "web flow",
                format!("half set: {missing} is missing, so the web flow is off"),
                format!("set {missing} too, or unset the other to keep the web flow off"),
            ),
        }
        return;
    };
    let callback = format!(
        "{}/v1/web/callback",
        public_url.as_str().trim_end_matches('/')
    );
    let domain = public_url.host_str().unwrap_or_default();
    let loopback = matches!(domain, "127.0.0.1" | "localhost" | "[::1]");
    // What to register is always the https address: Apple takes no other.
    let https_callback = match callback.strip_prefix("http://") {
        Some(rest) if !loopback => format!("https://{rest}"),
        _ => callback.clone(),
    };
    let register = format!(
        "under the Services ID {services_id}, register the domain {domain} and the return URL {https_callback}"
    );
    if public_url.scheme() != "https" && !loopback {
        report.fail(
            "web_flow",
            "web flow",
            format!("SIWA_PUBLIC_URL is {public_url}: Apple returns only to https URLs"),
            format!("serve the server over https and set SIWA_PUBLIC_URL to that address; then, at Apple, {register}"),
        );
    } else if public_url.scheme() != "https" {
        report.warn(
            "web_flow",
            "web flow",
            format!("on, at {callback}: plain http works with mock-apple only"),
            format!("for Apple: an https public URL, and {register}"),
        );
    } else {
        report.ok("web_flow", "web flow", format!("on; at Apple, {register}"));
    }
    if !config.client_ids.iter().any(|id| id == services_id) {
        report.warn(
            "web_flow",
            "web flow's Services ID",
            format!(
                "{services_id} is not in SIWA_APPLE_CLIENT_IDS: web sign-ins work, but /v1/auth/apple refuses its tokens (an Android app that signs in through the web, say)"
            ),
            format!("add {services_id} to SIWA_APPLE_CLIENT_IDS"),
        );
    }
}

fn redirect_uris(config: &Config, report: &mut Report) {
    let uris = &config.web.app_redirect_uris;
    if uris.is_empty() {
        report.ok(
            "redirect_uris",
            "app redirect URIs",
            "none: the browser flow ends on the server's page, not in an app",
        );
        return;
    }
    let custom: Vec<&str> = config.web.custom_scheme_redirects().collect();
    let plain_http: Vec<&str> = uris
        .iter()
        .map(String::as_str)
        .filter(|uri| {
            url::Url::parse(uri).is_ok_and(|u| {
                u.scheme() == "http" && !matches!(u.host_str(), Some("127.0.0.1" | "[::1]"))
            })
        })
        .collect();
    if custom.is_empty() && plain_http.is_empty() {
        report.ok("redirect_uris", "app redirect URIs", uris.join(", "));
        return;
    }
    let mut problems = Vec::new();
    if !custom.is_empty() {
        problems.push(format!(
            "{} use a custom scheme, which any app on the device can claim (RFC 8252, 8.1)",
            custom.join(", ")
        ));
    }
    if !plain_http.is_empty() {
        problems.push(format!(
            "{} are plain http off the loopback address, readable on the network",
            plain_http.join(", ")
        ));
    }
    report.warn(
        "redirect_uris",
        "app redirect URIs",
        problems.join("; "),
        "prefer claimed https links (universal links, Android App Links) or, for desktop apps, http://127.0.0.1/callback (any port)",
    );
}

async fn developer_key(
    config: &Config,
    lookup: &impl Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    let Some(key) = &config.apple_key else {
        report.warn(
            "developer_key",
            "developer key",
            "none: authorization codes are not exchanged, and deleted accounts cannot be revoked at Apple, which App Store review requires (guideline 5.1.1(v))",
            "make a key with Sign in with Apple enabled (Certificates, Identifiers & Profiles > Keys) and set SIWA_APPLE_TEAM_ID, SIWA_APPLE_KEY_ID and SIWA_APPLE_PRIVATE_KEY_FILE",
        );
        report.skip(
            "apple_verdict",
            "Apple's verdict",
            "no developer key to ask about",
        );
        return;
    };
    // Apple names the download `AuthKey_<Key ID>.p8`: a file of another key is the most common
    // cause of `invalid_client` that can be seen without asking Apple.
    let file_key_id = lookup("SIWA_APPLE_PRIVATE_KEY_FILE").and_then(|path| {
        let name = std::path::Path::new(path.trim())
            .file_name()?
            .to_str()?
            .to_owned();
        let id = name.strip_prefix("AuthKey_")?.strip_suffix(".p8")?;
        Some(id.to_owned())
    });
    let now = SystemClock.now();
    match (&file_key_id, key.mint(&config.client_ids[0], now, Duration::from_secs(300))) {
        (Some(file_id), _) if file_id != key.key_id() => report.fail(
            "developer_key",
            "developer key",
            format!(
                "the key file is AuthKey_{file_id}.p8, Apple's download of key {file_id}, but SIWA_APPLE_KEY_ID is {}",
                key.key_id()
            ),
            format!("set SIWA_APPLE_KEY_ID={file_id}, or point SIWA_APPLE_PRIVATE_KEY_FILE at AuthKey_{}.p8", key.key_id()),
        ),
        (_, Err(error)) => {
            report.fail(
                "developer_key",
                "developer key",
                format!("no client secret can be made with it: {error}"),
                "download the key again from Certificates, Identifiers & Profiles > Keys (only possible once: otherwise make a new key)",
            );
            // Without a secret there is nothing to ask Apple.
            report.skip("apple_verdict", "Apple's verdict", "no client secret to ask with");
            return;
        }
        (_, Ok(_)) => report.ok(
            "developer_key",
            "developer key",
            format!(
                "a P-256 key, Key ID {} of team {}; client secrets are signed ES256",
                key.key_id(),
                key.team_id()
            ),
        ),
    }
    apple_verdict(config, key, report).await;
}

/// What Apple's token endpoint answers a made-up code, for each client id: `invalid_grant` means
/// it accepted the client id, key and team; `invalid_client` means it did not.
async fn apple_verdict(config: &Config, key: &DeveloperKey, report: &mut Report) {
    let mut client_ids = config.client_ids.clone();
    if let Some(services_id) = &config.web.services_id
        && !client_ids.contains(services_id)
    {
        client_ids.push(services_id.clone());
    }
    let apple = match AppleClient::new(Endpoints::new(config.apple_base_url.clone()), TIMEOUT) {
        Ok(apple) => apple,
        Err(error) => {
            report.fail(
                "apple_verdict",
                "Apple's verdict",
                error.to_string(),
                "install the system's CA certificates",
            );
            return;
        }
    };
    let mut verdicts = Vec::new();
    for client_id in &client_ids {
        match key.mint(client_id, SystemClock.now(), Duration::from_secs(300)) {
            Ok(secret) => verdicts.push((
                client_id,
                apple
                    .exchange_code(client_id, &secret, PROBE_CODE, None)
                    .await,
            )),
            // Not Apple's verdict: the secret for this client id could not be made here.
            Err(error) => report.fail(
                "apple_verdict",
                format!("Apple's verdict on {client_id}"),
                format!("not asked: no client secret can be made for it ({error})"),
                "check that the client id is a bundle ID or Services ID",
            ),
        }
    }
    let refused = |v: &Result<_, AppleApiError>| matches!(v, Err(AppleApiError::Rejected(e)) if e.error == OAuthErrorCode::InvalidClient);
    let all_refused = verdicts.iter().all(|(_, v)| refused(v));
    let (team, key_id) = (key.team_id(), key.key_id());
    let mut key_causes_said = false;
    for (client_id, verdict) in verdicts {
        let title = format!("Apple's verdict on {client_id}");
        match verdict {
            Err(AppleApiError::Rejected(e)) if e.error == OAuthErrorCode::InvalidGrant => report.ok(
                "apple_verdict",
                title,
                format!("accepted with key {key_id} of team {team} (a made-up code got invalid_grant, as it must)"),
            ),
            Err(AppleApiError::Rejected(e)) if e.error == OAuthErrorCode::InvalidClient && all_refused => report.fail(
                "apple_verdict",
                title,
                format!("invalid_client: Apple refuses key {key_id} of team {team} for every client id"),
                if std::mem::replace(&mut key_causes_said, true) {
                    "the same causes as above: the key or the team, not this client id".to_owned()
                } else {
                    format!(
                        "the usual causes (TN3107): SIWA_APPLE_TEAM_ID ({team}) is not the team that owns the key; SIWA_APPLE_KEY_ID ({key_id}) is not the key of this .p8; the key was revoked, or Sign in with Apple is not enabled on it. Compare both ids with Certificates, Identifiers & Profiles > Keys and the Membership page"
                    )
                },
            ),
            Err(AppleApiError::Rejected(e)) if e.error == OAuthErrorCode::InvalidClient => report.fail(
                "apple_verdict",
                title,
                format!("invalid_client: Apple accepts key {key_id} for other client ids, but not for {client_id}"),
                format!(
                    "{client_id} is not an identifier of team {team} with Sign in with Apple enabled, or (a Services ID) it is not grouped with the key's primary App ID: in Certificates, Identifiers & Profiles, enable Sign in with Apple on {client_id} and choose that App ID as its primary"
                ),
            ),
            Err(AppleApiError::Rejected(e)) => report.fail(
                "apple_verdict",
                title,
                format!("Apple answered {}{}", e.error.as_str(), e.error_description.map(|d| format!(" ({d})")).unwrap_or_default()),
                "a made-up code should get invalid_grant once the client is accepted: see TN3107 for this answer",
            ),
            Err(AppleApiError::Unavailable(reason)) => report.fail(
                "apple_verdict",
                title,
                format!("Apple could not be reached at {}: {reason}", config.apple_base_url),
                "check the network path to Apple (proxy, firewall, DNS) and SIWA_APPLE_BASE_URL",
            ),
            Err(AppleApiError::UnexpectedResponse(status)) => report.fail(
                "apple_verdict",
                title,
                format!("{} answered HTTP {status}, not Apple's token endpoint's format", config.apple_base_url),
                "SIWA_APPLE_BASE_URL must be https://appleid.apple.com (or a mock-apple)",
            ),
            Ok(_) => report.fail(
                "apple_verdict",
                title,
                "the token endpoint accepted a made-up authorization code",
                "SIWA_APPLE_BASE_URL does not point at Apple (nor at a faithful mock)",
            ),
        }
    }
}

async fn apple_keys(config: &Config, report: &mut Report) {
    let url = Endpoints::new(config.apple_base_url.clone()).keys();
    let fetched = async {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("siwa-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| siwa_core::transport_reason(&e).to_owned())?;
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| siwa_core::transport_reason(&e).to_owned())?;
        if !response.status().is_success() {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        response
            .json::<JwkSet>()
            .await
            .map_err(|_| "the answer is not a JSON Web Key Set".to_owned())
    };
    let jwks = match fetched.await {
        Ok(jwks) => jwks,
        Err(reason) => {
            report.fail(
                "apple_keys",
                "Apple's keys",
                format!("{url} could not be fetched: {reason}"),
                "no token can be verified without them: check the network path to Apple and SIWA_APPLE_BASE_URL",
            );
            return;
        }
    };
    let usable: Vec<String> = jwks
        .keys
        .iter()
        .filter(|k| k.is_usable())
        .map(|k| {
            format!(
                "{} (RSA {} bits)",
                k.kid.as_deref().unwrap_or("?"),
                k.rsa_bits().unwrap_or(0)
            )
        })
        .collect();
    let ignored = jwks.keys.len() - usable.len();
    match (usable.is_empty(), ignored) {
        (true, _) => report.fail(
            "apple_keys",
            "Apple's keys",
            format!(
                "{url} lists {} key(s), none an RS256 key of 2048 bits or more",
                jwks.keys.len()
            ),
            "SIWA_APPLE_BASE_URL must be https://appleid.apple.com (or a mock-apple)",
        ),
        (false, 0) => report.ok("apple_keys", "Apple's keys", usable.join(", ")),
        (false, n) => report.warn(
            "apple_keys",
            "Apple's keys",
            format!(
                "{}; {n} other key(s) ignored (not RS256, or weaker than 2048 bits)",
                usable.join(", ")
            ),
            "nothing to do unless tokens name the ignored keys",
        ),
    }
}

async fn database(config: &Config, report: &mut Report) {
    let url = &config.database_url;
    let kind = DatabaseKind::of(url);
    let file = db::sqlite_file(url);
    if let Some(file) = &file
        && !file.exists()
    {
        report.ok(
            "database",
            "database",
            format!(
                "no database yet at {}: `serve` creates it, readable by its owner only",
                file.display()
            ),
        );
        report.skip("migrations", "migrations", "no database yet");
        encryption_key(config, None, report).await;
        return;
    }
    sqlx::any::install_default_drivers();
    let connected = tokio::time::timeout(TIMEOUT, sqlx::AnyConnection::connect(url)).await;
    let mut connection = match connected {
        Ok(Ok(connection)) => connection,
        failed => {
            let reason = match failed {
                Ok(Err(error)) => database_reason(&error),
                _ => format!("no answer within {} s", TIMEOUT.as_secs()),
            };
            report.fail(
                "database",
                "database",
                format!("{} is unreachable: {reason}", kind.name()),
                "check SIWA_DATABASE_URL (host, port, user, password, database) and that the server runs",
            );
            report.skip("migrations", "migrations", "no database");
            report.skip("encryption_key", "encryption key", "no database");
            return;
        }
    };
    report.ok(
        "database",
        "database",
        match &file {
            Some(file) => format!("sqlite at {}", file.display()),
            None => format!("{} reachable", kind.name()),
        },
    );
    match db::migration_status(&mut connection).await {
        Ok((_, newer)) if newer > 0 => report.fail(
            "migrations",
            "migrations",
            format!("the database has {newer} migration(s) this binary does not know: a newer siwa-server migrated it"),
            "run that newer siwa-server (a database is never migrated back)",
        ),
        Ok((pending, _)) if pending.is_empty() => report.ok("migrations", "migrations", "all applied"),
        Ok((pending, _)) => report.warn(
            "migrations",
            "migrations",
            format!("{} not applied yet: {}", pending.len(), pending.join(", ")),
            "`serve` applies them when it starts",
        ),
        Err(error) => report.fail(
            "migrations",
            "migrations",
            format!("could not be read: {}", database_reason(&error)),
            "the database user must be able to read _sqlx_migrations",
        ),
    }
    encryption_key(config, Some(&mut connection), report).await;
    if let Some(file) = &file {
        file_permissions(file, report);
    }
}

/// Whether the configured key (or SQLite's key file) opens the newest sealed value.
async fn encryption_key(
    config: &Config,
    connection: Option<&mut sqlx::AnyConnection>,
    report: &mut Report,
) {
    let title = "encryption key";
    let (sealer, source) = match &config.encryption_key {
        Some(sealer) => (sealer.clone(), "SIWA_ENCRYPTION_KEY".to_owned()),
        None => {
            let Some(key_file) = db::sqlite_key_file(&config.database_url) else {
                report.ok(
                    "encryption_key",
                    title,
                    "an in-memory database: a fresh key each start",
                );
                return;
            };
            if !key_file.exists() {
                report.ok(
                    "encryption_key",
                    title,
                    format!(
                        "no key file yet at {}: `serve` makes one (back it up with the database)",
                        key_file.display()
                    ),
                );
                return;
            }
            let read = std::fs::read_to_string(&key_file)
                .map_err(|e| e.to_string())
                .and_then(|k| Sealer::from_keys(k.trim()).map_err(|e| e.to_string()));
            match read {
                Ok(sealer) => (sealer, format!("the key file {}", key_file.display())),
                Err(reason) => {
                    report.fail(
                        "encryption_key",
                        title,
                        format!("the key file {} cannot be used: {reason}", key_file.display()),
                        "restore the key file from the database's backup, or set SIWA_ENCRYPTION_KEY",
                    );
                    return;
                }
            }
        }
    };
    let Some(connection) = connection else {
        report.ok(
            "encryption_key",
            title,
            format!("{source} parses; nothing is sealed yet"),
        );
        return;
    };
    let newest: Result<Option<(String,)>, _> =
        sqlx::query_as("SELECT private_key_pem FROM server_keys ORDER BY created_at DESC LIMIT 1")
            .fetch_optional(&mut *connection)
            .await;
    match newest {
        Ok(Some((sealed,))) if !Sealer::is_sealed(&sealed) => report.ok(
            "encryption_key",
            title,
            format!("{source} parses; the stored signing key is not sealed yet (`serve` seals it at start)"),
        ),
        Ok(Some((sealed,))) => match sealer.open(Purpose::ServerKey, &sealed) {
            Ok(_) => report.ok("encryption_key", title, format!("{source} opens the stored signing key")),
            Err(error) => report.fail(
                "encryption_key",
                title,
                format!("{source} does not open the stored signing key: {error}"),
                "SIWA_ENCRYPTION_KEY must list the key the database was sealed with (a new key first, the old one after it, while rotating); every instance must share it",
            ),
        },
        Ok(None) | Err(sqlx::Error::Database(_)) => {
            report.ok("encryption_key", title, format!("{source} parses; nothing is sealed yet"));
        }
        Err(error) => report.fail(
            "encryption_key",
            title,
            format!("the stored signing key could not be read: {}", database_reason(&error)),
            "check the database",
        ),
    }
}

/// SQLite's file and key file hold sealed secrets and personal data: no one else may read them.
fn file_permissions(database: &std::path::Path, report: &mut Report) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![database.to_path_buf()];
        if let Some(key_file) = db::sqlite_key_file(&format!("sqlite:{}", database.display()))
            && key_file.exists()
        {
            files.push(key_file);
        }
        let open: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let mode = std::fs::metadata(f).ok()?.permissions().mode();
                (mode & 0o007 != 0).then(|| format!("{} (mode {:o})", f.display(), mode & 0o777))
            })
            .collect();
        if open.is_empty() {
            report.ok(
                "file_permissions",
                "file permissions",
                "the database and its key file are not readable by other users",
            );
        } else {
            report.fail(
                "file_permissions",
                "file permissions",
                format!("readable by every user of the machine: {}", open.join(", ")),
                "chmod 600 them (siwa-server creates them so; a copy or an archive may not have kept it)",
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (database, report);
}

/// A database error in words, without the URL (it may hold a password).
fn database_reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_owned(),
        sqlx::Error::Tls(_) => "TLS failed".into(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        other => other.to_string(),
    }
}

async fn webhooks(config: &Config, report: &mut Report) {
    use crate::webhooks::WebhookTarget;
    let Some(webhooks) = &config.webhooks else {
        report.ok("webhooks", "webhooks", "off (SIWA_WEBHOOK_URL unset)");
        return;
    };
    let WebhookTarget::Url { url, .. } = &webhooks.target else {
        report.ok("webhooks", "webhooks", "printed, not sent");
        return;
    };
    // The address without its query, which may carry a token.
    let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
    match crate::webhooks::delivery::send_test_event(&webhooks.target, SystemClock.now()).await {
        Ok(()) => report.ok(
            "webhooks",
            "webhooks",
            format!("{shown} answered a signed siwa.test event with 2xx"),
        ),
        Err(reason) => report.fail(
            "webhooks",
            "webhooks",
            format!("{shown} did not take a signed siwa.test event: {reason}"),
            "the receiver must answer 2xx within 10 s (and verify the signature with SIWA_WEBHOOK_SECRET); events wait in the outbox meanwhile",
        ),
    }
}
