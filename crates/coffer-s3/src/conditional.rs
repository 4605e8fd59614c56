//! Conditional requests (RFC 7232 as S3 applies them): If-Match, If-None-Match,
//! If-Modified-Since, If-Unmodified-Since on reads, and the copy-source variants.
//!
//! Pure functions over an object's ETag and Last-Modified; no I/O.

use crate::error::api_error;
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3Result};

/// The conditions of one request.
#[derive(Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// What failing an If-None-Match / If-Modified-Since condition means for this request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OnNotModified {
    /// GET and HEAD: 304 Not Modified.
    NotModified,
    /// Copy sources: 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluates the conditions against the object's current ETag (unquoted) and Last-Modified
/// (unix ms). S3's precedence: a true If-Match overrides a false If-Unmodified-Since, and a
/// false If-None-Match overrides a true If-Modified-Since.
pub fn evaluate(
    c: &Conditions<'_>,
    etag: &str,
    last_modified_ms: i64,
    on_not_modified: OnNotModified,
) -> S3Result<()> {
    let last_modified_s = last_modified_ms.div_euclid(1000);
    match c.if_match {
        Some(cond) => {
            if !matches(cond, etag) {
                return Err(precondition_failed());
            }
        }
        None => {
            if let Some(t) = c.if_unmodified_since
                && last_modified_s > unix_seconds(t)
            {
                return Err(precondition_failed());
            }
        }
    }
    let not_modified = match c.if_none_match {
        Some(cond) => matches(cond, etag),
        None => c
            .if_modified_since
            .is_some_and(|t| last_modified_s <= unix_seconds(t)),
    };
    if not_modified {
        return Err(match on_not_modified {
            OnNotModified::NotModified => api_error!(NotModified, "Not Modified"),
            OnNotModified::PreconditionFailed => precondition_failed(),
        });
    }
    Ok(())
}

fn matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => match e {
            ETag::Strong(v) | ETag::Weak(v) => v == etag,
        },
    }
}

/// Whole seconds since the epoch of an S3 timestamp.
pub fn unix_seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// An S3 timestamp from unix milliseconds.
pub fn timestamp_from_ms(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

fn precondition_failed() -> S3Error {
    api_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_700_000_000_500;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(secs).unwrap())
    }

    fn etag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.into()))
    }

    #[test]
    fn if_match_mismatch_fails_and_match_overrides_unmodified_since() {
        let m = etag("abc");
        let c = Conditions {
            if_match: Some(&m),
            ..Default::default()
        };
        assert!(evaluate(&c, "abc", MS, OnNotModified::NotModified).is_ok());
        assert!(evaluate(&c, "xyz", MS, OnNotModified::NotModified).is_err());
        let past = ts(1);
        let c = Conditions {
            if_match: Some(&m),
            if_unmodified_since: Some(&past),
            ..Default::default()
        };
        assert!(evaluate(&c, "abc", MS, OnNotModified::NotModified).is_ok());
    }

    #[test]
    fn if_none_match_matching_is_not_modified() {
        let m = etag("abc");
        let c = Conditions {
            if_none_match: Some(&m),
            ..Default::default()
        };
        let err = evaluate(&c, "abc", MS, OnNotModified::NotModified).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::NotModified);
        let err = evaluate(&c, "abc", MS, OnNotModified::PreconditionFailed).unwrap_err();
        assert_eq!(*err.code(), s3s::S3ErrorCode::PreconditionFailed);
    }

    #[test]
    fn modified_since_compares_whole_seconds() {
        let same = ts(MS / 1000);
        let c = Conditions {
            if_modified_since: Some(&same),
            ..Default::default()
        };
        assert!(evaluate(&c, "e", MS, OnNotModified::NotModified).is_err());
        let before = ts(MS / 1000 - 1);
        let c = Conditions {
            if_modified_since: Some(&before),
            ..Default::default()
        };
        assert!(evaluate(&c, "e", MS, OnNotModified::NotModified).is_ok());
        let c = Conditions {
            if_unmodified_since: Some(&before),
            ..Default::default()
        };
        assert!(evaluate(&c, "e", MS, OnNotModified::NotModified).is_err());
    }
}
