//! Ranged and partNumber GETs end to end: `bytes=a-b`, `bytes=a-`, `bytes=-n`, around the 64 KiB
//! segment boundaries (objects of 0, 1, 65535, 65536, 65537 bytes and larger), across multipart
//! part boundaries, 416 InvalidRange, and partNumber GET.

use crate::common;

use aws_sdk_s3::presigning::PresigningConfig;
use common::raw_http::fetch_presigned;
use common::{
    TestServer, assert_s3_error, create_bucket, get_range, ok, pattern, put, put_multipart,
};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// What a range must yield: the inclusive byte span, or 416 InvalidRange.
enum Expect {
    Span(usize, usize),
    Unsatisfiable,
}
use Expect::{Span, Unsatisfiable};

async fn check_ranges<R: AsRef<str>>(
    s3: &aws_sdk_s3::Client,
    key: &str,
    data: &[u8],
    cases: &[(R, Expect)],
) {
    for (range, expect) in cases {
        let range = range.as_ref();
        match expect {
            Span(start, end) => {
                let (bytes, content_range) = get_range(s3, "bkt", key, range).await;
                assert_eq!(
                    content_range.as_deref(),
                    Some(format!("bytes {start}-{end}/{}", data.len()).as_str()),
                    "Content-Range of {range} on {} bytes",
                    data.len()
                );
                assert!(
                    bytes[..] == data[*start..=*end],
                    "{range} on {} bytes: got {} bytes that differ from bytes {start}-{end}",
                    data.len(),
                    bytes.len()
                );
            }
            Unsatisfiable => {
                let failure = common::s3_failure(
                    s3.get_object()
                        .bucket("bkt")
                        .key(key)
                        .range(range)
                        .send()
                        .await,
                );
                assert_eq!(
                    (failure.status, failure.code.as_deref()),
                    (416, Some("InvalidRange")),
                    "{range} on {} bytes: {failure:?}",
                    data.len()
                );
            }
        }
    }
}

async fn server_with_object(size: usize) -> (TestServer, aws_sdk_s3::Client, Vec<u8>) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let data = pattern(size, size as u64);
    put(&s3, "bkt", "k", &data).await;
    (server, s3, data)
}

#[tokio::test]
async fn a_range_of_an_empty_object_is_invalid_range_but_a_suffix_is_the_empty_object() {
    let (_server, s3, data) = server_with_object(0).await;
    check_ranges(
        &s3,
        "k",
        &data,
        &[("bytes=0-0", Unsatisfiable), ("bytes=0-", Unsatisfiable)],
    )
    .await;
    // S3 answers `bytes=-n` on an empty object with 200 and the (empty) object, no
    // Content-Range (`bytes */0` belongs to 416 answers only).
    let out = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .range("bytes=-1")
        .send()
        .await);
    assert_eq!(out.content_range(), None);
    assert_eq!(out.content_length(), Some(0));
    assert!(ok(out.body.collect().await).into_bytes().is_empty());
}

#[tokio::test]
async fn ranges_of_a_one_byte_object() {
    let (_server, s3, data) = server_with_object(1).await;
    let cases = [
        ("bytes=0-0", Span(0, 0)),
        ("bytes=0-", Span(0, 0)),
        ("bytes=-1", Span(0, 0)),
        ("bytes=-5", Span(0, 0)),
        ("bytes=0-9", Span(0, 0)),
        ("bytes=1-", Unsatisfiable),
        ("bytes=1-1", Unsatisfiable),
    ];
    check_ranges(&s3, "k", &data, &cases).await;
}

#[tokio::test]
async fn ranges_of_a_65535_byte_object() {
    let (_server, s3, data) = server_with_object(65_535).await;
    let cases = [
        ("bytes=65534-65534", Span(65_534, 65_534)),
        ("bytes=0-65534", Span(0, 65_534)),
        ("bytes=-65535", Span(0, 65_534)),
        ("bytes=100-", Span(100, 65_534)),
        ("bytes=65000-70000", Span(65_000, 65_534)),
        ("bytes=65535-", Unsatisfiable),
    ];
    check_ranges(&s3, "k", &data, &cases).await;
}

#[tokio::test]
async fn ranges_of_a_65536_byte_object() {
    let (_server, s3, data) = server_with_object(65_536).await;
    let cases = [
        ("bytes=65535-65535", Span(65_535, 65_535)),
        ("bytes=65535-", Span(65_535, 65_535)),
        ("bytes=-1", Span(65_535, 65_535)),
        ("bytes=0-65535", Span(0, 65_535)),
        ("bytes=32768-65535", Span(32_768, 65_535)),
        ("bytes=65536-", Unsatisfiable),
        ("bytes=65536-65536", Unsatisfiable),
    ];
    check_ranges(&s3, "k", &data, &cases).await;
}

