//! Who may do what on S3: each request's IAM action (`s3:GetObject`, …) and resource ARN, checked
//! with the policy engine that also serves the KMS against the caller's identity policies and
//! the bucket's policy, by AWS's rule within one account: an explicit `Deny` in either wins, else
//! an `Allow` from either suffices. The root user passes its identity side but is still bound by
//! a bucket policy's explicit `Deny` (how "deny non-TLS" binds everyone) — except that the root
//! access key may always call Get/Put/DeleteBucketPolicy and GetBucketPolicyStatus, so no policy
//! can lock the deployment out of fixing it. Anonymous requests (no signature) have no identity
//! policies: they are served only where the bucket policy allows everyone (`"*"`).
//!
//! Condition keys come from the connection (`aws:SecureTransport`, `aws:SourceIp`), the caller,
//! the request's headers, how it was signed (`s3:signatureversion`, `s3:authType`,
//! `s3:signatureAge`) and its operation (`s3:prefix`, …); every `s3:` key a bucket policy may
//! test (`coffer_policy::SUPPLIED_S3_CONDITION_KEYS`) is supplied here.
//!
//! Plugged into `s3s` as its access check, so it runs after the signature is verified and before
//! any handler; CopyObject and UploadPartCopy also need `s3:GetObject` on their source (under the
//! source bucket's policy), and DeleteObjects is checked per key (as S3 does) by its handler
//! through the [`Authorizer`] left in the request's extensions. POST uploads build their own.
//! This module decides; it never reads object data or keys, and parses no policy JSON (the
//! bucket policies come parsed from [`BucketPolicies`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use coffer_policy::{EvalContext, Identity, PolicyDocument, ResourceRule, Verdict};
use coffer_store::UploadRecord;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput, UploadPartCopyInput};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result};

use crate::auth::{Credentials, Principal};
use crate::bucket_policy::BucketPolicies;
use crate::error::api_error;
use crate::kms_api::Connection;
use crate::server::RequestInfo;

/// The access check `s3s` runs for every S3 request.
pub struct S3AccessControl {
    credentials: Credentials,
    account_id: String,
    policies: BucketPolicies,
}

impl S3AccessControl {
    pub fn new(
        credentials: Credentials,
        account_id: String,
        policies: BucketPolicies,
    ) -> S3AccessControl {
        S3AccessControl {
            credentials,
            account_id,
            policies,
        }
    }
}

/// Actions the root access key may always take, whatever a bucket policy says: without them a
/// policy denying everyone would lock the bucket for good.
const ROOT_POLICY_ACTIONS: &[&str] = &[
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:GetBucketPolicyStatus",
];

/// A caller (or nobody, for an anonymous request) and the facts of its request that conditions
/// may test: what the handlers use to check more than the request's own action (DeleteObjects'
/// keys, a copy's source), and what paths outside `s3s` (POST uploads) build to check theirs.
#[derive(Clone)]
pub struct Authorizer {
    /// `None` for an anonymous request.
    access_key: Option<String>,
    /// Empty for an anonymous request (so no principal but `"*"` matches it).
    principal_arn: String,
    account_id: String,
    identity: Identity,
    /// The bucket policies S3 requests are also checked against; `None` where none apply (IAM).
    policies: Option<BucketPolicies>,
    facts: Facts,
    /// The condition keys, built from `facts` the first time a policy is evaluated: the root
    /// user on a bucket without a policy never needs them, and they cost a tenth of a small GET.
    conditions: OnceLock<HashMap<String, Vec<String>>>,
}

