//! Files that hold secrets: the deployment root key and the generated root credentials.
//!
//! Both are created with mode 0600 and refused if others can read them. Their contents
//! never reach a log line; the generated credentials are printed once, on first start.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use coffer_crypto::Key256;
use zeroize::Zeroizing;

/// Loads the root key, creating it (mode 0600) when the file does not exist yet.
/// Returns the key and whether it was just created.
pub fn load_or_create_root_key(path: &Path) -> anyhow::Result<(Key256, bool)> {
    if path.exists() {
        check_private(path)?;
        let text = Zeroizing::new(
            fs::read_to_string(path)
                .with_context(|| format!("reading root key {}", path.display()))?,
        );
        let bytes = Zeroizing::new(hex::decode(text.trim()).with_context(|| {
            format!("root key file {} is not 64 hex characters", path.display())
        })?);
        let key = Key256::from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("root key file {} must hold 32 bytes", path.display()))?;
        return Ok((key, false));
    }
    let key = Key256::generate().map_err(|e| anyhow::anyhow!("generating the root key: {e}"))?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.expose_secret())));
    write_private(path, text.as_bytes())?;
    Ok((key, true))
}

/// Loads the root credentials stored in the data dir, or generates and stores a new pair.
/// Returns the pair and whether it was just generated.
pub fn load_or_create_credentials(path: &Path) -> anyhow::Result<((String, String), bool)> {
    if path.exists() {
        check_private(path)?;
        let text = Zeroizing::new(
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let mut access = None;
        let mut secret = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("access_key=") {
                access = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("secret_key=") {
                secret = Some(v.trim().to_owned());
            }
        }
        return match (access, secret) {
            (Some(a), Some(s)) => Ok(((a, s), false)),
            _ => bail!(
                "{} must hold access_key= and secret_key= lines",
                path.display()
            ),
        };
    }
    let (access, secret) =
        coffer_s3::generate_key_pair().map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    let secret = secret.to_string();
    let text = Zeroizing::new(format!("access_key={access}\nsecret_key={secret}\n"));
    write_private(path, text.as_bytes())?;
    Ok(((access, secret), true))
}

/// Refuses a secret file that group or others can read or write.
fn check_private(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is accessible by other users (mode {:o}); run `chmod 600 {}` and start again",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Creates a new file with mode 0600, writes it and syncs it.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (k1, created) = load_or_create_root_key(&path).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (k2, created) = load_or_create_root_key(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.expose_secret(), k2.expose_secret());
    }

    #[test]
    fn readable_root_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        load_or_create_root_key(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_root_key(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn generated_credentials_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let (pair, created) = load_or_create_credentials(&path).unwrap();
        assert!(created && pair.0.starts_with("AKIA") && pair.1.len() == 40);
        let (again, created) = load_or_create_credentials(&path).unwrap();
        assert!(!created);
        assert_eq!(pair, again);
    }
}
