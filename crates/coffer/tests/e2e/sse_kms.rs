//! SSE-KMS and S3 Bucket Keys end to end (issue 8): objects under keys of the built-in KMS,
//! written and read with aws-sdk-s3 and checked with aws-sdk-kms and the audit log — every way of
//! naming a key, the AWS managed key, encryption contexts, both permissions, key states through
//! to crypto-shredding, copies between modes, multipart, Bucket Keys and bucket defaults.

use crate::common;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{
    DAY, TestServer, assert_s3_error, create_bucket, create_key, get, get_range, key_arn, ok,
    pattern, put, set_clock_offset,
};

const BUCKET: &str = "vault";

fn server() -> TestServer {
    TestServer::builder()
        .args(["--kms-quotas", "off", "--kms-task-interval", "1"])
        .start()
}

async fn setup() -> (TestServer, Client, aws_sdk_kms::Client) {
    let server = server();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let kms = server.kms_client();
    (server, s3, kms)
}

async fn put_kms(
    s3: &Client,
    key: &str,
    body: &[u8],
    kms_key: Option<&str>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    ok(s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(kms_key.map(str::to_owned))
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await)
}

/// The audit events S3 made on a caller's behalf (`invokedBy` s3.amazonaws.com).
fn s3_kms_events(server: &TestServer) -> Vec<serde_json::Value> {
    server
        .audit_events()
        .into_iter()
        .filter(|e| e["userIdentity"]["invokedBy"] == "s3.amazonaws.com")
        .collect()
}

#[tokio::test]
async fn every_way_of_naming_a_key_stores_under_it_and_reads_back() {
    let (_server, s3, kms) = setup().await;
    let key = create_key(&kms, "app").await;
    let id = key.key_id().to_owned();
    let arn = key_arn(&id);
    ok(kms
        .create_alias()
        .alias_name("alias/app")
        .target_key_id(&id)
        .send()
        .await);
    let alias_arn = arn.replace(&format!("key/{id}"), "alias/app");
    for (n, name) in [id.as_str(), arn.as_str(), "alias/app", alias_arn.as_str()]
        .into_iter()
        .enumerate()
    {
        let object = format!("obj-{n}");
        let body = pattern(100_000 + n, n as u64);
        let out = put_kms(&s3, &object, &body, Some(name)).await;
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(out.ssekms_key_id(), Some(arn.as_str()), "named as {name}");
        let etag = out.e_tag().unwrap().trim_matches('"').to_owned();
        assert_ne!(
            etag,
            common::md5_hex(&body),
            "an SSE-KMS ETag is not the MD5"
        );
        let got = ok(s3.get_object().bucket(BUCKET).key(&object).send().await);
        assert_eq!(
            got.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(got.ssekms_key_id(), Some(arn.as_str()));
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            body
        );
        let head = ok(s3.head_object().bucket(BUCKET).key(&object).send().await);
        assert_eq!(head.ssekms_key_id(), Some(arn.as_str()));
        assert_eq!(head.e_tag().unwrap().trim_matches('"'), etag);
    }
    // Ranges across segment boundaries.
    let body = pattern(200_000, 9);
    put_kms(&s3, "ranged", &body, Some("alias/app")).await;
    for (first, last) in [(0, 0), (65_535, 65_537), (131_000, 199_999)] {
        let (bytes, _) = get_range(&s3, BUCKET, "ranged", &format!("bytes={first}-{last}")).await;
        assert_eq!(bytes, body[first..=last]);
    }
}

#[tokio::test]
async fn without_a_key_id_the_aws_managed_key_is_created_and_used() {
    let (_server, s3, kms) = setup().await;
    let out = put_kms(&s3, "managed", b"under aws/s3", None).await;
    let arn = out.ssekms_key_id().unwrap().to_owned();
    let aliases = ok(kms.list_aliases().send().await);
    let managed = aliases
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/aws/s3"))
        .expect("alias/aws/s3 is listed");
    assert!(arn.ends_with(managed.target_key_id().unwrap()));
    let meta = ok(kms.describe_key().key_id("alias/aws/s3").send().await)
        .key_metadata
        .unwrap();
    assert_eq!(
        meta.key_manager(),
        Some(&aws_sdk_kms::types::KeyManagerType::Aws)
    );
    assert_eq!(get(&s3, BUCKET, "managed").await, b"under aws/s3");
    // Used once: a second object goes under the same key.
    let again = put_kms(&s3, "managed-2", b"x", None).await;
    assert_eq!(again.ssekms_key_id(), Some(arn.as_str()));
    // Only through S3: a client may not use it directly, nor change it.
    common::assert_kms_error(
        kms.encrypt()
            .key_id("alias/aws/s3")
            .plaintext(aws_sdk_kms::primitives::Blob::new("x"))
            .send()
            .await,
        "AccessDeniedException",
    );
    common::assert_kms_error(
        kms.disable_key().key_id(meta.key_id()).send().await,
        "AccessDeniedException",
    );
    common::assert_kms_error(
        kms.create_alias()
            .alias_name("alias/aws/mine")
            .target_key_id(meta.key_id())
            .send()
            .await,
        "InvalidAliasNameException",
    );
}

