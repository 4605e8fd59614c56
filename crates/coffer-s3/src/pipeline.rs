//! The object data pipelines: request body → segments → sealed blob, and blob → opened
//! segments → response body.
//!
//! Memory per request is bounded by a few batches of segments whatever the object size.
//! Writes overlap the hashing (MD5 and checksums, on the async task) with sealing and disk
//! writes (on a blocking thread); reads overlap disk reads and opening with the network send.
//! Ranged reads open only the segments that hold the range.
//!
//! Small objects (at most [`INLINE_MAX`] bytes, one segment) skip the blob file: the write
//! pipeline seals them in memory and the caller stores the sealed stream in the metadata
//! database with the record (one group-committed transaction instead of three fsyncs), and the
//! read pipeline opens them in memory without touching the blocking pool.
//!
//! Both pipelines handle both kinds of sealed stream ([`coffer_crypto::StreamKind`]): a
//! single-layer stream (one data key; every mode but DSSE-KMS) and a dual-layer DSSE-KMS stream
//! (an inner and an outer data key, each segment sealed twice, `SEGMENT_SIZE + 32` bytes per full
//! segment). Which one is chosen by the keys a caller passes, and nothing else: [`write_stream`]
//! takes [`StreamKeys`] (a plain `&Key256` converts into a single-layer one, so single-layer
//! callers pass their key as before), and a [`ReadPart`] with an `outer_key` is read as a dual
//! stream. Segment offsets, batch sizes and the inline size check follow the stream's kind; the
//! inline threshold stays one plaintext segment for both. This module never builds a cipher
//! itself beyond asking coffer-crypto for the one those keys name.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use coffer_crypto::Md5;
use coffer_crypto::{CryptoError, Key256, NONCE_PREFIX_LEN, SEGMENT_SIZE, StreamCipher};
use coffer_store::{BlobReader, BlobStore, BlobWriter, PartLayout, StoreError};
use futures::{Stream, StreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::dto::Checksum;
use s3s::{S3Error, S3Result};

use crate::error::api_error;
use tokio::sync::mpsc;

use crate::error::{body_error, crypto_error, internal, store_error};

/// Segments handed to the sealing thread at once (1 MiB of plaintext).
const BATCH_SEGMENTS: usize = 16;
const BATCH: usize = BATCH_SEGMENTS * SEGMENT_SIZE;
/// Batches in flight between the two sides of a write pipeline.
const DEPTH: usize = 2;
/// Opened batches a read may hold ahead of the socket: enough for the opening thread to keep
/// going while the network side drains a batch, and the other way round.
const READ_DEPTH: usize = 4;

/// Objects up to this many bytes are sealed in memory and stored inline with their record.
/// One segment (the most an inline stream may hold): MinIO makes the same trade (128 KiB) for
/// the same reason.
pub const INLINE_MAX: usize = SEGMENT_SIZE;

/// S3's limit for one PutObject / UploadPart body.
pub const MAX_SINGLE_UPLOAD: u64 = 5 * 1024 * 1024 * 1024;

/// The data keys of one stream: one key for a single-layer stream, or the inner and outer keys
/// of a dual-layer (DSSE-KMS) stream, which must differ. For a multipart part these are the part
/// keys derived from each data key.
#[derive(Clone, Copy)]
pub struct StreamKeys<'a> {
    /// The single layer's key, or the inner (aws-lc) layer's.
    pub inner: &'a Key256,
    /// The outer (RustCrypto) layer's key; `None` for a single-layer stream.
    pub outer: Option<&'a Key256>,
}

