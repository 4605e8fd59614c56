//! KMS aliases end to end with aws-sdk-kms: CreateAlias, UpdateAlias, DeleteAlias, ListAliases
//! (all, per key, paged), aliases as KeyId in crypto operations, the reserved `alias/aws/`
//! prefix, duplicate names and the quota of 50 aliases per key.

use crate::common;

use std::collections::BTreeSet;

use aws_sdk_kms::primitives::Blob;
use common::{
    alias_arn, assert_kms_error, assert_kms_error_in, create_key, decrypt, encrypt, key_arn,
    kms_server, ok,
};

/// The aliases ListAliases reports, as (name, target key id), optionally for one key.
async fn aliases(kms: &aws_sdk_kms::Client, key_id: Option<&str>) -> BTreeSet<(String, String)> {
    let out = ok(kms
        .list_aliases()
        .set_key_id(key_id.map(str::to_owned))
        .send()
        .await);
    assert!(!out.truncated());
    out.aliases()
        .iter()
        .filter(|a| !a.alias_name().unwrap_or("").starts_with("alias/aws/"))
        .map(|a| {
            (
                a.alias_name().expect("AliasName").to_string(),
                a.target_key_id().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn create_list_update_and_delete_aliases() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "key a").await.key_id().to_string();
    let b = create_key(&kms, "key b").await.key_id().to_string();

    ok(kms
        .create_alias()
        .alias_name("alias/app")
        .target_key_id(&a)
        .send()
        .await);
    // TargetKeyId may be given as a key ARN too.
    ok(kms
        .create_alias()
        .alias_name("alias/app-second")
        .target_key_id(key_arn(&a))
        .send()
        .await);
    ok(kms
        .create_alias()
        .alias_name("alias/other")
        .target_key_id(&b)
        .send()
        .await);

    let listed = ok(kms.list_aliases().send().await);
    let app = listed
        .aliases()
        .iter()
        .find(|x| x.alias_name() == Some("alias/app"))
        .expect("alias/app is listed");
    assert_eq!(app.alias_arn(), Some(alias_arn("alias/app").as_str()));
    assert_eq!(app.target_key_id(), Some(a.as_str()));
    assert!(app.creation_date().is_some(), "CreationDate is set");
    assert_eq!(
        aliases(&kms, None).await,
        set(&[
            ("alias/app", &a),
            ("alias/app-second", &a),
            ("alias/other", &b)
        ])
    );
    assert_eq!(
        aliases(&kms, Some(&a)).await,
        set(&[("alias/app", &a), ("alias/app-second", &a)])
    );
    assert_eq!(aliases(&kms, Some(&b)).await, set(&[("alias/other", &b)]));

    // Encrypt through the alias: the blob is under key a.
    let blob = encrypt(&kms, "alias/app", b"through an alias", &[]).await;
    let out = ok(kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .send()
        .await);
    assert_eq!(out.key_id(), Some(key_arn(&a).as_str()));

    // Point the alias at key b: new encryptions use b, old blobs still decrypt under a.
    ok(kms
        .update_alias()
        .alias_name("alias/app")
        .target_key_id(&b)
        .send()
        .await);
    let desc = ok(kms.describe_key().key_id("alias/app").send().await)
        .key_metadata
        .expect("KeyMetadata");
    assert_eq!(desc.key_id(), b);
    assert_eq!(
        aliases(&kms, Some(&a)).await,
        set(&[("alias/app-second", &a)])
    );
    assert_eq!(
        aliases(&kms, Some(&b)).await,
        set(&[("alias/app", &b), ("alias/other", &b)])
    );
    let blob_b = encrypt(&kms, "alias/app", b"now under b", &[]).await;
    let out = ok(kms
        .decrypt()
        .ciphertext_blob(Blob::new(blob_b))
        .send()
        .await);
    assert_eq!(out.key_id(), Some(key_arn(&b).as_str()));
    assert_eq!(decrypt(&kms, &blob, &[]).await, b"through an alias");

    // Delete: the name is gone, the key stays.
    ok(kms.delete_alias().alias_name("alias/app").send().await);
    assert_kms_error(
        kms.describe_key().key_id("alias/app").send().await,
        "NotFoundException",
    );
    assert_kms_error(
        kms.encrypt()
            .key_id("alias/app")
            .plaintext(Blob::new("x"))
            .send()
            .await,
        "NotFoundException",
    );
    assert_eq!(aliases(&kms, Some(&b)).await, set(&[("alias/other", &b)]));
    ok(kms.describe_key().key_id(&b).send().await);
    assert_kms_error(
        kms.delete_alias().alias_name("alias/app").send().await,
        "NotFoundException",
    );
    assert_kms_error(
        kms.update_alias()
            .alias_name("alias/never-created")
            .target_key_id(&a)
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn a_duplicate_alias_name_already_exists() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "a").await.key_id().to_string();
    let b = create_key(&kms, "b").await.key_id().to_string();
    ok(kms
        .create_alias()
        .alias_name("alias/taken")
        .target_key_id(&a)
        .send()
        .await);
    for target in [&a, &b] {
        assert_kms_error(
            kms.create_alias()
                .alias_name("alias/taken")
                .target_key_id(target)
                .send()
                .await,
            "AlreadyExistsException",
        );
    }
    assert_eq!(aliases(&kms, None).await, set(&[("alias/taken", &a)]));
}

#[tokio::test]
async fn the_alias_aws_prefix_is_reserved() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "a").await.key_id().to_string();
    // AWS documents the prefix as reserved without naming the error type for it; emulators
    // answer NotAuthorizedException or InvalidAliasNameException.
    let failure = assert_kms_error_in(
        kms.create_alias()
            .alias_name("alias/aws/x")
            .target_key_id(&a)
            .send()
            .await,
        &[
            "NotAuthorizedException",
            "InvalidAliasNameException",
            "AccessDeniedException",
        ],
    );
    eprintln!("CreateAlias alias/aws/x answered {failure:?}");
    assert!(
        aliases(&kms, Some(&a)).await.is_empty(),
        "no alias was created"
    );
}

