//! S3 bucket policies: what S3 accepts in one beyond the shared grammar, and whether one makes
//! its bucket public.
//!
//! [`parse_bucket_policy`] is [`PolicyDocument::parse`] plus S3's own checks at PutBucketPolicy
//! time: at most [`MAX_BUCKET_POLICY_BYTES`]; every action an S3 action (`s3:GetObject`, `s3:Get*`,
//! `s3:*`, `*`); every resource `arn:aws:s3:::<this bucket>` or an object pattern under it
//! (`"*"` alone, another bucket's ARN or a region/account in the ARN is "Policy has invalid
//! resource", as S3 says); every `s3:` condition key one Coffer supplies
//! ([`SUPPLIED_S3_CONDITION_KEYS`]: a key no request carries would leave its statement silently
//! inert). [`is_public`] follows AWS's
//! rule for `GetBucketPolicyStatus`: a policy is public when an `Allow` statement names everyone
//! and no condition pins the request to fixed values of the keys AWS lists.
//!
//! Like the rest of the crate this is pure: no I/O, and a document either passes every check or
//! is refused with a message naming the statement and the entry.

use crate::variables::Text;
use crate::{
    Cidr, Effect, Element, PolicyDocument, PolicyError, Principal, SetPrefix, Test, malformed,
    wildcard_match,
};

/// Largest bucket policy S3 accepts, in bytes (20 KB).
pub const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

/// Parses a bucket policy for `bucket` and checks it as S3 does when it is put.
pub fn parse_bucket_policy(json: &str, bucket: &str) -> Result<PolicyDocument, PolicyError> {
    if json.len() > MAX_BUCKET_POLICY_BYTES {
        return Err(malformed(format!(
            "Policy exceeds the maximum allowed document size: it is {} bytes; at most \
             {MAX_BUCKET_POLICY_BYTES} are allowed",
            json.len()
        )));
    }
    let doc = PolicyDocument::parse(json)?;
    for (i, statement) in doc.statements.iter().enumerate() {
        let name = format!("statement {}", i + 1);
        for action in &statement.action.entries {
            if !is_s3_action(action) {
                return Err(malformed(format!(
                    "Policy has invalid action: {name}: \"{action}\" is not an S3 action \
                     (s3:GetObject, s3:Get*, s3:* or *)"
                )));
            }
        }
        for resource in statement.resource.entries.iter().map(|r| &r.raw) {
            if !in_bucket(resource, bucket) {
                return Err(malformed(format!(
                    "Policy has invalid resource: {name}: \"{resource}\" is not \
                     arn:aws:s3:::{bucket} or an object in it (arn:aws:s3:::{bucket}/<key \
                     pattern>)"
                )));
            }
        }
        for condition in &statement.conditions {
            check_condition_key(&name, &condition.key)?;
        }
    }
    Ok(doc)
}

/// Whether a (lower-cased) action pattern names at least one S3 action.
fn is_s3_action(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some(op) = pattern.strip_prefix("s3:") else {
        return false;
    };
    if op.contains(['*', '?']) {
        return S3_ACTIONS
            .iter()
            .any(|a| wildcard_match(op, &a.to_ascii_lowercase()));
    }
    S3_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(op))
}

/// Whether a resource pattern is the bucket's ARN or a pattern of objects in it: the part
/// before the first `/` must match the bucket name (wildcards allowed), region and account
/// empty.
fn in_bucket(resource: &str, bucket: &str) -> bool {
    let Some(rest) = resource.strip_prefix("arn:aws:s3:::") else {
        return false;
    };
    let bucket_part = rest.split_once('/').map_or(rest, |(b, _)| b);
    !bucket_part.is_empty() && wildcard_match(bucket_part, bucket)
}

