//! `coffer bench`: measures a running S3 server — Coffer or any other — with one client
//! (the lean SigV4 client of [`crate::bench_client`]: path style, region us-east-1,
//! `UNSIGNED-PAYLOAD`, keep-alive connections, no retries; aws-sdk-s3 only sets up the bucket
//! and cleans up) and, in the same run,
//! the limits of this machine its figures are judged against: loopback TCP, MD5, disk
//! write+fsync, 4 KiB write+fdatasync and AES-256-GCM. It prints one table, with the ratios that
//! issue 3 sets as targets.
//!
//! `--sse` runs the server workloads once per encryption mode (the server's default, SSE-S3,
//! SSE-KMS, SSE-KMS with a Bucket Key, DSSE-KMS, SSE-C), counts the KMS calls each made from the
//! server's `/-/metrics`, and judges the KMS modes against SSE-S3 as issue 8 asks and SSE-C as
//! issue 9 asks. The SSE-C mode's key is random, made for the run, and never printed.
//!
//! Every response is checked — ETag, length and every byte read back — and the first error ends
//! the run: a benchmark that measures errors is worthless. The client's memory stays bounded
//! whatever the object size: bodies are generated block by block and GET bodies are compared as
//! they stream, never collected. It must never reach into a server's data directory: it speaks
//! S3, and reads only `/proc/<pid>/status` of the server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, ensure};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{
    BlockedEncryptionTypes, Delete, EncryptionType, ObjectIdentifier, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coffer_crypto::{Key256, SEALED_SEGMENT_SIZE, SEGMENT_SIZE, SegmentCipher, random_array};
use http::{HeaderMap, HeaderValue, Method};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use md5::{Digest as _, Md5};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::bench_client::Body;
use crate::config::BenchArgs;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// Region the client signs for; every server this is pointed at must accept it.
const REGION: &str = "us-east-1";
/// Size of the small-object workloads.
const TINY_SIZE: u64 = 4 * KIB;
/// Size of the medium single-stream objects, repeated for a stable figure.
const MEDIUM_SIZE: u64 = MIB;
/// Concurrent clients of the "many clients" small-object workloads.
const MANY_CLIENTS: usize = 32;
/// Unit of generated object data, of loopback and disk writes.
const BLOCK: usize = MIB as usize;
/// Size of the buffer MD5 runs over.
const MD5_BUFFER: usize = 64 * MIB as usize;
/// Keys per DeleteObjects request, the S3 maximum.
const DELETE_BATCH: usize = 1000;

/// Runs the benchmark and prints its table on stdout (progress goes to stderr).
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let table = runtime.block_on(bench(&args))?;
    print!("{table}");
    Ok(())
}

/// How much work each measurement does; `--quick` shrinks all of it to a few seconds in total.
struct Plan {
    quick: bool,
    medium_reps: u64,
    large_size: u64,
    large_reps: u64,
    ops_duration: Duration,
    tcp_bytes: u64,
    md5_passes: u64,
    disk_bytes: u64,
    sync_writes: usize,
    aes_bytes: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                medium_reps: 8,
                large_size: 16 * MIB,
                large_reps: 1,
                ops_duration: Duration::from_secs(1),
                tcp_bytes: 256 * MIB,
                md5_passes: 1,
                disk_bytes: 32 * MIB,
                sync_writes: 20,
                aes_bytes: 256 * MIB,
            }
        } else {
            Plan {
                quick,
                medium_reps: 64,
                large_size: 256 * MIB,
                large_reps: 4,
                ops_duration: Duration::from_secs(5),
                tcp_bytes: 4096 * MIB,
                md5_passes: 4,
                disk_bytes: 256 * MIB,
                sync_writes: 200,
                aes_bytes: 4096 * MIB,
            }
        }
    }
}

/// Object ids (stamped into their data): a 4 KiB object's id is its index; the single-stream
/// objects count up from these, far above any index.
const MEDIUM_IDS: u64 = 1 << 40;
const LARGE_IDS: u64 = 2 << 40;

/// How the benchmark's PUTs ask to be encrypted (`--sse`): each mode runs the same workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SseMode {
    /// No encryption headers: whatever the server does by default (SSE-S3 on Coffer); the only
    /// mode that works against servers without encryption.
    Default,
    /// `x-amz-server-side-encryption: AES256`.
    SseS3,
    /// `aws:kms`, one KMS data key per object.
    SseKms,
    /// `aws:kms` with `x-amz-server-side-encryption-bucket-key-enabled: true`.
    SseKmsBucketKey,
    /// `aws:kms:dsse`: two layers under two data keys.
    DsseKms,
    /// SSE-C: one random customer key per run, its three headers on every PUT and GET (the
    /// bucket must allow SSE-C; one the run creates is opened with `BlockedEncryptionTypes`
    /// `NONE`).
    SseC,
}

impl SseMode {
    fn label(self) -> &'static str {
        match self {
            SseMode::Default => "default",
            SseMode::SseS3 => "sse-s3",
            SseMode::SseKms => "sse-kms",
            SseMode::SseKmsBucketKey => "sse-kms-bucket-key",
            SseMode::DsseKms => "dsse-kms",
            SseMode::SseC => "sse-c",
        }
    }

    /// The `x-amz-server-side-encryption` value sent and expected back; `None` for the
    /// server's default, which is not checked (it differs between servers), and for SSE-C,
    /// whose answers carry none.
    fn algorithm(self) -> Option<&'static str> {
        match self {
            SseMode::Default | SseMode::SseC => None,
            SseMode::SseS3 => Some("AES256"),
            SseMode::SseKms | SseMode::SseKmsBucketKey => Some("aws:kms"),
            SseMode::DsseKms => Some("aws:kms:dsse"),
        }
    }

    fn uses_kms(self) -> bool {
        matches!(
            self,
            SseMode::SseKms | SseMode::SseKmsBucketKey | SseMode::DsseKms
        )
    }

    /// The request headers of a PUT in this mode.
    fn put_headers(self, kms_key_id: Option<&str>) -> anyhow::Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        if let Some(algorithm) = self.algorithm() {
            headers.insert(SSE_HEADER, HeaderValue::from_static(algorithm));
        }
        if let Some(key_id) = kms_key_id.filter(|_| self.uses_kms()) {
            headers.insert(
                "x-amz-server-side-encryption-aws-kms-key-id",
                HeaderValue::from_str(key_id).context("--sse-kms-key-id is not a header value")?,
            );
        }
        if self == SseMode::SseKmsBucketKey {
            headers.insert(BUCKET_KEY_HEADER, HeaderValue::from_static("true"));
        }
        Ok(headers)
    }

    /// Checks the encryption headers of a PUT or GET response (SSE-C's own headers are checked
    /// by [`CustomerKey::check_response`]).
    fn check_response(self, what: &str, headers: &HeaderMap) -> anyhow::Result<()> {
        if let Some(algorithm) = self.algorithm() {
            let got = headers.get(SSE_HEADER);
            ensure!(
                got.is_some_and(|v| v.as_bytes() == algorithm.as_bytes()),
                "{what}: {SSE_HEADER} {got:?}, expected {algorithm}"
            );
        }
        if self == SseMode::SseC {
            let got = headers.get(SSE_HEADER);
            ensure!(
                got.is_none(),
                "{what}: {SSE_HEADER} {got:?} on an SSE-C answer, expected none"
            );
        }
        if self == SseMode::SseKmsBucketKey {
            let got = headers.get(BUCKET_KEY_HEADER);
            ensure!(
                got.is_some_and(|v| v.as_bytes() == b"true"),
                "{what}: {BUCKET_KEY_HEADER} {got:?}, expected true"
            );
        }
        Ok(())
    }

    /// Whether the ETag of a single-part upload is the MD5 of its data (S3: not so for the KMS
    /// modes and SSE-C).
    fn etag_is_md5(self) -> bool {
        !self.uses_kms() && self != SseMode::SseC
    }
}

