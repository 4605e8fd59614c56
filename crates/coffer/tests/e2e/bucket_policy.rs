//! Bucket policies end to end (issue 9): Put/Get/Delete/GetBucketPolicyStatus and their errors
//! with aws-sdk-s3, and AWS's own example policies — pasted as AWS documents them, with only the
//! bucket name, account and key ARN changed — allowing and denying what they should: deny
//! unencrypted uploads, require SSE-KMS, require a specific KMS key, deny SSE-C, deny non-TLS
//! (over plain HTTP and over HTTPS), `aws:SourceIp`, public read for anonymous callers (and
//! anonymous POST forms), a user allowed only by the bucket policy and stopped by an explicit
//! Deny, the root key bound by a Deny but always able to fix the policy, copies checked against
//! the source bucket's policy, DeleteObjects key by key, and `s3:prefix`.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::raw_http::{RawResponse, request};
use common::{
    ACCOUNT_ID, TestServer, assert_s3_error, create_bucket, create_key, delete_request, get,
    key_arn, ok, put, user_arn,
};
use md5::{Digest, Md5};

const BUCKET: &str = "policed";

/// Replaces AWS's placeholder bucket names in a documented policy with `bucket`.
fn for_bucket(policy: &str, bucket: &str) -> String {
    policy
        .replace("amzn-s3-demo-bucket", bucket)
        .replace("<bucket_name>", bucket)
}

async fn setup() -> (TestServer, Client) {
    let server = TestServer::builder().args(["--kms-quotas", "off"]).start();
    let s3 = server.client();
    create_bucket(&s3, BUCKET).await;
    (server, s3)
}

async fn put_policy(s3: &Client, bucket: &str, policy: &str) {
    ok(s3
        .put_bucket_policy()
        .bucket(bucket)
        .policy(policy)
        .send()
        .await);
}

/// A PutObject with the given `x-amz-server-side-encryption` (and KMS key id), or none.
async fn put_with(
    s3: &Client,
    key: &str,
    sse: Option<ServerSideEncryption>,
    kms_key: Option<&str>,
) -> Result<
    aws_sdk_s3::operation::put_object::PutObjectOutput,
    aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key.map(str::to_owned))
        .body(ByteStream::from_static(b"policy test"))
        .send()
        .await
}

/// Asserts `403 AccessDenied` caused by an explicit Deny of the bucket policy.
#[track_caller]
fn denied_by_bucket_policy<T: std::fmt::Debug, E>(result: Result<T, aws_sdk_s3::error::SdkError<E>>)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = assert_s3_error(result, 403, "AccessDenied");
    let message = failure.message.unwrap_or_default();
    assert!(
        message.contains("explicit deny in a resource-based policy"),
        "{message}"
    );
}

/// An unsigned request (no Authorization header, no presigned query).
fn anonymous(server: &TestServer, method: &str, target: &str, body: &[u8]) -> RawResponse {
    request(server.addr(), method, target, &[], body)
}

// ---------------------------------------------------------------------------------------------
// The four operations

