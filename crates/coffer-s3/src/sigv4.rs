//! SigV4 verification for requests `s3s` does not see: the KMS JSON API (service `kms`).
//!
//! Header-signed requests only (AWS SDKs and CLIs sign KMS calls in the Authorization header);
//! the whole body is hashed, so the caller must have read it (KMS bodies are small). The
//! secret is used only to derive the signing key; it is never logged or returned.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// How far a request's `x-amz-date` may be from the server's clock (as AWS).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a signature was refused; each maps to the error AWS KMS returns.
#[derive(Debug, PartialEq, Eq)]
pub enum SigError {
    /// No Authorization header: `MissingAuthenticationTokenException`.
    Missing,
    /// The header or date does not parse: `IncompleteSignatureException`.
    Malformed(String),
    /// The access key is not known: `UnrecognizedClientException`.
    UnknownAccessKey,
    /// The credential scope names another region or service: `InvalidSignatureException`.
    WrongScope(String),
    /// The request time is too far from the server's: `InvalidSignatureException`.
    Skewed,
    /// The signature does not match: `InvalidSignatureException`.
    Mismatch,
}

/// What the verifier needs of a request.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

pub(crate) struct AuthHeader<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

pub(crate) fn parse_auth(value: &str) -> Result<AuthHeader<'_>, SigError> {
    let malformed = |m: &str| SigError::Malformed(m.to_owned());
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| malformed("the Authorization header must use AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (credential, signed, signature) = match (credential, signed, signature) {
        (Some(c), Some(s), Some(g)) => (c, s, g),
        _ => {
            return Err(malformed(
                "Authorization header requires Credential, SignedHeaders and Signature",
            ));
        }
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(malformed(
            "Credential must be <access-key>/<date>/<region>/<service>/aws4_request",
        ));
    }
    Ok(AuthHeader {
        access_key: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// URI-encodes per SigV4 (unreserved characters kept; `/` kept in paths).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn canonical_query(query: Option<&str>) -> String {
    let Some(q) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decodes `s` byte by byte (`%` with two hex digits; anything else, a lone or
/// truncated `%` included, is kept as it is); bytes that do not form UTF-8 become U+FFFD. Works
/// on bytes, never on `str` slices, so no input can split a character.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'`.
pub(crate) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, &fmt).ok()?.assume_utc();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).ok()?))
}

/// The SigV4 signing key of `secret` for one day, region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = coffer_crypto::hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = coffer_crypto::hmac_sha256(&k, region.as_bytes());
    let k = coffer_crypto::hmac_sha256(&k, service.as_bytes());
    coffer_crypto::hmac_sha256(&k, b"aws4_request")
}

/// Verifies a header-signed request for `service` in `region`; returns the access key.
/// `lookup` returns the secret of an access key.
pub fn verify(
    req: &SignedRequest<'_>,
    region: &str,
    service: &str,
    now: SystemTime,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, SigError> {
    let auth = req
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SigError::Missing)?;
    let auth = auth
        .to_str()
        .map_err(|_| SigError::Malformed("Authorization header is not text".into()))?;
    let a = parse_auth(auth)?;
    if a.region != region || a.service != service {
        return Err(SigError::WrongScope(format!(
            "Credential should be scoped to a valid region and service: expected {region}/{service}, got {}/{}",
            a.region, a.service
        )));
    }
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SigError::Malformed("missing x-amz-date".into()))?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| SigError::Malformed("x-amz-date is not YYYYMMDDTHHMMSSZ".into()))?;
    if !amz_date.starts_with(a.date) {
        return Err(SigError::Malformed(
            "credential scope date does not match x-amz-date".into(),
        ));
    }
    let skew = now
        .duration_since(when)
        .or_else(|_| when.duration_since(now))
        .unwrap_or(Duration::MAX);
    if skew > MAX_SKEW {
        return Err(SigError::Skewed);
    }
    if !a.signed_headers.contains(&"host") {
        return Err(SigError::Malformed(
            "SignedHeaders must include host".into(),
        ));
    }
    let secret = lookup(a.access_key).ok_or(SigError::UnknownAccessKey)?;

    let mut canonical_headers = String::new();
    for name in &a.signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = hex::encode(coffer_crypto::sha256(req.body));
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(&percent_decode(req.path), true),
        canonical_query(req.query),
        canonical_headers,
        a.signed_headers.join(";"),
        payload_hash
    );
    let scope = format!("{}/{}/{}/aws4_request", a.date, a.region, a.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(coffer_crypto::sha256(canonical_request.as_bytes()))
    );
    let key = signing_key(&secret, a.date, a.region, a.service);
    let expected = hex::encode(coffer_crypto::hmac_sha256(&key, string_to_sign.as_bytes()));
    if !coffer_crypto::ct_eq(expected.as_bytes(), a.signature.as_bytes()) {
        return Err(SigError::Mismatch);
    }
    Ok(a.access_key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS SigV4 test suite, "post-x-www-form-urlencoded" style request adapted from the
    /// documented example in "Signature Version 4 signing process" (IAM ListUsers):
    /// secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z, us-east-1, iam.
    #[test]
    fn aws_documented_example_verifies() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                .parse()
                .unwrap(),
        );
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: &headers,
            body: b"",
        };
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let lookup = |ak: &str| {
            (ak == "AKIDEXAMPLE").then(|| "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned())
        };
        assert_eq!(
            verify(&req, "us-east-1", "iam", now, lookup),
            Ok("AKIDEXAMPLE".to_owned())
        );
        // One changed byte of the query breaks it.
        let bad = SignedRequest {
            query: Some("Action=ListUsers&Version=2010-05-09"),
            ..req
        };
        assert_eq!(
            verify(&bad, "us-east-1", "iam", now, lookup),
            Err(SigError::Mismatch)
        );
        // Another region's scope, an unknown key, a skewed clock.
        assert!(matches!(
            verify(&bad, "eu-west-1", "iam", now, lookup),
            Err(SigError::WrongScope(_))
        ));
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            verify(&bad, "us-east-1", "iam", later, lookup),
            Err(SigError::Skewed)
        );
        assert_eq!(
            verify(&bad, "us-east-1", "iam", now, |_| None),
            Err(SigError::UnknownAccessKey)
        );
    }
}
