//! Configuration from the environment (and a `.env` file, as the seed did).
//!
//! Invalid configuration stops start-up with a message naming the variable and the reason.

pub mod web;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
pub use web::WebConfig;

use siwa_core::DeveloperKey;

/// The server's configuration. `Debug` leaves out the database URL (it may hold a password).
#[derive(Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// Accepted audiences: bundle IDs and Services IDs.
    pub client_ids: Vec<String>,
    /// Apple's base URL; `/auth/keys`, `/auth/token`, `/auth/revoke` are under it.
    pub apple_base_url: String,
    pub issuers: Vec<String>,
    pub database_url: String,
    /// The developer key for client secrets; without it no code is exchanged and no token
    /// revoked.
    pub apple_key: Option<DeveloperKey>,
    /// Per client IP on the sign-in routes; `None` is off.
    pub rate_limit_per_minute: Option<u32>,
    /// How many reverse proxies (load balancers) stand in front of the server and append to
    /// `X-Forwarded-For`; 0 trusts no header and uses the connection's address.
    pub trusted_proxy_hops: usize,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long after its rotation a refresh token presented again gets the same successor
    /// instead of ending its session (`SIWA_REFRESH_REUSE_GRACE_SECS`).
    pub refresh_reuse_grace: Duration,
    pub log_json: bool,
    /// How often the revocation queue is looked at.
    pub revocation_poll_interval: Duration,
    /// The first retry delay of a failed revocation; doubled at each failure, up to 6 h.
    pub revocation_retry_base: Duration,
    /// How connections are accepted, timed out and drained (`crate::serve`).
    pub connections: crate::serve::ConnectionLimits,
    /// The keys that seal secrets at rest (`SIWA_ENCRYPTION_KEY`). On SQLite, none means a key
    /// file beside the database; on PostgreSQL it is required.
    pub encryption_key: Option<crate::sealing::Sealer>,
    /// Where `/metrics` is served instead of the public address (`SIWA_METRICS_ADDR`).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// The bearer token that opens `/metrics` on the public address (`SIWA_METRICS_TOKEN`).
    /// With neither this nor an address of their own, metrics are not served at all: they
    /// count sign-ins and deletions, which are no one else's business.
    pub metrics_token: Option<String>,
    /// The web flow (the `web` module's).
    pub web: WebConfig,
    /// Webhooks (`crate::webhooks`); none without `SIWA_WEBHOOK_URL`.
    pub webhooks: Option<crate::webhooks::WebhookConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_ids", &self.client_ids)
            .field("apple_base_url", &self.apple_base_url)
            .field("issuers", &self.issuers)
            .field(
                "database",
                &crate::db::DatabaseKind::of(&self.database_url).name(),
            )
            .field("apple_key", &self.apple_key)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("encryption_key", &self.encryption_key)
            .field("web", &self.web)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// A variable that was missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

// Every default, in one place: `serve` and `dev` both read their configuration through
// `Config::from_lookup`, so neither restates them.

/// The seed's port.
pub const DEFAULT_PORT: u16 = 3000;
/// Default database: an SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://siwa.db?mode=rwc";
/// Generous: many mobile users share one carrier IP.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 1200;
/// Fifteen minutes: what the client refreshes ahead of.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 900;
/// Thirty days without a refresh ends a session.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;
/// A lost answer or a second process sharing the session is seconds, not minutes (GoTrue's
/// reuse interval is 10 s too).
pub const DEFAULT_REFRESH_REUSE_GRACE_SECS: u64 = 10;
/// How often the revocation queue is looked at.
pub const DEFAULT_REVOCATION_POLL_SECS: u64 = 10;
/// A failed revocation's first retry delay, doubled at each failure.
pub const DEFAULT_REVOCATION_RETRY_BASE_SECS: u64 = 30;

