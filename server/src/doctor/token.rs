//! `siwa-server doctor token`: what an identity token says, read without trusting it, and the
//! first check it fails against this server's configuration, in words a developer acts on.
//!
//! The token itself is never printed; its email only with `--show-email`.

use serde::Serialize;
use serde_json::Value;
use siwa_core::{
    Clock, Endpoints, KeySet, KeySetOptions, RawNonce, SystemClock, Verifier, VerifierConfig,
    VerifyError,
};

use super::{Check, Status};
use crate::config::Config;

/// The claims in the order Apple's documentation lists them.
const CLAIM_ORDER: [&str; 16] = [
    "iss",
    "aud",
    "sub",
    "iat",
    "exp",
    "auth_time",
    "nonce",
    "nonce_supported",
    "email",
    "email_verified",
    "is_private_email",
    "real_user_status",
    "transfer_sub",
    "c_hash",
    "at_hash",
    "org_id",
];

/// What the caller adds to the token.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// The raw nonce the app says it made, to compare with the token's.
    pub raw_nonce: Option<String>,
    /// Print the email claim instead of hiding it.
    pub show_email: bool,
}

/// One claim: its value as sent (or hidden) and what it means here.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimLine {
    pub claim: String,
    pub value: String,
    pub meaning: String,
}

/// The explanation: the header and claims, then the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct TokenReport {
    pub claims: Vec<ClaimLine>,
    pub verdict: Check,
}

impl TokenReport {
    pub fn passed(&self) -> bool {
        self.verdict.status != Status::Fail
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let width = self.claims.iter().map(|c| c.claim.len()).max().unwrap_or(0);
        for line in &self.claims {
            out.push_str(&format!("  {:<width$}  {}\n", line.claim, line.value));
            if !line.meaning.is_empty() {
                out.push_str(&format!("  {:<width$}  ({})\n", "", line.meaning));
            }
        }
        out.push_str(&format!(
            "{} {}: {}\n",
            self.verdict.status.label(),
            self.verdict.title,
            self.verdict.message
        ));
        if let Some(fix) = &self.verdict.fix {
            out.push_str(&format!("      -> {fix}\n"));
        }
        out
    }
}

/// Reads `token` without trusting it, explains each claim, and verifies it with the audiences,
/// issuers and Apple keys `lookup`'s configuration names.
pub async fn explain_token(
    lookup: impl Fn(&str) -> Option<String>,
    token: &str,
    options: &TokenOptions,
) -> TokenReport {
    let token = token.trim();
    let verdict = |status, message: String, fix: Option<String>| Check {
        check: "token",
        title: "verdict".into(),
        status,
        message,
        fix,
    };
    let inspected = match siwa_core::inspect_unverified(token) {
        Ok(inspected) => inspected,
        Err(error) => {
            return TokenReport {
                claims: Vec::new(),
                verdict: verdict(
                    Status::Fail,
                    format!("not a token: {error}"),
                    Some("pass the identityToken exactly as Apple gave it (three base64url parts joined by dots)".into()),
                ),
            };
        }
    };
    let config = Config::from_lookup(&lookup);
    let now = SystemClock.now();
    let mut claims = vec![ClaimLine {
        claim: "header".into(),
        value: format!(
            "alg {}, kid {}",
            inspected.algorithm.as_deref().unwrap_or("(none)"),
            inspected.key_id.as_deref().unwrap_or("(none)")
        ),
        meaning: "Apple signs with RS256 and names its key by kid".into(),
    }];
    // Apple's order, then whatever else the token carries.
    let mut names: Vec<&str> = CLAIM_ORDER
        .iter()
        .copied()
        .filter(|name| inspected.claims.contains_key(*name))
        .collect();
    names.extend(
        inspected
            .claims
            .keys()
            .map(String::as_str)
            .filter(|name| !CLAIM_ORDER.contains(name)),
    );
    for name in names {
        let value = &inspected.claims[name];
        claims.push(explain_claim(
            name,
            value,
            config.as_ref().ok(),
            now,
            options,
        ));
    }
    if !inspected.claims.contains_key("nonce") {
        claims.push(ClaimLine {
            claim: "nonce".into(),
            value: "(absent)".into(),
            meaning: "the app set no nonce on the ASAuthorizationAppleIDRequest: a replayed token cannot be told from a fresh one, and a sign-in that sends a rawNonce is refused".into(),
        });
    }
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            return TokenReport {
                claims,
                verdict: verdict(
                    Status::Fail,
                    format!(
                        "not verified: the configuration does not parse ({}: {})",
                        error.variable, error.reason
                    ),
                    Some("run `siwa-server doctor` and fix the configuration first".into()),
                ),
            };
        }
    };
    let outcome = verify(&config, token, options).await;
    let aud = inspected
        .claims
        .get("aud")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let verdict = match outcome {
        Ok(()) => verdict(Status::Ok, accepted_by(&config, aud), None),
        Err(error) => {
            let (message, fix) = refusal(&error, &config, &inspected.claims, now);
            verdict(
                Status::Fail,
                format!("refused ({}): {message}", error.error_code()),
                Some(fix),
            )
        }
    };
    TokenReport { claims, verdict }
}

