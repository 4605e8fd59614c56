//! CORS end to end: Put/Get/DeleteBucketCors with aws-sdk-s3 (and the errors S3 gives for a bad
//! configuration), preflight `OPTIONS` requests over raw HTTP as a browser sends them (a rule
//! matched on origin, method and headers, wildcards, the first matching rule winning, `403` when
//! none matches or the bucket has no rules, `400` without the preflight's headers), and the CORS
//! headers on the answers to actual requests — a presigned GET, and error answers too.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use common::raw_http::{RawResponse, fetch_presigned, request};
use common::sigv4::{Signer, sha256_hex};
use common::{TestServer, assert_s3_error, create_bucket, ok, put};

const BUCKET: &str = "web";
const APP: &str = "http://app.example";
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    b
}

async fn put_rules(s3: &Client, bucket: &str, rules: Vec<CorsRule>) {
    let config = CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .unwrap();
    ok(s3
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(config)
        .send()
        .await);
}

/// A server with bucket [`BUCKET`] holding `index.html`, and the app's upload rule followed by a
/// read-only rule for any origin.
async fn setup() -> (TestServer, Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "index.html", b"<p>hello</p>").await;
    put_rules(
        &s3,
        BUCKET,
        vec![
            rule(&[APP, "https://*.app.example"], &["PUT", "POST", "GET"])
                .allowed_headers("Content-Type")
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .expose_headers("x-amz-request-id")
                .max_age_seconds(600)
                .build()
                .unwrap(),
            rule(&["*"], &["GET", "HEAD"])
                .max_age_seconds(60)
                .build()
                .unwrap(),
        ],
    )
    .await;
    (server, s3)
}

/// A preflight as a browser sends it; `None` leaves a header out.
fn preflight(
    server: &TestServer,
    path: &str,
    origin: Option<&str>,
    method: Option<&str>,
    headers: Option<&str>,
) -> RawResponse {
    let mut h = Vec::new();
    for (name, value) in [
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", headers),
    ] {
        if let Some(v) = value {
            h.push((name.to_string(), v.to_string()));
        }
    }
    request(server.addr(), "OPTIONS", path, &h, b"")
}

#[track_caller]
fn assert_error(resp: &RawResponse, status: u16, code: &str, message: &str) {
    assert_eq!(resp.status, status, "{}", resp.body_text());
    assert_eq!(resp.xml_element("Code").as_deref(), Some(code));
    assert_eq!(resp.xml_element("Message").as_deref(), Some(message));
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

// ---------------------------------------------------------------------------------------------
// Put, Get, DeleteBucketCors

#[tokio::test]
async fn cors_rules_are_put_read_back_and_deleted() {
    let (_server, s3) = setup().await;
    let got = ok(s3.get_bucket_cors().bucket(BUCKET).send().await);
    let rules = got.cors_rules();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].allowed_origins(), [APP, "https://*.app.example"]);
    assert_eq!(rules[0].allowed_methods(), ["PUT", "POST", "GET"]);
    assert_eq!(rules[0].allowed_headers(), ["Content-Type", "x-amz-*"]);
    assert_eq!(rules[0].expose_headers(), ["ETag", "x-amz-request-id"]);
    assert_eq!(rules[0].max_age_seconds(), Some(600));
    assert_eq!(rules[1].allowed_origins(), ["*"]);
    assert!(rules[1].allowed_headers().is_empty());

    // A new configuration replaces the old one whole.
    put_rules(
        &s3,
        BUCKET,
        vec![rule(&[APP], &["DELETE"]).id("deletes").build().unwrap()],
    )
    .await;
    let got = ok(s3.get_bucket_cors().bucket(BUCKET).send().await);
    assert_eq!(got.cors_rules().len(), 1);
    assert_eq!(got.cors_rules()[0].id(), Some("deletes"));

    ok(s3.delete_bucket_cors().bucket(BUCKET).send().await);
    let failure = assert_s3_error(
        s3.get_bucket_cors().bucket(BUCKET).send().await,
        404,
        "NoSuchCORSConfiguration",
    );
    assert_eq!(
        failure.message.as_deref(),
        Some("The CORS configuration does not exist")
    );
    // Deleting what is not there is still 204.
    ok(s3.delete_bucket_cors().bucket(BUCKET).send().await);
}

