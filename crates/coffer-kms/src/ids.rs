//! Names of keys and aliases: ARNs in the AWS shape, the four ways a request may name a key (key
//! id, key ARN, alias name, alias ARN), and the alias-name rules. Pure string functions.
//!
//! This module decides only what a name *says*; whether the key or alias exists is the service's
//! question. It must never accept a name for another region or account as one of ours.

use crate::KmsError;

/// Longest `KeyId` the API accepts (AWS: 1–2048 characters).
const MAX_KEY_ID_LEN: usize = 2048;
/// Longest alias name (AWS: 1–256 characters, prefix included).
const MAX_ALIAS_LEN: usize = 256;
/// Every alias name starts with this.
pub const ALIAS_PREFIX: &str = "alias/";
/// Alias names reserved for AWS managed keys; customers may not create, update or delete them.
pub const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";

/// How a request named a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A key id (from a bare id or a key ARN).
    Key(String),
    /// An alias name `alias/…` (from an alias name or an alias ARN).
    Alias(String),
}

/// ARNs of this deployment: `arn:<partition>:kms:<region>:<account>:…`.
#[derive(Debug, Clone)]
pub struct Arns {
    partition: &'static str,
    region: String,
    account: String,
}

impl Arns {
    /// ARNs for a region and account; the partition follows the region as in AWS (`aws-cn` for
    /// `cn-*`, `aws-us-gov` for `us-gov-*`, else `aws`).
    pub fn new(region: &str, account: &str) -> Arns {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Arns {
            partition,
            region: region.to_owned(),
            account: account.to_owned(),
        }
    }

    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn key(&self, id: &str) -> String {
        format!(
            "arn:{}:kms:{}:{}:key/{id}",
            self.partition, self.region, self.account
        )
    }

    /// `arn:aws:kms:<region>:<account>:alias/<name>`; `alias_name` includes `alias/`.
    pub fn alias(&self, alias_name: &str) -> String {
        format!(
            "arn:{}:kms:{}:{}:{alias_name}",
            self.partition, self.region, self.account
        )
    }

    /// The partition of every ARN: `aws`, `aws-cn` or `aws-us-gov`.
    pub fn partition(&self) -> &str {
        self.partition
    }

    /// The account id keys belong to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The region of this deployment.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Reads a `KeyId` field: key id, key ARN, alias name or alias ARN. `field` names the request
    /// field in messages (`keyId`, `targetKeyId`, …).
    pub fn parse_key_ref(&self, value: &str, field: &str) -> Result<KeyRef, KmsError> {
        if value.is_empty() || value.len() > MAX_KEY_ID_LEN {
            return Err(KmsError::validation(
                field,
                value,
                "Member must have length between 1 and 2048",
            ));
        }
        if let Some(rest) = value.strip_prefix("arn:") {
            return self.parse_arn(value, rest);
        }
        if value.starts_with(ALIAS_PREFIX) {
            return Ok(KeyRef::Alias(value.to_owned()));
        }
        Ok(KeyRef::Key(value.to_owned()))
    }

    /// `arn:` has been stripped from `rest`; `full` is the whole value for messages.
    fn parse_arn(&self, full: &str, rest: &str) -> Result<KeyRef, KmsError> {
        let mut parts = rest.splitn(5, ':');
        let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(KmsError::InvalidArn(format!(
                "'{full}' is not a valid ARN: expected arn:<partition>:kms:<region>:<account>:key/<key-id> or …:alias/<name>"
            )));
        };
        let key_ref = if let Some(id) = resource.strip_prefix("key/") {
            KeyRef::Key(id.to_owned())
        } else if resource.starts_with(ALIAS_PREFIX) {
            KeyRef::Alias(resource.to_owned())
        } else {
            return Err(KmsError::InvalidArn(format!(
                "'{full}' is not a KMS key or alias ARN: the resource must be key/<key-id> or alias/<name>"
            )));
        };
        if service != "kms" {
            return Err(KmsError::InvalidArn(format!(
                "'{full}' is not a KMS ARN: its service is '{service}'"
            )));
        }
        if partition != self.partition || region != self.region || account != self.account {
            return Err(KmsError::NotFound(match &key_ref {
                KeyRef::Key(_) => format!("Key '{full}' does not exist"),
                KeyRef::Alias(_) => format!("Alias '{full}' is not found."),
            }));
        }
        Ok(key_ref)
    }
}

