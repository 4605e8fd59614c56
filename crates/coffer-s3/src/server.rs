//! The HTTP front layer: one hyper service in front of `s3s` that owns what every response
//! shares — the admin surface (`/-/health`, `/-/ready`, `/-/metrics`), request ids, and S3
//! error bodies with `Resource` and `RequestId` (which `s3s` leaves out) — and routes KMS
//! calls (`X-Amz-Target: TrentService.*`) to `kms_api`, IAM calls (SigV4 scope `iam`) to
//! `iam_api`, browser form uploads (POST Object) to `post_object` and CORS preflights to `cors`
//! before `s3s` sees them, and adds the CORS headers of a browser's actual requests.
//!
//! It never logs request headers or bodies: they can carry signatures and keys.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::auth::Credentials;
use crate::authz::S3AccessControl;
use crate::bucket_encryption::EncryptionRoute;
use crate::cors::{BucketCors, CorsRequest};
use crate::document;
use crate::iam_api::IamFront;
use crate::kms_api::{Connection, KmsFront};
use crate::post_object::{self, PostObject};
use crate::route::{self, Route, Target};
use crate::service::Coffer;
use crate::sigv2;
use crate::sigv4::percent_decode;

/// Largest error body the front layer rewrites (s3s error bodies are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the front layer knows of a request that the operations need too (in its extensions).
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// The id the response carries (and the audit log, for KMS calls S3 makes).
    pub request_id: String,
    /// Whether it is signed with Signature Version 2.
    pub sigv2: bool,
}

/// What the front layer needs besides the S3 service itself.
pub struct FrontendConfig {
    pub credentials: Credentials,
    /// The region requests must be signed for.
    pub region: String,
    /// The account id in principal and resource ARNs.
    pub account_id: String,
    /// The KMS endpoint, when the key service runs.
    pub kms: Option<KmsFront>,
    /// The IAM endpoint (users, access keys, identity policies).
    pub iam: Option<IamFront>,
    /// Accept SigV2-signed requests (`--allow-sigv2`); off, they are refused as S3 refuses them
    /// on a SigV4-only bucket. See [`sigv2`].
    pub allow_sigv2: bool,
}

/// The server's request handler, cheap to clone per connection.
#[derive(Clone)]
pub struct Frontend {
    s3: S3Service,
    region: Arc<str>,
    credentials: Arc<Credentials>,
    kms: Option<Arc<KmsFront>>,
    iam: Option<Arc<IamFront>>,
    allow_sigv2: bool,
    /// Whether SSE-C keys may come over plain HTTP (`--allow-insecure-http`).
    allow_insecure_http: bool,
    post: Arc<PostObject>,
    cors: Arc<BucketCors>,
    stats: Arc<Stats>,
}

/// The handler bound to one connection (it knows the peer and whether TLS is on).
#[derive(Clone)]
pub struct ConnectionService {
    front: Frontend,
    conn: Connection,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors_4xx: AtomicU64,
    errors_5xx: AtomicU64,
}

impl Frontend {
    /// Builds the handler over a `Coffer` service.
    pub fn new(coffer: Coffer, cfg: FrontendConfig) -> Frontend {
        let post = PostObject::new(
            coffer.clone(),
            cfg.credentials.clone(),
            &cfg.region,
            &cfg.account_id,
            cfg.allow_sigv2,
        );
        let allow_insecure_http = coffer.allow_insecure_http;
        let encryption_route = EncryptionRoute::new(
            coffer.clone(),
            cfg.credentials.clone(),
            cfg.account_id.clone(),
        );
        let cors = Arc::clone(&coffer.cors);
        let policies = coffer.policies.clone();
        let mut builder = S3ServiceBuilder::new(coffer);
        builder.set_route(encryption_route);
        builder.set_auth(cfg.credentials.clone());
        builder.set_access(S3AccessControl::new(
            cfg.credentials.clone(),
            cfg.account_id.clone(),
            policies,
        ));
        Frontend {
            s3: builder.build(),
            region: cfg.region.into(),
            credentials: Arc::new(cfg.credentials),
            kms: cfg.kms.map(Arc::new),
            iam: cfg.iam.map(Arc::new),
            allow_sigv2: cfg.allow_sigv2,
            allow_insecure_http,
            post: Arc::new(post),
            cors,
            stats: Arc::new(Stats::default()),
        }
    }

    /// The handler for one accepted connection.
    pub fn connection(&self, peer: std::net::SocketAddr, secure: bool) -> ConnectionService {
        ConnectionService {
            front: self.clone(),
            conn: Connection { peer, secure },
        }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request<Incoming>, conn: &Connection) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let request_id = new_request_id();
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let started = std::time::Instant::now();

