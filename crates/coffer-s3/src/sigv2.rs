//! AWS Signature Version 2 — the legacy HMAC-SHA1 request signing — checked in the front layer,
//! before `s3s` sees the request.
//!
//! S3 refuses SigV2 on every bucket created since June 2020, and a SigV2 request as `s3s` 0.14
//! checks it carries no time limit: a captured header-signed request replays forever, a
//! presigned URL can be valid for centuries, and the signature is compared with `!=`. So SigV2
//! is off unless the operator starts Coffer with `--allow-sigv2`, and every SigV2 request is then
//! refused as S3 refuses it on a SigV4-only bucket. When it is on, this module verifies each
//! SigV2 request the way S3 does — header auth within 15 minutes of the server clock, presigned
//! URLs unexpired (and, beyond S3, valid for at most 7 days, as SigV4's are), the signature
//! compared in constant time — and refuses any that fails, so the variable-time comparison
//! `s3s` does afterwards only ever runs on a signature that already matched.
//!
//! The string to sign is built exactly as `s3s` builds it (which is AWS's, as botocore's
//! `HmacV1Auth` signs it): a request this module accepts, `s3s` accepts too. It never logs, and
//! never puts a secret or the signature it computed into an error.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use s3s::Body;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::auth::Credentials;

/// How far a header-signed request's time may be from the server's clock (S3's window).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The longest a presigned SigV2 URL may still be valid, counted from now: 7 days, SigV4's
/// limit. (S3 itself never bounded SigV2 presigned URLs; a URL valid for years is a credential
/// that cannot be revoked short of the key.)
pub const MAX_PRESIGNED_VALIDITY: Duration = Duration::from_secs(604_800);

/// The query parameters S3 signs as part of the resource (sub-resources and response
/// overrides), in the sorted order they are signed in: the list `s3s` 0.14 signs.
const SIGNED_SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Why a SigV2 request was refused; each maps to the error S3 gives (see [`Sigv2Error::reply`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Sigv2Error {
    /// SigV2 is off (the default): S3's answer on a bucket that accepts only SigV4.
    Disabled,
    /// `Authorization: AWS …` without `<access key>:<signature>`, or more than one
    /// Authorization header.
    MalformedHeader,
    /// A presigned URL without exactly one each of `AWSAccessKeyId`, `Signature`, `Expires`.
    MissingQueryParameters,
    /// Header auth without a parseable `x-amz-date` or `Date`.
    InvalidDate,
    /// Header auth whose time is more than [`MAX_SKEW`] from the server's clock.
    Skewed {
        request_time: String,
        server_time: String,
    },
    /// A presigned URL whose `Expires` is not a number of seconds since the epoch.
    InvalidExpires(String),
    /// A presigned URL whose `Expires` has passed.
    Expired {
        expires: String,
        server_time: String,
    },
    /// A presigned URL valid for longer than [`MAX_PRESIGNED_VALIDITY`] from now.
    ExpiresTooFar,
    /// The access key is not known.
    UnknownAccessKey,
    /// The signature does not match; carries the string the server signed, as S3 returns it,
    /// so a client author can see how their canonicalization differs.
    Mismatch {
        access_key: String,
        string_to_sign: String,
    },
}

impl Sigv2Error {
    /// The one mapping of a SigV2 refusal to the wire: status, code, message and the extra
    /// elements S3 puts in such an error body.
    fn wire(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        String,
        Vec<(&'static str, String)>,
    ) {
        match self {
            Sigv2Error::Disabled => (
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.".into(),
                vec![],
            ),
            Sigv2Error::MalformedHeader => (
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".into(),
                vec![],
            ),
            Sigv2Error::MissingQueryParameters => (
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters".into(),
                vec![],
            ),
            Sigv2Error::InvalidDate => (
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "AWS authentication requires a valid Date or x-amz-date header".into(),
                vec![],
            ),
            Sigv2Error::Skewed {
                request_time,
                server_time,
            } => (
                StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.".into(),
                vec![
                    ("RequestTime", request_time.clone()),
                    ("ServerTime", server_time.clone()),
                    ("MaxAllowedSkewMilliseconds", MAX_SKEW.as_millis().to_string()),
                ],
            ),
            Sigv2Error::InvalidExpires(given) => (
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!("Invalid date (should be seconds since epoch): {given}"),
                vec![],
            ),
            Sigv2Error::Expired {
                expires,
                server_time,
            } => (
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Request has expired".into(),
                vec![("Expires", expires.clone()), ("ServerTime", server_time.clone())],
            ),
            Sigv2Error::ExpiresTooFar => (
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "Expires must be less than a week (604800 seconds) from now".into(),
                vec![],
            ),
            Sigv2Error::UnknownAccessKey => (
                StatusCode::FORBIDDEN,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.".into(),
                vec![],
            ),
            Sigv2Error::Mismatch {
                access_key,
                string_to_sign,
            } => (
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.".into(),
                vec![
                    ("AWSAccessKeyId", access_key.clone()),
                    ("StringToSign", string_to_sign.clone()),
                ],
            ),
        }
    }

    /// The S3 XML error response (the front layer adds `Resource` and `RequestId`).
    pub fn reply(&self) -> Response<Body> {
        let (status, code, message, extra) = self.wire();
        crate::server::error_response_with(status, code, Some(&message), &extra)
    }
}

/// Where a SigV2 request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `Authorization: AWS <access key>:<signature>`.
    Header,
    /// `?AWSAccessKeyId=…&Expires=…&Signature=…`.
    Presigned,
}

/// Whether `req` is signed with SigV2 — as `s3s` would read it (query parameter names are
/// percent-decoded, so `Sig%6Eature` counts), or more broadly.
pub fn is_sigv2<B>(req: &Request<B>) -> bool {
    scheme(req).is_some()
}

fn scheme<B>(req: &Request<B>) -> Option<Scheme> {
    let presigned = req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "Signature" || k == "AWSAccessKeyId")
    });
    if presigned {
        return Some(Scheme::Presigned);
    }
    req.headers()
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .any(|v| v.as_bytes().starts_with(b"AWS "))
        .then_some(Scheme::Header)
}

