//! POST Object: browser form uploads (`POST /<bucket>` with a `multipart/form-data` body,
//! authorized by a signed POST policy instead of a signed request).
//!
//! The front layer routes every form POST here before `s3s` sees it (`s3s` would buffer the
//! whole file before checking anything). This module reads the fields before the file — at
//! most 20 KiB, S3's limit — and stops there; it checks the signature (SigV4 POST; SigV2 only
//! when allowed) and the policy, and only then streams the file into the PutObject write path,
//! enforcing `content-length-range` as it goes. A form that fails a check is answered without
//! its file being read (a little more is read and dropped, so that the client sees the answer),
//! and its connection is closed rather than drained.
//!
//! It never logs field values, policies or signatures, and holds no more than the fields and
//! one body chunk of a request before that request is authenticated.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::dto::{
    ChecksumAlgorithm, Metadata, ServerSideEncryption, StorageClass, Timestamp, TimestampFormat,
};
use s3s::{Body, S3Error};
use time::OffsetDateTime;

use crate::auth::Credentials;
use crate::authz::{Authorizer, Signing, resource_arn};
use crate::checksum::Claimed;
use crate::encryption::customer::KeyFor;
use crate::encryption::{self, CustomerKey, Sse, SseHeaders, SseView};
use crate::error::api_error;
use crate::form::{self, FilePart, FormError, FormReader, MAX_PRE_DATA};
use crate::kms_api::Connection;
use crate::object::{self, ContentHeaders, NewObject};
use crate::pipeline;
use crate::post_policy::{self, FormView, PolicyError, SizeRange};
use crate::server::RequestInfo;
use crate::service::Coffer;

/// How much of a refused form's body is still read (and dropped) so that the client sees the
/// answer rather than a reset; past it, or after [`LINGER_TIME`], the connection is closed.
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);
/// What may follow the file part (S3 ignores fields after it), and within [`LINGER_TIME`],
/// before the connection is closed instead of read to its end.
const TRAILER_BYTES: usize = 64 * 1024;

/// Where the front layer sends a POST request.
pub(crate) enum Route {
    /// A form POST to a bucket: an upload.
    Upload { bucket: String },
    /// A bucket POST without a subresource whose body is not a form.
    NotFormData,
    /// A form POST to the service or an object.
    NotABucket,
}

/// Which POST requests are this module's: every `multipart/form-data` POST (so that `s3s`
/// never reads such a body), and bucket POSTs without a subresource; `None` for the rest.
pub(crate) fn route<B>(req: &Request<B>) -> Option<Route> {
    if req.method() != Method::POST {
        return None;
    }
    let bucket = match crate::route::Target::of(req.uri().path()) {
        crate::route::Target::Bucket(bucket) => Some(bucket),
        _ => None,
    };
    let form = req
        .headers()
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .any(|v| form::is_form_data(v.as_bytes()));
    match (form, bucket) {
        (true, Some(bucket)) => Some(Route::Upload {
            bucket: bucket.to_owned(),
        }),
        (true, None) => Some(Route::NotABucket),
        (false, Some(_)) if req.uri().query().is_none_or(str::is_empty) => Some(Route::NotFormData),
        (false, _) => None,
    }
}

/// The POST Object handler, shared by every connection.
pub(crate) struct PostObject {
    coffer: Coffer,
    credentials: Credentials,
    region: String,
    account_id: String,
    /// Accept SigV2-signed forms (`AWSAccessKeyId`, `signature`), as `--allow-sigv2` says.
    allow_sigv2: bool,
}

impl PostObject {
    pub(crate) fn new(
        coffer: Coffer,
        credentials: Credentials,
        region: &str,
        account_id: &str,
        allow_sigv2: bool,
    ) -> PostObject {
        PostObject {
            coffer,
            credentials,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            allow_sigv2,
        }
    }

    /// Answers a request [`route`] claimed. Errors are S3 XML bodies, which the front layer
    /// finishes like every other.
    pub(crate) async fn handle(
        &self,
        route: Route,
        req: Request<Incoming>,
        conn: &Connection,
    ) -> Response<Body> {
        let bucket = match route {
            Route::Upload { bucket } => bucket,
            Route::NotFormData => return closing(PostError::NotFormData.response()),
            Route::NotABucket => return closing(PostError::NotABucket.response()),
        };
        if !s3s::path::check_bucket_name(&bucket) {
            return closing(PostError::InvalidBucketName.response());
        }
        let boundary = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .ok_or("the Content-Type is not text")
            .and_then(form::boundary);
        let boundary = match boundary {
            Ok(b) => b,
            Err(why) => return closing(PostError::Form(FormError::Malformed(why)).response()),
        };
        let object_base = object_base_url(&req, conn, &bucket);
        let user_agent = req.headers().get(http::header::USER_AGENT).cloned();
        let headers = req.headers().clone();
        let request_id = req
            .extensions()
            .get::<RequestInfo>()
            .map(|i| i.request_id.clone())
            .unwrap_or_default();
        let body: form::BodyStream = Box::pin(
            http_body_util::BodyDataStream::new(req.into_body())
                .map_err(|e| -> form::BodyError { Box::new(e) }),
        );
        let mut reader = FormReader::new(body, &boundary);
        let fields = reader.read_fields().await;
        // From here the reader is shared with the file source, and with a lingering drain.
        let reader = Arc::new(Mutex::new(reader));
        let plan = fields.map_err(PostError::Form).and_then(|(fields, file)| {
            let request = FormRequest {
                conn,
                user_agent: user_agent.as_ref(),
                now: OffsetDateTime::now_utc(),
            };
            self.prepare(&bucket, fields, &file, &request)
        });
        let (mut plan, authorizer, scheme) = match plan {
            Ok(planned) => planned,
            Err(e) => return refuse(e, reader),
        };
        let who = encryption::Requester {
            caller: authorizer.kms_caller(Some(conn), &request_id, &headers),
            secure: conn.secure,
            sigv2: scheme == Scheme::V2,
        };
        if plan.sse.customer.is_some()
            && let Err(e) = who.check_customer_key_transport(self.coffer.allow_insecure_http)
        {
            return refuse(PostError::S3(e), reader);
        }
        match object::write_encryption(&self.coffer, &plan.sse.headers(), &bucket, &who).await {
            Ok(sse) => plan.object.sse = sse,
            Err(e) => return refuse(PostError::S3(e), reader),
        }

        let violation = Arc::new(Mutex::new(None));
        let source = FileSource {
            reader: Arc::clone(&reader),
            size: plan.size,
            seen: 0,
            violation: Arc::clone(&violation),
            done: false,
        };
        let key = plan.object.key.clone();
        let stored = object::store_object(
            &self.coffer,
            plan.object,
            Box::pin(source),
            plan.algorithm.as_ref(),
            &HeaderMap::new(),
            None,
            &who,
        )
        .await;
        let stored = match stored {
            Ok(s) => s,
            Err(e) => {
                let e = lock(&violation).take().unwrap_or(PostError::S3(e));
                return refuse(e, reader);
            }
        };

        // What follows the file is ignored, but read (briefly), so the connection can be reused.
        let mut budget = TRAILER_BYTES;
        let drain = futures::future::poll_fn(|cx| lock(&reader).poll_drain(cx, &mut budget));
        let ended = tokio::time::timeout(LINGER_TIME, drain)
            .await
            .unwrap_or(false);
        let resp = success(
            &plan.answer,
            &bucket,
            &key,
            &object_base,
            &stored.record,
            plan.sse.customer.as_ref(),
        );
        if ended { resp } else { closing(resp) }
    }

