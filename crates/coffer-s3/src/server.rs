//! The HTTP front layer: one hyper service in front of `s3s` that owns what every response
//! shares — the admin surface (`/-/health`, `/-/ready`, `/-/metrics`), request ids, and S3
//! error bodies with `Resource` and `RequestId` (which `s3s` leaves out).
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
use crate::service::Coffer;

/// Largest error body the front layer rewrites (s3s error bodies are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the front layer needs besides the S3 service itself.
pub struct FrontendConfig {
    pub credentials: Credentials,
}

/// The server's request handler, cheap to clone per connection.
#[derive(Clone)]
pub struct Frontend {
    s3: S3Service,
    stats: Arc<Stats>,
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
        let mut builder = S3ServiceBuilder::new(coffer);
        builder.set_auth(cfg.credentials);
        Frontend {
            s3: builder.build(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let request_id = new_request_id();
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let started = std::time::Instant::now();

        let mut resp = match admin(&method, &path, &self.stats) {
            Some(r) => r,
            None => match self.s3.call(req.map(Body::from)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "s3 service failure");
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalError",
                        "We encountered an internal error. Please try again.",
                    )
                }
            },
        };
        let status = resp.status();
        if status.is_client_error() {
            self.stats.errors_4xx.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            self.stats.errors_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if status == StatusCode::NOT_MODIFIED {
            *resp.body_mut() = Body::empty();
            resp.headers_mut().remove(http::header::CONTENT_TYPE);
            resp.headers_mut().remove(http::header::CONTENT_LENGTH);
        } else if (status.is_client_error() || status.is_server_error()) && method != Method::HEAD {
            resp = complete_error_body(resp, &path, &request_id).await;
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amz-request-id", v.clone());
            resp.headers_mut().insert("x-amz-id-2", v);
        }
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, request_id, "request");
        resp
    }
}

impl hyper::service::Service<Request<Incoming>> for Frontend {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// S3 request ids are 16 upper-case hex characters.
fn new_request_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_ascii_uppercase()
}

/// The admin surface under `/-/`; `None` for every other path.
fn admin(method: &Method, path: &str, stats: &Stats) -> Option<Response<Body>> {
    if !path.starts_with("/-/") || (method != Method::GET && method != Method::HEAD) {
        return None;
    }
    let body = match path {
        "/-/health" | "/-/ready" => "ok\n".to_owned(),
        "/-/metrics" => format!(
            "# TYPE coffer_requests_total counter\ncoffer_requests_total {}\n# TYPE coffer_responses_4xx_total counter\ncoffer_responses_4xx_total {}\n# TYPE coffer_responses_5xx_total counter\ncoffer_responses_5xx_total {}\n",
            stats.requests.load(Ordering::Relaxed),
            stats.errors_4xx.load(Ordering::Relaxed),
            stats.errors_5xx.load(Ordering::Relaxed),
        ),
        _ => return None,
    };
    let mut resp = Response::new(Body::from(Bytes::from(body)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(resp)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An S3 XML error response built here (for failures outside `s3s`).
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(code),
        xml_escape(message)
    );
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
        Some(at) if !text.contains("<RequestId>") => format!(
            "{}<Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            &text[..at],
            xml_escape(path),
            xml_escape(request_id)
        ),
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(Bytes::from(finished)))
}
