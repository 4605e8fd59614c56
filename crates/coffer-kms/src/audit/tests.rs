//! Tests of the log: the chain and its anchor, every way of tampering with them, the crash
//! windows `open` accepts, recovery, and the group commit.

use super::*;
use crate::audit::chain::{GENESIS, Link};
use coffer_crypto::{Key256, sha256};
use serde_json::json;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

/// An anchor store in memory that can be told to fail.
#[derive(Default)]
struct MemAnchors {
    record: Mutex<Option<Vec<u8>>>,
    fail: std::sync::atomic::AtomicBool,
}

impl AnchorStore for MemAnchors {
    fn load(&self) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self.record.lock().unwrap().clone())
    }

    fn save(&self, record: &[u8]) -> Result<(), AuditError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(AuditError::Corrupt("the test store refuses".into()));
        }
        *self.record.lock().unwrap() = Some(record.to_vec());
        Ok(())
    }
}

impl MemAnchors {
    fn get(&self) -> Option<Vec<u8>> {
        self.record.lock().unwrap().clone()
    }

    fn set(&self, record: Option<Vec<u8>>) {
        *self.record.lock().unwrap() = record;
    }

    fn anchor(&self) -> Anchor {
        Anchor::decode(&self.get().expect("an anchor"), &keys()).unwrap()
    }
}

const ROOT: [u8; 32] = [3; 32];

fn keys() -> AuditKeys {
    AuditKeys::derive(&Key256::from_bytes(ROOT))
}

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

/// A log file in a temp dir and its anchor store.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    anchors: Arc<MemAnchors>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        Fixture {
            _dir: dir,
            path,
            anchors: Arc::new(MemAnchors::default()),
        }
    }

    /// A log with `n` events, closed.
    fn with_events(n: u64) -> Fixture {
        let f = Fixture::new();
        f.append(1..=n);
        f
    }

    fn open(&self) -> Result<Arc<AuditLog>, AuditError> {
        AuditLog::open(
            &self.path,
            keys(),
            Arc::clone(&self.anchors) as Arc<dyn AnchorStore>,
            OnMismatch::Refuse,
        )
    }

    fn recover(&self) -> Result<Arc<AuditLog>, AuditError> {
        AuditLog::open(
            &self.path,
            keys(),
            Arc::clone(&self.anchors) as Arc<dyn AnchorStore>,
            OnMismatch::Recover(Box::new(|r: &Recovery| {
                json!({
                    "eventName": "AuditLogRecovered",
                    "finding": r.mismatch.kind(),
                    "rejected": r.rejected_log.as_ref().map(|p| p.display().to_string()),
                    "previousLines": r.previous_anchor.map(|a| a.lines),
                })
            })),
        )
    }

    /// Opens, appends these events, closes.
    fn append(&self, events: impl IntoIterator<Item = u64>) {
        let log = self.open().unwrap();
        for i in events {
            log.append_blocking(event(i)).unwrap();
        }
        drop(log);
    }

    fn verify(&self) -> VerifyReport {
        verify(&self.path, &keys(), self.anchors.get().as_deref()).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(&self, lines: &[String]) {
        std::fs::write(
            &self.path,
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();
    }

    fn append_raw(&self, bytes: &[u8]) {
        let mut file = OpenOptions::new().append(true).open(&self.path).unwrap();
        file.write_all(bytes).unwrap();
    }

    fn broken_line(&self) -> Option<u64> {
        self.verify().first_broken.map(|b| b.line)
    }

    fn mismatch(&self) -> Mismatch {
        match self.open() {
            Err(AuditError::Mismatch(m)) => *m,
            Err(e) => panic!("expected a mismatch, got {e}"),
            Ok(_) => panic!("expected a mismatch, the log opened"),
        }
    }
}

/// A format 2 line for `object` after `prev`, as the writer makes it, under `keys`.
fn v2_line(object: &Value, prev: &Link, keys: &AuditKeys) -> (String, Link) {
    let mut buf = Vec::new();
    let link = chain::push_line(&mut buf, &object.to_string(), prev, keys);
    (String::from_utf8(buf).unwrap(), link)
}

/// A format 1 line, as releases before the anchor wrote it.
fn v1_line(object: &Value, prev: &Link) -> (String, Link) {
    let mut fields = object.as_object().unwrap().clone();
    fields.insert(V1_PREVIOUS_FIELD.into(), hex::encode(prev).into());
    let line = serde_json::to_string(&fields).unwrap();
    let link = sha256(line.as_bytes());
    (line, link)
}

fn v1_log(n: u64) -> Vec<String> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|i| {
            let (line, link) = v1_line(&event(i), &prev);
            prev = link;
            line
        })
        .collect()
}

