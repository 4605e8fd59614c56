//! SSE-C end to end (issue 9): objects under keys the client brings on every request, written
//! and read with aws-sdk-s3 — single PUTs, ranged and part reads, multipart, copies in and out
//! of SSE-C, presigned URLs — every refusal S3 gives (missing, malformed or wrong keys, plain
//! HTTP, buckets that block SSE-C), and proof that Coffer keeps neither the key nor its MD5.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, EncryptionType, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::raw_http::fetch_presigned;
use common::{
    TestServer, assert_s3_error, contains_bytes, create_bucket, files_under, get, md5_base64, ok,
    pattern, put, set_sse_c_allowed,
};
use std::time::Duration;

const BUCKET: &str = "private";
const MIB: usize = 1024 * 1024;

/// A customer key and the three header values that name it.
struct Key {
    raw: [u8; 32],
    b64: String,
    md5: String,
}

fn key(seed: u8) -> Key {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8 * 7 + 1);
    }
    Key {
        raw,
        b64: B64.encode(raw),
        md5: md5_base64(&raw),
    }
}

/// The three SSE-C headers of a key on a request.
trait WithCustomerKey: Sized {
    fn sse_c(self, k: &Key) -> Self;
}

/// The three SSE-C headers of a copy's source key.
trait WithSourceKey: Sized {
    fn sse_c_source(self, k: &Key) -> Self;
}

macro_rules! with_customer_key {
    ($($builder:ty),*) => {$(
        impl WithCustomerKey for $builder {
            fn sse_c(self, k: &Key) -> Self {
                self.sse_customer_algorithm("AES256")
                    .sse_customer_key(&k.b64)
                    .sse_customer_key_md5(&k.md5)
            }
        }
    )*};
    (copies: $($builder:ty),*) => {$(
        with_customer_key!($builder);
        impl WithSourceKey for $builder {
            fn sse_c_source(self, k: &Key) -> Self {
                self.copy_source_sse_customer_algorithm("AES256")
                    .copy_source_sse_customer_key(&k.b64)
                    .copy_source_sse_customer_key_md5(&k.md5)
            }
        }
    )*};
}

use aws_sdk_s3::operation as op;
with_customer_key!(
    op::put_object::builders::PutObjectFluentBuilder,
    op::get_object::builders::GetObjectFluentBuilder,
    op::head_object::builders::HeadObjectFluentBuilder,
    op::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
    op::upload_part::builders::UploadPartFluentBuilder
);
with_customer_key!(copies:
    op::copy_object::builders::CopyObjectFluentBuilder,
    op::upload_part_copy::builders::UploadPartCopyFluentBuilder
);

/// Allows SSE-C in `bucket` (`BlockedEncryptionTypes` `NONE`), keeping SSE-S3 as the default.
async fn allow_sse_c(s3: &Client, bucket: &str) {
    set_sse_c_allowed(s3, bucket, true).await;
}

async fn setup() -> (TestServer, Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    allow_sse_c(&s3, BUCKET).await;
    (server, s3)
}

async fn put_c(s3: &Client, name: &str, body: &[u8], k: &Key) -> String {
    let out = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key(name)
        .sse_c(k)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await);
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
    assert_eq!(out.server_side_encryption(), None);
    out.e_tag().unwrap().to_owned()
}

async fn get_c(s3: &Client, name: &str, k: &Key) -> Vec<u8> {
    let out = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key(name)
        .sse_c(k)
        .send()
        .await);
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
    out.body.collect().await.unwrap().to_vec()
}

