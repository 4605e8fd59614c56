//! SSE-S3 end to end: every write and read response says AES256, explicit AES256 is accepted,
//! unknown values are InvalidArgument, SSE-KMS/DSSE-KMS/SSE-C are NotImplemented (and write
//! nothing), no plaintext reaches the disk, a flipped bit makes GET fail with a log line naming
//! the object, and service-key rotation keeps old objects readable.

use crate::common;

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use coffer_store::MetaStore;
use common::{
    TestServer, assert_s3_error, assert_s3_status, bytes_under, contains_bytes, create_bucket,
    files_under, get, ok, pattern, put, run_coffer, s3_failure,
};

fn aes256() -> Option<&'static ServerSideEncryption> {
    Some(&ServerSideEncryption::Aes256)
}

async fn setup() -> (TestServer, Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    (server, s3)
}

#[tokio::test]
async fn every_write_and_read_response_says_aes256() {
    let (_server, s3) = setup().await;
    let out = ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    assert_eq!(out.server_side_encryption(), aes256(), "PutObject");
    let out = ok(s3.get_object().bucket("bkt").key("k").send().await);
    assert_eq!(out.server_side_encryption(), aes256(), "GetObject");
    let out = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(out.server_side_encryption(), aes256(), "HeadObject");
    let out = ok(s3
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/k")
        .send()
        .await);
    assert_eq!(out.server_side_encryption(), aes256(), "CopyObject");
    let out = ok(s3.get_object().bucket("bkt").key("copy").send().await);
    assert_eq!(
        out.server_side_encryption(),
        aes256(),
        "GetObject of a copy"
    );

    let create = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .send()
        .await);
    assert_eq!(
        create.server_side_encryption(),
        aes256(),
        "CreateMultipartUpload"
    );
    let id = create.upload_id().unwrap();
    let part1 = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(pattern(5 << 20, 1)))
        .send()
        .await);
    assert_eq!(part1.server_side_encryption(), aes256(), "UploadPart");
    let part2 = ok(s3
        .upload_part_copy()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(2)
        .copy_source("bkt/k")
        .send()
        .await);
    assert_eq!(part2.server_side_encryption(), aes256(), "UploadPartCopy");
    let done = ok(s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part1.e_tag().unwrap())
                        .build(),
                )
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(part2.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(
        done.server_side_encryption(),
        aes256(),
        "CompleteMultipartUpload"
    );
    let out = ok(s3.head_object().bucket("bkt").key("mp").send().await);
    assert_eq!(
        out.server_side_encryption(),
        aes256(),
        "HeadObject of a multipart object"
    );
}

#[tokio::test]
async fn an_explicit_aes256_request_is_accepted() {
    let (_server, s3) = setup().await;
    let out = ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    assert_eq!(out.server_side_encryption(), aes256());
    let create = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await);
    assert_eq!(create.server_side_encryption(), aes256());
    let copy = ok(s3
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await);
    assert_eq!(copy.server_side_encryption(), aes256());
    assert_eq!(get(&s3, "bkt", "copy").await, b"data");
}

#[tokio::test]
async fn copy_onto_itself_asking_for_aes256_is_allowed() {
    // Naming the encryption counts as a change, so S3 allows an in-place copy with it.
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "k", b"data").await;
    ok(s3
        .copy_object()
        .bucket("bkt")
        .key("k")
        .copy_source("bkt/k")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "k").await, b"data");
}

