//! Identity tokens in bulk, for benchmarks: `mock-apple tokens` signs many valid tokens, each of a
//! different user, with the key a running mock publishes (its key directory), without a request
//! per token.
//!
//! Why: a benchmark whose every sign-in is a write needs a token per request, hundreds of
//! thousands a run. Signing is what costs: `jsonwebtoken` parses the RSA key again for every
//! signature (1.4 ms a token here), so this signs with aws-lc's key pair parsed once per thread
//! (RS256 is RSASSA-PKCS1-v1_5 with SHA-256, the same bytes), on every core.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use siwa_core::RawNonce;

use crate::directory::Identity;
use crate::identity::{self, BooleanForm, TokenAlgorithm};
use crate::keys::{KeyError, SigningKeys};
use crate::random;

/// What `mock-apple tokens` mints.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// The `iss` claim: the running mock's.
    pub issuer: String,
    /// The `aud` claim.
    pub client_id: String,
    /// `count` tokens of users `first..first + users`: token `n` is user `first + n % users`.
    pub first: u64,
    pub count: u64,
    pub users: u64,
    /// Each token carries the SHA-256 of a raw nonce of its own, written after it on its line.
    pub nonces: bool,
    pub lifetime_secs: i64,
    /// `iat`, in Unix seconds.
    pub now: i64,
}

impl TokenBatch {
    /// User `n`'s `sub`, in Apple's form: the same `n` is the same user in every batch.
    pub fn sub(n: u64) -> String {
        format!("000000.{n:032x}.0000")
    }

    /// Writes one line per token, `TOKEN` or `TOKEN RAW_NONCE`, in no given order, signed with
    /// the signing key kept in `key_dir` (as `mock-apple --key-dir` keeps it).
    pub fn write(&self, key_dir: &Path, out: &mut (dyn Write + Send)) -> Result<(), KeyError> {
        let keys = SigningKeys::load(key_dir)?;
        let key = keys.active();
        let der = key.private_key_der()?;
        let header = identity::header(&key.kid, TokenAlgorithm::RS256);
        let header = b64(&serde_json::to_vec(&header).expect("JSON maps serialize"));
        let next = AtomicUsize::new(0);
        let out = std::sync::Mutex::new(out);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        const CHUNK: u64 = 500;
        std::thread::scope(|scope| {
            let signers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let pair = RsaKeyPair::from_pkcs8(&der)
                            .map_err(|e| std::io::Error::other(format!("the signing key: {e}")))?;
                        let rng = aws_lc_rs::rand::SystemRandom::new();
                        let mut signature = vec![0; pair.public_modulus_len()];
                        let mut lines = String::new();
                        loop {
                            let start = next.fetch_add(1, Ordering::Relaxed) as u64 * CHUNK;
                            if start >= self.count {
                                return Ok::<(), std::io::Error>(());
                            }
                            lines.clear();
                            for n in start..(start + CHUNK).min(self.count) {
                                let user = self.first + n % self.users.max(1);
                                let raw = self.nonces.then(|| random::alphanumeric(32));
                                let nonce = raw.as_ref().map(|r| RawNonce::new(r.clone()).hashed());
                                let identity = Identity {
                                    sub: Self::sub(user),
                                    email: Some(format!("user{user}@example.com")),
                                    is_private_email: false,
                                    real_user_status: 2,
                                    transfer_sub: None,
                                };
                                let claims = identity::apple_claims(
                                    &self.issuer,
                                    &self.client_id,
                                    &identity,
                                    nonce.as_ref().map(|n| n.as_str()),
                                    self.now,
                                    self.lifetime_secs,
                                    BooleanForm::Boolean,
                                );
                                let body = serde_json::to_vec(&claims).expect("claims serialize");
                                let signing_input = format!("{header}.{}", b64(&body));
                                pair.sign(
                                    &RSA_PKCS1_SHA256,
                                    &rng,
                                    signing_input.as_bytes(),
                                    &mut signature,
                                )
                                .map_err(|_| std::io::Error::other("RSA signing failed"))?;
                                lines.push_str(&signing_input);
                                lines.push('.');
                                lines.push_str(&b64(&signature));
                                if let Some(raw) = raw {
                                    lines.push(' ');
                                    lines.push_str(&raw);
                                }
                                lines.push('\n');
                            }
                            out.lock()
                                .expect("no writer panics")
                                .write_all(lines.as_bytes())?;
                        }
                    })
                })
                .collect();
            signers
                .into_iter()
                .try_for_each(|s| s.join().expect("a signer panicked"))
        })?;
        out.into_inner()
            .expect("no writer panics")
            .flush()
            .map_err(KeyError::Io)
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token verifies against the key set the mock publishes from the same directory, each
    /// is a different user, and each carries the hash of the raw nonce beside it.
    #[tokio::test]
    async fn minted_tokens_verify_and_each_is_a_different_user() {
        let dir = std::env::temp_dir().join(format!("mock-batch-{}", random::alphanumeric(8)));
        let apple = crate::MockApple::builder()
            .key_dir(&dir)
            .start()
            .await
            .unwrap();
        let batch = TokenBatch {
            issuer: apple.issuer().to_owned(),
            client_id: "com.example.app".into(),
            first: 7,
            count: 1_003,
            users: 1_003,
            nonces: true,
            lifetime_secs: 600,
            now: apple.now(),
        };
        let mut out = Vec::new();
        batch.write(&dir, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let keys = siwa_core::KeySet::remote(apple.jwks_url(), Default::default()).unwrap();
        let verifier =
            siwa_core::Verifier::new(siwa_core::VerifierConfig::new(["com.example.app"]), keys)
                .unwrap();
        let mut subs = std::collections::HashSet::new();
        for line in text.lines() {
            let (token, raw) = line.split_once(' ').expect("a token and its raw nonce");
            let claims = verifier
                .verify(token, Some(&RawNonce::new(raw.to_owned())))
                .await
                .unwrap();
            subs.insert(claims.sub);
        }
        assert_eq!(subs.len(), 1_003);
        assert!(subs.contains(&TokenBatch::sub(7)) && subs.contains(&TokenBatch::sub(1_009)));
        let _ = std::fs::remove_dir_all(dir);
    }
}
