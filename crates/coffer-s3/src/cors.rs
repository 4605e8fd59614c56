//! Cross-origin resource sharing, as S3 does it: a bucket's CORS rules (Put/Get/DeleteBucketCors),
//! the answer to a browser's preflight `OPTIONS` (before any authentication: preflights are never
//! signed), and the `Access-Control-*` headers on the answers to actual requests that carry an
//! `Origin` a rule allows — error answers included, so that a page can read S3's error.
//!
//! Matching follows S3: the rules are tried in order and the first that allows the origin (one
//! `*` wildcard allowed), the method (exactly) and every requested header (case-insensitive, one
//! `*` allowed) wins. The front layer reads rules through [`BucketCors`], a per-bucket cache that
//! PutBucketCors, DeleteBucketCors and DeleteBucket invalidate, so a request with an `Origin`
//! costs a database read only the first time its bucket is seen.
//!
//! CORS is a browser's safety rule, not access control: nothing here lets a request do what its
//! signature (or the bucket policy) would not, and nothing here ever reads a request body.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use coffer_store::{BucketCorsRule, MetaStore, StoreError};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use s3s::dto::{
    CORSConfiguration, CORSRule, DeleteBucketCorsInput, DeleteBucketCorsOutput, GetBucketCorsInput,
    GetBucketCorsOutput, PutBucketCorsInput, PutBucketCorsOutput,
};
use s3s::{Body, S3Request, S3Response, S3Result};

use crate::binding::RecordMac;
use crate::error::{ApiError, api_error};
use crate::route::Target;
use crate::server::error_response_with;
use crate::service::Coffer;
use crate::sigv4::percent_decode;

/// S3's limit on the rules of one configuration.
const MAX_RULES: usize = 100;
/// S3's limit on a rule's `ID`.
const MAX_ID_LEN: usize = 255;
/// The methods a rule may allow (S3 accepts no others, and matches them case-sensitively).
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// What S3 answers a preflight with in `Vary`, and an actual request of a bucket with rules.
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
/// Buckets whose rules are cached at most; past it, lookups read the store.
const MAX_CACHED_BUCKETS: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// Put, Get, DeleteBucketCors

/// PutBucketCors: 1 to 100 rules, each checked as S3 checks it, replacing any before.
pub async fn put_bucket_cors(
    c: &Coffer,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let rules = validate(req.input.cors_configuration)?;
    let bucket = req.input.bucket;
    crate::bucket::change_bucket(c, &bucket, |b| b.cors = Some(rules)).await?;
    c.cors.forget(&bucket);
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

/// GetBucketCors: the rules as they were put; `NoSuchCORSConfiguration` without any.
pub async fn get_bucket_cors(
    c: &Coffer,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let rec = crate::bucket::require_bucket(c, &req.input.bucket).await?;
    let Some(rules) = rec.cors else {
        return Err(api_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    let cors_rules = rules
        .into_iter()
        .map(|r| CORSRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
            expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(cors_rules),
    }))
}

/// DeleteBucketCors: `204`, whether or not the bucket had rules.
pub async fn delete_bucket_cors(
    c: &Coffer,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let bucket = req.input.bucket;
    crate::bucket::change_bucket(c, &bucket, |b| b.cors = None).await?;
    c.cors.forget(&bucket);
    Ok(S3Response::new(DeleteBucketCorsOutput::default()))
}

/// The rules of a PutBucketCors, checked: what S3 refuses is refused with its error.
fn validate(config: CORSConfiguration) -> Result<Vec<BucketCorsRule>, ApiError> {
    let rules = config.cors_rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(ApiError::MalformedXML(format!(
            "A CORS configuration holds 1 to {MAX_RULES} CORSRule elements, not {}",
            rules.len()
        )));
    }
    rules.into_iter().map(validate_rule).collect()
}

