//! Reading the whole log: [`verify`] checks every line's chain and MAC and compares the end with
//! the anchor; [`read_events`] serves `coffer audit tail`. Both only read.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use serde_json::Value;

use super::anchor::Anchor;
use super::chain::{self, AuditKeys, ChainPos, Format, Link};
use super::open::{LineRead, read_bounded_line};
use super::{AuditError, MAX_BATCH, MAX_LINE_BYTES, Mismatch};

/// The result of checking a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether the file exists.
    pub exists: bool,
    /// Lines in the file (a last line without newline counts).
    pub lines: u64,
    /// The first line that breaks the chain (or fails its MAC), if any.
    pub first_broken: Option<BrokenLine>,
    /// How the log's end compares with its anchor.
    pub anchor: AnchorCheck,
}

impl VerifyReport {
    /// Whether nothing is wrong: every line chains and authenticates, and the end matches the
    /// anchor (or the anchor was not asked for).
    pub fn intact(&self) -> bool {
        self.exists
            && self.first_broken.is_none()
            && matches!(
                self.anchor,
                AnchorCheck::Matches { .. } | AnchorCheck::NotChecked
            )
    }
}

/// How a log's end compares with its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The anchor was not read ([`verify_chain`]): lines cut off the end go unseen.
    NotChecked,
    /// The anchored line is where the anchor says; `unanchored_lines` more follow it (a batch a
    /// crash left, or lines written while the check ran).
    Matches {
        /// Lines after the anchored end.
        unanchored_lines: u64,
    },
    /// There is no anchor and the log has no MAC'd line: a log of an earlier release that no
    /// server of this version has opened yet. Its end cannot be vouched for.
    Absent,
    /// The log and its anchor disagree.
    Mismatch(Mismatch),
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLine {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong, for a person.
    pub reason: String,
}

/// Checks the whole log at `path` (see the chain rule in `chain.rs`) and compares its end with the
/// anchor `record` (as stored; `None` when there is none). A missing file is a report, not an
/// error.
pub fn verify(
    path: &Path,
    keys: &AuditKeys,
    record: Option<&[u8]>,
) -> Result<VerifyReport, AuditError> {
    let decoded = record.map(|r| Anchor::decode(r, keys));
    let anchor = decoded.as_ref().and_then(|d| d.as_ref().ok());
    let (mut report, any_v2) = scan(path, keys, anchor)?;
    report.anchor = match decoded {
        Some(Ok(_)) => report.anchor,
        Some(Err(reason)) => AnchorCheck::Mismatch(Mismatch::AnchorInvalid(reason)),
        None if any_v2 => AnchorCheck::Mismatch(Mismatch::AnchorMissing {
            lines: report.lines,
        }),
        None => AnchorCheck::Absent,
    };
    Ok(report)
}

/// [`verify`] without the anchor: the chain and every MAC, but not the end.
pub fn verify_chain(path: &Path, keys: &AuditKeys) -> Result<VerifyReport, AuditError> {
    Ok(scan(path, keys, None)?.0)
}

