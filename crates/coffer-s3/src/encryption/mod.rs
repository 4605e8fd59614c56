//! How every object version is encrypted: the choice of mode for a write ([`request`]), and the
//! envelope of each mode — a fresh data key, wrapped so that it opens only for its object, by the
//! SSE-S3 service key, by a KMS key through the key service ([`kms_client`]), by an S3 Bucket
//! Key, or (DSSE-KMS) two data keys for two layers. The one place that makes and opens data
//! keys; the write and read paths only ask for [`DataKeys`].
//!
//! Keys are held only as `Key256` (zeroized, never printed); a Bucket Key is cached in memory
//! for a bounded time, per bucket, KMS key, context and caller, never written anywhere but as
//! its KMS ciphertext.

pub mod customer;
pub mod kms_client;
pub mod request;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_crypto::Key256;
use coffer_kms::{Caller, KmsError};
use coffer_policy::Identity;
use coffer_store::Envelope;
use s3s::S3Error;
use s3s::dto::ServerSideEncryption;

use crate::authz::Authorizer;
use crate::binding::{self, ObjectId};
use crate::error::{api_error, crypto_error, internal};
use crate::keyring::ServiceKeyRing;
use crate::kms_api::Connection;
use crate::server::RequestInfo;
pub use customer::CustomerKey;
pub use kms_client::KmsClient;
pub use request::{Sse, SseHeaders};

/// Envelope modes (the `x-amz-server-side-encryption` value). Frozen: stored in every record.
pub const MODE_SSE_S3: &str = ServerSideEncryption::AES256;
pub const MODE_SSE_KMS: &str = ServerSideEncryption::AWS_KMS;
pub const MODE_DSSE_KMS: &str = ServerSideEncryption::AWS_KMS_DSSE;
/// SSE-C (S3 names it so in `BlockedEncryptionTypes`; its objects carry no
/// `x-amz-server-side-encryption`).
pub const MODE_SSE_C: &str = "SSE-C";
/// The key id an SSE-C data key's wrapping is bound to in its AAD. Frozen.
const SSE_C_KEY_ID: &str = "sse-c";

/// How long a Bucket Key is used for new objects, and kept to open them, before the KMS is asked
/// again, as S3 keeps its Bucket Keys "time-limited". A change in the key service (a key disabled,
/// scheduled for deletion, its policy changed) or in the caller's identity policies ends it at
/// once.
const BUCKET_KEY_LIFETIME: Duration = Duration::from_secs(300);
/// Most Bucket Keys cached at once (each is 32 bytes plus its blob).
const MAX_CACHED_BUCKET_KEYS: usize = 4096;

/// The data keys of one object version: one per layer.
pub struct DataKeys {
    /// The (inner) layer's key: every mode has one.
    pub inner: Key256,
    /// DSSE-KMS's outer layer's key.
    pub outer: Option<Key256>,
}

/// Makes and opens the envelopes of object versions.
pub struct Encryption {
    ring: Arc<ServiceKeyRing>,
    kms: Option<Arc<dyn KmsClient>>,
    bucket_keys: Mutex<HashMap<BucketKeyId, CachedBucketKey>>,
}

/// What one cached Bucket Key is for: S3 reuses a Bucket Key only for the same bucket, KMS key,
/// context and caller (so a caller never rides on another's KMS permission).
#[derive(Clone, PartialEq, Eq, Hash)]
enum BucketKeyId {
    /// For new objects: (bucket ARN, requested key id, caller's context, principal).
    Writing(String, Option<String>, BTreeMap<String, String>, String),
    /// For reading: (SHA-256 of the Bucket Key's KMS blob, principal).
    Reading([u8; 32], String),
}

struct CachedBucketKey {
    key: Key256,
    blob: Vec<u8>,
    key_arn: String,
    context: BTreeMap<String, String>,
    made: Instant,
    /// [`KmsClient::generation`] before the KMS call that made it.
    generation: u64,
    /// The identity policies of the caller it was made for.
    identity: Identity,
}

