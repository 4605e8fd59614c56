//! What binds every sealed thing and every record to the object it belongs to, so that someone
//! who can write the metadata database cannot move one object's data key, metadata or record
//! under another name, or alter a record, without a check failing (record format v2).
//!
//! - An object version is named by [`ObjectId`]: bucket, key and a version id that every write
//!   makes anew ([`new_version_id`]; a multipart upload gets its own at creation).
//! - The wrapping of its data key and its sealed user metadata carry the `ObjectId` in their
//!   associated data ([`dek_aad`], [`metadata_aad`]).
//! - Each object, upload and part record carries a MAC ([`RecordMac`]): HMAC-SHA256 under a key
//!   derived from the root key, over a domain string, what the record is stored under, and the
//!   record's JSON encoding without its `mac`.
//!
//! Frozen format v2: changing a label or a field order here makes every v2 record unreadable.
//! Fields are length-prefixed (u32 big-endian) so that no two inputs share an encoding.
//!
//! What this cannot see: a record replaced by an *older* record of the same name that was valid
//! then (a rollback of one object, or of the whole database), since nothing outside the database
//! remembers which version is current. This module holds keys only as [`Key256`].

use crate::error::api_error;
use coffer_crypto::Key256;
use coffer_store::{
    BUCKET_RECORD_VERSION, BucketRecord, ObjectRecord, PartLayout, RECORD_VERSION, UploadRecord,
};
use s3s::S3Error;

/// The HKDF info of the record MAC key. Frozen format v2.
const RECORD_MAC_INFO: &[u8] = b"coffer record mac v2";
/// Domain labels of the MAC inputs and AADs. Frozen format v2.
const OBJECT_LABEL: &[u8] = b"coffer object record v2";
const UPLOAD_LABEL: &[u8] = b"coffer upload record v2";
const PART_LABEL: &[u8] = b"coffer part record v2";
const BUCKET_LABEL: &[u8] = b"coffer bucket record v2";
const DEK_LABEL: &[u8] = b"coffer dek v2";
const METADATA_LABEL: &[u8] = b"coffer user metadata v2";

/// One version of one object: what its data key, metadata and record are bound to.
#[derive(Clone, Copy, Debug)]
pub struct ObjectId<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: &'a str,
}

/// A fresh version id: 12 hex digits of the time in milliseconds, then 20 random hex digits, so
/// that ids sort by creation time (what versioned listings will want).
pub fn new_version_id() -> String {
    let ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{ms:012x}{}", &random[..20])
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn fields(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        push_field(&mut out, p);
    }
    out
}

/// Associated data of a data key wrapped by a service key (`key_id`) for object `id`.
pub fn dek_aad(id: &ObjectId<'_>, key_id: &str) -> Vec<u8> {
    fields(&[
        DEK_LABEL,
        key_id.as_bytes(),
        id.bucket.as_bytes(),
        id.key.as_bytes(),
        id.version_id.as_bytes(),
    ])
}

/// Associated data of the sealed user metadata of object `id`.
pub fn metadata_aad(id: &ObjectId<'_>) -> Vec<u8> {
    fields(&[
        METADATA_LABEL,
        id.bucket.as_bytes(),
        id.key.as_bytes(),
        id.version_id.as_bytes(),
    ])
}

/// The key that authenticates records. Derived once from the root key.
pub struct RecordMac {
    key: Key256,
}

impl std::fmt::Debug for RecordMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordMac([redacted])")
    }
}

impl RecordMac {
    /// The record MAC key of a deployment.
    pub fn derive(root: &Key256) -> RecordMac {
        RecordMac {
            key: coffer_crypto::derive_key(root, &[], RECORD_MAC_INFO),
        }
    }

    fn mac(&self, label: &[u8], names: &[&[u8]], json: &[u8]) -> Vec<u8> {
        let mut input = fields(&[label]);
        for n in names {
            push_field(&mut input, n);
        }
        push_field(&mut input, json);
        coffer_crypto::hmac_sha256(self.key.expose_secret(), &input).to_vec()
    }

    /// Sets `rec.mac` for the object stored at (`bucket`, `key`).
    pub fn sign_object(&self, bucket: &str, key: &str, rec: &mut ObjectRecord) {
        rec.mac = None;
        let mac = self.mac(
            OBJECT_LABEL,
            &[bucket.as_bytes(), key.as_bytes()],
            &to_json(rec),
        );
        rec.mac = Some(mac);
    }

