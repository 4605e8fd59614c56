//! Key policy operations: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the checks every new
//! policy passes (grammar, size, lockout safety).
//!
//! A key has exactly one policy, named `default`. The policy language and its evaluation live in
//! `policy.rs`, shared with bucket policies; this file only decides when to call it.

use serde::Deserialize;
use serde_json::json;

use crate::KmsError;
use crate::policy::{Decision, MAX_POLICY_BYTES, PolicyDocument};
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, condition};
use crate::wire;

/// The only policy name a key has.
const POLICY_NAME: &str = "default";

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
        let decision = self.evaluate(
            req,
            doc,
            key_arn,
            Op::PutKeyPolicy.action(),
            Conditions::new(),
        );
        if decision == Decision::Allow {
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

    use crate::testing::{ALICE, BOB, Harness, ROOT};

    #[tokio::test]
    async fn new_keys_get_the_default_policy() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let out = h.ok(ROOT, "GetKeyPolicy", json!({ "KeyId": id })).await;
        assert_eq!(out["PolicyName"], "default");
        assert_eq!(
            out["Policy"].as_str().unwrap(),
            crate::policy::default_key_policy("111122223333")
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