        let route = route::classify(&req);
        if route == Route::Kms {
            let resp = match &self.kms {
                Some(kms) => kms.handle(req, &self.credentials, conn, &request_id).await,
                None => error_response(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "The key service is not running",
                ),
            };
            self.count(resp.status());
            tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, request_id, "kms request");
            return resp;
        }

        if route == Route::Iam {
            let resp = match &self.iam {
                Some(iam) => iam.handle(req, conn, &request_id).await,
                None => error_response(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "The IAM endpoint is not running",
                ),
            };
            self.count(resp.status());
            tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, request_id, "iam request");
            return resp;
        }

        // Whether hyper will have answered `Expect: 100-continue` with `100 Continue`: it does so
        // only when the body is read, and an empty body never is.
        let expects_continue = asks_100_continue(&req);
        let empty_body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        let req = sigv2_bucket_path(req);
        // An actual request from a browser page gets its CORS headers whatever the answer.
        let cors = matches!(route, Route::S3 | Route::PostObject)
            .then(|| CorsRequest::of(&req))
            .flatten();
        let early = (route == Route::Admin)
            .then(|| admin(&path, &self.stats, self.kms.as_deref()))
            .flatten()
            .or_else(|| (route == Route::Preflight).then(|| self.cors.preflight(&req)))
            .or_else(|| sigv2::refusal(&req, self.allow_sigv2, &self.credentials))
            .or_else(|| {
                check_credential_scope(&req, &self.region)
                    .map(|(code, msg)| error_response(StatusCode::BAD_REQUEST, code, &msg))
            })
            .or_else(|| misplaced_sse_header(&req))
            .or_else(|| refused_customer_key_headers(&req, conn, self.allow_insecure_http))
            .or_else(|| unsigned_amz_headers(&req));
        let post = (route == Route::PostObject)
            .then(|| post_object::route(&req))
            .flatten();
        let mut resp = match (early, post) {
            (Some(r), _) => r,
            // Form uploads never reach `s3s`, which would buffer the file before any check.
            (None, post) => {
                let mut req = req;
                // For the access check's `aws:SecureTransport` and `aws:SourceIp`, and the KMS
                // calls S3 makes on the caller's behalf.
                let sigv2 = sigv2::is_sigv2(&req);
                req.extensions_mut().insert(RequestInfo {
                    request_id: request_id.clone(),
                    sigv2,
                });
                req.extensions_mut().insert(conn.clone());
                match post {
                    Some(post) => self.post.handle(post, req, conn).await,
                    None => self.call_s3(req).await,
                }
            }
        };
        let status = resp.status();
        self.count(status);
        if status == StatusCode::NOT_MODIFIED {
            *resp.body_mut() = Body::empty();
            resp.headers_mut().remove(http::header::CONTENT_TYPE);
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        } else if (status.is_client_error() || status.is_server_error()) && method != Method::HEAD {
            resp = complete_error_body(resp, &path, &request_id).await;
        }
        if expects_continue && (empty_body || !status.is_success()) {
            // No `100 Continue` was sent (an empty body, or an answer given before the body was
            // read). A client that got a final answer instead keeps state from that exchange —
            // botocore then misreads the next response on the connection and stalls until its
            // read timeout (`aws s3 sync` of a tree with empty files) — so the connection ends.
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(cors) = &cors {
            self.cors.decorate(cors, resp.headers_mut());
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v.clone());
            resp.headers_mut().insert("x-amz-id-2", v);
        }
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, request_id, "request");
        resp
    }
}

impl Frontend {
    /// Hands a request to `s3s`; a document body's digests are checked as `s3s` reads it (see
    /// [`document`]), and a mismatch is answered with its S3 error.
    async fn call_s3(&self, req: Request<Incoming>) -> Response<Body> {
        let rejection = document::Rejection::default();
        let req = match document::digest_headers(&req) {
            Some(digests) => req.map(|body| {
                Body::http_body(document::DigestCheckedBody::new(
                    body,
                    digests,
                    Arc::clone(&rejection),
                ))
            }),
            None => req.map(Body::from),
        };
        let answer = self.s3.call(req).await;
        let rejected = rejection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(e) = rejected {
            let status = e.status_code().unwrap_or(StatusCode::BAD_REQUEST);
            return error_response(status, e.code().as_str(), e.message().unwrap_or(""));
        }
        match answer {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = ?e, "s3 service failure");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            }
        }
    }

    fn count(&self, status: StatusCode) {
        if status.is_client_error() {
            self.stats.errors_4xx.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            self.stats.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.front.handle(req, &this.conn).await) })
    }
}

