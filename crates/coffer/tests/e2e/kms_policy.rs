//! KMS key policies end to end with aws-sdk-kms: the default policy (AWS's "Enable IAM User
//! Permissions" for the account root), GetKeyPolicy/PutKeyPolicy/ListKeyPolicies, malformed
//! policies, a Deny for a second access key (a user made with `coffer user add`) enforced
//! per operation while the root key keeps working, and conditions on the alias a request used
//! (`kms:RequestAlias`) and on tags (`aws:ResourceTag/…`, `aws:RequestTag/…`, `aws:TagKeys`).

use crate::common;

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::types::Tag;
use common::{
    alias_arn, assert_kms_error, create_key, decrypt, encrypt, kms_server, ok, root_arn, user_arn,
};

/// Whether a policy `Action` (a string or a list) names `action`.
fn names(value: &serde_json::Value, action: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == action,
        serde_json::Value::Array(items) => items.iter().any(|v| v == action),
        _ => false,
    }
}

#[tokio::test]
async fn the_default_policy_lets_the_account_root_use_the_key() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "default policy")
        .await
        .key_id()
        .to_string();

    let listed = ok(kms.list_key_policies().key_id(&id).send().await);
    assert_eq!(listed.policy_names(), ["default"]);
    assert!(!listed.truncated());

    let out = ok(kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await);
    assert_eq!(out.policy_name(), Some("default"));
    let policy: serde_json::Value =
        serde_json::from_str(out.policy().expect("Policy")).expect("the policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("Statement list");
    assert!(
        statements.iter().any(|s| {
            s["Effect"] == "Allow"
                && (s["Principal"]["AWS"] == root_arn()
                    || names(&s["Principal"]["AWS"], &root_arn()))
                && names(&s["Action"], "kms:*")
                && s["Resource"] == "*"
        }),
        "the default policy allows kms:* to {}: {policy}",
        root_arn()
    );

    // PolicyName is optional (it defaults to "default").
    let again = ok(kms.get_key_policy().key_id(&id).send().await);
    assert_eq!(again.policy(), out.policy());

    assert_kms_error(
        kms.get_key_policy()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .policy_name("default")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn put_key_policy_replaces_the_policy() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "policy swap").await.key_id().to_string();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-policy-2",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": root_arn()},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "Keep this key",
                "Effect": "Deny",
                "Principal": {"AWS": root_arn()},
                "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey"],
                "Resource": "*"
            }
        ]
    });
    ok(kms
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await);
    let got = ok(kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await);
    let got: serde_json::Value =
        serde_json::from_str(got.policy().expect("Policy")).expect("the policy is JSON");
    assert_eq!(got, policy);
    assert_eq!(
        ok(kms.list_key_policies().key_id(&id).send().await).policy_names(),
        ["default"]
    );
    // The new policy is in force: root may still use the key, but not what it now denies.
    let blob = encrypt(&kms, &id, b"still mine", &[]).await;
    assert_eq!(decrypt(&kms, &blob, &[]).await, b"still mine");
    assert_kms_error(
        kms.schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(7)
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_kms_error(
        kms.disable_key().key_id(&id).send().await,
        "AccessDeniedException",
    );
    assert_eq!(
        common::key_state(&kms, &id).await,
        aws_sdk_kms::types::KeyState::Enabled
    );
}

