//! Rotation operations: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations.
//!
//! Rotation adds a version of key material and makes it the one that encrypts; every earlier
//! version stays, so old ciphertexts still decrypt (the blob names its version). On-demand
//! rotations do not move the automatic schedule. The scheduled rotations themselves run in
//! `lifecycle.rs` (`run_due_tasks`).

use std::sync::Arc;

use coffer_crypto::Key256;
use serde::Deserialize;
use serde_json::json;

use crate::KmsError;
use crate::keys::KeyIdInput;
use crate::model::{Key, RotationSchedule, VersionMeta, VersionOrigin};
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, condition};
use crate::wire::{self, epoch, in_range};

/// Default automatic rotation period (AWS: 365 days).
const DEFAULT_PERIOD_DAYS: i64 = 365;
/// Shortest and longest automatic rotation period (AWS).
const MIN_PERIOD_DAYS: i64 = 90;
const MAX_PERIOD_DAYS: i64 = 2560;
/// On-demand rotations a key may have in its life (AWS quota).
const MAX_ON_DEMAND_ROTATIONS: usize = 25;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnableRotationInput {
    key_id: Option<String>,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRotationsInput {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

impl Kms {
    pub(crate) async fn enable_key_rotation(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: EnableRotationInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let period = in_range(
            "rotationPeriodInDays",
            input.rotation_period_in_days.unwrap_or(DEFAULT_PERIOD_DAYS),
            MIN_PERIOD_DAYS,
            MAX_PERIOD_DAYS,
        )?;
        let conditions = Conditions::from([condition("kms:RotationPeriodInDays", period)]);
        let action = Op::EnableKeyRotation.action();
        self.update_key(req, &key_id, action, conditions, |old, new, req| {
            old.check_usable()?;
            let anchor_ms = old
                .meta
                .rotation
                .map_or(req.now_ms(), |schedule| schedule.anchor_ms);
            new.meta.rotation = Some(RotationSchedule {
                period_days: period,
                anchor_ms,
            });
            Ok(())
        })
        .await?;
        Ok(Vec::new())
    }

    pub(crate) async fn disable_key_rotation(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        let action = Op::DisableKeyRotation.action();
        self.update_key(
            req,
            input.key_id()?,
            action,
            Conditions::new(),
            |old, new, _| {
                old.check_usable()?;
                new.meta.rotation = None;
                Ok(())
            },
        )
        .await?;
        Ok(Vec::new())
    }

    pub(crate) fn get_key_rotation_status(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        let key = self.resolve(input.key_id()?, "keyId")?;
        req.touch(&key);
        self.authorize(
            req,
            &key,
            Op::GetKeyRotationStatus.action(),
            Conditions::new(),
        )?;
        let mut out = json!({
            "KeyId": key.arn,
            "KeyRotationEnabled": key.meta.rotation.is_some(),
        });
        if let Some(schedule) = key.meta.rotation {
            out["RotationPeriodInDays"] = schedule.period_days.into();
            out["NextRotationDate"] = epoch(schedule.next_ms()).into();
        }
        wire::to_body(&out)
    }

    pub(crate) async fn rotate_key_on_demand(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: KeyIdInput = wire::parse(body)?;
        let action = Op::RotateKeyOnDemand.action();
        let key = self
            .update_key(req, input.key_id()?, action, Conditions::new(), |old, new, req| {
                old.check_usable()?;
                let on_demand = old
                    .meta
                    .versions
                    .iter()
                    .filter(|v| v.origin == VersionOrigin::OnDemand)
                    .count();
                if on_demand >= MAX_ON_DEMAND_ROTATIONS {
                    return Err(KmsError::LimitExceeded(format!(
                        "{} has had the maximum of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
                        old.arn
                    )));
                }
                add_version(new, VersionOrigin::OnDemand, req.now_ms())
            })
            .await?;
        req.response = Some(json!({ "keyId": key.arn }));
        wire::to_body(&json!({ "KeyId": key.arn }))
    }

    pub(crate) fn list_key_rotations(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: ListRotationsInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let limit = wire::limit(input.limit, 1000, 100)?;
        let after = wire::read_marker(input.marker.as_deref())?
            .map(|m| m.parse::<u32>())
            .transpose()
            .map_err(|_| {
                KmsError::InvalidMarker("The marker is not one this service issued".into())
            })?
            .unwrap_or(0);
        let key = self.resolve(&key_id, "keyId")?;
        req.touch(&key);
        self.authorize(req, &key, Op::ListKeyRotations.action(), Conditions::new())?;
        let (page, next) = wire::page(
            key.meta
                .versions
                .iter()
                .filter(|v| v.origin != VersionOrigin::Created && v.number > after),
            limit,
            |v| v.number.to_string(),
        );
        let rotations: Vec<_> = page
            .iter()
            .map(|v| {
                json!({
                    "KeyId": key.arn,
                    "RotationDate": epoch(v.created_ms),
                    "RotationType": match v.origin {
                        VersionOrigin::OnDemand => "ON_DEMAND",
                        VersionOrigin::Automatic | VersionOrigin::Created => "AUTOMATIC",
                    },
                })
            })
            .collect();
        wire::to_body(&wire::with_paging(json!({ "Rotations": rotations }), next))
    }
}

/// Adds a fresh version of key material to `key` and makes it current.
pub(crate) fn add_version(
    key: &mut Key,
    origin: VersionOrigin,
    now_ms: i64,
) -> Result<(), KmsError> {
    let number = key.material.len() as u32 + 1;
    key.material.push(Arc::new(Key256::generate()?));
    key.meta.versions.push(VersionMeta {
        number,
        created_ms: now_ms,
        origin,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use crate::testing::{Harness, ROOT};

    #[tokio::test]
    async fn rotation_status_follows_enable_and_disable() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let out = h
            .ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["KeyRotationEnabled"], false);
        assert!(out.get("NextRotationDate").is_none());
        h.ok(
            ROOT,
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 90}),
        )
        .await;
        let out = h
            .ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["KeyRotationEnabled"], true);
        assert_eq!(out["RotationPeriodInDays"], 90);
        assert_eq!(out["KeyId"], h.key_arn(&id).as_str());
        let next = out["NextRotationDate"].as_f64().unwrap();
        let expected = h.clock.now_secs() + 90.0 * 86400.0;
        assert!((next - expected).abs() < 5.0);
        h.ok(ROOT, "EnableKeyRotation", json!({ "KeyId": id }))
            .await;
        let out = h
            .ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["RotationPeriodInDays"], 365);
        h.ok(ROOT, "DisableKeyRotation", json!({ "KeyId": id }))
            .await;
        let out = h
            .ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["KeyRotationEnabled"], false);
    }

    #[tokio::test]
    async fn rotation_period_is_validated() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for days in [0, 89, 2561] {
            assert_eq!(
                h.err(
                    ROOT,
                    "EnableKeyRotation",
                    json!({"KeyId": id, "RotationPeriodInDays": days})
                )
                .await,
                "ValidationException"
            );
        }
        h.ok(
            ROOT,
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 2560}),
        )
        .await;
    }

    #[tokio::test]
    async fn rotation_operations_respect_key_state() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(ROOT, "DisableKey", json!({ "KeyId": id })).await;
        for op in [
            "EnableKeyRotation",
            "DisableKeyRotation",
            "RotateKeyOnDemand",
        ] {
            assert_eq!(
                h.err(ROOT, op, json!({ "KeyId": id })).await,
                "DisabledException",
                "{op}"
            );
        }
        h.ok(ROOT, "GetKeyRotationStatus", json!({ "KeyId": id }))
            .await;
        h.ok(ROOT, "EnableKey", json!({ "KeyId": id })).await;
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        for op in [
            "EnableKeyRotation",
            "DisableKeyRotation",
            "RotateKeyOnDemand",
        ] {
            assert_eq!(
                h.err(ROOT, op, json!({ "KeyId": id })).await,
                "KMSInvalidStateException",
                "{op}"
            );
        }
    }

    #[tokio::test]
    async fn on_demand_rotation_keeps_old_ciphertexts_decryptable() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let encrypt = |text: &'static [u8]| {
            let h = &h;
            let id = id.clone();
            async move {
                h.ok(
                    ROOT,
                    "Encrypt",
                    json!({"KeyId": id, "Plaintext": STANDARD.encode(text)}),
                )
                .await["CiphertextBlob"]
                    .clone()
            }
        };
        let v1 = encrypt(b"one").await;
        let out = h
            .ok(ROOT, "RotateKeyOnDemand", json!({ "KeyId": id }))
            .await;
        assert_eq!(out["KeyId"], h.key_arn(&id).as_str());
        let v2 = encrypt(b"two").await;
        h.ok(ROOT, "RotateKeyOnDemand", json!({ "KeyId": id }))
            .await;
        let v3 = encrypt(b"three").await;
        let version =
            |blob: &serde_json::Value| STANDARD.decode(blob.as_str().unwrap()).unwrap()[20];
        assert_eq!((version(&v1), version(&v2), version(&v3)), (1, 2, 3));
        let h = h.restart().await;
        for (blob, text) in [(v1, &b"one"[..]), (v2, b"two"), (v3, b"three")] {
            let out = h
                .ok(ROOT, "Decrypt", json!({ "CiphertextBlob": blob }))
                .await;
            assert_eq!(
                STANDARD.decode(out["Plaintext"].as_str().unwrap()).unwrap(),
                text
            );
        }
        let rotations = h.ok(ROOT, "ListKeyRotations", json!({ "KeyId": id })).await;
        let list = rotations["Rotations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|r| r["RotationType"] == "ON_DEMAND"));
        assert!(list.iter().all(|r| r["KeyId"] == h.key_arn(&id).as_str()));
        assert_eq!(rotations["Truncated"], false);
    }

    #[tokio::test]
    async fn list_key_rotations_pages() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for _ in 0..3 {
            h.ok(ROOT, "RotateKeyOnDemand", json!({ "KeyId": id }))
                .await;
        }
        let first = h
            .ok(ROOT, "ListKeyRotations", json!({"KeyId": id, "Limit": 2}))
            .await;
        assert_eq!(first["Rotations"].as_array().unwrap().len(), 2);
        assert_eq!(first["Truncated"], true);
        let rest = h
            .ok(
                ROOT,
                "ListKeyRotations",
                json!({"KeyId": id, "Marker": first["NextMarker"]}),
            )
            .await;
        assert_eq!(rest["Rotations"].as_array().unwrap().len(), 1);
        assert_eq!(
            h.err(
                ROOT,
                "ListKeyRotations",
                json!({"KeyId": id, "Marker": "eA"})
            )
            .await,
            "InvalidMarkerException"
        );
    }

    #[tokio::test]
    async fn on_demand_rotations_are_limited_to_25() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for _ in 0..25 {
            h.ok(ROOT, "RotateKeyOnDemand", json!({ "KeyId": id }))
                .await;
        }
        assert_eq!(
            h.err(ROOT, "RotateKeyOnDemand", json!({ "KeyId": id }))
                .await,
            "LimitExceededException"
        );
    }
}
