//! KMS keys end to end with aws-sdk-kms: CreateKey (Description, Tags, Policy) and the metadata
//! AWS returns, DescribeKey by key id, key ARN, alias name and alias ARN, ListKeys paging,
//! EnableKey/DisableKey, UpdateKeyDescription, TagResource/UntagResource/ListResourceTags, and
//! the account id in ARNs.

use crate::common;

use std::collections::BTreeSet;

use aws_sdk_kms::types::{
    EncryptionAlgorithmSpec, KeyManagerType, KeySpec, KeyState, KeyUsageType, OriginType, Tag,
};
use common::{
    ACCOUNT_ID, REGION, TestServer, alias_arn, assert_kms_error, create_key, encrypt, key_arn,
    key_state, kms_server, ok, root_arn,
};

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder()
        .tag_key(key)
        .tag_value(value)
        .build()
        .expect("tag has key and value")
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn create_key_returns_aws_shaped_metadata() {
    let server = kms_server();
    let kms = server.kms_client();
    let out = ok(kms
        .create_key()
        .description("payments master key")
        .tags(tag("team", "payments"))
        .tags(tag("env", "test"))
        .send()
        .await);
    let meta = out.key_metadata.expect("KeyMetadata");
    assert!(is_uuid(meta.key_id()), "KeyId is a UUID: {}", meta.key_id());
    assert_eq!(meta.arn(), Some(key_arn(meta.key_id()).as_str()));
    assert_eq!(meta.aws_account_id(), Some(ACCOUNT_ID));
    assert_eq!(meta.description(), Some("payments master key"));
    assert!(meta.enabled());
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(meta.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(meta.origin(), Some(&OriginType::AwsKms));
    assert_eq!(meta.key_manager(), Some(&KeyManagerType::Customer));
    assert_eq!(
        meta.encryption_algorithms(),
        &[EncryptionAlgorithmSpec::SymmetricDefault]
    );
    assert!(meta.creation_date().is_some(), "CreationDate is set");
    assert_eq!(meta.deletion_date(), None);

    let tags = ok(kms.list_resource_tags().key_id(meta.key_id()).send().await);
    let got: BTreeSet<(String, String)> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [("env", "test"), ("team", "payments")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(!tags.truncated());
}

#[tokio::test]
async fn create_key_with_a_policy_stores_that_policy() {
    let server = kms_server();
    let kms = server.kms_client();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "custom-policy-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": root_arn()},
            "Action": "kms:*",
            "Resource": "*"
        }]
    });
    let meta = ok(kms.create_key().policy(policy.to_string()).send().await)
        .key_metadata
        .expect("KeyMetadata");
    let got = ok(kms
        .get_key_policy()
        .key_id(meta.key_id())
        .policy_name("default")
        .send()
        .await);
    let got: serde_json::Value =
        serde_json::from_str(got.policy().expect("Policy")).expect("policy is JSON");
    assert_eq!(got, policy);

    // A policy that is not a policy is refused at creation too.
    assert_kms_error(
        kms.create_key().policy("{ this is not json").send().await,
        "MalformedPolicyDocumentException",
    );
}

#[tokio::test]
async fn describe_key_accepts_id_arn_alias_and_alias_arn() {
    let server = kms_server();
    let kms = server.kms_client();
    let meta = create_key(&kms, "described").await;
    let id = meta.key_id().to_string();
    ok(kms
        .create_alias()
        .alias_name("alias/described")
        .target_key_id(&id)
        .send()
        .await);
    for form in [
        id.clone(),
        key_arn(&id),
        "alias/described".to_string(),
        alias_arn("alias/described"),
    ] {
        let got = ok(kms.describe_key().key_id(&form).send().await)
            .key_metadata
            .expect("KeyMetadata");
        assert_eq!(got.key_id(), id, "DescribeKey({form})");
        assert_eq!(
            got.arn(),
            Some(key_arn(&id).as_str()),
            "DescribeKey({form})"
        );
        assert_eq!(got.description(), Some("described"));
    }
}

#[tokio::test]
async fn describe_key_of_unknown_keys_is_not_found() {
    let server = kms_server();
    let kms = server.kms_client();
    create_key(&kms, "some key").await;
    for missing in [
        "0b5c2c1e-2a2b-4c9d-8e0f-123456789abc".to_string(),
        key_arn("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc"),
        "alias/does-not-exist".to_string(),
        alias_arn("alias/does-not-exist"),
        "not-a-key-id".to_string(),
    ] {
        assert_kms_error(
            kms.describe_key().key_id(&missing).send().await,
            "NotFoundException",
        );
    }
}

