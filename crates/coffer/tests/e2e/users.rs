//! Users that can be limited and removed (issue 14 point 7): identity policies evaluated on every
//! S3, KMS and IAM request, user changes through the IAM endpoint of a running server taking
//! effect on the next request, `coffer user add|remove|list|put-policy|…` online and offline,
//! and the root user's full rights.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectIdentifier;
use common::{
    TestServer, assert_kms_error, assert_s3_error, create_bucket, get, ok, put, run_coffer,
};

/// What the issue asks for: a user who may only read one bucket.
const READ_SHARED: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"},
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::shared"}
  ]
}"#;

async fn two_buckets(server: &TestServer) {
    let root = server.client();
    create_bucket(&root, "shared").await;
    create_bucket(&root, "private").await;
    put(&root, "shared", "report.txt", b"for everyone").await;
    put(&root, "private", "secret.txt", b"for root only").await;
}

fn user_command(server: &TestServer, args: &[&str]) -> std::process::Output {
    let endpoint = server.endpoint();
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--endpoint", &endpoint]);
    let out = run_coffer(&all);
    assert!(
        out.status.success(),
        "coffer {all:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn a_user_created_on_a_running_server_may_only_read_one_bucket() {
    let server = TestServer::start();
    two_buckets(&server).await;
    let (key, secret) = server.add_user_online("reader", Some(READ_SHARED));
    let reader = server.client_as(&key, &secret);

    assert_eq!(get(&reader, "shared", "report.txt").await, b"for everyone");
    let listed = ok(reader.list_objects_v2().bucket("shared").send().await);
    assert_eq!(listed.key_count(), Some(1));

    let denied = common::s3_failure(
        reader
            .put_object()
            .bucket("shared")
            .key("new.txt")
            .body(ByteStream::from_static(b"no"))
            .send()
            .await,
    );
    assert_eq!(
        (denied.status, denied.code.as_deref()),
        (403, Some("AccessDenied"))
    );
    let message = denied.message.unwrap_or_default();
    assert!(
        message.contains("arn:aws:iam::111122223333:user/reader")
            && message.contains("s3:PutObject")
            && message.contains("arn:aws:s3:::shared/new.txt"),
        "{message}"
    );
    assert_s3_error(
        reader
            .get_object()
            .bucket("private")
            .key("secret.txt")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(reader.list_buckets().send().await, 403, "AccessDenied");
    assert_s3_error(
        reader.create_bucket().bucket("mine").send().await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        reader
            .delete_object()
            .bucket("shared")
            .key("report.txt")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        reader.list_objects_v2().bucket("private").send().await,
        403,
        "AccessDenied",
    );
    // Nothing it was refused happened.
    let root = server.client();
    assert_eq!(get(&root, "shared", "report.txt").await, b"for everyone");
    assert_s3_error(
        root.head_object()
            .bucket("shared")
            .key("new.txt")
            .send()
            .await,
        404,
        "NotFound",
    );

    // No KMS rights either: the default key policy delegates to the identity policy.
    let kms = server.kms_client();
    let key_id = ok(kms.create_key().send().await)
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let reader_kms = server.kms_client_as(&key, &secret);
    assert_kms_error(
        reader_kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new("x"))
            .send()
            .await,
        "AccessDeniedException",
    );
    assert_kms_error(reader_kms.list_keys().send().await, "AccessDeniedException");
    assert_kms_error(
        reader_kms.create_key().send().await,
        "AccessDeniedException",
    );
}

#[tokio::test]
async fn policy_changes_and_removal_take_effect_on_the_next_request() {
    let server = TestServer::start();
    two_buckets(&server).await;
    let (key, secret) = server.add_user_online("writer", Some(READ_SHARED));
    let writer = server.client_as(&key, &secret);
    let put_new = || {
        writer
            .put_object()
            .bucket("shared")
            .key("new.txt")
            .body(ByteStream::from_static(b"hello"))
            .send()
    };
    assert_s3_error(put_new().await, 403, "AccessDenied");

    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::shared/*"}}"#,
    )
    .unwrap();
    user_command(
        &server,
        &[
            "put-policy",
            "writer",
            "write",
            "--file",
            policy.path().to_str().unwrap(),
        ],
    );
    ok(put_new().await);
    let out = user_command(&server, &["get-policy", "writer", "write"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("s3:PutObject"));

    let listed = String::from_utf8(user_command(&server, &["list"]).stdout).unwrap();
    let line = listed
        .lines()
        .find(|l| l.starts_with("writer\t"))
        .unwrap_or_else(|| panic!("writer not listed:\n{listed}"));
    assert!(
        line.contains(&key) && line.contains("policy") && line.contains("write"),
        "{line}"
    );

    user_command(&server, &["delete-policy", "writer", "write"]);
    assert_s3_error(put_new().await, 403, "AccessDenied");

    user_command(&server, &["remove", "writer"]);
    assert_s3_error(
        writer
            .get_object()
            .bucket("shared")
            .key("report.txt")
            .send()
            .await,
        403,
        "InvalidAccessKeyId",
    );
    let kms = server.kms_client_as(&key, &secret);
    assert_kms_error(kms.list_keys().send().await, "UnrecognizedClientException");
    let listed = String::from_utf8(user_command(&server, &["list"]).stdout).unwrap();
    assert!(!listed.contains("writer"), "{listed}");
}

/// Regression: every access key could do everything; a user without a policy may do nothing.
#[tokio::test]
async fn a_user_without_a_policy_may_do_nothing_and_root_keeps_full_rights() {
    let server = TestServer::start();
    two_buckets(&server).await;
    let (key, secret) = server.add_user_online("nobody", None);
    let nobody = server.client_as(&key, &secret);
    assert_s3_error(
        nobody
            .get_object()
            .bucket("shared")
            .key("report.txt")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(nobody.list_buckets().send().await, 403, "AccessDenied");
    // The root user needs no policy.
    let root = server.client();
    assert_eq!(ok(root.list_buckets().send().await).buckets().len(), 2);
    assert_eq!(get(&root, "private", "secret.txt").await, b"for root only");
}

#[tokio::test]
async fn delete_objects_is_authorized_key_by_key_and_copy_needs_read_on_its_source() {
    let server = TestServer::start();
    let root = server.client();
    create_bucket(&root, "work").await;
    for key in ["tmp/a", "keep/b", "src/c"] {
        put(&root, "work", key, b"data").await;
    }
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["s3:DeleteObject","s3:PutObject"],"Resource":"arn:aws:s3:::work/tmp/*"}]}"#;
    let (key, secret) = server.add_user_online("cleaner", Some(policy));
    let cleaner = server.client_as(&key, &secret);

    let ids = ["tmp/a", "keep/b"].map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let out = ok(cleaner
        .delete_objects()
        .bucket("work")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(ids.to_vec()))
                .build()
                .unwrap(),
        )
        .send()
        .await);
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["tmp/a"]);
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    assert_eq!(errors, [("keep/b", "AccessDenied")]);
    assert_eq!(get(&root, "work", "keep/b").await, b"data");

    // Writing tmp/ is allowed, but not reading src/c to copy it there.
    assert_s3_error(
        cleaner
            .copy_object()
            .bucket("work")
            .key("tmp/copy")
            .copy_source("work/src/c")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        root.head_object()
            .bucket("work")
            .key("tmp/copy")
            .send()
            .await,
        404,
        "NotFound",
    );
}

#[tokio::test]
async fn offline_user_commands_work_on_a_stopped_server_and_last_across_restarts() {
    let mut server = TestServer::start();
    two_buckets(&server).await;
    let (key, secret) = server.add_user_with_policy("offline", READ_SHARED);
    let reader = server.client_as(&key, &secret);
    assert_eq!(get(&reader, "shared", "report.txt").await, b"for everyone");
    assert_s3_error(
        reader
            .get_object()
            .bucket("private")
            .key("secret.txt")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    server.stop();
    let dir = server.data_dir().to_str().unwrap().to_owned();
    let out = run_coffer(&["user", "list", "--data-dir", &dir]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains("offline") && listed.contains(&key),
        "{listed}"
    );
    let out = run_coffer(&["user", "remove", "--data-dir", &dir, "offline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.restart();
    let reader = server.client_as(&key, &secret);
    assert_s3_error(
        reader
            .get_object()
            .bucket("shared")
            .key("report.txt")
            .send()
            .await,
        403,
        "InvalidAccessKeyId",
    );
}

#[tokio::test]
async fn the_iam_endpoint_refuses_what_iam_refuses() {
    let server = TestServer::start();
    let s3_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let (key, secret) = server.add_user_online("plain", Some(s3_only));
    // A user without iam: rights cannot create users.
    let out = run_coffer_as(
        &key,
        &secret,
        &["user", "add", "--endpoint", &server.endpoint(), "mallory"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AccessDenied") && err.contains("iam:CreateUser"),
        "{err}"
    );
    // Names are unique, and a user with keys is not deleted by IAM's DeleteUser alone (the
    // command removes keys and policies first, which the next test shows).
    let out = run_coffer(&["user", "add", "--endpoint", &server.endpoint(), "plain"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EntityAlreadyExists"));
    let out = run_coffer(&["user", "add", "--endpoint", &server.endpoint(), "bad name"]);
    assert!(!out.status.success());
    let with_principal = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        with_principal.path(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
    )
    .unwrap();
    let out = run_coffer(&[
        "user",
        "put-policy",
        "--endpoint",
        &server.endpoint(),
        "plain",
        "p",
        "--file",
        with_principal.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MalformedPolicyDocument"));
}

/// IAM answers with secrets (CreateAccessKey): like KMS, it is refused over plain HTTP unless the
/// operator allowed it.
#[tokio::test]
async fn the_iam_endpoint_needs_tls() {
    let server = TestServer::builder().without_insecure_http().start();
    let out = run_coffer(&["user", "add", "--endpoint", &server.endpoint(), "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTPS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = TestServer::builder().tls_self_signed().start();
    let pem = server.data_dir().join("self-signed.pem");
    let out = run_coffer(&[
        "user",
        "add",
        "--endpoint",
        &server.endpoint(),
        "--ca-bundle",
        pem.to_str().unwrap(),
        "tls-user",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("AWS_SECRET_ACCESS_KEY="));
}

fn run_coffer_as(access_key: &str, secret_key: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run coffer")
}
