//! Property tests that feed hostile input — arbitrary bytes, broken percent-escapes, multi-byte
//! characters where ASCII is expected — to every hand-written decoder on the request path, and
//! check that none panics and that the round trips hold. A panic there kills the task serving
//! the connection: issue 14 found `%a` followed by a multi-byte character in a presigned URL's
//! `X-Amz-Credential` doing exactly that, because `percent_decode` sliced a `str` inside a
//! character.
//!
//! The tests below are the inventory: a new function that parses request bytes by hand belongs
//! here. (`s3s` parses the rest — paths, XML bodies, aws-chunked framing, typed headers — and
//! `coffer-kms` its JSON with serde.) Test-only: this module is never compiled into the server.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::string::string_regex;

use crate::checksum::{self, Claimed};
use crate::form::{self, FormReader};
use crate::post_policy::{self, FormView};
use crate::{bucket, copy, document, kms_api, list, object, post_object, server, sigv2, sigv4};

const SECRET: &str = "TestRootSecretKey0000000000000000000000A";

/// Text biased toward what breaks decoders — `%` with zero, one or two hex digits, multi-byte
/// characters, separators, the keywords parsers look for — or any string at all.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        string_regex(
            "(%[0-9a-fA-F]{0,2}|[a-zA-Z0-9]|[=&/+:;,.~_-]|é|€|😀|\u{80}|\u{7ff}|\u{10FFFF}|AWS |AWS4-HMAC-SHA256 |Credential=|Signature=|SignedHeaders=|aws4_request|bytes=){0,24}"
        )
        .expect("valid regex"),
    ]
}

/// Text that may go into a request target: hostile, but without the characters no request
/// line can carry (controls, space, `#`), so that most cases reach the decoders.
fn target_text() -> impl Strategy<Value = String> {
    hostile_text().prop_map(|s| {
        s.chars()
            .filter(|c| !c.is_control() && !c.is_whitespace() && *c != '#')
            .collect()
    })
}

/// A header value as the wire may carry one: any bytes `http` accepts (obs-text included).
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        hostile_text().prop_map(String::into_bytes),
        vec(any::<u8>(), 0..48),
    ]
    .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok())
}

/// Headers that some decoder on the request path reads.
const HEADER_NAMES: &[&str] = &[
    "authorization",
    "content-encoding",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "expect",
    "host",
    "user-agent",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
    "x-amz-content-sha256",
    "x-amz-copy-source-range",
    "x-amz-date",
    "x-amz-meta-a",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-server-side-encryption",
    "x-amz-target",
    "x-amz-trailer",
];

fn headers() -> impl Strategy<Value = HeaderMap> {
    vec((select(HEADER_NAMES), header_value()), 0..8).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), value);
        }
        map
    })
}

/// Query parameters some decoder looks for (`Sig%6Eature` is `Signature` once decoded).
const QUERY_NAMES: &[&str] = &[
    "AWSAccessKeyId",
    "Expires",
    "Sig%6Eature",
    "Signature",
    "X-Amz-Credential",
    "X-Amz-Expires",
    "X-Amz-Signature",
    "acl",
    "partNumber",
    "uploadId",
    "versionId",
];

/// A request target: a hostile path and query (or raw bytes after `/`), as `http` parses it.
fn uri() -> impl Strategy<Value = http::Uri> {
    let structured = (
        target_text(),
        vec((select(QUERY_NAMES), target_text()), 0..5),
    )
        .prop_map(|(path, params)| {
            let mut target = format!("/{path}");
            for (i, (name, value)) in params.iter().enumerate() {
                target.push(if i == 0 { '?' } else { '&' });
                target.push_str(&format!("{name}={value}"));
            }
            target.into_bytes()
        });
    let raw = vec(any::<u8>(), 0..32).prop_map(|bytes| [b"/".as_slice(), &bytes].concat());
    prop_oneof![4 => structured, 1 => raw]
        .prop_filter_map("not a URI http accepts", |t| http::Uri::try_from(t).ok())
}

fn request() -> impl Strategy<Value = Request<()>> {
    (
        select(&["GET", "PUT", "POST", "HEAD", "DELETE"][..]),
        uri(),
        headers(),
    )
        .prop_map(|(method, uri, headers)| {
            let mut req = Request::new(());
            *req.method_mut() = method.parse().expect("a valid method");
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            req
        })
}

/// A request whose Authorization header is well-formed enough (and dated now) for the
/// verifiers to go on to canonicalize the hostile path, query and headers.
fn almost_signed_request() -> impl Strategy<Value = Request<()>> {
    (request(), target_text(), target_text(), any::<bool>()).prop_map(
        |(mut req, signed_headers, signature, v2)| {
            let now = time::OffsetDateTime::now_utc();
            let amz_date = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            let auth = if v2 {
                format!("AWS AKID:{signature}")
            } else {
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/{}/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date;{signed_headers}, Signature={signature}",
                    &amz_date[..8]
                )
            };
            let headers = req.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&auth) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
            headers.insert(
                "x-amz-date",
                HeaderValue::from_str(&amz_date).expect("ASCII date"),
            );
            req
        },
    )
}

