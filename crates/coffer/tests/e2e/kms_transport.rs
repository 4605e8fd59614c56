//! The KMS endpoint's transport and authentication end to end: plain HTTP refused without
//! `--allow-insecure-http`, HTTPS with `--tls-self-signed`, SigV4 failures (wrong secret,
//! unknown access key, wrong region, no signature) with the error types AWS KMS uses, and the
//! request-rate quotas answering ThrottlingException.

use crate::common;

use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use common::{
    TestServer, assert_kms_error, create_key, kms_https_request, kms_raw_request, ok, s3_failure,
};

#[tokio::test]
async fn kms_over_plain_http_is_refused_without_allow_insecure_http() {
    let server = TestServer::builder()
        .without_insecure_http()
        .args(["--kms-quotas", "off"])
        .start();
    assert!(!server.is_https());
    let kms = server.kms_client();
    let failure = assert_kms_error(kms.create_key().send().await, "AccessDeniedException");
    let message = failure.message.clone().unwrap_or_default();
    assert!(
        message.contains("HTTPS"),
        "the message says HTTPS is needed: {failure:?}"
    );
    assert_kms_error(
        kms.generate_random().number_of_bytes(16).send().await,
        "AccessDeniedException",
    );
    assert_kms_error(kms.list_keys().send().await, "AccessDeniedException");
    // S3 requests without key material still work over plain HTTP.
    ok(server.client().list_buckets().send().await);
}

