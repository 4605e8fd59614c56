//! KMS cryptographic operations end to end with aws-sdk-kms: Encrypt/Decrypt round trips (with
//! and without KeyId, every KeyId form), encryption context binding, garbled ciphertext blobs,
//! ReEncrypt, GenerateDataKey (AES_256, AES_128, NumberOfBytes), GenerateDataKeyWithoutPlaintext
//! and GenerateRandom, with the validation errors AWS gives for each.

use crate::common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};
use common::{
    alias_arn, assert_kms_error, context, create_key, decrypt, encrypt, key_arn, kms_server, ok,
    pattern,
};

async fn setup() -> (common::TestServer, aws_sdk_kms::Client, String) {
    let server = kms_server();
    let kms = server.kms_client();
    let id = create_key(&kms, "crypto").await.key_id().to_string();
    (server, kms, id)
}

#[tokio::test]
async fn encrypt_and_decrypt_round_trip_with_and_without_key_id() {
    let (_server, kms, id) = setup().await;
    ok(kms
        .create_alias()
        .alias_name("alias/crypto")
        .target_key_id(&id)
        .send()
        .await);
    let plaintext = b"attack at dawn \x00\x01\x02\xff".to_vec();
    for form in [
        id.clone(),
        key_arn(&id),
        "alias/crypto".to_string(),
        alias_arn("alias/crypto"),
    ] {
        let out = ok(kms
            .encrypt()
            .key_id(&form)
            .plaintext(Blob::new(plaintext.clone()))
            .send()
            .await);
        assert_eq!(
            out.key_id(),
            Some(key_arn(&id).as_str()),
            "Encrypt({form}) KeyId"
        );
        assert_eq!(
            out.encryption_algorithm(),
            Some(&EncryptionAlgorithmSpec::SymmetricDefault)
        );
        let blob = out
            .ciphertext_blob()
            .expect("CiphertextBlob")
            .as_ref()
            .to_vec();
        assert!(
            !common::contains_bytes(&blob, &plaintext),
            "the blob does not carry the plaintext in clear"
        );

        // Without KeyId: the key comes from the blob.
        let out = ok(kms
            .decrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .send()
            .await);
        assert_eq!(
            out.plaintext().expect("Plaintext").as_ref(),
            plaintext.as_slice()
        );
        assert_eq!(out.key_id(), Some(key_arn(&id).as_str()), "Decrypt KeyId");
        assert_eq!(
            out.encryption_algorithm(),
            Some(&EncryptionAlgorithmSpec::SymmetricDefault)
        );

        // With KeyId in each form.
        let out = ok(kms
            .decrypt()
            .key_id(&form)
            .ciphertext_blob(Blob::new(blob))
            .send()
            .await);
        assert_eq!(
            out.plaintext().expect("Plaintext").as_ref(),
            plaintext.as_slice()
        );
    }

    // The same plaintext twice gives two different blobs (fresh nonce each time).
    let one = encrypt(&kms, &id, &plaintext, &[]).await;
    let two = encrypt(&kms, &id, &plaintext, &[]).await;
    assert_ne!(one, two);

    // The largest plaintext AWS takes is 4096 bytes.
    let big = pattern(4096, 7);
    let blob = encrypt(&kms, &id, &big, &[]).await;
    assert_eq!(decrypt(&kms, &blob, &[]).await, big);
    assert_kms_error(
        kms.encrypt()
            .key_id(&id)
            .plaintext(Blob::new(pattern(4097, 7)))
            .send()
            .await,
        "ValidationException",
    );
}

#[tokio::test]
async fn decrypt_with_the_key_id_of_another_key_is_incorrect_key() {
    let (_server, kms, id) = setup().await;
    let other = create_key(&kms, "other").await.key_id().to_string();
    let blob = encrypt(&kms, &id, b"mine", &[]).await;
    assert_kms_error(
        kms.decrypt()
            .key_id(&other)
            .ciphertext_blob(Blob::new(blob))
            .send()
            .await,
        "IncorrectKeyException",
    );
}

