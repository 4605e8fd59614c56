//! Object operations end to end: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects
//! (quiet and verbose), user metadata and its 2 KiB limit, standard headers, `response-*`
//! overrides, and keys with unusual characters.

use crate::common;

use std::collections::HashMap;

use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use common::{
    TestServer, assert_s3_error, assert_s3_status, create_bucket, delete_request, get, ok, pattern,
    put, quoted_md5,
};

#[tokio::test]
async fn put_then_get_returns_the_same_bytes_with_an_md5_etag() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    for (i, size) in [0usize, 1, 15, 16, 17, 65_535, 65_536, 65_537, 1_000_003]
        .into_iter()
        .enumerate()
    {
        let key = format!("object-{size}");
        let body = pattern(size, i as u64);
        let etag = put(&s3, "bkt", &key, &body).await;
        assert_eq!(etag, quoted_md5(&body), "PUT ETag of {size} bytes");

        let out = ok(s3.get_object().bucket("bkt").key(&key).send().await);
        assert_eq!(
            out.content_length(),
            Some(size as i64),
            "Content-Length of {size} bytes"
        );
        assert_eq!(out.e_tag(), Some(etag.as_str()), "GET ETag of {size} bytes");
        let got = ok(out.body.collect().await).into_bytes();
        assert!(
            got[..] == body[..],
            "GET of {size} bytes returned different bytes"
        );
    }
}

#[tokio::test]
async fn an_eight_mebibyte_object_round_trips() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let body = pattern(8 << 20, 7);
    put(&s3, "bkt", "big", &body).await;
    assert!(
        get(&s3, "bkt", "big").await == body,
        "8 MiB object came back different"
    );
}

#[tokio::test]
async fn get_of_a_missing_key_is_no_such_key() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    assert_s3_error(
        s3.get_object().bucket("bkt").key("missing").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn head_of_a_missing_key_is_not_found() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    assert_s3_status(
        s3.head_object().bucket("bkt").key("missing").send().await,
        404,
    );
}

#[tokio::test]
async fn head_reports_length_etag_and_last_modified() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let body = pattern(12_345, 1);
    let before = std::time::SystemTime::now();
    put(&s3, "bkt", "k", &body).await;
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(head.content_length(), Some(12_345));
    assert_eq!(head.e_tag(), Some(quoted_md5(&body).as_str()));
    let modified = head.last_modified().expect("Last-Modified");
    let before_secs = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (modified.secs() - before_secs).abs() <= 5,
        "Last-Modified {modified} is not the time of the PUT"
    );
}

#[tokio::test]
async fn overwriting_replaces_the_object() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", &pattern(200_000, 1)).await;
    let second = pattern(70_000, 2);
    let etag = put(&s3, "bkt", "k", &second).await;
    assert_eq!(get(&s3, "bkt", "k").await, second);
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_length(), Some(70_000));
}

#[tokio::test]
async fn deleted_object_is_gone_and_deleting_a_missing_key_succeeds() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", b"bytes").await;
    ok(s3.delete_object().bucket("bkt").key("k").send().await);
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        404,
        "NoSuchKey",
    );
    // S3 answers 204 for a key that does not exist.
    ok(s3.delete_object().bucket("bkt").key("k").send().await);
    ok(s3
        .delete_object()
        .bucket("bkt")
        .key("never-existed")
        .send()
        .await);
}

#[tokio::test]
async fn delete_objects_verbose_reports_every_deleted_key() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    for key in ["a", "b/c", "d e"] {
        put(&s3, "bkt", key, key.as_bytes()).await;
    }
    put(&s3, "bkt", "kept", b"kept").await;
    let out = ok(s3
        .delete_objects()
        .bucket("bkt")
        .delete(delete_request(&["a", "b/c", "d e", "not-there"], false))
        .send()
        .await);
    let mut deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    // Deleting a missing key is a success in S3, reported like the others.
    assert_eq!(deleted, ["a", "b/c", "d e", "not-there"]);
    assert!(
        out.errors().is_empty(),
        "unexpected errors: {:?}",
        out.errors()
    );

    let list = ok(s3.list_objects_v2().bucket("bkt").send().await);
    let keys: Vec<_> = list.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["kept"]);
}