#[tokio::test]
async fn an_unknown_sse_value_is_invalid_argument() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .server_side_encryption(ServerSideEncryption::from("AES512"))
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("bkt")
            .key("k")
            .server_side_encryption(ServerSideEncryption::from("rot13"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}

#[tokio::test]
async fn sse_headers_where_s3_refuses_them_are_invalid_argument() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "k", b"data").await;
    assert_s3_error(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .customize()
            .mutate_request(|r| {
                r.headers_mut()
                    .insert("x-amz-server-side-encryption", "AES256");
            })
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    assert_s3_status(
        s3.head_object()
            .bucket("bkt")
            .key("k")
            .customize()
            .mutate_request(|r| {
                r.headers_mut()
                    .insert("x-amz-server-side-encryption", "AES256");
            })
            .send()
            .await,
        400,
    );
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .send()
        .await);
    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("mp")
            .upload_id(upload.upload_id().unwrap())
            .part_number(1)
            .body(ByteStream::from_static(b"part"))
            .customize()
            .mutate_request(|r| {
                r.headers_mut()
                    .insert("x-amz-server-side-encryption", "AES256");
            })
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    // An encryption context belongs to SSE-KMS only.
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("ctx")
            .ssekms_encryption_context("eyJhIjoiYiJ9")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("ctx").send().await, 404);
}

#[tokio::test]
async fn object_lock_and_unknown_storage_classes_are_refused_not_ignored() {
    use aws_sdk_s3::types::{ObjectLockMode, StorageClass};
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("locked")
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                4_000_000_000,
            ))
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("bogus")
            .storage_class(StorageClass::from("BOGUS"))
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "InvalidStorageClass",
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("bkt")
            .key("bogus")
            .storage_class(StorageClass::from("BOGUS"))
            .send()
            .await,
        400,
        "InvalidStorageClass",
    );
    for key in ["locked", "bogus"] {
        assert_s3_status(s3.head_object().bucket("bkt").key(key).send().await, 404);
    }
    // A class S3 knows is accepted (every object is stored alike).
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("ia")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "ia").await, b"data");
}

/// A distinctive line, repeated to fill an object: any stored plaintext contains it whole.
const CANARY: &[u8] = b"COFFER-PLAINTEXT-CANARY:7f3a9c1e-only-ciphertext-may-reach-the-disk\n";

fn canary_body(len: usize, tag: u8) -> Vec<u8> {
    let mut line = CANARY.to_vec();
    line[0] = tag;
    line.iter().copied().cycle().take(len).collect()
}

/// Files under the data dir that contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| contains_bytes(&std::fs::read(p).unwrap_or_default(), needle))
        .collect()
}

#[tokio::test]
async fn no_plaintext_of_object_data_reaches_the_disk() {
    let (mut server, s3) = setup().await;
    let single = canary_body(1 << 20, b'S');
    put(&s3, "bkt", "single", &single).await;
    // Small objects are stored inline in the metadata database: sealed there too.
    put(&s3, "bkt", "tiny", &canary_body(3000, b'T')).await;
    let parts = [canary_body(5 << 20, b'M'), canary_body(300_000, b'M')];
    common::put_multipart(&s3, "bkt", "multi", &[&parts[0], &parts[1]]).await;
    ok(s3
        .copy_object()
        .bucket("bkt")
        .key("copied")
        .copy_source("bkt/single")
        .send()
        .await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamed");
    std::fs::write(&path, canary_body(700_000, b'C')).unwrap();
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("streamed")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await);
    assert!(
        get(&s3, "bkt", "single").await == single,
        "object must still read back"
    );

    server.kill();
    let data_dir = server.data_dir().to_path_buf();
    let stored = bytes_under(&data_dir.join("blobs"));
    assert!(
        stored >= (1 << 20) + (5 << 20),
        "only {stored} bytes under blobs/: where is the object data?"
    );
    for tag in [b'S', b'T', b'M', b'C'] {
        let mut needle = CANARY.to_vec();
        needle[0] = tag;
        let found = files_containing(&data_dir, &needle);
        assert!(
            found.is_empty(),
            "plaintext of object {} found in {found:?}",
            tag as char
        );
    }
}

#[tokio::test]
async fn user_metadata_values_are_not_stored_in_plaintext() {
    // DESIGN §4: x-amz-meta-* values are encrypted at rest.
    let (mut server, s3) = setup().await;
    let value = "metadata-canary-5d2e8b71-never-on-disk-in-clear";
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .metadata("secret", value)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await);
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("secret"))
            .map(String::as_str),
        Some(value)
    );
    server.kill();
    let found = files_containing(server.data_dir(), value.as_bytes());
    assert!(found.is_empty(), "metadata plaintext found in {found:?}");
}