/// The SSE-C key of a run: made at random when the run starts, sent as the three
/// `x-amz-server-side-encryption-customer-*` headers, never printed (the key's header value is
/// marked sensitive, so even `Debug` of a request's headers hides it).
struct CustomerKey {
    key: HeaderValue,
    /// Base64 of the key's MD5, which answers must echo.
    md5: HeaderValue,
}

const CUSTOMER_ALGORITHM_HEADER: &str = "x-amz-server-side-encryption-customer-algorithm";
const CUSTOMER_KEY_HEADER: &str = "x-amz-server-side-encryption-customer-key";
const CUSTOMER_KEY_MD5_HEADER: &str = "x-amz-server-side-encryption-customer-key-md5";

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(<redacted>)")
    }
}

impl CustomerKey {
    fn generate() -> anyhow::Result<CustomerKey> {
        let key = Key256::generate()?;
        let text = zeroize::Zeroizing::new(B64.encode(key.expose_secret()));
        let mut key_header = HeaderValue::from_str(&text).context("base64 is a header value")?;
        key_header.set_sensitive(true);
        let md5 = B64.encode(coffer_crypto::Md5::digest(key.expose_secret()));
        Ok(CustomerKey {
            key: key_header,
            md5: HeaderValue::from_str(&md5).context("base64 is a header value")?,
        })
    }

    /// Adds the three SSE-C headers to a request's.
    fn add_to(&self, headers: &mut HeaderMap) {
        headers.insert(
            CUSTOMER_ALGORITHM_HEADER,
            HeaderValue::from_static(CUSTOMER_ALGORITHM),
        );
        headers.insert(CUSTOMER_KEY_HEADER, self.key.clone());
        headers.insert(CUSTOMER_KEY_MD5_HEADER, self.md5.clone());
    }

    /// Checks that an answer names SSE-C and this key's MD5, as S3's do.
    fn check_response(&self, what: &str, headers: &HeaderMap) -> anyhow::Result<()> {
        let algorithm = headers.get(CUSTOMER_ALGORITHM_HEADER);
        ensure!(
            algorithm.is_some_and(|v| v.as_bytes() == CUSTOMER_ALGORITHM.as_bytes()),
            "{what}: {CUSTOMER_ALGORITHM_HEADER} {algorithm:?}, expected {CUSTOMER_ALGORITHM}"
        );
        let md5 = headers.get(CUSTOMER_KEY_MD5_HEADER);
        ensure!(
            md5 == Some(&self.md5),
            "{what}: {CUSTOMER_KEY_MD5_HEADER} {md5:?}, expected {:?} (the run's key)",
            self.md5
        );
        Ok(())
    }
}

const CUSTOMER_ALGORITHM: &str = "AES256";

const SSE_HEADER: &str = "x-amz-server-side-encryption";
const BUCKET_KEY_HEADER: &str = "x-amz-server-side-encryption-bucket-key-enabled";

/// Everything one run measured.
struct Measured {
    /// `/proc/loadavg` at the start: other work on the machine skews every figure.
    load: String,
    /// The server's figures, one set per `--sse` mode, in the order given.
    modes: Vec<ModeFigures>,
    rss_before: Option<Rss>,
    rss_after: Option<Rss>,
    tcp: Rate,
    /// MD5 with the md-5 crate, and with aws-lc's assembly (the one the server uses).
    md5: Rate,
    md5_aws_lc: Rate,
    disk: Rate,
    sync: Ops,
    aes: Rate,
}

/// The server's figures in one encryption mode.
struct ModeFigures {
    mode: SseMode,
    medium: (Rate, Rate),
    large: (Rate, Rate),
    /// 4 KiB PUTs and GETs at 1 and at `MANY_CLIENTS` clients.
    tiny_puts: [Ops; 2],
    tiny_gets: [Ops; 2],
    /// KMS calls the server made during these workloads (from its `/-/metrics`; `None` when it
    /// has none), and how many object PUTs and GETs they served.
    kms_calls: Option<u64>,
    object_requests: u64,
}

impl ModeFigures {
    /// KMS calls per 1,000 object PUTs and GETs.
    fn kms_calls_per_1000(&self) -> Option<f64> {
        self.kms_calls
            .map(|calls| calls as f64 * 1000.0 / self.object_requests.max(1) as f64)
    }
}

async fn bench(args: &BenchArgs) -> anyhow::Result<String> {
    let plan = Plan::new(args.quick);
    let load = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    let scratch = args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let rss_before = args.server_pid.map(read_rss).transpose()?;
    let pattern = Pattern::new();
    let mut modes: Vec<SseMode> = Vec::new();
    for mode in &args.sse {
        if !modes.contains(mode) {
            modes.push(*mode);
        }
    }
    ensure!(!modes.is_empty(), "--sse names no encryption mode");
    // Endpoint and credentials are checked before the slow reference measurements.
    let target = Arc::new(Target::connect(args, pattern.clone()).await?);
    let customer_key = if modes.contains(&SseMode::SseC) {
        target.allow_sse_c().await?;
        Some(Arc::new(CustomerKey::generate()?))
    } else {
        None
    };

    progress("reference: loopback TCP");
    let tcp = loopback_tcp(plan.tcp_bytes).await?;
    progress("reference: MD5");
    let md5 = blocking({
        let pattern = pattern.clone();
        move || Ok(md5_throughput(&pattern, plan.md5_passes))
    })
    .await?;
    let md5_aws_lc = blocking({
        let pattern = pattern.clone();
        move || Ok(md5_aws_lc_throughput(&pattern, plan.md5_passes))
    })
    .await?;
    progress("reference: disk write + fsync");
    let disk = blocking({
        let (dir, pattern) = (scratch.clone(), pattern.clone());
        move || disk_write_fsync(&dir, &pattern, plan.disk_bytes)
    })
    .await?;
    progress("reference: 4 KiB write + fdatasync");
    let sync = blocking({
        let dir = scratch.clone();
        move || sync_write_latency(&dir, plan.sync_writes)
    })
    .await?;
    progress("reference: AES-256-GCM");
    let aes = blocking(move || aes_throughput(plan.aes_bytes)).await?;

    let mut figures = Vec::new();
    for mode in modes {
        let workload = Arc::new(Workload {
            target: target.clone(),
            mode,
            kms_key_id: args.sse_kms_key_id.clone(),
            customer_key: customer_key.clone().filter(|_| mode == SseMode::SseC),
            etags: Mutex::new(HashMap::new()),
        });
        figures.push(workload.measure(&plan).await?);
    }
    let rss_after = args.server_pid.map(read_rss).transpose()?;
    target.delete_bucket_if_created().await?;

    let measured = Measured {
        load,
        modes: figures,
        rss_before,
        rss_after,
        tcp,
        md5,
        md5_aws_lc,
        disk,
        sync,
        aes,
    };
    Ok(measured.table(args, &plan, &scratch))
}

