//! Apple's signing keys, fetched over HTTPS and cached by `kid`.
//!
//! The rules, and why (docs/apple-protocol.md, F3, P8):
//! - Keys are cached for the lifetime Apple's `Cache-Control` gives, clamped to sane bounds.
//! - Concurrent misses share **one** fetch (single flight), so a cold start under load costs one
//!   download, not one per request.
//! - An unknown `kid` triggers a refetch (Apple rotates keys without notice), but at most once
//!   per cooldown: otherwise anyone could make us download the key set once per request by
//!   sending made-up `kid`s, which is exactly what the seed's server does.
//! - When the endpoint fails or returns garbage, known keys keep working (stale-if-error) and the
//!   failure is reported as [`VerifyError::KeySetUnavailable`], distinct from an unknown key.
//! - A stale key set is refreshed in the background while its keys keep serving
//!   (stale-while-revalidate): a slow endpoint never stalls requests for keys we have. Only an
//!   unknown `kid` waits for a fetch.
//!
//! The same key set verifies server-to-server notifications, which Apple signs with these keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use reqwest::header::CACHE_CONTROL;

use crate::error::VerifyError;
use crate::jwks::JwkSet;
use crate::transport::{HttpClientError, build_client};

/// How the key set fetches and caches.
#[derive(Debug, Clone)]
pub struct KeySetOptions {
    /// Time limit of one fetch, connection included.
    pub fetch_timeout: Duration,
    /// The least time between two fetches that a cache miss (or a failure) may cause.
    pub refetch_cooldown: Duration,
    /// Cache lifetime when the response has no usable `Cache-Control: max-age`.
    pub default_lifetime: Duration,
    /// Lower bound of the cache lifetime taken from `Cache-Control`.
    pub min_lifetime: Duration,
    /// Upper bound of the cache lifetime taken from `Cache-Control`.
    pub max_lifetime: Duration,
    /// A larger response is refused as garbage; Apple's is about 1.5 KiB.
    pub max_body_bytes: usize,
}

impl Default for KeySetOptions {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(5),
            refetch_cooldown: Duration::from_secs(30),
            default_lifetime: Duration::from_secs(3600),
            min_lifetime: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(24 * 3600),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySetStats {
    /// Fetches started.
    pub fetches: u64,
    /// Fetches that failed (transport error, bad status, garbage, no usable key).
    pub fetch_failures: u64,
}

/// Apple's key set, shared by every verification. Cheap to clone.
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    options: KeySetOptions,
    state: RwLock<State>,
    /// Held for the duration of a fetch: the single-flight gate.
    fetch_gate: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
    /// A background revalidation is under way: at most one at a time.
    revalidating: AtomicBool,
}

enum Source {
    Remote {
        url: String,
        client: reqwest::Client,
    },
    Fixed,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// Until when the keys are fresh; `None` until a fetch has succeeded.
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
    /// Bumped by every completed fetch, so a task that waited at the gate can tell that the
    /// fetch it wanted has already happened.
    generation: u64,
}

impl State {
    fn cooldown_over(&self, now: Instant, cooldown: Duration) -> bool {
        self.last_attempt
            .is_none_or(|t| now.duration_since(t) >= cooldown)
    }

    fn miss_error(&self) -> VerifyError {
        if self.last_attempt_failed {
            VerifyError::KeySetUnavailable
        } else {
            VerifyError::UnknownKey
        }
    }
}

/// Why a fetch failed; logged, never returned to a token's sender.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("response is not a JWKS")]
    NotJwks,
    #[error("JWKS holds no usable RS256 key")]
    NoUsableKey,
}

impl KeySet {
    /// Apple's production key set, `https://appleid.apple.com/auth/keys`.
    pub fn apple() -> Result<Self, HttpClientError> {
        Self::remote(
            crate::apple::Endpoints::apple().keys(),
            KeySetOptions::default(),
        )
    }

    /// A key set fetched from `url` (Apple's, or a mock's).
    pub fn remote(url: impl Into<String>, options: KeySetOptions) -> Result<Self, HttpClientError> {
        let client = build_client(
            reqwest::Client::builder()
                .timeout(options.fetch_timeout)
                .connect_timeout(options.fetch_timeout)
                // Apple reportedly rejects requests without a User-Agent (docs/apple-protocol.md, F9).
                .user_agent(concat!("siwa/", env!("CARGO_PKG_VERSION"))),
        )?;
        Ok(Self::new(
            Source::Remote {
                url: url.into(),
                client,
            },
            options,
            State::default(),
        ))
    }

