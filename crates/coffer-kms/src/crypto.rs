//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
//! GenerateDataKeyWithoutPlaintext, GenerateRandom.
//!
//! The hot path: no store access, no writer lock, no `await`. Order of checks is AWS's: request
//! validation, then the key (NotFoundException), the key policy (AccessDeniedException), the key
//! state (DisabledException / KMSInvalidStateException), then the cryptography
//! (InvalidCiphertextException). Plaintexts and data keys stay in zeroizing buffers until they are
//! serialized into the response; they never reach an error message or the audit event.

use std::sync::Arc;

use coffer_crypto::random_bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::KmsError;
use crate::blob::{self, EncryptionContext};
use crate::model::{Key, SYMMETRIC_DEFAULT};
use crate::router::Op;
use crate::service::{Conditions, Kms, Request, condition};
use crate::wire::{self, BODY_SLACK, SecretText, in_range, not_in_enum};

/// Largest plaintext Encrypt takes (AWS: 4096 bytes for symmetric keys).
const MAX_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob Decrypt and ReEncrypt take (AWS: 6144 bytes).
const MAX_CIPHERTEXT: usize = 6144;
/// Largest data key or random string (AWS: 1024 bytes).
const MAX_RANDOM: i64 = 1024;
/// Encryption algorithms AWS knows; only `SYMMETRIC_DEFAULT` fits a symmetric key.
const ALGORITHMS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptInput {
    key_id: Option<String>,
    plaintext: Option<SecretText>,
    encryption_context: Option<EncryptionContext>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptInput {
    ciphertext_blob: Option<String>,
    encryption_context: Option<EncryptionContext>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    recipient: Option<Value>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptInput {
    ciphertext_blob: Option<String>,
    source_encryption_context: Option<EncryptionContext>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Option<EncryptionContext>,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyInput {
    key_id: Option<String>,
    encryption_context: Option<EncryptionContext>,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    recipient: Option<Value>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateRandomInput {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptOutput<'a> {
    ciphertext_blob: &'a str,
    key_id: &'a str,
    encryption_algorithm: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptOutput<'a> {
    key_id: &'a str,
    plaintext: &'a str,
    encryption_algorithm: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptOutput<'a> {
    ciphertext_blob: &'a str,
    source_key_id: &'a str,
    key_id: &'a str,
    source_encryption_algorithm: &'a str,
    destination_encryption_algorithm: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyOutput<'a> {
    ciphertext_blob: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a str>,
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RandomOutput<'a> {
    plaintext: &'a str,
}

impl Kms {
    pub(crate) fn encrypt(&self, req: &mut Request<'_>, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        let input: EncryptInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let plaintext = input
            .plaintext
            .ok_or_else(|| KmsError::missing("plaintext"))?;
        let plaintext = wire::decode_secret(&plaintext, "Plaintext")?;
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::validation(
                "plaintext",
                "***",
                "Member must have length between 1 and 4096 bytes",
            ));
        }
        let context = input.encryption_context.unwrap_or_default();
        check_algorithm(input.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
        let key = self.usable_key(req, &key_id, Op::Encrypt, context_conditions(&context))?;
        dry_run(input.dry_run)?;
        let blob = seal(&key, &plaintext, &context)?;
        wire::to_body(&EncryptOutput {
            ciphertext_blob: &wire::encode(&blob),
            key_id: &key.arn,
            encryption_algorithm: SYMMETRIC_DEFAULT,
        })
    }

    pub(crate) fn decrypt(&self, req: &mut Request<'_>, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        let input: DecryptInput = wire::parse(body)?;
        let blob = ciphertext(input.ciphertext_blob.as_deref(), "ciphertextBlob")?;
        check_algorithm(input.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
        no_recipient(input.recipient.as_ref())?;
        let context = input.encryption_context.unwrap_or_default();
        let (key, plaintext) = self.open_blob(
            req,
            &blob,
            input.key_id.as_deref(),
            "keyId",
            &context,
            Op::Decrypt.action(),
            Conditions::new(),
        )?;
        dry_run(input.dry_run)?;
        let plaintext = wire::encode_secret(&plaintext);
        wire::to_secret_body(
            &DecryptOutput {
                key_id: &key.arn,
                plaintext: &plaintext,
                encryption_algorithm: SYMMETRIC_DEFAULT,
            },
            plaintext.len() + BODY_SLACK,
        )
    }

    pub(crate) fn re_encrypt(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let input: ReEncryptInput = wire::parse(body)?;
        let blob = ciphertext(input.ciphertext_blob.as_deref(), "ciphertextBlob")?;
        let destination_id = input
            .destination_key_id
            .ok_or_else(|| KmsError::missing("destinationKeyId"))?;
        check_algorithm(
            input.source_encryption_algorithm.as_deref(),
            "sourceEncryptionAlgorithm",
        )?;
        check_algorithm(
            input.destination_encryption_algorithm.as_deref(),
            "destinationEncryptionAlgorithm",
        )?;
        let source_context = input.source_encryption_context.unwrap_or_default();
        let destination_context = input.destination_encryption_context.unwrap_or_default();
        let destination = self.resolve(&destination_id, "destinationKeyId")?;
        let same_key = blob::header(&blob).is_some_and(|h| h.key_id == destination.uuid);
        let (source, plaintext) = self.open_blob(
            req,
            &blob,
            input.source_key_id.as_deref(),
            "sourceKeyId",
            &source_context,
            "kms:ReEncryptFrom",
            Conditions::from([condition("kms:ReEncryptOnSameKey", same_key)]),
        )?;
        req.touch(&destination);
        let mut conditions = context_conditions(&destination_context);
        conditions.extend([condition("kms:ReEncryptOnSameKey", same_key)]);
        conditions.extend(self.request_alias(&destination_id));
        self.authorize(req, &destination, "kms:ReEncryptTo", conditions)?;
        destination.check_usable()?;
        dry_run(input.dry_run)?;
        let blob = seal(&destination, &plaintext, &destination_context)?;
        wire::to_body(&ReEncryptOutput {
            ciphertext_blob: &wire::encode(&blob),
            source_key_id: &source.arn,
            key_id: &destination.arn,
            source_encryption_algorithm: SYMMETRIC_DEFAULT,
            destination_encryption_algorithm: SYMMETRIC_DEFAULT,
        })
    }

    /// GenerateDataKey (`with_plaintext`) and GenerateDataKeyWithoutPlaintext.
    pub(crate) fn generate_data_key(
        &self,
        req: &mut Request<'_>,
        body: &[u8],
        with_plaintext: bool,
    ) -> Result<Vec<u8>, KmsError> {
        let input: GenerateDataKeyInput = wire::parse(body)?;
        let key_id = input.key_id.ok_or_else(|| KmsError::missing("keyId"))?;
        let len = data_key_len(input.number_of_bytes, input.key_spec.as_deref())?;
        no_recipient(input.recipient.as_ref())?;
        let context = input.encryption_context.unwrap_or_default();
        let op = if with_plaintext {
            Op::GenerateDataKey
        } else {
            Op::GenerateDataKeyWithoutPlaintext
        };
        let key = self.usable_key(req, &key_id, op, context_conditions(&context))?;
        dry_run(input.dry_run)?;
        let data_key = random_bytes(len)?;
        let blob = seal(&key, &data_key, &context)?;
        let plaintext = with_plaintext.then(|| wire::encode_secret(&data_key));
        let ciphertext_blob = wire::encode(&blob);
        wire::to_secret_body(
            &DataKeyOutput {
                ciphertext_blob: &ciphertext_blob,
                plaintext: plaintext.as_ref().map(|p| p.as_str()),
                key_id: &key.arn,
            },
            plaintext.as_ref().map_or(0, |p| p.len()) + ciphertext_blob.len() + BODY_SLACK,
        )
    }

    /// Random bytes from the system generator; no key, so (as in AWS) an IAM-only permission that
    /// every authenticated caller has.
    pub(crate) fn generate_random(&self, body: &[u8]) -> Result<Vec<u8>, KmsError> {
        let input: GenerateRandomInput = wire::parse(body)?;
        let len = input
            .number_of_bytes
            .ok_or_else(|| KmsError::missing("numberOfBytes"))?;
        let len = in_range("numberOfBytes", len, 1, MAX_RANDOM)?;
        if input.custom_key_store_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Coffer has no custom key stores: omit CustomKeyStoreId".to_owned(),
            ));
        }
        no_recipient(input.recipient.as_ref())?;
        let bytes = random_bytes(len as usize)?;
        let plaintext = wire::encode_secret(&bytes);
        wire::to_secret_body(
            &RandomOutput {
                plaintext: &plaintext,
            },
            plaintext.len() + BODY_SLACK,
        )
    }

    /// The key for an Encrypt-like operation, allowed and enabled.
    fn usable_key(
        &self,
        req: &mut Request<'_>,
        key_id: &str,
        op: Op,
        conditions: Conditions,
    ) -> Result<Arc<Key>, KmsError> {
        let key = self.resolve(key_id, "keyId")?;
        req.touch(&key);
        let mut conditions = conditions;
        conditions.extend(self.request_alias(key_id));
        self.authorize(req, &key, op.action(), conditions)?;
        key.check_usable()?;
        Ok(key)
    }

    /// Finds the key a blob names, checks it against the `KeyId` the caller gave (if any), the
    /// policy (`action`) and the key state, and opens the blob.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_blob(
        &self,
        req: &mut Request<'_>,
        blob: &[u8],
        key_id: Option<&str>,
        key_id_field: &str,
        context: &EncryptionContext,
        action: &str,
        extra: Conditions,
    ) -> Result<(Arc<Key>, Zeroizing<Vec<u8>>), KmsError> {
        let named = key_id
            .map(|key_id| self.resolve(key_id, key_id_field))
            .transpose()?;
        let header = blob::header(blob).ok_or_else(invalid_ciphertext)?;
        let key = match named {
            Some(named) if named.uuid != header.key_id => {
                req.touch(&named);
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify the KMS key that encrypted the ciphertext"
                        .to_owned(),
                ));
            }
            Some(named) => named,
            None => {
                let id = header.key_id.hyphenated().to_string();
                self.read()
                    .keys
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.key_not_found(&id))?
            }
        };
        req.touch(&key);
        let mut conditions = context_conditions(context);
        conditions.extend(extra);
        if let Some(key_id) = key_id {
            conditions.extend(self.request_alias(key_id));
        }
        self.authorize(req, &key, action, conditions)?;
        key.check_usable()?;
        let material = key.version(header.version).ok_or_else(invalid_ciphertext)?;
        let plaintext = blob::open(material, blob, context).map_err(|_| invalid_ciphertext())?;
        Ok((key, plaintext))
    }
}