/// One pass over the file; with an anchor, notes the line the anchor names on the way and compares.
/// Also says whether any line is in format 2.
fn scan(
    path: &Path,
    keys: &AuditKeys,
    anchor: Option<&Anchor>,
) -> Result<(VerifyReport, bool), AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let report = VerifyReport {
                exists: false,
                lines: 0,
                first_broken: None,
                anchor: anchor.map_or(AnchorCheck::NotChecked, |a| {
                    AnchorCheck::Mismatch(Mismatch::Deleted(*a))
                }),
            };
            return Ok((report, false));
        }
        Err(e) => return Err(e.into()),
    };
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut first_broken = None;
    let mut pos = ChainPos::START;
    let mut any_v2 = false;
    // The anchored line as found: its end offset and its link (if it authenticates).
    let mut at_anchor: Option<(u64, Option<Link>)> = None;
    let mut buf = Vec::new();
    loop {
        let read = read_bounded_line(&mut reader, &mut buf)?;
        if matches!(read, LineRead::End) {
            break;
        }
        lines += 1;
        let problem = match read {
            LineRead::Complete => None,
            LineRead::Incomplete => Some(format!(
                "line {lines} has no trailing newline: a write torn by a crash (the server \
                 repairs it when it opens the log) or a truncated file"
            )),
            _ => Some(format!(
                "line {lines} is longer than {MAX_LINE_BYTES} bytes"
            )),
        };
        let links = chain::read_line(&buf, keys);
        let checked = match (&problem, &links) {
            (Some(problem), _) => Err(problem.clone()),
            (None, Err(p)) => Err(chain::explain(lines, p)),
            (None, Ok(links)) => chain::next(lines, links, &pos),
        };
        let own_link = links.as_ref().ok().map(|l| l.link);
        if let Ok(l) = &links {
            any_v2 |= l.format == Format::V2;
        }
        pos = match checked {
            Ok(next) => next,
            Err(reason) => {
                if first_broken.is_none() {
                    first_broken = Some(BrokenLine {
                        line: lines,
                        reason,
                    });
                }
                // Go on from what the line says of itself, to find the anchored line.
                ChainPos {
                    link: own_link.unwrap_or([0xff; 32]),
                    last_format: links.as_ref().ok().map(|l| l.format),
                }
            }
        };
        if problem.is_none() {
            bytes += buf.len() as u64 + 1;
        }
        if let Some(anchor) = anchor
            && lines == anchor.lines
        {
            at_anchor = Some((bytes, own_link));
        }
        if matches!(read, LineRead::TooLong) {
            break;
        }
    }
    let report = VerifyReport {
        exists: true,
        lines,
        first_broken,
        anchor: anchor.map_or(AnchorCheck::NotChecked, |anchor| {
            compare(anchor, lines, file_len, at_anchor)
        }),
    };
    Ok((report, any_v2))
}

/// The anchor against what the scan found (`file_len`: the file's size).
fn compare(
    anchor: &Anchor,
    lines: u64,
    file_len: u64,
    at_anchor: Option<(u64, Option<Link>)>,
) -> AnchorCheck {
    let at_anchor = if anchor.lines == 0 {
        Some((0, Some(chain::GENESIS)))
    } else {
        at_anchor
    };
    let Some((end, link)) = at_anchor else {
        return AnchorCheck::Mismatch(if file_len == 0 {
            Mismatch::Emptied(*anchor)
        } else if file_len >= anchor.bytes {
            Mismatch::RolledBack {
                anchor: *anchor,
                reason: format!("the log has only {lines} lines, in as many bytes or more"),
            }
        } else {
            Mismatch::Truncated {
                anchor: *anchor,
                bytes: file_len,
            }
        });
    };
    let reason = match link {
        _ if end != anchor.bytes => Some(format!(
            "it ends at byte {end}, the anchored line at byte {}",
            anchor.bytes
        )),
        None => Some("it does not authenticate".to_owned()),
        Some(link) if !coffer_crypto::ct_eq(&link, &anchor.link) => {
            Some("its link differs".to_owned())
        }
        Some(_) => None,
    };
    if let Some(reason) = reason {
        return AnchorCheck::Mismatch(Mismatch::RolledBack {
            anchor: *anchor,
            reason,
        });
    }
    let unanchored_lines = lines - anchor.lines;
    if unanchored_lines > MAX_BATCH as u64 {
        return AnchorCheck::Mismatch(Mismatch::Extended { anchor: *anchor });
    }
    AnchorCheck::Matches { unanchored_lines }
}

/// Events, oldest first, at most `limit` of the newest (0 gives none); with `key_filter`, only
/// those whose `requestParameters.keyId` or any `resources[].ARN` contains it (a key id, alias or
/// ARN, or part of one). A last line without newline (being written, or torn) is skipped; events
/// are returned as stored, chain fields included. Does not check the chain: [`verify`] does.
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
        match read_bounded_line(&mut reader, &mut buf)? {
            LineRead::Complete => {}
            LineRead::End | LineRead::Incomplete => break,
            LineRead::TooLong => {
                return Err(AuditError::Corrupt(format!(
                    "{}: line {} is longer than {MAX_LINE_BYTES} bytes",
                    path.display(),
                    number + 1
                )));
            }
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