    /// Everything that happens between the fields and the file: the key, the signature, the
    /// policy, the caller's permission, and what the fields ask of the object. Nothing here
    /// reads the body.
    fn prepare(
        &self,
        bucket: &str,
        raw: Vec<form::Field>,
        file: &FilePart,
        request: &FormRequest<'_>,
    ) -> Result<(Plan, Authorizer, Scheme), PostError> {
        let fields = Fields::new(raw, file.filename.as_deref());
        let key = fields
            .get("key")
            .ok_or(PostError::MissingField("key"))?
            .to_owned();
        let signed = match authenticate(&fields, &self.region, self.allow_sigv2, |ak| {
            self.credentials.secret(ak)
        }) {
            Ok(signed) => Some(signed),
            // No signature: anonymous, let in only by a bucket policy that allows everyone.
            Err(PostError::Anonymous) => None,
            Err(e) => return Err(e),
        };
        // An anonymous form has no signature fields: SigV4's exemptions are the form's.
        let (scheme, access_key) = match signed {
            Some((scheme, access_key)) => (scheme, Some(access_key)),
            None => (Scheme::V4, None),
        };
        // As for a PutObject: s3:PutObject on the object (identity policies and the bucket
        // policy), with the form's fields as the request's condition keys.
        let headers = fields.condition_headers(request.user_agent);
        let policies = &self.coffer.policies;
        let authorizer = match &access_key {
            Some(access_key) => Authorizer::for_access_key(
                &self.credentials,
                &self.account_id,
                access_key,
                Some(request.conn),
                &headers,
                Some(policies),
            )
            .ok_or_else(|| PostError::UnknownAccessKey(access_key.clone()))?
            .with_signing(Signing::of_form(
                scheme == Scheme::V2,
                fields.get("X-Amz-Date"),
            )),
            None => Authorizer::anonymous(&self.account_id, Some(request.conn), &headers, policies),
        };
        let permitted = || match authorizer.check("s3:PutObject", &resource_arn(bucket, Some(&key)))
        {
            Ok(()) => Ok(()),
            Err(_) if access_key.is_none() => Err(PostError::Anonymous),
            Err(e) => Err(PostError::S3(e)),
        };
        // A stranger's form is refused by the bucket policy before anything else is looked at.
        if access_key.is_none() {
            permitted()?;
        }
        let size = match (&access_key, fields.get("policy")) {
            // An anonymous form needs no POST policy; one it brings is still enforced.
            (None, None) => SizeRange::default(),
            (_, policy) => post_policy::parse(policy.unwrap_or_default())
                .map_err(PostError::Policy)?
                .check(
                    &FormView {
                        bucket,
                        fields: &fields.list,
                    },
                    request.now,
                    |name| scheme.exempt(name),
                )
                .map_err(PostError::Policy)?,
        };
        if access_key.is_some() {
            permitted()?;
        }
        let plan = plan_upload(bucket, key, &fields, size)?;
        Ok((plan, authorizer, scheme))
    }
}

/// What the authorization of a form needs to know of its request.
struct FormRequest<'a> {
    conn: &'a Connection,
    user_agent: Option<&'a HeaderValue>,
    now: OffsetDateTime,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers a refused form. A body not yet read to its end is read on for a little while (and
/// dropped) so that the client sees the answer, then the connection is closed.
fn refuse(err: PostError, reader: Arc<Mutex<FormReader>>) -> Response<Body> {
    let mut resp = err.response();
    if !lock(&reader).body_ended() {
        tokio::spawn(async move {
            let mut budget = LINGER_BYTES;
            let drain = futures::future::poll_fn(|cx| lock(&reader).poll_drain(cx, &mut budget));
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        });
        resp = closing(resp);
    }
    resp
}

fn closing(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

// ---------------------------------------------------------------------------------------------
// Fields

/// The form's fields before the file: names as sent, values with `${filename}` filled in;
/// repeated names joined with commas (as S3 documents). No `Debug`: values can be secrets.
pub(crate) struct Fields {
    list: Vec<(String, String)>,
}

/// Fields that carry the signature itself: `${filename}` is never filled in there.
const SIGNATURE_FIELDS: &[&str] = &[
    "policy",
    "x-amz-signature",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "awsaccesskeyid",
    "signature",
];

impl Fields {
    pub(crate) fn new(raw: Vec<form::Field>, filename: Option<&str>) -> Fields {
        // "If the browser or client provides a full or partial path to the file, only the text
        // following the last slash (/) or backslash (\) is used." Without a filename parameter
        // S3 leaves `${filename}` as it is.
        let filename = filename.map(|f| f.rsplit(['/', '\\']).next().unwrap_or_default());
        let mut list: Vec<(String, String)> = Vec::with_capacity(raw.len());
        for form::Field { name, mut value } in raw {
            if let Some(f) = filename
                && !SIGNATURE_FIELDS.contains(&name.to_ascii_lowercase().as_str())
            {
                value = value.replace("${filename}", f);
            }
            match list.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&value);
                }
                None => list.push((name, value)),
            }
        }
        Fields { list }
    }

    /// A field's value, its name matched without regard to case.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The fields a PutObject would send as headers that identity policies test
    /// (`s3:x-amz-server-side-encryption`, `s3:x-amz-acl`, …), as those headers.
    fn condition_headers(&self, user_agent: Option<&HeaderValue>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(agent) = user_agent {
            headers.insert(http::header::USER_AGENT, agent.clone());
        }
        for (field, header) in [
            (
                "x-amz-server-side-encryption",
                "x-amz-server-side-encryption",
            ),
            (
                "x-amz-server-side-encryption-aws-kms-key-id",
                "x-amz-server-side-encryption-aws-kms-key-id",
            ),
            (
                "x-amz-server-side-encryption-customer-algorithm",
                "x-amz-server-side-encryption-customer-algorithm",
            ),
            ("acl", "x-amz-acl"),
            ("x-amz-storage-class", "x-amz-storage-class"),
        ] {
            if let Some(v) = self.get(field).and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(header, v);
            }
        }
        headers
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// How a form was signed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    V4,
    V2,
}

