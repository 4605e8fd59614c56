//! The key service's data: a KMS key (metadata, policy, versions of key material) and an alias, as
//! held in memory and as stored (inside sealed records, see `store.rs`).
//!
//! The serde shapes of [`KeyMeta`], [`VersionMeta`], [`RotationSchedule`] and [`Alias`] are part of
//! the stored format v1 (`docs/kms-format.md`): DO NOT RENAME fields or variants; add optional fields
//! with defaults. Key material lives only in [`Key::material`] as `Key256` (zeroized on drop, never
//! printed); nothing here serializes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_crypto::Key256;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::KmsError;
use crate::ids::Arns;
use crate::wire::epoch;
use coffer_policy::PolicyDocument;

/// The only key spec, usage, origin and algorithm Coffer implements.
pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
/// Key usage of every Coffer key.
pub const ENCRYPT_DECRYPT: &str = "ENCRYPT_DECRYPT";

/// Lifecycle state of a key (the AWS `KeyState` values Coffer uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable for everything.
    Enabled,
    /// Refuses cryptographic operations with `DisabledException`.
    Disabled,
    /// Waiting for its deletion date; refuses crypto with `KMSInvalidStateException`.
    PendingDeletion,
}

impl KeyState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages a key, as DescribeKey's `KeyManager` says. Stored in the key record since issue 8;
/// records written before have no field and are customer managed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    /// Created by CreateKey: the account manages it (policy, state, rotation, deletion).
    #[default]
    #[serde(rename = "CUSTOMER")]
    Customer,
    /// Created by the key service for an AWS service on first use (`alias/aws/<service>`): its
    /// policy, state, rotation and life are the service's, never a caller's.
    #[serde(rename = "AWS")]
    Aws,
}

impl KeyManager {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyManager::Customer => "CUSTOMER",
            KeyManager::Aws => "AWS",
        }
    }

    /// Whether this is the default, which stored records leave out.
    fn is_customer(&self) -> bool {
        *self == KeyManager::Customer
    }
}

/// How a version of key material came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionOrigin {
    /// Made by CreateKey (version 1).
    Created,
    /// Made by scheduled automatic rotation.
    Automatic,
    /// Made by RotateKeyOnDemand.
    OnDemand,
}

/// Metadata of one version of key material (the material itself is in [`Key::material`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// 1 for the material the key was created with, +1 per rotation.
    pub number: u32,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Creation, automatic or on-demand rotation.
    pub origin: VersionOrigin,
}

/// Automatic rotation: every `period_days` after `anchor_ms` (when rotation was enabled, or the last
/// automatic rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationSchedule {
    /// 90–2560.
    pub period_days: u32,
    /// Unix milliseconds.
    pub anchor_ms: i64,
}

impl RotationSchedule {
    /// When the next automatic rotation is due, unix milliseconds.
    pub fn next_ms(&self) -> i64 {
        self.anchor_ms + i64::from(self.period_days) * DAY_MS
    }
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Everything about a key except its material. Stored format v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The UUID, hyphenated lower case.
    pub id: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Free text, up to 8192 characters.
    pub description: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// When a key pending deletion is destroyed, unix milliseconds.
    pub deletion_ms: Option<i64>,
    /// The waiting period asked for by ScheduleKeyDeletion.
    pub pending_window_days: Option<u32>,
    /// Automatic rotation, when enabled.
    pub rotation: Option<RotationSchedule>,
    /// Tag key → value.
    pub tags: BTreeMap<String, String>,
    /// The key policy named "default", as the JSON text the caller gave.
    pub policy: String,
    /// Every version, oldest first; the last one encrypts.
    pub versions: Vec<VersionMeta>,
    /// Customer or AWS managed. Left out of the stored JSON for customer managed keys, so their
    /// records are byte for byte what earlier builds wrote, and records without it read as
    /// customer managed.
    #[serde(default, skip_serializing_if = "KeyManager::is_customer")]
    pub key_manager: KeyManager,
}

/// A key as the service holds it: metadata, the parsed policy and the decrypted material of every
/// version. Cloned on each change (copy on write); material is shared, never copied.
#[derive(Clone)]
pub struct Key {
    /// Metadata.
    pub meta: KeyMeta,
    /// The key id as a UUID, for ciphertext blobs.
    pub uuid: Uuid,
    /// The key ARN.
    pub arn: String,
    /// `meta.policy`, parsed.
    pub policy: Arc<PolicyDocument>,
    /// Material of version `i + 1` at index `i`. Dropping the last `Arc` zeroizes it.
    pub material: Vec<Arc<Key256>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("arn", &self.arn)
            .field("state", &self.meta.state)
            .field("versions", &self.material.len())
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The newest version: what Encrypt and GenerateDataKey use.
    pub fn current(&self) -> (u32, &Key256) {
        let material = self
            .material
            .last()
            .expect("a key always has at least the version it was created with");
        (self.material.len() as u32, material)
    }

