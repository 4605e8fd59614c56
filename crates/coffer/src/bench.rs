//! `coffer bench`: measures a running S3 server — Coffer or any other — with one client
//! (the lean SigV4 client of [`crate::bench_client`]: path style, region us-east-1,
//! `UNSIGNED-PAYLOAD`, keep-alive connections, no retries; aws-sdk-s3 only sets up the bucket
//! and cleans up) and, in the same run,
//! the limits of this machine its figures are judged against: loopback TCP, MD5, disk
//! write+fsync, 4 KiB write+fdatasync and AES-256-GCM. It prints one table, with the ratios that
//! issue 3 sets as targets.
//!
//! Every response is checked — ETag, length and every byte read back — and the first error ends
//! the run: a benchmark that measures errors is worthless. The client's memory stays bounded
//! whatever the object size: bodies are generated block by block and GET bodies are compared as
//! they stream, never collected. It must never reach into a server's data directory: it speaks
//! S3, and reads only `/proc/<pid>/status` of the server.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, ensure};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
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

/// Everything one run measured.
struct Measured {
    /// `/proc/loadavg` at the start: other work on the machine skews every figure.
    load: String,
    medium: (Rate, Rate),
    large: (Rate, Rate),
    /// 4 KiB PUTs and GETs at 1 and at `MANY_CLIENTS` clients.
    tiny_puts: [Ops; 2],
    tiny_gets: [Ops; 2],
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

async fn bench(args: &BenchArgs) -> anyhow::Result<String> {
    let plan = Plan::new(args.quick);
    let load = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    let scratch = args.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let rss_before = args.server_pid.map(read_rss).transpose()?;
    let pattern = Pattern::new();
    // Endpoint and credentials are checked before the slow reference measurements.
    let target = Arc::new(Target::connect(args, pattern.clone()).await?);

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

    let medium = target
        .single_stream("medium", MEDIUM_IDS, MEDIUM_SIZE, plan.medium_reps)
        .await?;
    let large = target
        .single_stream("large", LARGE_IDS, plan.large_size, plan.large_reps)
        .await?;
    let written = Arc::new(AtomicU64::new(0));
    let put = |clients: usize| {
        progress(&format!("PUT 4 KiB, {clients} client(s)"));
        let (target, written) = (target.clone(), written.clone());
        run_clients(clients, plan.ops_duration, move || {
            let target = target.clone();
            let index = written.fetch_add(1, Ordering::Relaxed);
            async move { target.put_tiny(index).await }
        })
    };
    let tiny_puts = [put(1).await?, put(MANY_CLIENTS).await?];
    // Every index below `written` was stored: a failed PUT would have ended the run.
    let written = written.load(Ordering::Relaxed);
    ensure!(
        written > 0,
        "no 4 KiB PUT finished in {:?}",
        plan.ops_duration
    );
    let etags: Arc<Vec<String>> = Arc::new(
        (0..written)
            .map(|index| target.pattern.etag(index, TINY_SIZE))
            .collect(),
    );
    let get = |clients: usize| {
        progress(&format!("GET 4 KiB, {clients} client(s)"));
        let (target, etags) = (target.clone(), etags.clone());
        let next = Arc::new(AtomicU64::new(0));
        run_clients(clients, plan.ops_duration, move || {
            let (target, etags) = (target.clone(), etags.clone());
            let index = next.fetch_add(1, Ordering::Relaxed) % written;
            async move { target.get_tiny(index, &etags[index as usize]).await }
        })
    };
    let tiny_gets = [get(1).await?, get(MANY_CLIENTS).await?];
    let rss_after = args.server_pid.map(read_rss).transpose()?;

    progress("deleting the objects of this run");
    target.clean_up(written, &plan).await?;

    let measured = Measured {
        load,
        medium,
        large,
        tiny_puts,
        tiny_gets,
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
    /// The report: the server's figures, this machine's, and the targets of issue 3.
    fn table(&self, args: &BenchArgs, plan: &Plan, scratch: &Path) -> String {
        let mut table = Table::default();
        table.section("server, one client (lean SigV4 HTTP/1.1)");
        for (size, reps, (put, get)) in [
            (MEDIUM_SIZE, plan.medium_reps, &self.medium),
            (plan.large_size, plan.large_reps, &self.large),
        ] {
            let detail = |rate: &Rate| {
                format!(
                    "{reps} object(s) in {:.2} s, ETag and bytes checked",
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
                        "{} ops in {:.1} s, p50 {}, p99 {}",
                        ops.latencies.len(),
                        ops.elapsed.as_secs_f64(),
                        ms(ops.percentile(0.50)),
                        ms(ops.percentile(0.99))
                    ),
                );
            }
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

        table.section("this machine, same run");
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

        table.section("targets (issue 3)");
        let get_share = self.large.1.mb_per_s() / self.tcp.mb_per_s();
        table.target(
            format!("GET {} / loopback TCP", size_label(plan.large_size)),
            format!("{:.1} %", get_share * 100.0),
            "≥ 40 %",
            get_share >= 0.40,
        );
        // The faster MD5 is the stricter reference.
        let md5 = self.md5.mb_per_s().max(self.md5_aws_lc.mb_per_s());
        let put_share = self.large.0.mb_per_s() / md5.min(self.disk.mb_per_s());
        table.target(
            format!(
                "PUT {} / min(faster MD5, disk)",
                size_label(plan.large_size)
            ),
            format!("{:.1} %", put_share * 100.0),
            "≥ 70 %",
            put_share >= 0.70,
        );
        let put_many = self.tiny_puts[1].per_second();
        table.target(
            format!("PUT 4 KiB, {MANY_CLIENTS} clients"),
            format!("{put_many:.0} ops/s"),
            "≥ 3000 ops/s",
            put_many >= 3000.0,
        );
        let get_many = self.tiny_gets[1].per_second();
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
        })
    }