#[tokio::test]
async fn list_keys_pages_with_limit_and_marker() {
    let server = kms_server();
    let kms = server.kms_client();
    let mut created = BTreeSet::new();
    for i in 0..5 {
        created.insert(
            create_key(&kms, &format!("key {i}"))
                .await
                .key_id()
                .to_string(),
        );
    }

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ok(kms
            .list_keys()
            .limit(2)
            .set_marker(marker.clone())
            .send()
            .await);
        pages += 1;
        assert!(
            out.keys().len() <= 2,
            "page {pages} has {} keys",
            out.keys().len()
        );
        for entry in out.keys() {
            let id = entry.key_id().expect("KeyId").to_string();
            assert_eq!(entry.key_arn(), Some(key_arn(&id).as_str()));
            seen.push(id);
        }
        if out.truncated() {
            let next = out
                .next_marker()
                .expect("a truncated page has a NextMarker");
            marker = Some(next.to_string());
        } else {
            assert_eq!(out.next_marker(), None, "the last page has no NextMarker");
            break;
        }
        assert!(pages < 20, "ListKeys never stops paging");
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a key listed twice: {seen:?}");
    assert!(
        created.is_subset(&unique),
        "created {created:?}, listed {unique:?}"
    );
    assert!(
        pages >= 3,
        "5 keys at Limit 2 take at least 3 pages, took {pages}"
    );

    // Without Limit everything comes in one page.
    let all = ok(kms.list_keys().send().await);
    assert!(!all.truncated());
    assert_eq!(all.keys().len(), unique.len());

    assert_kms_error(
        kms.list_keys()
            .marker("not-a-marker-we-gave-out")
            .send()
            .await,
        "InvalidMarkerException",
    );
    // Marker has a minimum length of 1 in the API reference.
    assert_kms_error(
        kms.list_keys().marker("").send().await,
        "ValidationException",
    );
}

#[tokio::test]
async fn disable_and_enable_a_key() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "toggled").await.key_id().to_string();
    let blob = encrypt(&kms, &id, b"before disabling", &[]).await;

    ok(kms.disable_key().key_id(&id).send().await);
    let meta = ok(kms.describe_key().key_id(&id).send().await)
        .key_metadata
        .expect("KeyMetadata");
    assert_eq!(meta.key_state(), Some(&KeyState::Disabled));
    assert!(!meta.enabled());
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(aws_sdk_kms::primitives::Blob::new("x"))
            .send()
            .await,
        "DisabledException",
    );
    assert_kms_error(
        kms.decrypt()
            .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob.clone()))
            .send()
            .await,
        "DisabledException",
    );
    assert_kms_error(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .send()
            .await,
        "DisabledException",
    );

    ok(kms.enable_key().key_id(&id).send().await);
    assert_eq!(key_state(&kms, &id).await, KeyState::Enabled);
    assert_eq!(
        common::decrypt(&kms, &blob, &[]).await,
        b"before disabling",
        "a re-enabled key decrypts what it encrypted before"
    );
    encrypt(&kms, &id, b"after enabling", &[]).await;

    assert_kms_error(
        kms.disable_key()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn update_key_description() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "old words").await.key_id().to_string();
    ok(kms
        .update_key_description()
        .key_id(&id)
        .description("new words")
        .send()
        .await);
    let meta = ok(kms.describe_key().key_id(&id).send().await)
        .key_metadata
        .expect("KeyMetadata");
    assert_eq!(meta.description(), Some("new words"));
    assert_kms_error(
        kms.update_key_description()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .description("x")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn tag_untag_and_list_resource_tags() {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "tagged").await.key_id().to_string();
    let tags_of = |out: &aws_sdk_kms::operation::list_resource_tags::ListResourceTagsOutput| {
        out.tags()
            .iter()
            .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
            .collect::<BTreeSet<_>>()
    };
    let empty = ok(kms.list_resource_tags().key_id(&id).send().await);
    assert!(empty.tags().is_empty());

    ok(kms
        .tag_resource()
        .key_id(&id)
        .tags(tag("a", "1"))
        .tags(tag("b", "2"))
        .tags(tag("c", "3"))
        .send()
        .await);
    // Tagging an existing tag key replaces its value.
    ok(kms
        .tag_resource()
        .key_id(key_arn(&id))
        .tags(tag("b", "two"))
        .send()
        .await);
    let listed = ok(kms.list_resource_tags().key_id(&id).send().await);
    assert_eq!(
        tags_of(&listed),
        [("a", "1"), ("b", "two"), ("c", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    );

    ok(kms
        .untag_resource()
        .key_id(&id)
        .tag_keys("a")
        .tag_keys("c")
        .send()
        .await);
    let listed = ok(kms.list_resource_tags().key_id(&id).send().await);
    assert_eq!(
        tags_of(&listed),
        [("b".to_string(), "two".to_string())].into_iter().collect()
    );

    // Tag keys beginning with "aws:" are reserved for AWS.
    assert_kms_error(
        kms.tag_resource()
            .key_id(&id)
            .tags(tag("aws:reserved", "x"))
            .send()
            .await,
        "TagException",
    );
    assert_kms_error(
        kms.list_resource_tags()
            .key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn account_id_flag_shapes_the_arns() {
    let server = TestServer::builder()
        .args(["--account-id", "444455556666", "--kms-quotas", "off"])
        .start();
    let kms = server.kms_client();
    let meta = create_key(&kms, "other account").await;
    assert_eq!(meta.aws_account_id(), Some("444455556666"));
    assert_eq!(
        meta.arn(),
        Some(format!("arn:aws:kms:{REGION}:444455556666:key/{}", meta.key_id()).as_str())
    );
    ok(kms
        .create_alias()
        .alias_name("alias/elsewhere")
        .target_key_id(meta.key_id())
        .send()
        .await);
    let aliases = ok(kms.list_aliases().send().await);
    let alias = aliases
        .aliases()
        .iter()
        .find(|a| a.alias_name() == Some("alias/elsewhere"))
        .expect("the alias is listed");
    assert_eq!(
        alias.alias_arn(),
        Some(format!("arn:aws:kms:{REGION}:444455556666:alias/elsewhere").as_str())
    );
}
