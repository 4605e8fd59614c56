//! The blob store: object bytes, already ciphertext, as local files under `blobs/<2 chars>/<id>`.
//!
//! It must never see plaintext or keys and never decides what a blob means: the metadata record
//! that names a blob is the only thing that makes it part of an object. A blob is written to
//! `tmp/`, made durable by [`BlobWriter::commit`] (the one durable-write function: fsync file,
//! rename, fsync directory), and only then referenced by a metadata commit. Files that no record
//! references (crashed writes, blobs freed by a lost delete) are removed by [`BlobStore::sweep`].

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::StoreError;

type Result<T, E = StoreError> = std::result::Result<T, E>;

// DO NOT RENAME: existing data directories hold these.
/// Directory of committed blob files under the data dir.
pub const BLOBS_DIR: &str = "blobs";
const TMP_DIR: &str = "tmp";
/// Characters of the blob id that name its fan-out directory. DO NOT CHANGE: blobs already written
/// would no longer be found.
const FANOUT_CHARS: usize = 2;

/// Object bytes in local files; cheap to share behind an `Arc`.
pub struct BlobStore {
    dirs: Arc<Dirs>,
}

/// What a [`BlobStore`] and its writers share.
struct Dirs {
    blobs: PathBuf,
    tmp: PathBuf,
    /// Fan-out directories whose entry in `blobs/` this process has fsynced. A directory that
    /// merely exists may have been made by a process that crashed before fsyncing its parent, so
    /// each one is fsynced once per process before the first blob is committed into it.
    durable_fanout: Mutex<HashSet<String>>,
}

impl BlobStore {
    /// Opens the blob store rooted at `dir`, creating `dir/blobs` and `dir/tmp` if needed.
    pub fn open(dir: &Path) -> Result<BlobStore> {
        let blobs = dir.join(BLOBS_DIR);
        let tmp = dir.join(TMP_DIR);
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&tmp)?;
        Ok(BlobStore {
            dirs: Arc::new(Dirs {
                blobs,
                tmp,
                durable_fanout: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// A fresh blob id: a random UUID v4 as 32 lowercase hex characters.
    pub fn new_blob_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Starts writing a new blob into a temp file under `tmp/`.
    pub fn create(&self, blob_id: &str) -> Result<BlobWriter> {
        check_blob_id(blob_id)?;
        let tmp_path = self.dirs.tmp.join(blob_id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(BlobWriter {
            file,
            tmp_path,
            blob_id: blob_id.to_owned(),
            dirs: Arc::clone(&self.dirs),
            committed: false,
            written: 0,
            flusher: None,
        })
    }

    /// Opens a committed blob for positional reads.
    pub fn open_blob(&self, blob_id: &str) -> Result<BlobReader> {
        let file = File::open(self.dirs.blob_path(blob_id)?)?;
        let len = file.metadata()?.len();
        Ok(BlobReader {
            file,
            len,
            blob_id: blob_id.to_owned(),
        })
    }

    /// Deletes a committed blob; a blob that is already gone is fine. Not fsynced: a delete lost in
    /// a crash leaves an unreferenced blob, which the sweep removes.
    pub fn delete(&self, blob_id: &str) -> Result<()> {
        remove_if_present(&self.dirs.blob_path(blob_id)?)?;
        Ok(())
    }

    /// Removes every temp file and every blob not in `referenced` whose mtime is at least
    /// `min_age` old. Returns count removed.
    ///
    /// The age applies to temp files too: a temp file younger than `min_age` may be a write in
    /// progress, and a blob younger than it may be committed but not yet referenced. Pass
    /// [`Duration::ZERO`] only when nothing else is writing (at start).
    pub fn sweep(&self, referenced: &HashSet<String>, min_age: Duration) -> Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&self.dirs.tmp)? {
            removed += usize::from(remove_if_old(&entry?.path(), now, min_age)?);
        }
        for fanout in fs::read_dir(&self.dirs.blobs)? {
            let fanout = fanout?;
            if !fanout.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(fanout.path())? {
                let entry = entry?;
                let is_referenced = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|id| referenced.contains(id));
                if !is_referenced {
                    removed += usize::from(remove_if_old(&entry.path(), now, min_age)?);
                }
            }
        }
        tracing::info!(removed, "blob sweep finished");
        Ok(removed)
    }
}

impl Dirs {
    /// `blobs/<first 2 chars>/<id>`.
    fn blob_path(&self, blob_id: &str) -> Result<PathBuf> {
        check_blob_id(blob_id)?;
        Ok(self.blobs.join(&blob_id[..FANOUT_CHARS]).join(blob_id))
    }

    /// Creates the fan-out directory for `blob_id` if needed and makes sure its entry in `blobs/`
    /// is durable before a blob is renamed into it.
    fn durable_fanout_dir(&self, blob_id: &str) -> Result<PathBuf> {
        let name = &blob_id[..FANOUT_CHARS];
        let dir = self.blobs.join(name);
        let mut durable = self
            .durable_fanout
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !durable.contains(name) {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err.into()),
            }
            sync_dir(&self.blobs)?;
            durable.insert(name.to_owned());
        }
        Ok(dir)
    }
}

