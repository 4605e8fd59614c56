//! The metadata schema: every record the [`crate::MetaStore`] persists, as serde types stored as
//! JSON bytes in redb.
//!
//! This module must never hold a plaintext key: data keys appear only wrapped ([`Envelope`]) and user
//! metadata only sealed by the S3 layer. The shapes here are a frozen on-disk format: every persisted
//! record carries `v` ([`RECORD_VERSION`]); changing a shape (renaming, retyping or removing a field,
//! changing an encoding) needs a new version number and code that keeps reading the old one.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Format version of the object, upload and part records this build writes.
///
/// DO NOT CHANGE without adding a new version. Version 2 adds, to objects and uploads, the
/// `version_id` that the data key's wrapping, the sealed metadata and the record's MAC are bound
/// to, and to objects, uploads and parts the `mac` itself (computed by the S3 layer). Version 1
/// records (written before) are still decoded, so that the S3 layer can upgrade them once; a
/// build that does not know a record's version refuses it as corrupt.
///
/// Rule for additive changes inside a version: a new field must be `#[serde(default)]` and
/// skipped when it has its default value, so that records written before it re-encode to the
/// same bytes (the MAC covers the record's JSON encoding).
pub const RECORD_VERSION: u32 = 2;
/// The version of records written before [`RECORD_VERSION`] 2: read (to be upgraded), never
/// written.
pub const LEGACY_RECORD_VERSION: u32 = 1;
/// Format version of bucket records this build writes.
///
/// DO NOT CHANGE without adding a new version. Version 2 adds the settings that restrict access
/// (`sse_c_allowed`, `policy`) and CORS, and the record's `mac`: a build that knows only version
/// 1 would ignore them and serve what they forbid, so it must refuse the record instead. Version 1
/// records are read as version 1 could say (no policy, no CORS, SSE-C blocked) and written back
/// as version 2 on change.
pub const BUCKET_RECORD_VERSION: u32 = 2;
/// Bucket records written before version 2: read, never written.
pub const LEGACY_BUCKET_RECORD_VERSION: u32 = 1;

/// A bucket. Changing the shape needs a new [`BUCKET_RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BucketRecord {
    /// Record format version, [`BUCKET_RECORD_VERSION`].
    pub v: u32,
    /// The bucket name (S3 naming rules are checked by the S3 layer).
    pub name: String,
    /// The region the bucket was created in.
    pub region: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
    /// The bucket's default encryption (PutBucketEncryption); absent means SSE-S3, as S3 has
    /// applied to every bucket since 2023. Absent in JSON when unset, so records written before
    /// the field existed keep their meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<BucketEncryption>,
    /// Whether writes may use SSE-C (PutBucketEncryption's `BlockedEncryptionTypes` `NONE`).
    /// `false` — the default for new buckets, as on S3 since April 2026, and for every bucket
    /// written before version 2 (none can hold SSE-C objects) — refuses SSE-C writes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sse_c_allowed: bool,
    /// The bucket policy (PutBucketPolicy), as the caller sent it: the S3 layer parses it before
    /// storing and again when loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The CORS rules (PutBucketCors), in order; `None` when the bucket has no CORS configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Vec<BucketCorsRule>>,
    /// HMAC over the record (computed and checked by the S3 layer, which holds the key); every
    /// version 2 record carries one, version 1 records have none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub mac: Option<Vec<u8>>,
}

/// One CORS rule of a bucket, as PutBucketCors stated it. Embedded in [`BucketRecord`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BucketCorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The rule's optional name.
    pub id: Option<String>,
    /// Origins, each possibly holding one `*` wildcard.
    pub allowed_origins: Vec<String>,
    /// `GET`, `PUT`, `POST`, `DELETE`, `HEAD`.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, each possibly holding one `*` wildcard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// A bucket's default encryption, as PutBucketEncryption stated it. Embedded in
/// [`BucketRecord`]: changing the shape needs a new [`BUCKET_RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketEncryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub sse_algorithm: String,
    /// The KMS key as given (id, ARN, alias name or alias ARN); `None` = the AWS managed key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_master_key_id: Option<String>,
    /// Whether writes under this default use an S3 Bucket Key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bucket_key_enabled: bool,
}