/// What the condition keys of a request are made from.
#[derive(Clone)]
struct Facts {
    conn: Option<Connection>,
    /// `aws:username` (users only).
    username: Option<String>,
    /// Condition keys read from the request's headers (`s3:x-amz-server-side-encryption`, …);
    /// a header that is absent leaves its key absent, which is what `Null` tests.
    from_headers: Vec<(&'static str, String)>,
    /// How the request was signed (`None`: anonymous).
    signing: Option<Signing>,
    /// For a request that writes into a multipart upload, the SSE keys of the upload (from its
    /// record), which replace those of the request's headers: UploadPart and
    /// CompleteMultipartUpload never carry `x-amz-server-side-encryption`.
    upload_sse: Option<Vec<(&'static str, String)>>,
    /// Keys added for one operation (`s3:prefix`, `s3:VersionId`, …).
    extra: Vec<(String, String)>,
}

/// How a request was signed, for `s3:signatureversion`, `s3:authType` and `s3:signatureAge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signing {
    /// Signature Version 2 (`s3:signatureversion` `AWS`; else `AWS4-HMAC-SHA256`).
    sigv2: bool,
    auth: AuthType,
    /// When it was signed (SigV4's `X-Amz-Date`), for `s3:signatureAge`; SigV2's age is always
    /// 0, as S3 documents.
    signed_at: Option<std::time::SystemTime>,
}

/// `s3:authType`: where the signature travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthType {
    /// The `Authorization` header: `REST-HEADER`.
    Header,
    /// A presigned URL's query string: `REST-QUERY-STRING`.
    Query,
    /// A browser form upload: `POST`.
    Post,
}

impl Signing {
    /// A signed REST request: presigned when its query carries the signature (SigV4's
    /// `X-Amz-Signature`, SigV2's `Signature`, names decoded as `s3s` decodes them).
    pub fn of_request(uri: &http::Uri, headers: &http::HeaderMap, sigv2: bool) -> Signing {
        let presigned = uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, _)| {
                k == "X-Amz-Signature"
                    || k == "X-Amz-Credential"
                    || k == "Signature"
                    || k == "AWSAccessKeyId"
            })
        });
        let signed_at = if sigv2 {
            None
        } else if presigned {
            query_param(uri, "X-Amz-Date").and_then(|d| crate::sigv2::parse_http_date(&d))
        } else {
            headers
                .get("x-amz-date")
                .or_else(|| headers.get(http::header::DATE))
                .and_then(|v| v.to_str().ok())
                .and_then(crate::sigv2::parse_http_date)
        };
        Signing {
            sigv2,
            auth: if presigned {
                AuthType::Query
            } else {
                AuthType::Header
            },
            signed_at,
        }
    }

    /// A signed POST form: `x_amz_date` is its `X-Amz-Date` field (SigV4 forms).
    pub fn of_form(sigv2: bool, x_amz_date: Option<&str>) -> Signing {
        Signing {
            sigv2,
            auth: AuthType::Post,
            signed_at: if sigv2 {
                None
            } else {
                x_amz_date.and_then(crate::sigv2::parse_http_date)
            },
        }
    }

    /// The condition keys this signing gives a request at `now`.
    fn condition_keys(&self, now: std::time::SystemTime) -> [(&'static str, String); 3] {
        let version = if self.sigv2 {
            "AWS"
        } else {
            "AWS4-HMAC-SHA256"
        };
        let auth = match self.auth {
            AuthType::Header => "REST-HEADER",
            AuthType::Query => "REST-QUERY-STRING",
            AuthType::Post => "POST",
        };
        // A date slightly ahead of our clock (within the allowed skew) is age 0. A SigV4
        // request always has a date s3s verified; were it unreadable, the age would be "as old
        // as can be", which no "deny old signatures" policy lets through.
        let age_ms = match (self.sigv2, self.signed_at) {
            (true, _) => 0,
            (false, Some(at)) => now
                .duration_since(at)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            (false, None) => u64::MAX,
        };
        [
            ("s3:signatureversion", version.to_owned()),
            ("s3:authType", auth.to_owned()),
            ("s3:signatureAge", age_ms.to_string()),
        ]
    }
}

/// The condition keys of a write's encryption.
const SSE_KEYS: &[&str] = &[
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
];

/// Operations that write into an existing multipart upload: authorized as `s3:PutObject` with
/// the upload's encryption as their SSE condition keys (see [`Authorizer::with_upload`]).
const WRITES_INTO_AN_UPLOAD: &[&str] = &["UploadPart", "UploadPartCopy", "CompleteMultipartUpload"];