/// Bytes between two early flushes of a large blob (see [`BlobWriter::write_all`]).
const FLUSH_EVERY: u64 = 16 << 20;

/// A blob being written; [`BlobWriter::commit`] makes it durable and visible. Dropping it
/// uncommitted removes its temp file (best effort).
pub struct BlobWriter {
    file: File,
    tmp_path: PathBuf,
    blob_id: String,
    dirs: Arc<Dirs>,
    committed: bool,
    /// Bytes appended so far.
    written: u64,
    /// Started once the blob passes [`FLUSH_EVERY`] bytes.
    flusher: Option<Flusher>,
}

/// A thread that flushes a large blob's written bytes to disk while later ones are still being
/// produced, so that the fsync of [`BlobWriter::commit`] finds little left to write: the disk
/// works in parallel with hashing and sealing instead of after them.
struct Flusher {
    wake: std::sync::mpsc::SyncSender<()>,
    done: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: &File) -> Result<Flusher> {
        let file = file.try_clone()?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let done = std::thread::Builder::new()
            .name("coffer-blob-flush".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    file.sync_data()?;
                }
                Ok(())
            })?;
        Ok(Flusher { wake, done })
    }
}

impl BlobWriter {
    /// Appends `bytes` to the blob. Every [`FLUSH_EVERY`] bytes, a background thread starts
    /// writing what is there to disk (a wake-up is skipped while the previous flush runs).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes)?;
        let before = self.written;
        self.written += bytes.len() as u64;
        if before / FLUSH_EVERY != self.written / FLUSH_EVERY {
            if self.flusher.is_none() {
                self.flusher = Some(Flusher::start(&self.file)?);
            }
            if let Some(flusher) = &self.flusher {
                let _ = flusher.wake.try_send(());
            }
        }
        Ok(())
    }

    /// The one durable-write function: fsync the file, rename into `blobs/<2 chars>/<id>`, fsync
    /// the directory. When it returns Ok the blob survives a crash.
    pub fn commit(mut self) -> Result<()> {
        if let Some(Flusher { wake, done }) = self.flusher.take() {
            drop(wake);
            done.join().map_err(|_| {
                StoreError::Io(std::io::Error::other("the blob flush thread panicked"))
            })??;
        }
        self.file.sync_all()?;
        let dir = self.dirs.durable_fanout_dir(&self.blob_id)?;
        fs::rename(&self.tmp_path, dir.join(&self.blob_id))?;
        self.committed = true;
        sync_dir(&dir)?;
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed
            && let Err(err) = remove_if_present(&self.tmp_path)
        {
            tracing::warn!(path = %self.tmp_path.display(), %err, "could not remove an abandoned temp blob; the sweep will");
        }
    }
}

/// A committed blob open for positional reads; reads need only `&self`, so one reader can serve
/// several ranges.
pub struct BlobReader {
    file: File,
    len: u64,
    blob_id: String,
}

