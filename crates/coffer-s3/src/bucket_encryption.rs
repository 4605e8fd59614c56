//! PutBucketEncryption and GetBucketEncryption, with the rule's `BlockedEncryptionTypes` (the
//! per-bucket SSE-C block S3 added in 2025–26), which `s3s` 0.14 does not know: its XML reader
//! refuses the element and its writer has no field for it. So these two operations are an
//! `s3s` custom route: `s3s` verifies the signature and the body's SHA-256 as for any request,
//! then this module checks the caller's permission (identity and bucket policies, as
//! [`crate::authz`] does for every other operation; anonymous callers are refused), parses the
//! document and writes the answer itself. DeleteBucketEncryption (no body) stays an ordinary `s3s` operation.
//!
//! What a rule means: the default encryption of writes without encryption headers (`AES256`,
//! `aws:kms`, `aws:kms:dsse`, a KMS key, an S3 Bucket Key), and whether SSE-C writes are allowed
//! (`NONE`) or refused (`SSE-C`, the default of every bucket). A rule without
//! `BlockedEncryptionTypes` leaves the block as it was, so setting a default never reopens SSE-C.

use bytes::Bytes;
use coffer_store::BucketEncryption;
use http::{HeaderMap, HeaderValue, Method, Uri};
use s3s::dto::{ServerSideEncryption, ServerSideEncryptionByDefault};
use s3s::route::S3Route;
use s3s::xml::{DeError, Deserializer};
use s3s::{Body, S3Error, S3Request, S3Response, S3Result};

use crate::auth::Credentials;
use crate::authz::{Authorizer, Signing, resource_arn};
use crate::error::api_error;
use crate::kms_api::Connection;
use crate::route::Target;
use crate::server::{RequestInfo, xml_escape};
use crate::service::Coffer;

/// Largest configuration document read (S3's are a few hundred bytes).
const MAX_DOCUMENT: usize = 64 * 1024;
/// `BlockedEncryptionTypes` values.
const BLOCK_SSE_C: &str = "SSE-C";
const BLOCK_NONE: &str = "NONE";

/// The custom route serving PutBucketEncryption and GetBucketEncryption.
pub struct EncryptionRoute {
    coffer: Coffer,
    credentials: Credentials,
    account_id: String,
}

impl EncryptionRoute {
    pub fn new(coffer: Coffer, credentials: Credentials, account_id: String) -> EncryptionRoute {
        EncryptionRoute {
            coffer,
            credentials,
            account_id,
        }
    }
}

/// The bucket a Put/GetBucketEncryption request names, if it is one.
fn encryption_request(method: &Method, uri: &Uri) -> Option<String> {
    if method != Method::PUT && method != Method::GET {
        return None;
    }
    let Target::Bucket(bucket) = Target::of(uri.path()) else {
        return None;
    };
    let names_encryption = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "encryption" || p == "encryption=")
    });
    names_encryption.then(|| bucket.to_owned())
}

#[async_trait::async_trait]
impl S3Route for EncryptionRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        _headers: &HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        encryption_request(method, uri).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let bucket = encryption_request(&req.method, &req.uri)
            .ok_or_else(|| api_error!(AccessDenied, "Access Denied"))?;
        let access_key = req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .ok_or_else(|| api_error!(AccessDenied, "Access Denied"))?;
        let authz = Authorizer::for_access_key(
            &self.credentials,
            &self.account_id,
            &access_key,
            req.extensions.get::<Connection>(),
            &req.headers,
            Some(&self.coffer.policies),
        )
        .ok_or_else(|| {
            api_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )
        })?
        .with_signing(Signing::of_request(
            &req.uri,
            &req.headers,
            req.extensions
                .get::<RequestInfo>()
                .is_some_and(|info| info.sigv2),
        ));
        let action = if req.method == Method::PUT {
            "s3:PutEncryptionConfiguration"
        } else {
            "s3:GetEncryptionConfiguration"
        };
        authz.check(action, &resource_arn(&bucket, None))?;
        req.extensions.insert(authz);
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = encryption_request(&req.method, &req.uri)
            .ok_or_else(|| api_error!(MethodNotAllowed, "The method is not allowed"))?;
        if req.method == Method::PUT {
            let mut body = req.input;
            let document = body.store_all_limited(MAX_DOCUMENT).await.map_err(|_| {
                api_error!(
                    MalformedXML,
                    "The encryption configuration must be at most {MAX_DOCUMENT} bytes"
                )
            })?;
            put(&self.coffer, &bucket, &document).await
        } else {
            get(&self.coffer, &bucket).await
        }
    }
}

/// One rule as sent.
#[derive(Debug, Default, PartialEq)]
struct Rule {
    default: Option<ServerSideEncryptionByDefault>,
    bucket_key_enabled: Option<bool>,
    /// `None` when the rule has no `BlockedEncryptionTypes`.
    blocked: Option<Vec<String>>,
}