/// Seals under the key's newest version.
pub(crate) fn seal(
    key: &Key,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    let (version, material) = key.current();
    Ok(blob::seal(material, key.uuid, version, plaintext, context)?)
}

/// The one answer for every reason a blob does not open.
pub(crate) fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext(
        "The ciphertext is invalid: it is damaged, was not made by this key service, or was encrypted under a different encryption context"
            .to_owned(),
    )
}

/// A required, base64, size-limited ciphertext blob field.
fn ciphertext(text: Option<&str>, field: &str) -> Result<Vec<u8>, KmsError> {
    let text = text.ok_or_else(|| KmsError::missing(field))?;
    let blob = wire::decode_blob(text, "CiphertextBlob")?;
    if blob.is_empty() || blob.len() > MAX_CIPHERTEXT {
        return Err(KmsError::validation(
            field,
            "***",
            "Member must have length between 1 and 6144 bytes",
        ));
    }
    Ok(blob)
}

/// Only `SYMMETRIC_DEFAULT` works with a symmetric key.
fn check_algorithm(value: Option<&str>, field: &str) -> Result<(), KmsError> {
    match value {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(known) if ALGORITHMS.contains(&known) => Err(KmsError::InvalidKeyUsage(format!(
            "The encryption algorithm {known} is not valid for a SYMMETRIC_DEFAULT key: use SYMMETRIC_DEFAULT"
        ))),
        Some(other) => Err(not_in_enum(field, other, ALGORITHMS)),
    }
}

