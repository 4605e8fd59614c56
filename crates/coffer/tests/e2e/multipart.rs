//! Multipart upload end to end: create, upload part, upload part copy (with range), list parts,
//! list uploads, complete (md5-of-md5s ETag; InvalidPart, InvalidPartOrder, EntityTooSmall),
//! abort and NoSuchUpload; the object's checksum (COMPOSITE for an upload created with a
//! checksum algorithm, the whole body's CRC64NVME otherwise) and the part checksum rules.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::{
    TestServer, assert_s3_error, create_bucket, get, multipart_etag, ok, pattern, put,
    put_multipart, quoted_md5,
};

const MIB: usize = 1 << 20;

async fn setup() -> (TestServer, aws_sdk_s3::Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    (server, s3)
}

async fn create(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let out = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .send()
        .await);
    assert_eq!(out.bucket(), Some("bkt"));
    assert_eq!(out.key(), Some(key));
    out.upload_id().expect("upload id").to_string()
}

async fn upload(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    number: i32,
    data: &[u8],
) -> String {
    let out = ok(s3
        .upload_part()
        .bucket("bkt")
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await);
    out.e_tag().expect("part ETag").to_string()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

async fn complete(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    parts: &[(i32, &str)],
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
    >,
> {
    s3.complete_multipart_upload()
        .bucket("bkt")
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(completed(parts))
        .send()
        .await
}

#[tokio::test]
async fn three_part_upload_round_trips_with_an_md5_of_md5s_etag() {
    let (_server, s3) = setup().await;
    let parts = [
        pattern(5 * MIB, 1),
        pattern(5 * MIB + 7, 2),
        pattern(1_234_567, 3),
    ];
    let id = create(&s3, "big").await;
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let etag = upload(&s3, "big", &id, i as i32 + 1, part).await;
        assert_eq!(etag, quoted_md5(part), "ETag of part {}", i + 1);
        etags.push(etag);
    }
    let out = ok(complete(
        &s3,
        "big",
        &id,
        &[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])],
    )
    .await);
    let expected = multipart_etag(&[&parts[0], &parts[1], &parts[2]]);
    let etag = out.e_tag().expect("complete ETag");
    assert_eq!(etag, expected);
    let hex_part = etag.trim_matches('"').split('-').next().unwrap();
    assert!(
        hex_part.len() == 32 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()),
        "ETag {etag} is not \"<32 hex>-N\""
    );
    assert!(etag.ends_with("-3\""), "ETag {etag} does not end in -3");

    let data = parts.concat();
    assert!(
        get(&s3, "bkt", "big").await == data,
        "multipart object differs"
    );
    let head = ok(s3.head_object().bucket("bkt").key("big").send().await);
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.e_tag(), Some(expected.as_str()));
    let list = ok(s3.list_objects_v2().bucket("bkt").send().await);
    assert_eq!(list.contents()[0].size(), Some(data.len() as i64));
    assert_eq!(list.contents()[0].e_tag(), Some(expected.as_str()));
}

#[tokio::test]
async fn a_single_small_part_is_a_valid_upload() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "one").await;
    let etag = upload(&s3, "one", &id, 1, b"only part, may be small").await;
    let out = ok(complete(&s3, "one", &id, &[(1, &etag)]).await);
    assert_eq!(
        out.e_tag(),
        Some(multipart_etag(&[b"only part, may be small"]).as_str())
    );
    assert_eq!(get(&s3, "bkt", "one").await, b"only part, may be small");
}

#[tokio::test]
async fn create_multipart_keeps_content_type_and_metadata() {
    let (_server, s3) = setup().await;
    let out = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("m")
        .content_type("video/mp4")
        .metadata("camera", "x100")
        .send()
        .await);
    let id = out.upload_id().unwrap();
    let etag = upload(&s3, "m", id, 1, b"frames").await;
    ok(complete(&s3, "m", id, &[(1, &etag)]).await);
    let head = ok(s3.head_object().bucket("bkt").key("m").send().await);
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("camera"))
            .map(String::as_str),
        Some("x100")
    );
}