/// Refuses an `s3:` condition key Coffer does not supply: one S3 does not define (a typo in a
/// Deny's guard would make it deny everything, or nothing), and one S3 defines but Coffer never
/// sets (object tags, access points, TLS version, …), which would leave its statement silently
/// inert. `aws:` global keys pass: those Coffer does not set are absent as they are on AWS for a
/// caller outside any VPC, organization or session.
fn check_condition_key(name: &str, key: &str) -> Result<(), PolicyError> {
    let Some(s3_key) = key
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("s3:"))
        .map(|_| &key[3..])
    else {
        return Ok(());
    };
    let listed = |keys: &[&str]| keys.iter().any(|k| k.eq_ignore_ascii_case(s3_key));
    if listed(SUPPLIED_S3_CONDITION_KEYS) {
        return Ok(());
    }
    let lower = s3_key.to_ascii_lowercase();
    let defined_by_s3 =
        listed(S3_CONDITION_KEYS) || S3_KEY_FAMILIES.iter().any(|f| lower.starts_with(f));
    let why = if defined_by_s3 {
        "is a condition key of S3 that Coffer does not supply: no request would carry it, so the \
         statement would never apply as written"
    } else {
        "is not a condition key of S3"
    };
    Err(malformed(format!(
        "Policy has an invalid condition key: {name}: \"{key}\" {why}. The s3: keys Coffer \
         supplies are s3:{}",
        SUPPLIED_S3_CONDITION_KEYS.join(", s3:")
    )))
}

/// Condition keys AWS treats as pinning a request to a known party when tested for fixed
/// values (AWS's "The meaning of public").
const PINNING_KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:SourceArn",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:SourceOwner",
    "aws:SourceAccount",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:userid",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:DataAccessPointArn",
    "s3:DataAccessPointAccount",
];

/// Whether the policy makes its bucket public (`GetBucketPolicyStatus`'s `IsPublic`): some
/// `Allow` statement applies to everyone (`"*"`, `{"AWS": "*"}`, or a `NotPrincipal`) without a
/// condition that limits it to fixed values of a pinning key — a positive string or ARN test
/// without wildcards or policy variables, or `IpAddress` with no block wider than an IPv4 /8 or
/// an IPv6 /32 (AWS calls wider blocks public too).
pub fn is_public(doc: &PolicyDocument) -> bool {
    doc.statements.iter().any(|s| {
        s.effect == Effect::Allow
            && s.principal.as_ref().is_some_and(grants_everyone)
            && !s.conditions.iter().any(|c| {
                !c.negated
                    && !c.if_exists
                    && c.set != SetPrefix::ForAllValues
                    && PINNING_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&c.key))
                    && pins(&c.test)
            })
    })
}

fn grants_everyone(principal: &Element<Principal>) -> bool {
    principal.negated || principal.entries.contains(&Principal::Everyone)
}

/// Whether a condition test admits only fixed values.
fn pins(test: &Test) -> bool {
    let fixed = |values: &[Text]| {
        values
            .iter()
            .all(|v| !v.raw.contains(['*', '?']) && !v.raw.contains("${"))
    };
    match test {
        Test::StringEquals(values) | Test::StringEqualsIgnoreCase(values) | Test::Arn(values) => {
            fixed(values)
        }
        Test::StringLike(values) => fixed(values),
        Test::Ip(cidrs) => cidrs.iter().all(narrow),
        Test::Numeric(..) | Test::Date(..) | Test::Bool(_) | Test::Null(_) => false,
    }
}

fn narrow(cidr: &Cidr) -> bool {
    match cidr.addr {
        std::net::IpAddr::V4(_) => cidr.prefix >= 8,
        std::net::IpAddr::V6(_) => cidr.prefix >= 32,
    }
}

