//! The anchor: where the log ended at its last group commit (lines, bytes, the last line's link),
//! MAC'd under a key derived from the root key and kept outside the log, in the metadata database.
//! A chain can show that its lines were edited, but not that lines were cut off its end or that an
//! older copy was put back; a comparison with the anchor can.
//!
//! The record is a frozen format (docs/format.md, "Audit log"): version byte 1, then lines (u64
//! BE), bytes (u64 BE), link (32 bytes), then HMAC-SHA256(anchor key, those 49 bytes). It is not
//! secret, only authenticated. This module never decides what a mismatch means: the log does.

use coffer_crypto::{ct_eq, hmac_sha256};
use coffer_store::{KvOp, MetaStore};

use super::AuditError;
use super::chain::{AuditKeys, GENESIS, Link};

/// Namespace and key of the anchor in the metadata store's kv table. DO NOT CHANGE: a server that
/// no longer finds its anchor refuses to start.
pub const ANCHOR_NAMESPACE: &str = "audit";
/// See [`ANCHOR_NAMESPACE`].
pub const ANCHOR_KEY: &str = "anchor";

/// First byte of the record. Frozen: a new layout takes a new version and keeps reading this one.
const ANCHOR_VERSION: u8 = 1;
/// Bytes covered by the MAC: version, lines, bytes, link.
const SIGNED_LEN: usize = 1 + 8 + 8 + 32;
/// The whole record.
const RECORD_LEN: usize = SIGNED_LEN + 32;

/// How far the log reached at a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Complete lines.
    pub lines: u64,
    /// Bytes, every line's newline included: the offset where the next line starts.
    pub bytes: u64,
    /// Link of the last line ([`GENESIS`] when there is none).
    pub link: Link,
}

impl Anchor {
    /// An empty log.
    pub const EMPTY: Anchor = Anchor {
        lines: 0,
        bytes: 0,
        link: GENESIS,
    };

    /// The record to store.
    pub fn encode(&self, keys: &AuditKeys) -> Vec<u8> {
        let mut record = Vec::with_capacity(RECORD_LEN);
        record.push(ANCHOR_VERSION);
        record.extend_from_slice(&self.lines.to_be_bytes());
        record.extend_from_slice(&self.bytes.to_be_bytes());
        record.extend_from_slice(&self.link);
        let mac = hmac_sha256(keys.anchor.expose_secret(), &record);
        record.extend_from_slice(&mac);
        record
    }

    /// The anchor a stored record holds, if its MAC verifies; otherwise why not.
    pub fn decode(record: &[u8], keys: &AuditKeys) -> Result<Anchor, String> {
        if record.len() != RECORD_LEN || record[0] != ANCHOR_VERSION {
            return Err(format!(
                "the anchor record is not a version {ANCHOR_VERSION} record of {RECORD_LEN} bytes"
            ));
        }
        let (signed, mac) = record.split_at(SIGNED_LEN);
        if !ct_eq(&hmac_sha256(keys.anchor.expose_secret(), signed), mac) {
            return Err(
                "the anchor record's MAC does not verify: it was edited, or the root key is not \
                 the one the log was written with"
                    .to_owned(),
            );
        }
        let u64_at = |at: usize| {
            u64::from_be_bytes(signed[at..at + 8].try_into().expect("8 bytes of a u64"))
        };
        let mut link = [0u8; 32];
        link.copy_from_slice(&signed[17..49]);
        Ok(Anchor {
            lines: u64_at(1),
            bytes: u64_at(9),
            link,
        })
    }

    /// Lines, bytes and hex link, for messages and the recovery event.
    pub fn describe(&self) -> String {
        format!(
            "{} lines, {} bytes, last link {}",
            self.lines,
            self.bytes,
            hex::encode(self.link)
        )
    }
}

/// Where the anchor record lives: the metadata database in the server, anything in tests. A save
/// must be durable when it returns.
pub trait AnchorStore: Send + Sync {
    /// The stored record, if any.
    fn load(&self) -> Result<Option<Vec<u8>>, AuditError>;
    /// Replaces the record, durably.
    fn save(&self, record: &[u8]) -> Result<(), AuditError>;
    /// Whether this deployment has anchored its log before, as recorded somewhere the anchor's
    /// own storage cannot undo (the server keeps it in the sealed key ring). A missing anchor
    /// then means it was removed, not that the log predates anchoring.
    fn was_anchored(&self) -> bool {
        false
    }
}

impl AnchorStore for MetaStore {
    fn load(&self) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self.kv_get(ANCHOR_NAMESPACE, ANCHOR_KEY)?)
    }

    /// One redb transaction, committed with redb's immediate (fsynced) durability.
    fn save(&self, record: &[u8]) -> Result<(), AuditError> {
        Ok(self.kv_write(&[KvOp::Put(
            ANCHOR_NAMESPACE.to_owned(),
            ANCHOR_KEY.to_owned(),
            record.to_vec(),
        )])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_crypto::Key256;

    fn keys(seed: u8) -> AuditKeys {
        AuditKeys::derive(&Key256::from_bytes([seed; 32]))
    }

    #[test]
    fn an_anchor_round_trips_and_its_record_is_laid_out_as_documented() {
        let anchor = Anchor {
            lines: 3,
            bytes: 0x0102,
            link: [9; 32],
        };
        let record = anchor.encode(&keys(1));
        assert_eq!(record.len(), 81);
        assert_eq!(record[0], 1);
        assert_eq!(&record[1..9], &3u64.to_be_bytes());
        assert_eq!(&record[9..17], &0x0102u64.to_be_bytes());
        assert_eq!(&record[17..49], &[9; 32]);
        assert_eq!(
            &record[49..],
            &hmac_sha256(keys(1).anchor.expose_secret(), &record[..49])
        );
        assert_eq!(Anchor::decode(&record, &keys(1)), Ok(anchor));
    }

    #[test]
    fn an_edited_or_foreign_anchor_is_refused() {
        let record = Anchor::EMPTY.encode(&keys(1));
        assert!(Anchor::decode(&record, &keys(2)).is_err());
        for i in 0..record.len() {
            let mut edited = record.clone();
            edited[i] ^= 1;
            assert!(Anchor::decode(&edited, &keys(1)).is_err(), "byte {i}");
        }
        assert!(Anchor::decode(&record[..80], &keys(1)).is_err());
    }

    #[test]
    fn the_metadata_store_keeps_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(&dir.path().join("meta.redb")).unwrap();
        assert_eq!(AnchorStore::load(&meta).unwrap(), None);
        let record = Anchor::EMPTY.encode(&keys(1));
        AnchorStore::save(&meta, &record).unwrap();
        assert_eq!(AnchorStore::load(&meta).unwrap(), Some(record));
    }
}
