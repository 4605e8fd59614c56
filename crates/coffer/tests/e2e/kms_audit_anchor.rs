//! The audit log's anchor end to end (issue 14, point 2): every line's link is an HMAC under a key
//! derived from the root key, and the log's end is anchored in the metadata database, so that
//! `coffer audit verify` fails on a log that was truncated, emptied, deleted, rolled back to an
//! older copy, or edited with its chain recomputed, and says which; the server refuses to start
//! on such a log until `--audit-log-recover` moves it aside and starts a new chain that records
//! why; a log written by the previous release (fixture) is adopted and continued; and a flood of
//! requests refused before authentication adds a bounded number of lines to the log.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sigv4::{Signer, hmac_sha256, sha256, sha256_hex};
use common::{
    REGION, TestServer, create_key, decrypt, encrypt, kms_server, kms_signed_headers, ok, raw_http,
};

const WAIT: Duration = Duration::from_secs(5);

/// The log of the previous release (format 1, SHA-256 links) with 8 events, written by
/// `coffer serve` at commit 2ae7ae6 (see fixtures/audit-v1/README.md).
const V1_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/audit-v1/kms-audit.log"
);

/// Output of a `coffer` command as one string (stdout then stderr).
fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `coffer audit verify` and returns (exit code, output).
fn verify(server: &TestServer) -> (Option<i32>, String) {
    let out = server.audit_command(&["verify"]);
    (out.status.code(), text(&out))
}

/// Asserts verify fails and its output names `what` (case-insensitive).
fn assert_verify_fails_with(server: &TestServer, what: &str) -> String {
    let (code, output) = verify(server);
    assert_eq!(code, Some(1), "verify must fail ({what}): {output}");
    assert!(
        output.to_lowercase().contains(&what.to_lowercase()),
        "verify must say {what:?}: {output}"
    );
    output
}

/// Some KMS requests, then waits until the last is in the log.
async fn session(server: &TestServer, tag: &str) {
    let kms = server.kms_client();
    let id = create_key(&kms, tag).await.key_id().to_string();
    let blob = encrypt(&kms, &id, tag.as_bytes(), &[("tag", tag)]).await;
    decrypt(&kms, &blob, &[("tag", tag)]).await;
    ok(kms.describe_key().key_id(&id).send().await);
    server
        .wait_for_audit_event(WAIT, |e| {
            e["eventName"] == "DescribeKey" && e["requestParameters"]["keyId"] == id.as_str()
        })
        .expect("the session's last request is audited");
}

/// Runs `coffer serve` on `dir` (harness flags, quotas off, plus `extra`), expecting it to refuse
/// to start: returns its output.
fn serve_refused(dir: &Path, extra: &[&str]) -> String {
    let args = [&["--kms-quotas", "off"], extra].concat();
    text(&common::serve_expecting_refusal(dir, &args))
}

/// A server on `dir` started once with `--audit-log-recover`.
fn start_recovering(dir: &Path) -> TestServer {
    TestServer::builder()
        .args(["--kms-quotas", "off", "--audit-log-recover"])
        .start_in(dir)
}

/// Files the recovery moved aside.
fn rejected_logs(server: &TestServer) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(server.data_dir().join("audit"))
        .expect("read the audit dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().contains("kms-audit.log.rejected-"))
        .collect();
    found.sort();
    found
}

/// The whole refuse → recover → verify cycle for a damaged log: the server refuses to start
/// (saying what it found and how to recover) and changes nothing; once with
/// `--audit-log-recover` it starts, the damaged file is kept aside, the new chain's first event
/// records the finding, and verify passes; the next start needs no flag.
async fn assert_refused_then_recovered(server: &mut TestServer, finding: &str, found: &str) {
    let dir = server.data_dir().to_path_buf();
    let damaged = std::fs::read(server.audit_log_path()).ok();
    let output = serve_refused(&dir, &[]);
    assert!(
        output.contains("does not match its anchor") && output.contains(found),
        "the refusal says what was found ({found}): {output}"
    );
    assert!(
        output.contains("--audit-log-recover"),
        "the refusal says how to recover: {output}"
    );
    assert_eq!(
        std::fs::read(server.audit_log_path()).ok(),
        damaged,
        "a refused start changes nothing"
    );

    let mut recovered = start_recovering(&dir);
    let first = recovered
        .wait_for_audit_event(WAIT, |e| e["eventName"] == "AuditLogRecovered")
        .expect("the new chain starts with the recovery");
    assert_eq!(first, recovered.audit_events()[0], "it is the first event");
    assert_eq!(first["serviceEventDetails"]["finding"], finding, "{first}");
    assert_eq!(first["previousLink"], "0".repeat(64).as_str(), "{first}");
    let rejected = rejected_logs(server);
    match &damaged {
        Some(bytes) => {
            assert_eq!(rejected.len(), 1, "{rejected:?}");
            assert_eq!(
                &std::fs::read(&rejected[0]).expect("read the rejected log"),
                bytes,
                "the rejected log is kept as it was"
            );
            assert_eq!(
                first["serviceEventDetails"]["rejectedLog"],
                rejected[0].display().to_string().as_str()
            );
        }
        None => assert!(rejected.is_empty(), "{rejected:?}"),
    }
    session(&recovered, "after recovery").await;
    recovered.stop();
    let (code, output) = verify(&recovered);
    assert_eq!(code, Some(0), "verify after recovery: {output}");
    assert!(output.contains("matches its anchor"), "{output}");

    // The flag is for one start: left on with nothing to recover, the server refuses.
    let output = serve_refused(&dir, &["--audit-log-recover"]);
    assert!(output.contains("nothing to recover"), "{output}");
    recovered = TestServer::builder()
        .args(["--kms-quotas", "off"])
        .start_in(&dir);
    recovered.stop();
}

