//! The [`Kms`] handle: loads the service, runs one request from quota to audit event, resolves key
//! names, evaluates key policies and commits state changes.
//!
//! Concurrency: the state (keys with their decrypted material, aliases) is one `RwLock`ed map of
//! immutable `Arc<Key>` snapshots. The crypto path takes the read lock only long enough to clone an
//! `Arc`, never touches the store and never waits on another request. Every change runs under one
//! async writer lock ([`Writing`]): re-resolve, check, write the sealed record (on a blocking
//! thread), then swap the new snapshot in. Nothing here may hold the `RwLock` across an `await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use coffer_crypto::Key256;
use coffer_store::{KvOp, MetaStore};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::AuditLog;
use crate::for_services::ServiceCounters;
use crate::ids::{Arns, KeyRef};
use crate::model::{Alias, ENCRYPT_DECRYPT, Key, SYMMETRIC_DEFAULT, unix_ms};
use crate::refusals::{Refusals, Summary};
use crate::router::{Op, UNSUPPORTED};
use crate::store::Records;
use crate::throttle::Quotas;
use crate::trail::{self, ApiCall, RefusedCall, RequestParameters};
use crate::{Caller, Clock, KmsConfig, KmsError};
use coffer_policy::{self as policy, EvalContext, PolicyDocument, ResourceRule, Verdict};

/// Condition keys and their values for one policy evaluation.
pub(crate) type Conditions = HashMap<String, Vec<String>>;

/// The key service. `Send + Sync`; share it behind an `Arc` across tasks.
pub struct Kms {
    pub(crate) records: Records,
    pub(crate) arns: Arns,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) audit: Arc<AuditLog>,
    quotas: Quotas,
    refusals: Refusals,
    state: RwLock<State>,
    writer: tokio::sync::Mutex<()>,
    /// Calls made through the typed API for AWS services (`for_services.rs`).
    pub(crate) service_counters: ServiceCounters,
    /// Bumped by every change to the state (see [`Kms::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("arns", &self.arns)
            .finish_non_exhaustive()
    }
}

/// Every key and alias, as of the last committed change.
pub(crate) struct State {
    /// Key id → key.
    pub keys: BTreeMap<String, Arc<Key>>,
    /// Alias name → alias.
    pub aliases: BTreeMap<String, Alias>,
}

/// Proof that the caller holds the writer lock: [`Kms::commit`] takes it.
pub(crate) struct Writing<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

/// One API request in flight: who asked, when, and what goes into its audit event.
pub(crate) struct Request<'a> {
    /// The authenticated caller.
    pub caller: &'a Caller,
    /// When the request arrived (the service clock).
    pub now: OffsetDateTime,
    /// ARNs of the keys the request touched (the event's `resources`).
    pub resources: Vec<String>,
    /// Non-secret response fields for the event's `responseElements`.
    pub response: Option<Value>,
}

impl Request<'_> {
    /// The request time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.now)
    }

    /// Notes that the request touched `key`.
    pub fn touch(&mut self, key: &Key) {
        if !self.resources.contains(&key.arn) {
            self.resources.push(key.arn.clone());
        }
    }
}

