//! Data written by earlier releases stays readable: each fixture under
//! `crates/coffer/tests/fixtures/` is a data dir packed by `make-release-fixture.sh` with a past
//! release's binary. These tests start today's server on a copy of it and read back everything
//! that release wrote — objects of every layout with their headers and metadata, an upload in
//! progress, a user, a KMS key and ciphertext — and check that what today's server writes next
//! to it reads back too, across a restart.

use crate::common;

use std::path::{Path, PathBuf};

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use common::{TestServer, get, ok, put};

/// The release of November 2026 (record format v1, audit log v1, users v1).
const RELEASE_2026_11: &str = "release-2026-11.tar.gz";

/// Unpacks a fixture into a fresh temp dir; returns (the dir, the data dir, fixture.json).
fn unpack(name: &str) -> (tempfile::TempDir, PathBuf, serde_json::Value) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("run tar");
    assert!(status.success(), "unpacking {}", archive.display());
    let root = dir.path().join("fixture");
    let info = serde_json::from_slice(&std::fs::read(root.join("fixture.json")).unwrap()).unwrap();
    (dir, root.join("data"), info)
}

/// Byte i of a fixture object of seed s (as make-release-fixture.sh generates them).
fn generated(len: u64, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

fn object_sizes(info: &serde_json::Value) -> Vec<(String, Vec<u8>)> {
    info["objects"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, v)| {
            let (len, seed) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
            (key.clone(), generated(len, seed))
        })
        .collect()
}

#[tokio::test]
async fn objects_uploads_users_and_keys_of_the_november_release_stay_readable() {
    let (_dir, data, info) = unpack(RELEASE_2026_11);
    let mut server = TestServer::start_in(&data);
    let s3 = server.client();

    for (key, body) in object_sizes(&info) {
        assert_eq!(get(&s3, "fixture", &key).await, body, "{key}");
    }
    let head = ok(s3
        .head_object()
        .bucket("fixture")
        .key("small.txt")
        .send()
        .await);
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    assert_eq!(
        head.e_tag(),
        Some(common::quoted_md5(&generated(5000, 1)).as_str())
    );
    let multi = ok(s3
        .head_object()
        .bucket("fixture")
        .key("multi.bin")
        .send()
        .await);
    assert_eq!(
        multi.metadata().unwrap().get("origin").map(String::as_str),
        Some("multipart")
    );
    let ranged = common::get_range(&s3, "fixture", "large.bin", "bytes=65530-65545").await;
    assert_eq!(ranged.0, generated(204800, 2)[65530..=65545]);

    // The upload the release left in progress completes today.
    let pending = &info["pending_upload"];
    let upload_id = pending["upload_id"].as_str().unwrap();
    let etag = format!("\"{}\"", pending["etag"].as_str().unwrap());
    ok(s3
        .complete_multipart_upload()
        .bucket("fixture")
        .key("pending.bin")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await);
    assert_eq!(get(&s3, "fixture", "pending.bin").await, generated(6000, 5));

    // The release's user keeps the full access every user had then.
    let user = &info["legacy_user"];
    let legacy = server.client_as(
        user["access_key"].as_str().unwrap(),
        user["secret_key"].as_str().unwrap(),
    );
    assert_eq!(
        get(&legacy, "fixture", "large.bin").await,
        generated(204800, 2)
    );
    put(
        &legacy,
        "fixture",
        "by-legacy",
        b"written by the legacy user",
    )
    .await;

    // The KMS key, its alias and a ciphertext of the release.
    let kms = server.kms_client();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(info["kms"]["ciphertext"].as_str().unwrap())
        .unwrap();
    let plain = ok(kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
        .encryption_context("purpose", "fixture")
        .send()
        .await);
    assert_eq!(
        plain.plaintext().unwrap().as_ref(),
        info["kms"]["plaintext"].as_str().unwrap().as_bytes()
    );

    // What today's server writes beside the old records reads back after a restart.
    put(&s3, "fixture", "new.bin", &generated(100_000, 9)).await;
    server.restart();
    let s3 = server.client();
    for (key, body) in object_sizes(&info) {
        assert_eq!(get(&s3, "fixture", &key).await, body, "{key} after restart");
    }
    assert_eq!(get(&s3, "fixture", "new.bin").await, generated(100_000, 9));
    assert_eq!(
        get(&s3, "fixture", "by-legacy").await,
        b"written by the legacy user"
    );
}