#[tokio::test]
async fn the_encryption_context_is_checked_merged_returned_and_audited() {
    let (server, s3, kms) = setup().await;
    let id = create_key(&kms, "ctx").await.key_id().to_owned();
    let context = B64.encode(br#"{"department":"billing"}"#);
    let out = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("invoices/1")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&id)
        .ssekms_encryption_context(&context)
        .body(ByteStream::from_static(b"invoice"))
        .send()
        .await);
    let returned: serde_json::Value = serde_json::from_slice(
        &B64.decode(out.ssekms_encryption_context().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(returned["department"], "billing");
    assert_eq!(
        returned["aws:s3:arn"],
        format!("arn:aws:s3:::{BUCKET}/invoices/1")
    );
    // GET and HEAD return it too.
    for method in ["HEAD", "GET"] {
        let path = format!("/{BUCKET}/invoices/1");
        let mut headers = vec![("host".to_string(), server.addr().to_string())];
        common::sigv4::Signer::root().sign(
            method,
            &path,
            &[],
            &mut headers,
            &common::sigv4::sha256_hex(b""),
            std::time::SystemTime::now(),
        );
        let raw = common::raw_http::request(server.addr(), method, &path, &headers, b"");
        assert_eq!(
            raw.header("x-amz-server-side-encryption-context"),
            out.ssekms_encryption_context(),
            "{method} returns the context"
        );
    }
    assert_eq!(get(&s3, BUCKET, "invoices/1").await, b"invoice");

    // The audit log shows the object, the caller and S3.
    let events = s3_kms_events(&server);
    let generate = events
        .iter()
        .find(|e| e["eventName"] == "GenerateDataKey")
        .expect("GenerateDataKey audited");
    assert_eq!(
        generate["requestParameters"]["encryptionContext"]["aws:s3:arn"],
        format!("arn:aws:s3:::{BUCKET}/invoices/1")
    );
    assert_eq!(
        generate["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:root"
    );
    assert!(events.iter().any(|e| e["eventName"] == "Decrypt"));

    // `coffer audit tail --key-id` answers "which objects, by whom" for one key: the write and
    // the read of the object, each naming it, the caller and S3.
    let tail = server.audit_command(&["tail", "--key-id", &id, "-n", "100"]);
    assert!(tail.status.success(), "{tail:?}");
    let tailed: Vec<serde_json::Value> = String::from_utf8(tail.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for op in ["GenerateDataKey", "Decrypt"] {
        let event = tailed
            .iter()
            .find(|e| {
                e["eventName"] == op
                    && e["requestParameters"]["encryptionContext"]["aws:s3:arn"]
                        == format!("arn:aws:s3:::{BUCKET}/invoices/1")
            })
            .unwrap_or_else(|| panic!("no {op} of invoices/1 in {tailed:#?}"));
        assert_eq!(
            event["userIdentity"]["arn"],
            "arn:aws:iam::111122223333:root"
        );
        assert_eq!(event["userIdentity"]["invokedBy"], "s3.amazonaws.com");
    }
    assert!(
        tailed
            .iter()
            .all(|e| e["resources"].to_string().contains(&id)),
        "--key-id keeps only that key's events"
    );

    for bad in [
        "not base64!",
        &B64.encode(b"[1]"),
        &B64.encode(br#"{"a":1}"#),
        &B64.encode(br#"{"aws:s3:arn":"arn:aws:s3:::other/key"}"#),
    ] {
        assert_s3_error(
            s3.put_object()
                .bucket(BUCKET)
                .key("bad-context")
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_encryption_context(bad)
                .body(ByteStream::from_static(b"no"))
                .send()
                .await,
            400,
            "InvalidArgument",
        );
    }
    assert_s3_error(
        s3.head_object()
            .bucket(BUCKET)
            .key("bad-context")
            .send()
            .await,
        404,
        "NotFound",
    );
}

#[tokio::test]
async fn writing_needs_generate_data_key_and_reading_needs_decrypt_for_the_caller() {
    let mut server = server();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let kms = server.kms_client();
    let id = create_key(&kms, "guarded").await.key_id().to_owned();
    put_kms(&s3, "secret", b"root wrote this", Some(&id)).await;
    // Bob may use S3 fully but no KMS action.
    let s3_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let (bob_key, bob_secret) = server.add_user_with_policy("bob", s3_only);
    let bob = server.client_as(&bob_key, &bob_secret);
    let failure = assert_s3_error(
        bob.put_object()
            .bucket(BUCKET)
            .key("by-bob")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&id)
            .body(ByteStream::from_static(b"no"))
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert!(
        failure
            .message
            .unwrap_or_default()
            .contains("kms:GenerateDataKey")
    );
    assert_s3_error(
        bob.head_object().bucket(BUCKET).key("by-bob").send().await,
        404,
        "NotFound",
    );
    let failure = assert_s3_error(
        bob.get_object().bucket(BUCKET).key("secret").send().await,
        403,
        "AccessDenied",
    );
    assert!(failure.message.unwrap_or_default().contains("kms:Decrypt"));
    // HEAD needs no KMS call (as on S3).
    ok(bob.head_object().bucket(BUCKET).key("secret").send().await);
    // A key policy can grant bob directly, with a condition on the object.
    let kms = server.kms_client();
    let policy = serde_json::json!({"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},
         "Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
         "Condition":{"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"},
                      "StringLike":{"kms:EncryptionContext:aws:s3:arn":"arn:aws:s3:::vault/shared/*"}}}]});
    ok(kms
        .put_key_policy()
        .key_id(&id)
        .policy_name("default")
        .policy(policy.to_string())
        .send()
        .await);
    put_kms(&bob, "shared/by-bob", b"bob may", Some(&id)).await;
    assert_eq!(get(&bob, BUCKET, "shared/by-bob").await, b"bob may");
    assert_s3_error(
        bob.get_object().bucket(BUCKET).key("secret").send().await,
        403,
        "AccessDenied",
    );
}

#[tokio::test]
async fn key_states_are_obeyed_through_to_crypto_shredding_across_a_restart() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock-offset");
    set_clock_offset(&clock, 0);
    let mut server = TestServer::builder()
        .args(["--kms-quotas", "off", "--kms-task-interval", "1"])
        .arg("--clock-offset-file")
        .arg(&clock)
        .start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let kms = server.kms_client();
    let doomed = create_key(&kms, "doomed").await.key_id().to_owned();
    let kept = create_key(&kms, "kept").await.key_id().to_owned();
    put_kms(&s3, "doomed-obj", &pattern(70_000, 1), Some(&doomed)).await;
    put_kms(&s3, "kept-obj", b"kept", Some(&kept)).await;

    ok(kms.disable_key().key_id(&doomed).send().await);
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("doomed-obj")
            .send()
            .await,
        400,
        "KMS.DisabledException",
    );
    assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key("new")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&doomed)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "KMS.DisabledException",
    );
    ok(kms.enable_key().key_id(&doomed).send().await);
    assert_eq!(get(&s3, BUCKET, "doomed-obj").await, pattern(70_000, 1));

    // Rotation: old objects read, new ones are written under the new version.
    ok(kms.rotate_key_on_demand().key_id(&doomed).send().await);
    put_kms(&s3, "after-rotation", b"new version", Some(&doomed)).await;
    assert_eq!(get(&s3, BUCKET, "doomed-obj").await, pattern(70_000, 1));
    assert_eq!(get(&s3, BUCKET, "after-rotation").await, b"new version");

    ok(kms
        .schedule_key_deletion()
        .key_id(&doomed)
        .pending_window_in_days(7)
        .send()
        .await);
    assert_s3_error(
        s3.get_object()
            .bucket(BUCKET)
            .key("doomed-obj")
            .send()
            .await,
        400,
        "KMS.KMSInvalidStateException",
    );

    set_clock_offset(&clock, 8 * DAY);
    let deadline = Instant::now() + Duration::from_secs(20);
    while kms.describe_key().key_id(&doomed).send().await.is_ok() {
        assert!(Instant::now() < deadline, "the key was not deleted");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.restart();
    let s3 = server.client();
    for _ in 0..2 {
        let failure = common::s3_failure(
            s3.get_object()
                .bucket(BUCKET)
                .key("doomed-obj")
                .send()
                .await,
        );
        assert_eq!(failure.status, 400, "{failure:?}");
        assert_eq!(failure.code.as_deref(), Some("KMS.NotFoundException"));
    }
    // Its metadata still answers (as on S3); unrelated objects are untouched.
    ok(s3
        .head_object()
        .bucket(BUCKET)
        .key("doomed-obj")
        .send()
        .await);
    assert_eq!(get(&s3, BUCKET, "kept-obj").await, b"kept");
}