/// Request headers and the condition keys that carry them.
const HEADER_KEYS: &[(&str, &str)] = &[
    (
        "s3:x-amz-server-side-encryption",
        "x-amz-server-side-encryption",
    ),
    (
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ),
    (
        "s3:x-amz-server-side-encryption-customer-algorithm",
        "x-amz-server-side-encryption-customer-algorithm",
    ),
    (
        "s3:x-amz-server-side-encryption-context",
        "x-amz-server-side-encryption-context",
    ),
    ("s3:x-amz-acl", "x-amz-acl"),
    ("s3:x-amz-grant-full-control", "x-amz-grant-full-control"),
    ("s3:x-amz-grant-read", "x-amz-grant-read"),
    ("s3:x-amz-grant-read-acp", "x-amz-grant-read-acp"),
    ("s3:x-amz-grant-write", "x-amz-grant-write"),
    ("s3:x-amz-grant-write-acp", "x-amz-grant-write-acp"),
    ("s3:x-amz-storage-class", "x-amz-storage-class"),
    ("s3:x-amz-copy-source", "x-amz-copy-source"),
    ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
    ("s3:x-amz-content-sha256", "x-amz-content-sha256"),
    (
        "s3:x-amz-website-redirect-location",
        "x-amz-website-redirect-location",
    ),
    ("s3:if-match", "if-match"),
    ("s3:if-none-match", "if-none-match"),
    ("aws:UserAgent", "user-agent"),
    ("aws:Referer", "referer"),
];

impl Facts {
    fn new(
        conn: Option<&Connection>,
        username: Option<String>,
        headers: &http::HeaderMap,
    ) -> Facts {
        let from_headers = HEADER_KEYS
            .iter()
            .filter_map(|(key, header)| {
                let value = headers.get(*header)?.to_str().ok()?;
                Some((*key, value.to_owned()))
            })
            .collect();
        Facts {
            conn: conn.cloned(),
            username,
            from_headers,
            signing: None,
            upload_sse: None,
            extra: Vec::new(),
        }
    }
}

impl Authorizer {
    /// The caller behind `access_key` (as `credentials` knows it now), with the conditions of a
    /// request that came over `conn`; S3 requests pass the bucket policies to check against.
    /// `None` for an unknown access key.
    pub fn for_access_key(
        credentials: &Credentials,
        account_id: &str,
        access_key: &str,
        conn: Option<&Connection>,
        headers: &http::HeaderMap,
        policies: Option<&BucketPolicies>,
    ) -> Option<Authorizer> {
        let account = credentials.lookup(access_key)?;
        let username = match &account.principal {
            Principal::User(name) => Some(name.clone()),
            Principal::Root => None,
        };
        Some(Authorizer {
            access_key: Some(access_key.to_owned()),
            principal_arn: account.principal.arn(account_id),
            account_id: account_id.to_owned(),
            identity: account.identity,
            policies: policies.cloned(),
            facts: Facts::new(conn, username, headers),
            conditions: OnceLock::new(),
        })
    }

    /// An unsigned request: no identity policies, so only a bucket policy that allows everyone
    /// lets it through.
    pub fn anonymous(
        account_id: &str,
        conn: Option<&Connection>,
        headers: &http::HeaderMap,
        policies: &BucketPolicies,
    ) -> Authorizer {
        Authorizer {
            access_key: None,
            principal_arn: String::new(),
            account_id: account_id.to_owned(),
            identity: Identity::User(Arc::from([])),
            policies: Some(policies.clone()),
            facts: Facts::new(conn, None, headers),
            conditions: OnceLock::new(),
        }
    }

    /// Says how the request was signed (`s3:signatureversion`, `s3:authType`,
    /// `s3:signatureAge`); anonymous requests have none of these keys.
    pub fn with_signing(mut self, signing: Signing) -> Authorizer {
        if self.access_key.is_some() {
            self.facts.signing = Some(signing);
            self.conditions = OnceLock::new();
        }
        self
    }