impl Scheme {
    /// Fields the policy need not name: "each form field that you specify in a form (except
    /// x-amz-signature, file, policy, and field names that have an x-ignore- prefix) must appear
    /// in the list of conditions" (SigV2: AWSAccessKeyId and signature instead of
    /// x-amz-signature). The `x-ignore-` prefix is the policy checker's.
    fn exempt(&self, lowercase_name: &str) -> bool {
        match self {
            Scheme::V4 => ["x-amz-signature", "file", "policy"].contains(&lowercase_name),
            Scheme::V2 => {
                ["awsaccesskeyid", "signature", "file", "policy"].contains(&lowercase_name)
            }
        }
    }
}

/// Checks the form's signature and returns the scheme and the access key that signed it. A
/// form with SigV4 fields is SigV4; one with SigV2 fields, SigV2; one with neither is
/// anonymous ([`PostError::Anonymous`]), which only a bucket policy can let in. `secret` looks
/// up the secret of an access key.
pub(crate) fn authenticate(
    fields: &Fields,
    region: &str,
    allow_sigv2: bool,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<(Scheme, String), PostError> {
    let has = |name: &str| fields.get(name).is_some();
    let require = |name: &'static str| fields.get(name).ok_or(PostError::MissingField(name));
    if [
        "x-amz-signature",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
    ]
    .iter()
    .any(|n| has(n))
    {
        let algorithm = require("X-Amz-Algorithm")?;
        let credential = require("X-Amz-Credential")?;
        let signature = require("X-Amz-Signature")?;
        let date = require("X-Amz-Date")?;
        let policy = require("Policy")?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(PostError::InvalidField {
                message: "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
                name: "X-Amz-Algorithm",
                value: algorithm.to_owned(),
                region: None,
            });
        }
        let scope = parse_credential(credential, region)?;
        if !valid_amz_date(date) {
            return Err(PostError::InvalidField {
                message: "X-Amz-Date must be formated via ISO8601 Long format".into(),
                name: "X-Amz-Date",
                value: date.to_owned(),
                region: None,
            });
        }
        let secret = secret(scope.access_key)
            .ok_or_else(|| PostError::UnknownAccessKey(scope.access_key.to_owned()))?;
        let key = crate::sigv4::signing_key(&secret, scope.date, region, "s3");
        let expected = hex::encode(coffer_crypto::hmac_sha256(&key, policy.as_bytes()));
        if !coffer_crypto::ct_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(PostError::SignatureMismatch {
                access_key: scope.access_key.to_owned(),
                string_to_sign: policy.to_owned(),
                provided: signature.to_owned(),
            });
        }
        return Ok((Scheme::V4, scope.access_key.to_owned()));
    }
    if has("signature") || has("awsaccesskeyid") {
        if !allow_sigv2 {
            return Err(PostError::SigV2Off);
        }
        let access_key = require("AWSAccessKeyId")?;
        let signature = require("Signature")?;
        let policy = require("Policy")?;
        let secret =
            secret(access_key).ok_or_else(|| PostError::UnknownAccessKey(access_key.to_owned()))?;
        let expected = base64_encode(&coffer_crypto::hmac_sha1(
            secret.as_bytes(),
            policy.as_bytes(),
        ));
        if !coffer_crypto::ct_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(PostError::SignatureMismatch {
                access_key: access_key.to_owned(),
                string_to_sign: policy.to_owned(),
                provided: signature.to_owned(),
            });
        }
        return Ok((Scheme::V2, access_key.to_owned()));
    }
    Err(PostError::Anonymous)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The parts of `AKID/yyyymmdd/region/s3/aws4_request` the signature needs.
struct Scope<'a> {
    access_key: &'a str,
    date: &'a str,
}

/// Parses an `x-amz-credential` field; the errors are S3's for a presigned URL's credential.
fn parse_credential<'a>(credential: &'a str, region: &str) -> Result<Scope<'a>, PostError> {
    let refuse = |message: String| PostError::InvalidField {
        message,
        name: "X-Amz-Credential",
        value: credential.to_owned(),
        region: None,
    };
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5
        || parts[1].len() != 8
        || !parts[1].bytes().all(|b| b.is_ascii_digit())
        || parts[4] != "aws4_request"
    {
        return Err(refuse(
            "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
                .into(),
        ));
    }
    if parts[0].is_empty() {
        return Err(refuse(
            "a non-empty Access Key (AKID) must be provided in the credential.".into(),
        ));
    }
    if parts[2] != region {
        return Err(PostError::InvalidField {
            message: format!("the region '{}' is wrong; expecting '{region}'", parts[2]),
            name: "X-Amz-Credential",
            value: credential.to_owned(),
            region: Some(region.to_owned()),
        });
    }
    if parts[3] != "s3" {
        return Err(refuse(format!(
            "incorrect service \"{}\". This endpoint belongs to \"s3\".",
            parts[3]
        )));
    }
    Ok(Scope {
        access_key: parts[0],
        date: parts[1],
    })
}