    /// A key set that never fetches: the keys of a JWKS document given once. For tests and
    /// offline tools.
    pub fn fixed(jwks: &JwkSet) -> Self {
        let state = State {
            keys: jwks.usable_keys(),
            ..State::default()
        };
        Self::new(Source::Fixed, KeySetOptions::default(), state)
    }

    fn new(source: Source, options: KeySetOptions, state: State) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                options,
                state: RwLock::new(state),
                fetch_gate: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
                fetch_failures: AtomicU64::new(0),
                revalidating: AtomicBool::new(false),
            }),
        }
    }

    /// The key with this `kid`, fetching the key set if the rules above allow.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, VerifyError> {
        let cooldown = self.inner.options.refetch_cooldown;
        let seen_generation = {
            let state = self.read_state();
            let now = Instant::now();
            let cached = state.keys.get(kid);
            if let Source::Fixed = self.inner.source {
                return cached.cloned().ok_or(VerifyError::UnknownKey);
            }
            let fresh = state.fresh_until.is_some_and(|t| now < t);
            match cached {
                Some(key) if fresh || !state.cooldown_over(now, cooldown) => return Ok(key.clone()),
                Some(key) => {
                    let key = key.clone();
                    let generation = state.generation;
                    drop(state);
                    self.revalidate_in_background(generation);
                    return Ok(key);
                }
                None if !state.cooldown_over(now, cooldown) => return Err(state.miss_error()),
                None => state.generation,
            }
        };
        self.refresh_once(seen_generation).await;
        let state = self.read_state();
        state
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| state.miss_error())
    }

    /// Whether verification can work: some key is known, or the key set can be fetched now
    /// (the fetch obeys the cooldown and is shared with concurrent callers). For readiness.
    pub async fn usable(&self) -> bool {
        let generation = {
            let state = self.read_state();
            if !state.keys.is_empty() {
                return true;
            }
            if !state.cooldown_over(Instant::now(), self.inner.options.refetch_cooldown) {
                return false;
            }
            state.generation
        };
        self.refresh_once(generation).await;
        !self.read_state().keys.is_empty()
    }

    /// Fetch counters, for metrics.
    pub fn stats(&self) -> KeySetStats {
        KeySetStats {
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            fetch_failures: self.inner.fetch_failures.load(Ordering::Relaxed),
        }
    }

    /// Starts a refresh that no request waits for, unless one is under way. The task ends by
    /// itself within the fetch timeout, and holds the key set only until then.
    fn revalidate_in_background(&self, seen_generation: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.revalidating.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        runtime.spawn(async move {
            this.refresh_once(seen_generation).await;
            this.inner.revalidating.store(false, Ordering::Release);
        });
    }

    /// Fetches unless another task completed a fetch since `seen_generation` was read.
    async fn refresh_once(&self, seen_generation: u64) {
        let Source::Remote { url, client } = &self.inner.source else {
            return;
        };
        let _gate = self.inner.fetch_gate.lock().await;
        if self.read_state().generation != seen_generation {
            return;
        }
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let result = fetch(client, url, &self.inner.options).await;
        let now = Instant::now();
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        state.last_attempt = Some(now);
        match result {
            Ok((keys, lifetime)) => {
                tracing::debug!(keys = keys.len(), ?lifetime, "fetched Apple's key set");
                state.keys = keys;
                state.fresh_until = Some(now + lifetime);
                state.last_attempt_failed = false;
            }
            Err(error) => {
                self.inner.fetch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%url, %error, cached_keys = state.keys.len(),
                    "fetching the key set failed; cached keys stay in use");
                state.last_attempt_failed = true;
            }
        }
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

type FetchedKeys = (HashMap<String, Arc<DecodingKey>>, Duration);

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    options: &KeySetOptions,
) -> Result<FetchedKeys, FetchError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(FetchError::Transport)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let lifetime = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .map_or(options.default_lifetime, |age| {
            age.clamp(options.min_lifetime, options.max_lifetime)
        });
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Transport)? {
        if body.len() + chunk.len() > options.max_body_bytes {
            return Err(FetchError::TooLarge(options.max_body_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let set: JwkSet = serde_json::from_slice(&body).map_err(|_| FetchError::NotJwks)?;
    let keys = set.usable_keys();
    // An empty set would make every token fail; keep what we have instead.
    if keys.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok((keys, lifetime))
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` count as zero.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|directive| {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            lower
                .strip_prefix("max-age=")?
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=86400"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
