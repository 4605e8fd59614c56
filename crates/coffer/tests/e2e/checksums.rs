//! Integrity headers end to end: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 checksums sent as
//! headers are verified (BadDigest), stored and returned with `x-amz-checksum-mode: ENABLED`;
//! Content-MD5 is verified (BadDigest, InvalidDigest).

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use common::checksum::crc32_b64;
use common::{TestServer, assert_s3_error, assert_s3_status, create_bucket, md5_base64, ok, put};

const BODY: &[u8] = b"The quick brown fox jumps over the lazy dog";

/// Checksums of `BODY`, computed independently (Python's zlib/hashlib and a reference CRC).
const CRC32: &str = "QU+jOQ==";
const CRC32C: &str = "ImIEBA==";
const CRC64NVME: &str = "12xUBUlUwUM=";
const SHA1: &str = "L9ThxnotKPzthJ7hu3bnORuT6xI=";
const SHA256: &str = "16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5ZI=";

#[derive(Clone, Copy, Debug)]
enum Algo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

const ALL: [(Algo, &str); 5] = [
    (Algo::Crc32, CRC32),
    (Algo::Crc32c, CRC32C),
    (Algo::Crc64Nvme, CRC64NVME),
    (Algo::Sha1, SHA1),
    (Algo::Sha256, SHA256),
];

fn put_with(
    s3: &aws_sdk_s3::Client,
    key: &str,
    algo: Algo,
    value: &str,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let put = s3
        .put_object()
        .bucket("bkt")
        .key(key)
        .body(ByteStream::from_static(BODY));
    match algo {
        Algo::Crc32 => put.checksum_crc32(value),
        Algo::Crc32c => put.checksum_crc32_c(value),
        Algo::Crc64Nvme => put.checksum_crc64_nvme(value),
        Algo::Sha1 => put.checksum_sha1(value),
        Algo::Sha256 => put.checksum_sha256(value),
    }
}

macro_rules! checksum_of {
    ($out:expr, $algo:expr) => {
        match $algo {
            Algo::Crc32 => $out.checksum_crc32(),
            Algo::Crc32c => $out.checksum_crc32_c(),
            Algo::Crc64Nvme => $out.checksum_crc64_nvme(),
            Algo::Sha1 => $out.checksum_sha1(),
            Algo::Sha256 => $out.checksum_sha256(),
        }
    };
}

async fn setup() -> (TestServer, aws_sdk_s3::Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    (server, s3)
}

#[tokio::test]
async fn checksum_headers_are_stored_and_returned_with_checksum_mode_enabled() {
    let (_server, s3) = setup().await;
    for (algo, value) in ALL {
        let key = format!("{algo:?}");
        let out = ok(put_with(&s3, &key, algo, value).send().await);
        assert_eq!(
            checksum_of!(out, algo),
            Some(value),
            "PUT echoes the {algo:?} checksum"
        );

        let get = ok(s3
            .get_object()
            .bucket("bkt")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await);
        assert_eq!(
            checksum_of!(get, algo),
            Some(value),
            "GET returns the {algo:?} checksum"
        );
        assert_eq!(&ok(get.body.collect().await).into_bytes()[..], BODY);

        let head = ok(s3
            .head_object()
            .bucket("bkt")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await);
        assert_eq!(
            checksum_of!(head, algo),
            Some(value),
            "HEAD returns the {algo:?} checksum"
        );
    }
}

#[tokio::test]
async fn a_wrong_checksum_header_is_bad_digest_and_stores_nothing() {
    let (_server, s3) = setup().await;
    for (algo, right) in ALL {
        let key = format!("{algo:?}");
        // A well-formed value of the right length for another body.
        let wrong = if right.len() == 8 {
            "AAAAAA==".to_string()
        } else {
            right.replace(&right[..4], "AAAA")
        };
        let failure = common::s3_failure(put_with(&s3, &key, algo, &wrong).send().await);
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (400, Some("BadDigest")),
            "{algo:?} checksum {wrong}: {failure:?}"
        );
        assert_s3_status(s3.head_object().bucket("bkt").key(&key).send().await, 404);
    }
}

#[tokio::test]
async fn a_wrong_crc32_header_does_not_replace_an_existing_object() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "k", b"original").await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .checksum_crc32("AAAAAA==")
            .body(ByteStream::from_static(BODY))
            .send()
            .await,
        400,
        "BadDigest",
    );
    assert_eq!(common::get(&s3, "bkt", "k").await, b"original");
}

#[tokio::test]
async fn the_sdk_default_crc32_is_stored_and_returned() {
    // aws-sdk-s3 sends `x-amz-checksum-crc32` on every PutObject by default.
    let (_server, s3) = setup().await;
    let body = common::pattern(300_000, 3);
    put(&s3, "bkt", "k", &body).await;
    let get = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    assert_eq!(get.checksum_crc32(), Some(crc32_b64(&body).as_str()));
}

#[tokio::test]
async fn a_correct_content_md5_is_accepted() {
    let (_server, s3) = setup().await;
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .content_md5(md5_base64(BODY))
        .body(ByteStream::from_static(BODY))
        .send()
        .await);
    assert_eq!(common::get(&s3, "bkt", "k").await, BODY);
}

#[tokio::test]
async fn a_wrong_content_md5_is_bad_digest() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .content_md5(md5_base64(b"some other body"))
            .body(ByteStream::from_static(BODY))
            .send()
            .await,
        400,
        "BadDigest",
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}

#[tokio::test]
async fn a_malformed_content_md5_is_invalid_digest() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .content_md5("not-an-md5")
            .body(ByteStream::from_static(BODY))
            .send()
            .await,
        400,
        "InvalidDigest",
    );
}

#[tokio::test]
async fn a_wrong_content_md5_on_upload_part_is_bad_digest() {
    let (_server, s3) = setup().await;
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await);
    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(upload.upload_id().unwrap())
            .part_number(1)
            .content_md5(md5_base64(b"some other body"))
            .body(ByteStream::from_static(BODY))
            .send()
            .await,
        400,
        "BadDigest",
    );
}
