//! The RSA keys that sign identity tokens and notifications, published at `/auth/keys`.
//!
//! Several keys are published at once with distinct `kid`s, as Apple does; the newest
//! unretired key signs. A retired key leaves the JWKS but can still sign on request, which is
//! how tests make "a token signed by a key Apple no longer publishes". With a key directory the
//! keys survive restarts, so a verifier's cached JWKS stays valid.

use std::fs;
use std::path::{Path, PathBuf};

use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use siwa_core::apple_side::{Jwk, JwkSet};

use crate::random;

/// The file in the key directory.
const KEY_FILE: &str = "keys.json";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating an RSA key failed: {0}")]
    Generate(String),
    #[error("the key directory could not be used: {0}")]
    Io(#[from] std::io::Error),
    #[error("the key file is damaged: {0}")]
    Damaged(String),
    #[error("no signing key has kid `{0}`")]
    NotFound(String),
    #[error("the last published key cannot be retired: publish another first")]
    LastKey,
}

pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The public key in PEM: what a confused verifier would use as an HMAC secret.
    pub public_pem: String,
    pub jwk: Jwk,
    pub retired: bool,
    private_pem: String,
}

impl SigningKey {
    /// The private key in PKCS#8 DER, for a signer that parses it once (`batch`).
    pub(crate) fn private_key_der(&self) -> Result<Vec<u8>, KeyError> {
        rcgen::KeyPair::from_pem(&self.private_pem)
            .map(|pair| pair.serialize_der())
            .map_err(|e| KeyError::Damaged(e.to_string()))
    }

    pub fn generate() -> Result<Self, KeyError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pem(random::alphanumeric(10), pair.serialize_pem(), false)
    }

    fn from_pem(kid: String, private_pem: String, retired: bool) -> Result<Self, KeyError> {
        let damaged = |e: &dyn std::fmt::Display| KeyError::Damaged(format!("key {kid}: {e}"));
        let encoding =
            EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(|e| damaged(&e))?;
        let jwk = Jwk::rs256_from_private_key(kid.clone(), &encoding).map_err(|e| damaged(&e))?;
        let public_pem = rcgen::KeyPair::from_pem(&private_pem)
            .map_err(|e| damaged(&e))?
            .public_key_pem();
        Ok(Self {
            kid,
            encoding,
            public_pem,
            jwk,
            retired,
            private_pem,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredKey {
    kid: String,
    retired: bool,
    private_key_pem: String,
}

pub struct SigningKeys {
    keys: Vec<SigningKey>,
    dir: Option<PathBuf>,
}

impl SigningKeys {
    /// The keys a mock keeps in `dir`, which must hold some (`mock-apple tokens` signs with the
    /// key a running mock publishes).
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        if !dir.join(KEY_FILE).exists() {
            return Err(KeyError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} holds no keys: start mock-apple --key-dir there first",
                    dir.display()
                ),
            )));
        }
        Self::load_or_generate(Some(dir), 1)
    }

    /// Loads the keys from `dir` if it holds some, otherwise generates `initial` keys (and
    /// saves them there).
    pub fn load_or_generate(dir: Option<&Path>, initial: usize) -> Result<Self, KeyError> {
        if let Some(dir) = dir {
            let file = dir.join(KEY_FILE);
            if file.exists() {
                let stored: Vec<StoredKey> = serde_json::from_slice(&fs::read(&file)?)
                    .map_err(|e| KeyError::Damaged(e.to_string()))?;
                let keys = stored
                    .into_iter()
                    .map(|k| SigningKey::from_pem(k.kid, k.private_key_pem, k.retired))
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.iter().any(|k| !k.retired) {
                    return Ok(Self {
                        keys,
                        dir: Some(dir.to_owned()),
                    });
                }
            }
        }
        let keys = (0..initial.max(1))
            .map(|_| SigningKey::generate())
            .collect::<Result<_, _>>()?;
        let set = Self {
            keys,
            dir: dir.map(Path::to_owned),
        };
        set.save()?;
        Ok(set)
    }

    /// The published key set: every unretired key.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter(|k| !k.retired)
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// The key that signs: the newest unretired one.
    pub fn active(&self) -> &SigningKey {
        self.keys
            .iter()
            .rev()
            .find(|k| !k.retired)
            .expect("one key is always published")
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn all(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Publishes a new key, which becomes the signing key.
    pub fn add(&mut self, key: SigningKey) -> Result<String, KeyError> {
        let kid = key.kid.clone();
        self.keys.push(key);
        self.save()?;
        Ok(kid)
    }

    /// Takes a key out of the JWKS.
    pub fn retire(&mut self, kid: &str) -> Result<(), KeyError> {
        let published = self.keys.iter().filter(|k| !k.retired).count();
        let key = self.keys.iter_mut().find(|k| k.kid == kid);
        let key = key.ok_or_else(|| KeyError::NotFound(kid.to_owned()))?;
        if !key.retired && published == 1 {
            return Err(KeyError::LastKey);
        }
        key.retired = true;
        self.save()
    }

    /// Writes the keys atomically (temporary file, then rename), readable by the owner only.
    fn save(&self) -> Result<(), KeyError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        fs::create_dir_all(dir)?;
        let stored: Vec<StoredKey> = self
            .keys
            .iter()
            .map(|k| StoredKey {
                kid: k.kid.clone(),
                retired: k.retired,
                private_key_pem: k.private_pem.clone(),
            })
            .collect();
        let temporary = dir.join(format!("{KEY_FILE}.tmp"));
        fs::write(
            &temporary,
            serde_json::to_vec_pretty(&stored).expect("keys serialize"),
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))?;
        }
        fs::rename(temporary, dir.join(KEY_FILE))?;
        Ok(())
    }
}
