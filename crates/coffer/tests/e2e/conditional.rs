//! Conditional requests end to end: If-Match, If-None-Match, If-Modified-Since and
//! If-Unmodified-Since on GET and HEAD (304 / 412 as S3 answers), their documented combinations,
//! conditional writes with `If-None-Match: *` (PutObject, CopyObject, CompleteMultipartUpload),
//! and conditional deletes (`If-Match` on DeleteObject, `ETag` and `Size` in DeleteObjects).

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use common::{TestServer, assert_s3_error, assert_s3_status, create_bucket, get, ok, put};

const DAY: Duration = Duration::from_secs(86_400);

fn past() -> DateTime {
    DateTime::from(SystemTime::now() - DAY)
}

fn future() -> DateTime {
    DateTime::from(SystemTime::now() + DAY)
}

async fn server_with_object() -> (TestServer, aws_sdk_s3::Client, String) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let etag = put(&s3, "bkt", "k", b"conditional body").await;
    (server, s3, etag)
}

#[tokio::test]
async fn get_with_if_match_matching_returns_the_object() {
    let (_server, s3, etag) = server_with_object().await;
    let out = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_match(&etag)
        .send()
        .await);
    assert_eq!(
        &ok(out.body.collect().await).into_bytes()[..],
        b"conditional body"
    );
}

#[tokio::test]
async fn get_with_if_match_mismatch_is_precondition_failed() {
    let (_server, s3, _) = server_with_object().await;
    assert_s3_error(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
}

#[tokio::test]
async fn head_with_if_match_mismatch_is_precondition_failed() {
    let (_server, s3, _) = server_with_object().await;
    assert_s3_status(
        s3.head_object()
            .bucket("bkt")
            .key("k")
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await,
        412,
    );
}

#[tokio::test]
async fn get_with_if_none_match_matching_is_not_modified() {
    let (_server, s3, etag) = server_with_object().await;
    assert_s3_status(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .if_none_match(&etag)
            .send()
            .await,
        304,
    );
    assert_s3_status(
        s3.head_object()
            .bucket("bkt")
            .key("k")
            .if_none_match(&etag)
            .send()
            .await,
        304,
    );
}

#[tokio::test]
async fn get_with_if_none_match_other_etag_returns_the_object() {
    let (_server, s3, _) = server_with_object().await;
    ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_none_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await);
}

#[tokio::test]
async fn get_with_if_modified_since_in_the_future_is_not_modified() {
    let (_server, s3, _) = server_with_object().await;
    assert_s3_status(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .if_modified_since(future())
            .send()
            .await,
        304,
    );
    assert_s3_status(
        s3.head_object()
            .bucket("bkt")
            .key("k")
            .if_modified_since(future())
            .send()
            .await,
        304,
    );
}

#[tokio::test]
async fn get_with_if_modified_since_in_the_past_returns_the_object() {
    let (_server, s3, _) = server_with_object().await;
    ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_modified_since(past())
        .send()
        .await);
}

#[tokio::test]
async fn get_with_if_unmodified_since_in_the_past_is_precondition_failed() {
    let (_server, s3, _) = server_with_object().await;
    assert_s3_error(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .if_unmodified_since(past())
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_s3_status(
        s3.head_object()
            .bucket("bkt")
            .key("k")
            .if_unmodified_since(past())
            .send()
            .await,
        412,
    );
}

#[tokio::test]
async fn get_with_if_unmodified_since_in_the_future_returns_the_object() {
    let (_server, s3, _) = server_with_object().await;
    ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_unmodified_since(future())
        .send()
        .await);
}

#[tokio::test]
async fn if_match_true_wins_over_if_unmodified_since_false() {
    // S3 (RFC 7232 §6): when If-Match holds, If-Unmodified-Since is not evaluated.
    let (_server, s3, etag) = server_with_object().await;
    ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .if_match(&etag)
        .if_unmodified_since(past())
        .send()
        .await);
}

#[tokio::test]
async fn if_none_match_false_wins_over_if_modified_since_true() {
    // S3 (RFC 7232 §6): when If-None-Match is present, If-Modified-Since is not evaluated.
    let (_server, s3, etag) = server_with_object().await;
    assert_s3_status(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .if_none_match(&etag)
            .if_modified_since(past())
            .send()
            .await,
        304,
    );
}

