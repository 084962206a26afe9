//! Secrets at rest: the access-token signing key and Apple's refresh tokens are stored sealed
//! with an operator key, so that a copy of the database (a backup, a leaked file) yields neither
//! a key that forges our access tokens nor tokens usable at Apple.
//!
//! AES-256-GCM (aws-lc-rs, already linked for JWTs), a fresh random 96-bit nonce per value, and
//! the column's purpose as associated data, so that a sealed value cannot be moved to another
//! column. Stored as `sealed:v1:<key id>:<base64(nonce || ciphertext || tag)>`. The operator key
//! (`SIWA_ENCRYPTION_KEY`) may list several keys: the first seals, all of them open, which is how
//! a key is rotated.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sealed:v1:";
const KEY_BYTES: usize = 32;

/// What a sealed value is, bound into its seal.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// `server_keys.private_key_pem`.
    ServerKey,
    /// `apple_tokens.refresh_token` and `apple_revocations.token`.
    AppleToken,
    /// `refresh_tokens.successor`: the token a rotation gave, during the reuse grace.
    RefreshSuccessor,
    /// `pending_names.sealed_name`: a first authorization's name, kept through a failure.
    PendingName,
}

impl Purpose {
    fn aad(self) -> Aad<&'static [u8]> {
        Aad::from(match self {
            Self::ServerKey => b"siwa server key".as_slice(),
            Self::AppleToken => b"siwa apple token".as_slice(),
            Self::RefreshSuccessor => b"siwa refresh successor".as_slice(),
            Self::PendingName => b"siwa pending name".as_slice(),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a key is not 32 bytes in base64 (make one with `openssl rand -base64 32`)")]
    BadKey,
    #[error("no key was given")]
    NoKey,
    #[error("the value was sealed with a key that is not configured (key id {0})")]
    UnknownKey(String),
    #[error("the value is not sealed, or its seal does not open")]
    NotSealed,
}

/// The configured keys. `Debug` shows key ids only.
#[derive(Clone)]
pub struct Sealer {
    /// (id, key); the first seals.
    keys: Vec<(String, std::sync::Arc<LessSafeKey>)>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// From `SIWA_ENCRYPTION_KEY`'s value: base64 keys of 32 bytes, separated by commas or
    /// spaces, the newest first.
    pub fn from_keys(value: &str) -> Result<Self, SealError> {
        let keys = value
            .split([',', ' '])
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode_key(k.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SealError::NoKey);
        }
        Ok(Self {
            keys: keys
                .into_iter()
                .map(|bytes| {
                    let id = hex::encode(&Sha256::digest(bytes)[..4]);
                    let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes");
                    (id, std::sync::Arc::new(LessSafeKey::new(key)))
                })
                .collect(),
        })
    }

    /// A new random key, in the form `from_keys` reads.
    pub fn generate_key() -> String {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        STANDARD.encode(bytes)
    }

    /// Seals `plaintext` with the newest key.
    pub fn seal(&self, purpose: Purpose, plaintext: &str) -> String {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let mut sealed = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            purpose.aad(),
            &mut sealed,
        )
        .expect("sealing a value of any length succeeds");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{id}:{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed value with whichever configured key sealed it.
    pub fn open(&self, purpose: Purpose, stored: &str) -> Result<String, SealError> {
        let rest = stored.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let (id, data) = rest.split_once(':').ok_or(SealError::NotSealed)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let mut data = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::NotSealed)?;
        if data.len() < NONCE_LEN {
            return Err(SealError::NotSealed);
        }
        let mut in_out = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| SealError::NotSealed)?;
        let plaintext = key
            .open_in_place(nonce, purpose.aad(), &mut in_out)
            .map_err(|_| SealError::NotSealed)?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| SealError::NotSealed)
    }

    /// Whether a stored value is sealed (rows from before sealing are not).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The start of every value the newest key seals (for finding those it did not).
    pub fn newest_prefix(&self) -> String {
        format!("{PREFIX}{}:", self.keys[0].0)
    }
}

fn decode_key(text: &str) -> Result<[u8; KEY_BYTES], SealError> {
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| SealError::BadKey)?;
    bytes.try_into().map_err(|_| SealError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_is_not_stored_in_clear() {
        let sealer = Sealer::from_keys(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal(Purpose::AppleToken, "r.apple-refresh-token");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("apple-refresh-token"));
        assert_ne!(
            sealed,
            sealer.seal(Purpose::AppleToken, "r.apple-refresh-token")
        );
        assert_eq!(
            sealer.open(Purpose::AppleToken, &sealed).unwrap(),
            "r.apple-refresh-token"
        );
    }

    #[test]
    fn a_seal_does_not_open_for_another_purpose_or_after_tampering() {
        let sealer = Sealer::from_keys(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal(Purpose::ServerKey, "pem");
        assert_eq!(
            sealer.open(Purpose::AppleToken, &sealed),
            Err(SealError::NotSealed)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            sealer.open(Purpose::ServerKey, &tampered),
            Err(SealError::NotSealed)
        );
        assert_eq!(
            sealer.open(Purpose::ServerKey, "pem"),
            Err(SealError::NotSealed)
        );
    }

    #[test]
    fn an_old_key_listed_after_the_new_one_still_opens() {
        let (old, new) = (Sealer::generate_key(), Sealer::generate_key());
        let before = Sealer::from_keys(&old).unwrap();
        let sealed = before.seal(Purpose::AppleToken, "t");
        let rotated = Sealer::from_keys(&format!("{new},{old}")).unwrap();
        assert_eq!(rotated.open(Purpose::AppleToken, &sealed).unwrap(), "t");
        assert!(!sealed.starts_with(&rotated.newest_prefix()));
        assert!(
            rotated
                .seal(Purpose::AppleToken, "t")
                .starts_with(&rotated.newest_prefix())
        );
        let forgotten = Sealer::from_keys(&new).unwrap();
        assert!(matches!(
            forgotten.open(Purpose::AppleToken, &sealed),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(Sealer::from_keys("short").unwrap_err(), SealError::BadKey);
        assert_eq!(Sealer::from_keys(" , ").unwrap_err(), SealError::NoKey);
        let debug = format!("{:?}", Sealer::from_keys(&Sealer::generate_key()).unwrap());
        assert!(debug.contains("key_ids"));
    }
}
