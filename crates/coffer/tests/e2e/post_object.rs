//! POST Object (browser form uploads) end to end: forms and SigV4 POST policies built by hand,
//! sent over raw TCP, and the objects read back with aws-sdk-s3. Covers the answers (204, 200,
//! 201 with its XML, 303 redirects), every refusal of the policy (expired, a failed condition, an
//! uncovered field, `content-length-range` either side), bad signatures and keys, anonymous and
//! SigV2 forms — and the memory a stranger can make the server hold: several anonymous 400 MiB
//! forms at once must leave it well under 256 MiB, because nothing is read past the form fields
//! before the signature and policy are checked.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::raw_http::{RawResponse, request};
use common::sigv4::{Signer, amz_date, hmac_sha256};
use common::{ACCESS_KEY, REGION, TestServer, create_bucket, get, md5_hex, ok, pattern, put};
use md5::{Digest, Md5};
use serde_json::{Value, json};

const BUCKET: &str = "forms";
const BOUNDARY: &str = "----CofferFormBoundary7MA4YWxkTrZu0gW";

// ---------------------------------------------------------------------------------------------
// Building forms

/// A multipart/form-data body: fields in order, then the `file` part.
#[derive(Clone)]
struct Form {
    fields: Vec<(String, String)>,
    filename: Option<String>,
}

impl Form {
    fn new() -> Form {
        Form {
            fields: Vec::new(),
            filename: Some("upload.bin".into()),
        }
    }

    fn field(mut self, name: &str, value: &str) -> Form {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Everything before the file's content: the fields and the file part's headers.
    fn head(&self) -> Vec<u8> {
        let mut out = String::new();
        for (name, value) in &self.fields {
            out.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        out.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\""
        ));
        if let Some(f) = &self.filename {
            out.push_str(&format!("; filename=\"{f}\""));
        }
        out.push_str("\r\nContent-Type: application/octet-stream\r\n\r\n");
        out.into_bytes()
    }

    /// What follows the file's content: the closing delimiter (and, as browsers send, a submit
    /// button's field, which S3 ignores).
    fn tail() -> Vec<u8> {
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"submit\"\r\n\r\nUpload\r\n--{BOUNDARY}--\r\n"
        )
        .into_bytes()
    }

    fn body(&self, file: &[u8]) -> Vec<u8> {
        let mut body = self.head();
        body.extend_from_slice(file);
        body.extend_from_slice(&Form::tail());
        body
    }
}

fn content_type_header() -> (String, String) {
    (
        "content-type".into(),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )
}