    /// Takes the SSE condition keys from the multipart upload the request writes into, as
    /// CreateMultipartUpload's headers set them: `s3:x-amz-server-side-encryption` is the mode
    /// (`AES256`, `aws:kms`, `aws:kms:dsse`) with, for the KMS modes, the key's ARN as
    /// `s3:x-amz-server-side-encryption-aws-kms-key-id`; an SSE-C upload has
    /// `s3:x-amz-server-side-encryption-customer-algorithm` `AES256` and no mode.
    fn with_upload(mut self, upload: &UploadRecord) -> Authorizer {
        self.facts.upload_sse = Some(upload_sse_keys(
            &upload.envelope.mode,
            &upload.envelope.key_id,
        ));
        self.conditions = OnceLock::new();
        self
    }

    /// Whether a policy this request is checked against — `bucket_policy`, and a user's
    /// identity policies — tests one of `keys`. The root user on a bucket without a policy is
    /// checked against none.
    fn policies_test(&self, bucket_policy: Option<&PolicyDocument>, keys: &[&str]) -> bool {
        let tests = |doc: &PolicyDocument| keys.iter().any(|k| doc.tests_condition_key(k));
        let identity = match &self.identity {
            Identity::Root => false,
            Identity::User(policies) => policies.iter().any(tests),
        };
        identity || bucket_policy.is_some_and(tests)
    }

    /// Adds a condition key of this request (e.g. `s3:prefix`).
    pub fn with_condition(mut self, key: &str, value: &str) -> Authorizer {
        self.facts.extra.push((key.to_owned(), value.to_owned()));
        self.conditions = OnceLock::new();
        self
    }

    /// The caller's principal ARN (empty for an anonymous request).
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    fn is_root(&self) -> bool {
        self.access_key.is_some() && matches!(self.identity, Identity::Root)
    }

    /// The request's condition keys, built once.
    fn conditions(&self) -> &HashMap<String, Vec<String>> {
        self.conditions.get_or_init(|| {
            let mut map = HashMap::new();
            let mut put = |k: &str, v: String| {
                map.insert(k.to_owned(), vec![v]);
            };
            let facts = &self.facts;
            if let Some(conn) = &facts.conn {
                put("aws:SecureTransport", conn.secure.to_string());
                put("aws:SourceIp", conn.peer.ip().to_string());
            }
            if self.access_key.is_some() {
                put("aws:PrincipalArn", self.principal_arn.clone());
                put("aws:PrincipalAccount", self.account_id.clone());
                put(
                    "aws:PrincipalType",
                    if self.is_root() { "Account" } else { "User" }.to_owned(),
                );
            } else {
                put("aws:PrincipalType", "Anonymous".to_owned());
            }
            if let Some(name) = &facts.username {
                put("aws:username", name.clone());
            } else if self.is_root() {
                // AWS's aws:userid of the root user is the account id.
                put("aws:userid", self.account_id.clone());
            } else if self.access_key.is_none() {
                put("aws:userid", "anonymous".to_owned());
            }
            put("s3:ResourceAccount", self.account_id.clone());
            let now = std::time::SystemTime::now();
            let now_utc = time::OffsetDateTime::from(now);
            if let Ok(t) = now_utc.format(&time::format_description::well_known::Rfc3339) {
                put("aws:CurrentTime", t);
            }
            put("aws:EpochTime", now_utc.unix_timestamp().to_string());
            if let Some(signing) = &facts.signing {
                for (key, value) in signing.condition_keys(now) {
                    put(key, value);
                }
            }
            for (key, value) in &facts.from_headers {
                if facts.upload_sse.is_none() || !SSE_KEYS.contains(key) {
                    put(key, value.clone());
                }
            }
            for (key, value) in facts.upload_sse.iter().flatten() {
                put(key, value.clone());
            }
            for (key, value) in &facts.extra {
                put(key, value.clone());
            }
            map
        })
    }

    /// The caller as the key service sees it, for the KMS calls S3 makes on its behalf.
    pub fn kms_caller(
        &self,
        conn: Option<&Connection>,
        request_id: &str,
        headers: &http::HeaderMap,
    ) -> coffer_kms::Caller {
        coffer_kms::Caller {
            access_key: self.access_key.clone().unwrap_or_default(),
            principal_arn: self.principal_arn.clone(),
            source_ip: conn.map(|c| c.peer.ip().to_string()).unwrap_or_default(),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            request_id: request_id.to_owned(),
            secure_transport: conn.is_some_and(|c| c.secure),
            identity: self.identity.clone(),
        }
    }

