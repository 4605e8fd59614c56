//! IAM users at rest: who they are, their access keys and their inline identity policies, sealed
//! under the root key in the metadata store. The one place that creates, changes and removes
//! users — `coffer user …` on a stopped server and the IAM endpoint of a running one both call
//! here, and [`crate::Credentials`] is rebuilt from what this returns.
//!
//! **Format** (kv namespace `iam-users`, key = user name): `seal_bytes(root_key, json,
//! "coffer iam user v2" ‖ 0x00 ‖ name)`, json = [`UserRecord`] with `"v": 2`. Users written by
//! earlier releases (namespace `users`, key = access key id, `{"v":1,"name","secret_key"}` sealed
//! with AAD `"coffer user v1" ‖ 0x00 ‖ access key`) are read as users with that one key and the
//! inline policy [`MIGRATED_POLICY_NAME`], which allows everything — what every user could do
//! before identity policies existed — and are rewritten in the new format (and their old record
//! removed, in the same transaction) the first time they change.
//!
//! Secrets live here only inside sealed records and in zeroizing types; nothing here logs.

use std::collections::BTreeMap;

use coffer_crypto::Key256;
use coffer_policy::PolicyDocument;
use coffer_store::{KvOp, MetaStore, StoreError};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Namespace of users in the current format (v2).
const USERS_NS: &str = "iam-users";
/// AAD prefix of a v2 user record. Frozen format: changing it makes existing users unreadable.
const USER_AAD: &[u8] = b"coffer iam user v2";
/// Record version of [`UserRecord`].
const USER_RECORD_VERSION: u32 = 2;
/// Namespace of users written by releases before identity policies (v1, one per access key).
const V1_USERS_NS: &str = "users";
/// AAD prefix of a v1 user record. Frozen format v1.
const V1_USER_AAD: &[u8] = b"coffer user v1";

/// The inline policy a user written by an earlier release gets: before identity policies, every
/// access key could do everything, and an upgrade must not silently take that away.
pub const MIGRATED_POLICY_NAME: &str = "CofferMigratedFullAccess";
/// An identity policy that allows every action on every resource.
pub const FULL_ACCESS_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Access keys a user may have at once (AWS's limit).
pub const MAX_ACCESS_KEYS: usize = 2;
/// Largest inline policy, in bytes (AWS's limit for the inline policies of a role; a user's is
/// smaller on AWS, and Coffer does not make policies that work there fail here).
pub const MAX_POLICY_BYTES: usize = 10 * 1024;
/// Inline policies a user may have.
pub const MAX_POLICIES: usize = 10;

/// Why a user operation failed. The IAM endpoint maps each variant to its IAM error once.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user, access key or policy does not exist.
    #[error("{0}")]
    NoSuchEntity(String),
    /// A user with that name already exists.
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// The user still has access keys or policies (IAM's DeleteUser refuses that).
    #[error("{0}")]
    DeleteConflict(String),
    /// Too many access keys or policies.
    #[error("{0}")]
    LimitExceeded(String),
    /// The policy document is not a valid identity policy.
    #[error("{0}")]
    MalformedPolicy(String),
    /// A name or parameter is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// A record did not open under the root key, or does not parse.
    #[error("user record {0} is unreadable (wrong root key, or the record was altered)")]
    Corrupt(String),
    /// Randomness or sealing failed.
    #[error("crypto: {0}")]
    Crypto(#[from] coffer_crypto::CryptoError),
}

/// One access key of a user. The secret is zeroized when the record is dropped.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct AccessKey {
    /// The access key id (`AKIA…`).
    pub id: String,
    /// The secret access key.
    pub secret: String,
    /// Creation time, milliseconds since the Unix epoch (0 for keys of migrated users).
    pub created_unix_ms: i64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A user as stored (format v2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// [`USER_RECORD_VERSION`].
    pub v: u32,
    /// The user name: 1–64 of letters, digits and `+=,.@_-`.
    pub name: String,
    /// IAM's stable unique id of the user (`AIDA…`).
    pub user_id: String,
    /// Creation time, milliseconds since the Unix epoch (0 for migrated users).
    pub created_unix_ms: i64,
    /// At most [`MAX_ACCESS_KEYS`].
    pub access_keys: Vec<AccessKey>,
    /// Inline identity policies by name, as the JSON text that was put.
    pub policies: BTreeMap<String, String>,
}

impl UserRecord {
    /// The parsed identity policies. Each was checked when it was put; if one no longer parses
    /// (a stricter build), the user is denied everything — leaving it out would drop its
    /// `Deny` statements too — and the failure is logged.
    pub fn identity(&self) -> coffer_policy::Identity {
        let mut docs = Vec::with_capacity(self.policies.len());
        for (name, text) in &self.policies {
            match PolicyDocument::parse_identity(text) {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    tracing::error!(user = %self.name, policy = %name, error = %e, "an inline policy of a user does not parse: the user is denied everything until it is fixed");
                    let deny_all = PolicyDocument::parse_identity(DENY_ALL_POLICY)
                        .expect("the deny-all policy parses");
                    return coffer_policy::Identity::User([deny_all].into());
                }
            }
        }
        coffer_policy::Identity::User(docs.into())
    }
}

