//! KMS key lifecycle end to end with aws-sdk-kms: ScheduleKeyDeletion (7–30 day window),
//! PendingDeletion refusing crypto with KMSInvalidStateException, CancelKeyDeletion (back to
//! Disabled, then EnableKey), and deletion for good when the window has passed on an injected
//! clock: the key is gone, its ciphertexts never decrypt again — also after a restart — and the
//! audit log records the destruction.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState};
use common::{
    DAY, TestServer, assert_kms_error, assert_kms_error_in, create_key, decrypt, encrypt, key_arn,
    key_state, kms_server, ok, set_clock_offset,
};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn schedule_key_deletion_puts_the_key_in_pending_deletion() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "doomed").await.key_id().to_string();
    let blob = encrypt(&kms, &id, b"written before", &[]).await;

    for bad in [6, 31, 0] {
        assert_kms_error(
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(bad)
                .send()
                .await,
            "ValidationException",
        );
    }
    assert_eq!(key_state(&kms, &id).await, KeyState::Enabled);

    let out = ok(kms
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await);
    assert_eq!(out.key_id(), Some(key_arn(&id).as_str()));
    assert_eq!(out.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(out.pending_window_in_days(), Some(7));
    let when = out.deletion_date().expect("DeletionDate").secs();
    assert!(
        (when - (now_secs() + 7 * DAY)).abs() <= DAY,
        "DeletionDate {when} is about 7 days from now"
    );

    let meta = ok(kms.describe_key().key_id(&id).send().await)
        .key_metadata
        .expect("KeyMetadata");
    assert_eq!(meta.key_state(), Some(&KeyState::PendingDeletion));
    assert!(!meta.enabled());
    assert!(meta.deletion_date().is_some());
    assert_eq!(meta.pending_deletion_window_in_days(), Some(7));

    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new("refused"))
            .send()
            .await,
        "KMSInvalidStateException",
    );
    assert_kms_error(
        kms.decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await,
        "KMSInvalidStateException",
    );
    assert_kms_error(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
        "KMSInvalidStateException",
    );
    assert_kms_error(
        kms.enable_key().key_id(&id).send().await,
        "KMSInvalidStateException",
    );
    assert_kms_error(
        kms.schedule_key_deletion()
            .key_id(&id)
            .pending_window_in_days(7)
            .send()
            .await,
        "KMSInvalidStateException",
    );

    // Without a window: AWS's default of 30 days.
    let other = create_key(&kms, "default window")
        .await
        .key_id()
        .to_string();
    let out = ok(kms.schedule_key_deletion().key_id(&other).send().await);
    assert_eq!(out.pending_window_in_days(), Some(30));
    let when = out.deletion_date().expect("DeletionDate").secs();
    assert!((when - (now_secs() + 30 * DAY)).abs() <= DAY);
}

#[tokio::test]
async fn cancel_key_deletion_leaves_the_key_disabled_until_enabled() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "reprieved").await.key_id().to_string();
    let blob = encrypt(&kms, &id, b"kept", &[("k", "v")]).await;
    ok(kms
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(30)
        .send()
        .await);

    let out = ok(kms.cancel_key_deletion().key_id(&id).send().await);
    assert!(
        out.key_id() == Some(key_arn(&id).as_str()) || out.key_id() == Some(id.as_str()),
        "{:?}",
        out.key_id()
    );
    let meta = ok(kms.describe_key().key_id(&id).send().await)
        .key_metadata
        .expect("KeyMetadata");
    assert_eq!(meta.key_state(), Some(&KeyState::Disabled));
    assert_eq!(meta.deletion_date(), None);
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new("x"))
            .send()
            .await,
        "DisabledException",
    );

    ok(kms.enable_key().key_id(&id).send().await);
    assert_eq!(key_state(&kms, &id).await, KeyState::Enabled);
    assert_eq!(decrypt(&kms, &blob, &[("k", "v")]).await, b"kept");
    let again = encrypt(&kms, &id, b"again", &[]).await;
    assert_eq!(decrypt(&kms, &again, &[]).await, b"again");

    // Nothing to cancel now.
    assert_kms_error(
        kms.cancel_key_deletion().key_id(&id).send().await,
        "KMSInvalidStateException",
    );
    assert_kms_error(
        kms.cancel_key_deletion()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
}