impl Config {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration from any lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| comma_separated(get(name));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| invalid(name, format!("`{v}` is not a whole number"))),
            }
        };

        let port = number("PORT", DEFAULT_PORT.into())?;
        let port = u16::try_from(port).map_err(|_| invalid("PORT", "must be at most 65535"))?;
        let host = match get("SIWA_HOST") {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => v
                .parse()
                .map_err(|_| invalid("SIWA_HOST", format!("`{v}` is not an IP address")))?,
        };

        let client_ids = list("SIWA_APPLE_CLIENT_IDS");
        if client_ids.is_empty() {
            return Err(invalid(
                "SIWA_APPLE_CLIENT_IDS",
                "required: the comma-separated bundle IDs and Services IDs whose tokens are accepted",
            ));
        }

        let apple_base_url =
            get("SIWA_APPLE_BASE_URL").unwrap_or_else(|| siwa_core::BASE_URL.to_owned());
        if !(apple_base_url.starts_with("https://") || apple_base_url.starts_with("http://")) {
            return Err(invalid("SIWA_APPLE_BASE_URL", "must be an http(s) URL"));
        }
        let mut issuers = list("SIWA_APPLE_ISSUERS");
        if issuers.is_empty() {
            issuers.push(siwa_core::ISSUER.to_owned());
        }

        let database_url =
            get("SIWA_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(invalid(
                "SIWA_DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }

        let apple_key = developer_key(&get)?;

        let rate = number(
            "SIWA_RATE_LIMIT_PER_MINUTE",
            DEFAULT_RATE_LIMIT_PER_MINUTE.into(),
        )?;
        let rate_limit_per_minute = match u32::try_from(rate) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => return Err(invalid("SIWA_RATE_LIMIT_PER_MINUTE", "too large")),
        };

        let trusted_proxy_hops = number("SIWA_TRUSTED_PROXY_HOPS", 0)? as usize;
        let access = number("SIWA_ACCESS_TOKEN_TTL_SECS", DEFAULT_ACCESS_TOKEN_TTL_SECS)?;
        let refresh = number(
            "SIWA_REFRESH_TOKEN_TTL_SECS",
            DEFAULT_REFRESH_TOKEN_TTL_SECS,
        )?;
        if access == 0 {
            return Err(invalid("SIWA_ACCESS_TOKEN_TTL_SECS", "must be positive"));
        }
        if refresh == 0 {
            return Err(invalid("SIWA_REFRESH_TOKEN_TTL_SECS", "must be positive"));
        }
        let reuse_grace = number(
            "SIWA_REFRESH_REUSE_GRACE_SECS",
            DEFAULT_REFRESH_REUSE_GRACE_SECS,
        )?;
        if reuse_grace > 300 {
            return Err(invalid(
                "SIWA_REFRESH_REUSE_GRACE_SECS",
                "at most 300: a longer window lets a stolen token follow the real one",
            ));
        }
        let max_connections = number(
            "SIWA_MAX_CONNECTIONS",
            crate::serve::ConnectionLimits::default().max_connections as u64,
        )?;
        if max_connections == 0 {
            return Err(invalid("SIWA_MAX_CONNECTIONS", "must be positive"));
        }
        // Behind load balancers every connection has a balancer's address: no cap by default.
        let default_per_client = if trusted_proxy_hops > 0 {
            0
        } else {
            crate::serve::ConnectionLimits::default().per_client as u64
        };
        let per_client = number("SIWA_MAX_CONNECTIONS_PER_CLIENT", default_per_client)?;
        let encryption_key = match get("SIWA_ENCRYPTION_KEY") {
            Some(value) => Some(
                crate::sealing::Sealer::from_keys(&value)
                    .map_err(|e| invalid("SIWA_ENCRYPTION_KEY", e.to_string()))?,
            ),
            None if crate::db::DatabaseKind::of(&database_url)
                == crate::db::DatabaseKind::Postgres =>
            {
                return Err(invalid(
                    "SIWA_ENCRYPTION_KEY",
                    "required with PostgreSQL, where every instance must seal with the same key \
                     (make one with `openssl rand -base64 32`)",
                ));
            }
            None => None,
        };
        let metrics_address = match get("SIWA_METRICS_ADDR") {
            Some(value) => Some(value.parse().map_err(|_| {
                invalid(
                    "SIWA_METRICS_ADDR",
                    format!("`{value}` is not an address such as 127.0.0.1:9100"),
                )
            })?),
            None => None,
        };
        let metrics_token = get("SIWA_METRICS_TOKEN");
        if metrics_token.as_ref().is_some_and(|t| t.len() < 32) {
            return Err(invalid(
                "SIWA_METRICS_TOKEN",
                "at least 32 characters (make one with `openssl rand -hex 32`)",
            ));
        }
        let web = WebConfig::read(get).map_err(|(variable, reason)| invalid(variable, reason))?;
        let webhook_retry_base = number(
            "SIWA_WEBHOOK_RETRY_BASE_SECS",
            crate::webhooks::config::DEFAULT_RETRY_BASE_SECS,
        )?;
        let webhooks = crate::webhooks::WebhookConfig::read(get, webhook_retry_base)
            .map_err(|(variable, reason)| invalid(variable, reason))?;
        let poll = number("SIWA_REVOCATION_POLL_SECS", DEFAULT_REVOCATION_POLL_SECS)?;
        let retry_base = number(
            "SIWA_REVOCATION_RETRY_BASE_SECS",
            DEFAULT_REVOCATION_RETRY_BASE_SECS,
        )?;
        let log_json = match get("SIWA_LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(invalid(
                    "SIWA_LOG_FORMAT",
                    format!("`{other}` is neither text nor json"),
                ));
            }
        };

        Ok(Self {
            host,
            port,
            client_ids,
            apple_base_url,
            issuers,
            database_url,
            apple_key,
            rate_limit_per_minute,
            trusted_proxy_hops,
            access_token_ttl: Duration::from_secs(access),
            refresh_token_ttl: Duration::from_secs(refresh),
            refresh_reuse_grace: Duration::from_secs(reuse_grace),
            log_json,
            revocation_poll_interval: Duration::from_secs(poll.max(1)),
            revocation_retry_base: Duration::from_secs(retry_base),
            connections: crate::serve::ConnectionLimits {
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                per_client: usize::try_from(per_client).unwrap_or(usize::MAX),
                ..Default::default()
            },
            encryption_key,
            metrics_address,
            metrics_token,
            web,
            webhooks,
        })
    }
}