#[tokio::test]
async fn list_parts_reports_numbers_sizes_and_etags() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let one = pattern(1024, 1);
    let two = pattern(2048, 2);
    let e1 = upload(&s3, "k", &id, 1, &one).await;
    let e2 = upload(&s3, "k", &id, 2, &two).await;
    let out = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await);
    let parts: Vec<_> = out
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size(), p.e_tag().map(str::to_owned)))
        .collect();
    assert_eq!(
        parts,
        [
            (Some(1), Some(1024), Some(e1)),
            (Some(2), Some(2048), Some(e2))
        ]
    );
    assert_eq!(out.is_truncated(), Some(false));

    let out = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .max_parts(1)
        .send()
        .await);
    assert_eq!(out.parts().len(), 1);
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.next_part_number_marker(), Some("1"));
    let out = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .part_number_marker("1")
        .send()
        .await);
    assert_eq!(
        out.parts()
            .iter()
            .map(|p| p.part_number())
            .collect::<Vec<_>>(),
        [Some(2)]
    );
}

#[tokio::test]
async fn list_multipart_uploads_shows_uploads_in_progress() {
    let (_server, s3) = setup().await;
    let a = create(&s3, "a").await;
    let b = create(&s3, "b/nested").await;
    let out = ok(s3.list_multipart_uploads().bucket("bkt").send().await);
    let uploads: Vec<_> = out
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap_or(""), u.upload_id().unwrap_or("")))
        .collect();
    assert_eq!(uploads, [("a", a.as_str()), ("b/nested", b.as_str())]);

    let out = ok(s3
        .list_multipart_uploads()
        .bucket("bkt")
        .prefix("b/")
        .send()
        .await);
    assert_eq!(out.uploads().len(), 1);

    ok(s3
        .abort_multipart_upload()
        .bucket("bkt")
        .key("a")
        .upload_id(&a)
        .send()
        .await);
    let etag = upload(&s3, "b/nested", &b, 1, b"x").await;
    ok(complete(&s3, "b/nested", &b, &[(1, &etag)]).await);
    let out = ok(s3.list_multipart_uploads().bucket("bkt").send().await);
    assert!(
        out.uploads().is_empty(),
        "finished uploads still listed: {:?}",
        out.uploads()
    );
}

#[tokio::test]
async fn list_multipart_uploads_pages_through_every_upload_once() {
    let (_server, s3) = setup().await;
    // Two uploads of one key: S3 lists them oldest first, and paging must resume in that order.
    let mut created = Vec::new();
    for key in ["a/1", "a/2", "b", "c", "c", "c"] {
        created.push((key.to_string(), create(&s3, key).await));
    }
    let everything = ok(s3.list_multipart_uploads().bucket("bkt").send().await);
    let all: Vec<(String, String)> = everything
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap().to_string(),
                u.upload_id().unwrap().to_string(),
            )
        })
        .collect();
    let (mut sorted_all, mut sorted_created) = (all.clone(), created.clone());
    sorted_all.sort();
    sorted_created.sort();
    assert_eq!(sorted_all, sorted_created);
    for page_size in [1, 2, 4] {
        let mut seen = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        for _ in 0..20 {
            let out = ok(s3
                .list_multipart_uploads()
                .bucket("bkt")
                .max_uploads(page_size)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await);
            assert!(out.uploads().len() <= page_size as usize);
            seen.extend(out.uploads().iter().map(|u| {
                (
                    u.key().unwrap().to_string(),
                    u.upload_id().unwrap().to_string(),
                )
            }));
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
        }
        assert_eq!(seen, all, "pages of {page_size}");
    }
    let out = ok(s3
        .list_multipart_uploads()
        .bucket("bkt")
        .max_uploads(0)
        .send()
        .await);
    assert!(out.uploads().is_empty());
    assert_eq!(out.is_truncated(), Some(false));

    // A marker upload aborted between pages: the next page still starts right after it.
    let cs: Vec<&(String, String)> = all.iter().filter(|(k, _)| k == "c").collect();
    ok(s3
        .abort_multipart_upload()
        .bucket("bkt")
        .key("c")
        .upload_id(&cs[0].1)
        .send()
        .await);
    let out = ok(s3
        .list_multipart_uploads()
        .bucket("bkt")
        .key_marker("c")
        .upload_id_marker(&cs[0].1)
        .send()
        .await);
    let rest: Vec<&str> = out.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(rest, [cs[1].1.as_str(), cs[2].1.as_str()]);
}