#[tokio::test]
async fn put_with_if_none_match_star_on_an_existing_key_is_precondition_failed() {
    let (_server, s3, _) = server_with_object().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .if_none_match("*")
            .body(ByteStream::from_static(b"must not replace"))
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&s3, "bkt", "k").await, b"conditional body");
}

#[tokio::test]
async fn put_with_if_none_match_star_on_a_new_key_creates_it() {
    let (_server, s3, _) = server_with_object().await;
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("fresh")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first writer"))
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "fresh").await, b"first writer");
}

#[tokio::test]
async fn complete_multipart_with_if_none_match_star_on_an_existing_key_is_precondition_failed() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let (_server, s3, _) = server_with_object().await;
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("k")
        .send()
        .await);
    let upload_id = upload.upload_id().unwrap();
    let part = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"small last part"))
        .send()
        .await);
    assert_s3_error(
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(upload_id)
            .if_none_match("*")
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
            .await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&s3, "bkt", "k").await, b"conditional body");
}

#[tokio::test]
async fn delete_with_if_match_deletes_only_that_version() {
    let (_server, s3, etag) = server_with_object().await;
    assert_s3_error(
        s3.delete_object()
            .bucket("bkt")
            .key("k")
            .if_match("\"00000000000000000000000000000000\"")
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&s3, "bkt", "k").await, b"conditional body");
    ok(s3
        .delete_object()
        .bucket("bkt")
        .key("k")
        .if_match(&etag)
        .send()
        .await);
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
    // If-Match on a key that is not there: NoSuchKey, where a plain delete succeeds.
    for cond in ["*", etag.as_str()] {
        assert_s3_error(
            s3.delete_object()
                .bucket("bkt")
                .key("k")
                .if_match(cond)
                .send()
                .await,
            404,
            "NoSuchKey",
        );
    }
    ok(s3.delete_object().bucket("bkt").key("k").send().await);
    // If-Match: * deletes whatever is there.
    put(&s3, "bkt", "k", b"again").await;
    ok(s3
        .delete_object()
        .bucket("bkt")
        .key("k")
        .if_match("*")
        .send()
        .await);
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
}

#[tokio::test]
async fn delete_objects_honours_each_entrys_etag_and_size() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let (_server, s3, etag) = server_with_object().await;
    put(&s3, "bkt", "other", b"other body").await;
    put(&s3, "bkt", "sized", b"12345").await;
    let id = |key: &str| ObjectIdentifier::builder().key(key);
    let out = ok(s3
        .delete_objects()
        .bucket("bkt")
        .delete(
            Delete::builder()
                .objects(id("k").e_tag(&etag).build().unwrap())
                .objects(
                    id("other")
                        .e_tag("\"0123456789abcdef0123456789abcdef\"")
                        .build()
                        .unwrap(),
                )
                .objects(id("sized").size(4).build().unwrap())
                .objects(id("missing").e_tag(&etag).build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await);
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["k"]);
    let mut errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            ("missing", "NoSuchKey"),
            ("other", "PreconditionFailed"),
            ("sized", "PreconditionFailed"),
        ]
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
    assert_eq!(get(&s3, "bkt", "other").await, b"other body");
    assert_eq!(get(&s3, "bkt", "sized").await, b"12345");
}

#[tokio::test]
async fn copy_with_if_none_match_star_does_not_overwrite() {
    let (_server, s3, _) = server_with_object().await;
    put(&s3, "bkt", "dest", b"keep me").await;
    assert_s3_error(
        s3.copy_object()
            .bucket("bkt")
            .key("dest")
            .copy_source("bkt/k")
            .if_none_match("*")
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    assert_eq!(get(&s3, "bkt", "dest").await, b"keep me");
    ok(s3
        .copy_object()
        .bucket("bkt")
        .key("fresh")
        .copy_source("bkt/k")
        .if_none_match("*")
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "fresh").await, b"conditional body");
}

#[tokio::test]
async fn put_with_if_none_match_etag_is_not_implemented_and_writes_nothing() {
    let (_server, s3, etag) = server_with_object().await;
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .if_none_match(&etag)
            .body(ByteStream::from_static(b"replaced?"))
            .send()
            .await,
        501,
        "NotImplemented",
    );
    assert_eq!(get(&s3, "bkt", "k").await, b"conditional body");
}