/// Checksums of plaintext, as the S3 layer computed and verified them (base64, as on the wire).
/// Embedded in versioned records: changing the shape needs a new [`RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Checksums {
    /// CRC32, base64.
    pub crc32: Option<String>,
    /// CRC32C, base64.
    pub crc32c: Option<String>,
    /// CRC64NVME, base64.
    pub crc64nvme: Option<String>,
    /// SHA-1, base64.
    pub sha1: Option<String>,
    /// SHA-256, base64.
    pub sha256: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`, when the object has a checksum.
    pub checksum_type: Option<String>,
}

/// How the object's data key is protected. Opaque bytes to the store, which never unwraps them.
/// Embedded in versioned records: changing the shape needs a new [`RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// `"AES256"` (SSE-S3), `"aws:kms"` (SSE-KMS), `"aws:kms:dsse"` (DSSE-KMS) or `"SSE-C"`.
    pub mode: String,
    /// Which key wrapped the DEK: `"service-key/3"` for SSE-S3, the KMS key's ARN otherwise.
    pub key_id: String,
    /// The data key, wrapped: by the service key (SSE-S3), as a KMS ciphertext blob (SSE-KMS,
    /// DSSE's first layer), or by the Bucket Key (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub wrapped_dek: Vec<u8>,
    /// Version of the segment stream format of the object's blobs.
    pub format_version: u8,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// The KMS encryption context the data key (or the Bucket Key) was made under: `aws:s3:arn`
    /// and the caller's pairs. KMS modes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    /// DSSE-KMS: the second layer's data key, as the KMS ciphertext blob (base64 in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub outer_wrapped_dek: Option<Vec<u8>>,
    /// SSE-KMS with an S3 Bucket Key: the Bucket Key, as the KMS ciphertext blob; `wrapped_dek`
    /// is then the data key wrapped by the Bucket Key (base64 in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub bucket_key: Option<Vec<u8>>,
    /// SSE-C: what recognises the customer's key without keeping it — a random salt and a
    /// salted HMAC of the key (base64 in JSON); `wrapped_dek` is then the data key wrapped under
    /// a key derived from the customer's key and that salt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub customer_key_check: Option<Vec<u8>>,
}

/// One encrypted stream on disk: a whole single-part object, or one multipart part.
/// Embedded in versioned records: changing the shape needs a new [`RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartLayout {
    /// 1 for single-part objects.
    pub part_number: u32,
    /// The [`crate::BlobStore`] id of the ciphertext.
    pub blob_id: String,
    /// Plaintext bytes.
    pub size: u64,
    /// The 7-byte nonce prefix of the stream (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub nonce_prefix: Vec<u8>,
    /// 16 bytes for multipart parts (part key = HKDF(DEK, salt)); `None` = the DEK is used directly
    /// (base64 in JSON).
    #[serde(with = "base64_opt_bytes")]
    pub part_salt: Option<Vec<u8>>,
    /// Hex MD5 of the part's plaintext, unquoted.
    pub etag: String,
    /// Checksums of the part's plaintext.
    pub checksums: Checksums,
    /// Whether the sealed stream lives in the metadata database (table `inline_data`, under
    /// `blob_id`) instead of a blob file. Small single-part objects are stored this way so that
    /// their PUT is one group-committed transaction and their GET one read (see
    /// [`crate::MetaStore::put_object_inline`]). Absent in JSON means `false`: records written
    /// before the field existed keep their meaning.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inline: bool,
    /// The MAC of an upload's part record (v2), binding it to its upload and part number; absent
    /// in the parts of an object record, which the object's own MAC covers (base64 in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub mac: Option<Vec<u8>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An object: its S3-visible attributes, its envelope and where its bytes are.
/// Changing the shape needs a new [`RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ObjectRecord {
    /// Record format version, [`RECORD_VERSION`].
    pub v: u32,
    /// Plaintext bytes.
    pub size: u64,
    /// Unquoted, e.g. `"9e107d9d372bb6826bd81d3542a419d6"` or `"<hex>-3"`.
    pub etag: String,
    /// Milliseconds since the Unix epoch.
    pub last_modified_unix_ms: i64,
    /// `Content-Type` as stored.
    pub content_type: Option<String>,
    /// `Content-Encoding` as stored.
    pub content_encoding: Option<String>,
    /// `Content-Disposition` as stored.
    pub content_disposition: Option<String>,
    /// `Content-Language` as stored.
    pub content_language: Option<String>,
    /// `Cache-Control` as stored.
    pub cache_control: Option<String>,
    /// `Expires` as stored.
    pub expires: Option<String>,
    /// User metadata, sealed by the S3 layer (base64 in JSON).
    #[serde(with = "base64_opt_bytes")]
    pub sealed_user_metadata: Option<Vec<u8>>,
    /// Checksums of the whole object's plaintext.
    pub checksums: Checksums,
    /// How the object's data key is protected.
    pub envelope: Envelope,
    /// The object's streams in order; one entry for single-part objects.
    pub parts: Vec<PartLayout>,
    /// The id of this version of the object (v2; absent in v1): every write makes a new one.
    /// The data key's wrapping, the sealed user metadata and the MAC are bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The record's MAC (v2; absent in v1), computed by the S3 layer over this record, its
    /// bucket and its key under a key derived from the root key (base64 in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub mac: Option<Vec<u8>>,
}

