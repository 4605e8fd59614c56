//! Assembles and runs the server: opens the stores, sweeps what a crash left behind, loads
//! the key ring, binds the listener and serves until Ctrl-C / SIGTERM, letting in-flight
//! requests finish.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use coffer_s3::{Coffer, Credentials, Frontend, FrontendConfig, ServiceKeyRing};
use coffer_store::{BlobStore, MetaStore};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::secrets;

/// How long shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // s3s logs whole requests (headers included) at debug level: never let that through.
        .add_directive("s3s=warn".parse().expect("valid directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
    let (root_key, created) = secrets::load_or_create_root_key(&settings.root_key_file)?;
    if created {
        tracing::warn!(
            path = %settings.root_key_file.display(),
            "created a new root key beside the data: it protects nothing against theft of the whole disk; keep it on another volume (--root-key-file) and back it up — losing it loses all data"
        );
    }
    let (meta, blobs) = open_stores(&settings.data_dir)?;
    let referenced = meta.referenced_blobs()?;
    let removed = blobs.sweep(&referenced, Duration::ZERO)?;
    if removed > 0 {
        tracing::info!(
            removed,
            "startup sweep removed temp files and orphan blobs left by an interrupted run"
        );
    }
    let ring = ServiceKeyRing::load_or_create(&meta, &root_key)?;
    tracing::info!(
        service_key_version = ring.current_version(),
        "SSE-S3 key ring loaded"
    );

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

    let coffer = Coffer::new(meta, blobs, Arc::new(ring), settings.region.clone());
    let frontend = Frontend::new(
        coffer,
        FrontendConfig {
            credentials: Credentials::single(&access, &secret),
            region: settings.region.clone(),
        },
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(frontend, settings))
}

async fn serve(frontend: Frontend, settings: Settings) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "coffer {} listening on http://{addr} (region {}, data in {})",
        env!("CARGO_PKG_VERSION"),
        settings.region,
        settings.data_dir.display()
    );
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let builder = auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), frontend.clone()).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
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
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

pub fn rotate_service_key(data_dir: &Path) -> anyhow::Result<()> {
    let root_key_file = std::env::var_os("COFFER_ROOT_KEY_FILE")
        .map_or_else(|| data_dir.join("root.key"), Into::into);
    if !root_key_file.exists() {
        anyhow::bail!(
            "no root key at {}: is {} a coffer data dir?",
            root_key_file.display(),
            data_dir.display()
        );
    }
    let (root_key, _) = secrets::load_or_create_root_key(&root_key_file)?;
    let (meta, _blobs) = open_stores(data_dir)?;
    let version = ServiceKeyRing::rotate(&meta, &root_key)?;
    println!(
        "SSE-S3 service key rotated: new objects use version {version}; earlier versions stay for reading"
    );
    Ok(())
}
