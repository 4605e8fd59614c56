//! KMS key rotation end to end with aws-sdk-kms: RotateKeyOnDemand (old ciphertexts still
//! decrypt, ListKeyRotations lists every rotation), EnableKeyRotation/DisableKeyRotation/
//! GetKeyRotationStatus with RotationPeriodInDays, and automatic rotation by the server's
//! scheduler, driven by an injected clock (`--clock-offset-file`).

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kms::types::RotationType;
use common::{
    DAY, TestServer, assert_kms_error, create_key, decrypt, encrypt, key_arn, kms_server, ok,
    set_clock_offset,
};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn rotate_on_demand_twice_keeps_old_ciphertexts_readable() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "rotated on demand")
        .await
        .key_id()
        .to_string();
    let empty = ok(kms.list_key_rotations().key_id(&id).send().await);
    assert!(empty.rotations().is_empty(), "a new key has no rotations");

    let v1 = encrypt(&kms, &id, b"under version 1", &[("v", "1")]).await;
    let out = ok(kms.rotate_key_on_demand().key_id(&id).send().await);
    assert!(
        out.key_id() == Some(id.as_str()) || out.key_id() == Some(key_arn(&id).as_str()),
        "RotateKeyOnDemand names the key: {:?}",
        out.key_id()
    );
    let v2 = encrypt(&kms, &id, b"under version 2", &[("v", "2")]).await;
    ok(kms.rotate_key_on_demand().key_id(key_arn(&id)).send().await);
    let v3 = encrypt(&kms, &id, b"under version 3", &[("v", "3")]).await;

    assert_eq!(decrypt(&kms, &v1, &[("v", "1")]).await, b"under version 1");
    assert_eq!(decrypt(&kms, &v2, &[("v", "2")]).await, b"under version 2");
    assert_eq!(decrypt(&kms, &v3, &[("v", "3")]).await, b"under version 3");

    let rotations = ok(kms.list_key_rotations().key_id(&id).send().await);
    assert_eq!(
        rotations.rotations().len(),
        2,
        "two on-demand rotations: {:?}",
        rotations.rotations()
    );
    assert!(!rotations.truncated());
    for r in rotations.rotations() {
        assert_eq!(r.rotation_type(), Some(&RotationType::OnDemand), "{r:?}");
        assert!(r.rotation_date().is_some(), "RotationDate is set: {r:?}");
        assert!(
            r.key_id() == Some(id.as_str()) || r.key_id() == Some(key_arn(&id).as_str()),
            "{r:?}"
        );
    }
    // Paging: one rotation per page.
    let first = ok(kms.list_key_rotations().key_id(&id).limit(1).send().await);
    assert_eq!(first.rotations().len(), 1);
    assert!(first.truncated());
    let second = ok(kms
        .list_key_rotations()
        .key_id(&id)
        .limit(1)
        .marker(first.next_marker().expect("NextMarker"))
        .send()
        .await);
    assert_eq!(second.rotations().len(), 1);
    assert!(!second.truncated());
    assert_ne!(first.rotations()[0], second.rotations()[0]);

    // Rotation survives a restart: the versions are stored, not only in memory.
    let mut server = server;
    server.restart();
    let kms = server.kms_client();
    assert_eq!(decrypt(&kms, &v1, &[("v", "1")]).await, b"under version 1");
    assert_eq!(decrypt(&kms, &v3, &[("v", "3")]).await, b"under version 3");
    let rotations = ok(kms.list_key_rotations().key_id(&id).send().await);
    assert_eq!(rotations.rotations().len(), 2);
}

#[tokio::test]
async fn rotation_needs_a_usable_key() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "disabled").await.key_id().to_string();
    ok(kms.disable_key().key_id(&id).send().await);
    assert_kms_error(
        kms.rotate_key_on_demand().key_id(&id).send().await,
        "DisabledException",
    );
    assert_kms_error(
        kms.rotate_key_on_demand()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
    let pending = create_key(&kms, "pending").await.key_id().to_string();
    ok(kms
        .schedule_key_deletion()
        .key_id(&pending)
        .pending_window_in_days(7)
        .send()
        .await);
    assert_kms_error(
        kms.rotate_key_on_demand().key_id(&pending).send().await,
        "KMSInvalidStateException",
    );
}