    /// Refuses a record that is not a v2 record with a valid MAC for (`bucket`, `key`). Takes the
    /// record mutably only to leave its `mac` out of the encoding while it is checked (a clone
    /// per GET cost more than the MAC); the record is as it was afterwards.
    pub fn check_object(
        &self,
        bucket: &str,
        key: &str,
        rec: &mut ObjectRecord,
    ) -> Result<(), S3Error> {
        let given = rec.mac.take();
        let expected = self.mac(
            OBJECT_LABEL,
            &[bucket.as_bytes(), key.as_bytes()],
            &to_json(rec),
        );
        let ok = given
            .as_deref()
            .is_some_and(|g| coffer_crypto::ct_eq(g, &expected));
        rec.mac = given;
        verdict(rec.v, ok, "object", bucket, key)
    }

    /// Sets `rec.mac` for an upload (stored under its bucket and upload id; the key is inside).
    pub fn sign_upload(&self, rec: &mut UploadRecord) {
        rec.mac = None;
        let mac = self.mac(
            UPLOAD_LABEL,
            &[rec.bucket.as_bytes(), rec.upload_id.as_bytes()],
            &to_json(rec),
        );
        rec.mac = Some(mac);
    }

    /// Refuses an upload record that is not v2 with a valid MAC for the (`bucket`, `upload_id`)
    /// it was stored under (a record copied under another id fails).
    pub fn check_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        rec: &UploadRecord,
    ) -> Result<(), S3Error> {
        let mut unsigned = rec.clone();
        let given = unsigned.mac.take();
        let expected = self.mac(
            UPLOAD_LABEL,
            &[bucket.as_bytes(), upload_id.as_bytes()],
            &to_json(&unsigned),
        );
        let ok = given.is_some_and(|g| coffer_crypto::ct_eq(&g, &expected));
        verdict(rec.v, ok, "upload", bucket, upload_id)
    }

    /// Makes `rec` a current-version bucket record and sets its `mac`.
    pub fn sign_bucket(&self, rec: &mut BucketRecord) {
        rec.v = BUCKET_RECORD_VERSION;
        rec.mac = None;
        let mac = self.mac(BUCKET_LABEL, &[rec.name.as_bytes()], &to_json(rec));
        rec.mac = Some(mac);
    }

    /// Checks a bucket record read from the store: a version 2 record with a valid MAC for the
    /// bucket it was stored under. Unsigned records (version 1, written before bucket records
    /// were signed) are signed once at startup ([`crate::upgrade::sign_bucket_records`]), so an
    /// unsigned record found later was written by someone without the root key: refused.
    pub fn check_bucket(&self, name: &str, rec: &mut BucketRecord) -> Result<(), S3Error> {
        let given = rec.mac.take();
        let expected = self.mac(BUCKET_LABEL, &[name.as_bytes()], &to_json(rec));
        let ok = rec.name == name
            && rec.v == BUCKET_RECORD_VERSION
            && given
                .as_deref()
                .is_some_and(|g| coffer_crypto::ct_eq(g, &expected));
        rec.mac = given;
        if ok {
            return Ok(());
        }
        tracing::error!(
            kind = "bucket",
            bucket = name,
            version = rec.v,
            "a record failed its integrity check (altered, moved, or of the old format after the upgrade)"
        );
        Err(api_error!(
            InternalError,
            "We encountered an internal error. Please try again."
        ))
    }

    /// Sets `part.mac` for a part of `upload_id` (the part number is inside the layout).
    pub fn sign_part(&self, bucket: &str, upload_id: &str, part: &mut PartLayout) {
        part.mac = None;
        let mac = self.mac(
            PART_LABEL,
            &[bucket.as_bytes(), upload_id.as_bytes()],
            &to_json(part),
        );
        part.mac = Some(mac);
    }

    /// Refuses a part record without a valid MAC for its upload.
    pub fn check_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: &PartLayout,
    ) -> Result<(), S3Error> {
        let mut unsigned = part.clone();
        let given = unsigned.mac.take();
        let expected = self.mac(
            PART_LABEL,
            &[bucket.as_bytes(), upload_id.as_bytes()],
            &to_json(&unsigned),
        );
        // Parts carry no version of their own: the upload's.
        let ok = given.is_some_and(|g| coffer_crypto::ct_eq(&g, &expected));
        verdict(RECORD_VERSION, ok, "part", bucket, upload_id)
    }
}

fn to_json<T: serde::Serialize>(rec: &T) -> Vec<u8> {
    serde_json::to_vec(rec).expect("records serialize to JSON")
}