#[tokio::test]
async fn copies_and_multipart_move_between_every_mode_byte_exact() {
    let (_server, s3, kms) = setup().await;
    let a = create_key(&kms, "a").await.key_id().to_owned();
    let b = create_key(&kms, "b").await.key_id().to_owned();
    let body = pattern(300_000, 4);
    put(&s3, BUCKET, "plain", &body).await;
    type Step<'a> = (
        &'a str,
        &'a str,
        Option<(ServerSideEncryption, Option<&'a str>)>,
    );
    let steps: [Step<'_>; 3] = [
        (
            "plain",
            "under-a",
            Some((ServerSideEncryption::AwsKms, Some(a.as_str()))),
        ),
        (
            "under-a",
            "under-b",
            Some((ServerSideEncryption::AwsKms, Some(b.as_str()))),
        ),
        (
            "under-b",
            "back-to-s3",
            Some((ServerSideEncryption::Aes256, None)),
        ),
    ];
    for (from, to, sse) in steps {
        let mut req = s3
            .copy_object()
            .bucket(BUCKET)
            .key(to)
            .copy_source(format!("{BUCKET}/{from}"));
        if let Some((mode, key)) = sse {
            req = req
                .server_side_encryption(mode)
                .set_ssekms_key_id(key.map(str::to_owned));
        }
        ok(req.send().await);
        assert_eq!(get(&s3, BUCKET, to).await, body, "{from} -> {to}");
    }
    let head = ok(s3.head_object().bucket(BUCKET).key("under-b").send().await);
    assert_eq!(head.ssekms_key_id(), Some(key_arn(&b).as_str()));
    let head = ok(s3
        .head_object()
        .bucket(BUCKET)
        .key("back-to-s3")
        .send()
        .await);
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(head.ssekms_key_id(), None);

    // Multipart under key A: parts inherit, UploadPartCopy from an object under key B.
    let upload = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&a)
        .send()
        .await);
    assert_eq!(upload.ssekms_key_id(), Some(key_arn(&a).as_str()));
    let id = upload.upload_id().unwrap();
    let first = pattern(5 * 1024 * 1024, 5);
    let p1 = ok(s3
        .upload_part()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(first.clone()))
        .send()
        .await);
    assert_eq!(
        p1.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    let p2 = ok(s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(id)
        .part_number(2)
        .copy_source(format!("{BUCKET}/under-b"))
        .send()
        .await);
    let done = ok(s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("multi")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p1.e_tag().unwrap())
                        .build(),
                )
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(p2.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(
        done.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    let mut expected = first;
    expected.extend_from_slice(&body);
    assert_eq!(get(&s3, BUCKET, "multi").await, expected);
    let (part2, _) = get_range(
        &s3,
        BUCKET,
        "multi",
        &format!("bytes={}-{}", 5 * 1024 * 1024, 5 * 1024 * 1024 + 9),
    )
    .await;
    assert_eq!(part2, body[..10]);
    let by_number = ok(s3
        .get_object()
        .bucket(BUCKET)
        .key("multi")
        .part_number(2)
        .send()
        .await);
    assert_eq!(
        by_number
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec(),
        body
    );
}

#[tokio::test]
async fn bucket_default_encryption_applies_to_writes_without_headers() {
    let (_server, s3, kms) = setup().await;
    let id = create_key(&kms, "default").await.key_id().to_owned();
    let got = ok(s3.get_bucket_encryption().bucket(BUCKET).send().await);
    let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm(),
        &ServerSideEncryption::Aes256
    );
    let config = |algorithm: ServerSideEncryption, key: Option<&str>, bucket_key: bool| {
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(algorithm)
                            .set_kms_master_key_id(key.map(str::to_owned))
                            .build()
                            .unwrap(),
                    )
                    .bucket_key_enabled(bucket_key)
                    .build(),
            )
            .build()
            .unwrap()
    };
    ok(s3
        .put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(config(ServerSideEncryption::AwsKms, Some(&id), true))
        .send()
        .await);
    let got = ok(s3.get_bucket_encryption().bucket(BUCKET).send().await);
    let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.bucket_key_enabled(), Some(true));
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .kms_master_key_id(),
        Some(id.as_str())
    );
    let out = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("defaulted")
        .body(ByteStream::from_static(b"d"))
        .send()
        .await);
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(out.ssekms_key_id(), Some(key_arn(&id).as_str()));
    assert_eq!(out.bucket_key_enabled(), Some(true));
    // An explicit header still wins.
    let out = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("explicit")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"e"))
        .send()
        .await);
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // Invalid configurations are refused; deleting goes back to SSE-S3.
    assert_s3_error(
        s3.put_bucket_encryption()
            .bucket(BUCKET)
            .server_side_encryption_configuration(config(
                ServerSideEncryption::Aes256,
                Some(&id),
                false,
            ))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    ok(s3.delete_bucket_encryption().bucket(BUCKET).send().await);
    let out = ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("after-delete")
        .body(ByteStream::from_static(b"f"))
        .send()
        .await);
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(get(&s3, BUCKET, "defaulted").await, b"d");
}

