//! Listing end to end: ListObjectsV2 and ListObjects (v1) with prefix, delimiter and
//! CommonPrefixes, continuation-token and marker paging, start-after, max-keys,
//! `encoding-type=url`, and ListObjectVersions on an unversioned bucket.

use crate::common;

use aws_sdk_s3::types::{EncodingType, ObjectStorageClass};
use common::{TestServer, create_bucket, ok, pattern, put, quoted_md5};

async fn server_with_keys(keys: &[&str]) -> (TestServer, aws_sdk_s3::Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    for key in keys {
        put(&s3, "bkt", key, key.as_bytes()).await;
    }
    (server, s3)
}

#[tokio::test]
async fn list_v2_returns_every_key_in_order_with_size_and_etag() {
    let (_server, s3) = server_with_keys(&["zeta", "alpha", "mid/one", "Alpha", "alpha0"]).await;
    let body = pattern(1234, 9);
    put(&s3, "bkt", "sized", &body).await;
    let out = ok(s3.list_objects_v2().bucket("bkt").send().await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    // Byte order: capitals before lowercase.
    assert_eq!(
        keys,
        ["Alpha", "alpha", "alpha0", "mid/one", "sized", "zeta"]
    );
    assert_eq!(out.key_count(), Some(6));
    assert_eq!(out.is_truncated(), Some(false));
    let sized = out
        .contents()
        .iter()
        .find(|o| o.key() == Some("sized"))
        .unwrap();
    assert_eq!(sized.size(), Some(1234));
    assert_eq!(sized.e_tag(), Some(quoted_md5(&body).as_str()));
    assert!(sized.last_modified().is_some());
    assert_eq!(sized.storage_class(), Some(&ObjectStorageClass::Standard));
}

#[tokio::test]
async fn list_v2_with_prefix_returns_only_matching_keys() {
    let (_server, s3) = server_with_keys(&["logs/2024/a", "logs/2025/b", "logsx", "data/c"]).await;
    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .prefix("logs/")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["logs/2024/a", "logs/2025/b"]);
    assert_eq!(out.prefix(), Some("logs/"));
}

#[tokio::test]
async fn list_v2_with_delimiter_groups_common_prefixes() {
    let (_server, s3) = server_with_keys(&["a/1", "a/2", "a/x/3", "b/1", "c", "d.txt"]).await;
    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .delimiter("/")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["c", "d.txt"]);
    assert_eq!(prefixes, ["a/", "b/"]);
    assert_eq!(out.delimiter(), Some("/"));
    assert_eq!(
        out.key_count(),
        Some(4),
        "KeyCount counts keys and common prefixes"
    );

    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(prefixes, ["a/x/"]);
}

#[tokio::test]
async fn list_v2_pages_with_continuation_tokens() {
    let keys = ["k0", "k1", "k2", "k3", "k4"];
    let (_server, s3) = server_with_keys(&keys).await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ok(s3
            .list_objects_v2()
            .bucket("bkt")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await);
        pages += 1;
        assert!(
            out.contents().len() <= 2,
            "page of {} keys",
            out.contents().len()
        );
        assert_eq!(out.max_keys(), Some(2));
        seen.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        if out.is_truncated() == Some(true) {
            token = Some(
                out.next_continuation_token()
                    .expect("a truncated page has a token")
                    .into(),
            );
        } else {
            assert_eq!(out.next_continuation_token(), None);
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, keys);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn list_v2_pages_count_common_prefixes_against_max_keys() {
    let (_server, s3) = server_with_keys(&["a/1", "a/2", "b/1", "c", "d/1", "d/2", "e"]).await;
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let out = ok(s3
            .list_objects_v2()
            .bucket("bkt")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await);
        let page: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .chain(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            )
            .collect();
        assert!(page.len() <= 2, "page {page:?} exceeds max-keys");
        entries.extend(page);
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.into()),
            _ => break,
        }
    }
    entries.sort();
    assert_eq!(entries, ["a/", "b/", "c", "d/", "e"]);
}

#[tokio::test]
async fn list_v2_start_after_skips_keys_up_to_and_including_it() {
    let (_server, s3) = server_with_keys(&["a", "b", "c", "d"]).await;
    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .start_after("b")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["c", "d"]);
    assert_eq!(out.start_after(), Some("b"));
    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .start_after("bb")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["c", "d"]);
}

