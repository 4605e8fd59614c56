//! The key service as AWS services use it on their callers' behalf — S3's SSE-KMS, DSSE-KMS and
//! Bucket Keys: typed GenerateDataKey and Decrypt, key resolution, and the AWS managed key
//! `alias/aws/<service>` that is created on the first use without a key id.
//!
//! Each data-key call is the API operation of the same name, made with the service's *caller's*
//! identity (forward access session, in AWS's words): the same quota, key resolution, key policy
//! and identity policies, key state and cryptography as `crypto.rs`, plus the condition keys
//! `kms:ViaService` (`<service>.<region>.amazonaws.com`) and `aws:ViaAWSService`, and exactly one
//! audit event, durable before the call returns, marked `invokedBy` the service.
//!
//! This module must never authorize as Coffer itself or skip the caller's policies, return a data
//! key without its audit event, or let a caller change an AWS managed key: those keys are the
//! service's, guarded by the policy AWS gives them (`key_policy::aws_managed_key_policy`), which
//! allows no management operation at all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_crypto::Key256;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::crypto::{context_conditions, invalid_ciphertext, seal};
use crate::ids::KeyRef;
use crate::key_policy::aws_managed_key_policy;
use crate::model::{
    Alias, ENCRYPT_DECRYPT, Key, KeyManager, KeyMeta, KeyState, RotationSchedule,
    SYMMETRIC_DEFAULT, VersionMeta, VersionOrigin,
};
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, condition};
use crate::trail::{self, ServiceCall};
use crate::{Caller, KmsError};

/// How often AWS rotates the material of an AWS managed key (every year since May 2022).
const AWS_MANAGED_ROTATION_DAYS: u32 = 365;

/// An AWS service that calls the key service for its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    /// Amazon S3: SSE-KMS, DSSE-KMS, Bucket Keys.
    S3,
}

impl AwsService {
    /// The service's id in names: `s3` (as in `alias/aws/s3` and `s3.amazonaws.com`).
    pub fn id(self) -> &'static str {
        match self {
            AwsService::S3 => "s3",
        }
    }

    /// The name AWS writes in prose and policy statement ids: `S3`.
    fn display_name(self) -> &'static str {
        match self {
            AwsService::S3 => "S3",
        }
    }

    /// The service principal, CloudTrail's `invokedBy`: `s3.amazonaws.com`.
    pub fn principal(self) -> &'static str {
        match self {
            AwsService::S3 => "s3.amazonaws.com",
        }
    }

    /// The alias of the service's AWS managed key: `alias/aws/s3`.
    pub fn managed_alias(self) -> &'static str {
        match self {
            AwsService::S3 => "alias/aws/s3",
        }
    }

    /// The description AWS gives the service's AWS managed key.
    fn managed_key_description(self) -> &'static str {
        match self {
            AwsService::S3 => {
                "Default key that protects my S3 objects when no other key is defined"
            }
        }
    }

    /// `kms:ViaService` for calls from this service in `region`: `s3.us-east-1.amazonaws.com`.
    pub fn via_service(self, region: &str) -> String {
        format!("{}.{region}.amazonaws.com", self.id())
    }
}

/// A request a service makes to the key service on behalf of its own caller.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRequest<'a> {
    /// The service's caller, as the service authenticated it: whose policies decide, who the
    /// audit event names.
    pub caller: &'a Caller,
    /// The service making the call.
    pub service: AwsService,
}

/// A fresh data key from [`Kms::generate_data_key_for`].
pub struct DataKey {
    /// The 256-bit data key, to encrypt with and then drop.
    pub plaintext: Key256,
    /// The ciphertext blob of the data key (KMS format v1), to store beside the data; only
    /// [`Kms::decrypt_for`] with the same encryption context opens it.
    pub ciphertext: Vec<u8>,
    /// The full ARN of the KMS key that encrypted it.
    pub key_arn: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &self.plaintext)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

/// How many calls the service API has made since the key service started (each audited, success
/// or failure; resolution without a data key is not a KMS call and is not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCalls {
    /// [`Kms::generate_data_key_for`] calls.
    pub generate_data_key: u64,
    /// [`Kms::decrypt_for`] calls.
    pub decrypt: u64,
}

/// The counters behind [`Kms::service_calls`].
#[derive(Debug, Default)]
pub(crate) struct ServiceCounters {
    generate_data_key: AtomicU64,
    decrypt: AtomicU64,
}

impl Kms {
    /// GenerateDataKey (`AES_256`) for a service's caller, under `key_id` (key id, key ARN, alias
    /// name or alias ARN) or, when `key_id` is `None` or names `alias/aws/<service>`, under the
    /// service's AWS managed key, created on first use.
    ///
    /// Errors, in the order the operation checks: `ThrottlingException` (quota);
    /// `ValidationException` / `InvalidArnException` (a malformed key id); `NotFoundException`
    /// (no such key or alias, or the key was deleted); `AccessDeniedException` (the key policy,
    /// with the caller's identity policies, does not allow the caller `kms:GenerateDataKey` with
    /// these condition keys); `DisabledException` (key disabled); `KMSInvalidStateException` (key
    /// pending deletion); `KMSInternalException` (store, randomness or audit log failed). One
    /// audit event either way, durable before this returns.
    pub async fn generate_data_key_for(
        &self,
        req: &ServiceRequest<'_>,
        key_id: Option<&str>,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        self.service_counters
            .generate_data_key
            .fetch_add(1, Ordering::Relaxed);
        let mut call = self.request(req);
        let result = self.generate_for(req, &mut call, key_id, context).await;
        let key = call
            .resources
            .first()
            .map(String::as_str)
            .or(key_id)
            .unwrap_or(req.service.managed_alias());
        let parameters = json!({
            "keyId": key,
            "keySpec": "AES_256",
            "encryptionContext": context,
        });
        self.audit_service_call(
            req,
            &call,
            Op::GenerateDataKey,
            parameters,
            result.as_ref().err(),
        )
        .await?;
        result
    }