#[tokio::test]
async fn an_aborted_upload_is_no_such_upload() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let etag = upload(&s3, "k", &id, 1, b"part").await;
    ok(s3
        .abort_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await);

    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(2)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
    assert_s3_error(
        s3.list_parts()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
    assert_s3_error(
        complete(&s3, "k", &id, &[(1, &etag)]).await,
        404,
        "NoSuchUpload",
    );
    assert_s3_error(
        s3.abort_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn an_unknown_upload_id_is_no_such_upload() {
    let (_server, s3) = setup().await;
    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id("does-not-exist")
            .part_number(1)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
}

#[tokio::test]
async fn a_completed_upload_accepts_no_more_parts() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let etag = upload(&s3, "k", &id, 1, b"done").await;
    ok(complete(&s3, "k", &id, &[(1, &etag)]).await);
    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&id)
            .part_number(2)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
}

#[tokio::test]
async fn complete_with_a_wrong_etag_is_invalid_part() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    upload(&s3, "k", &id, 1, b"part one").await;
    assert_s3_error(
        complete(
            &s3,
            "k",
            &id,
            &[(1, "\"0123456789abcdef0123456789abcdef\"")],
        )
        .await,
        400,
        "InvalidPart",
    );
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn complete_with_a_part_never_uploaded_is_invalid_part() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let etag = upload(&s3, "k", &id, 1, b"part one").await;
    assert_s3_error(
        complete(&s3, "k", &id, &[(1, &etag), (2, &etag)]).await,
        400,
        "InvalidPart",
    );
}

#[tokio::test]
async fn complete_with_parts_out_of_order_is_invalid_part_order() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let one = pattern(5 * MIB, 1);
    let e1 = upload(&s3, "k", &id, 1, &one).await;
    let e2 = upload(&s3, "k", &id, 2, b"last").await;
    assert_s3_error(
        complete(&s3, "k", &id, &[(2, &e2), (1, &e1)]).await,
        400,
        "InvalidPartOrder",
    );
    // The upload is still usable after a refused completion.
    ok(complete(&s3, "k", &id, &[(1, &e1), (2, &e2)]).await);
}

#[tokio::test]
async fn complete_with_a_small_non_last_part_is_entity_too_small() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let e1 = upload(&s3, "k", &id, 1, &pattern(MIB, 1)).await;
    let e2 = upload(&s3, "k", &id, 2, &pattern(MIB, 2)).await;
    assert_s3_error(
        complete(&s3, "k", &id, &[(1, &e1), (2, &e2)]).await,
        400,
        "EntityTooSmall",
    );
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn re_uploading_a_part_replaces_it() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    upload(&s3, "k", &id, 1, b"first version of part one").await;
    let etag = upload(&s3, "k", &id, 1, b"second version").await;
    let out = ok(s3
        .list_parts()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .send()
        .await);
    assert_eq!(out.parts().len(), 1);
    assert_eq!(out.parts()[0].e_tag(), Some(etag.as_str()));
    ok(complete(&s3, "k", &id, &[(1, &etag)]).await);
    assert_eq!(get(&s3, "bkt", "k").await, b"second version");
}

#[tokio::test]
async fn complete_with_a_subset_of_uploaded_parts_uses_only_those() {
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let p1 = pattern(5 * MIB, 1);
    let p2 = pattern(5 * MIB, 2);
    let p3 = pattern(1000, 3);
    let e1 = upload(&s3, "k", &id, 1, &p1).await;
    upload(&s3, "k", &id, 2, &p2).await;
    let e3 = upload(&s3, "k", &id, 3, &p3).await;
    let out = ok(complete(&s3, "k", &id, &[(1, &e1), (3, &e3)]).await);
    assert_eq!(out.e_tag(), Some(multipart_etag(&[&p1, &p3]).as_str()));
    assert!(
        get(&s3, "bkt", "k").await == [p1, p3].concat(),
        "object is not parts 1 and 3"
    );
}

#[tokio::test]
async fn upload_part_copy_with_ranges_assembles_the_source() {
    let (_server, s3) = setup().await;
    let source = pattern(6 * MIB + 100, 42);
    put(&s3, "bkt", "source", &source).await;
    let id = create(&s3, "assembled").await;
    let head = upload(&s3, "assembled", &id, 1, &pattern(5 * MIB, 43)).await;
    let split = 5 * MIB;
    let mut etags = vec![head];
    for (number, range) in [
        (2, format!("bytes=0-{}", split - 1)),
        (3, format!("bytes={split}-{}", source.len() - 1)),
    ] {
        let out = ok(s3
            .upload_part_copy()
            .bucket("bkt")
            .key("assembled")
            .upload_id(&id)
            .part_number(number)
            .copy_source("bkt/source")
            .copy_source_range(range)
            .send()
            .await);
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .expect("part ETag")
            .to_string();
        etags.push(etag);
    }
    assert_eq!(etags[1], quoted_md5(&source[..split]));
    assert_eq!(etags[2], quoted_md5(&source[split..]));
    ok(complete(
        &s3,
        "assembled",
        &id,
        &[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])],
    )
    .await);
    let mut expected = pattern(5 * MIB, 43);
    expected.extend_from_slice(&source);
    assert!(
        get(&s3, "bkt", "assembled").await == expected,
        "assembled object differs"
    );
}

