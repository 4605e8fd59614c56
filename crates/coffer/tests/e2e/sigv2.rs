//! AWS Signature Version 2 end to end (issue 14, point 3): refused by default as S3 refuses it
//! on buckets created since June 2020; with `--allow-sigv2`, a correctly signed request works
//! while a replayed one (a `Date` from 2019), an expired or 30-day presigned URL and a wrong
//! signature are refused with S3's errors, and anything touching an SSE-KMS object is refused
//! whatever the flag (issue 8). Requests are signed here by hand (HMAC-SHA1 written
//! out over the `sha1` crate, pinned to AWS's documented example) and sent as raw HTTP.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::raw_http::{RawResponse, request};
use common::{ACCESS_KEY, SECRET_KEY, TestServer, assert_s3_status, create_bucket, get, ok, put};
use sha1::{Digest, Sha1};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

// ---------------------------------------------------------------------------------------------
// A SigV2 signer

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&Sha1::digest(&inner));
    Sha1::digest(&outer).to_vec()
}

/// `base64(HMAC-SHA1(secret, string_to_sign))` (also signs SigV2 POST policies in `post_object`).
pub(crate) fn sign(secret: &str, string_to_sign: &str) -> String {
    aws_smithy_types::base64::encode(hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// `Tue, 27 Mar 2007 19:36:42 GMT` for `time`.
fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm); 1970-01-01 was a Thursday.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The headers of a header-signed SigV2 request (`Date` at `time`, no Content-MD5, no
/// x-amz-* headers) for `resource`, the path as sent plus any signed sub-resource.
fn signed_headers(
    method: &str,
    resource: &str,
    content_type: &str,
    time: SystemTime,
    secret: &str,
) -> Vec<(String, String)> {
    let date = http_date(time);
    let string_to_sign = format!("{method}\n\n{content_type}\n{date}\n{resource}");
    let mut headers = vec![
        ("date".to_string(), date),
        (
            "authorization".to_string(),
            format!("AWS {ACCESS_KEY}:{}", sign(secret, &string_to_sign)),
        ),
    ];
    if !content_type.is_empty() {
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    headers
}

/// A SigV2 presigned GET target for `path`, valid until `expires` (seconds since the epoch).
fn presigned_get(path: &str, expires: &str, secret: &str) -> String {
    let signature = sign(secret, &format!("GET\n\n\n{expires}\n{path}"));
    let signature: String = signature
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_string(),
            b'/' => "%2F".to_string(),
            b'=' => "%3D".to_string(),
            _ => (b as char).to_string(),
        })
        .collect();
    format!("{path}?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={signature}")
}

fn unix(time: SystemTime) -> String {
    time.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        .to_string()
}

#[track_caller]
fn assert_error(response: &RawResponse, status: u16, code: &str) {
    assert_eq!(
        (response.status, response.xml_element("Code").as_deref()),
        (status, Some(code)),
        "{}",
        response.body_text()
    );
}

#[test]
fn the_signer_reproduces_awss_documented_example() {
    // AWS's SigV2 "Object GET" example (Amazon S3 developer guide, "Signing and authenticating
    // REST requests"), as s3s 0.14 pins it.
    let string_to_sign =
        "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg";
    assert_eq!(
        sign("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", string_to_sign),
        "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="
    );
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(1_175_024_202)),
        "Tue, 27 Mar 2007 19:36:42 GMT"
    );
}

// ---------------------------------------------------------------------------------------------
// Off by default

async fn setup(server: &TestServer) {
    let s3 = server.client();
    create_bucket(&s3, "bkt").await;
    put(&s3, "bkt", "k", b"secret contents").await;
}

#[tokio::test]
async fn a_sigv2_request_is_refused_by_default() {
    let server = TestServer::start();
    setup(&server).await;
    let headers = signed_headers("GET", "/bkt/k", "", SystemTime::now(), SECRET_KEY);
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_error(&response, 400, "InvalidRequest");
    assert_eq!(
        response.xml_element("Message").as_deref(),
        Some(
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        )
    );
    assert!(!response.body_text().contains("secret contents"));

    // A write is refused too, and stores nothing.
    let headers = signed_headers("PUT", "/bkt/k", "text/plain", SystemTime::now(), SECRET_KEY);
    let response = request(server.addr(), "PUT", "/bkt/k", &headers, b"overwritten");
    assert_error(&response, 400, "InvalidRequest");
    assert_eq!(get(&server.client(), "bkt", "k").await, b"secret contents");
}

#[tokio::test]
async fn a_sigv2_presigned_url_is_refused_by_default() {
    let server = TestServer::start();
    setup(&server).await;
    let target = presigned_get("/bkt/k", &unix(SystemTime::now() + MINUTE), SECRET_KEY);
    let response = request(server.addr(), "GET", &target, &[], b"");
    assert_error(&response, 400, "InvalidRequest");
    assert!(!response.body_text().contains("secret contents"));
    // Percent-encoding a parameter name does not slip past the check.
    let sneaky = target.replace("Signature=", "Sig%6Eature=");
    let response = request(server.addr(), "GET", &sneaky, &[], b"");
    assert_error(&response, 400, "InvalidRequest");
}

