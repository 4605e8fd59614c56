//! The AWS KMS JSON 1.1 protocol over `coffer_kms::Kms`: requests whose `X-Amz-Target`
//! starts with `TrentService.` arrive here from the front layer, before `s3s` (which refuses
//! signatures for any service but `s3`).
//!
//! This module authenticates (SigV4, service `kms`), refuses plain HTTP unless the operator
//! allowed it, and maps `KmsError` to the `{"__type", "message"}` body once. It never logs
//! request bodies: they carry plaintexts and data keys.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use coffer_kms::{Caller, Kms, KmsError};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;

use crate::auth::Credentials;
use crate::sigv4::{self, SigError, SignedRequest};

/// The largest KMS request body accepted (the largest real one, a 32 KiB policy, fits).
const MAX_BODY: usize = 1024 * 1024;
/// The `X-Amz-Target` prefix of KMS requests.
pub const TARGET_PREFIX: &str = "TrentService.";

/// The KMS endpoint of the server.
pub struct KmsFront {
    pub kms: Arc<Kms>,
    pub region: String,
    pub account_id: String,
    pub allow_insecure_http: bool,
}

/// Facts about the connection a request came on.
#[derive(Clone, Debug)]
pub struct Connection {
    pub peer: std::net::SocketAddr,
    pub secure: bool,
}

/// True when the request is a KMS call.
pub fn is_kms<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

impl KmsFront {
    /// Handles one KMS request end to end.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        creds: &Credentials,
        conn: &Connection,
        request_id: &str,
    ) -> Response<Body> {
        let operation = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .unwrap_or("")
            .to_owned();
        let (parts, body) = req.into_parts();
        let refusal = Refusal {
            headers: &parts.headers,
            operation: &operation,
            conn,
            request_id,
        };
        if !conn.secure && !self.allow_insecure_http {
            return self
                .refuse(
                    &refusal,
                    StatusCode::BAD_REQUEST,
                    "AccessDeniedException",
                    "KMS requests must use HTTPS: start coffer with --tls-cert/--tls-key or --tls-self-signed (or --allow-insecure-http for development only)",
                )
                .await;
        }
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return self
                    .refuse(
                        &refusal,
                        StatusCode::BAD_REQUEST,
                        "ValidationException",
                        "The request body is larger than 1 MiB or did not arrive whole",
                    )
                    .await;
            }
        };
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        let access_key =
            match sigv4::verify(&signed, &self.region, "kms", SystemTime::now(), |ak| {
                creds.secret(ak)
            }) {
                Ok(ak) => ak,
                Err(e) => {
                    let (status, kind, msg) = sig_error(&e);
                    return self.refuse(&refusal, status, kind, &msg).await;
                }
            };
        let Some(account) = creds.lookup(&access_key) else {
            // The key was removed between the signature check and now.
            let (status, kind, msg) = sig_error(&SigError::UnknownAccessKey);
            return self.refuse(&refusal, status, kind, &msg).await;
        };
        let caller = Caller {
            principal_arn: account.principal.arn(&self.account_id),
            identity: account.identity,
            access_key,
            source_ip: conn.peer.ip().to_string(),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request_id: request_id.to_owned(),
            secure_transport: conn.secure,
        };
        match self.kms.handle(&caller, &operation, &body).await {
            Ok(json) => {
                let mut resp = Response::new(Body::from(Bytes::from(json)));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                set_request_id(&mut resp, request_id);
                resp
            }
            Err(e) => kms_error(&e, request_id),
        }
    }
}

/// What a refusal before authentication knows about the request.
struct Refusal<'a> {
    headers: &'a http::HeaderMap,
    operation: &'a str,
    conn: &'a Connection,
    request_id: &'a str,
}

impl KmsFront {
    /// Answers a request refused before its caller was authenticated, after recording it in the
    /// audit log (which holds every KMS request, failures included). If the audit append fails
    /// the refusal still stands: nothing was done for the request.
    async fn refuse(
        &self,
        r: &Refusal<'_>,
        status: StatusCode,
        kind: &str,
        message: &str,
    ) -> Response<Body> {
        let call = coffer_kms::RefusedCall {
            claimed_access_key: claimed_access_key(r.headers),
            event_name: r.operation,
            source_ip: &r.conn.peer.ip().to_string(),
            user_agent: r
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            request_id: r.request_id,
            error_code: kind,
            error_message: message,
        };
        if let Err(e) = self.kms.audit_refused(call).await {
            tracing::error!(error = %e, request_id = %r.request_id, "a refused KMS request could not be audited");
        }
        error(status, kind, message, r.request_id)
    }
}

/// The access key id an `Authorization: AWS4-HMAC-SHA256 Credential=<id>/…` header claims, if it
/// looks like one (ASCII letters and digits, at most 128): unverified, so only for the audit log.
pub(crate) fn claimed_access_key(headers: &http::HeaderMap) -> Option<&str> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (_, rest) = auth.split_once("Credential=")?;
    let id = rest.split('/').next()?;
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(id)
}

fn sig_error(e: &SigError) -> (StatusCode, &'static str, String) {
    match e {
        SigError::Missing => (StatusCode::BAD_REQUEST, "MissingAuthenticationTokenException", "Missing Authentication Token".into()),
        SigError::Malformed(m) => (StatusCode::BAD_REQUEST, "IncompleteSignatureException", m.clone()),
        SigError::UnknownAccessKey => (
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ),
        SigError::WrongScope(m) => (StatusCode::BAD_REQUEST, "InvalidSignatureException", m.clone()),
        SigError::Skewed => (
            StatusCode::BAD_REQUEST,
            "InvalidSignatureException",
            "Signature expired: the request time is more than 15 minutes from the server time.".into(),
        ),
        SigError::Mismatch => (
            StatusCode::BAD_REQUEST,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ),
    }
}

/// The one place a `KmsError` becomes a response.
fn kms_error(e: &KmsError, request_id: &str) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, e.error_type(), &e.message(), request_id)
}

fn error(status: StatusCode, kind: &str, message: &str, request_id: &str) -> Response<Body> {
    let body = serde_json::json!({ "__type": kind, "message": message }).to_string();
    let mut resp = Response::new(Body::from(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(kind) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    set_request_id(&mut resp, request_id);
    resp
}

fn set_request_id(resp: &mut Response<Body>, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
}
