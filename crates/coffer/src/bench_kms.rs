//! `coffer bench-kms`: GenerateDataKey and Decrypt requests/s against a running key service,
//! with aws-sdk-kms over real sockets — so every figure includes SigV4 verification, the policy
//! check and the durable (group-committed) audit write, as issue 4 asks.
//!
//! Each Decrypt result is compared with the data key GenerateDataKey returned: a benchmark that
//! counts wrong answers is worthless.

use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use crate::bench::run_clients;
use crate::config::BenchKmsArgs;

/// Concurrent clients of the "many" measurement (issue 4's figure).
const MANY_CLIENTS: usize = 64;

pub fn run(args: BenchKmsArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(bench(args))
}

async fn bench(args: BenchKmsArgs) -> anyhow::Result<()> {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(args.region.clone()))
        .endpoint_url(&args.endpoint)
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "coffer-bench",
        ))
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    let kms = aws_sdk_kms::Client::from_conf(config);
    let key = kms
        .create_key()
        .description("coffer bench-kms")
        .send()
        .await
        .context("CreateKey")?;
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .context("CreateKey returned no key id")?;
    let duration = Duration::from_secs(args.seconds);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "coffer bench-kms: {} ({} s per measurement, load average {})",
        args.endpoint,
        args.seconds,
        load.trim()
    );
    println!(
        "client: aws-sdk-kms, SigV4, no retries; each request is audited durably before it is answered"
    );

    for clients in [1, MANY_CLIENTS] {
        let (k, id) = (kms.clone(), key_id.clone());
        let ops = run_clients(clients, duration, move || {
            let (k, id) = (k.clone(), id.clone());
            async move {
                let out = k
                    .generate_data_key()
                    .key_id(id)
                    .key_spec(DataKeySpec::Aes256)
                    .encryption_context("bench", "coffer")
                    .send()
                    .await
                    .context("GenerateDataKey")?;
                if out.plaintext().map(|p| p.as_ref().len()) != Some(32) {
                    bail!("GenerateDataKey returned no 32-byte data key");
                }
                Ok(())
            }
        })
        .await?;
        report("GenerateDataKey", clients, &ops);
    }

    let dk = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("bench", "coffer")
        .send()
        .await
        .context("GenerateDataKey")?;
    let blob = dk.ciphertext_blob().context("no ciphertext")?.clone();
    let plain = dk.plaintext().context("no plaintext")?.clone();
    for clients in [1, MANY_CLIENTS] {
        let (k, b, p) = (kms.clone(), blob.clone(), plain.clone());
        let ops = run_clients(clients, duration, move || {
            let (k, b, p): (_, Blob, Blob) = (k.clone(), b.clone(), p.clone());
            async move {
                let out = k
                    .decrypt()
                    .ciphertext_blob(b)
                    .encryption_context("bench", "coffer")
                    .send()
                    .await
                    .context("Decrypt")?;
                if out.plaintext() != Some(&p) {
                    bail!("Decrypt returned a different data key");
                }
                Ok(())
            }
        })
        .await?;
        report("Decrypt", clients, &ops);
    }
    kms.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .context("ScheduleKeyDeletion")?;
    Ok(())
}

fn report(op: &str, clients: usize, ops: &crate::bench::Ops) {
    println!(
        "  {op:<16} {clients:>2} client(s) {:>9.0} req/s   p50 {:.3} ms, p99 {:.3} ms",
        ops.per_second(),
        ops.percentile(0.5).as_secs_f64() * 1e3,
        ops.percentile(0.99).as_secs_f64() * 1e3,
    );
}