/// Flips one byte at `offset(len)` of every file under `<data-dir>/blobs/`.
fn flip_blob_bytes(server: &TestServer, offset: impl Fn(usize) -> usize) {
    let blobs = files_under(&server.data_dir().join("blobs"));
    assert!(
        !blobs.is_empty(),
        "no blob files under {:?}",
        server.data_dir().join("blobs")
    );
    for path in blobs {
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.is_empty() {
            continue;
        }
        let at = offset(bytes.len()).min(bytes.len() - 1);
        bytes[at] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();
    }
}

#[tokio::test]
async fn a_flipped_bit_in_a_blob_makes_get_fail_and_names_the_object_in_the_log() {
    let (server, s3) = setup().await;
    let key = "bitflip-victim-two-segments.bin";
    // Over one segment, so it is stored in a blob file rather than inline.
    let data = pattern(70_000, 1);
    put(&s3, "bkt", key, &data).await;
    flip_blob_bytes(&server, |len| len / 2);

    match s3.get_object().bucket("bkt").key(key).send().await {
        Ok(out) => {
            // Headers may already be out when the damage is found; the body must then fail.
            let body = out.body.collect().await;
            panic!(
                "GET of a corrupted one-segment object answered with a success status \
                 (body read: {})",
                match body.map(|b| b.into_bytes()) {
                    Ok(b) if b[..] == data[..] => "the original bytes".to_string(),
                    Ok(b) => format!("{} altered bytes", b.len()),
                    Err(e) => format!("failed: {e}"),
                }
            );
        }
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            assert!(
                matches!(status, Some(s) if s >= 500),
                "expected a server error status, got {status:?}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&err)
            );
        }
    }
    assert!(
        server.wait_for_stderr(key, Duration::from_secs(5)),
        "no stderr line names {key}\n{}",
        server.output()
    );
}

#[tokio::test]
async fn a_flipped_bit_in_an_inline_object_makes_get_fail_and_names_the_object_in_the_log() {
    let (mut server, s3) = setup().await;
    let key = "bitflip-victim-inline.txt";
    let data = pattern(1000, 3);
    put(&s3, "bkt", key, &data).await;
    assert!(
        files_under(&server.data_dir().join("blobs")).is_empty(),
        "a 1000-byte object should be stored inline, not in a blob file"
    );
    // Alter one bit of the sealed bytes where they are stored: the metadata database.
    server.stop();
    {
        let meta = MetaStore::open(&server.data_dir().join("meta.redb")).unwrap();
        let (rec, sealed) = meta.get_object_with_inline("bkt", key).unwrap().unwrap();
        let mut sealed = sealed.expect("the object's sealed bytes are inline");
        assert_eq!(
            sealed.len(),
            data.len() + 16,
            "one sealed segment and its tag"
        );
        sealed[500] ^= 0x04;
        meta.put_object_inline("bkt", key, &rec, Some(sealed), |_| Ok(()))
            .unwrap();
    }
    server.restart();
    let s3 = server.client();
    let err = s3
        .get_object()
        .bucket("bkt")
        .key(key)
        .send()
        .await
        .expect_err("GET of an altered inline object must fail");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(
        status,
        Some(500),
        "{}",
        aws_sdk_s3::error::DisplayErrorContext(&err)
    );
    assert!(
        server.wait_for_stderr(key, Duration::from_secs(5)),
        "no stderr line names {key}\n{}",
        server.output()
    );
    // The headers are intact: HEAD still answers, as in S3 for an unreadable body.
    let head = ok(s3.head_object().bucket("bkt").key(key).send().await);
    assert_eq!(head.content_length(), Some(1000));
}