/// Coffer runs in no enclave and cannot answer for an attested recipient.
fn no_recipient(recipient: Option<&Value>) -> Result<(), KmsError> {
    match recipient {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(KmsError::UnsupportedOperation(
            "Coffer does not support Recipient (Nitro Enclaves attestation)".to_owned(),
        )),
    }
}

/// `DryRun: true` stops a request that would have succeeded.
fn dry_run(flag: Option<bool>) -> Result<(), KmsError> {
    if flag == Some(true) {
        return Err(KmsError::DryRunOperation(
            "The request would have succeeded, but the DryRun option is set.".to_owned(),
        ));
    }
    Ok(())
}

/// The length of a data key: `KeySpec` or `NumberOfBytes`, exactly one of them.
fn data_key_len(number_of_bytes: Option<i64>, key_spec: Option<&str>) -> Result<usize, KmsError> {
    match (number_of_bytes, key_spec) {
        (Some(_), Some(_)) => Err(KmsError::Validation(
            "KeySpec and NumberOfBytes are mutually exclusive: specify one of them".to_owned(),
        )),
        (None, None) => Err(KmsError::Validation(
            "Please specify either number of bytes or key spec.".to_owned(),
        )),
        (Some(n), None) => Ok(in_range("numberOfBytes", n, 1, MAX_RANDOM)? as usize),
        (None, Some("AES_256")) => Ok(32),
        (None, Some("AES_128")) => Ok(16),
        (None, Some(other)) => Err(not_in_enum("keySpec", other, &["AES_256", "AES_128"])),
    }
}

