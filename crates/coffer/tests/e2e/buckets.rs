//! Bucket operations end to end: ListBuckets (paged, by prefix), CreateBucket (name rules,
//! already owned), HeadBucket, DeleteBucket (not empty), GetBucketLocation, and NoSuchBucket
//! everywhere.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use common::{TestServer, assert_s3_error, assert_s3_status, create_bucket, ok, put};

#[tokio::test]
async fn created_bucket_is_listed_headed_and_deleted() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "photos").await;

    let list = ok(s3.list_buckets().send().await);
    let names: Vec<_> = list.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["photos"]);
    assert!(
        list.buckets()[0].creation_date().is_some(),
        "bucket has a creation date"
    );

    ok(s3.head_bucket().bucket("photos").send().await);
    ok(s3.delete_bucket().bucket("photos").send().await);
    assert_s3_status(s3.head_bucket().bucket("photos").send().await, 404);
    let list = ok(s3.list_buckets().send().await);
    assert!(
        list.buckets().is_empty(),
        "deleted bucket still listed: {list:?}"
    );
}

#[tokio::test]
async fn list_buckets_is_sorted_by_name() {
    let server = TestServer::start();
    let s3 = server.client();
    for name in ["charlie", "alpha", "bravo-2", "bravo"] {
        create_bucket(&s3, name).await;
    }
    let list = ok(s3.list_buckets().send().await);
    let names: Vec<_> = list.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alpha", "bravo", "bravo-2", "charlie"]);
}

#[tokio::test]
async fn creating_an_existing_bucket_is_already_owned_by_you() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "dup").await;
    assert_s3_error(
        s3.create_bucket().bucket("dup").send().await,
        409,
        "BucketAlreadyOwnedByYou",
    );
}

#[tokio::test]
async fn deleting_a_non_empty_bucket_is_bucket_not_empty() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "full").await;
    put(&s3, "full", "k", b"v").await;
    assert_s3_error(
        s3.delete_bucket().bucket("full").send().await,
        409,
        "BucketNotEmpty",
    );
    ok(s3.head_bucket().bucket("full").send().await);

    ok(s3.delete_object().bucket("full").key("k").send().await);
    ok(s3.delete_bucket().bucket("full").send().await);
}

#[tokio::test]
async fn operations_on_a_missing_bucket_are_no_such_bucket() {
    let server = TestServer::start();
    let s3 = server.client();
    assert_s3_status(s3.head_bucket().bucket("nope").send().await, 404);
    assert_s3_error(
        s3.delete_bucket().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.get_bucket_location().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.list_objects_v2().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.list_objects().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.put_object()
            .bucket("nope")
            .key("k")
            .body(ByteStream::from_static(b"v"))
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.get_object().bucket("nope").key("k").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("nope")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn invalid_bucket_names_are_invalid_bucket_name() {
    let server = TestServer::start();
    let s3 = server.client();
    let too_long = "a".repeat(64);
    let invalid = [
        "ab",               // shorter than 3
        too_long.as_str(),  // longer than 63
        "UpperCase",        // capitals
        "under_score",      // underscore
        "-leading-hyphen",  // must start with a letter or digit
        "trailing-hyphen-", // must end with a letter or digit
        "192.168.5.4",      // formatted as an IP address
        "double..dots",     // adjacent periods
        "xn--punycode",     // reserved prefix
        "sthree-reserved",  // reserved prefix
        "bucket-s3alias",   // reserved suffix
        "bucket--ol-s3",    // reserved suffix
        "bucket.mrap",      // reserved suffix
    ];
    let mut wrong = Vec::new();
    for name in invalid {
        match s3.create_bucket().bucket(name).send().await {
            Ok(_) => wrong.push(format!("{name:?} was created")),
            Err(err) => {
                let failure = common::s3_failure::<(), _>(Err(err));
                if (failure.status, failure.code.as_deref()) != (400, Some("InvalidBucketName")) {
                    wrong.push(format!("{name:?} got {failure:?}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 InvalidBucketName: {wrong:#?}"
    );
    let list = ok(s3.list_buckets().send().await);
    assert!(
        list.buckets().is_empty(),
        "an invalid bucket was created: {list:?}"
    );
}

#[tokio::test]
async fn valid_edge_case_bucket_names_are_accepted() {
    let server = TestServer::start();
    let s3 = server.client();
    let longest = format!("a{}z", "0".repeat(61));
    for name in ["abc", "123", longest.as_str(), "my.dotted.bucket", "a-b-c"] {
        ok(s3.create_bucket().bucket(name).send().await);
        ok(s3.head_bucket().bucket(name).send().await);
    }
}

#[tokio::test]
async fn get_bucket_location_of_a_us_east_1_bucket_is_empty() {
    // S3 reports us-east-1 as an empty LocationConstraint.
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "where").await;
    let out = ok(s3.get_bucket_location().bucket("where").send().await);
    let location = out.location_constraint().map(|l| l.as_str()).unwrap_or("");
    assert_eq!(location, "", "LocationConstraint of a us-east-1 bucket");
}

#[tokio::test]
async fn list_buckets_pages_and_filters_by_prefix() {
    let server = TestServer::start();
    let s3 = server.client();
    let names = ["pg-a1", "pg-a2", "pg-b1", "pg-b2", "pg-c"];
    for name in names {
        create_bucket(&s3, name).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let out = ok(s3
            .list_buckets()
            .max_buckets(2)
            .set_continuation_token(token.clone())
            .send()
            .await);
        assert!(out.buckets().len() <= 2);
        seen.extend(out.buckets().iter().map(|b| b.name().unwrap().to_string()));
        token = out.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, names);

    let out = ok(s3.list_buckets().prefix("pg-b").send().await);
    let listed: Vec<_> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, ["pg-b1", "pg-b2"]);
    assert_eq!(out.prefix(), Some("pg-b"));
    assert_eq!(out.continuation_token(), None);

    assert_s3_error(
        s3.list_buckets().max_buckets(0).send().await,
        400,
        "InvalidArgument",
    );
}
