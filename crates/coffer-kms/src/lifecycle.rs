//! Key lifecycle: ScheduleKeyDeletion, CancelKeyDeletion, and the clock-driven tasks (automatic
//! rotation, deletion when the waiting period ends).
//!
//! Deletion is crypto-shredding: the key record (the only stored copy of the wrapped material) and
//! every alias of the key leave the store in one transaction, and the in-memory material is dropped
//! (zeroized when the last in-flight request lets go of it). Ciphertexts under the key can never be
//! decrypted again, also after a restart. What this does not reach: copies of the sealed record in
//! backups of the data dir, or in database pages not yet reused — they still open under the root key
//! (see `docs/kms-format.md`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::KmsError;
use crate::keys::KeyIdInput;
use crate::model::{DAY_MS, Key, KeyState, VersionOrigin, unix_ms};
use crate::rotation::add_version;
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, Writing, condition};
use crate::trail;
use crate::wire::{self, epoch, in_range};

/// Default and allowed waiting periods before deletion (AWS: 7–30 days, default 30).
const DEFAULT_WINDOW_DAYS: i64 = 30;
const MIN_WINDOW_DAYS: i64 = 7;
const MAX_WINDOW_DAYS: i64 = 30;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleInput {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

/// What the clock says must happen to a key.
enum Due {
    Delete,
    Rotate,
}

impl Kms {
    pub(crate) async fn schedule_key_deletion(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: ScheduleInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let days = in_range(
            "pendingWindowInDays",
            input.pending_window_in_days.unwrap_or(DEFAULT_WINDOW_DAYS),
            MIN_WINDOW_DAYS,
            MAX_WINDOW_DAYS,
        )?;
        let conditions = Conditions::from([condition(
            "kms:ScheduleKeyDeletionPendingWindowInDays",
            days,
        )]);
        let action = Op::ScheduleKeyDeletion.action();
        let key = self
            .update_key(req, &key_id, action, conditions, |old, new, req| {
                old.check_not_pending_deletion()?;
                new.meta.state = KeyState::PendingDeletion;
                new.meta.deletion_ms = Some(req.now_ms() + i64::from(days) * DAY_MS);
                new.meta.pending_window_days = Some(days);
                Ok(())
            })
            .await?;
        let deletion = epoch(key.meta.deletion_ms.unwrap_or_default());
        req.response = Some(json!({
            "keyId": key.arn, "deletionDate": deletion, "keyState": "PendingDeletion", "pendingWindowInDays": days,
        }));
        wire::to_body(&json!({
            "KeyId": key.arn,
            "DeletionDate": deletion,
            "KeyState": KeyState::PendingDeletion.as_str(),
            "PendingWindowInDays": days,
        }))
    }

    pub(crate) async fn cancel_key_deletion(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        let action = Op::CancelKeyDeletion.action();
        let key = self
            .update_key(
                req,
                input.key_id()?,
                action,
                Conditions::new(),
                |old, new, _| {
                    if old.meta.state != KeyState::PendingDeletion {
                        return Err(KmsError::InvalidState(format!(
                            "{} is not pending deletion.",
                            old.arn
                        )));
                    }
                    new.meta.state = KeyState::Disabled;
                    new.meta.deletion_ms = None;
                    new.meta.pending_window_days = None;
                    Ok(())
                },
            )
            .await?;
        req.response = Some(json!({ "keyId": key.arn }));
        wire::to_body(&json!({ "KeyId": key.arn }))
    }

    /// See [`Kms::run_due_tasks`]. Tries every due task; returns the first failure after trying
    /// the rest.
    pub(crate) async fn run_due(&self) -> Result<(), KmsError> {
        let now = self.clock.now();
        let now_ms = unix_ms(now);
        let writing = self.begin_write().await;
        let due: Vec<(Arc<Key>, Due)> = self
            .read()
            .keys
            .values()
            .filter_map(|key| {
                let m = &key.meta;
                if m.state == KeyState::PendingDeletion
                    && m.deletion_ms.is_some_and(|d| d <= now_ms)
                {
                    Some((Arc::clone(key), Due::Delete))
                } else if m.state == KeyState::Enabled
                    && m.rotation.is_some_and(|r| r.next_ms() <= now_ms)
                {
                    Some((Arc::clone(key), Due::Rotate))
                } else {
                    None
                }
            })
            .collect();
        let mut first_error = None;
        for (key, due) in due {
            let result = match due {
                Due::Delete => self.destroy(&writing, key, now).await,
                Due::Rotate => self.rotate_automatically(&writing, &key, now).await,
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes a key whose waiting period has passed: record, aliases, material.
    async fn destroy(
        &self,
        writing: &Writing<'_>,
        key: Arc<Key>,
        now: OffsetDateTime,
    ) -> Result<(), KmsError> {
        let id = key.meta.id.clone();
        let arn = key.arn.clone();
        let aliases: Vec<String> = self
            .read()
            .aliases
            .values()
            .filter(|alias| alias.target == id)
            .map(|alias| alias.name.clone())
            .collect();
        let mut ops = vec![self.records.delete_key(&id)];
        ops.extend(aliases.iter().map(|name| self.records.delete_alias(name)));
        self.commit(writing, ops, |state| {
            state.keys.remove(&id);
            for name in &aliases {
                state.aliases.remove(name);
            }
        })
        .await?;
        // Our snapshot is the last reference unless a request is using the key right now; either
        // way the material is zeroized when the last one drops.
        drop(key);
        tracing::info!(key = %arn, "KMS key deleted after its waiting period; its material is destroyed");
        let event = trail::service_event(
            &self.arns,
            "DeleteKey",
            now,
            &arn,
            json!({ "keyId": id, "deletedAliases": aliases, "keyMaterialDestroyed": true }),
        );
        self.append_service_event(event).await
    }

    /// Adds an automatically rotated version and restarts the period.
    async fn rotate_automatically(
        &self,
        writing: &Writing<'_>,
        key: &Key,
        now: OffsetDateTime,
    ) -> Result<(), KmsError> {
        let now_ms = unix_ms(now);
        let mut new = key.clone();
        add_version(&mut new, VersionOrigin::Automatic, now_ms)?;
        if let Some(schedule) = new.meta.rotation.as_mut() {
            schedule.anchor_ms = now_ms;
        }
        let new = Arc::new(new);
        let op = self.records.put_key(&new)?;
        self.commit(writing, vec![op], |state| {
            state.keys.insert(new.meta.id.clone(), Arc::clone(&new));
        })
        .await?;
        let event = trail::service_event(
            &self.arns,
            "RotateKey",
            now,
            &new.arn,
            json!({ "keyId": new.meta.id, "rotationType": "AUTOMATIC", "keyVersion": new.material.len() }),
        );
        self.append_service_event(event).await
    }

    async fn append_service_event(&self, event: serde_json::Value) -> Result<(), KmsError> {
        self.audit
            .append(event)
            .await
            .map_err(|e| KmsError::internal(format_args!("audit log append failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use crate::testing::{Harness, ROOT};

    #[tokio::test]
    async fn schedule_key_deletion_reports_the_date_and_state() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let out = h
            .ok(
                ROOT,
                "ScheduleKeyDeletion",
                json!({"KeyId": id, "PendingWindowInDays": 7}),
            )
            .await;
        assert_eq!(out["KeyId"], h.key_arn(&id).as_str());
        assert_eq!(out["KeyState"], "PendingDeletion");
        assert_eq!(out["PendingWindowInDays"], 7);
        let expected = h.clock.now_secs() + 7.0 * 86400.0;
        assert!((out["DeletionDate"].as_f64().unwrap() - expected).abs() < 5.0);
        let m = h.describe(&id).await;
        assert_eq!(m["KeyState"], "PendingDeletion");
        assert_eq!(m["Enabled"], false);
        assert_eq!(m["PendingDeletionWindowInDays"], 7);
        assert_eq!(m["DeletionDate"], out["DeletionDate"]);
        assert_eq!(
            h.err(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
                .await,
            "KMSInvalidStateException"
        );
    }

    #[tokio::test]
    async fn pending_window_defaults_to_30_and_is_validated() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for days in [6, 31] {
            assert_eq!(
                h.err(
                    ROOT,
                    "ScheduleKeyDeletion",
                    json!({"KeyId": id, "PendingWindowInDays": days})
                )
                .await,
                "ValidationException"
            );
        }
        let out = h
            .ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["PendingWindowInDays"], 30);
    }

    #[tokio::test]
    async fn cancel_key_deletion_leaves_the_key_disabled() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        assert_eq!(
            h.err(ROOT, "CancelKeyDeletion", json!({ "KeyId": id }))
                .await,
            "KMSInvalidStateException"
        );
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        let out = h
            .ok(ROOT, "CancelKeyDeletion", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["KeyId"], h.key_arn(&id).as_str());
        let m = h.describe(&id).await;
        assert_eq!(m["KeyState"], "Disabled");
        assert!(m.get("DeletionDate").is_none());
        h.clock.advance_days(31);
        h.kms.run_due_tasks().await.unwrap();
        h.describe(&id).await;
    }

    #[tokio::test]
    async fn deletion_after_the_window_destroys_the_key_for_good() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/doomed", "TargetKeyId": id}),
        )
        .await;
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": STANDARD.encode(b"shred me")}),
            )
            .await;
        h.ok(
            ROOT,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
        h.clock.advance_days(6);
        h.kms.run_due_tasks().await.unwrap();
        assert_eq!(h.describe(&id).await["KeyState"], "PendingDeletion");
        h.clock.advance_days(2);
        h.kms.run_due_tasks().await.unwrap();

        let decrypt = json!({"CiphertextBlob": enc["CiphertextBlob"]});
        assert_eq!(
            h.err(ROOT, "Decrypt", decrypt.clone()).await,
            "NotFoundException"
        );
        assert_eq!(
            h.err(ROOT, "DescribeKey", json!({ "KeyId": id })).await,
            "NotFoundException"
        );
        assert_eq!(
            h.err(ROOT, "DescribeKey", json!({"KeyId": "alias/doomed"}))
                .await,
            "NotFoundException"
        );
        assert!(h.list_key_ids().await.is_empty());
        assert!(h.stored_records("key/").is_empty());
        assert!(h.stored_records("alias/").is_empty());
        let deletes = h.audit_events("DeleteKey");
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0]["eventType"], "AwsServiceEvent");
        assert_eq!(deletes[0]["resources"][0]["ARN"], h.key_arn(&id).as_str());

        let h = h.restart().await;
        assert_eq!(h.err(ROOT, "Decrypt", decrypt).await, "NotFoundException");
    }

    #[tokio::test]
    async fn automatic_rotation_runs_when_the_period_passes() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let old = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": STANDARD.encode(b"old")}),
            )
            .await;
        h.ok(
            ROOT,
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 90}),
        )
        .await;
        h.clock.advance_days(89);
        h.kms.run_due_tasks().await.unwrap();
        assert_eq!(
            h.ok(ROOT, "ListKeyRotations", json!({ "KeyId": id })).await["Rotations"],
            json!([])
        );
        h.clock.advance_days(2);
        h.kms.run_due_tasks().await.unwrap();
        h.kms.run_due_tasks().await.unwrap();
        let rotations = h.ok(ROOT, "ListKeyRotations", json!({ "KeyId": id })).await;
        assert_eq!(rotations["Rotations"].as_array().unwrap().len(), 1);
        assert_eq!(rotations["Rotations"][0]["RotationType"], "AUTOMATIC");
        let status = h
            .ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        let expected = h.clock.now_secs() + 90.0 * 86400.0;
        assert!((status["NextRotationDate"].as_f64().unwrap() - expected).abs() < 5.0);
        let new = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": STANDARD.encode(b"new")}),
            )
            .await;
        assert_eq!(
            STANDARD
                .decode(new["CiphertextBlob"].as_str().unwrap())
                .unwrap()[20],
            2
        );
        h.ok(
            ROOT,
            "Decrypt",
            json!({"CiphertextBlob": old["CiphertextBlob"]}),
        )
        .await;
        let events = h.audit_events("RotateKey");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["eventType"], "AwsServiceEvent");
    }

    #[tokio::test]
    async fn disabled_keys_are_not_rotated_until_enabled() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 90}),
        )
        .await;
        h.ok(ROOT, "DisableKey", json!({ "KeyId": id })).await;
        h.clock.advance_days(100);
        h.kms.run_due_tasks().await.unwrap();
        assert_eq!(rotation_count(&h, &id).await, 0);
        h.ok(ROOT, "EnableKey", json!({ "KeyId": id })).await;
        h.kms.run_due_tasks().await.unwrap();
        assert_eq!(rotation_count(&h, &id).await, 1);
    }

    async fn rotation_count(h: &Harness, id: &str) -> usize {
        h.ok(ROOT, "ListKeyRotations", json!({ "KeyId": id })).await["Rotations"]
            .as_array()
            .unwrap()
            .len()
    }
}
