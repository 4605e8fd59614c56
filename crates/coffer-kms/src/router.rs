//! The one table of what the KMS API accepts: every operation, its `X-Amz-Target` name, the
//! policy action it needs and whether it only reads.
//!
//! Adding an operation means adding a row here and a handler in the dispatch of `service.rs`; the
//! compiler then points at every match that must learn about it.

/// Declares [`Op`] and its name table from one list, so the two cannot drift apart.
macro_rules! operations {
    ($($variant:ident => $read_only:expr),+ $(,)?) => {
        /// A KMS operation this service implements.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op {
            $(
                #[doc = concat!("`TrentService.", stringify!($variant), "`")]
                $variant,
            )+
        }

        impl Op {
            /// Every operation, in table order.
            #[cfg(test)]
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// The operation named by the part of `X-Amz-Target` after `TrentService.`.
            pub fn parse(name: &str) -> Option<Op> {
                match name {
                    $(stringify!($variant) => Some(Op::$variant),)+
                    _ => None,
                }
            }

            /// The AWS name (also the CloudTrail `eventName`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$variant => stringify!($variant),)+
                }
            }

            /// The key policy action, `kms:<Operation>`.
            pub fn action(self) -> &'static str {
                match self {
                    $(Op::$variant => concat!("kms:", stringify!($variant)),)+
                }
            }

            /// CloudTrail's `readOnly`: the operation changes no state.
            pub fn read_only(self) -> bool {
                match self {
                    $(Op::$variant => $read_only,)+
                }
            }
        }
    };
}

operations! {
    CreateKey => false,
    DescribeKey => true,
    ListKeys => true,
    EnableKey => false,
    DisableKey => false,
    UpdateKeyDescription => false,
    TagResource => false,
    UntagResource => false,
    ListResourceTags => true,
    CreateAlias => false,
    UpdateAlias => false,
    DeleteAlias => false,
    ListAliases => true,
    Encrypt => true,
    Decrypt => true,
    ReEncrypt => true,
    GenerateDataKey => true,
    GenerateDataKeyWithoutPlaintext => true,
    GenerateRandom => true,
    EnableKeyRotation => false,
    DisableKeyRotation => false,
    GetKeyRotationStatus => true,
    RotateKeyOnDemand => false,
    ListKeyRotations => true,
    ScheduleKeyDeletion => false,
    CancelKeyDeletion => false,
    GetKeyPolicy => true,
    PutKeyPolicy => false,
    ListKeyPolicies => true,
}

/// Operations of the AWS KMS API that Coffer does not implement (grants, asymmetric and HMAC keys,
/// imported material, custom key stores, multi-Region keys): answered with
/// `UnsupportedOperationException` rather than `UnknownOperationException`, so a client learns the
/// call is real but not served here.
pub const UNSUPPORTED: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateGrant",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "GetParametersForImport",
    "GetPublicKey",
    "ImportKeyMaterial",
    "ListGrants",
    "ListRetirableGrants",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "Sign",
    "UpdateCustomKeyStore",
    "UpdatePrimaryRegion",
    "Verify",
    "VerifyMac",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_parses_from_its_own_name() {
        assert_eq!(Op::ALL.len(), 29);
        for &op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
            assert_eq!(op.action(), format!("kms:{}", op.name()));
        }
    }

    #[test]
    fn unknown_and_differently_cased_names_are_not_operations() {
        for name in ["", "encrypt", "CreateGrant", "Sign", "TrentService.Encrypt"] {
            assert_eq!(Op::parse(name), None, "{name}");
        }
    }

    #[test]
    fn unsupported_operations_are_not_implemented_ones() {
        for name in UNSUPPORTED {
            assert_eq!(Op::parse(name), None, "{name}");
        }
    }

    #[test]
    fn crypto_operations_are_read_only_as_in_cloudtrail() {
        assert!(Op::GenerateDataKey.read_only());
        assert!(Op::Decrypt.read_only());
        assert!(!Op::CreateKey.read_only());
        assert!(!Op::ScheduleKeyDeletion.read_only());
    }
}
