//! Authentication end to end: SigV4 in headers (wrong secret, unknown key, wrong region, clock
//! skew, payload hash mismatch, UNSIGNED-PAYLOAD), presigned GET and PUT (valid, expired,
//! tampered), anonymous requests, and the shape of S3 XML error bodies.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::raw_http::{RawResponse, fetch_presigned, request, split_url};
use common::sigv4::{Signer, sha256_hex};
use common::{ACCESS_KEY, SECRET_KEY, TestServer, assert_s3_error, create_bucket, get, ok, put};

const HOUR: Duration = Duration::from_secs(3600);

async fn setup() -> (TestServer, Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", b"secret contents").await;
    (server, s3)
}

fn client_with(server: &TestServer, access_key: &str, secret_key: &str, region: &str) -> Client {
    Client::from_conf(
        server
            .config_builder()
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
            .region(Region::new(region.to_string()))
            .build(),
    )
}

/// A GET of `path` signed by hand at `time`, with an empty payload.
fn signed_get(server: &TestServer, path: &str, time: SystemTime) -> RawResponse {
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    Signer::root().sign("GET", path, &[], &mut headers, &sha256_hex(b""), time);
    request(server.addr(), "GET", path, &headers, b"")
}

#[tokio::test]
async fn a_wrong_secret_is_signature_does_not_match() {
    let (server, _) = setup().await;
    let s3 = client_with(
        &server,
        ACCESS_KEY,
        "WrongSecretKey00000000000000000000000000",
        "us-east-1",
    );
    assert_s3_error(s3.list_buckets().send().await, 403, "SignatureDoesNotMatch");
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        403,
        "SignatureDoesNotMatch",
    );
    assert_s3_error(
        s3.put_object()
            .bucket("bkt")
            .key("k")
            .body(ByteStream::from_static(b"overwrite"))
            .send()
            .await,
        403,
        "SignatureDoesNotMatch",
    );
}

#[tokio::test]
async fn an_unknown_access_key_is_invalid_access_key_id() {
    let (server, _) = setup().await;
    let s3 = client_with(&server, "AKIAUNKNOWN000000000", SECRET_KEY, "us-east-1");
    assert_s3_error(s3.list_buckets().send().await, 403, "InvalidAccessKeyId");
    assert_s3_error(
        s3.get_object().bucket("bkt").key("k").send().await,
        403,
        "InvalidAccessKeyId",
    );
}

#[tokio::test]
async fn a_signature_for_another_region_is_authorization_header_malformed() {
    let (server, _) = setup().await;
    let s3 = client_with(&server, ACCESS_KEY, SECRET_KEY, "eu-west-1");
    assert_s3_error(
        s3.list_buckets().send().await,
        400,
        "AuthorizationHeaderMalformed",
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_authorization_header_malformed() {
    let (server, _) = setup().await;
    let headers = [
        (
            "x-amz-date".to_string(),
            common::sigv4::amz_date(SystemTime::now()),
        ),
        ("x-amz-content-sha256".to_string(), sha256_hex(b"")),
        (
            "authorization".to_string(),
            "AWS4-HMAC-SHA256 Credential=garbage, SignedHeaders=host, Signature=00".to_string(),
        ),
    ];
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("AuthorizationHeaderMalformed")
    );
}

#[tokio::test]
async fn a_hand_signed_request_is_accepted() {
    // Pins the harness signer, so the failures below mean what they say.
    let (server, _) = setup().await;
    let response = signed_get(&server, "/bkt/k", SystemTime::now());
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.body, b"secret contents");
}

#[tokio::test]
async fn a_request_signed_an_hour_off_is_request_time_too_skewed() {
    let (server, _) = setup().await;
    for time in [SystemTime::now() - HOUR, SystemTime::now() + HOUR] {
        let response = signed_get(&server, "/bkt/k", time);
        assert_eq!(response.status, 403, "{}", response.body_text());
        assert_eq!(
            response.xml_element("Code").as_deref(),
            Some("RequestTimeTooSkewed")
        );
    }
}

#[tokio::test]
async fn a_payload_that_does_not_match_its_signed_hash_is_rejected() {
    let (server, s3) = setup().await;
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    Signer::root().sign(
        "PUT",
        "/bkt/k",
        &[],
        &mut headers,
        &sha256_hex(b"the body that was signed"),
        SystemTime::now(),
    );
    // Same length, other bytes: only the hash can tell.
    let response = request(
        server.addr(),
        "PUT",
        "/bkt/k",
        &headers,
        b"the body that was forged",
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("XAmzContentSHA256Mismatch")
    );
    assert_eq!(get(&s3, "bkt", "k").await, b"secret contents");
}

#[tokio::test]
async fn an_unsigned_payload_is_accepted() {
    let (server, s3) = setup().await;
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    Signer::root().sign(
        "PUT",
        "/bkt/raw",
        &[],
        &mut headers,
        "UNSIGNED-PAYLOAD",
        SystemTime::now(),
    );
    let response = request(server.addr(), "PUT", "/bkt/raw", &headers, b"unsigned body");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(get(&s3, "bkt", "raw").await, b"unsigned body");

    ok(s3
        .put_object()
        .bucket("bkt")
        .key("sdk")
        .body(ByteStream::from_static(b"sdk unsigned body"))
        .customize()
        .disable_payload_signing()
        .send()
        .await);
    assert_eq!(get(&s3, "bkt", "sdk").await, b"sdk unsigned body");
}