#[tokio::test]
async fn an_encryption_context_mismatch_is_invalid_ciphertext() {
    let (_server, kms, id) = setup().await;
    let ctx = [("tenant", "acme"), ("purpose", "invoices")];
    let blob = encrypt(&kms, &id, b"bound to a context", &ctx).await;

    // The same pairs in another order are the same context.
    assert_eq!(
        decrypt(&kms, &blob, &[("purpose", "invoices"), ("tenant", "acme")]).await,
        b"bound to a context"
    );
    for wrong in [
        vec![],
        vec![("tenant", "acme")],
        vec![("tenant", "acme"), ("purpose", "payroll")],
        vec![("tenant", "acme"), ("purpose", "invoices"), ("extra", "1")],
        vec![("Tenant", "acme"), ("purpose", "invoices")],
    ] {
        let mut req = kms.decrypt().ciphertext_blob(Blob::new(blob.clone()));
        if !wrong.is_empty() {
            req = req.set_encryption_context(Some(context(&wrong)));
        }
        assert_kms_error(req.send().await, "InvalidCiphertextException");
    }

    // And the other way round: no context at encryption, one at decryption.
    let plain = encrypt(&kms, &id, b"no context", &[]).await;
    assert_kms_error(
        kms.decrypt()
            .ciphertext_blob(Blob::new(plain))
            .set_encryption_context(Some(context(&[("tenant", "acme")])))
            .send()
            .await,
        "InvalidCiphertextException",
    );
}

#[tokio::test]
async fn a_garbled_ciphertext_blob_is_invalid_ciphertext() {
    let (_server, kms, id) = setup().await;
    let blob = encrypt(&kms, &id, &pattern(64, 1), &[]).await;
    let n = blob.len();

    let mut last = blob.clone();
    last[n - 1] ^= 0x01;
    let mut inner = blob.clone();
    inner[n - 20] ^= 0x80;
    let truncated = blob[..n - 17].to_vec();
    let mut extended = blob.clone();
    extended.push(0);
    let garbage = b"this is not a ciphertext blob at all, just some text".to_vec();
    let short = vec![0x01, 0x02, 0x03];

    for (what, bad) in [
        ("last byte flipped", last),
        ("a ciphertext byte flipped", inner),
        ("truncated", truncated),
        ("extended", extended),
        ("garbage", garbage),
        ("three bytes", short),
    ] {
        let failure =
            common::s3_failure(kms.decrypt().ciphertext_blob(Blob::new(bad)).send().await);
        assert_eq!(
            (failure.status, failure.code.as_deref()),
            (400, Some("InvalidCiphertextException")),
            "{what}: {failure:?}"
        );
    }
    assert_eq!(decrypt(&kms, &blob, &[]).await, pattern(64, 1));
}

#[tokio::test]
async fn re_encrypt_moves_a_ciphertext_to_another_key_and_context() {
    let (_server, kms, source) = setup().await;
    let dest = create_key(&kms, "destination").await.key_id().to_string();
    let blob = encrypt(&kms, &source, b"moving house", &[("stage", "one")]).await;

    let out = ok(kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(blob.clone()))
        .set_source_encryption_context(Some(context(&[("stage", "one")])))
        .destination_key_id(&dest)
        .set_destination_encryption_context(Some(context(&[("stage", "two")])))
        .send()
        .await);
    assert_eq!(out.source_key_id(), Some(key_arn(&source).as_str()));
    assert_eq!(out.key_id(), Some(key_arn(&dest).as_str()));
    let moved = out
        .ciphertext_blob()
        .expect("CiphertextBlob")
        .as_ref()
        .to_vec();
    assert_ne!(moved, blob);

    let dec = ok(kms
        .decrypt()
        .ciphertext_blob(Blob::new(moved.clone()))
        .set_encryption_context(Some(context(&[("stage", "two")])))
        .send()
        .await);
    assert_eq!(
        dec.plaintext().expect("Plaintext").as_ref(),
        b"moving house"
    );
    assert_eq!(dec.key_id(), Some(key_arn(&dest).as_str()));
    assert_kms_error(
        kms.decrypt()
            .ciphertext_blob(Blob::new(moved))
            .set_encryption_context(Some(context(&[("stage", "one")])))
            .send()
            .await,
        "InvalidCiphertextException",
    );

    // The source context must match.
    assert_kms_error(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob.clone()))
            .set_source_encryption_context(Some(context(&[("stage", "wrong")])))
            .destination_key_id(&dest)
            .send()
            .await,
        "InvalidCiphertextException",
    );
    // A disabled destination key refuses.
    ok(kms.disable_key().key_id(&dest).send().await);
    assert_kms_error(
        kms.re_encrypt()
            .ciphertext_blob(Blob::new(blob))
            .set_source_encryption_context(Some(context(&[("stage", "one")])))
            .destination_key_id(&dest)
            .send()
            .await,
        "DisabledException",
    );
}

