//! Alias operations: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
//!
//! An alias names exactly one key; the key policy of that key (both keys, for UpdateAlias) must
//! allow the change. Names under `alias/aws/` belong to AWS managed keys and are never created,
//! moved or deleted by a caller.

use std::ops::Bound;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use crate::KmsError;
use crate::ids::{KeyRef, check_alias_name, check_not_reserved};
use crate::model::{Alias, Key};
use crate::router::Op;
use crate::service::{Conditions, Kms, Request};
use crate::wire::{self, epoch};

/// Most aliases naming one key (AWS quota "Aliases per KMS key").
const MAX_ALIASES_PER_KEY: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasInput {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAliasesInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

impl Kms {
    pub(crate) async fn create_alias(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: AliasInput = wire::parse(body)?;
        let name = alias_name(input.alias_name)?;
        let target = input
            .target_key_id
            .ok_or_else(|| KmsError::missing("targetKeyId"))?;
        let writing = self.begin_write().await;
        let key = self.target_key(&target)?;
        req.touch(&key);
        // As AWS: the alias needs the caller's IAM permission, the key its key policy's.
        self.authorize_identity(req, Op::CreateAlias.action(), &self.arns.alias(&name))?;
        self.authorize(req, &key, Op::CreateAlias.action(), Conditions::new())?;
        key.check_not_pending_deletion()?;
        self.check_alias_room(&key)?;
        if self.read().aliases.contains_key(&name) {
            return Err(KmsError::AlreadyExists(format!(
                "An alias with the name {} already exists",
                self.arns.alias(&name)
            )));
        }
        let alias = Alias {
            name: name.clone(),
            target: key.meta.id.clone(),
            created_ms: req.now_ms(),
            updated_ms: req.now_ms(),
        };
        let op = self.records.put_alias(&alias)?;
        self.commit(&writing, vec![op], |state| {
            state.aliases.insert(name, alias);
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn update_alias(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: AliasInput = wire::parse(body)?;
        let name = alias_name(input.alias_name)?;
        let target = input
            .target_key_id
            .ok_or_else(|| KmsError::missing("targetKeyId"))?;
        let writing = self.begin_write().await;
        let (mut alias, old_key) = self.existing_alias(&name)?;
        let new_key = self.target_key(&target)?;
        req.touch(&old_key);
        req.touch(&new_key);
        let action = Op::UpdateAlias.action();
        self.authorize_identity(req, action, &self.arns.alias(&name))?;
        self.authorize(req, &old_key, action, Conditions::new())?;
        self.authorize(req, &new_key, action, Conditions::new())?;
        new_key.check_not_pending_deletion()?;
        if new_key.meta.id != old_key.meta.id {
            self.check_alias_room(&new_key)?;
        }
        alias.target = new_key.meta.id.clone();
        alias.updated_ms = req.now_ms();
        let op = self.records.put_alias(&alias)?;
        self.commit(&writing, vec![op], |state| {
            state.aliases.insert(name, alias);
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn delete_alias(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: AliasInput = wire::parse(body)?;
        let name = alias_name(input.alias_name)?;
        let writing = self.begin_write().await;
        let (_, key) = self.existing_alias(&name)?;
        req.touch(&key);
        self.authorize_identity(req, Op::DeleteAlias.action(), &self.arns.alias(&name))?;
        self.authorize(req, &key, Op::DeleteAlias.action(), Conditions::new())?;
        let op = self.records.delete_alias(&name);
        self.commit(&writing, vec![op], |state| {
            state.aliases.remove(&name);
        })
        .await?;
        Ok(Vec::new())
    }

    /// LimitExceededException if `key` already has [`MAX_ALIASES_PER_KEY`] aliases (AWS's quota).
    fn check_alias_room(&self, key: &Key) -> Result<(), KmsError> {
        let count = self
            .read()
            .aliases
            .values()
            .filter(|alias| alias.target == key.meta.id)
            .count();
        if count >= MAX_ALIASES_PER_KEY {
            return Err(KmsError::LimitExceeded(format!(
                "Key '{}' already has {count} aliases, the most a key can have",
                key.arn
            )));
        }
        Ok(())
    }

    /// Every alias of the account, or of one key, in name order. Like AWS, an IAM-only permission:
    /// every authenticated caller may list.
    pub(crate) fn list_aliases(&self, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        let input: ListAliasesInput = wire::parse(body)?;
        let limit = wire::limit(input.limit, 100, 50)?;
        let after = wire::read_marker(input.marker.as_deref())?;
        let only = match &input.key_id {
            Some(key_id) => Some(self.resolve(key_id, "keyId")?.meta.id.clone()),
            None => None,
        };
        let state = self.read();
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        let (page, next) = wire::page(
            state
                .aliases
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(_, alias)| alias)
                .filter(|alias| only.as_ref().is_none_or(|id| &alias.target == id)),
            limit,
            |alias| alias.name.clone(),
        );
        let aliases: Vec<_> = page
            .iter()
            .map(|alias| {
                json!({
                    "AliasName": alias.name,
                    "AliasArn": self.arns.alias(&alias.name),
                    "TargetKeyId": alias.target,
                    "CreationDate": epoch(alias.created_ms),
                    "LastUpdatedDate": epoch(alias.updated_ms),
                })
            })
            .collect();
        wire::to_body(&wire::with_paging(json!({ "Aliases": aliases }), next))
    }

    /// The key a `TargetKeyId` names: a key id or key ARN, never an alias.
    fn target_key(&self, target: &str) -> Result<Arc<Key>, KmsError> {
        if let KeyRef::Alias(_) = self.arns.parse_key_ref(target, "targetKeyId")? {
            return Err(KmsError::Validation(
                "Aliases must refer to keys, not to other aliases: TargetKeyId must be a key ID or key ARN"
                    .to_owned(),
            ));
        }
        self.resolve(target, "targetKeyId")
    }

    /// An alias that must exist, with the key it points at.
    fn existing_alias(&self, name: &str) -> Result<(Alias, Arc<Key>), KmsError> {
        let state = self.read();
        state
            .aliases
            .get(name)
            .and_then(|alias| Some((alias.clone(), state.keys.get(&alias.target)?.clone())))
            .ok_or_else(|| self.alias_not_found(name))
    }
}

/// A required `AliasName` a caller may manage.
fn alias_name(name: Option<String>) -> Result<String, KmsError> {
    let name = name.ok_or_else(|| KmsError::missing("aliasName"))?;
    check_alias_name(&name, "aliasName")?;
    check_not_reserved(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::{ALICE, BOB, Harness, ROOT};

    #[tokio::test]
    async fn create_update_delete_alias() {
        let h = Harness::new().await;
        let a = h.create_key().await;
        let b = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/app", "TargetKeyId": a}),
        )
        .await;
        assert_eq!(h.describe("alias/app").await["KeyId"], a.as_str());
        h.clock.advance_days(1);
        h.ok(
            ROOT,
            "UpdateAlias",
            json!({"AliasName": "alias/app", "TargetKeyId": h.key_arn(&b)}),
        )
        .await;
        assert_eq!(h.describe("alias/app").await["KeyId"], b.as_str());
        let list = h.ok(ROOT, "ListAliases", json!({})).await;
        let entry = &list["Aliases"][0];
        assert_eq!(entry["AliasName"], "alias/app");
        assert_eq!(
            entry["AliasArn"],
            "arn:aws:kms:us-east-1:111122223333:alias/app"
        );
        assert_eq!(entry["TargetKeyId"], b.as_str());
        assert!(entry["LastUpdatedDate"].as_f64() > entry["CreationDate"].as_f64());
        h.ok(ROOT, "DeleteAlias", json!({"AliasName": "alias/app"}))
            .await;
        assert_eq!(
            h.err(ROOT, "DescribeKey", json!({"KeyId": "alias/app"}))
                .await,
            "NotFoundException"
        );
    }

    #[tokio::test]
    async fn alias_errors() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/taken", "TargetKeyId": id}),
        )
        .await;
        for (op, body, expected) in [
            (
                "CreateAlias",
                json!({"AliasName": "alias/taken", "TargetKeyId": id}),
                "AlreadyExistsException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "alias/aws/s3", "TargetKeyId": id}),
                "InvalidAliasNameException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "no-prefix", "TargetKeyId": id}),
                "ValidationException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "alias/bad name", "TargetKeyId": id}),
                "ValidationException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "alias/x", "TargetKeyId": "alias/taken"}),
                "ValidationException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "alias/x", "TargetKeyId": "00000000-0000-4000-8000-000000000000"}),
                "NotFoundException",
            ),
            (
                "CreateAlias",
                json!({"AliasName": "alias/x"}),
                "ValidationException",
            ),
            (
                "UpdateAlias",
                json!({"AliasName": "alias/none", "TargetKeyId": id}),
                "NotFoundException",
            ),
            (
                "UpdateAlias",
                json!({"AliasName": "alias/aws/s3", "TargetKeyId": id}),
                "InvalidAliasNameException",
            ),
            (
                "DeleteAlias",
                json!({"AliasName": "alias/none"}),
                "NotFoundException",
            ),
            (
                "DeleteAlias",
                json!({"AliasName": "alias/aws/s3"}),
                "InvalidAliasNameException",
            ),
            ("DeleteAlias", json!({}), "ValidationException"),
            ("ListAliases", json!({"Limit": 101}), "ValidationException"),
            (
                "ListAliases",
                json!({"Marker": "%%"}),
                "InvalidMarkerException",
            ),
            (
                "ListAliases",
                json!({"KeyId": "00000000-0000-4000-8000-000000000000"}),
                "NotFoundException",
            ),
        ] {
            assert_eq!(h.err(ROOT, op, body.clone()).await, expected, "{op} {body}");
        }
        assert_eq!(
            h.err(ROOT, "DescribeKey", json!({"KeyId": "alias/aws/s3"}))
                .await,
            "NotFoundException"
        );
    }

    #[tokio::test]
    async fn alias_to_a_key_pending_deletion_is_refused() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        assert_eq!(
            h.err(
                ROOT,
                "CreateAlias",
                json!({"AliasName": "alias/x", "TargetKeyId": id})
            )
            .await,
            "KMSInvalidStateException"
        );
    }

    #[tokio::test]
    async fn list_aliases_filters_by_key_and_pages() {
        let h = Harness::new().await;
        let a = h.create_key().await;
        let b = h.create_key().await;
        for (name, target) in [
            ("alias/a1", &a),
            ("alias/a2", &a),
            ("alias/b1", &b),
            ("alias/a3", &a),
        ] {
            h.ok(
                ROOT,
                "CreateAlias",
                json!({"AliasName": name, "TargetKeyId": target}),
            )
            .await;
        }
        let names = |v: &serde_json::Value| -> Vec<String> {
            v["Aliases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["AliasName"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = h
            .ok(
                ROOT,
                "ListAliases",
                json!({"KeyId": "alias/a1", "Limit": 2}),
            )
            .await;
        assert_eq!(names(&first), ["alias/a1", "alias/a2"]);
        assert_eq!(first["Truncated"], true);
        let second = h
            .ok(
                ROOT,
                "ListAliases",
                json!({"KeyId": a, "Limit": 2, "Marker": first["NextMarker"]}),
            )
            .await;
        assert_eq!(names(&second), ["alias/a3"]);
        assert_eq!(second["Truncated"], false);
        let by_b = h.ok(ROOT, "ListAliases", json!({ "KeyId": b })).await;
        assert_eq!(names(&by_b), ["alias/b1"]);
    }

    /// Issue 14 review: the alias itself is authorized against the caller's identity policies,
    /// as AWS does, so a Deny on `alias/prod-*` holds.
    #[tokio::test]
    async fn alias_changes_need_the_identity_policy_on_the_alias() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"kms:*","Resource":"*"},
            {"Effect":"Deny","Action":"kms:*Alias","Resource":"arn:aws:kms:us-east-1:111122223333:alias/prod-*"}]}"#;
        let alice = h.caller_with_policies(ALICE, &[policy]);
        let create = |name: &str| json!({"AliasName": name, "TargetKeyId": id}).to_string();
        h.kms
            .handle(&alice, "CreateAlias", create("alias/dev-app").as_bytes())
            .await
            .unwrap();
        let err = h
            .kms
            .handle(&alice, "CreateAlias", create("alias/prod-app").as_bytes())
            .await
            .unwrap_err();
        assert!(
            err.message().contains("alias/prod-app") && err.message().contains("explicit deny"),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn alias_changes_need_the_key_policy() {
        let h = Harness::new().await;
        let id = h
            .create_key_with_policy(&h.policy_allowing(ALICE, "kms:*"))
            .await;
        assert_eq!(
            h.err(
                BOB,
                "CreateAlias",
                json!({"AliasName": "alias/x", "TargetKeyId": id})
            )
            .await,
            "AccessDeniedException"
        );
    }

    #[tokio::test]
    async fn aliases_survive_a_restart() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/keep", "TargetKeyId": id}),
        )
        .await;
        let h = h.restart().await;
        assert_eq!(h.describe("alias/keep").await["KeyId"], id.as_str());
    }
}
