//! Test harness for the operation files: a real `Kms` over a redb store and a real audit log in a
//! temp dir, a clock the test moves, and callers by name. Test-only; never part of the service.

use std::sync::{Arc, Mutex};

use coffer_crypto::Key256;
use coffer_store::MetaStore;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::audit::{self, AuditLog};
use crate::throttle::QuotaConfig;
use crate::{Caller, Clock, Kms, KmsConfig, KmsError};

/// The root key pair.
pub const ROOT: &str = "root";
/// An IAM user.
pub const ALICE: &str = "alice";
/// Another IAM user.
pub const BOB: &str = "bob";

const ACCOUNT: &str = "111122223333";

/// A user allowed everything by its identity policies (what users of the tests are, unless a test
/// gives them other policies with [`Harness::caller_with_policies`]).
fn full_access() -> coffer_policy::Identity {
    coffer_policy::Identity::User(
        [coffer_policy::PolicyDocument::parse_identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .unwrap()]
        .into(),
    )
}

/// A clock that stands still until the test moves it.
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    /// Moves the clock forward.
    pub fn advance_days(&self, days: i64) {
        let mut now = self.0.lock().unwrap();
        *now += time::Duration::days(days);
    }

    /// The current time in seconds, as the API reports dates.
    pub fn now_secs(&self) -> f64 {
        self.now().unix_timestamp() as f64
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// A running key service and what it needs to restart.
pub struct Harness {
    pub kms: Kms,
    pub clock: Arc<FakeClock>,
    dir: tempfile::TempDir,
    meta: Arc<MetaStore>,
    root: Key256,
    cfg: KmsConfig,
}

impl Harness {
    /// A fresh service without quotas.
    pub async fn new() -> Harness {
        Harness::with_quotas(QuotaConfig::unlimited()).await
    }

    /// A fresh service with these quotas.
    pub async fn with_quotas(quotas: QuotaConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(MetaStore::open(&dir.path().join("meta.redb")).unwrap());
        let clock = Arc::new(FakeClock(Mutex::new(
            OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        )));
        let cfg = KmsConfig {
            quotas,
            ..KmsConfig::default()
        };
        let root = Key256::generate().unwrap();
        let kms = open(&dir, &meta, &root, &cfg, &clock);
        Harness {
            kms,
            clock,
            dir,
            meta,
            root,
            cfg,
        }
    }

    /// Stops the service and opens it again on the same store, root key, clock and audit log.
    pub async fn restart(self) -> Harness {
        let Harness {
            kms,
            clock,
            dir,
            meta,
            root,
            cfg,
        } = self;
        drop(kms);
        let kms = open(&dir, &meta, &root, &cfg, &clock);
        Harness {
            kms,
            clock,
            dir,
            meta,
            root,
            cfg,
        }
    }

    /// The principal ARN of a caller.
    pub fn principal(&self, who: &str) -> String {
        if who == ROOT {
            format!("arn:aws:iam::{ACCOUNT}:root")
        } else {
            format!("arn:aws:iam::{ACCOUNT}:user/{who}")
        }
    }

    /// A caller by name.
    pub fn caller(&self, who: &str) -> Caller {
        Caller {
            access_key: format!("AKIA{}", who.to_uppercase()),
            principal_arn: self.principal(who),
            source_ip: "192.0.2.10".into(),
            user_agent: Some("coffer-test".into()),
            request_id: uuid::Uuid::new_v4().to_string(),
            secure_transport: true,
            identity: if who == ROOT {
                coffer_policy::Identity::Root
            } else {
                full_access()
            },
        }
    }

    /// A caller by name whose identity policies are `policies` (JSON documents).
    pub fn caller_with_policies(&self, who: &str, policies: &[&str]) -> Caller {
        Caller {
            identity: coffer_policy::Identity::User(
                policies
                    .iter()
                    .map(|p| coffer_policy::PolicyDocument::parse_identity(p).unwrap())
                    .collect(),
            ),
            ..self.caller(who)
        }
    }

    /// One request with a raw body.
    pub async fn raw(&self, who: &str, op: &str, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.kms.handle(&self.caller(who), op, body).await
    }

    /// One request; the response as JSON (`{}` for an empty body).
    pub async fn call(&self, who: &str, op: &str, body: Value) -> Result<Value, KmsError> {
        let out = self.raw(who, op, body.to_string().as_bytes()).await?;
        if out.is_empty() {
            return Ok(json!({}));
        }
        Ok(serde_json::from_slice(&out).expect("responses are JSON"))
    }

    /// A request that must succeed.
    pub async fn ok(&self, who: &str, op: &str, body: Value) -> Value {
        match self.call(who, op, body.clone()).await {
            Ok(out) => out,
            Err(e) => panic!("{op} {body} failed: {e}"),
        }
    }

    /// A request that must fail; its error type.
    pub async fn err(&self, who: &str, op: &str, body: Value) -> &'static str {
        match self.call(who, op, body.clone()).await {
            Ok(out) => panic!("{op} {body} succeeded: {out}"),
            Err(e) => e.error_type(),
        }
    }

    /// A new key with the default policy; its id.
    pub async fn create_key(&self) -> String {
        let out = self.ok(ROOT, "CreateKey", json!({})).await;
        out["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    }

    /// A new key with this policy (lockout check bypassed); its id.
    pub async fn create_key_with_policy(&self, policy: &str) -> String {
        let out = self
            .ok(
                ROOT,
                "CreateKey",
                json!({"Policy": policy, "BypassPolicyLockoutSafetyCheck": true}),
            )
            .await;
        out["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    }

    /// A policy allowing exactly one caller `action` on the key.
    pub fn policy_allowing(&self, who: &str, action: &str) -> String {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": self.principal(who)},
                "Action": action,
                "Resource": "*",
            }],
        })
        .to_string()
    }

    /// The key ARN of a key id.
    pub fn key_arn(&self, id: &str) -> String {
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}")
    }

    /// DescribeKey's `KeyMetadata`.
    pub async fn describe(&self, key_id: &str) -> Value {
        self.ok(ROOT, "DescribeKey", json!({ "KeyId": key_id }))
            .await["KeyMetadata"]
            .clone()
    }

    /// Every key id ListKeys returns.
    pub async fn list_key_ids(&self) -> Vec<String> {
        let out = self.ok(ROOT, "ListKeys", json!({"Limit": 1000})).await;
        out["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["KeyId"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every audit event so far.
    pub fn audit_log(&self) -> Vec<Value> {
        audit::read_events(&self.audit_path(), None, usize::MAX).unwrap()
    }

    /// Where the audit log is.
    pub fn audit_path(&self) -> std::path::PathBuf {
        self.dir.path().join("audit.log")
    }

    /// The audit log file as text.
    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(self.audit_path()).unwrap()
    }

    /// The audit events with this `eventName`.
    pub fn audit_events(&self, name: &str) -> Vec<Value> {
        self.audit_log()
            .into_iter()
            .filter(|e| e["eventName"] == name)
            .collect()
    }

    /// Names of the stored KMS records under a prefix.
    pub fn stored_records(&self, prefix: &str) -> Vec<String> {
        self.meta
            .kv_scan("kms", prefix)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }
}

fn open(
    dir: &tempfile::TempDir,
    meta: &Arc<MetaStore>,
    root: &Key256,
    cfg: &KmsConfig,
    clock: &Arc<FakeClock>,
) -> Kms {
    let audit = AuditLog::open(&dir.path().join("audit.log")).unwrap();
    let clock: Arc<dyn Clock> = Arc::clone(clock) as Arc<dyn Clock>;
    Kms::open(Arc::clone(meta), root.clone(), cfg.clone(), clock, audit).unwrap()
}