/// S3's IAM actions (without the `s3:` prefix), from AWS's Service Authorization Reference.
const S3_ACTIONS: &[&str] = &[
    "AbortMultipartUpload",
    "AssociateAccessGrantsIdentityCenter",
    "BypassGovernanceRetention",
    "CreateAccessGrant",
    "CreateAccessGrantsInstance",
    "CreateAccessGrantsLocation",
    "CreateAccessPoint",
    "CreateAccessPointForObjectLambda",
    "CreateBucket",
    "CreateBucketMetadataTableConfiguration",
    "CreateJob",
    "CreateMultiRegionAccessPoint",
    "CreateStorageLensGroup",
    "DeleteAccessGrant",
    "DeleteAccessGrantsInstance",
    "DeleteAccessGrantsInstanceResourcePolicy",
    "DeleteAccessGrantsLocation",
    "DeleteAccessPoint",
    "DeleteAccessPointForObjectLambda",
    "DeleteAccessPointPolicy",
    "DeleteAccessPointPolicyForObjectLambda",
    "DeleteBucket",
    "DeleteBucketMetadataTableConfiguration",
    "DeleteBucketOwnershipControls",
    "DeleteBucketPolicy",
    "DeleteBucketWebsite",
    "DeleteJobTagging",
    "DeleteMultiRegionAccessPoint",
    "DeleteObject",
    "DeleteObjectTagging",
    "DeleteObjectVersion",
    "DeleteObjectVersionTagging",
    "DeleteStorageLensConfiguration",
    "DeleteStorageLensConfigurationTagging",
    "DeleteStorageLensGroup",
    "DescribeJob",
    "DescribeMultiRegionAccessPointOperation",
    "DissociateAccessGrantsIdentityCenter",
    "GetAccelerateConfiguration",
    "GetAccessGrant",
    "GetAccessGrantsInstance",
    "GetAccessGrantsInstanceForPrefix",
    "GetAccessGrantsInstanceResourcePolicy",
    "GetAccessGrantsLocation",
    "GetAccessPoint",
    "GetAccessPointConfigurationForObjectLambda",
    "GetAccessPointForObjectLambda",
    "GetAccessPointPolicy",
    "GetAccessPointPolicyForObjectLambda",
    "GetAccessPointPolicyStatus",
    "GetAccessPointPolicyStatusForObjectLambda",
    "GetAccountPublicAccessBlock",
    "GetAnalyticsConfiguration",
    "GetBucketAbac",
    "GetBucketAcl",
    "GetBucketCORS",
    "GetBucketLocation",
    "GetBucketLogging",
    "GetBucketMetadataTableConfiguration",
    "GetBucketNotification",
    "GetBucketObjectLockConfiguration",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketPublicAccessBlock",
    "GetBucketRequestPayment",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetBucketWebsite",
    "GetDataAccess",
    "GetEncryptionConfiguration",
    "GetIntelligentTieringConfiguration",
    "GetInventoryConfiguration",
    "GetJobTagging",
    "GetLifecycleConfiguration",
    "GetMetricsConfiguration",
    "GetMultiRegionAccessPoint",
    "GetMultiRegionAccessPointPolicy",
    "GetMultiRegionAccessPointPolicyStatus",
    "GetMultiRegionAccessPointRoutes",
    "GetObject",
    "GetObjectAcl",
    "GetObjectAttributes",
    "GetObjectLegalHold",
    "GetObjectRetention",
    "GetObjectTagging",
    "GetObjectTorrent",
    "GetObjectVersion",
    "GetObjectVersionAcl",
    "GetObjectVersionAttributes",
    "GetObjectVersionForReplication",
    "GetObjectVersionTagging",
    "GetObjectVersionTorrent",
    "GetReplicationConfiguration",
    "GetStorageLensConfiguration",
    "GetStorageLensConfigurationTagging",
    "GetStorageLensDashboard",
    "GetStorageLensGroup",
    "InitiateReplication",
    "ListAccessGrants",
    "ListAccessGrantsInstances",
    "ListAccessGrantsLocations",
    "ListAccessPoints",
    "ListAccessPointsForObjectLambda",
    "ListAllMyBuckets",
    "ListBucket",
    "ListBucketMultipartUploads",
    "ListBucketVersions",
    "ListCallerAccessGrants",
    "ListJobs",
    "ListMultiRegionAccessPoints",
    "ListMultipartUploadParts",
    "ListStorageLensConfigurations",
    "ListStorageLensGroups",
    "ListTagsForResource",
    "ObjectOwnerOverrideToBucketOwner",
    "PauseReplication",
    "PutAccelerateConfiguration",
    "PutAccessGrantsInstanceResourcePolicy",
    "PutAccessPointConfigurationForObjectLambda",
    "PutAccessPointPolicy",
    "PutAccessPointPolicyForObjectLambda",
    "PutAccessPointPublicAccessBlock",
    "PutAccountPublicAccessBlock",
    "PutAnalyticsConfiguration",
    "PutBucketAbac",
    "PutBucketAcl",
    "PutBucketCORS",
    "PutBucketLogging",
    "PutBucketNotification",
    "PutBucketObjectLockConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketPublicAccessBlock",
    "PutBucketRequestPayment",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "PutEncryptionConfiguration",
    "PutIntelligentTieringConfiguration",
    "PutInventoryConfiguration",
    "PutJobTagging",
    "PutLifecycleConfiguration",
    "PutMetricsConfiguration",
    "PutMultiRegionAccessPointPolicy",
    "PutObject",
    "PutObjectAcl",
    "PutObjectLegalHold",
    "PutObjectRetention",
    "PutObjectTagging",
    "PutObjectVersionAcl",
    "PutObjectVersionTagging",
    "PutReplicationConfiguration",
    "PutStorageLensConfiguration",
    "PutStorageLensConfigurationTagging",
    "ReplicateDelete",
    "ReplicateObject",
    "ReplicateTags",
    "RestoreObject",
    "SubmitMultiRegionAccessPointRoutes",
    "TagResource",
    "UntagResource",
    "UpdateAccessGrantsLocation",
    "UpdateBucketMetadataInventoryTableConfiguration",
    "UpdateBucketMetadataJournalTableConfiguration",
    "UpdateJobPriority",
    "UpdateJobStatus",
    "UpdateObjectEncryption",
    "UpdateStorageLensGroup",
];

