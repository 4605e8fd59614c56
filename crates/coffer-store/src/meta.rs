//! The metadata store: buckets, objects, multipart uploads and parts, and small system values, in
//! one redb database.
//!
//! It must never see a plaintext key or plaintext object bytes (records hold wrapped keys, blob ids
//! and, for small objects, sealed streams),
//! never speak HTTP and never decide which encryption is allowed. It never touches blob files either:
//! calls that drop a reference return what was dropped, and the caller frees those blobs after commit.
//!
//! Durability: every mutation is one redb write transaction committed with redb's default
//! (immediate, fsynced) durability; the commit is the moment a change exists (DESIGN §5). All
//! mutations go through one function, `write_txn`. Object PUTs, the hot path, are
//! group-committed: they queue for one committer thread, which commits every PUT waiting at that
//! moment in one transaction and one fsync and then answers each (see
//! [`MetaStore::put_object_then`]); the other mutations can join the same scheme when they become
//! hot.
//!
//! Tables (a frozen format: renaming a table or changing a key layout needs a migration):
//! - `buckets`: bucket name → [`BucketRecord`] JSON
//! - `objects`: (bucket, key) → [`ObjectRecord`] JSON. Tuple keys compare element by element, and
//!   `&str` compares by bytes, so one bucket's keys are contiguous and in S3 order: listing is a
//!   range scan, and keys may hold any character, NUL included.
//! - `uploads`: (bucket, upload id) → [`UploadRecord`] JSON
//! - `parts`: (bucket, upload id, part number) → versioned [`PartLayout`] JSON
//! - `system`: name → bytes
//! - `kv`: (namespace, key) → bytes, for services with their own sealed records (the KMS)
//! - `inline_data`: blob id → sealed stream of a small object kept in the database instead of a
//!   blob file ([`PartLayout::inline`]). Written, replaced and removed in the same transaction as
//!   the object record that points to it, so it never leaks and never dangles.
//!
//! Object bytes: the store holds the *sealed* streams of small objects (`inline_data`), never
//! plaintext; it cannot open them.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, mpsc};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::error::StoreError;
use crate::records::{
    BucketRecord, LEGACY_RECORD_VERSION, ObjectRecord, PartLayout, RECORD_VERSION, StoredPart,
    UploadRecord, decode, encode,
};

type Result<T, E = StoreError> = std::result::Result<T, E>;

// DO NOT RENAME these tables or change their key types: existing databases hold them.
const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");
const UPLOADS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("uploads");
const PARTS: TableDefinition<(&str, &str, u32), &[u8]> = TableDefinition::new("parts");
const SYSTEM: TableDefinition<&str, &[u8]> = TableDefinition::new("system");
const KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");
const INLINE: TableDefinition<&str, &[u8]> = TableDefinition::new("inline_data");

/// redb's in-process page cache. redb's default (1 GiB) would let the server's memory grow with
/// the database — which holds small objects' data — so it is capped here; the kernel's page
/// cache still keeps the file's hot pages a `pread` away.
const CACHE_BYTES: usize = 16 << 20;

/// One change of an atomic [`MetaStore::kv_write`] batch.
#[derive(Debug, Clone, PartialEq)]
pub enum KvOp {
    /// Store `value` under (namespace, key).
    Put(String, String, Vec<u8>),
    /// Remove (namespace, key) if present.
    Delete(String, String),
}

/// Buckets, objects, uploads and system values; cheap to share behind an `Arc`.
pub struct MetaStore {
    db: Arc<Database>,
    /// The group committer of object PUTs (see [`MetaStore::put_object_then`]); `None` only
    /// while dropping.
    committer: Option<Committer>,
}

/// The thread that commits queued object PUTs, and the queue it reads.
struct Committer {
    queue: mpsc::Sender<PutJob>,
    thread: std::thread::JoinHandle<()>,
}

/// PUTs committed in one transaction at most (a bound on one transaction's size).
const MAX_BATCH: usize = 1024;

/// A check run on the current record inside the commit transaction.
type PutCheck = Box<dyn FnOnce(Option<&ObjectRecord>) -> Result<()> + Send>;

/// What a PUT's caller is told once its transaction committed (or failed): the replaced
/// record, or the error.
pub type PutAnswer = Box<dyn FnOnce(Result<Option<ObjectRecord>>) + Send>;

/// Where a queued PUT's answer goes.
type PutReply = PutAnswer;

/// One queued object PUT and where its answer goes.
struct PutJob {
    bucket: String,
    key: String,
    value: Vec<u8>,
    /// The sealed stream of an inline object, stored under its blob id.
    inline: Option<(String, Vec<u8>)>,
    check: PutCheck,
    reply: PutReply,
}