fn validate_rule(rule: CORSRule) -> Result<BucketCorsRule, ApiError> {
    if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
        return Err(ApiError::MalformedXML(
            "Each CORSRule needs at least one AllowedOrigin and one AllowedMethod".into(),
        ));
    }
    if let Some(method) = rule
        .allowed_methods
        .iter()
        .find(|m| !METHODS.contains(&m.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
        )));
    }
    if let Some(origin) = rule
        .allowed_origins
        .iter()
        .find(|o| o.matches('*').count() > 1)
    {
        return Err(ApiError::InvalidRequest(format!(
            "AllowedOrigin \"{origin}\" can not have more than one wildcard."
        )));
    }
    let allowed_headers = rule.allowed_headers.unwrap_or_default();
    let expose_headers = rule.expose_headers.unwrap_or_default();
    for (element, header) in allowed_headers
        .iter()
        .map(|h| ("AllowedHeader", h))
        .chain(expose_headers.iter().map(|h| ("ExposeHeader", h)))
    {
        if !is_token(header) {
            return Err(ApiError::InvalidRequest(format!(
                "{element} \"{header}\" contains invalid character."
            )));
        }
    }
    if let Some(header) = allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
        return Err(ApiError::InvalidRequest(format!(
            "AllowedHeader \"{header}\" can not have more than one wildcard."
        )));
    }
    if rule.id.as_ref().is_some_and(|id| id.len() > MAX_ID_LEN) {
        return Err(ApiError::InvalidArgument(format!(
            "A CORSRule ID is at most {MAX_ID_LEN} characters"
        )));
    }
    Ok(BucketCorsRule {
        id: rule.id,
        allowed_origins: rule.allowed_origins,
        allowed_methods: rule.allowed_methods,
        allowed_headers,
        expose_headers,
        max_age_seconds: rule.max_age_seconds,
    })
}

/// An HTTP header name (RFC 9110 `token`); S3 refuses rules and preflights naming anything else.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Matching

/// `pattern` (holding at most one `*`, which matches any run of characters) against `value`.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

/// The first rule that allows `origin` to make a `method` request with `headers` (lower-case).
fn first_match<'r>(
    rules: &'r [BucketCorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'r BucketCorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                rule.allowed_headers
                    .iter()
                    .any(|a| wildcard_match(&a.to_ascii_lowercase(), h))
            })
    })
}

/// Sets the headers of an allowed CORS request: the origin (`*` when the rule allows any), the
/// rule's methods, exposed headers and max age, credentials unless the origin is `*`, and `Vary`.
fn allow(headers: &mut HeaderMap, rule: &BucketCorsRule, origin: &str) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(
        "access-control-allow-origin",
        if any_origin { "*" } else { origin },
    );
    set(
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        set(
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        set("access-control-max-age", &age.to_string());
    }
    if !any_origin {
        set("access-control-allow-credentials", "true");
    }
    set("vary", VARY);
}

// ---------------------------------------------------------------------------------------------
// The rules, cached for the front layer

/// What a lookup found.
enum Lookup {
    /// No such bucket.
    NoBucket,
    /// The bucket's rules; `None` when it has no CORS configuration.
    Rules(Option<Arc<[BucketCorsRule]>>),
}

/// The CORS rules of buckets, read from the store once and kept until they change.
pub struct BucketCors {
    meta: Arc<MetaStore>,
    /// Checks the bucket records read.
    records: Arc<RecordMac>,
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    rules: HashMap<String, Option<Arc<[BucketCorsRule]>>>,
    /// Bumped by every [`BucketCors::forget`]: a lookup that read the store before a change
    /// does not cache what it read.
    generation: u64,
}