impl<'a> StreamKeys<'a> {
    /// The key of a single-layer stream.
    pub fn single(key: &'a Key256) -> StreamKeys<'a> {
        StreamKeys {
            inner: key,
            outer: None,
        }
    }

    /// The cipher of the stream `stream_id` under these keys.
    fn cipher(
        self,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stream_id: &[u8],
    ) -> Result<StreamCipher, CryptoError> {
        match self.outer {
            None => StreamCipher::single(self.inner, nonce_prefix, stream_id),
            Some(outer) => StreamCipher::dual(self.inner, outer, nonce_prefix, stream_id),
        }
    }
}

/// A single-layer stream's key: what every caller passed before dual-layer streams existed.
impl<'a> From<&'a Key256> for StreamKeys<'a> {
    fn from(key: &'a Key256) -> StreamKeys<'a> {
        StreamKeys::single(key)
    }
}

/// A plaintext source for the write pipeline.
pub type ByteSource = std::pin::Pin<Box<dyn Stream<Item = S3Result<Bytes>> + Send>>;

/// Adapts a request body to a `ByteSource`, mapping transport errors to S3 errors.
pub fn from_body(body: s3s::dto::StreamingBlob) -> ByteSource {
    Box::pin(body.map(|r| r.map_err(|e| body_error(&*e))))
}

/// Where the write pipeline put the sealed stream.
pub enum SealedData {
    /// A blob file, written and flushed, not yet committed ([`commit_blob`]).
    File(BlobWriter),
    /// The whole sealed stream in memory, for the caller to store with the record.
    Inline(Vec<u8>),
}

/// What the write pipeline produced: the sealed stream and what was learned about the
/// plaintext on the way.
pub struct Written {
    pub data: SealedData,
    pub size: u64,
    pub md5: [u8; 16],
    pub checksums: Checksum,
}

/// What the async half of a write hands the sealing thread: request-body chunks (shared, not
/// copied) about a batch at a time, and then the end of the body.
enum Feed {
    Chunks(Vec<Bytes>),
    End,
}

/// The blocking sealer of a write that outgrew memory: where chunks go, and its result.
struct Sealer {
    tx: mpsc::Sender<Feed>,
    task: tokio::task::JoinHandle<S3Result<BlobWriter>>,
}

impl Sealer {
    /// Creates the blob file and starts sealing into it on the blocking pool.
    fn start(blobs: &BlobStore, blob_id: &str, cipher: StreamCipher) -> S3Result<Sealer> {
        let writer = blobs.create(blob_id).map_err(store_error)?;
        let (tx, rx) = mpsc::channel::<Feed>(DEPTH);
        let task = tokio::task::spawn_blocking(move || seal_loop(cipher, writer, rx));
        Ok(Sealer { tx, task })
    }
}

/// Streams `source` into a new sealed stream with id `blob_id`, sealing it under `keys` (one
/// layer, or two for DSSE-KMS) with the STREAM construction: in memory when the whole plaintext
/// is at most `inline_max` bytes ([`SealedData::Inline`]; 0 means always a file, even for an
/// empty body), else into a new blob file. Fails with `EntityTooLarge` past `max_size`. Nothing
/// is visible to readers until the caller commits the blob (if any) *and* the metadata record.
///
/// This task hashes each chunk (MD5, checksums) and passes it on by reference count; the
/// sealing thread cuts segments, seals them in place and writes — so the plaintext is copied
/// once on its way to the file, off the hashing path.
#[allow(clippy::too_many_arguments)]
pub async fn write_stream(
    blobs: &Arc<BlobStore>,
    blob_id: &str,
    keys: impl Into<StreamKeys<'_>>,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    mut source: ByteSource,
    mut hasher: ChecksumHasher,
    max_size: u64,
    inline_max: usize,
) -> S3Result<Written> {
    let mut cipher = Some(
        keys.into()
            .cipher(nonce_prefix, blob_id.as_bytes())
            .map_err(crypto_error)?,
    );
    // Started once the body outgrows `inline_max`: a small body never needs a file.
    let mut sealer: Option<Sealer> = None;

    let mut md5 = Md5::new();
    let mut size: u64 = 0;
    // Chunks not yet handed to the sealer, and their length.
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len: usize = 0;
    let mut failure: Option<S3Error> = None;
    while let Some(item) = source.next().await {
        let chunk = match item {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        size += chunk.len() as u64;
        if size > max_size {
            failure = Some(api_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size of {max_size} bytes"
            ));
            break;
        }
        md5.update(&chunk);
        hasher.update(&chunk);
        pending_len += chunk.len();
        pending.push(chunk);
        let threshold = if sealer.is_some() { BATCH } else { inline_max };
        if pending_len > threshold {
            let tx = match &sealer {
                Some(s) => &s.tx,
                None => match cipher.take() {
                    Some(cipher) => &sealer.insert(Sealer::start(blobs, blob_id, cipher)?).tx,
                    None => unreachable!("the cipher moves into the only sealer"),
                },
            };
            pending_len = 0;
            if tx
                .send(Feed::Chunks(std::mem::take(&mut pending)))
                .await
                .is_err()
            {
                break; // the sealer failed: its error is reported below
            }
        }
    }
    if let Some(err) = failure {
        if let Some(sealer) = sealer {
            drop(sealer.tx);
            // The BlobWriter is dropped uncommitted, which removes its temp file.
            drop(sealer.task.await);
        }
        return Err(err);
    }
    let data = match (sealer, cipher) {
        (None, Some(cipher)) if inline_max > 0 && pending_len <= inline_max.min(SEGMENT_SIZE) => {
            // One segment, sealed in place.
            let mut out = Vec::with_capacity(pending_len + cipher.kind().overhead());
            for chunk in &pending {
                out.extend_from_slice(chunk);
            }
            seal_one(&cipher, &mut 0, true, &mut out, 0)?;
            SealedData::Inline(out)
        }
        (sealer, cipher) => {
            let sealer = match (sealer, cipher) {
                (Some(sealer), _) => sealer,
                (None, Some(cipher)) => Sealer::start(blobs, blob_id, cipher)?,
                (None, None) => unreachable!("the cipher moves into the only sealer"),
            };
            if !pending.is_empty() {
                let _ = sealer.tx.send(Feed::Chunks(pending)).await;
            }
            let _ = sealer.tx.send(Feed::End).await;
            drop(sealer.tx);
            let blob = sealer
                .task
                .await
                .map_err(|e| internal("sealing task", e))??;
            SealedData::File(blob)
        }
    };
    Ok(Written {
        data,
        size,
        md5: md5.finalize(),
        checksums: hasher.finalize(),
    })
}

/// The blocking half of the write pipeline: cuts the chunks into segments in one batch buffer,
/// seals each in place once it is known not to be the last (a full segment is held back until
/// more data or the end arrives), and appends full batches to the blob.
fn seal_loop(
    cipher: StreamCipher,
    mut writer: BlobWriter,
    mut rx: mpsc::Receiver<Feed>,
) -> S3Result<BlobWriter> {
    let mut index: u32 = 0;
    let sealed_segment_size = cipher.kind().sealed_segment_size();
    let mut out: Vec<u8> = Vec::with_capacity((BATCH_SEGMENTS + 1) * sealed_segment_size);
    // Where the segment being filled starts in `out`.
    let mut segment_start = 0usize;
    while let Some(feed) = rx.blocking_recv() {
        let chunks = match feed {
            Feed::Chunks(chunks) => chunks,
            Feed::End => {
                seal_one(&cipher, &mut index, true, &mut out, segment_start)?;
                writer.write_all(&out).map_err(store_error)?;
                return Ok(writer);
            }
        };
        for chunk in chunks {
            let mut rest: &[u8] = &chunk;
            while !rest.is_empty() {
                if out.len() - segment_start == SEGMENT_SIZE {
                    // More data follows, so this full segment is not the last one.
                    seal_one(&cipher, &mut index, false, &mut out, segment_start)?;
                    if out.len() >= BATCH_SEGMENTS * sealed_segment_size {
                        writer.write_all(&out).map_err(store_error)?;
                        out.clear();
                    }
                    segment_start = out.len();
                }
                let take = (SEGMENT_SIZE - (out.len() - segment_start)).min(rest.len());
                out.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
            }
        }
    }
    Err(api_error!(IncompleteBody, "the request body ended early"))
}

/// Seals the plaintext `out[from..]` in place as segment `index` and advances `index`.
fn seal_one(
    cipher: &StreamCipher,
    index: &mut u32,
    last: bool,
    out: &mut Vec<u8>,
    from: usize,
) -> S3Result<()> {
    cipher
        .seal_tail(*index, last, out, from)
        .map_err(crypto_error)?;
    *index = index
        .checked_add(1)
        .ok_or_else(|| api_error!(EntityTooLarge, "object exceeds the segment index space"))?;
    Ok(())
}

/// Commits a written blob durably (fsync, rename, fsync dir) on a blocking thread.
pub async fn commit_blob(blob: BlobWriter) -> S3Result<()> {
    tokio::task::spawn_blocking(move || blob.commit())
        .await
        .map_err(|e| internal("blob commit task", e))?
        .map_err(store_error)
}

/// Frees blobs no record points to any more (after the metadata commit that dropped them).
pub fn free_blobs(blobs: &Arc<BlobStore>, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let blobs = Arc::clone(blobs);
    tokio::task::spawn_blocking(move || {
        for id in ids {
            if let Err(e) = blobs.delete(&id) {
                tracing::warn!(blob = %id, error = %e, "could not free blob; the sweep will retry");
            }
        }
    });
}

/// One stream to read: a part's layout, the key(s) that open it and, for an inline part, its
/// sealed bytes (read with the record).
pub struct ReadPart {
    pub layout: PartLayout,
    /// The single layer's key, or a DSSE-KMS stream's inner layer's.
    pub key: Key256,
    /// A DSSE-KMS stream's outer layer's key; `None` for a single-layer stream. It decides how
    /// the stream is read: a stream of the other kind fails its integrity check.
    pub outer_key: Option<Key256>,
    pub inline: Option<Vec<u8>>,
}

/// Where a part's sealed bytes are read from.
enum Source {
    File(BlobReader),
    Memory(Vec<u8>),
}

impl Source {
    /// The `len` sealed bytes at `offset`, in a buffer of their own (opened in place by the
    /// caller). An inline stream read whole is handed over as it is, without a copy.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        match self {
            Source::File(reader) => {
                let mut buf = vec![0u8; len];
                reader
                    .read_exact_at(&mut buf, offset)
                    .map_err(|e| e.to_string())?;
                Ok(buf)
            }
            Source::Memory(bytes) if offset == 0 && len == bytes.len() => Ok(std::mem::take(bytes)),
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).map_err(|_| "offset overflow".to_owned())?;
                bytes
                    .get(start..start + len)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "inline data is shorter than its record says".to_owned())
            }
        }
    }
}