/// The refusal of a SigV2 request that may not go on to `s3s`, if any (`None` for a request
/// that is not SigV2, or whose SigV2 signature verified).
pub fn refusal<B>(req: &Request<B>, allowed: bool, creds: &Credentials) -> Option<Response<Body>> {
    check(req, allowed, SystemTime::now(), |ak| creds.secret(ak))
        .err()
        .map(|e| e.reply())
}

/// Checks a request's SigV2 signature at `now`; `Ok` for a request without one. `lookup`
/// returns the secret of an access key.
pub fn check<B>(
    req: &Request<B>,
    allowed: bool,
    now: SystemTime,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), Sigv2Error> {
    let Some(scheme) = scheme(req) else {
        return Ok(());
    };
    if !allowed {
        return Err(Sigv2Error::Disabled);
    }
    let query = Query::parse(req.uri().query());
    let (access_key, signature) = match scheme {
        Scheme::Header => {
            let (access_key, signature) = parse_authorization(req.headers())?;
            check_request_time(req.headers(), now)?;
            (access_key, Cow::Borrowed(signature))
        }
        Scheme::Presigned => {
            let (Some(access_key), Some(signature), Some(expires)) = (
                query.unique("AWSAccessKeyId"),
                query.unique("Signature"),
                query.unique("Expires"),
            ) else {
                return Err(Sigv2Error::MissingQueryParameters);
            };
            check_expires(expires, now)?;
            (access_key.as_ref(), signature.clone())
        }
    };
    let secret = Zeroizing::new(lookup(access_key).ok_or(Sigv2Error::UnknownAccessKey)?);
    let string_to_sign = string_to_sign(
        scheme,
        req.method(),
        req.uri().path(),
        &query,
        req.headers(),
    );
    let expected = B64.encode(coffer_crypto::hmac_sha1(
        secret.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    if !coffer_crypto::ct_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(Sigv2Error::Mismatch {
            access_key: access_key.to_owned(),
            string_to_sign,
        });
    }
    Ok(())
}

/// `AWS <access key>:<signature>` from the one Authorization header.
fn parse_authorization(headers: &HeaderMap) -> Result<(&str, &str), Sigv2Error> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return Err(Sigv2Error::MalformedHeader);
    };
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|v| v.strip_prefix("AWS "))
        .and_then(|v| v.split_once(':'))
        .ok_or(Sigv2Error::MalformedHeader)
}

