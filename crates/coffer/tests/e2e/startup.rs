//! What `coffer serve` refuses at start, before it writes anything: a data dir whose root key,
//! metadata database or SSE-S3 key ring is missing (regenerating any of them would make every
//! existing object unreadable, or sweep its blobs away), and secrets given as flags.

use crate::common;

use std::process::Output;

use common::{TestServer, get, pattern, put, run_coffer, serve_expecting_refusal};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Regression: with root.key gone, coffer wrote a new root key and only then failed on the key
/// ring — so the operator's restored key then had to overwrite a fresh one.
#[tokio::test]
async fn a_missing_root_key_is_refused_and_not_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let body = pattern(100_000, 7);
    {
        let mut server = TestServer::start_in(dir.path());
        let s3 = server.client();
        common::create_bucket(&s3, "keep").await;
        put(&s3, "keep", "k", &body).await;
        server.stop();
    }
    let key = dir.path().join("root.key");
    let saved = dir.path().join("root.key.backup");
    std::fs::rename(&key, &saved).unwrap();
    let before = common::files_under(dir.path());

    let out = serve_expecting_refusal(dir.path(), &[]);
    let err = stderr(&out);
    assert!(err.contains("root key") && err.contains("Restore"), "{err}");
    assert!(!key.exists(), "a new root key was written");
    assert_eq!(
        common::files_under(dir.path()),
        before,
        "the refusal wrote files"
    );

    std::fs::rename(&saved, &key).unwrap();
    let server = TestServer::start_in(dir.path());
    assert_eq!(get(&server.client(), "keep", "k").await, body);
}

/// Without meta.redb, the startup sweep would have deleted every blob as an orphan.
#[tokio::test]
async fn blobs_without_their_metadata_database_are_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut server = TestServer::start_in(dir.path());
        let s3 = server.client();
        common::create_bucket(&s3, "bkt").await;
        put(&s3, "bkt", "big", &pattern(300_000, 1)).await;
        server.stop();
    }
    let blobs_before = common::files_under(&dir.path().join("blobs"));
    assert!(!blobs_before.is_empty());
    std::fs::rename(
        dir.path().join("meta.redb"),
        dir.path().join("meta.redb.moved"),
    )
    .unwrap();

    let err = stderr(&serve_expecting_refusal(dir.path(), &[]));
    assert!(
        err.contains("meta.redb") && err.contains("Restore"),
        "{err}"
    );
    assert!(!dir.path().join("meta.redb").exists());
    assert_eq!(common::files_under(&dir.path().join("blobs")), blobs_before);
}

/// Regression: a key ring missing from a database with objects was silently recreated.
#[tokio::test]
async fn a_missing_key_ring_is_refused_and_not_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut server = TestServer::start_in(dir.path());
        let s3 = server.client();
        common::create_bucket(&s3, "bkt").await;
        put(&s3, "bkt", "k", b"hello").await;
        server.stop();
    }
    const SYSTEM: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("system");
    {
        let db = redb::Database::open(dir.path().join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(
            txn.open_table(SYSTEM)
                .unwrap()
                .remove("sse-s3-keyring")
                .unwrap()
                .is_some(),
            "the key ring record was where docs/format.md says"
        );
        txn.commit().unwrap();
    }
    let err = stderr(&serve_expecting_refusal(dir.path(), &[]));
    assert!(err.contains("key ring is missing"), "{err}");
    let db = redb::Database::open(dir.path().join("meta.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(
        txn.open_table(SYSTEM)
            .unwrap()
            .get("sse-s3-keyring")
            .unwrap()
            .is_none(),
        "a new key ring was written"
    );
}

#[test]
fn secrets_given_as_flags_are_refused_with_the_way_to_pass_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_expecting_refusal(dir.path(), &["--root-secret-key", "NotASecretAnyMore0"]);
    let err = stderr(&out);
    assert!(err.contains("COFFER_ROOT_SECRET_KEY"), "{err}");
    assert!(!err.contains("NotASecretAnyMore0"), "{err}");
    assert!(
        !dir.path().join("root.key").exists(),
        "refused before writing anything"
    );

    for command in ["bench", "bench-kms"] {
        let out = run_coffer(&[
            command,
            "--endpoint",
            "http://127.0.0.1:9",
            "--secret-key",
            "NotASecretAnyMore0",
        ]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{command}: {err}");
    }
}
