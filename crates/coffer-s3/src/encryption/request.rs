//! Which encryption a write gets: the request's SSE headers (PutObject, CopyObject's destination,
//! CreateMultipartUpload, a POST form's fields) plus the bucket's default encryption, turned into
//! one [`Sse`] — by the rules S3 documents, and refusing what S3 refuses, never downgrading.
//!
//! Pure: no I/O, no key material; the encryption context is parsed and checked here too.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_store::BucketEncryption;
use s3s::S3Error;
use s3s::dto::ServerSideEncryption;

use crate::encryption::CustomerKey;
use crate::error::api_error;

/// The encryption context key S3 adds: the ARN of the object (or, with a Bucket Key, of the
/// bucket).
pub const S3_ARN_CONTEXT_KEY: &str = "aws:s3:arn";
/// Largest `x-amz-server-side-encryption-context` header accepted, in bytes.
const MAX_CONTEXT_HEADER: usize = 8 * 1024;

/// The encryption one object version gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3: the data key is wrapped by the SSE-S3 service key.
    S3,
    /// SSE-KMS: the data key comes from the KMS key (`None`: the AWS managed key `aws/s3`), or,
    /// with a Bucket Key, is wrapped by a bucket-level key that does.
    Kms {
        key_id: Option<String>,
        /// The caller's encryption context (without `aws:s3:arn`, which is added per object).
        context: BTreeMap<String, String>,
        bucket_key: bool,
    },
    /// DSSE-KMS: two data keys from the KMS key, two layers.
    Dsse {
        key_id: Option<String>,
        context: BTreeMap<String, String>,
    },
    /// SSE-C: the data key is wrapped under a key derived from the customer's.
    Customer(CustomerKey),
}

impl Sse {
    /// Whether the KMS is involved (and with it the HTTPS rule).
    pub fn uses_kms(&self) -> bool {
        matches!(self, Sse::Kms { .. } | Sse::Dsse { .. })
    }
}

/// The [`SseHeaders`] of a PutObject, CopyObject or CreateMultipartUpload input (the three share
/// the field names), with the customer key already taken out of it
/// ([`crate::encryption::customer::customer_key_of`]).
macro_rules! sse_headers_of {
    ($input:expr, $customer:expr) => {
        $crate::encryption::SseHeaders {
            server_side_encryption: $input.server_side_encryption.as_ref(),
            kms_key_id: $input.ssekms_key_id.as_deref(),
            kms_context: $input.ssekms_encryption_context.as_deref(),
            bucket_key_enabled: $input.bucket_key_enabled,
            customer: $customer,
        }
    };
}
pub(crate) use sse_headers_of;

