//! Where a request goes, decided once in the front layer: the admin surface, a CORS preflight,
//! the KMS or IAM endpoint, a browser form upload, or S3 (through `s3s`); and, for S3, what its path names —
//! the service, a bucket or an object. Every check before `s3s` that depends on the path asks
//! here instead of splitting the path itself (three slightly different splits once disagreed).
//!
//! Pure functions of the request line and headers; no I/O, no body.

use http::{Method, Request};

/// Which handler takes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD` under `/-/`: health, readiness, metrics.
    Admin,
    /// `OPTIONS`: a CORS preflight, answered from the bucket's rules before any authentication.
    Preflight,
    /// `X-Amz-Target: TrentService.*`: the KMS JSON API.
    Kms,
    /// SigV4 credential scope `iam`: the IAM Query API.
    Iam,
    /// A `POST` that is a form upload, or one that S3 answers as a POST object would.
    PostObject,
    /// Everything else: `s3s`.
    S3,
}

/// What a path-style S3 path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/`: the service (ListBuckets).
    Service,
    /// `/bucket` or `/bucket/`.
    Bucket(&'a str),
    /// `/bucket/key` (the key may be empty after further slashes, as S3 allows: `/b//x`).
    Object { bucket: &'a str, key: &'a str },
}

impl<'a> Target<'a> {
    /// Reads a (still percent-encoded) request path.
    pub fn of(path: &'a str) -> Target<'a> {
        let path = path.strip_prefix('/').unwrap_or(path);
        match path.split_once('/') {
            None if path.is_empty() => Target::Service,
            None => Target::Bucket(path),
            Some((bucket, "")) => Target::Bucket(bucket),
            Some((bucket, key)) => Target::Object { bucket, key },
        }
    }

    /// Whether the path names an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Target::Object { .. })
    }
}

/// The handler of a request. `is_kms`, `is_iam` and `is_post_object` are the endpoints' own
/// recognisers, so that each endpoint stays the one authority on what is its own.
pub fn classify<B>(req: &Request<B>) -> Route {
    let admin = req.uri().path().starts_with("/-/")
        && (req.method() == Method::GET || req.method() == Method::HEAD);
    if admin {
        Route::Admin
    } else if req.method() == Method::OPTIONS {
        Route::Preflight
    } else if crate::kms_api::is_kms(req) {
        Route::Kms
    } else if crate::iam_api::is_iam(req) {
        Route::Iam
    } else if crate::post_object::route(req).is_some() {
        Route::PostObject
    } else {
        Route::S3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_service_a_bucket_or_an_object() {
        assert_eq!(Target::of("/"), Target::Service);
        assert_eq!(Target::of(""), Target::Service);
        assert_eq!(Target::of("/photos"), Target::Bucket("photos"));
        assert_eq!(Target::of("/photos/"), Target::Bucket("photos"));
        assert_eq!(
            Target::of("/photos/2024/cat.jpg"),
            Target::Object {
                bucket: "photos",
                key: "2024/cat.jpg"
            }
        );
        assert_eq!(
            Target::of("/photos/dir/"),
            Target::Object {
                bucket: "photos",
                key: "dir/"
            }
        );
        assert!(!Target::of("/photos/").is_object());
    }

    #[test]
    fn requests_are_routed_once() {
        let req = |method: &str, path: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().method(method).uri(path);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert_eq!(classify(&req("GET", "/-/health", &[])), Route::Admin);
        assert_eq!(classify(&req("PUT", "/-/health", &[])), Route::S3);
        assert_eq!(
            classify(&req(
                "POST",
                "/",
                &[("x-amz-target", "TrentService.ListKeys")]
            )),
            Route::Kms
        );
        assert_eq!(
            classify(&req(
                "POST",
                "/",
                &[(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AK/20261205/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"
                )]
            )),
            Route::Iam
        );
        assert_eq!(
            classify(&req(
                "POST",
                "/bkt",
                &[("content-type", "multipart/form-data; boundary=x")]
            )),
            Route::PostObject
        );
        assert_eq!(classify(&req("GET", "/bkt/key", &[])), Route::S3);
        assert_eq!(classify(&req("OPTIONS", "/bkt/key", &[])), Route::Preflight);
    }
}