#[tokio::test]
async fn delete_objects_quiet_reports_no_successes() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    for key in ["x", "y"] {
        put(&s3, "bkt", key, b"v").await;
    }
    let out = ok(s3
        .delete_objects()
        .bucket("bkt")
        .delete(delete_request(&["x", "y"], true))
        .send()
        .await);
    assert!(
        out.deleted().is_empty(),
        "quiet mode listed deletions: {:?}",
        out.deleted()
    );
    assert!(
        out.errors().is_empty(),
        "unexpected errors: {:?}",
        out.errors()
    );
    let list = ok(s3.list_objects_v2().bucket("bkt").send().await);
    assert!(
        list.contents().is_empty(),
        "objects survived: {:?}",
        list.contents()
    );
}

#[tokio::test]
async fn user_metadata_round_trips_on_get_and_head() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .metadata("color", "blue")
        .metadata("Mixed-Case", "Value With Spaces")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    let expected: HashMap<String, String> =
        [("color", "blue"), ("mixed-case", "Value With Spaces")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let get = ok(s3.get_object().bucket("bkt").key("k").send().await);
    assert_eq!(get.metadata(), Some(&expected), "GET metadata");
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(head.metadata(), Some(&expected), "HEAD metadata");
}

#[tokio::test]
async fn user_metadata_over_2_kib_is_metadata_too_large() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    // S3 counts the UTF-8 bytes of every key and value: 2 KiB in all.
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .metadata("big", "x".repeat(2_100))
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "MetadataTooLarge",
    );
    assert_s3_status(s3.head_object().bucket("bkt").key("k").send().await, 404);
    // Just under the limit is fine.
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .metadata("big", "x".repeat(1_900))
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
}

#[tokio::test]
async fn content_headers_cache_control_and_expires_round_trip() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let expires = "Wed, 21 Oct 2037 07:28:00 GMT";
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("page.html.gz")
        .content_type("text/html; charset=utf-8")
        .content_encoding("gzip")
        .content_disposition("attachment; filename=\"page.html\"")
        .content_language("de-CH")
        .cache_control("max-age=3600, must-revalidate")
        .expires(DateTime::from_str(expires, DateTimeFormat::HttpDate).unwrap())
        .body(ByteStream::from_static(b"not really gzip"))
        .send()
        .await);
    let get = ok(s3
        .get_object()
        .bucket("bkt")
        .key("page.html.gz")
        .send()
        .await);
    assert_eq!(get.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(get.content_encoding(), Some("gzip"));
    assert_eq!(
        get.content_disposition(),
        Some("attachment; filename=\"page.html\"")
    );
    assert_eq!(get.content_language(), Some("de-CH"));
    assert_eq!(get.cache_control(), Some("max-age=3600, must-revalidate"));
    assert_eq!(get.expires_string(), Some(expires));
    let head = ok(s3
        .head_object()
        .bucket("bkt")
        .key("page.html.gz")
        .send()
        .await);
    assert_eq!(head.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"page.html\"")
    );
    assert_eq!(head.content_language(), Some("de-CH"));
    assert_eq!(head.cache_control(), Some("max-age=3600, must-revalidate"));
    assert_eq!(head.expires_string(), Some(expires));
}

#[tokio::test]
async fn response_overrides_replace_headers_on_get() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .content_type("text/plain")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await);
    let expires = "Thu, 01 Jan 2037 00:00:00 GMT";
    let get = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .response_content_type("application/x-override")
        .response_content_disposition("attachment; filename=\"o.bin\"")
        .response_content_encoding("identity")
        .response_content_language("fr")
        .response_cache_control("no-store")
        .response_expires(DateTime::from_str(expires, DateTimeFormat::HttpDate).unwrap())
        .send()
        .await);
    assert_eq!(get.content_type(), Some("application/x-override"));
    assert_eq!(
        get.content_disposition(),
        Some("attachment; filename=\"o.bin\"")
    );
    assert_eq!(get.content_encoding(), Some("identity"));
    assert_eq!(get.content_language(), Some("fr"));
    assert_eq!(get.cache_control(), Some("no-store"));
    assert_eq!(get.expires_string(), Some(expires));
    assert_eq!(&ok(get.body.collect().await).into_bytes()[..], b"hello");
    // The stored headers are unchanged.
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(head.content_type(), Some("text/plain"));
}

#[tokio::test]
async fn keys_with_unusual_characters_round_trip() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let keys = [
        "dir/sub dir/file name.txt",
        "ünïcødé/日本語.txt",
        "plus+and%percent&amp=eq?question#hash",
        "trailing/slash/",
        "a//double//slashes",
        "~tilde!*'()",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = pattern(100 + i, i as u64);
        put(&s3, "bkt", key, &body).await;
        assert_eq!(get(&s3, "bkt", key).await, body, "key {key:?}");
    }
    let list = ok(s3.list_objects_v2().bucket("bkt").send().await);
    let mut listed: Vec<_> = list.contents().iter().filter_map(|o| o.key()).collect();
    listed.sort();
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
}

