//! `aws-chunked` uploads end to end: the SDK's unsigned streaming body with a trailing checksum
//! (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`), and hand-made signed-chunk bodies
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD` and its signed-trailer variant): round trips, trailing
//! checksums verified (BadDigest) and every chunk signature checked (SignatureDoesNotMatch).

use crate::common;

use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use common::checksum::{crc32_b64, crc32c_b64, crc64nvme_b64, sha256_b64};
use common::raw_http::{RawResponse, request};
use common::sigv4::{Signed, Signer, unsigned_chunked_body};
use common::{TestServer, assert_s3_status, create_bucket, get, ok, pattern, quoted_md5};

async fn setup() -> (TestServer, aws_sdk_s3::Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    (server, s3)
}

#[tokio::test]
async fn streaming_put_with_trailing_checksums_round_trips() {
    let (_server, s3) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (ChecksumAlgorithm::Crc32, 3 * (1 << 20) + 5),
        (ChecksumAlgorithm::Crc32C, 1 << 20),
        (ChecksumAlgorithm::Crc64Nvme, 200_001),
        (ChecksumAlgorithm::Sha256, 65_537),
    ];
    for (i, (algorithm, size)) in cases.into_iter().enumerate() {
        let data = pattern(size, i as u64);
        let path = dir.path().join(format!("upload-{i}"));
        std::fs::write(&path, &data).unwrap();
        let key = format!("streamed-{}", algorithm.as_str());
        // A body from a file is streamed: the SDK sends it aws-chunked with the checksum in a
        // trailer instead of a header.
        let out = ok(s3
            .put_object()
            .bucket("bkt")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from_path(&path).await.unwrap())
            .send()
            .await);
        assert_eq!(
            out.e_tag(),
            Some(quoted_md5(&data).as_str()),
            "ETag of {key}"
        );

        let get = ok(s3
            .get_object()
            .bucket("bkt")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await);
        let (returned, expected) = match algorithm {
            ChecksumAlgorithm::Crc32 => (get.checksum_crc32(), crc32_b64(&data)),
            ChecksumAlgorithm::Crc32C => (get.checksum_crc32_c(), crc32c_b64(&data)),
            ChecksumAlgorithm::Crc64Nvme => (get.checksum_crc64_nvme(), crc64nvme_b64(&data)),
            ChecksumAlgorithm::Sha256 => (get.checksum_sha256(), sha256_b64(&data)),
            _ => unreachable!(),
        };
        assert_eq!(
            returned,
            Some(expected.as_str()),
            "stored trailer checksum of {key}"
        );
        let bytes = ok(get.body.collect().await).into_bytes();
        assert!(bytes[..] == data[..], "{key} came back different");
    }
}

#[tokio::test]
async fn streaming_upload_part_with_a_trailing_checksum_round_trips() {
    let (_server, s3) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(300_000, 5);
    let path = dir.path().join("part");
    std::fs::write(&path, &data).unwrap();
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .send()
        .await);
    let id = upload.upload_id().unwrap();
    let part = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await);
    assert_eq!(part.e_tag(), Some(quoted_md5(&data).as_str()));
    ok(s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert!(get(&s3, "bkt", "mp").await == data);
}

/// Sends a hand-made aws-chunked PUT to `/bkt/<key>`, signed with `content_sha256` as the
/// payload hash; `frame` builds the body from the seed signature.
fn chunked_put(
    server: &TestServer,
    key: &str,
    content_sha256: &str,
    decoded_length: usize,
    trailer_name: Option<&str>,
    frame: impl FnOnce(&Signed) -> Vec<u8>,
) -> RawResponse {
    let path = format!("/bkt/{key}");
    let mut headers = vec![
        ("host".to_string(), server.addr().to_string()),
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        (
            "x-amz-decoded-content-length".to_string(),
            decoded_length.to_string(),
        ),
    ];
    if let Some(name) = trailer_name {
        headers.push(("x-amz-trailer".to_string(), name.to_string()));
    }
    let seed = Signer::root().sign(
        "PUT",
        &path,
        &[],
        &mut headers,
        content_sha256,
        SystemTime::now(),
    );
    let body = frame(&seed);
    request(server.addr(), "PUT", &path, &headers, &body)
}

#[tokio::test]
async fn unsigned_chunked_upload_with_a_crc32_trailer_round_trips() {
    let (server, s3) = setup().await;
    let data = pattern(150_000, 1);
    let (a, b) = data.split_at(65_536);
    let response = chunked_put(
        &server,
        "k",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        data.len(),
        Some("x-amz-checksum-crc32"),
        |_| unsigned_chunked_body(&[a, b], ("x-amz-checksum-crc32", &crc32_b64(&data))),
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.header("etag"), Some(quoted_md5(&data).as_str()));
    let get = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    assert_eq!(get.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    // `aws-chunked` framed the request; it is not how the object is encoded (S3 drops it).
    assert_eq!(get.content_encoding(), None);
    assert!(ok(get.body.collect().await).into_bytes()[..] == data[..]);
}

#[tokio::test]
async fn a_content_encoding_sent_with_aws_chunked_is_stored_without_it() {
    let (server, s3) = setup().await;
    let data = pattern(1_000, 3);
    let path = "/bkt/gz";
    let mut headers = vec![
        ("host".to_string(), server.addr().to_string()),
        (
            "content-encoding".to_string(),
            "aws-chunked,gzip".to_string(),
        ),
        (
            "x-amz-decoded-content-length".to_string(),
            data.len().to_string(),
        ),
        (
            "x-amz-trailer".to_string(),
            "x-amz-checksum-crc32".to_string(),
        ),
    ];
    Signer::root().sign(
        "PUT",
        path,
        &[],
        &mut headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        SystemTime::now(),
    );
    let body = unsigned_chunked_body(&[&data], ("x-amz-checksum-crc32", &crc32_b64(&data)));
    let response = request(server.addr(), "PUT", path, &headers, &body);
    assert_eq!(response.status, 200, "{}", response.body_text());
    let head = ok(s3.head_object().bucket("bkt").key("gz").send().await);
    assert_eq!(head.content_encoding(), Some("gzip"));
}

#[tokio::test]
async fn unsigned_chunked_upload_with_a_wrong_trailer_is_bad_digest() {
    let (server, s3) = setup().await;
    let data = pattern(100_000, 2);
    let response = chunked_put(
        &server,
        "k",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        data.len(),
        Some("x-amz-checksum-crc32"),
        |_| unsigned_chunked_body(&[&data], ("x-amz-checksum-crc32", "AAAAAA==")),
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert_eq!(response.xml_element("Code").as_deref(), Some("BadDigest"));
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}

#[tokio::test]
async fn signed_chunked_upload_round_trips() {
    let (server, s3) = setup().await;
    let data = pattern(65_536 * 2 + 1000, 3);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let response = chunked_put(
        &server,
        "signed",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        data.len(),
        None,
        |seed| seed.signed_chunked_body(&chunks, None),
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.header("etag"), Some(quoted_md5(&data).as_str()));
    assert!(
        get(&s3, "bkt", "signed").await == data,
        "signed-chunk upload differs"
    );
}

#[tokio::test]
async fn signed_chunked_upload_with_a_tampered_chunk_is_signature_does_not_match() {
    let (server, s3) = setup().await;
    let data = pattern(65_536 + 500, 4);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let response = chunked_put(
        &server,
        "tampered",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        data.len(),
        None,
        |seed| {
            let mut body = seed.signed_chunked_body(&chunks, None);
            // Flip one data byte inside the second chunk; its signature no longer matches.
            let at = body.len() - 200;
            body[at] ^= 0x01;
            body
        },
    );
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert_s3_status(
        s3.head_object().bucket("bkt").key("tampered").send().await,
        404,
    );
}

#[tokio::test]
async fn signed_chunked_upload_with_a_signed_crc32_trailer_round_trips() {
    let (server, s3) = setup().await;
    let data = pattern(65_536 + 4321, 5);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let crc = crc32_b64(&data);
    let response = chunked_put(
        &server,
        "trailer",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        data.len(),
        Some("x-amz-checksum-crc32"),
        |seed| seed.signed_chunked_body(&chunks, Some(("x-amz-checksum-crc32", &crc))),
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    let get = ok(s3
        .get_object()
        .bucket("bkt")
        .key("trailer")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    assert_eq!(get.checksum_crc32(), Some(crc.as_str()));
    assert!(ok(get.body.collect().await).into_bytes()[..] == data[..]);
}

#[tokio::test]
async fn signed_trailer_with_a_wrong_checksum_is_bad_digest() {
    let (server, s3) = setup().await;
    let data = pattern(70_000, 6);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let response = chunked_put(
        &server,
        "k",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        data.len(),
        Some("x-amz-checksum-crc32"),
        |seed| seed.signed_chunked_body(&chunks, Some(("x-amz-checksum-crc32", "AAAAAA=="))),
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert_eq!(response.xml_element("Code").as_deref(), Some("BadDigest"));
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}

#[tokio::test]
async fn signed_trailer_with_a_bad_trailer_signature_is_signature_does_not_match() {
    let (server, s3) = setup().await;
    let data = pattern(70_000, 7);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let crc = crc32_b64(&data);
    let response = chunked_put(
        &server,
        "k",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        data.len(),
        Some("x-amz-checksum-crc32"),
        |seed| {
            let body = seed.signed_chunked_body(&chunks, Some(("x-amz-checksum-crc32", &crc)));
            let text = String::from_utf8_lossy(&body[body.len() - 200..]).into_owned();
            let at =
                text.find("x-amz-trailer-signature:").unwrap() + "x-amz-trailer-signature:".len();
            let mut body = body;
            let pos = body.len() - 200 + at;
            body[pos] = if body[pos] == b'0' { b'1' } else { b'0' };
            body
        },
    );
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}