impl Measured {
    /// The report: the server's figures in each mode, this machine's, the targets of issue 3
    /// (on the first mode) and, with several modes, the targets of issue 8 against SSE-S3.
    fn table(&self, args: &BenchArgs, plan: &Plan, scratch: &Path) -> String {
        let mut table = Table::default();
        for figures in &self.modes {
            figures.rows(&mut table, plan);
        }
        table.row(
            "server RSS, peak (VmHWM)".to_owned(),
            self.rss_after.map_or("-".to_owned(), |r| mib(r.hwm)),
            match (self.rss_before, self.rss_after) {
                (Some(before), Some(after)) => format!(
                    "VmRSS {} before, {} after; VmHWM {} before",
                    mib(before.rss),
                    mib(after.rss),
                    mib(before.hwm)
                ),
                _ => "not sampled: no --server-pid".to_owned(),
            },
        );

        table.section("this machine, same run".to_owned());
        table.row(
            "loopback TCP, 1 stream".to_owned(),
            mb_s(self.tcp.mb_per_s()),
            format!(
                "{} in {:.2} s, tokio, 1 MiB writes",
                size_label(self.tcp.bytes),
                self.tcp.elapsed.as_secs_f64()
            ),
        );
        for (rate, which) in [
            (&self.md5, "md-5 crate"),
            (&self.md5_aws_lc, "aws-lc assembly, as the server"),
        ] {
            table.row(
                "MD5, 1 core".to_owned(),
                mb_s(rate.mb_per_s()),
                format!(
                    "{which}, {} x {}",
                    plan.md5_passes,
                    size_label(MD5_BUFFER as u64)
                ),
            );
        }
        let fs = filesystem_of(scratch).unwrap_or_else(|| "unknown fs".to_owned());
        table.row(
            "disk write + fsync".to_owned(),
            mb_s(self.disk.mb_per_s()),
            format!(
                "{} in {}, {fs}",
                size_label(self.disk.bytes),
                scratch.display()
            ),
        );
        table.row(
            "4 KiB write + fdatasync".to_owned(),
            ms(self.sync.mean()),
            format!(
                "mean of {} appends, p99 {}",
                self.sync.latencies.len(),
                ms(self.sync.percentile(0.99))
            ),
        );
        table.row(
            "AES-256-GCM, 1 core".to_owned(),
            mb_s(self.aes.mb_per_s()),
            format!(
                "SegmentCipher::seal_segment, 64 KiB segments, {}",
                size_label(self.aes.bytes)
            ),
        );

        self.issue_3_targets(&mut table, plan);
        self.encryption_targets(&mut table, plan);
        self.customer_key_targets(&mut table, plan);

        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let title = format!(
            "coffer bench: {} (bucket {}), {} run, {cpus} CPUs, load average {} at start\n\
             client: lean SigV4 over HTTP/1.1 keep-alive (see bench_client.rs), path style, \
             {REGION}, UNSIGNED-PAYLOAD, no retries; MB = 10^6 bytes\n",
            args.endpoint,
            args.bucket,
            if plan.quick { "quick" } else { "full" },
            self.load,
        );
        table.render(&title)
    }

    /// Issue 3's targets, judged on the first mode's figures.
    fn issue_3_targets(&self, table: &mut Table, plan: &Plan) {
        let first = &self.modes[0];
        table.section(format!("targets (issue 3), {}", first.mode.label()));
        let get_share = first.large.1.mb_per_s() / self.tcp.mb_per_s();
        table.target(
            format!("GET {} / loopback TCP", size_label(plan.large_size)),
            format!("{:.1} %", get_share * 100.0),
            "≥ 40 %",
            get_share >= 0.40,
        );
        // The faster MD5 is the stricter reference.
        let md5 = self.md5.mb_per_s().max(self.md5_aws_lc.mb_per_s());
        let put_share = first.large.0.mb_per_s() / md5.min(self.disk.mb_per_s());
        table.target(
            format!(
                "PUT {} / min(faster MD5, disk)",
                size_label(plan.large_size)
            ),
            format!("{:.1} %", put_share * 100.0),
            "≥ 70 %",
            put_share >= 0.70,
        );
        let put_many = first.tiny_puts[1].per_second();
        table.target(
            format!("PUT 4 KiB, {MANY_CLIENTS} clients"),
            format!("{put_many:.0} ops/s"),
            "≥ 3000 ops/s",
            put_many >= 3000.0,
        );
        let get_many = first.tiny_gets[1].per_second();
        table.target(
            format!("GET 4 KiB, {MANY_CLIENTS} clients"),
            format!("{get_many:.0} ops/s"),
            "≥ 8000 ops/s",
            get_many >= 8000.0,
        );
        if let Some(after) = self.rss_after {
            table.target(
                "server peak RSS".to_owned(),
                mib(after.hwm),
                "< 256 MiB",
                after.hwm < 256 * MIB,
            );
        }
    }

    /// The SSE-S3 figures of this run, which the other modes are judged against: `sse-s3`,
    /// else `default`.
    fn sse_s3_figures(&self) -> Option<&ModeFigures> {
        [SseMode::SseS3, SseMode::Default]
            .iter()
            .find_map(|mode| self.modes.iter().find(|f| f.mode == *mode))
    }

    /// Issue 8's targets: each KMS mode against the SSE-S3 figures of the same run. Skipped
    /// unless the run has both.
    fn encryption_targets(&self, table: &mut Table, plan: &Plan) {
        let Some(base) = self.sse_s3_figures() else {
            return;
        };
        let kms_modes: Vec<&ModeFigures> =
            self.modes.iter().filter(|f| f.mode.uses_kms()).collect();
        if kms_modes.is_empty() {
            return;
        }
        table.section(format!(
            "targets (issue 8), each as a share of {} in this run",
            base.mode.label()
        ));
        let large = size_label(plan.large_size);
        for figures in kms_modes {
            let label = figures.mode.label();
            let small = match figures.mode {
                SseMode::SseKmsBucketKey => Some(("≥ 90 %", 0.90)),
                SseMode::SseKms => Some(("≥ 60 %", 0.60)),
                _ => None,
            };
            if let Some((text, share)) = small {
                for (verb, ours, theirs) in [
                    ("PUT", &figures.tiny_puts[1], &base.tiny_puts[1]),
                    ("GET", &figures.tiny_gets[1], &base.tiny_gets[1]),
                ] {
                    let ratio = ours.per_second() / theirs.per_second();
                    table.target(
                        format!("{label}: {verb} 4 KiB, {MANY_CLIENTS} clients"),
                        format!("{:.1} %", ratio * 100.0),
                        text,
                        ratio >= share,
                    );
                }
            }
            for (verb, ours, theirs) in [
                ("PUT", &figures.large.0, &base.large.0),
                ("GET", &figures.large.1, &base.large.1),
            ] {
                let (text, share) = match (figures.mode, verb) {
                    (SseMode::DsseKms, "PUT") => ("≥ 70 %", 0.70),
                    (SseMode::DsseKms, _) => continue,
                    _ => ("≥ 90 % (within 10 %)", 0.90),
                };
                let ratio = ours.mb_per_s() / theirs.mb_per_s();
                table.target(
                    format!("{label}: {verb} {large}, 1 stream"),
                    format!("{:.1} %", ratio * 100.0),
                    text,
                    ratio >= share,
                );
            }
        }
    }