#[tokio::test]
async fn an_object_reads_back_only_with_its_key() {
    let (_server, s3) = setup().await;
    let (k, other) = (key(1), key(2));
    let body = pattern(200_000, 1);
    let etag = put_c(&s3, "doc", &body, &k).await;
    assert_ne!(
        etag.trim_matches('"'),
        hex::encode(coffer_md5(&body)),
        "the ETag must not be the plaintext's MD5"
    );
    assert_eq!(get_c(&s3, "doc", &k).await, body);

    // HEAD with the key: the headers, and the same ETag.
    let head = ok(s3
        .head_object()
        .bucket(BUCKET)
        .key("doc")
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.sse_customer_key_md5(), Some(k.md5.as_str()));

    // Without the key: 400 InvalidRequest; with another: 403 AccessDenied. Never data.
    let e = assert_s3_error(
        s3.get_object().bucket(BUCKET).key("doc").send().await,
        400,
        "InvalidRequest",
    );
    assert!(
        e.message
            .as_deref()
            .unwrap_or_default()
            .contains("Server Side Encryption"),
        "{e:?}"
    );
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("doc")
            .sse_c(&other)
            .send()
            .await,
        403,
        "AccessDenied",
    );
    let head = s3.head_object().bucket(BUCKET).key("doc").send().await;
    assert_eq!(
        head.unwrap_err().raw_response().unwrap().status().as_u16(),
        400
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("doc")
        .sse_c(&other)
        .send()
        .await;
    assert_eq!(
        head.unwrap_err().raw_response().unwrap().status().as_u16(),
        403
    );

    // A key presented for an object that has none: 400 InvalidRequest.
    put(&s3, BUCKET, "plain", b"sse-s3").await;
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("plain")
            .sse_c(&k)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    // Listing shows the object without any key.
    let listed = ok(s3.list_objects_v2().bucket(BUCKET).send().await);
    assert_eq!(listed.contents().len(), 2);
}

fn coffer_md5(data: &[u8]) -> [u8; 16] {
    let digest = B64.decode(md5_base64(data)).unwrap();
    digest.try_into().unwrap()
}