/// POSTs `form` with `file` to `/{bucket}`.
fn post(server: &TestServer, bucket: &str, form: &Form, file: &[u8]) -> RawResponse {
    request(
        server.addr(),
        "POST",
        &format!("/{bucket}"),
        &[content_type_header()],
        &form.body(file),
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the expiration format botocore writes.
fn iso8601(time: SystemTime) -> String {
    let d = amz_date(time);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

/// A SigV4 POST policy and the form fields that carry it, as `generate_presigned_post` builds
/// them: `key`, the algorithm, credential and date, `policy`, `x-amz-signature`. `conditions`
/// come before the ones every signed form needs (bucket, key, algorithm, credential, date).
struct Signed {
    access_key: String,
    secret_key: String,
    expires: SystemTime,
    /// The form's `x-amz-date`.
    signed_at: SystemTime,
    key_condition: Value,
    conditions: Vec<Value>,
}

impl Signed {
    fn new(key: &str) -> Signed {
        Signed {
            access_key: ACCESS_KEY.into(),
            secret_key: common::SECRET_KEY.into(),
            expires: SystemTime::now() + Duration::from_secs(3600),
            signed_at: SystemTime::now(),
            key_condition: json!({ "key": key }),
            conditions: Vec::new(),
        }
    }

    fn condition(mut self, c: Value) -> Signed {
        self.conditions.push(c);
        self
    }

    /// The form: `key`, `extra` fields (which `conditions` should cover), then the signed fields.
    fn form(&self, key: &str, extra: &[(&str, &str)]) -> Form {
        let date = amz_date(self.signed_at);
        let credential = format!(
            "{}/{}/{REGION}/s3/aws4_request",
            self.access_key,
            &date[..8]
        );
        let mut conditions = self.conditions.clone();
        conditions.push(json!({ "bucket": BUCKET }));
        conditions.push(self.key_condition.clone());
        conditions.push(json!({ "x-amz-algorithm": "AWS4-HMAC-SHA256" }));
        conditions.push(json!({ "x-amz-credential": credential }));
        conditions.push(json!({ "x-amz-date": date }));
        let policy = BASE64.encode(
            serde_json::to_vec(&json!({
                "expiration": iso8601(self.expires),
                "conditions": conditions,
            }))
            .unwrap(),
        );
        let signer = Signer {
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            region: REGION,
        };
        let signature = hex::encode(hmac_sha256(
            &signer.signing_key(&date[..8]),
            policy.as_bytes(),
        ));
        let mut form = Form::new().field("key", key);
        for (name, value) in extra {
            form = form.field(name, value);
        }
        form.field("x-amz-algorithm", "AWS4-HMAC-SHA256")
            .field("x-amz-credential", &credential)
            .field("x-amz-date", &date)
            .field("policy", &policy)
            .field("x-amz-signature", &signature)
    }
}

async fn setup() -> (TestServer, Client) {
    let server = TestServer::start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    (server, s3)
}

#[track_caller]
fn assert_error(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(
        (resp.status, resp.xml_element("Code").as_deref()),
        (status, Some(code)),
        "{}",
        resp.body_text()
    );
}

async fn absent(s3: &Client, key: &str) -> bool {
    s3.head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_err()
}

// ---------------------------------------------------------------------------------------------
// Uploads that succeed

#[tokio::test]
async fn a_signed_post_round_trips_with_metadata_and_content_type() {
    let (server, s3) = setup().await;
    let file = pattern(100_000, 7);
    let form = Signed::new("photos/cat.jpg")
        .condition(json!(["starts-with", "$Content-Type", "image/"]))
        .condition(json!({ "x-amz-meta-owner": "alice" }))
        .condition(json!(["starts-with", "$Cache-Control", ""]))
        .condition(json!({ "x-amz-server-side-encryption": "AES256" }))
        .form(
            "photos/cat.jpg",
            &[
                ("Content-Type", "image/jpeg"),
                ("x-amz-meta-owner", "alice"),
                ("Cache-Control", "max-age=60"),
                ("x-amz-server-side-encryption", "AES256"),
            ],
        );
    let resp = post(&server, BUCKET, &form, &file);
    assert_eq!(resp.status, 204, "{}", resp.body_text());
    assert_eq!(
        resp.header("etag"),
        Some(format!("\"{}\"", md5_hex(&file)).as_str())
    );
    assert_eq!(resp.header("x-amz-server-side-encryption"), Some("AES256"));
    assert!(
        resp.header("location")
            .is_some_and(|l| l.ends_with("/forms/photos%2Fcat.jpg")),
        "{:?}",
        resp.headers
    );

    let out = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("photos/cat.jpg")
        .send()
        .await);
    assert_eq!(out.content_type(), Some("image/jpeg"));
    assert_eq!(out.cache_control(), Some("max-age=60"));
    assert_eq!(
        out.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
    let body = ok(out.body.collect().await).into_bytes();
    assert!(
        body.as_ref() == file.as_slice(),
        "the object differs from the file"
    );
}

#[tokio::test]
async fn a_20_mib_signed_post_streams_byte_exact() {
    let (server, s3) = setup().await;
    let file = pattern(20 * 1024 * 1024 + 13, 11);
    let form = Signed::new("big.bin")
        .condition(json!(["content-length-range", 1, 32 * 1024 * 1024]))
        .form("big.bin", &[]);
    let resp = post(&server, BUCKET, &form, &file);
    assert_eq!(resp.status, 204, "{}", resp.body_text());
    let back = get(&s3, BUCKET, "big.bin").await;
    assert_eq!(back.len(), file.len());
    assert!(back == file, "the object differs from the file");
}

#[tokio::test]
async fn success_action_status_201_answers_a_post_response_and_filename_fills_the_key() {
    let (server, s3) = setup().await;
    let mut signed = Signed::new("");
    signed.key_condition = json!(["starts-with", "$key", "user/eric/"]);
    let signed = signed.condition(json!({ "success_action_status": "201" }));
    let mut form = signed.form("user/eric/${filename}", &[("success_action_status", "201")]);
    form.filename = Some("C:\\Users\\eric\\report.pdf".into());
    let resp = post(&server, BUCKET, &form, b"report");
    assert_eq!(resp.status, 201, "{}", resp.body_text());
    let etag = format!("\"{}\"", md5_hex(b"report"));
    assert_eq!(resp.xml_element("Bucket").as_deref(), Some(BUCKET));
    assert_eq!(
        resp.xml_element("Key").as_deref(),
        Some("user/eric/report.pdf")
    );
    assert_eq!(resp.xml_element("ETag").as_deref(), Some(etag.as_str()));
    let location = resp.xml_element("Location").expect("a Location element");
    assert_eq!(
        location,
        format!("http://{}/{BUCKET}/user%2Feric%2Freport.pdf", server.addr())
    );
    assert!(
        resp.body_text().contains("<PostResponse>"),
        "{}",
        resp.body_text()
    );
    assert_eq!(get(&s3, BUCKET, "user/eric/report.pdf").await, b"report");

    // 200 answers an empty body.
    let signed = Signed::new("ok.txt").condition(json!(["eq", "$success_action_status", "200"]));
    let form = signed.form("ok.txt", &[("success_action_status", "200")]);
    let resp = post(&server, BUCKET, &form, b"fine");
    assert_eq!((resp.status, resp.body.len()), (200, 0));
}

#[tokio::test]
async fn success_action_redirect_answers_303_with_bucket_key_and_etag() {
    let (server, s3) = setup().await;
    let target = "https://app.example/done?user=7";
    let form = Signed::new("a b/c.txt")
        .condition(json!([
            "starts-with",
            "$success_action_redirect",
            "https://app.example/"
        ]))
        .form("a b/c.txt", &[("success_action_redirect", target)]);
    let resp = post(&server, BUCKET, &form, b"hello");
    assert_eq!(resp.status, 303, "{}", resp.body_text());
    let etag = md5_hex(b"hello");
    assert_eq!(
        resp.header("location"),
        Some(format!("{target}&bucket={BUCKET}&key=a+b%2Fc.txt&etag=%22{etag}%22").as_str())
    );
    assert_eq!(get(&s3, BUCKET, "a b/c.txt").await, b"hello");
}

// ---------------------------------------------------------------------------------------------
// The policy refuses

#[tokio::test]
async fn an_expired_policy_is_access_denied() {
    let (server, s3) = setup().await;
    let mut signed = Signed::new("late.txt");
    signed.expires = SystemTime::now() - Duration::from_secs(60);
    let resp = post(&server, BUCKET, &signed.form("late.txt", &[]), b"late");
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(
        resp.xml_element("Message").as_deref(),
        Some("Invalid according to Policy: Policy expired.")
    );
    // Finished by the front layer like every S3 error.
    assert_eq!(resp.xml_element("Resource").as_deref(), Some("/forms"));
    assert!(resp.xml_element("RequestId").is_some());
    assert!(absent(&s3, "late.txt").await);
}

#[tokio::test]
async fn a_failed_condition_is_access_denied_and_writes_nothing() {
    let (server, s3) = setup().await;
    let mut signed = Signed::new("");
    signed.key_condition = json!(["starts-with", "$key", "uploads/"]);
    let resp = post(&server, BUCKET, &signed.form("elsewhere.txt", &[]), b"x");
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(
        resp.xml_element("Message").as_deref(),
        Some(
            "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"uploads/\"]"
        )
    );
    assert!(absent(&s3, "elsewhere.txt").await);

    // A metadata value other than the policy's.
    let form = Signed::new("m.txt")
        .condition(json!({ "x-amz-meta-tag": "blue" }))
        .form("m.txt", &[("x-amz-meta-tag", "red")]);
    assert_error(&post(&server, BUCKET, &form, b"x"), 403, "AccessDenied");
    assert!(absent(&s3, "m.txt").await);

    // A policy made for another bucket.
    let form = Signed::new("m.txt").form("m.txt", &[]);
    ok(s3.create_bucket().bucket("other").send().await);
    assert_error(&post(&server, "other", &form, b"x"), 403, "AccessDenied");
}

#[tokio::test]
async fn a_field_the_policy_does_not_cover_is_access_denied() {
    let (server, s3) = setup().await;
    let form = Signed::new("extra.txt").form("extra.txt", &[("x-amz-meta-note", "hi")]);
    let resp = post(&server, BUCKET, &form, b"x");
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(
        resp.xml_element("Message").as_deref(),
        Some("Invalid according to Policy: Extra input fields: x-amz-meta-note")
    );
    assert!(absent(&s3, "extra.txt").await);

    // x-ignore-* fields need no condition.
    let form = Signed::new("ignored.txt").form("ignored.txt", &[("x-ignore-tracking", "1")]);
    assert_eq!(post(&server, BUCKET, &form, b"x").status, 204);
}

#[tokio::test]
async fn a_file_over_content_length_range_writes_nothing_and_keeps_the_old_object() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "doc", b"the old contents").await;
    let temp_before = common::files_under(&server.data_dir().join("tmp")).len();
    let form = Signed::new("doc")
        .condition(json!(["content-length-range", 1, 1024 * 1024]))
        .form("doc", &[]);
    let resp = post(&server, BUCKET, &form, &pattern(3 * 1024 * 1024, 3));
    assert_error(&resp, 400, "EntityTooLarge");
    assert_eq!(
        resp.xml_element("MaxSizeAllowed").as_deref(),
        Some("1048576")
    );
    assert_eq!(get(&s3, BUCKET, "doc").await, b"the old contents");
    assert_eq!(
        common::files_under(&server.data_dir().join("tmp")).len(),
        temp_before,
        "the refused upload left a temp file"
    );

    // The bounds are inclusive.
    let exact = pattern(1024 * 1024, 4);
    assert_eq!(post(&server, BUCKET, &form, &exact).status, 204);
    assert!(get(&s3, BUCKET, "doc").await == exact);
}

#[tokio::test]
async fn a_file_under_content_length_range_is_entity_too_small() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "doc", b"the old contents").await;
    let form = Signed::new("doc")
        .condition(json!(["content-length-range", 100, 1000]))
        .form("doc", &[]);
    let resp = post(&server, BUCKET, &form, b"tiny");
    assert_error(&resp, 400, "EntityTooSmall");
    assert_eq!(resp.xml_element("ProposedSize").as_deref(), Some("4"));
    assert_eq!(resp.xml_element("MinSizeAllowed").as_deref(), Some("100"));
    assert_eq!(get(&s3, BUCKET, "doc").await, b"the old contents");
}

