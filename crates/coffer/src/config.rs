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
    Serve(Box<ServeArgs>),
    /// Add a new SSE-S3 service key version (run while the server is stopped). Objects
    /// written before stay readable; new objects use the new version.
    RotateServiceKey(DataDirArg),
    /// Measure a running S3 server (Coffer or another) with a lean SigV4 client, next to this
    /// machine's loopback TCP, MD5, disk and AES-256-GCM throughput measured in the same run.
    Bench(BenchArgs),
    /// Measure GenerateDataKey and Decrypt requests/s of a running key service (SigV4 and the
    /// durable audit write included).
    BenchKms(BenchKmsArgs),
    /// Manage users, their access keys and identity policies: on a running server with
    /// --endpoint, or on a stopped server's --data-dir.
    #[command(subcommand)]
    User(UserCommand),
    /// Read the KMS audit log: verify its hash chain, or show recent events.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create a user with a new access key pair (the secret is printed once) and, with
    /// --policy-file, an inline identity policy. Without a policy the user may do nothing.
    Add {
        #[command(flatten)]
        target: UserTarget,
        /// User name (letters, digits and +=,.@_-); its ARN is arn:aws:iam::<account>:user/<name>
        name: String,
        /// An IAM identity policy (JSON) to attach, e.g. one that allows reading one bucket
        #[arg(long)]
        policy_file: Option<PathBuf>,
        /// The name of that inline policy
        #[arg(long, default_value = "policy")]
        policy_name: String,
    },
    /// Remove a user with its access keys and policies; its keys stop working at once.
    Remove {
        #[command(flatten)]
        target: UserTarget,
        name: String,
    },
    /// List users with their access key ids and policy names.
    List {
        #[command(flatten)]
        target: UserTarget,
    },
    /// Attach (or replace) an inline identity policy of a user.
    PutPolicy {
        #[command(flatten)]
        target: UserTarget,
        name: String,
        policy_name: String,
        /// The policy document (JSON)
        #[arg(long)]
        file: PathBuf,
    },
    /// Print an inline identity policy of a user.
    GetPolicy {
        #[command(flatten)]
        target: UserTarget,
        name: String,
        policy_name: String,
    },
    /// Remove an inline identity policy of a user.
    DeletePolicy {
        #[command(flatten)]
        target: UserTarget,
        name: String,
        policy_name: String,
    },
}

/// Where `coffer user` works: on a running server through its IAM endpoint (the change takes
/// effect at once), or on the data dir of a stopped one.
#[derive(clap::Args)]
pub struct UserTarget {
    /// A running server, e.g. https://127.0.0.1:9000; signs with AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY (the root pair, or a user allowed the iam: actions)
    #[arg(long)]
    pub endpoint: Option<String>,
    /// PEM file of the certificate(s) to trust for an https endpoint (e.g. the
    /// <data-dir>/self-signed.pem of --tls-self-signed)
    #[arg(long, env = "AWS_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// The data dir of a stopped server, when no --endpoint is given [default: ./coffer-data]
    #[arg(long, env = "COFFER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check every line's chain link and MAC, and the log's end against its anchor in the
    /// metadata database (needs the root key and the server stopped); exit 1 and say what is
    /// wrong (edited, truncated, emptied, deleted, rolled back…), 2 if it could not check.
    Verify {
        #[command(flatten)]
        dir: DataDirArg,
        /// Check only the chain and the MACs, not the anchor: works while the server runs, but
        /// cannot see lines cut off the end
        #[arg(long)]
        chain_only: bool,
    },
    /// Print the newest events (one JSON object per line), optionally only for one key.
    Tail {
        #[command(flatten)]
        dir: DataDirArg,
        /// Only events whose key id or ARN contains this text
        #[arg(long)]
        key_id: Option<String>,
        /// How many events
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
    },
}

/// `coffer bench` settings: which server to measure, and how long.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// S3 endpoint to measure, e.g. http://127.0.0.1:9000
    #[arg(long)]
    pub endpoint: String,
    /// Access key id of a user that may create the bucket and write to it
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,
    /// Refused: a secret on the command line is visible to every user in `ps`
    #[arg(long = "secret-key", hide = true)]
    pub secret_key_flag: Option<String>,
    /// The secret access key of that user, from AWS_SECRET_ACCESS_KEY (see [`env_secret`]).
    #[arg(skip)]
    pub secret_key: String,
    /// Bucket to work in: created if missing (and then deleted at the end); only the objects
    /// this run writes are touched, and they are deleted at the end
    #[arg(long, default_value = "coffer-bench")]
    pub bucket: String,
    /// Shrink every workload so the whole run takes seconds (a smoke test, not a measurement)
    #[arg(long)]
    pub quick: bool,
    /// Process id of the server, to report its resident memory (from /proc/<pid>/status)
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Directory for the disk reference measurements; put it on the filesystem of the server's
    /// data dir [default: the system temp dir]
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
    /// Encryption modes to measure, comma-separated; each runs the same workloads, and with
    /// SSE-S3 and a KMS mode in one run the table compares them: default (no encryption
    /// headers: the server's default, SSE-S3 on Coffer), sse-s3, sse-kms, sse-kms-bucket-key,
    /// dsse-kms, sse-c (a random customer key per run; a bucket the run creates is opened to
    /// SSE-C)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "default")]
    pub sse: Vec<crate::bench::SseMode>,
    /// KMS key of the KMS modes: key id, key ARN, alias name or alias ARN [default: the AWS
    /// managed key aws/s3]
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,
}