fn assert_intact(report: &VerifyReport, lines: u64) {
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.lines, lines, "{report:?}");
    assert_eq!(
        report.anchor,
        AnchorCheck::Matches {
            unanchored_lines: 0
        },
        "{report:?}"
    );
}

// ---- the chain ----

#[test]
fn each_line_states_the_previous_link_and_macs_itself_and_the_anchor_holds_the_end() {
    let f = Fixture::with_events(5);
    let lines = f.lines();
    assert_eq!(lines.len(), 5);
    let mut prev = GENESIS;
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v[PREVIOUS_LINK_FIELD], hex::encode(prev).as_str());
        assert!(v.get(V1_PREVIOUS_FIELD).is_none());
        let link_hex = v[LINK_FIELD].as_str().unwrap();
        let mac_input = &line[..line.len() - 66];
        let expected =
            coffer_crypto::hmac_sha256(keys().chain.expose_secret(), mac_input.as_bytes());
        assert_eq!(link_hex, hex::encode(expected));
        prev = expected;
    }
    let anchor = f.anchors.anchor();
    assert_eq!(anchor.lines, 5);
    assert_eq!(anchor.bytes, std::fs::metadata(&f.path).unwrap().len());
    assert_eq!(anchor.link, prev);
    assert_intact(&f.verify(), 5);
}

#[test]
fn a_new_log_is_anchored_empty_and_verifies() {
    let f = Fixture::with_events(0);
    assert_eq!(f.anchors.anchor(), Anchor::EMPTY);
    assert_intact(&f.verify(), 0);
}

#[test]
fn log_file_is_created_private() {
    let f = Fixture::with_events(1);
    let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn reopening_continues_the_chain_and_the_anchor() {
    let f = Fixture::with_events(3);
    f.append(4..=5);
    assert_intact(&f.verify(), 5);
    assert_eq!(f.anchors.anchor().lines, 5);
}

// ---- edits, found by verify ----

#[test]
fn editing_one_byte_inside_a_line_is_reported_at_that_line() {
    let f = Fixture::with_events(5);
    let mut lines = f.lines();
    lines[2] = lines[2].replacen("req-3", "req-9", 1);
    f.rewrite(&lines);
    let report = f.verify();
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.line, 3);
    assert!(broken.reason.contains("not the MAC"), "{}", broken.reason);
}

#[test]
fn an_edit_that_breaks_the_json_of_a_line_is_reported_at_that_line() {
    let f = Fixture::with_events(5);
    let mut lines = f.lines();
    lines[2] = lines[2].replacen('{', "[", 1);
    f.rewrite(&lines);
    assert_eq!(f.broken_line(), Some(3));
}

#[test]
fn editing_a_lines_own_links_is_reported_at_that_line() {
    for from_end in [3, 70] {
        let f = Fixture::with_events(5);
        let mut lines = f.lines();
        let at = lines[2].len() - from_end;
        let flipped = if lines[2].as_bytes()[at] == b'a' {
            "b"
        } else {
            "a"
        };
        lines[2].replace_range(at..=at, flipped);
        f.rewrite(&lines);
        assert_eq!(f.broken_line(), Some(3), "byte {from_end} from the end");
    }
}