#[tokio::test]
async fn malformed_key_headers_are_invalid_argument_and_store_nothing() {
    let (_server, s3) = setup().await;
    let k = key(3);
    let other = key(4);
    let short = B64.encode([9u8; 16]);
    let cases: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
        // The MD5 of another key.
        (Some("AES256"), Some(&k.b64), Some(&other.md5)),
        // A 128-bit key.
        (Some("AES256"), Some(&short), Some(&md5_base64(&[9u8; 16]))),
        // Not base64.
        (Some("AES256"), Some("not base64!"), Some(&k.md5)),
        // An algorithm SSE-C does not take.
        (Some("AES128"), Some(&k.b64), Some(&k.md5)),
        // A key without its algorithm, an algorithm without its key.
        (None, Some(&k.b64), Some(&k.md5)),
        (Some("AES256"), None, Some(&k.md5)),
    ];
    for (n, (alg, key_b64, md5)) in cases.into_iter().enumerate() {
        assert_s3_error(
            s3.put_object()
                .bucket(BUCKET)
                .key(format!("bad-{n}"))
                .set_sse_customer_algorithm(alg.map(str::to_owned))
                .set_sse_customer_key(key_b64.map(str::to_owned))
                .set_sse_customer_key_md5(md5.map(str::to_owned))
                .body(ByteStream::from_static(b"must not be stored"))
                .send()
                .await,
            400,
            "InvalidArgument",
        );
    }
    // SSE-C with another mode's header.
    assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key("both")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .sse_c(&k)
            .body(ByteStream::from_static(b"must not be stored"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    let listed = ok(s3.list_objects_v2().bucket(BUCKET).send().await);
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

#[tokio::test]
async fn ranges_and_part_numbers_read_through_the_key() {
    let (_server, s3) = setup().await;
    let k = key(5);
    let body = pattern(300_000, 5);
    put_c(&s3, "r", &body, &k).await;
    let out = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("r")
        .range("bytes=70000-150000")
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(out.content_range(), Some("bytes 70000-150000/300000"));
    assert_eq!(
        out.body.collect().await.unwrap().to_vec(),
        &body[70000..=150000]
    );
    let out = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("r")
        .part_number(1)
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(out.body.collect().await.unwrap().to_vec(), body);
}

#[tokio::test]
async fn each_version_has_its_own_key() {
    let (_server, s3) = setup().await;
    let (first, second) = (key(6), key(7));
    put_c(&s3, "v", b"first", &first).await;
    put_c(&s3, "v", b"second", &second).await;
    assert_eq!(get_c(&s3, "v", &second).await, b"second");
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("v")
            .sse_c(&first)
            .send()
            .await,
        403,
        "AccessDenied",
    );
}

#[tokio::test]
async fn a_multipart_upload_needs_the_same_key_on_every_part() {
    let (_server, s3) = setup().await;
    let (k, other) = (key(8), key(9));
    let created = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(created.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(created.sse_customer_key_md5(), Some(k.md5.as_str()));
    let id = created.upload_id().unwrap();
    let parts = [pattern(5 * MIB, 81), pattern(1234, 82)];
    // A part without the key, or under another key, is refused and stores nothing. (Small
    // bodies: the refusal comes before the body is read.)
    let e = assert_s3_error(
        s3.upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(parts[1].clone()))
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert!(
        e.message
            .as_deref()
            .unwrap_or_default()
            .contains("Subsequent part requests"),
        "{e:?}"
    );
    assert_s3_error(
        s3.upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(id)
            .part_number(1)
            .sse_c(&other)
            .body(ByteStream::from(parts[1].clone()))
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    let listed = ok(s3
        .list_parts()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .send()
        .await);
    assert!(listed.parts().is_empty());
    let mut done = Vec::new();
    for (n, part) in parts.iter().enumerate() {
        let out = ok(s3
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(id)
            .part_number(n as i32 + 1)
            .sse_c(&k)
            .body(ByteStream::from(part.clone()))
            .send()
            .await);
        assert_eq!(out.sse_customer_key_md5(), Some(k.md5.as_str()));
        done.push(
            CompletedPart::builder()
                .part_number(n as i32 + 1)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    ok(s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await);
    let whole = [parts[0].as_slice(), parts[1].as_slice()].concat();
    assert_eq!(get_c(&s3, "mp", &k).await, whole);
    let second = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("mp")
        .part_number(2)
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(second.body.collect().await.unwrap().to_vec(), parts[1]);
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("mp")
            .sse_c(&other)
            .send()
            .await,
        403,
        "AccessDenied",
    );
}

#[tokio::test]
async fn copies_move_objects_into_out_of_and_between_customer_keys() {
    let (_server, s3) = setup().await;
    let (a, b) = (key(10), key(11));
    let body = pattern(100_000, 10);
    put_c(&s3, "src", &body, &a).await;
    let source = format!("{BUCKET}/src");

    // The source's key is needed to read it.
    assert_s3_error(
        s3.copy_object()
            .bucket(BUCKET)
            .key("out")
            .copy_source(&source)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    // SSE-C → SSE-S3.
    let out = ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("out")
        .copy_source(&source)
        .sse_c_source(&a)
        .send()
        .await);
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(get(&s3, BUCKET, "out").await, body);
    // SSE-C under one key → SSE-C under another (a key rotation of one object).
    let out = ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("src")
        .copy_source(&source)
        .sse_c_source(&a)
        .sse_c(&b)
        .send()
        .await);
    assert_eq!(out.sse_customer_key_md5(), Some(b.md5.as_str()));
    assert_eq!(get_c(&s3, "src", &b).await, body);
    // SSE-S3 → SSE-C.
    ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("in")
        .copy_source(format!("{BUCKET}/out"))
        .sse_c(&a)
        .send()
        .await);
    assert_eq!(get_c(&s3, "in", &a).await, body);

    // UploadPartCopy from an SSE-C source into an SSE-C upload under another key.
    let id = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("assembled")
        .sse_c(&a)
        .send()
        .await)
    .upload_id()
    .unwrap()
    .to_owned();
    assert_s3_error(
        s3.upload_part_copy()
            .bucket(BUCKET)
            .key("assembled")
            .upload_id(&id)
            .part_number(1)
            .copy_source(&source)
            .sse_c_source(&b)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    let part = ok(s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .part_number(1)
        .copy_source(&source)
        .copy_source_range("bytes=0-49999")
        .sse_c_source(&b)
        .sse_c(&a)
        .send()
        .await);
    ok(s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(get_c(&s3, "assembled", &a).await, &body[..50_000]);
}

#[tokio::test]
async fn new_buckets_block_sse_c_until_opened_and_reads_survive_a_new_block() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "fresh").await;
    let k = key(12);
    // A new bucket reports and applies the block.
    let config = ok(s3.get_bucket_encryption().bucket("fresh").send().await);
    let rule = &config
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.blocked_encryption_types().unwrap().encryption_type(),
        [EncryptionType::SseC]
    );
    let put_blocked = |name: &'static str| {
        s3.put_object()
            .bucket("fresh")
            .key(name)
            .sse_c(&k)
            .body(ByteStream::from_static(b"blocked"))
            .send()
    };
    assert_s3_error(put_blocked("a").await, 403, "AccessDenied");
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("fresh")
            .key("mp")
            .sse_c(&k)
            .send()
            .await,
        403,
        "AccessDenied",
    );
    put(&s3, "fresh", "plain", b"plain").await;
    assert_s3_error(
        s3.copy_object()
            .bucket("fresh")
            .key("copy")
            .copy_source("fresh/plain")
            .sse_c(&k)
            .send()
            .await,
        403,
        "AccessDenied",
    );

    // Opened with NONE: SSE-C writes work.
    set_sse_c_allowed(&s3, "fresh", true).await;
    let config = ok(s3.get_bucket_encryption().bucket("fresh").send().await);
    let rule = &config
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.blocked_encryption_types().unwrap().encryption_type(),
        [EncryptionType::None]
    );
    ok(put_blocked("a").await);

    // A default set without BlockedEncryptionTypes leaves the bucket open; DeleteBucketEncryption too.
    ok(s3
        .put_bucket_encryption()
        .bucket("fresh")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await);
    ok(s3.delete_bucket_encryption().bucket("fresh").send().await);
    ok(put_blocked("b").await);

    // Blocked again: new SSE-C writes are refused, existing SSE-C objects still read with their key.
    set_sse_c_allowed(&s3, "fresh", false).await;
    assert_s3_error(put_blocked("c").await, 403, "AccessDenied");
    let out = ok(s3
        .get_object()
        .bucket("fresh")
        .key("a")
        .sse_c(&k)
        .send()
        .await);
    assert_eq!(out.body.collect().await.unwrap().to_vec(), b"blocked");
    // The block survives a restart.
    let mut server = server;
    server.restart();
    let s3 = server.client();
    assert_s3_error(
        s3.put_object()
            .bucket("fresh")
            .key("d")
            .sse_c(&k)
            .body(ByteStream::from_static(b"blocked"))
            .send()
            .await,
        403,
        "AccessDenied",
    );
}