    /// Issue 9's targets: SSE-C within 10 % of SSE-S3 in the same run, for large objects and
    /// for small ones at many clients, and no KMS call at all. Skipped unless the run has both.
    fn customer_key_targets(&self, table: &mut Table, plan: &Plan) {
        let (Some(base), Some(sse_c)) = (
            self.sse_s3_figures(),
            self.modes.iter().find(|f| f.mode == SseMode::SseC),
        ) else {
            return;
        };
        table.section(format!(
            "targets (issue 9), sse-c as a share of {} in this run",
            base.mode.label()
        ));
        let large = size_label(plan.large_size);
        let rates = [
            (
                format!("PUT {large}, 1 stream"),
                sse_c.large.0.mb_per_s(),
                base.large.0.mb_per_s(),
            ),
            (
                format!("GET {large}, 1 stream"),
                sse_c.large.1.mb_per_s(),
                base.large.1.mb_per_s(),
            ),
            (
                format!("PUT 4 KiB, {MANY_CLIENTS} clients"),
                sse_c.tiny_puts[1].per_second(),
                base.tiny_puts[1].per_second(),
            ),
            (
                format!("GET 4 KiB, {MANY_CLIENTS} clients"),
                sse_c.tiny_gets[1].per_second(),
                base.tiny_gets[1].per_second(),
            ),
        ];
        for (what, ours, theirs) in rates {
            let ratio = ours / theirs;
            table.target(
                format!("sse-c: {what}"),
                format!("{:.1} %", ratio * 100.0),
                "≥ 90 % (within 10 %)",
                ratio >= 0.90,
            );
        }
        // The server's CPU time per request or MiB: what SSE-C itself costs, far less moved by
        // other work on the machine than the throughputs above.
        let per_mib = |rate: &Rate| {
            rate.server_cpu
                .map(|cpu| cpu.as_secs_f64() * 1e3 / (rate.bytes as f64 / MIB as f64))
        };
        let per_op = |ops: &Ops| ops.server_cpu_per_op().map(|d| d.as_secs_f64() * 1e6);
        let cpu = [
            (
                format!("PUT {large}"),
                per_mib(&sse_c.large.0),
                per_mib(&base.large.0),
                "ms/MiB",
            ),
            (
                format!("GET {large}"),
                per_mib(&sse_c.large.1),
                per_mib(&base.large.1),
                "ms/MiB",
            ),
            (
                format!("PUT 4 KiB, {MANY_CLIENTS} clients"),
                per_op(&sse_c.tiny_puts[1]),
                per_op(&base.tiny_puts[1]),
                "µs/op",
            ),
            (
                format!("GET 4 KiB, {MANY_CLIENTS} clients"),
                per_op(&sse_c.tiny_gets[1]),
                per_op(&base.tiny_gets[1]),
                "µs/op",
            ),
        ];
        for (what, ours, theirs, unit) in cpu {
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                table.row(
                    format!("sse-c: server CPU, {what}"),
                    format!("{:.1} %", ours / theirs * 100.0),
                    format!(
                        "{ours:.2} {unit} against {theirs:.2} {unit} (not a target: what SSE-C \
                         costs the server, whatever else runs)"
                    ),
                );
            }
        }
        if let Some(calls) = sse_c.kms_calls {
            table.target(
                "sse-c: KMS calls".to_owned(),
                calls.to_string(),
                "0 (SSE-C needs no KMS)",
                calls == 0,
            );
        }
    }
}

impl ModeFigures {
    /// This mode's section of the table.
    fn rows(&self, table: &mut Table, plan: &Plan) {
        table.section(format!(
            "server, --sse {}, one client (lean SigV4 HTTP/1.1)",
            self.mode.label()
        ));
        for (size, reps, (put, get)) in [
            (MEDIUM_SIZE, plan.medium_reps, &self.medium),
            (plan.large_size, plan.large_reps, &self.large),
        ] {
            let detail = |rate: &Rate| {
                let cpu = rate.server_cpu.map_or(String::new(), |cpu| {
                    format!(
                        ", server CPU {:.2} ms/MiB",
                        cpu.as_secs_f64() * 1e3 / (rate.bytes as f64 / MIB as f64)
                    )
                });
                format!(
                    "{reps} object(s) in {:.2} s, ETag and bytes checked{cpu}",
                    rate.elapsed.as_secs_f64()
                )
            };
            for (verb, rate) in [("PUT", put), ("GET", get)] {
                table.row(
                    format!("{verb} {}, 1 stream", size_label(size)),
                    mb_s(rate.mb_per_s()),
                    detail(rate),
                );
            }
        }
        for (verb, runs) in [("PUT", &self.tiny_puts), ("GET", &self.tiny_gets)] {
            for (clients, ops) in [1, MANY_CLIENTS].into_iter().zip(runs) {
                table.row(
                    format!("{verb} 4 KiB, {clients} client(s)"),
                    format!("{:.0} ops/s", ops.per_second()),
                    format!(
                        "{} ops in {:.1} s, p50 {}, p99 {}{}",
                        ops.latencies.len(),
                        ops.elapsed.as_secs_f64(),
                        ms(ops.percentile(0.50)),
                        ms(ops.percentile(0.99)),
                        ops.server_cpu_per_op().map_or(String::new(), |cpu| format!(
                            ", server CPU {:.0} µs/op",
                            cpu.as_secs_f64() * 1e6
                        ))
                    ),
                );
            }
        }
        table.row(
            "KMS calls per 1,000 objects".to_owned(),
            self.kms_calls_per_1000()
                .map_or("-".to_owned(), |per| format!("{per:.1}")),
            match self.kms_calls {
                Some(calls) => format!(
                    "{calls} GenerateDataKey + Decrypt calls for {} object PUTs and GETs \
                     (server /-/metrics)",
                    self.object_requests
                ),
                None => "not counted: the server has no coffer /-/metrics".to_owned(),
            },
        );
    }
}

/// The server under test: one client, the bucket, and this run's key prefix.
struct Target {
    /// Setup and clean-up (bucket, batch deletes).
    client: Client,
    /// The measured requests.
    lean: crate::bench_client::Client,
    bucket: String,
    /// Keys of this run start with it, so a run never reads what an earlier run wrote.
    prefix: String,
    /// Whether this run created the bucket, and so deletes it at the end.
    created_bucket: bool,
    pattern: Pattern,
    /// The server's process (`--server-pid`), whose CPU time each workload reports.
    server_pid: Option<u32>,
}