/// S3 refuses `x-amz-server-side-encryption` on requests that do not choose an object's
/// encryption — GET, HEAD, UploadPart, CompleteMultipartUpload — rather than ignore it. On
/// CompleteMultipartUpload, `AES256` (what the upload is under) is let through: minio-go, and so
/// `mc`, repeats the upload's SSE-S3 header there for every endpoint that is not Amazon's.
pub(crate) fn misplaced_sse_header<B>(req: &Request<B>) -> Option<Response<Body>> {
    let value = req.headers().get("x-amz-server-side-encryption")?;
    let aes256 = value.as_bytes() == b"AES256";
    let on_object = Target::of(req.uri().path()).is_object();
    let has = |name: &str| query_value(req, name).is_some();
    let refused = match *req.method() {
        Method::GET | Method::HEAD => on_object,
        Method::PUT => on_object && has("uploadId") && has("partNumber"),
        Method::POST => on_object && has("uploadId") && !aes256,
        _ => false,
    };
    refused.then(|| {
        error_response(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "x-amz-server-side-encryption header is not supported for this operation.",
        )
    })
}

/// A request that carries an SSE-C key (for the object or a copy's source) over plain HTTP:
/// refused as S3 refuses it, before anything else reads it, unless the operator allowed plain
/// HTTP; and SSE-C header values that are not text, refused without being quoted. (A POST
/// form's key fields are checked by the POST path.)
pub(crate) fn refused_customer_key_headers<B>(
    req: &Request<B>,
    conn: &Connection,
    allow_insecure_http: bool,
) -> Option<Response<Body>> {
    let is_key_header = |name: &http::header::HeaderName| {
        let name = name.as_str();
        name.starts_with("x-amz-server-side-encryption-customer-")
            || name.starts_with("x-amz-copy-source-server-side-encryption-customer-")
    };
    // A value that is not plain text would reach s3s, whose error message (and error log line)
    // quotes the header's value: refused here, without quoting it.
    if let Some((name, _)) = req.headers().iter().find(|(name, value)| {
        is_key_header(name) && !value.as_bytes().iter().all(|b| b.is_ascii_graphic())
    }) {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &format!("The {name} header must be base64 text"),
        ));
    }
    if conn.secure || allow_insecure_http {
        return None;
    }
    let carries_key = req.headers().keys().any(is_key_header);
    carries_key.then(|| {
        error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
        )
    })
}

/// A SigV4 presigned request that carries `x-amz-*` headers its signature does not cover:
/// refused as S3 refuses it (`403 AccessDenied`, "There were headers present in the request
/// which were not signed", `<HeadersNotSigned>`). A URL signs the operation it was made for; an
/// unsigned `x-amz-server-side-encryption-customer-key`, `x-amz-copy-source` or `x-amz-acl` added
/// by whoever holds the URL would otherwise change what it does (store under their own SSE-C
/// key, turn a PUT into a copy). `x-amz-content-sha256` may go unsigned, as on S3.
pub(crate) fn unsigned_amz_headers<B>(req: &Request<B>) -> Option<Response<Body>> {
    // The query decoded exactly as s3s decodes it to tell a presigned request and verify it
    // (`application/x-www-form-urlencoded`): a parameter name spelled `X-Amz-Signatur%65` is the
    // signature to s3s, so it must be to this check too.
    let query = req.uri().query()?;
    let mut presigned = false;
    let mut signed = String::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "X-Amz-Signature" {
            presigned = true;
        } else if name == "X-Amz-SignedHeaders" {
            signed = value.to_ascii_lowercase();
        }
    }
    if !presigned {
        return None;
    }
    let signed: Vec<&str> = signed.split(';').collect();
    let mut unsigned: Vec<&str> = req
        .headers()
        .keys()
        .map(http::header::HeaderName::as_str)
        .filter(|name| {
            name.starts_with("x-amz-") && *name != "x-amz-content-sha256" && !signed.contains(name)
        })
        .collect();
    if unsigned.is_empty() {
        return None;
    }
    unsigned.dedup();
    let names = unsigned.join(", ");
    Some(error_response_with(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        Some("There were headers present in the request which were not signed"),
        &[("HeadersNotSigned", names)],
    ))
}

