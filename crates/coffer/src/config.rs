//! Configuration in two stages (as ripgrep does): what the user typed — flags, `COFFER_*`
//! environment variables and an optional TOML file, in that order of precedence — and the
//! resolved `Settings` the server runs with. No I/O beyond reading the TOML file.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;

#[derive(clap::Parser)]
#[command(
    name = "coffer",
    version,
    about = "An S3-compatible object store that encrypts every object at rest."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the S3 server (embedded storage in --data-dir).
    Serve(ServeArgs),
    /// Add a new SSE-S3 service key version (run while the server is stopped). Objects
    /// written before stay readable; new objects use the new version.
    RotateServiceKey(DataDirArg),
}

#[derive(clap::Args)]
pub struct DataDirArg {
    /// Data directory of the server.
    #[arg(long, env = "COFFER_DATA_DIR", default_value = "./coffer-data")]
    pub data_dir: PathBuf,
}

/// `coffer serve` settings. Every flag also reads a `COFFER_*` environment variable and the
/// same key (snake_case) in the TOML file given by --config.
#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys: data_dir, listen, region, root_key_file,
    /// allow_insecure_http, access_key, secret_key). Flags and environment win over it.
    #[arg(long, env = "COFFER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: metadata database, encrypted blobs, keys [default: ./coffer-data]
    #[arg(long, env = "COFFER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:9000]
    #[arg(long, env = "COFFER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Region this endpoint serves (SigV4 scope, bucket location) [default: us-east-1]
    #[arg(long, env = "COFFER_REGION")]
    pub region: Option<String>,
    /// Root key file (32 bytes, mode 0600) that seals the key ring [default: <data-dir>/root.key]
    #[arg(long, env = "COFFER_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// Accept requests that will carry key material over plain HTTP (development and tests only)
    #[arg(long, env = "COFFER_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,
    /// Root access key id (with COFFER_ROOT_SECRET_KEY); generated on first start when unset
    #[arg(
        long = "root-access-key",
        env = "COFFER_ROOT_ACCESS_KEY",
        hide_env_values = true
    )]
    pub access_key: Option<String>,
    /// Root secret access key; never printed again after the first start
    #[arg(
        long = "root-secret-key",
        env = "COFFER_ROOT_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
}

/// The optional TOML file: same settings, lowest precedence.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    region: Option<String>,
    root_key_file: Option<PathBuf>,
    allow_insecure_http: Option<bool>,
    access_key: Option<String>,
    secret_key: Option<String>,
}

/// Resolved settings.
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub root_key_file: PathBuf,
    pub allow_insecure_http: bool,
    /// Root credentials given by the operator (flags, env or file), if any.
    pub root_credentials: Option<(String, String)>,
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file: FileSettings = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./coffer-data"));
        let root_key_file = args
            .root_key_file
            .or(file.root_key_file)
            .unwrap_or_else(|| data_dir.join("root.key"));
        let access = args.access_key.or(file.access_key);
        let secret = args.secret_key.or(file.secret_key);
        let root_credentials = match (access, secret) {
            (Some(a), Some(s)) => Some((a, s)),
            (None, None) => None,
            _ => anyhow::bail!(
                "set both COFFER_ROOT_ACCESS_KEY and COFFER_ROOT_SECRET_KEY, or neither"
            ),
        };
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:9000".parse().expect("valid default address")),
            region: args
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            allow_insecure_http: args.allow_insecure_http
                || file.allow_insecure_http.unwrap_or(false),
            data_dir,
            root_key_file,
            root_credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("coffer.toml");
        std::fs::write(
            &cfg,
            "region = \"eu-west-1\"\nlisten = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(cfg),
            region: Some("us-west-2".into()),
            ..Default::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.data_dir, PathBuf::from("./coffer-data"));
        assert_eq!(s.root_key_file, PathBuf::from("./coffer-data/root.key"));
    }

    #[test]
    fn half_a_credential_pair_is_refused() {
        let args = ServeArgs {
            access_key: Some("AK".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(args).is_err());
    }
}
