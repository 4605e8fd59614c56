//! Key management operations: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
//! UpdateKeyDescription, TagResource, UntagResource, ListResourceTags.
//!
//! Only symmetric `SYMMETRIC_DEFAULT` / `ENCRYPT_DECRYPT` keys with KMS-made material exist here;
//! anything else AWS accepts is refused with the error AWS gives for an unsupported combination.
//! These handlers never touch key material except to generate a key's first version.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use coffer_crypto::Key256;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::model::{
    ENCRYPT_DECRYPT, Key, KeyManager, KeyMeta, KeyState, SYMMETRIC_DEFAULT, VersionMeta,
    VersionOrigin,
};
use crate::service::{Conditions, Kms, Request};
use crate::wire::{self, not_in_enum};
use crate::{KmsError, router::Op};

/// Longest key description (AWS: 0–8192 characters).
const MAX_DESCRIPTION_LEN: usize = 8192;
/// Most tags on one key (AWS quota).
const MAX_TAGS: usize = 50;

/// Every key spec AWS knows; all but `SYMMETRIC_DEFAULT` are valid requests Coffer does not serve.
const KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
];
const KEY_USAGES: &[&str] = &[
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
];
const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];

/// A tag as the API sends it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagInput {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyInput {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    tags: Option<Vec<TagInput>>,
    multi_region: Option<bool>,
    xks_key_id: Option<String>,
}

/// Input of the operations that take only a key (and grant tokens, which Coffer ignores).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyIdInput {
    pub key_id: Option<String>,
}