/// A comma-separated list, blanks left out; empty when the variable is unset.
pub(crate) fn comma_separated(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The developer key: Team ID, Key ID and the `.p8` (a file, or the PEM itself) all together,
/// or none of them.
fn developer_key(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<DeveloperKey>, ConfigError> {
    let team = get("SIWA_APPLE_TEAM_ID");
    let key_id = get("SIWA_APPLE_KEY_ID");
    let pem = match (
        get("SIWA_APPLE_PRIVATE_KEY_FILE"),
        get("SIWA_APPLE_PRIVATE_KEY"),
    ) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "SIWA_APPLE_PRIVATE_KEY",
                "set SIWA_APPLE_PRIVATE_KEY_FILE or SIWA_APPLE_PRIVATE_KEY, not both",
            ));
        }
        (Some(path), None) => Some(std::fs::read_to_string(&path).map_err(|e| {
            invalid(
                "SIWA_APPLE_PRIVATE_KEY_FILE",
                format!("cannot read {path}: {e}"),
            )
        })?),
        // Environments often flatten newlines: accept `\n` escapes.
        (None, Some(pem)) => Some(pem.replace("\\n", "\n")),
        (None, None) => None,
    };
    match (team, key_id, pem) {
        (None, None, None) => Ok(None),
        (Some(team), Some(key_id), Some(pem)) => DeveloperKey::from_p8_pem(&team, &key_id, &pem)
            .map(Some)
            .map_err(|e| {
                let variable = match e {
                    siwa_core::ClientSecretError::InvalidTeamId => "SIWA_APPLE_TEAM_ID",
                    siwa_core::ClientSecretError::InvalidKeyId => "SIWA_APPLE_KEY_ID",
                    _ => "SIWA_APPLE_PRIVATE_KEY_FILE",
                };
                invalid(variable, e.to_string())
            }),
        (team, key_id, _) => {
            let missing = if team.is_none() {
                "SIWA_APPLE_TEAM_ID"
            } else if key_id.is_none() {
                "SIWA_APPLE_KEY_ID"
            } else {
                "SIWA_APPLE_PRIVATE_KEY_FILE"
            };
            Err(invalid(
                missing,
                "Apple credentials need SIWA_APPLE_TEAM_ID, SIWA_APPLE_KEY_ID and SIWA_APPLE_PRIVATE_KEY_FILE (or SIWA_APPLE_PRIVATE_KEY) together",
            ))
        }
    }
}