fn claimed_from(headers: &HeaderMap) -> Claimed {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    Claimed {
        crc32: text("x-amz-checksum-crc32"),
        crc32c: text("x-amz-checksum-crc32c"),
        crc64nvme: text("x-amz-checksum-crc64nvme"),
        sha1: text("x-amz-checksum-sha1"),
        sha256: text("x-amz-checksum-sha256"),
    }
}

/// Runs SigV4 verification over `req` as the KMS endpoint does (body included).
fn verify_sigv4(req: &Request<()>, body: &[u8]) -> Result<String, sigv4::SigError> {
    let signed = sigv4::SignedRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        body,
    };
    sigv4::verify(&signed, "us-east-1", "kms", SystemTime::now(), |_| {
        Some(SECRET.to_owned())
    })
}

/// Issue 14: `%a` followed by a multi-byte character made `percent_decode` slice inside the
/// character and panic the worker serving a presigned URL (and `sigv4::decode`, a KMS call).
#[test]
fn a_broken_escape_before_a_multi_byte_character_is_kept_as_text() {
    assert_eq!(sigv4::percent_decode("%aé"), "%aé");
    assert_eq!(sigv4::percent_decode("AK%2F%a€x%41"), "AK/%a€xA");
    assert_eq!(sigv4::percent_decode("%"), "%");
    assert_eq!(sigv4::percent_decode("%4"), "%4");
    assert_eq!(sigv4::percent_decode("%41"), "A");
    assert_eq!(sigv4::percent_decode("%ff"), "\u{FFFD}");

    let req = Request::get("/bkt/k?X-Amz-Credential=%aé&X-Amz-Expires=60")
        .body(())
        .expect("http accepts a raw multi-byte character in a query");
    let (code, _) = server::check_credential_scope(&req, "us-east-1")
        .expect("a mal-formed credential is refused");
    assert_eq!(code, "AuthorizationQueryParametersError");

    let kms = Request::post("/?x=%aé").body(()).expect("a valid request");
    assert!(verify_sigv4(&kms, b"{}").is_err());
    assert_eq!(sigv4::canonical_query(Some("x=%aé")), "x=%25a%C3%A9");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn percent_decode_never_panics_and_inverts_uri_encode(s in hostile_text()) {
        let _ = sigv4::percent_decode(&s);
        prop_assert_eq!(sigv4::percent_decode(&sigv4::uri_encode(&s, false)), s.clone());
        prop_assert_eq!(sigv4::percent_decode(&sigv4::uri_encode(&s, true)), s);
    }

    #[test]
    fn text_decoders_never_panic(s in hostile_text(), size in any::<u64>()) {
        let _ = server::scope_error(&s, "us-east-1");
        let _ = server::between(&s, "<Code>", "</Code>");
        let _ = sigv4::parse_auth(&s);
        let _ = sigv4::canonical_query(Some(&s));
        let _ = sigv4::parse_amz_date(&s);
        let _ = sigv2::parse_http_date(&s);
        let _ = checksum::check_content_md5(Some(&s), &[0; 16]);
        let _ = copy::copy_range(Some(&s), size);
        let _ = object::parse_expires(Some(&s));
        let _ = object::check_version_id(Some(&s));
        let _ = bucket::check_reserved_name(&s);
        let _ = list::decode_token(&s);
        let _ = list::url_encode(&s);
    }

    #[test]
    fn front_layer_checks_never_panic(req in request(), region in hostile_text()) {
        let _ = server::query_value(&req, "X-Amz-Credential");
        let _ = server::check_credential_scope(&req, "us-east-1");
        let _ = server::check_credential_scope(&req, &region);
        let _ = server::misplaced_sse_header(&req);
        let _ = kms_api::is_kms(&req);
        let _ = kms_api::claimed_access_key(req.headers());
        let _ = document::digest_headers(&req);
        let now = SystemTime::now();
        let _ = sigv2::check(&req, false, now, |_| Some(SECRET.to_owned()));
        let _ = sigv2::check(&req, true, now, |_| Some(SECRET.to_owned()));
        let _ = sigv2::check(&req, true, now + Duration::from_secs(u64::from(u32::MAX)), |_| None);
        let query = req.uri().query().map(str::to_owned);
        let rewritten = server::sigv2_bucket_path(req);
        prop_assert_eq!(rewritten.uri().query().map(str::to_owned), query);
    }

    #[test]
    fn signature_verifiers_never_panic(req in almost_signed_request(), body in vec(any::<u8>(), 0..64)) {
        let _ = verify_sigv4(&req, &body);
        let _ = sigv2::check(&req, true, SystemTime::now(), |_| Some(SECRET.to_owned()));
        let _ = server::check_credential_scope(&req, "us-east-1");
        let _ = kms_api::claimed_access_key(req.headers());
    }

    #[test]
    fn body_digest_checks_never_panic(headers in headers(), body in vec(any::<u8>(), 0..64)) {
        let _ = checksum::check_whole_body(&headers, &body);
        let claimed = claimed_from(&headers);
        let _ = checksum::hasher_for(&claimed, None, &headers);
        let stored = coffer_store::Checksums {
            crc32: claimed.crc32c.clone(),
            crc32c: claimed.crc32.clone(),
            crc64nvme: claimed.sha1.clone(),
            sha1: claimed.crc64nvme.clone(),
            sha256: claimed.sha256.clone(),
            ..Default::default()
        };
        let _ = checksum::check_object_checksum(&claimed, &stored);
    }

    #[test]
    fn continuation_tokens_round_trip(s in hostile_text()) {
        prop_assert_eq!(list::decode_token(&list::encode_token(&s)).ok(), Some(s));
    }

    #[test]
    fn a_common_prefix_is_a_prefix_of_its_key(
        prefix in hostile_text(),
        rest in hostile_text(),
        delimiter in hostile_text(),
    ) {
        let key = format!("{prefix}{rest}");
        if let Some(common) = list::common_prefix(&key, &prefix, Some(&delimiter)) {
            prop_assert!(key.starts_with(common) && common.starts_with(&prefix));
            prop_assert!(common.ends_with(&delimiter));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POST Object: the form reader, part headers, policies, fields

const BOUNDARY: &str = "b0uNd4ry";

/// Pieces a form is made of, and what breaks form parsers: delimiters whole and cut, CRLFs,
/// header lines, the file part's name, hostile text and bytes.
fn form_piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed = select(
        &[
            "--b0uNd4ry\r\n",
            "\r\n--b0uNd4ry\r\n",
            "\r\n--b0uNd4ry--\r\n",
            "\r\n--b0uNd",
            "--b0uNd4ry  \t\r\n",
            "\r\n",
            "\r\n\r\n",
            "Content-Disposition: form-data; name=\"file\"; filename=\"a\\\\b.png\"\r\n\r\n",
            "Content-Disposition: form-data; name=\"key\"\r\n\r\n",
            "Content-Disposition: form-data; name=\"unterminated\r\n\r\n",
            "Content-Disposition: attachment; name=file\r\n\r\n",
            "Content-Type: text/plain\r\n",
        ][..],
    )
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        3 => fixed,
        1 => hostile_text().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..32),
    ]
}