#[tokio::test]
async fn empty_parts_upload_and_copy_and_complete_to_an_empty_object() {
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "empty-source", b"").await;
    let upload_id = create(&s3, "empty").await;
    let uploaded = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("empty")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b""))
        .send()
        .await);
    assert_eq!(uploaded.e_tag(), Some(quoted_md5(b"").as_str()));
    let copied = ok(s3
        .upload_part_copy()
        .bucket("bkt")
        .key("empty")
        .upload_id(&upload_id)
        .part_number(2)
        .copy_source("bkt/empty-source")
        .send()
        .await);
    let copied_etag = copied.copy_part_result().and_then(|r| r.e_tag()).unwrap();
    assert_eq!(copied_etag, quoted_md5(b""));
    ok(s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("empty")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(uploaded.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "empty").await, b"");
}

/// Uploads `parts` to a new upload of `key` created with `algorithm` (each part sent with that
/// algorithm, so the SDK computes its checksum) and returns the upload id and the parts' answers.
async fn upload_with_checksums(
    s3: &aws_sdk_s3::Client,
    key: &str,
    algorithm: aws_sdk_s3::types::ChecksumAlgorithm,
    parts: &[&[u8]],
) -> (
    String,
    Vec<aws_sdk_s3::operation::upload_part::UploadPartOutput>,
) {
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key(key)
        .checksum_algorithm(algorithm.clone())
        .send()
        .await);
    let id = upload.upload_id().unwrap().to_string();
    let mut outs = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        outs.push(ok(s3
            .upload_part()
            .bucket("bkt")
            .key(key)
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await));
    }
    (id, outs)
}

#[tokio::test]
async fn an_upload_with_a_checksum_algorithm_gets_a_composite_checksum() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use common::checksum::sha256_b64;
    let (_server, s3) = setup().await;
    let first = pattern(5 * 1024 * 1024, 1);
    let second = pattern(1000, 2);
    let (id, outs) =
        upload_with_checksums(&s3, "sha", ChecksumAlgorithm::Sha256, &[&first, &second]).await;
    assert_eq!(outs[0].checksum_sha256(), Some(sha256_b64(&first).as_str()));

    let part = |n: i32, out: &aws_sdk_s3::operation::upload_part::UploadPartOutput| {
        CompletedPart::builder()
            .part_number(n)
            .e_tag(out.e_tag().unwrap())
    };
    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("sha")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
    };
    // Every part's checksum is required, and must be the part's.
    assert_s3_error(
        complete(vec![
            part(1, &outs[0])
                .checksum_sha256(sha256_b64(&first))
                .build(),
            part(2, &outs[1]).build(),
        ])
        .await,
        400,
        "InvalidRequest",
    );
    assert_s3_error(
        complete(vec![
            part(1, &outs[0])
                .checksum_sha256(sha256_b64(&first))
                .build(),
            part(2, &outs[1])
                .checksum_sha256(sha256_b64(b"not the part"))
                .build(),
        ])
        .await,
        400,
        "InvalidPart",
    );
    // A part with another algorithm than the upload's is refused.
    assert_s3_error(
        s3.upload_part()
            .bucket("bkt")
            .key("sha")
            .upload_id(&id)
            .part_number(3)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from_static(b"wrong kind"))
            .send()
            .await,
        400,
        "InvalidRequest",
    );

    let done = ok(complete(vec![
        part(1, &outs[0])
            .checksum_sha256(sha256_b64(&first))
            .build(),
        part(2, &outs[1])
            .checksum_sha256(sha256_b64(&second))
            .build(),
    ])
    .await);
    // COMPOSITE: SHA-256 over the concatenated part SHA-256s, with the part count.
    let raw = |data: &[u8]| common::sigv4::sha256(data).to_vec();
    let expected = format!("{}-2", sha256_b64(&[raw(&first), raw(&second)].concat()));
    assert_eq!(done.checksum_sha256(), Some(expected.as_str()));
    let head = ok(s3
        .head_object()
        .bucket("bkt")
        .key("sha")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    assert_eq!(head.checksum_sha256(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));
    assert_eq!(get(&s3, "bkt", "sha").await, [first, second].concat());
}