/// Decodes a value made of RFC 2047 encoded-words (`=?UTF-8?B?…?=`, `=?UTF-8?Q?…?=`, separated
/// by whitespace); anything else is returned unchanged.
fn rfc2047_decode(value: &str) -> String {
    let mut bytes = Vec::new();
    for word in value.split_whitespace() {
        let parts: Vec<&str> = word.split('?').collect();
        let [_, charset, encoding, text, _] = parts[..] else {
            return value.to_string();
        };
        if !word.starts_with("=?")
            || !word.ends_with("?=")
            || !charset.eq_ignore_ascii_case("utf-8")
        {
            return value.to_string();
        }
        match encoding {
            "B" | "b" => bytes.extend(aws_smithy_types::base64::decode(text).expect("base64 word")),
            "Q" | "q" => {
                let mut chars = text.bytes();
                while let Some(c) = chars.next() {
                    match c {
                        b'_' => bytes.push(b' '),
                        b'=' => {
                            let hex = [chars.next().unwrap(), chars.next().unwrap()];
                            let hex = std::str::from_utf8(&hex).unwrap();
                            bytes.push(u8::from_str_radix(hex, 16).expect("Q escape"));
                        }
                        c => bytes.push(c),
                    }
                }
            }
            _ => return value.to_string(),
        }
    }
    String::from_utf8(bytes).expect("decoded metadata is UTF-8")
}

#[tokio::test]
async fn non_ascii_metadata_sent_rfc_2047_encoded_comes_back_rfc_2047_encoded() {
    // S3 decodes RFC 2047 metadata values on PUT and encodes them again on GET and HEAD, so a
    // client that decodes what it gets back sees the text it stored.
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let text = "Grüße aus Zürich – 日本";
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("k")
        .metadata(
            "greeting",
            "=?UTF-8?B?R3LDvMOfZSBhdXMgWsO8cmljaCDigJMg5pel5pys?=",
        )
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    let get = ok(s3.get_object().bucket("bkt").key("k").send().await);
    let returned = get.metadata().and_then(|m| m.get("greeting")).cloned();
    let returned = returned.expect("greeting metadata on GET");
    assert!(
        returned.is_ascii(),
        "GET returned a non-ASCII header: {returned:?}"
    );
    assert_eq!(rfc2047_decode(&returned), text, "GET returned {returned:?}");
    let head = ok(s3.head_object().bucket("bkt").key("k").send().await);
    let returned = head.metadata().and_then(|m| m.get("greeting")).cloned();
    let returned = returned.expect("greeting metadata on HEAD");
    assert_eq!(
        rfc2047_decode(&returned),
        text,
        "HEAD returned {returned:?}"
    );
}

#[tokio::test]
async fn non_ascii_metadata_sent_as_raw_utf8_comes_back_rfc_2047_encoded() {
    // S3: "the provided Unicode string is examined for non-US-ASCII characters … decoded as per
    // RFC 2047 before storing and encoded as per RFC 2047 to be made safe for returning".
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let text = "Grüße aus Zürich – 日本";
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("raw")
        .metadata("greeting", text)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await);
    let head = ok(s3.head_object().bucket("bkt").key("raw").send().await);
    let returned = head.metadata().and_then(|m| m.get("greeting")).cloned();
    let returned = returned.expect("greeting metadata on HEAD");
    assert!(
        returned.is_ascii(),
        "HEAD returned a non-ASCII header: {returned:?}"
    );
    assert_eq!(
        rfc2047_decode(&returned),
        text,
        "HEAD returned {returned:?}"
    );
}

#[tokio::test]
async fn an_object_stored_without_content_type_is_served_as_binary_octet_stream() {
    use common::raw_http::request;
    use common::sigv4::{Signer, sha256_hex};
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    let body = b"no type given";
    Signer::root().sign(
        "PUT",
        "/bkt/untyped",
        &[],
        &mut headers,
        &sha256_hex(body),
        std::time::SystemTime::now(),
    );
    let r = request(server.addr(), "PUT", "/bkt/untyped", &headers, body);
    assert_eq!(r.status, 200, "{}", r.body_text());
    let head = ok(s3.head_object().bucket("bkt").key("untyped").send().await);
    assert_eq!(head.content_type(), Some("binary/octet-stream"));
    let got = ok(s3.get_object().bucket("bkt").key("untyped").send().await);
    assert_eq!(got.content_type(), Some("binary/octet-stream"));
}
