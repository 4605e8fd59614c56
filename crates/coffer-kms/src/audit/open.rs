//! Opening the log: reconciles the file with its anchor before the first append (see the crash
//! windows in the module documentation of `audit`), and the recovery that moves a rejected log
//! aside and starts a new chain.
//!
//! It must never cut into anchored bytes, never change the file when it reports a mismatch, and
//! never delete a log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::anchor::{Anchor, AnchorStore};
use super::chain::{self, AuditKeys, ChainPos, Format, GENESIS};
use super::verify::BrokenLine;
use super::{AuditError, MAX_BATCH, MAX_LINE_BYTES, Mismatch, OnMismatch, Recovery};

/// A file to append to and where it ends.
type Start = (File, Anchor);

/// Everything `AuditLog::open` does before the writer starts.
pub(super) fn prepare(
    path: &Path,
    keys: &AuditKeys,
    anchors: &dyn AnchorStore,
    on_mismatch: OnMismatch,
) -> Result<Start, AuditError> {
    let stored = anchors.load()?;
    let previous_anchor = stored
        .as_deref()
        .and_then(|record| Anchor::decode(record, keys).ok());
    let reconciled = match stored {
        None if anchors.was_anchored() => Err(Mismatch::AnchorRemoved),
        None => adopt_or_create(path, keys)?,
        Some(record) => match Anchor::decode(&record, keys) {
            Ok(anchor) => continue_anchored(path, keys, anchor)?,
            Err(reason) => Err(Mismatch::AnchorInvalid(reason)),
        },
    };
    match (reconciled, on_mismatch) {
        (Ok((file, state)), OnMismatch::Refuse) => {
            if previous_anchor != Some(state) {
                anchors.save(&state.encode(keys))?;
            }
            Ok((file, state))
        }
        (Ok(_), OnMismatch::Recover(_)) => Err(AuditError::NothingToRecover),
        (Err(mismatch), OnMismatch::Refuse) => Err(AuditError::Mismatch(Box::new(mismatch))),
        (Err(mismatch), OnMismatch::Recover(build)) => {
            recover(path, keys, anchors, mismatch, previous_anchor, build)
        }
    }
}

/// No anchor: a new log, or one written by an earlier release, which is verified whole before it
/// is anchored.
fn adopt_or_create(path: &Path, keys: &AuditKeys) -> Result<Result<Start, Mismatch>, AuditError> {
    let mut file = match open_append(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = create_private(path)?;
            tracing::info!(path = %path.display(), "audit log: started a new log");
            return Ok(Ok((file, Anchor::EMPTY)));
        }
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::new(file.try_clone()?);
    let mut state = Anchor::EMPTY;
    let mut pos = ChainPos::START;
    let mut buf = Vec::new();
    let mut torn = false;
    loop {
        match read_bounded_line(&mut reader, &mut buf)? {
            LineRead::End => break,
            LineRead::TooLong => {
                return Ok(Err(Mismatch::BrokenChain(BrokenLine {
                    line: state.lines + 1,
                    reason: format!(
                        "line {} is longer than {MAX_LINE_BYTES} bytes",
                        state.lines + 1
                    ),
                })));
            }
            LineRead::Incomplete => {
                torn = true;
                break;
            }
            LineRead::Complete => {
                let number = state.lines + 1;
                let checked = chain::read_line(&buf, keys)
                    .map_err(|problem| chain::explain(number, &problem))
                    .and_then(|links| chain::next(number, &links, &pos));
                match checked {
                    Ok(next) => pos = next,
                    Err(reason) => {
                        return Ok(Err(Mismatch::BrokenChain(BrokenLine {
                            line: number,
                            reason,
                        })));
                    }
                }
                state = Anchor {
                    lines: number,
                    bytes: state.bytes + buf.len() as u64 + 1,
                    link: pos.link,
                };
            }
        }
    }
    if pos.last_format == Some(Format::V2) {
        return Ok(Err(Mismatch::AnchorMissing { lines: state.lines }));
    }
    // Only now that the log is adoptable may its torn tail be repaired.
    if torn {
        finish_torn_tail(&mut file, path, keys, &buf, &mut state, &mut pos)?;
    }
    tracing::info!(
        path = %path.display(),
        lines = state.lines,
        "audit log: anchored a log written by an earlier release after verifying its whole chain"
    );
    Ok(Ok((file, state)))
}