/// A SigV2-signed request for a bucket (`/bucket`) with the path `/bucket/`. SigV2 signs a
/// bucket as `/bucket/` (AWS's CanonicalizedResource; botocore signs it so), while `s3s` signs
/// the path as sent and routes both forms alike; without this every SigV2 bucket request (boto3
/// with `signature_version='s3'`: CreateBucket, ListObjects, HeadBucket) failed its signature.
pub(crate) fn sigv2_bucket_path<B>(req: Request<B>) -> Request<B> {
    let sigv2 = sigv2::is_sigv2(&req);
    let path = req.uri().path();
    // `/bucket/` is already what SigV2 signs.
    let bucket_only = matches!(Target::of(path), Target::Bucket(_)) && !path.ends_with('/');
    if !sigv2 || !bucket_only {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{}/?{q}", parts.uri.path()),
        None => format!("{}/", parts.uri.path()),
    };
    let mut uri = http::uri::Parts::from(parts.uri.clone());
    if let Ok(pq) = path_and_query.parse() {
        uri.path_and_query = Some(pq);
        if let Ok(rewritten) = http::Uri::from_parts(uri) {
            parts.uri = rewritten;
        }
    }
    Request::from_parts(parts, body)
}

/// The raw (still percent-encoded) value of query parameter `name`, `""` for a bare `name`.
pub(crate) fn query_value<'r, B>(req: &'r Request<B>, name: &str) -> Option<&'r str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// An HTTP/1.1 request with `Expect: 100-continue`.
fn asks_100_continue(req: &Request<Incoming>) -> bool {
    req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// S3 request ids are 16 upper-case hex characters.
fn new_request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_ascii_uppercase()
}

/// The admin surface under `/-/` (a GET or HEAD [`Route::Admin`]); `None` for a path it does
/// not serve.
/// Metrics are Prometheus text: request and error counters, and the KMS calls S3 made on its
/// callers' behalf (`op="GenerateDataKey"` / `op="Decrypt"`), which show what Bucket Keys save.
fn admin(path: &str, stats: &Stats, kms: Option<&KmsFront>) -> Option<Response<Body>> {
    let body = match path {
        "/-/health" | "/-/ready" => "ok\n".to_owned(),
        "/-/metrics" => {
            let mut text = format!(
                "# TYPE coffer_requests_total counter\ncoffer_requests_total {}\n# TYPE coffer_responses_4xx_total counter\ncoffer_responses_4xx_total {}\n# TYPE coffer_responses_5xx_total counter\ncoffer_responses_5xx_total {}\n",
                stats.requests.load(Ordering::Relaxed),
                stats.errors_4xx.load(Ordering::Relaxed),
                stats.errors_5xx.load(Ordering::Relaxed),
            );
            if let Some(front) = kms {
                let calls = front.kms.service_calls();
                text.push_str(&format!(
                    "# TYPE coffer_kms_service_calls_total counter\ncoffer_kms_service_calls_total{{op=\"GenerateDataKey\"}} {}\ncoffer_kms_service_calls_total{{op=\"Decrypt\"}} {}\n",
                    calls.generate_data_key, calls.decrypt,
                ));
            }
            text
        }
        _ => return None,
    };
    let mut resp = Response::new(Body::from(Bytes::from(body)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(resp)
}

/// Checks the shape and scope of SigV4 credentials before `s3s` verifies the signature:
/// `s3s` accepts a valid signature made for any region and calls a garbled header
/// `InvalidRequest`; S3 answers both with `AuthorizationHeaderMalformed` (headers) or
/// `AuthorizationQueryParametersError` (presigned URLs).
pub(crate) fn check_credential_scope<B>(
    req: &Request<B>,
    region: &str,
) -> Option<(&'static str, String)> {
    if let Some(auth) = req.headers().get(http::header::AUTHORIZATION) {
        const CODE: &str = "AuthorizationHeaderMalformed";
        let auth = auth.to_str().ok()?;
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let mut credential = None;
        let (mut signed_headers, mut signature) = (false, false);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if part.starts_with("SignedHeaders=") {
                signed_headers = true;
            } else if part.starts_with("Signature=") {
                signature = true;
            }
        }
        let Some(credential) = credential.filter(|_| signed_headers && signature) else {
            return Some((CODE, "The authorization header is malformed; it must contain Credential, SignedHeaders and Signature.".to_owned()));
        };
        return scope_error(credential, region)
            .map(|m| (CODE, format!("The authorization header is malformed; {m}")));
    }
    let credential = percent_decode(query_value(req, "X-Amz-Credential")?);
    if let Some(m) = scope_error(&credential, region) {
        return Some((
            "AuthorizationQueryParametersError",
            format!("Error parsing the X-Amz-Credential parameter; {m}"),
        ));
    }
    match query_value(req, "X-Amz-Expires")?.parse::<u64>() {
        Ok(seconds) if seconds <= MAX_PRESIGNED_EXPIRY => None,
        Ok(_) => Some((
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
        )),
        Err(_) => Some((
            "AuthorizationQueryParametersError",
            "X-Amz-Expires should be a number".to_owned(),
        )),
    }
}

/// The longest validity of a SigV4 presigned URL (7 days), as S3 enforces it.
const MAX_PRESIGNED_EXPIRY: u64 = 604_800;

/// What is wrong with a credential `AKID/yyyymmdd/region/service/aws4_request`, if anything.
pub(crate) fn scope_error(credential: &str, region: &str) -> Option<String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let well_formed = parts.len() == 5
        && parts[1].len() == 8
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[4] == "aws4_request"
        && !parts[0].is_empty();
    if !well_formed {
        return Some("the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".".to_owned());
    }
    if parts[2] != region {
        return Some(format!(
            "the region '{}' is wrong; expecting '{region}'",
            parts[2]
        ));
    }
    None
}

/// Escapes text for an XML element's content (Coffer writes no attribute values, so quotes stay
/// as they are, as in S3's `<ETag>"…"</ETag>`).
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An S3 XML error response built here (for failures outside `s3s`).
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    error_response_with(status, code, Some(message), &[])
}