#[test]
fn a_deleted_line_is_reported_at_the_line_after_the_gap() {
    let f = Fixture::with_events(5);
    let mut lines = f.lines();
    lines.remove(2);
    f.rewrite(&lines);
    let report = f.verify();
    assert_eq!(report.lines, 4);
    let broken = report.first_broken.unwrap();
    assert_eq!(broken.line, 3);
    assert!(
        broken.reason.contains("deleted, inserted or reordered"),
        "{}",
        broken.reason
    );
}

#[test]
fn deleting_the_first_line_is_reported_at_line_one() {
    let f = Fixture::with_events(3);
    let mut lines = f.lines();
    lines.remove(0);
    f.rewrite(&lines);
    let broken = f.verify().first_broken.unwrap();
    assert_eq!(broken.line, 1);
    assert!(
        broken.reason.contains("lines before it were removed"),
        "{}",
        broken.reason
    );
}

#[test]
fn swapped_lines_are_reported_at_the_first_moved_line() {
    let f = Fixture::with_events(5);
    let mut lines = f.lines();
    lines.swap(1, 2);
    f.rewrite(&lines);
    assert_eq!(f.broken_line(), Some(2));
}

#[test]
fn an_edited_line_with_the_chain_recomputed_without_the_root_key_fails_its_mac() {
    let f = Fixture::with_events(5);
    let wrong = AuditKeys::derive(&Key256::from_bytes([4; 32]));
    let mut prev = GENESIS;
    let forged: Vec<String> = f
        .lines()
        .iter()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if v["requestID"] == "req-2" {
                v["eventName"] = "GenerateDataKex".into();
            }
            let fields = v.as_object_mut().unwrap();
            fields.remove(PREVIOUS_LINK_FIELD);
            fields.remove(LINK_FIELD);
            let (line, link) = v2_line(&v, &prev, &wrong);
            prev = link;
            line
        })
        .collect();
    f.rewrite(&forged);
    let report = f.verify();
    let broken = report.first_broken.clone().unwrap();
    assert_eq!(broken.line, 1, "every line fails its MAC: {report:?}");
    assert!(
        broken.reason.contains("without the root key"),
        "{}",
        broken.reason
    );
    assert!(matches!(
        report.anchor,
        AnchorCheck::Mismatch(Mismatch::RolledBack { .. })
    ));
    assert_eq!(f.mismatch().kind(), "rolled-back");
}

#[test]
fn a_log_rewritten_in_the_old_sha256_format_chains_but_fails_against_its_anchor() {
    let f = Fixture::with_events(5);
    let mut prev = GENESIS;
    let rewritten: Vec<String> = f
        .lines()
        .iter()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.remove(PREVIOUS_LINK_FIELD);
            fields.remove(LINK_FIELD);
            let (line, link) = v1_line(&v, &prev);
            prev = link;
            line
        })
        .collect();
    f.rewrite(&rewritten);
    let report = f.verify();
    assert_eq!(report.first_broken, None, "a consistent SHA-256 chain");
    assert!(
        matches!(
            report.anchor,
            AnchorCheck::Mismatch(Mismatch::RolledBack { .. })
        ),
        "{report:?}"
    );
    assert!(!report.intact());
}

// ---- the end of the log, found by verify and refused by open ----

#[test]
fn a_log_cut_to_its_first_lines_is_truncated() {
    let f = Fixture::with_events(5);
    let before = std::fs::read(&f.path).unwrap();
    f.rewrite(&f.lines()[..3]);
    let report = f.verify();
    assert_eq!(report.first_broken, None, "what is left chains");
    let AnchorCheck::Mismatch(m @ Mismatch::Truncated { .. }) = &report.anchor else {
        panic!("{report:?}");
    };
    assert!(m.to_string().contains("TRUNCATED"), "{m}");
    let cut = std::fs::read(&f.path).unwrap();
    assert_eq!(f.mismatch().kind(), "truncated");
    assert_eq!(std::fs::read(&f.path).unwrap(), cut, "open changed nothing");
    assert_ne!(cut, before);
}