impl KeyIdInput {
    /// The required `KeyId`.
    pub fn key_id(&self) -> Result<&str, KmsError> {
        self.key_id
            .as_deref()
            .ok_or_else(|| KmsError::missing("keyId"))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateDescriptionInput {
    key_id: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceInput {
    key_id: Option<String>,
    tags: Option<Vec<TagInput>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceInput {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

impl Kms {
    pub(crate) async fn create_key(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: CreateKeyInput = wire::parse(body)?;
        check_key_spec(
            input.key_spec.as_deref(),
            input.customer_master_key_spec.as_deref(),
        )?;
        check_key_usage(input.key_usage.as_deref())?;
        check_origin(input.origin.as_deref())?;
        if input.custom_key_store_id.is_some() || input.xks_key_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Coffer has no custom key stores: omit CustomKeyStoreId and XksKeyId".to_owned(),
            ));
        }
        if input.multi_region == Some(true) {
            return Err(KmsError::UnsupportedOperation(
                "Coffer does not support multi-Region keys".to_owned(),
            ));
        }
        let description = input.description.unwrap_or_default();
        check_description(&description)?;
        let tags = merge_tags(BTreeMap::new(), input.tags.unwrap_or_default())?;
        let policy_text = input
            .policy
            .unwrap_or_else(|| crate::key_policy::default_key_policy(self.arns.account()));
        let doc = self.parse_policy(&policy_text)?;

        let uuid = Uuid::new_v4();
        let id = uuid.hyphenated().to_string();
        let arn = self.arns.key(&id);
        if input.bypass_policy_lockout_safety_check != Some(true) {
            self.check_lockout(req, &doc, &arn)?;
        }
        let key = Arc::new(Key {
            meta: KeyMeta {
                id: id.clone(),
                created_ms: req.now_ms(),
                description,
                state: KeyState::Enabled,
                deletion_ms: None,
                pending_window_days: None,
                rotation: None,
                tags,
                policy: policy_text,
                versions: vec![VersionMeta {
                    number: 1,
                    created_ms: req.now_ms(),
                    origin: VersionOrigin::Created,
                }],
                key_manager: KeyManager::Customer,
            },
            uuid,
            arn,
            policy: Arc::new(doc),
            material: vec![Arc::new(Key256::generate()?)],
        });
        req.touch(&key);
        let writing = self.begin_write().await;
        let op = self.records.put_key(&key)?;
        self.commit(&writing, vec![op], |state| {
            state.keys.insert(id, Arc::clone(&key));
        })
        .await?;
        req.response = Some(json!({ "keyMetadata": {
            "keyId": key.meta.id, "arn": key.arn, "keyState": key.meta.state.as_str(),
            "keySpec": SYMMETRIC_DEFAULT, "keyUsage": ENCRYPT_DECRYPT,
        }}));
        wire::to_body(&json!({ "KeyMetadata": key.metadata_json(&self.arns) }))
    }

    pub(crate) fn describe_key(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        let key_id = input.key_id()?;
        let key = self.resolve(key_id, "keyId")?;
        req.touch(&key);
        self.authorize(
            req,
            &key,
            Op::DescribeKey.action(),
            self.request_alias(key_id),
        )?;
        wire::to_body(&json!({ "KeyMetadata": key.metadata_json(&self.arns) }))
    }

    /// Every key of the account, pending deletion included, in key id order. Like AWS, an IAM-only
    /// permission: every authenticated caller may list.
    pub(crate) fn list_keys(&self, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        let input: ListInput = wire::parse(body)?;
        let limit = wire::limit(input.limit, 1000, 100)?;
        let after = wire::read_marker(input.marker.as_deref())?;
        let state = self.read();
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let (page, next) = wire::page(
            state
                .keys
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(_, key)| key),
            limit,
            |key| key.meta.id.clone(),
        );
        let keys: Vec<_> = page
            .iter()
            .map(|key| json!({ "KeyId": key.meta.id, "KeyArn": key.arn }))
            .collect();
        wire::to_body(&wire::with_paging(json!({ "Keys": keys }), next))
    }

    pub(crate) async fn enable_key(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        self.set_enabled(req, input.key_id()?, Op::EnableKey, KeyState::Enabled)
            .await
    }

    pub(crate) async fn disable_key(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        self.set_enabled(req, input.key_id()?, Op::DisableKey, KeyState::Disabled)
            .await
    }

    async fn set_enabled(
        &self,
        req: &mut Request<'_>,
        key_id: &str,
        op: Op,
        to: KeyState,
    ) -> Result<Vec<u8>, KmsError> {
        self.update_key(
            req,
            key_id,
            op.action(),
            Conditions::new(),
            |old, new, _| {
                old.check_not_pending_deletion()?;
                new.meta.state = to;
                Ok(())
            },
        )
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn update_key_description(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: UpdateDescriptionInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let description = input
            .description
            .ok_or_else(|| KmsError::missing("description"))?;
        check_description(&description)?;
        let action = Op::UpdateKeyDescription.action();
        self.update_key(req, &key_id, action, Conditions::new(), |old, new, _| {
            old.check_not_pending_deletion()?;
            new.meta.description = description;
            Ok(())
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn tag_resource(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: TagResourceInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let tags = input.tags.ok_or_else(|| KmsError::missing("tags"))?;
        let action = Op::TagResource.action();
        let conditions = request_tag_conditions(&tags);
        self.update_key(req, &key_id, action, conditions, |old, new, _| {
            old.check_not_pending_deletion()?;
            new.meta.tags = merge_tags(old.meta.tags.clone(), tags)?;
            Ok(())
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn untag_resource(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: UntagResourceInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let tag_keys = input.tag_keys.ok_or_else(|| KmsError::missing("tagKeys"))?;
        let action = Op::UntagResource.action();
        let conditions = Conditions::from([("aws:TagKeys".to_owned(), tag_keys.clone())]);
        self.update_key(req, &key_id, action, conditions, |old, new, _| {
            old.check_not_pending_deletion()?;
            for tag_key in &tag_keys {
                new.meta.tags.remove(tag_key);
            }
            Ok(())
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) fn list_resource_tags(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: ListInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let limit = wire::limit(input.limit, 50, 50)?;
        let after = wire::read_marker(input.marker.as_deref())?;
        let key = self.resolve(&key_id, "keyId")?;
        req.touch(&key);
        self.authorize(req, &key, Op::ListResourceTags.action(), Conditions::new())?;
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let (page, next) = wire::page(
            key.meta.tags.range::<str, _>((start, Bound::Unbounded)),
            limit,
            |(tag_key, _)| (*tag_key).clone(),
        );
        let tags: Vec<_> = page
            .iter()
            .map(|(k, v)| json!({ "TagKey": k, "TagValue": v }))
            .collect();
        wire::to_body(&wire::with_paging(json!({ "Tags": tags }), next))
    }
}

/// `KeySpec` (or the deprecated `CustomerMasterKeySpec`) must be `SYMMETRIC_DEFAULT`.
fn check_key_spec(key_spec: Option<&str>, cmk_spec: Option<&str>) -> Result<(), KmsError> {
    let (field, spec) = match (key_spec, cmk_spec) {
        (Some(_), Some(_)) => {
            return Err(KmsError::Validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated: use KeySpec"
                    .to_owned(),
            ));
        }
        (Some(spec), None) => ("keySpec", spec),
        (None, Some(spec)) => ("customerMasterKeySpec", spec),
        (None, None) => return Ok(()),
    };
    match spec {
        SYMMETRIC_DEFAULT => Ok(()),
        known if KEY_SPECS.contains(&known) => Err(KmsError::UnsupportedOperation(format!(
            "KeySpec {known} is not supported by Coffer: only SYMMETRIC_DEFAULT keys"
        ))),
        other => Err(not_in_enum(field, other, KEY_SPECS)),
    }
}

fn check_key_usage(usage: Option<&str>) -> Result<(), KmsError> {
    match usage {
        None | Some(ENCRYPT_DECRYPT) => Ok(()),
        Some(known) if KEY_USAGES.contains(&known) => Err(KmsError::Validation(format!(
            "KeyUsage {known} is not compatible with KeySpec SYMMETRIC_DEFAULT"
        ))),
        Some(other) => Err(not_in_enum("keyUsage", other, KEY_USAGES)),
    }
}

fn check_origin(origin: Option<&str>) -> Result<(), KmsError> {
    match origin {
        None | Some("AWS_KMS") => Ok(()),
        Some(known) if ORIGINS.contains(&known) => Err(KmsError::UnsupportedOperation(format!(
            "Origin {known} is not supported by Coffer: key material is always generated by the key service (AWS_KMS)"
        ))),
        Some(other) => Err(not_in_enum("origin", other, ORIGINS)),
    }
}

fn check_description(description: &str) -> Result<(), KmsError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(KmsError::validation(
            "description",
            "…",
            "Member must have length less than or equal to 8192",
        ));
    }
    Ok(())
}

/// `aws:RequestTag/<key>` for each tag a request sets and `aws:TagKeys` listing their keys (tags
/// missing a key or value are left to [`merge_tags`] to refuse).
fn request_tag_conditions(tags: &[TagInput]) -> Conditions {
    let mut conditions = Conditions::new();
    let mut keys = Vec::new();
    for tag in tags {
        if let Some(key) = &tag.tag_key {
            keys.push(key.clone());
            if let Some(value) = &tag.tag_value {
                conditions.insert(format!("aws:RequestTag/{key}"), vec![value.clone()]);
            }
        }
    }
    conditions.insert("aws:TagKeys".to_owned(), keys);
    conditions
}

/// Adds `new` tags to `tags` (a tag with an existing key replaces its value) after checking each.
pub(crate) fn merge_tags(
    mut tags: BTreeMap<String, String>,
    new: Vec<TagInput>,
) -> Result<BTreeMap<String, String>, KmsError> {
    for tag in new {
        let key = tag
            .tag_key
            .ok_or_else(|| KmsError::missing("tags.member.tagKey"))?;
        let value = tag
            .tag_value
            .ok_or_else(|| KmsError::missing("tags.member.tagValue"))?;
        let key_len = key.chars().count();
        if key_len == 0 || key_len > 128 {
            return Err(KmsError::Tag(format!(
                "Tag key '{key}' must be 1 to 128 characters long"
            )));
        }
        if value.chars().count() > 256 {
            return Err(KmsError::Tag(format!(
                "The value of tag '{key}' must be at most 256 characters long"
            )));
        }
        if key.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag key '{key}' is reserved: tag keys beginning with aws: belong to AWS"
            )));
        }
        tags.insert(key, value);
    }
    if tags.len() > MAX_TAGS {
        return Err(KmsError::Tag(format!(
            "A key can have at most {MAX_TAGS} tags; this request would give it {}",
            tags.len()
        )));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::testing::{ALICE, BOB, Harness, ROOT};

    #[tokio::test]
    async fn create_key_returns_aws_key_metadata() {
        let h = Harness::new().await;
        let out = h
            .ok(
                ROOT,
                "CreateKey",
                json!({"Description": "app key", "Tags": [{"TagKey": "team", "TagValue": "a"}]}),
            )
            .await;
        let m = &out["KeyMetadata"];
        let id = m["KeyId"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(
            m["Arn"],
            format!("arn:aws:kms:us-east-1:111122223333:key/{id}")
        );
        assert_eq!(m["AWSAccountId"], "111122223333");
        assert_eq!(m["Enabled"], true);
        assert_eq!(m["KeyState"], "Enabled");
        assert_eq!(m["KeyUsage"], "ENCRYPT_DECRYPT");
        assert_eq!(m["KeySpec"], "SYMMETRIC_DEFAULT");
        assert_eq!(m["CustomerMasterKeySpec"], "SYMMETRIC_DEFAULT");
        assert_eq!(m["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
        assert_eq!(m["Origin"], "AWS_KMS");
        assert_eq!(m["KeyManager"], "CUSTOMER");
        assert_eq!(m["Description"], "app key");
        assert_eq!(m["MultiRegion"], false);
        assert!(m["CreationDate"].as_f64().unwrap() > 1.6e9);
        assert!(m.get("DeletionDate").is_none());
    }

    #[tokio::test]
    async fn create_key_refuses_specs_coffer_does_not_have() {
        let h = Harness::new().await;
        for (body, expected) in [
            (
                json!({"KeySpec": "RSA_2048"}),
                "UnsupportedOperationException",
            ),
            (
                json!({"KeySpec": "HMAC_256"}),
                "UnsupportedOperationException",
            ),
            (json!({"KeySpec": "AES_256"}), "ValidationException"),
            (
                json!({"KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT"}),
                "ValidationException",
            ),
            (json!({"KeyUsage": "SIGN_VERIFY"}), "ValidationException"),
            (json!({"KeyUsage": "WRONG"}), "ValidationException"),
            (
                json!({"Origin": "EXTERNAL"}),
                "UnsupportedOperationException",
            ),
            (json!({"Origin": "NOPE"}), "ValidationException"),
            (
                json!({"MultiRegion": true}),
                "UnsupportedOperationException",
            ),
            (
                json!({"CustomKeyStoreId": "cks-1"}),
                "UnsupportedOperationException",
            ),
            (
                json!({"Description": "x".repeat(8193)}),
                "ValidationException",
            ),
            (
                json!({"Tags": [{"TagKey": "aws:x", "TagValue": "v"}]}),
                "TagException",
            ),
            (
                json!({"Policy": "{not json"}),
                "MalformedPolicyDocumentException",
            ),
            (json!({"KeySpec": 5}), "SerializationException"),
        ] {
            assert_eq!(
                h.err(ROOT, "CreateKey", body.clone()).await,
                expected,
                "{body}"
            );
        }
        assert_eq!(h.list_key_ids().await.len(), 0, "no key was created");
        h.ok(
            ROOT,
            "CreateKey",
            json!({"KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "Origin": "AWS_KMS"}),
        )
        .await;
    }

    #[tokio::test]
    async fn create_key_with_a_policy_that_locks_the_caller_out_is_refused_unless_bypassed() {
        let h = Harness::new().await;
        let policy = h.policy_allowing(BOB, "kms:*");
        let body = json!({ "Policy": policy });
        assert_eq!(
            h.err(ALICE, "CreateKey", body).await,
            "MalformedPolicyDocumentException"
        );
        h.ok(
            ALICE,
            "CreateKey",
            json!({ "Policy": policy, "BypassPolicyLockoutSafetyCheck": true }),
        )
        .await;
    }

    #[tokio::test]
    async fn describe_key_by_every_kind_of_name() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/app", "TargetKeyId": id}),
        )
        .await;
        for name in [
            id.clone(),
            h.key_arn(&id),
            "alias/app".into(),
            "arn:aws:kms:us-east-1:111122223333:alias/app".into(),
        ] {
            let out = h.ok(ROOT, "DescribeKey", json!({ "KeyId": name })).await;
            assert_eq!(out["KeyMetadata"]["KeyId"], id.as_str(), "{name}");
        }
    }

    #[tokio::test]
    async fn describe_key_errors() {
        let h = Harness::new().await;
        for (body, expected) in [
            (json!({}), "ValidationException"),
            (
                json!({"KeyId": "00000000-0000-4000-8000-000000000000"}),
                "NotFoundException",
            ),
            (json!({"KeyId": "not-a-key"}), "NotFoundException"),
            (json!({"KeyId": "alias/none"}), "NotFoundException"),
            (
                json!({"KeyId": "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-000000000000"}),
                "NotFoundException",
            ),
            (
                json!({"KeyId": "arn:aws:s3:::bucket"}),
                "InvalidArnException",
            ),
        ] {
            assert_eq!(
                h.err(ROOT, "DescribeKey", body.clone()).await,
                expected,
                "{body}"
            );
        }
        assert_eq!(
            h.raw(ROOT, "DescribeKey", b"{")
                .await
                .unwrap_err()
                .error_type(),
            "SerializationException"
        );
    }

    #[tokio::test]
    async fn list_keys_pages_through_every_key() {
        let h = Harness::new().await;
        let mut created = Vec::new();
        for _ in 0..5 {
            created.push(h.create_key().await);
        }
        created.sort();
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut body = json!({"Limit": 2});
            if let Some(m) = &marker {
                body["Marker"] = m.clone().into();
            }
            let out = h.ok(ROOT, "ListKeys", body).await;
            let keys = out["Keys"].as_array().unwrap();
            assert!(keys.len() <= 2);
            for k in keys {
                assert_eq!(
                    k["KeyArn"],
                    h.key_arn(k["KeyId"].as_str().unwrap()).as_str()
                );
                seen.push(k["KeyId"].as_str().unwrap().to_owned());
            }
            if out["Truncated"] == true {
                marker = Some(out["NextMarker"].as_str().unwrap().to_owned());
            } else {
                assert!(out.get("NextMarker").is_none());
                break;
            }
        }
        assert_eq!(seen, created);
        assert_eq!(
            h.err(ROOT, "ListKeys", json!({"Limit": 0})).await,
            "ValidationException"
        );
        assert_eq!(
            h.err(ROOT, "ListKeys", json!({"Limit": 1001})).await,
            "ValidationException"
        );
        assert_eq!(
            h.err(ROOT, "ListKeys", json!({"Marker": "!!"})).await,
            "InvalidMarkerException"
        );
    }

    #[tokio::test]
    async fn disable_and_enable_change_state_and_crypto() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(ROOT, "DisableKey", json!({ "KeyId": id })).await;
        let m = h.describe(&id).await;
        assert_eq!(m["KeyState"], "Disabled");
        assert_eq!(m["Enabled"], false);
        assert_eq!(
            h.err(ROOT, "Encrypt", json!({"KeyId": id, "Plaintext": "aGk="}))
                .await,
            "DisabledException"
        );
        h.ok(ROOT, "EnableKey", json!({ "KeyId": id })).await;
        assert_eq!(h.describe(&id).await["KeyState"], "Enabled");
        h.ok(ROOT, "Encrypt", json!({"KeyId": id, "Plaintext": "aGk="}))
            .await;
    }

    #[tokio::test]
    async fn enable_and_disable_refuse_a_key_pending_deletion() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        for op in ["EnableKey", "DisableKey"] {
            assert_eq!(
                h.err(ROOT, op, json!({ "KeyId": id })).await,
                "KMSInvalidStateException"
            );
        }
    }

    #[tokio::test]
    async fn update_key_description_changes_it() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "UpdateKeyDescription",
            json!({"KeyId": id, "Description": "new"}),
        )
        .await;
        assert_eq!(h.describe(&id).await["Description"], "new");
        assert_eq!(
            h.err(ROOT, "UpdateKeyDescription", json!({ "KeyId": id }))
                .await,
            "ValidationException"
        );
    }

    #[tokio::test]
    async fn tags_are_added_replaced_listed_and_removed() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "TagResource",
            json!({"KeyId": id, "Tags": [
                {"TagKey": "b", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}, {"TagKey": "c", "TagValue": ""}
            ]}),
        )
        .await;
        h.ok(
            ROOT,
            "TagResource",
            json!({"KeyId": id, "Tags": [{"TagKey": "b", "TagValue": "3"}]}),
        )
        .await;
        let out = h
            .ok(ROOT, "ListResourceTags", json!({"KeyId": id, "Limit": 2}))
            .await;
        assert_eq!(
            out["Tags"],
            json!([{"TagKey": "a", "TagValue": "2"}, {"TagKey": "b", "TagValue": "3"}])
        );
        assert_eq!(out["Truncated"], true);
        let rest = h
            .ok(
                ROOT,
                "ListResourceTags",
                json!({"KeyId": id, "Marker": out["NextMarker"]}),
            )
            .await;
        assert_eq!(rest["Tags"], json!([{"TagKey": "c", "TagValue": ""}]));
        assert_eq!(rest["Truncated"], false);
        h.ok(
            ROOT,
            "UntagResource",
            json!({"KeyId": id, "TagKeys": ["a", "c", "missing"]}),
        )
        .await;
        let out = h.ok(ROOT, "ListResourceTags", json!({ "KeyId": id })).await;
        assert_eq!(out["Tags"], json!([{"TagKey": "b", "TagValue": "3"}]));
    }

