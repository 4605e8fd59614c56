//! Persistence of the key service in the metadata store (kv namespace `kms`), every record sealed
//! under the deployment root key (DESIGN §3, §5).
//!
//! Records (stored format v1, drawn in `docs/kms-format.md`):
//! - `key/<key-id>`: `seal_bytes(root, JSON {v: 1, meta, material}, AAD "coffer kms v1 key/<key-id>")`
//!   where `material[i]` is base64 of `wrap_key(root, version i+1, AAD "coffer kms v1 key/<key-id>
//!   material <i+1>")`: the key bytes are wrapped on their own, so no plaintext key ever sits in a
//!   serde buffer.
//! - `alias/<name>`: `seal_bytes(root, JSON {v: 1, alias}, AAD "coffer kms v1 alias/<name>")`.
//!
//! The AAD names the record, so a record moved to another name does not open. This module never
//! decides policy or state; it only turns [`Key`]s and [`Alias`]es into store operations and back.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_crypto::{Key256, open_bytes, seal_bytes, unwrap_key, wrap_key};
use coffer_store::{KvOp, MetaStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KmsError;
use crate::ids::Arns;
use crate::model::{Alias, Key, KeyMeta};
use crate::wire;
use coffer_policy::PolicyDocument;

/// The kv namespace of every KMS record. DO NOT CHANGE: existing databases hold it.
const NS: &str = "kms";
/// Version of the record JSON inside the seal.
const RECORD_VERSION: u32 = 1;
/// Prefix of key records.
const KEY_PREFIX: &str = "key/";
/// Prefix of alias records (alias names start with `alias/` themselves).
const ALIAS_PREFIX: &str = "alias/";

#[derive(Serialize, Deserialize)]
struct StoredKey {
    v: u32,
    meta: KeyMeta,
    /// base64 of each version's wrapped material, oldest first.
    material: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredAlias {
    v: u32,
    alias: Alias,
}

/// Everything loaded at start.
pub struct Loaded {
    /// Key id → key.
    pub keys: BTreeMap<String, Arc<Key>>,
    /// Alias name → alias.
    pub aliases: BTreeMap<String, Alias>,
}

/// Reads and writes the sealed records.
pub struct Records {
    meta: Arc<MetaStore>,
    root: Key256,
}

impl Records {
    /// Records in `meta`, sealed under `root`.
    pub fn new(meta: Arc<MetaStore>, root: Key256) -> Records {
        Records { meta, root }
    }

    /// Loads every key and alias. A record that does not open under this root key stops the
    /// service: serving without some keys would look like crypto-shredding that never happened.
    pub fn load(&self, arns: &Arns) -> Result<Loaded, KmsError> {
        let mut keys = BTreeMap::new();
        for (name, sealed) in self.meta.kv_scan(NS, KEY_PREFIX)? {
            let key = self.open_key(&name, &sealed, arns)?;
            keys.insert(key.meta.id.clone(), Arc::new(key));
        }
        let mut aliases = BTreeMap::new();
        for (name, sealed) in self.meta.kv_scan(NS, ALIAS_PREFIX)? {
            let json = open_bytes(&self.root, &sealed, aad(&name).as_bytes())
                .map_err(|_| unopenable(&name))?;
            let stored: StoredAlias =
                serde_json::from_slice(&json).map_err(|e| corrupt(&name, e))?;
            check_version(&name, stored.v)?;
            aliases.insert(stored.alias.name.clone(), stored.alias);
        }
        Ok(Loaded { keys, aliases })
    }

    fn open_key(&self, name: &str, sealed: &[u8], arns: &Arns) -> Result<Key, KmsError> {
        let json =
            open_bytes(&self.root, sealed, aad(name).as_bytes()).map_err(|_| unopenable(name))?;
        let stored: StoredKey = serde_json::from_slice(&json).map_err(|e| corrupt(name, e))?;
        check_version(name, stored.v)?;
        if name != key_record_name(&stored.meta.id) || stored.material.is_empty() {
            return Err(corrupt(name, "the record does not match its name"));
        }
        let uuid = Uuid::try_parse(&stored.meta.id).map_err(|e| corrupt(name, e))?;
        let mut material = Vec::with_capacity(stored.material.len());
        for (i, wrapped) in stored.material.iter().enumerate() {
            let wrapped = wire::decode_blob(wrapped, "material").map_err(|e| corrupt(name, e))?;
            let key = unwrap_key(
                &self.root,
                &wrapped,
                material_aad(&stored.meta.id, i + 1).as_bytes(),
            )
            .map_err(|_| unopenable(name))?;
            material.push(Arc::new(key));
        }
        let policy = PolicyDocument::parse(&stored.meta.policy)
            .map_err(|e| corrupt(name, format_args!("stored key policy: {e}")))?;
        Ok(Key {
            arn: arns.key(&stored.meta.id),
            uuid,
            policy: Arc::new(policy),
            material,
            meta: stored.meta,
        })
    }

    /// The store operation that writes `key` (metadata and every version).
    pub fn put_key(&self, key: &Key) -> Result<KvOp, KmsError> {
        let name = key_record_name(&key.meta.id);
        let mut material = Vec::with_capacity(key.material.len());
        for (i, version) in key.material.iter().enumerate() {
            let wrapped = wrap_key(
                &self.root,
                version,
                material_aad(&key.meta.id, i + 1).as_bytes(),
            )?;
            material.push(wire::encode(&wrapped));
        }
        let stored = StoredKey {
            v: RECORD_VERSION,
            meta: key.meta.clone(),
            material,
        };
        let json = serde_json::to_vec(&stored).map_err(KmsError::internal)?;
        let sealed = seal_bytes(&self.root, &json, aad(&name).as_bytes())?;
        Ok(KvOp::Put(NS.into(), name, sealed))
    }

    /// The store operation that removes a key record, and with it the only stored copy of its
    /// material.
    pub fn delete_key(&self, id: &str) -> KvOp {
        KvOp::Delete(NS.into(), key_record_name(id))
    }

    /// The store operation that writes an alias.
    pub fn put_alias(&self, alias: &Alias) -> Result<KvOp, KmsError> {
        let stored = StoredAlias {
            v: RECORD_VERSION,
            alias: alias.clone(),
        };
        let json = serde_json::to_vec(&stored).map_err(KmsError::internal)?;
        let sealed = seal_bytes(&self.root, &json, aad(&alias.name).as_bytes())?;
        Ok(KvOp::Put(NS.into(), alias.name.clone(), sealed))
    }

    /// The store operation that removes an alias.
    pub fn delete_alias(&self, name: &str) -> KvOp {
        KvOp::Delete(NS.into(), name.to_owned())
    }

    /// Applies the operations in one transaction, on a blocking thread (redb fsyncs).
    pub async fn write(&self, ops: Vec<KvOp>) -> Result<(), KmsError> {
        let meta = Arc::clone(&self.meta);
        tokio::task::spawn_blocking(move || meta.kv_write(&ops))
            .await
            .map_err(|e| KmsError::internal(format_args!("store writer thread: {e}")))??;
        Ok(())
    }
}

fn key_record_name(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// AAD of a sealed record: names it. DO NOT CHANGE: frozen format v1.
fn aad(record_name: &str) -> String {
    format!("coffer kms v1 {record_name}")
}

/// AAD of one wrapped version of key material. DO NOT CHANGE: frozen format v1.
fn material_aad(key_id: &str, version: usize) -> String {
    format!("coffer kms v1 key/{key_id} material {version}")
}

fn check_version(name: &str, v: u32) -> Result<(), KmsError> {
    if v == RECORD_VERSION {
        Ok(())
    } else {
        Err(corrupt(
            name,
            format_args!("record version {v} is newer than this build reads"),
        ))
    }
}

fn unopenable(name: &str) -> KmsError {
    KmsError::internal(format_args!(
        "KMS record '{name}' does not open under this root key (wrong root key, or the record was altered)"
    ))
}

fn corrupt(name: &str, detail: impl std::fmt::Display) -> KmsError {
    KmsError::internal(format_args!("KMS record '{name}' is corrupt: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyState, VersionMeta, VersionOrigin};

    fn arns() -> Arns {
        Arns::new("us-east-1", "111122223333")
    }

    fn key(id: &str, versions: u32) -> Key {
        let policy = crate::key_policy::default_key_policy("111122223333");
        Key {
            meta: KeyMeta {
                id: id.into(),
                created_ms: 1,
                description: "d".into(),
                state: KeyState::Enabled,
                deletion_ms: None,
                pending_window_days: None,
                rotation: None,
                tags: BTreeMap::new(),
                policy: policy.clone(),
                versions: (1..=versions)
                    .map(|number| VersionMeta {
                        number,
                        created_ms: 1,
                        origin: VersionOrigin::Created,
                    })
                    .collect(),
                key_manager: Default::default(),
            },
            uuid: Uuid::try_parse(id).unwrap(),
            arn: arns().key(id),
            policy: Arc::new(PolicyDocument::parse(&policy).unwrap()),
            material: (0..versions)
                .map(|_| Arc::new(Key256::generate().unwrap()))
                .collect(),
        }
    }

    fn open_store() -> (tempfile::TempDir, Arc<MetaStore>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(MetaStore::open(&dir.path().join("meta.redb")).unwrap());
        (dir, meta)
    }

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[tokio::test]
    async fn keys_and_aliases_round_trip_through_sealed_records() {
        let (_dir, meta) = open_store();
        let root = Key256::generate().unwrap();
        let records = Records::new(Arc::clone(&meta), root.clone());
        let k = key(ID, 2);
        let alias = Alias {
            name: "alias/app".into(),
            target: ID.into(),
            created_ms: 5,
            updated_ms: 6,
        };
        records
            .write(vec![
                records.put_key(&k).unwrap(),
                records.put_alias(&alias).unwrap(),
            ])
            .await
            .unwrap();
        let loaded = Records::new(meta, root).load(&arns()).unwrap();
        let back = &loaded.keys[ID];
        assert_eq!(back.meta, k.meta);
        assert_eq!(back.material.len(), 2);
        for (a, b) in back.material.iter().zip(&k.material) {
            assert_eq!(a.expose_secret(), b.expose_secret());
        }
        assert_eq!(loaded.aliases["alias/app"], alias);
    }

    #[tokio::test]
    async fn stored_records_hold_no_plaintext_material() {
        let (_dir, meta) = open_store();
        let records = Records::new(Arc::clone(&meta), Key256::generate().unwrap());
        let k = key(ID, 1);
        records
            .write(vec![records.put_key(&k).unwrap()])
            .await
            .unwrap();
        let raw = meta.kv_get(NS, &key_record_name(ID)).unwrap().unwrap();
        let secret = k.material[0].expose_secret();
        assert!(!raw.windows(32).any(|w| w == secret));
        assert!(!raw.windows(4).any(|w| w == b"meta"));
    }

    #[tokio::test]
    async fn records_do_not_open_under_another_root_key() {
        let (_dir, meta) = open_store();
        let records = Records::new(Arc::clone(&meta), Key256::generate().unwrap());
        records
            .write(vec![records.put_key(&key(ID, 1)).unwrap()])
            .await
            .unwrap();
        let other = Records::new(meta, Key256::generate().unwrap());
        assert!(matches!(other.load(&arns()), Err(KmsError::Internal(_))));
    }

    #[tokio::test]
    async fn a_record_moved_to_another_name_does_not_open() {
        let (_dir, meta) = open_store();
        let records = Records::new(Arc::clone(&meta), Key256::generate().unwrap());
        let KvOp::Put(_, _, sealed) = records.put_key(&key(ID, 1)).unwrap() else {
            unreachable!("put_key makes a Put");
        };
        let other_id = "00000000-0000-4000-8000-000000000000";
        meta.kv_write(&[KvOp::Put(NS.into(), key_record_name(other_id), sealed)])
            .unwrap();
        assert!(matches!(records.load(&arns()), Err(KmsError::Internal(_))));
    }

    #[tokio::test]
    async fn deleted_records_are_gone() {
        let (_dir, meta) = open_store();
        let records = Records::new(Arc::clone(&meta), Key256::generate().unwrap());
        records
            .write(vec![records.put_key(&key(ID, 1)).unwrap()])
            .await
            .unwrap();
        records.write(vec![records.delete_key(ID)]).await.unwrap();
        assert!(records.load(&arns()).unwrap().keys.is_empty());
        assert!(meta.kv_get(NS, &key_record_name(ID)).unwrap().is_none());
    }
}
