//! The KMS audit log end to end: every request (success and failure) is one CloudTrail-shaped
//! JSON line in `<data-dir>/audit/kms-audit.log`, chained by MACs; `coffer audit verify` passes on
//! an untouched log (with `--chain-only` while the server runs) and names the line where an
//! edited, deleted or reordered log breaks; `coffer audit tail` filters by key; plaintexts and data keys never
//! appear in the log (nor anywhere else in the data dir or the server's output).

use crate::common;

use std::time::Duration;

use aws_sdk_kms::operation::RequestId as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use common::{
    ACCESS_KEY, TestServer, assert_kms_error, contains_bytes, context, create_key, decrypt,
    encrypt, files_under, key_arn, kms_server, ok, root_arn,
};

const WAIT: Duration = Duration::from_secs(5);

/// Output of a `coffer` command as one string (stdout then stderr).
fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A session that touches one key with successes and failures; returns the key id and the
/// request id of its Encrypt.
async fn session(kms: &aws_sdk_kms::Client) -> (String, String) {
    let id = create_key(kms, "audited").await.key_id().to_string();
    ok(kms
        .create_alias()
        .alias_name("alias/audited")
        .target_key_id(&id)
        .send()
        .await);
    let out = ok(kms
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new("audited plaintext"))
        .set_encryption_context(Some(context(&[("dept", "audit")])))
        .send()
        .await);
    let encrypt_request_id = out.request_id().expect("x-amzn-requestid").to_string();
    let blob = out
        .ciphertext_blob()
        .expect("CiphertextBlob")
        .as_ref()
        .to_vec();
    decrypt(kms, &blob, &[("dept", "audit")]).await;
    // Failures: a garbled blob, then crypto on a disabled key.
    let mut garbled = blob.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 1;
    assert_kms_error(
        kms.decrypt()
            .ciphertext_blob(Blob::new(garbled))
            .set_encryption_context(Some(context(&[("dept", "audit")])))
            .send()
            .await,
        "InvalidCiphertextException",
    );
    ok(kms.disable_key().key_id(&id).send().await);
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new("refused"))
            .send()
            .await,
        "DisabledException",
    );
    ok(kms.enable_key().key_id(&id).send().await);
    ok(kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await);
    ok(kms.generate_random().number_of_bytes(16).send().await);
    ok(kms.describe_key().key_id(&id).send().await);
    (id, encrypt_request_id)
}

/// Waits until the audit log holds an event named `name`.
fn wait_for(server: &TestServer, name: &str) -> serde_json::Value {
    server
        .wait_for_audit_event(WAIT, |e| e["eventName"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} event in the audit log within {WAIT:?}:\n{}",
                server.audit_lines().join("\n")
            )
        })
}

#[tokio::test]
async fn every_request_is_an_audit_event_with_cloudtrail_fields() {
    let server = kms_server();
    let kms = server.kms_client();
    let (id, encrypt_request_id) = session(&kms).await;
    wait_for(&server, "DescribeKey");

    let events = server.audit_events();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["eventName"].as_str().unwrap_or("?"))
        .collect();
    for expected in [
        "CreateKey",
        "CreateAlias",
        "Encrypt",
        "Decrypt",
        "DisableKey",
        "EnableKey",
        "GenerateDataKey",
        "GenerateRandom",
        "DescribeKey",
    ] {
        assert!(
            names.contains(&expected),
            "no {expected} event in {names:?}"
        );
    }

    // The chain: each line states the previous line's link (64 zeros first) and carries its own,
    // an HMAC under a key derived from the root key (recomputed byte for byte in
    // kms_audit_anchor.rs).
    let mut previous = "0".repeat(64);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["previousLink"].as_str(),
            Some(previous.as_str()),
            "line {} does not chain to the line before it",
            i + 1
        );
        previous = e["linkHmacSha256"]
            .as_str()
            .unwrap_or_else(|| panic!("line {}: no linkHmacSha256: {e}", i + 1))
            .to_string();
    }

    for (i, e) in events.iter().enumerate() {
        for field in [
            "eventTime",
            "eventSource",
            "eventName",
            "requestID",
            "eventID",
        ] {
            assert!(
                e[field].as_str().is_some_and(|s| !s.is_empty()),
                "line {}: {field} missing: {e}",
                i + 1
            );
        }
        assert!(
            e["previousLink"].is_string() && e["linkHmacSha256"].is_string(),
            "line {}: chain fields missing: {e}",
            i + 1
        );
        assert!(e["userIdentity"].is_object(), "line {}: {e}", i + 1);
    }
    // Event ids are unique.
    let mut ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventID"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "eventID repeats");

    let enc = events
        .iter()
        .find(|e| e["eventName"] == "Encrypt" && e["errorCode"].is_null())
        .expect("a successful Encrypt event");
    assert_eq!(enc["eventSource"], "kms.amazonaws.com", "{enc}");
    assert_eq!(enc["userIdentity"]["arn"], root_arn(), "{enc}");
    assert_eq!(enc["userIdentity"]["accessKeyId"], ACCESS_KEY, "{enc}");
    assert_eq!(enc["requestParameters"]["keyId"], id.as_str(), "{enc}");
    assert_eq!(
        enc["requestParameters"]["encryptionContext"],
        serde_json::json!({"dept": "audit"}),
        "{enc}"
    );
    assert_eq!(enc["requestID"], encrypt_request_id.as_str(), "{enc}");
    assert!(
        enc["sourceIPAddress"]
            .as_str()
            .is_some_and(|ip| ip.contains("127.0.0.1")),
        "{enc}"
    );
    assert!(
        enc["resources"].to_string().contains(&key_arn(&id)),
        "resources name the key ARN: {enc}"
    );

    // Failures are audited with their error code.
    let failed_decrypt = events
        .iter()
        .find(|e| e["eventName"] == "Decrypt" && !e["errorCode"].is_null())
        .unwrap_or_else(|| panic!("no failed Decrypt event: {names:?}"));
    assert_eq!(failed_decrypt["errorCode"], "InvalidCiphertextException");
    let refused = events
        .iter()
        .find(|e| e["eventName"] == "Encrypt" && !e["errorCode"].is_null())
        .unwrap_or_else(|| panic!("no failed Encrypt event: {names:?}"));
    assert_eq!(refused["errorCode"], "DisabledException");
    assert_eq!(refused["requestParameters"]["keyId"], id.as_str());
}