/// The identity of a user one of whose policies no longer parses.
const DENY_ALL_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// v1 record shape (inside the sealed bytes).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct V1Record {
    v: u32,
    name: String,
    secret_key: String,
}

/// Where each user was read from: v1 users still have their old records to remove on rewrite.
struct Loaded {
    user: UserRecord,
    v1_keys: Vec<String>,
}

/// The user store over one metadata store and root key.
pub struct Users<'a> {
    meta: &'a MetaStore,
    root: &'a Key256,
}

impl<'a> Users<'a> {
    pub fn new(meta: &'a MetaStore, root: &'a Key256) -> Users<'a> {
        Users { meta, root }
    }

    /// Every user, v2 and (converted) v1, by name.
    pub fn list(&self) -> Result<Vec<UserRecord>, UserError> {
        Ok(self.load_all()?.into_values().map(|l| l.user).collect())
    }

    /// One user.
    pub fn get(&self, name: &str) -> Result<UserRecord, UserError> {
        self.load_all()?
            .remove(name)
            .map(|l| l.user)
            .ok_or_else(|| no_such_user(name))
    }

    /// Creates a user with no access key and no policy (IAM's CreateUser).
    pub fn create(&self, name: &str, now_ms: i64) -> Result<UserRecord, UserError> {
        check_name(name)?;
        if self.load_all()?.contains_key(name) {
            return Err(UserError::EntityAlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        let user = UserRecord {
            v: USER_RECORD_VERSION,
            name: name.to_owned(),
            user_id: format!("AIDA{}", random_text(17, BASE32)?),
            created_unix_ms: now_ms,
            access_keys: Vec::new(),
            policies: BTreeMap::new(),
        };
        self.save(&user, &[])?;
        Ok(user)
    }

    /// Deletes a user. Unless `force`, refuses (as IAM's DeleteUser) while it has access keys or
    /// policies; with `force` they go with it.
    pub fn delete(&self, name: &str, force: bool) -> Result<UserRecord, UserError> {
        let loaded = self.load_one(name)?;
        let user = &loaded.user;
        if !force && (!user.access_keys.is_empty() || !user.policies.is_empty()) {
            return Err(UserError::DeleteConflict(
                "Cannot delete entity, must delete access keys and policies first.".to_owned(),
            ));
        }
        let mut ops = vec![KvOp::Delete(USERS_NS.to_owned(), name.to_owned())];
        ops.extend(
            loaded
                .v1_keys
                .iter()
                .map(|k| KvOp::Delete(V1_USERS_NS.to_owned(), k.clone())),
        );
        self.meta.kv_write(&ops)?;
        Ok(loaded.user)
    }

    /// Creates an access key for a user (at most [`MAX_ACCESS_KEYS`]); returns it (the only
    /// time its secret is shown).
    pub fn create_access_key(&self, name: &str, now_ms: i64) -> Result<AccessKey, UserError> {
        let mut loaded = self.load_one(name)?;
        if loaded.user.access_keys.len() >= MAX_ACCESS_KEYS {
            return Err(UserError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}"
            )));
        }
        let (id, secret) = generate_key_pair()?;
        if self.owner_of(&id)?.is_some() {
            return Err(UserError::Invalid(
                "a generated access key id collided; try again".to_owned(),
            ));
        }
        let key = AccessKey {
            id,
            secret: secret.to_string(),
            created_unix_ms: now_ms,
        };
        loaded.user.access_keys.push(key.clone());
        self.save(&loaded.user, &loaded.v1_keys)?;
        Ok(key)
    }

    /// Deletes one access key of a user.
    pub fn delete_access_key(&self, name: &str, key_id: &str) -> Result<(), UserError> {
        let mut loaded = self.load_one(name)?;
        let before = loaded.user.access_keys.len();
        loaded.user.access_keys.retain(|k| k.id != key_id);
        if loaded.user.access_keys.len() == before {
            return Err(UserError::NoSuchEntity(format!(
                "The Access Key with id {key_id} cannot be found."
            )));
        }
        self.save(&loaded.user, &loaded.v1_keys)
    }

    /// Adds or replaces an inline identity policy of a user, after checking it parses.
    pub fn put_policy(&self, name: &str, policy_name: &str, text: &str) -> Result<(), UserError> {
        check_policy_name(policy_name)?;
        if text.len() > MAX_POLICY_BYTES {
            return Err(UserError::LimitExceeded(format!(
                "Maximum policy size of {MAX_POLICY_BYTES} bytes exceeded for user {name}"
            )));
        }
        PolicyDocument::parse_identity(text)
            .map_err(|e| UserError::MalformedPolicy(e.to_string()))?;
        let mut loaded = self.load_one(name)?;
        if !loaded.user.policies.contains_key(policy_name)
            && loaded.user.policies.len() >= MAX_POLICIES
        {
            return Err(UserError::LimitExceeded(format!(
                "Cannot exceed quota for PoliciesPerUser: {MAX_POLICIES}"
            )));
        }
        loaded
            .user
            .policies
            .insert(policy_name.to_owned(), text.to_owned());
        self.save(&loaded.user, &loaded.v1_keys)
    }

    /// Removes an inline policy of a user.
    pub fn delete_policy(&self, name: &str, policy_name: &str) -> Result<(), UserError> {
        let mut loaded = self.load_one(name)?;
        if loaded.user.policies.remove(policy_name).is_none() {
            return Err(UserError::NoSuchEntity(format!(
                "The user policy with name {policy_name} cannot be found."
            )));
        }
        self.save(&loaded.user, &loaded.v1_keys)
    }

    /// The user that owns an access key id, if any.
    pub fn owner_of(&self, key_id: &str) -> Result<Option<UserRecord>, UserError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|u| u.access_keys.iter().any(|k| k.id == key_id)))
    }

    fn load_one(&self, name: &str) -> Result<Loaded, UserError> {
        self.load_all()?
            .remove(name)
            .ok_or_else(|| no_such_user(name))
    }

    fn load_all(&self) -> Result<BTreeMap<String, Loaded>, UserError> {
        let mut users = BTreeMap::new();
        for (name, sealed) in self.meta.kv_scan(USERS_NS, "")? {
            let plain = coffer_crypto::open_bytes(self.root, &sealed, &aad(USER_AAD, &name))
                .map_err(|_| UserError::Corrupt(name.clone()))?;
            let plain = Zeroizing::new(plain);
            let user: UserRecord =
                serde_json::from_slice(&plain).map_err(|_| UserError::Corrupt(name.clone()))?;
            if user.v != USER_RECORD_VERSION || user.name != name {
                return Err(UserError::Corrupt(name));
            }
            users.insert(
                name,
                Loaded {
                    user,
                    v1_keys: Vec::new(),
                },
            );
        }
        for (access_key, sealed) in self.meta.kv_scan(V1_USERS_NS, "")? {
            let plain =
                coffer_crypto::open_bytes(self.root, &sealed, &aad(V1_USER_AAD, &access_key))
                    .map_err(|_| UserError::Corrupt(access_key.clone()))?;
            let plain = Zeroizing::new(plain);
            let old: V1Record = serde_json::from_slice(&plain)
                .map_err(|_| UserError::Corrupt(access_key.clone()))?;
            if old.v != 1 {
                return Err(UserError::Corrupt(access_key));
            }
            let key = AccessKey {
                id: access_key.clone(),
                secret: old.secret_key.clone(),
                created_unix_ms: 0,
            };
            let entry = users.entry(old.name.clone()).or_insert_with(|| Loaded {
                user: UserRecord {
                    v: USER_RECORD_VERSION,
                    user_id: format!("AIDA{}", stable_id(&old.name)),
                    name: old.name.clone(),
                    created_unix_ms: 0,
                    access_keys: Vec::new(),
                    policies: BTreeMap::from([(
                        MIGRATED_POLICY_NAME.to_owned(),
                        FULL_ACCESS_POLICY.to_owned(),
                    )]),
                },
                v1_keys: Vec::new(),
            });
            if !entry.user.access_keys.iter().any(|k| k.id == access_key) {
                entry.user.access_keys.push(key);
            }
            entry.v1_keys.push(access_key);
        }
        Ok(users)
    }

    /// Writes `user` in the current format, removing its v1 records in the same transaction.
    fn save(&self, user: &UserRecord, v1_keys: &[String]) -> Result<(), UserError> {
        let json = Zeroizing::new(
            serde_json::to_vec(user).expect("user records serialize: strings, numbers and maps"),
        );
        let sealed = coffer_crypto::seal_bytes(self.root, &json, &aad(USER_AAD, &user.name))?;
        let mut ops = vec![KvOp::Put(USERS_NS.to_owned(), user.name.clone(), sealed)];
        ops.extend(
            v1_keys
                .iter()
                .map(|k| KvOp::Delete(V1_USERS_NS.to_owned(), k.clone())),
        );
        self.meta.kv_write(&ops)?;
        Ok(())
    }
}