/// `YYYYMMDD'T'HHMMSS'Z'`.
fn valid_amz_date(s: &str) -> bool {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt).is_ok()
}

/// `name` without an ASCII `prefix` matched case-insensitively. Compares bytes, so a name
/// holding a multi-byte character where the prefix ends is simply not a match (slicing the
/// `str` there panicked a worker).
fn strip_prefix_ignore_case<'n>(name: &'n str, prefix: &str) -> Option<&'n str> {
    let head = name.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        name.get(prefix.len()..)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The upload

/// What an authorized form asks for.
pub(crate) struct Plan {
    object: NewObject,
    /// The form's encryption fields.
    sse: SseFields,
    algorithm: Option<ChecksumAlgorithm>,
    size: SizeRange,
    answer: Answer,
}

/// A form's encryption fields (the headers of a PUT).
pub(crate) struct SseFields {
    algorithm: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
    context: Option<String>,
    bucket_key: Option<bool>,
    /// The SSE-C key of the `x-amz-server-side-encryption-customer-*` fields, checked.
    customer: Option<CustomerKey>,
}

impl SseFields {
    fn headers(&self) -> SseHeaders<'_> {
        SseHeaders {
            server_side_encryption: self.algorithm.as_ref(),
            kms_key_id: self.kms_key_id.as_deref(),
            kms_context: self.context.as_deref(),
            bucket_key_enabled: self.bucket_key,
            customer: self.customer.as_ref(),
        }
    }
}

/// How a successful upload is answered.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// `303 See Other` to this URL (with `bucket`, `key` and `etag` still to be added).
    Redirect(String),
    /// `200`, `201` (with a `PostResponse` document) or `204`.
    Status(StatusCode),
}

/// Maps the fields to the object's settings, applying PutObject's rules (encryption, storage
/// class, Object Lock) to them.
pub(crate) fn plan_upload(
    bucket: &str,
    key: String,
    fields: &Fields,
    size: SizeRange,
) -> Result<Plan, PostError> {
    if key.is_empty() {
        return Err(PostError::InvalidField {
            message: "User key must have a length greater than 0.".into(),
            name: "key",
            value: String::new(),
            region: None,
        });
    }
    if !s3s::path::check_key(&key) {
        return Err(PostError::S3(api_error!(
            KeyTooLongError,
            "Your key is too long"
        )));
    }
    let field = |name: &str| fields.get(name).map(str::to_owned);
    let sse = SseFields {
        algorithm: field("x-amz-server-side-encryption").map(ServerSideEncryption::from),
        kms_key_id: field("x-amz-server-side-encryption-aws-kms-key-id"),
        context: field("x-amz-server-side-encryption-context"),
        bucket_key: fields
            .get("x-amz-server-side-encryption-bucket-key-enabled")
            .map(|v| v.eq_ignore_ascii_case("true")),
        customer: CustomerKey::from_fields(
            fields.get("x-amz-server-side-encryption-customer-algorithm"),
            &mut field("x-amz-server-side-encryption-customer-key"),
            fields.get("x-amz-server-side-encryption-customer-key-MD5"),
            KeyFor::Object,
        )
        .map_err(PostError::S3)?,
    };
    // Checked here against no bucket default, so a form S3 refuses fails before its file is
    // read; the bucket's default joins in when the upload starts.
    encryption::request::choose(&sse.headers(), None).map_err(PostError::S3)?;
    let storage_class = field("x-amz-storage-class").map(StorageClass::from);
    let object_lock = fields.list.iter().any(|(n, _)| {
        strip_prefix_ignore_case(n, "x-amz-object-lock-").is_some_and(|rest| !rest.is_empty())
    });
    object::check_write_options(storage_class.as_ref(), object_lock).map_err(PostError::S3)?;

    // Form fields, unlike request headers, can hold what a response header cannot: refused
    // here, or the object could never be read back.
    for name in [
        "Content-Type",
        "Cache-Control",
        "Content-Disposition",
        "Content-Encoding",
    ] {
        if let Some(v) = fields.get(name)
            && HeaderValue::from_bytes(v.as_bytes()).is_err()
        {
            return Err(PostError::InvalidField {
                message: format!("{name} holds characters an HTTP header cannot carry"),
                name,
                value: v.to_owned(),
                region: None,
            });
        }
    }
    const META: &str = "x-amz-meta-";
    let metadata: Metadata = fields
        .list
        .iter()
        .filter_map(|(n, v)| {
            strip_prefix_ignore_case(n, META)
                .filter(|rest| !rest.is_empty())
                .map(|rest| (rest.to_ascii_lowercase(), v.clone()))
        })
        .collect();
    if let Some(bad) = metadata
        .keys()
        .find(|k| http::HeaderName::from_bytes(format!("{META}{k}").as_bytes()).is_err())
    {
        return Err(PostError::S3(api_error!(
            InvalidArgument,
            "{META}{bad} is not a valid metadata name"
        )));
    }
    let expires = fields
        .get("Expires")
        .and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok());

    let answer = match fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .filter(|url| redirect_target(url).is_some())
    {
        Some(url) => Answer::Redirect(url.to_owned()),
        None => Answer::Status(match fields.get("success_action_status") {
            Some("200") => StatusCode::OK,
            Some("201") => StatusCode::CREATED,
            _ => StatusCode::NO_CONTENT,
        }),
    };
    Ok(Plan {
        object: NewObject {
            bucket: bucket.to_owned(),
            key,
            headers: ContentHeaders {
                content_type: field("Content-Type"),
                content_encoding: field("Content-Encoding"),
                content_disposition: field("Content-Disposition"),
                content_language: None,
                cache_control: field("Cache-Control"),
                expires: object::format_expires(expires.as_ref()),
            },
            metadata: (!metadata.is_empty()).then_some(metadata),
            claimed: Claimed {
                crc32: field("x-amz-checksum-crc32"),
                crc32c: field("x-amz-checksum-crc32c"),
                crc64nvme: field("x-amz-checksum-crc64nvme"),
                sha1: field("x-amz-checksum-sha1"),
                sha256: field("x-amz-checksum-sha256"),
            },
            content_md5: field("Content-MD5"),
            if_none_match: None,
            if_match: None,
            // Chosen with the bucket's default in `PostObject::handle`.
            sse: Sse::S3,
        },
        sse,
        algorithm: field("x-amz-checksum-algorithm").map(ChecksumAlgorithm::from),
        size: SizeRange {
            min: size.min,
            max: size.max.min(pipeline::MAX_SINGLE_UPLOAD),
        },
        answer,
    })
}