#[tokio::test]
async fn a_log_cut_to_its_first_lines_is_truncated_and_the_server_refuses_it() {
    let mut server = kms_server();
    session(&server, "one").await;
    session(&server, "two").await;
    server.stop();
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "untouched: {output}");

    let lines = server.audit_lines();
    assert!(lines.len() >= 8, "{} lines", lines.len());
    std::fs::write(server.audit_log_path(), lines[..4].join("\n") + "\n").expect("cut the log");
    let output = assert_verify_fails_with(&server, "truncated");
    assert!(
        output.contains("hash chain intact"),
        "what is left chains; only the anchor shows the cut: {output}"
    );
    assert_refused_then_recovered(&mut server, "truncated", "TRUNCATED").await;
}

#[tokio::test]
async fn an_emptied_log_is_found_and_refused() {
    let mut server = kms_server();
    session(&server, "one").await;
    server.stop();
    std::fs::write(server.audit_log_path(), b"").expect("empty the log");
    assert_verify_fails_with(&server, "emptied");
    assert_refused_then_recovered(&mut server, "emptied", "EMPTIED").await;
}

#[tokio::test]
async fn a_deleted_log_is_found_and_not_silently_started_afresh() {
    let mut server = kms_server();
    session(&server, "one").await;
    server.stop();
    std::fs::remove_file(server.audit_log_path()).expect("delete the log");
    assert_verify_fails_with(&server, "deleted");
    assert_refused_then_recovered(&mut server, "deleted", "DELETED").await;
}