/// A lookup over fixed variables, for the tests of everything that reads the environment.
#[cfg(test)]
pub(crate) fn lookup_in<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
    |name| {
        pairs
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(lookup_in(pairs))
    }

    #[test]
    fn defaults_follow_the_seed_and_apple() {
        let c = config(&[("SIWA_APPLE_CLIENT_IDS", "com.example.app, com.example.web")]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.client_ids, ["com.example.app", "com.example.web"]);
        assert_eq!(c.apple_base_url, "https://appleid.apple.com");
        assert_eq!(c.issuers, ["https://appleid.apple.com"]);
        assert!(c.database_url.starts_with("sqlite:"));
        assert!(c.apple_key.is_none());
        assert_eq!(c.rate_limit_per_minute, Some(DEFAULT_RATE_LIMIT_PER_MINUTE));
    }

    #[test]
    fn client_ids_are_required() {
        assert_eq!(config(&[]).unwrap_err().variable, "SIWA_APPLE_CLIENT_IDS");
        assert_eq!(
            config(&[("SIWA_APPLE_CLIENT_IDS", " , ")])
                .unwrap_err()
                .variable,
            "SIWA_APPLE_CLIENT_IDS"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let ids = ("SIWA_APPLE_CLIENT_IDS", "a");
        assert_eq!(
            config(&[ids, ("PORT", "http")]).unwrap_err().variable,
            "PORT"
        );
        assert_eq!(
            config(&[ids, ("PORT", "70000")]).unwrap_err().variable,
            "PORT"
        );
        assert_eq!(
            config(&[ids, ("SIWA_DATABASE_URL", "mysql://x")])
                .unwrap_err()
                .variable,
            "SIWA_DATABASE_URL"
        );
        assert_eq!(
            config(&[ids, ("SIWA_LOG_FORMAT", "xml")])
                .unwrap_err()
                .variable,
            "SIWA_LOG_FORMAT"
        );
        assert_eq!(
            config(&[ids, ("SIWA_APPLE_TEAM_ID", "TEAM123456")])
                .unwrap_err()
                .variable,
            "SIWA_APPLE_KEY_ID"
        );
        assert_eq!(
            config(&[
                ids,
                ("SIWA_APPLE_PRIVATE_KEY_FILE", "/nonexistent.p8"),
                ("SIWA_APPLE_TEAM_ID", "TEAM123456"),
                ("SIWA_APPLE_KEY_ID", "KEY1234567")
            ])
            .unwrap_err()
            .variable,
            "SIWA_APPLE_PRIVATE_KEY_FILE"
        );
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let c = config(&[
            ("SIWA_APPLE_CLIENT_IDS", "a"),
            ("SIWA_DATABASE_URL", "postgres://siwa:s3cret@db/siwa"),
            ("SIWA_ENCRYPTION_KEY", KEY),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"));
        assert!(!shown.contains(KEY), "the encryption key is shown: {shown}");
    }

    const KEY: &str = "c2l3YS10ZXN0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=";

    #[test]
    fn postgresql_needs_an_encryption_key_and_sqlite_does_not() {
        let postgres = ("SIWA_DATABASE_URL", "postgres://db/siwa");
        let ids = ("SIWA_APPLE_CLIENT_IDS", "a");
        assert_eq!(
            config(&[ids, postgres]).unwrap_err().variable,
            "SIWA_ENCRYPTION_KEY"
        );
        assert!(config(&[ids, postgres, ("SIWA_ENCRYPTION_KEY", KEY)]).is_ok());
        assert!(config(&[ids]).unwrap().encryption_key.is_none());
        let bad = config(&[ids, ("SIWA_ENCRYPTION_KEY", "short")]).unwrap_err();
        assert_eq!(bad.variable, "SIWA_ENCRYPTION_KEY");
    }

    #[test]
    fn a_zero_lifetime_names_its_own_variable() {
        let ids = ("SIWA_APPLE_CLIENT_IDS", "a");
        assert_eq!(
            config(&[ids, ("SIWA_ACCESS_TOKEN_TTL_SECS", "0")])
                .unwrap_err()
                .variable,
            "SIWA_ACCESS_TOKEN_TTL_SECS"
        );
        assert_eq!(
            config(&[ids, ("SIWA_REFRESH_TOKEN_TTL_SECS", "0")])
                .unwrap_err()
                .variable,
            "SIWA_REFRESH_TOKEN_TTL_SECS"
        );
    }

    #[test]
    fn a_rate_limit_of_zero_turns_it_off() {
        let c = config(&[
            ("SIWA_APPLE_CLIENT_IDS", "a"),
            ("SIWA_RATE_LIMIT_PER_MINUTE", "0"),
        ])
        .unwrap();
        assert_eq!(c.rate_limit_per_minute, None);
    }

    #[test]
    fn an_inline_private_key_with_escaped_newlines_is_accepted() {
        let pem = rcgen::KeyPair::generate()
            .unwrap()
            .serialize_pem()
            .replace('\n', "\\n");
        let c = config(&[
            ("SIWA_APPLE_CLIENT_IDS", "a"),
            ("SIWA_APPLE_TEAM_ID", "TEAM123456"),
            ("SIWA_APPLE_KEY_ID", "KEY1234567"),
            ("SIWA_APPLE_PRIVATE_KEY", &pem),
        ])
        .unwrap();
        assert_eq!(c.apple_key.unwrap().key_id(), "KEY1234567");
    }
}
