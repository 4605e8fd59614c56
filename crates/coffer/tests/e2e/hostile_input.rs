//! Hostile input end to end (issue 14, point 6): a presigned URL whose `X-Amz-Credential` holds
//! `%a` followed by a multi-byte character, and a KMS request whose query does, used to panic the
//! worker serving them (a `str` sliced inside a character). Each now gets a clean 4xx, the server
//! keeps serving, and nothing panicked.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use common::raw_http::{request, split_url};
use common::sigv4::{amz_date, hmac_sha256, sha256_hex, uri_encode};
use common::{ACCESS_KEY, REGION, SECRET_KEY, TestServer, create_bucket, get, ok, put};

#[track_caller]
fn assert_no_panic(server: &TestServer) {
    assert!(
        !server.stderr_contains("panicked"),
        "the server panicked:\n{}",
        server.output()
    );
}

#[tokio::test]
async fn a_broken_escape_before_a_multi_byte_character_in_a_presigned_credential_is_refused_cleanly()
 {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", b"contents").await;
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let (addr, target) = split_url(presigned.uri());
    let start = target.find("X-Amz-Credential=").unwrap() + "X-Amz-Credential=".len();
    let end = start + target[start..].find('&').unwrap_or(target.len() - start);
    let credential = &target[start..end];
    let with_credential = |c: &str| format!("{}{c}{}", &target[..start], &target[end..]);
    for hostile in ["%aé", "%a€", "%a😀", "%é", "AK%2F%aé%2F"] {
        let response = request(addr, "GET", &with_credential(hostile), &[], b"");
        assert_eq!(response.status, 400, "{hostile}: {}", response.body_text());
        assert_eq!(
            response.xml_element("Code").as_deref(),
            Some("AuthorizationQueryParametersError"),
            "{hostile}"
        );
    }
    // Before a well-formed credential: an access key nobody has.
    let response = request(
        addr,
        "GET",
        &with_credential(&format!("%aé{credential}")),
        &[],
        b"",
    );
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("InvalidAccessKeyId")
    );
    // The same broken escape in other parameters and in the path.
    for forged in [
        target.replacen("X-Amz-Signature=", "X-Amz-Signature=%aé", 1),
        target.replacen("/bkt/k?", "/bkt/k%aé?", 1),
        format!("{target}&x=%a€"),
    ] {
        let response = request(addr, "GET", &forged, &[], b"");
        assert!(
            (400..500).contains(&response.status),
            "{forged}: {} {}",
            response.status,
            response.body_text()
        );
    }
    // Still serving, and nothing panicked.
    assert_eq!(get(&s3, "bkt", "k").await, b"contents");
    assert_no_panic(&server);
}

#[tokio::test]
async fn a_kms_request_with_a_broken_escape_before_a_multi_byte_character_is_refused_cleanly() {
    let server = TestServer::start();
    let amz_date = amz_date(SystemTime::now());
    let date = &amz_date[..8];
    let body = b"{}";
    // A SigV4 signature by the root key over the query `x=%aé`, so that verification goes on
    // to canonicalize the hostile query.
    let mut key = hmac_sha256(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
    for part in [REGION, "kms", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let host = server.addr().to_string();
    let canonical = format!(
        "POST\n/\nx={}\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:TrentService.ListKeys\n\nhost;x-amz-date;x-amz-target\n{}",
        uri_encode("%aé", false),
        sha256_hex(body)
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{REGION}/kms/aws4_request\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let headers = vec![
        ("host".to_string(), host),
        ("x-amz-date".to_string(), amz_date.clone()),
        (
            "x-amz-target".to_string(),
            "TrentService.ListKeys".to_string(),
        ),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "authorization".to_string(),
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{date}/{REGION}/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature={signature}"
            ),
        ),
    ];
    // Signed as sent: the broken escape is canonicalized as text, and the call works.
    let response = request(server.addr(), "POST", "/?x=%aé", &headers, body);
    assert_eq!(response.status, 200, "{}", response.body_text());
    // The same signature over other hostile targets: a clean refusal.
    for target in ["/?x=%a€", "/?%a€=1", "/?x=%aé&y=%", "/%aé"] {
        let response = request(server.addr(), "POST", target, &headers, body);
        assert!(
            (400..500).contains(&response.status),
            "{target}: {} {}",
            response.status,
            response.body_text()
        );
        assert!(
            response.body_text().contains("Exception"),
            "{target}: {}",
            response.body_text()
        );
    }
    // Still serving KMS calls, and nothing panicked.
    ok(server.kms_client().list_keys().send().await);
    assert_no_panic(&server);
}