/// Issue 14 review: with the anchor removed from meta.redb, the log (deleted, or rewritten in
/// the old SHA-256 format that anyone can recompute) was adopted as if it came from an earlier
/// release. The sealed key ring remembers that the log was anchored.
#[tokio::test]
async fn a_removed_anchor_is_found_and_not_taken_for_a_log_of_an_earlier_release() {
    const KV: redb::TableDefinition<(&str, &str), &[u8]> = redb::TableDefinition::new("kv");
    let mut server = kms_server();
    session(&server, "one").await;
    server.stop();
    {
        let db = redb::Database::open(server.data_dir().join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let removed = txn
            .open_table(KV)
            .unwrap()
            .remove(("audit", "anchor"))
            .unwrap()
            .is_some();
        assert!(removed, "the anchor was where docs/format.md says");
        txn.commit().unwrap();
    }
    std::fs::remove_file(server.audit_log_path()).expect("delete the log");
    assert_verify_fails_with(&server, "anchor was removed");
    assert_refused_then_recovered(&mut server, "anchor-removed", "anchor was removed").await;
}

#[tokio::test]
async fn an_older_copy_put_back_after_more_events_is_rolled_back() {
    let mut server = kms_server();
    session(&server, "one").await;
    server.stop();
    let older = std::fs::read(server.audit_log_path()).expect("copy the log");
    server.restart();
    session(&server, "two").await;
    server.stop();
    std::fs::write(server.audit_log_path(), &older).expect("put the older copy back");
    let output = assert_verify_fails_with(&server, "rolled back");
    assert!(output.contains("hash chain intact"), "{output}");
    assert_refused_then_recovered(&mut server, "truncated", "ROLLED BACK").await;
}

/// The link HMAC key, derived from the data dir's root key as docs/format.md says:
/// HKDF-SHA256(ikm = root key, salt = empty, info = "coffer audit chain v1"), one block.
fn chain_key(dir: &Path) -> [u8; 32] {
    let hex_key = std::fs::read_to_string(dir.join("root.key")).expect("read root.key");
    let root = hex::decode(hex_key.trim()).expect("root.key is hex");
    let prk = hmac_sha256(&[0u8; 32], &root);
    hmac_sha256(&prk, b"coffer audit chain v1\x01")
}

/// Rewrites the lines with their chain recomputed under `key` (as an attacker without the root
/// key would, with a key of their own).
fn rechain(lines: &[String], key: &[u8; 32]) -> Vec<String> {
    let mut previous = "0".repeat(64);
    lines
        .iter()
        .map(|line| {
            let mut event: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let fields = event.as_object_mut().expect("an object");
            fields.remove("previousLink");
            fields.remove("linkHmacSha256");
            let body = event.to_string();
            let mac_input = format!(
                "{},\"previousLink\":\"{previous}\",\"linkHmacSha256\":\"",
                &body[..body.len() - 1]
            );
            let link = hex::encode(hmac_sha256(key, mac_input.as_bytes()));
            previous = link.clone();
            format!("{mac_input}{link}\"}}")
        })
        .collect()
}

#[tokio::test]
async fn each_line_is_maced_under_a_key_derived_from_the_root_key_as_documented() {
    let mut server = kms_server();
    session(&server, "one").await;
    server.stop();
    let key = chain_key(server.data_dir());
    let lines = server.audit_lines();
    // Recomputing with the documented derivation reproduces the log byte for byte.
    assert_eq!(rechain(&lines, &key), lines);
}

#[tokio::test]
async fn an_edited_line_with_its_chain_recomputed_without_the_root_key_is_found() {
    let mut server = kms_server();
    session(&server, "one").await;
    session(&server, "two").await;
    server.stop();
    let original = server.audit_lines();
    let mut edited = original.clone();
    let target = 3;
    edited[target] = edited[target].replacen("\"eventName\":\"", "\"eventName\":\"X", 1);
    assert_ne!(edited[target], original[target]);

    // With the attacker's own key: every line fails its MAC; verify names the first.
    std::fs::write(
        server.audit_log_path(),
        rechain(&edited, &[7u8; 32]).join("\n") + "\n",
    )
    .expect("write the forged log");
    let output = assert_verify_fails_with(&server, "chain BROKEN at line 1");
    assert!(output.contains("without the root key"), "{output}");
    // The server checks the log's end at start: the last line is not the anchored one.
    let refusal = serve_refused(server.data_dir(), &[]);
    assert!(refusal.contains("ROLLED BACK"), "{refusal}");

    // Only the edited line recomputed (links kept as they were): that line fails.
    let mut only_that: Vec<String> = original.clone();
    only_that[target] = rechain(&edited[..=target], &[7u8; 32])[target].clone();
    std::fs::write(server.audit_log_path(), only_that.join("\n") + "\n").expect("write");
    assert_verify_fails_with(&server, &format!("chain BROKEN at line {}", target + 1));

    // Rewritten in the previous release's format, with a consistent SHA-256 chain: the chain
    // holds, the anchor does not.
    let mut previous = "0".repeat(64);
    let as_v1: Vec<String> = edited
        .iter()
        .map(|line| {
            let mut event: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let fields = event.as_object_mut().expect("an object");
            fields.remove("previousLink");
            fields.remove("linkHmacSha256");
            fields.insert("previousLineSha256".into(), previous.clone().into());
            let line = serde_json::to_string(fields).expect("serialize");
            previous = sha256_hex(line.as_bytes());
            line
        })
        .collect();
    std::fs::write(server.audit_log_path(), as_v1.join("\n") + "\n").expect("write");
    let output = assert_verify_fails_with(&server, "does NOT match its anchor");
    assert!(output.contains("hash chain intact"), "{output}");

    // The original verifies again.
    std::fs::write(server.audit_log_path(), original.join("\n") + "\n").expect("restore");
    assert_eq!(verify(&server).0, Some(0));
}

#[tokio::test]
async fn a_log_of_the_previous_release_is_adopted_and_continued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let audit_dir = dir.path().join("audit");
    std::fs::create_dir_all(&audit_dir).expect("create the audit dir");
    let fixture = std::fs::read(V1_FIXTURE).expect("read the v1 fixture");
    std::fs::write(audit_dir.join("kms-audit.log"), &fixture).expect("install the v1 log");
    let v1_lines: Vec<&str> = std::str::from_utf8(&fixture)
        .expect("UTF-8")
        .lines()
        .collect();
    assert_eq!(v1_lines.len(), 8);

    let mut server = TestServer::builder()
        .args(["--kms-quotas", "off"])
        .start_in(dir.path());
    session(&server, "after the upgrade").await;
    server.stop();
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "the upgraded log verifies: {output}");

    let lines = server.audit_lines();
    assert_eq!(
        &lines[..8],
        &v1_lines[..],
        "the old lines are kept byte for byte"
    );
    let first_new: serde_json::Value = serde_json::from_str(&lines[8]).expect("JSON");
    assert_eq!(
        first_new["previousLink"],
        sha256_hex(v1_lines[7].as_bytes()).as_str(),
        "the first new line links to the SHA-256 of the last old one"
    );
    assert!(first_new.get("previousLineSha256").is_none());

    // The old lines are now covered: an edit with the SHA-256 chain recomputed is found.
    let mut edited: Vec<String> = lines.clone();
    let mut previous = "0".repeat(64);
    for (i, line) in edited.iter_mut().take(8).enumerate() {
        let mut event: serde_json::Value = serde_json::from_str(line).expect("JSON");
        if i == 2 {
            event["eventName"] = "Edited".into();
        }
        event["previousLineSha256"] = previous.clone().into();
        *line = event.to_string();
        previous = hex::encode(sha256(line.as_bytes()));
    }
    std::fs::write(server.audit_log_path(), edited.join("\n") + "\n").expect("write");
    assert_verify_fails_with(&server, "chain BROKEN at line 9");

    // Restored, it starts and continues.
    std::fs::write(server.audit_log_path(), lines.join("\n") + "\n").expect("restore");
    server.restart();
    session(&server, "again").await;
    server.stop();
    assert_eq!(verify(&server).0, Some(0));
}