impl MetaStore {
    /// Opens (or creates) the database file at `path`, makes sure every table exists and starts
    /// the PUT committer thread.
    pub fn open(path: &Path) -> Result<MetaStore> {
        let db = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)?,
        );
        let (queue, jobs) = mpsc::channel::<PutJob>();
        let thread = std::thread::Builder::new()
            .name("coffer-meta-commit".into())
            .spawn({
                let db = Arc::clone(&db);
                move || run_committer(&db, &jobs)
            })?;
        let store = MetaStore {
            db,
            committer: Some(Committer { queue, thread }),
        };
        store.write(|txn| {
            txn.open_table(BUCKETS)?;
            txn.open_table(OBJECTS)?;
            txn.open_table(UPLOADS)?;
            txn.open_table(PARTS)?;
            txn.open_table(SYSTEM)?;
            txn.open_table(KV)?;
            txn.open_table(INLINE)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `f` in one write transaction and commits it if `f` succeeds; on error nothing changes.
    /// The single write path of the store (see the module doc on group commit).
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        write_txn(&self.db, f)
    }

    // ---- buckets ----

    /// Creates a bucket; [`StoreError::BucketAlreadyExists`] if the name is taken.
    pub fn create_bucket(&self, rec: &BucketRecord) -> Result<()> {
        let value = encode(rec)?;
        self.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            if buckets.get(rec.name.as_str())?.is_some() {
                return Err(StoreError::BucketAlreadyExists);
            }
            buckets.insert(rec.name.as_str(), value.as_slice())?;
            Ok(())
        })
    }

    /// The bucket named `name`, if it exists.
    pub fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        buckets.get(name)?.map(|v| decode(v.value())).transpose()
    }

    /// Every bucket, sorted by name.
    pub fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let txn = self.db.begin_read()?;
        let buckets = txn.open_table(BUCKETS)?;
        buckets
            .iter()?
            .map(|entry| decode(entry?.1.value()))
            .collect()
    }

    /// Deletes an empty bucket: [`StoreError::BucketNotFound`], or [`StoreError::BucketNotEmpty`]
    /// while it holds an object or an in-progress upload.
    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        self.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            if buckets.get(name)?.is_none() {
                return Err(StoreError::BucketNotFound);
            }
            let objects = txn.open_table(OBJECTS)?;
            let uploads = txn.open_table(UPLOADS)?;
            if has_bucket_entry(&objects, name)? || has_bucket_entry(&uploads, name)? {
                return Err(StoreError::BucketNotEmpty);
            }
            buckets.remove(name)?;
            Ok(())
        })
    }

    /// Changes a bucket's settings in one transaction: `change` edits the record (its error aborts
    /// and is returned) and must leave it a current-version record (the S3 layer sets the version
    /// and signs it). [`StoreError::BucketNotFound`] if the bucket does not exist.
    pub fn update_bucket<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut BucketRecord) -> Result<T>,
    ) -> Result<T> {
        self.write(|txn| {
            let mut buckets = txn.open_table(BUCKETS)?;
            let mut rec: BucketRecord = match buckets.get(name)? {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::BucketNotFound),
            };
            let out = change(&mut rec)?;
            buckets.insert(name, encode(&rec)?.as_slice())?;
            Ok(out)
        })
    }

    // ---- objects ----

    /// The object at `key`, if any; [`StoreError::BucketNotFound`] if the bucket does not exist.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        let objects = txn.open_table(OBJECTS)?;
        objects
            .get((bucket, key))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Atomically: run `check` on the current record (inside the write transaction), and if it
    /// returns Ok, store `rec`. Returns the replaced record (so the caller can delete its blobs
    /// after commit). An error from `check` (e.g. [`StoreError::PreconditionFailed`]) leaves the
    /// current record in place.
    ///
    /// Group-committed with concurrent PUTs; blocks until committed. See
    /// [`MetaStore::put_object_then`].
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        rec: &ObjectRecord,
        check: impl FnOnce(Option<&ObjectRecord>) -> Result<()> + Send + 'static,
    ) -> Result<Option<ObjectRecord>> {
        self.put_object_inline(bucket, key, rec, None, check)
    }

    /// [`MetaStore::put_object`] for an object whose single part is inline: `sealed` is its
    /// sealed stream, stored in `inline_data` under the part's blob id in the same transaction
    /// as the record. Whatever the replaced record kept inline is removed in that transaction
    /// too; the returned record's blob files (if any) are still the caller's to free.
    pub fn put_object_inline(
        &self,
        bucket: &str,
        key: &str,
        rec: &ObjectRecord,
        sealed: Option<Vec<u8>>,
        check: impl FnOnce(Option<&ObjectRecord>) -> Result<()> + Send + 'static,
    ) -> Result<Option<ObjectRecord>> {
        let (reply, answer) = mpsc::channel();
        self.put_object_then(
            bucket,
            key,
            rec,
            sealed,
            check,
            Box::new(move |result| drop(reply.send(result))),
        );
        answer.recv().unwrap_or_else(|_| {
            Err(StoreError::Db(
                "the PUT committer stopped without an answer".into(),
            ))
        })
    }

    /// [`MetaStore::put_object_inline`] without waiting: the PUT is queued for the committer
    /// thread and `then` is called (on that thread) with the answer once its transaction has
    /// committed — or at once, if the record cannot be queued. Async callers use this to wait
    /// without holding a thread.
    ///
    /// Group commit: the committer takes every PUT queued when it becomes free (up to
    /// [`MAX_BATCH`]) into one transaction and one fsync. Each job's check runs before its
    /// insert, so a failed check writes nothing and does not affect the others; if the commit
    /// itself fails, every job of that batch gets the error and none is stored.
    pub fn put_object_then(
        &self,
        bucket: &str,
        key: &str,
        rec: &ObjectRecord,
        sealed: Option<Vec<u8>>,
        check: impl FnOnce(Option<&ObjectRecord>) -> Result<()> + Send + 'static,
        then: PutAnswer,
    ) {
        let value = match encode(rec) {
            Ok(value) => value,
            Err(e) => return then(Err(e)),
        };
        let inline = match (sealed, rec.parts.as_slice()) {
            (None, parts) if parts.iter().all(|p| !p.inline) => None,
            (Some(bytes), [part]) if part.inline => Some((part.blob_id.clone(), bytes)),
            _ => {
                return then(Err(StoreError::Corrupt(
                    "inline data must come with exactly one part marked inline".into(),
                )));
            }
        };
        let job = PutJob {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            value,
            inline,
            check: Box::new(check),
            reply: then,
        };
        let Some(committer) = self.committer.as_ref() else {
            return (job.reply)(Err(StoreError::Db("the store is closing".into())));
        };
        if let Err(mpsc::SendError(job)) = committer.queue.send(job) {
            (job.reply)(Err(StoreError::Db("the PUT committer has stopped".into())));
        }
    }

    /// Removes the object at `key`; returns it (its blobs are the caller's to free), or `None` if
    /// there was none.
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        self.delete_object_if(bucket, key, |_| Ok(()))
    }

    /// [`MetaStore::delete_object`] if `check` accepts the current record (or its absence), in the
    /// same transaction — a conditional delete no concurrent write can slip under. A refusal is
    /// `check`'s error and changes nothing.
    pub fn delete_object_if(
        &self,
        bucket: &str,
        key: &str,
        check: impl FnOnce(Option<&ObjectRecord>) -> Result<()>,
    ) -> Result<Option<ObjectRecord>> {
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            let mut objects = txn.open_table(OBJECTS)?;
            let current: Option<ObjectRecord> = objects
                .get((bucket, key))?
                .map(|v| decode(v.value()))
                .transpose()?;
            check(current.as_ref())?;
            if current.is_some() {
                objects.remove((bucket, key))?;
            }
            if let Some(old) = &current {
                remove_inline(&mut txn.open_table(INLINE)?, old)?;
            }
            Ok(current)
        })
    }

    /// Removes every object of `keys` (absent ones are skipped) in one transaction; returns, in
    /// order, what each key held (blob files are the caller's to free; inline data goes with
    /// its record). [`StoreError::BucketNotFound`] if the bucket does not exist.
    pub fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<Option<ObjectRecord>>> {
        self.delete_objects_if(bucket, keys, |_, _| Ok(()))?
            .into_iter()
            .collect()
    }

    /// [`MetaStore::delete_objects`] where `check(i, current)` decides for the `i`th key, as in
    /// [`MetaStore::delete_object_if`]: one answer per key, a refused key keeping its object.
    pub fn delete_objects_if(
        &self,
        bucket: &str,
        keys: &[String],
        check: impl Fn(usize, Option<&ObjectRecord>) -> Result<()>,
    ) -> Result<Vec<Result<Option<ObjectRecord>>>> {
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            let mut objects = txn.open_table(OBJECTS)?;
            let mut inline_data = txn.open_table(INLINE)?;
            let mut answers = Vec::with_capacity(keys.len());
            for (i, key) in keys.iter().enumerate() {
                let current: Option<ObjectRecord> = objects
                    .get((bucket, key.as_str()))?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                if let Err(refused) = check(i, current.as_ref()) {
                    answers.push(Err(refused));
                    continue;
                }
                if let Some(old) = &current {
                    objects.remove((bucket, key.as_str()))?;
                    remove_inline(&mut inline_data, old)?;
                }
                answers.push(Ok(current));
            }
            Ok(answers)
        })
    }

    /// The sealed stream of an inline part ([`PartLayout::inline`]), or `None` if no record points
    /// to it any more (the object was overwritten or deleted since its record was read).
    pub fn get_inline(&self, blob_id: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INLINE)?;
        Ok(table.get(blob_id)?.map(|v| v.value().to_vec()))
    }

    /// The blob ids that have inline data stored, in order (a full scan: for consistency checks
    /// and tests, not the request path).
    pub fn inline_blob_ids(&self) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INLINE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(entry?.0.value().to_owned());
        }
        Ok(out)
    }

    /// The object at `key` and, when its single part is inline, that part's sealed stream, read
    /// in one transaction (so they always belong together). Errors as [`MetaStore::get_object`].
    pub fn get_object_with_inline(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(ObjectRecord, Option<Vec<u8>>)>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        let objects = txn.open_table(OBJECTS)?;
        let Some(rec) = objects
            .get((bucket, key))?
            .map(|v| decode::<ObjectRecord>(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let sealed = match rec.parts.as_slice() {
            [part] if part.inline => {
                let table = txn.open_table(INLINE)?;
                let bytes = table.get(part.blob_id.as_str())?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the inline data of object {key:?} in bucket {bucket:?} is missing"
                    ))
                })?;
                Some(bytes.value().to_vec())
            }
            _ => None,
        };
        Ok(Some((rec, sealed)))
    }

    /// Keys in lexicographic (byte) order that start with `prefix` and are strictly greater than
    /// `after` (if given); at most `limit`.
    pub fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ObjectRecord)>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        let objects = txn.open_table(OBJECTS)?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // Keys that start with `prefix` are contiguous and come first among keys >= `prefix`, so the
        // scan starts at the later of `prefix` and `after` and stops at the first key outside.
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded((bucket, after)),
            _ => Bound::Included((bucket, prefix)),
        };
        for entry in objects.range((start, Bound::Unbounded))? {
            let (k, v) = entry?;
            let (entry_bucket, key) = k.value();
            if entry_bucket != bucket || !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_owned(), decode(v.value())?));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    // ---- multipart uploads ----

    /// Records a new upload. Upload ids are random (the caller makes them); one already in use in
    /// the bucket is a caller bug and is refused with [`StoreError::Db`].
    pub fn create_upload(&self, rec: &UploadRecord) -> Result<()> {
        let value = encode(rec)?;
        let (bucket, upload_id) = (rec.bucket.as_str(), rec.upload_id.as_str());
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            let mut uploads = txn.open_table(UPLOADS)?;
            if uploads.get((bucket, upload_id))?.is_some() {
                return Err(StoreError::Db(format!(
                    "upload id {upload_id:?} is already in use in bucket {bucket:?}"
                )));
            }
            uploads.insert((bucket, upload_id), value.as_slice())?;
            Ok(())
        })
    }

    /// The upload, if it is in progress; [`StoreError::BucketNotFound`] if the bucket does not exist.
    pub fn get_upload(&self, bucket: &str, upload_id: &str) -> Result<Option<UploadRecord>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        let uploads = txn.open_table(UPLOADS)?;
        uploads
            .get((bucket, upload_id))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Store a part; returns the replaced part (same number) so its blob can be freed.
    /// [`StoreError::NoSuchUpload`] if the upload is gone.
    pub fn put_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: &PartLayout,
    ) -> Result<Option<PartLayout>> {
        let value = encode(&StoredPart {
            v: RECORD_VERSION,
            part: part.clone(),
        })?;
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            if txn.open_table(UPLOADS)?.get((bucket, upload_id))?.is_none() {
                return Err(StoreError::NoSuchUpload);
            }
            let mut parts = txn.open_table(PARTS)?;
            let replaced = parts.insert((bucket, upload_id, part.part_number), value.as_slice())?;
            replaced
                .map(|v| decode::<StoredPart>(v.value()).map(|stored| stored.part))
                .transpose()
        })
    }

    /// The parts stored so far, by ascending part number; [`StoreError::NoSuchUpload`] if the upload
    /// is not in progress.
    pub fn list_parts(&self, bucket: &str, upload_id: &str) -> Result<Vec<PartLayout>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        if txn.open_table(UPLOADS)?.get((bucket, upload_id))?.is_none() {
            return Err(StoreError::NoSuchUpload);
        }
        let parts = txn.open_table(PARTS)?;
        parts
            .range((bucket, upload_id, 0)..=(bucket, upload_id, u32::MAX))?
            .map(|entry| Ok(decode::<StoredPart>(entry?.1.value())?.part))
            .collect()
    }

    /// In ONE transaction: check the upload exists (for this `key`), run `check` against the
    /// current object, remove the upload and all its parts, store the object. Returns (replaced
    /// object, parts of the upload NOT referenced by `rec.parts` by blob_id) for blob cleanup.
    /// Whether `rec.parts` are the upload's parts is the caller's business.
    pub fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        key: &str,
        rec: &ObjectRecord,
        check: impl FnOnce(Option<&ObjectRecord>) -> Result<()>,
    ) -> Result<(Option<ObjectRecord>, Vec<PartLayout>)> {
        let value = encode(rec)?;
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            let mut uploads = txn.open_table(UPLOADS)?;
            let upload: Option<UploadRecord> = uploads
                .get((bucket, upload_id))?
                .map(|v| decode(v.value()))
                .transpose()?;
            if upload.is_none_or(|upload| upload.key != key) {
                return Err(StoreError::NoSuchUpload);
            }
            let mut objects = txn.open_table(OBJECTS)?;
            let current: Option<ObjectRecord> = objects
                .get((bucket, key))?
                .map(|v| decode(v.value()))
                .transpose()?;
            check(current.as_ref())?;
            if let Some(old) = &current {
                remove_inline(&mut txn.open_table(INLINE)?, old)?;
            }
            uploads.remove((bucket, upload_id))?;
            let parts = take_parts(txn, bucket, upload_id)?;
            // The caller chose its parts before this transaction: a part re-uploaded since then
            // has a new blob and the chosen one is being freed. Refuse rather than commit an
            // object that points at freed data.
            let stored: HashSet<&str> = parts.iter().map(|p| p.blob_id.as_str()).collect();
            if rec
                .parts
                .iter()
                .any(|p| !stored.contains(p.blob_id.as_str()))
            {
                return Err(StoreError::PartsChanged);
            }
            objects.insert((bucket, key), value.as_slice())?;
            let used: HashSet<&str> = rec.parts.iter().map(|p| p.blob_id.as_str()).collect();
            let unused = parts
                .into_iter()
                .filter(|p| !used.contains(p.blob_id.as_str()))
                .collect();
            Ok((current, unused))
        })
    }

    /// Removes the upload and its parts; returns the parts (blobs to free).
    /// [`StoreError::NoSuchUpload`] if absent.
    pub fn abort_upload(&self, bucket: &str, upload_id: &str) -> Result<Vec<PartLayout>> {
        self.write(|txn| {
            require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
            if txn
                .open_table(UPLOADS)?
                .remove((bucket, upload_id))?
                .is_none()
            {
                return Err(StoreError::NoSuchUpload);
            }
            take_parts(txn, bucket, upload_id)
        })
    }

    /// In-progress uploads of a bucket, ordered by (key, initiated, upload_id), with key starting
    /// with prefix. Scans the bucket's uploads, which are few: each is a client's unfinished work.
    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<UploadRecord>> {
        let txn = self.db.begin_read()?;
        require_bucket(&txn.open_table(BUCKETS)?, bucket)?;
        let uploads = txn.open_table(UPLOADS)?;
        let mut out = Vec::new();
        for entry in uploads.range((bucket, "")..)? {
            let (k, v) = entry?;
            if k.value().0 != bucket {
                break;
            }
            let upload: UploadRecord = decode(v.value())?;
            if upload.key.starts_with(prefix) {
                out.push(upload);
            }
        }
        out.sort_by(|a, b| {
            (&a.key, a.initiated_unix_ms, &a.upload_id).cmp(&(
                &b.key,
                b.initiated_unix_ms,
                &b.upload_id,
            ))
        });
        Ok(out)
    }

    /// Whether the database holds buckets or objects (records, uploads, parts or inline data):
    /// what a lost key ring or root key would make unreadable. Users and KMS records (kv) do not
    /// count — an operator may add users before the first start.
    pub fn holds_data(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(!txn.open_table(BUCKETS)?.is_empty()?
            || !txn.open_table(OBJECTS)?.is_empty()?
            || !txn.open_table(UPLOADS)?.is_empty()?
            || !txn.open_table(PARTS)?.is_empty()?
            || !txn.open_table(INLINE)?.is_empty()?)
    }

    // ---- system values ----

    /// A small system value (e.g. a sealed service key), if set.
    pub fn get_system(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let system = txn.open_table(SYSTEM)?;
        Ok(system.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Sets a small system value, replacing any previous one.
    pub fn put_system(&self, name: &str, value: &[u8]) -> Result<()> {
        self.write(|txn| {
            txn.open_table(SYSTEM)?.insert(name, value)?;
            Ok(())
        })
    }

    // ---- namespaced key/value records ----

    /// The value under (namespace, key), if any.
    pub fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        Ok(table.get((ns, key))?.map(|v| v.value().to_vec()))
    }

    /// Every (key, value) of a namespace whose key starts with `prefix`, in key order.
    pub fn kv_scan(&self, ns: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(KV)?;
        let mut out = Vec::new();
        for entry in table.range((ns, prefix)..)? {
            let (k, v) = entry?;
            let (kns, kkey) = k.value();
            if kns != ns || !kkey.starts_with(prefix) {
                break;
            }
            out.push((kkey.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Applies every op in one transaction: all or nothing.
    pub fn kv_write(&self, ops: &[KvOp]) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(KV)?;
            for op in ops {
                match op {
                    KvOp::Put(ns, key, value) => {
                        table.insert((ns.as_str(), key.as_str()), value.as_slice())?;
                    }
                    KvOp::Delete(ns, key) => {
                        table.remove((ns.as_str(), key.as_str()))?;
                    }
                }
            }
            Ok(())
        })
    }

    // ---- format upgrade ----

    /// Object records of [`LEGACY_RECORD_VERSION`] after `(bucket, key)` (exclusive), in table
    /// order, at most `limit`: the S3 layer upgrades them batch by batch at startup.
    pub fn legacy_objects(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, ObjectRecord)>> {
        let txn = self.db.begin_read()?;
        let objects = txn.open_table(OBJECTS)?;
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for entry in objects.range::<(&str, &str)>((start, Bound::Unbounded))? {
            let (k, v) = entry?;
            let rec: ObjectRecord = decode(v.value())?;
            if rec.v == LEGACY_RECORD_VERSION {
                let (bucket, key) = k.value();
                out.push((bucket.to_owned(), key.to_owned(), rec));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether any object, upload or part record is of the current [`RECORD_VERSION`] (stops at
    /// the first one).
    pub fn holds_current_records(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        for entry in txn.open_table(OBJECTS)?.iter()? {
            if decode::<ObjectRecord>(entry?.1.value())?.v == RECORD_VERSION {
                return Ok(true);
            }
        }
        for entry in txn.open_table(UPLOADS)?.iter()? {
            if decode::<UploadRecord>(entry?.1.value())?.v == RECORD_VERSION {
                return Ok(true);
            }
        }
        for entry in txn.open_table(PARTS)?.iter()? {
            if decode::<StoredPart>(entry?.1.value())?.v == RECORD_VERSION {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every upload record of [`LEGACY_RECORD_VERSION`] (uploads are few: unfinished work).
    pub fn legacy_uploads(&self) -> Result<Vec<UploadRecord>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(UPLOADS)?.iter()? {
            let rec: UploadRecord = decode(entry?.1.value())?;
            if rec.v == LEGACY_RECORD_VERSION {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every part record of [`LEGACY_RECORD_VERSION`]: (bucket, upload id, part).
    pub fn legacy_parts(&self) -> Result<Vec<(String, String, PartLayout)>> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(PARTS)?.iter()? {
            let (k, v) = entry?;
            let stored: StoredPart = decode(v.value())?;
            if stored.v == LEGACY_RECORD_VERSION {
                let (bucket, upload_id, _) = k.value();
                out.push((bucket.to_owned(), upload_id.to_owned(), stored.part));
            }
        }
        Ok(out)
    }

    /// Replaces records with their upgraded form in one transaction. Only records that are still
    /// there and still of [`LEGACY_RECORD_VERSION`] are replaced (the upgrade runs before the
    /// server serves, but a record must never come back from the dead).
    pub fn replace_legacy_records(
        &self,
        objects: &[(String, String, ObjectRecord)],
        uploads: &[UploadRecord],
        parts: &[(String, String, PartLayout)],
    ) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(OBJECTS)?;
            for (bucket, key, rec) in objects {
                let current = table.get((bucket.as_str(), key.as_str()))?;
                let legacy = current
                    .map(|v| decode::<ObjectRecord>(v.value()))
                    .transpose()?
                    .is_some_and(|c| c.v == LEGACY_RECORD_VERSION);
                if legacy {
                    table.insert((bucket.as_str(), key.as_str()), encode(rec)?.as_slice())?;
                }
            }
            let mut table = txn.open_table(UPLOADS)?;
            for rec in uploads {
                let id = (rec.bucket.as_str(), rec.upload_id.as_str());
                let current = table.get(id)?;
                let legacy = current
                    .map(|v| decode::<UploadRecord>(v.value()))
                    .transpose()?
                    .is_some_and(|c| c.v == LEGACY_RECORD_VERSION);
                if legacy {
                    table.insert(id, encode(rec)?.as_slice())?;
                }
            }
            let mut table = txn.open_table(PARTS)?;
            for (bucket, upload_id, part) in parts {
                let id = (bucket.as_str(), upload_id.as_str(), part.part_number);
                let current = table.get(id)?;
                let legacy = current
                    .map(|v| decode::<StoredPart>(v.value()))
                    .transpose()?
                    .is_some_and(|c| c.v == LEGACY_RECORD_VERSION);
                if legacy {
                    let stored = StoredPart {
                        v: RECORD_VERSION,
                        part: part.clone(),
                    };
                    table.insert(id, encode(&stored)?.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// Every blob id referenced by an object or an upload part (for the orphan sweep). A full
    /// scan, in one read transaction so it is a consistent snapshot.
    pub fn referenced_blobs(&self) -> Result<HashSet<String>> {
        let txn = self.db.begin_read()?;
        let mut out = HashSet::new();
        for entry in txn.open_table(OBJECTS)?.iter()? {
            let rec: ObjectRecord = decode(entry?.1.value())?;
            out.extend(
                rec.parts
                    .into_iter()
                    .filter(|p| !p.inline)
                    .map(|p| p.blob_id),
            );
        }
        for entry in txn.open_table(PARTS)?.iter()? {
            let stored: StoredPart = decode(entry?.1.value())?;
            out.insert(stored.part.blob_id);
        }
        Ok(out)
    }
}

/// [`StoreError::BucketNotFound`] unless `bucket` is in the buckets table.
fn require_bucket(
    buckets: &impl ReadableTable<&'static str, &'static [u8]>,
    bucket: &str,
) -> Result<()> {
    match buckets.get(bucket)? {
        Some(_) => Ok(()),
        None => Err(StoreError::BucketNotFound),
    }
}

impl Drop for MetaStore {
    /// Lets the committer finish what is queued, then stops it, so that the database is closed
    /// (and its file lock released) when the store is gone.
    fn drop(&mut self) {
        if let Some(Committer { queue, thread }) = self.committer.take() {
            drop(queue);
            if thread.join().is_err() {
                tracing::error!("the PUT committer thread panicked");
            }
        }
    }
}

/// Runs `f` in one write transaction of `db` and commits it if `f` succeeds; on error nothing
/// changes.
fn write_txn<T>(db: &Database, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
    let txn = db.begin_write()?;
    match f(&txn) {
        Ok(out) => {
            txn.commit()?;
            Ok(out)
        }
        Err(err) => {
            txn.abort()?;
            Err(err)
        }
    }
}

/// The committer thread: waits for a PUT, takes every PUT queued behind it into the same
/// batch, commits the batch, answers each job; until the queue closes.
fn run_committer(db: &Database, jobs: &mpsc::Receiver<PutJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_puts(db, batch);
    }
}

/// Commits one batch of PUTs in one transaction and answers every job.
///
/// A job refused by its bucket check or its `check` changes nothing and gets its own error; the
/// others go on. A failure while a job *writes* (the database itself failing) would leave the
/// transaction half-changed, so it aborts the whole batch: every job then gets an error and
/// none is stored.
fn commit_puts(db: &Database, batch: Vec<PutJob>) {
    let mut answers: Vec<(PutReply, Result<Option<ObjectRecord>>)> =
        Vec::with_capacity(batch.len());
    let mut unanswered: Vec<PutReply> = Vec::new();
    let committed = write_txn(db, |txn| {
        let buckets = txn.open_table(BUCKETS)?;
        let mut objects = txn.open_table(OBJECTS)?;
        let mut inline_data = txn.open_table(INLINE)?;
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let PutJob {
                bucket,
                key,
                value,
                inline,
                check,
                reply,
            } = job;
            let checked = (|| {
                require_bucket(&buckets, &bucket)?;
                let current: Option<ObjectRecord> = objects
                    .get((bucket.as_str(), key.as_str()))?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                check(current.as_ref())?;
                Ok(current)
            })();
            let current = match checked {
                Ok(current) => current,
                Err(e) => {
                    answers.push((reply, Err(e)));
                    continue;
                }
            };
            let written = (|| {
                if let Some(old) = &current {
                    remove_inline(&mut inline_data, old)?;
                }
                if let Some((blob_id, sealed)) = &inline {
                    inline_data.insert(blob_id.as_str(), sealed.as_slice())?;
                }
                objects.insert((bucket.as_str(), key.as_str()), value.as_slice())?;
                Ok(())
            })();
            match written {
                Ok(()) => answers.push((reply, Ok(current))),
                Err(e) => {
                    answers.push((reply, Err(e)));
                    unanswered.extend(jobs.map(|job| job.reply));
                    return Err(StoreError::Db(
                        "a PUT of the group failed while writing; the group was rolled back".into(),
                    ));
                }
            }
        }
        Ok(())
    });
    for (reply, one) in answers {
        let answer = match (&committed, one) {
            (Ok(()), one) => one,
            (Err(e), Ok(_)) => Err(StoreError::Db(format!("group commit failed: {e}"))),
            (Err(_), Err(e)) => Err(e),
        };
        reply(answer);
    }
    for reply in unanswered {
        let reason = match &committed {
            Err(e) => format!("group commit failed: {e}"),
            Ok(()) => "group commit ended early".to_owned(),
        };
        reply(Err(StoreError::Db(reason)));
    }
}

/// Removes the inline data of `rec`'s inline parts (inside the transaction that drops `rec`).
fn remove_inline(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    rec: &ObjectRecord,
) -> Result<()> {
    for part in rec.parts.iter().filter(|p| p.inline) {
        table.remove(part.blob_id.as_str())?;
    }
    Ok(())
}

/// Whether a table keyed by (bucket, …) has any entry for `bucket`.
fn has_bucket_entry(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    bucket: &str,
) -> Result<bool> {
    match table.range((bucket, "")..)?.next() {
        Some(entry) => Ok(entry?.0.value().0 == bucket),
        None => Ok(false),
    }
}

/// Removes every part of an upload, returning them by ascending part number.
fn take_parts(txn: &WriteTransaction, bucket: &str, upload_id: &str) -> Result<Vec<PartLayout>> {
    let mut parts = txn.open_table(PARTS)?;
    let mut out = Vec::new();
    for entry in parts.extract_from_if(
        (bucket, upload_id, 0)..=(bucket, upload_id, u32::MAX),
        |_, _| true,
    )? {
        out.push(decode::<StoredPart>(entry?.1.value())?.part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use tempfile::TempDir;

    use super::*;
    use crate::records::tests::{object, part, upload};

    fn open() -> (TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("meta.redb")).unwrap();
        (dir, store)
    }

    fn bucket(name: &str) -> BucketRecord {
        BucketRecord {
            v: crate::records::BUCKET_RECORD_VERSION,
            name: name.into(),
            region: "us-east-1".into(),
            created_unix_ms: 1_700_000_000_000,
            encryption: None,
            sse_c_allowed: false,
            policy: None,
            cors: None,
            mac: None,
        }
    }

    fn open_with_bucket(name: &str) -> (TempDir, MetaStore) {
        let (dir, store) = open();
        store.create_bucket(&bucket(name)).unwrap();
        (dir, store)
    }

    fn no_check(_: Option<&ObjectRecord>) -> Result<()> {
        Ok(())
    }

    fn key_names(listing: &[(String, ObjectRecord)]) -> Vec<&str> {
        listing.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn stores_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MetaStore>();
    }

    #[test]
    fn buckets_are_created_listed_by_name_and_deleted() {
        let (_dir, store) = open();
        assert_eq!(store.get_bucket("b").unwrap(), None);
        store.create_bucket(&bucket("zeta")).unwrap();
        store.create_bucket(&bucket("alpha")).unwrap();
        assert_eq!(store.get_bucket("zeta").unwrap(), Some(bucket("zeta")));
        let names: Vec<String> = store
            .list_buckets()
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        store.delete_bucket("zeta").unwrap();
        assert_eq!(store.get_bucket("zeta").unwrap(), None);
        assert_eq!(store.list_buckets().unwrap(), [bucket("alpha")]);
    }

    #[test]
    fn creating_an_existing_bucket_fails_and_keeps_the_original() {
        let (_dir, store) = open_with_bucket("b");
        let mut other = bucket("b");
        other.region = "eu-west-1".into();
        assert!(matches!(
            store.create_bucket(&other),
            Err(StoreError::BucketAlreadyExists)
        ));
        assert_eq!(store.get_bucket("b").unwrap(), Some(bucket("b")));
    }

    #[test]
    fn deleting_a_missing_bucket_is_bucket_not_found() {
        let (_dir, store) = open();
        assert!(matches!(
            store.delete_bucket("nope"),
            Err(StoreError::BucketNotFound)
        ));
    }

    #[test]
    fn bucket_with_an_object_is_not_empty() {
        let (_dir, store) = open_with_bucket("b");
        store
            .put_object("b", "k", &object("e", &["b1"]), no_check)
            .unwrap();
        assert!(matches!(
            store.delete_bucket("b"),
            Err(StoreError::BucketNotEmpty)
        ));
        store.delete_object("b", "k").unwrap();
        store.delete_bucket("b").unwrap();
    }

    #[test]
    fn bucket_with_only_an_upload_is_not_empty() {
        let (_dir, store) = open_with_bucket("b");
        store.create_upload(&upload("b", "u1", "k", 1)).unwrap();
        assert!(matches!(
            store.delete_bucket("b"),
            Err(StoreError::BucketNotEmpty)
        ));
        store.abort_upload("b", "u1").unwrap();
        store.delete_bucket("b").unwrap();
    }

    #[test]
    fn objects_in_a_neighbouring_bucket_do_not_make_a_bucket_non_empty() {
        let (_dir, store) = open_with_bucket("b");
        store.create_bucket(&bucket("b-2")).unwrap();
        store.create_bucket(&bucket("a")).unwrap();
        store
            .put_object("b-2", "k", &object("e", &["b1"]), no_check)
            .unwrap();
        store.create_upload(&upload("a", "u", "k", 1)).unwrap();
        store.delete_bucket("b").unwrap();
    }

    fn inline_object(etag: &str, blob_id: &str) -> ObjectRecord {
        let mut rec = object(etag, &[blob_id]);
        rec.parts[0].inline = true;
        rec.parts[0].part_salt = None;
        rec
    }

    #[test]
    fn inline_data_is_stored_with_its_record_and_removed_with_it() {
        let (_dir, store) = open_with_bucket("b");
        let first = inline_object("e1", "i1");
        store
            .put_object_inline("b", "k", &first, Some(b"sealed one".to_vec()), no_check)
            .unwrap();
        assert_eq!(
            store.get_object_with_inline("b", "k").unwrap(),
            Some((first.clone(), Some(b"sealed one".to_vec())))
        );
        assert_eq!(
            store.get_inline("i1").unwrap(),
            Some(b"sealed one".to_vec())
        );
        // The sweep must not count inline data as blob files.
        assert!(!store.referenced_blobs().unwrap().contains("i1"));

        // Overwriting drops the old inline data in the same transaction.
        let second = inline_object("e2", "i2");
        let replaced = store
            .put_object_inline("b", "k", &second, Some(b"sealed two".to_vec()), no_check)
            .unwrap();
        assert_eq!(replaced, Some(first));
        assert_eq!(store.get_inline("i1").unwrap(), None);
        assert_eq!(
            store.get_inline("i2").unwrap(),
            Some(b"sealed two".to_vec())
        );

        // A failed check stores nothing, inline data included.
        let refused = store.put_object_inline(
            "b",
            "k",
            &inline_object("e3", "i3"),
            Some(b"sealed three".to_vec()),
            |_| Err(StoreError::PreconditionFailed),
        );
        assert!(matches!(refused, Err(StoreError::PreconditionFailed)));
        assert_eq!(store.get_inline("i3").unwrap(), None);

        // Replacing with a blob-file object, then deleting, leaves no inline data behind.
        store
            .put_object("b", "k", &object("e4", &["file"]), no_check)
            .unwrap();
        assert_eq!(store.get_inline("i2").unwrap(), None);
        assert_eq!(
            store.get_object_with_inline("b", "k").unwrap(),
            Some((object("e4", &["file"]), None))
        );
        store
            .put_object_inline(
                "b",
                "k",
                &inline_object("e5", "i5"),
                Some(vec![5]),
                no_check,
            )
            .unwrap();
        store.delete_object("b", "k").unwrap();
        assert_eq!(store.get_inline("i5").unwrap(), None);
        assert_eq!(store.get_object_with_inline("b", "k").unwrap(), None);
    }

    #[test]
    fn delete_objects_removes_many_keys_and_their_inline_data_at_once() {
        let (_dir, store) = open_with_bucket("b");
        store
            .put_object_inline(
                "b",
                "a",
                &inline_object("ea", "ia"),
                Some(vec![1]),
                no_check,
            )
            .unwrap();
        store
            .put_object("b", "f", &object("ef", &["file"]), no_check)
            .unwrap();
        store
            .put_object("b", "kept", &object("ek", &["kept"]), no_check)
            .unwrap();
        let keys = ["a", "missing", "f"].map(String::from);
        let removed = store.delete_objects("b", &keys).unwrap();
        assert_eq!(
            removed,
            vec![
                Some(inline_object("ea", "ia")),
                None,
                Some(object("ef", &["file"]))
            ]
        );
        assert_eq!(store.get_object("b", "a").unwrap(), None);
        assert_eq!(store.get_object("b", "f").unwrap(), None);
        assert!(store.get_object("b", "kept").unwrap().is_some());
        assert_eq!(store.inline_blob_ids().unwrap(), Vec::<String>::new());
        assert!(matches!(
            store.delete_objects("nope", &keys),
            Err(StoreError::BucketNotFound)
        ));
    }

    #[test]
    fn inline_data_must_match_an_inline_part() {
        let (_dir, store) = open_with_bucket("b");
        // Data for a record with no inline part, and an inline part without data: both refused.
        assert!(
            store
                .put_object_inline("b", "k", &object("e", &["f"]), Some(vec![1]), no_check)
                .is_err()
        );
        assert!(
            store
                .put_object_inline("b", "k", &inline_object("e", "i"), None, no_check)
                .is_err()
        );
        assert_eq!(store.get_object("b", "k").unwrap(), None);
    }

    #[test]
    fn object_calls_on_a_missing_bucket_are_bucket_not_found() {
        let (_dir, store) = open();
        let rec = object("e", &["b1"]);
        let not_found = |r: Result<_>| matches!(r, Err(StoreError::BucketNotFound));
        assert!(not_found(store.get_object("x", "k").map(drop)));
        assert!(not_found(
            store.put_object("x", "k", &rec, no_check).map(drop)
        ));
        assert!(not_found(store.delete_object("x", "k").map(drop)));
        assert!(not_found(store.list_objects("x", "", None, 10).map(drop)));
        assert!(not_found(store.create_upload(&upload("x", "u", "k", 1))));
        assert!(not_found(store.get_upload("x", "u").map(drop)));
        assert!(not_found(store.put_part("x", "u", &part(1, "p")).map(drop)));
        assert!(not_found(store.list_parts("x", "u").map(drop)));
        assert!(not_found(
            store
                .complete_upload("x", "u", "k", &rec, no_check)
                .map(drop)
        ));
        assert!(not_found(store.abort_upload("x", "u").map(drop)));
        assert!(not_found(store.list_uploads("x", "").map(drop)));
    }

    #[test]
    fn put_get_overwrite_and_delete_an_object() {
        let (_dir, store) = open_with_bucket("b");
        assert_eq!(store.get_object("b", "k").unwrap(), None);
        let first = object("e1", &["b1"]);
        assert_eq!(store.put_object("b", "k", &first, no_check).unwrap(), None);
        assert_eq!(store.get_object("b", "k").unwrap(), Some(first.clone()));
        let second = object("e2", &["b2"]);
        let replaced = store.put_object("b", "k", &second, no_check).unwrap();
        assert_eq!(replaced, Some(first));
        assert_eq!(store.delete_object("b", "k").unwrap(), Some(second));
        assert_eq!(store.get_object("b", "k").unwrap(), None);
        assert_eq!(store.delete_object("b", "k").unwrap(), None);
    }

    #[test]
    fn check_sees_the_current_record() {
        let (_dir, store) = open_with_bucket("b");
        let first = object("e1", &["b1"]);
        store
            .put_object("b", "k", &first, |current| {
                assert_eq!(current, None);
                Ok(())
            })
            .unwrap();
        store
            .put_object("b", "k", &object("e2", &["b2"]), {
                let first = first.clone();
                move |current| {
                    assert_eq!(current, Some(&first));
                    Ok(())
                }
            })
            .unwrap();
    }

    #[test]
    fn concurrent_puts_are_group_committed_and_create_only_has_one_winner() {
        let (_dir, store) = open_with_bucket("b");
        let store = std::sync::Arc::new(store);
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let store = std::sync::Arc::clone(&store);
                std::thread::spawn(move || {
                    let own =
                        store.put_object("b", &format!("k{i}"), &object("e", &["x"]), no_check);
                    // Everyone races to create the same key with "create only".
                    let race = store.put_object("b", "shared", &object("e", &["y"]), |cur| {
                        if cur.is_some() {
                            Err(StoreError::PreconditionFailed)
                        } else {
                            Ok(())
                        }
                    });
                    (own.is_ok(), race.is_ok())
                })
            })
            .collect();
        let results: Vec<(bool, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(results.iter().all(|(own, _)| *own));
        assert_eq!(results.iter().filter(|(_, race)| *race).count(), 1);
        assert_eq!(store.list_objects("b", "k", None, 100).unwrap().len(), 32);
    }

    #[test]
    fn precondition_failure_leaves_the_old_record() {
        let (_dir, store) = open_with_bucket("b");
        let first = object("e1", &["b1"]);
        store.put_object("b", "k", &first, no_check).unwrap();
        let result = store.put_object("b", "k", &object("e2", &["b2"]), |_| {
            Err(StoreError::PreconditionFailed)
        });
        assert!(matches!(result, Err(StoreError::PreconditionFailed)));
        assert_eq!(store.get_object("b", "k").unwrap(), Some(first));
        // An if-none-match style check against a missing key stores nothing either.
        let result = store.put_object("b", "other", &object("e3", &["b3"]), |_| {
            Err(StoreError::PreconditionFailed)
        });
        assert!(matches!(result, Err(StoreError::PreconditionFailed)));
        assert_eq!(store.get_object("b", "other").unwrap(), None);
    }

    #[test]
    fn keys_may_hold_any_character_including_nul() {
        let (_dir, store) = open_with_bucket("b");
        for key in ["a\0b", "a", "a\u{10ffff}", "ä/ü", ""] {
            store
                .put_object("b", key, &object(key, &["b1"]), no_check)
                .unwrap();
        }
        assert_eq!(store.get_object("b", "a\0b").unwrap().unwrap().etag, "a\0b");
        let listing = store.list_objects("b", "", None, 100).unwrap();
        assert_eq!(key_names(&listing), ["", "a", "a\0b", "a\u{10ffff}", "ä/ü"]);
    }

    #[test]
    fn list_objects_is_in_byte_order_with_prefix_after_and_limit() {
        let (_dir, store) = open_with_bucket("b");
        store.create_bucket(&bucket("b0")).unwrap();
        store.create_bucket(&bucket("a")).unwrap();
        for key in [
            "photos/2",
            "photos/10",
            "photos/1",
            "photo",
            "photos0",
            "Z",
            "video/1",
        ] {
            store
                .put_object("b", key, &object("e", &["b1"]), no_check)
                .unwrap();
        }
        // Neighbouring buckets must not leak into the listing.
        store
            .put_object("b0", "photos/3", &object("e", &["b2"]), no_check)
            .unwrap();
        store
            .put_object("a", "zzz", &object("e", &["b3"]), no_check)
            .unwrap();

        let all = store.list_objects("b", "", None, 100).unwrap();
        assert_eq!(
            key_names(&all),
            [
                "Z",
                "photo",
                "photos/1",
                "photos/10",
                "photos/2",
                "photos0",
                "video/1"
            ]
        );
        let photos = store.list_objects("b", "photos/", None, 100).unwrap();
        assert_eq!(key_names(&photos), ["photos/1", "photos/10", "photos/2"]);
        let page = store.list_objects("b", "photos/", None, 2).unwrap();
        assert_eq!(key_names(&page), ["photos/1", "photos/10"]);
        let page = store
            .list_objects("b", "photos/", Some("photos/10"), 2)
            .unwrap();
        assert_eq!(key_names(&page), ["photos/2"]);
        // `after` before the prefix starts at the prefix; after it, the listing is empty.
        let page = store.list_objects("b", "photos/", Some("a"), 1).unwrap();
        assert_eq!(key_names(&page), ["photos/1"]);
        assert!(
            store
                .list_objects("b", "photos/", Some("q"), 10)
                .unwrap()
                .is_empty()
        );
        // `after` need not be a stored key.
        let page = store.list_objects("b", "", Some("photos/15"), 10).unwrap();
        assert_eq!(key_names(&page), ["photos/2", "photos0", "video/1"]);
        assert!(store.list_objects("b", "", None, 0).unwrap().is_empty());
        assert!(
            store
                .list_objects("b", "nothing", None, 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn multipart_upload_lifecycle() {
        let (_dir, store) = open_with_bucket("b");
        let up = upload("b", "u1", "big", 5);
        store.create_upload(&up).unwrap();
        assert_eq!(store.get_upload("b", "u1").unwrap(), Some(up));
        assert_eq!(store.get_upload("b", "u2").unwrap(), None);
        assert!(store.list_parts("b", "u1").unwrap().is_empty());

        assert_eq!(store.put_part("b", "u1", &part(3, "p3")).unwrap(), None);
        assert_eq!(store.put_part("b", "u1", &part(1, "p1")).unwrap(), None);
        assert_eq!(store.put_part("b", "u1", &part(10, "p10")).unwrap(), None);
        // A re-uploaded part replaces the old one, which is returned for freeing.
        assert_eq!(
            store.put_part("b", "u1", &part(1, "p1b")).unwrap(),
            Some(part(1, "p1"))
        );
        let numbers: Vec<u32> = store
            .list_parts("b", "u1")
            .unwrap()
            .iter()
            .map(|p| p.part_number)
            .collect();
        assert_eq!(numbers, [1, 3, 10]);
        assert_eq!(store.list_parts("b", "u1").unwrap()[0], part(1, "p1b"));
    }

    #[test]
    fn parts_of_a_missing_upload_are_no_such_upload() {
        let (_dir, store) = open_with_bucket("b");
        assert!(matches!(
            store.put_part("b", "u", &part(1, "p")),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            store.list_parts("b", "u"),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            store.abort_upload("b", "u"),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            store.complete_upload("b", "u", "k", &object("e", &["p"]), no_check),
            Err(StoreError::NoSuchUpload)
        ));
    }

    #[test]
    fn an_upload_id_in_use_is_refused() {
        let (_dir, store) = open_with_bucket("b");
        store.create_upload(&upload("b", "u", "k", 1)).unwrap();
        assert!(matches!(
            store.create_upload(&upload("b", "u", "other", 2)),
            Err(StoreError::Db(_))
        ));
        assert_eq!(store.get_upload("b", "u").unwrap().unwrap().key, "k");
    }

    #[test]
    fn complete_upload_swaps_upload_for_object_in_one_step() {
        let (_dir, store) = open_with_bucket("b");
        let old = object("old", &["old-blob"]);
        store.put_object("b", "k", &old, no_check).unwrap();
        store.create_upload(&upload("b", "u", "k", 1)).unwrap();
        for (n, id) in [(1, "p1"), (2, "p2"), (3, "p3")] {
            store.put_part("b", "u", &part(n, id)).unwrap();
        }
        // The client completes with parts 1 and 3 only.
        let mut rec = object("abc-2", &["p1", "p3"]);
        rec.parts[1].part_number = 3;
        let (replaced, unused) = store
            .complete_upload("b", "u", "k", &rec, |current| {
                assert_eq!(current, Some(&old));
                Ok(())
            })
            .unwrap();
        assert_eq!(replaced, Some(old));
        assert_eq!(unused, [part(2, "p2")]);
        assert_eq!(store.get_object("b", "k").unwrap(), Some(rec));
        assert_eq!(store.get_upload("b", "u").unwrap(), None);
        assert!(matches!(
            store.list_parts("b", "u"),
            Err(StoreError::NoSuchUpload)
        ));
        let referenced = store.referenced_blobs().unwrap();
        assert_eq!(referenced, HashSet::from(["p1".into(), "p3".into()]));
        store.delete_object("b", "k").unwrap();
        store.delete_bucket("b").unwrap();
    }

    /// Regression: a part re-uploaded between choosing the parts and completing made the object
    /// point at a freed blob (found in review).
    #[test]
    fn complete_upload_refuses_a_part_re_uploaded_meanwhile() {
        let (_dir, store) = open_with_bucket("b");
        store.create_upload(&upload("b", "u", "k", 1)).unwrap();
        store.put_part("b", "u", &part(1, "first")).unwrap();
        let rec = object("abc-1", &["first"]);
        // The retried UploadPart lands before the completion commits.
        store.put_part("b", "u", &part(1, "retried")).unwrap();
        let result = store.complete_upload("b", "u", "k", &rec, no_check);
        assert!(
            matches!(result, Err(StoreError::PartsChanged)),
            "{result:?}"
        );
        assert_eq!(store.get_object("b", "k").unwrap(), None);
        assert_eq!(store.list_parts("b", "u").unwrap(), [part(1, "retried")]);
    }

    #[test]
    fn failed_complete_upload_changes_nothing() {
        let (_dir, store) = open_with_bucket("b");
        let old = object("old", &["old-blob"]);
        store.put_object("b", "k", &old, no_check).unwrap();
        store.create_upload(&upload("b", "u", "k", 1)).unwrap();
        store.put_part("b", "u", &part(1, "p1")).unwrap();
        let rec = object("abc-1", &["p1"]);
        let result =
            store.complete_upload("b", "u", "k", &rec, |_| Err(StoreError::PreconditionFailed));
        assert!(matches!(result, Err(StoreError::PreconditionFailed)));
        assert_eq!(store.get_object("b", "k").unwrap(), Some(old));
        assert!(store.get_upload("b", "u").unwrap().is_some());
        assert_eq!(store.list_parts("b", "u").unwrap(), [part(1, "p1")]);
        // Completing under another key is not this upload.
        assert!(matches!(
            store.complete_upload("b", "u", "other", &rec, no_check),
            Err(StoreError::NoSuchUpload)
        ));
        assert_eq!(store.get_object("b", "other").unwrap(), None);
        assert!(store.get_upload("b", "u").unwrap().is_some());
    }

    #[test]
    fn abort_upload_returns_its_parts_and_leaves_others() {
        let (_dir, store) = open_with_bucket("b");
        store.create_upload(&upload("b", "u1", "k", 1)).unwrap();
        store.create_upload(&upload("b", "u2", "k", 2)).unwrap();
        store.put_part("b", "u1", &part(2, "a2")).unwrap();
        store.put_part("b", "u1", &part(1, "a1")).unwrap();
        store.put_part("b", "u2", &part(1, "b1")).unwrap();
        assert_eq!(
            store.abort_upload("b", "u1").unwrap(),
            [part(1, "a1"), part(2, "a2")]
        );
        assert_eq!(store.get_upload("b", "u1").unwrap(), None);
        assert!(matches!(
            store.abort_upload("b", "u1"),
            Err(StoreError::NoSuchUpload)
        ));
        assert_eq!(store.list_parts("b", "u2").unwrap(), [part(1, "b1")]);
    }

    #[test]
    fn list_uploads_orders_by_key_then_initiated_then_id() {
        let (_dir, store) = open_with_bucket("b");
        store.create_bucket(&bucket("c")).unwrap();
        for (id, key, initiated) in [
            ("u5", "x/b", 1),
            ("u4", "x/a", 9),
            ("u3", "x/a", 2),
            ("u2", "x/a", 2),
            ("u1", "y", 0),
        ] {
            store
                .create_upload(&upload("b", id, key, initiated))
                .unwrap();
        }
        store.create_upload(&upload("c", "u0", "x/a", 0)).unwrap();
        let ids = |prefix| -> Vec<String> {
            store
                .list_uploads("b", prefix)
                .unwrap()
                .into_iter()
                .map(|u| u.upload_id)
                .collect()
        };
        assert_eq!(ids("x/"), ["u2", "u3", "u4", "u5"]);
        assert_eq!(ids(""), ["u2", "u3", "u4", "u5", "u1"]);
        assert!(ids("z").is_empty());
    }

    #[test]
    fn system_values_are_stored_and_replaced() {
        let (_dir, store) = open();
        assert_eq!(store.get_system("service-key").unwrap(), None);
        store.put_system("service-key", b"sealed-1").unwrap();
        store.put_system("service-key", b"sealed-2").unwrap();
        assert_eq!(
            store.get_system("service-key").unwrap(),
            Some(b"sealed-2".to_vec())
        );
    }

    #[test]
    fn referenced_blobs_covers_objects_and_upload_parts() {
        let (_dir, store) = open_with_bucket("b");
        assert!(store.referenced_blobs().unwrap().is_empty());
        store
            .put_object("b", "k1", &object("e", &["o1", "o2"]), no_check)
            .unwrap();
        store.create_upload(&upload("b", "u", "k2", 1)).unwrap();
        store.put_part("b", "u", &part(1, "p1")).unwrap();
        let expected: HashSet<String> = ["o1", "o2", "p1"].map(String::from).into();
        assert_eq!(store.referenced_blobs().unwrap(), expected);
    }

    #[test]
    fn reopening_the_database_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let rec = object("e", &["b1"]);
        {
            let store = MetaStore::open(&path).unwrap();
            store.create_bucket(&bucket("b")).unwrap();
            store.put_object("b", "k", &rec, no_check).unwrap();
            store.create_upload(&upload("b", "u", "k2", 1)).unwrap();
            store.put_part("b", "u", &part(1, "p1")).unwrap();
            store.put_system("s", b"v").unwrap();
        }
        let store = MetaStore::open(&path).unwrap();
        assert_eq!(store.get_bucket("b").unwrap(), Some(bucket("b")));
        assert_eq!(store.get_object("b", "k").unwrap(), Some(rec));
        assert_eq!(
            store.get_upload("b", "u").unwrap(),
            Some(upload("b", "u", "k2", 1))
        );
        assert_eq!(store.list_parts("b", "u").unwrap(), [part(1, "p1")]);
        assert_eq!(store.get_system("s").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_corrupt_record_is_reported_not_panicked_on() {
        let (_dir, store) = open_with_bucket("b");
        store
            .write(|txn| {
                txn.open_table(OBJECTS)?
                    .insert(("b", "k"), b"{garbage".as_slice())?;
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            store.get_object("b", "k"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            store.list_objects("b", "", None, 10),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// Keys from a small alphabet so prefixes, shared stems and `after` values collide often.
    fn key_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab/\u{e9}]{0,4}").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Paging through list_objects with `after` = last key returns exactly the model's keys with
        /// the prefix, in order; so does a single listing from an arbitrary `after`.
        #[test]
        fn list_objects_paging_matches_a_btreemap_model(
            keys in proptest::collection::btree_set(key_strategy(), 0..24),
            other_bucket_keys in proptest::collection::btree_set(key_strategy(), 0..6),
            prefix in proptest::string::string_regex("[ab/]{0,2}").unwrap(),
            after in proptest::option::of(key_strategy()),
            limit in 1usize..5,
        ) {
            let (_dir, store) = open_with_bucket("b");
            store.create_bucket(&bucket("b\0")).unwrap();
            store.create_bucket(&bucket("a")).unwrap();
            let mut model = BTreeMap::new();
            for key in &keys {
                let rec = object(key, &["blob"]);
                store.put_object("b", key, &rec, no_check).unwrap();
                model.insert(key.clone(), rec);
            }
            for key in &other_bucket_keys {
                store.put_object("b\0", key, &object("x", &["x"]), no_check).unwrap();
                store.put_object("a", key, &object("y", &["y"]), no_check).unwrap();
            }

            let expected: Vec<(String, ObjectRecord)> = model
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut paged = Vec::new();
            let mut cursor: Option<String> = None;
            // A listing that failed to advance would loop forever; no correct one needs more pages.
            for _ in 0..=keys.len() + 1 {
                let page = store.list_objects("b", &prefix, cursor.as_deref(), limit).unwrap();
                prop_assert!(page.len() <= limit);
                let done = page.len() < limit;
                cursor = page.last().map(|(k, _)| k.clone()).or(cursor);
                paged.extend(page);
                if done {
                    break;
                }
            }
            prop_assert_eq!(&paged, &expected);

            let from_after: Vec<String> = expected
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| after.as_ref().is_none_or(|a| k > a))
                .take(limit)
                .collect();
            let listed = store.list_objects("b", &prefix, after.as_deref(), limit).unwrap();
            prop_assert_eq!(key_names(&listed), from_after.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

#[cfg(test)]
mod kv_tests {
    use super::*;

    #[test]
    fn kv_batches_are_atomic_and_scans_stay_in_their_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("m.redb")).unwrap();
        store
            .kv_write(&[
                KvOp::Put("kms".into(), "key/a".into(), b"1".to_vec()),
                KvOp::Put("kms".into(), "key/b".into(), b"2".to_vec()),
                KvOp::Put("kms".into(), "alias/x".into(), b"3".to_vec()),
                KvOp::Put("kmt".into(), "key/c".into(), b"4".to_vec()),
            ])
            .unwrap();
        let keys: Vec<String> = store
            .kv_scan("kms", "key/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["key/a", "key/b"]);
        store
            .kv_write(&[KvOp::Delete("kms".into(), "key/a".into())])
            .unwrap();
        assert_eq!(store.kv_get("kms", "key/a").unwrap(), None);
        assert_eq!(
            store.kv_get("kms", "key/b").unwrap().as_deref(),
            Some(&b"2"[..])
        );
    }
}