/// An anchored log: the anchored end must be there and be the anchored line; lines after it must
/// be authentic and chained (a batch a crash left unanchored), and are anchored now.
fn continue_anchored(
    path: &Path,
    keys: &AuditKeys,
    anchor: Anchor,
) -> Result<Result<Start, Mismatch>, AuditError> {
    let mut file = match open_append(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Err(Mismatch::Deleted(anchor))),
        Err(e) => return Err(e.into()),
    };
    let len = file.metadata()?.len();
    if len < anchor.bytes {
        return Ok(Err(if len == 0 {
            Mismatch::Emptied(anchor)
        } else {
            Mismatch::Truncated { anchor, bytes: len }
        }));
    }
    if let Some(reason) = anchored_end_differs(&file, keys, &anchor)? {
        return Ok(Err(Mismatch::RolledBack { anchor, reason }));
    }

    // The tail after the anchored end: only what this version writes (format 2).
    let mut reader = BufReader::new(file.try_clone()?);
    reader.seek(SeekFrom::Start(anchor.bytes))?;
    let mut state = anchor;
    let mut pos = ChainPos {
        link: anchor.link,
        last_format: Some(Format::V2),
    };
    let mut buf = Vec::new();
    loop {
        if state.lines - anchor.lines > MAX_BATCH as u64 {
            return Ok(Err(Mismatch::Extended { anchor }));
        }
        match read_bounded_line(&mut reader, &mut buf)? {
            LineRead::End => break,
            LineRead::TooLong => {
                let line = state.lines + 1;
                let reason = format!("line {line} is longer than {MAX_LINE_BYTES} bytes");
                return Ok(Err(Mismatch::ForgedTail {
                    anchor,
                    broken: BrokenLine { line, reason },
                }));
            }
            LineRead::Incomplete => {
                finish_torn_tail(&mut file, path, keys, &buf, &mut state, &mut pos)?;
                break;
            }
            LineRead::Complete => {
                let number = state.lines + 1;
                let checked = chain::read_line(&buf, keys)
                    .map_err(|problem| chain::explain(number, &problem))
                    .and_then(|links| chain::next(number, &links, &pos));
                match checked {
                    Ok(next) => pos = next,
                    Err(reason) => {
                        return Ok(Err(Mismatch::ForgedTail {
                            anchor,
                            broken: BrokenLine {
                                line: number,
                                reason,
                            },
                        }));
                    }
                }
                state = Anchor {
                    lines: number,
                    bytes: state.bytes + buf.len() as u64 + 1,
                    link: pos.link,
                };
            }
        }
    }
    if state.lines > anchor.lines {
        tracing::warn!(
            path = %path.display(),
            lines = state.lines - anchor.lines,
            "audit log: anchored lines a crash left after the anchor (their requests were never answered)"
        );
    }
    Ok(Ok((file, state)))
}

/// Why the line that ends at the anchored end is not the anchored line, if it is not.
fn anchored_end_differs(
    file: &File,
    keys: &AuditKeys,
    anchor: &Anchor,
) -> Result<Option<String>, AuditError> {
    if anchor.bytes == 0 {
        return Ok((anchor.lines != 0 || anchor.link != GENESIS)
            .then(|| "the anchor names lines but no bytes".to_owned()));
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, anchor.bytes - 1)?;
    if last[0] != b'\n' {
        return Ok(Some(format!(
            "no line ends at byte {} of the log",
            anchor.bytes
        )));
    }
    let line = match line_ending_at(file, anchor.bytes - 1)? {
        Some((_, line)) => line,
        None => return Ok(Some("that line is unreadably long".to_owned())),
    };
    Ok(match chain::read_line(&line, keys) {
        Err(problem) => Some(chain::explain(anchor.lines, &problem)),
        Ok(links) if !coffer_crypto::ct_eq(&links.link, &anchor.link) => {
            Some("its link differs".to_owned())
        }
        Ok(_) => None,
    })
}