/// The request time of header auth (`x-amz-date`, else `Date`) must be within [`MAX_SKEW`].
fn check_request_time(headers: &HeaderMap, now: SystemTime) -> Result<(), Sigv2Error> {
    let given = unique_header(headers, "x-amz-date")
        .or_else(|| unique_header(headers, "date"))
        .ok_or(Sigv2Error::InvalidDate)?;
    let when = parse_http_date(given).ok_or(Sigv2Error::InvalidDate)?;
    let skew = now
        .duration_since(when)
        .or_else(|_| when.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > MAX_SKEW {
        return Err(Sigv2Error::Skewed {
            request_time: given.to_owned(),
            server_time: iso8601(now),
        });
    }
    Ok(())
}

/// A presigned URL's `Expires` (seconds since the epoch) must be a time between now and
/// [`MAX_PRESIGNED_VALIDITY`] from now.
fn check_expires(expires: &str, now: SystemTime) -> Result<(), Sigv2Error> {
    // As `s3s` reads it: an i64 that is not negative and is a representable time.
    let at = expires
        .parse::<i64>()
        .ok()
        .filter(|secs| OffsetDateTime::from_unix_timestamp(*secs).is_ok())
        .and_then(|secs| u64::try_from(secs).ok())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .ok_or_else(|| Sigv2Error::InvalidExpires(expires.chars().take(64).collect()))?;
    if now > at {
        return Err(Sigv2Error::Expired {
            expires: iso8601(at),
            server_time: iso8601(now),
        });
    }
    if at.duration_since(now).unwrap_or(Duration::ZERO) > MAX_PRESIGNED_VALIDITY {
        return Err(Sigv2Error::ExpiresTooFar);
    }
    Ok(())
}

/// The query string decoded as `s3s` decodes it (`application/x-www-form-urlencoded`).
struct Query<'q> {
    pairs: Vec<(Cow<'q, str>, Cow<'q, str>)>,
}