    fn context<'a>(&'a self, action: &'a str, resource: &'a str) -> EvalContext<'a> {
        EvalContext {
            principal_arn: &self.principal_arn,
            account_id: &self.account_id,
            action,
            resource,
            conditions: self.conditions(),
            account_delegation: false,
        }
    }

    /// Whether the caller's identity policies let it do `action` on `resource` (no resource
    /// policy: what the IAM endpoint checks). S3 requests go through [`Authorizer::check`].
    pub fn verdict(&self, action: &str, resource: &str) -> Verdict {
        if self.is_root() {
            return Verdict::Allow;
        }
        coffer_policy::authorize(
            &self.identity,
            None,
            ResourceRule::EitherAllows,
            &self.context(action, resource),
        )
    }

    /// Whether the caller may do `action` on `resource`, under its identity policies and the
    /// policy of the bucket `resource` names.
    fn decide(&self, action: &str, resource: &str) -> S3Result<Verdict> {
        let root = self.is_root();
        if root && ROOT_POLICY_ACTIONS.contains(&action) {
            return Ok(Verdict::Allow);
        }
        let bucket_policy = match (&self.policies, bucket_of(resource)) {
            (Some(policies), Some(bucket)) => policies.get(bucket)?,
            _ => None,
        };
        if root && bucket_policy.is_none() {
            return Ok(Verdict::Allow);
        }
        Ok(coffer_policy::authorize(
            &self.identity,
            bucket_policy.as_deref(),
            ResourceRule::EitherAllows,
            &self.context(action, resource),
        ))
    }

    /// Refuses with S3's `AccessDenied` unless the caller may do `action` on `resource`.
    pub fn check(&self, action: &str, resource: &str) -> S3Result<()> {
        match self.decide(action, resource)?.explanation(action) {
            None => Ok(()),
            Some(_) if self.access_key.is_none() => Err(api_error!(AccessDenied, "Access Denied")),
            Some(why) => Err(api_error!(
                AccessDenied,
                "User: {} is not authorized to perform: {action} on resource: \"{resource}\" {why}",
                self.principal_arn
            )),
        }
    }
}

/// The SSE condition keys of an upload whose envelope has `mode` and `key_id` (see
/// [`Authorizer::with_upload`]).
fn upload_sse_keys(mode: &str, key_id: &str) -> Vec<(&'static str, String)> {
    match mode {
        "AES256" => vec![(SSE_KEYS[0], mode.to_owned())],
        "aws:kms" | "aws:kms:dsse" => vec![
            (SSE_KEYS[0], mode.to_owned()),
            (SSE_KEYS[1], key_id.to_owned()),
        ],
        "SSE-C" => vec![(SSE_KEYS[2], "AES256".to_owned())],
        _ => Vec::new(),
    }
}

/// ListBucket's query parameters and the condition keys that carry them.
const LIST_KEYS: &[(&str, &str)] = &[
    ("prefix", "s3:prefix"),
    ("delimiter", "s3:delimiter"),
    ("max-keys", "s3:max-keys"),
];

/// The bucket an S3 resource ARN names (`None` for `arn:aws:s3:::*`, ListBuckets' resource).
fn bucket_of(resource: &str) -> Option<&str> {
    let rest = resource.strip_prefix("arn:aws:s3:::")?;
    let bucket = rest.split_once('/').map_or(rest, |(b, _)| b);
    (!bucket.is_empty() && bucket != "*").then_some(bucket)
}

/// The ARN of a bucket, or of an object in it.
pub fn resource_arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

/// The IAM action of an S3 operation (as `s3s` names operations, which are AWS's names);
/// `None` for DeleteObjects, which is checked per key. `versioned`: the request names a
/// `versionId`, which S3 authorizes with the `…Version` actions.
fn action_of(operation: &str, versioned: bool) -> Option<String> {
    let action = match operation {
        "DeleteObjects" => return None,
        "ListBuckets" => "ListAllMyBuckets",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "DeleteBucketTagging" => "PutBucketTagging",
        "GetObject" | "HeadObject" | "SelectObjectContent" if versioned => "GetObjectVersion",
        "GetObject" | "HeadObject" | "SelectObjectContent" => "GetObject",
        "DeleteObject" if versioned => "DeleteObjectVersion",
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "PutObject",
        "ListParts" => "ListMultipartUploadParts",
        other => other,
    };
    Some(format!("s3:{action}"))
}