#[tokio::test]
async fn a_malformed_policy_is_refused() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "strict").await.key_id().to_string();
    let before = ok(kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await)
    .policy
    .expect("Policy");
    let allow_root = serde_json::json!({
        "Effect": "Allow", "Principal": {"AWS": root_arn()}, "Action": "kms:*", "Resource": "*"
    });
    for (what, bad) in [
        ("not JSON", "{\"Version\": \"2012-10-17\", \"Statement\": [".to_string()),
        ("a JSON string", "\"kms:*\"".to_string()),
        (
            "no Statement",
            serde_json::json!({"Version": "2012-10-17"}).to_string(),
        ),
        (
            "an Effect that is neither Allow nor Deny",
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                allow_root,
                {"Effect": "Perhaps", "Principal": {"AWS": root_arn()}, "Action": "kms:*", "Resource": "*"}
            ]})
            .to_string(),
        ),
        (
            "a statement without Action",
            serde_json::json!({"Version": "2012-10-17", "Statement": [
                allow_root,
                {"Effect": "Deny", "Principal": {"AWS": root_arn()}, "Resource": "*"}
            ]})
            .to_string(),
        ),
    ] {
        let failure = common::s3_failure(
            kms.put_key_policy()
                .key_id(&id)
                .policy_name("default")
                .policy(bad)
                .send()
                .await,
        );
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (400, Some("MalformedPolicyDocumentException")),
            "{what}: {failure:?}"
        );
    }
    let after = ok(kms
        .get_key_policy()
        .key_id(&id)
        .policy_name("default")
        .send()
        .await)
    .policy
    .expect("Policy");
    assert_eq!(after, before, "a refused policy changes nothing");
}

#[tokio::test]
async fn a_policy_that_would_lock_out_the_caller_is_refused() {
    // AWS's "policy lockout safety check": without BypassPolicyLockoutSafetyCheck, a policy
    // that would not let the caller PutKeyPolicy again is a MalformedPolicyDocumentException.
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "no lockout").await.key_id().to_string();
    let lockout = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": user_arn("somebody-else")},
            "Action": "kms:*",
            "Resource": "*"
        }, {
            "Effect": "Deny",
            "Principal": {"AWS": root_arn()},
            "Action": "kms:PutKeyPolicy",
            "Resource": "*"
        }]
    });
    assert_kms_error(
        kms.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(lockout.to_string())
            .send()
            .await,
        "MalformedPolicyDocumentException",
    );
    encrypt(&kms, &id, b"root still in", &[]).await;
}

#[tokio::test]
async fn a_deny_for_bob_stops_his_encrypt_but_not_root() {
    let mut server = kms_server();
    let (bob_key, bob_secret) = server.add_user("bob");
    let kms = server.kms_client();
    let bob = server.kms_client_as(&bob_key, &bob_secret);
    let id = create_key(&kms, "shared").await.key_id().to_string();

    // Under the default policy every principal of the account whose identity policy allows it
    // (bob's allows everything) may use the key.
    let bobs_blob = encrypt(&bob, &id, b"bob was here", &[]).await;
    assert_eq!(decrypt(&kms, &bobs_blob, &[]).await, b"bob was here");

    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": root_arn()},
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Sid": "Bob may not encrypt",
                "Effect": "Deny",
                "Principal": {"AWS": user_arn("bob")},
                "Action": "kms:Encrypt",
                "Resource": "*"
            }
        ]
    });
    ok(kms
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await);

    let failure = assert_kms_error(
        bob.encrypt()
            .key_id(&id)
            .plaintext(Blob::new("denied"))
            .send()
            .await,
        "AccessDeniedException",
    );
    eprintln!("bob's Encrypt: {failure:?}");
    // Root still encrypts; bob may still do what is not denied.
    let roots_blob = encrypt(&kms, &id, b"root may", &[]).await;
    assert_eq!(decrypt(&bob, &roots_blob, &[]).await, b"root may");
    ok(bob
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await);
    ok(bob.describe_key().key_id(&id).send().await);

    // A second key that denies bob everything.
    let locked = create_key(&kms, "not for bob").await.key_id().to_string();
    let deny_all = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root_arn()}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": user_arn("bob")}, "Action": "kms:*", "Resource": "*"}
        ]
    });
    ok(kms
        .put_key_policy()
        .key_id(&locked)
        .policy(deny_all.to_string())
        .policy_name("default")
        .send()
        .await);
    let locked_blob = encrypt(&kms, &locked, b"root only", &[]).await;
    assert_kms_error(
        bob.decrypt()
            .ciphertext_blob(Blob::new(locked_blob.clone()))
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_kms_error(
        bob.describe_key().key_id(&locked).send().await,
        "AccessDeniedException",
    );
    assert_kms_error(
        bob.put_key_policy()
            .key_id(&locked)
            .policy_name("default")
            .policy(serde_json::json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}
            ]}).to_string())
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_eq!(decrypt(&kms, &locked_blob, &[]).await, b"root only");

    // The refusal is audited with bob's identity and the error code.
    let event = server.wait_for_audit_event(Duration::from_secs(5), |e| {
        e["eventName"] == "Encrypt"
            && e["userIdentity"]["arn"] == user_arn("bob")
            && e["errorCode"]
                .as_str()
                .is_some_and(|c| c.starts_with("AccessDenied"))
    });
    let event = event.unwrap_or_else(|| {
        panic!(
            "no audit event for bob's denied Encrypt:\n{}",
            server.audit_lines().join("\n")
        )
    });
    assert_eq!(event["userIdentity"]["accessKeyId"], bob_key.as_str());
}

