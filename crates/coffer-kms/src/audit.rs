//! The tamper-evident key-use log (DESIGN §6): one CloudTrail-shaped JSON object per line, each
//! carrying `previousLineSha256`, the SHA-256 of the previous line's exact bytes (without its
//! newline; 64 zeros on the first line), so that [`verify`] finds any edit, deletion or
//! reordering.
//!
//! **Durability.** [`AuditLog::append`] resolves only once its line is on disk (`fdatasync`).
//! Appends are group-committed: one writer thread takes every event queued while the previous
//! batch was being synced, writes them in one `write`, syncs once and then wakes all their
//! callers, so throughput grows with concurrency (one sync per batch, not per event): with *n*
//! callers each awaiting its own line, at most *n* per sync time, which the writer approaches by
//! waiting briefly for the previous batch's callers to come back (see `Writer::run`). Every
//! acknowledged event is in the log; an event whose append failed or never returned (crash) may
//! or may not be. After a failed write or sync the log accepts nothing more until it is reopened:
//! what reached the disk is then unknown, and [`AuditLog::open`] is the one place that repairs a
//! torn tail.
//!
//! **Torn tail.** A crash mid-write can leave a last line without its newline. `open` then either
//! completes it (it is a whole JSON object that chains to the line before: only the newline was
//! lost) or, if it is not valid JSON, truncates it (its event was never acknowledged) and chains
//! the next line to the last complete one. A whole JSON object that does not chain is not a torn
//! write, and `open` refuses to continue past it. `open` reads only the tail, never the whole chain:
//! run [`verify`] for that.
//!
//! **Where a break is reported.** An edit inside line *k* that leaves it valid JSON is reported at
//! line *k + 1*, whose link no longer matches; an edit that breaks line *k*'s JSON or changes its
//! own `previousLineSha256` is reported at line *k*. A deletion is reported at the line after the
//! gap, a reordering at the first line out of place. A chain alone cannot show that lines were cut
//! off the end, or that the last line was rewritten: [`VerifyReport::last_line_sha256`] is the
//! value to keep elsewhere and compare.
//!
//! This module writes what it is given: it must never add plaintexts, data keys or any secret to
//! an event, never reorder events, and never rewrite a complete line.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The field each line carries: hex SHA-256 of the previous line. Frozen: renaming it breaks
/// verification of every existing log.
pub const CHAIN_FIELD: &str = "previousLineSha256";

/// The link of the first line.
const GENESIS: [u8; 32] = [0; 32];

/// Most events one group commit takes, to bound the writer's buffer.
const MAX_BATCH: usize = 4096;

/// Longest a batch waits for the callers of the previous batch to come back.
const MAX_LINGER: Duration = Duration::from_millis(5);

/// Longest line `open` will read back when looking for the chain's tail.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// What an audit call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the log failed; after a failed append the log refuses further appends
    /// until reopened.
    #[error("audit log I/O error: {0}")]
    Io(#[from] io::Error),
    /// The log was closed (shutdown) or its writer thread is gone.
    #[error("the audit log is closed")]
    Closed,
    /// The file is not a log this module can continue or read; the message says where.
    #[error("the audit log is corrupt: {0}")]
    Corrupt(String),
    /// The event given to append was not a JSON object.
    #[error("an audit event must be a JSON object")]
    NotAnObject,
}

/// An append-only, hash-chained, group-committed log file.
pub struct AuditLog {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    syncs: Arc<AtomicU64>,
}

/// One event on its way to the writer: its compact JSON without the chain field.
struct Job {
    line: String,
    done: Done,
}

enum Done {
    Async(oneshot::Sender<Result<(), AuditError>>),
    Blocking(mpsc::SyncSender<Result<(), AuditError>>),
}

