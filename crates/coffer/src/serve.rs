//! Assembles and runs the server: opens the stores, sweeps what a crash left behind, loads
//! the key ring, the users and the key service, binds the listener (HTTP or HTTPS) and serves
//! until Ctrl-C / SIGTERM, letting in-flight requests finish. Also the offline commands that
//! work on a data dir: `rotate-service-key`, `user`, `audit`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use coffer_kms::throttle::QuotaConfig;
use coffer_kms::{Clock, Kms, KmsConfig, OffsetClock, SystemClock};
use coffer_s3::{
    Coffer, CofferParts, Credentials, Frontend, FrontendConfig, IamFront, KmsClient, KmsFront,
    RecordMac, ServiceKeyRing,
};
use coffer_store::{BlobStore, MetaStore};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::{AuditCommand, Settings, TlsSetting, UserCommand};
use crate::secrets;

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // s3s logs whole requests (headers included) at debug level: never let that through.
        .add_directive("s3s=warn".parse().expect("valid directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// Files no record points to are removed by the periodic sweep only once they are this old: a
/// blob is renamed into place a moment before its record commits, and an upload's temp file is
/// written to as long as the upload lives.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

/// Every `interval`, removes orphan blobs and abandoned temp files older than
/// [`ORPHAN_MIN_AGE`] (DESIGN §5: "a sweep at start and periodically"): blobs whose free failed
/// after a delete, and temp files of uploads whose connection died without an error.
async fn sweep_periodically(meta: Arc<MetaStore>, blobs: Arc<BlobStore>, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        ticker.tick().await;
        let (meta, blobs) = (Arc::clone(&meta), Arc::clone(&blobs));
        let swept = tokio::task::spawn_blocking(move || {
            let referenced = meta.referenced_blobs()?;
            blobs.sweep(&referenced, ORPHAN_MIN_AGE)
        })
        .await;
        match swept {
            Ok(Ok(removed)) if removed > 0 => {
                tracing::info!(
                    removed,
                    "periodic sweep removed orphan blobs and temp files"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "periodic sweep failed; it runs again later"),
            Err(e) => tracing::warn!(error = %e, "periodic sweep task failed"),
        }
    }
}

/// Refuses, before anything is written, to start over a data dir whose data would not survive
/// it: existing data with its root key missing (a new root key opens nothing that exists), or
/// blob files with no metadata database (the startup sweep would remove them all as orphans).
fn refuse_to_regenerate(data_dir: &Path, root_key_file: &Path) -> anyhow::Result<()> {
    let meta = data_dir.join("meta.redb");
    let blobs = data_dir.join(coffer_store::BLOBS_DIR);
    let has_blobs = std::fs::read_dir(&blobs).is_ok_and(|mut fanouts| {
        fanouts.any(|d| {
            d.ok()
                .and_then(|d| std::fs::read_dir(d.path()).ok())
                .is_some_and(|mut files| files.next().is_some())
        })
    });
    if !root_key_file.exists() && (meta.exists() || has_blobs) {
        anyhow::bail!(
            "{} holds data, but its root key {} is missing. Restore the root key from your backup \
             (or point --root-key-file / COFFER_ROOT_KEY_FILE at it) and start again. Coffer does \
             not create a new root key here: it could not open a single existing object or KMS key.",
            data_dir.display(),
            root_key_file.display()
        );
    }
    if !meta.exists() && has_blobs {
        anyhow::bail!(
            "{} holds encrypted blob files, but its metadata database {} is missing. Restore \
             meta.redb from your backup and start again: without it the objects cannot be found \
             or opened, and the startup sweep would remove their blobs as orphans.",
            data_dir.display(),
            meta.display()
        );
    }
    Ok(())
}

fn open_stores(data_dir: &Path) -> anyhow::Result<(Arc<MetaStore>, Arc<BlobStore>)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let meta = MetaStore::open(&data_dir.join("meta.redb")).with_context(|| {
        format!(
            "opening metadata in {} (is another coffer running on it?)",
            data_dir.display()
        )
    })?;
    let blobs = BlobStore::open(data_dir)
        .with_context(|| format!("opening blob store in {}", data_dir.display()))?;
    Ok((Arc::new(meta), Arc::new(blobs)))
}

pub fn run(settings: Settings) -> anyhow::Result<()> {
    init_logging();
    refuse_to_regenerate(&settings.data_dir, &settings.root_key_file)?;
    let (root_key, created) = secrets::load_or_create_root_key(&settings.root_key_file)?;
    if created {
        tracing::warn!(
            path = %settings.root_key_file.display(),
            "created a new root key beside the data: it protects nothing against theft of the whole disk; keep it on another volume (--root-key-file) and back it up — losing it loses all data"
        );
    }
    let (meta, blobs) = open_stores(&settings.data_dir)?;
    // The ring before the sweep: a data dir whose ring is gone is refused untouched.
    let ring = ServiceKeyRing::load_or_create(&meta, &root_key)?;
    tracing::info!(
        service_key_version = ring.current_version(),
        "SSE-S3 key ring loaded"
    );
    let records = RecordMac::derive(&root_key);
    let upgraded = coffer_s3::upgrade_records(&meta, &ring, &root_key, &records)?;
    if upgraded > 0 {
        tracing::info!(
            records = upgraded,
            "upgraded object, upload and part records to format v2 (bound to their object, authenticated)"
        );
    }
    let signed = coffer_s3::sign_bucket_records(&meta, &ring, &root_key, &records)?;
    if signed > 0 {
        tracing::info!(
            buckets = signed,
            "signed bucket records written by an earlier release (bucket record v2)"
        );
    }
    let referenced = meta.referenced_blobs()?;
    let removed = blobs.sweep(&referenced, Duration::ZERO)?;
    if removed > 0 {
        tracing::info!(
            removed,
            "startup sweep removed temp files and orphan blobs left by an interrupted run"
        );
    }

    let (access, secret) = match settings.root_credentials.clone() {
        Some(pair) => pair,
        None => {
            let path = settings.data_dir.join("root-credentials");
            let (pair, generated) = secrets::load_or_create_credentials(&path)?;
            if generated {
                println!(
                    "Generated root credentials (stored in {}, mode 0600; shown only this once):",
                    path.display()
                );
                println!("  AWS_ACCESS_KEY_ID={}", pair.0);
                println!("  AWS_SECRET_ACCESS_KEY={}", pair.1);
            } else {
                println!("Using the root credentials stored in {}", path.display());
            }
            pair
        }
    };
    if settings.allow_insecure_http {
        tracing::warn!(
            "--allow-insecure-http: requests carrying key material will be accepted over plain HTTP; never use this in production"
        );
    }
    if settings.allow_sigv2 {
        tracing::warn!(
            "--allow-sigv2: requests signed with the legacy SigV2 (HMAC-SHA1) are accepted; S3 refuses them on buckets created since June 2020"
        );
    }

    let credentials = Credentials::single(&access, &secret).with_users(&meta, &root_key)?;

    let audit_path = audit_log_path(&settings.data_dir);
    create_private_dir(audit_path.parent().expect("audit log path has a parent"))?;
    let clock: Arc<dyn Clock> = match &settings.clock_offset_file {
        Some(path) => {
            tracing::warn!(path = %path.display(), "KMS clock offset file in use: for tests only");
            Arc::new(OffsetClock::new(path.clone()))
        }
        None => Arc::new(SystemClock),
    };
    let mut kms_config = KmsConfig {
        region: settings.region.clone(),
        ..KmsConfig::default()
    };
    if let Some(account) = &settings.account_id {
        kms_config.account_id = account.clone();
    }
    kms_config.quotas = if settings.kms_quotas_on {
        QuotaConfig::default()
    } else {
        QuotaConfig::unlimited()
    };
    if let Some(rate) = settings.kms_quota_cryptographic {
        kms_config.quotas.cryptographic = rate;
    }
    let account_id = kms_config.account_id.clone();
    let iam = IamFront::new(
        Arc::clone(&meta),
        root_key.clone(),
        credentials.clone(),
        account_id.clone(),
        settings.region.clone(),
        settings.allow_insecure_http,
    );
    let audit = crate::audit_log::open(
        &settings.data_dir,
        &root_key,
        &meta,
        &kms_config,
        Arc::clone(&clock),
        settings.audit_log_recover,
        ring.audit_anchored(),
    )?;
    if !ring.audit_anchored() {
        ring.set_audit_anchored(&meta, &root_key)?;
    }
    let kms = Arc::new(Kms::open(
        Arc::clone(&meta),
        root_key.clone(),
        kms_config,
        clock,
        audit,
    )?);

    let sweeper = (Arc::clone(&meta), Arc::clone(&blobs));
    let coffer = Coffer::new(CofferParts {
        meta,
        blobs,
        ring: Arc::new(ring),
        records: Arc::new(records),
        kms: Some(Arc::clone(&kms) as Arc<dyn KmsClient>),
        region: settings.region.clone(),
        allow_insecure_http: settings.allow_insecure_http,
    });
    let frontend = Frontend::new(
        coffer,
        FrontendConfig {
            credentials,
            region: settings.region.clone(),
            account_id: account_id.clone(),
            kms: Some(KmsFront {
                kms: Arc::clone(&kms),
                region: settings.region.clone(),
                account_id,
                allow_insecure_http: settings.allow_insecure_http,
            }),
            iam: Some(iam),
            allow_sigv2: settings.allow_sigv2,
        },
    );
    let tls = match &settings.tls {
        TlsSetting::Off => None,
        TlsSetting::Files { cert, key } => Some(crate::tls::from_files(cert, key)?),
        TlsSetting::SelfSigned => {
            let (acceptor, pem) = crate::tls::self_signed()?;
            let path = settings.data_dir.join("self-signed.pem");
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "Serving HTTPS with a self-signed certificate (written to {}); clients must trust it",
                path.display()
            );
            Some(acceptor)
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.spawn(sweep_periodically(
        sweeper.0,
        sweeper.1,
        settings.sweep_interval,
    ));
    runtime.block_on(serve(frontend, settings, tls, kms))
}

async fn serve(
    frontend: Frontend,
    settings: Settings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    kms: Arc<Kms>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    // Signal handlers go in before the "listening" line: whoever waits for that line (a test, a
    // supervisor) may send SIGINT at once, and an uninstalled handler would let it kill the process.
    let mut shutdown = std::pin::pin!(shutdown_signal()?);
    println!(
        "coffer {} listening on {}://{addr} (region {}, data in {})",
        env!("CARGO_PKG_VERSION"),
        if tls.is_some() { "https" } else { "http" },
        settings.region,
        settings.data_dir.display()
    );
    let interval = settings.kms_task_interval;
    let kms_at_shutdown = Arc::clone(&kms);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if let Err(e) = kms.run_due_tasks().await {
                tracing::error!(error = %e.message(), "KMS scheduled tasks failed");
            }
        }
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let watcher = graceful.watcher();
                match &tls {
                    None => {
                        let service = frontend.connection(peer, false);
                        let conn = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).into_owned();
                        tokio::spawn(async move {
                            let _ = watcher.watch(conn).await;
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let service = frontend.connection(peer, true);
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).into_owned();
                            let _ = watcher.watch(conn).await;
                        });
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: waiting for in-flight requests");
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    // Refusals counted but not yet summarized in the audit log.
    if let Err(e) = kms_at_shutdown.flush_refusals().await {
        tracing::error!(error = %e.message(), "writing the summary of refused KMS requests failed");
    }
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

pub fn rotate_service_key(data_dir: &Path) -> anyhow::Result<()> {
    let root_key = load_root_key(data_dir)?;
    let (meta, _blobs) = open_stores(data_dir)?;
    let version = ServiceKeyRing::rotate(&meta, &root_key)?;
    println!(
        "SSE-S3 service key rotated: new objects use version {version}; earlier versions stay for reading"
    );
    Ok(())
}

/// Where the KMS audit log lives in a data dir.
pub(crate) fn audit_log_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("audit").join("kms-audit.log")
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

pub(crate) fn load_root_key(data_dir: &Path) -> anyhow::Result<coffer_crypto::Key256> {
    let path = std::env::var_os("COFFER_ROOT_KEY_FILE")
        .map_or_else(|| data_dir.join("root.key"), Into::into);
    if !path.exists() {
        anyhow::bail!(
            "no root key at {}: is {} a coffer data dir?",
            path.display(),
            data_dir.display()
        );
    }
    Ok(secrets::load_or_create_root_key(&path)?.0)
}

/// `coffer user …`: through the IAM endpoint of a running server (`--endpoint`, effective at
/// once), or on the data dir of a stopped one.
pub fn user(cmd: UserCommand) -> anyhow::Result<()> {
    let target = match &cmd {
        UserCommand::Add { target, .. }
        | UserCommand::Remove { target, .. }
        | UserCommand::List { target }
        | UserCommand::PutPolicy { target, .. }
        | UserCommand::GetPolicy { target, .. }
        | UserCommand::DeletePolicy { target, .. } => target,
    };
    match &target.endpoint {
        Some(endpoint) => {
            let access = std::env::var("AWS_ACCESS_KEY_ID")
                .context("set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY) to the root access key, or to a user allowed the iam: actions")?;
            let secret =
                std::env::var("AWS_SECRET_ACCESS_KEY").context("set AWS_SECRET_ACCESS_KEY")?;
            let client = crate::admin_client::AdminClient::new(
                endpoint,
                target.ca_bundle.as_deref(),
                &access,
                &secret,
            )?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(user_online(&client, cmd))
        }
        None => {
            let data_dir = target
                .data_dir
                .clone()
                .unwrap_or_else(|| "./coffer-data".into());
            user_offline(&data_dir, cmd)
        }
    }
}

fn read_policy(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading policy {}", path.display()))
}

fn print_new_user(name: &str, access_key: &str, secret_key: &str) {
    println!("Created user {name} (shown only this once):");
    println!("  AWS_ACCESS_KEY_ID={access_key}");
    println!("  AWS_SECRET_ACCESS_KEY={secret_key}");
}

fn user_offline(data_dir: &Path, cmd: UserCommand) -> anyhow::Result<()> {
    let root_key = load_root_key(data_dir)?;
    let (meta, _blobs) = open_stores(data_dir)?;
    let users = coffer_s3::Users::new(&meta, &root_key);
    let now_ms = time_now_ms();
    match cmd {
        UserCommand::Add {
            name,
            policy_file,
            policy_name,
            ..
        } => {
            let policy = policy_file.as_deref().map(read_policy).transpose()?;
            users.create(&name, now_ms)?;
            let added = (|| {
                if let Some(text) = &policy {
                    users.put_policy(&name, &policy_name, text)?;
                }
                users.create_access_key(&name, now_ms)
            })();
            match added {
                Ok(key) => print_new_user(&name, &key.id, &key.secret),
                Err(e) => {
                    users.delete(&name, true)?;
                    return Err(e.into());
                }
            }
        }
        UserCommand::Remove { name, .. } => {
            users.delete(&name, true)?;
            println!("Removed user {name} with its access keys and policies");
        }
        UserCommand::List { .. } => {
            for user in users.list()? {
                let keys: Vec<&str> = user.access_keys.iter().map(|k| k.id.as_str()).collect();
                let policies: Vec<&str> = user.policies.keys().map(String::as_str).collect();
                println!("{}\t{}\t{}", user.name, keys.join(","), policies.join(","));
            }
        }
        UserCommand::PutPolicy {
            name,
            policy_name,
            file,
            ..
        } => {
            users.put_policy(&name, &policy_name, &read_policy(&file)?)?;
            println!("Policy {policy_name} of user {name} set");
        }
        UserCommand::GetPolicy {
            name, policy_name, ..
        } => {
            let user = users.get(&name)?;
            let text = user
                .policies
                .get(&policy_name)
                .ok_or_else(|| anyhow::anyhow!("user {name} has no policy named {policy_name}"))?;
            println!("{text}");
        }
        UserCommand::DeletePolicy {
            name, policy_name, ..
        } => {
            users.delete_policy(&name, &policy_name)?;
            println!("Policy {policy_name} of user {name} removed");
        }
    }
    Ok(())
}

async fn user_online(
    client: &crate::admin_client::AdminClient,
    cmd: UserCommand,
) -> anyhow::Result<()> {
    use crate::admin_client::{url_decode, xml_values};
    let first = |xml: &str, tag: &str| xml_values(xml, tag).into_iter().next().unwrap_or_default();
    match cmd {
        UserCommand::Add {
            name,
            policy_file,
            policy_name,
            ..
        } => {
            let policy = policy_file.as_deref().map(read_policy).transpose()?;
            client.iam("CreateUser", &[("UserName", &name)]).await?;
            let added = async {
                if let Some(text) = &policy {
                    client
                        .iam(
                            "PutUserPolicy",
                            &[
                                ("UserName", &name),
                                ("PolicyName", &policy_name),
                                ("PolicyDocument", text),
                            ],
                        )
                        .await?;
                }
                client.iam("CreateAccessKey", &[("UserName", &name)]).await
            }
            .await;
            match added {
                Ok(xml) => print_new_user(
                    &name,
                    &first(&xml, "AccessKeyId"),
                    &first(&xml, "SecretAccessKey"),
                ),
                Err(e) => {
                    let _ = remove_online(client, &name).await;
                    return Err(e);
                }
            }
        }
        UserCommand::Remove { name, .. } => {
            remove_online(client, &name).await?;
            println!("Removed user {name} with its access keys and policies");
        }
        UserCommand::List { .. } => {
            let mut marker = None::<String>;
            loop {
                let mut params = vec![("MaxItems", "1000")];
                if let Some(m) = &marker {
                    params.push(("Marker", m));
                }
                let xml = client.iam("ListUsers", &params).await?;
                for name in xml_values(&xml, "UserName") {
                    let keys = client.iam("ListAccessKeys", &[("UserName", &name)]).await?;
                    let policies = client
                        .iam("ListUserPolicies", &[("UserName", &name)])
                        .await?;
                    println!(
                        "{name}\t{}\t{}",
                        xml_values(&keys, "AccessKeyId").join(","),
                        xml_values(&policies, "member").join(",")
                    );
                }
                match xml_values(&xml, "Marker").into_iter().next() {
                    Some(next) if first(&xml, "IsTruncated") == "true" => marker = Some(next),
                    _ => break,
                }
            }
        }
        UserCommand::PutPolicy {
            name,
            policy_name,
            file,
            ..
        } => {
            let text = read_policy(&file)?;
            client
                .iam(
                    "PutUserPolicy",
                    &[
                        ("UserName", &name),
                        ("PolicyName", &policy_name),
                        ("PolicyDocument", &text),
                    ],
                )
                .await?;
            println!("Policy {policy_name} of user {name} set");
        }
        UserCommand::GetPolicy {
            name, policy_name, ..
        } => {
            let xml = client
                .iam(
                    "GetUserPolicy",
                    &[("UserName", &name), ("PolicyName", &policy_name)],
                )
                .await?;
            println!("{}", url_decode(&first(&xml, "PolicyDocument")));
        }
        UserCommand::DeletePolicy {
            name, policy_name, ..
        } => {
            client
                .iam(
                    "DeleteUserPolicy",
                    &[("UserName", &name), ("PolicyName", &policy_name)],
                )
                .await?;
            println!("Policy {policy_name} of user {name} removed");
        }
    }
    Ok(())
}

/// IAM's DeleteUser refuses a user with keys or policies: remove those first.
async fn remove_online(
    client: &crate::admin_client::AdminClient,
    name: &str,
) -> anyhow::Result<()> {
    use crate::admin_client::xml_values;
    let keys = client.iam("ListAccessKeys", &[("UserName", name)]).await?;
    for key in xml_values(&keys, "AccessKeyId") {
        client
            .iam(
                "DeleteAccessKey",
                &[("UserName", name), ("AccessKeyId", &key)],
            )
            .await?;
    }
    let policies = client
        .iam("ListUserPolicies", &[("UserName", name)])
        .await?;
    for policy in xml_values(&policies, "member") {
        client
            .iam(
                "DeleteUserPolicy",
                &[("UserName", name), ("PolicyName", &policy)],
            )
            .await?;
    }
    client.iam("DeleteUser", &[("UserName", name)]).await?;
    Ok(())
}

fn time_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify { dir, chain_only } => {
            crate::audit_log::verify(&dir.data_dir, chain_only)
        }
        AuditCommand::Tail { dir, key_id, lines } => {
            let path = audit_log_path(&dir.data_dir);
            for event in coffer_kms::audit::read_events(&path, key_id.as_deref(), lines)? {
                println!("{event}");
            }
            Ok(())
        }
    }
}
