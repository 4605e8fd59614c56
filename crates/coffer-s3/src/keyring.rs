//! The SSE-S3 service key ring: versioned AES-256 keys that wrap every object's data key.
//!
//! The ring lives in the metadata store's system table, sealed under the deployment root key
//! (DESIGN §3). Rotation adds a version and makes it current; old versions stay so that every
//! object written before still opens. Keys never leave this module except as `Key256`, which
//! zeroizes on drop and never prints.

use std::collections::BTreeMap;
use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::{CryptoError, Key256};
use coffer_store::{MetaStore, StoreError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Name of the system record that holds the sealed ring.
const RING_RECORD: &str = "sse-s3-keyring";
/// AAD of the sealed ring record. Frozen format v1: changing it makes existing rings unreadable.
const RING_AAD: &[u8] = b"coffer sse-s3 keyring v1";
/// Prefix of the key id stored in each object's envelope; the version number follows.
const KEY_ID_PREFIX: &str = "service-key/";

/// Why the ring could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// The ring did not open under the root key: wrong root key, or the record was altered.
    #[error(
        "the SSE-S3 key ring does not open under this root key (wrong root key, or the record was altered)"
    )]
    WrongRootKey,
    /// Randomness or sealing failed.
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// The database holds data but no key ring: it was lost or removed, and a new one would
    /// not open a single existing object.
    #[error(
        "the SSE-S3 key ring is missing from a metadata database that holds data; restore meta.redb from a backup (a new key ring would not open any existing object)"
    )]
    Missing,
    /// The stored ring record is not valid.
    #[error("the SSE-S3 key ring record is corrupt: {0}")]
    Corrupt(String),
}

/// Serialized shape of the ring (inside the sealed record). Format version 1.
#[derive(Serialize, Deserialize)]
struct RingRecord {
    v: u32,
    current: u32,
    keys: Vec<KeyEntry>,
    /// The object record format the database has been upgraded to (absent: 1). Kept in this
    /// sealed record so that nobody without the root key can make the server take records of
    /// the old, unauthenticated format again.
    #[serde(default = "first_record_format")]
    records: u32,
    /// Set while the upgrade to the next record format runs (a crash then leaves both formats,
    /// legitimately); otherwise records newer than `records` mean the ring was put back.
    #[serde(default)]
    upgrading: bool,
    /// Whether the KMS audit log has been anchored in the metadata database: from then on a
    /// missing anchor was removed, and the log is not adopted as one from an earlier release.
    #[serde(default)]
    audit_anchored: bool,
    /// Whether every bucket record has been signed (bucket record v2, with its MAC): from then on
    /// an unsigned bucket record was written by someone without the root key, and is refused.
    #[serde(default)]
    buckets_signed: bool,
}

fn first_record_format() -> u32 {
    coffer_store::LEGACY_RECORD_VERSION
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    version: u32,
    created_unix_ms: i64,
    /// base64 of the 32 key bytes; the whole record is sealed and zeroized after use.
    key: String,
}

/// The in-memory ring: every version, and which one wraps new data keys.
pub struct ServiceKeyRing {
    /// Every version with its key and creation time (unix ms).
    keys: RwLock<BTreeMap<u32, (Key256, i64)>>,
    current: RwLock<u32>,
    /// See [`RingRecord::records`] and [`RingRecord::upgrading`].
    records: RwLock<(u32, bool)>,
    /// See [`RingRecord::audit_anchored`].
    audit_anchored: RwLock<bool>,
    /// See [`RingRecord::buckets_signed`].
    buckets_signed: RwLock<bool>,
}

impl std::fmt::Debug for ServiceKeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceKeyRing")
            .field("current", &self.current_version())
            .finish_non_exhaustive()
    }
}

impl ServiceKeyRing {
    /// Loads the ring; creates it with one fresh version only in a database that holds nothing
    /// yet (first start). A ring missing from a database that holds data is never regenerated:
    /// the objects under it would become unreadable, so that is [`KeyringError::Missing`].
    pub fn load_or_create(meta: &MetaStore, root: &Key256) -> Result<ServiceKeyRing, KeyringError> {
        if let Some(sealed) = meta.get_system(RING_RECORD)? {
            return Self::open(&sealed, root);
        }
        if meta.holds_data()? {
            return Err(KeyringError::Missing);
        }
        let ring = ServiceKeyRing {
            keys: RwLock::new(BTreeMap::new()),
            current: RwLock::new(0),
            // A new database holds no record of an older format.
            records: RwLock::new((coffer_store::RECORD_VERSION, false)),
            audit_anchored: RwLock::new(false),
            // Nor any unsigned bucket record.
            buckets_signed: RwLock::new(true),
        };
        ring.add_version()?;
        ring.save(meta, root)?;
        Ok(ring)
    }