/// Issue 8 point 7: under a Bucket Key, many objects share few KMS calls.
#[tokio::test]
async fn a_bucket_key_serves_many_objects_with_few_kms_calls() {
    let (server, s3, kms) = setup().await;
    let id = create_key(&kms, "bucket-key").await.key_id().to_owned();
    const N: usize = 100;
    for i in 0..N {
        let out = ok(s3
            .put_object()
            .bucket(BUCKET)
            .key(format!("bk/{i}"))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&id)
            .bucket_key_enabled(true)
            .body(ByteStream::from(format!("object {i}").into_bytes()))
            .send()
            .await);
        assert_eq!(out.bucket_key_enabled(), Some(true));
        let ctx: serde_json::Value = serde_json::from_slice(
            &B64.decode(out.ssekms_encryption_context().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            ctx["aws:s3:arn"],
            format!("arn:aws:s3:::{BUCKET}"),
            "a Bucket Key's context names the bucket"
        );
    }
    for i in 0..N {
        assert_eq!(
            get(&s3, BUCKET, &format!("bk/{i}")).await,
            format!("object {i}").into_bytes()
        );
    }
    let head = ok(s3.head_object().bucket(BUCKET).key("bk/0").send().await);
    assert_eq!(head.bucket_key_enabled(), Some(true));
    let calls = s3_kms_events(&server).len();
    assert!(
        calls <= 2,
        "{N} PUTs and {N} GETs under a Bucket Key made {calls} KMS calls"
    );

    // Without one, one call per object and direction.
    for i in 0..10 {
        put_kms(&s3, &format!("nbk/{i}"), b"x", Some(&id)).await;
        get(&s3, BUCKET, &format!("nbk/{i}")).await;
    }
    assert_eq!(s3_kms_events(&server).len(), calls + 20);
    // `/-/metrics` counts the same calls, which is what `coffer bench` reports.
    let metrics = common::raw_http::request(server.addr(), "GET", "/-/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    let counted: u64 = metrics
        .body_text()
        .lines()
        .filter(|l| l.starts_with("coffer_kms_service_calls_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted as usize, calls + 20, "{}", metrics.body_text());
}

/// A Bucket Key is reused only while nothing it was allowed by has changed: disabling the KMS key
/// stops reads and writes under it at once (not after the Bucket Key's lifetime), and so does a
/// change to the caller's identity policies; a caller without kms:Decrypt never rides on
/// another's cached Bucket Key.
#[tokio::test]
async fn a_bucket_key_stops_working_at_once_when_its_key_or_the_callers_policy_changes() {
    let (server, s3, kms) = setup().await;
    let id = create_key(&kms, "bk-revoked").await.key_id().to_owned();
    let alice_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","kms:GenerateDataKey","kms:Decrypt"],"Resource":"*"}]}"#;
    let (alice_key, alice_secret) = server.add_user_online("alice", Some(alice_policy));
    let s3_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let (bob_key, bob_secret) = server.add_user_online("bob", Some(s3_only));
    let (alice, bob) = (
        server.client_as(&alice_key, &alice_secret),
        server.client_as(&bob_key, &bob_secret),
    );
    let put_bk = |client: &Client, key: &str| {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&id)
            .bucket_key_enabled(true)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
    };
    for client in [&s3, &alice] {
        ok(put_bk(client, "bk/1").await);
        assert_eq!(get(client, BUCKET, "bk/1").await, b"bk/1");
    }
    let kms_errors = |failure: common::S3Failure| (failure.status, failure.code);

    // Bob may use S3 but not the key: the Bucket Keys root and alice hold do not help him.
    let failure = common::s3_failure(bob.get_object().bucket(BUCKET).key("bk/1").send().await);
    assert_eq!(kms_errors(failure), (403, Some("AccessDenied".into())));
    let failure = common::s3_failure(put_bk(&bob, "bk/bob").await);
    assert_eq!(kms_errors(failure), (403, Some("AccessDenied".into())));

    // Disabled: refused at once, for reads and writes alike; enabled: served again.
    ok(kms.disable_key().key_id(&id).send().await);
    for client in [&s3, &alice] {
        let failure =
            common::s3_failure(client.get_object().bucket(BUCKET).key("bk/1").send().await);
        assert_eq!(
            kms_errors(failure),
            (400, Some("KMS.DisabledException".into()))
        );
        let failure = common::s3_failure(put_bk(client, "bk/2").await);
        assert_eq!(
            kms_errors(failure),
            (400, Some("KMS.DisabledException".into()))
        );
    }
    ok(kms.enable_key().key_id(&id).send().await);
    assert_eq!(get(&alice, BUCKET, "bk/1").await, b"bk/1");
    ok(put_bk(&alice, "bk/2").await);

    // A Deny added to alice's identity policies takes effect on her next request.
    let deny = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        deny.path(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
    )
    .unwrap();
    let endpoint = server.endpoint();
    let out = common::run_coffer(&[
        "user",
        "put-policy",
        "alice",
        "no-decrypt",
        "--file",
        deny.path().to_str().unwrap(),
        "--endpoint",
        &endpoint,
    ]);
    assert!(out.status.success(), "{out:?}");
    let failure = common::s3_failure(alice.get_object().bucket(BUCKET).key("bk/1").send().await);
    assert_eq!(kms_errors(failure), (403, Some("AccessDenied".into())));
    // Root's cached Bucket Key still serves root.
    assert_eq!(get(&s3, BUCKET, "bk/2").await, b"bk/2");
}

/// Issue 8 point 5: when the KMS throttles, S3 clients see `503 SlowDown` (which SDKs retry) and
/// nothing is stored for the refused writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_throttling_reaches_s3_clients_as_slow_down() {
    let server = TestServer::builder()
        .args(["--kms-quota-cryptographic", "5"])
        .start();
    let (s3, kms) = (server.client(), server.kms_client());
    create_bucket(&s3, BUCKET).await;
    let id = create_key(&kms, "throttled").await.key_id().to_owned();
    // Start with a full bucket of tokens.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (s3, id) = (s3.clone(), id.clone());
        tasks.spawn(async move {
            let key = format!("burst/{i}");
            let result = s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(&id)
                .body(ByteStream::from(key.clone().into_bytes()))
                .send()
                .await;
            (
                key,
                result
                    .map(|_| ())
                    .map_err(|e| common::s3_failure::<(), _>(Err(e))),
            )
        });
    }
    let (mut stored, mut refused) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            (key, Ok(())) => stored.push(key),
            (key, Err(failure)) => refused.push((key, failure)),
        }
    }
    assert!(!stored.is_empty(), "the burst allowance lets some through");
    assert!(
        refused.len() >= 20,
        "at 5 calls/s most of 40 simultaneous writes are throttled, {} were",
        refused.len()
    );
    for (key, failure) in &refused {
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (503, Some("SlowDown")),
            "{key}: {failure:?}"
        );
        assert_s3_error(
            s3.head_object().bucket(BUCKET).key(key).send().await,
            404,
            "NotFound",
        );
    }
    // Reads are throttled the same way; a throttled read is an error, never wrong bytes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (s3, key) = (s3.clone(), stored[i % stored.len()].clone());
        tasks.spawn(async move {
            let result = s3.get_object().bucket(BUCKET).key(&key).send().await;
            match result {
                Ok(out) => Ok((key, out.body.collect().await.unwrap().to_vec())),
                Err(e) => Err(common::s3_failure::<(), _>(Err(e))),
            }
        });
    }
    let mut throttled_reads = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok((key, body)) => assert_eq!(body, key.as_bytes()),
            Err(failure) => {
                assert_eq!(
                    (failure.status, failure.code.as_deref()),
                    (503, Some("SlowDown"))
                );
                throttled_reads += 1;
            }
        }
    }
    assert!(
        throttled_reads >= 20,
        "{throttled_reads} of 40 reads throttled"
    );
    // At a pace under the quota everything works again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for key in stored.iter().take(4) {
        assert_eq!(get(&s3, BUCKET, key).await, key.as_bytes());
    }
}