// ---------------------------------------------------------------------------------------------
// With --allow-sigv2

fn sigv2_server() -> TestServer {
    TestServer::builder().arg("--allow-sigv2").start()
}

#[tokio::test]
async fn with_allow_sigv2_a_correctly_signed_request_works() {
    let server = sigv2_server();
    setup(&server).await;
    let now = SystemTime::now();
    let response = request(
        server.addr(),
        "GET",
        "/bkt/k",
        &signed_headers("GET", "/bkt/k", "", now, SECRET_KEY),
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.body, b"secret contents");

    let headers = signed_headers("PUT", "/bkt/v2", "text/plain", now, SECRET_KEY);
    let response = request(
        server.addr(),
        "PUT",
        "/bkt/v2",
        &headers,
        b"signed the old way",
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        get(&server.client(), "bkt", "v2").await,
        b"signed the old way"
    );

    // A bucket request: SigV2 signs the bucket as `/bkt/`.
    let response = request(
        server.addr(),
        "GET",
        "/bkt",
        &signed_headers("GET", "/bkt/", "", now, SECRET_KEY),
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert!(response.body_text().contains("<Key>v2</Key>"));

    // Within the 15-minute window either side.
    for time in [now - 14 * MINUTE, now + 14 * MINUTE] {
        let response = request(
            server.addr(),
            "GET",
            "/bkt/k",
            &signed_headers("GET", "/bkt/k", "", time, SECRET_KEY),
            b"",
        );
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
}

/// S3 serves no SSE-KMS object to a SigV2 request, whatever the server allows: reads and writes
/// that involve a KMS key are refused with S3's message; an SSE-S3 object still reads.
#[tokio::test]
async fn with_allow_sigv2_sse_kms_reads_and_writes_are_refused() {
    let server = sigv2_server();
    setup(&server).await;
    let s3 = server.client();
    ok(s3
        .put_object()
        .bucket("bkt")
        .key("kms")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"under a KMS key",
        ))
        .send()
        .await);
    let now = SystemTime::now();
    let response = request(
        server.addr(),
        "GET",
        "/bkt/kms",
        &signed_headers("GET", "/bkt/kms", "", now, SECRET_KEY),
        b"",
    );
    assert_error(&response, 400, "InvalidArgument");
    assert_eq!(
        response.xml_element("Message").as_deref(),
        Some(
            "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4."
        )
    );
    assert!(!response.body_text().contains("under a KMS key"));

    let mut headers = signed_headers("PUT", "/bkt/kms2", "", now, SECRET_KEY);
    // x-amz-* headers are part of what SigV2 signs.
    let string_to_sign = format!(
        "PUT\n\n\n{}\nx-amz-server-side-encryption:aws:kms\n/bkt/kms2",
        headers[0].1
    );
    headers[1].1 = format!("AWS {ACCESS_KEY}:{}", sign(SECRET_KEY, &string_to_sign));
    headers.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
    let response = request(server.addr(), "PUT", "/bkt/kms2", &headers, b"no");
    assert_error(&response, 400, "InvalidArgument");
    assert_s3_status(s3.head_object().bucket("bkt").key("kms2").send().await, 404);

    // The SSE-S3 object next to it still reads with SigV2.
    let response = request(
        server.addr(),
        "GET",
        "/bkt/k",
        &signed_headers("GET", "/bkt/k", "", now, SECRET_KEY),
        b"",
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
}

#[tokio::test]
async fn with_allow_sigv2_a_replayed_request_is_request_time_too_skewed() {
    let server = sigv2_server();
    setup(&server).await;
    // A request captured in 2019, correctly signed, sent again today.
    let in_2019 = UNIX_EPOCH + Duration::from_secs(1_561_939_200); // 2019-07-01T00:00:00Z
    let headers = signed_headers("GET", "/bkt/k", "", in_2019, SECRET_KEY);
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_error(&response, 403, "RequestTimeTooSkewed");
    assert_eq!(
        response.xml_element("RequestTime").as_deref(),
        Some("Mon, 01 Jul 2019 00:00:00 GMT")
    );
    assert_eq!(
        response
            .xml_element("MaxAllowedSkewMilliseconds")
            .as_deref(),
        Some("900000")
    );
    assert!(!response.body_text().contains("secret contents"));

    // Sixteen minutes off either way, and a replayed write.
    let now = SystemTime::now();
    for time in [now - 16 * MINUTE, now + 16 * MINUTE] {
        let headers = signed_headers("GET", "/bkt/k", "", time, SECRET_KEY);
        let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
        assert_error(&response, 403, "RequestTimeTooSkewed");
    }
    let headers = signed_headers("PUT", "/bkt/k", "text/plain", in_2019, SECRET_KEY);
    let response = request(server.addr(), "PUT", "/bkt/k", &headers, b"replayed");
    assert_error(&response, 403, "RequestTimeTooSkewed");
    assert_eq!(get(&server.client(), "bkt", "k").await, b"secret contents");

    // No date at all, or one that does not parse.
    let mut headers = signed_headers("GET", "/bkt/k", "", now, SECRET_KEY);
    headers.retain(|(k, _)| k != "date");
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_error(&response, 403, "AccessDenied");
    assert_eq!(
        response.xml_element("Message").as_deref(),
        Some("AWS authentication requires a valid Date or x-amz-date header")
    );
}

#[tokio::test]
async fn with_allow_sigv2_presigned_urls_are_bounded_in_time() {
    let server = sigv2_server();
    setup(&server).await;
    let now = SystemTime::now();

    let valid = presigned_get("/bkt/k", &unix(now + 5 * MINUTE), SECRET_KEY);
    let response = request(server.addr(), "GET", &valid, &[], b"");
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.body, b"secret contents");

    let expired = presigned_get("/bkt/k", &unix(now - MINUTE), SECRET_KEY);
    let response = request(server.addr(), "GET", &expired, &[], b"");
    assert_error(&response, 403, "AccessDenied");
    assert_eq!(
        response.xml_element("Message").as_deref(),
        Some("Request has expired")
    );
    assert!(!response.body_text().contains("secret contents"));

    let month = presigned_get("/bkt/k", &unix(now + 30 * DAY), SECRET_KEY);
    let response = request(server.addr(), "GET", &month, &[], b"");
    assert_error(&response, 400, "AuthorizationQueryParametersError");
    assert!(!response.body_text().contains("secret contents"));

    let not_a_time = presigned_get("/bkt/k", "tomorrow", SECRET_KEY);
    let response = request(server.addr(), "GET", &not_a_time, &[], b"");
    assert_error(&response, 403, "AccessDenied");
    assert_eq!(
        response.xml_element("Message").as_deref(),
        Some("Invalid date (should be seconds since epoch): tomorrow")
    );
}