#[test]
fn a_log_cut_mid_line_inside_the_anchored_part_is_truncated() {
    let f = Fixture::with_events(3);
    let len = std::fs::metadata(&f.path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&f.path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert_eq!(f.mismatch().kind(), "truncated");
    assert_eq!(std::fs::metadata(&f.path).unwrap().len(), len - 1);
}

#[test]
fn an_emptied_log_is_emptied() {
    let f = Fixture::with_events(3);
    std::fs::write(&f.path, b"").unwrap();
    assert!(matches!(
        f.verify().anchor,
        AnchorCheck::Mismatch(Mismatch::Emptied(_))
    ));
    assert_eq!(f.mismatch().kind(), "emptied");
}

#[test]
fn a_deleted_log_is_deleted_and_open_does_not_start_a_new_one() {
    let f = Fixture::with_events(3);
    std::fs::remove_file(&f.path).unwrap();
    let report = f.verify();
    assert!(!report.exists);
    assert!(matches!(
        report.anchor,
        AnchorCheck::Mismatch(Mismatch::Deleted(_))
    ));
    assert_eq!(f.mismatch().kind(), "deleted");
    assert!(!f.path.exists(), "open must not start a new log");
}

#[test]
fn an_older_copy_put_back_is_found() {
    let f = Fixture::with_events(3);
    let older = std::fs::read(&f.path).unwrap();
    f.append(4..=6);
    std::fs::write(&f.path, &older).unwrap();
    let m = match f.verify().anchor {
        AnchorCheck::Mismatch(m) => m,
        other => panic!("{other:?}"),
    };
    assert!(m.to_string().contains("ROLLED BACK"), "{m}");
    assert_eq!(f.mismatch(), m);
}

#[test]
fn a_different_log_of_the_same_length_is_rolled_back() {
    let f = Fixture::with_events(3);
    let other = Fixture::with_events(0);
    other.append([7, 8, 9]);
    std::fs::copy(&other.path, &f.path).unwrap();
    let report = f.verify();
    assert_eq!(
        report.first_broken, None,
        "an authentic log, but another one"
    );
    assert!(
        matches!(
            report.anchor,
            AnchorCheck::Mismatch(Mismatch::RolledBack { .. })
        ),
        "{report:?}"
    );
    assert_eq!(f.mismatch().kind(), "rolled-back");
}

#[test]
fn an_edited_anchor_is_refused() {
    let f = Fixture::with_events(2);
    let mut record = f.anchors.get().unwrap();
    record[8] ^= 1;
    f.anchors.set(Some(record));
    assert_eq!(f.mismatch().kind(), "anchor-invalid");
    assert!(matches!(
        f.verify().anchor,
        AnchorCheck::Mismatch(Mismatch::AnchorInvalid(_))
    ));
}

#[test]
fn a_maced_log_whose_anchor_is_gone_is_refused() {
    let f = Fixture::with_events(2);
    f.anchors.set(None);
    assert_eq!(f.mismatch(), Mismatch::AnchorMissing { lines: 2 });
    assert!(matches!(
        f.verify().anchor,
        AnchorCheck::Mismatch(Mismatch::AnchorMissing { lines: 2 })
    ));
}

// ---- crash windows open accepts ----

#[test]
fn a_batch_synced_but_not_anchored_is_accepted_and_anchored() {
    let f = Fixture::with_events(3);
    let anchored_at_3 = f.anchors.get();
    f.append(4..=5);
    // As if the server died between the sync of the last batches and their anchor.
    f.anchors.set(anchored_at_3);
    assert_eq!(
        f.verify().anchor,
        AnchorCheck::Matches {
            unanchored_lines: 2
        }
    );
    drop(f.open().unwrap());
    assert_eq!(f.anchors.anchor().lines, 5);
    assert_intact(&f.verify(), 5);
}

#[test]
fn more_lines_after_the_anchor_than_one_batch_is_extended() {
    let f = Fixture::with_events(0);
    let mut prev = GENESIS;
    let lines: Vec<String> = (0..=MAX_BATCH as u64)
        .map(|i| {
            let (line, link) = v2_line(&json!({"n": i}), &prev, &keys());
            prev = link;
            line
        })
        .collect();
    f.rewrite(&lines);
    assert_eq!(f.mismatch().kind(), "extended");
    assert!(matches!(
        f.verify().anchor,
        AnchorCheck::Mismatch(Mismatch::Extended { .. })
    ));
}

#[test]
fn lines_after_the_anchor_that_do_not_authenticate_are_refused() {
    let f = Fixture::with_events(3);
    let (forged, _) = v2_line(
        &json!({"eventName": "Decrypt"}),
        &f.anchors.anchor().link,
        &AuditKeys::derive(&Key256::from_bytes([9; 32])),
    );
    f.append_raw(format!("{forged}\n").as_bytes());
    let before = std::fs::read(&f.path).unwrap();
    assert_eq!(f.mismatch().kind(), "forged-tail");
    assert_eq!(
        std::fs::read(&f.path).unwrap(),
        before,
        "open changed nothing"
    );

    // An old-format line after the anchor is not something this version writes either.
    let g = Fixture::with_events(3);
    let (v1, _) = v1_line(&json!({"eventName": "Decrypt"}), &g.anchors.anchor().link);
    g.append_raw(format!("{v1}\n").as_bytes());
    assert_eq!(g.mismatch().kind(), "forged-tail");
}

#[test]
fn a_torn_last_line_is_reported_by_verify_and_truncated_by_open() {
    let f = Fixture::with_events(3);
    let complete = std::fs::read(&f.path).unwrap();
    f.append_raw(br#"{"eventName":"Decrypt","previousLi"#);
    let broken = f.verify().first_broken.unwrap();
    assert_eq!(broken.line, 4);
    assert!(
        broken.reason.contains("no trailing newline"),
        "{}",
        broken.reason
    );
    let log = f.open().unwrap();
    assert_eq!(
        std::fs::read(&f.path).unwrap(),
        complete,
        "the torn tail is cut"
    );
    log.append_blocking(event(4)).unwrap();
    drop(log);
    assert_intact(&f.verify(), 4);
    let last: Value = serde_json::from_str(&f.lines()[3]).unwrap();
    assert_eq!(last["requestID"], "req-4");
}

#[test]
fn a_torn_first_line_of_a_new_log_is_truncated() {
    let f = Fixture::new();
    std::fs::write(&f.path, b"{\"eventN").unwrap();
    f.append([1]);
    assert_intact(&f.verify(), 1);
}

#[test]
fn a_whole_last_line_missing_only_its_newline_is_completed_by_open() {
    let f = Fixture::with_events(3);
    let (line, _) = v2_line(&event(4), &f.anchors.anchor().link, &keys());
    f.append_raw(line.as_bytes());
    assert_eq!(f.broken_line(), Some(4));
    f.append([5]);
    assert_intact(&f.verify(), 5);
}

#[test]
fn a_failed_anchor_save_fails_the_batch_and_every_later_one_until_reopened() {
    let f = Fixture::with_events(2);
    let log = f.open().unwrap();
    f.anchors.fail.store(true, Ordering::Relaxed);
    assert!(matches!(
        log.append_blocking(event(3)),
        Err(AuditError::Io(_))
    ));
    f.anchors.fail.store(false, Ordering::Relaxed);
    assert!(
        log.append_blocking(event(4)).is_err(),
        "what reached the disk is unknown: no more appends"
    );
    drop(log);
    // The synced but unanchored line is a crash window: accepted, anchored, continued.
    f.append([5]);
    assert_intact(&f.verify(), 4);
}

#[test]
fn open_finds_the_tail_across_read_chunks() {
    let f = Fixture::new();
    let log = f.open().unwrap();
    let big = json!({"eventName": "Encrypt", "padding": "x".repeat(20_000)});
    log.append_blocking(big.clone()).unwrap();
    log.append_blocking(big).unwrap();
    drop(log);
    f.append([3]);
    assert_intact(&f.verify(), 3);
}

// ---- logs of earlier releases ----

#[test]
fn a_log_of_an_earlier_release_is_adopted_and_continued_in_the_new_format() {
    let f = Fixture::new();
    let old = v1_log(4);
    f.rewrite(&old);
    let report = verify(&f.path, &keys(), None).unwrap();
    assert_eq!(report.first_broken, None);
    assert_eq!(report.anchor, AnchorCheck::Absent, "not anchored yet");
    assert!(!report.intact());

    f.append(5..=6);
    let lines = f.lines();
    assert_eq!(
        &lines[..4],
        &old[..],
        "the old lines are kept byte for byte"
    );
    let fifth: Value = serde_json::from_str(&lines[4]).unwrap();
    assert_eq!(
        fifth[PREVIOUS_LINK_FIELD],
        hex::encode(sha256(old[3].as_bytes())).as_str(),
        "the first new line links to the SHA-256 of the last old one"
    );
    assert_intact(&f.verify(), 6);

    // The old lines are covered too: an edit with the SHA-256 chain recomputed breaks at the
    // first MAC'd line, which holds the old chain's end.
    let mut prev = GENESIS;
    let mut edited: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate().take(4) {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v.as_object_mut().unwrap().remove(V1_PREVIOUS_FIELD);
        if i == 1 {
            v["eventName"] = "Edited".into();
        }
        let (line, link) = v1_line(&v, &prev);
        prev = link;
        edited.push(line);
    }
    edited.extend_from_slice(&lines[4..]);
    f.rewrite(&edited);
    assert_eq!(f.broken_line(), Some(5));
}

#[test]
fn an_adopted_log_of_an_earlier_release_is_anchored_even_without_new_events() {
    let f = Fixture::new();
    f.rewrite(&v1_log(3));
    drop(f.open().unwrap());
    assert_eq!(f.anchors.anchor().lines, 3);
    assert_intact(&f.verify(), 3);
    f.rewrite(&v1_log(2));
    assert_eq!(f.mismatch().kind(), "truncated");
}

#[test]
fn a_broken_log_of_an_earlier_release_is_not_adopted() {
    let f = Fixture::new();
    let mut old = v1_log(4);
    old.remove(1);
    f.rewrite(&old);
    assert_eq!(f.mismatch().kind(), "broken-chain");
    assert_eq!(f.anchors.get(), None, "nothing anchored");
}

// ---- recovery ----

#[test]
fn recovery_moves_the_log_aside_and_starts_a_chain_that_records_why() {
    let f = Fixture::with_events(5);
    f.rewrite(&f.lines()[..2]);
    let cut = std::fs::read(&f.path).unwrap();
    let log = f.recover().unwrap();
    log.append_blocking(event(6)).unwrap();
    drop(log);

    let aside: Vec<PathBuf> = std::fs::read_dir(f.path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".rejected-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), cut, "kept as it was");

    let lines = f.lines();
    assert_eq!(lines.len(), 2);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["eventName"], "AuditLogRecovered");
    assert_eq!(first["finding"], "truncated");
    assert_eq!(first["previousLines"], 5);
    assert_eq!(first["rejected"], aside[0].display().to_string().as_str());
    assert_eq!(first[PREVIOUS_LINK_FIELD], "0".repeat(64).as_str());
    assert_intact(&f.verify(), 2);
    drop(f.open().unwrap());
}

#[test]
fn recovery_of_a_deleted_log_needs_no_file_to_move() {
    let f = Fixture::with_events(2);
    std::fs::remove_file(&f.path).unwrap();
    drop(f.recover().unwrap());
    let first: Value = serde_json::from_str(&f.lines()[0]).unwrap();
    assert_eq!(first["finding"], "deleted");
    assert!(first["rejected"].is_null());
    assert_intact(&f.verify(), 1);
}

#[test]
fn recovery_with_nothing_to_recover_is_refused_and_changes_nothing() {
    let f = Fixture::with_events(2);
    let before = std::fs::read(&f.path).unwrap();
    assert!(matches!(f.recover(), Err(AuditError::NothingToRecover)));
    assert_eq!(std::fs::read(&f.path).unwrap(), before);
    assert_intact(&f.verify(), 2);
}

// ---- appends ----

#[test]
fn a_callers_own_chain_fields_are_replaced() {
    let f = Fixture::new();
    let log = f.open().unwrap();
    log.append_blocking(json!({
        "eventName": "x",
        V1_PREVIOUS_FIELD: "forged",
        PREVIOUS_LINK_FIELD: "forged",
        LINK_FIELD: "forged",
    }))
    .unwrap();
    log.append_blocking(json!({})).unwrap();
    drop(log);
    assert_intact(&f.verify(), 2);
    assert!(!f.lines()[0].contains("forged"));
    assert!(f.lines()[1].starts_with(&format!("{{\"{PREVIOUS_LINK_FIELD}\":")));
}

#[test]
fn events_that_are_not_objects_are_refused() {
    let f = Fixture::new();
    let log = f.open().unwrap();
    assert!(matches!(
        log.append_blocking(json!([1])),
        Err(AuditError::NotAnObject)
    ));
}

#[test]
fn appends_after_close_fail_with_closed() {
    let f = Fixture::new();
    let log = f.open().unwrap();
    log.append_blocking(event(1)).unwrap();
    log.close();
    assert!(matches!(
        log.append_blocking(event(2)),
        Err(AuditError::Closed)
    ));
    assert_intact(&f.verify(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_all_get_durable_anchored_lines() {
    let f = Fixture::new();
    let log = f.open().unwrap();
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
    // Every append has returned, so every line is in the file and under the anchor.
    assert_intact(&f.verify(), 64 * 20);
    assert!(log.syncs() < 64 * 20, "batches were shared");
    let ids: HashSet<String> = f
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["requestID"].to_string())
        .collect();
    assert_eq!(ids.len(), 64 * 20);
}

// ---- reading ----

#[test]
fn read_events_filters_by_key_and_keeps_the_newest() {
    let f = Fixture::with_events(10);
    let path = &f.path;
    let all = read_events(path, None, 100).unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[0]["requestID"], "req-1");

    let newest = read_events(path, None, 3).unwrap();
    let ids: Vec<_> = newest
        .iter()
        .map(|e| e["requestID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-8", "req-9", "req-10"]);

    // key-1 is used by events 1, 4, 7, 10.
    let by_id = read_events(path, Some("key-1"), 100).unwrap();
    assert_eq!(by_id.len(), 4);
    let by_arn = read_events(path, Some(":key/key-1"), 2).unwrap();
    let ids: Vec<_> = by_arn
        .iter()
        .map(|e| e["requestID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-7", "req-10"]);
    assert!(read_events(path, Some("nope"), 100).unwrap().is_empty());
    assert!(read_events(path, None, 0).unwrap().is_empty());
}

#[test]
fn read_events_skips_a_torn_last_line_and_reports_corrupt_ones() {
    let f = Fixture::with_events(2);
    f.append_raw(b"{\"torn");
    assert_eq!(read_events(&f.path, None, 10).unwrap().len(), 2);

    let mut lines = f.lines();
    lines[1] = "not json".into();
    f.rewrite(&lines[..2]);
    assert!(matches!(
        read_events(&f.path, None, 10),
        Err(AuditError::Corrupt(_))
    ));
}