    /// Decrypt of a data key's ciphertext blob that the service stored: returns the data key and
    /// the ARN of the KMS key that encrypted it. `context` must be the one it was generated with.
    ///
    /// Errors: `ThrottlingException`; `InvalidCiphertextException` (not a blob this service made,
    /// damaged, another encryption context, or not a 256-bit data key — one answer for all);
    /// `NotFoundException` (the key no longer exists: crypto-shredded); `AccessDeniedException`
    /// (no `kms:Decrypt` for the caller); `DisabledException`; `KMSInvalidStateException`;
    /// `KMSInternalException`. One audit event either way.
    pub async fn decrypt_for(
        &self,
        req: &ServiceRequest<'_>,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key256, String), KmsError> {
        self.service_counters
            .decrypt
            .fetch_add(1, Ordering::Relaxed);
        let mut call = self.request(req);
        let result = self.decrypt_blob_for(req, &mut call, ciphertext, context);
        let parameters = json!({
            "encryptionAlgorithm": SYMMETRIC_DEFAULT,
            "encryptionContext": context,
        });
        self.audit_service_call(req, &call, Op::Decrypt, parameters, result.as_ref().err())
            .await?;
        result
    }

    /// The full ARN of the key `key_id` names, or of the service's AWS managed key when `key_id` is
    /// `None` or names `alias/aws/<service>` (creating it on first use), so that the service can
    /// check a key id before it reads any data. No permission or state check and no audit event of
    /// its own: the data-key call that follows does those. Errors: `ValidationException`,
    /// `InvalidArnException`, `NotFoundException`, and `KMSInternalException` if creating the
    /// managed key fails.
    pub async fn resolve_for(
        &self,
        req: &ServiceRequest<'_>,
        key_id: Option<&str>,
    ) -> Result<String, KmsError> {
        let call = self.request(req);
        Ok(self.service_key(req, &call, key_id).await?.arn.clone())
    }

    /// Calls made through [`Kms::generate_data_key_for`] and [`Kms::decrypt_for`] since start.
    pub fn service_calls(&self) -> ServiceCalls {
        ServiceCalls {
            generate_data_key: self
                .service_counters
                .generate_data_key
                .load(Ordering::Relaxed),
            decrypt: self.service_counters.decrypt.load(Ordering::Relaxed),
        }
    }