/// Whether the query string names a `versionId`.
fn names_version(uri: &http::Uri) -> bool {
    query_param(uri, "versionId").is_some()
}

/// The value of query parameter `name`, decoded exactly as `s3s` decodes the query it serves the
/// request from (`application/x-www-form-urlencoded`: names and values percent-decoded, `+` a
/// space), so that a condition sees what the operation will use.
fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl S3AccessControl {
    /// For a request writing into the multipart upload its `uploadId` names: the upload's SSE
    /// condition keys, read from its record — only when a policy the request is checked
    /// against tests them, so the root user's requests on a bucket without a policy (and most
    /// others) read nothing. An upload that does not exist (or belongs to another key) gives
    /// no keys; the operation then answers `NoSuchUpload` if the policies let it that far.
    async fn upload_encryption(
        &self,
        authz: Authorizer,
        bucket: &str,
        key: &str,
        uri: &http::Uri,
    ) -> S3Result<Authorizer> {
        let Some(upload_id) = query_param(uri, "uploadId") else {
            return Ok(authz);
        };
        let bucket_policy = self.policies.get(bucket)?;
        if !authz.policies_test(bucket_policy.as_deref(), SSE_KEYS) {
            return Ok(authz);
        }
        let policies = self.policies.clone();
        let name = bucket.to_owned();
        let upload = tokio::task::spawn_blocking(move || policies.upload(&name, &upload_id))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading an upload for the access check");
                api_error!(
                    InternalError,
                    "We encountered an internal error. Please try again."
                )
            })??;
        Ok(match upload {
            Some(upload) if upload.key == key => authz.with_upload(&upload),
            _ => authz,
        })
    }
}

#[async_trait::async_trait]
impl S3Access for S3AccessControl {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        if access_key.is_none() {
            // Without a bucket policy nothing can let a stranger in: refused here, before any
            // body is read (DeleteObjects' keys are otherwise checked after its body).
            let bucket = match cx.s3_path() {
                S3Path::Root => None,
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket),
            };
            if bucket.map_or(Ok(None), |b| self.policies.get(b))?.is_none() {
                return Err(api_error!(AccessDenied, "Access Denied"));
            }
        }
        let conn = cx.extensions_mut().get::<Connection>().cloned();
        let mut authz = match access_key {
            Some(access_key) => Authorizer::for_access_key(
                &self.credentials,
                &self.account_id,
                &access_key,
                conn.as_ref(),
                cx.headers(),
                Some(&self.policies),
            )
            .ok_or_else(|| {
                // The key was removed between the signature check and now.
                api_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })?,
            None => Authorizer::anonymous(
                &self.account_id,
                conn.as_ref(),
                cx.headers(),
                &self.policies,
            ),
        };
        let sigv2 = cx
            .extensions_mut()
            .get::<RequestInfo>()
            .is_some_and(|info| info.sigv2);
        authz = authz.with_signing(Signing::of_request(cx.uri(), cx.headers(), sigv2));
        let operation = cx.s3_op().name();
        if let Some(action) = action_of(operation, names_version(cx.uri())) {
            let resource = match cx.s3_path() {
                S3Path::Root => "arn:aws:s3:::*".to_owned(),
                S3Path::Bucket { bucket } => {
                    if action == "s3:ListBucket" || action == "s3:ListBucketVersions" {
                        for &(param, key) in LIST_KEYS {
                            if let Some(v) = query_param(cx.uri(), param) {
                                authz = authz.with_condition(key, &v);
                            }
                        }
                    }
                    resource_arn(bucket, None)
                }
                S3Path::Object { bucket, key } => {
                    if WRITES_INTO_AN_UPLOAD.contains(&operation) {
                        authz = self.upload_encryption(authz, bucket, key, cx.uri()).await?;
                    }
                    resource_arn(bucket, Some(key))
                }
            };
            if let Some(version) = query_param(cx.uri(), "versionId") {
                authz = authz.with_condition("s3:VersionId", &version);
            }
            authz.check(&action, &resource)?;
        }
        cx.extensions_mut().insert(authz);
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        check_copy_source(req.extensions.get::<Authorizer>(), &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        check_copy_source(req.extensions.get::<Authorizer>(), &req.input.copy_source)
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // Checked per key by the handler; it must find the caller.
        req.extensions
            .get::<Authorizer>()
            .map(|_| ())
            .ok_or_else(|| api_error!(AccessDenied, "Access Denied"))
    }
}