impl Target {
    async fn connect(args: &BenchArgs, pattern: Pattern) -> anyhow::Result<Target> {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&args.endpoint)
            .credentials_provider(Credentials::new(
                &args.access_key,
                &args.secret_key,
                None,
                None,
                "coffer-bench",
            ))
            .force_path_style(true)
            // A retry would hide a failing request inside a slow one.
            .retry_config(RetryConfig::disabled())
            .build();
        let client = Client::from_conf(config);
        let lean = crate::bench_client::Client::new(
            &args.endpoint,
            crate::bench_client::Signer::new(&args.access_key, &args.secret_key, REGION, "s3"),
        )?;
        let bucket = args.bucket.clone();
        let created_bucket = match client.create_bucket().bucket(&bucket).send().await {
            Ok(_) => true,
            Err(err)
                if err.as_service_error().is_some_and(|e| {
                    e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
                }) =>
            {
                client
                    .head_bucket()
                    .bucket(&bucket)
                    .send()
                    .await
                    .map_err(|e| s3_error("HeadBucket", &bucket, e))?;
                false
            }
            Err(err) => return Err(s3_error("CreateBucket", &bucket, err)),
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Target {
            client,
            lean,
            bucket,
            prefix: format!("coffer-bench-{nanos:x}"),
            created_bucket,
            pattern,
            server_pid: args.server_pid,
        })
    }

    /// The server's count of KMS calls made for S3 requests (Coffer's `/-/metrics`), or `None`
    /// when it has no such count (another server).
    async fn kms_calls(&self) -> Option<u64> {
        let mut text = Vec::new();
        self.lean
            .s3(
                Method::GET,
                "/-/metrics",
                HeaderMap::new(),
                crate::bench_client::full(Bytes::new()),
                |chunk| {
                    text.extend_from_slice(chunk);
                    Ok(())
                },
            )
            .await
            .ok()?;
        let text = String::from_utf8(text).ok()?;
        let counts: Vec<u64> = text
            .lines()
            .filter(|line| line.starts_with("coffer_kms_service_calls_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
            .collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// The server's CPU time so far, if `--server-pid` names it.
    fn server_cpu(&self) -> Option<Duration> {
        self.server_pid.and_then(read_cpu)
    }

    /// The server's CPU time since `before` (a [`Target::server_cpu`] reading).
    fn server_cpu_since(&self, before: Option<Duration>) -> Option<Duration> {
        Some(self.server_cpu()?.saturating_sub(before?))
    }

    /// Makes sure SSE-C writes are allowed in the bucket: a bucket this run created (which
    /// blocks SSE-C, as every new bucket does) is opened with `BlockedEncryptionTypes` `NONE`,
    /// keeping SSE-S3 as its default; a bucket that was there is left as its owner set it, and
    /// the run stops if it blocks SSE-C.
    async fn allow_sse_c(&self) -> anyhow::Result<()> {
        let bucket = &self.bucket;
        if !self.created_bucket {
            // A server without GetBucketEncryption (or without the field) is left to answer the
            // SSE-C PUTs itself.
            let Ok(config) = self
                .client
                .get_bucket_encryption()
                .bucket(bucket)
                .send()
                .await
            else {
                return Ok(());
            };
            let blocked = config
                .server_side_encryption_configuration()
                .into_iter()
                .flat_map(|c| c.rules())
                .filter_map(|rule| rule.blocked_encryption_types())
                .any(|types| types.encryption_type().contains(&EncryptionType::SseC));
            ensure!(
                !blocked,
                "--sse sse-c: the bucket {bucket} blocks SSE-C (its BlockedEncryptionTypes is \
                 SSE-C); allow it with put-bucket-encryption and BlockedEncryptionTypes NONE, or \
                 name a bucket that does not exist yet, which the run creates and opens"
            );
            return Ok(());
        }
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build()?,
            )
            .blocked_encryption_types(
                BlockedEncryptionTypes::builder()
                    .encryption_type(EncryptionType::None)
                    .build(),
            )
            .build();
        self.client
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()?,
            )
            .send()
            .await
            .map_err(|e| {
                s3_error(
                    "PutBucketEncryption (BlockedEncryptionTypes NONE)",
                    bucket,
                    e,
                )
            })?;
        Ok(())
    }

    /// Deletes the bucket if this run created it.
    async fn delete_bucket_if_created(&self) -> anyhow::Result<()> {
        if self.created_bucket {
            self.client
                .delete_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(|e| s3_error("DeleteBucket", &self.bucket, e))?;
        }
        Ok(())
    }
}

/// The workloads of one encryption mode: its objects live under their own prefix, and are
/// deleted when the mode's measurements end.
struct Workload {
    target: Arc<Target>,
    mode: SseMode,
    kms_key_id: Option<String>,
    /// The run's SSE-C key, in the SSE-C mode only.
    customer_key: Option<Arc<CustomerKey>>,
    /// The ETag each PUT answered with, by object id: what its GETs must answer.
    etags: Mutex<HashMap<u64, String>>,
}

impl Workload {
    /// Runs every server workload in this mode, then deletes what it wrote.
    async fn measure(self: &Arc<Self>, plan: &Plan) -> anyhow::Result<ModeFigures> {
        progress(&format!("--sse {}", self.mode.label()));
        let kms_calls_before = self.target.kms_calls().await;
        let medium = self
            .single_stream("medium", MEDIUM_IDS, MEDIUM_SIZE, plan.medium_reps)
            .await?;
        let large = self
            .single_stream("large", LARGE_IDS, plan.large_size, plan.large_reps)
            .await?;
        let written = Arc::new(AtomicU64::new(0));
        let put = |clients: usize| {
            progress(&format!("PUT 4 KiB, {clients} client(s)"));
            let (workload, written) = (self.clone(), written.clone());
            self.with_server_cpu(run_clients(clients, plan.ops_duration, move || {
                let workload = workload.clone();
                let index = written.fetch_add(1, Ordering::Relaxed);
                async move { workload.put_tiny(index).await }
            }))
        };
        let tiny_puts = [put(1).await?, put(MANY_CLIENTS).await?];
        // Every index below `written` was stored: a failed PUT would have ended the run.
        let written = written.load(Ordering::Relaxed);
        ensure!(
            written > 0,
            "no 4 KiB PUT finished in {:?}",
            plan.ops_duration
        );
        let get = |clients: usize| {
            progress(&format!("GET 4 KiB, {clients} client(s)"));
            let workload = self.clone();
            let next = Arc::new(AtomicU64::new(0));
            self.with_server_cpu(run_clients(clients, plan.ops_duration, move || {
                let workload = workload.clone();
                let index = next.fetch_add(1, Ordering::Relaxed) % written;
                async move { workload.get_tiny(index).await }
            }))
        };
        let tiny_gets = [get(1).await?, get(MANY_CLIENTS).await?];
        let kms_calls = match (kms_calls_before, self.target.kms_calls().await) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        };
        let reads = tiny_gets.iter().map(|ops| ops.latencies.len() as u64);
        let object_requests =
            2 * (plan.medium_reps + plan.large_reps) + written + reads.sum::<u64>();