#[tokio::test]
async fn list_v2_max_keys_truncates() {
    let (_server, s3) = server_with_keys(&["a", "b", "c"]).await;
    let out = ok(s3.list_objects_v2().bucket("bkt").max_keys(1).send().await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a"]);
    assert_eq!(out.key_count(), Some(1));
    assert_eq!(out.is_truncated(), Some(true));

    // max-keys=0 is an empty page, not a truncated one without a token (S3's answer).
    let out = ok(s3.list_objects_v2().bucket("bkt").max_keys(0).send().await);
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(false));
    assert_eq!(out.next_continuation_token(), None);
    let v1 = ok(s3.list_objects().bucket("bkt").max_keys(0).send().await);
    assert!(v1.contents().is_empty());
    assert_eq!(v1.is_truncated(), Some(false));
}

/// Decodes `application/x-www-form-urlencoded`-style percent encoding (S3 may send `+` or
/// `%20` for a space).
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("decoded key is UTF-8")
}

#[tokio::test]
async fn list_v2_with_url_encoding_encodes_keys_and_prefixes() {
    let odd_key = "dir one/ñame with space.txt";
    let (_server, s3) = server_with_keys(&[odd_key, "plain.txt", "sub dir/x"]).await;
    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .encoding_type(EncodingType::Url)
        .send()
        .await);
    assert_eq!(out.encoding_type(), Some(&EncodingType::Url));
    let raw_keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    for raw in &raw_keys {
        assert!(
            raw.is_ascii() && !raw.contains(' '),
            "key {raw:?} is not URL-encoded"
        );
    }
    let decoded: Vec<String> = raw_keys.iter().map(|k| form_decode(k)).collect();
    assert_eq!(decoded, [odd_key, "plain.txt", "sub dir/x"]);

    let out = ok(s3
        .list_objects_v2()
        .bucket("bkt")
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await);
    let raw_prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    for raw in &raw_prefixes {
        assert!(
            raw.is_ascii() && !raw.contains(' '),
            "prefix {raw:?} is not URL-encoded"
        );
    }
    let decoded: Vec<String> = raw_prefixes.iter().map(|p| form_decode(p)).collect();
    assert_eq!(decoded, ["dir one/", "sub dir/"]);
}

#[tokio::test]
async fn list_v1_pages_with_markers() {
    let keys = ["k0", "k1", "k2", "k3", "k4"];
    let (_server, s3) = server_with_keys(&keys).await;
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let out = ok(s3
            .list_objects()
            .bucket("bkt")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await);
        let page: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        assert!(page.len() <= 2);
        if let Some(m) = &marker {
            assert_eq!(out.marker(), Some(m.as_str()), "Marker echoed");
        }
        seen.extend(page.iter().cloned());
        if out.is_truncated() == Some(true) {
            // Without a delimiter S3 may omit NextMarker: the last key is the marker.
            marker = Some(
                out.next_marker()
                    .map(str::to_owned)
                    .unwrap_or_else(|| page.last().unwrap().clone()),
            );
        } else {
            break;
        }
    }
    assert_eq!(seen, keys);
}

#[tokio::test]
async fn list_v1_with_prefix_and_delimiter() {
    let (_server, s3) = server_with_keys(&["p/a/1", "p/a/2", "p/b", "p/c/3", "q"]).await;
    let out = ok(s3
        .list_objects()
        .bucket("bkt")
        .prefix("p/")
        .delimiter("/")
        .send()
        .await);
    let keys: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(keys, ["p/b"]);
    assert_eq!(prefixes, ["p/a/", "p/c/"]);
    assert_eq!(out.is_truncated(), Some(false));

    // With a delimiter, a truncated v1 page carries NextMarker.
    let out = ok(s3
        .list_objects()
        .bucket("bkt")
        .prefix("p/")
        .delimiter("/")
        .max_keys(1)
        .send()
        .await);
    assert_eq!(out.is_truncated(), Some(true));
    assert_eq!(out.next_marker(), Some("p/a/"));
}

#[tokio::test]
async fn list_object_versions_on_an_unversioned_bucket_reports_null_versions() {
    let (_server, s3) = server_with_keys(&["x", "y", "z"]).await;
    ok(s3.delete_object().bucket("bkt").key("z").send().await);
    let out = ok(s3.list_object_versions().bucket("bkt").send().await);
    let versions: Vec<_> = out
        .versions()
        .iter()
        .map(|v| (v.key().unwrap_or(""), v.version_id(), v.is_latest()))
        .collect();
    assert_eq!(
        versions,
        [
            ("x", Some("null"), Some(true)),
            ("y", Some("null"), Some(true))
        ]
    );
    assert!(
        out.delete_markers().is_empty(),
        "delete markers: {:?}",
        out.delete_markers()
    );
    let x = &out.versions()[0];
    assert_eq!(x.size(), Some(1));
    assert_eq!(x.e_tag(), Some(quoted_md5(b"x").as_str()));

    let out = ok(s3
        .list_object_versions()
        .bucket("bkt")
        .prefix("y")
        .send()
        .await);
    assert_eq!(out.versions().len(), 1);
}