/// `coffer bench-kms` settings.
#[derive(clap::Args)]
pub struct BenchKmsArgs {
    /// KMS endpoint, e.g. http://127.0.0.1:9000 (a server started with --allow-insecure-http)
    #[arg(long)]
    pub endpoint: String,
    /// Access key id
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,
    /// Refused: a secret on the command line is visible to every user in `ps`
    #[arg(long = "secret-key", hide = true)]
    pub secret_key_flag: Option<String>,
    /// The secret access key, from AWS_SECRET_ACCESS_KEY (see [`env_secret`]).
    #[arg(skip)]
    pub secret_key: String,
    /// Region the server serves
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Seconds per measurement
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
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
    /// allow_insecure_http, access_key, secret_key, tls_cert, tls_key,
    /// tls_self_signed, account_id, kms_quotas, kms_quota_cryptographic, kms_task_interval,
    /// sweep_interval, allow_sigv2).
    /// Flags and environment win over it.
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
    /// Accept requests signed with AWS Signature Version 2 (legacy clients, e.g. boto3 with
    /// signature_version='s3'). Off by default, as on S3 buckets created since June 2020; when on,
    /// header-signed requests must be within 15 minutes of the server clock and presigned URLs
    /// valid for at most 7 days
    #[arg(long, env = "COFFER_ALLOW_SIGV2")]
    pub allow_sigv2: bool,
    /// Root access key id; its secret comes from the environment (COFFER_ROOT_SECRET_KEY) or
    /// `secret_key` in the --config file, never from a flag. Both are generated on first start
    /// when unset
    #[arg(
        long = "root-access-key",
        env = "COFFER_ROOT_ACCESS_KEY",
        hide_env_values = true
    )]
    pub access_key: Option<String>,
    /// Refused: a secret on the command line is visible to every user in `ps`
    #[arg(long = "root-secret-key", hide = true)]
    pub secret_key_flag: Option<String>,
    /// The root secret access key, from COFFER_ROOT_SECRET_KEY (see [`env_secret`]).
    #[arg(skip)]
    pub secret_key: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key serves HTTPS
    #[arg(long, env = "COFFER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, env = "COFFER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated at start (written to <data-dir>/self-signed.pem)
    #[arg(long, env = "COFFER_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// Account id in ARNs (KMS keys, principals) [default: 111122223333]
    #[arg(long, env = "COFFER_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// KMS request quotas: "default" (modelled on AWS) or "off"
    #[arg(long, env = "COFFER_KMS_QUOTAS")]
    pub kms_quotas: Option<String>,
    /// Override the shared cryptographic-operations quota (requests/s; 0 = unlimited)
    #[arg(long, env = "COFFER_KMS_QUOTA_CRYPTOGRAPHIC")]
    pub kms_quota_cryptographic: Option<u32>,
    /// Seconds between runs of the KMS scheduler (automatic rotation, key deletion) [default: 60]
    #[arg(long, env = "COFFER_KMS_TASK_INTERVAL")]
    pub kms_task_interval: Option<u64>,
    /// Seconds between sweeps for orphan blob files and abandoned temp files (files untouched for
    /// an hour that no record points to); one also runs at start [default: 3600]
    #[arg(long, env = "COFFER_SWEEP_INTERVAL")]
    pub sweep_interval: Option<u64>,
    /// Start even though the KMS audit log disagrees with its anchor (truncated, emptied,
    /// deleted, rolled back, forged): move the log aside (never deleted), start a new chain whose
    /// first event records what was found. Refused when there is nothing to recover; not read
    /// from the TOML file, so that it cannot stay on by accident
    #[arg(long, env = "COFFER_AUDIT_LOG_RECOVER")]
    pub audit_log_recover: bool,
    /// Testing only: a file holding a number of seconds to add to the KMS clock
    #[arg(long, env = "COFFER_CLOCK_OFFSET_FILE", hide = true)]
    pub clock_offset_file: Option<PathBuf>,
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
    allow_sigv2: Option<bool>,
    access_key: Option<String>,
    secret_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    account_id: Option<String>,
    kms_quotas: Option<String>,
    kms_quota_cryptographic: Option<u32>,
    kms_task_interval: Option<u64>,
    sweep_interval: Option<u64>,
}