    /// Adds a new version, makes it current and persists the ring. Returns the new version.
    /// Refuses ([`KeyringError::Missing`]) when there is no ring to rotate.
    pub fn rotate(meta: &MetaStore, root: &Key256) -> Result<u32, KeyringError> {
        let sealed = meta.get_system(RING_RECORD)?.ok_or(KeyringError::Missing)?;
        let ring = Self::open(&sealed, root)?;
        let version = ring.add_version()?;
        ring.save(meta, root)?;
        Ok(version)
    }

    /// The record format the database has been upgraded to.
    pub fn records_format(&self) -> u32 {
        self.records.read().expect("key ring lock poisoned").0
    }

    /// Whether an upgrade of the records to the next format has started and not finished.
    pub fn records_upgrading(&self) -> bool {
        self.records.read().expect("key ring lock poisoned").1
    }

    /// Records (durably, in the sealed ring) the record format and whether an upgrade to the
    /// next one is under way.
    pub fn set_records_format(
        &self,
        meta: &MetaStore,
        root: &Key256,
        version: u32,
        upgrading: bool,
    ) -> Result<(), KeyringError> {
        *self.records.write().expect("key ring lock poisoned") = (version, upgrading);
        self.save(meta, root)
    }

    /// Whether every bucket record has been signed (see [`RingRecord::buckets_signed`]).
    pub fn buckets_signed(&self) -> bool {
        *self.buckets_signed.read().expect("key ring lock poisoned")
    }

    /// Records (durably, in the sealed ring) that every bucket record is signed.
    pub fn set_buckets_signed(&self, meta: &MetaStore, root: &Key256) -> Result<(), KeyringError> {
        *self.buckets_signed.write().expect("key ring lock poisoned") = true;
        self.save(meta, root)
    }

    /// Whether the KMS audit log has been anchored before (see [`RingRecord::audit_anchored`]).
    pub fn audit_anchored(&self) -> bool {
        *self.audit_anchored.read().expect("key ring lock poisoned")
    }

    /// Records (durably, in the sealed ring) that the audit log is anchored.
    pub fn set_audit_anchored(&self, meta: &MetaStore, root: &Key256) -> Result<(), KeyringError> {
        *self.audit_anchored.write().expect("key ring lock poisoned") = true;
        self.save(meta, root)
    }

    /// The version that wraps new data keys.
    pub fn current_version(&self) -> u32 {
        *self.current.read().expect("key ring lock poisoned")
    }

    /// The current key, with the id to record in the envelope.
    pub fn current(&self) -> (String, Key256) {
        let version = self.current_version();
        let key = self
            .get(version)
            .expect("invariant: the current version is always in the ring");
        (key_id(version), key)
    }

    /// The key of `version`, if the ring has it.
    pub fn get(&self, version: u32) -> Option<Key256> {
        self.keys
            .read()
            .expect("key ring lock poisoned")
            .get(&version)
            .map(|(k, _)| k.clone())
    }

    /// The key named by an envelope key id (`service-key/<n>`).
    pub fn by_key_id(&self, id: &str) -> Option<Key256> {
        let version = id.strip_prefix(KEY_ID_PREFIX)?.parse().ok()?;
        self.get(version)
    }

    fn add_version(&self) -> Result<u32, KeyringError> {
        let key = Key256::generate()?;
        let mut keys = self.keys.write().expect("key ring lock poisoned");
        let version = keys.keys().next_back().copied().unwrap_or(0) + 1;
        keys.insert(
            version,
            (key, time::OffsetDateTime::now_utc().unix_timestamp() * 1000),
        );
        *self.current.write().expect("key ring lock poisoned") = version;
        Ok(version)
    }