#[tokio::test]
async fn delete_bucket_cors_answers_204() {
    let (server, _s3) = setup().await;
    let mut headers = vec![("host".to_string(), server.addr().to_string())];
    Signer::root().sign(
        "DELETE",
        &format!("/{BUCKET}"),
        &[("cors", "")],
        &mut headers,
        &sha256_hex(b""),
        SystemTime::now(),
    );
    let resp = request(
        server.addr(),
        "DELETE",
        &format!("/{BUCKET}?cors"),
        &headers,
        b"",
    );
    assert_eq!(resp.status, 204, "{}", resp.body_text());
}

#[tokio::test]
async fn cors_calls_on_a_missing_bucket_are_no_such_bucket() {
    let server = TestServer::start();
    let s3 = server.client();
    assert_s3_error(
        s3.get_bucket_cors().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    let config = CorsConfiguration::builder()
        .cors_rules(rule(&["*"], &["GET"]).build().unwrap())
        .build()
        .unwrap();
    assert_s3_error(
        s3.put_bucket_cors()
            .bucket("nope")
            .cors_configuration(config)
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.delete_bucket_cors().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn configurations_s3_refuses_are_refused_with_its_errors() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let put = |rules: Vec<CorsRule>| {
        let s3 = s3.clone();
        async move {
            let config = CorsConfiguration::builder()
                .set_cors_rules(Some(rules))
                .build()
                .unwrap();
            s3.put_bucket_cors()
                .bucket(BUCKET)
                .cors_configuration(config)
                .send()
                .await
        }
    };
    let failure = assert_s3_error(
        put(vec![rule(&["*"], &["GET", "PATCH"]).build().unwrap()]).await,
        400,
        "InvalidRequest",
    );
    assert_eq!(
        failure.message.as_deref(),
        Some("Found unsupported HTTP method in CORS config. Unsupported method is PATCH")
    );
    // Methods are case-sensitive.
    assert_s3_error(
        put(vec![rule(&["*"], &["get"]).build().unwrap()]).await,
        400,
        "InvalidRequest",
    );
    let failure = assert_s3_error(
        put(vec![
            rule(&["http://*.*.example"], &["GET"]).build().unwrap(),
        ])
        .await,
        400,
        "InvalidRequest",
    );
    assert_eq!(
        failure.message.as_deref(),
        Some("AllowedOrigin \"http://*.*.example\" can not have more than one wildcard.")
    );
    assert_s3_error(
        put(vec![
            rule(&["*"], &["GET"])
                .allowed_headers("x-*-*")
                .build()
                .unwrap(),
        ])
        .await,
        400,
        "InvalidRequest",
    );
    let too_many = (0..101)
        .map(|_| rule(&["*"], &["GET"]).build().unwrap())
        .collect();
    assert_s3_error(put(too_many).await, 400, "MalformedXML");
    let hundred = (0..100)
        .map(|_| rule(&["*"], &["GET"]).build().unwrap())
        .collect();
    ok(put(hundred).await);

    // Bodies the SDK would not build: not XML, and a rule without an origin.
    for body in [
        "not xml".to_string(),
        "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>".to_string(),
    ] {
        let mut headers = vec![("host".to_string(), server.addr().to_string())];
        Signer::root().sign(
            "PUT",
            &format!("/{BUCKET}"),
            &[("cors", "")],
            &mut headers,
            &sha256_hex(body.as_bytes()),
            SystemTime::now(),
        );
        let resp = request(
            server.addr(),
            "PUT",
            &format!("/{BUCKET}?cors"),
            &headers,
            body.as_bytes(),
        );
        assert_eq!(resp.status, 400, "{body}: {}", resp.body_text());
        assert_eq!(resp.xml_element("Code").as_deref(), Some("MalformedXML"));
    }
    // The hundred rules stored before are untouched by the refusals.
    let got = ok(s3.get_bucket_cors().bucket(BUCKET).send().await);
    assert_eq!(got.cors_rules().len(), 100);
}

// ---------------------------------------------------------------------------------------------
// Preflight

#[tokio::test]
async fn a_preflight_a_rule_allows_gets_the_rules_headers() {
    let (server, _s3) = setup().await;
    let resp = preflight(
        &server,
        "/web/uploads/cat.jpg",
        Some(APP),
        Some("PUT"),
        Some("Content-Type, X-Amz-Date,x-amz-content-sha256"),
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("PUT, POST, GET")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("content-type, x-amz-date, x-amz-content-sha256")
    );
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(resp.header("vary"), Some(VARY));
    assert!(resp.header("x-amz-request-id").is_some());
    assert!(resp.body.is_empty());

    // A wildcard origin of the same rule matches, and the request's origin is echoed.
    let resp = preflight(
        &server,
        "/web",
        Some("https://eu.app.example"),
        Some("POST"),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://eu.app.example")
    );
    assert_eq!(resp.header("access-control-allow-headers"), None);
}

#[tokio::test]
async fn a_rule_for_any_origin_answers_star_without_credentials() {
    let (server, _s3) = setup().await;
    let resp = preflight(
        &server,
        "/web/index.html",
        Some("http://elsewhere.example"),
        Some("HEAD"),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert_eq!(resp.header("access-control-allow-credentials"), None);
    assert_eq!(resp.header("access-control-max-age"), Some("60"));

    // The app's own GET matches its rule first (max age 600), not the `*` rule below it.
    let resp = preflight(&server, "/web/index.html", Some(APP), Some("GET"), None);
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    // A header the first rule does not allow falls through to the `*` rule, which allows none.
    let resp = preflight(
        &server,
        "/web/index.html",
        Some(APP),
        Some("GET"),
        Some("range"),
    );
    assert_error(&resp, 403, "AccessForbidden", NOT_ALLOWED);
}

#[tokio::test]
async fn a_preflight_no_rule_allows_is_forbidden() {
    let (server, _s3) = setup().await;
    for (origin, method, headers) in [
        // Origin not allowed for the method.
        ("http://evil.example", "PUT", None),
        // Scheme differs from the wildcard origin's.
        ("http://eu.app.example", "PUT", None),
        // Method allowed by no rule for this origin.
        (APP, "DELETE", None),
        // A header no rule allows.
        (APP, "PUT", Some("content-type, authorization")),
    ] {
        let resp = preflight(&server, "/web/k", Some(origin), Some(method), headers);
        assert_error(&resp, 403, "AccessForbidden", NOT_ALLOWED);
        assert_eq!(resp.xml_element("Method").as_deref(), Some(method));
        assert_eq!(resp.xml_element("ResourceType").as_deref(), Some("OBJECT"));
        assert!(resp.xml_element("RequestId").is_some());
    }
}

#[tokio::test]
async fn a_preflight_to_a_bucket_without_rules_is_forbidden() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, "plain").await;
    let resp = preflight(&server, "/plain/k", Some(APP), Some("GET"), None);
    assert_error(
        &resp,
        403,
        "AccessForbidden",
        "CORSResponse: CORS is not enabled for this bucket.",
    );
    // S3 answers a preflight to a bucket that does not exist with a 403 too (LocalStack's
    // AWS-validated test_cors_http_options_non_existent_bucket), not NoSuchBucket.
    let resp = preflight(&server, "/missing/k", Some(APP), Some("GET"), None);
    assert_error(
        &resp,
        403,
        "AccessForbidden",
        "CORSResponse: Bucket not found",
    );
    assert_eq!(resp.xml_element("Method").as_deref(), Some("GET"));
}

#[tokio::test]
async fn a_preflight_without_its_headers_is_a_bad_request() {
    let (server, _s3) = setup().await;
    let resp = preflight(&server, "/web/k", None, Some("GET"), None);
    assert_error(
        &resp,
        400,
        "BadRequest",
        "Insufficient information. Origin request header needed.",
    );
    let resp = preflight(&server, "/web/k", Some(APP), None, None);
    assert_error(
        &resp,
        400,
        "BadRequest",
        "Invalid Access-Control-Request-Method: null",
    );
    let resp = preflight(&server, "/web/k", Some(APP), Some("PATCH"), None);
    assert_error(
        &resp,
        400,
        "BadRequest",
        "Invalid Access-Control-Request-Method: PATCH",
    );
    let resp = preflight(&server, "/web/k", Some(APP), Some("PUT"), Some("x(y)"));
    assert_error(
        &resp,
        400,
        "BadRequest",
        "Access-Control-Request-Headers \"x(y)\" contains invalid character.",
    );
}

#[tokio::test]
async fn preflights_follow_changes_of_the_rules() {
    let (server, s3) = setup().await;
    let allowed = |origin: &str| preflight(&server, "/web/k", Some(origin), Some("PUT"), None);
    assert_eq!(allowed(APP).status, 200);
    assert_eq!(allowed("http://new.example").status, 403);

    put_rules(
        &s3,
        BUCKET,
        vec![rule(&["http://new.example"], &["PUT"]).build().unwrap()],
    )
    .await;
    assert_eq!(allowed(APP).status, 403);
    assert_eq!(allowed("http://new.example").status, 200);

    ok(s3.delete_bucket_cors().bucket(BUCKET).send().await);
    let resp = allowed("http://new.example");
    assert_error(
        &resp,
        403,
        "AccessForbidden",
        "CORSResponse: CORS is not enabled for this bucket.",
    );

    // A bucket deleted and created again starts without the old one's rules.
    put_rules(&s3, BUCKET, vec![rule(&["*"], &["PUT"]).build().unwrap()]).await;
    assert_eq!(allowed(APP).status, 200);
    ok(s3
        .delete_object()
        .bucket(BUCKET)
        .key("index.html")
        .send()
        .await);
    ok(s3.delete_bucket().bucket(BUCKET).send().await);
    create_bucket(&s3, BUCKET).await;
    assert_eq!(allowed(APP).status, 403);
}

// ---------------------------------------------------------------------------------------------
// Actual requests

async fn presigned_get(s3: &Client, key: &str) -> aws_sdk_s3::presigning::PresignedRequest {
    ok(s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await)
}

fn origin(value: &str) -> Vec<(String, String)> {
    vec![("origin".to_string(), value.to_string())]
}

#[tokio::test]
async fn an_allowed_get_carries_the_cors_headers() {
    let (_server, s3) = setup().await;
    let resp = fetch_presigned(&presigned_get(&s3, "index.html").await, &origin(APP), b"");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body, b"<p>hello</p>");
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(resp.header("vary"), Some(VARY));

    // Any other origin gets the `*` rule's answer.
    let resp = fetch_presigned(
        &presigned_get(&s3, "index.html").await,
        &origin("http://elsewhere.example"),
        b"",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));

    // Without an Origin, a request is not a CORS request: no CORS headers.
    let resp = fetch_presigned(&presigned_get(&s3, "index.html").await, &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn an_origin_no_rule_allows_gets_no_allow_origin() {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "k", b"data").await;
    put_rules(&s3, BUCKET, vec![rule(&[APP], &["GET"]).build().unwrap()]).await;
    let resp = fetch_presigned(
        &presigned_get(&s3, "k").await,
        &origin("http://evil.example"),
        b"",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("access-control-allow-origin"), None);
    // The answer depends on the origin, so caches are told.
    assert_eq!(resp.header("vary"), Some(VARY));
}

#[tokio::test]
async fn error_answers_carry_the_cors_headers_so_a_page_can_read_them() {
    let (server, s3) = setup().await;
    // A missing key, presigned.
    let resp = fetch_presigned(&presigned_get(&s3, "missing").await, &origin(APP), b"");
    assert_eq!(resp.status, 404, "{}", resp.body_text());
    assert_eq!(resp.xml_element("Code").as_deref(), Some("NoSuchKey"));
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        resp.header("access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );

    // An unsigned PUT from the page: refused, and the page can read why.
    let mut headers = origin(APP);
    headers.push(("content-type".into(), "text/plain".into()));
    let resp = request(server.addr(), "PUT", "/web/anon.txt", &headers, b"hi");
    assert_eq!(resp.status, 403, "{}", resp.body_text());
    assert_eq!(resp.xml_element("Code").as_deref(), Some("AccessDenied"));
    assert_eq!(resp.header("access-control-allow-origin"), Some(APP));
}