/// The file part as the write pipeline's source, enforcing the policy's size range as it
/// streams: past the maximum it fails at once; under the minimum it fails at the end, before
/// the object can be committed. The S3 error the pipeline sees is a stand-in; the refusal with
/// S3's details (sizes) is left in `violation`.
struct FileSource {
    reader: Arc<Mutex<FormReader>>,
    size: SizeRange,
    seen: u64,
    violation: Arc<Mutex<Option<PostError>>>,
    done: bool,
}

impl FileSource {
    fn fail(&mut self, e: PostError) -> S3Error {
        self.done = true;
        *lock(&self.violation) = Some(e);
        api_error!(InvalidRequest, "the form upload was refused")
    }
}

impl Stream for FileSource {
    type Item = Result<Bytes, S3Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = ready!(lock(&this.reader).poll_file_chunk(cx));
        Poll::Ready(match next {
            Some(Ok(chunk)) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.size.max {
                    Some(Err(this.fail(PostError::TooLarge { max: this.size.max })))
                } else {
                    Some(Ok(chunk))
                }
            }
            Some(Err(e)) => Some(Err(this.fail(PostError::Form(e)))),
            None if this.seen < this.size.min => Some(Err(this.fail(PostError::TooSmall {
                size: this.seen,
                min: this.size.min,
            }))),
            None => {
                this.done = true;
                None
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// `http(s)://host/bucket/`, the start of an object's URL in a `Location`.
fn object_base_url<B>(req: &Request<B>, conn: &Connection, bucket: &str) -> String {
    let scheme = if conn.secure { "https" } else { "http" };
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    format!("{scheme}://{host}/{bucket}/")
}

/// Percent-encodes all but unreserved characters; `form` encodes a space as `+`
/// (application/x-www-form-urlencoded, as S3 does in redirect queries).
fn percent_encode(s: &str, form: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' if form => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The redirect URL with S3's `bucket`, `key` and `etag` query parameters added (before any
/// fragment), if `url` is an absolute http(s) URL that can be a `Location` header; S3 ignores
/// any other `success_action_redirect`.
pub(crate) fn redirect_target(url: &str) -> Option<String> {
    redirect_with(url, "", "", "")
}

fn redirect_with(url: &str, bucket: &str, key: &str, etag: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return None;
    }
    let (base, fragment) = match url.find('#') {
        Some(at) => (&url[..at], &url[at..]),
        None => (url, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let target = format!(
        "{base}{sep}bucket={}&key={}&etag={}{fragment}",
        percent_encode(bucket, true),
        percent_encode(key, true),
        percent_encode(etag, true)
    );
    HeaderValue::from_str(&target).ok().map(|_| target)
}

/// The answer to a stored upload.
fn success(
    answer: &Answer,
    bucket: &str,
    key: &str,
    object_base: &str,
    rec: &coffer_store::ObjectRecord,
    customer: Option<&CustomerKey>,
) -> Response<Body> {
    let etag = format!("\"{}\"", rec.etag);
    let location = format!("{object_base}{}", percent_encode(key, false));
    let mut resp = match answer {
        Answer::Redirect(url) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            if let Some(v) =
                redirect_with(url, bucket, key, &etag).and_then(|t| HeaderValue::from_str(&t).ok())
            {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        Answer::Status(status) => {
            let mut r = if *status == StatusCode::CREATED {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    crate::server::xml_escape(&location),
                    crate::server::xml_escape(bucket),
                    crate::server::xml_escape(key),
                    crate::server::xml_escape(&etag)
                );
                let mut r = Response::new(Body::from(Bytes::from(xml)));
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                r
            } else {
                Response::new(Body::empty())
            };
            *r.status_mut() = *status;
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(http::header::ETAG, v);
    }
    let view = SseView::of(&rec.envelope, customer);
    for (name, value) in [
        (
            "x-amz-server-side-encryption",
            view.algorithm.map(|a| a.as_str().to_owned()),
        ),
        (
            "x-amz-server-side-encryption-customer-algorithm",
            view.customer_algorithm,
        ),
        (
            "x-amz-server-side-encryption-customer-key-MD5",
            view.customer_key_md5,
        ),
        (
            "x-amz-server-side-encryption-aws-kms-key-id",
            view.kms_key_arn,
        ),
        ("x-amz-server-side-encryption-context", view.context),
        (
            "x-amz-server-side-encryption-bucket-key-enabled",
            view.bucket_key_enabled.map(|b| b.to_string()),
        ),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, v);
        }
    }
    let c = &rec.checksums;
    for (name, value) in [
        ("x-amz-checksum-crc32", &c.crc32),
        ("x-amz-checksum-crc32c", &c.crc32c),
        ("x-amz-checksum-crc64nvme", &c.crc64nvme),
        ("x-amz-checksum-sha1", &c.sha1),
        ("x-amz-checksum-sha256", &c.sha256),
        ("x-amz-checksum-type", &c.checksum_type),
    ] {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a form upload was refused; [`PostError::response`] is its one mapping to the wire.
pub(crate) enum PostError {
    /// A bucket POST whose body is not `multipart/form-data`.
    NotFormData,
    /// A form POST to the service or an object rather than a bucket.
    NotABucket,
    /// The URL's bucket name is not a valid one.
    InvalidBucketName,
    /// The body is not a readable form.
    Form(FormError),
    /// A field S3 requires is missing (or came after the file).
    MissingField(&'static str),
    /// A field has a value S3 refuses.
    InvalidField {
        message: String,
        name: &'static str,
        value: String,
        region: Option<String>,
    },
    /// No signature, and the bucket policy does not let everyone upload there.
    Anonymous,
    /// A SigV2 form while SigV2 is off.
    SigV2Off,
    /// The access key is not known.
    UnknownAccessKey(String),
    /// The signature does not match the policy.
    SignatureMismatch {
        access_key: String,
        string_to_sign: String,
        provided: String,
    },
    /// The policy is malformed, expired, or not met.
    Policy(PolicyError),
    /// The file is over `content-length-range` (or 5 GiB).
    TooLarge { max: u64 },
    /// The file is under `content-length-range`.
    TooSmall { size: u64, min: u64 },
    /// An error of the PutObject path (no such bucket, encryption, storage, …).
    S3(S3Error),
}

impl PostError {
    /// The S3 XML error answer; the front layer adds `Resource` and `RequestId`.
    fn response(self) -> Response<Body> {
        let mut extra: Vec<(&str, String)> = Vec::new();
        let (status, code, message): (StatusCode, String, Option<String>) = match self {
            PostError::NotFormData => {
                extra.push((
                    "Condition",
                    "Bucket POST must be of the enclosure-type multipart/form-data".into(),
                ));
                (
                    StatusCode::PRECONDITION_FAILED,
                    "PreconditionFailed".into(),
                    Some("At least one of the pre-conditions you specified did not hold".into()),
                )
            }
            PostError::NotABucket => {
                extra.push(("Method", "POST".into()));
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed".into(),
                    Some("The specified method is not allowed against this resource.".into()),
                )
            }
            PostError::InvalidBucketName => (
                StatusCode::BAD_REQUEST,
                "InvalidBucketName".into(),
                Some("The specified bucket is not valid.".into()),
            ),
            PostError::Form(FormError::Malformed(_)) => (
                StatusCode::BAD_REQUEST,
                "MalformedPOSTRequest".into(),
                Some("The body of your POST request is not well-formed multipart/form-data.".into()),
            ),
            PostError::Form(FormError::PreDataTooLarge) => {
                extra.push(("MaxPostPreDataLengthBytes", MAX_PRE_DATA.to_string()));
                (
                    StatusCode::BAD_REQUEST,
                    "MaxPostPreDataLengthExceeded".into(),
                    // S3's wording, grammar included.
                    Some("Your POST request fields preceeding the upload file was too large.".into()),
                )
            }
            PostError::Form(FormError::NoFile) => {
                extra.push(("ArgumentName", "file".into()));
                extra.push(("ArgumentValue", "0".into()));
                (
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument".into(),
                    Some("POST requires exactly one file upload per request.".into()),
                )
            }
            PostError::Form(FormError::Body(_)) => (
                StatusCode::BAD_REQUEST,
                "IncompleteBody".into(),
                Some("You did not provide the number of bytes specified by the Content-Length HTTP header".into()),
            ),
            PostError::MissingField(name) => {
                extra.push(("ArgumentName", name.into()));
                extra.push(("ArgumentValue", String::new()));
                (
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument".into(),
                    Some(format!(
                        "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
                    )),
                )
            }
            PostError::InvalidField {
                message,
                name,
                value,
                region,
            } => {
                extra.push(("ArgumentName", name.into()));
                extra.push(("ArgumentValue", value));
                if let Some(r) = region {
                    extra.push(("Region", r));
                }
                (StatusCode::BAD_REQUEST, "InvalidArgument".into(), Some(message))
            }
            PostError::Anonymous => (
                StatusCode::FORBIDDEN,
                "AccessDenied".into(),
                Some("Access Denied".into()),
            ),
            PostError::SigV2Off => (
                StatusCode::BAD_REQUEST,
                "InvalidRequest".into(),
                Some("The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.".into()),
            ),
            PostError::UnknownAccessKey(access_key) => {
                extra.push(("AWSAccessKeyId", access_key));
                (
                    StatusCode::FORBIDDEN,
                    "InvalidAccessKeyId".into(),
                    Some("The AWS Access Key Id you provided does not exist in our records.".into()),
                )
            }
            PostError::SignatureMismatch {
                access_key,
                string_to_sign,
                provided,
            } => {
                extra.push(("AWSAccessKeyId", access_key));
                extra.push(("StringToSign", string_to_sign));
                extra.push(("SignatureProvided", provided));
                (
                    StatusCode::FORBIDDEN,
                    "SignatureDoesNotMatch".into(),
                    Some("The request signature we calculated does not match the signature you provided. Check your key and signing method.".into()),
                )
            }
            PostError::Policy(e @ PolicyError::Invalid(_)) => (
                StatusCode::BAD_REQUEST,
                "InvalidPolicyDocument".into(),
                Some(e.to_string()),
            ),
            PostError::Policy(
                e @ (PolicyError::Expired
                | PolicyError::ConditionFailed(_)
                | PolicyError::ExtraField(_)),
            ) => (StatusCode::FORBIDDEN, "AccessDenied".into(), Some(e.to_string())),
            PostError::TooLarge { max } => {
                extra.push(("MaxSizeAllowed", max.to_string()));
                (
                    StatusCode::BAD_REQUEST,
                    "EntityTooLarge".into(),
                    Some("Your proposed upload exceeds the maximum allowed size".into()),
                )
            }
            PostError::TooSmall { size, min } => {
                extra.push(("ProposedSize", size.to_string()));
                extra.push(("MinSizeAllowed", min.to_string()));
                (
                    StatusCode::BAD_REQUEST,
                    "EntityTooSmall".into(),
                    Some("Your proposed upload is smaller than the minimum allowed size".into()),
                )
            }
            PostError::S3(e) => (
                e.status_code().unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.code().as_str().to_owned(),
                e.message().map(str::to_owned),
            ),
        };
        crate::server::error_response_with(status, &code, message.as_deref(), &extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn fields(pairs: &[(&str, &str)], filename: Option<&str>) -> Fields {
        let raw = pairs
            .iter()
            .map(|(n, v)| form::Field {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        Fields::new(raw, filename)
    }

    fn secret(ak: &str) -> Option<String> {
        (ak == AK).then(|| SECRET.to_owned())
    }

    fn status(e: PostError) -> u16 {
        e.response().status().as_u16()
    }

    /// AWS's "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)":
    /// its policy, credential and date give the signature the page states.
    const AWS_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
    const AWS_SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

    fn aws_example(signature: &str) -> Fields {
        fields(
            &[
                ("key", "user/user1/${filename}"),
                (
                    "X-Amz-Credential",
                    "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
                ),
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                ("X-Amz-Date", "20151229T000000Z"),
                ("Policy", AWS_POLICY),
                ("X-Amz-Signature", signature),
            ],
            Some("photo.jpg"),
        )
    }

    #[test]
    fn sigv4_post_signatures_verify_against_aws_and_botocore_vectors() {
        assert_eq!(
            authenticate(&aws_example(AWS_SIGNATURE), "us-east-1", false, secret).ok(),
            Some((Scheme::V4, AK.to_owned()))
        );
        // botocore's generate_presigned_post("sigv4examplebucket", "user/user1/photo.jpg")
        // with the clock at 2015-12-29T00:00:00Z, recomputed independently.
        let botocore = fields(
            &[
                ("key", "user/user1/photo.jpg"),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                (
                    "x-amz-credential",
                    "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
                ),
                ("x-amz-date", "20151229T000000Z"),
                (
                    "policy",
                    "eyJleHBpcmF0aW9uIjogIjIwMTUtMTItMjlUMDE6MDA6MDBaIiwgImNvbmRpdGlvbnMiOiBbeyJidWNrZXQiOiAic2lndjRleGFtcGxlYnVja2V0In0sIHsia2V5IjogInVzZXIvdXNlcjEvcGhvdG8uanBnIn0sIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwgeyJ4LWFtei1jcmVkZW50aWFsIjogIkFLSUFJT1NGT0ROTjdFWEFNUExFLzIwMTUxMjI5L3VzLWVhc3QtMS9zMy9hd3M0X3JlcXVlc3QifSwgeyJ4LWFtei1kYXRlIjogIjIwMTUxMjI5VDAwMDAwMFoifV19",
                ),
                (
                    "x-amz-signature",
                    "3364624b39010d9b06f5d9b8c9a18a6e478d261c048159c92f2fd6fa885f14e6",
                ),
            ],
            Some("photo.jpg"),
        );
        assert_eq!(
            authenticate(&botocore, "us-east-1", false, secret).ok(),
            Some((Scheme::V4, AK.to_owned()))
        );
    }

    #[test]
    fn sigv4_refusals_are_s3s() {
        let wrong = AWS_SIGNATURE.replace('8', "9");
        assert!(matches!(
            authenticate(&aws_example(&wrong), "us-east-1", false, secret),
            Err(PostError::SignatureMismatch { ref access_key, ref string_to_sign, .. })
                if access_key == AK && string_to_sign == AWS_POLICY
        ));
        assert!(matches!(
            authenticate(&aws_example(AWS_SIGNATURE), "us-east-1", false, |_| None),
            Err(PostError::UnknownAccessKey(ref ak)) if ak == AK
        ));
        assert!(matches!(
            authenticate(&aws_example(AWS_SIGNATURE), "eu-west-1", false, secret),
            Err(PostError::InvalidField { region: Some(ref r), .. }) if r == "eu-west-1"
        ));
        let without = |name: &str| {
            let mut f = aws_example(AWS_SIGNATURE);
            f.list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            authenticate(&f, "us-east-1", false, secret)
        };
        assert!(matches!(
            without("x-amz-signature"),
            Err(PostError::MissingField("X-Amz-Signature"))
        ));
        assert!(matches!(
            without("policy"),
            Err(PostError::MissingField("Policy"))
        ));
        assert!(matches!(
            without("x-amz-algorithm"),
            Err(PostError::MissingField("X-Amz-Algorithm"))
        ));
        let mut f = aws_example(AWS_SIGNATURE);
        f.list[3].1 = "2015-12-29".into();
        assert!(matches!(
            authenticate(&f, "us-east-1", false, secret),
            Err(PostError::InvalidField {
                name: "X-Amz-Date",
                ..
            })
        ));
        for bad in [
            "AK/2015/us-east-1/s3/aws4_request",
            "/20151229/us-east-1/s3/aws4_request",
            "AK/20151229/us-east-1/sqs/aws4_request",
        ] {
            let mut f = aws_example(AWS_SIGNATURE);
            f.list[1].1 = bad.into();
            assert!(
                matches!(
                    authenticate(&f, "us-east-1", false, secret),
                    Err(PostError::InvalidField {
                        name: "X-Amz-Credential",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        // No signature fields at all: anonymous, even with a policy.
        let anonymous = fields(&[("key", "k"), ("policy", AWS_POLICY)], None);
        assert!(matches!(
            authenticate(&anonymous, "us-east-1", true, secret),
            Err(PostError::Anonymous)
        ));
    }

    #[test]
    fn sigv2_forms_verify_only_when_allowed() {
        let policy = "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbeyJidWNrZXQiOiJwaG90b3MifSx7ImtleSI6ImEudHh0In1dfQ==";
        // base64(HMAC-SHA1(secret, policy)), computed with Python's hmac module.
        let good = "GbaMrd5/zwL1BebdM9Sbv8Md70U=";
        let v2 = |signature: &str| {
            fields(
                &[
                    ("key", "a.txt"),
                    ("AWSAccessKeyId", AK),
                    ("policy", policy),
                    ("signature", signature),
                ],
                None,
            )
        };
        assert!(matches!(
            authenticate(&v2(good), "us-east-1", false, secret),
            Err(PostError::SigV2Off)
        ));
        assert_eq!(
            authenticate(&v2(good), "us-east-1", true, secret).ok(),
            Some((Scheme::V2, AK.to_owned()))
        );
        assert!(matches!(
            authenticate(
                &v2("GbaMrd5/zwL1BebdM9Sbv8Md70V="),
                "us-east-1",
                true,
                secret
            ),
            Err(PostError::SignatureMismatch { .. })
        ));
        assert!(Scheme::V2.exempt("awsaccesskeyid") && !Scheme::V4.exempt("awsaccesskeyid"));
    }

    #[test]
    fn filename_fills_fields_but_never_the_signed_ones() {
        let f = fields(
            &[
                ("key", "up/${filename}"),
                ("x-amz-meta-name", "${filename}"),
                ("policy", "${filename}"),
                ("Key", "again"),
            ],
            Some("C:\\Users\\me\\a b.png"),
        );
        assert_eq!(f.get("KEY"), Some("up/a b.png,again"));
        assert_eq!(f.get("x-amz-meta-name"), Some("a b.png"));
        assert_eq!(f.get("policy"), Some("${filename}"));
        // Without a filename parameter S3 leaves the variable as it is.
        let f = fields(&[("key", "up/${filename}")], None);
        assert_eq!(f.get("key"), Some("up/${filename}"));
        let f = fields(&[("key", "up/${filename}")], Some(""));
        assert_eq!(f.get("key"), Some("up/"));
    }

    #[test]
    fn fields_become_the_objects_settings() {
        let f = fields(
            &[
                ("Content-Type", "image/png"),
                ("X-Amz-Meta-Owner", "Ann"),
                ("Expires", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("success_action_status", "201"),
                ("x-amz-server-side-encryption", "AES256"),
            ],
            None,
        );
        let plan =
            plan_upload("b", "k".into(), &f, SizeRange::default()).unwrap_or_else(|_| panic!());
        assert_eq!(
            plan.object.headers.content_type.as_deref(),
            Some("image/png")
        );
        assert_eq!(
            plan.object
                .metadata
                .as_ref()
                .and_then(|m| m.get("owner"))
                .map(String::as_str),
            Some("Ann")
        );
        assert_eq!(
            plan.object.headers.expires.as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(plan.answer, Answer::Status(StatusCode::CREATED));
        assert_eq!(plan.size.max, pipeline::MAX_SINGLE_UPLOAD);

        let refused = |pairs: &[(&str, &str)]| match plan_upload(
            "b",
            "k".into(),
            &fields(pairs, None),
            SizeRange::default(),
        ) {
            Err(e) => status(e),
            Ok(_) => panic!("{pairs:?} was accepted"),
        };
        assert_eq!(
            refused(&[("x-amz-server-side-encryption", "aws:rot13")]),
            400
        );
        assert_eq!(
            refused(&[("x-amz-server-side-encryption-aws-kms-key-id", "alias/app")]),
            400
        );
        // An SSE-C algorithm without its key.
        assert_eq!(
            refused(&[("x-amz-server-side-encryption-customer-algorithm", "AES256")]),
            400
        );
        assert_eq!(refused(&[("x-amz-storage-class", "FAST")]), 400);
        assert_eq!(refused(&[("x-amz-object-lock-mode", "GOVERNANCE")]), 400);
        assert_eq!(refused(&[("Content-Type", "text/plain\r\nX-Evil: 1")]), 400);
        assert_eq!(refused(&[("x-amz-meta-a b", "v")]), 400);
        assert!(plan_upload("b", String::new(), &fields(&[], None), SizeRange::default()).is_err());
        assert!(
            plan_upload(
                "b",
                "k".repeat(1025),
                &fields(&[], None),
                SizeRange::default()
            )
            .is_err()
        );

        // An unusable redirect is ignored, as S3 does, and success_action_status applies.
        let f = fields(
            &[
                ("success_action_redirect", "/relative"),
                ("success_action_status", "200"),
            ],
            None,
        );
        let plan =
            plan_upload("b", "k".into(), &f, SizeRange::default()).unwrap_or_else(|_| panic!());
        assert_eq!(plan.answer, Answer::Status(StatusCode::OK));
        let f = fields(&[("redirect", "https://x.example/ok")], None);
        let plan =
            plan_upload("b", "k".into(), &f, SizeRange::default()).unwrap_or_else(|_| panic!());
        assert_eq!(plan.answer, Answer::Redirect("https://x.example/ok".into()));
    }

    #[test]
    fn redirects_carry_bucket_key_and_etag() {
        assert_eq!(
            redirect_with("https://a.example/done", "b", "dir/a b.txt", "\"e\"").as_deref(),
            Some("https://a.example/done?bucket=b&key=dir%2Fa+b.txt&etag=%22e%22")
        );
        assert_eq!(
            redirect_with("HTTP://a.example/x?y=1#top", "b", "k", "\"e\"").as_deref(),
            Some("HTTP://a.example/x?y=1&bucket=b&key=k&etag=%22e%22#top")
        );
        for bad in [
            "/relative",
            "ftp://a.example/",
            "https://",
            "https:///path",
            "https://a.example/\n",
        ] {
            assert_eq!(redirect_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn routes() {
        let req = |method: Method, uri: &str, ct: Option<&str>| {
            let mut b = Request::builder().method(method).uri(uri);
            if let Some(ct) = ct {
                b = b.header("content-type", ct);
            }
            b.body(()).unwrap()
        };
        let form = Some("multipart/form-data; boundary=x");
        assert!(matches!(
            route(&req(Method::POST, "/photos", form)),
            Some(Route::Upload { ref bucket }) if bucket == "photos"
        ));
        assert!(matches!(
            route(&req(
                Method::POST,
                "/photos/",
                Some("Multipart/Form-Data ;boundary=x")
            )),
            Some(Route::Upload { .. })
        ));
        assert!(matches!(
            route(&req(Method::POST, "/photos/k", form)),
            Some(Route::NotABucket)
        ));
        assert!(matches!(
            route(&req(Method::POST, "/", form)),
            Some(Route::NotABucket)
        ));
        assert!(matches!(
            route(&req(Method::POST, "/photos", Some("text/plain"))),
            Some(Route::NotFormData)
        ));
        // Bucket POSTs with a subresource (DeleteObjects) and other methods stay with s3s.
        assert!(
            route(&req(
                Method::POST,
                "/photos?delete",
                Some("application/xml")
            ))
            .is_none()
        );
        assert!(route(&req(Method::POST, "/photos/k?uploads", None)).is_none());
        assert!(route(&req(Method::PUT, "/photos/k", form)).is_none());
    }
}