/// Verified as the server would: Apple's keys, the configured issuers, the app's client ids and
/// the web flow's Services ID, and the raw nonce when one is given.
async fn verify(config: &Config, token: &str, options: &TokenOptions) -> Result<(), VerifyError> {
    // Without an HTTP client (no CA certificates) Apple's keys cannot be fetched either.
    let keys = KeySet::remote(
        Endpoints::new(config.apple_base_url.clone()).keys(),
        KeySetOptions::default(),
    )
    .map_err(|_| VerifyError::KeySetUnavailable)?;
    let mut audiences = config.client_ids.clone();
    audiences.extend(config.web.services_id.clone());
    let mut verifier_config = VerifierConfig::new(audiences);
    verifier_config.issuers = config.issuers.clone();
    // The configuration has at least one client id and one issuer, so this refusal is never met;
    // were it, it is said as the token's refusal it amounts to.
    let verifier = Verifier::new(verifier_config, keys).map_err(|e| match e {
        siwa_core::ConfigError::NoAudience => VerifyError::WrongAudience,
        siwa_core::ConfigError::NoIssuer => VerifyError::WrongIssuer,
    })?;
    let nonce = options.raw_nonce.as_deref().map(RawNonce::new);
    verifier.verify(token, nonce.as_ref()).await.map(|_| ())
}

fn accepted_by(config: &Config, aud: &str) -> String {
    let web = config.web.services_id.as_deref() == Some(aud);
    let app = config.client_ids.iter().any(|id| id == aud);
    match (app, web) {
        (_, true) if !app => format!(
            "valid: signed by Apple for {aud}, the web flow's Services ID; the web flow accepts it, /v1/auth/apple does not (add {aud} to SIWA_APPLE_CLIENT_IDS for that)"
        ),
        (_, true) => format!("valid: signed by Apple for {aud}, the web flow's Services ID"),
        _ => format!("valid: signed by Apple for {aud}, one of SIWA_APPLE_CLIENT_IDS"),
    }
}