#[tokio::test]
async fn alias_and_tag_conditions_hold_however_the_key_is_named() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "conditions").await.key_id().to_string();
    ok(kms
        .create_alias()
        .alias_name("alias/finance-key")
        .target_key_id(&id)
        .send()
        .await);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root_arn()}, "Action": "kms:*", "Resource": "*"},
            {
                "Sid": "Not through the finance alias",
                "Effect": "Deny", "Principal": "*",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:RequestAlias": "alias/finance-key"}}
            },
            {
                "Sid": "Secret keys do not encrypt",
                "Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/classification": "secret"}}
            },
            {
                "Sid": "Nobody sets an owner tag",
                "Effect": "Deny", "Principal": "*", "Action": "kms:TagResource", "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner"]}}
            },
            {
                "Sid": "Stage tags only say prod or dev",
                "Effect": "Deny", "Principal": "*", "Action": "kms:TagResource", "Resource": "*",
                "Condition": {
                    "Null": {"aws:RequestTag/stage": "false"},
                    "StringNotEquals": {"aws:RequestTag/stage": ["prod", "dev"]}
                }
            }
        ]
    });
    ok(kms
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await);

    // By key id the key works; by the alias name or the alias ARN it is refused, for every
    // operation the statement names.
    let blob = encrypt(&kms, &id, b"payroll", &[]).await;
    for named in [
        "alias/finance-key".to_owned(),
        alias_arn("alias/finance-key"),
    ] {
        assert_kms_error(
            kms.encrypt()
                .key_id(&named)
                .plaintext(Blob::new("x"))
                .send()
                .await,
            "AccessDeniedException",
        );
        assert_kms_error(
            kms.generate_data_key()
                .key_id(&named)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await,
            "AccessDeniedException",
        );
        assert_kms_error(
            kms.decrypt()
                .key_id(&named)
                .ciphertext_blob(Blob::new(blob.clone()))
                .send()
                .await,
            "AccessDeniedException",
        );
        assert_kms_error(
            kms.describe_key().key_id(&named).send().await,
            "AccessDeniedException",
        );
    }
    assert_eq!(decrypt(&kms, &blob, &[]).await, b"payroll");
    ok(kms.describe_key().key_id(&id).send().await);

    // aws:TagKeys and aws:RequestTag/<key> come from the TagResource request.
    let tag = |k: &str, v: &str| Tag::builder().tag_key(k).tag_value(v).build().unwrap();
    assert_kms_error(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("team", "payroll"))
            .tags(tag("owner", "mallory"))
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_kms_error(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("stage", "test"))
            .send()
            .await,
        "AccessDeniedException",
    );
    ok(kms
        .tag_resource()
        .key_id(&id)
        .tags(tag("stage", "prod"))
        .send()
        .await);

    // aws:ResourceTag/<key> comes from the key's tags as they are when the request arrives.
    ok(kms
        .tag_resource()
        .key_id(&id)
        .tags(tag("classification", "secret"))
        .send()
        .await);
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new("x"))
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_eq!(decrypt(&kms, &blob, &[]).await, b"payroll");
    ok(kms
        .untag_resource()
        .key_id(&id)
        .tag_keys("classification")
        .send()
        .await);
    encrypt(&kms, &id, b"declassified", &[]).await;
    let tags = ok(kms.list_resource_tags().key_id(&id).send().await);
    let keys: Vec<_> = tags.tags().iter().map(|t| t.tag_key()).collect();
    assert_eq!(keys, ["stage"]);
}
