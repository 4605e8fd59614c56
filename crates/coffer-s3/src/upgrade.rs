//! The one-time signing of bucket records ([`sign_bucket_records`]), and the one-time upgrade of
//! object, upload and part records from format v1 (data key wrapping
//! bound only to the service key id, metadata sealed under a constant AAD, no MAC) to v2 (all
//! bound to bucket, key and a version id, each record MAC'd; see [`crate::binding`]).
//!
//! It runs at startup, before the server serves, batch by batch; every record keeps its data,
//! data key and service key version — only the wrapping, the metadata's sealing and the MAC are
//! new. When it is done the sealed key ring records that the database holds v2 only; from then on
//! a v1 record found at startup was put there by someone else, and the server refuses to start.
//! The ring also says when an upgrade is under way: each batch is one transaction, so a crash
//! mid-upgrade leaves every record either v1 or v2 and the next start finishes the job, while v2
//! records in a database whose ring says no upgrade ever started mean the ring was put back from
//! an older copy (to make v1 records acceptable again), and the server refuses to start.

use coffer_crypto::Key256;
use coffer_store::{
    LEGACY_RECORD_VERSION, MetaStore, ObjectRecord, PartLayout, RECORD_VERSION, StoreError,
    UploadRecord,
};

use crate::binding::{self, ObjectId, RecordMac};
use crate::keyring::{KeyringError, ServiceKeyRing};
use crate::metadata;

/// Records upgraded per transaction.
const BATCH: usize = 1000;
/// AAD of a data key wrapped in record format v1. Frozen; read only here.
const LEGACY_DEK_AAD: &[u8] = b"coffer sse-s3 dek v1";

/// Why the upgrade could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// The key ring could not record the upgrade.
    #[error("{0}")]
    Keyring(#[from] KeyringError),
    /// A v1 record does not open (its data key or metadata), so it cannot be upgraded.
    #[error("the {kind} record {name} cannot be upgraded: {why}")]
    Record {
        kind: &'static str,
        name: String,
        why: String,
    },
    /// The key ring says no upgrade ever ran, yet records of the new format exist: the ring was
    /// replaced by a copy from before the upgrade.
    #[error(
        "the SSE-S3 key ring says this database was never upgraded to record format v2, yet it holds v2 records: the key ring record was put back from an older copy. Restore meta.redb from a backup; coffer does not serve a database in this state"
    )]
    RingRolledBack,
    /// Records of the old format appeared after the database was upgraded.
    #[error(
        "{0} record(s) of the old, unauthenticated format (v1) are in a database that was upgraded to v2: someone wrote them into meta.redb. Restore meta.redb from a backup; coffer does not serve a database in this state"
    )]
    Injected(usize),
}

/// Signs every bucket record that has no MAC yet — the bucket records (v1) of earlier releases —
/// once, at startup, then records in the sealed key ring that bucket records are signed: from
/// then on an unsigned bucket record was written by someone without the root key, and is refused
/// when read ([`RecordMac::check_bucket`]). An unsigned record is signed with only what a v1
/// record could hold (its default encryption): no policy, no CORS rules, SSE-C blocked. Each
/// record is its own transaction and a signed record is skipped, so a crash midway is finished by
/// the next start. Returns how many records were signed.
pub fn sign_bucket_records(
    meta: &MetaStore,
    ring: &ServiceKeyRing,
    root: &Key256,
    records: &RecordMac,
) -> Result<usize, UpgradeError> {
    if ring.buckets_signed() {
        return Ok(0);
    }
    let mut signed = 0;
    for bucket in meta.list_buckets()? {
        if bucket.mac.is_some() {
            // Signed already (by this build before a crash, or altered: then refused when read).
            continue;
        }
        meta.update_bucket(&bucket.name, |rec| {
            rec.policy = None;
            rec.cors = None;
            rec.sse_c_allowed = false;
            records.sign_bucket(rec);
            Ok(())
        })?;
        signed += 1;
    }
    ring.set_buckets_signed(meta, root)?;
    Ok(signed)
}