/// The answer for a record whose version and MAC were checked: any failure is a server fault
/// (the database was altered, or records of the old format appeared after the upgrade), logged
/// with what it names and answered `InternalError` without detail.
fn verdict(
    version: u32,
    mac_ok: bool,
    kind: &str,
    bucket: &str,
    name: &str,
) -> Result<(), S3Error> {
    if version == RECORD_VERSION && mac_ok {
        return Ok(());
    }
    tracing::error!(
        kind,
        bucket,
        name,
        version,
        "a record failed its integrity check (altered, moved, or of the old format after the upgrade)"
    );
    Err(api_error!(
        InternalError,
        "We encountered an internal error. Please try again."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::{Checksums, Envelope};

    fn record() -> ObjectRecord {
        ObjectRecord {
            v: RECORD_VERSION,
            size: 5,
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            last_modified_unix_ms: 1,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            sealed_user_metadata: None,
            checksums: Checksums::default(),
            envelope: Envelope {
                mode: "AES256".into(),
                key_id: "service-key/1".into(),
                wrapped_dek: vec![1; 60],
                format_version: 1,
                segment_size: 65536,
                context: None,
                outer_wrapped_dek: None,
                bucket_key: None,
                customer_key_check: None,
            },
            parts: Vec::new(),
            version_id: Some(new_version_id()),
            mac: None,
        }
    }

    #[test]
    fn a_record_checks_only_under_its_own_name_and_unaltered() {
        let mac = RecordMac::derive(&Key256::generate().unwrap());
        let mut rec = record();
        mac.sign_object("b", "k", &mut rec);
        let mut checked = rec.clone();
        mac.check_object("b", "k", &mut checked).unwrap();
        assert_eq!(checked, rec, "the record is as it was");
        assert!(mac.check_object("b", "other", &mut rec.clone()).is_err());
        assert!(
            mac.check_object("bk", "", &mut rec.clone()).is_err(),
            "fields are length-prefixed"
        );
        let mut altered = rec.clone();
        altered.size = 6;
        assert!(mac.check_object("b", "k", &mut altered).is_err());
        let mut unsigned = rec.clone();
        unsigned.mac = None;
        assert!(mac.check_object("b", "k", &mut unsigned).is_err());
        let mut old = rec.clone();
        old.v = coffer_store::LEGACY_RECORD_VERSION;
        mac.sign_object("b", "k", &mut old);
        assert!(
            mac.check_object("b", "k", &mut old).is_err(),
            "v1 records are refused"
        );
        let other = RecordMac::derive(&Key256::generate().unwrap());
        assert!(other.check_object("b", "k", &mut rec.clone()).is_err());
    }

    #[test]
    fn parts_are_bound_to_their_upload_and_number() {
        let mac = RecordMac::derive(&Key256::generate().unwrap());
        let mut part = PartLayout {
            part_number: 1,
            blob_id: "blob".into(),
            size: 5,
            nonce_prefix: vec![0; 7],
            part_salt: Some(vec![1; 16]),
            etag: "e".into(),
            checksums: Checksums::default(),
            inline: false,
            mac: None,
        };
        mac.sign_part("b", "u1", &mut part);
        mac.check_part("b", "u1", &part).unwrap();
        assert!(mac.check_part("b", "u2", &part).is_err());
        part.part_number = 2;
        assert!(mac.check_part("b", "u1", &part).is_err());
    }

    #[test]
    fn aads_name_the_whole_object_version() {
        let id = ObjectId {
            bucket: "b",
            key: "k",
            version_id: "v",
        };
        let moved = ObjectId { key: "k2", ..id };
        assert_ne!(
            dek_aad(&id, "service-key/1"),
            dek_aad(&moved, "service-key/1")
        );
        assert_ne!(
            metadata_aad(&id),
            metadata_aad(&ObjectId {
                version_id: "w",
                ..id
            })
        );
        let a = new_version_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_version_id() > a, "version ids sort by time");
    }

    #[test]
    fn bucket_records_are_signed_and_an_unsigned_one_is_refused() {
        let records = RecordMac::derive(&Key256::generate().unwrap());
        let mut rec = BucketRecord {
            v: coffer_store::LEGACY_BUCKET_RECORD_VERSION,
            name: "b".into(),
            region: "us-east-1".into(),
            created_unix_ms: 1,
            encryption: None,
            sse_c_allowed: true,
            policy: Some("{}".into()),
            cors: Some(Vec::new()),
            mac: None,
        };
        // Unsigned (v1 of an earlier release, or written in by hand): refused once the startup
        // signing has run, which is before any request is served.
        assert!(records.check_bucket("b", &mut rec.clone()).is_err());
        // Signed: it checks under its own name only, and not once altered.
        records.sign_bucket(&mut rec);
        assert_eq!(rec.v, BUCKET_RECORD_VERSION);
        records.check_bucket("b", &mut rec.clone()).unwrap();
        assert!(records.check_bucket("other", &mut rec.clone()).is_err());
        let mut altered = rec.clone();
        altered.policy = Some("{\"Statement\":[]}".into());
        assert!(records.check_bucket("b", &mut altered).is_err());
        let mut unsigned = rec.clone();
        unsigned.mac = None;
        assert!(records.check_bucket("b", &mut unsigned).is_err());
        let other_key = RecordMac::derive(&Key256::generate().unwrap());
        assert!(other_key.check_bucket("b", &mut rec.clone()).is_err());
    }
}