/// Parses a `ServerSideEncryptionConfiguration` document into its rules.
fn parse(document: &[u8]) -> Result<Vec<Rule>, DeError> {
    let mut d = Deserializer::new(document);
    let rules = d.named_element("ServerSideEncryptionConfiguration", |d| {
        let mut rules = Vec::new();
        d.for_each_element(|d, name| match name {
            b"Rule" => {
                rules.push(parse_rule(d)?);
                Ok(())
            }
            _ => Err(DeError::UnexpectedTagName),
        })?;
        Ok(rules)
    })?;
    d.expect_eof()?;
    Ok(rules)
}

fn parse_rule(d: &mut Deserializer<'_>) -> Result<Rule, DeError> {
    let mut rule = Rule::default();
    d.for_each_element(|d, name| match name {
        b"ApplyServerSideEncryptionByDefault" if rule.default.is_none() => {
            rule.default = Some(d.content()?);
            Ok(())
        }
        b"BucketKeyEnabled" if rule.bucket_key_enabled.is_none() => {
            rule.bucket_key_enabled = Some(d.content()?);
            Ok(())
        }
        b"BlockedEncryptionTypes" if rule.blocked.is_none() => {
            let mut types = Vec::new();
            d.for_each_element(|d, name| match name {
                b"EncryptionType" => {
                    types.push(d.content::<String>()?);
                    Ok(())
                }
                _ => Err(DeError::UnexpectedTagName),
            })?;
            rule.blocked = Some(types);
            Ok(())
        }
        b"ApplyServerSideEncryptionByDefault" | b"BucketKeyEnabled" | b"BlockedEncryptionTypes" => {
            Err(DeError::DuplicateField)
        }
        _ => Err(DeError::UnexpectedTagName),
    })?;
    Ok(rule)
}

/// What a valid rule sets: the default (`None`: SSE-S3) and, when stated, the SSE-C block.
fn validate(rules: Vec<Rule>) -> Result<(Option<BucketEncryption>, Option<bool>), S3Error> {
    let count = rules.len();
    let Ok([rule]) = <[Rule; 1]>::try_from(rules) else {
        return Err(api_error!(
            MalformedXML,
            "The server side encryption configuration must hold exactly one rule, not {count}"
        ));
    };
    let bucket_key = rule.bucket_key_enabled == Some(true);
    let encryption = match &rule.default {
        None if bucket_key => {
            return Err(api_error!(
                InvalidArgument,
                "BucketKeyEnabled applies only to SSEAlgorithm aws:kms"
            ));
        }
        None => None,
        Some(default) => Some(default_encryption(default, bucket_key)?),
    };
    let sse_c_allowed = match rule.blocked.as_deref() {
        None => None,
        Some([one]) if one == BLOCK_SSE_C => Some(false),
        Some([one]) if one == BLOCK_NONE => Some(true),
        Some(other) => {
            return Err(api_error!(
                InvalidArgument,
                "BlockedEncryptionTypes must hold one EncryptionType, SSE-C or NONE, not {other:?}"
            ));
        }
    };
    Ok((encryption, sse_c_allowed))
}

/// The stored default of an `ApplyServerSideEncryptionByDefault`: `AES256`, `aws:kms` or
/// `aws:kms:dsse`, a KMS key only with a KMS algorithm, a Bucket Key only with `aws:kms` (S3
/// Bucket Keys do not apply to DSSE-KMS).
fn default_encryption(
    default: &ServerSideEncryptionByDefault,
    bucket_key: bool,
) -> Result<BucketEncryption, S3Error> {
    let algorithm = default.sse_algorithm.as_str();
    let kms = match algorithm {
        ServerSideEncryption::AES256 => false,
        ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => true,
        other => {
            return Err(api_error!(
                InvalidArgument,
                "The SSEAlgorithm {other:?} is not valid: use AES256, aws:kms or aws:kms:dsse"
            ));
        }
    };
    if default.kms_master_key_id.is_some() && !kms {
        return Err(api_error!(
            InvalidArgument,
            "a KMSMasterKeyID is allowed only when SSEAlgorithm is aws:kms or aws:kms:dsse"
        ));
    }
    if let Some(key) = &default.kms_master_key_id
        && key.trim().is_empty()
    {
        return Err(api_error!(
            InvalidArgument,
            "KMSMasterKeyID must not be empty"
        ));
    }
    if bucket_key && algorithm != ServerSideEncryption::AWS_KMS {
        return Err(api_error!(
            InvalidArgument,
            "BucketKeyEnabled applies only to SSEAlgorithm aws:kms"
        ));
    }
    Ok(BucketEncryption {
        sse_algorithm: algorithm.to_owned(),
        kms_master_key_id: default.kms_master_key_id.clone(),
        bucket_key_enabled: bucket_key,
    })
}

async fn put(c: &Coffer, bucket: &str, document: &[u8]) -> S3Result<S3Response<Body>> {
    let rules = parse(document).map_err(|e| {
        api_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema ({e})"
        )
    })?;
    let (encryption, sse_c_allowed) = validate(rules)?;
    crate::bucket::change_bucket(c, bucket, move |rec| {
        rec.encryption = encryption;
        if let Some(allowed) = sse_c_allowed {
            rec.sse_c_allowed = allowed;
        }
    })
    .await?;
    Ok(S3Response::new(Body::empty()))
}