#[tokio::test]
async fn enable_key_rotation_with_a_period_and_read_the_status() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "auto").await.key_id().to_string();

    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    assert!(
        !status.key_rotation_enabled(),
        "rotation is off for a new key"
    );

    ok(kms
        .enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await);
    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(90));
    assert!(
        status.key_id() == Some(id.as_str()) || status.key_id() == Some(key_arn(&id).as_str()),
        "{:?}",
        status.key_id()
    );
    let next = status
        .next_rotation_date()
        .expect("NextRotationDate while rotation is on")
        .secs();
    let expected = now_secs() + 90 * DAY;
    assert!(
        (next - expected).abs() <= DAY,
        "NextRotationDate {next} should be about 90 days from now ({expected})"
    );

    // Without a period: AWS's default of 365 days.
    ok(kms.enable_key_rotation().key_id(&id).send().await);
    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(365));

    // The period must be 90..=2560 days.
    ok(kms
        .enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(2560)
        .send()
        .await);
    for bad in [89, 2561, 0] {
        assert_kms_error(
            kms.enable_key_rotation()
                .key_id(&id)
                .rotation_period_in_days(bad)
                .send()
                .await,
            "ValidationException",
        );
    }
    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    assert_eq!(
        status.rotation_period_in_days(),
        Some(2560),
        "a refused period changes nothing"
    );

    ok(kms.disable_key_rotation().key_id(&id).send().await);
    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    assert!(!status.key_rotation_enabled());

    assert_kms_error(
        kms.get_key_rotation_status()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn automatic_rotation_runs_when_the_period_has_passed() {
    let clock_dir = tempfile::tempdir().expect("temp dir");
    let clock = clock_dir.path().join("clock-offset");
    set_clock_offset(&clock, 0);
    let server = TestServer::builder()
        .args(["--kms-quotas", "off", "--kms-task-interval", "1"])
        .arg("--clock-offset-file")
        .arg(&clock)
        .start();
    let kms = server.kms_client();
    let id = create_key(&kms, "rotates itself")
        .await
        .key_id()
        .to_string();
    let other = create_key(&kms, "never rotates").await.key_id().to_string();
    let before = encrypt(&kms, &id, b"before the automatic rotation", &[]).await;
    ok(kms
        .enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(90)
        .send()
        .await);

    // A few scheduler runs at the real time rotate nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rotations = ok(kms.list_key_rotations().key_id(&id).send().await);
    assert!(
        rotations.rotations().is_empty(),
        "nothing is due yet: {:?}",
        rotations.rotations()
    );

    // 91 days later (for the KMS clock) the key is due.
    set_clock_offset(&clock, 91 * DAY);
    let deadline = Instant::now() + Duration::from_secs(20);
    let rotations = loop {
        let out = ok(kms.list_key_rotations().key_id(&id).send().await);
        if !out.rotations().is_empty() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no automatic rotation within 20 s of moving the clock 91 days ahead\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Let a few more scheduler runs pass: the key rotates once per period, not once per run.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let rotations_after = ok(kms.list_key_rotations().key_id(&id).send().await);
    assert_eq!(
        rotations_after.rotations().len(),
        1,
        "one period passed, one rotation: {:?}",
        rotations_after.rotations()
    );
    assert_eq!(
        rotations.rotations()[0].rotation_type(),
        Some(&RotationType::Automatic)
    );
    assert!(
        ok(kms.list_key_rotations().key_id(&other).send().await)
            .rotations()
            .is_empty(),
        "a key without automatic rotation is left alone"
    );

    // The next rotation is a period after this one.
    let status = ok(kms.get_key_rotation_status().key_id(&id).send().await);
    let next = status
        .next_rotation_date()
        .expect("NextRotationDate")
        .secs();
    let expected = now_secs() + (91 + 90) * DAY;
    assert!(
        (next - expected).abs() <= 2 * DAY,
        "NextRotationDate {next} should be about 181 days from real now ({expected})"
    );

    assert_eq!(
        decrypt(&kms, &before, &[]).await,
        b"before the automatic rotation"
    );
    let after = encrypt(&kms, &id, b"after", &[]).await;
    assert_eq!(decrypt(&kms, &after, &[]).await, b"after");

    // The rotation is a lifecycle event in the audit log.
    let event = server.wait_for_audit_event(Duration::from_secs(5), |e| {
        let name = e["eventName"].as_str().unwrap_or("");
        name.contains("Rotat")
            && !matches!(
                name,
                "EnableKeyRotation" | "GetKeyRotationStatus" | "ListKeyRotations"
            )
            && e.to_string().contains(&id)
    });
    assert!(
        event.is_some(),
        "no rotation event for {id} in the audit log:\n{}",
        server.audit_lines().join("\n")
    );
}
