//! `coffer bench --quick` and `coffer bench-kms` against a real server: the benchmark's own
//! client (lean SigV4 over HTTP/1.1) must be accepted by the server, every answer it checks must
//! check out, and the run must clean up after itself. The figures themselves are not asserted:
//! speed is for the benchmark to report, not for tests to time.

use crate::common;

use common::{ACCESS_KEY, TestServer, run_coffer};

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