#[tokio::test]
async fn sse_c_needs_https_unless_plain_http_is_allowed() {
    let plain = TestServer::builder().without_insecure_http().start();
    let s3 = plain.client();
    create_bucket(&s3, BUCKET).await;
    allow_sse_c(&s3, BUCKET).await;
    put(&s3, BUCKET, "plain", b"plain").await;
    let k = key(13);
    let e = assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key("c")
            .sse_c(&k)
            .body(ByteStream::from_static(b"over http"))
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert!(
        e.message
            .as_deref()
            .unwrap_or_default()
            .contains("secure connection"),
        "{e:?}"
    );
    // Reads and copy sources carrying a key are refused too.
    assert_s3_error(
        s3.copy_object()
            .bucket(BUCKET)
            .key("c")
            .copy_source(format!("{BUCKET}/plain"))
            .sse_c_source(&k)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    let listed = ok(s3.list_objects_v2().bucket(BUCKET).send().await);
    assert_eq!(listed.contents().len(), 1);

    // Over HTTPS the same requests work (sent by presigned URL: the SDK's client here trusts
    // only public roots, not the server's self-signed certificate). The same data dir, served
    // over HTTPS.
    let mut plain = plain;
    plain.stop();
    let tls = TestServer::builder()
        .tls_self_signed()
        .start_in(plain.data_dir());
    let s3 = tls.client();
    let expiry = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let send = |presigned: aws_sdk_s3::presigning::PresignedRequest, body: &[u8]| {
        let url = presigned.uri().to_owned();
        let target = &url[url.find("://").unwrap() + 3..];
        let target = &target[target.find('/').unwrap()..];
        let mut headers: Vec<(String, String)> = presigned
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        headers.push(("host".into(), tls.addr().to_string()));
        common::https_request(&tls, presigned.method(), target, &headers, body)
    };
    let resp = send(
        ok(s3
            .put_object()
            .bucket(BUCKET)
            .key("c")
            .sse_c(&k)
            .presigned(expiry.clone())
            .await),
        b"over https",
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let resp = send(
        ok(s3
            .get_object()
            .bucket(BUCKET)
            .key("c")
            .sse_c(&k)
            .presigned(expiry)
            .await),
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body, b"over https");
}

#[tokio::test]
async fn presigned_urls_carry_the_key_in_headers() {
    let (_server, s3) = setup().await;
    let k = key(14);
    let expiry = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let presigned = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("presigned")
        .sse_c(&k)
        .presigned(expiry.clone())
        .await);
    assert!(
        !presigned.uri().contains(&k.b64) && !presigned.uri().contains(&k.md5),
        "the key must travel in headers, not the URL"
    );
    let resp = fetch_presigned(&presigned, &[], b"uploaded by URL");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(
        resp.header("x-amz-server-side-encryption-customer-key-MD5"),
        Some(k.md5.as_str())
    );
    let presigned = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("presigned")
        .sse_c(&k)
        .presigned(expiry)
        .await);
    let resp = fetch_presigned(&presigned, &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body, b"uploaded by URL");
}

