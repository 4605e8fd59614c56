//! Key policy operations: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the checks every new
//! policy passes (grammar, size, lockout safety).
//!
//! A key has exactly one policy, named `default`. The policy language and its evaluation live in
//! `policy.rs`, shared with bucket policies; this file only decides when to call it.

use serde::Deserialize;
use serde_json::json;

use crate::KmsError;
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, condition};
use crate::wire;
use coffer_policy::{MAX_POLICY_BYTES, PolicyDocument, Verdict};
use serde_json::Value;

/// The only policy name a key has.
const POLICY_NAME: &str = "default";

/// AWS's default key policy, byte for byte as AWS returns it: the account's root principal may do
/// everything with the key, which in Coffer means every access key of the account may.
pub fn default_key_policy(account_id: &str) -> String {
    let principal = Value::String(format!("arn:aws:iam::{account_id}:root"));
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : {principal}
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
    )
}

/// The key policy AWS gives the AWS managed key of a service, byte for byte as GetKeyPolicy
/// returns it for `aws/s3` (policy id `auto-s3-2`): every principal of the account may use the key
/// for cryptography, but only through the service (`kms:ViaService`, e.g.
/// `s3.us-east-1.amazonaws.com`) and only from this account (`kms:CallerAccount`); the account may
/// read the key's metadata directly. Nothing else, for anyone: no policy change, no disabling, no
/// deletion — which is what keeps an AWS managed key the service's.
pub fn aws_managed_key_policy(
    service_id: &str,
    service_name: &str,
    via_service: &str,
    partition: &str,
    account_id: &str,
) -> String {
    let quote = |s: &str| Value::String(s.to_owned());
    let id = quote(&format!("auto-{service_id}-2"));
    let sid = quote(&format!(
        "Allow access through {service_name} for all principals in the account that are authorized to use {service_name}"
    ));
    let account = quote(account_id);
    let via = quote(via_service);
    let root = quote(&format!("arn:{partition}:iam::{account_id}:root"));
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : {id},
  "Statement" : [ {{
    "Sid" : {sid},
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : {account},
        "kms:ViaService" : {via}
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : {root}
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  }} ]
}}"#
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetPolicyInput {
    key_id: Option<String>,
    policy_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutPolicyInput {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPoliciesInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

impl Kms {
    pub(crate) fn get_key_policy(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: GetPolicyInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        check_policy_name(input.policy_name.as_deref())?;
        let key = self.resolve(&key_id, "keyId")?;
        req.touch(&key);
        self.authorize(req, &key, Op::GetKeyPolicy.action(), Conditions::new())?;
        wire::to_body(&json!({ "Policy": key.meta.policy, "PolicyName": POLICY_NAME }))
    }

    pub(crate) async fn put_key_policy(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: PutPolicyInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        check_policy_name(input.policy_name.as_deref())?;
        let text = input.policy.ok_or_else(|| KmsError::missing("policy"))?;
        let doc = self.parse_policy(&text)?;
        let bypass = input.bypass_policy_lockout_safety_check == Some(true);
        let conditions =
            Conditions::from([condition("kms:BypassPolicyLockoutSafetyCheck", bypass)]);
        let action = Op::PutKeyPolicy.action();
        self.update_key(req, &key_id, action, conditions, |old, new, req| {
            if !bypass {
                self.check_lockout(req, &doc, &old.arn)?;
            }
            new.meta.policy = text;
            new.policy = std::sync::Arc::new(doc);
            Ok(())
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) fn list_key_policies(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: ListPoliciesInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        wire::limit(input.limit, 1000, 100)?;
        let after = wire::read_marker(input.marker.as_deref())?;
        let key = self.resolve(&key_id, "keyId")?;
        req.touch(&key);
        self.authorize(req, &key, Op::ListKeyPolicies.action(), Conditions::new())?;
        let names: &[&str] = if after.is_some() { &[] } else { &[POLICY_NAME] };
        wire::to_body(&json!({ "PolicyNames": names, "Truncated": false }))
    }

    /// A policy document a key may have: within the size quota and in the policy grammar.
    pub(crate) fn parse_policy(&self, text: &str) -> Result<PolicyDocument, KmsError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(KmsError::LimitExceeded(format!(
                "The key policy is {} bytes; the quota is {MAX_POLICY_BYTES} bytes",
                text.len()
            )));
        }
        PolicyDocument::parse(text).map_err(|e| KmsError::MalformedPolicyDocument(e.to_string()))
    }

    /// The lockout safety check: the caller must still be allowed to change the policy afterwards.
    pub(crate) fn check_lockout(
        &self,
        req: &Request<'_>,
        doc: &PolicyDocument,
        key_arn: &str,
    ) -> Result<(), KmsError> {
        let verdict = self.verdict(
            req,
            Some(doc),
            key_arn,
            Op::PutKeyPolicy.action(),
            Conditions::new(),
        );
        if verdict == Verdict::Allow {
            return Ok(());
        }
        Err(KmsError::MalformedPolicyDocument(format!(
            "The new key policy will not allow you ({}) to update the key policy in the future. Set BypassPolicyLockoutSafetyCheck to true only if you mean to lock yourself out.",
            req.caller.principal_arn
        )))
    }
}

/// `PolicyName`, if given, must be `default`.
fn check_policy_name(name: Option<&str>) -> Result<(), KmsError> {
    match name {
        None | Some(POLICY_NAME) => Ok(()),
        Some(other) => Err(KmsError::NotFound(format!(
            "No such policy exists: '{other}'. A key has one policy, named 'default'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{aws_managed_key_policy, default_key_policy};
    use crate::testing::{ALICE, BOB, Harness, ROOT};

    #[test]
    fn default_policy_is_byte_for_byte_what_aws_returns() {
        let expected = "{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \
            \"Statement\" : [ {\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \
            \"Effect\" : \"Allow\",\n    \"Principal\" : {\n      \
            \"AWS\" : \"arn:aws:iam::111122223333:root\"\n    },\n    \
            \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  } ]\n}";
        assert_eq!(default_key_policy("111122223333"), expected);
    }

    /// The text of `aws/s3`'s policy in us-east-1, as GetKeyPolicy returns it on AWS (account id
    /// replaced).
    #[test]
    fn aws_managed_policy_is_byte_for_byte_what_aws_returns_for_aws_s3() {
        let expected = r#"{
  "Version" : "2012-10-17",
  "Id" : "auto-s3-2",
  "Statement" : [ {
    "Sid" : "Allow access through S3 for all principals in the account that are authorized to use S3",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "*"
    },
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {
      "StringEquals" : {
        "kms:CallerAccount" : "111122223333",
        "kms:ViaService" : "s3.us-east-1.amazonaws.com"
      }
    }
  }, {
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  } ]
}"#;
        let text = aws_managed_key_policy(
            "s3",
            "S3",
            "s3.us-east-1.amazonaws.com",
            "aws",
            "111122223333",
        );
        assert_eq!(text, expected);
        coffer_policy::PolicyDocument::parse(&text).unwrap();
    }

    #[tokio::test]
    async fn new_keys_get_the_default_policy() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let out = h.ok(ROOT, "GetKeyPolicy", json!({ "KeyId": id })).await;
        assert_eq!(out["PolicyName"], "default");
        assert_eq!(
            out["Policy"].as_str().unwrap(),
            default_key_policy("111122223333")
        );
        let names = h.ok(ROOT, "ListKeyPolicies", json!({ "KeyId": id })).await;
        assert_eq!(names["PolicyNames"], json!(["default"]));
        assert_eq!(names["Truncated"], false);
    }

    #[tokio::test]
    async fn put_key_policy_replaces_and_enforces_it() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let policy = h.policy_allowing(ALICE, "kms:*");
        h.ok(
            ALICE,
            "PutKeyPolicy",
            json!({"KeyId": id, "Policy": policy}),
        )
        .await;
        let out = h
            .ok(
                ALICE,
                "GetKeyPolicy",
                json!({"KeyId": id, "PolicyName": "default"}),
            )
            .await;
        assert_eq!(out["Policy"], policy.as_str());
        h.ok(ALICE, "DescribeKey", json!({ "KeyId": id })).await;
        for who in [BOB, ROOT] {
            assert_eq!(
                h.err(who, "DescribeKey", json!({ "KeyId": id })).await,
                "AccessDeniedException"
            );
        }
        let h = h.restart().await;
        assert_eq!(
            h.err(BOB, "DescribeKey", json!({ "KeyId": id })).await,
            "AccessDeniedException"
        );
    }

    /// The default key policy names the account, which delegates to the user's identity
    /// policies: a user gets what they allow, and nothing without one.
    #[tokio::test]
    async fn a_user_gets_what_its_identity_policies_allow_under_the_default_policy() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let arn = h.key_arn(&id);
        let blob = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": "aGVsbG8="}),
            )
            .await["CiphertextBlob"]
            .clone();
        let decrypt_only = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": arn}]})
        .to_string();
        let reader = h.caller_with_policies(ALICE, &[&decrypt_only]);
        let call = |caller, op: &'static str, body: serde_json::Value| {
            let kms = &h.kms;
            async move { kms.handle(&caller, op, body.to_string().as_bytes()).await }
        };
        call(reader.clone(), "Decrypt", json!({"CiphertextBlob": blob}))
            .await
            .unwrap();
        let err = call(
            reader.clone(),
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "aGk="}),
        )
        .await
        .unwrap_err();
        assert!(
            err.message()
                .contains("no identity-based policy allows the kms:Encrypt action"),
            "{}",
            err.message()
        );
        let err = call(reader, "ListKeys", json!({})).await.unwrap_err();
        assert_eq!(err.error_type(), "AccessDeniedException");
        let nobody = h.caller_with_policies(BOB, &[]);
        let err = call(nobody.clone(), "Decrypt", json!({"CiphertextBlob": blob}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "AccessDeniedException");
        // A key policy that names the user grants without any identity policy.
        let named = h
            .create_key_with_policy(&h.policy_allowing(BOB, "kms:Encrypt"))
            .await;
        call(
            nobody,
            "Encrypt",
            json!({"KeyId": named, "Plaintext": "aGk="}),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn put_key_policy_errors() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let huge = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{}","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}]}}"#,
            "x".repeat(33 * 1024)
        );
        for (body, expected) in [
            (json!({ "KeyId": id }), "ValidationException"),
            (
                json!({"KeyId": id, "Policy": "{"}),
                "MalformedPolicyDocumentException",
            ),
            (
                json!({"KeyId": id, "Policy": h.policy_allowing(BOB, "kms:*")}),
                "MalformedPolicyDocumentException",
            ),
            (
                json!({"KeyId": id, "Policy": h.policy_allowing(ROOT, "kms:*"), "PolicyName": "other"}),
                "NotFoundException",
            ),
            (
                json!({"KeyId": id, "Policy": huge}),
                "LimitExceededException",
            ),
        ] {
            assert_eq!(h.err(ROOT, "PutKeyPolicy", body.clone()).await, expected);
        }
        assert_eq!(
            h.err(
                ROOT,
                "GetKeyPolicy",
                json!({"KeyId": id, "PolicyName": "x"})
            )
            .await,
            "NotFoundException"
        );
        h.ok(
            ROOT,
            "PutKeyPolicy",
            json!({"KeyId": id, "Policy": h.policy_allowing(BOB, "kms:*"), "BypassPolicyLockoutSafetyCheck": true}),
        )
        .await;
        assert_eq!(
            h.err(ROOT, "GetKeyPolicy", json!({ "KeyId": id })).await,
            "AccessDeniedException"
        );
    }
}