impl BlobReader {
    /// The blob's length in bytes, when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `buf` from `offset`; a blob too short to fill it is [`StoreError::Corrupt`], since its
    /// record promised more.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => {
                Err(StoreError::Corrupt(format!(
                    "blob {} is {} bytes long, too short to read {} bytes at offset {offset}",
                    self.blob_id,
                    self.len,
                    buf.len()
                )))
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Blob ids become file names: only ASCII letters, digits, `-` and `_`, and long enough to fan out.
/// Anything else comes from a damaged record, hence [`StoreError::Corrupt`].
fn check_blob_id(blob_id: &str) -> Result<()> {
    let valid = blob_id.len() > FANOUT_CHARS
        && blob_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "blob id {blob_id:?} is not a valid blob id (ASCII letters, digits, '-', '_'; more than {FANOUT_CHARS} characters)"
        )))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes a file; `Ok(false)` if it was already gone.
fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Removes the file at `path` if its mtime is at least `min_age` before `now`; files that vanish
/// meanwhile (deleted, or a temp file committed) are skipped.
fn remove_if_old(path: &Path, now: SystemTime, min_age: Duration) -> Result<bool> {
    let modified = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => meta.modified()?,
        Ok(_) => return Ok(false),
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    // An mtime in the future (clock steps) counts as new.
    let old = now.duration_since(modified).is_ok_and(|age| age >= min_age);
    if !old {
        return Ok(false);
    }
    tracing::debug!(path = %path.display(), "sweep removes unreferenced file");
    remove_if_present(path)
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    fn open() -> (TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn write_blob(store: &BlobStore, bytes: &[u8]) -> String {
        let id = BlobStore::new_blob_id();
        let mut writer = store.create(&id).unwrap();
        writer.write_all(bytes).unwrap();
        writer.commit().unwrap();
        id
    }

    fn files_in(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    fn backdate(path: &Path, by: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn stores_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BlobStore>();
        assert_send_sync::<BlobWriter>();
        assert_send_sync::<BlobReader>();
    }

    #[test]
    fn open_creates_blob_and_temp_dirs() {
        let (dir, _store) = open();
        assert!(dir.path().join("blobs").is_dir());
        assert!(dir.path().join("tmp").is_dir());
    }

    #[test]
    fn new_blob_ids_are_32_hex_chars_and_distinct() {
        let a = BlobStore::new_blob_id();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, BlobStore::new_blob_id());
    }

    #[test]
    fn a_blob_larger_than_the_flush_interval_commits_and_reads_back() {
        let (dir, store) = open();
        let id = BlobStore::new_blob_id();
        let mut w = store.create(&id).unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let chunks = 2 * FLUSH_EVERY / chunk.len() as u64 + 3;
        for _ in 0..chunks {
            w.write_all(&chunk).unwrap();
        }
        assert!(w.flusher.is_some(), "a blob past FLUSH_EVERY flushes early");
        w.commit().unwrap();
        let r = store.open_blob(&id).unwrap();
        assert_eq!(r.len(), chunks * chunk.len() as u64);
        let mut last = vec![0u8; chunk.len()];
        r.read_exact_at(&mut last, r.len() - chunk.len() as u64)
            .unwrap();
        assert_eq!(last, chunk);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn an_abandoned_large_blob_leaves_no_temp_file() {
        let (dir, store) = open();
        let mut w = store.create(&BlobStore::new_blob_id()).unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..(FLUSH_EVERY >> 20) + 1 {
            w.write_all(&chunk).unwrap();
        }
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn committed_blob_reads_back_from_its_fanout_dir() {
        let (dir, store) = open();
        let id = BlobStore::new_blob_id();
        let mut writer = store.create(&id).unwrap();
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        assert_eq!(files_in(&dir.path().join("tmp")), 1);
        writer.commit().unwrap();
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
        assert!(dir.path().join("blobs").join(&id[..2]).join(&id).is_file());

        let reader = store.open_blob(&id).unwrap();
        assert_eq!(reader.len(), 11);
        assert!(!reader.is_empty());
        let mut buf = [0; 5];
        reader.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"world");
        reader.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn empty_blob_is_empty() {
        let (_dir, store) = open();
        let id = write_blob(&store, b"");
        let reader = store.open_blob(&id).unwrap();
        assert!(reader.is_empty());
        reader.read_exact_at(&mut [], 0).unwrap();
    }

    #[test]
    fn reading_past_the_end_is_corrupt() {
        let (_dir, store) = open();
        let id = write_blob(&store, b"short");
        let reader = store.open_blob(&id).unwrap();
        let mut buf = [0; 4];
        assert!(matches!(
            reader.read_exact_at(&mut buf, 3),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn dropping_an_uncommitted_writer_removes_its_temp_file() {
        let (dir, store) = open();
        let id = BlobStore::new_blob_id();
        let mut writer = store.create(&id).unwrap();
        writer.write_all(b"partial").unwrap();
        assert!(dir.path().join("tmp").join(&id).exists());
        drop(writer);
        assert_eq!(files_in(&dir.path().join("tmp")), 0);
        assert!(store.open_blob(&id).is_err());
    }

    #[test]
    fn delete_removes_a_blob_and_ignores_a_missing_one() {
        let (_dir, store) = open();
        let id = write_blob(&store, b"bytes");
        store.delete(&id).unwrap();
        assert!(matches!(store.open_blob(&id), Err(StoreError::Io(_))));
        store.delete(&id).unwrap();
    }

    #[test]
    fn ids_that_are_not_safe_file_names_are_refused() {
        let (_dir, store) = open();
        for bad in ["", "ab", "../../etc/passwd", "ab/cd", "a.b.c", "é1234"] {
            assert!(
                matches!(store.create(bad), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
            assert!(
                matches!(store.open_blob(bad), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
            assert!(
                matches!(store.delete(bad), Err(StoreError::Corrupt(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sweep_removes_temp_files_and_old_unreferenced_blobs_only() {
        let (dir, store) = open();
        let referenced_old = write_blob(&store, b"kept: referenced");
        let orphan_old = write_blob(&store, b"removed: orphan");
        let orphan_new = write_blob(&store, b"kept: may be about to be referenced");
        backdate(&store.dirs.blob_path(&referenced_old).unwrap(), 2 * HOUR);
        backdate(&store.dirs.blob_path(&orphan_old).unwrap(), 2 * HOUR);
        // A crashed write's temp file, and one still being written.
        let crashed = dir.path().join("tmp").join(BlobStore::new_blob_id());
        fs::write(&crashed, b"partial").unwrap();
        backdate(&crashed, 2 * HOUR);
        let mut in_progress = store.create(&BlobStore::new_blob_id()).unwrap();
        in_progress.write_all(b"partial").unwrap();

        let referenced = HashSet::from([referenced_old.clone()]);
        assert_eq!(store.sweep(&referenced, HOUR).unwrap(), 2);
        assert!(!crashed.exists());
        assert!(store.open_blob(&orphan_old).is_err());
        assert!(store.open_blob(&referenced_old).is_ok());
        assert!(store.open_blob(&orphan_new).is_ok());
        in_progress.commit().unwrap();

        // At start nothing is writing: every temp file and unreferenced blob goes.
        let stray = dir.path().join("tmp").join(BlobStore::new_blob_id());
        fs::write(&stray, b"x").unwrap();
        let removed = store.sweep(&referenced, Duration::ZERO).unwrap();
        assert_eq!(removed, 3);
        assert!(!stray.exists());
        assert!(store.open_blob(&referenced_old).is_ok());
        assert_eq!(store.sweep(&referenced, Duration::ZERO).unwrap(), 0);
    }

    #[test]
    fn blobs_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let id = write_blob(&BlobStore::open(dir.path()).unwrap(), b"durable");
        let store = BlobStore::open(dir.path()).unwrap();
        let reader = store.open_blob(&id).unwrap();
        let mut buf = [0; 7];
        reader.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"durable");
        // A second blob in the same fan-out directory from a fresh process.
        let sibling = format!("{}{}", &id[..2], &BlobStore::new_blob_id()[2..]);
        let mut writer = store.create(&sibling).unwrap();
        writer.write_all(b"x").unwrap();
        writer.commit().unwrap();
        assert_eq!(files_in(&dir.path().join("blobs").join(&id[..2])), 2);
    }
}