#[tokio::test]
async fn audit_verify_passes_while_running_and_tail_filters_by_key() {
    let server = kms_server();
    let kms = server.kms_client();
    let (id, _) = session(&kms).await;
    let other = create_key(&kms, "other key").await.key_id().to_string();
    encrypt(&kms, &other, b"other", &[]).await;
    server
        .wait_for_audit_event(WAIT, |e| {
            e["eventName"] == "Encrypt" && e["requestParameters"]["keyId"] == other.as_str()
        })
        .expect("the other key's Encrypt is audited");

    // The running server holds the metadata database, where the anchor is: verify says so
    // (exit 2), and --chain-only checks every line's link and MAC meanwhile.
    let out = server.audit_command(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "audit verify while the server runs: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("Stop the server") && text(&out).contains("--chain-only"),
        "{}",
        text(&out)
    );
    let out = server.audit_command(&["verify", "--chain-only"]);
    assert!(
        out.status.success() && text(&out).contains("hash chain intact"),
        "audit verify --chain-only on a running server's log: {}\n{}",
        out.status,
        text(&out)
    );

    let out = server.audit_command(&["tail", "--key-id", &id, "-n", "1000"]);
    assert!(out.status.success(), "audit tail: {}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("tail line not JSON ({e}): {l}"))
        })
        .collect();
    assert!(
        lines.len() >= 8,
        "the session made at least 8 requests on {id}, tail shows {}",
        lines.len()
    );
    for e in &lines {
        assert!(
            e.to_string().contains(&id),
            "tail --key-id {id} shows another key's event: {e}"
        );
        assert!(!e.to_string().contains(&other), "{e}");
        assert_ne!(e["eventName"], "GenerateRandom", "{e}");
    }

    let out = server.audit_command(&["tail", "-n", "2"]);
    assert!(out.status.success(), "audit tail -n 2: {}", text(&out));
    let last_two: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(last_two.len(), 2, "{last_two:?}");
    let all = server.audit_lines();
    let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).expect("JSON");
    assert_eq!(
        last_two.iter().map(|l| parse(l)).collect::<Vec<_>>(),
        all[all.len() - 2..]
            .iter()
            .map(|l| parse(l))
            .collect::<Vec<_>>(),
        "tail -n 2 shows the newest two events"
    );
}

/// Runs `coffer audit verify` and returns (exit code, output).
fn verify(server: &TestServer) -> (Option<i32>, String) {
    let out = server.audit_command(&["verify"]);
    (out.status.code(), text(&out))
}

/// The line number in "chain BROKEN at line N".
fn broken_line(output: &str) -> usize {
    let rest = output
        .split("chain BROKEN at line ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `chain BROKEN at line N` in: {output}"));
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no line number after `chain BROKEN at line` in: {output}"))
}