impl<'q> Query<'q> {
    fn parse(query: Option<&'q str>) -> Query<'q> {
        Query {
            pairs: query
                .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
                .unwrap_or_default(),
        }
    }

    /// The value of `name` when it occurs exactly once (as `s3s`'s `get_unique`).
    fn unique(&self, name: &str) -> Option<&Cow<'q, str>> {
        let mut found = self.pairs.iter().filter(|(k, _)| k.as_ref() == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }
}

/// The value of header `name` when exactly one of its values is UTF-8 (as `s3s` reads headers:
/// values that are not UTF-8 are invisible to it).
fn unique_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = utf8_values(headers, name);
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

fn utf8_values<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// AWS's SigV2 StringToSign:
///
/// ```text
/// VERB \n Content-MD5 \n Content-Type \n Date (header auth; empty when x-amz-date is sent) or
/// Expires (presigned) \n CanonicalizedAmzHeaders CanonicalizedResource
/// ```
///
/// `path` is the path as sent (still percent-encoded); the front layer has already given a
/// bucket request the `/bucket/` path SigV2 signs.
fn string_to_sign(
    scheme: Scheme,
    method: &Method,
    path: &str,
    query: &Query<'_>,
    headers: &HeaderMap,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(unique_header(headers, "content-md5").unwrap_or(""));
    out.push('\n');
    out.push_str(unique_header(headers, "content-type").unwrap_or(""));
    out.push('\n');
    match scheme {
        Scheme::Header => {
            if unique_header(headers, "x-amz-date").is_none() {
                out.push_str(unique_header(headers, "date").unwrap_or(""));
            }
        }
        Scheme::Presigned => out.push_str(query.unique("Expires").map_or("", |v| v.as_ref())),
    }
    out.push('\n');
    let mut amz_names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-"))
        .collect();
    amz_names.sort_unstable();
    for name in amz_names {
        let values: Vec<&str> = utf8_values(headers, name).map(str::trim).collect();
        if values.is_empty() {
            continue;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(path);
    let mut separator = '?';
    for name in SIGNED_SUB_RESOURCES {
        if let Some(value) = query.unique(name) {
            out.push(separator);
            separator = '&';
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    out
}

/// Parses an HTTP date as SigV2 clients send it: RFC 1123 / RFC 2822
/// (`Tue, 27 Mar 2007 19:36:42 GMT` or `+0000`), or ISO 8601 basic (`20070327T193642Z`) in
/// `x-amz-date`. Times before the epoch are invalid.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    let iso = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc2822)
        .ok()
        .or_else(|| {
            time::PrimitiveDateTime::parse(s.trim(), &iso)
                .ok()
                .map(time::PrimitiveDateTime::assume_utc)
        })?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// `2026-11-25T10:00:00Z`, as S3 writes times in error bodies.
fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of AWS's SigV2 examples ("Signing and authenticating REST requests", Amazon
    /// S3 developer guide, 2007 examples as `s3s` 0.14 pins them).
    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EXAMPLE_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

    fn lookup(ak: &str) -> Option<String> {
        (ak == EXAMPLE_KEY).then(|| EXAMPLE_SECRET.to_owned())
    }

    fn at(date: &str) -> SystemTime {
        parse_http_date(date).unwrap()
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn signed(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<()> {
        let unsigned = request(method, target, headers);
        let query = Query::parse(unsigned.uri().query());
        let sts = string_to_sign(
            Scheme::Header,
            unsigned.method(),
            unsigned.uri().path(),
            &query,
            unsigned.headers(),
        );
        let sig = B64.encode(coffer_crypto::hmac_sha1(
            EXAMPLE_SECRET.as_bytes(),
            sts.as_bytes(),
        ));
        let auth = format!("AWS {EXAMPLE_KEY}:{sig}");
        let mut all = headers.to_vec();
        all.push(("authorization", &auth));
        request(method, target, &all)
    }

    #[test]
    fn aws_documented_object_get_verifies() {
        // AWS's "Object GET" example, path-style: signature qgk2+6Sv9/oM7G3qLEjTH1a1l1g=.
        let date = "Tue, 27 Mar 2007 19:36:42 +0000";
        let req = request(
            "GET",
            "/awsexamplebucket1/photos/puppy.jpg",
            &[
                ("date", date),
                (
                    "authorization",
                    "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
                ),
            ],
        );
        assert_eq!(check(&req, true, at(date), lookup), Ok(()));
        // Off by default: refused before anything else.
        assert_eq!(
            check(&req, false, at(date), lookup),
            Err(Sigv2Error::Disabled)
        );
    }

    #[test]
    fn aws_documented_upload_string_to_sign() {
        // AWS's "Upload" example: x-amz-* headers sorted, repeated ones joined with commas.
        let req = request(
            "PUT",
            "/static.example.com/db-backup.dat.gz",
            &[
                ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("x-amz-meta-reviewedby", "joe@example.com"),
                ("x-amz-meta-reviewedby", "jane@example.com"),
                ("x-amz-meta-filechecksum", "0x02661779"),
                ("x-amz-meta-checksumalgorithm", "crc32"),
                ("content-disposition", "attachment; filename=database.dat"),
            ],
        );
        let sts = string_to_sign(
            Scheme::Header,
            req.method(),
            req.uri().path(),
            &Query::parse(None),
            req.headers(),
        );
        assert_eq!(
            sts,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n\
             x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n\
             x-amz-meta-reviewedby:joe@example.com,jane@example.com\n/static.example.com/db-backup.dat.gz"
        );
    }

    #[test]
    fn sub_resources_are_signed_and_other_parameters_are_not() {
        let req = request(
            "GET",
            "/bkt/k?versionId=v%2B1&max-keys=3&acl&response-content-type=text%2Fplain",
            &[
                ("x-amz-date", "Tue, 27 Mar 2007 19:44:46 +0000"),
                ("date", "ignored"),
            ],
        );
        let query = Query::parse(req.uri().query());
        let sts = string_to_sign(
            Scheme::Header,
            req.method(),
            req.uri().path(),
            &query,
            req.headers(),
        );
        // x-amz-date present: the Date line is empty and x-amz-date is a canonical header.
        assert_eq!(
            sts,
            "GET\n\n\n\nx-amz-date:Tue, 27 Mar 2007 19:44:46 +0000\n\
             /bkt/k?acl&response-content-type=text/plain&versionId=v+1"
        );
    }

    #[test]
    fn aws_documented_presigned_url_verifies_until_it_expires() {
        // AWS's query-string example (signature as `s3s` 0.14 pins it): Expires 1175139620.
        let target = "/awsexamplebucket1/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D&Expires=1175139620";
        let req = request("GET", target, &[]);
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(1_175_139_620);
        let hour = Duration::from_secs(3600);
        assert_eq!(check(&req, true, expires - hour, lookup), Ok(()));
        assert!(matches!(
            check(&req, true, expires + Duration::from_secs(1), lookup),
            Err(Sigv2Error::Expired { .. })
        ));
        // Valid for more than 7 days from now.
        assert_eq!(
            check(&req, true, expires - 8 * 24 * hour, lookup),
            Err(Sigv2Error::ExpiresTooFar)
        );
        // Another key under the same signature.
        let other = request("GET", &target.replace("puppy", "kitten"), &[]);
        assert!(matches!(
            check(&other, true, expires - hour, lookup),
            Err(Sigv2Error::Mismatch { .. })
        ));
        assert_eq!(
            check(&req, false, expires - hour, lookup),
            Err(Sigv2Error::Disabled)
        );
    }

    #[test]
    fn presigned_parameters_must_be_complete_and_expires_numeric() {
        let now = at("Tue, 27 Mar 2007 19:36:42 GMT");
        for target in [
            "/b/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620",
            "/b/k?Signature=x&Expires=1175139620",
            "/b/k?AWSAccessKeyId=A&Signature=x",
            "/b/k?AWSAccessKeyId=A&Signature=x&Signature=y&Expires=1175139620",
        ] {
            assert_eq!(
                check(&request("GET", target, &[]), true, now, lookup),
                Err(Sigv2Error::MissingQueryParameters),
                "{target}"
            );
        }
        for expires in ["soon", "-5", "1e9", "99999999999999999999"] {
            let target = format!("/b/k?AWSAccessKeyId=A&Signature=x&Expires={expires}");
            assert!(
                matches!(
                    check(&request("GET", &target, &[]), true, now, lookup),
                    Err(Sigv2Error::InvalidExpires(_))
                ),
                "{expires}"
            );
        }
        // A percent-encoded parameter name is still SigV2 (as `s3s` decodes it).
        let sneaky = request("GET", "/b/k?Sig%6Eature=x", &[]);
        assert_eq!(
            check(&sneaky, false, now, lookup),
            Err(Sigv2Error::Disabled)
        );
    }

    #[test]
    fn header_auth_must_be_within_fifteen_minutes() {
        let date = "Tue, 27 Mar 2007 19:36:42 GMT";
        let req = signed("GET", "/bkt/k", &[("date", date)]);
        let now = at(date);
        assert_eq!(check(&req, true, now, lookup), Ok(()));
        let fourteen = Duration::from_secs(14 * 60);
        assert_eq!(check(&req, true, now + fourteen, lookup), Ok(()));
        assert_eq!(check(&req, true, now - fourteen, lookup), Ok(()));
        let sixteen = Duration::from_secs(16 * 60);
        for skewed in [now + sixteen, now - sixteen] {
            assert_eq!(
                check(&req, true, skewed, lookup),
                Err(Sigv2Error::Skewed {
                    request_time: date.into(),
                    server_time: iso8601(skewed),
                })
            );
        }
        // x-amz-date wins over Date for the time check, in either format.
        let req = signed(
            "GET",
            "/bkt/k",
            &[
                ("date", "Mon, 01 Jan 2018 00:00:00 GMT"),
                ("x-amz-date", "20070327T193642Z"),
            ],
        );
        assert_eq!(check(&req, true, now, lookup), Ok(()));
    }

    #[test]
    fn header_auth_needs_a_valid_date_and_a_well_formed_header() {
        let now = at("Tue, 27 Mar 2007 19:36:42 GMT");
        for date in [
            None,
            Some("yesterday"),
            Some("Tue, 07 Jul 1950 21:53:04 GMT"),
        ] {
            let headers: Vec<(&str, &str)> = date.iter().map(|d| ("date", *d)).collect();
            let req = signed("GET", "/bkt/k", &headers);
            assert_eq!(
                check(&req, true, now, lookup),
                Err(Sigv2Error::InvalidDate),
                "{date:?}"
            );
        }
        let date = ("date", "Tue, 27 Mar 2007 19:36:42 GMT");
        let no_colon = request("GET", "/bkt/k", &[date, ("authorization", "AWS HAHAHA")]);
        assert_eq!(
            check(&no_colon, true, now, lookup),
            Err(Sigv2Error::MalformedHeader)
        );
        let unknown = request(
            "GET",
            "/bkt/k",
            &[date, ("authorization", "AWS NOBODY:abc=")],
        );
        assert_eq!(
            check(&unknown, true, now, lookup),
            Err(Sigv2Error::UnknownAccessKey)
        );
        let mut wrong = signed("GET", "/bkt/k", &[date]);
        wrong.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="),
        );
        assert!(matches!(
            check(&wrong, true, now, lookup),
            Err(Sigv2Error::Mismatch { .. })
        ));
    }

    #[test]
    fn sigv4_and_anonymous_requests_pass_untouched() {
        let now = SystemTime::now();
        let v4 = request(
            "GET",
            "/b/k?X-Amz-Signature=00&X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request",
            &[],
        );
        assert_eq!(check(&v4, false, now, lookup), Ok(()));
        let header_v4 = request(
            "GET",
            "/b/k",
            &[(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            )],
        );
        assert_eq!(check(&header_v4, false, now, lookup), Ok(()));
        assert_eq!(
            check(&request("GET", "/b/k", &[]), false, now, lookup),
            Ok(())
        );
    }

    #[test]
    fn refusals_carry_s3_statuses() {
        let resp = Sigv2Error::Disabled.reply();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = Sigv2Error::Skewed {
            request_time: "Mon, 01 Jul 2019 00:00:00 GMT".into(),
            server_time: "2026-11-25T10:00:00Z".into(),
        }
        .reply();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }

    /// An S3 service that implements nothing: whatever `s3s` answers after authentication is
    /// `NotImplemented`, so any other error means `s3s` refused the request before.
    struct Nothing;
    impl s3s::S3 for Nothing {}

    /// What `s3s` 0.14 answers a request that this module has accepted: the status and code.
    fn s3s_answer(req: Request<()>) -> (StatusCode, String) {
        let mut builder = s3s::service::S3ServiceBuilder::new(Nothing);
        builder.set_auth(Credentials::single(EXAMPLE_KEY, EXAMPLE_SECRET));
        let service = builder.build();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let resp = runtime
            .block_on(service.call(req.map(|()| Body::empty())))
            .unwrap();
        let status = resp.status();
        let body = runtime
            .block_on(http_body_util::BodyExt::collect(resp.into_body()))
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        let code = crate::server::between(&text, "<Code>", "</Code>")
            .unwrap_or("")
            .to_owned();
        (status, code)
    }

    fn path_segment() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("([a-z0-9._~-]|%2[0-9A-F]|%C3%A9){1,8}").unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        /// Whatever this module accepts, `s3s` accepts too: they build the same string to sign
        /// for any path, signed sub-resources, unsigned parameters and x-amz-* headers, in both
        /// schemes — so `s3s`'s `!=` only ever compares a signature that already matched.
        #[test]
        fn a_signature_accepted_here_is_accepted_by_s3s(
            bucket in proptest::string::string_regex("[a-z0-9]{3,12}").unwrap(),
            key in proptest::collection::vec(path_segment(), 0..3),
            params in proptest::collection::vec(
                (
                    proptest::sample::select(&["acl", "versionId", "uploads", "partNumber", "marker", "prefix", "response-content-type", "tagging"][..]),
                    proptest::string::string_regex("([a-zA-Z0-9]|%2B|%2F|%20|%C3%A9){0,6}").unwrap(),
                ),
                0..4,
            ),
            amz in proptest::collection::vec(
                (
                    proptest::sample::select(&["x-amz-meta-a", "x-amz-meta-b", "x-amz-acl", "x-amz-date"][..]),
                    proptest::string::string_regex("[ a-zA-Z0-9,:/=+-]{0,12}").unwrap(),
                ),
                0..4,
            ),
            content_type in proptest::option::of(proptest::string::string_regex("[a-z]{1,8}/[a-z]{1,8}").unwrap()),
            presigned in proptest::prelude::any::<bool>(),
        ) {
            let path = if key.is_empty() { format!("/{bucket}/") } else { format!("/{bucket}/{}", key.join("/")) };
            let mut query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let now = SystemTime::now();
            let date = httpdate(now);
            let mut headers: Vec<(String, String)> = amz.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            headers.extend(content_type.map(|t| ("content-type".to_owned(), t)));
            let expires = (now + Duration::from_secs(600))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .to_string();
            if presigned {
                query.push(format!("Expires={expires}"));
            } else {
                headers.push(("date".to_owned(), date));
            }
            let target = |extra: &[String]| {
                let all: Vec<String> = query.iter().chain(extra).cloned().collect();
                if all.is_empty() { path.clone() } else { format!("{path}?{}", all.join("&")) }
            };
            let build = |target: &str, extra_header: Option<(&str, String)>| {
                let mut b = Request::builder().method("GET").uri(target).header("host", "localhost");
                for (k, v) in &headers {
                    b = b.header(k.as_str(), v.as_str());
                }
                if let Some((k, v)) = extra_header {
                    b = b.header(k, v);
                }
                b.body(()).unwrap()
            };
            let unsigned = build(&target(&[]), None);
            let scheme = if presigned { Scheme::Presigned } else { Scheme::Header };
            let sts = string_to_sign(
                scheme,
                unsigned.method(),
                unsigned.uri().path(),
                &Query::parse(unsigned.uri().query()),
                unsigned.headers(),
            );
            let signature = B64.encode(coffer_crypto::hmac_sha1(EXAMPLE_SECRET.as_bytes(), sts.as_bytes()));
            let req = if presigned {
                let encoded: String = form_urlencoded::byte_serialize(signature.as_bytes()).collect();
                build(&target(&[format!("AWSAccessKeyId={EXAMPLE_KEY}"), format!("Signature={encoded}")]), None)
            } else {
                build(&target(&[]), Some(("authorization", format!("AWS {EXAMPLE_KEY}:{signature}"))))
            };
            let checked = check(&req, true, now, lookup);
            let date_ok = presigned || req.headers().get("x-amz-date").is_none_or(|d| parse_http_date(d.to_str().unwrap_or("")).is_some_and(|t| t.duration_since(now).unwrap_or_default() < MAX_SKEW && now.duration_since(t).unwrap_or_default() < MAX_SKEW));
            if date_ok && req.headers().get_all("x-amz-date").iter().count() < 2 {
                proptest::prop_assert_eq!(&checked, &Ok(()), "{}", sts);
            }
            if checked.is_ok() {
                let (status, code) = s3s_answer(req);
                // Past authentication `s3s` may still refuse the input (a `partNumber` that is
                // not a number, a repeated parameter); it must not refuse the signature.
                proptest::prop_assert!(
                    !matches!(code.as_str(), "SignatureDoesNotMatch" | "AccessDenied" | "InvalidAccessKeyId"),
                    "{} {} {}", status, code, sts
                );
            }
        }
    }

    /// `Tue, 27 Mar 2007 19:36:42 GMT`.
    fn httpdate(t: SystemTime) -> String {
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let fmt = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap())
            .unwrap()
            .format(&fmt)
            .unwrap()
    }
}