/// The first failing check, said so that the developer knows what to change.
fn refusal(
    error: &VerifyError,
    config: &Config,
    claims: &serde_json::Map<String, Value>,
    now: i64,
) -> (String, String) {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let number = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
    };
    match error {
        VerifyError::WrongAudience => {
            let aud = text("aud");
            let accepted = config.client_ids.join(", ");
            let issued_for = if config.web.services_id.as_deref() == Some(aud.as_str()) {
                format!("{aud}, the web flow's Services ID")
            } else if aud.is_empty() {
                "no audience".into()
            } else {
                aud.clone()
            };
            (
                format!("this token was issued for {issued_for}; this server accepts {accepted}"),
                format!("if {aud} is your app's bundle ID or your Services ID, add it to SIWA_APPLE_CLIENT_IDS; otherwise the token comes from another app"),
            )
        }
        VerifyError::WrongIssuer => (
            format!("the issuer is {}, not {}", text("iss"), config.issuers.join(", ")),
            "tokens come from https://appleid.apple.com; a mock-apple's tokens need SIWA_APPLE_ISSUERS set to it".into(),
        ),
        VerifyError::Expired => {
            let exp = number("exp").unwrap_or(now);
            (
                format!("it expired {} ago ({})", ago(now - exp), timestamp(exp)),
                "identity tokens live minutes: the app must send the token to the server right after Apple gives it, and sign in again for a new one".into(),
            )
        }
        VerifyError::IssuedInFuture => (
            format!("it was issued {} from now by this machine's clock", ago(number("iat").unwrap_or(now) - now)),
            "this machine's clock is behind: synchronise it (NTP)".into(),
        ),
        VerifyError::TooOld | VerifyError::LifetimeTooLong => (
            error.to_string(),
            "a fresh sign-in gives a fresh token".into(),
        ),
        VerifyError::BadSignature => (
            "the signature does not verify with Apple's key of that kid: the token was altered, or forged".into(),
            "pass the token exactly as the app received it; a token re-encoded or edited by hand never verifies".into(),
        ),
        VerifyError::UnknownKey => (
            format!("Apple publishes no key with this token's kid at {}", Endpoints::new(config.apple_base_url.clone()).keys()),
            "the token was not signed by this Apple (a mock-apple's token against Apple, or the reverse), or it is forged".into(),
        ),
        VerifyError::KeySetUnavailable => (
            format!("Apple's keys could not be fetched from {}", Endpoints::new(config.apple_base_url.clone()).keys()),
            "check the network path to Apple and SIWA_APPLE_BASE_URL (`siwa-server doctor`)".into(),
        ),
        VerifyError::NonceMissing => (
            "the token carries no nonce, but a raw nonce was given".into(),
            "the app must set the SHA-256 (lowercase hex) of its raw nonce on the ASAuthorizationAppleIDRequest (request.nonce), and send the raw one to the server".into(),
        ),
        VerifyError::NonceMismatch => (
            "the token's nonce is not the SHA-256 of the raw nonce given".into(),
            nonce_advice(&text("nonce")),
        ),
        VerifyError::UnsupportedAlgorithm | VerifyError::ForbiddenHeader(_) => (
            error.to_string(),
            "Apple's tokens are RS256 with a kid and nothing else: this one was not made by Apple".into(),
        ),
        other => (other.to_string(), "pass the identityToken exactly as Apple gave it".into()),
    }
}