/// Changes one character inside the eventName value of `line` (keeping it valid JSON).
fn tamper(line: &str) -> String {
    let key = "\"eventName\"";
    let at = line.find(key).expect("a line with eventName") + key.len();
    let open = at + line[at..].find('"').expect("the value's opening quote") + 1;
    let mut bytes = line.as_bytes().to_vec();
    bytes[open] = if bytes[open] == b'X' { b'Y' } else { b'X' };
    String::from_utf8(bytes).expect("still UTF-8")
}

#[tokio::test]
async fn editing_one_line_of_the_log_breaks_the_chain_there() {
    let mut server = kms_server();
    let kms = server.kms_client();
    session(&kms).await;
    wait_for(&server, "DescribeKey");
    // Stopped, so nothing is appended while the log is edited.
    server.stop();

    let path = server.audit_log_path();
    let original = std::fs::read_to_string(&path).expect("read the audit log");
    let lines: Vec<&str> = original.lines().collect();
    assert!(
        lines.len() >= 8,
        "a session of 12 requests: {} lines",
        lines.len()
    );
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "untouched log: {output}");
    assert!(output.contains("hash chain intact"), "{output}");

    // Edit one character of a middle line (1-based line number `edited`).
    let index = lines.len() / 2;
    let edited = index + 1;
    let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    changed[index] = tamper(lines[index]);
    assert_ne!(changed[index], lines[index]);
    serde_json::from_str::<serde_json::Value>(&changed[index]).expect("the edit keeps valid JSON");
    std::fs::write(&path, changed.join("\n") + "\n").expect("write the edited log");
    let (code, output) = verify(&server);
    assert_eq!(code, Some(1), "edited line {edited}: {output}");
    // Each line carries a MAC of its own bytes, so the edited line itself fails (an edit of a
    // line in the old SHA-256 format is reported at the next line: see
    // crates/coffer-kms/src/audit/mod.rs).
    assert_eq!(
        broken_line(&output),
        edited,
        "edited line {edited}: {output}"
    );
    assert!(output.contains("without the root key"), "{output}");
    // An edit that breaks the line's JSON is reported at that line itself.
    let mut broken_json: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    broken_json[index].pop();
    std::fs::write(&path, broken_json.join("\n") + "\n").expect("write the edited log");
    let (code, output) = verify(&server);
    assert_eq!(code, Some(1), "line {edited} cut short: {output}");
    assert_eq!(broken_line(&output), edited, "{output}");

    // Putting the original back makes the chain whole again.
    std::fs::write(&path, &original).expect("restore the log");
    assert_eq!(verify(&server).0, Some(0), "restored log verifies");

    // A deleted middle line breaks the chain at the line that followed it.
    let mut without: Vec<&str> = lines.clone();
    without.remove(index);
    std::fs::write(&path, without.join("\n") + "\n").expect("write the shortened log");
    let (code, output) = verify(&server);
    assert_eq!(code, Some(1), "deleted line {edited}: {output}");
    assert_eq!(broken_line(&output), edited, "{output}");

    // Two lines swapped break it too.
    let mut swapped: Vec<&str> = lines.clone();
    swapped.swap(index, index + 1);
    std::fs::write(&path, swapped.join("\n") + "\n").expect("write the reordered log");
    let (code, output) = verify(&server);
    assert_eq!(
        code,
        Some(1),
        "swapped lines {edited} and {}: {output}",
        edited + 1
    );
    assert_eq!(broken_line(&output), edited, "{output}");

    // The server appends to a restored log and the chain stays whole.
    std::fs::write(&path, &original).expect("restore the log");
    server.restart();
    let kms = server.kms_client();
    ok(kms.generate_random().number_of_bytes(4).send().await);
    server
        .wait_for_audit_event(WAIT, |e| {
            e["eventName"] == "GenerateRandom"
                && !original.contains(e["eventID"].as_str().unwrap_or("-"))
        })
        .expect("the new request is audited");
    server.stop();
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "appended after a restart: {output}");
}