/// `kms:EncryptionContext:<key>` for each pair, `kms:EncryptionContextKeys`, and the algorithm.
pub(crate) fn context_conditions(context: &EncryptionContext) -> Conditions {
    let mut conditions = Conditions::with_capacity(context.len() + 2);
    for (k, v) in context {
        conditions.insert(format!("kms:EncryptionContext:{k}"), vec![v.clone()]);
    }
    if !context.is_empty() {
        conditions.insert(
            "kms:EncryptionContextKeys".to_owned(),
            context.keys().cloned().collect(),
        );
    }
    conditions.insert(
        "kms:EncryptionAlgorithm".to_owned(),
        vec![SYMMETRIC_DEFAULT.to_owned()],
    );
    conditions
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};

    use crate::testing::{ALICE, BOB, Harness, ROOT};

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    fn unb64(v: &Value) -> Vec<u8> {
        STANDARD.decode(v.as_str().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn encrypt_decrypt_round_trip_with_context() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let ctx = json!({"purpose": "test", "aws:s3:arn": "arn:aws:s3:::b/k"});
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(b"hello"), "EncryptionContext": ctx}),
            )
            .await;
        assert_eq!(enc["KeyId"], h.key_arn(&id).as_str());
        assert_eq!(enc["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
        let dec = h
            .ok(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": ctx}),
            )
            .await;
        assert_eq!(unb64(&dec["Plaintext"]), b"hello");
        assert_eq!(dec["KeyId"], h.key_arn(&id).as_str());
        assert_eq!(dec["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    }

    #[tokio::test]
    async fn decrypt_under_another_context_is_invalid_ciphertext() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionContext": {"a": "1"}}),
            )
            .await;
        for ctx in [json!({}), json!({"a": "2"}), json!({"a": "1", "b": "2"})] {
            assert_eq!(
                h.err(
                    ROOT,
                    "Decrypt",
                    json!({"CiphertextBlob": enc["CiphertextBlob"], "EncryptionContext": ctx})
                )
                .await,
                "InvalidCiphertextException"
            );
        }
    }

    #[tokio::test]
    async fn malformed_and_truncated_blobs_are_invalid_ciphertext() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(b"data")}),
            )
            .await;
        let blob = unb64(&enc["CiphertextBlob"]);
        for len in [1, 20, 21, 64, blob.len() - 1] {
            assert_eq!(
                h.err(
                    ROOT,
                    "Decrypt",
                    json!({"CiphertextBlob": b64(&blob[..len])})
                )
                .await,
                "InvalidCiphertextException",
                "len {len}"
            );
        }
        let mut altered = blob.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            h.err(ROOT, "Decrypt", json!({"CiphertextBlob": b64(&altered)}))
                .await,
            "InvalidCiphertextException"
        );
        let mut wrong_version = blob.clone();
        wrong_version[20] = 9;
        assert_eq!(
            h.err(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": b64(&wrong_version)})
            )
            .await,
            "InvalidCiphertextException"
        );
        for (body, expected) in [
            (json!({}), "ValidationException"),
            (json!({"CiphertextBlob": ""}), "ValidationException"),
            (
                json!({"CiphertextBlob": b64(&[1u8; 6145])}),
                "ValidationException",
            ),
            (json!({"CiphertextBlob": "***"}), "SerializationException"),
        ] {
            assert_eq!(
                h.err(ROOT, "Decrypt", body.clone()).await,
                expected,
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn decrypt_with_the_wrong_key_id_is_incorrect_key() {
        let h = Harness::new().await;
        let a = h.create_key().await;
        let b = h.create_key().await;
        let enc = h
            .ok(ROOT, "Encrypt", json!({"KeyId": a, "Plaintext": b64(b"x")}))
            .await;
        assert_eq!(
            h.err(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": enc["CiphertextBlob"], "KeyId": b})
            )
            .await,
            "IncorrectKeyException"
        );
        h.ok(
            ROOT,
            "Decrypt",
            json!({"CiphertextBlob": enc["CiphertextBlob"], "KeyId": h.key_arn(&a)}),
        )
        .await;
    }

    #[tokio::test]
    async fn encrypt_validates_its_input() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for (body, expected) in [
            (json!({"Plaintext": b64(b"x")}), "ValidationException"),
            (json!({ "KeyId": id }), "ValidationException"),
            (json!({"KeyId": id, "Plaintext": ""}), "ValidationException"),
            (
                json!({"KeyId": id, "Plaintext": b64(&[0u8; 4097])}),
                "ValidationException",
            ),
            (
                json!({"KeyId": id, "Plaintext": "not base64"}),
                "SerializationException",
            ),
            (
                json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionContext": {"a": 1}}),
                "SerializationException",
            ),
            (
                json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
                "InvalidKeyUsageException",
            ),
            (
                json!({"KeyId": id, "Plaintext": b64(b"x"), "EncryptionAlgorithm": "ROT13"}),
                "ValidationException",
            ),
            (
                json!({"KeyId": "alias/none", "Plaintext": b64(b"x")}),
                "NotFoundException",
            ),
            (
                json!({"KeyId": id, "Plaintext": b64(b"x"), "DryRun": true}),
                "DryRunOperationException",
            ),
        ] {
            assert_eq!(
                h.err(ROOT, "Encrypt", body.clone()).await,
                expected,
                "{body}"
            );
        }
        let max = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(&[7u8; 4096])}),
            )
            .await;
        let dec = h
            .ok(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": max["CiphertextBlob"]}),
            )
            .await;
        assert_eq!(unb64(&dec["Plaintext"]), vec![7u8; 4096]);
    }

    #[tokio::test]
    async fn generate_data_key_returns_a_key_that_decrypts_back() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for (body, len) in [
            (json!({"KeyId": id, "KeySpec": "AES_256"}), 32),
            (json!({"KeyId": id, "KeySpec": "AES_128"}), 16),
            (json!({"KeyId": id, "NumberOfBytes": 1}), 1),
            (json!({"KeyId": id, "NumberOfBytes": 1024}), 1024),
        ] {
            let mut body = body;
            body["EncryptionContext"] = json!({"bucket": "b"});
            let out = h.ok(ROOT, "GenerateDataKey", body).await;
            let plaintext = unb64(&out["Plaintext"]);
            assert_eq!(plaintext.len(), len);
            assert_eq!(out["KeyId"], h.key_arn(&id).as_str());
            let dec = h
                .ok(
                    ROOT,
                    "Decrypt",
                    json!({"CiphertextBlob": out["CiphertextBlob"], "EncryptionContext": {"bucket": "b"}}),
                )
                .await;
            assert_eq!(unb64(&dec["Plaintext"]), plaintext);
        }
    }

    #[tokio::test]
    async fn generate_data_key_without_plaintext_has_no_plaintext() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let out = h
            .ok(
                ROOT,
                "GenerateDataKeyWithoutPlaintext",
                json!({"KeyId": id, "KeySpec": "AES_256"}),
            )
            .await;
        assert!(out.get("Plaintext").is_none());
        let dec = h
            .ok(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": out["CiphertextBlob"]}),
            )
            .await;
        assert_eq!(unb64(&dec["Plaintext"]).len(), 32);
    }

    #[tokio::test]
    async fn generate_data_key_validates_its_input() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        for (body, expected) in [
            (json!({ "KeyId": id }), "ValidationException"),
            (
                json!({"KeyId": id, "KeySpec": "AES_256", "NumberOfBytes": 32}),
                "ValidationException",
            ),
            (
                json!({"KeyId": id, "NumberOfBytes": 0}),
                "ValidationException",
            ),
            (
                json!({"KeyId": id, "NumberOfBytes": 1025}),
                "ValidationException",
            ),
            (
                json!({"KeyId": id, "KeySpec": "AES_512"}),
                "ValidationException",
            ),
            (json!({"KeySpec": "AES_256"}), "ValidationException"),
            (
                json!({"KeyId": id, "KeySpec": "AES_256", "Recipient": {"AttestationDocument": "AA=="}}),
                "UnsupportedOperationException",
            ),
        ] {
            assert_eq!(
                h.err(ROOT, "GenerateDataKey", body.clone()).await,
                expected,
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn generate_random_returns_the_asked_number_of_bytes() {
        let h = Harness::new().await;
        for n in [1, 32, 1024] {
            let out = h
                .ok(BOB, "GenerateRandom", json!({ "NumberOfBytes": n }))
                .await;
            assert_eq!(unb64(&out["Plaintext"]).len(), n);
        }
        for body in [
            json!({}),
            json!({"NumberOfBytes": 0}),
            json!({"NumberOfBytes": 1025}),
        ] {
            assert_eq!(
                h.err(ROOT, "GenerateRandom", body).await,
                "ValidationException"
            );
        }
    }

    #[tokio::test]
    async fn re_encrypt_moves_a_ciphertext_to_another_key_and_context() {
        let h = Harness::new().await;
        let a = h.create_key().await;
        let b = h.create_key().await;
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": a, "Plaintext": b64(b"move me"), "EncryptionContext": {"v": "1"}}),
            )
            .await;
        let re = h
            .ok(
                ROOT,
                "ReEncrypt",
                json!({
                    "CiphertextBlob": enc["CiphertextBlob"],
                    "SourceEncryptionContext": {"v": "1"},
                    "DestinationKeyId": b,
                    "DestinationEncryptionContext": {"v": "2"},
                }),
            )
            .await;
        assert_eq!(re["SourceKeyId"], h.key_arn(&a).as_str());
        assert_eq!(re["KeyId"], h.key_arn(&b).as_str());
        assert_eq!(re["SourceEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
        assert_eq!(re["DestinationEncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
        let dec = h
            .ok(
                ROOT,
                "Decrypt",
                json!({"CiphertextBlob": re["CiphertextBlob"], "EncryptionContext": {"v": "2"}}),
            )
            .await;
        assert_eq!(unb64(&dec["Plaintext"]), b"move me");
        assert_eq!(dec["KeyId"], h.key_arn(&b).as_str());
        for (body, expected) in [
            (
                json!({"CiphertextBlob": enc["CiphertextBlob"], "DestinationKeyId": b}),
                "InvalidCiphertextException",
            ),
            (
                json!({"CiphertextBlob": enc["CiphertextBlob"], "SourceEncryptionContext": {"v": "1"}, "SourceKeyId": b, "DestinationKeyId": b}),
                "IncorrectKeyException",
            ),
            (
                json!({"CiphertextBlob": enc["CiphertextBlob"], "SourceEncryptionContext": {"v": "1"}}),
                "ValidationException",
            ),
        ] {
            assert_eq!(
                h.err(ROOT, "ReEncrypt", body.clone()).await,
                expected,
                "{body}"
            );
        }
        h.ok(ROOT, "DisableKey", json!({ "KeyId": b })).await;
        assert_eq!(
            h.err(
                ROOT,
                "ReEncrypt",
                json!({"CiphertextBlob": enc["CiphertextBlob"], "SourceEncryptionContext": {"v": "1"}, "DestinationKeyId": b})
            )
            .await,
            "DisabledException"
        );
    }

    #[tokio::test]
    async fn a_key_policy_can_deny_a_second_access_key() {
        let h = Harness::new().await;
        let id = h
            .create_key_with_policy(&h.policy_allowing(ALICE, "kms:*"))
            .await;
        let enc = h
            .ok(
                ALICE,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(b"mine")}),
            )
            .await;
        for (op, body) in [
            ("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})),
            ("Decrypt", json!({"CiphertextBlob": enc["CiphertextBlob"]})),
            (
                "GenerateDataKey",
                json!({"KeyId": id, "KeySpec": "AES_256"}),
            ),
            ("DescribeKey", json!({ "KeyId": id })),
            ("DisableKey", json!({ "KeyId": id })),
            ("ScheduleKeyDeletion", json!({ "KeyId": id })),
        ] {
            assert_eq!(h.err(BOB, op, body).await, "AccessDeniedException", "{op}");
        }
        h.ok(
            ALICE,
            "Decrypt",
            json!({"CiphertextBlob": enc["CiphertextBlob"]}),
        )
        .await;
    }

    #[tokio::test]
    async fn a_policy_condition_on_the_encryption_context_is_enforced() {
        let h = Harness::new().await;
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": h.principal(ROOT)}, "Action": "kms:*", "Resource": "*"},
                {"Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKey", "Resource": "*",
                 "Condition": {"StringNotEquals": {"kms:EncryptionContext:tenant": "t1"}}}
            ]
        })
        .to_string();
        let id = h.create_key_with_policy(&policy).await;
        h.ok(
            ROOT,
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": {"tenant": "t1"}}),
        )
        .await;
        assert_eq!(
            h.err(
                ROOT,
                "GenerateDataKey",
                json!({"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": {"tenant": "t2"}})
            )
            .await,
            "AccessDeniedException"
        );
    }

    #[tokio::test]
    async fn pending_deletion_refuses_crypto_with_invalid_state() {
        let h = Harness::new().await;
        let id = h.create_key().await;
        let enc = h
            .ok(
                ROOT,
                "Encrypt",
                json!({"KeyId": id, "Plaintext": b64(b"x")}),
            )
            .await;
        h.ok(ROOT, "ScheduleKeyDeletion", json!({ "KeyId": id }))
            .await;
        for (op, body) in [
            ("Encrypt", json!({"KeyId": id, "Plaintext": b64(b"x")})),
            ("Decrypt", json!({"CiphertextBlob": enc["CiphertextBlob"]})),
            ("GenerateDataKey", json!({"KeyId": id, "NumberOfBytes": 8})),
            (
                "GenerateDataKeyWithoutPlaintext",
                json!({"KeyId": id, "NumberOfBytes": 8}),
            ),
        ] {
            assert_eq!(
                h.err(ROOT, op, body).await,
                "KMSInvalidStateException",
                "{op}"
            );
        }
    }

    #[tokio::test]
    async fn concurrent_data_keys_from_many_tasks() {
        let h = std::sync::Arc::new(Harness::new().await);
        let id = h.create_key().await;
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let h = std::sync::Arc::clone(&h);
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    h.ok(
                        ROOT,
                        "GenerateDataKey",
                        json!({"KeyId": id, "KeySpec": "AES_256"}),
                    )
                    .await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}