/// Names the object in log lines when its data fails to open.
#[derive(Clone)]
pub struct ObjectName {
    pub bucket: String,
    pub key: String,
}

/// Streams the plaintext bytes `range` of an object made of `parts`. The first batch is read
/// and opened before this returns, so a small object that fails authentication is an error
/// response rather than a broken body.
pub async fn read_range(
    blobs: &Arc<BlobStore>,
    parts: Vec<ReadPart>,
    range: Range<u64>,
    name: ObjectName,
) -> S3Result<s3s::dto::StreamingBlob> {
    if parts.iter().all(|p| p.layout.inline) {
        // Small and already in memory: open it here rather than on the blocking pool.
        let mut out: Vec<Bytes> = Vec::new();
        for (mut part, part_range) in select_parts(parts, &range) {
            let Some(sealed) = part.inline.take() else {
                return Err(api_error!(
                    InternalError,
                    "The object's stored data is missing."
                ));
            };
            let mut source = Source::Memory(sealed);
            open_part(&mut source, &part, part_range, &mut |pieces| {
                out.extend(pieces);
                true
            })
            .map_err(|e| data_failure(&name, &part, &e))?;
        }
        return Ok(s3s::dto::StreamingBlob::wrap(futures::stream::iter(
            out.into_iter().map(Ok::<_, std::io::Error>),
        )));
    }
    let (tx, mut rx) = mpsc::channel::<Result<Vec<Bytes>, std::io::Error>>(READ_DEPTH);
    let blobs = Arc::clone(blobs);
    tokio::task::spawn_blocking(move || open_loop(&blobs, parts, range, &name, &tx));
    let first = rx.recv().await;
    let first = match first {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            // Deleted or overwritten between reading its record and opening its data.
            return Err(api_error!(NoSuchKey, "The specified key does not exist."));
        }
        Some(Err(_)) => {
            return Err(api_error!(
                InternalError,
                "The object's stored data failed its integrity check."
            ));
        }
    };
    let head = futures::stream::iter(first.map(Ok));
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    // Each batch is a list of opened segments (slices of one buffer): sent on one by one.
    let body = head.chain(rest).flat_map(|batch| {
        let items: Vec<Result<Bytes, std::io::Error>> = match batch {
            Ok(pieces) => pieces.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    });
    Ok(s3s::dto::StreamingBlob::wrap(body))
}