/// Whether two identities are the same policies: the credentials table parses a user's policies
/// once per change, so a user whose policies changed holds a new `Arc` (and a cached entry keeps
/// the old one alive, so its address cannot be reused).
fn same_identity(a: &Identity, b: &Identity) -> bool {
    match (a, b) {
        (Identity::Root, Identity::Root) => true,
        (Identity::User(a), Identity::User(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl Encryption {
    pub fn new(ring: Arc<ServiceKeyRing>, kms: Option<Arc<dyn KmsClient>>) -> Encryption {
        Encryption {
            ring,
            kms,
            bucket_keys: Mutex::new(HashMap::new()),
        }
    }

    fn kms(&self) -> Result<&dyn KmsClient, S3Error> {
        self.kms.as_deref().ok_or_else(|| {
            api_error!(
                NotImplemented,
                "The key service is not running: SSE-KMS and DSSE-KMS are not available"
            )
        })
    }

    /// Fresh data keys for object version `id` under `sse`, and the envelope that keeps them.
    pub async fn new_data_keys(
        &self,
        sse: &Sse,
        id: &ObjectId<'_>,
        caller: &Caller,
    ) -> Result<(DataKeys, Envelope), S3Error> {
        match sse {
            Sse::S3 => {
                let dek = Key256::generate().map_err(crypto_error)?;
                let (key_id, service_key) = self.ring.current();
                let wrapped =
                    coffer_crypto::wrap_key(&service_key, &dek, &binding::dek_aad(id, &key_id))
                        .map_err(crypto_error)?;
                Ok((
                    DataKeys {
                        inner: dek,
                        outer: None,
                    },
                    envelope(MODE_SSE_S3, key_id, wrapped),
                ))
            }
            Sse::Kms {
                key_id,
                context,
                bucket_key: false,
            } => {
                let context = request::full_context(context, &object_arn(id))?;
                let key = self
                    .kms()?
                    .generate_data_key(caller, key_id.as_deref(), &context)
                    .await
                    .map_err(kms_error)?;
                let mut env = envelope(MODE_SSE_KMS, key.key_arn, key.ciphertext);
                env.context = Some(context);
                Ok((
                    DataKeys {
                        inner: key.plaintext,
                        outer: None,
                    },
                    env,
                ))
            }
            Sse::Kms {
                key_id,
                context,
                bucket_key: true,
            } => {
                let bucket = self
                    .bucket_key_for_writing(caller, id, key_id, context)
                    .await?;
                let dek = Key256::generate().map_err(crypto_error)?;
                let wrapped = coffer_crypto::wrap_key(
                    &bucket.key,
                    &dek,
                    &binding::dek_aad(id, &bucket_key_label(&bucket.key_arn)),
                )
                .map_err(crypto_error)?;
                let mut env = envelope(MODE_SSE_KMS, bucket.key_arn, wrapped);
                env.context = Some(bucket.context);
                env.bucket_key = Some(bucket.blob);
                Ok((
                    DataKeys {
                        inner: dek,
                        outer: None,
                    },
                    env,
                ))
            }
            Sse::Customer(customer) => {
                let dek = Key256::generate().map_err(crypto_error)?;
                let (check, kek) = customer.new_check()?;
                let wrapped =
                    coffer_crypto::wrap_key(&kek, &dek, &binding::dek_aad(id, SSE_C_KEY_ID))
                        .map_err(crypto_error)?;
                let mut env = envelope(MODE_SSE_C, SSE_C_KEY_ID.to_owned(), wrapped);
                env.customer_key_check = Some(check);
                Ok((
                    DataKeys {
                        inner: dek,
                        outer: None,
                    },
                    env,
                ))
            }
            Sse::Dsse { key_id, context } => {
                let context = request::full_context(context, &object_arn(id))?;
                let kms = self.kms()?;
                // Both layers' keys at once (one audit commit, not two in a row), each asked for
                // by the name the request gave (so that `kms:RequestAlias` conditions see it).
                let (inner, outer) = tokio::join!(
                    kms.generate_data_key(caller, key_id.as_deref(), &context),
                    kms.generate_data_key(caller, key_id.as_deref(), &context),
                );
                let (inner, outer) = (inner.map_err(kms_error)?, outer.map_err(kms_error)?);
                if inner.key_arn != outer.key_arn {
                    // The alias was moved between the two calls.
                    return Err(api_error!(
                        InvalidArgument,
                        "The KMS key changed while the request was made; try again"
                    ));
                }
                let mut env = envelope(MODE_DSSE_KMS, inner.key_arn, inner.ciphertext);
                env.context = Some(context);
                env.outer_wrapped_dek = Some(outer.ciphertext);
                Ok((
                    DataKeys {
                        inner: inner.plaintext,
                        outer: Some(outer.plaintext),
                    },
                    env,
                ))
            }
        }
    }

    /// S3's rules for the customer key a read (or an upload's part) presents, before anything
    /// is opened: an SSE-C object needs its key (`400 InvalidRequest` without, `403
    /// AccessDenied` with another), and any other object refuses one (`400 InvalidRequest`).
    /// Returns the key that wraps an SSE-C object's data key.
    pub fn check_customer_key(
        &self,
        env: &Envelope,
        customer: Option<&CustomerKey>,
    ) -> Result<Option<Key256>, S3Error> {
        match (env.mode == MODE_SSE_C, customer) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err(api_error!(
                InvalidRequest,
                "The encryption parameters are not applicable to this object."
            )),
            (true, None) => Err(api_error!(
                InvalidRequest,
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
            )),
            (true, Some(customer)) => {
                let check = env.customer_key_check.as_deref().ok_or_else(|| {
                    internal("envelope", "an SSE-C envelope without its key check")
                })?;
                match customer.open_check(check) {
                    Some(kek) => Ok(Some(kek)),
                    None => Err(api_error!(
                        AccessDenied,
                        "Access Denied: the customer-provided key is not the key this object was encrypted with"
                    )),
                }
            }
        }
    }

    /// The data keys of object version `id` from its envelope; `customer` is the SSE-C key the
    /// request presented (checked by [`Encryption::check_customer_key`]).
    pub async fn open_data_keys(
        &self,
        env: &Envelope,
        id: &ObjectId<'_>,
        caller: &Caller,
        customer: Option<&CustomerKey>,
    ) -> Result<DataKeys, S3Error> {
        let kek = self.check_customer_key(env, customer)?;
        if env.format_version != coffer_crypto::FORMAT_VERSION
            || env.segment_size as usize != coffer_crypto::SEGMENT_SIZE
        {
            return Err(internal("envelope", "unsupported object format version"));
        }
        // The stored context must name this object (or its bucket, under a Bucket Key), and the
        // KMS key that opens a data key must be the one the envelope names: a wrapped key moved
        // with its context into another record never opens there.
        let context = || {
            let context = env
                .context
                .as_ref()
                .ok_or_else(|| internal("envelope", "a KMS envelope without its context"))?;
            let expected = match env.bucket_key {
                Some(_) => format!("arn:aws:s3:::{}", id.bucket),
                None => object_arn(id),
            };
            if context.get(request::S3_ARN_CONTEXT_KEY) != Some(&expected) {
                return Err(internal(
                    "envelope",
                    "the encryption context of a KMS envelope names another object",
                ));
            }
            Ok(context)
        };
        let same_key = |(key, arn): (Key256, String)| {
            if arn == env.key_id {
                Ok(key)
            } else {
                Err(internal(
                    "envelope",
                    "a data key opened under another KMS key than its envelope names",
                ))
            }
        };
        match env.mode.as_str() {
            MODE_SSE_S3 => {
                let service_key = self.ring.by_key_id(&env.key_id).ok_or_else(|| {
                    internal(
                        "envelope",
                        format!("service key {} is not in the key ring", env.key_id),
                    )
                })?;
                let dek = coffer_crypto::unwrap_key(
                    &service_key,
                    &env.wrapped_dek,
                    &binding::dek_aad(id, &env.key_id),
                )
                .map_err(crypto_error)?;
                Ok(DataKeys {
                    inner: dek,
                    outer: None,
                })
            }
            MODE_SSE_KMS => match &env.bucket_key {
                None => {
                    let dek = self
                        .kms()?
                        .decrypt(caller, &env.wrapped_dek, context()?)
                        .await
                        .map_err(kms_error)
                        .and_then(same_key)?;
                    Ok(DataKeys {
                        inner: dek,
                        outer: None,
                    })
                }
                Some(blob) => {
                    let bucket_key = self
                        .bucket_key_for_reading(caller, blob, context()?, &env.key_id)
                        .await?;
                    let dek = coffer_crypto::unwrap_key(
                        &bucket_key,
                        &env.wrapped_dek,
                        &binding::dek_aad(id, &bucket_key_label(&env.key_id)),
                    )
                    .map_err(crypto_error)?;
                    Ok(DataKeys {
                        inner: dek,
                        outer: None,
                    })
                }
            },
            MODE_SSE_C => {
                let kek = kek.ok_or_else(|| internal("envelope", "SSE-C without its key"))?;
                let dek = coffer_crypto::unwrap_key(
                    &kek,
                    &env.wrapped_dek,
                    &binding::dek_aad(id, SSE_C_KEY_ID),
                )
                .map_err(crypto_error)?;
                Ok(DataKeys {
                    inner: dek,
                    outer: None,
                })
            }
            MODE_DSSE_KMS => {
                let kms = self.kms()?;
                let outer_blob = env.outer_wrapped_dek.as_ref().ok_or_else(|| {
                    internal("envelope", "a DSSE envelope without its second key")
                })?;
                let context = context()?;
                let (inner, outer) = tokio::join!(
                    kms.decrypt(caller, &env.wrapped_dek, context),
                    kms.decrypt(caller, outer_blob, context),
                );
                let inner = inner.map_err(kms_error).and_then(same_key)?;
                let outer = outer.map_err(kms_error).and_then(same_key)?;
                Ok(DataKeys {
                    inner,
                    outer: Some(outer),
                })
            }
            other => Err(internal(
                "envelope",
                format!("unsupported encryption mode {other:?}"),
            )),
        }
    }

    async fn bucket_key_for_writing(
        &self,
        caller: &Caller,
        id: &ObjectId<'_>,
        key_id: &Option<String>,
        context: &BTreeMap<String, String>,
    ) -> Result<CachedCopy, S3Error> {
        let bucket_arn = format!("arn:aws:s3:::{}", id.bucket);
        let slot = BucketKeyId::Writing(
            bucket_arn.clone(),
            key_id.clone(),
            context.clone(),
            caller.principal_arn.clone(),
        );
        let kms = self.kms()?;
        if let Some(hit) = self.cached(&slot, caller, kms.generation(), |k| CachedCopy {
            key: k.key.clone(),
            blob: k.blob.clone(),
            key_arn: k.key_arn.clone(),
            context: k.context.clone(),
        }) {
            return Ok(hit);
        }
        let full = request::full_context(context, &bucket_arn)?;
        // Read before the call: a change made while it runs leaves the entry stale.
        let generation = kms.generation();
        let key = kms
            .generate_data_key(caller, key_id.as_deref(), &full)
            .await
            .map_err(kms_error)?;
        let made = CachedCopy {
            key: key.plaintext,
            blob: key.ciphertext,
            key_arn: key.key_arn,
            context: full,
        };
        self.remember(slot, &made, generation, caller);
        Ok(made)
    }

    async fn bucket_key_for_reading(
        &self,
        caller: &Caller,
        blob: &[u8],
        context: &BTreeMap<String, String>,
        key_arn: &str,
    ) -> Result<Key256, S3Error> {
        let slot = BucketKeyId::Reading(coffer_crypto::sha256(blob), caller.principal_arn.clone());
        let kms = self.kms()?;
        // A read needs only the key: nothing else is copied out of the cache.
        if let Some(key) = self.cached(&slot, caller, kms.generation(), |k| k.key.clone()) {
            return Ok(key);
        }
        let generation = kms.generation();
        let (key, opened_by) = kms
            .decrypt(caller, blob, context)
            .await
            .map_err(kms_error)?;
        if opened_by != key_arn {
            return Err(internal(
                "envelope",
                "a Bucket Key opened under another KMS key than its envelope names",
            ));
        }
        let key_arn = opened_by;
        let made = CachedCopy {
            key,
            blob: blob.to_vec(),
            key_arn,
            context: context.clone(),
        };
        self.remember(slot, &made, generation, caller);
        Ok(made.key)
    }

    /// The cached Bucket Key of `slot`, if it is younger than [`BUCKET_KEY_LIFETIME`], the key
    /// service has changed nothing since it was made (`generation`: a disabled key, a key pending
    /// deletion or a narrowed key policy takes effect at once), and the caller's identity policies
    /// are the ones it was made under; `take` copies out what the caller needs.
    fn cached<T>(
        &self,
        slot: &BucketKeyId,
        caller: &Caller,
        generation: u64,
        take: impl FnOnce(&CachedBucketKey) -> T,
    ) -> Option<T> {
        let mut keys = self
            .bucket_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match keys.get(slot) {
            Some(k)
                if k.made.elapsed() < BUCKET_KEY_LIFETIME
                    && k.generation == generation
                    && same_identity(&k.identity, &caller.identity) =>
            {
                Some(take(k))
            }
            Some(_) => {
                keys.remove(slot);
                None
            }
            None => None,
        }
    }

    fn remember(&self, slot: BucketKeyId, key: &CachedCopy, generation: u64, caller: &Caller) {
        let mut keys = self
            .bucket_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.len() >= MAX_CACHED_BUCKET_KEYS {
            keys.retain(|_, k| k.made.elapsed() < BUCKET_KEY_LIFETIME);
            if keys.len() >= MAX_CACHED_BUCKET_KEYS {
                keys.clear();
            }
        }
        keys.insert(
            slot,
            CachedBucketKey {
                key: key.key.clone(),
                blob: key.blob.clone(),
                key_arn: key.key_arn.clone(),
                context: key.context.clone(),
                made: Instant::now(),
                generation,
                identity: caller.identity.clone(),
            },
        );
    }
}

/// A Bucket Key handed out of the cache.
struct CachedCopy {
    key: Key256,
    blob: Vec<u8>,
    key_arn: String,
    context: BTreeMap<String, String>,
}

/// The key id a data key wrapped by a Bucket Key is bound to in its AAD. Frozen format v2.
fn bucket_key_label(key_arn: &str) -> String {
    format!("bucket-key:{key_arn}")
}

fn object_arn(id: &ObjectId<'_>) -> String {
    format!("arn:aws:s3:::{}/{}", id.bucket, id.key)
}

fn envelope(mode: &str, key_id: String, wrapped_dek: Vec<u8>) -> Envelope {
    Envelope {
        mode: mode.to_owned(),
        key_id,
        wrapped_dek,
        format_version: coffer_crypto::FORMAT_VERSION,
        segment_size: coffer_crypto::SEGMENT_SIZE as u32,
        context: None,
        outer_wrapped_dek: None,
        bucket_key: None,
        customer_key_check: None,
    }
}

/// What the response headers say of an object's encryption.
pub struct SseView {
    /// `x-amz-server-side-encryption` (every mode but SSE-C).
    pub algorithm: Option<ServerSideEncryption>,
    /// `x-amz-server-side-encryption-customer-algorithm` (SSE-C).
    pub customer_algorithm: Option<String>,
    /// `x-amz-server-side-encryption-customer-key-MD5`: the MD5 of the key the request presented
    /// (SSE-C; Coffer does not keep it).
    pub customer_key_md5: Option<String>,
    /// The KMS key's ARN (KMS modes).
    pub kms_key_arn: Option<String>,
    /// `x-amz-server-side-encryption-context` (KMS modes).
    pub context: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled: true` when a Bucket Key was used.
    pub bucket_key_enabled: Option<bool>,
}

impl SseView {
    /// The headers of an envelope; `customer` is the SSE-C key the request presented.
    pub fn of(env: &Envelope, customer: Option<&CustomerKey>) -> SseView {
        let sse_c = env.mode == MODE_SSE_C;
        let kms = env.mode != MODE_SSE_S3 && !sse_c;
        SseView {
            algorithm: (!sse_c).then(|| ServerSideEncryption::from(env.mode.clone())),
            customer_algorithm: sse_c.then(|| customer::CUSTOMER_ALGORITHM.to_owned()),
            customer_key_md5: customer.filter(|_| sse_c).map(|k| k.md5().to_owned()),
            kms_key_arn: kms.then(|| env.key_id.clone()),
            context: env.context.as_ref().map(request::context_header),
            bucket_key_enabled: env.bucket_key.is_some().then_some(true),
        }
    }
}

/// Who a request is from and how it came, as the key service and S3's transport rules need it.
pub struct Requester {
    /// The caller the KMS calls are made for.
    pub caller: Caller,
    pub secure: bool,
    pub sigv2: bool,
}

impl Requester {
    /// From what the front layer and the access check left in a request's extensions.
    pub fn of(ext: &http::Extensions, headers: &http::HeaderMap) -> Result<Requester, S3Error> {
        let authz = ext
            .get::<Authorizer>()
            .ok_or_else(|| api_error!(AccessDenied, "Access Denied"))?;
        let conn = ext.get::<Connection>();
        let info = ext.get::<RequestInfo>();
        Ok(Requester {
            caller: authz.kms_caller(conn, info.map_or("", |i| i.request_id.as_str()), headers),
            secure: conn.is_some_and(|c| c.secure),
            sigv2: info.is_some_and(|i| i.sigv2),
        })
    }

    /// S3's rule for requests that carry a customer key: HTTPS unless the operator allowed plain
    /// HTTP (S3 refuses SSE-C over HTTP, and advises treating a key sent so as compromised).
    pub fn check_customer_key_transport(&self, allow_insecure_http: bool) -> Result<(), S3Error> {
        if !self.secure && !allow_insecure_http {
            return Err(api_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
            ));
        }
        Ok(())
    }

    /// S3's rules for requests that involve the KMS (writing or reading an SSE-KMS or DSSE-KMS
    /// object): SigV4 only, and HTTPS unless the operator allowed plain HTTP.
    pub fn check_kms_transport(&self, allow_insecure_http: bool) -> Result<(), S3Error> {
        if self.sigv2 {
            return Err(api_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4."
            ));
        }
        if !self.secure && !allow_insecure_http {
            return Err(api_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with AWS KMS managed keys must be made over a secure connection."
            ));
        }
        Ok(())
    }
}

/// The entity tag of an object (or part) under `mode`: the MD5 of the plaintext for SSE-S3, as
/// S3 gives it; for the KMS modes a value that is not the MD5 (S3 does not reveal it there): the
/// first 16 bytes of HMAC-SHA256 of the MD5 under a key derived from the data key
/// (HKDF info "coffer etag v1"), hex. Frozen: stored ETags must stay what clients saw.
pub fn etag(mode: &str, keys: &DataKeys, md5: &[u8; 16]) -> String {
    if mode == MODE_SSE_S3 {
        hex::encode(md5)
    } else {
        let key = coffer_crypto::derive_key(&keys.inner, &[], b"coffer etag v1");
        hex::encode(&coffer_crypto::hmac_sha256(key.expose_secret(), md5)[..16])
    }
}

/// The one mapping of key-service errors to what S3 answers (S3 prefixes the KMS's codes with
/// `KMS.` where it passes them on).
pub fn kms_error(e: KmsError) -> S3Error {
    match e {
        KmsError::Disabled(m) => api_error!(KmsDisabled, "{m}"),
        KmsError::InvalidState(m) => api_error!(KmsInvalidState, "{m}"),
        KmsError::NotFound(m) | KmsError::InvalidArn(m) => api_error!(KmsNotFound, "{m}"),
        KmsError::AccessDenied(m) => api_error!(AccessDenied, "{m}"),
        KmsError::Throttling(m) | KmsError::LimitExceeded(m) => {
            api_error!(SlowDown, "Please reduce your request rate. {m}")
        }
        KmsError::Validation(m) | KmsError::InvalidKeyUsage(m) => {
            api_error!(InvalidArgument, "{m}")
        }
        KmsError::InvalidCiphertext(m) | KmsError::IncorrectKey(m) => {
            tracing::error!(error = %m, "an object's data key does not decrypt under its KMS key");
            api_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
        other @ (KmsError::AlreadyExists(_)
        | KmsError::InvalidAliasName(_)
        | KmsError::MalformedPolicyDocument(_)
        | KmsError::InvalidMarker(_)
        | KmsError::Tag(_)
        | KmsError::UnsupportedOperation(_)
        | KmsError::DryRunOperation(_)
        | KmsError::Internal(_)
        | KmsError::UnknownOperation(_)
        | KmsError::Serialization(_)) => {
            tracing::error!(error = %other.message(), "key service failure");
            api_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
    }
}
