//! Access keys: who may sign requests, and which principal each key is.
//!
//! The root pair comes from the configuration; further users are created with
//! `coffer user add` and stored in the metadata store (kv namespace `users`), their secret
//! sealed under the root key. `s3s` verifies S3 SigV4 against the secret returned here; the
//! KMS front verifies its own. Secrets are never logged or printed (except once, at creation).

use std::collections::HashMap;

use coffer_crypto::Key256;
use coffer_store::{KvOp, MetaStore, StoreError};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Namespace of user records in the metadata store.
const USERS_NS: &str = "users";
/// AAD of a sealed user record. Frozen format v1.
const USER_AAD: &[u8] = b"coffer user v1";

/// Who a request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The deployment's root key pair.
    Root,
    /// A user created with `coffer user add`.
    User(String),
}

impl Principal {
    /// The IAM-style ARN of the principal in `account_id`.
    pub fn arn(&self, account_id: &str) -> String {
        match self {
            Principal::Root => format!("arn:aws:iam::{account_id}:root"),
            Principal::User(name) => format!("arn:aws:iam::{account_id}:user/{name}"),
        }
    }
}

/// The access keys this server accepts, with their secrets and principals.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, (SecretKey, Principal)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Credentials with the root key pair only.
    pub fn single(access_key: &str, secret_key: &str) -> Credentials {
        let mut c = Credentials::default();
        c.keys.insert(
            access_key.to_owned(),
            (SecretKey::from(secret_key.to_owned()), Principal::Root),
        );
        c
    }

    /// Adds the users stored in `meta` (their secrets opened with the root key).
    pub fn with_users(mut self, meta: &MetaStore, root: &Key256) -> Result<Credentials, UserError> {
        for user in load_users(meta, root)? {
            self.keys.insert(
                user.access_key.clone(),
                (
                    SecretKey::from(user.secret_key.to_string()),
                    Principal::User(user.name),
                ),
            );
        }
        Ok(self)
    }

    /// The secret of an access key (for verifying signatures outside `s3s`).
    pub fn secret(&self, access_key: &str) -> Option<String> {
        self.keys
            .get(access_key)
            .map(|(s, _)| s.expose().to_owned())
    }

    /// The principal an access key belongs to.
    pub fn principal(&self, access_key: &str) -> Option<&Principal> {
        self.keys.get(access_key).map(|(_, p)| p)
    }
}

#[async_trait::async_trait]
impl S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.keys
            .get(access_key)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| {
                s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })
    }
}

/// Why a user record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// A record did not open under the root key, or does not parse.
    #[error("user record {0} is unreadable (wrong root key, or the record was altered)")]
    Corrupt(String),
    /// The name is taken or not allowed.
    #[error("{0}")]
    Invalid(String),
    /// Randomness or sealing failed.
    #[error("crypto: {0}")]
    Crypto(#[from] coffer_crypto::CryptoError),
}

/// A stored user (secret in the clear only in memory, zeroized on drop).
pub struct User {
    pub name: String,
    pub access_key: String,
    pub secret_key: Zeroizing<String>,
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    v: u32,
    name: String,
    secret_key: String,
}

/// Every stored user.
pub fn load_users(meta: &MetaStore, root: &Key256) -> Result<Vec<User>, UserError> {
    let mut out = Vec::new();
    for (access_key, sealed) in meta.kv_scan(USERS_NS, "")? {
        let plain = coffer_crypto::open_bytes(root, &sealed, &user_aad(&access_key))
            .map_err(|_| UserError::Corrupt(access_key.clone()))?;
        let rec: UserRecord =
            serde_json::from_slice(&plain).map_err(|_| UserError::Corrupt(access_key.clone()))?;
        out.push(User {
            name: rec.name,
            access_key,
            secret_key: Zeroizing::new(rec.secret_key),
        });
    }
    Ok(out)
}

/// Creates a user with a fresh key pair and stores it; returns the user (to print once).
pub fn add_user(meta: &MetaStore, root: &Key256, name: &str) -> Result<User, UserError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if !valid {
        return Err(UserError::Invalid(format!(
            "user name {name:?} is not valid: 1–64 characters of letters, digits and +=,.@_-"
        )));
    }
    if load_users(meta, root)?.iter().any(|u| u.name == name) {
        return Err(UserError::Invalid(format!(
            "a user named {name:?} already exists"
        )));
    }
    let (access_key, secret_key) = generate_key_pair()?;
    let rec = UserRecord {
        v: 1,
        name: name.to_owned(),
        secret_key: secret_key.to_string(),
    };
    let json =
        Zeroizing::new(serde_json::to_vec(&rec).map_err(|e| UserError::Invalid(e.to_string()))?);
    let sealed = coffer_crypto::seal_bytes(root, &json, &user_aad(&access_key))?;
    meta.kv_write(&[KvOp::Put(USERS_NS.to_owned(), access_key.clone(), sealed)])?;
    Ok(User {
        name: name.to_owned(),
        access_key,
        secret_key,
    })
}

/// A fresh access key id (`AKIA` + 16 characters) and 40-character secret, as AWS shapes them.
pub fn generate_key_pair() -> Result<(String, Zeroizing<String>), coffer_crypto::CryptoError> {
    let access_key = format!(
        "AKIA{}",
        random_text(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")?
    );
    let secret_key = Zeroizing::new(random_text(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )?);
    Ok((access_key, secret_key))
}

/// Random text over `alphabet` (for generated access keys and secrets).
fn random_text(len: usize, alphabet: &[u8]) -> Result<String, coffer_crypto::CryptoError> {
    let bytes: [u8; 64] = coffer_crypto::random_array()?;
    Ok(bytes[..len.min(64)]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

fn user_aad(access_key: &str) -> Vec<u8> {
    let mut aad = USER_AAD.to_vec();
    aad.push(0);
    aad.extend_from_slice(access_key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_round_trip_sealed_and_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let root = Key256::generate().unwrap();
        let alice = add_user(&meta, &root, "alice").unwrap();
        assert!(add_user(&meta, &root, "alice").is_err());
        assert!(add_user(&meta, &root, "bad name").is_err());
        let creds = Credentials::single("ROOT", "rootsecret")
            .with_users(&meta, &root)
            .unwrap();
        assert_eq!(
            creds.principal(&alice.access_key),
            Some(&Principal::User("alice".into()))
        );
        assert_eq!(
            creds.secret(&alice.access_key).as_deref(),
            Some(alice.secret_key.as_str())
        );
        assert_eq!(creds.principal("ROOT"), Some(&Principal::Root));
        // Another root key cannot open the records.
        assert!(load_users(&meta, &Key256::generate().unwrap()).is_err());
    }
}