/// Decrypt of a ciphertext whose key was deleted: AWS answers NotFoundException (the key is
/// gone); InvalidCiphertextException would also tell the truth.
const GONE: &[&str] = &["NotFoundException", "InvalidCiphertextException"];

#[tokio::test]
async fn a_deleted_key_never_decrypts_again_also_after_a_restart() {
    let clock_dir = tempfile::tempdir().expect("temp dir");
    let clock = clock_dir.path().join("clock-offset");
    set_clock_offset(&clock, 0);
    let mut server = TestServer::builder()
        .args(["--kms-quotas", "off", "--kms-task-interval", "1"])
        .arg("--clock-offset-file")
        .arg(&clock)
        .start();
    let kms = server.kms_client();
    let doomed = create_key(&kms, "shredded").await.key_id().to_string();
    let kept = create_key(&kms, "kept").await.key_id().to_string();
    ok(kms
        .create_alias()
        .alias_name("alias/doomed")
        .target_key_id(&doomed)
        .send()
        .await);
    let doomed_blob = encrypt(&kms, &doomed, b"crypto-shredded soon", &[("x", "1")]).await;
    let kept_blob = encrypt(&kms, &kept, b"still readable", &[]).await;
    ok(kms
        .schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await);

    // Scheduler runs at the real time delete nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(key_state(&kms, &doomed).await, KeyState::PendingDeletion);

    // 31 days later (for the KMS clock) the window has passed.
    set_clock_offset(&clock, 31 * DAY);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match kms.describe_key().key_id(&doomed).send().await {
            Ok(out) => {
                assert!(
                    Instant::now() < deadline,
                    "key still there 20 s after its deletion date passed: {:?}\n{}",
                    out.key_metadata,
                    server.output()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                assert_kms_error::<(), _>(Err(e), "NotFoundException");
                break;
            }
        }
    }

    let failure = assert_kms_error_in(
        kms.decrypt()
            .ciphertext_blob(Blob::new(doomed_blob.clone()))
            .set_encryption_context(Some(common::context(&[("x", "1")])))
            .send()
            .await,
        GONE,
    );
    eprintln!("Decrypt under a deleted key answered {failure:?}");
    assert_kms_error(
        kms.describe_key().key_id("alias/doomed").send().await,
        "NotFoundException",
    );
    let aliases = ok(kms.list_aliases().send().await);
    assert!(
        aliases
            .aliases()
            .iter()
            .all(|a| a.alias_name() != Some("alias/doomed")),
        "the deleted key's alias is deleted with it: {:?}",
        aliases.aliases()
    );
    let keys = ok(kms.list_keys().send().await);
    assert!(
        keys.keys()
            .iter()
            .all(|k| k.key_id() != Some(doomed.as_str())),
        "ListKeys still lists the deleted key"
    );
    assert_eq!(decrypt(&kms, &kept_blob, &[]).await, b"still readable");

    // The audit log records the destruction.
    let event = server.wait_for_audit_event(Duration::from_secs(5), |e| {
        e["eventName"] == "DeleteKey" && e.to_string().contains(&doomed)
    });
    assert!(
        event.is_some(),
        "no DeleteKey event for {doomed} in the audit log:\n{}",
        server.audit_lines().join("\n")
    );

    // Turning the clock back does not bring the key back, and neither does a restart.
    set_clock_offset(&clock, 0);
    server.restart();
    let kms = server.kms_client();
    assert_kms_error_in(
        kms.decrypt()
            .ciphertext_blob(Blob::new(doomed_blob))
            .set_encryption_context(Some(common::context(&[("x", "1")])))
            .send()
            .await,
        GONE,
    );
    assert_kms_error(
        kms.describe_key().key_id(&doomed).send().await,
        "NotFoundException",
    );
    assert_kms_error(
        kms.cancel_key_deletion().key_id(&doomed).send().await,
        "NotFoundException",
    );
    assert_eq!(decrypt(&kms, &kept_blob, &[]).await, b"still readable");
    encrypt(&kms, &kept, b"kept works", &[]).await;
}