/// Runs a future that never waits (its body is in memory) to completion.
fn ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn reader_of(body: &[u8], chunk: usize) -> FormReader {
    let chunks: Vec<Result<bytes::Bytes, form::BodyError>> = body
        .chunks(chunk.max(1))
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    FormReader::new(Box::pin(futures::stream::iter(chunks)), BOUNDARY)
}

/// A form as read: its fields, the file's `filename`, the file.
type ReadForm = (Vec<(String, String)>, Option<String>, Vec<u8>);

/// Reads a whole form: its fields, its file, what follows.
fn read_form(mut reader: FormReader) -> Result<ReadForm, form::FormError> {
    let (fields, part) = ready(reader.read_fields())?;
    let mut file = Vec::new();
    while let Some(chunk) = ready(futures::future::poll_fn(|cx| reader.poll_file_chunk(cx))) {
        file.extend_from_slice(&chunk?);
    }
    let mut budget = 1 << 20;
    let _ = ready(futures::future::poll_fn(|cx| {
        reader.poll_drain(cx, &mut budget)
    }));
    let fields = fields.into_iter().map(|f| (f.name, f.value)).collect();
    Ok((fields, part.filename, file))
}

/// A POST policy document of hostile conditions (JSON values of every type, the operators and
/// field names the checker looks for).
fn policy_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        hostile_text().prop_map(Value::from),
        select(
            &[
                "eq",
                "starts-with",
                "content-length-range",
                "$key",
                "$Content-Type",
                "$bucket",
                "5",
                "-1"
            ][..]
        )
        .prop_map(Value::from),
    ];
    let condition = prop_oneof![
        vec(scalar.clone(), 0..5).prop_map(Value::Array),
        vec((hostile_text(), scalar.clone()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        scalar.clone(),
    ];
    (
        prop_oneof![
            Just(json!("2099-01-01T00:00:00Z")),
            Just(json!("2000-01-01T00:00:00.000Z")),
            scalar,
        ],
        vec(condition, 0..6),
        any::<bool>(),
    )
        .prop_map(|(expiration, conditions, extra)| {
            let mut doc = json!({ "expiration": expiration, "conditions": conditions });
            if extra {
                doc["Statement"] = json!([]);
            }
            doc
        })
}

fn form_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = select(
        &[
            "key",
            "policy",
            "x-amz-signature",
            "X-Amz-Credential",
            "x-amz-algorithm",
            "x-amz-date",
            "AWSAccessKeyId",
            "signature",
            "Content-Type",
            "Expires",
            "success_action_redirect",
            "success_action_status",
            "x-amz-meta-é",
            "x-amz-meta-a",
            "x-amz-storage-class",
            "x-amz-server-side-encryption",
            "x-amz-object-lock-mode",
            "x-ignore-x",
            "acl",
        ][..],
    );
    // Known names, and known prefixes followed by hostile text (a multi-byte character right
    // where a prefix ends once panicked a worker: `x-amz-metaé1`).
    let prefixed = (
        select(
            &[
                "x-amz-meta",
                "x-amz-meta-",
                "x-amz-object-lock",
                "x-amz-object-lock-",
            ][..],
        ),
        hostile_text(),
    )
        .prop_map(|(prefix, rest)| format!("{prefix}{rest}"));
    let name = prop_oneof![names.prop_map(str::to_owned), prefixed];
    vec((name, hostile_text()), 0..10)
}