impl BucketCors {
    pub fn new(meta: Arc<MetaStore>, records: Arc<RecordMac>) -> BucketCors {
        BucketCors {
            meta,
            records,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// Drops what is cached for `bucket`; called after its rules changed or it was deleted.
    pub fn forget(&self, bucket: &str) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        cache.generation += 1;
        cache.rules.remove(bucket);
    }

    /// The rules of `bucket`: from the cache, or one short read of its record (on this worker,
    /// like `Coffer::meta_read`).
    fn lookup(&self, bucket: &str) -> Result<Lookup, StoreError> {
        let generation = {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(rules) = cache.rules.get(bucket) {
                return Ok(Lookup::Rules(rules.clone()));
            }
            cache.generation
        };
        let Some(rec) = crate::bucket::read_checked(&self.meta, &self.records, bucket)? else {
            return Ok(Lookup::NoBucket);
        };
        let rules: Option<Arc<[BucketCorsRule]>> = rec.cors.map(Into::into);
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.generation == generation && cache.rules.len() < MAX_CACHED_BUCKETS {
            cache.rules.insert(bucket.to_owned(), rules.clone());
        }
        Ok(Lookup::Rules(rules))
    }

    /// The answer to a preflight `OPTIONS` request, as S3 gives it.
    pub fn preflight<B>(&self, req: &Request<B>) -> Response<Body> {
        match self.try_preflight(req) {
            Ok(resp) => resp,
            Err(Refusal(e, extra)) => {
                error_response_with(e.status(), e.code(), Some(e.message()), &extra)
            }
        }
    }

    fn try_preflight<B>(&self, req: &Request<B>) -> Result<Response<Body>, Refusal> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let Some(origin) = header("origin") else {
            return Err(Refusal::plain(ApiError::BadRequest(
                "Insufficient information. Origin request header needed.".into(),
            )));
        };
        let method = header("access-control-request-method");
        let Some(method) = method.filter(|m| METHODS.contains(m)) else {
            return Err(Refusal::plain(ApiError::BadRequest(format!(
                "Invalid Access-Control-Request-Method: {}",
                method.unwrap_or("null")
            ))));
        };
        let mut requested = Vec::new();
        for name in header("access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            if !is_token(name) {
                return Err(Refusal::plain(ApiError::BadRequest(format!(
                    "Access-Control-Request-Headers \"{name}\" contains invalid character."
                ))));
            }
            requested.push(name.to_ascii_lowercase());
        }
        let target = Target::of(req.uri().path());
        let (bucket, resource_type) = match target {
            Target::Service => (None, "SERVICE"),
            Target::Bucket(b) => (Some(b), "BUCKET"),
            Target::Object { bucket, .. } => (Some(bucket), "OBJECT"),
        };
        let forbidden = |message: &str| {
            Refusal(
                ApiError::AccessForbidden(format!("CORSResponse: {message}")),
                vec![
                    ("Method", method.to_owned()),
                    ("ResourceType", resource_type.to_owned()),
                ],
            )
        };
        let not_enabled = || forbidden("CORS is not enabled for this bucket.");
        let Some(bucket) = bucket else {
            return Err(not_enabled());
        };
        let rules = match self.lookup(&percent_decode(bucket)) {
            Ok(Lookup::Rules(Some(rules))) => rules,
            Ok(Lookup::Rules(None)) => return Err(not_enabled()),
            // As S3 answers (an unauthenticated preflight is not told `NoSuchBucket`).
            Ok(Lookup::NoBucket) => return Err(forbidden("Bucket not found")),
            Err(e) => {
                tracing::error!(error = %e, "reading a bucket's CORS rules");
                return Err(Refusal::plain(ApiError::InternalError(
                    "We encountered an internal error. Please try again.".into(),
                )));
            }
        };
        let Some(rule) = first_match(&rules, origin, method, &requested) else {
            return Err(forbidden(
                "This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            ));
        };
        let mut resp = Response::new(Body::empty());
        allow(resp.headers_mut(), rule, origin);
        if !requested.is_empty()
            && let Ok(v) = HeaderValue::from_str(&requested.join(", "))
        {
            resp.headers_mut().insert("access-control-allow-headers", v);
        }
        Ok(resp)
    }

    /// Adds the CORS headers of an actual (not preflight) request to its response, whatever the
    /// response's status, when the request's origin and method match a rule of its bucket.
    pub fn decorate(&self, request: &CorsRequest, headers: &mut HeaderMap) {
        let rules = match self.lookup(&request.bucket) {
            Ok(Lookup::Rules(Some(rules))) => rules,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading a bucket's CORS rules");
                return;
            }
        };
        match first_match(&rules, &request.origin, request.method.as_str(), &[]) {
            Some(rule) => allow(headers, rule, &request.origin),
            // The answer still depends on the origin: caches must not serve it to another.
            None => {
                headers.insert("vary", HeaderValue::from_static(VARY));
            }
        }
    }
}