fn no_such_user(name: &str) -> UserError {
    UserError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

/// IAM's user-name rule: 1–64 of letters, digits and `+=,.@_-`.
pub fn check_name(name: &str) -> Result<(), UserError> {
    check_iam_name("user name", name, 64)
}

/// IAM's policy-name rule: 1–128 of letters, digits and `+=,.@_-`.
fn check_policy_name(name: &str) -> Result<(), UserError> {
    check_iam_name("policy name", name, 128)
}

fn check_iam_name(what: &str, name: &str, max: usize) -> Result<(), UserError> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "{what} {:?} is not valid: 1–{max} characters of letters, digits and +=,.@_-",
            name.chars().take(max + 16).collect::<String>()
        )))
    }
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh access key id (`AKIA` + 16 characters) and 40-character secret, as AWS shapes them.
pub fn generate_key_pair() -> Result<(String, Zeroizing<String>), coffer_crypto::CryptoError> {
    let access_key = format!("AKIA{}", random_text(16, BASE32)?);
    let secret_key = Zeroizing::new(random_text(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    )?);
    Ok((access_key, secret_key))
}

/// Random text over `alphabet` (64 or fewer symbols: each byte picks one without bias when the
/// alphabet's size divides 256, as both alphabets here do).
fn random_text(len: usize, alphabet: &[u8]) -> Result<String, coffer_crypto::CryptoError> {
    let bytes: [u8; 64] = coffer_crypto::random_array()?;
    Ok(bytes[..len.min(64)]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

/// A user id for a migrated v1 user, the same on every load (17 base32 characters of the
/// SHA-256 of its name).
fn stable_id(name: &str) -> String {
    coffer_crypto::sha256(name.as_bytes())[..17]
        .iter()
        .map(|b| BASE32[*b as usize % BASE32.len()] as char)
        .collect()
}

fn aad(prefix: &[u8], name: &str) -> Vec<u8> {
    let mut aad = prefix.to_vec();
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MetaStore, Key256) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        (dir, meta, Key256::generate().unwrap())
    }

    #[test]
    fn users_keys_and_policies_round_trip_sealed() {
        let (_dir, meta, root) = store();
        let users = Users::new(&meta, &root);
        users.create("alice", 1).unwrap();
        assert!(matches!(
            users.create("alice", 2),
            Err(UserError::EntityAlreadyExists(_))
        ));
        assert!(matches!(
            users.create("bad name", 2),
            Err(UserError::Invalid(_))
        ));
        let key = users.create_access_key("alice", 3).unwrap();
        assert!(key.id.starts_with("AKIA") && key.secret.len() == 40);
        users
            .put_policy("alice", "read", FULL_ACCESS_POLICY)
            .unwrap();
        assert!(matches!(
            users.put_policy(
                "alice",
                "bad",
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#
            ),
            Err(UserError::MalformedPolicy(_))
        ));
        let alice = users.get("alice").unwrap();
        assert_eq!(alice.access_keys[0].id, key.id);
        assert_eq!(alice.policies.keys().collect::<Vec<_>>(), ["read"]);
        assert_eq!(users.owner_of(&key.id).unwrap().unwrap().name, "alice");
        assert!(matches!(
            users.delete("alice", false),
            Err(UserError::DeleteConflict(_))
        ));
        users.delete("alice", true).unwrap();
        assert!(users.list().unwrap().is_empty());
        // Another root key cannot open the records.
        users.create("bob", 4).unwrap();
        assert!(matches!(
            Users::new(&meta, &Key256::generate().unwrap()).list(),
            Err(UserError::Corrupt(_))
        ));
    }

    #[test]
    fn at_most_two_access_keys() {
        let (_dir, meta, root) = store();
        let users = Users::new(&meta, &root);
        users.create("carol", 0).unwrap();
        let first = users.create_access_key("carol", 0).unwrap();
        users.create_access_key("carol", 0).unwrap();
        assert!(matches!(
            users.create_access_key("carol", 0),
            Err(UserError::LimitExceeded(_))
        ));
        users.delete_access_key("carol", &first.id).unwrap();
        assert!(matches!(
            users.delete_access_key("carol", &first.id),
            Err(UserError::NoSuchEntity(_))
        ));
        assert_eq!(users.get("carol").unwrap().access_keys.len(), 1);
    }

    /// A user written by the release before identity policies keeps full access and is rewritten
    /// in the new format (its old record gone) on its first change.
    #[test]
    fn v1_users_are_read_with_full_access_and_upgraded_on_write() {
        let (_dir, meta, root) = store();
        let json =
            br#"{"v":1,"name":"legacy","secret_key":"LegacySecret000000000000000000000000000A"}"#;
        let sealed =
            coffer_crypto::seal_bytes(&root, json, &aad(V1_USER_AAD, "AKIALEGACY0000000001"))
                .unwrap();
        meta.kv_write(&[KvOp::Put(
            V1_USERS_NS.to_owned(),
            "AKIALEGACY0000000001".to_owned(),
            sealed,
        )])
        .unwrap();
        let users = Users::new(&meta, &root);
        let legacy = users.get("legacy").unwrap();
        assert_eq!(legacy.access_keys[0].id, "AKIALEGACY0000000001");
        assert_eq!(legacy.policies[MIGRATED_POLICY_NAME], FULL_ACCESS_POLICY);
        assert_eq!(users.get("legacy").unwrap().user_id, legacy.user_id);
        users.delete_policy("legacy", MIGRATED_POLICY_NAME).unwrap();
        assert!(meta.kv_scan(V1_USERS_NS, "").unwrap().is_empty());
        let upgraded = users.get("legacy").unwrap();
        assert!(upgraded.policies.is_empty());
        assert_eq!(
            upgraded.access_keys[0].secret,
            "LegacySecret000000000000000000000000000A"
        );
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let key = AccessKey {
            id: "AKIAX".into(),
            secret: "TopSecret".into(),
            created_unix_ms: 0,
        };
        let text = format!("{key:?}");
        assert!(
            text.contains("AKIAX") && !text.contains("TopSecret"),
            "{text}"
        );
    }
}
