//! The tamper-evident key-use log (DESIGN §6): one CloudTrail-shaped JSON object per line, each
//! line chained to the one before it by a MAC under a key derived from the root key ([`chain`]),
//! and the chain's end kept outside the log, MAC'd, in the metadata database ([`anchor`]). Edits,
//! deletions, reorderings, a recomputed chain, lines cut off the end, an emptied or deleted log
//! and an older copy put back are all found: by [`verify`] over the whole log, and by
//! [`AuditLog::open`] at the log's end, where the server refuses to start until an operator
//! decides ([`OnMismatch`]).
//!
//! **Durability.** [`AuditLog::append`] resolves only once its line is on disk (`fdatasync`) and
//! the anchor covers it (one redb commit). Appends are group-committed: one writer thread takes
//! every event queued while the previous batch was being synced, writes them in one `write`,
//! syncs once, saves the anchor once, and then wakes all their callers, so throughput grows with
//! concurrency (one sync and one anchor commit per batch, not per event): with *n* callers each
//! awaiting its own line, at most *n* per batch, which the writer approaches by waiting briefly
//! for the previous batch's callers to come back (see `Writer::run`). Every acknowledged event is
//! in the log and under the anchor; an event whose append failed or never returned (crash) may or
//! may not be. After a failed write, sync or anchor save the log accepts nothing more until it is
//! reopened: what reached the disk is then unknown, and [`AuditLog::open`] is the one place that
//! reconciles the file with its anchor.
//!
//! **Crash windows.** The anchor is saved after the batch is synced, so a crash can leave the file
//! longer than its anchor by one batch whose callers were never answered: `open` accepts such a
//! tail if every line of it carries a valid MAC and chains on (at most [`MAX_BATCH`] lines), and
//! anchors it. A crash mid-write can leave a last line without its newline: `open` completes it
//! (a whole, authentic, chained line: only the newline was lost) or cuts it off (its event was
//! never acknowledged), but never cuts into anchored bytes. A file shorter than its anchor, or one
//! whose line at the anchored end is not the anchored line, is never a crash: it was truncated,
//! emptied, deleted, rolled back or replaced.
//!
//! **What it cannot see.** Whoever holds the root key can write lines and anchors that verify.
//! The anchor's own absence is not authenticated: someone able to rewrite the metadata database
//! can delete it, and a log without MAC'd lines is then adopted as one from an earlier release.
//! Restoring the log and the database together from an older backup is a consistent rollback.
//!
//! **Where a break is reported.** An edit of a line in the current format (format 2) is reported
//! at that line, whose MAC fails. In format 1 (SHA-256 links, written by earlier releases) an edit
//! that leaves the line valid JSON is reported at the next line, whose link no longer matches. A
//! deletion is reported at the line after the gap, a reordering at the first line out of place.
//!
//! This module writes what it is given: it must never add plaintexts, data keys or any secret to
//! an event, never reorder events, never rewrite a complete line, and never delete a log: a log
//! that is given up on is moved aside.

mod anchor;
mod chain;
mod open;
mod verify;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

pub use anchor::{ANCHOR_KEY, ANCHOR_NAMESPACE, Anchor, AnchorStore};
pub use chain::{AuditKeys, LINK_FIELD, PREVIOUS_LINK_FIELD, V1_PREVIOUS_FIELD};
pub use verify::{AnchorCheck, BrokenLine, VerifyReport, read_events, verify, verify_chain};

/// Most events one group commit takes, to bound the writer's buffer; also the most lines a crash
/// can leave after the anchored end.
pub const MAX_BATCH: usize = 4096;

/// Longest a batch waits for the callers of the previous batch to come back.
const MAX_LINGER: Duration = Duration::from_millis(5);

/// Longest line the log reads back.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// What an audit call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the log failed; after a failed append the log refuses further appends
    /// until reopened.
    #[error("audit log I/O error: {0}")]
    Io(#[from] io::Error),
    /// Loading or saving the anchor in the metadata store failed.
    #[error("audit log anchor: {0}")]
    Store(#[from] coffer_store::StoreError),
    /// The log was closed (shutdown) or its writer thread is gone.
    #[error("the audit log is closed")]
    Closed,
    /// The file is not a log this module can continue or read; the message says where.
    #[error("the audit log is corrupt: {0}")]
    Corrupt(String),
    /// The log and its anchor disagree; nothing was changed (see [`OnMismatch`]).
    #[error("{0}")]
    Mismatch(Box<Mismatch>),
    /// Recovery was asked for, but the log and its anchor agree.
    #[error(
        "recovery was asked for, but the audit log agrees with its anchor: there is nothing to \
         recover"
    )]
    NothingToRecover,
    /// The event given to append was not a JSON object.
    #[error("an audit event must be a JSON object")]
    NotAnObject,
}