#[tokio::test]
async fn inline_data_follows_its_objects_through_copy_multipart_and_delete() {
    let (mut server, s3) = setup().await;
    for key in [
        "self-copied",
        "replaced-by-multipart",
        "deleted",
        "copy-source",
    ] {
        put(&s3, "bkt", key, key.as_bytes()).await;
    }
    ok(s3
        .copy_object()
        .bucket("bkt")
        .key("self-copied")
        .copy_source("bkt/self-copied")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .send()
        .await);
    common::put_multipart(&s3, "bkt", "replaced-by-multipart", &[b"one small part"]).await;
    ok(s3
        .delete_objects()
        .bucket("bkt")
        .delete(common::delete_request(&["deleted"], false))
        .send()
        .await);
    ok(s3
        .copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/copy-source")
        .send()
        .await);
    for (key, body) in [
        ("self-copied", "self-copied"),
        ("copy-source", "copy-source"),
        ("copy", "copy-source"),
    ] {
        assert_eq!(get(&s3, "bkt", key).await, body.as_bytes(), "{key}");
    }
    assert_eq!(
        get(&s3, "bkt", "replaced-by-multipart").await,
        b"one small part"
    );

    // Exactly the live inline objects have inline data: nothing leaked, nothing dangles.
    server.stop();
    let meta = MetaStore::open(&server.data_dir().join("meta.redb")).unwrap();
    let mut live: Vec<String> = ["self-copied", "copy-source", "copy"]
        .iter()
        .map(|key| {
            let (rec, sealed) = meta.get_object_with_inline("bkt", key).unwrap().unwrap();
            assert!(sealed.is_some(), "{key} is inline");
            rec.parts[0].blob_id.clone()
        })
        .collect();
    live.sort();
    assert_eq!(meta.inline_blob_ids().unwrap(), live);
}

#[tokio::test]
async fn a_flipped_bit_in_a_later_segment_never_yields_the_whole_body() {
    let (server, s3) = setup().await;
    let key = "bitflip-victim-large.bin";
    let data = pattern(200_000, 2);
    put(&s3, "bkt", key, &data).await;
    flip_blob_bytes(&server, |len| len - 100);

    if let Ok(out) = s3.get_object().bucket("bkt").key(key).send().await {
        // Headers may be out before the damaged segment is read; the body must then be cut off.
        if let Ok(bytes) = out.body.collect().await {
            let bytes = bytes.into_bytes();
            panic!(
                "GET of a corrupted object returned a complete body of {} bytes (original: {})",
                bytes.len(),
                bytes[..] == data[..]
            );
        }
    }
    assert!(
        server.wait_for_stderr(key, Duration::from_secs(5)),
        "no stderr line names {key}\n{}",
        server.output()
    );
}

#[tokio::test]
async fn rotating_the_service_key_keeps_old_objects_readable() {
    let dir = tempfile::tempdir().unwrap();
    let first = pattern(150_000, 1);
    let second = pattern(70_000, 2);
    let third = pattern(1000, 3);
    let rotate = || {
        let out = run_coffer(&[
            "rotate-service-key",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "rotate-service-key failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };

    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "first", &first).await;
    common::put_multipart(&s3, "bkt", "first-mp", &[&pattern(5 << 20, 4), b"tail"]).await;
    server.kill();

    rotate();
    let mut server = TestServer::start_in(dir.path());
    let s3 = server.client();
    assert!(
        get(&s3, "bkt", "first").await == first,
        "object from before the rotation"
    );
    put(&s3, "bkt", "second", &second).await;
    assert!(get(&s3, "bkt", "second").await == second);
    server.kill();

    rotate();
    let server = TestServer::start_in(dir.path());
    let s3 = server.client();
    assert!(
        get(&s3, "bkt", "first").await == first,
        "object two rotations old"
    );
    assert!(
        get(&s3, "bkt", "second").await == second,
        "object one rotation old"
    );
    let mp = get(&s3, "bkt", "first-mp").await;
    assert!(mp[..5 << 20] == pattern(5 << 20, 4)[..] && &mp[5 << 20..] == b"tail");
    put(&s3, "bkt", "third", &third).await;
    assert_eq!(get(&s3, "bkt", "third").await, third);
    let failure = s3_failure(s3.get_object().bucket("bkt").key("absent").send().await);
    assert_eq!(failure.status, 404);
}