/// Everything the key could be found as: raw, base64, hex, and its MD5 raw, base64 and hex.
fn key_forms(k: &Key) -> Vec<(String, Vec<u8>)> {
    let md5 = B64.decode(&k.md5).unwrap();
    vec![
        ("key".into(), k.raw.to_vec()),
        ("key base64".into(), k.b64.clone().into_bytes()),
        ("key hex".into(), hex::encode(k.raw).into_bytes()),
        ("key MD5".into(), md5.clone()),
        ("key MD5 base64".into(), k.md5.clone().into_bytes()),
        ("key MD5 hex".into(), hex::encode(&md5).into_bytes()),
    ]
}

#[tokio::test]
async fn neither_the_key_nor_its_md5_reaches_the_disk_or_the_logs() {
    let server = TestServer::builder()
        .env("COFFER_LOG", "trace,s3s=trace,hyper=trace")
        .start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    allow_sse_c(&s3, BUCKET).await;
    let (k, wrong) = (key(15), key(16));
    let small = pattern(1000, 15);
    let large = pattern(3 * MIB, 16);
    put_c(&s3, "small", &small, &k).await;
    put_c(&s3, "large", &large, &k).await;
    let id = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("pending")
        .sse_c(&k)
        .send()
        .await)
    .upload_id()
    .unwrap()
    .to_owned();
    ok(s3
        .upload_part()
        .bucket(BUCKET)
        .key("pending")
        .upload_id(&id)
        .part_number(1)
        .sse_c(&k)
        .body(ByteStream::from(pattern(100_000, 17)))
        .send()
        .await);
    assert_eq!(get_c(&s3, "large", &k).await, large);
    // Failures are logged too: a wrong key, a malformed one.
    let _ = s3
        .get_object()
        .bucket(BUCKET)
        .key("small")
        .sse_c(&wrong)
        .send()
        .await;
    let _ = s3
        .put_object()
        .bucket(BUCKET)
        .key("bad")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&k.b64)
        .sse_customer_key_md5(&wrong.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    let mut server = server;
    server.stop();
    let output = server.output();
    assert!(
        output.lines().count() > 10,
        "the server logged at trace level:\n{output}"
    );
    let files = files_under(server.data_dir());
    assert!(!files.is_empty());
    for (what, needle) in key_forms(&k).into_iter().chain(key_forms(&wrong)) {
        assert!(
            !contains_bytes(output.as_bytes(), &needle),
            "the {what} appears in the server's output"
        );
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            assert!(
                !contains_bytes(&bytes, &needle),
                "the {what} appears in {}",
                file.display()
            );
        }
    }
    // And the plaintext is not on disk either.
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(!contains_bytes(&bytes, &small[..64]), "{}", file.display());
    }
}

