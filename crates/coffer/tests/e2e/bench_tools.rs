//! `coffer bench --quick` and `coffer bench-kms` against a real server: the benchmark's own
//! client (lean SigV4 over HTTP/1.1) must be accepted by the server, every answer it checks must
//! check out, and the run must clean up after itself. Speed is not asserted — it is for the
//! benchmark to report, not for tests to time — but the KMS calls it counts per encryption mode
//! are, and so is the SSE-C mode's handling of the bucket's SSE-C block.

use crate::common;

use common::{ACCESS_KEY, TestServer, create_bucket, run_coffer};

#[tokio::test]
async fn coffer_bench_quick_runs_against_coffer_and_cleans_up() {
    let server = TestServer::start();
    let endpoint = server.endpoint();
    let pid = server.pid().to_string();
    let scratch = tempfile::tempdir().unwrap();
    let out = run_coffer(&[
        "bench",
        "--quick",
        "--endpoint",
        &endpoint,
        "--access-key",
        ACCESS_KEY,
        "--bucket",
        "bench-smoke",
        "--server-pid",
        &pid,
        "--scratch-dir",
        scratch.path().to_str().unwrap(),
        "--sse",
        "default,sse-kms,sse-kms-bucket-key,dsse-kms,sse-c",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "coffer bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "PUT 4 KiB, 32 client(s)",
        "GET 4 KiB, 32 client(s)",
        "PUT 16 MiB, 1 stream",
        "GET 16 MiB, 1 stream",
        "server RSS, peak",
        "MD5, 1 core",
    ] {
        assert!(stdout.contains(line), "no {line:?} line in:\n{stdout}");
    }
    // Each mode ran (every PUT and GET checked its encryption headers: for SSE-C, the customer
    // algorithm and the run's key MD5 echoed, no x-amz-server-side-encryption), and the KMS
    // calls the server counted are what each mode promises: none for SSE-S3, one per object
    // request for SSE-KMS, two for DSSE, next to none under a Bucket Key, none for SSE-C.
    let per_1000: Vec<f64> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("KMS calls per 1,000 objects"))
        .map(|l| {
            l.split_whitespace()
                .nth(5)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no figure in {l:?}"))
        })
        .collect();
    assert_eq!(per_1000.len(), 5, "{stdout}");
    assert_eq!(per_1000[0], 0.0, "{stdout}");
    assert_eq!(per_1000[1], 1000.0, "{stdout}");
    assert!(per_1000[2] < 10.0, "{stdout}");
    assert_eq!(per_1000[3], 2000.0, "{stdout}");
    assert_eq!(per_1000[4], 0.0, "{stdout}");
    assert!(
        stdout.contains("sse-kms-bucket-key: PUT 4 KiB, 32 clients"),
        "the table compares the modes:\n{stdout}"
    );
    // Issue 9's lines: SSE-C against SSE-S3, and its KMS calls (none) judged.
    assert!(
        stdout.contains("targets (issue 9), sse-c as a share of default"),
        "{stdout}"
    );
    for what in [
        "sse-c: PUT 16 MiB, 1 stream",
        "sse-c: GET 16 MiB, 1 stream",
        "sse-c: PUT 4 KiB, 32 clients",
        "sse-c: GET 4 KiB, 32 clients",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(what) && l.contains("target ≥ 90 % (within 10 %)")),
            "no {what:?} target line in:\n{stdout}"
        );
    }
    // With --server-pid, each workload reports the server's CPU time, and SSE-C's is compared.
    assert!(
        stdout.contains("server CPU") && stdout.contains("µs/op"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sse-c: server CPU, GET 4 KiB, 32 clients"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("sse-c: KMS calls")
            && l.split_whitespace().nth(3) == Some("0")
            && l.ends_with(": met")),
        "{stdout}"
    );
    // The bucket the run created is gone again.
    let s3 = server.client();
    let buckets = s3.list_buckets().send().await.unwrap();
    assert!(
        buckets
            .buckets()
            .iter()
            .all(|b| b.name() != Some("bench-smoke")),
        "coffer bench left its bucket behind"
    );
}

/// A bucket that exists before the run is not reconfigured: if it blocks SSE-C (as every new
/// bucket does), `--sse sse-c` stops before measuring anything, saying how to open it.
#[tokio::test]
async fn coffer_bench_sse_c_refuses_an_existing_bucket_that_blocks_it() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "blocked").await;
    let endpoint = server.endpoint();
    let out = run_coffer(&[
        "bench",
        "--quick",
        "--endpoint",
        &endpoint,
        "--access-key",
        ACCESS_KEY,
        "--bucket",
        "blocked",
        "--sse",
        "sse-s3,sse-c",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "coffer bench succeeded:\n{stderr}");
    assert!(
        stderr.contains("blocks SSE-C") && stderr.contains("BlockedEncryptionTypes NONE"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("reference:"),
        "it stopped before measuring: {stderr}"
    );
    // The bucket is still there, still blocking SSE-C, and holds nothing.
    let config = s3
        .get_bucket_encryption()
        .bucket("blocked")
        .send()
        .await
        .unwrap();
    let rule = &config
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.blocked_encryption_types().unwrap().encryption_type(),
        [aws_sdk_s3::types::EncryptionType::SseC]
    );
    let listed = s3.list_objects_v2().bucket("blocked").send().await.unwrap();
    assert!(listed.contents().is_empty());
}

#[tokio::test]
async fn coffer_bench_kms_runs_against_coffer() {
    let server = TestServer::start();
    let endpoint = server.endpoint();
    let out = run_coffer(&[
        "bench-kms",
        "--seconds",
        "1",
        "--endpoint",
        &endpoint,
        "--access-key",
        ACCESS_KEY,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "coffer bench-kms failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for op in ["GenerateDataKey", "Decrypt"] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.contains(op) && l.contains("req/s"))
                .count(),
            2,
            "expected {op} at 1 and 64 clients in:\n{stdout}"
        );
    }
    // The key it created is scheduled for deletion, as the run promises.
    let kms = server.kms_client();
    let keys = kms.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "bench-kms creates exactly one key");
    for key in keys.keys() {
        let meta = kms
            .describe_key()
            .key_id(key.key_id().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            meta.key_metadata().unwrap().key_state(),
            Some(&aws_sdk_kms::types::KeyState::PendingDeletion)
        );
    }
}