    /// A request record for one service call, timed now.
    fn request<'a>(&self, req: &ServiceRequest<'a>) -> Request<'a> {
        Request {
            caller: req.caller,
            now: self.clock.now(),
            resources: Vec::new(),
            response: None,
        }
    }

    async fn generate_for(
        &self,
        req: &ServiceRequest<'_>,
        call: &mut Request<'_>,
        key_id: Option<&str>,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        self.admit(Op::GenerateDataKey)?;
        let key = self.service_key(req, call, key_id).await?;
        call.touch(&key);
        let mut conditions = context_conditions(context);
        conditions.extend(self.via(req.service));
        if let Some(key_id) = key_id {
            conditions.extend(self.request_alias(key_id));
        }
        self.authorize(call, &key, Op::GenerateDataKey.action(), conditions)?;
        key.check_usable()?;
        let plaintext = Key256::generate()?;
        let ciphertext = seal(&key, plaintext.expose_secret(), context)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
            key_arn: key.arn.clone(),
        })
    }

    fn decrypt_blob_for(
        &self,
        req: &ServiceRequest<'_>,
        call: &mut Request<'_>,
        ciphertext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key256, String), KmsError> {
        self.admit(Op::Decrypt)?;
        let (key, plaintext) = self.open_blob(
            call,
            ciphertext,
            None,
            "keyId",
            context,
            Op::Decrypt.action(),
            self.via(req.service),
        )?;
        let data_key = Key256::from_slice(&plaintext).map_err(|_| invalid_ciphertext())?;
        Ok((data_key, key.arn.clone()))
    }

    /// The condition keys of a call made through `service`.
    fn via(&self, service: AwsService) -> Conditions {
        Conditions::from([
            condition("kms:ViaService", service.via_service(self.arns.region())),
            condition("aws:ViaAWSService", true),
        ])
    }

    /// The key a service call names: `key_id` resolved, or the service's AWS managed key.
    async fn service_key(
        &self,
        req: &ServiceRequest<'_>,
        call: &Request<'_>,
        key_id: Option<&str>,
    ) -> Result<Arc<Key>, KmsError> {
        let managed = req.service.managed_alias();
        match key_id {
            None => self.managed_key(req, call).await,
            Some(key_id) => match self.arns.parse_key_ref(key_id, "keyId")? {
                KeyRef::Alias(name) if name == managed => self.managed_key(req, call).await,
                _ => self.resolve(key_id, "keyId"),
            },
        }
    }

    /// The service's AWS managed key, created if it does not exist yet. Creation runs under the
    /// writer lock and looks again once it holds it, so concurrent first uses make one key. The
    /// key and its alias are written in one transaction, and both audit events (`CreateKey`,
    /// `CreateAlias`, as made by the service for `call`'s caller) are durable before any request
    /// can see the key.
    async fn managed_key(
        &self,
        req: &ServiceRequest<'_>,
        call: &Request<'_>,
    ) -> Result<Arc<Key>, KmsError> {
        let alias_name = req.service.managed_alias();
        if let Some(key) = self.aliased_key(alias_name) {
            return Ok(key);
        }
        let writing = self.begin_write().await;
        if let Some(key) = self.aliased_key(alias_name) {
            return Ok(key);
        }
        let key = Arc::new(self.new_managed_key(req.service, call.now_ms())?);
        let alias = Alias {
            name: alias_name.to_owned(),
            target: key.meta.id.clone(),
            created_ms: call.now_ms(),
            updated_ms: call.now_ms(),
        };
        let ops = vec![self.records.put_key(&key)?, self.records.put_alias(&alias)?];
        self.records.write(ops).await?;
        tracing::info!(key = %key.arn, alias = alias_name, "created the AWS managed key on its first use");
        let audited = self
            .audit_managed_key_creation(req, call, &key, &alias)
            .await;
        // Stored is stored: even if its events could not be written, the key must be found next
        // time rather than made again.
        self.apply(&writing, |state| {
            state.keys.insert(key.meta.id.clone(), Arc::clone(&key));
            state.aliases.insert(alias.name.clone(), alias);
        });
        audited.map(|()| key)
    }

    /// The key an alias points at, if both exist.
    fn aliased_key(&self, alias_name: &str) -> Option<Arc<Key>> {
        let state = self.read();
        let alias = state.aliases.get(alias_name)?;
        state.keys.get(&alias.target).cloned()
    }

    /// A new AWS managed key for `service`: fresh material, AWS's policy for it, rotation every
    /// year from now.
    fn new_managed_key(&self, service: AwsService, now_ms: i64) -> Result<Key, KmsError> {
        let uuid = Uuid::new_v4();
        let id = uuid.hyphenated().to_string();
        let policy = aws_managed_key_policy(
            service.id(),
            service.display_name(),
            &service.via_service(self.arns.region()),
            self.arns.partition(),
            self.arns.account(),
        );
        let doc = self.parse_policy(&policy)?;
        Ok(Key {
            arn: self.arns.key(&id),
            uuid,
            policy: Arc::new(doc),
            material: vec![Arc::new(Key256::generate()?)],
            meta: KeyMeta {
                id,
                created_ms: now_ms,
                description: service.managed_key_description().to_owned(),
                state: KeyState::Enabled,
                deletion_ms: None,
                pending_window_days: None,
                rotation: Some(RotationSchedule {
                    period_days: AWS_MANAGED_ROTATION_DAYS,
                    anchor_ms: now_ms,
                }),
                tags: BTreeMap::new(),
                policy,
                versions: vec![VersionMeta {
                    number: 1,
                    created_ms: now_ms,
                    origin: VersionOrigin::Created,
                }],
                key_manager: KeyManager::Aws,
            },
        })
    }

    /// The `CreateKey` and `CreateAlias` events of an AWS managed key made for `call`'s caller.
    async fn audit_managed_key_creation(
        &self,
        req: &ServiceRequest<'_>,
        call: &Request<'_>,
        key: &Key,
        alias: &Alias,
    ) -> Result<(), KmsError> {
        let resources = [key.arn.clone()];
        let create_key = ServiceCall {
            caller: req.caller,
            invoked_by: req.service.principal(),
            event_name: Op::CreateKey.name(),
            read_only: false,
            time: call.now,
            parameters: json!({
                "description": key.meta.description,
                "keyUsage": ENCRYPT_DECRYPT,
                "keySpec": SYMMETRIC_DEFAULT,
                "origin": "AWS_KMS",
                "policy": key.meta.policy,
            }),
            response: Some(json!({ "keyMetadata": {
                "keyId": key.meta.id, "arn": key.arn, "keyState": key.meta.state.as_str(),
                "keySpec": SYMMETRIC_DEFAULT, "keyUsage": ENCRYPT_DECRYPT,
                "keyManager": key.meta.key_manager.as_str(),
            }})),
            resources: &resources,
            error: None,
        };
        self.append_audit(trail::service_call(&self.arns, create_key))
            .await?;
        let create_alias = ServiceCall {
            caller: req.caller,
            invoked_by: req.service.principal(),
            event_name: Op::CreateAlias.name(),
            read_only: false,
            time: call.now,
            parameters: json!({ "aliasName": alias.name, "targetKeyId": alias.target }),
            response: Some(json!({ "keyId": key.arn })),
            resources: &resources,
            error: None,
        };
        self.append_audit(trail::service_call(&self.arns, create_alias))
            .await
    }

    /// Writes the one audit event of a data-key call; a call whose event cannot be written fails
    /// with `KMSInternalException`, whatever its outcome was.
    async fn audit_service_call(
        &self,
        req: &ServiceRequest<'_>,
        call: &Request<'_>,
        op: Op,
        parameters: Value,
        error: Option<&KmsError>,
    ) -> Result<(), KmsError> {
        let event = trail::service_call(
            &self.arns,
            ServiceCall {
                caller: req.caller,
                invoked_by: req.service.principal(),
                event_name: op.name(),
                read_only: op.read_only(),
                time: call.now,
                parameters,
                response: None,
                resources: &call.resources,
                error,
            },
        );
        self.append_audit(event).await
    }

    async fn append_audit(&self, event: Value) -> Result<(), KmsError> {
        self.audit.append(event).await.map_err(|e| {
            KmsError::internal(format_args!(
                "audit log append failed, answering without the result: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{ALICE, BOB, Harness, ROOT};
    use crate::throttle::QuotaConfig;

    const OBJECT: &str = "arn:aws:s3:::photos/cat.jpg";

    /// The context S3 uses for an object.
    fn object_context(arn: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("aws:s3:arn".to_owned(), arn.to_owned())])
    }

    fn s3(caller: &Caller) -> ServiceRequest<'_> {
        ServiceRequest {
            caller,
            service: AwsService::S3,
        }
    }

    /// An identity policy allowing `actions` on every resource.
    fn allowing(actions: &[&str]) -> String {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]})
        .to_string()
    }

    async fn generate(
        h: &Harness,
        caller: &Caller,
        key_id: Option<&str>,
    ) -> Result<DataKey, KmsError> {
        h.kms
            .generate_data_key_for(&s3(caller), key_id, &object_context(OBJECT))
            .await
    }

    async fn decrypt(
        h: &Harness,
        caller: &Caller,
        blob: &[u8],
    ) -> Result<(Key256, String), KmsError> {
        h.kms
            .decrypt_for(&s3(caller), blob, &object_context(OBJECT))
            .await
    }

    fn error_type<T>(result: Result<T, KmsError>) -> &'static str {
        match result {
            Ok(_) => panic!("the call succeeded"),
            Err(e) => e.error_type(),
        }
    }

    /// The one managed key: its id.
    async fn managed_key_id(h: &Harness) -> String {
        h.describe("alias/aws/s3").await["KeyId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_data_key_round_trips_under_every_kind_of_key_name() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let arn = h.key_arn(&id);
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/photos", "TargetKeyId": id}),
        )
        .await;
        let alice = h.caller(ALICE);
        for name in [
            id.as_str(),
            arn.as_str(),
            "alias/photos",
            "arn:aws:kms:us-east-1:111122223333:alias/photos",
        ] {
            let dk = generate(&h, &alice, Some(name)).await.unwrap();
            assert_eq!(dk.key_arn, arn, "{name}");
            let (plain, key_arn) = decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
            assert_eq!(plain.expose_secret(), dk.plaintext.expose_secret());
            assert_eq!(key_arn, arn);
        }
        // The blob is bound to its context, as any KMS ciphertext.
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();
        let other = h
            .kms
            .decrypt_for(
                &s3(&alice),
                &dk.ciphertext,
                &object_context("arn:aws:s3:::photos/dog.jpg"),
            )
            .await;
        assert_eq!(error_type(other), "InvalidCiphertextException");
        assert_eq!(
            error_type(decrypt(&h, &alice, b"not a blob").await),
            "InvalidCiphertextException"
        );
        // A blob of a data key that is not 256 bits is not one S3 stored.
        let short = h
            .ok(
                ROOT,
                "GenerateDataKey",
                json!({"KeyId": id, "NumberOfBytes": 16, "EncryptionContext": {"aws:s3:arn": OBJECT}}),
            )
            .await;
        let blob = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            short["CiphertextBlob"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(
            error_type(decrypt(&h, &alice, &blob).await),
            "InvalidCiphertextException"
        );
        // A data key under an earlier version of a rotated key still opens; new ones use the new one.
        h.ok(ROOT, "RotateKeyOnDemand", json!({"KeyId": id})).await;
        let (plain, _) = decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
        assert_eq!(plain.expose_secret(), dk.plaintext.expose_secret());
        let newer = generate(&h, &alice, Some(&id)).await.unwrap();
        assert_eq!(crate::blob::header(&newer.ciphertext).unwrap().version, 2);
    }

    #[tokio::test]
    async fn resolve_for_names_the_full_arn_without_a_check_or_an_event() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/photos", "TargetKeyId": id}),
        )
        .await;
        h.ok(ROOT, "DisableKey", json!({"KeyId": id})).await;
        let events = h.audit_log().len();
        // Bob may do nothing with the key; resolving is not using it.
        let bob = h.caller_with_policies(BOB, &[]);
        for name in [id.as_str(), "alias/photos"] {
            assert_eq!(
                h.kms.resolve_for(&s3(&bob), Some(name)).await.unwrap(),
                h.key_arn(&id)
            );
        }
        for (name, expected) in [
            ("alias/none", "NotFoundException"),
            ("00000000-0000-4000-8000-000000000000", "NotFoundException"),
            (
                "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-000000000000",
                "NotFoundException",
            ),
            ("arn:aws:s3:::photos", "InvalidArnException"),
            ("", "ValidationException"),
        ] {
            assert_eq!(
                error_type(h.kms.resolve_for(&s3(&bob), Some(name)).await),
                expected,
                "{name}"
            );
        }
        assert_eq!(h.audit_log().len(), events, "resolution writes no event");
        assert_eq!(h.kms.service_calls(), ServiceCalls::default());

        // Without a key id: the AWS managed key, made now (its creation is audited).
        let managed = h.kms.resolve_for(&s3(&bob), None).await.unwrap();
        assert_eq!(managed, h.key_arn(&managed_key_id(&h).await));
        assert_eq!(
            h.kms
                .resolve_for(&s3(&bob), Some("alias/aws/s3"))
                .await
                .unwrap(),
            managed
        );
        let names: Vec<_> = h.audit_log()[events..]
            .iter()
            .map(|e| e["eventName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["CreateKey", "CreateAlias", "DescribeKey"]);
    }

    #[tokio::test]
    async fn the_aws_managed_key_is_made_on_first_use_as_aws_makes_it() {
        let h = Harness::new().await;
        let alice = h.caller(ALICE);
        let dk = generate(&h, &alice, None).await.unwrap();
        let id = managed_key_id(&h).await;
        assert_eq!(dk.key_arn, h.key_arn(&id));

        let m = h.describe(&id).await;
        assert_eq!(m["KeyManager"], "AWS");
        assert_eq!(
            m["Description"],
            "Default key that protects my S3 objects when no other key is defined"
        );
        assert_eq!(m["KeyState"], "Enabled");
        assert_eq!(m["Origin"], "AWS_KMS");
        let aliases = h.ok(ROOT, "ListAliases", json!({"KeyId": id})).await;
        assert_eq!(aliases["Aliases"][0]["AliasName"], "alias/aws/s3");
        assert_eq!(
            aliases["Aliases"][0]["AliasArn"],
            "arn:aws:kms:us-east-1:111122223333:alias/aws/s3"
        );
        let rotation = h
            .ok(ROOT, "GetKeyRotationStatus", json!({"KeyId": id}))
            .await;
        assert_eq!(rotation["KeyRotationEnabled"], true);
        assert_eq!(rotation["RotationPeriodInDays"], 365);
        let policy = h.ok(ROOT, "GetKeyPolicy", json!({"KeyId": id})).await;
        assert_eq!(
            policy["Policy"].as_str().unwrap(),
            crate::key_policy::aws_managed_key_policy(
                "s3",
                "S3",
                "s3.us-east-1.amazonaws.com",
                "aws",
                "111122223333"
            )
        );
        assert_eq!(h.list_key_ids().await, std::slice::from_ref(&id));

        // Its creation is audited as made by S3 for Alice, before the data key.
        let log = h.audit_log();
        let names: Vec<_> = log.iter().map(|e| e["eventName"].clone()).collect();
        assert_eq!(names[..3], ["CreateKey", "CreateAlias", "GenerateDataKey"]);
        for event in &log[..2] {
            assert_eq!(event["userIdentity"]["userName"], "alice");
            assert_eq!(event["userIdentity"]["invokedBy"], "s3.amazonaws.com");
            assert_eq!(event["readOnly"], false);
            assert_eq!(event["resources"][0]["ARN"], h.key_arn(&id).as_str());
        }
        assert_eq!(
            log[0]["responseElements"]["keyMetadata"]["keyManager"],
            "AWS"
        );
        assert_eq!(log[1]["requestParameters"]["aliasName"], "alias/aws/s3");

        // Later uses find it, by no name or by its alias; nothing more is created.
        generate(&h, &alice, None).await.unwrap();
        generate(&h, &alice, Some("alias/aws/s3")).await.unwrap();
        let (plain, _) = decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
        assert_eq!(plain.expose_secret(), dk.plaintext.expose_secret());
        assert_eq!(h.audit_events("CreateKey").len(), 1);

        // It stays AWS managed across a restart, and the same key.
        let h = h.restart().await;
        assert_eq!(h.describe("alias/aws/s3").await["KeyManager"], "AWS");
        generate(&h, &h.caller(ALICE), None).await.unwrap();
        assert_eq!(h.list_key_ids().await, [id]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_uses_make_one_managed_key() {
        let h = Harness::new().await;
        let alice = h.caller(ALICE);
        let bob = h.caller(BOB);
        let h = &h;
        let first_use = |caller| async move { generate(h, caller, None).await.unwrap().key_arn };
        let resolve = |caller| async move { h.kms.resolve_for(&s3(caller), None).await.unwrap() };
        let (a, b, c, d, e, f, g, i) = tokio::join!(
            first_use(&alice),
            first_use(&bob),
            resolve(&alice),
            first_use(&alice),
            resolve(&bob),
            first_use(&bob),
            first_use(&alice),
            resolve(&bob),
        );
        let arns = [a, b, c, d, e, f, g, i];
        assert!(arns.iter().all(|arn| arn == &arns[0]), "{arns:?}");
        assert_eq!(h.list_key_ids().await.len(), 1);
        assert_eq!(h.audit_events("CreateKey").len(), 1);
        assert_eq!(h.audit_events("CreateAlias").len(), 1);
        assert_eq!(h.stored_records("key/").len(), 1);
        assert!(h.verify_audit_log().intact());
    }

    #[tokio::test]
    async fn the_managed_key_refuses_direct_use_through_the_kms_api() {
        let h = Harness::new().await;
        let dk = generate(&h, &h.caller(ALICE), None).await.unwrap();
        let blob =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &dk.ciphertext);
        for who in [ROOT, ALICE] {
            for (op, body) in [
                (
                    "Encrypt",
                    json!({"KeyId": "alias/aws/s3", "Plaintext": "aGk="}),
                ),
                (
                    "GenerateDataKey",
                    json!({"KeyId": "alias/aws/s3", "KeySpec": "AES_256"}),
                ),
                (
                    "Decrypt",
                    json!({"CiphertextBlob": blob, "EncryptionContext": {"aws:s3:arn": OBJECT}}),
                ),
            ] {
                let err = h.call(who, op, body).await.unwrap_err();
                assert_eq!(err.error_type(), "AccessDeniedException", "{who} {op}");
                assert!(
                    err.message()
                        .contains("because no resource-based policy allows the kms:"),
                    "{}",
                    err.message()
                );
            }
            // Reading its metadata directly is allowed to the account.
            h.ok(who, "DescribeKey", json!({"KeyId": "alias/aws/s3"}))
                .await;
        }
        // A user denied S3 use of KMS by its own policy is refused even the managed key.
        let denied = h.caller_with_policies(
            BOB,
            &[r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*"}]}"#],
        );
        let err = generate(&h, &denied, None).await.unwrap_err();
        assert!(err.message().contains("explicit deny"), "{}", err.message());
        // Any user of the account may use it through S3, without any KMS permission of its own.
        let s3_only = h.caller_with_policies(BOB, &[&allowing(&["s3:*"])]);
        generate(&h, &s3_only, None).await.unwrap();
        decrypt(&h, &s3_only, &dk.ciphertext).await.unwrap();
    }

    #[tokio::test]
    async fn nobody_may_change_an_aws_managed_key() {
        let h = Harness::new().await;
        generate(&h, &h.caller(ROOT), None).await.unwrap();
        let id = managed_key_id(&h).await;
        let customer = h.create_key().await;
        let policy = h.policy_allowing(ROOT, "kms:*");
        for who in [ROOT, ALICE] {
            for (op, body) in [
                ("PutKeyPolicy", json!({"KeyId": id, "Policy": policy})),
                ("DisableKey", json!({"KeyId": id})),
                ("EnableKey", json!({"KeyId": id})),
                ("EnableKeyRotation", json!({"KeyId": id})),
                ("DisableKeyRotation", json!({"KeyId": id})),
                ("RotateKeyOnDemand", json!({"KeyId": id})),
                (
                    "ScheduleKeyDeletion",
                    json!({"KeyId": id, "PendingWindowInDays": 7}),
                ),
                ("CancelKeyDeletion", json!({"KeyId": id})),
                (
                    "UpdateKeyDescription",
                    json!({"KeyId": id, "Description": "mine"}),
                ),
                (
                    "TagResource",
                    json!({"KeyId": id, "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
                ),
                ("UntagResource", json!({"KeyId": id, "TagKeys": ["a"]})),
                (
                    "CreateAlias",
                    json!({"AliasName": "alias/mine", "TargetKeyId": id}),
                ),
            ] {
                let err = h.call(who, op, body).await.unwrap_err();
                assert_eq!(err.error_type(), "AccessDeniedException", "{who} {op}");
                assert!(
                    err.message()
                        .contains(&format!("kms:{op} on resource: {}", h.key_arn(&id))),
                    "{}",
                    err.message()
                );
            }
            // The reserved alias names cannot be taken, moved or removed.
            for (op, body) in [
                (
                    "CreateAlias",
                    json!({"AliasName": "alias/aws/s3", "TargetKeyId": customer}),
                ),
                (
                    "CreateAlias",
                    json!({"AliasName": "alias/aws/mine", "TargetKeyId": customer}),
                ),
                (
                    "UpdateAlias",
                    json!({"AliasName": "alias/aws/s3", "TargetKeyId": customer}),
                ),
                ("DeleteAlias", json!({"AliasName": "alias/aws/s3"})),
            ] {
                assert_eq!(
                    h.err(who, op, body.clone()).await,
                    "InvalidAliasNameException",
                    "{who} {op} {body}"
                );
            }
        }
        let m = h.describe(&id).await;
        assert_eq!(m["KeyState"], "Enabled");
        assert_eq!(h.describe("alias/aws/s3").await["KeyId"], id.as_str());
    }

    #[tokio::test]
    async fn kms_via_service_lets_s3_in_and_keeps_direct_callers_out() {
        let h = Harness::new().await;
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": h.principal(ROOT)}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": h.principal(ALICE)},
             "Action": ["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
                           "Bool": {"aws:ViaAWSService": "true"}}}]})
        .to_string();
        let id = h.create_key_with_policy(&policy).await;
        let alice = h.caller_with_policies(ALICE, &[]);
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();
        decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
        let direct = h
            .kms
            .handle(
                &alice,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": "aGk="})
                    .to_string()
                    .as_bytes(),
            )
            .await
            .unwrap_err();
        assert_eq!(direct.error_type(), "AccessDeniedException");
    }

    #[tokio::test]
    async fn identity_policies_decide_for_users_under_the_default_key_policy() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let arn = h.key_arn(&id);
        let writer = h.caller_with_policies(
            ALICE,
            &[&json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": arn,
                 "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}]})
            .to_string()],
        );
        let dk = generate(&h, &writer, Some(&id)).await.unwrap();
        decrypt(&h, &writer, &dk.ciphertext).await.unwrap();

        // S3 rights alone are not KMS rights on a customer managed key.
        let s3_only = h.caller_with_policies(BOB, &[&allowing(&["s3:*"])]);
        let err = generate(&h, &s3_only, Some(&id)).await.unwrap_err();
        assert_eq!(err.error_type(), "AccessDeniedException");
        assert_eq!(
            err.message(),
            format!(
                "User: arn:aws:iam::111122223333:user/bob is not authorized to perform: kms:GenerateDataKey on resource: {arn} because no identity-based policy allows the kms:GenerateDataKey action"
            )
        );
        let err = decrypt(&h, &s3_only, &dk.ciphertext).await.unwrap_err();
        assert!(err.message().contains("kms:Decrypt"), "{}", err.message());
        let refused = h.audit_events("GenerateDataKey");
        let refused = refused.last().unwrap();
        assert_eq!(refused["errorCode"], "AccessDeniedException");
        assert_eq!(refused["userIdentity"]["userName"], "bob");
    }

    #[tokio::test]
    async fn a_key_policy_naming_the_caller_grants_and_others_are_refused() {
        let h = Harness::new().await;
        let id = h
            .create_key_with_policy(&h.policy_allowing(BOB, "kms:GenerateDataKey"))
            .await;
        // Bob has no identity policy at all: the key policy names him.
        let bob = h.caller_with_policies(BOB, &[]);
        generate(&h, &bob, Some(&id)).await.unwrap();
        // Alice may do everything by her identity policies, but the key policy does not name her
        // or the account.
        let err = generate(&h, &h.caller(ALICE), Some(&id)).await.unwrap_err();
        assert!(
            err.message()
                .contains("because no resource-based policy allows the kms:GenerateDataKey action"),
            "{}",
            err.message()
        );
        assert_eq!(
            error_type(generate(&h, &h.caller(ROOT), Some(&id)).await),
            "AccessDeniedException"
        );
    }

    #[tokio::test]
    async fn the_object_arn_in_the_context_is_a_condition_key() {
        let h = Harness::new().await;
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": h.principal(ROOT)}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": h.principal(ALICE)},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::photos/*"},
                           "StringEquals": {"kms:CallerAccount": "111122223333"}}}]})
        .to_string();
        let id = h.create_key_with_policy(&policy).await;
        let alice = h.caller_with_policies(ALICE, &[]);
        generate(&h, &alice, Some(&id)).await.unwrap();
        let elsewhere = h
            .kms
            .generate_data_key_for(
                &s3(&alice),
                Some(&id),
                &object_context("arn:aws:s3:::private/cat.jpg"),
            )
            .await;
        assert_eq!(error_type(elsewhere), "AccessDeniedException");
    }

    #[tokio::test]
    async fn key_state_is_obeyed_until_the_key_is_gone_for_good() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let alice = h.caller(ALICE);
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();

        h.ok(ROOT, "DisableKey", json!({"KeyId": id})).await;
        let err = generate(&h, &alice, Some(&id)).await.unwrap_err();
        assert_eq!(err.error_type(), "DisabledException");
        assert_eq!(err.message(), format!("{} is disabled.", h.key_arn(&id)));
        assert_eq!(
            error_type(decrypt(&h, &alice, &dk.ciphertext).await),
            "DisabledException"
        );
        h.ok(ROOT, "EnableKey", json!({"KeyId": id})).await;
        decrypt(&h, &alice, &dk.ciphertext).await.unwrap();

        h.ok(
            ROOT,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .await;
        assert_eq!(
            error_type(generate(&h, &alice, Some(&id)).await),
            "KMSInvalidStateException"
        );
        assert_eq!(
            error_type(decrypt(&h, &alice, &dk.ciphertext).await),
            "KMSInvalidStateException"
        );

        h.clock.advance_days(8);
        h.kms.run_due_tasks().await.unwrap();
        let h = h.restart().await;
        let alice = h.caller(ALICE);
        let err = decrypt(&h, &alice, &dk.ciphertext).await.unwrap_err();
        assert_eq!(err.error_type(), "NotFoundException");
        assert_eq!(
            err.message(),
            format!("Key '{}' does not exist", h.key_arn(&id))
        );
        assert_eq!(
            error_type(generate(&h, &alice, Some(&id)).await),
            "NotFoundException"
        );
        assert_eq!(
            error_type(generate(&h, &alice, Some("alias/none")).await),
            "NotFoundException"
        );
    }

    #[tokio::test]
    async fn a_quota_throttles_service_calls_and_each_refusal_is_audited() {
        let h = Harness::with_quotas(QuotaConfig {
            cryptographic: 1,
            ..QuotaConfig::unlimited()
        })
        .await;
        let id = h.create_key().await;
        let alice = h.caller(ALICE);
        let mut throttled = 0;
        for _ in 0..5 {
            match generate(&h, &alice, Some(&id)).await {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.error_type(), "ThrottlingException");
                    throttled += 1;
                }
            }
        }
        assert!(throttled >= 3, "only {throttled} of 5 were throttled");
        let events = h.audit_events("GenerateDataKey");
        assert_eq!(events.len(), 5);
        assert_eq!(
            events
                .iter()
                .filter(|e| e["errorCode"] == "ThrottlingException")
                .count(),
            throttled
        );
        // A throttled first use creates no managed key (the quota is checked first). The bucket
        // refills one token a second, so the next call is throttled unless a second has passed.
        if let Err(e) = generate(&h, &alice, None).await {
            assert_eq!(e.error_type(), "ThrottlingException");
            assert_eq!(
                h.audit_events("CreateKey").len(),
                1,
                "only the customer key"
            );
            assert_eq!(h.list_key_ids().await, [id]);
        }
        assert_eq!(h.kms.service_calls().generate_data_key, 6);
    }

    #[tokio::test]
    async fn each_call_is_one_cloudtrail_event_naming_caller_key_object_and_s3() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let arn = h.key_arn(&id);
        let alice = h.caller(ALICE);
        let before = h.audit_log().len();
        let dk = generate(&h, &alice, Some("alias/none"))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(dk.error_type(), "NotFoundException");
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();
        decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
        let log = h.audit_log();
        assert_eq!(log.len(), before + 3, "one event per call");
        let (missing, generated, decrypted) = (&log[before], &log[before + 1], &log[before + 2]);

        assert_eq!(missing["eventName"], "GenerateDataKey");
        assert_eq!(missing["errorCode"], "NotFoundException");
        assert_eq!(missing["requestParameters"]["keyId"], "alias/none");

        for event in [generated, decrypted] {
            assert_eq!(event["eventSource"], "kms.amazonaws.com");
            assert_eq!(event["eventType"], "AwsApiCall");
            assert_eq!(event["readOnly"], true);
            assert_eq!(event["awsRegion"], "us-east-1");
            let who = &event["userIdentity"];
            assert_eq!(who["type"], "IAMUser");
            assert_eq!(who["arn"], "arn:aws:iam::111122223333:user/alice");
            assert_eq!(who["userName"], "alice");
            assert_eq!(who["accessKeyId"], "AKIAALICE");
            assert_eq!(who["invokedBy"], "s3.amazonaws.com");
            assert_eq!(event["sourceIPAddress"], "s3.amazonaws.com");
            assert_eq!(event["userAgent"], "s3.amazonaws.com");
            assert_eq!(
                event["additionalEventData"],
                json!({"callerSourceIPAddress": "192.0.2.10", "callerUserAgent": "coffer-test"})
            );
            assert_eq!(event["requestID"], alice.request_id.as_str());
            assert_eq!(
                event["resources"],
                json!([{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": arn}])
            );
            assert_eq!(
                event["requestParameters"]["encryptionContext"],
                json!({"aws:s3:arn": OBJECT})
            );
            assert!(event.get("errorCode").is_none());
        }
        assert_eq!(generated["eventName"], "GenerateDataKey");
        assert_eq!(
            generated["requestParameters"],
            json!({"keyId": arn, "keySpec": "AES_256", "encryptionContext": {"aws:s3:arn": OBJECT}})
        );
        assert_eq!(decrypted["eventName"], "Decrypt");
        assert_eq!(
            decrypted["requestParameters"],
            json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"aws:s3:arn": OBJECT}})
        );

        // `coffer audit tail --key-id <id>` shows which objects were used by whom.
        let tail = crate::audit::read_events(&h.audit_path(), Some(&id), 10).unwrap();
        let uses: Vec<(Value, Value, Value)> = tail
            .iter()
            .filter(|e| e["userIdentity"]["invokedBy"] == "s3.amazonaws.com")
            .map(|e| {
                (
                    e["eventName"].clone(),
                    e["userIdentity"]["arn"].clone(),
                    e["requestParameters"]["encryptionContext"]["aws:s3:arn"].clone(),
                )
            })
            .collect();
        assert_eq!(
            uses,
            [
                (
                    json!("GenerateDataKey"),
                    json!("arn:aws:iam::111122223333:user/alice"),
                    json!(OBJECT)
                ),
                (
                    json!("Decrypt"),
                    json!("arn:aws:iam::111122223333:user/alice"),
                    json!(OBJECT)
                ),
            ]
        );

        // Never a data key or its blob in the log.
        let text = h.audit_text();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        assert!(!text.contains(&b64(dk.plaintext.expose_secret())));
        assert!(!text.contains(&b64(&dk.ciphertext)));
        assert!(!text.contains(&hex::encode(dk.plaintext.expose_secret())));
        assert!(h.verify_audit_log().intact());
        assert_eq!(
            h.kms.service_calls(),
            ServiceCalls {
                generate_data_key: 2,
                decrypt: 1
            }
        );
    }

    #[tokio::test]
    async fn a_service_call_whose_event_cannot_be_written_fails() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let alice = h.caller(ALICE);
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();
        h.kms.audit.close();
        assert_eq!(
            error_type(generate(&h, &alice, Some(&id)).await),
            "KMSInternalException"
        );
        assert_eq!(
            error_type(decrypt(&h, &alice, &dk.ciphertext).await),
            "KMSInternalException"
        );
    }

    #[tokio::test]
    async fn service_calls_count_only_the_service_api() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256"}),
        )
        .await;
        let alice = h.caller(ALICE);
        let dk = generate(&h, &alice, Some(&id)).await.unwrap();
        for _ in 0..3 {
            decrypt(&h, &alice, &dk.ciphertext).await.unwrap();
        }
        let _ = decrypt(&h, &alice, b"junk").await;
        h.kms.resolve_for(&s3(&alice), Some(&id)).await.unwrap();
        assert_eq!(
            h.kms.service_calls(),
            ServiceCalls {
                generate_data_key: 1,
                decrypt: 4
            }
        );
    }

    #[test]
    fn a_data_key_never_prints_its_plaintext() {
        let dk = DataKey {
            plaintext: Key256::from_bytes([7; 32]),
            ciphertext: vec![1, 2, 3],
            key_arn: "arn:k".into(),
        };
        let text = format!("{dk:?}");
        assert!(
            text.contains("[redacted]") && text.contains("arn:k"),
            "{text}"
        );
        assert!(!text.contains("7, 7"), "{text}");
    }
}