impl Done {
    fn send(self, result: Result<(), AuditError>) {
        // A caller that stopped waiting does not need the answer.
        match self {
            Done::Async(tx) => drop(tx.send(result)),
            Done::Blocking(tx) => drop(tx.send(result)),
        }
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` and continues the chain from its last
    /// complete line, repairing a torn tail as the module documentation describes.
    pub fn open(path: &Path) -> Result<Arc<AuditLog>, AuditError> {
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        if created {
            sync_parent_dir(path)?;
        }
        let prev = continue_chain(&mut file, path)?;
        let (tx, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            file,
            prev,
            failed: None,
            buf: Vec::new(),
            syncs: Arc::clone(&syncs),
        };
        let handle = std::thread::Builder::new()
            .name("coffer-audit".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(AuditLog {
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            syncs,
        }))
    }

    /// Appends one event (a JSON object; any `previousLineSha256` in it is replaced by the chain
    /// link) and resolves once the line is durable. Dropping the future does not withdraw the
    /// event: once queued, it is written.
    pub async fn append(&self, event: serde_json::Value) -> Result<(), AuditError> {
        let line = compact_without_link(event)?;
        let (tx, rx) = oneshot::channel();
        self.submit(Job {
            line,
            done: Done::Async(tx),
        })?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// [`AuditLog::append`] for non-async callers (background threads, `spawn_blocking`); blocks
    /// until the line is durable.
    pub fn append_blocking(&self, event: serde_json::Value) -> Result<(), AuditError> {
        let line = compact_without_link(event)?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Job {
            line,
            done: Done::Blocking(tx),
        })?;
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Batches written and synced since `open`: events appended per sync is the group-commit
    /// factor (a metric worth exporting, with the events count).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Stops accepting events, waits until every event already queued is durable, and stops the
    /// writer thread. Later appends fail with [`AuditError::Closed`]. Dropping the log does the
    /// same.
    pub fn close(&self) {
        drop(
            self.queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // A panicked writer already failed its callers (their channels closed).
            drop(handle.join());
        }
    }

    fn submit(&self, job: Job) -> Result<(), AuditError> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match queue.as_ref() {
            Some(tx) => tx.send(job).map_err(|_| AuditError::Closed),
            None => Err(AuditError::Closed),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The event as compact JSON (no newlines: serde_json escapes them inside strings), without a
/// chain field of its own.
fn compact_without_link(event: Value) -> Result<String, AuditError> {
    let Value::Object(mut fields) = event else {
        return Err(AuditError::NotAnObject);
    };
    fields.remove(CHAIN_FIELD);
    Ok(serde_json::to_string(&fields).expect("a map with string keys always serializes"))
}

/// The single thread that writes the file.
struct Writer {
    file: File,
    /// SHA-256 of the last line written.
    prev: [u8; 32],
    /// Set by the first failed write or sync; every later batch fails with it.
    failed: Option<(io::ErrorKind, String)>,
    buf: Vec<u8>,
    /// Successful syncs, read by [`AuditLog::syncs`].
    syncs: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        // Callers in the previous batch, and how long its sync took.
        let mut expected = 1;
        let mut last_sync = Duration::ZERO;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            take_queued(&rx, &mut batch);
            // The callers just woken by the last sync are still preparing their next event; a
            // batch started without them would leave them for the next sync, and the callers
            // would settle into two half-size batches alternating. Waiting up to half a sync
            // for as many callers as the last batch had keeps one full batch per sync; when
            // fewer callers come back, one batch waits and the next expects fewer.
            let deadline = Instant::now() + (last_sync / 2).min(MAX_LINGER);
            while batch.len() < expected {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                match rx.recv_timeout(left) {
                    Ok(job) => {
                        batch.push(job);
                        take_queued(&rx, &mut batch);
                    }
                    Err(_) => break,
                }
            }
            expected = batch.len();
            let started = Instant::now();
            let result = self.write_batch(&batch);
            last_sync = started.elapsed();
            for job in batch {
                job.done.send(match &result {
                    Ok(()) => Ok(()),
                    Err((kind, msg)) => Err(AuditError::Io(io::Error::new(*kind, msg.clone()))),
                });
            }
        }
    }
}

/// Moves every job already queued (up to [`MAX_BATCH`]) into `batch`.
fn take_queued(rx: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

impl Writer {
    /// Writes the batch as consecutive chained lines in one write, then syncs once.
    fn write_batch(&mut self, batch: &[Job]) -> Result<(), (io::ErrorKind, String)> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        self.buf.clear();
        let mut prev = self.prev;
        for job in batch {
            let start = self.buf.len();
            push_chained_line(&mut self.buf, &job.line, &prev);
            prev = sha256(&self.buf[start..]);
            self.buf.push(b'\n');
        }
        match self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data())
        {
            Ok(()) => {
                self.prev = prev;
                self.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log write failed; refusing further events");
                let failed = (
                    e.kind(),
                    format!(
                        "writing the audit log failed ({e}); no event is accepted until the log \
                         is reopened"
                    ),
                );
                self.failed = Some(failed.clone());
                Err(failed)
            }
        }
    }
}

/// `{…}` becomes `{…,"previousLineSha256":"<hex of prev>"}`: the link is always the last field.
fn push_chained_line(buf: &mut Vec<u8>, compact_object: &str, prev: &[u8; 32]) {
    let body = compact_object
        .strip_suffix('}')
        .expect("a serialized JSON object ends with '}'");
    buf.extend_from_slice(body.as_bytes());
    if body != "{" {
        buf.push(b',');
    }
    buf.extend_from_slice(b"\"");
    buf.extend_from_slice(CHAIN_FIELD.as_bytes());
    buf.extend_from_slice(b"\":\"");
    let mut hex_link = [0u8; 64];
    hex::encode_to_slice(prev, &mut hex_link).expect("64 hex digits for 32 bytes");
    buf.extend_from_slice(&hex_link);
    buf.extend_from_slice(b"\"}");
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// The bytes of the line that ends just before offset `end` (exclusive, newline not included)
/// and the offset where it starts.
fn line_ending_at(file: &File, end: u64) -> Result<(u64, Vec<u8>), AuditError> {
    const CHUNK: u64 = 8 * 1024;
    let mut start = end;
    let mut line = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0; usize::try_from(start - from).expect("chunk fits in memory")];
        file.read_exact_at(&mut chunk, from)?;
        if let Some(nl) = chunk.iter().rposition(|&b| b == b'\n') {
            chunk.drain(..=nl);
            start = from + nl as u64 + 1;
            chunk.extend_from_slice(&line);
            return Ok((start, chunk));
        }
        chunk.extend_from_slice(&line);
        line = chunk;
        start = from;
        if end - start > MAX_LINE_BYTES {
            return Err(AuditError::Corrupt(format!(
                "the line ending at byte {end} is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
    }
    Ok((0, line))
}

/// The link the next line must carry; repairs a torn tail first (see the module documentation).
fn continue_chain(file: &mut File, path: &Path) -> Result<[u8; 32], AuditError> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(GENESIS);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        let (_, line) = line_ending_at(file, len - 1)?;
        return Ok(sha256(&line));
    }
    let (tail_start, tail) = line_ending_at(file, len)?;
    let before = if tail_start == 0 {
        GENESIS
    } else {
        sha256(&line_ending_at(file, tail_start - 1)?.1)
    };
    match serde_json::from_slice::<Value>(&tail) {
        Ok(Value::Object(fields)) => {
            if fields.get(CHAIN_FIELD).and_then(Value::as_str) != Some(&hex::encode(before)) {
                return Err(AuditError::Corrupt(format!(
                    "{}: the last line has no newline and does not chain to the line before it; \
                     this is not a torn write, refusing to append (run `coffer audit verify`)",
                    path.display()
                )));
            }
            // Only the newline was lost: the line is whole and chained. Complete it.
            file.write_all(b"\n")?;
            file.sync_data()?;
            tracing::warn!(path = %path.display(), "audit log: completed a last line that lacked its newline");
            Ok(sha256(&tail))
        }
        _ => {
            // A write torn by a crash: no caller was told this event was durable.
            file.set_len(tail_start)?;
            file.sync_all()?;
            tracing::warn!(
                path = %path.display(),
                bytes = len - tail_start,
                "audit log: truncated a torn last line"
            );
            Ok(before)
        }
    }
}

/// The result of checking a log's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines in the file (a last line without newline counts).
    pub lines: u64,
    /// The first line that breaks the chain, if any.
    pub first_broken: Option<BrokenLine>,
    /// Hex SHA-256 of the last line (64 zeros for an empty log): the link the next line will
    /// carry. Kept outside the log, it shows truncation and an edit of the last line, which the
    /// chain alone cannot.
    pub last_line_sha256: String,
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong, for a person.
    pub reason: String,
}

/// Checks the whole chain: every line is a JSON object whose `previousLineSha256` is the SHA-256
/// of the previous line (64 zeros for the first), and ends with a newline. Reports the first line
/// that breaks it; see the module documentation for which line an edit is reported at.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut lines = 0;
    let mut first_broken = None;
    let mut prev = GENESIS;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        lines += 1;
        let complete = buf.last() == Some(&b'\n');
        let line = if complete {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        if first_broken.is_none() {
            let problem = if complete {
                check_line(lines, line, &prev)
            } else {
                Some(format!(
                    "line {lines} has no trailing newline: a write torn by a crash (reopening \
                     the log repairs it) or a truncated file"
                ))
            };
            first_broken = problem.map(|reason| BrokenLine {
                line: lines,
                reason,
            });
        }
        prev = sha256(line);
    }
    Ok(VerifyReport {
        lines,
        first_broken,
        last_line_sha256: hex::encode(prev),
    })
}

/// Why line `number` does not continue a chain whose previous line hashes to `prev`, if it does not.
fn check_line(number: u64, line: &[u8], prev: &[u8; 32]) -> Option<String> {
    let fields = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Some(format!("line {number} is not a JSON object")),
        Err(e) => {
            return Some(format!(
                "line {number} is not valid JSON ({e}): it was edited"
            ));
        }
    };
    let Some(link) = fields.get(CHAIN_FIELD).and_then(Value::as_str) else {
        return Some(format!("line {number} has no {CHAIN_FIELD} string"));
    };
    if link == hex::encode(prev) {
        None
    } else if number == 1 {
        Some(
            "line 1 does not chain to the start of the log (64 zeros): lines before it were \
             removed, or it was edited"
                .to_owned(),
        )
    } else {
        Some(format!(
            "line {number}'s {CHAIN_FIELD} is not the SHA-256 of line {}: line {} was edited, or \
             lines were deleted, inserted or reordered just before line {number}",
            number - 1,
            number - 1
        ))
    }
}

/// Events, oldest first, at most `limit` of the newest (0 gives none); with `key_filter`, only
/// those whose `requestParameters.keyId` or any `resources[].ARN` contains it (a key id, alias or
/// ARN, or part of one). A last line without newline (being written, or torn) is skipped; events
/// are returned as stored, chain field included.
pub fn read_events(
    path: &Path,
    key_filter: Option<&str>,
    limit: usize,
) -> Result<Vec<serde_json::Value>, AuditError> {
    let mut reader = BufReader::new(File::open(path)?);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut events = VecDeque::with_capacity(limit.min(1024));
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
            break;
        }
        number += 1;
        let event = match serde_json::from_slice::<Value>(&buf) {
            Ok(event @ Value::Object(_)) => event,
            _ => {
                return Err(AuditError::Corrupt(format!(
                    "{}: line {number} is not a JSON object",
                    path.display()
                )));
            }
        };
        if key_filter.is_none_or(|filter| mentions_key(&event, filter)) {
            if events.len() == limit {
                events.pop_front();
            }
            events.push_back(event);
        }
    }
    Ok(events.into())
}

fn mentions_key(event: &Value, filter: &str) -> bool {
    let key_id = event
        .pointer("/requestParameters/keyId")
        .and_then(Value::as_str);
    let arns = event
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ARN").and_then(Value::as_str));
    key_id.into_iter().chain(arns).any(|s| s.contains(filter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    fn event(n: u64) -> Value {
        json!({
            "eventVersion": "1.08",
            "eventSource": "kms.amazonaws.com",
            "eventName": "GenerateDataKey",
            "requestID": format!("req-{n}"),
            "requestParameters": {"keyId": format!("key-{}", n % 3)},
            "resources": [{"ARN": format!("arn:aws:kms:us-east-1:111122223333:key/key-{}", n % 3)}],
        })
    }

    fn log_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("audit.log")
    }

    /// A log with `n` events, closed.
    fn write_log(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = AuditLog::open(&path).unwrap();
        for i in 1..=n {
            log.append_blocking(event(i)).unwrap();
        }
        drop(log);
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(
            path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    fn broken_line(path: &Path) -> Option<u64> {
        verify(path).unwrap().first_broken.map(|b| b.line)
    }

    #[test]
    fn chain_links_each_line_to_the_previous_one_and_verifies() {
        let (_dir, path) = write_log(5);
        let lines = lines(&path);
        assert_eq!(lines.len(), 5);
        let mut prev = "0".repeat(64);
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v[CHAIN_FIELD], prev.as_str());
            assert!(line.ends_with(&format!(",\"{CHAIN_FIELD}\":\"{prev}\"}}")));
            prev = hex::encode(Sha256::digest(line.as_bytes()));
        }
        let report = verify(&path).unwrap();
        assert_eq!(report.lines, 5);
        assert_eq!(report.first_broken, None);
        assert_eq!(report.last_line_sha256, prev);
    }

    #[test]
    fn an_empty_log_verifies() {
        let (_dir, path) = write_log(0);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (0, None));
        assert_eq!(report.last_line_sha256, "0".repeat(64));
    }

    #[test]
    fn log_file_is_created_private() {
        let (_dir, path) = write_log(1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn editing_one_byte_inside_a_middle_line_is_reported_at_the_next_line() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines[2] = lines[2].replacen("req-3", "req-9", 1);
        rewrite(&path, &lines);
        let broken = verify(&path).unwrap().first_broken.unwrap();
        assert_eq!(broken.line, 4);
        assert!(
            broken.reason.contains("line 3 was edited"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn an_edit_that_breaks_the_json_of_a_line_is_reported_at_that_line() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines[2] = lines[2].replacen('{', "[", 1);
        rewrite(&path, &lines);
        assert_eq!(broken_line(&path), Some(3));
    }

    #[test]
    fn editing_a_lines_own_link_is_reported_at_that_line() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        let link_start = lines[2].len() - 66;
        let flipped = if lines[2].as_bytes()[link_start] == b'a' {
            "b"
        } else {
            "a"
        };
        lines[2].replace_range(link_start..=link_start, flipped);
        rewrite(&path, &lines);
        assert_eq!(broken_line(&path), Some(3));
    }

    #[test]
    fn a_deleted_line_is_reported_at_the_line_after_the_gap() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines.remove(2);
        rewrite(&path, &lines);
        let report = verify(&path).unwrap();
        assert_eq!(report.lines, 4);
        assert_eq!(report.first_broken.unwrap().line, 3);
    }

    #[test]
    fn deleting_the_first_line_is_reported_at_line_one() {
        let (_dir, path) = write_log(3);
        let mut lines = lines(&path);
        lines.remove(0);
        rewrite(&path, &lines);
        let broken = verify(&path).unwrap().first_broken.unwrap();
        assert_eq!(broken.line, 1);
        assert!(
            broken.reason.contains("start of the log"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn swapped_lines_are_reported_at_the_first_moved_line() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines.swap(1, 2);
        rewrite(&path, &lines);
        assert_eq!(broken_line(&path), Some(2));
    }

    #[test]
    fn cutting_lines_off_the_end_changes_only_the_last_line_hash() {
        let (_dir, path) = write_log(5);
        let before = verify(&path).unwrap();
        let lines = lines(&path);
        rewrite(&path, &lines[..4]);
        let after = verify(&path).unwrap();
        assert_eq!(after.first_broken, None);
        assert_ne!(after.last_line_sha256, before.last_line_sha256);
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (_dir, path) = write_log(3);
        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(event(4)).unwrap();
        log.append_blocking(event(5)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (5, None));
    }

    #[test]
    fn a_torn_last_line_is_reported_by_verify_and_truncated_by_open() {
        let (_dir, path) = write_log(3);
        let complete = std::fs::read(&path).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"eventName":"Decrypt","previousLineSha"#)
            .unwrap();
        drop(file);

        let broken = verify(&path).unwrap().first_broken.unwrap();
        assert_eq!(broken.line, 4);
        assert!(
            broken.reason.contains("no trailing newline"),
            "{}",
            broken.reason
        );

        let log = AuditLog::open(&path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            complete,
            "the torn tail is cut"
        );
        log.append_blocking(event(4)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (4, None));
        let last: Value = serde_json::from_str(&lines(&path)[3]).unwrap();
        assert_eq!(last["requestID"], "req-4");
    }

    #[test]
    fn a_torn_first_line_is_truncated_to_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        std::fs::write(&path, b"{\"eventN").unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(event(1)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (1, None));
    }

    #[test]
    fn a_whole_last_line_missing_only_its_newline_is_completed_by_open() {
        let (_dir, path) = write_log(3);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert_eq!(broken_line(&path), Some(3));

        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(event(4)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (4, None));
    }

    #[test]
    fn open_refuses_a_whole_last_line_that_does_not_chain() {
        let (_dir, path) = write_log(3);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        let forged = json!({"eventName": "Decrypt", CHAIN_FIELD: "0".repeat(64)});
        file.write_all(forged.to_string().as_bytes()).unwrap();
        drop(file);
        let before = std::fs::read(&path).unwrap();
        assert!(matches!(AuditLog::open(&path), Err(AuditError::Corrupt(_))));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "open changed nothing"
        );
    }

    #[test]
    fn open_finds_the_tail_across_read_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = AuditLog::open(&path).unwrap();
        let big = json!({"eventName": "Encrypt", "padding": "x".repeat(20_000)});
        log.append_blocking(big.clone()).unwrap();
        log.append_blocking(big).unwrap();
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(event(3)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (3, None));
    }

    #[test]
    fn a_callers_own_chain_field_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(json!({"eventName": "x", CHAIN_FIELD: "forged"}))
            .unwrap();
        log.append_blocking(json!({})).unwrap();
        drop(log);
        assert_eq!(verify(&path).unwrap().first_broken, None);
        assert!(lines(&path)[1].starts_with(&format!("{{\"{CHAIN_FIELD}\":")));
    }

    #[test]
    fn events_that_are_not_objects_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&log_path(&dir)).unwrap();
        assert!(matches!(
            log.append_blocking(json!([1])),
            Err(AuditError::NotAnObject)
        ));
    }

    #[test]
    fn appends_after_close_fail_with_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = AuditLog::open(&path).unwrap();
        log.append_blocking(event(1)).unwrap();
        log.close();
        assert!(matches!(
            log.append_blocking(event(2)),
            Err(AuditError::Closed)
        ));
        assert_eq!(verify(&path).unwrap().lines, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appenders_all_get_durable_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = AuditLog::open(&path).unwrap();
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for i in 0..20 {
                        log.append(event(t * 1000 + i)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // Every append has returned, so every line is already in the file.
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.first_broken), (64 * 20, None));
        let ids: HashSet<String> = lines(&path)
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["requestID"].to_string())
            .collect();
        assert_eq!(ids.len(), 64 * 20);
    }

    #[test]
    fn read_events_filters_by_key_and_keeps_the_newest() {
        let (_dir, path) = write_log(10);
        let all = read_events(&path, None, 100).unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0]["requestID"], "req-1");

        let newest = read_events(&path, None, 3).unwrap();
        let ids: Vec<_> = newest
            .iter()
            .map(|e| e["requestID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["req-8", "req-9", "req-10"]);

        // key-1 is used by events 1, 4, 7, 10.
        let by_id = read_events(&path, Some("key-1"), 100).unwrap();
        assert_eq!(by_id.len(), 4);
        let by_arn = read_events(&path, Some(":key/key-1"), 2).unwrap();
        let ids: Vec<_> = by_arn
            .iter()
            .map(|e| e["requestID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["req-7", "req-10"]);
        assert!(read_events(&path, Some("nope"), 100).unwrap().is_empty());
        assert!(read_events(&path, None, 0).unwrap().is_empty());
    }

    #[test]
    fn read_events_skips_a_torn_last_line_and_reports_corrupt_ones() {
        let (_dir, path) = write_log(2);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"torn").unwrap();
        drop(file);
        assert_eq!(read_events(&path, None, 10).unwrap().len(), 2);

        let mut lines = lines(&path);
        lines[1] = "not json".into();
        rewrite(&path, &lines[..2]);
        assert!(matches!(
            read_events(&path, None, 10),
            Err(AuditError::Corrupt(_))
        ));
    }
}