#[tokio::test]
async fn plaintexts_and_data_keys_never_reach_the_log() {
    let mut server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "canary").await.key_id().to_string();
    let canary = b"CANARY-plaintext-5c81f0e2-never-log-me".to_vec();
    let blob = encrypt(&kms, &id, &canary, &[("purpose", "canary")]).await;
    assert_eq!(decrypt(&kms, &blob, &[("purpose", "canary")]).await, canary);
    let dest = create_key(&kms, "canary destination")
        .await
        .key_id()
        .to_string();
    ok(kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob))
        .set_source_encryption_context(Some(context(&[("purpose", "canary")])))
        .destination_key_id(&dest)
        .send()
        .await);
    let data_key = ok(kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await);
    let dk = data_key.plaintext().expect("Plaintext").as_ref().to_vec();
    let dk_blob = data_key
        .ciphertext_blob()
        .expect("CiphertextBlob")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&kms, &dk_blob, &[]).await, dk);
    let random = ok(kms.generate_random().number_of_bytes(32).send().await)
        .plaintext
        .expect("Plaintext")
        .into_inner();
    // A failure whose request carries a plaintext.
    ok(kms.disable_key().key_id(&id).send().await);
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(canary.clone()))
            .send()
            .await,
        "DisabledException",
    );
    wait_for(&server, "DisableKey");
    server.stop();

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("plaintext", canary.clone()),
        (
            "plaintext (base64)",
            aws_smithy_types::base64::encode(&canary).into_bytes(),
        ),
        ("plaintext (hex)", hex::encode(&canary).into_bytes()),
        ("data key", dk.clone()),
        (
            "data key (base64)",
            aws_smithy_types::base64::encode(&dk).into_bytes(),
        ),
        ("data key (hex)", hex::encode(&dk).into_bytes()),
        (
            "random bytes (base64)",
            aws_smithy_types::base64::encode(&random).into_bytes(),
        ),
        ("random bytes (hex)", hex::encode(&random).into_bytes()),
    ];
    let log = std::fs::read(server.audit_log_path()).expect("read the audit log");
    assert!(!log.is_empty());
    assert!(
        String::from_utf8_lossy(&log).contains("GenerateDataKey"),
        "the log has the GenerateDataKey event"
    );
    for (what, secret) in &secrets {
        assert!(
            !contains_bytes(&log, secret),
            "the audit log contains the {what}"
        );
    }
    // Nor anywhere else in the data dir (the store keeps only sealed key material) or in what
    // the server printed.
    for file in files_under(server.data_dir()) {
        let bytes = std::fs::read(&file).expect("read a data dir file");
        for (what, secret) in &secrets {
            assert!(
                !contains_bytes(&bytes, secret),
                "{} contains the {what}",
                file.display()
            );
        }
    }
    let output = server.output();
    for (what, secret) in &secrets {
        assert!(
            !contains_bytes(output.as_bytes(), secret),
            "the server's output contains the {what}"
        );
    }
}

#[tokio::test]
async fn requests_refused_before_authentication_are_audited_too() {
    let server = kms_server();
    // A wrong secret for a real access key, and an access key nobody has.
    let wrong_secret = server.kms_client_as(ACCESS_KEY, "WrongSecretKey00000000000000000000000000");
    assert_kms_error(
        wrong_secret
            .encrypt()
            .key_id("alias/anything")
            .plaintext(Blob::new("refused before it was read"))
            .send()
            .await,
        "InvalidSignatureException",
    );
    let stranger = server.kms_client_as("AKIANOBODYKNOWSTHIS0", "x");
    assert_kms_error(
        stranger.list_keys().send().await,
        "UnrecognizedClientException",
    );

    let bad_signature = server
        .wait_for_audit_event(WAIT, |e| e["errorCode"] == "InvalidSignatureException")
        .unwrap_or_else(|| {
            panic!(
                "no audit event for the bad signature:\n{}",
                server.audit_lines().join("\n")
            )
        });
    assert_eq!(bad_signature["eventName"], "Encrypt");
    // readOnly is a property of the API (as for an authenticated Encrypt), not of the outcome.
    assert_eq!(bad_signature["readOnly"], true);
    assert_eq!(bad_signature["userIdentity"]["type"], "Unknown");
    // The claimed access key is recorded, unverified; the body is not.
    assert_eq!(bad_signature["userIdentity"]["accessKeyId"], ACCESS_KEY);
    assert!(bad_signature["requestParameters"].is_null());
    assert!(
        bad_signature["requestID"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let unknown_key = server
        .wait_for_audit_event(WAIT, |e| e["errorCode"] == "UnrecognizedClientException")
        .unwrap_or_else(|| {
            panic!(
                "no audit event for the unknown key:\n{}",
                server.audit_lines().join("\n")
            )
        });
    assert_eq!(unknown_key["eventName"], "ListKeys");
    assert_eq!(
        unknown_key["userIdentity"]["accessKeyId"],
        "AKIANOBODYKNOWSTHIS0"
    );

    let mut server = server;
    server.stop();
    let (code, output) = verify(&server);
    assert_eq!(code, Some(0), "coffer audit verify failed:\n{output}");
}