        progress("deleting the objects of this mode");
        self.clean_up(written, plan).await?;
        Ok(ModeFigures {
            mode: self.mode,
            medium,
            large,
            tiny_puts,
            tiny_gets,
            kms_calls,
            object_requests,
        })
    }

    /// Runs a workload of many operations and adds the server's CPU time it took.
    async fn with_server_cpu(
        &self,
        workload: impl Future<Output = anyhow::Result<Ops>>,
    ) -> anyhow::Result<Ops> {
        let before = self.target.server_cpu();
        let mut ops = workload.await?;
        ops.server_cpu = self.target.server_cpu_since(before);
        Ok(ops)
    }

    fn key(&self, kind: &str, index: u64) -> String {
        format!(
            "{}/{}/{kind}/{index:08}",
            self.target.prefix,
            self.mode.label()
        )
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{key}", self.target.bucket)
    }

    /// PUTs `reps` objects of `size` bytes one after another, then GETs them back the same way;
    /// the throughput of each. Object ids start at `first_object`.
    async fn single_stream(
        &self,
        kind: &str,
        first_object: u64,
        size: u64,
        reps: u64,
    ) -> anyhow::Result<(Rate, Rate)> {
        progress(&format!("PUT/GET {} x {reps}", size_label(size)));
        // The MD5s are worked out before the clock starts.
        let md5_etags: Vec<Option<String>> = if self.mode.etag_is_md5() {
            let pattern = self.target.pattern.clone();
            blocking(move || {
                Ok((0..reps)
                    .map(|i| Some(pattern.etag(first_object + i, size)))
                    .collect())
            })
            .await?
        } else {
            vec![None; reps as usize]
        };
        let cpu = self.target.server_cpu();
        let start = Instant::now();
        for (i, md5_etag) in (0..reps).zip(&md5_etags) {
            let body = PatternBody {
                pattern: self.target.pattern.clone(),
                object: first_object + i,
                size,
                sent: 0,
            };
            self.put(
                &self.key(kind, i),
                first_object + i,
                body.boxed(),
                size,
                md5_etag.as_deref(),
            )
            .await?;
        }
        let mut put = Rate::since(start, size * reps);
        put.server_cpu = self.target.server_cpu_since(cpu);
        let cpu = self.target.server_cpu();
        let start = Instant::now();
        for i in 0..reps {
            self.get_and_check(&self.key(kind, i), first_object + i, size)
                .await?;
        }
        let mut get = Rate::since(start, size * reps);
        get.server_cpu = self.target.server_cpu_since(cpu);
        Ok((put, get))
    }

    /// PUTs object `object` as `key` and checks the answer: the encryption headers of the mode,
    /// and the ETag — the data's MD5 (`md5_etag`) where S3 promises it, else a quoted 32-digit
    /// hex, remembered for the GETs.
    async fn put(
        &self,
        key: &str,
        object: u64,
        body: Body,
        size: u64,
        md5_etag: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut headers = self.mode.put_headers(self.kms_key_id.as_deref())?;
        if let Some(customer_key) = &self.customer_key {
            customer_key.add_to(&mut headers);
        }
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
        let answer = self
            .target
            .lean
            .s3(Method::PUT, &self.path(key), headers, body, |_| Ok(()))
            .await?;
        let what = format!("PutObject {key}");
        self.check_encryption(&what, &answer.headers)?;
        let got = answer
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok());
        let etag = match (got, md5_etag) {
            (Some(got), Some(expected)) if got == expected => got,
            (Some(got), None) if is_quoted_hex_32(got) => got,
            _ => anyhow::bail!(
                "{what}: ETag {got:?}, expected {}",
                md5_etag.unwrap_or("a quoted 32-digit hex")
            ),
        };
        self.etags
            .lock()
            .expect("etag table lock")
            .insert(object, etag.to_owned());
        Ok(())
    }

    /// GETs `key` and checks its length, ETag (the one its PUT answered), encryption headers and
    /// every byte as the body streams in.
    async fn get_and_check(&self, key: &str, object: u64, size: u64) -> anyhow::Result<()> {
        let pattern = &self.target.pattern;
        let mut offset = 0u64;
        let mut headers = HeaderMap::new();
        if let Some(customer_key) = &self.customer_key {
            customer_key.add_to(&mut headers);
        }
        let answer = self
            .target
            .lean
            .s3(
                Method::GET,
                &self.path(key),
                headers,
                crate::bench_client::full(Bytes::new()),
                |chunk| {
                    ensure!(
                        offset + chunk.len() as u64 <= size && pattern.matches(object, offset, chunk),
                        "GetObject {key}: the {} bytes at offset {offset} differ from what was written",
                        chunk.len()
                    );
                    offset += chunk.len() as u64;
                    Ok(())
                },
            )
            .await?;
        let what = format!("GetObject {key}");
        let length = answer.headers.get(http::header::CONTENT_LENGTH);
        ensure!(
            length.is_some_and(|v| v.as_bytes() == size.to_string().as_bytes()),
            "{what}: Content-Length {length:?}, expected {size}"
        );
        let got = answer.headers.get(http::header::ETAG);
        let expected = self
            .etags
            .lock()
            .expect("etag table lock")
            .get(&object)
            .cloned();
        ensure!(
            got.is_some_and(|v| Some(v.as_bytes()) == expected.as_deref().map(str::as_bytes)),
            "{what}: ETag {got:?}, expected {expected:?} (its PUT's)"
        );
        self.check_encryption(&what, &answer.headers)?;
        ensure!(
            answer.body_len == size,
            "{what}: the body ended after {} of {size} bytes",
            answer.body_len
        );
        Ok(())
    }

    /// Checks the encryption headers of a PUT or GET answer in this mode.
    fn check_encryption(&self, what: &str, headers: &HeaderMap) -> anyhow::Result<()> {
        self.mode.check_response(what, headers)?;
        if let Some(customer_key) = &self.customer_key {
            customer_key.check_response(what, headers)?;
        }
        Ok(())
    }

    /// PUTs the 4 KiB object `index` from memory, as small-object clients do.
    async fn put_tiny(&self, index: u64) -> anyhow::Result<()> {
        let key = self.key("tiny", index);
        let body = self.target.pattern.block(index, 0, TINY_SIZE as usize);
        let md5_etag = self.mode.etag_is_md5().then(|| etag_of(&body));
        self.put(
            &key,
            index,
            crate::bench_client::full(body),
            TINY_SIZE,
            md5_etag.as_deref(),
        )
        .await
    }

    async fn get_tiny(&self, index: u64) -> anyhow::Result<()> {
        self.get_and_check(&self.key("tiny", index), index, TINY_SIZE)
            .await
    }

    /// Deletes every object this mode wrote.
    async fn clean_up(&self, tiny_written: u64, plan: &Plan) -> anyhow::Result<()> {
        let keys: Vec<String> = (0..plan.medium_reps)
            .map(|i| self.key("medium", i))
            .chain((0..plan.large_reps).map(|i| self.key("large", i)))
            .chain((0..tiny_written).map(|i| self.key("tiny", i)))
            .collect();
        let (client, bucket) = (&self.target.client, &self.target.bucket);
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()?;
            let out = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObjects", bucket, e))?;
            if let Some(failed) = out.errors().first() {
                return Err(anyhow!(
                    "DeleteObjects: {} of {} keys not deleted, first {:?}: {:?}",
                    out.errors().len(),
                    batch.len(),
                    failed.key(),
                    failed.message()
                ));
            }
        }
        Ok(())
    }
}

/// Whether `etag` is `"` + 32 hex digits + `"`, the shape of every single-part ETag.
fn is_quoted_hex_32(etag: &str) -> bool {
    etag.len() == 34
        && etag.starts_with('"')
        && etag.ends_with('"')
        && etag[1..33].bytes().all(|b| b.is_ascii_hexdigit())
}

/// An SDK error with its whole chain of causes (the SDK's `Display` says only "service error").
fn s3_error<E>(operation: &str, name: &str, err: E) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    anyhow!("{operation} {name}: {}", DisplayErrorContext(&err))
}

/// Runs `op` in a loop on each of `clients` tasks until `duration` has passed; the first error
/// ends the run.
pub(crate) async fn run_clients<F, Fut>(
    clients: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Ops>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let op = op.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                op().await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.context("a benchmark client task panicked")??);
    }
    Ok(Ops::new(start.elapsed(), latencies))
}