#[tokio::test]
async fn ranges_of_a_65537_byte_object_cross_the_segment_boundary() {
    let (_server, s3, data) = server_with_object(65_537).await;
    let cases = [
        ("bytes=65535-65536", Span(65_535, 65_536)),
        ("bytes=65536-65536", Span(65_536, 65_536)),
        ("bytes=65536-", Span(65_536, 65_536)),
        ("bytes=65534-65535", Span(65_534, 65_535)),
        ("bytes=-1", Span(65_536, 65_536)),
        ("bytes=-2", Span(65_535, 65_536)),
        ("bytes=0-65536", Span(0, 65_536)),
        ("bytes=1-", Span(1, 65_536)),
        ("bytes=65537-", Unsatisfiable),
    ];
    check_ranges(&s3, "k", &data, &cases).await;
}

#[tokio::test]
async fn ranges_spanning_several_segments() {
    let (_server, s3, data) = server_with_object(200_000).await;
    let cases = [
        ("bytes=65000-140000", Span(65_000, 140_000)),
        ("bytes=131071-131072", Span(131_071, 131_072)),
        ("bytes=131072-196607", Span(131_072, 196_607)),
        ("bytes=-70000", Span(130_000, 199_999)),
        ("bytes=-300000", Span(0, 199_999)),
        ("bytes=199999-", Span(199_999, 199_999)),
        ("bytes=0-1000000", Span(0, 199_999)),
        ("bytes=200000-", Unsatisfiable),
        ("bytes=250000-260000", Unsatisfiable),
    ];
    check_ranges(&s3, "k", &data, &cases).await;
}

#[tokio::test]
async fn range_response_is_206_with_content_range_and_length() {
    let (_server, s3, data) = server_with_object(100_000).await;
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let range = [("range".to_string(), "bytes=65530-65545".to_string())];
    let response = fetch_presigned(&presigned, &range, b"");
    assert_eq!(response.status, 206, "{}", response.body_text());
    assert_eq!(
        response.header("content-range"),
        Some("bytes 65530-65545/100000")
    );
    assert_eq!(response.header("content-length"), Some("16"));
    assert_eq!(response.body, data[65_530..=65_545]);
    assert_eq!(response.header("accept-ranges"), Some("bytes"));

    let beyond = [("range".to_string(), "bytes=100000-".to_string())];
    let response = fetch_presigned(&presigned, &beyond, b"");
    assert_eq!(response.status, 416);
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("InvalidRange")
    );
}

fn three_parts() -> Vec<Vec<u8>> {
    vec![
        pattern(5 * MIB, 11),
        pattern(5 * MIB, 12),
        pattern(300_001, 13),
    ]
}

#[tokio::test]
async fn ranges_across_multipart_part_boundaries() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let parts = three_parts();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    put_multipart(&s3, "bkt", "mp", &refs).await;
    let data = parts.concat();
    let p1 = 5 * MIB;
    let p2 = 10 * MIB;
    let last = data.len() - 1;
    let r = |a: usize, b: usize| format!("bytes={a}-{b}");
    let cases = [
        (r(p1 - 100, p1 + 100), Span(p1 - 100, p1 + 100)),
        (r(p1 - 1, p1), Span(p1 - 1, p1)),
        (r(p1, p1), Span(p1, p1)),
        (r(p1 - 1, p2), Span(p1 - 1, p2)),
        (r(65_530, p2 + 70_000), Span(65_530, p2 + 70_000)),
        (format!("bytes={p2}-"), Span(p2, last)),
        (
            "bytes=-400000".to_string(),
            Span(data.len() - 400_000, last),
        ),
        (format!("bytes={}-", data.len()), Unsatisfiable),
    ];
    check_ranges(&s3, "mp", &data, &cases).await;
}

#[tokio::test]
async fn part_number_get_returns_exactly_that_part() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let parts = three_parts();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    put_multipart(&s3, "bkt", "mp", &refs).await;
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut offset = 0;
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = ok(s3
            .get_object()
            .bucket("bkt")
            .key("mp")
            .part_number(number)
            .send()
            .await);
        assert_eq!(out.parts_count(), Some(3), "PartsCount for part {number}");
        assert_eq!(
            out.content_length(),
            Some(part.len() as i64),
            "length of part {number}"
        );
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {offset}-{}/{total}", offset + part.len() - 1).as_str()),
            "Content-Range of part {number}"
        );
        let bytes = ok(out.body.collect().await).into_bytes();
        assert!(bytes[..] == part[..], "part {number} bytes differ");
        offset += part.len();
    }
    let head = ok(s3
        .head_object()
        .bucket("bkt")
        .key("mp")
        .part_number(2)
        .send()
        .await);
    assert_eq!(head.content_length(), Some(5 * MIB as i64));
    assert_eq!(head.parts_count(), Some(3));

    assert_s3_error(
        s3.get_object()
            .bucket("bkt")
            .key("mp")
            .part_number(4)
            .send()
            .await,
        416,
        "InvalidPartNumber",
    );
}

#[tokio::test]
async fn part_number_one_of_a_single_part_object_is_the_whole_object() {
    let (_server, s3, data) = server_with_object(70_000).await;
    let out = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .part_number(1)
        .send()
        .await);
    let bytes = ok(out.body.collect().await).into_bytes();
    assert!(bytes[..] == data[..]);
    assert_s3_error(
        s3.get_object()
            .bucket("bkt")
            .key("k")
            .part_number(2)
            .send()
            .await,
        416,
        "InvalidPartNumber",
    );
}