fn nonce_advice(claim: &str) -> String {
    if is_sha256_hex(claim) {
        "the app sent the server another raw nonce than the one it hashed for Apple, or sent the hash itself: keep one raw nonce per sign-in, give Apple its SHA-256 and the server the raw value".into()
    } else {
        "the token's nonce is not a SHA-256 in hex: the app gave Apple the raw nonce; give Apple sha256(raw) as lowercase hex and the server the raw value".into()
    }
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn explain_claim(
    name: &str,
    value: &Value,
    config: Option<&Config>,
    now: i64,
    options: &TokenOptions,
) -> ClaimLine {
    let shown = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    let as_bool_text = |v: &Value| match v {
        Value::String(s) => {
            format!("{s} (sent as a string, as Apple often does; read as a boolean)")
        }
        other => other.to_string(),
    };
    let line = |value: String, meaning: String| ClaimLine {
        claim: name.to_owned(),
        value,
        meaning,
    };
    match name {
        "iss" => line(shown, match value.as_str() {
            Some(siwa_core::ISSUER) => "Apple, the only issuer of real tokens".into(),
            _ => "not Apple's issuer: accepted only if SIWA_APPLE_ISSUERS lists it (a mock)".into(),
        }),
        "aud" => {
            let aud = value.as_str().unwrap_or_default();
            let meaning = match config {
                Some(c) if c.web.services_id.as_deref() == Some(aud) => "the web flow's Services ID: the token came from a browser sign-in".into(),
                Some(c) if c.client_ids.iter().any(|id| id == aud) => "one of SIWA_APPLE_CLIENT_IDS: an app's bundle ID (a token from the app) or a Services ID (from the web)".into(),
                Some(_) => "not a client id this server accepts".into(),
                None => "the bundle ID (a token from the app) or the Services ID (from the web) it was issued for".into(),
            };
            line(shown, meaning)
        }
        "sub" => line(shown, "Apple's id of the user for your team: the stable account key (it changes only with a team transfer)".into()),
        "iat" | "exp" | "auth_time" => {
            let secs = value.as_i64().unwrap_or_default();
            let when = if secs <= now { format!("{} ago", ago(now - secs)) } else { format!("in {}", ago(secs - now)) };
            let what = match name {
                "iat" => "issued",
                "exp" if secs <= now => "expired",
                "exp" => "expires",
                _ => "the user authenticated",
            };
            line(format!("{secs} ({})", timestamp(secs)), format!("{what} {when}"))
        }
        "nonce" => {
            let nonce = value.as_str().unwrap_or_default();
            let meaning = match options.raw_nonce.as_deref() {
                Some(raw) if RawNonce::new(raw).matches_claim(nonce) => "the SHA-256 of the raw nonce given: as it must be".into(),
                Some(raw) if raw == nonce => "the raw nonce itself: the app gave Apple the raw value; it must give Apple sha256(raw) in lowercase hex and send the raw value to the server".into(),
                Some(_) => "not the SHA-256 of the raw nonce given".into(),
                None if is_sha256_hex(nonce) => "a SHA-256 in hex: the hash of the app's raw nonce, as it must be (give the raw one with --nonce to compare)".into(),
                None => "not a SHA-256 in hex: the app gave Apple its raw nonce; it must give sha256(raw) and send the raw value to the server".into(),
            };
            line("(present, 64 characters: not shown)".replace("64", &nonce.len().to_string()), meaning)
        }
        "nonce_supported" => line(as_bool_text(value), "whether the device could carry a nonce (false only on old platforms)".into()),
        "email" => line(
            if options.show_email { shown } else { "(hidden: --show-email shows it)".into() },
            match value.as_str() {
                Some(email) if siwa_core::relay::is_relay_address(email) => {
                    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
                    format!("a private relay address (on {domain}): Apple forwards mail to the user while they allow")
                }
                _ => "the address the user shares with the app (a relay address would be on privaterelay.appleid.com or private.icloud.com)".into(),
            },
        ),
        "email_verified" => line(as_bool_text(value), "Apple vouches for the address".into()),
        "is_private_email" => line(as_bool_text(value), "a private relay address (@privaterelay.appleid.com, or @private.icloud.com for new ones since June 2026): mail to it is forwarded while the user allows".into()),
        "real_user_status" => line(shown, match value.as_i64().or_else(|| value.as_str()?.parse().ok()) {
            Some(2) => "likely a real person".into(),
            Some(1) => "unknown: the system could not tell (not a reason to refuse)".into(),
            Some(0) => "unsupported on this platform".into(),
            _ => "a fraud hint, never a reason to refuse".into(),
        }),
        "transfer_sub" => line(shown, "the transfer identifier, for 60 days after the app moved to another team: the server relinks the account `siwa-server transfer prepare` kept it for (docs/transfer.md)".into()),
        "c_hash" => line(shown, "hash of the authorization code: the token came with a code (from the app or the web flow)".into()),
        "at_hash" => line(shown, "hash of an access token: the token came from Apple's token endpoint (a code exchange)".into()),
        "org_id" => line(shown, "a managed Apple Account's organisation".into()),
        _ => line(shown, String::new()),
    }
}

fn timestamp(secs: i64) -> String {
    Some(crate::store::rfc3339(secs))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "not a time".into())
}

/// A duration in the largest unit that keeps it readable.
fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}