/// How the log on disk disagrees with its anchor (or cannot be anchored). The message says what
/// was found and what it means; [`Mismatch::kind`] names it in one word for events and scripts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The stored anchor does not verify under the root key.
    #[error("the anchor in the metadata database is not valid: {0}")]
    AnchorInvalid(String),
    /// The log holds lines in the current, MAC'd format, but there is no anchor.
    #[error(
        "the log holds {lines} lines with MACs (written by this version) but the metadata \
         database holds no anchor for it: the anchor was removed, or the database was replaced \
         or restored from an older copy"
    )]
    AnchorMissing {
        /// Lines in the log.
        lines: u64,
    },
    /// The deployment anchored its log before, and the anchor is gone.
    #[error(
        "the metadata database holds no anchor for the log, but this deployment anchored it \
         before (the sealed key ring says so): the anchor was removed"
    )]
    AnchorRemoved,
    /// No anchor yet (a log from an earlier release), and its chain is broken.
    #[error("the log has no anchor yet (written by an earlier release) and its chain is broken: {}", .0.reason)]
    BrokenChain(BrokenLine),
    /// The anchor is there, the file is not.
    #[error("the log file is missing, but its anchor records {}: the log was DELETED", .0.describe())]
    Deleted(Anchor),
    /// The file is empty, the anchor says it held lines.
    #[error("the log is empty, but its anchor records {}: the log was EMPTIED", .0.describe())]
    Emptied(Anchor),
    /// The file is shorter than the anchored end.
    #[error(
        "the log has {bytes} bytes, but its anchor records {}: lines were cut off its end \
         (TRUNCATED), or an older copy of the log was put back (ROLLED BACK)",
        anchor.describe()
    )]
    Truncated {
        /// The anchor.
        anchor: Anchor,
        /// The file's length.
        bytes: u64,
    },
    /// The line at the anchored end is not the anchored line.
    #[error(
        "line {} of the log, where its anchor says the log ended ({}), is not the line the \
         anchor records ({reason}): an older or a different copy of the log was put back (ROLLED \
         BACK or replaced), or the log was rewritten",
        anchor.lines,
        anchor.describe()
    )]
    RolledBack {
        /// The anchor.
        anchor: Anchor,
        /// What differs.
        reason: String,
    },
    /// Lines after the anchored end that do not authenticate or do not chain.
    #[error(
        "after the {} anchored lines, {}: lines were appended by someone without the root key",
        anchor.lines,
        broken.reason
    )]
    ForgedTail {
        /// The anchor.
        anchor: Anchor,
        /// The first bad line after it.
        broken: BrokenLine,
    },
    /// More lines after the anchored end than a crash can leave.
    #[error(
        "the log has more than {max} lines after the {} its anchor records, more than one group \
         commit can leave unanchored: the metadata database was restored from an older copy",
        anchor.lines,
        max = MAX_BATCH
    )]
    Extended {
        /// The anchor.
        anchor: Anchor,
    },
}

impl Mismatch {
    /// One word for what was found.
    pub fn kind(&self) -> &'static str {
        match self {
            Mismatch::AnchorInvalid(_) => "anchor-invalid",
            Mismatch::AnchorMissing { .. } => "anchor-missing",
            Mismatch::AnchorRemoved => "anchor-removed",
            Mismatch::BrokenChain(_) => "broken-chain",
            Mismatch::Deleted(_) => "deleted",
            Mismatch::Emptied(_) => "emptied",
            Mismatch::Truncated { .. } => "truncated",
            Mismatch::RolledBack { .. } => "rolled-back",
            Mismatch::ForgedTail { .. } => "forged-tail",
            Mismatch::Extended { .. } => "extended",
        }
    }

    /// The anchor the finding was measured against, if there was one.
    pub fn anchor(&self) -> Option<&Anchor> {
        match self {
            Mismatch::AnchorInvalid(_)
            | Mismatch::AnchorMissing { .. }
            | Mismatch::AnchorRemoved
            | Mismatch::BrokenChain(_) => None,
            Mismatch::Deleted(anchor) | Mismatch::Emptied(anchor) => Some(anchor),
            Mismatch::Truncated { anchor, .. }
            | Mismatch::RolledBack { anchor, .. }
            | Mismatch::ForgedTail { anchor, .. }
            | Mismatch::Extended { anchor } => Some(anchor),
        }
    }
}

/// What [`AuditLog::open`] does when the log and its anchor disagree.
pub enum OnMismatch {
    /// Fail with [`AuditError::Mismatch`], changing nothing.
    Refuse,
    /// Move the log aside (never delete it), start a new chain whose first event is the one this
    /// builds from the [`Recovery`], and anchor it. If there is nothing to recover, `open` fails
    /// with [`AuditError::NothingToRecover`]: a recovery flag left on must not hide a later
    /// tampering.
    Recover(Box<dyn FnOnce(&Recovery) -> Value + Send>),
}

/// What a recovery found and did, for its event.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// What was wrong.
    pub mismatch: Mismatch,
    /// Where the old log now is (`None` if there was no file).
    pub rejected_log: Option<PathBuf>,
    /// The anchor before the recovery, if one verified.
    pub previous_anchor: Option<Anchor>,
}