#[tokio::test]
async fn an_anonymous_request_is_access_denied() {
    let (server, _) = setup().await;
    let response = request(server.addr(), "GET", "/bkt/k", &[], b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("AccessDenied")
    );
    assert!(!response.body_text().contains("secret contents"));
    let response = request(server.addr(), "PUT", "/bkt/anon", &[], b"anonymous write");
    assert_eq!(response.status, 403, "{}", response.body_text());
}

#[tokio::test]
async fn a_presigned_get_serves_the_object() {
    let (_server, s3) = setup().await;
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let response = fetch_presigned(&presigned, &[], b"");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.body, b"secret contents");
    assert_eq!(
        response.header("x-amz-server-side-encryption"),
        Some("AES256")
    );
}

#[tokio::test]
async fn a_presigned_url_valid_for_more_than_a_week_is_refused() {
    let (_server, s3) = setup().await;
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    // The SDK will not sign for longer than S3 allows; the server must refuse it too.
    let url = presigned
        .uri()
        .replace("X-Amz-Expires=300", "X-Amz-Expires=604801");
    assert_ne!(url, presigned.uri());
    let (addr, target) = split_url(&url);
    let response = request(addr, "GET", &target, &[], b"");
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("AuthorizationQueryParametersError")
    );
}

#[tokio::test]
async fn a_presigned_put_stores_the_object() {
    let (_server, s3) = setup().await;
    let presigned = ok(s3
        .put_object()
        .bucket("bkt")
        .key("uploaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let body = common::pattern(100_000, 1);
    let response = fetch_presigned(&presigned, &[], &body);
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        response.header("etag"),
        Some(common::quoted_md5(&body).as_str())
    );
    assert!(get(&s3, "bkt", "uploaded").await == body);
}

#[tokio::test]
async fn an_expired_presigned_url_is_access_denied() {
    let (_server, s3) = setup().await;
    let config = PresigningConfig::builder()
        .start_time(SystemTime::now() - 2 * HOUR)
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(config)
        .await);
    let response = fetch_presigned(&presigned, &[], b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("AccessDenied")
    );
    assert!(!response.body_text().contains("secret contents"));
}

#[tokio::test]
async fn a_tampered_presigned_url_is_signature_does_not_match() {
    let (server, s3) = setup().await;
    put(&s3, "bkt", "other", b"other contents").await;
    let presigned = ok(s3
        .get_object()
        .bucket("bkt")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await);
    let (addr, target) = split_url(presigned.uri());
    assert_eq!(addr, server.addr());

    // Another key under the same signature.
    let other = target.replacen("/bkt/k?", "/bkt/other?", 1);
    let response = request(addr, "GET", &other, &[], b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );

    // A changed signature.
    let at = target.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = target.clone().into_bytes();
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    let response = request(addr, "GET", &String::from_utf8(forged).unwrap(), &[], b"");
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
}

#[tokio::test]
async fn error_bodies_carry_code_message_resource_and_request_id() {
    let (server, _) = setup().await;
    let response = signed_get(&server, "/bkt/missing", SystemTime::now());
    assert_eq!(response.status, 404, "{}", response.body_text());
    assert!(
        response
            .header("content-type")
            .unwrap_or("")
            .contains("xml"),
        "error Content-Type: {:?}",
        response.header("content-type")
    );
    assert_eq!(response.xml_element("Code").as_deref(), Some("NoSuchKey"));
    assert!(
        !response
            .xml_element("Message")
            .unwrap_or_default()
            .is_empty(),
        "no Message"
    );
    assert_eq!(
        response.xml_element("Resource").as_deref(),
        Some("/bkt/missing")
    );
    let request_id = response.xml_element("RequestId").unwrap_or_default();
    assert!(
        !request_id.is_empty(),
        "no RequestId in {}",
        response.body_text()
    );
    assert_eq!(
        response.header("x-amz-request-id"),
        Some(request_id.as_str())
    );

    let wrong = Signer {
        access_key: ACCESS_KEY,
        secret_key: "WrongSecretKey00000000000000000000000000",
        region: "us-east-1",
    };
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    wrong.sign(
        "GET",
        "/bkt/k",
        &[],
        &mut headers,
        &sha256_hex(b""),
        SystemTime::now(),
    );
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_eq!(response.status, 403);
    assert_eq!(
        response.xml_element("Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert!(
        !response
            .xml_element("Message")
            .unwrap_or_default()
            .is_empty(),
        "no Message"
    );
    assert_eq!(response.xml_element("Resource").as_deref(), Some("/bkt/k"));
    assert!(
        !response
            .xml_element("RequestId")
            .unwrap_or_default()
            .is_empty(),
        "no RequestId"
    );
}