/// The one place an S3 XML error body is built outside `s3s`: code, message (a missing one is
/// filled in by [`complete_error_body`]) and any extra elements S3 sends with this error
/// (`StringToSign`, `MaxSizeAllowed`, …).
pub(crate) fn error_response_with(
    status: StatusCode,
    code: &str,
    message: Option<&str>,
    extra: &[(&str, String)],
) -> Response<Body> {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code>",
        xml_escape(code)
    );
    if let Some(m) = message {
        xml.push_str(&format!("<Message>{}</Message>", xml_escape(m)));
    }
    for (name, value) in extra {
        xml.push_str(&format!("<{name}>{}</{name}>", xml_escape(value)));
    }
    xml.push_str("</Error>");
    let mut resp = Response::new(Body::from(Bytes::from(xml)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

/// Adds `<Resource>` and `<RequestId>` to an S3 XML error body. The single place error
/// bodies are finished, so every error a client gets names the resource and the request.
async fn complete_error_body(resp: Response<Body>, path: &str, request_id: &str) -> Response<Body> {
    let is_xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"));
    if !is_xml {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_ERROR_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return error_response(
                parts.status,
                "InternalError",
                "We encountered an internal error. Please try again.",
            );
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let finished = match text.rfind("</Error>") {
        Some(at) if !text.contains("<RequestId>") => {
            let message = if text.contains("<Message>") {
                String::new()
            } else {
                let code = between(&text, "<Code>", "</Code>").unwrap_or("");
                format!("<Message>{}</Message>", xml_escape(default_message(code)))
            };
            format!(
                "{}{message}<Resource>{}</Resource><RequestId>{}</RequestId></Error>",
                &text[..at],
                xml_escape(path),
                xml_escape(request_id)
            )
        }
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(Bytes::from(finished)))
}

pub(crate) fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// S3's message for errors `s3s` raises without one.
fn default_message(code: &str) -> &'static str {
    match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "AccessDenied" => "Access Denied",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the current time is too large."
        }
        "AuthorizationHeaderMalformed" => "The authorization header is malformed.",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema."
        }
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidRequest" => "Invalid Request",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        _ => "The request could not be processed.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scope_must_name_this_region() {
        assert_eq!(
            scope_error("AK/20261125/us-east-1/s3/aws4_request", "us-east-1"),
            None
        );
        assert!(
            scope_error("AK/20261125/eu-west-1/s3/aws4_request", "us-east-1")
                .unwrap()
                .contains("eu-west-1")
        );
        assert!(
            scope_error("garbage", "us-east-1")
                .unwrap()
                .contains("mal-formed")
        );
        assert_eq!(percent_decode("AK%2F2026%2fx"), "AK/2026/x");
    }

    #[tokio::test]
    async fn error_bodies_get_message_resource_and_request_id() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidBucketName</Code></Error>";
        let mut resp = Response::new(Body::from(Bytes::from(xml)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        let done = complete_error_body(resp, "/a&b", "REQ1").await;
        let body = done.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("<Message>The specified bucket is not valid.</Message>"),
            "{text}"
        );
        assert!(
            text.contains("<Resource>/a&amp;b</Resource><RequestId>REQ1</RequestId></Error>"),
            "{text}"
        );
    }
}