/// Checks the form of an alias name (`alias/` prefix, allowed characters, length). `field` names the
/// request field in messages.
pub fn check_alias_name(name: &str, field: &str) -> Result<(), KmsError> {
    if name.is_empty() || name.len() > MAX_ALIAS_LEN {
        return Err(KmsError::validation(
            field,
            name,
            "Member must have length between 1 and 256",
        ));
    }
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'));
    if !valid_chars {
        return Err(KmsError::validation(
            field,
            name,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9/_-]+$",
        ));
    }
    match name.strip_prefix(ALIAS_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(KmsError::Validation(format!(
            "Alias name '{name}' must begin with 'alias/' followed by a name, for example alias/ExampleAlias"
        ))),
    }
}

/// Refuses names under `alias/aws/`, which only AWS managed keys may have.
pub fn check_not_reserved(name: &str) -> Result<(), KmsError> {
    if name.starts_with(RESERVED_ALIAS_PREFIX) {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias '{name}' is reserved: names beginning with alias/aws/ belong to AWS managed keys"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arns() -> Arns {
        Arns::new("us-east-1", "111122223333")
    }

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn arns_have_the_aws_shape() {
        assert_eq!(
            arns().key(ID),
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        assert_eq!(
            arns().alias("alias/app"),
            "arn:aws:kms:us-east-1:111122223333:alias/app"
        );
        assert!(
            Arns::new("cn-north-1", "1")
                .key("k")
                .starts_with("arn:aws-cn:")
        );
    }

    #[test]
    fn all_four_forms_of_key_id_parse() {
        let a = arns();
        assert_eq!(
            a.parse_key_ref(ID, "keyId").unwrap(),
            KeyRef::Key(ID.into())
        );
        assert_eq!(
            a.parse_key_ref(&a.key(ID), "keyId").unwrap(),
            KeyRef::Key(ID.into())
        );
        assert_eq!(
            a.parse_key_ref("alias/app", "keyId").unwrap(),
            KeyRef::Alias("alias/app".into())
        );
        assert_eq!(
            a.parse_key_ref(&a.alias("alias/app/x"), "keyId").unwrap(),
            KeyRef::Alias("alias/app/x".into())
        );
    }

    #[test]
    fn arns_of_another_region_or_account_are_not_found() {
        let a = arns();
        let other_region = Arns::new("eu-west-1", "111122223333").key(ID);
        let other_account = Arns::new("us-east-1", "999999999999").alias("alias/x");
        for arn in [other_region, other_account] {
            assert!(matches!(
                a.parse_key_ref(&arn, "keyId"),
                Err(KmsError::NotFound(_))
            ));
        }
    }

    #[test]
    fn malformed_arns_are_invalid_arn() {
        let a = arns();
        for arn in [
            "arn:aws:kms",
            "arn:aws:s3:us-east-1:111122223333:key/x",
            "arn:aws:kms:us-east-1:111122223333:grant/x",
        ] {
            assert!(
                matches!(a.parse_key_ref(arn, "keyId"), Err(KmsError::InvalidArn(_))),
                "{arn}"
            );
        }
    }

    #[test]
    fn key_id_length_is_validated() {
        let a = arns();
        assert!(matches!(
            a.parse_key_ref("", "keyId"),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            a.parse_key_ref(&"k".repeat(2049), "keyId"),
            Err(KmsError::Validation(_))
        ));
    }

    #[test]
    fn alias_names_follow_the_aws_rules() {
        for ok in ["alias/a", "alias/app/prod_1-x", "alias/aws/s3"] {
            check_alias_name(ok, "aliasName").unwrap();
        }
        for bad in [
            "",
            "alias/",
            "app",
            "alias/has space",
            "alias/ü",
            "alias/a:b",
        ] {
            assert!(
                matches!(
                    check_alias_name(bad, "aliasName"),
                    Err(KmsError::Validation(_))
                ),
                "{bad}"
            );
        }
        let long = format!("alias/{}", "a".repeat(251));
        assert!(check_alias_name(&long, "aliasName").is_err());
        check_alias_name(&long[..256], "aliasName").unwrap();
    }

    #[test]
    fn aws_prefix_is_reserved() {
        assert!(matches!(
            check_not_reserved("alias/aws/s3"),
            Err(KmsError::InvalidAliasName(_))
        ));
        check_not_reserved("alias/awsome").unwrap();
    }
}