/// A copy reads its source: `s3:GetObject` (or `s3:GetObjectVersion`) on it.
fn check_copy_source(authz: Option<&Authorizer>, source: &CopySource) -> S3Result<()> {
    let authz = authz.ok_or_else(|| api_error!(AccessDenied, "Access Denied"))?;
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            let action = if version_id.is_some() {
                "s3:GetObjectVersion"
            } else {
                "s3:GetObject"
            };
            authz.check(action, &resource_arn(bucket, Some(key)))
        }
        _ => Err(api_error!(
            NotImplemented,
            "Coffer has no access points or outposts: copy from bucket/key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_the_actions_aws_documents() {
        for (op, versioned, action) in [
            ("GetObject", false, Some("s3:GetObject")),
            ("HeadObject", true, Some("s3:GetObjectVersion")),
            ("ListObjectsV2", false, Some("s3:ListBucket")),
            ("HeadBucket", false, Some("s3:ListBucket")),
            ("ListBuckets", false, Some("s3:ListAllMyBuckets")),
            ("UploadPart", false, Some("s3:PutObject")),
            ("CompleteMultipartUpload", false, Some("s3:PutObject")),
            (
                "AbortMultipartUpload",
                false,
                Some("s3:AbortMultipartUpload"),
            ),
            ("ListParts", false, Some("s3:ListMultipartUploadParts")),
            (
                "GetBucketEncryption",
                false,
                Some("s3:GetEncryptionConfiguration"),
            ),
            ("DeleteObject", true, Some("s3:DeleteObjectVersion")),
            ("DeleteObjects", false, None),
            ("CreateBucket", false, Some("s3:CreateBucket")),
        ] {
            assert_eq!(action_of(op, versioned).as_deref(), action, "{op}");
        }
    }

    fn root_authorizer(headers: &http::HeaderMap) -> Authorizer {
        Authorizer {
            access_key: Some("AKIAROOT".into()),
            principal_arn: "arn:aws:iam::111122223333:root".into(),
            account_id: "111122223333".into(),
            identity: Identity::Root,
            policies: None,
            facts: Facts::new(None, None, headers),
            conditions: OnceLock::new(),
        }
    }

    /// Every `s3:` key a bucket policy may test is one this module supplies: a key refused at
    /// PutBucketPolicy is better than one that never matches.
    #[test]
    fn every_s3_key_a_bucket_policy_may_test_is_supplied() {
        let mut headers = http::HeaderMap::new();
        for (_, header) in HEADER_KEYS {
            headers.insert(*header, http::HeaderValue::from_static("x"));
        }
        let mut authz = root_authorizer(&headers).with_signing(Signing::of_request(
            &"/b/k".parse().unwrap(),
            &headers,
            false,
        ));
        for (_, key) in LIST_KEYS {
            authz = authz.with_condition(key, "x");
        }
        authz = authz.with_condition("s3:VersionId", "x");
        let supplied = authz.conditions();
        for key in coffer_policy::SUPPLIED_S3_CONDITION_KEYS {
            let key = format!("s3:{key}");
            assert!(supplied.contains_key(&key), "{key} is never supplied");
        }
    }

    /// Regression (review of issue 9): the signing keys were accepted in policies but never set,
    /// so AWS's "deny SigV2" and "deny presigned URLs" policies were inert.
    #[test]
    fn signing_keys_say_version_place_and_age() {
        let at = |s: &str| crate::sigv2::parse_http_date(s).unwrap();
        let signed = at("20260101T000000Z");
        let ten_minutes_later = signed + std::time::Duration::from_secs(600);
        let keys = |signing: Signing| -> Vec<String> {
            signing
                .condition_keys(ten_minutes_later)
                .into_iter()
                .map(|(_, v)| v)
                .collect()
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-date",
            http::HeaderValue::from_static("20260101T000000Z"),
        );
        let header_v4 = Signing::of_request(&"/b/k".parse().unwrap(), &headers, false);
        assert_eq!(
            keys(header_v4),
            ["AWS4-HMAC-SHA256", "REST-HEADER", "600000"]
        );
        let presigned: http::Uri =
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z&X-Amz-Signature=ab"
                .parse()
                .unwrap();
        let query_v4 = Signing::of_request(&presigned, &http::HeaderMap::new(), false);
        assert_eq!(
            keys(query_v4),
            ["AWS4-HMAC-SHA256", "REST-QUERY-STRING", "600000"]
        );
        let presigned_v2: http::Uri = "/b/k?AWSAccessKeyId=AK&Expires=1&Signature=x"
            .parse()
            .unwrap();
        let query_v2 = Signing::of_request(&presigned_v2, &http::HeaderMap::new(), true);
        assert_eq!(keys(query_v2), ["AWS", "REST-QUERY-STRING", "0"]);
        assert_eq!(
            keys(Signing::of_form(false, Some("20260101T000000Z"))),
            ["AWS4-HMAC-SHA256", "POST", "600000"]
        );
        assert_eq!(keys(Signing::of_form(true, None)), ["AWS", "POST", "0"]);
        // A clock slightly behind the signer's is age 0, not an error.
        assert_eq!(
            header_v4.condition_keys(signed - std::time::Duration::from_secs(5))[2].1,
            "0"
        );
    }

    #[test]
    fn an_uploads_encryption_gives_the_keys_its_creation_headers_gave() {
        let arn = "arn:aws:kms:us-east-1:111122223333:key/k";
        let keys = |mode| upload_sse_keys(mode, arn);
        assert_eq!(keys("AES256"), [(SSE_KEYS[0], "AES256".to_owned())]);
        for kms in ["aws:kms", "aws:kms:dsse"] {
            assert_eq!(
                keys(kms),
                [(SSE_KEYS[0], kms.to_owned()), (SSE_KEYS[1], arn.to_owned())]
            );
        }
        assert_eq!(keys("SSE-C"), [(SSE_KEYS[2], "AES256".to_owned())]);
        // They replace the request's own SSE headers (an UploadPart of an SSE-C upload carries
        // the customer algorithm; none carries the mode).
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-server-side-encryption-customer-algorithm",
            http::HeaderValue::from_static("AES256"),
        );
        let mut authz = root_authorizer(&headers);
        authz.facts.upload_sse = Some(keys("aws:kms"));
        let conditions = authz.conditions();
        assert_eq!(conditions[SSE_KEYS[0]], ["aws:kms"]);
        assert_eq!(conditions[SSE_KEYS[1]], [arn]);
        assert!(!conditions.contains_key(SSE_KEYS[2]));
    }

    #[test]
    fn version_ids_are_noticed_in_the_query() {
        let uri: http::Uri = "/b/k?versionId=abc".parse().unwrap();
        assert!(names_version(&uri));
        assert_eq!(query_param(&uri, "versionId").as_deref(), Some("abc"));
        let uri: http::Uri = "/b/k?versionIdx=1&prefix=a%2Fb".parse().unwrap();
        assert!(!names_version(&uri));
        assert_eq!(query_param(&uri, "prefix").as_deref(), Some("a/b"));
        // Regression: an encoded name or a `+` was read differently here than by s3s, so a
        // condition on s3:prefix could be dodged with `pre%66ix=`.
        let uri: http::Uri = "/b?list-type=2&pre%66ix=secret/&delimiter=a+b"
            .parse()
            .unwrap();
        assert_eq!(query_param(&uri, "prefix").as_deref(), Some("secret/"));
        assert_eq!(query_param(&uri, "delimiter").as_deref(), Some("a b"));
        let uri: http::Uri = "/b/k?version%49d=x".parse().unwrap();
        assert!(names_version(&uri));
    }
}