#[tokio::test]
async fn generate_data_key_plaintext_matches_its_ciphertext() {
    let (_server, kms, id) = setup().await;
    let ctx = [("bucket", "photos")];
    for (spec, bytes, len) in [
        (Some(DataKeySpec::Aes256), None, 32),
        (Some(DataKeySpec::Aes128), None, 16),
        (None, Some(1), 1),
        (None, Some(64), 64),
        (None, Some(1024), 1024),
    ] {
        let out = ok(kms
            .generate_data_key()
            .key_id(&id)
            .set_key_spec(spec.clone())
            .set_number_of_bytes(bytes)
            .set_encryption_context(Some(context(&ctx)))
            .send()
            .await);
        assert_eq!(out.key_id(), Some(key_arn(&id).as_str()));
        let plaintext = out.plaintext().expect("Plaintext").as_ref().to_vec();
        assert_eq!(plaintext.len(), len, "{spec:?} / {bytes:?}");
        let blob = out
            .ciphertext_blob()
            .expect("CiphertextBlob")
            .as_ref()
            .to_vec();
        assert_eq!(
            decrypt(&kms, &blob, &ctx).await,
            plaintext,
            "Decrypt of the data key's blob gives its Plaintext ({spec:?} / {bytes:?})"
        );
        assert_kms_error(
            kms.decrypt().ciphertext_blob(Blob::new(blob)).send().await,
            "InvalidCiphertextException",
        );
    }

    let a = ok(kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await);
    let b = ok(kms
        .generate_data_key()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await);
    assert_ne!(a.plaintext(), b.plaintext(), "every data key is fresh");

    // Exactly one of KeySpec and NumberOfBytes, and 1..=1024 bytes.
    assert_kms_error(
        kms.generate_data_key().key_id(&id).send().await,
        "ValidationException",
    );
    assert_kms_error(
        kms.generate_data_key()
            .key_id(&id)
            .key_spec(DataKeySpec::Aes256)
            .number_of_bytes(32)
            .send()
            .await,
        "ValidationException",
    );
    for bad in [0, 1025] {
        assert_kms_error(
            kms.generate_data_key()
                .key_id(&id)
                .number_of_bytes(bad)
                .send()
                .await,
            "ValidationException",
        );
    }
    assert_kms_error(
        kms.generate_data_key()
            .key_id("alias/none")
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
        "NotFoundException",
    );
}

#[tokio::test]
async fn generate_data_key_without_plaintext_gives_only_the_blob() {
    let (_server, kms, id) = setup().await;
    for (spec, len) in [(DataKeySpec::Aes256, 32), (DataKeySpec::Aes128, 16)] {
        let out = ok(kms
            .generate_data_key_without_plaintext()
            .key_id(&id)
            .key_spec(spec.clone())
            .set_encryption_context(Some(context(&[("k", "v")])))
            .send()
            .await);
        assert_eq!(out.key_id(), Some(key_arn(&id).as_str()));
        let blob = out
            .ciphertext_blob()
            .expect("CiphertextBlob")
            .as_ref()
            .to_vec();
        let plaintext = decrypt(&kms, &blob, &[("k", "v")]).await;
        assert_eq!(plaintext.len(), len, "{spec:?}");
    }
    let out = ok(kms
        .generate_data_key_without_plaintext()
        .key_id(&id)
        .number_of_bytes(48)
        .send()
        .await);
    let blob = out
        .ciphertext_blob()
        .expect("CiphertextBlob")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&kms, &blob, &[]).await.len(), 48);
}

#[tokio::test]
async fn generate_random_gives_the_requested_length() {
    let server = kms_server();
    let kms = server.kms_client();
    for n in [1, 16, 32, 1024] {
        let out = ok(kms.generate_random().number_of_bytes(n).send().await);
        assert_eq!(
            out.plaintext().expect("Plaintext").as_ref().len(),
            n as usize
        );
    }
    let a = ok(kms.generate_random().number_of_bytes(32).send().await);
    let b = ok(kms.generate_random().number_of_bytes(32).send().await);
    assert_ne!(a.plaintext(), b.plaintext());
    for bad in [0, 1025] {
        assert_kms_error(
            kms.generate_random().number_of_bytes(bad).send().await,
            "ValidationException",
        );
    }
}