/// The `s3:` condition keys (without the prefix) Coffer's S3 layer supplies on the requests AWS
/// supplies them on (`coffer-s3`'s `authz.rs`, whose tests hold it to this list). A bucket policy
/// may test no other `s3:` key.
pub const SUPPLIED_S3_CONDITION_KEYS: &[&str] = &[
    "authType",
    "delimiter",
    "if-match",
    "if-none-match",
    "max-keys",
    "prefix",
    "ResourceAccount",
    "signatureAge",
    "signatureversion",
    "VersionId",
    "x-amz-acl",
    "x-amz-content-sha256",
    "x-amz-copy-source",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
    "x-amz-metadata-directive",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
];

/// Families of S3 condition keys, matched by prefix (lower-case, without `s3:`).
const S3_KEY_FAMILIES: &[&str] = &[
    "existingobjecttag/",
    "requestobjecttag/",
    "buckettag/",
    "resourcetag/",
    "x-amz-grant-",
    "object-lock-",
    "x-amz-checksum-",
];

/// Every condition key S3 defines (without the `s3:` prefix; families such as
/// `ExistingObjectTag/<key>` are in [`S3_KEY_FAMILIES`]): told apart from typos in refusals.
const S3_CONDITION_KEYS: &[&str] = &[
    "AccessGrantsInstanceArn",
    "AccessPointNetworkOrigin",
    "DataAccessPointAccount",
    "DataAccessPointArn",
    "ExistingJobOperation",
    "ExistingJobPriority",
    "JobSuspendedCause",
    "LocationConstraint",
    "ObjectCreationOperation",
    "RequestJobOperation",
    "RequestJobPriority",
    "RequestObjectTagKeys",
    "ResourceAccount",
    "TlsVersion",
    "VersionId",
    "authType",
    "delimiter",
    "if-match",
    "if-none-match",
    "max-keys",
    "prefix",
    "signatureAge",
    "signatureversion",
    "x-amz-acl",
    "x-amz-content-sha256",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-object-ownership",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, EvalContext, evaluate};
    use std::collections::HashMap;

    fn policy(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
    }

    fn refusal(json: &str, bucket: &str) -> String {
        match parse_bucket_policy(json, bucket) {
            Err(PolicyError::Malformed(m)) => m,
            Ok(_) => panic!("accepted for {bucket}: {json}"),
        }
    }

    fn allows(doc: &PolicyDocument, action: &str, resource: &str, keys: &[(&str, &str)]) -> bool {
        let conditions: HashMap<String, Vec<String>> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect();
        evaluate(
            doc,
            &EvalContext {
                principal_arn: "",
                account_id: "111122223333",
                action,
                resource,
                account_delegation: false,
                conditions: &conditions,
            },
        ) == Decision::Allow
    }

    #[test]
    fn s3_actions_and_their_wildcards_are_accepted_others_refused() {
        for ok in [
            "s3:GetObject",
            "S3:getobject",
            "s3:Get*",
            "s3:*",
            "*",
            "s3:List*",
            "s3:?utObject",
            "s3:PutBucketCors",
        ] {
            assert!(is_s3_action(&ok.to_ascii_lowercase()), "{ok}");
        }
        for bad in [
            "kms:Decrypt",
            "s3:GetObjekt",
            "s3:Frob*",
            "iam:*",
            "sqs:SendMessage",
        ] {
            assert!(!is_s3_action(&bad.to_ascii_lowercase()), "{bad}");
        }
        let kms = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"arn:aws:s3:::b/*"}"#,
        );
        let msg = refusal(&kms, "b");
        assert!(msg.starts_with("Policy has invalid action"), "{msg}");
        assert!(msg.contains("kms:decrypt"), "{msg}");
    }

    #[test]
    fn resources_must_be_the_bucket_or_objects_in_it() {
        for ok in [
            "arn:aws:s3:::photos",
            "arn:aws:s3:::photos/*",
            "arn:aws:s3:::photos/2024/*.jpg",
            "arn:aws:s3:::pho*/*",
            "arn:aws:s3:::photo?",
        ] {
            assert!(in_bucket(ok, "photos"), "{ok}");
        }
        for bad in [
            "*",
            "arn:aws:s3:::other/*",
            "arn:aws:s3:::other",
            "arn:aws:s3:::photos2/*",
            "arn:aws:s3:us-east-1:111122223333:photos/*",
            "arn:aws:s3:::",
            "arn:aws:s3:::/x",
            "arn:aws:iam::111122223333:user/x",
        ] {
            assert!(!in_bucket(bad, "photos"), "{bad}");
        }
        let other = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}"#,
        );
        let msg = refusal(&other, "photos");
        assert!(msg.starts_with("Policy has invalid resource"), "{msg}");
        assert!(msg.contains("arn:aws:s3:::other/*"), "{msg}");
        // One stray resource is enough.
        let mixed = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":["arn:aws:s3:::photos/*","arn:aws:s3:::other/*"]}"#,
        );
        assert!(refusal(&mixed, "photos").contains("invalid resource"));
        let not_resource =
            policy(r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","NotResource":"*"}"#);
        assert!(refusal(&not_resource, "photos").contains("invalid resource"));
    }

    #[test]
    fn s3_condition_keys_are_checked_and_global_keys_pass() {
        let with_key = |key: &str| {
            policy(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
                    "Condition":{{"Null":{{"{key}":"true"}}}}}}"#
            ))
        };
        for ok in [
            "s3:x-amz-server-side-encryption",
            "S3:X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id",
            "s3:x-amz-server-side-encryption-customer-algorithm",
            "s3:prefix",
            "s3:signatureversion",
            "s3:authType",
            "s3:SignatureAge",
            "aws:SecureTransport",
            "aws:anything",
        ] {
            parse_bucket_policy(&with_key(ok), "b").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // A typo in a Deny guard would otherwise make it deny everything (or nothing).
        let msg = refusal(&with_key("s3:x-amz-server-side-encrytion"), "b");
        assert!(
            msg.starts_with("Policy has an invalid condition key"),
            "{msg}"
        );
        assert!(msg.contains("is not a condition key of S3"), "{msg}");
        assert!(
            msg.contains("s3:signatureversion"),
            "lists what is supported: {msg}"
        );
    }

    /// Regression (review of issue 9): keys S3 defines but Coffer never set (`s3:TlsVersion`,
    /// object tags, …) were accepted, leaving their statements silently inert.
    #[test]
    fn s3_keys_coffer_does_not_supply_are_refused_by_name() {
        for key in [
            "s3:TlsVersion",
            "s3:ExistingObjectTag/team",
            "s3:RequestObjectTagKeys",
            "s3:object-lock-mode",
            "s3:DataAccessPointArn",
            "s3:LocationConstraint",
        ] {
            let json = policy(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*",
                    "Condition":{{"StringEquals":{{"{key}":"x"}}}}}}"#
            ));
            let msg = refusal(&json, "b");
            assert!(msg.contains(&format!("\"{key}\"")), "{msg}");
            assert!(msg.contains("Coffer does not supply"), "{msg}");
        }
    }

    #[test]
    fn documents_over_20_kb_are_refused() {
        let sid = "x".repeat(MAX_BUCKET_POLICY_BYTES);
        let big = policy(&format!(
            r#"{{"Sid":"{sid}","Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#
        ));
        assert!(refusal(&big, "b").contains("at most 20480"));
    }

    #[test]
    fn grammar_errors_come_through() {
        let no_principal =
            policy(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#);
        assert!(refusal(&no_principal, "b").contains("no Principal"));
        let bad_version = r#"{"Version":"2012-10-18","Statement":[]}"#;
        assert!(refusal(bad_version, "b").contains("Version must be"));
        let bad_operator = policy(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*",
                "Condition":{"StringEqualsPlease":{"s3:prefix":"x"}}}"#,
        );
        assert!(refusal(&bad_operator, "b").contains("StringEqualsPlease"));
    }

    #[test]
    fn object_resource_patterns_match_keys_with_wildcards() {
        let doc = parse_bucket_policy(
            &policy(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                    "Resource":["arn:aws:s3:::b/public/*","arn:aws:s3:::b/file-?.txt"]}"#,
            ),
            "b",
        )
        .unwrap();
        assert!(allows(
            &doc,
            "s3:GetObject",
            "arn:aws:s3:::b/public/a/b.txt",
            &[]
        ));
        assert!(allows(
            &doc,
            "s3:GetObject",
            "arn:aws:s3:::b/file-1.txt",
            &[]
        ));
        assert!(!allows(
            &doc,
            "s3:GetObject",
            "arn:aws:s3:::b/file-10.txt",
            &[]
        ));
        assert!(!allows(
            &doc,
            "s3:GetObject",
            "arn:aws:s3:::b/private/x",
            &[]
        ));
        assert!(!allows(&doc, "s3:GetObject", "arn:aws:s3:::b", &[]));
        assert!(!allows(
            &doc,
            "s3:PutObject",
            "arn:aws:s3:::b/public/x",
            &[]
        ));
        // Resources are case-sensitive, actions are not.
        assert!(!allows(
            &doc,
            "s3:GetObject",
            "arn:aws:s3:::b/Public/x",
            &[]
        ));
        assert!(allows(&doc, "S3:GETOBJECT", "arn:aws:s3:::b/public/x", &[]));
    }

    #[test]
    fn s3_get_star_covers_every_get_action() {
        let doc = parse_bucket_policy(
            &policy(r#"{"Effect":"Allow","Principal":"*","Action":"s3:Get*","Resource":"arn:aws:s3:::b/*"}"#),
            "b",
        )
        .unwrap();
        assert!(allows(&doc, "s3:GetObject", "arn:aws:s3:::b/k", &[]));
        assert!(allows(&doc, "s3:GetObjectVersion", "arn:aws:s3:::b/k", &[]));
        assert!(!allows(&doc, "s3:PutObject", "arn:aws:s3:::b/k", &[]));
    }

    #[test]
    fn ip_conditions_cover_v4_and_v6() {
        let doc = parse_bucket_policy(
            &policy(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
                    "Condition":{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}}"#,
            ),
            "b",
        )
        .unwrap();
        let get = |ip: &str| {
            allows(
                &doc,
                "s3:GetObject",
                "arn:aws:s3:::b/k",
                &[("aws:SourceIp", ip)],
            )
        };
        assert!(get("192.0.2.77"));
        assert!(get("2001:db8:1::5"));
        assert!(
            get("::ffff:192.0.2.1"),
            "a v4 client on a dual-stack socket"
        );
        assert!(!get("198.51.100.1"));
        assert!(!get("2001:db9::1"));
        assert!(!allows(&doc, "s3:GetObject", "arn:aws:s3:::b/k", &[]));
    }

    #[test]
    fn public_means_everyone_without_a_pinning_condition() {
        let is =
            |statement: &str| is_public(&parse_bucket_policy(&policy(statement), "b").unwrap());
        let everyone = r#""Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*""#;
        assert!(is(&format!("{{{everyone}}}")));
        assert!(is(
            r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#
        ));
        assert!(is(&format!(
            r#"{{{everyone},"Condition":{{"Bool":{{"aws:SecureTransport":"true"}}}}}}"#
        )));
        assert!(is(&format!(
            r#"{{{everyone},"Condition":{{"StringLike":{{"aws:SourceVpc":"vpc-*"}}}}}}"#
        )));
        assert!(is(&format!(
            r#"{{{everyone},"Condition":{{"IpAddress":{{"aws:SourceIp":"0.0.0.0/0"}}}}}}"#
        )));
        assert!(is(&format!(
            r#"{{{everyone},"Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#
        )));
        assert!(!is(&format!(
            r#"{{{everyone},"Condition":{{"IpAddress":{{"aws:SourceIp":"192.0.2.0/24"}}}}}}"#
        )));
        assert!(!is(&format!(
            r#"{{{everyone},"Condition":{{"StringEquals":{{"aws:SourceVpc":"vpc-91237329"}}}}}}"#
        )));
        assert!(!is(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#
        ));
        // Denies never make a bucket public.
        assert!(!is(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#
        ));
        assert!(is(
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/x"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#
        ));
    }
}
