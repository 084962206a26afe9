//! `SIWA_WEBHOOK_URL`, `SIWA_WEBHOOK_SECRET`, `SIWA_WEBHOOK_RETRY_BASE_SECS`.

use std::time::Duration;

use standardwebhooks::Webhook;

/// Where events go.
#[derive(Clone)]
pub enum WebhookTarget {
    /// POSTed to the URL, signed with each secret (two during a rotation).
    Url { url: url::Url, secrets: Vec<String> },
    /// `siwa-server dev` without `--webhook-url`: each event is printed (type and user id).
    Print,
}

#[derive(Clone)]
pub struct WebhookConfig {
    pub target: WebhookTarget,
    /// The first retry delay; doubled at each failure, up to six hours.
    pub retry_base: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            // The origin only: a URL's path or query may hold the receiver's own token.
            WebhookTarget::Url { url, secrets } => {
                format!(
                    "{} ({} secrets)",
                    url.origin().ascii_serialization(),
                    secrets.len()
                )
            }
            WebhookTarget::Print => "print".into(),
        };
        f.debug_struct("WebhookConfig")
            .field("target", &target)
            .field("retry_base", &self.retry_base)
            .finish()
    }
}

pub const DEFAULT_RETRY_BASE_SECS: u64 = 5;

/// The variable a bad setting is read from, and why.
pub type Invalid = (&'static str, String);

impl WebhookConfig {
    /// Reads the variables; `None` without a URL (then nothing is recorded).
    pub fn read(
        get: impl Fn(&str) -> Option<String>,
        retry_base_secs: u64,
    ) -> Result<Option<Self>, Invalid> {
        let Some(url) = get("SIWA_WEBHOOK_URL") else {
            // A secret alone means webhooks were meant: say so rather than drop every event.
            if get("SIWA_WEBHOOK_SECRET").is_some() {
                return Err((
                    "SIWA_WEBHOOK_URL",
                    "required with SIWA_WEBHOOK_SECRET: where the events are sent".into(),
                ));
            }
            return Ok(None);
        };
        let url = url::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or(("SIWA_WEBHOOK_URL", format!("`{url}` is not an http(s) URL")))?;
        let secret = get("SIWA_WEBHOOK_SECRET").ok_or((
            "SIWA_WEBHOOK_SECRET",
            "required with SIWA_WEBHOOK_URL: whsec_ and the base64 of the key".to_owned(),
        ))?;
        let secrets = parse_secrets(&secret).map_err(|why| ("SIWA_WEBHOOK_SECRET", why))?;
        Ok(Some(Self {
            target: WebhookTarget::Url { url, secrets },
            retry_base: Duration::from_secs(retry_base_secs),
        }))
    }
}

/// One secret, or two separated by a space during a rotation; each `whsec_<base64>`.
pub fn parse_secrets(value: &str) -> Result<Vec<String>, String> {
    let secrets: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    if secrets.is_empty() || secrets.len() > 2 {
        return Err("one secret, or two separated by a space during a rotation".into());
    }
    for secret in &secrets {
        let Some(key) = secret.strip_prefix("whsec_") else {
            return Err("each secret starts with whsec_".into());
        };
        if key.len() < 24 || Webhook::new(secret).is_err() {
            return Err("after whsec_, the base64 of a key of at least 18 bytes".into());
        }
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<WebhookConfig>, Invalid> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WebhookConfig::read(|name| map.get(name).cloned(), 5)
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_url_needs_a_well_formed_secret_and_says_which_variable() {
        assert!(read(&[]).unwrap().is_none());
        assert_eq!(
            read(&[("SIWA_WEBHOOK_SECRET", SECRET)]).unwrap_err().0,
            "SIWA_WEBHOOK_URL"
        );
        let url = ("SIWA_WEBHOOK_URL", "https://app.example.com/hooks");
        assert_eq!(read(&[url]).unwrap_err().0, "SIWA_WEBHOOK_SECRET");
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!",
            "whsec_",
            "a b c",
        ] {
            assert_eq!(
                read(&[url, ("SIWA_WEBHOOK_SECRET", bad)]).unwrap_err().0,
                "SIWA_WEBHOOK_SECRET",
                "{bad}"
            );
        }
        assert_eq!(
            read(&[
                ("SIWA_WEBHOOK_URL", "ftp://x"),
                ("SIWA_WEBHOOK_SECRET", SECRET)
            ])
            .unwrap_err()
            .0,
            "SIWA_WEBHOOK_URL"
        );
        let rotating = format!("{SECRET} whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let config = read(&[url, ("SIWA_WEBHOOK_SECRET", &rotating)])
            .unwrap()
            .unwrap();
        assert!(
            matches!(config.target, WebhookTarget::Url { ref secrets, .. } if secrets.len() == 2)
        );
    }
}