// ---------------------------------------------------------------------------------------------
// Authentication refuses

#[tokio::test]
async fn a_wrong_signature_is_signature_does_not_match() {
    let (server, s3) = setup().await;
    let mut signed = Signed::new("sig.txt");
    signed.secret_key = "WrongSecretKey00000000000000000000000000".into();
    let resp = post(&server, BUCKET, &signed.form("sig.txt", &[]), b"x");
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    assert_eq!(
        resp.xml_element("AWSAccessKeyId").as_deref(),
        Some(ACCESS_KEY)
    );
    assert!(absent(&s3, "sig.txt").await);

    // A policy changed after signing.
    let form = Signed::new("sig.txt").form("sig.txt", &[]);
    let mut tampered = form.clone();
    for (name, value) in &mut tampered.fields {
        if name == "policy" {
            value.pop();
            value.push('A');
        }
    }
    assert_error(
        &post(&server, BUCKET, &tampered, b"x"),
        403,
        "SignatureDoesNotMatch",
    );
}

#[tokio::test]
async fn an_unknown_access_key_is_invalid_access_key_id() {
    let (server, _) = setup().await;
    let mut signed = Signed::new("k.txt");
    signed.access_key = "AKIANOSUCHKEY0000000".into();
    let resp = post(&server, BUCKET, &signed.form("k.txt", &[]), b"x");
    assert_error(&resp, 403, "InvalidAccessKeyId");
    assert_eq!(
        resp.xml_element("AWSAccessKeyId").as_deref(),
        Some("AKIANOSUCHKEY0000000")
    );
}