/// An append-only, MAC-chained, anchored, group-committed log file.
pub struct AuditLog {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    syncs: Arc<AtomicU64>,
}

/// One event on its way to the writer: its compact JSON without the chain fields.
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
    /// Opens (creating, mode 0600) the log at `path`, checks it against the anchor in `anchors`
    /// and continues the chain: a new log (no file, no anchor) starts empty; a log of an earlier
    /// release (no anchor, no MAC'd line) is verified whole and then anchored; an anchored log is
    /// checked at its end (see the module documentation) and continued. Any disagreement is
    /// handled as `on_mismatch` says.
    pub fn open(
        path: &Path,
        keys: AuditKeys,
        anchors: Arc<dyn AnchorStore>,
        on_mismatch: OnMismatch,
    ) -> Result<Arc<AuditLog>, AuditError> {
        let (file, state) = open::prepare(path, &keys, anchors.as_ref(), on_mismatch)?;
        let (tx, rx) = mpsc::channel();
        let syncs = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            file,
            state,
            keys,
            anchors,
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

    /// Appends one event (a JSON object; any chain field in it is dropped and replaced by the
    /// chain's) and resolves once the line is durable and anchored. Dropping the future does not
    /// withdraw the event: once queued, it is written.
    pub async fn append(&self, event: serde_json::Value) -> Result<(), AuditError> {
        let line = compact_without_links(event)?;
        let (tx, rx) = oneshot::channel();
        self.submit(Job {
            line,
            done: Done::Async(tx),
        })?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// [`AuditLog::append`] for non-async callers (background threads, `spawn_blocking`); blocks
    /// until the line is durable and anchored.
    pub fn append_blocking(&self, event: serde_json::Value) -> Result<(), AuditError> {
        let line = compact_without_links(event)?;
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Job {
            line,
            done: Done::Blocking(tx),
        })?;
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Batches written, synced and anchored since `open`: events appended per sync is the
    /// group-commit factor (a metric worth exporting, with the events count).
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

/// The event as compact JSON (no newlines: serde_json escapes them inside strings), without chain
/// fields of its own.
fn compact_without_links(event: Value) -> Result<String, AuditError> {
    let Value::Object(mut fields) = event else {
        return Err(AuditError::NotAnObject);
    };
    for field in [V1_PREVIOUS_FIELD, PREVIOUS_LINK_FIELD, LINK_FIELD] {
        fields.remove(field);
    }
    Ok(serde_json::to_string(&fields).expect("a map with string keys always serializes"))
}

/// The single thread that writes the file and saves the anchor.
struct Writer {
    file: File,
    /// Where the log ends: also the anchor last saved.
    state: Anchor,
    keys: AuditKeys,
    anchors: Arc<dyn AnchorStore>,
    /// Set by the first failed write, sync or anchor save; every later batch fails with it.
    failed: Option<(io::ErrorKind, String)>,
    buf: Vec<u8>,
    /// Successful batches, read by [`AuditLog::syncs`].
    syncs: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        // Callers in the previous batch, and how long its commit took.
        let mut expected = 1;
        let mut last_commit = Duration::ZERO;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            take_queued(&rx, &mut batch);
            // The callers just woken by the last commit are still preparing their next event; a
            // batch started without them would leave them for the next commit, and the callers
            // would settle into two half-size batches alternating. Waiting up to half a commit
            // for as many callers as the last batch had keeps one full batch per commit; when
            // fewer callers come back, one batch waits and the next expects fewer.
            let deadline = Instant::now() + (last_commit / 2).min(MAX_LINGER);
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
            last_commit = started.elapsed();
            for job in batch {
                job.done.send(match &result {
                    Ok(()) => Ok(()),
                    Err((kind, msg)) => Err(AuditError::Io(io::Error::new(*kind, msg.clone()))),
                });
            }
        }
    }

    /// Writes the batch as consecutive chained lines in one write, syncs once, then saves the
    /// anchor once.
    fn write_batch(&mut self, batch: &[Job]) -> Result<(), (io::ErrorKind, String)> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        self.buf.clear();
        let mut link = self.state.link;
        for job in batch {
            link = chain::push_line(&mut self.buf, &job.line, &link, &self.keys);
            self.buf.push(b'\n');
        }
        let next = Anchor {
            lines: self.state.lines + batch.len() as u64,
            bytes: self.state.bytes + self.buf.len() as u64,
            link,
        };
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| (e.kind(), format!("writing the audit log failed ({e})")));
        let anchored = written.and_then(|()| {
            self.anchors.save(&next.encode(&self.keys)).map_err(|e| {
                (
                    io::ErrorKind::Other,
                    format!("saving its anchor failed ({e})"),
                )
            })
        });
        match anchored {
            Ok(()) => {
                self.state = next;
                self.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err((kind, what)) => {
                tracing::error!(error = %what, "audit log commit failed; refusing further events");
                let failed = (
                    kind,
                    format!("{what}; no event is accepted until the log is reopened"),
                );
                self.failed = Some(failed.clone());
                Err(failed)
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

#[cfg(test)]
mod tests;