/// What a write request asked for, in the headers (or form fields) that select the encryption.
#[derive(Default)]
pub struct SseHeaders<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context`: base64 of a JSON object of strings.
    pub kms_context: Option<&'a str>,
    pub bucket_key_enabled: Option<bool>,
    /// The SSE-C key, checked (see [`CustomerKey::from_fields`]).
    pub customer: Option<&'a CustomerKey>,
}

/// The encryption of a write with these headers in a bucket with this default.
pub fn choose(h: &SseHeaders<'_>, default: Option<&BucketEncryption>) -> Result<Sse, S3Error> {
    if let Some(customer) = h.customer {
        // SSE-C replaces the bucket's default; it goes with no other encryption header.
        if h.server_side_encryption.is_some() {
            return Err(api_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
            ));
        }
        if h.kms_key_id.is_some() || h.kms_context.is_some() || h.bucket_key_enabled == Some(true) {
            return Err(api_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with SSE-KMS headers"
            ));
        }
        return Ok(Sse::Customer(customer.clone()));
    }
    let requested = h.server_side_encryption.map(ServerSideEncryption::as_str);
    let kms_requested = matches!(
        requested,
        Some(ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE)
    );
    if let Some(other) = requested
        && !kms_requested
        && other != ServerSideEncryption::AES256
    {
        return Err(api_error!(
            InvalidArgument,
            "The encryption method specified is not supported: x-amz-server-side-encryption must be AES256, aws:kms or aws:kms:dsse, got {other:?}"
        ));
    }
    if !kms_requested {
        if h.kms_key_id.is_some() {
            return Err(api_error!(
                InvalidArgument,
                "x-amz-server-side-encryption-aws-kms-key-id is only valid with x-amz-server-side-encryption aws:kms or aws:kms:dsse"
            ));
        }
        if h.kms_context.is_some() {
            return Err(api_error!(
                InvalidArgument,
                "x-amz-server-side-encryption-context is only valid with x-amz-server-side-encryption aws:kms or aws:kms:dsse"
            ));
        }
    }
    if let Some(key) = h.kms_key_id
        && key.trim().is_empty()
    {
        return Err(api_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-aws-kms-key-id must not be empty"
        ));
    }
    let context = h
        .kms_context
        .map(parse_context)
        .transpose()?
        .unwrap_or_default();
    let key_id = h.kms_key_id.map(str::to_owned);
    // A request without the header takes the bucket's default (SSE-S3 when it has none).
    let (algorithm, key_id, default_bucket_key) = match (requested, default) {
        (Some(algorithm), default) => (
            algorithm,
            key_id,
            // An explicit aws:kms keeps the bucket's Bucket Key setting unless the request says.
            default.is_some_and(|d| {
                d.bucket_key_enabled && d.sse_algorithm == ServerSideEncryption::AWS_KMS
            }),
        ),
        (None, Some(d)) => (
            d.sse_algorithm.as_str(),
            d.kms_master_key_id.clone(),
            d.bucket_key_enabled,
        ),
        (None, None) => (ServerSideEncryption::AES256, None, false),
    };
    let bucket_key = h.bucket_key_enabled.unwrap_or(default_bucket_key);
    match algorithm {
        ServerSideEncryption::AWS_KMS => Ok(Sse::Kms {
            key_id,
            context,
            bucket_key,
        }),
        ServerSideEncryption::AWS_KMS_DSSE if h.bucket_key_enabled == Some(true) => {
            Err(api_error!(
                InvalidArgument,
                "S3 Bucket Keys are not supported with aws:kms:dsse"
            ))
        }
        ServerSideEncryption::AWS_KMS_DSSE => Ok(Sse::Dsse { key_id, context }),
        _ if h.bucket_key_enabled == Some(true) => Err(api_error!(
            InvalidArgument,
            "x-amz-server-side-encryption-bucket-key-enabled applies only to aws:kms"
        )),
        _ => Ok(Sse::S3),
    }
}

/// Parses `x-amz-server-side-encryption-context`: base64 of a JSON object whose values are
/// strings. `aws:s3:arn` may be given only as the value S3 would add (checked per object by
/// [`full_context`]).
pub fn parse_context(header: &str) -> Result<BTreeMap<String, String>, S3Error> {
    let invalid = || {
        api_error!(
            InvalidArgument,
            "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map"
        )
    };
    if header.len() > MAX_CONTEXT_HEADER {
        return Err(invalid());
    }
    let bytes = B64.decode(header.trim()).map_err(|_| invalid())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let serde_json::Value::Object(map) = value else {
        return Err(invalid());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(v) => Ok((k, v)),
            _ => Err(invalid()),
        })
        .collect()
}

/// The encryption context of one KMS call: the caller's, plus `aws:s3:arn` = `arn` (the object
/// ARN, or the bucket ARN for a Bucket Key), as S3 adds it. A caller-given `aws:s3:arn` must be
/// that value.
pub fn full_context(
    caller: &BTreeMap<String, String>,
    arn: &str,
) -> Result<BTreeMap<String, String>, S3Error> {
    let mut context = caller.clone();
    match context.get(S3_ARN_CONTEXT_KEY) {
        Some(given) if given != arn => Err(api_error!(
            InvalidArgument,
            "The encryption context's {S3_ARN_CONTEXT_KEY} must be {arn}, not {given}"
        )),
        _ => {
            context.insert(S3_ARN_CONTEXT_KEY.to_owned(), arn.to_owned());
            Ok(context)
        }
    }
}

/// The `x-amz-server-side-encryption-context` response value of a context.
pub fn context_header(context: &BTreeMap<String, String>) -> String {
    B64.encode(serde_json::to_vec(context).expect("a string map serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse(v: &'static str) -> ServerSideEncryption {
        ServerSideEncryption::from_static(v)
    }

    fn default(algorithm: &str, key: Option<&str>, bucket_key: bool) -> BucketEncryption {
        BucketEncryption {
            sse_algorithm: algorithm.into(),
            kms_master_key_id: key.map(Into::into),
            bucket_key_enabled: bucket_key,
        }
    }

    fn code(e: S3Error) -> String {
        e.code().as_str().to_owned()
    }

    #[test]
    fn headers_and_bucket_defaults_choose_the_encryption() {
        let kms = sse(ServerSideEncryption::AWS_KMS);
        let dsse = sse(ServerSideEncryption::AWS_KMS_DSSE);
        let aes = sse(ServerSideEncryption::AES256);
        let none = SseHeaders::default();
        assert_eq!(choose(&none, None).unwrap(), Sse::S3);
        let bucket_kms = default("aws:kms", Some("alias/app"), true);
        assert_eq!(
            choose(&none, Some(&bucket_kms)).unwrap(),
            Sse::Kms {
                key_id: Some("alias/app".into()),
                context: BTreeMap::new(),
                bucket_key: true
            }
        );
        // An explicit header wins over the default; aws:kms without a key id is aws/s3.
        let explicit_aes = SseHeaders {
            server_side_encryption: Some(&aes),
            ..Default::default()
        };
        assert_eq!(choose(&explicit_aes, Some(&bucket_kms)).unwrap(), Sse::S3);
        let explicit_kms = SseHeaders {
            server_side_encryption: Some(&kms),
            ..Default::default()
        };
        assert_eq!(
            choose(&explicit_kms, Some(&bucket_kms)).unwrap(),
            Sse::Kms {
                key_id: None,
                context: BTreeMap::new(),
                bucket_key: true
            }
        );
        let no_bucket_key = SseHeaders {
            server_side_encryption: Some(&kms),
            kms_key_id: Some("k"),
            bucket_key_enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(
            choose(&no_bucket_key, Some(&bucket_kms)).unwrap(),
            Sse::Kms {
                key_id: Some("k".into()),
                context: BTreeMap::new(),
                bucket_key: false
            }
        );
        assert_eq!(
            choose(&none, Some(&default("aws:kms:dsse", None, false))).unwrap(),
            Sse::Dsse {
                key_id: None,
                context: BTreeMap::new()
            }
        );
        let ctx = B64.encode(br#"{"app":"billing"}"#);
        let with_context = SseHeaders {
            server_side_encryption: Some(&dsse),
            kms_context: Some(&ctx),
            ..Default::default()
        };
        assert_eq!(
            choose(&with_context, None).unwrap(),
            Sse::Dsse {
                key_id: None,
                context: BTreeMap::from([("app".into(), "billing".into())])
            }
        );
    }

    #[test]
    fn what_s3_refuses_is_refused() {
        let kms = sse(ServerSideEncryption::AWS_KMS);
        let dsse = sse(ServerSideEncryption::AWS_KMS_DSSE);
        let odd = sse("aws:kms:weird");
        for (headers, expected) in [
            (
                SseHeaders {
                    server_side_encryption: Some(&odd),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    kms_key_id: Some("k"),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    kms_context: Some("e30="),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    server_side_encryption: Some(&kms),
                    kms_context: Some("not base64!"),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    server_side_encryption: Some(&kms),
                    kms_context: Some(&B64.encode(b"[1,2]")),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    server_side_encryption: Some(&kms),
                    kms_context: Some(&B64.encode(br#"{"a":1}"#)),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    server_side_encryption: Some(&dsse),
                    bucket_key_enabled: Some(true),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
            (
                SseHeaders {
                    bucket_key_enabled: Some(true),
                    ..Default::default()
                },
                "InvalidArgument",
            ),
        ] {
            assert_eq!(code(choose(&headers, None).unwrap_err()), expected);
        }
    }

    #[test]
    fn the_object_arn_joins_the_context_and_may_not_be_forged() {
        let arn = "arn:aws:s3:::b/k";
        let mine = BTreeMap::from([("app".to_owned(), "x".to_owned())]);
        let full = full_context(&mine, arn).unwrap();
        assert_eq!(full[S3_ARN_CONTEXT_KEY], arn);
        assert_eq!(full["app"], "x");
        let same = BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), arn.to_owned())]);
        assert!(full_context(&same, arn).is_ok());
        let other =
            BTreeMap::from([(S3_ARN_CONTEXT_KEY.to_owned(), "arn:aws:s3:::b/o".to_owned())]);
        assert!(full_context(&other, arn).is_err());
        assert_eq!(parse_context(&context_header(&full)).unwrap(), full);
    }
}