/// An in-progress multipart upload. Its parts are stored separately, one record each.
/// Changing the shape needs a new [`RECORD_VERSION`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct UploadRecord {
    /// Record format version, [`RECORD_VERSION`].
    pub v: u32,
    /// The upload id handed to the client; unique within the bucket.
    pub upload_id: String,
    /// The bucket the object will be created in.
    pub bucket: String,
    /// The key the object will be created under.
    pub key: String,
    /// Milliseconds since the Unix epoch.
    pub initiated_unix_ms: i64,
    /// `Content-Type` for the completed object.
    pub content_type: Option<String>,
    /// `Content-Encoding` for the completed object.
    pub content_encoding: Option<String>,
    /// `Content-Disposition` for the completed object.
    pub content_disposition: Option<String>,
    /// `Content-Language` for the completed object.
    pub content_language: Option<String>,
    /// `Cache-Control` for the completed object.
    pub cache_control: Option<String>,
    /// `Expires` for the completed object.
    pub expires: Option<String>,
    /// User metadata, sealed by the S3 layer (base64 in JSON).
    #[serde(with = "base64_opt_bytes")]
    pub sealed_user_metadata: Option<Vec<u8>>,
    /// The checksum algorithm the client asked for at creation.
    pub checksum_algorithm: Option<String>,
    /// `COMPOSITE` or `FULL_OBJECT`, as asked for at creation (absent in records written
    /// before it was kept: the algorithm's default then).
    #[serde(default)]
    pub checksum_type: Option<String>,
    /// The upload's DEK, wrapped; every part key derives from it.
    pub envelope: Envelope,
    /// The version id the completed object will have (v2; absent in v1); the DEK's wrapping
    /// and the sealed metadata are bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The record's MAC (v2; absent in v1), as [`ObjectRecord::mac`] (base64 in JSON).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_opt_bytes"
    )]
    pub mac: Option<Vec<u8>>,
}

/// A multipart part as persisted on its own in the parts table: the [`PartLayout`] plus a version.
/// Changing the shape needs a new [`RECORD_VERSION`].
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredPart {
    pub(crate) v: u32,
    pub(crate) part: PartLayout,
}

/// A record persisted on its own, with a format version to check on the way in and out.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// The record's name in error messages.
    const KIND: &'static str;
    /// The version this build writes.
    const WRITES: u32;
    /// The versions this build reads.
    const READS: &'static [u32];
    fn version(&self) -> u32;
}

macro_rules! record {
    ($writes:expr, $reads:expr; $($ty:ident),+) => {$(
        impl Record for $ty {
            const KIND: &'static str = stringify!($ty);
            const WRITES: u32 = $writes;
            const READS: &'static [u32] = $reads;
            fn version(&self) -> u32 {
                self.v
            }
        }
    )+};
}

record!(BUCKET_RECORD_VERSION, &[LEGACY_BUCKET_RECORD_VERSION, BUCKET_RECORD_VERSION]; BucketRecord);
record!(RECORD_VERSION, &[LEGACY_RECORD_VERSION, RECORD_VERSION]; ObjectRecord, UploadRecord, StoredPart);

/// Serializes a record for storage; refuses a version this build does not write.
pub(crate) fn encode<R: Record>(rec: &R) -> Result<Vec<u8>, StoreError> {
    if rec.version() != R::WRITES {
        return Err(StoreError::Corrupt(format!(
            "{} of format version {} is not written by this build (it writes version {})",
            R::KIND,
            rec.version(),
            R::WRITES
        )));
    }
    Ok(serde_json::to_vec(rec)
        .expect("records serialize to JSON: their fields are strings, numbers, options and lists"))
}

/// Parses a stored record; bytes that do not decode, or an unknown version, are [`StoreError::Corrupt`].
pub(crate) fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    let rec: R = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{} does not decode: {e}", R::KIND)))?;
    if !R::READS.contains(&rec.version()) {
        return Err(StoreError::Corrupt(format!(
            "{} has format version {}; this build reads versions {:?}",
            R::KIND,
            rec.version(),
            R::READS
        )));
    }
    Ok(rec)
}