/// The parts `range` touches, each with the part-relative range to read from it.
fn select_parts(parts: Vec<ReadPart>, range: &Range<u64>) -> Vec<(ReadPart, Range<u64>)> {
    let mut part_start: u64 = 0;
    let mut selected = Vec::new();
    for part in parts {
        let part_end = part_start + part.layout.size;
        let (lo, hi) = (range.start.max(part_start), range.end.min(part_end));
        let this_start = part_start;
        part_start = part_end;
        if lo < hi {
            selected.push((part, lo - this_start..hi - this_start));
        }
    }
    selected
}

/// Logs a part that failed to open (naming the object) and returns the client's error.
fn data_failure(name: &ObjectName, part: &ReadPart, error: &str) -> S3Error {
    tracing::error!(
        bucket = %name.bucket, key = %name.key, blob = %part.layout.blob_id, part = part.layout.part_number,
        error = %error, "object data failed to open: stored bytes altered or unreadable"
    );
    api_error!(
        InternalError,
        "The object's stored data failed its integrity check."
    )
}

fn open_loop(
    blobs: &BlobStore,
    parts: Vec<ReadPart>,
    range: Range<u64>,
    name: &ObjectName,
    tx: &mpsc::Sender<Result<Vec<Bytes>, std::io::Error>>,
) {
    // Open every file the range needs before sending a byte: an open file survives the unlink
    // of a concurrent overwrite or delete, so a read that started sees its version whole.
    let mut selected = Vec::new();
    for (mut part, part_range) in select_parts(parts, &range) {
        if let Some(sealed) = part.inline.take() {
            selected.push((part, Source::Memory(sealed), part_range));
            continue;
        }
        match blobs.open_blob(&part.layout.blob_id) {
            Ok(reader) => selected.push((part, Source::File(reader), part_range)),
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = tx.blocking_send(Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "object data is gone",
                )));
                return;
            }
            Err(e) => {
                tracing::error!(bucket = %name.bucket, key = %name.key, blob = %part.layout.blob_id, error = %e, "object data could not be opened");
                let _ = tx.blocking_send(Err(std::io::Error::other(
                    "stored object data is unreadable",
                )));
                return;
            }
        }
    }
    for (part, mut source, part_range) in selected {
        let mut send = |pieces: Vec<Bytes>| tx.blocking_send(Ok(pieces)).is_ok();
        if let Err(e) = open_part(&mut source, &part, part_range, &mut send) {
            drop(data_failure(name, &part, &e));
            let _ = tx.blocking_send(Err(std::io::Error::other(
                "stored object data failed its integrity check",
            )));
            return;
        }
    }
}

