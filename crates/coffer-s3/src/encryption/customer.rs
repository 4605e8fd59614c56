//! SSE-C: the customer's key as a request brings it, and what Coffer keeps to recognise it.
//!
//! A request names its key in three headers (or form fields): the algorithm (`AES256`), the key
//! (base64 of 256 bits) and the key's MD5 (base64), for the object, and the same three under
//! `x-amz-copy-source-…` for a copy's source. [`CustomerKey::from_fields`] checks them as S3 does
//! and keeps the key only as a zeroizing [`Key256`]; the base64 text `s3s` parsed is zeroized
//! as soon as it is read.
//!
//! Coffer never stores the key or its MD5. Per object version it stores a random salt and
//! `HMAC-SHA256(key, "coffer sse-c key check v1" ‖ salt)` (the *check*, to tell a wrong key from
//! the right one, as S3 keeps "a randomly salted HMAC value"), and the data key wrapped under
//! `HKDF-SHA256(key, salt, "coffer sse-c kek v1")`: without the customer's key nothing — not the
//! root key, not the database — opens the object. Frozen format (record v2, mode `SSE-C`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::Key256;
use s3s::S3Error;
use zeroize::Zeroizing;

use crate::error::{api_error, crypto_error};

/// The one algorithm SSE-C takes.
pub const CUSTOMER_ALGORITHM: &str = "AES256";
/// Bytes of salt before the HMAC in `Envelope::customer_key_check`. Frozen.
const SALT_LEN: usize = 16;
/// HMAC input label of the key check. Frozen.
const CHECK_LABEL: &[u8] = b"coffer sse-c key check v1";
/// HKDF info of the key that wraps an SSE-C object's data key. Frozen.
const KEK_INFO: &[u8] = b"coffer sse-c kek v1";

/// A customer-provided key, checked against its MD5. Never printed, zeroized when dropped.
#[derive(Clone)]
pub struct CustomerKey {
    key: Key256,
    /// Base64 of the key's MD5, as the response headers echo it.
    md5: String,
    /// The last key check this key passed and the wrapping key it gave: a GET checks the key
    /// before it reveals anything and again when it opens the data key, for the same object.
    opened: std::sync::Arc<std::sync::OnceLock<(Vec<u8>, Key256)>>,
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerKey(<redacted>)")
    }
}

impl PartialEq for CustomerKey {
    fn eq(&self, other: &CustomerKey) -> bool {
        coffer_crypto::ct_eq(self.key.expose_secret(), other.key.expose_secret())
    }
}

impl Eq for CustomerKey {}

/// Which SSE-C headers a message was about, for S3's wording.
#[derive(Clone, Copy)]
pub enum KeyFor {
    /// `x-amz-server-side-encryption-customer-*`.
    Object,
    /// `x-amz-copy-source-server-side-encryption-customer-*`.
    CopySource,
}

impl CustomerKey {
    /// The key named by the three SSE-C fields of a request; `None` when none is given. The key
    /// text is taken out of `key` and zeroized. Errors are S3's `400 InvalidArgument`s: a field
    /// missing, an algorithm other than `AES256`, a key that is not base64 of 32 bytes, an MD5
    /// that does not match.
    pub fn from_fields(
        algorithm: Option<&str>,
        key: &mut Option<String>,
        md5: Option<&str>,
        which: KeyFor,
    ) -> Result<Option<CustomerKey>, S3Error> {
        let key_text = key.take().map(Zeroizing::new);
        if algorithm.is_none() && key_text.is_none() && md5.is_none() {
            return Ok(None);
        }
        let prefix = match which {
            KeyFor::Object => "",
            KeyFor::CopySource => "The copy source: ",
        };
        let Some(algorithm) = algorithm else {
            return Err(api_error!(
                InvalidArgument,
                "{prefix}Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
            ));
        };
        if algorithm != CUSTOMER_ALGORITHM {
            return Err(api_error!(
                InvalidArgument,
                "{prefix}The encryption algorithm specified is not valid: SSE-C accepts only AES256."
            ));
        }
        let Some(key_text) = key_text else {
            return Err(api_error!(
                InvalidArgument,
                "{prefix}Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."
            ));
        };
        let Some(md5) = md5 else {
            return Err(api_error!(
                InvalidArgument,
                "{prefix}Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."
            ));
        };
        let bytes = Zeroizing::new(B64.decode(key_text.trim()).unwrap_or_default());
        let key = Key256::from_slice(&bytes).map_err(|_| {
            api_error!(
                InvalidArgument,
                "{prefix}The secret key was invalid for the specified algorithm."
            )
        })?;
        let actual = coffer_crypto::Md5::digest(key.expose_secret());
        let given = B64.decode(md5.trim()).unwrap_or_default();
        if !coffer_crypto::ct_eq(&actual, &given) {
            return Err(api_error!(
                InvalidArgument,
                "{prefix}The calculated MD5 hash of the key did not match the hash that was provided."
            ));
        }
        Ok(Some(CustomerKey {
            key,
            md5: B64.encode(actual),
            opened: Default::default(),
        }))
    }

    /// Base64 of the key's MD5 (`x-amz-server-side-encryption-customer-key-MD5`).
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// A new key check (salt ‖ HMAC) for one object version, and the key that wraps its data key.
    pub(crate) fn new_check(&self) -> Result<(Vec<u8>, Key256), S3Error> {
        let salt: [u8; SALT_LEN] = coffer_crypto::random_array().map_err(crypto_error)?;
        let mut check = salt.to_vec();
        check.extend_from_slice(&self.hmac(&salt));
        Ok((check, self.wrapping_key(&salt)))
    }