#[tokio::test]
async fn the_signer_needs_put_object_on_the_key_as_for_a_put() {
    let (server, s3) = setup().await;
    // May upload under uploads/, and only with SSE-S3 asked for explicitly.
    let policy = r#"{
      "Version": "2012-10-17",
      "Statement": [{
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::forms/uploads/*",
        "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}
      }]
    }"#;
    let (key, secret) = server.add_user_online("uploader", Some(policy));
    let as_uploader = |object_key: &str, sse: bool| {
        let mut signed = Signed::new(object_key);
        signed.access_key = key.clone();
        signed.secret_key = secret.clone();
        let fields: &[(&str, &str)] = if sse {
            signed = signed.condition(json!({ "x-amz-server-side-encryption": "AES256" }));
            &[("x-amz-server-side-encryption", "AES256")]
        } else {
            &[]
        };
        post(
            &server,
            BUCKET,
            &signed.form(object_key, fields),
            b"from the uploader",
        )
    };

    assert_eq!(as_uploader("uploads/a.txt", true).status, 204);
    assert_eq!(
        get(&s3, BUCKET, "uploads/a.txt").await,
        b"from the uploader"
    );

    let elsewhere = as_uploader("other/a.txt", true);
    assert_error(&elsewhere, 403, "AccessDenied");
    let message = elsewhere.xml_element("Message").unwrap_or_default();
    assert!(
        message.contains("user/uploader")
            && message.contains("s3:PutObject")
            && message.contains("arn:aws:s3:::forms/other/a.txt"),
        "{message}"
    );
    assert!(absent(&s3, "other/a.txt").await);
    // The form's encryption field is the condition key the policy tests.
    assert_error(&as_uploader("uploads/b.txt", false), 403, "AccessDenied");
    assert!(absent(&s3, "uploads/b.txt").await);
}

/// A bucket policy sees a form upload as `s3:authType` `POST`, signed with
/// `AWS4-HMAC-SHA256` (regression, review of issue 9: the keys were never supplied).
#[tokio::test]
async fn a_bucket_policy_sees_a_form_as_auth_type_post() {
    let (server, s3) = setup().await;
    let deny_forms = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"StringEquals":{{"s3:authType":"POST","s3:signatureversion":"AWS4-HMAC-SHA256"}}}}}}]}}"#
    );
    ok(s3
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(&deny_forms)
        .send()
        .await);
    let form = Signed::new("by-form.txt").form("by-form.txt", &[]);
    assert_error(
        &post(&server, BUCKET, &form, b"posted"),
        403,
        "AccessDenied",
    );
    assert!(absent(&s3, "by-form.txt").await);
    // A PUT is REST-HEADER.
    put(&s3, BUCKET, "by-put.txt", b"put").await;
    // s3:signatureAge: the time since the form's x-amz-date.
    let deny_old = deny_forms.replace(
        r#""StringEquals":{"s3:authType":"POST","s3:signatureversion":"AWS4-HMAC-SHA256"}"#,
        r#""NumericGreaterThan":{"s3:signatureAge":"600000"}"#,
    );
    ok(s3
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(&deny_old)
        .send()
        .await);
    let fresh = Signed::new("fresh.txt").form("fresh.txt", &[]);
    assert_eq!(post(&server, BUCKET, &fresh, b"fresh").status, 204);
    let mut stale = Signed::new("stale.txt");
    stale.signed_at = SystemTime::now() - Duration::from_secs(20 * 60);
    let stale = stale.form("stale.txt", &[]);
    assert_error(
        &post(&server, BUCKET, &stale, b"stale"),
        403,
        "AccessDenied",
    );
    assert!(absent(&s3, "stale.txt").await);
}

#[tokio::test]
async fn an_anonymous_form_is_access_denied_and_writes_nothing() {
    let (server, s3) = setup().await;
    let form = Form::new()
        .field("key", "anon.txt")
        .field("Content-Type", "text/plain");
    let resp = post(&server, BUCKET, &form, b"from a stranger");
    assert_error(&resp, 403, "AccessDenied");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(absent(&s3, "anon.txt").await);

    // A policy without a signature is anonymous too.
    let form = Form::new().field("key", "anon.txt").field(
        "policy",
        "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=",
    );
    assert_error(&post(&server, BUCKET, &form, b"x"), 403, "AccessDenied");
}

#[tokio::test]
async fn a_sigv2_form_is_refused_while_sigv2_is_off() {
    let (server, s3) = setup().await;
    let form = Form::new()
        .field("key", "v2.txt")
        .field("AWSAccessKeyId", ACCESS_KEY)
        .field(
            "policy",
            "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=",
        )
        .field("signature", "bm90IGEgcmVhbCBzaWduYXR1cmU=");
    let resp = post(&server, BUCKET, &form, b"x");
    assert_error(&resp, 400, "InvalidRequest");
    assert!(absent(&s3, "v2.txt").await);
}

#[tokio::test]
async fn with_allow_sigv2_a_sigv2_form_uploads_and_its_signature_is_checked() {
    let server = TestServer::builder().arg("--allow-sigv2").start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let policy = BASE64.encode(
        serde_json::to_vec(&json!({
            "expiration": iso8601(SystemTime::now() + Duration::from_secs(600)),
            "conditions": [{ "bucket": BUCKET }, ["starts-with", "$key", "v2/"]],
        }))
        .unwrap(),
    );
    let form = |key: &str, signature: &str| {
        Form::new()
            .field("key", key)
            .field("AWSAccessKeyId", ACCESS_KEY)
            .field("policy", &policy)
            .field("signature", signature)
    };
    let good = crate::sigv2::sign(common::SECRET_KEY, &policy);
    assert_eq!(
        post(&server, BUCKET, &form("v2/a.txt", &good), b"v2 form").status,
        204
    );
    assert_eq!(get(&s3, BUCKET, "v2/a.txt").await, b"v2 form");

    let wrong = crate::sigv2::sign("WrongSecretKey00000000000000000000000000", &policy);
    let resp = post(&server, BUCKET, &form("v2/b.txt", &wrong), b"x");
    assert_error(&resp, 403, "SignatureDoesNotMatch");
    // The policy still binds the form.
    assert_error(
        &post(&server, BUCKET, &form("v1/c.txt", &good), b"x"),
        403,
        "AccessDenied",
    );
    assert!(absent(&s3, "v2/b.txt").await && absent(&s3, "v1/c.txt").await);
}

// ---------------------------------------------------------------------------------------------
// Malformed forms

#[tokio::test]
async fn fields_before_the_file_over_20_kib_are_max_post_pre_data_length_exceeded() {
    let (server, _) = setup().await;
    let form = Form::new()
        .field("key", "big-fields.txt")
        .field("x-ignore-padding", &"p".repeat(21 * 1024));
    let resp = post(&server, BUCKET, &form, b"x");
    assert_error(&resp, 400, "MaxPostPreDataLengthExceeded");
    assert_eq!(
        resp.xml_element("MaxPostPreDataLengthBytes").as_deref(),
        Some("20480")
    );
}

#[tokio::test]
async fn a_form_without_key_or_file_is_invalid_argument() {
    let (server, _) = setup().await;
    let form = Signed::new("k").form("k", &[]);
    let mut no_key = form.clone();
    no_key.fields.retain(|(name, _)| name != "key");
    let resp = post(&server, BUCKET, &no_key, b"x");
    assert_error(&resp, 400, "InvalidArgument");
    assert_eq!(resp.xml_element("ArgumentName").as_deref(), Some("key"));

    // Only fields, no file part.
    let mut body = Vec::new();
    for (name, value) in &form.fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let resp = request(
        server.addr(),
        "POST",
        &format!("/{BUCKET}"),
        &[content_type_header()],
        &body,
    );
    assert_error(&resp, 400, "InvalidArgument");
    assert_eq!(resp.xml_element("ArgumentName").as_deref(), Some("file"));
}

#[tokio::test]
async fn a_bucket_post_that_is_not_a_form_is_precondition_failed() {
    let (server, _) = setup().await;
    let resp = request(
        server.addr(),
        "POST",
        &format!("/{BUCKET}"),
        &[("content-type".into(), "text/plain".into())],
        b"key=x",
    );
    assert_error(&resp, 412, "PreconditionFailed");
    assert_eq!(
        resp.xml_element("Condition").as_deref(),
        Some("Bucket POST must be of the enclosure-type multipart/form-data")
    );
}

/// The form's encryption fields choose the object's encryption as a PUT's headers do.
#[tokio::test]
async fn a_form_with_sse_kms_fields_stores_the_file_under_the_kms_key() {
    let (server, s3) = setup().await;
    let form = Signed::new("kms.txt")
        .condition(json!({ "x-amz-server-side-encryption": "aws:kms" }))
        .form("kms.txt", &[("x-amz-server-side-encryption", "aws:kms")]);
    let resp = post(&server, BUCKET, &form, b"under a KMS key");
    assert_eq!(resp.status, 204, "{}", resp.body_text());
    assert_eq!(resp.header("x-amz-server-side-encryption"), Some("aws:kms"));
    let head = ok(s3.head_object().bucket(BUCKET).key("kms.txt").send().await);
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert!(
        head.ssekms_key_id()
            .is_some_and(|k| k.starts_with("arn:aws:kms:")),
        "{head:?}"
    );
    assert_eq!(
        common::get(&s3, BUCKET, "kms.txt").await,
        b"under a KMS key"
    );
}

// ---------------------------------------------------------------------------------------------
// Memory before authentication

/// The most the server may hold while strangers stream large forms at it (issue 14, point 1).
const RSS_LIMIT_KIB: u64 = 256 * 1024;
const ANONYMOUS_FORMS: usize = 4;
const ANONYMOUS_FORM_BYTES: u64 = 400 * 1024 * 1024;
const SIGNED_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// How much of a refused stranger's file the client may get to send: the server's lingering
/// read (1 MiB) plus what loopback socket buffers hold.
const STRANGER_READ_LIMIT: u64 = 64 * 1024 * 1024;

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// What became of a streamed form.
#[derive(Debug)]
struct Streamed {
    /// The status the server answered, if it answered.
    status: Option<u16>,
    /// Bytes of the file the server took before it stopped reading.
    file_sent: u64,
    /// MD5 of what was sent of the file.
    md5: String,
}

/// Sends a form head announcing `file_len` bytes of file and then streams the file (generated
/// on the fly, never held) until it is all sent, the server stops reading, or `stop` is set.
fn stream_form(
    addr: std::net::SocketAddr,
    form: &Form,
    file_len: u64,
    stop: &AtomicBool,
) -> Streamed {
    let head = form.head();
    let tail = Form::tail();
    let content_length = head.len() as u64 + file_len + tail.len() as u64;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let request_head = format!(
        "POST /{BUCKET} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}\r\ncontent-length: {content_length}\r\nconnection: close\r\n\r\n"
    );
    let block = pattern(1024 * 1024 - 7, file_len);
    let mut md5 = Md5::new();
    let mut sent_all =
        stream.write_all(request_head.as_bytes()).is_ok() && stream.write_all(&head).is_ok();
    let mut left = file_len;
    while sent_all && left > 0 && !stop.load(Ordering::Relaxed) {
        let n = left.min(block.len() as u64) as usize;
        md5.update(&block[..n]);
        if stream.write_all(&block[..n]).is_err() {
            sent_all = false;
        }
        left -= n as u64;
    }
    let file_sent = file_len - left;
    let md5 = hex::encode(md5.finalize());
    if stop.load(Ordering::Relaxed) {
        // The test has failed; do not wait for an answer the server may never give.
        return Streamed {
            status: None,
            file_sent,
            md5,
        };
    }
    if sent_all && left == 0 {
        let _ = stream.write_all(&tail);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = std::str::from_utf8(&answer)
        .ok()
        .and_then(|t| t.split(' ').nth(1))
        .and_then(|s| s.parse().ok());
    Streamed {
        status,
        file_sent,
        md5,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_form_posts_hold_no_memory_before_authentication() {
    let (server, s3) = setup().await;
    let pid = server.pid();
    let addr = server.addr();
    let (_, start_hwm) = memory_kib(pid).expect("read /proc/<pid>/status");

    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, peak_rss, done) = (stop.clone(), peak_rss.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory_kib(pid) {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                    if rss > RSS_LIMIT_KIB {
                        // Spare the machine: the test has failed already.
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut strangers = Vec::new();
    for i in 0..ANONYMOUS_FORMS {
        let stop = stop.clone();
        strangers.push(thread::spawn(move || {
            let form = Form::new()
                .field("key", &format!("stranger-{i}"))
                .field("Content-Type", "application/octet-stream");
            stream_form(addr, &form, ANONYMOUS_FORM_BYTES, &stop)
        }));
    }
    // And one with a signature that does not match: refused before its file too.
    let forger = {
        let stop = stop.clone();
        let mut signed = Signed::new("forged");
        signed.secret_key = "WrongSecretKey00000000000000000000000000".into();
        let form = signed.form("forged", &[]);
        thread::spawn(move || stream_form(addr, &form, ANONYMOUS_FORM_BYTES, &stop))
    };
    let signed = {
        let stop = stop.clone();
        let form = Signed::new("signed-large")
            .condition(json!(["content-length-range", 0, SIGNED_FILE_BYTES]))
            .form("signed-large", &[]);
        thread::spawn(move || stream_form(addr, &form, SIGNED_FILE_BYTES, &stop))
    };
    let mut stranger_answers: Vec<Streamed> =
        strangers.into_iter().map(|t| t.join().unwrap()).collect();
    stranger_answers.push(forger.join().unwrap());
    let signed = signed.join().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let (_, end_hwm) = memory_kib(pid).expect("the server is still running");
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - started;

    let peak = peak_rss.load(Ordering::Relaxed).max(end_hwm);
    assert!(
        peak < RSS_LIMIT_KIB && !stop.load(Ordering::Relaxed),
        "the server reached {} MiB of RSS (peak resident {} MiB, {} MiB at start) while {ANONYMOUS_FORMS} anonymous forms and a forged one of {} MiB each streamed at it; the limit is {} MiB",
        end_hwm / 1024,
        peak / 1024,
        start_hwm / 1024,
        ANONYMOUS_FORM_BYTES >> 20,
        RSS_LIMIT_KIB / 1024
    );
    for answer in &stranger_answers {
        // Refused after the form fields: 403, or a reset if the refusal crossed the upload;
        // and the server stopped reading soon after the fields (what it took beyond them sat
        // in socket buffers or was read, and dropped, to let the client see the answer).
        assert!(
            matches!(answer.status, Some(403) | None) && answer.file_sent < STRANGER_READ_LIMIT,
            "a stranger's form got {answer:?}"
        );
    }
    assert_eq!(signed.status, Some(204), "the signed upload failed");
    eprintln!(
        "memory test: peak RSS {} MiB over {:.1} s; strangers got (status, MiB sent) {:?}",
        peak / 1024,
        elapsed.as_secs_f64(),
        stranger_answers
            .iter()
            .map(|a| (a.status, a.file_sent >> 20))
            .collect::<Vec<_>>()
    );

    // Nothing of the strangers was stored; the signed upload was, whole; the server serves.
    for i in 0..ANONYMOUS_FORMS {
        assert!(absent(&s3, &format!("stranger-{i}")).await);
    }
    assert!(absent(&s3, "forged").await);
    let head = ok(s3
        .head_object()
        .bucket(BUCKET)
        .key("signed-large")
        .send()
        .await);
    assert_eq!(head.content_length(), Some(SIGNED_FILE_BYTES as i64));
    assert_eq!(head.e_tag(), Some(format!("\"{}\"", signed.md5).as_str()));
    put(&s3, BUCKET, "after", b"still serving").await;
    assert_eq!(get(&s3, BUCKET, "after").await, b"still serving");
}

// ---------------------------------------------------------------------------------------------
// SSE-C in a form

#[tokio::test]
async fn a_form_with_sse_c_fields_stores_under_the_customer_key() {
    let (server, s3) = setup().await;
    let key = [42u8; 32];
    let (key_b64, md5_b64) = (BASE64.encode(key), BASE64.encode(Md5::digest(key)));
    let fields = [
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        (
            "x-amz-server-side-encryption-customer-key",
            key_b64.as_str(),
        ),
        (
            "x-amz-server-side-encryption-customer-key-MD5",
            md5_b64.as_str(),
        ),
    ];
    let mut signed = Signed::new("ssec");
    for (name, value) in fields {
        signed = signed.condition(json!({ name: value }));
    }
    let form = signed.form("ssec", &fields);

    // A new bucket blocks SSE-C: 403, nothing stored.
    let resp = post(&server, BUCKET, &form, b"posted under my key");
    assert_error(&resp, 403, "AccessDenied");
    assert!(absent(&s3, "ssec").await);

    common::set_sse_c_allowed(&s3, BUCKET, true).await;
    let resp = post(&server, BUCKET, &form, b"posted under my key");
    assert_eq!(resp.status, 204, "{}", resp.body_text());
    assert_eq!(
        resp.header("x-amz-server-side-encryption-customer-algorithm"),
        Some("AES256")
    );
    assert_eq!(
        resp.header("x-amz-server-side-encryption-customer-key-MD5"),
        Some(md5_b64.as_str())
    );
    assert_eq!(resp.header("x-amz-server-side-encryption"), None);
    // Readable only with the key.
    let head = s3.head_object().bucket(BUCKET).key("ssec").send().await;
    assert_eq!(
        head.unwrap_err().raw_response().unwrap().status().as_u16(),
        400
    );
    let out = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("ssec")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key_b64)
        .sse_customer_key_md5(&md5_b64)
        .send()
        .await);
    assert_eq!(
        out.body.collect().await.unwrap().to_vec(),
        b"posted under my key"
    );

    // A key whose MD5 does not match is InvalidArgument, before the file is stored.
    let wrong_md5 = BASE64.encode(Md5::digest([1u8; 32]));
    let bad = [
        fields[0],
        fields[1],
        (
            "x-amz-server-side-encryption-customer-key-MD5",
            wrong_md5.as_str(),
        ),
    ];
    let mut signed = Signed::new("bad");
    for (name, value) in bad {
        signed = signed.condition(json!({ name: value }));
    }
    let resp = post(&server, BUCKET, &signed.form("bad", &bad), b"x");
    assert_error(&resp, 400, "InvalidArgument");
    assert!(absent(&s3, "bad").await);
}