    fn open(sealed: &[u8], root: &Key256) -> Result<ServiceKeyRing, KeyringError> {
        let plain = coffer_crypto::open_bytes(root, sealed, RING_AAD)
            .map_err(|_| KeyringError::WrongRootKey)?;
        let record: RingRecord =
            serde_json::from_slice(&plain).map_err(|e| KeyringError::Corrupt(e.to_string()))?;
        if record.v != 1 {
            return Err(KeyringError::Corrupt(format!(
                "unknown key ring version {}",
                record.v
            )));
        }
        let mut keys = BTreeMap::new();
        for entry in &record.keys {
            let bytes = Zeroizing::new(
                B64.decode(&entry.key)
                    .map_err(|e| KeyringError::Corrupt(e.to_string()))?,
            );
            keys.insert(
                entry.version,
                (Key256::from_slice(&bytes)?, entry.created_unix_ms),
            );
        }
        if !keys.contains_key(&record.current) {
            return Err(KeyringError::Corrupt("current version missing".into()));
        }
        Ok(ServiceKeyRing {
            keys: RwLock::new(keys),
            current: RwLock::new(record.current),
            records: RwLock::new((record.records, record.upgrading)),
            audit_anchored: RwLock::new(record.audit_anchored),
            buckets_signed: RwLock::new(record.buckets_signed),
        })
    }

    fn save(&self, meta: &MetaStore, root: &Key256) -> Result<(), KeyringError> {
        let keys = self.keys.read().expect("key ring lock poisoned");
        let record = RingRecord {
            v: 1,
            current: self.current_version(),
            records: self.records_format(),
            upgrading: self.records_upgrading(),
            audit_anchored: self.audit_anchored(),
            buckets_signed: self.buckets_signed(),
            keys: keys
                .iter()
                .map(|(v, (k, created))| KeyEntry {
                    version: *v,
                    created_unix_ms: *created,
                    key: B64.encode(k.expose_secret()),
                })
                .collect(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| KeyringError::Corrupt(e.to_string()))?,
        );
        for mut entry in record.keys {
            zeroize::Zeroize::zeroize(&mut entry.key);
        }
        let sealed = coffer_crypto::seal_bytes(root, &json, RING_AAD)?;
        meta.put_system(RING_RECORD, &sealed)?;
        Ok(())
    }
}

fn key_id(version: u32) -> String {
    format!("{KEY_ID_PREFIX}{version}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::BucketRecord;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("meta.redb")).unwrap();
        (dir, meta)
    }

    #[test]
    fn first_start_creates_the_ring_and_later_starts_load_it() {
        let (_dir, meta) = store();
        let root = Key256::generate().unwrap();
        let ring = ServiceKeyRing::load_or_create(&meta, &root).unwrap();
        let (id, key) = ring.current();
        let again = ServiceKeyRing::load_or_create(&meta, &root).unwrap();
        assert_eq!(again.current().0, id);
        assert_eq!(
            again.by_key_id(&id).unwrap().expose_secret(),
            key.expose_secret()
        );
        assert!(matches!(
            ServiceKeyRing::load_or_create(&meta, &Key256::generate().unwrap()),
            Err(KeyringError::WrongRootKey)
        ));
    }

    /// Users added before the first start (kv records) are not data a new ring would orphan.
    #[test]
    fn a_ring_is_created_over_a_database_that_holds_only_users() {
        let (_dir, meta) = store();
        let root = Key256::generate().unwrap();
        crate::users::Users::new(&meta, &root)
            .create("early", 0)
            .unwrap();
        ServiceKeyRing::load_or_create(&meta, &root).unwrap();
    }

    /// Regression: a ring missing from a database with buckets was silently recreated, and
    /// every existing object became unreadable.
    #[test]
    fn a_missing_ring_is_not_regenerated_over_existing_data() {
        let (_dir, meta) = store();
        meta.create_bucket(&BucketRecord {
            v: coffer_store::BUCKET_RECORD_VERSION,
            name: "photos".into(),
            region: "us-east-1".into(),
            created_unix_ms: 0,
            encryption: None,
            sse_c_allowed: false,
            policy: None,
            cors: None,
            mac: None,
        })
        .unwrap();
        let root = Key256::generate().unwrap();
        assert!(matches!(
            ServiceKeyRing::load_or_create(&meta, &root),
            Err(KeyringError::Missing)
        ));
        assert!(matches!(
            ServiceKeyRing::rotate(&meta, &root),
            Err(KeyringError::Missing)
        ));
        assert_eq!(meta.get_system(RING_RECORD).unwrap(), None);
    }
}