/// Issue 14 review: field names with a multi-byte character where a prefix ends.
#[test]
fn multibyte_field_names_do_not_panic_the_form_planner() {
    for name in ["x-amz-metaé1", "x-amz-object-locké1", "x-amz-meta-é"] {
        let raw = vec![form::Field {
            name: name.to_owned(),
            value: "v".to_owned(),
        }];
        let fields = post_object::Fields::new(raw, None);
        let _ = post_object::plan_upload(
            "bucket",
            "k".to_owned(),
            &fields,
            post_policy::SizeRange::default(),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn form_text_decoders_never_panic(s in hostile_text(), bytes in vec(any::<u8>(), 0..48)) {
        let _ = form::boundary(&s);
        let _ = form::is_form_data(&bytes);
        let _ = form::is_form_data(s.as_bytes());
        let _ = form::parse_disposition(&s);
        let _ = form::parse_part_headers(&bytes);
        let _ = form::parse_part_headers(s.as_bytes());
        let _ = post_policy::parse(&s);
        let _ = post_object::redirect_target(&s);
    }

    #[test]
    fn the_form_reader_never_panics(pieces in vec(form_piece(), 0..24), chunk in 1usize..40) {
        let body = pieces.concat();
        let _ = read_form(reader_of(&body, chunk));
    }

    #[test]
    fn forms_round_trip_through_the_reader(
        fields in vec(("[a-zA-Z0-9_-]{1,12}", hostile_text()), 0..6),
        file in vec(any::<u8>(), 0..300),
        filename in "[a-zA-Z0-9 ._-]{0,16}",
        chunk in 1usize..64,
    ) {
        let mut body = Vec::new();
        for (name, value) in &fields {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let delimiter = format!("\r\n--{BOUNDARY}");
        let contains_delimiter = |v: &[u8]| v.windows(delimiter.len()).any(|w| w == delimiter.as_bytes());
        prop_assume!(!contains_delimiter(&file) && fields.iter().all(|(_, v)| !contains_delimiter(v.as_bytes())));
        prop_assume!(body.len() < form::MAX_PRE_DATA);
        let (got_fields, got_name, got_file) = read_form(reader_of(&body, chunk)).expect("a well-formed form");
        prop_assert_eq!(got_fields, fields);
        prop_assert_eq!(got_name, Some(filename));
        prop_assert_eq!(got_file, file);
    }

    #[test]
    fn post_policies_never_panic(doc in policy_json(), fields in form_fields(), bucket in hostile_text()) {
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            serde_json::to_vec(&doc).expect("JSON"),
        );
        if let Ok(policy) = post_policy::parse(&b64) {
            let view = FormView { bucket: &bucket, fields: &fields };
            let _ = policy.check(&view, time::OffsetDateTime::now_utc(), |n| n == "policy");
        }
    }

    #[test]
    fn form_fields_never_panic(fields in form_fields(), filename in proptest::option::of(hostile_text()), sigv2 in any::<bool>()) {
        let raw = fields
            .into_iter()
            .map(|(name, value)| form::Field { name, value })
            .collect();
        let fields = post_object::Fields::new(raw, filename.as_deref());
        let _ = post_object::authenticate(&fields, "us-east-1", sigv2, |_| Some(SECRET.to_owned()));
        let key = fields.get("key").unwrap_or("k").to_owned();
        let _ = post_object::plan_upload("bucket", key, &fields, post_policy::SizeRange::default());
    }
}