impl Kms {
    /// Loads the key service from the metadata store (kv namespace "kms", every record sealed under
    /// `root_key` with an AAD naming the record), with the audit log and clock. Fails if any record
    /// does not open under `root_key`.
    pub fn open(
        meta: Arc<MetaStore>,
        root_key: Key256,
        cfg: KmsConfig,
        clock: Arc<dyn Clock>,
        audit: Arc<AuditLog>,
    ) -> Result<Kms, KmsError> {
        let arns = Arns::new(&cfg.region, &cfg.account_id);
        let records = Records::new(meta, root_key);
        let loaded = records.load(&arns)?;
        Ok(Kms {
            records,
            arns,
            clock,
            audit,
            quotas: Quotas::new(cfg.quotas),
            refusals: Refusals::default(),
            state: RwLock::new(State {
                keys: loaded.keys,
                aliases: loaded.aliases,
            }),
            writer: tokio::sync::Mutex::new(()),
            service_counters: ServiceCounters::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Handles one KMS JSON 1.1 request: `operation` is the part of `X-Amz-Target` after
    /// `TrentService.`, `body` the JSON request; returns the JSON response body (empty for
    /// operations without output, as AWS). Applies the quota, the key policy and the key state, and
    /// answers only once the request's audit event is durable. If the audit log fails the answer is
    /// `KMSInternalException`, even when a state change was already committed.
    pub async fn handle(
        &self,
        caller: &Caller,
        operation: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let mut req = Request {
            caller,
            now: self.clock.now(),
            resources: Vec::new(),
            response: None,
        };
        let op = Op::parse(operation);
        let result = match op {
            None if UNSUPPORTED.contains(&operation) => Err(KmsError::UnsupportedOperation(
                format!("Coffer's key service does not implement {operation}"),
            )),
            None => Err(KmsError::UnknownOperation(format!(
                "The operation '{}' is not a KMS operation this service implements",
                trail::sanitize_event_name(operation)
            ))),
            Some(op) => match self.admit(op) {
                Ok(()) => self.dispatch(op, &mut req, body).await,
                Err(throttled) => Err(throttled),
            },
        };
        let sanitized;
        let event_name = match op {
            Some(op) => op.name(),
            None => {
                sanitized = trail::sanitize_event_name(operation);
                &sanitized
            }
        };
        let event = trail::api_call(
            &self.arns,
            ApiCall {
                caller,
                event_name,
                read_only: op.is_none_or(Op::read_only),
                time: req.now,
                parameters: op.and_then(|_| RequestParameters::from_body(body)),
                response: req.response.take(),
                resources: &req.resources,
                error: result.as_ref().err(),
            },
        );
        if let Err(e) = self.audit.append(event).await {
            return Err(KmsError::internal(format_args!(
                "audit log append failed, answering without the result: {e}"
            )));
        }
        result
    }

    /// Records a request the transport refused before its caller was authenticated (see
    /// [`RefusedCall`]), so that the audit log accounts for every KMS request, failures
    /// included. A stranger must not fill the disk this way, so refusals are aggregated (see
    /// `refusals.rs`): the first from a source with an error code in a minute is logged as its
    /// own event (and this resolves once it is durable); the rest are counted, and written as
    /// one summary event per source when the minute ends.
    pub async fn audit_refused(&self, call: RefusedCall<'_>) -> Result<(), KmsError> {
        let now = self.clock.now();
        let event_name = trail::sanitize_event_name(call.event_name);
        let (log_it, ended) =
            self.refusals
                .admit(now, call.source_ip, call.error_code, &event_name);
        self.write_refusal_summaries(ended).await?;
        if !log_it {
            return Ok(());
        }
        let event = trail::refused_call(&self.arns, now, call);
        self.audit
            .append(event)
            .await
            .map_err(|e| KmsError::internal(format_args!("audit log append failed: {e}")))
    }

    /// Ends the current window of refusals now and writes its summaries (at shutdown, so that no
    /// counted refusal goes unrecorded).
    pub async fn flush_refusals(&self) -> Result<(), KmsError> {
        let ended = self.refusals.end_now(self.clock.now());
        self.write_refusal_summaries(ended).await
    }

    async fn write_refusal_summaries(&self, summaries: Vec<Summary>) -> Result<(), KmsError> {
        for summary in &summaries {
            self.audit
                .append(trail::refusals_summary(&self.arns, summary))
                .await
                .map_err(|e| KmsError::internal(format_args!("audit log append failed: {e}")))?;
        }
        Ok(())
    }

    /// The one table from operation to handler.
    async fn dispatch(
        &self,
        op: Op,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        match op {
            Op::CreateKey => {
                self.authorize_account_action(req, op.action())?;
                self.create_key(req, body).await
            }
            Op::DescribeKey => self.describe_key(req, body),
            Op::ListKeys => {
                self.authorize_account_action(req, op.action())?;
                self.list_keys(body)
            }
            Op::EnableKey => self.enable_key(req, body).await,
            Op::DisableKey => self.disable_key(req, body).await,
            Op::UpdateKeyDescription => self.update_key_description(req, body).await,
            Op::TagResource => self.tag_resource(req, body).await,
            Op::UntagResource => self.untag_resource(req, body).await,
            Op::ListResourceTags => self.list_resource_tags(req, body),
            Op::CreateAlias => self.create_alias(req, body).await,
            Op::UpdateAlias => self.update_alias(req, body).await,
            Op::DeleteAlias => self.delete_alias(req, body).await,
            Op::ListAliases => {
                self.authorize_account_action(req, op.action())?;
                self.list_aliases(body)
            }
            Op::Encrypt => self.encrypt(req, body),
            Op::Decrypt => self.decrypt(req, body),
            Op::ReEncrypt => self.re_encrypt(req, body),
            Op::GenerateDataKey => self.generate_data_key(req, body, true),
            Op::GenerateDataKeyWithoutPlaintext => self.generate_data_key(req, body, false),
            Op::GenerateRandom => {
                self.authorize_account_action(req, op.action())?;
                self.generate_random(body)
            }
            Op::EnableKeyRotation => self.enable_key_rotation(req, body).await,
            Op::DisableKeyRotation => self.disable_key_rotation(req, body).await,
            Op::GetKeyRotationStatus => self.get_key_rotation_status(req, body),
            Op::RotateKeyOnDemand => self.rotate_key_on_demand(req, body).await,
            Op::ListKeyRotations => self.list_key_rotations(req, body),
            Op::ScheduleKeyDeletion => self.schedule_key_deletion(req, body).await,
            Op::CancelKeyDeletion => self.cancel_key_deletion(req, body).await,
            Op::GetKeyPolicy => self.get_key_policy(req, body),
            Op::PutKeyPolicy => self.put_key_policy(req, body).await,
            Op::ListKeyPolicies => self.list_key_policies(req, body),
        }
    }

    /// Runs what is due by the clock: automatic rotations of enabled keys whose period has passed,
    /// and deletions whose waiting period has passed (the key record and aliases leave the store,
    /// the in-memory material is dropped and zeroized: crypto-shredding). Each is one audit event
    /// (`AwsServiceEvent` `RotateKey` / `DeleteKey`). Also writes the summaries of a window of
    /// refused requests that has ended. The server calls this every few seconds.
    pub async fn run_due_tasks(&self) -> Result<(), KmsError> {
        let ended = self.refusals.ended(self.clock.now());
        let summaries = self.write_refusal_summaries(ended).await;
        self.run_due().await.and(summaries)
    }

    /// The key ARN a key id, key ARN, alias name or alias ARN resolves to (for S3's SSE-KMS). No
    /// policy check and no audit event: the operation that uses the key does both.
    pub fn key_arn(&self, key_id: &str) -> Result<String, KmsError> {
        Ok(self.resolve(key_id, "keyId")?.arn.clone())
    }

    // ---- shared helpers for the operation files ----

    /// `ThrottlingException` unless the quota of `op`'s group has room for one more request.
    pub(crate) fn admit(&self, op: Op) -> Result<(), KmsError> {
        if self.quotas.try_acquire(op.name()) {
            return Ok(());
        }
        Err(KmsError::Throttling(
            "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
                .to_owned(),
        ))
    }

    /// A read view of the state; never hold it across an `await`.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Resolves a key id, key ARN, alias name or alias ARN to the key. `field` names the request
    /// field for messages.
    pub(crate) fn resolve(&self, value: &str, field: &str) -> Result<Arc<Key>, KmsError> {
        let key_ref = self.arns.parse_key_ref(value, field)?;
        let state = self.read();
        match key_ref {
            KeyRef::Key(id) => state
                .keys
                .get(&id)
                .cloned()
                .ok_or_else(|| self.key_not_found(&id)),
            KeyRef::Alias(name) => state
                .aliases
                .get(&name)
                .and_then(|alias| state.keys.get(&alias.target))
                .cloned()
                .ok_or_else(|| self.alias_not_found(&name)),
        }
    }

    /// `kms:RequestAlias` when the request named its key by an alias name or alias ARN (the
    /// key is `alias/<name>` either way), as AWS sets it for cryptographic operations and
    /// DescribeKey; no condition keys otherwise.
    pub(crate) fn request_alias(&self, key_id: &str) -> Conditions {
        match self.arns.parse_key_ref(key_id, "keyId") {
            Ok(KeyRef::Alias(name)) => Conditions::from([condition("kms:RequestAlias", name)]),
            _ => Conditions::new(),
        }
    }

    /// NotFoundException for a key id, in AWS's words.
    pub(crate) fn key_not_found(&self, id: &str) -> KmsError {
        if uuid::Uuid::try_parse(id).is_ok() {
            KmsError::NotFound(format!("Key '{}' does not exist", self.arns.key(id)))
        } else {
            KmsError::NotFound(format!("Invalid keyId '{id}'"))
        }
    }

    /// NotFoundException for an alias name.
    pub(crate) fn alias_not_found(&self, name: &str) -> KmsError {
        KmsError::NotFound(format!("Alias '{}' is not found.", self.arns.alias(name)))
    }

    /// Takes the writer lock: every state change runs under it.
    pub(crate) async fn begin_write(&self) -> Writing<'_> {
        Writing {
            _guard: self.writer.lock().await,
        }
    }

    /// Writes `ops` to the store in one transaction, then applies `apply` to the in-memory state.
    /// If the store write fails nothing changes.
    pub(crate) async fn commit(
        &self,
        writing: &Writing<'_>,
        ops: Vec<KvOp>,
        apply: impl FnOnce(&mut State),
    ) -> Result<(), KmsError> {
        self.records.write(ops).await?;
        self.apply(writing, apply);
        Ok(())
    }

    /// Applies a change already written to the store to the in-memory state (the second half of
    /// [`Kms::commit`], for a change whose audit events must be durable before anyone can see it).
    pub(crate) fn apply(&self, _writing: &Writing<'_>, apply: impl FnOnce(&mut State)) {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apply(&mut state);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// A number that changes whenever a key, its state, its key policy or an alias changes
    /// (including a key passing from pending deletion to deleted). Whoever keeps something the
    /// key service allowed — S3's Bucket Keys — may reuse it only while this stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Changes one key under the writer lock: resolves it afresh, records it in the request,
    /// checks the policy for `action` (with `extra` condition keys), lets `change` check the state
    /// and edit a copy, and commits the copy. Returns the new key.
    pub(crate) async fn update_key(
        &self,
        req: &mut Request<'_>,
        key_id: &str,
        action: &str,
        extra: Conditions,
        change: impl FnOnce(&Key, &mut Key, &Request<'_>) -> Result<(), KmsError>,
    ) -> Result<Arc<Key>, KmsError> {
        let writing = self.begin_write().await;
        let key = self.resolve(key_id, "keyId")?;
        req.touch(&key);
        self.authorize(req, &key, action, extra)?;
        let mut new = (*key).clone();
        change(&key, &mut new, req)?;
        let new = Arc::new(new);
        let op = self.records.put_key(&new)?;
        self.commit(&writing, vec![op], |state| {
            state.keys.insert(new.meta.id.clone(), Arc::clone(&new));
        })
        .await?;
        Ok(new)
    }

    /// Refuses the request unless the caller may do `action` on `key`: its key policy must allow
    /// it, and for a user whose access the key policy grants through the account, the user's
    /// identity policies too (AWS's rule for KMS keys).
    pub(crate) fn authorize(
        &self,
        req: &Request<'_>,
        key: &Key,
        action: &str,
        mut extra: Conditions,
    ) -> Result<(), KmsError> {
        for (tag_key, value) in &key.meta.tags {
            extra
                .entry(format!("aws:ResourceTag/{tag_key}"))
                .or_insert_with(|| vec![value.clone()]);
        }
        let verdict = self.verdict(req, Some(&key.policy), &key.arn, action, extra);
        refuse_unless_allowed(req, verdict, action, &key.arn)
    }

    /// Refuses an operation that acts on no key (CreateKey, ListKeys, ListAliases, GenerateRandom)
    /// unless the caller's identity policies allow it: in AWS only IAM governs these.
    pub(crate) fn authorize_account_action(
        &self,
        req: &Request<'_>,
        action: &str,
    ) -> Result<(), KmsError> {
        self.authorize_identity(req, action, "*")
    }

    /// Refuses unless the caller's identity policies allow `action` on `resource` (a resource
    /// with no resource policy of its own, such as an alias ARN).
    pub(crate) fn authorize_identity(
        &self,
        req: &Request<'_>,
        action: &str,
        resource: &str,
    ) -> Result<(), KmsError> {
        if matches!(req.caller.identity, policy::Identity::Root) {
            return Ok(());
        }
        let verdict = self.verdict(req, None, resource, action, Conditions::new());
        refuse_unless_allowed(req, verdict, action, resource)
    }

    /// Evaluates the caller's identity policies and `key_policy` (if the action is on a key) for
    /// one action on `resource`.
    pub(crate) fn verdict(
        &self,
        req: &Request<'_>,
        key_policy: Option<&PolicyDocument>,
        resource: &str,
        action: &str,
        extra: Conditions,
    ) -> Verdict {
        let conditions = self.conditions(req, extra);
        let ctx = EvalContext {
            principal_arn: &req.caller.principal_arn,
            account_id: self.arns.account(),
            action,
            resource,
            conditions: &conditions,
            account_delegation: false,
        };
        match key_policy {
            Some(doc) => policy::authorize(
                &req.caller.identity,
                Some(doc),
                ResourceRule::MustAllow,
                &ctx,
            ),
            None => policy::authorize(&req.caller.identity, None, ResourceRule::EitherAllows, &ctx),
        }
    }

    /// The condition keys every key-policy evaluation sees, plus the operation's own.
    fn conditions(&self, req: &Request<'_>, mut extra: Conditions) -> Conditions {
        let caller = req.caller;
        let mut put = |k: &str, v: String| {
            extra.entry(k.to_owned()).or_insert_with(|| vec![v]);
        };
        put("aws:SecureTransport", caller.secure_transport.to_string());
        put("aws:SourceIp", caller.source_ip.clone());
        put("aws:PrincipalArn", caller.principal_arn.clone());
        put("aws:PrincipalAccount", self.arns.account().to_owned());
        put("aws:RequestedRegion", self.arns.region().to_owned());
        put(
            "aws:CurrentTime",
            req.now.format(&Rfc3339).unwrap_or_default(),
        );
        put("aws:EpochTime", req.now.unix_timestamp().to_string());
        // A service acting for its caller sets "true" (and kms:ViaService) before this.
        put("aws:ViaAWSService", "false".to_owned());
        put("kms:CallerAccount", self.arns.account().to_owned());
        put("kms:KeyOrigin", "AWS_KMS".to_owned());
        put("kms:KeySpec", SYMMETRIC_DEFAULT.to_owned());
        put("kms:KeyUsage", ENCRYPT_DECRYPT.to_owned());
        if let Some((_, user)) = caller.principal_arn.rsplit_once(":user/") {
            put("aws:username", user.to_owned());
        }
        if let Some(agent) = &caller.user_agent {
            put("aws:UserAgent", agent.clone());
        }
        extra
    }
}

/// AWS's `AccessDeniedException` for a verdict other than [`Verdict::Allow`].
fn refuse_unless_allowed(
    req: &Request<'_>,
    verdict: Verdict,
    action: &str,
    resource: &str,
) -> Result<(), KmsError> {
    match verdict.explanation(action) {
        None => Ok(()),
        Some(why) => Err(KmsError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
            req.caller.principal_arn
        ))),
    }
}

/// One condition key with one value.
pub(crate) fn condition(key: &str, value: impl ToString) -> (String, Vec<String>) {
    (key.to_owned(), vec![value.to_string()])
}

#[cfg(test)]
mod tests {

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    use super::*;
    use crate::testing::{ALICE, BOB, Harness, ROOT};
    use crate::throttle::QuotaConfig;

    #[test]
    fn kms_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Kms>();
    }

    #[tokio::test]
    async fn futures_of_handle_and_run_due_tasks_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let h = Harness::new().await;
        let caller = h.caller(ROOT);
        assert_send(h.kms.handle(&caller, "ListKeys", b"{}"));
        assert_send(h.kms.run_due_tasks());
    }