/// Deterministic object contents: one pseudo-random 1 MiB base block, with the first 16 bytes
/// of every block replaced by (object id, block index), so that bytes from another object or
/// another offset fail the check. Cheap to clone.
#[derive(Clone)]
struct Pattern {
    base: Bytes,
}

/// Bytes at the start of every block that name the object and the block.
const STAMP_LEN: usize = 16;

impl Pattern {
    fn new() -> Pattern {
        // xorshift64: fast, and enough to make the data look like data.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut base = Vec::with_capacity(BLOCK);
        while base.len() < BLOCK {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            base.extend_from_slice(&state.to_le_bytes());
        }
        Pattern {
            base: Bytes::from(base),
        }
    }

    fn stamp(object: u64, index: u64) -> [u8; STAMP_LEN] {
        let mut stamp = [0u8; STAMP_LEN];
        stamp[..8].copy_from_slice(&object.to_le_bytes());
        stamp[8..].copy_from_slice(&index.to_le_bytes());
        stamp
    }

    /// The pieces of block `index` of `object`, `len` (≤ 1 MiB) bytes long: stamp, then base.
    fn pieces(&self, object: u64, index: u64, len: usize) -> ([u8; STAMP_LEN], usize, &[u8]) {
        let stamped = len.min(STAMP_LEN);
        (
            Self::stamp(object, index),
            stamped,
            &self.base[stamped..len],
        )
    }

    /// Block `index` of `object`, `len` (≤ 1 MiB) bytes long, in a fresh buffer.
    fn block(&self, object: u64, index: u64, len: usize) -> Bytes {
        let (stamp, stamped, rest) = self.pieces(object, index, len);
        let mut block = Vec::with_capacity(len);
        block.extend_from_slice(&stamp[..stamped]);
        block.extend_from_slice(rest);
        Bytes::from(block)
    }

    /// The S3 ETag of a single-part upload of `object` (`size` bytes): the quoted hex MD5.
    fn etag(&self, object: u64, size: u64) -> String {
        let mut md5 = Md5::new();
        for index in 0..size.div_ceil(BLOCK as u64) {
            let len = (size - index * BLOCK as u64).min(BLOCK as u64) as usize;
            let (stamp, stamped, rest) = self.pieces(object, index, len);
            md5.update(&stamp[..stamped]);
            md5.update(rest);
        }
        format!("\"{}\"", hex::encode(md5.finalize()))
    }

    /// Whether `chunk`, read at `offset` of `object`, holds the bytes written there.
    fn matches(&self, object: u64, offset: u64, chunk: &[u8]) -> bool {
        let mut offset = offset;
        let mut rest = chunk;
        while !rest.is_empty() {
            let index = offset / BLOCK as u64;
            let within = (offset % BLOCK as u64) as usize;
            let (piece, tail) = rest.split_at(rest.len().min(BLOCK - within));
            let stamped = STAMP_LEN.saturating_sub(within).min(piece.len());
            let stamp = Self::stamp(object, index);
            if stamped > 0 && piece[..stamped] != stamp[within..within + stamped] {
                return false;
            }
            if piece[stamped..] != self.base[within + stamped..within + piece.len()] {
                return false;
            }
            offset += piece.len() as u64;
            rest = tail;
        }
        true
    }
}

/// The quoted hex MD5 of `data`, as S3 returns it for a single-part upload.
fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

/// A request body that generates `object` block by block, so a large PUT holds one block.
struct PatternBody {
    pattern: Pattern,
    object: u64,
    size: u64,
    sent: u64,
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent == self.size {
            return Poll::Ready(None);
        }
        let index = self.sent / BLOCK as u64;
        let len = (self.size - self.sent).min(BLOCK as u64) as usize;
        let block = self.pattern.block(self.object, index, len);
        self.sent += len as u64;
        Poll::Ready(Some(Ok(Frame::data(block))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.size
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size - self.sent)
    }
}

/// Loopback TCP through tokio: one connection, 1 MiB writes, counted by the reader.
async fn loopback_tcp(total: u64) -> anyhow::Result<Rate> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await?;
        let buf = vec![0x5a_u8; BLOCK];
        let mut left = total;
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            stream.write_all(&buf[..n]).await?;
            left -= n as u64;
        }
        stream.shutdown().await
    });
    let (mut stream, _) = listener.accept().await?;
    let mut buf = vec![0_u8; BLOCK];
    let mut received = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    writer.await.context("the loopback writer panicked")??;
    ensure!(
        received == total,
        "loopback TCP: received {received} of {total} bytes"
    );
    Ok(Rate::since(start, total))
}

/// MD5 (md-5 crate) over a 64 MiB buffer, `passes` times, on this thread.
fn md5_throughput(pattern: &Pattern, passes: u64) -> Rate {
    let buf = pattern.base.repeat(MD5_BUFFER / BLOCK);
    let start = Instant::now();
    for _ in 0..passes {
        std::hint::black_box(Md5::digest(std::hint::black_box(&buf)));
    }
    Rate::since(start, passes * MD5_BUFFER as u64)
}

fn md5_aws_lc_throughput(pattern: &Pattern, passes: u64) -> Rate {
    let buf = pattern.base.repeat(MD5_BUFFER / BLOCK);
    let start = Instant::now();
    for _ in 0..passes {
        std::hint::black_box(coffer_crypto::Md5::digest(std::hint::black_box(&buf)));
    }
    Rate::since(start, passes * MD5_BUFFER as u64)
}

/// Writes `total` bytes to a fresh file in `dir` in 1 MiB writes, then fsyncs it.
fn disk_write_fsync(dir: &Path, pattern: &Pattern, total: u64) -> anyhow::Result<Rate> {
    let mut file = tempfile::tempfile_in(dir)
        .with_context(|| format!("creating a scratch file in {}", dir.display()))?;
    let start = Instant::now();
    let mut left = total;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        file.write_all(&pattern.base[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(Rate::since(start, total))
}

/// Latency of appending 4 KiB to a file in `dir` and fdatasync-ing it, `count` times.
fn sync_write_latency(dir: &Path, count: usize) -> anyhow::Result<Ops> {
    let mut file = tempfile::tempfile_in(dir)
        .with_context(|| format!("creating a scratch file in {}", dir.display()))?;
    let block = [0xa5_u8; TINY_SIZE as usize];
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        latencies.push(started.elapsed());
    }
    Ok(Ops::new(start.elapsed(), latencies))
}

/// Sealing 64 KiB segments in place with the cipher every object goes through.
fn aes_throughput(total: u64) -> anyhow::Result<Rate> {
    let cipher = SegmentCipher::new(&Key256::generate()?, random_array()?, b"coffer-bench")?;
    let mut buf = Vec::with_capacity(SEALED_SEGMENT_SIZE);
    buf.resize(SEGMENT_SIZE, 0x5a);
    let segments = u32::try_from(total / SEGMENT_SIZE as u64)?;
    let start = Instant::now();
    for index in 0..segments {
        cipher.seal_segment(index, false, &mut buf)?;
        buf.truncate(SEGMENT_SIZE);
    }
    Ok(Rate::since(
        start,
        u64::from(segments) * SEGMENT_SIZE as u64,
    ))
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy)]
struct Rss {
    /// VmRSS: resident now.
    rss: u64,
    /// VmHWM: the most it was ever resident.
    hwm: u64,
}