/// S3 refuses SSE-KMS over plain HTTP (the data key travels the connection in effect).
#[tokio::test]
async fn sse_kms_over_plain_http_is_refused_unless_allowed() {
    let server = TestServer::builder()
        .without_insecure_http()
        .args(["--kms-quotas", "off"])
        .start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    let failure = assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key("k")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );
    assert!(
        failure
            .message
            .unwrap_or_default()
            .contains("secure connection")
    );
    // SSE-S3 still works over HTTP.
    put(&s3, BUCKET, "plain", b"fine").await;
}

/// Every request that would use a KMS key is refused over plain HTTP, not only a PUT that asks for
/// one: reading a KMS object, copying from one, starting a KMS multipart upload, and writing into a
/// bucket whose default is SSE-KMS. HEAD needs no key and answers.
#[tokio::test]
async fn every_request_that_uses_a_kms_key_is_refused_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut allowed = TestServer::builder()
        .args(["--kms-quotas", "off"])
        .start_in(dir.path());
    let s3 = allowed.client();
    create_bucket(&s3, BUCKET).await;
    put_kms(&s3, "kms-obj", b"under a KMS key", None).await;
    create_bucket(&s3, "kms-default").await;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .build()
                .unwrap(),
        )
        .build();
    ok(s3
        .put_bucket_encryption()
        .bucket("kms-default")
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await);
    allowed.stop();

    let server = TestServer::builder()
        .without_insecure_http()
        .args(["--kms-quotas", "off"])
        .start_in(dir.path());
    let s3 = server.client();
    let secure_connection = |failure: common::S3Failure| {
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (400, Some("InvalidArgument")),
            "{failure:?}"
        );
        assert!(
            failure
                .message
                .as_deref()
                .is_some_and(|m| m.contains("secure connection")),
            "{failure:?}"
        );
    };
    secure_connection(common::s3_failure(
        s3.get_object().bucket(BUCKET).key("kms-obj").send().await,
    ));
    ok(s3.head_object().bucket(BUCKET).key("kms-obj").send().await);
    secure_connection(common::s3_failure(
        s3.copy_object()
            .bucket(BUCKET)
            .key("copy")
            .copy_source(format!("{BUCKET}/kms-obj"))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await,
    ));
    secure_connection(common::s3_failure(
        s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("mp")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await,
    ));
    secure_connection(common::s3_failure(
        s3.put_object()
            .bucket("kms-default")
            .key("defaulted")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
    ));
    for (bucket, key) in [(BUCKET, "copy"), ("kms-default", "defaulted")] {
        assert_s3_error(
            s3.head_object().bucket(bucket).key(key).send().await,
            404,
            "NotFound",
        );
    }
    // Asking for SSE-S3 explicitly works in the KMS-default bucket, over plain HTTP.
    ok(s3
        .put_object()
        .bucket("kms-default")
        .key("sse-s3")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"fine"))
        .send()
        .await);
}