#[tokio::test]
async fn alias_names_are_validated_and_targets_must_exist() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "a").await.key_id().to_string();
    // Not starting with "alias/".
    assert_kms_error_in(
        kms.create_alias()
            .alias_name("no-prefix")
            .target_key_id(&a)
            .send()
            .await,
        &["ValidationException", "InvalidAliasNameException"],
    );
    // Characters outside [a-zA-Z0-9/_-].
    assert_kms_error_in(
        kms.create_alias()
            .alias_name("alias/with space")
            .target_key_id(&a)
            .send()
            .await,
        &["ValidationException", "InvalidAliasNameException"],
    );
    assert_kms_error(
        kms.create_alias()
            .alias_name("alias/orphan")
            .target_key_id("0b5c2c1e-2a2b-4c9d-8e0f-123456789abc")
            .send()
            .await,
        "NotFoundException",
    );
    assert!(aliases(&kms, None).await.is_empty());
}

#[tokio::test]
async fn a_key_has_at_most_50_aliases() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "a").await.key_id().to_string();
    let b = create_key(&kms, "b").await.key_id().to_string();
    for i in 0..50 {
        ok(kms
            .create_alias()
            .alias_name(format!("alias/a-{i:02}"))
            .target_key_id(&a)
            .send()
            .await);
    }
    assert_kms_error(
        kms.create_alias()
            .alias_name("alias/a-50")
            .target_key_id(&a)
            .send()
            .await,
        "LimitExceededException",
    );
    // Moving another alias onto the full key is refused the same way; within the key it is fine.
    ok(kms
        .create_alias()
        .alias_name("alias/b")
        .target_key_id(&b)
        .send()
        .await);
    assert_kms_error(
        kms.update_alias()
            .alias_name("alias/b")
            .target_key_id(&a)
            .send()
            .await,
        "LimitExceededException",
    );
    ok(kms
        .update_alias()
        .alias_name("alias/a-00")
        .target_key_id(&a)
        .send()
        .await);
    assert_eq!(aliases(&kms, Some(&a)).await.len(), 50);
    assert_eq!(aliases(&kms, Some(&b)).await, set(&[("alias/b", &b)]));

    // Deleting one makes room again.
    ok(kms.delete_alias().alias_name("alias/a-49").send().await);
    ok(kms
        .update_alias()
        .alias_name("alias/b")
        .target_key_id(&a)
        .send()
        .await);
    assert_eq!(aliases(&kms, Some(&a)).await.len(), 50);
}

#[tokio::test]
async fn list_aliases_pages() {
    let server = kms_server();
    let kms = server.kms_client();
    let a = create_key(&kms, "a").await.key_id().to_string();
    for i in 0..4 {
        ok(kms
            .create_alias()
            .alias_name(format!("alias/paged-{i}"))
            .target_key_id(&a)
            .send()
            .await);
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    for page in 1.. {
        let out = ok(kms
            .list_aliases()
            .key_id(&a)
            .limit(3)
            .set_marker(marker.clone())
            .send()
            .await);
        assert!(out.aliases().len() <= 3);
        seen.extend(
            out.aliases()
                .iter()
                .map(|x| x.alias_name().expect("AliasName").to_string()),
        );
        if !out.truncated() {
            break;
        }
        marker = Some(out.next_marker().expect("NextMarker").to_string());
        assert!(page < 10, "ListAliases never stops paging");
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "alias/paged-0",
            "alias/paged-1",
            "alias/paged-2",
            "alias/paged-3"
        ]
    );
}
