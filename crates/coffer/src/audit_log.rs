//! The KMS audit log from the binary's side: opening it at start against its anchor in the
//! metadata database (refusing to start, with what was found and how to recover, or recovering
//! once when `--audit-log-recover` says so), and `coffer audit verify`.
//!
//! The log itself (format, anchor, checks) is `coffer_kms::audit`; this module only assembles and
//! reports. It never deletes or edits a log, and never prints key material.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use coffer_kms::audit::{
    AnchorCheck, AnchorStore, AuditError, AuditKeys, AuditLog, OnMismatch, VerifyReport,
};
use coffer_kms::{Clock, KmsConfig};
use coffer_store::{MetaStore, StoreError};

use crate::serve::{audit_log_path, load_root_key};

/// The anchor in the metadata database, with the sealed key ring's word on whether there must be
/// one.
struct RingCheckedAnchors {
    meta: Arc<MetaStore>,
    anchored_before: bool,
}

impl AnchorStore for RingCheckedAnchors {
    fn load(&self) -> Result<Option<Vec<u8>>, AuditError> {
        AnchorStore::load(self.meta.as_ref())
    }

    fn save(&self, record: &[u8]) -> Result<(), AuditError> {
        AnchorStore::save(self.meta.as_ref(), record)
    }

    fn was_anchored(&self) -> bool {
        self.anchored_before
    }
}

/// Exit code of `coffer audit verify` when it could not check (the server holds the database).
const EXIT_NOT_CHECKED: i32 = 2;

/// Opens the audit log of `data_dir` for the server. A log that disagrees with its anchor stops
/// the start (an error that says what was found and how to recover), unless `recover`.
/// `anchored_before` is the sealed key ring's word that this deployment anchored its log: a
/// missing anchor is then a removed one, not a log of an earlier release to adopt.
pub fn open(
    data_dir: &Path,
    root_key: &coffer_crypto::Key256,
    meta: &Arc<MetaStore>,
    kms_config: &KmsConfig,
    clock: Arc<dyn Clock>,
    recover: bool,
    anchored_before: bool,
) -> anyhow::Result<Arc<AuditLog>> {
    let path = audit_log_path(data_dir);
    let on_mismatch = if recover {
        let cfg = kms_config.clone();
        OnMismatch::Recover(Box::new(move |recovery| {
            coffer_kms::audit_log_recovered(&cfg, clock.now(), recovery)
        }))
    } else {
        OnMismatch::Refuse
    };
    let anchors = Arc::new(RingCheckedAnchors {
        meta: Arc::clone(meta),
        anchored_before,
    }) as Arc<dyn AnchorStore>;
    match AuditLog::open(&path, AuditKeys::derive(root_key), anchors, on_mismatch) {
        Ok(log) => Ok(log),
        Err(AuditError::Mismatch(mismatch)) => anyhow::bail!(
            "the KMS audit log {path} does not match its anchor in the metadata database: \
             {mismatch}.\n\
             Coffer refuses to start so that someone looks at this; the log was not changed.\n\
             - See the whole log checked: stop here and run `coffer audit verify --data-dir {dir}`.\n\
             - If you know why (for example, the data dir was restored from a backup) and accept \
             it, start once with --audit-log-recover: the log is moved aside to \
             {path}.rejected-<time> (never deleted) and a new chain starts whose first event \
             (AuditLogRecovered) records what was found.",
            path = path.display(),
            dir = data_dir.display(),
        ),
        Err(AuditError::NothingToRecover) => anyhow::bail!(
            "--audit-log-recover was given, but the KMS audit log {} agrees with its anchor: \
             there is nothing to recover. Start without --audit-log-recover (left on, it would \
             hide a later tampering).",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the audit log {}", path.display())),
    }
}

/// `coffer audit verify`: checks the whole log and (unless `chain_only`) its end against the
/// anchor. Exits 1 when something is wrong, 2 when the anchor could not be read because a server
/// holds the database.
pub fn verify(data_dir: &Path, chain_only: bool) -> anyhow::Result<()> {
    let path = audit_log_path(data_dir);
    let root_key = load_root_key(data_dir)?;
    let keys = AuditKeys::derive(&root_key);
    let report = if chain_only {
        coffer_kms::audit::verify_chain(&path, &keys)
    } else {
        let (record, anchored_before) = load_anchor(data_dir, &root_key)?;
        if record.is_none() && anchored_before {
            println!(
                "audit log {}: does NOT match its anchor (anchor-removed): {}",
                path.display(),
                coffer_kms::audit::Mismatch::AnchorRemoved
            );
            std::process::exit(1);
        }
        coffer_kms::audit::verify(&path, &keys, record.as_deref())
    }
    .with_context(|| format!("reading {}", path.display()))?;
    let ok = print_report(&path, &report);
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// The stored anchor record, and whether the sealed key ring says the log was anchored before;
/// exits with [`EXIT_NOT_CHECKED`] if a server holds the database.
fn load_anchor(
    data_dir: &Path,
    root_key: &coffer_crypto::Key256,
) -> anyhow::Result<(Option<Vec<u8>>, bool)> {
    let db = data_dir.join("meta.redb");
    if !db.exists() {
        return Ok((None, false));
    }
    match MetaStore::open(&db) {
        Ok(meta) => {
            let anchored_before = coffer_s3::ServiceKeyRing::load_or_create(&meta, root_key)
                .is_ok_and(|ring| ring.audit_anchored());
            Ok((AnchorStore::load(&meta)?, anchored_before))
        }
        Err(StoreError::InUse) => {
            eprintln!(
                "coffer audit verify: {} is in use, by a running server: the log's end can only \
                 be checked against its anchor there, and redb lets one process open it at a \
                 time. Stop the server and run this again, or run `coffer audit verify \
                 --chain-only` to check every line's link and MAC now (lines cut off the end \
                 would go unseen).",
                db.display()
            );
            std::process::exit(EXIT_NOT_CHECKED);
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", db.display())),
    }
}

/// Prints what verify found; true if nothing is wrong.
fn print_report(path: &Path, report: &VerifyReport) -> bool {
    let path = path.display();
    if !report.exists {
        println!("audit log {path}: MISSING");
    } else if let Some(broken) = &report.first_broken {
        println!(
            "audit log {path}: chain BROKEN at line {}: {}",
            broken.line, broken.reason
        );
    } else {
        println!(
            "audit log {path}: {} lines, hash chain intact, every MAC verified",
            report.lines
        );
    }
    match &report.anchor {
        AnchorCheck::NotChecked => println!(
            "audit log {path}: NOT checked against its anchor (--chain-only): lines cut off its \
             end would go unseen"
        ),
        AnchorCheck::Matches {
            unanchored_lines: 0,
        } => println!("audit log {path}: its end matches its anchor"),
        AnchorCheck::Matches { unanchored_lines } => println!(
            "audit log {path}: its end matches its anchor; {unanchored_lines} authentic lines \
             follow it (a batch written just before a crash; the server anchors them when it \
             next opens the log)"
        ),
        AnchorCheck::Absent => println!(
            "audit log {path}: NOT ANCHORED: the metadata database holds no anchor and no line \
             has a MAC, as in a log of an earlier release; start the server once to verify and \
             anchor it (until then, lines cut off its end would go unseen)"
        ),
        AnchorCheck::Mismatch(mismatch) => println!(
            "audit log {path}: does NOT match its anchor ({}): {mismatch}",
            mismatch.kind()
        ),
    }
    report.intact()
}