#[tokio::test]
async fn with_allow_sigv2_a_wrong_signature_is_signature_does_not_match() {
    let server = sigv2_server();
    setup(&server).await;
    let wrong = "WrongSecretKey00000000000000000000000000";
    let now = SystemTime::now();
    let headers = signed_headers("GET", "/bkt/k", "", now, wrong);
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_error(&response, 403, "SignatureDoesNotMatch");
    assert!(!response.body_text().contains("secret contents"));
    assert!(!response.body_text().contains(SECRET_KEY));

    // The right signature for another key.
    let headers = signed_headers("GET", "/bkt/other", "", now, SECRET_KEY);
    let response = request(server.addr(), "GET", "/bkt/k", &headers, b"");
    assert_error(&response, 403, "SignatureDoesNotMatch");

    let target = presigned_get("/bkt/k", &unix(now + MINUTE), wrong);
    let response = request(server.addr(), "GET", &target, &[], b"");
    assert_error(&response, 403, "SignatureDoesNotMatch");

    let unknown = signed_headers("GET", "/bkt/k", "", now, SECRET_KEY)
        .into_iter()
        .map(|(k, v)| (k, v.replace(ACCESS_KEY, "AKIAUNKNOWN000000000")))
        .collect::<Vec<_>>();
    let response = request(server.addr(), "GET", "/bkt/k", &unknown, b"");
    assert_error(&response, 403, "InvalidAccessKeyId");
}

/// Regression (review of issue 9): AWS's documented "deny Signature Version 2" bucket policy was
/// accepted but never matched (Coffer never set `s3:signatureversion`), so SigV2 requests passed.
#[tokio::test]
async fn the_documented_deny_sigv2_policy_refuses_a_sigv2_request() {
    let server = sigv2_server();
    setup(&server).await;
    ok(server
        .client()
        .put_bucket_policy()
        .bucket("bkt")
        .policy(
            r#"{"Version":"2012-10-17","Id":"sigv2-deny","Statement":[{"Sid":"DenySigV2","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::bkt","arn:aws:s3:::bkt/*"],"Condition":{"StringEquals":{"s3:signatureversion":"AWS"}}}]}"#,
        )
        .send()
        .await);
    let response = request(
        server.addr(),
        "GET",
        "/bkt/k",
        &signed_headers("GET", "/bkt/k", "", SystemTime::now(), SECRET_KEY),
        b"",
    );
    assert_error(&response, 403, "AccessDenied");
    // Presigned SigV2 URLs, and the bucket-encryption route, are SigV2 too.
    let expires = (SystemTime::now() + MINUTE)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let target = presigned_get("/bkt/k", &expires.to_string(), SECRET_KEY);
    assert_error(
        &request(server.addr(), "GET", &target, &[], b""),
        403,
        "AccessDenied",
    );
    let response = request(
        server.addr(),
        "GET",
        "/bkt?encryption",
        &signed_headers("GET", "/bkt/", "", SystemTime::now(), SECRET_KEY),
        b"",
    );
    assert_error(&response, 403, "AccessDenied");
    // SigV4 requests are not SigV2 ones.
    assert_eq!(get(&server.client(), "bkt", "k").await, b"secret contents");
    ok(server
        .client()
        .get_bucket_encryption()
        .bucket("bkt")
        .send()
        .await);
}