    fn key(&self, kind: &str, index: u64) -> String {
        format!("{}/{kind}/{index:08}", self.prefix)
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
        let pattern = self.pattern.clone();
        let etags: Vec<String> = blocking(move || {
            Ok((0..reps)
                .map(|i| pattern.etag(first_object + i, size))
                .collect())
        })
        .await?;
        let start = Instant::now();
        for (i, etag) in (0..reps).zip(&etags) {
            self.put_stream(&self.key(kind, i), first_object + i, size, etag)
                .await?;
        }
        let put = Rate::since(start, size * reps);
        let start = Instant::now();
        for (i, etag) in (0..reps).zip(&etags) {
            self.get_and_check(&self.key(kind, i), first_object + i, size, etag)
                .await?;
        }
        let get = Rate::since(start, size * reps);
        Ok((put, get))
    }

    fn path(&self, key: &str) -> String {
        format!("/{}/{key}", self.bucket)
    }

    /// PUTs `key` and checks the ETag the server answers with.
    async fn put(&self, key: &str, body: Body, size: u64, etag: &str) -> anyhow::Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
        let answer = self
            .lean
            .s3(Method::PUT, &self.path(key), headers, body, |_| Ok(()))
            .await?;
        let got = answer.headers.get(http::header::ETAG);
        ensure!(
            got.is_some_and(|v| v.as_bytes() == etag.as_bytes()),
            "PutObject {key}: ETag {got:?}, expected {etag}"
        );
        Ok(())
    }

    /// PUTs object `object` with a streamed body, generated one block at a time.
    async fn put_stream(
        &self,
        key: &str,
        object: u64,
        size: u64,
        etag: &str,
    ) -> anyhow::Result<()> {
        let body = PatternBody {
            pattern: self.pattern.clone(),
            object,
            size,
            sent: 0,
        };
        self.put(key, body.boxed(), size, etag).await
    }

    /// GETs `key` and checks its length, ETag and every byte as the body streams in.
    async fn get_and_check(
        &self,
        key: &str,
        object: u64,
        size: u64,
        etag: &str,
    ) -> anyhow::Result<()> {
        let mut offset = 0u64;
        let answer = self
            .lean
            .s3(
                Method::GET,
                &self.path(key),
                HeaderMap::new(),
                crate::bench_client::full(Bytes::new()),
                |chunk| {
                    ensure!(
                        offset + chunk.len() as u64 <= size
                            && self.pattern.matches(object, offset, chunk),
                        "GetObject {key}: the {} bytes at offset {offset} differ from what was written",
                        chunk.len()
                    );
                    offset += chunk.len() as u64;
                    Ok(())
                },
            )
            .await?;
        let length = answer.headers.get(http::header::CONTENT_LENGTH);
        ensure!(
            length.is_some_and(|v| v.as_bytes() == size.to_string().as_bytes()),
            "GetObject {key}: Content-Length {length:?}, expected {size}"
        );
        let got = answer.headers.get(http::header::ETAG);
        ensure!(
            got.is_some_and(|v| v.as_bytes() == etag.as_bytes()),
            "GetObject {key}: ETag {got:?}, expected {etag}"
        );
        ensure!(
            answer.body_len == size,
            "GetObject {key}: the body ended after {} of {size} bytes",
            answer.body_len
        );
        Ok(())
    }

    /// PUTs the 4 KiB object `index` from memory, as small-object clients do.
    async fn put_tiny(&self, index: u64) -> anyhow::Result<()> {
        let key = self.key("tiny", index);
        let body = self.pattern.block(index, 0, TINY_SIZE as usize);
        let etag = etag_of(&body);
        self.put(&key, crate::bench_client::full(body), TINY_SIZE, &etag)
            .await
    }

    async fn get_tiny(&self, index: u64, etag: &str) -> anyhow::Result<()> {
        self.get_and_check(&self.key("tiny", index), index, TINY_SIZE, etag)
            .await
    }

    /// Deletes every object this run wrote, and the bucket if this run created it.
    async fn clean_up(&self, tiny_written: u64, plan: &Plan) -> anyhow::Result<()> {
        let keys: Vec<String> = (0..plan.medium_reps)
            .map(|i| self.key("medium", i))
            .chain((0..plan.large_reps).map(|i| self.key("large", i)))
            .chain((0..tiny_written).map(|i| self.key("tiny", i)))
            .collect();
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObjects", &self.bucket, e))?;
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
}

impl Rate {
    fn since(start: Instant, bytes: u64) -> Rate {
        Rate {
            bytes,
            elapsed: start.elapsed(),
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
}

impl Ops {
    fn new(elapsed: Duration, mut latencies: Vec<Duration>) -> Ops {
        latencies.sort_unstable();
        Ops { elapsed, latencies }
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
    Section(&'static str),
    Row([String; 3]),
}

impl Table {
    fn section(&mut self, title: &'static str) {
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
    fn tiny_objects_are_one_stamped_block() {
        let pattern = Pattern::new();
        let body = pattern.block(42, 0, TINY_SIZE as usize);
        assert_eq!(pattern.etag(42, TINY_SIZE), etag_of(&body));
        assert!(pattern.matches(42, 0, &body));
    }
}