fn read_rss(pid: u32) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| {
        format!("reading {path}: --server-pid must name a running process on this machine")
    })?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * KIB)
            .with_context(|| format!("{path} has no {name} line in kB"))
    };
    Ok(Rss {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture it exposes to user space.
const USER_HZ: u64 = 100;

/// CPU time (user + system, all threads) a process has used so far, from `/proc/<pid>/stat`:
/// unlike throughput, it hardly moves with what else the machine runs. `None` if unreadable.
fn read_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: state is field 3,
    // utime 14 and stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// The type of the filesystem holding `path` (longest mount point that contains it), so a
/// reader can tell a real disk from tmpfs.
fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), format!("{fs} on {device}")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
}

/// Runs blocking work (hashing, disk, cipher) off the async worker threads.
async fn blocking<T, F>(work: F) -> anyhow::Result<T>
where
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .context("a benchmark thread panicked")?
}

fn progress(step: &str) {
    eprintln!("coffer bench: {step}");
}

/// Bytes moved in some time.
#[derive(Clone, Copy)]
struct Rate {
    bytes: u64,
    elapsed: Duration,
    /// CPU time the server spent meanwhile (with `--server-pid`; not for the references).
    server_cpu: Option<Duration>,
}

impl Rate {
    fn since(start: Instant, bytes: u64) -> Rate {
        Rate {
            bytes,
            elapsed: start.elapsed(),
            server_cpu: None,
        }
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Operations done in some time, with the latency of each (sorted).
pub(crate) struct Ops {
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// CPU time the server spent meanwhile (with `--server-pid`; not for the references).
    server_cpu: Option<Duration>,
}

impl Ops {
    fn new(elapsed: Duration, mut latencies: Vec<Duration>) -> Ops {
        latencies.sort_unstable();
        Ops {
            elapsed,
            latencies,
            server_cpu: None,
        }
    }

    /// The server's CPU time per operation.
    fn server_cpu_per_op(&self) -> Option<Duration> {
        let ops = u32::try_from(self.latencies.len())
            .ok()
            .filter(|n| *n > 0)?;
        Some(self.server_cpu? / ops)
    }

    pub(crate) fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn mean(&self) -> Duration {
        let total: Duration = self.latencies.iter().sum();
        total / u32::try_from(self.latencies.len().max(1)).unwrap_or(u32::MAX)
    }

    pub(crate) fn percentile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let at = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[at]
    }
}

fn size_label(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

fn mb_s(value: f64) -> String {
    format!("{value:.1} MB/s")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The printed table: sections of (workload, result, detail) rows, columns aligned.
#[derive(Default)]
struct Table {
    rows: Vec<Line>,
}

enum Line {
    Section(String),
    Row([String; 3]),
}

impl Table {
    fn section(&mut self, title: String) {
        self.rows.push(Line::Section(title));
    }

    fn row(&mut self, workload: String, result: String, detail: String) {
        self.rows.push(Line::Row([workload, result, detail]));
    }

    fn target(&mut self, what: String, value: String, target: &str, met: bool) {
        let verdict = if met { "met" } else { "NOT MET" };
        self.row(what, value, format!("target {target}: {verdict}"));
    }

    fn render(&self, title: &str) -> String {
        let mut widths = [0usize; 2];
        for line in &self.rows {
            if let Line::Row(cells) = line {
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::from(title);
        for line in &self.rows {
            match line {
                Line::Section(title) => {
                    let _ = write!(out, "\n{title}\n");
                }
                Line::Row([workload, result, detail]) => {
                    let _ = writeln!(
                        out,
                        "  {workload:<w0$}  {result:>w1$}  {detail}",
                        w0 = widths[0],
                        w1 = widths[1]
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_what_it_generates_and_nothing_else() {
        let pattern = Pattern::new();
        let size = 2 * MIB + 100;
        let mut body = Vec::new();
        for index in 0..size.div_ceil(BLOCK as u64) {
            let len = (size - index * BLOCK as u64).min(BLOCK as u64) as usize;
            body.extend_from_slice(&pattern.block(7, index, len));
        }
        assert_eq!(pattern.etag(7, size), etag_of(&body));
        // Chunks of odd sizes, crossing block boundaries and stamps.
        let mut offset = 0;
        for chunk in body.chunks(BLOCK - 5) {
            assert!(pattern.matches(7, offset, chunk));
            offset += chunk.len() as u64;
        }
        assert!(
            !pattern.matches(8, 0, &body[..32]),
            "another object's stamp"
        );
        assert!(
            !pattern.matches(7, MIB, &body[..32]),
            "block 0 read as block 1"
        );
        let mut flipped = body[MIB as usize - 8..MIB as usize + 8].to_vec();
        flipped[3] ^= 1;
        assert!(!pattern.matches(7, MIB - 8, &flipped), "a flipped bit");
    }

    #[test]
    fn a_customer_key_is_sent_whole_checked_in_answers_and_never_printed() {
        let key = CustomerKey::generate().unwrap();
        let mut request = HeaderMap::new();
        key.add_to(&mut request);
        let text = request[CUSTOMER_KEY_HEADER].to_str().unwrap().to_owned();
        let raw = B64.decode(&text).unwrap();
        assert_eq!(raw.len(), 32);
        assert_eq!(
            request[CUSTOMER_KEY_MD5_HEADER].to_str().unwrap(),
            B64.encode(coffer_crypto::Md5::digest(&raw))
        );
        assert_eq!(request[CUSTOMER_ALGORITHM_HEADER], "AES256");
        assert!(!format!("{key:?} {request:?}").contains(&text));
        assert_ne!(
            CustomerKey::generate().unwrap().md5,
            key.md5,
            "a fresh key per run"
        );

        // An answer must echo the algorithm and this key's MD5, and carry no SSE-S3/KMS header.
        let mut answer = HeaderMap::new();
        answer.insert(
            CUSTOMER_ALGORITHM_HEADER,
            HeaderValue::from_static("AES256"),
        );
        answer.insert(CUSTOMER_KEY_MD5_HEADER, key.md5.clone());
        key.check_response("GetObject k", &answer).unwrap();
        SseMode::SseC
            .check_response("GetObject k", &answer)
            .unwrap();
        let mut other = answer.clone();
        other.insert(
            CUSTOMER_KEY_MD5_HEADER,
            CustomerKey::generate().unwrap().md5,
        );
        assert!(key.check_response("GetObject k", &other).is_err());
        let mut none = answer.clone();
        none.remove(CUSTOMER_ALGORITHM_HEADER);
        assert!(key.check_response("GetObject k", &none).is_err());
        let mut sse_s3 = answer;
        sse_s3.insert(SSE_HEADER, HeaderValue::from_static("AES256"));
        assert!(
            SseMode::SseC
                .check_response("GetObject k", &sse_s3)
                .is_err()
        );
        assert!(!SseMode::SseC.etag_is_md5());
    }

    #[test]
    fn the_cpu_time_of_a_process_is_read_and_grows() {
        let pid = std::process::id();
        let before = read_cpu(pid).unwrap();
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(read_cpu(pid).unwrap() > before);
        assert!(read_cpu(u32::MAX).is_none(), "no such process");
    }

    #[test]
    fn tiny_objects_are_one_stamped_block() {
        let pattern = Pattern::new();
        let body = pattern.block(42, 0, TINY_SIZE as usize);
        assert_eq!(pattern.etag(42, TINY_SIZE), etag_of(&body));
        assert!(pattern.matches(42, 0, &body));
    }
}
