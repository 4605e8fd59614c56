//! Integrity headers end to end: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 checksums sent as
//! headers are verified (BadDigest), stored and returned with `x-amz-checksum-mode: ENABLED`;
//! Content-MD5 is verified (BadDigest, InvalidDigest) — on object data and on the XML bodies of
//! DeleteObjects, CompleteMultipartUpload and CreateBucket.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use common::checksum::crc32_b64;
use common::raw_http::{RawResponse, request};
use common::sigv4::{Signer, sha256_hex};
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

/// A hand-signed request with a body and extra headers (`query` as decoded pairs).
fn signed(
    server: &TestServer,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    extra: &[(&str, String)],
    body: &[u8],
) -> RawResponse {
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Signer::root().sign(
        method,
        path,
        query,
        &mut headers,
        &sha256_hex(body),
        std::time::SystemTime::now(),
    );
    let target = if query.is_empty() {
        path.to_string()
    } else {
        let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{path}?{}", pairs.join("&"))
    };
    request(server.addr(), method, &target, &headers, body)
}

#[tokio::test]
async fn digests_of_xml_request_bodies_are_checked() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "keep", b"still here").await;
    let delete = b"<Delete><Object><Key>keep</Key></Object></Delete>";

    // DeleteObjects whose Content-MD5 or CRC32 is not the body's: refused, nothing deleted.
    for wrong in [
        ("content-md5", md5_base64(b"another body")),
        ("x-amz-checksum-crc32", crc32_b64(b"another body")),
    ] {
        let r = signed(&server, "POST", "/bkt", &[("delete", "")], &[wrong], delete);
        assert_eq!(r.status, 400, "{}", r.body_text());
        assert_eq!(r.xml_element("Code").as_deref(), Some("BadDigest"));
        assert_eq!(common::get(&s3, "bkt", "keep").await, b"still here");
    }

    // CompleteMultipartUpload with a wrong Content-MD5: refused, the upload stays open.
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .send()
        .await);
    let upload_id = upload.upload_id().unwrap().to_string();
    let part = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("mp")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"only part"))
        .send()
        .await);
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        part.e_tag().unwrap()
    );
    let wrong = [("content-md5", md5_base64(b"not the body"))];
    let query = [("uploadId", upload_id.as_str())];
    let r = signed(
        &server,
        "POST",
        "/bkt/mp",
        &query,
        &wrong,
        complete.as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.xml_element("Code").as_deref(), Some("BadDigest"));
    let parts = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("mp")
        .upload_id(&upload_id)
        .send()
        .await);
    assert_eq!(parts.parts().len(), 1, "the upload is still open");

    // With the right digests both go through.
    let right = [("content-md5", md5_base64(complete.as_bytes()))];
    let r = signed(
        &server,
        "POST",
        "/bkt/mp",
        &query,
        &right,
        complete.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(common::get(&s3, "bkt", "mp").await, b"only part");
    let right = [("x-amz-checksum-crc32", crc32_b64(delete))];
    let r = signed(&server, "POST", "/bkt", &[("delete", "")], &right, delete);
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_s3_status(s3.head_object().bucket("bkt").key("keep").send().await, 404);
    // aws-sdk-s3 sends its own checksum with DeleteObjects; it must verify.
    ok(s3
        .delete_objects()
        .bucket("bkt")
        .delete(common::delete_request(&["mp"], false))
        .send()
        .await);

    // CreateBucket's configuration body is checked too.
    let config = b"<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>";
    let wrong = [("content-md5", md5_base64(b"other"))];
    let r = signed(&server, "PUT", "/newbkt", &[], &wrong, config);
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.xml_element("Code").as_deref(), Some("BadDigest"));
    assert_s3_status(s3.head_bucket().bucket("newbkt").send().await, 404);
}

#[tokio::test]
async fn one_checksum_per_request_and_it_must_be_the_declared_one() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let two = [
        ("x-amz-checksum-crc32", CRC32.to_string()),
        ("x-amz-checksum-sha256", SHA256.to_string()),
    ];
    let mismatched = [
        ("x-amz-sdk-checksum-algorithm", "SHA1".to_string()),
        ("x-amz-checksum-sha256", SHA256.to_string()),
    ];
    for headers in [&two[..], &mismatched[..]] {
        let r = signed(&server, "PUT", "/bkt/k", &[], headers, BODY);
        assert_eq!(r.status, 400, "{}", r.body_text());
        assert_eq!(r.xml_element("Code").as_deref(), Some("InvalidRequest"));
        assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
    }
    let declared = [
        ("x-amz-sdk-checksum-algorithm", "SHA256".to_string()),
        ("x-amz-checksum-sha256", SHA256.to_string()),
    ];
    let r = signed(&server, "PUT", "/bkt/k", &[], &declared, BODY);
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[tokio::test]
async fn an_unauthenticated_document_body_is_refused_before_its_digest_is_looked_at() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "keep", b"still here").await;
    let delete = b"<Delete><Object><Key>keep</Key></Object></Delete>";
    let headers = [
        ("host".to_string(), server.addr().to_string()),
        ("content-md5".to_string(), md5_base64(b"another body")),
    ];
    let r = request(server.addr(), "POST", "/bkt?delete=", &headers, delete);
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert_eq!(common::get(&s3, "bkt", "keep").await, b"still here");
}