/// Which of `needles` occur in the readable memory of process `pid` (its heap, stacks and
/// mappings, read through `/proc/<pid>/mem`).
fn found_in_memory(pid: u32, needles: &[(String, Vec<u8>)]) -> Vec<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        if !perms.starts_with('r')
            || path.starts_with('/')
            || path == "[vvar]"
            || path == "[vsyscall]"
        {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        for (what, needle) in needles {
            if contains_bytes(&buf, needle) && !found.contains(what) {
                found.push(format!("{what} in {range} {path}"));
            }
        }
    }
    found
}

/// The key's bytes are held once, in zeroizing memory, and wiped after the request: after a few
/// SSE-C requests no copy of the raw key (or of its MD5) is left anywhere in the server's memory.
/// (The key's *base64 text* is: it arrives in an HTTP header, and hyper's read buffers and
/// `http`'s header values are freed without being wiped — outside what Coffer controls.)
#[tokio::test]
async fn the_key_does_not_stay_in_the_servers_memory() {
    let (server, s3) = setup().await;
    let k = key(17);
    let body = pattern(3 * MIB, 18);
    put_c(&s3, "mem", &body, &k).await;
    assert_eq!(get_c(&s3, "mem", &k).await, body);
    put_c(&s3, "small", b"small", &k).await;
    drop(s3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let raw: Vec<(String, Vec<u8>)> = key_forms(&k)
        .into_iter()
        .filter(|(what, _)| what == "key" || what == "key MD5")
        .collect();
    let found = found_in_memory(server.pid(), &raw);
    assert!(found.is_empty(), "found in the server's memory: {found:?}");
}

#[tokio::test]
async fn an_sse_c_upload_with_checksums_lists_and_completes_only_with_its_key() {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    let (_server, s3) = setup().await;
    let (k, other) = (key(20), key(21));
    let id = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("salaries.csv")
        .sse_c(&k)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await)
    .upload_id()
    .unwrap()
    .to_owned();
    let part = ok(s3
        .upload_part()
        .bucket(BUCKET)
        .key("salaries.csv")
        .upload_id(&id)
        .part_number(1)
        .sse_c(&k)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"alice,120000\n"))
        .send()
        .await);
    // The parts' checksums are of the plaintext: without the key, or with another, no answer.
    let list = |key: Option<&Key>| {
        s3.list_parts()
            .bucket(BUCKET)
            .key("salaries.csv")
            .upload_id(&id)
            .set_sse_customer_algorithm(key.map(|_| "AES256".to_owned()))
            .set_sse_customer_key(key.map(|k| k.b64.clone()))
            .set_sse_customer_key_md5(key.map(|k| k.md5.clone()))
            .send()
    };
    assert_s3_error(list(None).await, 400, "InvalidRequest");
    assert_s3_error(list(Some(&other)).await, 400, "InvalidRequest");
    let listed = ok(list(Some(&k)).await);
    assert_eq!(listed.parts()[0].checksum_sha256(), part.checksum_sha256());
    let complete = |key: Option<&Key>| {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("salaries.csv")
            .upload_id(&id)
            .set_sse_customer_algorithm(key.map(|_| "AES256".to_owned()))
            .set_sse_customer_key(key.map(|k| k.b64.clone()))
            .set_sse_customer_key_md5(key.map(|k| k.md5.clone()))
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(part.e_tag().unwrap())
                            .checksum_sha256(part.checksum_sha256().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    assert_s3_error(complete(None).await, 400, "InvalidRequest");
    ok(complete(Some(&k)).await);
    assert_eq!(get_c(&s3, "salaries.csv", &k).await, b"alice,120000\n");
}

#[tokio::test]
async fn a_copy_sources_conditions_are_not_evaluated_without_its_key() {
    let (_server, s3) = setup().await;
    let k = key(22);
    let etag = put_c(&s3, "src", b"guarded", &k).await;
    // Without the key, a true or a false condition gets the same answer: nothing is revealed.
    for condition in [etag.as_str(), "\"0000\""] {
        assert_s3_error(
            s3.copy_object()
                .bucket(BUCKET)
                .key("dst")
                .copy_source(format!("{BUCKET}/src"))
                .copy_source_if_match(condition)
                .send()
                .await,
            400,
            "InvalidRequest",
        );
    }
}

#[tokio::test]
async fn a_key_header_that_is_not_text_is_refused_without_being_quoted() {
    use std::io::{Read as _, Write as _};
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "pub", b"public").await;
    // A public object, so that the request gets as far as s3s's header parsing.
    ok(s3
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
        ))
        .send()
        .await);
    let k = key(23);
    for header in [
        "x-amz-server-side-encryption-customer-key",
        "x-amz-copy-source-server-side-encryption-customer-key",
    ] {
        let mut req = format!(
            "GET /{BUCKET}/pub HTTP/1.1\r\nHost: localhost\r\nx-amz-server-side-encryption-customer-algorithm: AES256\r\n{header}: {}",
            k.b64
        )
        .into_bytes();
        req.extend_from_slice(b"\xff\r\n");
        req.extend_from_slice(
            format!(
                "x-amz-server-side-encryption-customer-key-MD5: {}\r\nConnection: close\r\n\r\n",
                k.md5
            )
            .as_bytes(),
        );
        let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
        stream.write_all(&req).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("<Code>InvalidArgument</Code>"), "{answer}");
        assert!(!answer.contains(&k.b64), "the key is quoted in the answer");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.output().contains(&k.b64),
        "the key is quoted in the log"
    );
}