#[tokio::test]
async fn kms_works_over_https_with_a_self_signed_certificate() {
    let server = TestServer::builder()
        .tls_self_signed()
        .args(["--kms-quotas", "off"])
        .start();
    assert!(server.is_https(), "the server announced https://");
    assert!(server.endpoint().starts_with("https://"));
    assert!(
        server.data_dir().join("self-signed.pem").exists(),
        "the certificate is written to the data dir"
    );

    let resp = kms_https_request(&server, "GenerateRandom", br#"{"NumberOfBytes":16}"#);
    assert_eq!(
        resp.status,
        200,
        "GenerateRandom over HTTPS: {}",
        resp.body_text()
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON body");
    let random = aws_smithy_types::base64::decode(body["Plaintext"].as_str().expect("Plaintext"))
        .expect("base64 Plaintext");
    assert_eq!(random.len(), 16);

    let resp = kms_https_request(&server, "CreateKey", br#"{"Description":"over tls"}"#);
    assert_eq!(
        resp.status,
        200,
        "CreateKey over HTTPS: {}",
        resp.body_text()
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON body");
    let key_id = body["KeyMetadata"]["KeyId"]
        .as_str()
        .expect("KeyId")
        .to_string();

    let plaintext = aws_smithy_types::base64::encode(b"secret over tls");
    let req = serde_json::json!({"KeyId": key_id, "Plaintext": plaintext}).to_string();
    let resp = kms_https_request(&server, "Encrypt", req.as_bytes());
    assert_eq!(resp.status, 200, "Encrypt over HTTPS: {}", resp.body_text());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON body");
    let blob = body["CiphertextBlob"]
        .as_str()
        .expect("CiphertextBlob")
        .to_string();
    let req = serde_json::json!({"CiphertextBlob": blob}).to_string();
    let resp = kms_https_request(&server, "Decrypt", req.as_bytes());
    assert_eq!(resp.status, 200, "Decrypt over HTTPS: {}", resp.body_text());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON body");
    assert_eq!(body["Plaintext"], plaintext.as_str());
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_signature() {
    let server = TestServer::start();
    let kms = server.kms_client_as(
        common::ACCESS_KEY,
        "WrongSecretKey00000000000000000000000000",
    );
    assert_kms_error(kms.list_keys().send().await, "InvalidSignatureException");
    assert_kms_error(
        kms.generate_random().number_of_bytes(8).send().await,
        "InvalidSignatureException",
    );
}

#[tokio::test]
async fn an_unknown_access_key_is_unrecognized_client() {
    let server = TestServer::start();
    let kms = server.kms_client_as("AKIANOBODYKNOWSTHIS0", common::SECRET_KEY);
    assert_kms_error(kms.list_keys().send().await, "UnrecognizedClientException");
    assert_kms_error(kms.create_key().send().await, "UnrecognizedClientException");
}

#[tokio::test]
async fn a_signature_for_another_region_is_invalid_signature() {
    let server = TestServer::start();
    let kms = aws_sdk_kms::Client::from_conf(
        server
            .kms_config_builder()
            .region(aws_sdk_kms::config::Region::new("eu-west-1"))
            .build(),
    );
    assert_kms_error(kms.list_keys().send().await, "InvalidSignatureException");
}

#[tokio::test]
async fn an_unsigned_request_is_missing_authentication_token() {
    let server = TestServer::start();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        (
            "x-amz-target".to_string(),
            "TrentService.ListKeys".to_string(),
        ),
    ];
    let resp = common::raw_http::request(server.addr(), "POST", "/", &headers, b"{}");
    assert_eq!(resp.status, 400, "{}", resp.body_text());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON error body");
    assert_eq!(
        body["__type"], "MissingAuthenticationTokenException",
        "{body}"
    );

    // The same request signed by hand works: the harness signer agrees with the server.
    let resp = kms_raw_request(&server, "ListKeys", b"{}");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON body");
    assert!(body["Keys"].is_array(), "{body}");
}

/// Sends `n` Encrypt/GenerateRandom requests at once; returns (successes, error codes).
async fn burst(kms: &aws_sdk_kms::Client, key_id: &str, n: usize) -> (usize, Vec<(u16, String)>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let kms = kms.clone();
        let key_id = key_id.to_string();
        tasks.spawn(async move {
            if i % 2 == 0 {
                kms.generate_random()
                    .number_of_bytes(32)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| s3_failure::<(), _>(Err(e)))
            } else {
                kms.encrypt()
                    .key_id(key_id)
                    .plaintext(Blob::new("burst"))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| s3_failure::<(), _>(Err(e)))
            }
        });
    }
    let mut successes = 0;
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.expect("request task") {
            Ok(()) => successes += 1,
            Err(f) => errors.push((f.status, f.code.unwrap_or_default())),
        }
    }
    (successes, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cryptographic_quota_throttles_and_then_lets_requests_through_again() {
    let server = TestServer::builder()
        .args(["--kms-quota-cryptographic", "5"])
        .start();
    let kms = server.kms_client();
    let id = create_key(&kms, "throttled").await.key_id().to_string();
    // Start with a full bucket.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (successes, errors) = burst(&kms, &id, 50).await;
    eprintln!(
        "quota 5/s, 50 requests at once: {successes} succeeded, {} throttled",
        errors.len()
    );
    assert!(
        errors
            .iter()
            .all(|(status, code)| *status == 400 && code == "ThrottlingException"),
        "every failure is 400 ThrottlingException: {errors:?}"
    );
    assert!(successes >= 1, "the burst allowance lets some through");
    assert!(
        errors.len() >= 25,
        "at 5 requests/s most of 50 simultaneous requests are throttled, {} were",
        errors.len()
    );
    // Other quota groups are not affected.
    ok(kms.describe_key().key_id(&id).send().await);

    // After a pause, requests at a pace under the quota all succeed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..4 {
        ok(kms.generate_random().number_of_bytes(8).send().await);
        ok(kms
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new("paced"))
            .send()
            .await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_of_zero_is_unlimited() {
    let server = TestServer::builder()
        .args(["--kms-quota-cryptographic", "0"])
        .start();
    let kms = server.kms_client();
    let id = create_key(&kms, "unthrottled").await.key_id().to_string();
    let (successes, errors) = burst(&kms, &id, 50).await;
    assert_eq!((successes, errors), (50, vec![]));
}