    #[tokio::test]
    async fn every_request_writes_one_audit_event_success_or_failure() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ALICE,
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "aGk=", "EncryptionContext": {"app": "a"}}),
        )
        .await;
        h.err(BOB, "DescribeKey", json!({"KeyId": "alias/missing"}))
            .await;
        let unknown = h.raw(ROOT, "FlyToTheMoon", b"{}").await.unwrap_err();
        assert_eq!(unknown.error_type(), "UnknownOperationException");
        let unsupported = h.raw(ROOT, "Sign", b"{}").await.unwrap_err();
        assert_eq!(unsupported.error_type(), "UnsupportedOperationException");
        assert_eq!(
            h.raw(ROOT, "ListKeys", b"[")
                .await
                .unwrap_err()
                .error_type(),
            "SerializationException"
        );

        let log = h.audit_log();
        let names: Vec<_> = log
            .iter()
            .map(|e| e["eventName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "CreateKey",
                "Encrypt",
                "DescribeKey",
                "FlyToTheMoon",
                "Sign",
                "ListKeys"
            ]
        );
        let encrypt = &log[1];
        assert_eq!(encrypt["userIdentity"]["type"], "IAMUser");
        assert_eq!(encrypt["userIdentity"]["userName"], "alice");
        assert_eq!(encrypt["userIdentity"]["accessKeyId"], "AKIAALICE");
        assert_eq!(encrypt["eventSource"], "kms.amazonaws.com");
        assert_eq!(encrypt["awsRegion"], "us-east-1");
        assert_eq!(encrypt["sourceIPAddress"], "192.0.2.10");
        assert_eq!(encrypt["userAgent"], "coffer-test");
        assert_eq!(encrypt["eventTime"], "2025-06-15T15:06:40Z");
        assert_eq!(encrypt["readOnly"], true);
        assert_eq!(encrypt["eventType"], "AwsApiCall");
        assert_eq!(encrypt["eventCategory"], "Management");
        assert_eq!(encrypt["managementEvent"], true);
        assert_eq!(
            encrypt["requestParameters"],
            json!({"keyId": id, "encryptionContext": {"app": "a"}})
        );
        assert_eq!(encrypt["resources"][0]["ARN"], h.key_arn(&id).as_str());
        assert_eq!(encrypt["resources"][0]["type"], "AWS::KMS::Key");
        assert!(encrypt.get("errorCode").is_none());
        assert_eq!(log[0]["readOnly"], false);
        assert_eq!(
            log[0]["responseElements"]["keyMetadata"]["keyId"],
            id.as_str()
        );
        assert_eq!(log[2]["errorCode"], "NotFoundException");
        assert!(
            log[2]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("alias/missing")
        );
        assert_eq!(log[3]["errorCode"], "UnknownOperationException");
        assert_eq!(log[4]["errorCode"], "UnsupportedOperationException");
        assert_eq!(log[5]["errorCode"], "SerializationException");
        assert!(log[5]["requestParameters"].is_null());
        let ids: std::collections::HashSet<_> = log.iter().map(|e| e["eventID"].clone()).collect();
        assert_eq!(ids.len(), log.len());
        let chain = h.verify_audit_log();
        assert!(chain.intact(), "{chain:?}");
        assert_eq!(chain.lines, 6);
    }

    #[tokio::test]
    async fn audit_log_never_holds_plaintexts_data_keys_or_ciphertexts() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let other = h.create_key().await;
        let secret = STANDARD.encode(b"the launch codes are 0000");
        let enc = h
            .ok(ROOT, "Encrypt", json!({"KeyId": id, "Plaintext": secret}))
            .await;
        let dec = h
            .ok(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": enc["CiphertextBlob"]}),
            )
            .await;
        let re = h
            .ok(
                ROOT,
                "ReEncrypt",
                json!({"CiphertextBlob": enc["CiphertextBlob"], "DestinationKeyId": other}),
            )
            .await;
        let dk = h
            .ok(
                ROOT,
                "GenerateDataKey",
                json!({"KeyId": id, "KeySpec": "AES_256"}),
            )
            .await;
        let random = h
            .ok(ROOT, "GenerateRandom", json!({"NumberOfBytes": 32}))
            .await;
        h.err(
            ROOT,
            "Encrypt",
            json!({"KeyId": "alias/none", "Plaintext": secret}),
        )
        .await;
        let text = h.audit_text();
        for needle in [
            secret.as_str(),
            "launch codes",
            enc["CiphertextBlob"].as_str().unwrap(),
            dec["Plaintext"].as_str().unwrap(),
            re["CiphertextBlob"].as_str().unwrap(),
            dk["Plaintext"].as_str().unwrap(),
            dk["CiphertextBlob"].as_str().unwrap(),
            random["Plaintext"].as_str().unwrap(),
        ] {
            assert!(!text.contains(needle), "the audit log holds {needle}");
        }
        assert_eq!(h.audit_log().len(), 8);
    }

    #[tokio::test]
    async fn a_quota_answers_throttling_exception_and_the_refusal_is_audited() {
        let h = Harness::with_quotas(QuotaConfig {
            cryptographic: 1,
            ..QuotaConfig::unlimited()
        })
        .await;
        let id = h.create_key().await;
        let body = json!({"KeyId": id, "KeySpec": "AES_256"});
        let mut throttled = 0;
        for _ in 0..5 {
            if let Err(e) = h.call(ROOT, "GenerateDataKey", body.clone()).await {
                assert_eq!(e.error_type(), "ThrottlingException");
                assert_eq!(e.status(), 400);
                throttled += 1;
            }
        }
        assert!(throttled >= 3, "only {throttled} of 5 were throttled");
        h.ok(ROOT, "DescribeKey", json!({ "KeyId": id })).await;
        assert_eq!(
            h.audit_events("GenerateDataKey")
                .iter()
                .filter(|e| e["errorCode"] == "ThrottlingException")
                .count(),
            throttled
        );
    }

    #[tokio::test]
    async fn a_request_whose_audit_event_cannot_be_written_fails() {
        let h = Harness::new().await;
        h.kms.audit.close();
        let err = h
            .call(ROOT, "GenerateRandom", json!({"NumberOfBytes": 16}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "KMSInternalException");
        assert_eq!(err.status(), 500);
    }

    fn refused<'a>(source_ip: &'a str, user_agent: &'a str, code: &'a str) -> RefusedCall<'a> {
        RefusedCall {
            claimed_access_key: Some("AKIASTRANGER"),
            event_name: "Encrypt",
            source_ip,
            user_agent: Some(user_agent),
            request_id: "req-refused",
            error_code: code,
            error_message: "The request signature we calculated does not match",
        }
    }

    #[tokio::test]
    async fn a_flood_of_refusals_from_one_source_is_one_event_and_one_summary() {
        let h = Harness::new().await;
        for _ in 0..500 {
            h.kms
                .audit_refused(refused("192.0.2.9", "curl", "InvalidSignatureException"))
                .await
                .unwrap();
        }
        h.kms
            .audit_refused(refused("192.0.2.9", "curl", "UnrecognizedClientException"))
            .await
            .unwrap();
        h.kms
            .audit_refused(refused("198.51.100.1", "curl", "InvalidSignatureException"))
            .await
            .unwrap();
        assert_eq!(
            h.audit_log().len(),
            3,
            "one event per source and error code"
        );

        // The window ends: the scheduler writes the summary of what was only counted.
        h.clock.advance_days(1);
        h.kms.run_due_tasks().await.unwrap();
        let summaries = h.audit_events("RefusedRequestsSummary");
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        let s = &summaries[0];
        assert_eq!(s["sourceIPAddress"], "192.0.2.9");
        assert_eq!(s["errorCode"], "InvalidSignatureException");
        assert_eq!(s["serviceEventDetails"]["refusedRequests"], 500);
        assert_eq!(s["serviceEventDetails"]["loggedIndividually"], 1);
        assert_eq!(h.audit_log().len(), 4);
        assert!(h.verify_audit_log().intact());

        // At shutdown the open window is written out at once.
        h.kms
            .audit_refused(refused("192.0.2.9", "curl", "InvalidSignatureException"))
            .await
            .unwrap();
        h.kms
            .audit_refused(refused("192.0.2.9", "curl", "InvalidSignatureException"))
            .await
            .unwrap();
        h.kms.flush_refusals().await.unwrap();
        assert_eq!(h.audit_events("RefusedRequestsSummary").len(), 2);
    }

    #[tokio::test]
    async fn fields_a_stranger_sends_are_cut_short_in_the_log() {
        let h = Harness::new().await;
        let long = "é".repeat(50_000);
        let call = RefusedCall {
            claimed_access_key: Some(&long),
            event_name: &long,
            source_ip: "192.0.2.9",
            user_agent: Some(&long),
            request_id: "req-refused",
            error_code: &long,
            error_message: &long,
        };
        h.kms.audit_refused(call).await.unwrap();
        let text = h.audit_text();
        assert!(text.len() < 4096, "the line is {} bytes", text.len());
        let event = &h.audit_log()[0];
        assert_eq!(
            event["userAgent"].as_str().unwrap().len(),
            trail::MAX_USER_AGENT
        );
        assert!(
            event["userIdentity"]["accessKeyId"].as_str().unwrap().len()
                <= trail::MAX_ACCESS_KEY_ID
        );
        assert!(event["errorMessage"].as_str().unwrap().len() <= trail::MAX_ERROR_MESSAGE);
    }

    #[tokio::test]
    async fn key_arn_resolves_every_kind_of_name() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        h.ok(
            ROOT,
            "CreateAlias",
            json!({"AliasName": "alias/s3", "TargetKeyId": id}),
        )
        .await;
        for name in [id.as_str(), "alias/s3", &h.key_arn(&id)] {
            assert_eq!(h.kms.key_arn(name).unwrap(), h.key_arn(&id));
        }
        assert!(matches!(
            h.kms.key_arn("alias/none"),
            Err(KmsError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn policies_see_secure_transport_source_ip_and_caller_account() {
        let h = Harness::new().await;
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*",
                 "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"}}},
                {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
                {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                 "Condition": {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}
            ]
        })
        .to_string();
        let id = h.create_key_with_policy(&policy).await;
        let body = json!({"KeyId": id, "Plaintext": "aGk="}).to_string();
        let enc: serde_json::Value = serde_json::from_slice(
            &h.kms
                .handle(&h.caller(ALICE), "Encrypt", body.as_bytes())
                .await
                .unwrap(),
        )
        .unwrap();
        let mut plain_http = h.caller(ALICE);
        plain_http.secure_transport = false;
        let err = h
            .kms
            .handle(&plain_http, "Encrypt", body.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "AccessDeniedException");
        assert!(err.message().contains("explicit deny"));
        let decrypt = json!({"CiphertextBlob": enc["CiphertextBlob"]}).to_string();
        let mut elsewhere = h.caller(ALICE);
        elsewhere.source_ip = "198.51.100.7".into();
        let err = h
            .kms
            .handle(&elsewhere, "Decrypt", decrypt.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "AccessDeniedException");
        h.kms
            .handle(&h.caller(ALICE), "Decrypt", decrypt.as_bytes())
            .await
            .unwrap();
    }
}