async fn get(c: &Coffer, bucket: &str) -> S3Result<S3Response<Body>> {
    let rec = crate::bucket::require_bucket(c, bucket).await?;
    // No configuration reports (and applies) SSE-S3, as S3 does for every bucket since 2023.
    let (algorithm, key, bucket_key) = match rec.encryption {
        Some(e) => (e.sse_algorithm, e.kms_master_key_id, e.bucket_key_enabled),
        None => (ServerSideEncryption::AES256.to_owned(), None, false),
    };
    let key = key
        .map(|k| format!("<KMSMasterKeyID>{}</KMSMasterKeyID>", xml_escape(&k)))
        .unwrap_or_default();
    let blocked = if rec.sse_c_allowed {
        BLOCK_NONE
    } else {
        BLOCK_SSE_C
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
         <ApplyServerSideEncryptionByDefault><SSEAlgorithm>{}</SSEAlgorithm>{key}</ApplyServerSideEncryptionByDefault>\
         <BucketKeyEnabled>{bucket_key}</BucketKeyEnabled>\
         <BlockedEncryptionTypes><EncryptionType>{blocked}</EncryptionType></BlockedEncryptionTypes>\
         </Rule></ServerSideEncryptionConfiguration>",
        xml_escape(&algorithm)
    );
    let mut resp = S3Response::new(Body::from(Bytes::from(xml)));
    resp.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(xml: &str) -> Result<(Option<BucketEncryption>, Option<bool>), String> {
        let rules = parse(xml.as_bytes()).map_err(|e| format!("MalformedXML {e}"))?;
        validate(rules).map_err(|e| e.code().as_str().to_owned())
    }

    fn doc(rule: &str) -> String {
        format!(
            "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{rule}</ServerSideEncryptionConfiguration>"
        )
    }

    #[test]
    fn a_rule_sets_the_default_and_the_sse_c_block() {
        let (enc, block) = rules(&doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>alias/app</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled><BlockedEncryptionTypes><EncryptionType>NONE</EncryptionType></BlockedEncryptionTypes></Rule>")).unwrap();
        let enc = enc.unwrap();
        assert_eq!(
            (
                enc.sse_algorithm.as_str(),
                enc.kms_master_key_id.as_deref(),
                enc.bucket_key_enabled
            ),
            ("aws:kms", Some("alias/app"), true)
        );
        assert_eq!(block, Some(true));
        let (enc, block) = rules(&doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes></Rule>")).unwrap();
        assert_eq!(enc.unwrap().sse_algorithm, "AES256");
        assert_eq!(block, Some(false));
        // No BlockedEncryptionTypes: the block is left as it is.
        let (_, block) = rules(&doc("<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>")).unwrap();
        assert_eq!(block, None);
        // Only the block: the default is SSE-S3.
        let (enc, block) = rules(&doc("<Rule><BlockedEncryptionTypes><EncryptionType>NONE</EncryptionType></BlockedEncryptionTypes></Rule>")).unwrap();
        assert_eq!((enc, block), (None, Some(true)));
    }

    #[test]
    fn what_s3_refuses_is_refused() {
        let cases = [
            (doc(""), "MalformedXML"),
            (doc("<Rule></Rule><Rule></Rule>"), "MalformedXML"),
            (doc("<Rule><Bogus/></Rule>"), "MalformedXML"),
            ("<Other/>".to_owned(), "MalformedXML"),
            (
                doc(
                    "<Rule><BlockedEncryptionTypes><EncryptionType>SSE-KMS</EncryptionType></BlockedEncryptionTypes></Rule>",
                ),
                "InvalidArgument",
            ),
            (
                doc(
                    "<Rule><BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType><EncryptionType>NONE</EncryptionType></BlockedEncryptionTypes></Rule>",
                ),
                "InvalidArgument",
            ),
            (
                doc("<Rule><BlockedEncryptionTypes></BlockedEncryptionTypes></Rule>"),
                "InvalidArgument",
            ),
            (
                doc(
                    "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule>",
                ),
                "InvalidArgument",
            ),
            (
                doc(
                    "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms:dsse</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>",
                ),
                "InvalidArgument",
            ),
            (
                doc(
                    "<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>rot13</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>",
                ),
                "InvalidArgument",
            ),
        ];
        for (xml, expected) in cases {
            let got = rules(&xml).unwrap_err();
            assert!(got.starts_with(expected), "{xml}: {got}");
        }
    }

    #[test]
    fn only_bucket_requests_naming_encryption_are_taken() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(
            encryption_request(&Method::PUT, &uri("/b?encryption")).as_deref(),
            Some("b")
        );
        assert_eq!(
            encryption_request(&Method::GET, &uri("/b?encryption=")).as_deref(),
            Some("b")
        );
        assert!(encryption_request(&Method::DELETE, &uri("/b?encryption")).is_none());
        assert!(encryption_request(&Method::PUT, &uri("/b/k?encryption")).is_none());
        assert!(encryption_request(&Method::GET, &uri("/b?encryptionx")).is_none());
        assert!(encryption_request(&Method::GET, &uri("/b")).is_none());
    }
}
