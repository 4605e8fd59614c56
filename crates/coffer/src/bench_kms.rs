//! `coffer bench-kms`: GenerateDataKey and Decrypt requests/s against a running key service,
//! over real sockets with the lean SigV4 client of [`crate::bench_client`] — so every figure
//! includes SigV4 verification, the policy check and the durable (group-committed) audit write,
//! as issue 4 asks, and as little client CPU as a correct client can spend.
//!
//! Each Decrypt result is compared with the data key GenerateDataKey returned: a benchmark that
//! counts wrong answers is worthless.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::bench::run_clients;
use crate::bench_client::{Client, Signer};
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

/// A base64 field of a KMS response, decoded.
fn bytes_field(doc: &Value, field: &str) -> anyhow::Result<Vec<u8>> {
    let text = doc[field]
        .as_str()
        .with_context(|| format!("the response has no {field}"))?;
    BASE64
        .decode(text)
        .with_context(|| format!("{field} is not base64"))
}

async fn bench(args: BenchKmsArgs) -> anyhow::Result<()> {
    let kms = Arc::new(Client::new(
        &args.endpoint,
        Signer::new(&args.access_key, &args.secret_key, &args.region, "kms"),
    )?);
    let key = kms
        .kms("CreateKey", &json!({"Description": "coffer bench-kms"}))
        .await?;
    let key_id = key["KeyMetadata"]["KeyId"]
        .as_str()
        .context("CreateKey returned no key id")?
        .to_owned();
    let duration = Duration::from_secs(args.seconds);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "coffer bench-kms: {} ({} s per measurement, load average {})",
        args.endpoint,
        args.seconds,
        load.trim()
    );
    println!(
        "client: lean SigV4 over HTTP/1.1 keep-alive, no retries; each request is audited durably before it is answered"
    );

    let generate = Arc::new(json!({
        "KeyId": key_id,
        "KeySpec": "AES_256",
        "EncryptionContext": {"bench": "coffer"},
    }));
    for clients in [1, MANY_CLIENTS] {
        let (k, request) = (kms.clone(), generate.clone());
        let ops = run_clients(clients, duration, move || {
            let (k, request) = (k.clone(), request.clone());
            async move {
                let out = k.kms("GenerateDataKey", &request).await?;
                if bytes_field(&out, "Plaintext")?.len() != 32 {
                    bail!("GenerateDataKey returned no 32-byte data key");
                }
                Ok(())
            }
        })
        .await?;
        report("GenerateDataKey", clients, &ops);
    }

    let dk = kms.kms("GenerateDataKey", &generate).await?;
    let plain = Arc::new(bytes_field(&dk, "Plaintext")?);
    let decrypt = Arc::new(json!({
        "CiphertextBlob": dk["CiphertextBlob"],
        "EncryptionContext": {"bench": "coffer"},
    }));
    for clients in [1, MANY_CLIENTS] {
        let (k, request, p) = (kms.clone(), decrypt.clone(), plain.clone());
        let ops = run_clients(clients, duration, move || {
            let (k, request, p) = (k.clone(), request.clone(), p.clone());
            async move {
                let out = k.kms("Decrypt", &request).await?;
                if bytes_field(&out, "Plaintext")? != *p {
                    bail!("Decrypt returned a different data key");
                }
                Ok(())
            }
        })
        .await?;
        report("Decrypt", clients, &ops);
    }
    kms.kms(
        "ScheduleKeyDeletion",
        &json!({"KeyId": key_id, "PendingWindowInDays": 7}),
    )
    .await?;
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
