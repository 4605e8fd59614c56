//! Seal and open throughput of one core for both kinds of sealed stream, single-layer (aws-lc) and
//! dual-layer DSSE (aws-lc inner, RustCrypto outer), the way the pipelines drive them: 64 KiB
//! segments sealed in place, 16 to a batch buffer. The outer layer's own rate is derived from the
//! two (time per byte of dual minus single). It measures only; it never writes anything.
//!
//! `cargo run --release -p coffer-crypto --example stream_throughput [seconds per figure]`

use std::time::{Duration, Instant};

use coffer_crypto::{Key256, SEGMENT_SIZE, StreamCipher, random_array};

const BATCH_SEGMENTS: usize = 16;

/// Seals batches of full segments for about `budget`; returns plaintext bytes per second.
fn seal_rate(cipher: &StreamCipher, budget: Duration) -> f64 {
    let size = cipher.kind().sealed_segment_size();
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_SEGMENTS * size);
    let mut bytes = 0u64;
    let mut index = 0u32;
    let start = Instant::now();
    while start.elapsed() < budget {
        buf.clear();
        for _ in 0..BATCH_SEGMENTS {
            let from = buf.len();
            buf.resize(from + SEGMENT_SIZE, 0x5a);
            cipher
                .seal_tail(index, false, &mut buf, from)
                .expect("a full segment seals");
            index = index.wrapping_add(1);
        }
        bytes += (BATCH_SEGMENTS * SEGMENT_SIZE) as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

/// Opens one sealed batch over and over for about `budget`; returns plaintext bytes per second.
/// Each round opens a fresh copy (opening is in place), as a read opens what it just read.
fn open_rate(cipher: &StreamCipher, budget: Duration) -> f64 {
    let size = cipher.kind().sealed_segment_size();
    let mut sealed: Vec<u8> = Vec::with_capacity(BATCH_SEGMENTS * size);
    for index in 0..BATCH_SEGMENTS as u32 {
        let from = sealed.len();
        sealed.resize(from + SEGMENT_SIZE, 0x5a);
        cipher
            .seal_tail(index, false, &mut sealed, from)
            .expect("a full segment seals");
    }
    let mut work = sealed.clone();
    let mut bytes = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        work.copy_from_slice(&sealed);
        for (index, segment) in work.chunks_mut(size).enumerate() {
            cipher
                .open_segment(index as u32, false, segment)
                .expect("what was just sealed opens");
        }
        bytes += (BATCH_SEGMENTS * SEGMENT_SIZE) as u64;
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(seconds);
    let (inner, outer) = (
        Key256::generate().expect("system RNG"),
        Key256::generate().expect("system RNG"),
    );
    let prefix = random_array().expect("system RNG");
    let single = StreamCipher::single(&inner, prefix, b"throughput").expect("a valid stream id");
    let dual = StreamCipher::dual(&inner, &outer, prefix, b"throughput").expect("two keys");

    let gb = |rate: f64| rate / 1e9;
    let derived = |single: f64, dual: f64| 1.0 / (1.0 / dual - 1.0 / single);
    let (seal_single, seal_dual) = (seal_rate(&single, budget), seal_rate(&dual, budget));
    let (open_single, open_dual) = (open_rate(&single, budget), open_rate(&dual, budget));
    println!("one core, 64 KiB segments, {seconds} s per figure (GB/s of plaintext)");
    println!(
        "seal: single {:.2}  dual {:.2}  outer layer alone {:.2}  dual/single {:.0} %",
        gb(seal_single),
        gb(seal_dual),
        gb(derived(seal_single, seal_dual)),
        100.0 * seal_dual / seal_single
    );
    println!(
        "open: single {:.2}  dual {:.2}  outer layer alone {:.2}  dual/single {:.0} %",
        gb(open_single),
        gb(open_dual),
        gb(derived(open_single, open_dual)),
        100.0 * open_dual / open_single
    );
}