/// `Vec<u8>` as a standard base64 string.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// `Option<Vec<u8>>` as a standard base64 string or `null`.
mod base64_opt_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn envelope() -> Envelope {
        Envelope {
            mode: "AES256".into(),
            key_id: "service-key/3".into(),
            wrapped_dek: vec![0xde, 0xad, 0xbe, 0xef],
            format_version: 1,
            segment_size: 65536,
            context: None,
            outer_wrapped_dek: None,
            bucket_key: None,
            customer_key_check: None,
        }
    }

    pub(crate) fn part(part_number: u32, blob_id: &str) -> PartLayout {
        PartLayout {
            part_number,
            blob_id: blob_id.into(),
            size: 5,
            nonce_prefix: vec![1, 2, 3, 4, 5, 6, 7],
            part_salt: Some(vec![9; 16]),
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            checksums: Checksums {
                crc32: Some("NhCmhg==".into()),
                ..Checksums::default()
            },
            inline: false,
            mac: None,
        }
    }

    pub(crate) fn object(etag: &str, blob_ids: &[&str]) -> ObjectRecord {
        ObjectRecord {
            v: RECORD_VERSION,
            size: 5 * blob_ids.len() as u64,
            etag: etag.into(),
            last_modified_unix_ms: 1_700_000_000_000,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            sealed_user_metadata: Some(vec![0, 255, 7]),
            checksums: Checksums::default(),
            envelope: envelope(),
            parts: blob_ids
                .iter()
                .zip(1..)
                .map(|(id, n)| part(n, id))
                .collect(),
            version_id: Some("v1".into()),
            mac: Some(vec![7; 32]),
        }
    }

    pub(crate) fn upload(bucket: &str, upload_id: &str, key: &str, initiated: i64) -> UploadRecord {
        UploadRecord {
            v: RECORD_VERSION,
            upload_id: upload_id.into(),
            bucket: bucket.into(),
            key: key.into(),
            initiated_unix_ms: initiated,
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            sealed_user_metadata: None,
            checksum_algorithm: Some("CRC32".into()),
            checksum_type: None,
            envelope: envelope(),
            version_id: Some("v1".into()),
            mac: None,
        }
    }

    #[test]
    fn object_record_round_trips_through_json() {
        let rec = object("abc-2", &["b1", "b2"]);
        let bytes = encode(&rec).unwrap();
        assert_eq!(decode::<ObjectRecord>(&bytes).unwrap(), rec);
    }

    #[test]
    fn byte_fields_are_base64_strings_in_json() {
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&object("e", &["b1"])).unwrap()).unwrap();
        assert_eq!(json["envelope"]["wrapped_dek"], "3q2+7w==");
        assert_eq!(json["sealed_user_metadata"], "AP8H");
        assert_eq!(json["parts"][0]["nonce_prefix"], "AQIDBAUGBw==");
        let upload = serde_json::to_value(upload("b", "u", "k", 1)).unwrap();
        assert_eq!(upload["sealed_user_metadata"], serde_json::Value::Null);
    }

    #[test]
    fn unknown_record_version_is_corrupt() {
        let mut rec = object("e", &["b1"]);
        rec.v = 3;
        assert!(matches!(encode(&rec), Err(StoreError::Corrupt(_))));
        let bytes = serde_json::to_vec(&rec).unwrap();
        assert!(matches!(
            decode::<ObjectRecord>(&bytes),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn undecodable_bytes_are_corrupt() {
        assert!(matches!(
            decode::<BucketRecord>(b"{not json"),
            Err(StoreError::Corrupt(_))
        ));
        let bad_base64 = br#"{"mode":"AES256","key_id":"k","wrapped_dek":"!!","format_version":1,"segment_size":1}"#;
        assert!(serde_json::from_slice::<Envelope>(bad_base64).is_err());
    }

    /// Pins the bucket record JSON: a version 1 record still decodes (SSE-C blocked, no policy,
    /// no CORS) but is not written back as version 1; version 2 re-encodes byte for byte.
    #[test]
    fn bucket_record_json_is_stable() {
        let v1 = br#"{"v":1,"name":"photos","region":"us-east-1","created_unix_ms":1700000000000}"#;
        let mut rec: BucketRecord = decode(v1).unwrap();
        assert_eq!(rec.name, "photos");
        assert!(!rec.sse_c_allowed && rec.policy.is_none() && rec.cors.is_none());
        assert!(matches!(encode(&rec), Err(StoreError::Corrupt(_))));
        rec.v = BUCKET_RECORD_VERSION;
        assert_eq!(
            encode(&rec).unwrap(),
            br#"{"v":2,"name":"photos","region":"us-east-1","created_unix_ms":1700000000000}"#
        );
        let v2 = br#"{"v":2,"name":"web","region":"us-east-1","created_unix_ms":1,"sse_c_allowed":true,"policy":"{}","cors":[{"allowed_origins":["*"],"allowed_methods":["GET"],"max_age_seconds":60}]}"#;
        let rec: BucketRecord = decode(v2).unwrap();
        assert!(rec.sse_c_allowed);
        assert_eq!(rec.cors.as_ref().unwrap()[0].max_age_seconds, Some(60));
        assert_eq!(encode(&rec).unwrap(), v2.to_vec());
    }
}