/// A last piece without newline, at the end of what was read so far: a whole line that chains
/// lost only its newline (complete it); anything else is a torn write (cut it off). Only called
/// past the anchored end.
fn finish_torn_tail(
    file: &mut File,
    path: &Path,
    keys: &AuditKeys,
    piece: &[u8],
    state: &mut super::Anchor,
    pos: &mut ChainPos,
) -> Result<(), AuditError> {
    let number = state.lines + 1;
    let whole = chain::read_line(piece, keys)
        .ok()
        .and_then(|links| chain::next(number, &links, pos).ok());
    match whole {
        Some(next) => {
            file.write_all(b"\n")?;
            file.sync_data()?;
            *pos = next;
            *state = Anchor {
                lines: number,
                bytes: state.bytes + piece.len() as u64 + 1,
                link: next.link,
            };
            tracing::warn!(path = %path.display(), "audit log: completed a last line that lacked its newline");
        }
        None => {
            // A write torn by a crash: no caller was told this event was durable.
            file.set_len(state.bytes)?;
            file.sync_all()?;
            tracing::warn!(
                path = %path.display(),
                bytes = piece.len(),
                "audit log: truncated a torn last line"
            );
        }
    }
    Ok(())
}

/// Moves the rejected log aside (a hard link under a new name, then a new file renamed over the
/// old name, so the log's name never disappears), writes the recovery event as line 1 of a new
/// chain, and anchors it. A crash before the anchor is saved leaves a log that disagrees with the
/// old anchor: the server then refuses again (fail closed), and recovering again keeps both files.
fn recover(
    path: &Path,
    keys: &AuditKeys,
    anchors: &dyn AnchorStore,
    mismatch: Mismatch,
    previous_anchor: Option<Anchor>,
    build: Box<dyn FnOnce(&Recovery) -> serde_json::Value + Send>,
) -> Result<Start, AuditError> {
    let rejected_log = if path.exists() {
        let aside = rejected_name(path);
        std::fs::hard_link(path, &aside)?;
        Some(aside)
    } else {
        None
    };
    let recovery = Recovery {
        mismatch,
        rejected_log,
        previous_anchor,
    };
    let line = super::compact_without_links(build(&recovery))?;
    let mut buf = Vec::new();
    let link = chain::push_line(&mut buf, &line, &GENESIS, keys);
    buf.push(b'\n');
    let fresh = path.with_file_name(format!("{}.new", file_name(path)));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)?;
        file.write_all(&buf)?;
        file.sync_all()?;
    }
    std::fs::rename(&fresh, path)?;
    sync_parent_dir(path)?;
    let state = Anchor {
        lines: 1,
        bytes: buf.len() as u64,
        link,
    };
    anchors.save(&state.encode(keys))?;
    tracing::warn!(
        path = %path.display(),
        found = recovery.mismatch.kind(),
        rejected_log = ?recovery.rejected_log,
        "audit log: recovered: the rejected log was moved aside and a new chain started"
    );
    Ok((open_append(path)?, state))
}

/// `<log>.rejected-<unix seconds>`, with `-<n>` added if that exists.
fn rejected_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.rejected-{secs}", file_name(path));
    let mut candidate = path.with_file_name(&base);
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = path.with_file_name(format!("{base}-{n}"));
    }
    candidate
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "audit.log".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).open(path)
}

fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    sync_parent_dir(path)?;
    Ok(file)
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// What [`read_bounded_line`] found.
pub(super) enum LineRead {
    /// No more bytes.
    End,
    /// A line and its newline (the newline is not in the buffer).
    Complete,
    /// Bytes up to the end of the file, without newline.
    Incomplete,
    /// More than [`MAX_LINE_BYTES`] without a newline; the buffer holds the first bytes.
    TooLong,
}

/// Reads the next line into `buf` (cleared first), never holding more than [`MAX_LINE_BYTES`].
pub(super) fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
) -> io::Result<LineRead> {
    buf.clear();
    let read = reader
        .by_ref()
        .take(MAX_LINE_BYTES + 1)
        .read_until(b'\n', buf)?;
    Ok(if read == 0 {
        LineRead::End
    } else if buf.last() == Some(&b'\n') {
        buf.pop();
        LineRead::Complete
    } else if read as u64 > MAX_LINE_BYTES {
        LineRead::TooLong
    } else {
        LineRead::Incomplete
    })
}

/// The bytes of the line that ends just before offset `end` (exclusive, newline not included) and
/// the offset where it starts; `None` if it is longer than [`MAX_LINE_BYTES`].
fn line_ending_at(file: &File, end: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
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
            return Ok(Some((start, chunk)));
        }
        chunk.extend_from_slice(&line);
        line = chunk;
        start = from;
        if end - start > MAX_LINE_BYTES {
            return Ok(None);
        }
    }
    Ok(Some((0, line)))
}