/// Reads and opens the segments of one stream that cover `range` (relative to the stream),
/// handing each opened batch (its segments' plaintext, trimmed to `range`) to `emit`, which
/// returns false when nobody wants more.
fn open_part(
    source: &mut Source,
    part: &ReadPart,
    range: Range<u64>,
    emit: &mut dyn FnMut(Vec<Bytes>) -> bool,
) -> Result<(), String> {
    let size = part.layout.size;
    let prefix: [u8; NONCE_PREFIX_LEN] = part
        .layout
        .nonce_prefix
        .as_slice()
        .try_into()
        .map_err(|_| "bad nonce prefix length".to_owned())?;
    let keys = StreamKeys {
        inner: &part.key,
        outer: part.outer_key.as_ref(),
    };
    let cipher = keys
        .cipher(prefix, part.layout.blob_id.as_bytes())
        .map_err(|e| e.to_string())?;
    let overhead = cipher.kind().overhead() as u64;
    let sealed_segment_size = cipher.kind().sealed_segment_size() as u64;
    let total_segments = coffer_crypto::segment_count(size);
    let seg = SEGMENT_SIZE as u64;
    let first = range.start / seg;
    let last = (range.end - 1) / seg;
    let mut index = first;
    while index <= last {
        let batch_end = (index + BATCH_SEGMENTS as u64 - 1).min(last);
        let plain_len = |i: u64| -> u64 { (size - i * seg).min(seg) };
        let sealed_len: u64 = (index..=batch_end).map(|i| plain_len(i) + overhead).sum();
        // A fresh buffer per batch: segments are opened in place and handed on as slices of
        // it, so the plaintext is never copied again on its way to the socket.
        let mut buf = source.read_at(index * sealed_segment_size, sealed_len as usize)?;
        let mut pieces: Vec<Range<usize>> = Vec::with_capacity(BATCH_SEGMENTS);
        let mut offset = 0usize;
        for i in index..=batch_end {
            let len = (plain_len(i) + overhead) as usize;
            let sealed = &mut buf[offset..offset + len];
            let i32 = u32::try_from(i).map_err(|_| "segment index overflow".to_owned())?;
            let plain = cipher
                .open_segment(i32, i + 1 == total_segments, sealed)
                .map_err(|e| e.to_string())?;
            let seg_start = i * seg;
            let lo = (range.start.max(seg_start) - seg_start) as usize;
            let hi = (range.end.min(seg_start + plain.len() as u64) - seg_start) as usize;
            pieces.push(offset + lo..offset + hi);
            offset += len;
        }
        let opened = Bytes::from(buf);
        if !emit(pieces.into_iter().map(|p| opened.slice(p)).collect()) {
            return Ok(()); // the client went away
        }
        index = batch_end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use coffer_crypto::StreamKind;

    use super::*;

    /// Writes `len` bytes (inline if `inline_max` allows), reads `range` back, compares.
    async fn roundtrip_with(len: usize, range: Range<u64>, inline_max: usize) {
        roundtrip_chunked(len, range, inline_max, 10_000).await;
    }

    /// [`roundtrip_with`], the body arriving in chunks of `chunk` bytes.
    async fn roundtrip_chunked(len: usize, range: Range<u64>, inline_max: usize, chunk: usize) {
        roundtrip_kind(len, range, inline_max, chunk, StreamKind::Single).await;
    }

    /// [`roundtrip_chunked`] for a stream of either kind: a dual one is written and read with
    /// two keys, and its sealed size (inline, or the blob file's) is checked against its kind.
    async fn roundtrip_kind(
        len: usize,
        range: Range<u64>,
        inline_max: usize,
        chunk: usize,
        kind: StreamKind,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(BlobStore::open(dir.path()).unwrap());
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let key = Key256::generate().unwrap();
        let outer_key = match kind {
            StreamKind::Single => None,
            StreamKind::Dual => Some(Key256::generate().unwrap()),
        };
        let keys = StreamKeys {
            inner: &key,
            outer: outer_key.as_ref(),
        };
        let id = BlobStore::new_blob_id();
        let prefix = coffer_crypto::random_array().unwrap();
        let chunks: Vec<S3Result<Bytes>> = data
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let source: ByteSource = Box::pin(futures::stream::iter(chunks));
        let w = write_stream(
            &blobs,
            &id,
            keys,
            prefix,
            source,
            ChecksumHasher::default(),
            u64::MAX,
            inline_max,
        )
        .await
        .unwrap();
        assert_eq!(w.size, len as u64);
        let inline = match w.data {
            SealedData::File(blob) => {
                assert!(
                    inline_max == 0 || len > inline_max,
                    "{len} bytes should have been inline"
                );
                commit_blob(blob).await.unwrap();
                assert_eq!(
                    blobs.open_blob(&id).unwrap().len(),
                    kind.sealed_len(len as u64)
                );
                None
            }
            SealedData::Inline(sealed) => {
                assert!(
                    inline_max > 0 && len <= inline_max,
                    "{len} bytes should have been a file (inline_max {inline_max})"
                );
                assert_eq!(sealed.len(), len + kind.overhead());
                assert!(
                    blobs.open_blob(&id).is_err(),
                    "an inline write must not leave a blob file"
                );
                assert_eq!(
                    std::fs::read_dir(dir.path().join("tmp")).map_or(0, |d| d.count()),
                    0
                );
                Some(sealed)
            }
        };
        let layout = PartLayout {
            part_number: 1,
            blob_id: id,
            size: len as u64,
            nonce_prefix: prefix.to_vec(),
            part_salt: None,
            etag: String::new(),
            checksums: Default::default(),
            inline: inline.is_some(),
            mac: None,
        };
        let name = ObjectName {
            bucket: "b".into(),
            key: "k".into(),
        };
        let part = ReadPart {
            layout,
            key,
            outer_key,
            inline,
        };
        let body = read_range(&blobs, vec![part], range.clone(), name)
            .await
            .unwrap();
        let got: Vec<u8> = body
            .map(|r| r.unwrap())
            .collect::<Vec<Bytes>>()
            .await
            .concat();
        assert_eq!(got, &data[range.start as usize..range.end as usize]);
    }

    async fn roundtrip(len: usize, range: Range<u64>) {
        roundtrip_with(len, range, 0).await;
    }

    #[tokio::test]
    async fn chunks_aligned_with_segments_and_single_bytes_seal_the_same_stream() {
        for chunk in [1usize, SEGMENT_SIZE, SEGMENT_SIZE + 1, BATCH] {
            for len in [SEGMENT_SIZE, 2 * SEGMENT_SIZE, BATCH + SEGMENT_SIZE] {
                if chunk == 1 && len > 2 * SEGMENT_SIZE {
                    continue; // slow, and nothing the smaller case does not cover
                }
                roundtrip_chunked(len, 0..len as u64, 0, chunk).await;
            }
        }
    }

    #[tokio::test]
    async fn small_streams_are_sealed_in_memory_and_read_back() {
        for len in [0usize, 1, 4096, INLINE_MAX - 1, INLINE_MAX] {
            roundtrip_with(len, 0..len as u64, INLINE_MAX).await;
        }
        roundtrip_with(INLINE_MAX, 100..4000, INLINE_MAX).await;
        // One byte over the limit goes to a file.
        roundtrip_with(INLINE_MAX + 1, 0..INLINE_MAX as u64 + 1, INLINE_MAX).await;
        roundtrip_with(3 * BATCH + 5, 0..3 * BATCH as u64 + 5, INLINE_MAX).await;
    }

    #[tokio::test]
    async fn an_altered_inline_stream_fails_to_open() {
        let key = Key256::generate().unwrap();
        let id = BlobStore::new_blob_id();
        let prefix = coffer_crypto::random_array().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(BlobStore::open(dir.path()).unwrap());
        let source: ByteSource = Box::pin(futures::stream::iter([Ok(Bytes::from_static(
            b"attack at dawn",
        ))]));
        let w = write_stream(
            &blobs,
            &id,
            &key,
            prefix,
            source,
            ChecksumHasher::default(),
            u64::MAX,
            INLINE_MAX,
        )
        .await
        .unwrap();
        let SealedData::Inline(mut sealed) = w.data else {
            panic!("a 14-byte object is inline");
        };
        sealed[3] ^= 1;
        let layout = PartLayout {
            part_number: 1,
            blob_id: id,
            size: 14,
            nonce_prefix: prefix.to_vec(),
            part_salt: None,
            etag: String::new(),
            checksums: Default::default(),
            inline: true,
            mac: None,
        };
        let name = ObjectName {
            bucket: "b".into(),
            key: "k".into(),
        };
        let part = ReadPart {
            layout,
            key,
            outer_key: None,
            inline: Some(sealed),
        };
        let err = read_range(&blobs, vec![part], 0..14, name)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code().as_str(), "InternalError");
    }

    #[tokio::test]
    async fn whole_and_ranged_reads_round_trip_at_segment_boundaries() {
        for len in [
            0usize,
            1,
            65535,
            65536,
            65537,
            BATCH,
            BATCH + 1,
            3 * BATCH + 12345,
        ] {
            roundtrip(len, 0..len as u64).await;
        }
        let len = 3 * BATCH + 12345;
        for (a, b) in [
            (65535u64, 65537u64),
            (65536, 65537),
            (0, 1),
            (BATCH as u64 - 1, BATCH as u64 + 1),
            (len as u64 - 1, len as u64),
        ] {
            roundtrip(len, a..b).await;
        }
    }

    /// A dual-layer stream written through the pipeline, with what reads it.
    struct DualFixture {
        dir: tempfile::TempDir,
        blobs: Arc<BlobStore>,
        id: String,
        prefix: [u8; NONCE_PREFIX_LEN],
        inner: Key256,
        outer: Key256,
        /// The sealed stream, when it was stored inline.
        inline: Option<Vec<u8>>,
        data: Vec<u8>,
    }

    impl DualFixture {
        async fn write(len: usize, inline_max: usize) -> DualFixture {
            let dir = tempfile::tempdir().unwrap();
            let blobs = Arc::new(BlobStore::open(dir.path()).unwrap());
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let (inner, outer) = (Key256::generate().unwrap(), Key256::generate().unwrap());
            let id = BlobStore::new_blob_id();
            let prefix = coffer_crypto::random_array().unwrap();
            let source: ByteSource =
                Box::pin(futures::stream::iter([Ok(Bytes::from(data.clone()))]));
            let w = write_stream(
                &blobs,
                &id,
                StreamKeys {
                    inner: &inner,
                    outer: Some(&outer),
                },
                prefix,
                source,
                ChecksumHasher::default(),
                u64::MAX,
                inline_max,
            )
            .await
            .unwrap();
            let inline = match w.data {
                SealedData::File(blob) => {
                    commit_blob(blob).await.unwrap();
                    None
                }
                SealedData::Inline(sealed) => Some(sealed),
            };
            DualFixture {
                dir,
                blobs,
                id,
                prefix,
                inner,
                outer,
                inline,
                data,
            }
        }

        /// Flips one bit of the stored stream at `offset`.
        fn flip(&mut self, offset: usize) {
            match &mut self.inline {
                Some(sealed) => sealed[offset] ^= 0x10,
                None => {
                    let path = self
                        .dir
                        .path()
                        .join("blobs")
                        .join(&self.id[..2])
                        .join(&self.id);
                    let mut bytes = std::fs::read(&path).unwrap();
                    bytes[offset] ^= 0x10;
                    std::fs::write(&path, bytes).unwrap();
                }
            }
        }

        /// Reads `range` with the given keys; `Err` with the S3 code, or a body that broke off.
        async fn read(
            &self,
            range: Range<u64>,
            key: &Key256,
            outer_key: Option<&Key256>,
        ) -> Result<Vec<u8>, String> {
            let layout = PartLayout {
                part_number: 1,
                blob_id: self.id.clone(),
                size: self.data.len() as u64,
                nonce_prefix: self.prefix.to_vec(),
                part_salt: None,
                etag: String::new(),
                checksums: Default::default(),
                inline: self.inline.is_some(),
                mac: None,
            };
            let part = ReadPart {
                layout,
                key: key.clone(),
                outer_key: outer_key.cloned(),
                inline: self.inline.clone(),
            };
            let name = ObjectName {
                bucket: "b".into(),
                key: "k".into(),
            };
            let body = read_range(&self.blobs, vec![part], range, name)
                .await
                .map_err(|e| e.code().as_str().to_owned())?;
            let pieces: Vec<Result<Bytes, String>> =
                body.map(|r| r.map_err(|e| e.to_string())).collect().await;
            Ok(pieces.into_iter().collect::<Result<Vec<_>, _>>()?.concat())
        }

        async fn read_dual(&self, range: Range<u64>) -> Result<Vec<u8>, String> {
            self.read(range, &self.inner, Some(&self.outer)).await
        }
    }

    const DUAL_SEGMENT: usize = SEGMENT_SIZE + 32;

    #[tokio::test]
    async fn dual_streams_round_trip_as_blob_files_and_inline() {
        for len in [0usize, 1, 65535, 65536, 65537, 200_000] {
            for inline_max in [0, INLINE_MAX] {
                roundtrip_kind(len, 0..len as u64, inline_max, 10_000, StreamKind::Dual).await;
            }
        }
    }

    #[tokio::test]
    async fn dual_streams_sealed_from_any_chunking_read_back() {
        for chunk in [SEGMENT_SIZE - 1, SEGMENT_SIZE + 1, BATCH] {
            let len = BATCH + SEGMENT_SIZE + 3;
            roundtrip_kind(len, 0..len as u64, INLINE_MAX, chunk, StreamKind::Dual).await;
        }
    }

    #[tokio::test]
    async fn dual_streams_read_ranges_across_segment_and_batch_boundaries() {
        let seg = SEGMENT_SIZE as u64;
        let len = 3 * BATCH + 12345;
        for (a, b) in [
            (0u64, 1u64),
            (seg - 1, seg + 1),
            (seg, seg + 1),
            (seg - 1, 2 * seg + 1),
            (BATCH as u64 - 1, BATCH as u64 + 1),
            (BATCH as u64 + 5, 2 * BATCH as u64 + 5),
            (len as u64 - 1, len as u64),
        ] {
            roundtrip_kind(len, a..b, 0, 10_000, StreamKind::Dual).await;
        }
        for (a, b) in [(100u64, 4000u64), (seg - 1, seg)] {
            roundtrip_kind(SEGMENT_SIZE, a..b, INLINE_MAX, 10_000, StreamKind::Dual).await;
        }
        let fixture = DualFixture::write(200_000, 0).await;
        for (a, b) in [
            (65_535usize, 131_073usize),
            (131_072, 200_000),
            (199_999, 200_000),
        ] {
            let got = fixture.read_dual(a as u64..b as u64).await.unwrap();
            assert_eq!(got, &fixture.data[a..b], "{a}..{b}");
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_in_a_dual_blob_fails_and_ranges_elsewhere_still_read() {
        let mut fixture = DualFixture::write(200_000, 0).await;
        assert!(fixture.inline.is_none());
        // Inside segment 2 (of 4): a read that needs it fails, one that does not still works.
        fixture.flip(2 * DUAL_SEGMENT + 5);
        assert_eq!(
            fixture.read_dual(0..200_000).await,
            Err("InternalError".to_owned())
        );
        assert_eq!(
            fixture
                .read_dual(2 * SEGMENT_SIZE as u64..2 * SEGMENT_SIZE as u64 + 1)
                .await,
            Err("InternalError".to_owned())
        );
        assert_eq!(
            fixture
                .read_dual(10..SEGMENT_SIZE as u64 + 10)
                .await
                .unwrap(),
            &fixture.data[10..SEGMENT_SIZE + 10]
        );
        assert_eq!(
            fixture
                .read_dual(3 * SEGMENT_SIZE as u64..200_000)
                .await
                .unwrap(),
            &fixture.data[3 * SEGMENT_SIZE..]
        );
    }

    #[tokio::test]
    async fn a_flipped_byte_in_either_layer_of_an_inline_dual_stream_fails() {
        // Plaintext area, the (outer-encrypted) inner tag, the outer tag.
        for offset in [0usize, 13, 14, 29, 30, 45] {
            let mut fixture = DualFixture::write(14, INLINE_MAX).await;
            assert_eq!(fixture.inline.as_ref().map(Vec::len), Some(14 + 32));
            fixture.flip(offset);
            assert_eq!(
                fixture.read_dual(0..14).await,
                Err("InternalError".to_owned()),
                "byte {offset}"
            );
        }
    }

    #[tokio::test]
    async fn a_dual_stream_needs_both_of_its_keys() {
        for inline_max in [0, INLINE_MAX] {
            let fixture = DualFixture::write(1000, inline_max).await;
            let other = Key256::generate().unwrap();
            let attempts = [
                ("no outer key", &fixture.inner, None),
                ("the outer key alone", &fixture.outer, None),
                ("a wrong outer key", &fixture.inner, Some(&other)),
                ("a wrong inner key", &other, Some(&fixture.outer)),
                ("swapped keys", &fixture.outer, Some(&fixture.inner)),
            ];
            for (what, key, outer_key) in attempts {
                assert_eq!(
                    fixture.read(0..1000, key, outer_key).await,
                    Err("InternalError".to_owned()),
                    "{what}, inline_max {inline_max}"
                );
            }
            assert_eq!(fixture.read_dual(0..1000).await.unwrap(), fixture.data);
        }
    }

    #[tokio::test]
    async fn a_single_layer_stream_does_not_read_as_a_dual_one() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(BlobStore::open(dir.path()).unwrap());
        let key = Key256::generate().unwrap();
        // A blob file of two segments, and an inline stream.
        for (inline_max, len) in [(0, 70_000usize), (INLINE_MAX, 60_000)] {
            let id = BlobStore::new_blob_id();
            let prefix = coffer_crypto::random_array().unwrap();
            let source: ByteSource =
                Box::pin(futures::stream::iter([Ok(Bytes::from(vec![7u8; len]))]));
            let w = write_stream(
                &blobs,
                &id,
                &key,
                prefix,
                source,
                ChecksumHasher::default(),
                u64::MAX,
                inline_max,
            )
            .await
            .unwrap();
            let inline = match w.data {
                SealedData::File(blob) => {
                    commit_blob(blob).await.unwrap();
                    None
                }
                SealedData::Inline(sealed) => Some(sealed),
            };
            let fixture = DualFixture {
                dir: tempfile::tempdir().unwrap(),
                blobs: Arc::clone(&blobs),
                id,
                prefix,
                inner: key.clone(),
                outer: Key256::generate().unwrap(),
                inline,
                data: vec![7u8; len],
            };
            assert_eq!(
                fixture.read_dual(0..len as u64).await,
                Err("InternalError".to_owned()),
                "inline_max {inline_max}"
            );
            assert_eq!(
                fixture.read(0..len as u64, &key, None).await.unwrap(),
                fixture.data
            );
        }
    }
}