    #[tokio::test]
    async fn tag_errors() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let too_many: Vec<Value> = (0..51)
            .map(|i| json!({"TagKey": format!("k{i}"), "TagValue": "v"}))
            .collect();
        for (body, expected) in [
            (json!({"KeyId": id, "Tags": too_many}), "TagException"),
            (
                json!({"KeyId": id, "Tags": [{"TagKey": "", "TagValue": "v"}]}),
                "TagException",
            ),
            (
                json!({"KeyId": id, "Tags": [{"TagKey": "k", "TagValue": "v".repeat(257)}]}),
                "TagException",
            ),
            (
                json!({"KeyId": id, "Tags": [{"TagKey": "k"}]}),
                "ValidationException",
            ),
            (json!({ "KeyId": id }), "ValidationException"),
        ] {
            assert_eq!(
                h.err(ROOT, "TagResource", body.clone()).await,
                expected,
                "{body}"
            );
        }
        assert_eq!(
            h.err(ROOT, "UntagResource", json!({ "KeyId": id })).await,
            "ValidationException"
        );
        assert_eq!(
            h.err(ROOT, "ListResourceTags", json!({"KeyId": id, "Limit": 51}))
                .await,
            "ValidationException"
        );
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        assert_eq!(
            h.err(
                ROOT,
                "TagResource",
                json!({"KeyId": id, "Tags": [{"TagKey": "k", "TagValue": "v"}]})
            )
            .await,
            "KMSInvalidStateException"
        );
    }

    #[tokio::test]
    async fn state_survives_a_restart() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "TagResource",
            json!({"KeyId": id, "Tags": [{"TagKey": "t", "TagValue": "v"}]}),
        )
        .await;
        h.ok(ROOT, "DisableKey", json!({ "KeyId": id })).await;
        let h = h.restart().await;
        let m = h.describe(&id).await;
        assert_eq!(m["KeyState"], "Disabled");
        let tags = h.ok(ROOT, "ListResourceTags", json!({ "KeyId": id })).await;
        assert_eq!(tags["Tags"][0]["TagValue"], "v");
    }
}