/// Upgrades every v1 record; returns how many records were rewritten.
pub fn upgrade_records(
    meta: &MetaStore,
    ring: &ServiceKeyRing,
    root: &Key256,
    records: &RecordMac,
) -> Result<usize, UpgradeError> {
    if ring.records_format() >= RECORD_VERSION {
        let found = meta.legacy_objects(None, 1)?.len()
            + meta.legacy_uploads()?.len()
            + meta.legacy_parts()?.len();
        if found > 0 {
            return Err(UpgradeError::Injected(found));
        }
        return Ok(0);
    }
    if !ring.records_upgrading() {
        // A database of the old format holds no record of the new one, unless the ring was put
        // back from before an upgrade (to make v1 records acceptable again).
        if meta.holds_current_records()? {
            return Err(UpgradeError::RingRolledBack);
        }
        ring.set_records_format(meta, root, ring.records_format(), true)?;
    }
    let mut done = 0;
    let mut after: Option<(String, String)> = None;
    loop {
        let batch =
            meta.legacy_objects(after.as_ref().map(|(b, k)| (b.as_str(), k.as_str())), BATCH)?;
        let Some((bucket, key, _)) = batch.last() else {
            break;
        };
        after = Some((bucket.clone(), key.clone()));
        let upgraded = batch
            .into_iter()
            .map(|(bucket, key, rec)| {
                let rec = upgrade_object(ring, records, &bucket, &key, rec)?;
                Ok((bucket, key, rec))
            })
            .collect::<Result<Vec<_>, UpgradeError>>()?;
        done += upgraded.len();
        meta.replace_legacy_records(&upgraded, &[], &[])?;
        tracing::info!(records = done, "upgrading object records to format v2");
    }
    let uploads = meta
        .legacy_uploads()?
        .into_iter()
        .map(|rec| upgrade_upload(ring, records, rec))
        .collect::<Result<Vec<_>, _>>()?;
    let parts: Vec<(String, String, PartLayout)> = meta
        .legacy_parts()?
        .into_iter()
        .map(|(bucket, upload_id, mut part)| {
            records.sign_part(&bucket, &upload_id, &mut part);
            (bucket, upload_id, part)
        })
        .collect();
    done += uploads.len() + parts.len();
    meta.replace_legacy_records(&[], &uploads, &parts)?;
    ring.set_records_format(meta, root, RECORD_VERSION, false)?;
    Ok(done)
}

/// New wrapping of a v1 data key and new sealing of v1 metadata for object version `id`.
fn rebind(
    ring: &ServiceKeyRing,
    envelope: &mut coffer_store::Envelope,
    sealed_metadata: &mut Option<Vec<u8>>,
    id: &ObjectId<'_>,
    kind: &'static str,
) -> Result<(), UpgradeError> {
    let fail = |why: String| UpgradeError::Record {
        kind,
        name: format!("{}/{}", id.bucket, id.key),
        why,
    };
    let service_key = ring.by_key_id(&envelope.key_id).ok_or_else(|| {
        fail(format!(
            "service key {} is not in the key ring",
            envelope.key_id
        ))
    })?;
    let mut legacy_aad = LEGACY_DEK_AAD.to_vec();
    legacy_aad.push(0);
    legacy_aad.extend_from_slice(envelope.key_id.as_bytes());
    let dek = coffer_crypto::unwrap_key(&service_key, &envelope.wrapped_dek, &legacy_aad)
        .map_err(|_| fail("its data key does not unwrap".into()))?;
    envelope.wrapped_dek =
        coffer_crypto::wrap_key(&service_key, &dek, &binding::dek_aad(id, &envelope.key_id))
            .map_err(|e| fail(e.to_string()))?;
    let user_metadata = metadata::open_legacy(ring, sealed_metadata.as_deref())
        .map_err(|_| fail("its user metadata does not open".into()))?;
    *sealed_metadata = metadata::seal(ring, user_metadata.as_ref(), id)
        .map_err(|_| fail("its user metadata could not be sealed".into()))?;
    Ok(())
}

fn upgrade_object(
    ring: &ServiceKeyRing,
    records: &RecordMac,
    bucket: &str,
    key: &str,
    mut rec: ObjectRecord,
) -> Result<ObjectRecord, UpgradeError> {
    debug_assert_eq!(rec.v, LEGACY_RECORD_VERSION);
    let version_id = binding::new_version_id();
    let id = ObjectId {
        bucket,
        key,
        version_id: &version_id,
    };
    rebind(
        ring,
        &mut rec.envelope,
        &mut rec.sealed_user_metadata,
        &id,
        "object",
    )?;
    rec.v = RECORD_VERSION;
    rec.version_id = Some(version_id);
    records.sign_object(bucket, key, &mut rec);
    Ok(rec)
}

fn upgrade_upload(
    ring: &ServiceKeyRing,
    records: &RecordMac,
    mut rec: UploadRecord,
) -> Result<UploadRecord, UpgradeError> {
    let version_id = binding::new_version_id();
    let (bucket, key) = (rec.bucket.clone(), rec.key.clone());
    let id = ObjectId {
        bucket: &bucket,
        key: &key,
        version_id: &version_id,
    };
    rebind(
        ring,
        &mut rec.envelope,
        &mut rec.sealed_user_metadata,
        &id,
        "upload",
    )?;
    rec.v = RECORD_VERSION;
    rec.version_id = Some(version_id);
    records.sign_upload(&mut rec);
    Ok(rec)
}
