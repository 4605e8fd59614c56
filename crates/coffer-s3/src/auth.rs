//! Access keys: who may sign requests, which principal each key is, and what its identity
//! policies allow.
//!
//! [`Credentials`] is the live table every front consults (`s3s` for S3 SigV4, the KMS and IAM
//! endpoints for their own): the root pair from the configuration, plus the users of
//! [`crate::users`], rebuilt whenever a user changes, so a new, changed or removed user takes
//! effect on the next request without a restart. Secrets are never logged or printed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use coffer_crypto::Key256;
use coffer_policy::Identity;
use coffer_store::MetaStore;
use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};

use crate::error::api_error;
use crate::users::{UserError, UserRecord, Users};

/// Who a request is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The deployment's root key pair.
    Root,
    /// An IAM user.
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

/// What an access key stands for.
#[derive(Clone)]
pub struct Account {
    secret: SecretKey,
    /// Whose key it is.
    pub principal: Principal,
    /// What that principal's identity policies allow.
    pub identity: Identity,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// The secret access key (for verifying signatures outside `s3s`).
    pub fn secret(&self) -> &str {
        self.secret.expose()
    }
}

/// The access keys this server accepts. Cheap to clone; every clone sees the same live table.
#[derive(Clone, Default)]
pub struct Credentials {
    keys: Arc<RwLock<HashMap<String, Account>>>,
    root_access_key: Arc<str>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "access_keys",
                &self.read().keys().cloned().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials with the root key pair only.
    pub fn single(access_key: &str, secret_key: &str) -> Credentials {
        let creds = Credentials {
            keys: Arc::default(),
            root_access_key: access_key.into(),
        };
        creds.write().insert(
            access_key.to_owned(),
            Account {
                secret: SecretKey::from(secret_key.to_owned()),
                principal: Principal::Root,
                identity: Identity::Root,
            },
        );
        creds
    }

    /// Adds the users stored in `meta` (their records opened with the root key).
    pub fn with_users(self, meta: &MetaStore, root: &Key256) -> Result<Credentials, UserError> {
        self.replace_users(&Users::new(meta, root).list()?);
        Ok(self)
    }

    /// Replaces every user's keys with those of `users` (the root pair stays): the step that
    /// makes a user change take effect.
    pub fn replace_users(&self, users: &[UserRecord]) {
        let root_key = &*self.root_access_key;
        let mut keys = self.write();
        keys.retain(|id, _| id == root_key);
        for user in users {
            let identity = user.identity();
            for key in &user.access_keys {
                if key.id == root_key {
                    tracing::error!(user = %user.name, "a user's access key id equals the root access key id; the user's key is ignored");
                    continue;
                }
                keys.insert(
                    key.id.clone(),
                    Account {
                        secret: SecretKey::from(key.secret.clone()),
                        principal: Principal::User(user.name.clone()),
                        identity: identity.clone(),
                    },
                );
            }
        }
    }

    /// What an access key stands for, if this server knows it.
    pub fn lookup(&self, access_key: &str) -> Option<Account> {
        self.read().get(access_key).cloned()
    }

    /// The secret of an access key (for verifying signatures outside `s3s`).
    pub fn secret(&self, access_key: &str) -> Option<String> {
        self.read()
            .get(access_key)
            .map(|a| a.secret.expose().to_owned())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Account>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Account>> {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl S3Auth for Credentials {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.read()
            .get(access_key)
            .map(|a| a.secret.clone())
            .ok_or_else(|| {
                api_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_changes_take_effect_in_every_clone() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        let root = Key256::generate().unwrap();
        let users = Users::new(&meta, &root);
        users.create("alice", 0).unwrap();
        let key = users.create_access_key("alice", 0).unwrap();
        let creds = Credentials::single("ROOT", "rootsecret")
            .with_users(&meta, &root)
            .unwrap();
        let seen_by_s3s = creds.clone();
        let alice = seen_by_s3s.lookup(&key.id).unwrap();
        assert_eq!(alice.principal, Principal::User("alice".into()));
        assert_eq!(alice.secret(), key.secret);
        assert!(matches!(alice.identity, Identity::User(ref p) if p.is_empty()));
        assert_eq!(creds.lookup("ROOT").unwrap().principal, Principal::Root);

        users.delete("alice", true).unwrap();
        creds.replace_users(&users.list().unwrap());
        assert!(seen_by_s3s.lookup(&key.id).is_none());
        assert!(seen_by_s3s.lookup("ROOT").is_some());
    }
}