/// A presigned URL signs the request it was made for: `x-amz-*` headers added by whoever holds
/// it (an SSE-C key of their own, a copy source) are refused as S3 refuses them.
#[tokio::test]
async fn a_presigned_url_refuses_x_amz_headers_it_did_not_sign() {
    let (_server, s3) = setup().await;
    put(&s3, BUCKET, "secret", b"not for the URL holder").await;
    let k = key(24);
    let expiry = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let presigned = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("upload")
        .presigned(expiry.clone())
        .await);
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    for extra in [
        with(&[
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", &k.b64),
            ("x-amz-server-side-encryption-customer-key-MD5", &k.md5),
        ]),
        with(&[("x-amz-copy-source", "/private/secret")]),
        with(&[("x-amz-server-side-encryption", "aws:kms")]),
    ] {
        let resp = fetch_presigned(&presigned, &extra, b"posted by the URL holder");
        assert_eq!(resp.status, 403, "{}", resp.body_text());
        assert_eq!(resp.xml_element("Code").as_deref(), Some("AccessDenied"));
        let not_signed = resp.xml_element("HeadersNotSigned").unwrap();
        assert!(
            not_signed.contains(&extra[0].0.to_ascii_lowercase()),
            "{not_signed}"
        );
    }
    // The same with the signature's parameter name percent-encoded (s3s decodes names before it
    // looks for the signature, so the check must too).
    let url = presigned.uri().to_owned();
    for (plain, encoded) in [
        ("X-Amz-Signature=", "X-Amz-Signatur%65="),
        ("X-Amz-Signature=", "X%2DAmz-Signature="),
    ] {
        let (addr, target) = common::raw_http::split_url(&url.replace(plain, encoded));
        let mut headers: Vec<(String, String)> = presigned
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        headers.push(("x-amz-copy-source".into(), format!("/{BUCKET}/secret")));
        let resp =
            common::raw_http::request(addr, presigned.method(), &target, &headers, b"payload");
        assert_eq!(resp.status, 403, "{encoded}: {}", resp.body_text());
        assert_eq!(
            resp.xml_element("HeadersNotSigned").as_deref(),
            Some("x-amz-copy-source")
        );
    }
    assert_s3_error(
        s3.head_object().bucket(BUCKET).key("upload").send().await,
        404,
        "NotFound",
    );
    // The URL as made still works.
    let resp = fetch_presigned(&presigned, &[], b"as signed");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
}
