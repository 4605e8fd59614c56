//! CopyObject end to end: same and cross bucket, metadata directive COPY and REPLACE,
//! `x-amz-copy-source-if-*` preconditions, copy onto itself, encoded source keys, large and
//! multipart sources, and the errors for missing sources.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::MetadataDirective;
use common::{
    TestServer, assert_s3_error, assert_s3_status, create_bucket, get, ok, pattern, put,
    put_multipart, quoted_md5, url_encode_path,
};

const DAY: Duration = Duration::from_secs(86_400);

async fn setup() -> (TestServer, aws_sdk_s3::Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "src").await;
    create_bucket(&s3, "dst").await;
    ok(s3
        .put_object()
        .bucket("src")
        .key("original")
        .content_type("text/plain")
        .cache_control("max-age=60")
        .metadata("owner", "alice")
        .body(ByteStream::from(pattern(150_000, 1)))
        .send()
        .await);
    (server, s3)
}

#[tokio::test]
async fn copy_within_a_bucket_keeps_bytes_and_metadata() {
    let (_server, s3) = setup().await;
    let out = ok(s3
        .copy_object()
        .bucket("src")
        .key("copy")
        .copy_source("src/original")
        .send()
        .await);
    let data = pattern(150_000, 1);
    let result = out.copy_object_result().expect("CopyObjectResult");
    assert_eq!(result.e_tag(), Some(quoted_md5(&data).as_str()));
    assert!(result.last_modified().is_some());

    assert!(get(&s3, "src", "copy").await == data, "copied bytes differ");
    let head = ok(s3.head_object().bucket("src").key("copy").send().await);
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
    // The source is untouched.
    assert!(get(&s3, "src", "original").await == data);
}

#[tokio::test]
async fn copy_across_buckets() {
    let (_server, s3) = setup().await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("elsewhere/copy")
        .copy_source("src/original")
        .send()
        .await);
    assert!(get(&s3, "dst", "elsewhere/copy").await == pattern(150_000, 1));
}

#[tokio::test]
async fn copy_with_replace_directive_sets_new_metadata() {
    let (_server, s3) = setup().await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/original")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("reviewer", "bob")
        .send()
        .await);
    let head = ok(s3.head_object().bucket("dst").key("replaced").send().await);
    assert_eq!(head.content_type(), Some("application/json"));
    assert_eq!(
        head.cache_control(),
        None,
        "REPLACE drops headers not given"
    );
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("reviewer").map(String::as_str), Some("bob"));
    assert!(
        !metadata.contains_key("owner"),
        "REPLACE kept old metadata: {metadata:?}"
    );
}

#[tokio::test]
async fn copy_with_copy_directive_ignores_request_metadata() {
    let (_server, s3) = setup().await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("copied")
        .copy_source("src/original")
        .metadata_directive(MetadataDirective::Copy)
        .metadata("ignored", "yes")
        .send()
        .await);
    let head = ok(s3.head_object().bucket("dst").key("copied").send().await);
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("owner").map(String::as_str), Some("alice"));
    assert!(
        !metadata.contains_key("ignored"),
        "COPY took request metadata: {metadata:?}"
    );
}

#[tokio::test]
async fn copy_source_if_match_mismatch_is_precondition_failed() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("src/original")
            .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    let etag = quoted_md5(&pattern(150_000, 1));
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("c")
        .copy_source("src/original")
        .copy_source_if_match(etag)
        .send()
        .await);
}

#[tokio::test]
async fn copy_source_if_none_match_matching_is_precondition_failed() {
    let (_server, s3) = setup().await;
    let etag = quoted_md5(&pattern(150_000, 1));
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("src/original")
            .copy_source_if_none_match(etag)
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_s3_status(s3.head_object().bucket("dst").key("c").send().await, 404);
}

#[tokio::test]
async fn copy_source_date_preconditions_fail_with_precondition_failed() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("src/original")
            .copy_source_if_unmodified_since(DateTime::from(SystemTime::now() - DAY))
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("src/original")
            .copy_source_if_modified_since(DateTime::from(SystemTime::now() + DAY))
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
}

#[tokio::test]
async fn copy_onto_itself_with_replace_updates_metadata() {
    let (_server, s3) = setup().await;
    ok(s3
        .copy_object()
        .bucket("src")
        .key("original")
        .copy_source("src/original")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/markdown")
        .metadata("owner", "carol")
        .send()
        .await);
    let head = ok(s3.head_object().bucket("src").key("original").send().await);
    assert_eq!(head.content_type(), Some("text/markdown"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("carol")
    );
    assert!(get(&s3, "src", "original").await == pattern(150_000, 1));
}

#[tokio::test]
async fn copy_onto_itself_without_changes_is_invalid_request() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.copy_object()
            .bucket("src")
            .key("original")
            .copy_source("src/original")
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert!(get(&s3, "src", "original").await == pattern(150_000, 1));
}

#[tokio::test]
async fn copy_source_with_url_encoded_key() {
    let (_server, s3) = setup().await;
    let key = "dir with space/ünï+%&?.bin";
    put(&s3, "src", key, b"odd key").await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("plain")
        .copy_source(format!("src/{}", url_encode_path(key)))
        .send()
        .await);
    assert_eq!(get(&s3, "dst", "plain").await, b"odd key");
}

#[tokio::test]
async fn copy_of_empty_and_multi_segment_objects() {
    let (_server, s3) = setup().await;
    put(&s3, "src", "empty", b"").await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("empty")
        .copy_source("src/empty")
        .send()
        .await);
    assert_eq!(get(&s3, "dst", "empty").await, b"");

    let big = pattern(3 << 20, 5);
    put(&s3, "src", "big", &big).await;
    ok(s3
        .copy_object()
        .bucket("dst")
        .key("big")
        .copy_source("src/big")
        .send()
        .await);
    assert!(get(&s3, "dst", "big").await == big, "3 MiB copy differs");
}

#[tokio::test]
async fn copy_of_a_multipart_object_is_byte_exact_with_an_md5_etag() {
    let (_server, s3) = setup().await;
    let parts = [pattern(5 << 20, 1), pattern(1 << 20, 2)];
    put_multipart(&s3, "src", "mp", &[&parts[0], &parts[1]]).await;
    let out = ok(s3
        .copy_object()
        .bucket("dst")
        .key("mp")
        .copy_source("src/mp")
        .send()
        .await);
    let data = parts.concat();
    // CopyObject writes a single-part object: its SSE-S3 ETag is the MD5 of the data.
    assert_eq!(
        out.copy_object_result().and_then(|r| r.e_tag()),
        Some(quoted_md5(&data).as_str())
    );
    assert!(
        get(&s3, "dst", "mp").await == data,
        "multipart copy differs"
    );
}

#[tokio::test]
async fn copy_from_missing_sources_is_not_found() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("src/missing")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    assert_s3_error(
        s3.copy_object()
            .bucket("dst")
            .key("c")
            .copy_source("nobucket/original")
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.copy_object()
            .bucket("nobucket")
            .key("c")
            .copy_source("src/original")
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}