/// The raw JSON record of an object, read from meta.redb (server stopped).
fn raw_record(dir: &std::path::Path, bucket: &str, key: &str) -> serde_json::Value {
    const OBJECTS: redb::TableDefinition<(&str, &str), &[u8]> =
        redb::TableDefinition::new("objects");
    let db = redb::Database::open(dir.join("meta.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(OBJECTS).unwrap();
    let value = table.get((bucket, key)).unwrap().unwrap().value().to_vec();
    serde_json::from_slice(&value).unwrap()
}

/// The plaintext of a data key an envelope holds as a KMS ciphertext, from the KMS API (the root
/// user may decrypt under a customer managed key directly).
async fn data_key(
    kms: &aws_sdk_kms::Client,
    wrapped_b64: &serde_json::Value,
    context: &serde_json::Value,
) -> Vec<u8> {
    let blob = B64.decode(wrapped_b64.as_str().unwrap()).unwrap();
    let mut req = kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob));
    for (k, v) in context.as_object().unwrap() {
        req = req.encryption_context(k, v.as_str().unwrap());
    }
    ok(req.send().await).plaintext.unwrap().into_inner()
}

#[tokio::test]
async fn dsse_kms_stores_two_layers_under_two_data_keys() {
    let (mut server, s3, kms) = setup().await;
    let id = create_key(&kms, "dsse").await.key_id().to_owned();
    let body = pattern(200_000, 11);
    for (key, data) in [
        ("dsse-big", &body[..]),
        ("dsse-small", &body[..1000]),
        ("dsse-empty", &body[..0]),
    ] {
        let out = ok(s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
            .ssekms_key_id(&id)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await);
        assert_eq!(
            out.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKmsDsse)
        );
        assert_eq!(out.ssekms_key_id(), Some(key_arn(&id).as_str()));
        assert_eq!(get(&s3, BUCKET, key).await, data, "{key}");
        let head = ok(s3.head_object().bucket(BUCKET).key(key).send().await);
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKmsDsse)
        );
    }
    let (range, _) = get_range(&s3, BUCKET, "dsse-big", "bytes=65530-131080").await;
    assert_eq!(range, body[65530..=131080]);
    // Multipart and copies in and out of DSSE.
    let upload = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("dsse-multi")
        .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
        .ssekms_key_id(&id)
        .send()
        .await);
    let upload_id = upload.upload_id().unwrap();
    let part = ok(s3
        .upload_part()
        .bucket(BUCKET)
        .key("dsse-multi")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(body.clone()))
        .send()
        .await);
    ok(s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("dsse-multi")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await);
    assert_eq!(get(&s3, BUCKET, "dsse-multi").await, body);
    ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("from-dsse")
        .copy_source(format!("{BUCKET}/dsse-big"))
        .send()
        .await);
    assert_eq!(get(&s3, BUCKET, "from-dsse").await, body);
    // A Bucket Key does not apply to DSSE (as on S3).
    assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key("dsse-bk")
            .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
            .bucket_key_enabled(true)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "InvalidArgument",
    );

    // On disk: a dual-layer stream. Both data keys open it; either one alone does not.
    server.stop();
    let rec = raw_record(server.data_dir(), BUCKET, "dsse-big");
    server.restart();
    let kms = server.kms_client();
    let env = &rec["envelope"];
    assert_eq!(env["mode"], "aws:kms:dsse");
    let inner = data_key(&kms, &env["wrapped_dek"], &env["context"]).await;
    let outer = data_key(&kms, &env["outer_wrapped_dek"], &env["context"]).await;
    assert_ne!(inner, outer, "two independent data keys");
    let part = &rec["parts"][0];
    let blob_id = part["blob_id"].as_str().unwrap();
    let blob = std::fs::read(
        server
            .data_dir()
            .join("blobs")
            .join(&blob_id[..2])
            .join(blob_id),
    )
    .unwrap();
    let prefix: [u8; 7] = B64
        .decode(part["nonce_prefix"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = |bytes: &[u8]| coffer_crypto::Key256::from_slice(bytes).unwrap();
    let first_segment = |cipher: coffer_crypto::StreamCipher| {
        let size = cipher.kind().sealed_segment_size();
        let mut segment = blob[..size].to_vec();
        cipher
            .open_segment(0, false, &mut segment)
            .map(|p| p.to_vec())
    };
    let both =
        coffer_crypto::StreamCipher::dual(&key(&inner), &key(&outer), prefix, blob_id.as_bytes())
            .unwrap();
    assert_eq!(first_segment(both).unwrap(), body[..65536]);
    let random = coffer_crypto::Key256::generate().unwrap();
    for (a, b) in [(&key(&inner), &random), (&random, &key(&outer))] {
        let wrong = coffer_crypto::StreamCipher::dual(a, b, prefix, blob_id.as_bytes()).unwrap();
        assert!(
            first_segment(wrong).is_err(),
            "one layer's key alone opens nothing"
        );
    }
    let inner_only =
        coffer_crypto::StreamCipher::single(&key(&inner), prefix, blob_id.as_bytes()).unwrap();
    assert!(first_segment(inner_only).is_err());
}

/// The data dir after SSE-KMS and DSSE-KMS writes holds neither plaintext nor any data key in
/// the clear (the keys are taken from the KMS with the envelopes' own ciphertexts).
#[tokio::test]
async fn the_data_dir_holds_no_data_key_in_the_clear() {
    let (mut server, s3, kms) = setup().await;
    let id = create_key(&kms, "keys").await.key_id().to_owned();
    let marker = b"PLAINTEXT-MARKER-5e2d-no-data-key".repeat(3000);
    put_kms(&s3, "kms-big", &marker, Some(&id)).await;
    ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("dsse-big")
        .server_side_encryption(ServerSideEncryption::AwsKmsDsse)
        .ssekms_key_id(&id)
        .body(ByteStream::from(marker.clone()))
        .send()
        .await);
    ok(s3
        .put_object()
        .bucket(BUCKET)
        .key("bk-big")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&id)
        .bucket_key_enabled(true)
        .body(ByteStream::from(marker.clone()))
        .send()
        .await);
    server.stop();
    let records: Vec<(&str, serde_json::Value)> = ["kms-big", "dsse-big", "bk-big"]
        .into_iter()
        .map(|key| (key, raw_record(server.data_dir(), BUCKET, key)))
        .collect();
    server.restart();
    let kms = server.kms_client();
    let mut keys = Vec::new();
    for (object, record) in &records {
        let env = &record["envelope"];
        if env["bucket_key"].is_null() {
            keys.push(data_key(&kms, &env["wrapped_dek"], &env["context"]).await);
        } else {
            // The Bucket Key from the KMS; the object's own key unwrapped by it, under the AAD
            // docs/format.md draws: lp("coffer dek v2") ‖ lp("bucket-key:<ARN>") ‖ lp(bucket) ‖
            // lp(key) ‖ lp(version id).
            let bucket_key = data_key(&kms, &env["bucket_key"], &env["context"]).await;
            let mut aad = Vec::new();
            let label = format!("bucket-key:{}", env["key_id"].as_str().unwrap());
            for field in [
                "coffer dek v2",
                &label,
                BUCKET,
                object,
                record["version_id"].as_str().unwrap(),
            ] {
                aad.extend_from_slice(&(field.len() as u32).to_be_bytes());
                aad.extend_from_slice(field.as_bytes());
            }
            let dek = coffer_crypto::unwrap_key(
                &coffer_crypto::Key256::from_slice(&bucket_key).unwrap(),
                &B64.decode(env["wrapped_dek"].as_str().unwrap()).unwrap(),
                &aad,
            )
            .expect("the object's key opens under its Bucket Key");
            keys.push(dek.expose_secret().to_vec());
            keys.push(bucket_key);
        }
        if !env["outer_wrapped_dek"].is_null() {
            keys.push(data_key(&kms, &env["outer_wrapped_dek"], &env["context"]).await);
        }
    }
    assert_eq!(keys.len(), 5);
    server.stop();
    for file in common::files_under(server.data_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !common::contains_bytes(&bytes, b"PLAINTEXT-MARKER"),
            "{} holds plaintext",
            file.display()
        );
        for key in &keys {
            assert!(
                !common::contains_bytes(&bytes, key),
                "{} holds a data key",
                file.display()
            );
        }
    }
}