    /// The key that wraps the data key of the version whose key check is `check`, if this is the
    /// key that made it; `None` for another key.
    pub(crate) fn open_check(&self, check: &[u8]) -> Option<Key256> {
        if let Some((seen, kek)) = self.opened.get()
            && seen == check
        {
            return Some(kek.clone());
        }
        if check.len() != SALT_LEN + 32 {
            return None;
        }
        let (salt, mac) = check.split_at(SALT_LEN);
        let kek = coffer_crypto::ct_eq(&self.hmac(salt), mac).then(|| self.wrapping_key(salt))?;
        let _ = self.opened.set((check.to_vec(), kek.clone()));
        Some(kek)
    }

    fn hmac(&self, salt: &[u8]) -> [u8; 32] {
        let mut input = CHECK_LABEL.to_vec();
        input.extend_from_slice(salt);
        coffer_crypto::hmac_sha256(self.key.expose_secret(), &input)
    }

    fn wrapping_key(&self, salt: &[u8]) -> Key256 {
        coffer_crypto::derive_key(&self.key, salt, KEK_INFO)
    }
}

/// The [`CustomerKey`] of a request's `sse_customer_*` fields (PutObject, GetObject, HeadObject,
/// CreateMultipartUpload, UploadPart, CopyObject's and UploadPartCopy's destination).
macro_rules! customer_key_of {
    ($input:expr) => {
        $crate::encryption::CustomerKey::from_fields(
            $input.sse_customer_algorithm.as_deref(),
            &mut $input.sse_customer_key,
            $input.sse_customer_key_md5.as_deref(),
            $crate::encryption::customer::KeyFor::Object,
        )
    };
}
pub(crate) use customer_key_of;

/// The [`CustomerKey`] of a copy's source (`copy_source_sse_customer_*`).
macro_rules! copy_source_customer_key_of {
    ($input:expr) => {
        $crate::encryption::CustomerKey::from_fields(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            &mut $input.copy_source_sse_customer_key,
            $input.copy_source_sse_customer_key_md5.as_deref(),
            $crate::encryption::customer::KeyFor::CopySource,
        )
    };
}
pub(crate) use copy_source_customer_key_of;

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(key: &[u8]) -> (Option<String>, String) {
        (
            Some(B64.encode(key)),
            B64.encode(coffer_crypto::Md5::digest(key)),
        )
    }

    fn code(e: S3Error) -> String {
        e.code().as_str().to_owned()
    }

    #[test]
    fn a_well_formed_key_is_taken_and_its_text_cleared() {
        let (mut key, md5) = fields(&[7; 32]);
        let k = CustomerKey::from_fields(Some("AES256"), &mut key, Some(&md5), KeyFor::Object)
            .unwrap()
            .unwrap();
        assert!(key.is_none(), "the key text stays in the request");
        assert_eq!(k.md5(), md5);
        assert_eq!(format!("{k:?}"), "CustomerKey(<redacted>)");
        let mut none = None;
        assert!(
            CustomerKey::from_fields(None, &mut none, None, KeyFor::Object)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_fields_are_invalid_argument() {
        let (key, md5) = fields(&[7; 32]);
        let (short, short_md5) = fields(&[7; 16]);
        let other_md5 = B64.encode(coffer_crypto::Md5::digest(&[8; 32]));
        for (alg, mut key, md5) in [
            (None, key.clone(), Some(md5.clone())),
            (Some("AES128"), key.clone(), Some(md5.clone())),
            (Some("AES256"), None, Some(md5.clone())),
            (Some("AES256"), key.clone(), None),
            (Some("AES256"), short, Some(short_md5)),
            (
                Some("AES256"),
                Some("not base64!".into()),
                Some(md5.clone()),
            ),
            (Some("AES256"), key.clone(), Some(other_md5)),
        ] {
            let e = CustomerKey::from_fields(alg, &mut key, md5.as_deref(), KeyFor::Object)
                .unwrap_err();
            assert_eq!(code(e), "InvalidArgument");
        }
    }

    #[test]
    fn the_check_recognises_only_its_key_and_never_holds_it() {
        let (mut a, a_md5) = fields(&[1; 32]);
        let (mut b, b_md5) = fields(&[2; 32]);
        let a = CustomerKey::from_fields(Some("AES256"), &mut a, Some(&a_md5), KeyFor::Object)
            .unwrap()
            .unwrap();
        let b = CustomerKey::from_fields(Some("AES256"), &mut b, Some(&b_md5), KeyFor::Object)
            .unwrap()
            .unwrap();
        let (check, kek) = a.new_check().unwrap();
        assert_eq!(check.len(), SALT_LEN + 32);
        assert!(!check.windows(32).any(|w| w == [1; 32]));
        assert_eq!(
            a.open_check(&check).unwrap().expose_secret(),
            kek.expose_secret()
        );
        assert!(b.open_check(&check).is_none());
        assert!(a.open_check(&check[1..]).is_none());
        // Each version gets its own salt, so its own wrapping key.
        let (check2, kek2) = a.new_check().unwrap();
        assert_ne!(check, check2);
        assert_ne!(kek.expose_secret(), kek2.expose_secret());
    }
}