#[tokio::test]
async fn a_multipart_object_has_the_crc64nvme_of_its_whole_body() {
    use aws_sdk_s3::types::{ChecksumMode, ChecksumType};
    use common::checksum::crc64nvme_b64;
    let (_server, s3) = setup().await;
    let first = pattern(5 * 1024 * 1024, 3);
    let second = pattern(77_777, 4);
    put_multipart(&s3, "bkt", "plain", &[&first, &second]).await;
    let head = ok(s3
        .head_object()
        .bucket("bkt")
        .key("plain")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    let whole = [first, second].concat();
    assert_eq!(
        head.checksum_crc64_nvme(),
        Some(crc64nvme_b64(&whole).as_str())
    );
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test]
async fn a_full_object_crc32_upload_is_checked_and_kept_whole() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use common::checksum::crc32_b64;
    let (_server, s3) = setup().await;
    put(&s3, "bkt", "source", &pattern(100_000, 9)).await;
    let first = pattern(5 * 1024 * 1024, 5);
    let upload = ok(s3
        .create_multipart_upload()
        .bucket("bkt")
        .key("full")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await);
    assert_eq!(upload.checksum_type(), Some(&ChecksumType::FullObject));
    let id = upload.upload_id().unwrap().to_string();
    let one = ok(s3
        .upload_part()
        .bucket("bkt")
        .key("full")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(first.clone()))
        .send()
        .await);
    // A copied part reports the upload's checksum, so the upload can be completed with it.
    let two = ok(s3
        .upload_part_copy()
        .bucket("bkt")
        .key("full")
        .upload_id(&id)
        .part_number(2)
        .copy_source("bkt/source")
        .copy_source_range("bytes=0-49999")
        .send()
        .await);
    let copied = two.copy_part_result().unwrap();
    let second = pattern(100_000, 9)[..50_000].to_vec();
    assert_eq!(copied.checksum_crc32(), Some(crc32_b64(&second).as_str()));
    let whole = [first.clone(), second.clone()].concat();
    let parts = vec![
        CompletedPart::builder()
            .part_number(1)
            .e_tag(one.e_tag().unwrap())
            .checksum_crc32(one.checksum_crc32().unwrap())
            .build(),
        CompletedPart::builder()
            .part_number(2)
            .e_tag(copied.e_tag().unwrap())
            .checksum_crc32(copied.checksum_crc32().unwrap())
            .build(),
    ];
    let complete = |object_crc: String| {
        s3.complete_multipart_upload()
            .bucket("bkt")
            .key("full")
            .upload_id(&id)
            .checksum_crc32(object_crc)
            .checksum_type(ChecksumType::FullObject)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
    };
    // The CRC32 given on Complete is the whole object's; a wrong one completes nothing.
    assert_s3_error(complete(crc32_b64(b"other")).await, 400, "BadDigest");
    let done = ok(complete(crc32_b64(&whole)).await);
    assert_eq!(done.checksum_crc32(), Some(crc32_b64(&whole).as_str()));
    let head = ok(s3
        .head_object()
        .bucket("bkt")
        .key("full")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await);
    assert_eq!(head.checksum_crc32(), Some(crc32_b64(&whole).as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(get(&s3, "bkt", "full").await, whole);

    // CRC64NVME has no composite form.
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("bkt")
            .key("bad")
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::Composite)
            .send()
            .await,
        400,
        "InvalidRequest",
    );
}

#[tokio::test]
async fn complete_accepts_the_uploads_own_sse_s3_header() {
    // minio-go (mc) repeats the upload's SSE-S3 header on Complete for non-Amazon endpoints.
    let (_server, s3) = setup().await;
    let id = create(&s3, "k").await;
    let etag = upload(&s3, "k", &id, 1, b"only part").await;
    ok(s3
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .customize()
        .mutate_request(|r| {
            r.headers_mut()
                .insert("x-amz-server-side-encryption", "AES256");
        })
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "k").await, b"only part");
}