/// One KMS request signed with a wrong secret, with long fields of the stranger's choosing.
fn badly_signed(server: &TestServer, filler: &str) -> raw_http::RawResponse {
    let host = server.addr().to_string();
    let claimed = format!("AKIA{filler}");
    let signer = Signer {
        access_key: &claimed,
        secret_key: "not the secret",
        region: REGION,
    };
    let operation = format!("Encrypt{filler}");
    let mut headers = kms_signed_headers(
        &signer,
        &host,
        &operation,
        b"{}",
        std::time::SystemTime::now(),
    );
    headers.push(("user-agent".into(), format!("flood/{filler}")));
    raw_http::request(server.addr(), "POST", "/", &headers, b"{}")
}

#[tokio::test]
async fn a_flood_of_badly_signed_requests_adds_a_few_short_lines_and_a_summary_with_the_count() {
    const FLOOD: usize = 2000;
    const THREADS: usize = 8;
    let mut server = kms_server();
    // A user of the root key works normally throughout.
    session(&server, "before").await;
    let before = server.audit_lines().len();

    let filler = "Z".repeat(4000);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..FLOOD / THREADS {
                    let resp = badly_signed(&server, &filler);
                    assert_eq!(resp.status, 400, "{}", resp.body_text());
                    assert_eq!(
                        resp.header("x-amzn-errortype"),
                        Some("UnrecognizedClientException"),
                        "{}",
                        resp.body_text()
                    );
                }
            });
        }
    });
    // The stranger's first refusal is in the log, cut short; the rest are only counted.
    let first = server
        .wait_for_audit_event(WAIT, |e| e["errorCode"] == "UnrecognizedClientException")
        .expect("the first refusal is audited");
    assert!(
        first["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.len() <= 256),
        "{first}"
    );
    assert!(
        first["eventName"].as_str().is_some_and(|n| n.len() <= 64),
        "{first}"
    );
    assert!(
        first["userIdentity"]["accessKeyId"].is_null(),
        "a claimed key id longer than any access key is not recorded: {first}"
    );
    session(&server, "during").await;
    let during = server.audit_lines();
    assert!(
        during.len() - before <= 1 + 4,
        "{FLOOD} refusals added {} lines",
        during.len() - before
    );
    for line in &during[before..] {
        assert!(line.len() < 4096, "a {}-byte line: {line}", line.len());
    }

    // When the window ends (here: at shutdown) the count is written as one summary event.
    server.stop();
    let events = server.audit_events();
    let summaries: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventName"] == "RefusedRequestsSummary")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let summary = summaries[0];
    assert_eq!(summary["sourceIPAddress"], "127.0.0.1", "{summary}");
    assert_eq!(summary["errorCode"], "UnrecognizedClientException");
    assert_eq!(
        summary["serviceEventDetails"]["refusedRequests"], FLOOD as u64,
        "{summary}"
    );
    assert_eq!(summary["serviceEventDetails"]["loggedIndividually"], 1);
    assert!(
        events.len() - before <= 1 + 4 + 1,
        "the whole flood is {} lines",
        events.len() - before
    );
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "{output}");
}