    /// The material of one version, if it exists.
    pub fn version(&self, number: u32) -> Option<&Key256> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.material.get(index).map(|m| m.as_ref())
    }

    /// Refuses cryptographic use unless the key is enabled.
    pub fn check_usable(&self) -> Result<(), KmsError> {
        match self.meta.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", self.arn))),
            KeyState::PendingDeletion => Err(self.pending_deletion_error()),
        }
    }

    /// Refuses management changes to a key pending deletion.
    pub fn check_not_pending_deletion(&self) -> Result<(), KmsError> {
        match self.meta.state {
            KeyState::PendingDeletion => Err(self.pending_deletion_error()),
            KeyState::Enabled | KeyState::Disabled => Ok(()),
        }
    }

    fn pending_deletion_error(&self) -> KmsError {
        KmsError::InvalidState(format!("{} is pending deletion.", self.arn))
    }

    /// The AWS `KeyMetadata` structure of CreateKey and DescribeKey.
    pub fn metadata_json(&self, arns: &Arns) -> Value {
        let m = &self.meta;
        let mut out = json!({
            "AWSAccountId": arns.account(),
            "KeyId": m.id,
            "Arn": self.arn,
            "CreationDate": epoch(m.created_ms),
            "Enabled": m.state == KeyState::Enabled,
            "Description": m.description,
            "KeyUsage": ENCRYPT_DECRYPT,
            "KeyState": m.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": m.key_manager.as_str(),
            "CustomerMasterKeySpec": SYMMETRIC_DEFAULT,
            "KeySpec": SYMMETRIC_DEFAULT,
            "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
            "MultiRegion": false,
        });
        if let Some(deletion) = m.deletion_ms {
            out["DeletionDate"] = epoch(deletion).into();
        }
        if let Some(days) = m.pending_window_days {
            out["PendingDeletionWindowInDays"] = days.into();
        }
        out
    }
}

/// An alias: a name that points at one key. Stored format v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// `alias/…`.
    pub name: String,
    /// The key id it points at.
    pub target: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds of the last UpdateAlias (or creation).
    pub updated_ms: i64,
}

/// Unix milliseconds of a time.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_metadata_keeps_its_field_names() {
        // Frozen format v1: a rename here would make every stored key unreadable.
        let meta = KeyMeta {
            id: "k".into(),
            created_ms: 1,
            description: String::new(),
            state: KeyState::PendingDeletion,
            deletion_ms: Some(2),
            pending_window_days: Some(7),
            rotation: Some(RotationSchedule {
                period_days: 90,
                anchor_ms: 3,
            }),
            tags: BTreeMap::new(),
            policy: "{}".into(),
            versions: vec![VersionMeta {
                number: 1,
                created_ms: 1,
                origin: VersionOrigin::OnDemand,
            }],
            key_manager: KeyManager::Customer,
        };
        let text = serde_json::to_string(&meta).unwrap();
        assert_eq!(
            text,
            r#"{"id":"k","created_ms":1,"description":"","state":"PendingDeletion","deletion_ms":2,"pending_window_days":7,"rotation":{"period_days":90,"anchor_ms":3},"tags":{},"policy":"{}","versions":[{"number":1,"created_ms":1,"origin":"OnDemand"}]}"#
        );
        assert_eq!(serde_json::from_str::<KeyMeta>(&text).unwrap(), meta);
    }

    #[test]
    fn aws_managed_keys_say_so_and_old_records_are_customer_managed() {
        let old = r#"{"id":"k","created_ms":1,"description":"","state":"Enabled","deletion_ms":null,"pending_window_days":null,"rotation":null,"tags":{},"policy":"{}","versions":[]}"#;
        let meta: KeyMeta = serde_json::from_str(old).unwrap();
        assert_eq!(meta.key_manager, KeyManager::Customer);
        let managed = KeyMeta {
            key_manager: KeyManager::Aws,
            ..meta
        };
        let text = serde_json::to_string(&managed).unwrap();
        assert!(text.ends_with(r#","key_manager":"AWS"}"#), "{text}");
        assert_eq!(serde_json::from_str::<KeyMeta>(&text).unwrap(), managed);
    }

    #[test]
    fn next_rotation_is_a_period_after_the_anchor() {
        let s = RotationSchedule {
            period_days: 365,
            anchor_ms: 1000,
        };
        assert_eq!(s.next_ms(), 1000 + 365 * DAY_MS);
    }
}