#[tokio::test]
async fn put_get_status_delete_round_trip() {
    let (_server, s3) = setup().await;
    // As sent: GetBucketPolicy returns the text byte for byte, whitespace included.
    let public_read = for_bucket(
        r#"{
  "Version":"2012-10-17",
  "Statement":[
    {
      "Sid":"PublicReadGetObject",
      "Effect":"Allow",
      "Principal": "*",
      "Action":["s3:GetObject"],
      "Resource":["arn:aws:s3:::amzn-s3-demo-bucket/*"]
    }
  ]
}"#,
        BUCKET,
    );
    put_policy(&s3, BUCKET, &public_read).await;
    let got = ok(s3.get_bucket_policy().bucket(BUCKET).send().await);
    assert_eq!(got.policy(), Some(public_read.as_str()));
    let status = ok(s3.get_bucket_policy_status().bucket(BUCKET).send().await);
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(true)
    );

    // Naming one user is not public; a replaced policy is served at once.
    let one_user = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#,
        user_arn("alice")
    );
    put_policy(&s3, BUCKET, &one_user).await;
    assert_eq!(
        ok(s3.get_bucket_policy().bucket(BUCKET).send().await).policy(),
        Some(one_user.as_str())
    );
    let status = ok(s3.get_bucket_policy_status().bucket(BUCKET).send().await);
    assert_eq!(
        status.policy_status().and_then(|s| s.is_public()),
        Some(false)
    );

    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);
    assert_s3_error(
        s3.get_bucket_policy().bucket(BUCKET).send().await,
        404,
        "NoSuchBucketPolicy",
    );
    assert_s3_error(
        s3.get_bucket_policy_status().bucket(BUCKET).send().await,
        404,
        "NoSuchBucketPolicy",
    );
    // Deleting what is not there is still 204, as on S3.
    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);

    assert_s3_error(
        s3.get_bucket_policy().bucket("missing").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.put_bucket_policy()
            .bucket("missing")
            .policy(public_read.replace(BUCKET, "missing"))
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.delete_bucket_policy().bucket("missing").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn malformed_policies_are_refused_saying_what_is_wrong() {
    let (_server, s3) = setup().await;
    let good = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
    );
    put_policy(&s3, BUCKET, &good).await;
    let statement = |body: &str| format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#);
    let object = format!("arn:aws:s3:::{BUCKET}/*");
    let cases: Vec<(String, &str)> = vec![
        ("this is not json".into(), "not valid JSON"),
        (r#"{"Version":"2012-10-17"}"#.into(), "no Statement"),
        (
            r#"{"Version":"2012-10-18","Statement":[]}"#.into(),
            "Version must be",
        ),
        (
            statement(&format!(
                r#"{{"Principal":"*","Action":"s3:GetObject","Resource":"{object}"}}"#
            )),
            "has no Effect",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Allow","Action":"s3:GetObject","Resource":"{object}"}}"#
            )),
            "has no Principal",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"{object}"}}"#
            )),
            "Effect must be",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"{object}","Condition":{{"StringEqualsMaybe":{{"s3:x-amz-server-side-encryption":"AES256"}}}}}}"#
            )),
            "unknown or unsupported condition operator \"StringEqualsMaybe\"",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::someone-elses/*"}"#,
            ),
            "Policy has invalid resource",
        ),
        (
            statement(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}"#,
            ),
            "Policy has invalid resource",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"{object}"}}"#
            )),
            "Policy has invalid action",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":"alice"}},"Action":"s3:GetObject","Resource":"{object}"}}"#
            )),
            "entry \"alice\"",
        ),
        (
            statement(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"{object}","Condition":{{"Null":{{"s3:x-amz-server-side-encrytion":"true"}}}}}}"#
            )),
            "Policy has an invalid condition key",
        ),
        (
            statement(&format!(
                r#"{{"Sid":"{}","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"{object}"}}"#,
                "x".repeat(21 * 1024)
            )),
            "maximum allowed document size",
        ),
    ];
    for (policy, expected) in cases {
        let failure = assert_s3_error(
            s3.put_bucket_policy()
                .bucket(BUCKET)
                .policy(&policy)
                .send()
                .await,
            400,
            "MalformedPolicy",
        );
        let message = failure.message.unwrap_or_default();
        assert!(
            message.contains(expected),
            "policy {}\n  answered: {message}\n  expected: {expected}",
            &policy[..policy.len().min(200)]
        );
    }
    // Nothing refused replaced the policy.
    assert_eq!(
        ok(s3.get_bucket_policy().bucket(BUCKET).send().await).policy(),
        Some(good.as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// AWS's example policies

/// AWS's "How to prevent uploads of unencrypted objects to Amazon S3" (Security Blog), as
/// also printed in the S3 User Guide: deny a PutObject whose `x-amz-server-side-encryption` is
/// not AES256, and one without the header at all.
const DENY_UNENCRYPTED: &str = r#"{
     "Version": "2012-10-17",
     "Id": "PutObjPolicy",
     "Statement": [
           {
                "Sid": "DenyIncorrectEncryptionHeader",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::<bucket_name>/*",
                "Condition": {
                        "StringNotEquals": {
                               "s3:x-amz-server-side-encryption": "AES256"
                         }
                }
           },
           {
                "Sid": "DenyUnEncryptedObjectUploads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::<bucket_name>/*",
                "Condition": {
                        "Null": {
                               "s3:x-amz-server-side-encryption": "true"
                        }
               }
           }
     ]
 }"#;

#[tokio::test]
async fn deny_unencrypted_uploads_example() {
    let (_server, s3) = setup().await;
    put(&s3, BUCKET, "before", b"written before the policy").await;
    put_policy(&s3, BUCKET, &for_bucket(DENY_UNENCRYPTED, BUCKET)).await;

    // Coffer encrypts every object anyway (SSE-S3 by default), but the policy tests the request:
    // an upload that does not ask for AES256 is refused, also for the root user.
    denied_by_bucket_policy(put_with(&s3, "plain", None, None).await);
    denied_by_bucket_policy(put_with(&s3, "kms", Some(ServerSideEncryption::AwsKms), None).await);
    let stored = ok(put_with(&s3, "aes", Some(ServerSideEncryption::Aes256), None).await);
    assert_eq!(
        stored.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // Multipart uploads and copies are PutObject too.
    denied_by_bucket_policy(
        s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("mpu")
            .send()
            .await,
    );
    ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await);
    denied_by_bucket_policy(
        s3.copy_object()
            .bucket(BUCKET)
            .key("copy")
            .copy_source(format!("{BUCKET}/aes"))
            .send()
            .await,
    );
    ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source(format!("{BUCKET}/aes"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await);
    // Reads are not PutObject.
    assert_eq!(
        get(&s3, BUCKET, "before").await,
        b"written before the policy"
    );
    assert_eq!(get(&s3, BUCKET, "aes").await, b"policy test");

    // The AWS Organizations example's variant: only the Null statement.
    let null_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"Null":{{"s3:x-amz-server-side-encryption":"true"}}}}}}]}}"#
    );
    put_policy(&s3, BUCKET, &null_only).await;
    denied_by_bucket_policy(put_with(&s3, "plain", None, None).await);
    ok(put_with(&s3, "kms", Some(ServerSideEncryption::AwsKms), None).await);

    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);
    ok(put_with(&s3, "plain", None, None).await);
}

/// S3 User Guide, "Requiring SSE-KMS for all objects written to a bucket".
const REQUIRE_SSE_KMS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "PutObjPolicy",
    "Statement": [{
        "Sid": "DenyObjectsThatAreNotSSEKMS",
        "Principal": "*",
        "Effect": "Deny",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
        "Condition": {
            "Null": {
                "s3:x-amz-server-side-encryption-aws-kms-key-id": "true"
            }
        }
    }]
}"#;

/// The same, as AWS's security blog and S3 guides write it on the mode header.
const REQUIRE_AWS_KMS_HEADER: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyIncorrectEncryptionHeader",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
            "Condition": {
                "StringNotEquals": {
                    "s3:x-amz-server-side-encryption": "aws:kms"
                }
            }
        }
    ]
}"#;

#[tokio::test]
async fn require_sse_kms_examples() {
    let (server, s3) = setup().await;
    let key = create_key(&server.kms_client(), "bucket policy").await;
    let key_arn = key_arn(key.key_id());

    put_policy(&s3, BUCKET, &for_bucket(REQUIRE_AWS_KMS_HEADER, BUCKET)).await;
    denied_by_bucket_policy(put_with(&s3, "none", None, None).await);
    denied_by_bucket_policy(put_with(&s3, "aes", Some(ServerSideEncryption::Aes256), None).await);
    let stored = ok(put_with(
        &s3,
        "kms",
        Some(ServerSideEncryption::AwsKms),
        Some(&key_arn),
    )
    .await);
    assert_eq!(
        stored.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );

    put_policy(&s3, BUCKET, &for_bucket(REQUIRE_SSE_KMS, BUCKET)).await;
    denied_by_bucket_policy(
        put_with(&s3, "kms-no-key", Some(ServerSideEncryption::AwsKms), None).await,
    );
    ok(put_with(
        &s3,
        "kms",
        Some(ServerSideEncryption::AwsKms),
        Some(&key_arn),
    )
    .await);
    assert_eq!(get(&s3, BUCKET, "kms").await, b"policy test");
}

/// S3 User Guide, "Requiring SSE-KMS with a specific AWS KMS key for all objects written to a
/// bucket".
const REQUIRE_SPECIFIC_KEY: &str = r#"{
    "Version": "2012-10-17",
    "Id": "PutObjPolicy",
    "Statement": [{
        "Sid": "DenyObjectsThatAreNotSSEKMSWithSpecificKey",
        "Principal": "*",
        "Effect": "Deny",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
        "Condition": {
            "ArnNotEqualsIfExists": {
                "s3:x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-2:111122223333:key/01234567-89ab-cdef-0123-456789abcdef"
            }
        }
    }]
}"#;

#[tokio::test]
async fn require_a_specific_kms_key_example() {
    let (server, s3) = setup().await;
    let kms = server.kms_client();
    let wanted = key_arn(create_key(&kms, "the one").await.key_id());
    let other = key_arn(create_key(&kms, "another").await.key_id());
    let policy = for_bucket(REQUIRE_SPECIFIC_KEY, BUCKET).replace(
        "arn:aws:kms:us-east-2:111122223333:key/01234567-89ab-cdef-0123-456789abcdef",
        &wanted,
    );
    put_policy(&s3, BUCKET, &policy).await;

    ok(put_with(
        &s3,
        "right",
        Some(ServerSideEncryption::AwsKms),
        Some(&wanted),
    )
    .await);
    denied_by_bucket_policy(
        put_with(
            &s3,
            "wrong",
            Some(ServerSideEncryption::AwsKms),
            Some(&other),
        )
        .await,
    );
    // Without the header …IfExists holds, so the Deny applies: the key must be named.
    denied_by_bucket_policy(
        put_with(&s3, "unnamed", Some(ServerSideEncryption::AwsKms), None).await,
    );
    denied_by_bucket_policy(put_with(&s3, "none", None, None).await);
    assert_eq!(get(&s3, BUCKET, "right").await, b"policy test");
}

/// A whole multipart upload into `bucket`/`key` as `aws s3 cp` makes one, created with the given
/// encryption headers: a 5 MiB part, a copied part (UploadPartCopy), CompleteMultipartUpload.
/// Returns the object read back.
async fn multipart_upload(
    s3: &Client,
    bucket: &str,
    key: &str,
    sse: ServerSideEncryption,
    kms_key: Option<&str>,
) -> Vec<u8> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let created = ok(s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .server_side_encryption(sse)
        .set_ssekms_key_id(kms_key.map(str::to_owned))
        .send()
        .await);
    let id = created.upload_id().unwrap();
    let first = common::pattern(5 << 20, 9);
    let part = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(first.clone()))
        .send()
        .await;
    let part = part.unwrap_or_else(|e| {
        panic!(
            "UploadPart refused: {:?}",
            aws_sdk_s3::error::ProvideErrorMetadata::message(&e)
        )
    });
    let copied = s3
        .upload_part_copy()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(2)
        .copy_source(format!("{BUCKET}/source"))
        .send()
        .await;
    let copied = copied.unwrap_or_else(|e| {
        panic!(
            "UploadPartCopy refused: {:?}",
            aws_sdk_s3::error::ProvideErrorMetadata::message(&e)
        )
    });
    let completed_part = |n: i32, etag: Option<&str>| {
        CompletedPart::builder()
            .part_number(n)
            .e_tag(etag.unwrap())
            .build()
    };
    ok(s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(completed_part(1, part.e_tag()))
                .parts(completed_part(
                    2,
                    copied.copy_part_result().and_then(|r| r.e_tag()),
                ))
                .build(),
        )
        .send()
        .await);
    let mut expected = first;
    expected.extend_from_slice(b"copied part");
    let stored = get(s3, bucket, key).await;
    assert!(stored == expected, "{key}: the object read back differs");
    stored
}

/// Regression (review of issue 9): UploadPart, UploadPartCopy and CompleteMultipartUpload were
/// checked as `s3:PutObject` with their own headers, which never carry
/// `x-amz-server-side-encryption`, so AWS's documented encryption policies refused every
/// multipart upload after its creation (`aws s3 cp --sse AES256 big.bin`). They now take the
/// SSE keys from the upload they write into; an upload in a mode the policy denies is still
/// refused when it is created.
#[tokio::test]
async fn documented_encryption_policies_let_multipart_uploads_in_the_required_mode_finish() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "source", b"copied part").await;
    let kms = server.kms_client();
    let wanted = key_arn(create_key(&kms, "the one").await.key_id());
    let other = key_arn(create_key(&kms, "another").await.key_id());
    let create = |sse: Option<ServerSideEncryption>, kms_key: Option<&str>| {
        s3.create_multipart_upload()
            .bucket(BUCKET)
            .key("refused")
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms_key.map(str::to_owned))
            .send()
    };

    put_policy(&s3, BUCKET, &for_bucket(DENY_UNENCRYPTED, BUCKET)).await;
    multipart_upload(&s3, BUCKET, "aes", ServerSideEncryption::Aes256, None).await;
    denied_by_bucket_policy(create(None, None).await);
    denied_by_bucket_policy(create(Some(ServerSideEncryption::AwsKms), Some(&wanted)).await);

    put_policy(&s3, BUCKET, &for_bucket(REQUIRE_AWS_KMS_HEADER, BUCKET)).await;
    multipart_upload(
        &s3,
        BUCKET,
        "kms",
        ServerSideEncryption::AwsKms,
        Some(&wanted),
    )
    .await;
    denied_by_bucket_policy(create(Some(ServerSideEncryption::Aes256), None).await);

    let specific = for_bucket(REQUIRE_SPECIFIC_KEY, BUCKET).replace(
        "arn:aws:kms:us-east-2:111122223333:key/01234567-89ab-cdef-0123-456789abcdef",
        &wanted,
    );
    put_policy(&s3, BUCKET, &specific).await;
    multipart_upload(
        &s3,
        BUCKET,
        "key",
        ServerSideEncryption::AwsKms,
        Some(&wanted),
    )
    .await;
    denied_by_bucket_policy(create(Some(ServerSideEncryption::AwsKms), Some(&other)).await);
    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);

    // The identity side reads the upload too: a user whose own policy requires AES256.
    let (ak, sk) = server.add_user_online(
        "uploader",
        Some(&format!(
            r#"{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}},
                {{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/*",
                  "Condition":{{"StringNotEquals":{{"s3:x-amz-server-side-encryption":"AES256"}}}}}}]}}"#
        )),
    );
    let uploader = server.client_as(&ak, &sk);
    multipart_upload(
        &uploader,
        BUCKET,
        "by-user",
        ServerSideEncryption::Aes256,
        None,
    )
    .await;
    assert_s3_error(
        uploader
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("refused")
            .send()
            .await,
        403,
        "AccessDenied",
    );
}

/// AWS's policy to block SSE-C uploads (S3 User Guide on SSE-C, and the resource control
/// policy examples).
const DENY_SSE_C: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "RestrictSSECObjectUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
            "Condition": {
                "Null": {
                    "s3:x-amz-server-side-encryption-customer-algorithm": "false"
                }
            }
        }
    ]
}"#;

#[tokio::test]
async fn deny_sse_c_example() {
    let (_server, s3) = setup().await;
    put_policy(&s3, BUCKET, &for_bucket(DENY_SSE_C, BUCKET)).await;
    let customer_key = [7u8; 32];
    let key_md5 = B64.encode(Md5::digest(customer_key));
    // Refused by the policy, before any handler looks at the SSE-C headers.
    denied_by_bucket_policy(
        s3.put_object()
            .bucket(BUCKET)
            .key("ssec")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(B64.encode(customer_key))
            .sse_customer_key_md5(key_md5)
            .body(ByteStream::from_static(b"secret"))
            .send()
            .await,
    );
    ok(put_with(&s3, "plain", None, None).await);
    ok(put_with(&s3, "aes", Some(ServerSideEncryption::Aes256), None).await);
}

/// S3 User Guide, "Managing access based on HTTP or HTTPS requests" (RestrictToTLSRequestsOnly).
const DENY_NON_TLS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "RestrictToTLSRequestsOnly",
        "Action": "s3:*",
        "Effect": "Deny",
        "Resource": [
            "arn:aws:s3:::amzn-s3-demo-bucket",
            "arn:aws:s3:::amzn-s3-demo-bucket/*"
        ],
        "Condition": {
            "Bool": {
                "aws:SecureTransport": "false"
            }
        },
        "Principal": "*"
    }]
}"#;

/// An S3 client for a `--tls-self-signed` server that trusts its certificate.
fn https_client(server: &TestServer) -> Client {
    use aws_smithy_http_client::tls;
    let pem = std::fs::read(server.data_dir().join("self-signed.pem")).expect("read the cert");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem))
                .build()
                .expect("TLS context"),
        )
        .build_https();
    Client::from_conf(server.config_builder().http_client(http).build())
}

#[tokio::test]
async fn deny_non_tls_example() {
    // Over plain HTTP: every S3 request on the bucket is refused, the root user's too …
    let (_plain_server, plain) = setup().await;
    put(&plain, BUCKET, "k", b"data").await;
    put_policy(&plain, BUCKET, &for_bucket(DENY_NON_TLS, BUCKET)).await;
    denied_by_bucket_policy(plain.get_object().bucket(BUCKET).key("k").send().await);
    denied_by_bucket_policy(put_with(&plain, "k2", None, None).await);
    denied_by_bucket_policy(plain.list_objects_v2().bucket(BUCKET).send().await);
    // … except managing the policy with the root key (Coffer's lock-out guard).
    ok(plain.get_bucket_policy().bucket(BUCKET).send().await);

    // Over HTTPS the same policy lets everything through.
    let tls_server = TestServer::builder().tls_self_signed().start();
    assert!(tls_server.is_https());
    let s3 = https_client(&tls_server);
    create_bucket(&s3, BUCKET).await;
    put_policy(&s3, BUCKET, &for_bucket(DENY_NON_TLS, BUCKET)).await;
    put(&s3, BUCKET, "k", b"over tls").await;
    assert_eq!(get(&s3, BUCKET, "k").await, b"over tls");
    ok(s3.list_objects_v2().bucket(BUCKET).send().await);
}

/// S3 User Guide, "Managing access based on specific IP addresses".
const SOURCE_IP: &str = r#"{
  "Id": "SourceIP",
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "SourceIP",
      "Action": "s3:*",
      "Effect": "Deny",
      "Resource": [
        "arn:aws:s3:::amzn-s3-demo-bucket",
        "arn:aws:s3:::amzn-s3-demo-bucket/*"
      ],
      "Condition": {
        "NotIpAddress": {
          "aws:SourceIp": [
            "192.0.2.0/24",
            "203.0.113.0/24"
          ]
        }
      },
      "Principal": "*"
    }
  ]
}"#;

#[tokio::test]
async fn source_ip_example_and_an_allow_by_address() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "k", b"data").await;
    // The tests connect from 127.0.0.1: outside the documented ranges, so denied.
    put_policy(&s3, BUCKET, &for_bucket(SOURCE_IP, BUCKET)).await;
    denied_by_bucket_policy(s3.get_object().bucket(BUCKET).key("k").send().await);
    // With loopback among the allowed ranges (v4 and v6), the same policy lets it through.
    let loopback = for_bucket(SOURCE_IP, BUCKET).replace(
        "\"203.0.113.0/24\"",
        "\"203.0.113.0/24\", \"127.0.0.0/8\", \"::1/128\"",
    );
    put_policy(&s3, BUCKET, &loopback).await;
    assert_eq!(get(&s3, BUCKET, "k").await, b"data");

    // A user with no identity policy, allowed by the bucket policy from loopback only.
    let (ak, sk) = server.add_user_online("ip-user", None);
    let user = server.client_as(&ak, &sk);
    let allow_from = |cidr: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{cidr}"}}}}}}]}}"#,
            user_arn("ip-user")
        )
    };
    put_policy(&s3, BUCKET, &allow_from("127.0.0.1/32")).await;
    assert_eq!(get(&user, BUCKET, "k").await, b"data");
    put_policy(&s3, BUCKET, &allow_from("10.0.0.0/8")).await;
    assert_s3_error(
        user.get_object().bucket(BUCKET).key("k").send().await,
        403,
        "AccessDenied",
    );
}

// ---------------------------------------------------------------------------------------------
// Anonymous callers

/// S3 User Guide, "Granting read-only permission to a public anonymous user".
const PUBLIC_READ: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": [
                "s3:GetObject",
                "s3:GetObjectVersion"
            ],
            "Resource": [
                "arn:aws:s3:::amzn-s3-demo-bucket/*"
            ]
        }
    ]
}"#;

#[tokio::test]
async fn public_read_lets_anonymous_callers_read_and_nothing_more() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "page.html", b"<h1>hello</h1>").await;
    let path = format!("/{BUCKET}/page.html");
    let resp = anonymous(&server, "GET", &path, b"");
    assert_eq!(resp.status, 403, "no policy yet: {}", resp.body_text());

    put_policy(&s3, BUCKET, &for_bucket(PUBLIC_READ, BUCKET)).await;
    let resp = anonymous(&server, "GET", &path, b"");
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body, b"<h1>hello</h1>");
    assert_eq!(resp.header("x-amz-server-side-encryption"), Some("AES256"));
    assert_eq!(anonymous(&server, "HEAD", &path, b"").status, 200);

    for (method, target) in [
        ("PUT", format!("/{BUCKET}/new.html")),
        ("DELETE", path.clone()),
        ("GET", format!("/{BUCKET}?list-type=2")),
        ("GET", format!("/{BUCKET}?policy")),
        ("GET", "/".to_owned()),
    ] {
        let resp = anonymous(&server, method, &target, b"stranger");
        assert_eq!(resp.status, 403, "{method} {target}: {}", resp.body_text());
        assert_eq!(resp.xml_element("Code").as_deref(), Some("AccessDenied"));
        assert_eq!(
            resp.xml_element("Message").as_deref(),
            Some("Access Denied")
        );
    }
    assert_eq!(get(&s3, BUCKET, "page.html").await, b"<h1>hello</h1>");
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key("new.html")
            .send()
            .await
            .is_err()
    );

    // An anonymous write needs a policy allowing it; an anonymous POST form too.
    let drop_box = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/inbox/*"}}]}}"#
    );
    put_policy(&s3, BUCKET, &drop_box).await;
    let resp = anonymous(
        &server,
        "PUT",
        &format!("/{BUCKET}/inbox/a.txt"),
        b"dropped",
    );
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(get(&s3, BUCKET, "inbox/a.txt").await, b"dropped");
    let resp = anonymous(&server, "PUT", &format!("/{BUCKET}/outside.txt"), b"x");
    assert_eq!(resp.status, 403);

    let form = |key: &str| {
        let boundary = "----PolicyFormBoundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\nposted anonymously\r\n--{boundary}--\r\n"
        );
        request(
            server.addr(),
            "POST",
            &format!("/{BUCKET}"),
            &[(
                "content-type".into(),
                format!("multipart/form-data; boundary={boundary}"),
            )],
            body.as_bytes(),
        )
    };
    let resp = form("inbox/form.txt");
    assert_eq!(resp.status, 204, "{}", resp.body_text());
    assert_eq!(
        get(&s3, BUCKET, "inbox/form.txt").await,
        b"posted anonymously"
    );
    let resp = form("elsewhere.txt");
    assert_eq!(resp.status, 403, "{}", resp.body_text());
    assert_eq!(resp.xml_element("Code").as_deref(), Some("AccessDenied"));
}

/// S3 API Reference, "Bucket policy examples using Signature Version 4 related condition keys":
/// deny a presigned URL whose signature is more than ten minutes old.
const DENY_OLD_SIGNATURES: &str = r#"{
   "Version": "2012-10-17",
   "Statement": [
      {
         "Sid": "Deny a presigned URL request if the signature is more than 10 min old",
         "Effect": "Deny",
         "Principal": {"AWS":"*"},
         "Action": "s3:*",
         "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
         "Condition": {
            "NumericGreaterThan": {
               "s3:signatureAge": "600000"
            }
         }
      }
   ]
}"#;

/// AWS Prescriptive Guidance, "Presigned URL best practices": deny presigned URLs
/// (`s3:authType` `REST-QUERY-STRING`).
const DENY_PRESIGNED_URLS: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "DenyPresignedRequests",
      "Effect": "Deny",
      "Principal": "*",
      "Action": "s3:*",
      "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket", "arn:aws:s3:::amzn-s3-demo-bucket/*"],
      "Condition": {
        "StringEquals": {
          "s3:authType": "REST-QUERY-STRING"
        }
      }
    }
  ]
}"#;

/// Regression (review of issue 9): `s3:signatureAge`, `s3:authType` (and `s3:signatureversion`,
/// see `sigv2::`) were accepted but never supplied, so these documented policies were inert.
/// `s3:TlsVersion`, which Coffer cannot supply, is refused when the policy is put.
#[tokio::test]
async fn signature_age_and_presigned_url_examples() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use common::raw_http::fetch_presigned;
    use std::time::{Duration, SystemTime};

    let (_server, s3) = setup().await;
    put(&s3, BUCKET, "k", b"data").await;
    let presign = |signed_ago: Duration| {
        let s3 = s3.clone();
        async move {
            let config = PresigningConfig::builder()
                .start_time(SystemTime::now() - signed_ago)
                .expires_in(Duration::from_secs(3600))
                .build()
                .unwrap();
            s3.get_object()
                .bucket(BUCKET)
                .key("k")
                .presigned(config)
                .await
                .unwrap()
        }
    };
    let fresh = presign(Duration::ZERO).await;
    let twenty_minutes_old = presign(Duration::from_secs(20 * 60)).await;
    assert_eq!(fetch_presigned(&twenty_minutes_old, &[], b"").status, 200);

    put_policy(&s3, BUCKET, &for_bucket(DENY_OLD_SIGNATURES, BUCKET)).await;
    let refused = fetch_presigned(&twenty_minutes_old, &[], b"");
    assert_eq!(
        (refused.status, refused.xml_element("Code").as_deref()),
        (403, Some("AccessDenied")),
        "{}",
        refused.body_text()
    );
    let served = fetch_presigned(&fresh, &[], b"");
    assert_eq!((served.status, served.body.as_slice()), (200, &b"data"[..]));
    assert_eq!(get(&s3, BUCKET, "k").await, b"data");

    put_policy(&s3, BUCKET, &for_bucket(DENY_PRESIGNED_URLS, BUCKET)).await;
    let refused = fetch_presigned(&fresh, &[], b"");
    assert_eq!(
        (refused.status, refused.xml_element("Code").as_deref()),
        (403, Some("AccessDenied")),
        "{}",
        refused.body_text()
    );
    // The Authorization header is REST-HEADER.
    assert_eq!(get(&s3, BUCKET, "k").await, b"data");

    let tls_version = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::{BUCKET}/*","Condition":{{"NumericLessThan":{{"s3:TlsVersion":"1.2"}}}}}}]}}"#
    );
    let failure = assert_s3_error(
        s3.put_bucket_policy()
            .bucket(BUCKET)
            .policy(&tls_version)
            .send()
            .await,
        400,
        "MalformedPolicy",
    );
    let message = failure.message.unwrap_or_default();
    assert!(
        message.contains("\"s3:TlsVersion\"") && message.contains("Coffer does not supply"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Users, the root user, copies, DeleteObjects, s3:prefix

#[tokio::test]
async fn a_user_allowed_only_by_the_bucket_policy_and_stopped_by_an_explicit_deny() {
    let (server, s3) = setup().await;
    create_bucket(&s3, "elsewhere").await;
    put(&s3, BUCKET, "shared/doc", b"for bob").await;
    put(&s3, BUCKET, "secret/doc", b"not for bob").await;
    // No identity policy at all: whatever bob may do, the bucket policy grants.
    let (ak, sk) = server.add_user_online("bob", None);
    let bob = server.client_as(&ak, &sk);
    assert_s3_error(
        bob.get_object()
            .bucket(BUCKET)
            .key("shared/doc")
            .send()
            .await,
        403,
        "AccessDenied",
    );

    let bob_arn = user_arn("bob");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"BobReadsAndWrites","Effect":"Allow","Principal":{{"AWS":"{bob_arn}"}},
              "Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::{BUCKET}/*"}},
            {{"Sid":"BobLists","Effect":"Allow","Principal":{{"AWS":"{bob_arn}"}},
              "Action":"s3:ListBucket","Resource":"arn:aws:s3:::{BUCKET}",
              "Condition":{{"StringLike":{{"s3:prefix":"shared/*"}}}}}},
            {{"Sid":"NotTheSecrets","Effect":"Deny","Principal":{{"AWS":"{bob_arn}"}},
              "Action":"s3:*","Resource":"arn:aws:s3:::{BUCKET}/secret/*"}}]}}"#
    );
    put_policy(&s3, BUCKET, &policy).await;

    assert_eq!(get(&bob, BUCKET, "shared/doc").await, b"for bob");
    put(&bob, BUCKET, "shared/new", b"from bob").await;
    denied_by_bucket_policy(
        bob.get_object()
            .bucket(BUCKET)
            .key("secret/doc")
            .send()
            .await,
    );
    denied_by_bucket_policy(
        bob.put_object()
            .bucket(BUCKET)
            .key("secret/x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
    );
    // The policy is the bucket's: another bucket is not covered.
    assert_s3_error(
        bob.list_objects_v2().bucket("elsewhere").send().await,
        403,
        "AccessDenied",
    );
    // s3:prefix: listing is allowed under shared/ only.
    let listed = ok(bob
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("shared/")
        .send()
        .await);
    assert_eq!(listed.key_count(), Some(2));
    assert_s3_error(
        bob.list_objects_v2().bucket(BUCKET).send().await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        bob.list_objects_v2()
            .bucket(BUCKET)
            .prefix("secret/")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    // DeleteObjects is checked key by key: the secret stays, with an AccessDenied entry.
    let out = ok(bob
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete_request(&["shared/new", "secret/doc"], false))
        .send()
        .await);
    assert_eq!(out.deleted().len(), 1);
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].key(), Some("secret/doc"));
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    assert_eq!(get(&s3, BUCKET, "secret/doc").await, b"not for bob");

    // An identity policy allowing everything does not beat the bucket's explicit Deny.
    let (ak, sk) = server.add_user_online(
        "carol",
        Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#),
    );
    let carol = server.client_as(&ak, &sk);
    assert_eq!(get(&carol, BUCKET, "secret/doc").await, b"not for bob");
    put_policy(&s3, BUCKET, &policy.replace(&bob_arn, &user_arn("carol"))).await;
    denied_by_bucket_policy(
        carol
            .get_object()
            .bucket(BUCKET)
            .key("secret/doc")
            .send()
            .await,
    );
    // Nor may a user with full identity access manage the bucket's policy past its Deny.
    let deny_policy_changes = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":["s3:PutBucketPolicy","s3:DeleteBucketPolicy"],"Resource":"arn:aws:s3:::{BUCKET}"}}]}}"#
    );
    put_policy(&s3, BUCKET, &deny_policy_changes).await;
    denied_by_bucket_policy(carol.delete_bucket_policy().bucket(BUCKET).send().await);
    // The root key still can.
    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);
    ok(carol.delete_bucket_policy().bucket(BUCKET).send().await);
}

/// Regression (review of issue 9): a Deny naming the account (`arn:aws:iam::<acct>:root` or the
/// bare account id) did not bind a user whose access came from the bucket policy itself: the
/// account principal matched users only "through delegation", an Allow-side rule. AWS applies a
/// Deny naming the account to every principal of the account.
#[tokio::test]
async fn an_account_principal_deny_binds_a_user_the_bucket_policy_allows() {
    let (server, s3) = setup().await;
    put(&s3, BUCKET, "doc", b"confidential").await;
    let (ak, sk) = server.add_user_online("bob", None);
    let bob = server.client_as(&ak, &sk);
    let allow_bob = format!(
        r#"{{"Sid":"BobReads","Effect":"Allow","Principal":{{"AWS":"{}"}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}"#,
        user_arn("bob")
    );
    put_policy(
        &s3,
        BUCKET,
        &format!(r#"{{"Version":"2012-10-17","Statement":[{allow_bob}]}}"#),
    )
    .await;
    assert_eq!(get(&bob, BUCKET, "doc").await, b"confidential");
    for account in [
        format!("arn:aws:iam::{ACCOUNT_ID}:root"),
        ACCOUNT_ID.to_owned(),
    ] {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{allow_bob},
              {{"Sid":"NobodyInTheAccountReads","Effect":"Deny","Principal":{{"AWS":"{account}"}},
                "Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
        );
        put_policy(&s3, BUCKET, &policy).await;
        denied_by_bucket_policy(s3.get_object().bucket(BUCKET).key("doc").send().await);
        denied_by_bucket_policy(bob.get_object().bucket(BUCKET).key("doc").send().await);
    }
}

/// Regression (review of issue 9): policy variables were matched literally, so a statement
/// with `${aws:username}` never applied — an Allow granted nothing and, worse, a Deny denied
/// nothing. They are expanded per request (Version 2012-10-17).
#[tokio::test]
async fn policy_variables_give_each_user_a_home_and_bind_denies() {
    let (server, s3) = setup().await;
    let (ak, sk) = server.add_user_online("alice", None);
    let alice = server.client_as(&ak, &sk);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"OwnHome","Effect":"Allow","Principal":{{"AWS":"{alice}"}},
              "Action":["s3:GetObject","s3:PutObject"],
              "Resource":"arn:aws:s3:::{BUCKET}/home/${{aws:username}}/*"}},
            {{"Sid":"OwnHomeListing","Effect":"Allow","Principal":{{"AWS":"{alice}"}},
              "Action":"s3:ListBucket","Resource":"arn:aws:s3:::{BUCKET}",
              "Condition":{{"StringLike":{{"s3:prefix":"home/${{aws:username}}/*"}}}}}},
            {{"Sid":"ReadOnlyCorner","Effect":"Deny","Principal":{{"AWS":"{alice}"}},
              "Action":"s3:PutObject",
              "Resource":"arn:aws:s3:::{BUCKET}/home/${{aws:username}}/readonly/*"}}]}}"#,
        alice = user_arn("alice")
    );
    put_policy(&s3, BUCKET, &policy).await;
    put(&alice, BUCKET, "home/alice/notes", b"mine").await;
    assert_eq!(get(&alice, BUCKET, "home/alice/notes").await, b"mine");
    let listed = ok(alice
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("home/alice/")
        .send()
        .await);
    assert_eq!(listed.key_count(), Some(1));
    assert_s3_error(
        alice
            .put_object()
            .bucket(BUCKET)
            .key("home/bob/notes")
            .body(ByteStream::from_static(b"not mine"))
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        alice
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("home/bob/")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    denied_by_bucket_policy(
        alice
            .put_object()
            .bucket(BUCKET)
            .key("home/alice/readonly/x")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
    );
    // A variable that cannot be read is refused when the policy is put.
    let unterminated = policy.replace("${aws:username}/readonly", "${aws:username/readonly");
    let failure = assert_s3_error(
        s3.put_bucket_policy()
            .bucket(BUCKET)
            .policy(&unterminated)
            .send()
            .await,
        400,
        "MalformedPolicy",
    );
    assert!(
        failure
            .message
            .unwrap_or_default()
            .contains("policy variable with no closing brace")
    );
}

#[tokio::test]
async fn the_root_user_is_bound_by_a_deny_but_can_always_fix_the_policy() {
    let (_server, s3) = setup().await;
    put(&s3, BUCKET, "k", b"data").await;
    let lock_out = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}"#
    );
    put_policy(&s3, BUCKET, &lock_out).await;
    denied_by_bucket_policy(s3.get_object().bucket(BUCKET).key("k").send().await);
    denied_by_bucket_policy(s3.delete_object().bucket(BUCKET).key("k").send().await);
    denied_by_bucket_policy(s3.delete_bucket().bucket(BUCKET).send().await);
    // Other buckets are untouched.
    create_bucket(&s3, "free").await;
    put(&s3, "free", "k", b"free").await;

    ok(s3.get_bucket_policy().bucket(BUCKET).send().await);
    ok(s3.get_bucket_policy_status().bucket(BUCKET).send().await);
    let narrower = lock_out.replace("\"s3:*\"", "\"s3:DeleteObject\"");
    put_policy(&s3, BUCKET, &narrower).await;
    assert_eq!(get(&s3, BUCKET, "k").await, b"data");
    denied_by_bucket_policy(s3.delete_object().bucket(BUCKET).key("k").send().await);
    ok(s3.delete_bucket_policy().bucket(BUCKET).send().await);
    ok(s3.delete_object().bucket(BUCKET).key("k").send().await);
}

#[tokio::test]
async fn copies_are_checked_against_the_source_buckets_policy() {
    let (_server, s3) = setup().await;
    create_bucket(&s3, "source").await;
    put(&s3, "source", "k", b"copy me").await;
    let deny_reads = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::source/*"}]}"#;
    put_policy(&s3, "source", deny_reads).await;
    denied_by_bucket_policy(
        s3.copy_object()
            .bucket(BUCKET)
            .key("copy")
            .copy_source("source/k")
            .send()
            .await,
    );
    let upload = ok(s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu")
        .send()
        .await);
    denied_by_bucket_policy(
        s3.upload_part_copy()
            .bucket(BUCKET)
            .key("mpu")
            .upload_id(upload.upload_id().unwrap_or_default())
            .part_number(1)
            .copy_source("source/k")
            .send()
            .await,
    );
    ok(s3.delete_bucket_policy().bucket("source").send().await);
    ok(s3
        .copy_object()
        .bucket(BUCKET)
        .key("copy")
        .copy_source("source/k")
        .send()
        .await);
    assert_eq!(get(&s3, BUCKET, "copy").await, b"copy me");
}

#[tokio::test]
async fn a_bucket_created_again_has_no_policy() {
    let (server, s3) = setup().await;
    put_policy(&s3, BUCKET, &for_bucket(PUBLIC_READ, BUCKET)).await;
    put(&s3, BUCKET, "k", b"public").await;
    assert_eq!(
        anonymous(&server, "GET", &format!("/{BUCKET}/k"), b"").status,
        200
    );
    ok(s3.delete_object().bucket(BUCKET).key("k").send().await);
    ok(s3.delete_bucket().bucket(BUCKET).send().await);
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, "k", b"private again").await;
    assert_eq!(
        anonymous(&server, "GET", &format!("/{BUCKET}/k"), b"").status,
        403
    );
    assert_s3_error(
        s3.get_bucket_policy().bucket(BUCKET).send().await,
        404,
        "NoSuchBucketPolicy",
    );
}

#[tokio::test]
async fn a_policy_survives_a_restart() {
    let (mut server, s3) = setup().await;
    put(&s3, BUCKET, "k", b"data").await;
    put_policy(&s3, BUCKET, &for_bucket(DENY_UNENCRYPTED, BUCKET)).await;
    server.restart();
    let s3 = server.client();
    denied_by_bucket_policy(put_with(&s3, "plain", None, None).await);
    ok(put_with(&s3, "aes", Some(ServerSideEncryption::Aes256), None).await);
}