/// How the listener speaks.
pub enum TlsSetting {
    /// Plain HTTP.
    Off,
    /// HTTPS with this certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// HTTPS with a certificate generated at start.
    SelfSigned,
}

/// Resolved settings.
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub root_key_file: PathBuf,
    pub allow_insecure_http: bool,
    /// Accept SigV2-signed requests.
    pub allow_sigv2: bool,
    /// Root credentials given by the operator (flags, env or file), if any.
    pub root_credentials: Option<(String, String)>,
    pub tls: TlsSetting,
    pub account_id: Option<String>,
    /// `false` when quotas are off.
    pub kms_quotas_on: bool,
    pub kms_quota_cryptographic: Option<u32>,
    pub kms_task_interval: std::time::Duration,
    pub sweep_interval: std::time::Duration,
    pub clock_offset_file: Option<PathBuf>,
    /// `--audit-log-recover`.
    pub audit_log_recover: bool,
}

/// A secret from the environment variable `env`. Secrets are never taken from a flag: every
/// user of the machine can read a command line (`ps`, /proc/<pid>/cmdline), so a flag that was
/// given is refused with the way to pass it instead.
pub fn env_secret(env: &str, flag: &str, given: Option<&str>) -> anyhow::Result<Option<String>> {
    if given.is_some() {
        anyhow::bail!(
            "{flag} is not accepted: a secret on the command line is visible to every user of \
             this machine (ps). Set the environment variable {env} instead{}",
            if env.starts_with("COFFER_") {
                ", or put it in the --config file (mode 0600)"
            } else {
                ""
            }
        );
    }
    Ok(std::env::var(env).ok().filter(|v| !v.is_empty()))
}

impl Settings {
    pub fn resolve(mut args: ServeArgs) -> anyhow::Result<Settings> {
        if let Some(secret) = env_secret(
            "COFFER_ROOT_SECRET_KEY",
            "--root-secret-key",
            args.secret_key_flag.as_deref(),
        )? {
            args.secret_key.get_or_insert(secret);
        }
        let file: FileSettings = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let file: FileSettings = toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?;
                if file.secret_key.is_some() {
                    check_private_file(path)?;
                }
                file
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
        let tls = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => TlsSetting::Files { cert, key },
            (None, None) if args.tls_self_signed || file.tls_self_signed.unwrap_or(false) => {
                TlsSetting::SelfSigned
            }
            (None, None) => TlsSetting::Off,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let kms_quotas_on = match args.kms_quotas.or(file.kms_quotas).as_deref() {
            None | Some("default") => true,
            Some("off") => false,
            Some(other) => {
                anyhow::bail!("--kms-quotas must be \"default\" or \"off\", not {other:?}")
            }
        };
        Ok(Settings {
            tls,
            account_id: args.account_id.or(file.account_id),
            kms_quotas_on,
            kms_quota_cryptographic: args
                .kms_quota_cryptographic
                .or(file.kms_quota_cryptographic),
            kms_task_interval: std::time::Duration::from_secs(
                args.kms_task_interval
                    .or(file.kms_task_interval)
                    .unwrap_or(60)
                    .max(1),
            ),
            sweep_interval: std::time::Duration::from_secs(
                args.sweep_interval
                    .or(file.sweep_interval)
                    .unwrap_or(3600)
                    .max(1),
            ),
            clock_offset_file: args.clock_offset_file,
            audit_log_recover: args.audit_log_recover,
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
            allow_sigv2: args.allow_sigv2 || file.allow_sigv2.unwrap_or(false),
            data_dir,
            root_key_file,
            root_credentials,
        })
    }
}

/// Refuses a config file that holds a secret and that group or others can read.
fn check_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "config file {} holds secret_key but other users can read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
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
    fn secret_flags_are_refused_with_a_hint() {
        let args = ServeArgs {
            secret_key_flag: Some("hunter2".into()),
            ..Default::default()
        };
        let err = Settings::resolve(args).err().unwrap().to_string();
        assert!(err.contains("COFFER_ROOT_SECRET_KEY"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_config_file_with_a_secret_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("coffer.toml");
        std::fs::write(&cfg, "access_key = \"AK\"\nsecret_key = \"SK\"\n").unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let args = || ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        };
        let err = Settings::resolve(args()).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Settings::resolve(args()).unwrap();
        assert_eq!(s.root_credentials, Some(("AK".into(), "SK".into())));
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
