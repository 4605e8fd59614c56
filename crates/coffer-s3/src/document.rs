//! Digests of document bodies: the small XML bodies of DeleteObjects, CompleteMultipartUpload,
//! CreateBucket and the configuration calls, which `s3s` reads whole and parses without checking
//! their `Content-MD5` or `x-amz-checksum-*`.
//!
//! The front layer wraps such a body in a [`DigestCheckedBody`]. `s3s` reads it only after it
//! has authenticated the request, so nothing here buffers a stranger's bytes; at the end of the
//! body the digests are compared, and a mismatch ends the body with an error and leaves the S3
//! error in a [`Rejection`] for the front layer to answer with (the operation never runs).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use s3s::S3Error;

/// Where a [`DigestCheckedBody`] leaves the error of a mismatched digest.
pub type Rejection = Arc<Mutex<Option<S3Error>>>;

/// The digest headers to check against a request's body, when the body is a document that
/// carries any; `None` for object data (PutObject, UploadPart, browser POST uploads, aws-chunked
/// bodies), which `checksum` checks as it streams, and for requests without digests.
///
/// On CompleteMultipartUpload only `Content-MD5` describes the body: its `x-amz-checksum-*`
/// are the finished object's, checked by the multipart code.
pub fn digest_headers<B>(req: &Request<B>) -> Option<HeaderMap> {
    let headers = req.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if text("x-amz-content-sha256").starts_with("STREAMING-")
        || text("content-encoding").contains("aws-chunked")
        || text("content-type")
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    {
        return None;
    }
    let is_bucket = !crate::route::Target::of(req.uri().path()).is_object();
    let has = |name: &str| crate::server::query_value(req, name).is_some();
    let object_config = ["tagging", "acl", "retention", "legal-hold", "restore"]
        .iter()
        .any(|name| has(name));
    let completes_upload = *req.method() == Method::POST && has("uploadId");
    let is_document = match *req.method() {
        Method::POST => true,
        Method::PUT => is_bucket || object_config,
        _ => false,
    };
    if !is_document {
        return None;
    }
    let mut digests = HeaderMap::new();
    for (name, value) in headers {
        let describes_body = name == "content-md5"
            || (!completes_upload
                && name.as_str().starts_with("x-amz-checksum-")
                && !matches!(
                    name.as_str(),
                    "x-amz-checksum-mode" | "x-amz-checksum-type" | "x-amz-checksum-algorithm"
                ));
        if describes_body {
            digests.append(name.clone(), value.clone());
        }
    }
    (!digests.is_empty()).then_some(digests)
}

/// A request body that checks `digests` (see [`digest_headers`]) once it has been read to the
/// end. It keeps the bytes it passes on (documents are small, and `s3s` bounds what it reads).
pub struct DigestCheckedBody {
    inner: Incoming,
    digests: HeaderMap,
    seen: Vec<u8>,
    rejection: Rejection,
    finished: bool,
}

impl DigestCheckedBody {
    pub fn new(inner: Incoming, digests: HeaderMap, rejection: Rejection) -> DigestCheckedBody {
        DigestCheckedBody {
            inner,
            digests,
            seen: Vec::new(),
            rejection,
            finished: false,
        }
    }
}

/// The body error a mismatch ends the body with (the client sees the S3 error instead).
#[derive(Debug, thiserror::Error)]
#[error("the request body does not match its Content-MD5 or x-amz-checksum header")]
struct DigestMismatch;

impl Body for DigestCheckedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen.extend_from_slice(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            None => {
                this.finished = true;
                match crate::checksum::check_whole_body(&this.digests, &this.seen) {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => {
                        *this
                            .rejection
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        Poll::Ready(Some(Err(Box::new(DigestMismatch))))
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