/// A preflight's refusal: the error and the elements S3 adds to its body (`Method`, …).
struct Refusal(ApiError, Vec<(&'static str, String)>);

impl Refusal {
    fn plain(error: ApiError) -> Refusal {
        Refusal(error, Vec::new())
    }
}

/// What [`BucketCors::decorate`] needs of a request, taken before the request is handed on.
pub struct CorsRequest {
    bucket: String,
    origin: String,
    method: Method,
}

impl CorsRequest {
    /// A request to a bucket or object that carries an `Origin`; `None` for any other.
    pub fn of<B>(req: &Request<B>) -> Option<CorsRequest> {
        let origin = req.headers().get("origin")?.to_str().ok()?;
        let bucket = match Target::of(req.uri().path()) {
            Target::Service => return None,
            Target::Bucket(b) | Target::Object { bucket: b, .. } => b,
        };
        Some(CorsRequest {
            bucket: percent_decode(bucket),
            origin: origin.to_owned(),
            method: req.method().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> BucketCorsRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        BucketCorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..BucketCorsRule::default()
        }
    }

    fn config(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    fn s3_rule(origins: &[&str], methods: &[&str]) -> CORSRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        CORSRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            ..CORSRule::default()
        }
    }

    #[test]
    fn a_wildcard_matches_any_run_of_characters_once() {
        assert!(wildcard_match("*", "http://a.example"));
        assert!(wildcard_match(
            "http://*.example.com",
            "http://www.example.com"
        ));
        assert!(!wildcard_match(
            "http://*.example.com",
            "https://www.example.com"
        ));
        assert!(wildcard_match("x-amz-*", "x-amz-date"));
        assert!(!wildcard_match("x-amz-*", "x-am"));
        // The prefix and suffix must not overlap.
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("http://a.example", "http://a.example"));
        assert!(!wildcard_match("http://a.example", "http://a.example.evil"));
    }

    #[test]
    fn the_first_rule_that_allows_origin_method_and_every_header_wins() {
        let rules = [
            rule(&["http://a.example"], &["GET"], &["x-amz-date"]),
            rule(&["*"], &["HEAD", "GET"], &["*"]),
            rule(
                &["http://*.b.example"],
                &["PUT"],
                &["Content-Type", "X-Amz-*"],
            ),
        ];
        let hit = |origin, method, headers: &[&str]| {
            let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
            first_match(&rules, origin, method, &headers).map(|r| r.allowed_origins[0].clone())
        };
        assert_eq!(
            hit("http://a.example", "GET", &["x-amz-date"]).as_deref(),
            Some("http://a.example")
        );
        // A header the first rule lacks falls to the second.
        assert_eq!(
            hit("http://a.example", "GET", &["range"]).as_deref(),
            Some("*")
        );
        assert_eq!(
            hit(
                "http://up.b.example",
                "PUT",
                &["content-type", "x-amz-meta-a"]
            )
            .as_deref(),
            Some("http://*.b.example")
        );
        assert_eq!(hit("http://up.b.example", "PUT", &["authorization"]), None);
        assert_eq!(hit("http://up.b.example", "DELETE", &[]), None);
        // Methods match case-sensitively, as S3 matches them.
        assert_eq!(hit("http://up.b.example", "put", &[]), None);
    }

    #[test]
    fn configurations_s3_refuses_are_refused_with_its_error() {
        let code = |c: CORSConfiguration| validate(c).map(|_| ()).unwrap_err();
        assert!(matches!(code(config(vec![])), ApiError::MalformedXML(_)));
        let many = (0..101).map(|_| s3_rule(&["*"], &["GET"])).collect();
        assert!(matches!(code(config(many)), ApiError::MalformedXML(_)));
        assert_eq!(
            code(config(vec![s3_rule(&["*"], &["GET", "PATCH"])])),
            ApiError::InvalidRequest(
                "Found unsupported HTTP method in CORS config. Unsupported method is PATCH".into()
            )
        );
        assert!(matches!(
            code(config(vec![s3_rule(&["*"], &["get"])])),
            ApiError::InvalidRequest(_)
        ));
        assert_eq!(
            code(config(vec![s3_rule(&["http://*.*.example"], &["GET"])])),
            ApiError::InvalidRequest(
                "AllowedOrigin \"http://*.*.example\" can not have more than one wildcard.".into()
            )
        );
        let mut two_stars = s3_rule(&["*"], &["GET"]);
        two_stars.allowed_headers = Some(vec!["x-*-*".into()]);
        assert!(matches!(
            code(config(vec![two_stars])),
            ApiError::InvalidRequest(_)
        ));
        let mut bad_header = s3_rule(&["*"], &["GET"]);
        bad_header.expose_headers = Some(vec!["x etag".into()]);
        assert!(matches!(
            code(config(vec![bad_header])),
            ApiError::InvalidRequest(_)
        ));
        assert!(matches!(
            code(config(vec![s3_rule(&[], &["GET"])])),
            ApiError::MalformedXML(_)
        ));
        let ok = validate(config(vec![s3_rule(
            &["http://*.example"],
            &["GET", "PUT"],
        )]))
        .unwrap();
        assert_eq!(ok[0].allowed_methods, ["GET", "PUT"]);
    }

    #[test]
    fn allowed_requests_get_s3s_headers() {
        let mut specific = rule(&["http://a.example"], &["GET", "PUT"], &[]);
        specific.expose_headers = vec!["ETag".into(), "x-amz-request-id".into()];
        specific.max_age_seconds = Some(600);
        let mut h = HeaderMap::new();
        allow(&mut h, &specific, "http://a.example");
        assert_eq!(h["access-control-allow-origin"], "http://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET, PUT");
        assert_eq!(h["access-control-expose-headers"], "ETag, x-amz-request-id");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["vary"], VARY);

        let mut h = HeaderMap::new();
        allow(&mut h, &rule(&["*"], &["GET"], &[]), "http://b.example");
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h.get("access-control-allow-credentials").is_none());
        assert!(h.get("access-control-max-age").is_none());
    }
}
