//! Per-operation request-rate quotas, so clients see `ThrottlingException` where AWS KMS would
//! throttle them and their retry logic can be tested against Coffer.
//!
//! Operations are grouped as AWS groups its KMS quotas ([`QuotaGroup`]); each group has one token
//! bucket, refilled continuously at the configured rate with a burst of one second's worth. The
//! buckets are lock-free (one atomic per group, GCRA), so a quota check never blocks a request.
//!
//! This module only answers "may this request run now?": it must never sleep, queue or retry a
//! request, and never build the error itself (the caller answers `ThrottlingException`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Requests per second allowed in each quota group; 0 means unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateRandom, shared as in AWS. Default
    /// 100,000: AWS's shared symmetric quota in us-east-1 (other regions 5,500 / 10,000 / 50,000).
    pub cryptographic: u32,
    /// CreateKey. Default 5.
    pub create_key: u32,
    /// CreateAlias, UpdateAlias, DeleteAlias. Default 5.
    pub alias_ops: u32,
    /// DescribeKey. Default 2,000.
    pub describe_key: u32,
    /// Every `List*` operation (ListKeys, ListAliases, ListResourceTags, ListKeyRotations,
    /// ListKeyPolicies, …). Default 100.
    pub list_ops: u32,
    /// Everything else. Default 50.
    pub other: u32,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            cryptographic: 100_000,
            create_key: 5,
            alias_ops: 5,
            describe_key: 2_000,
            list_ops: 100,
            other: 50,
        }
    }
}

impl QuotaConfig {
    /// No quotas at all (tests, benchmarks, or an operator who throttles elsewhere).
    pub fn unlimited() -> QuotaConfig {
        QuotaConfig {
            cryptographic: 0,
            create_key: 0,
            alias_ops: 0,
            describe_key: 0,
            list_ops: 0,
            other: 0,
        }
    }

    fn rate(&self, group: QuotaGroup) -> u32 {
        match group {
            QuotaGroup::Cryptographic => self.cryptographic,
            QuotaGroup::CreateKey => self.create_key,
            QuotaGroup::AliasOps => self.alias_ops,
            QuotaGroup::DescribeKey => self.describe_key,
            QuotaGroup::ListOps => self.list_ops,
            QuotaGroup::Other => self.other,
        }
    }
}

/// The quota an operation counts against; operations of one group share one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaGroup {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateRandom.
    Cryptographic,
    /// CreateKey.
    CreateKey,
    /// CreateAlias, UpdateAlias, DeleteAlias.
    AliasOps,
    /// DescribeKey.
    DescribeKey,
    /// Every `List*` operation.
    ListOps,
    /// Everything else.
    Other,
}

impl QuotaGroup {
    const ALL: [QuotaGroup; 6] = [
        QuotaGroup::Cryptographic,
        QuotaGroup::CreateKey,
        QuotaGroup::AliasOps,
        QuotaGroup::DescribeKey,
        QuotaGroup::ListOps,
        QuotaGroup::Other,
    ];

    /// The group of a KMS operation, by its bare name as in `X-Amz-Target: TrentService.<name>`
    /// (e.g. `"GenerateDataKey"`). Unknown names count as [`QuotaGroup::Other`].
    pub fn of(operation: &str) -> QuotaGroup {
        match operation {
            "Encrypt" | "Decrypt" | "ReEncrypt" | "GenerateRandom" => QuotaGroup::Cryptographic,
            // GenerateDataKey, …WithoutPlaintext, …Pair, …PairWithoutPlaintext.
            op if op.starts_with("GenerateDataKey") => QuotaGroup::Cryptographic,
            "CreateKey" => QuotaGroup::CreateKey,
            "CreateAlias" | "UpdateAlias" | "DeleteAlias" => QuotaGroup::AliasOps,
            "DescribeKey" => QuotaGroup::DescribeKey,
            op if op.starts_with("List") => QuotaGroup::ListOps,
            _ => QuotaGroup::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One token bucket as a GCRA ("generic cell rate algorithm"): instead of a token count it keeps
/// the theoretical arrival time (TAT) of the next request, in nanoseconds since [`Quotas`] was
/// built. A request is allowed when it would not push the TAT more than one second (the burst)
/// ahead of now; each allowed request moves the TAT one interval (1 s / rate) further.
struct Bucket {
    /// Nanoseconds one request "costs"; `None` = unlimited.
    interval: Option<u64>,
    tat: AtomicU64,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        let interval = (rate > 0).then(|| NANOS_PER_SECOND / u64::from(rate));
        Bucket {
            interval,
            tat: AtomicU64::new(0),
        }
    }

    fn try_acquire(&self, now: u64) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now) + interval;
            if next - now > NANOS_PER_SECOND {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(current) => tat = current,
            }
        }
    }
}

/// The live quotas of one server: one bucket per [`QuotaGroup`].
pub struct Quotas {
    start: Instant,
    buckets: [Bucket; 6],
}

impl Quotas {
    /// Buckets for `cfg`, each starting full (one second's worth of requests).
    pub fn new(cfg: QuotaConfig) -> Quotas {
        Quotas {
            start: Instant::now(),
            buckets: QuotaGroup::ALL.map(|group| Bucket::new(cfg.rate(group))),
        }
    }

    /// Takes one request token for `operation` (the bare KMS operation name, e.g.
    /// `"GenerateDataKey"`); false means the caller answers `ThrottlingException`.
    pub fn try_acquire(&self, operation: &str) -> bool {
        self.try_acquire_at(operation, self.start.elapsed())
    }

    /// [`Quotas::try_acquire`] at `elapsed` time since construction: the clock is injected so
    /// tests can step time instead of sleeping.
    fn try_acquire_at(&self, operation: &str, elapsed: Duration) -> bool {
        // u64 nanoseconds last 584 years of uptime.
        let now = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX / 2);
        self.buckets[QuotaGroup::of(operation).index()].try_acquire(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn allowed(q: &Quotas, op: &str, at: Duration, n: usize) -> usize {
        (0..n).filter(|_| q.try_acquire_at(op, at)).count()
    }

    #[test]
    fn rate_five_allows_a_burst_of_five_then_throttles() {
        let q = Quotas::new(QuotaConfig::default());
        assert_eq!(allowed(&q, "CreateKey", ms(0), 5), 5);
        assert!(!q.try_acquire_at("CreateKey", ms(0)));
        assert!(!q.try_acquire_at("CreateKey", ms(100)));
    }

    #[test]
    fn bucket_refills_continuously_and_fully_after_one_second() {
        let q = Quotas::new(QuotaConfig::default());
        assert_eq!(allowed(&q, "CreateKey", ms(0), 10), 5);
        // One token every 200 ms.
        assert!(!q.try_acquire_at("CreateKey", ms(199)));
        assert!(q.try_acquire_at("CreateKey", ms(200)));
        assert!(!q.try_acquire_at("CreateKey", ms(200)));
        // Idle for over a second: a full burst again, but never more than one second's worth.
        assert_eq!(allowed(&q, "CreateKey", ms(5_000), 10), 5);
    }

    #[test]
    fn sustained_rate_matches_the_quota() {
        let q = Quotas::new(QuotaConfig {
            describe_key: 2_000,
            ..QuotaConfig::default()
        });
        // 10 seconds, 1,000 attempts every 100 ms = 10,000 attempts per second.
        let total: usize = (0..100)
            .map(|tick| allowed(&q, "DescribeKey", ms(tick * 100), 1_000))
            .sum();
        // Burst of 2,000 plus 2,000/s over the 9.9 s after it.
        assert_eq!(total, 2_000 + 19_800);
    }

    #[test]
    fn zero_means_unlimited() {
        let q = Quotas::new(QuotaConfig::unlimited());
        for op in [
            "CreateKey",
            "Encrypt",
            "ListKeys",
            "PutKeyPolicy",
            "NoSuchOp",
        ] {
            assert_eq!(allowed(&q, op, ms(0), 10_000), 10_000, "{op}");
        }
        let q = Quotas::new(QuotaConfig {
            other: 0,
            ..QuotaConfig::default()
        });
        assert_eq!(allowed(&q, "TagResource", ms(0), 1_000), 1_000);
        assert_eq!(allowed(&q, "CreateKey", ms(0), 1_000), 5);
    }

    #[test]
    fn operations_map_to_their_aws_quota_groups() {
        let table = [
            ("Encrypt", QuotaGroup::Cryptographic),
            ("Decrypt", QuotaGroup::Cryptographic),
            ("ReEncrypt", QuotaGroup::Cryptographic),
            ("GenerateDataKey", QuotaGroup::Cryptographic),
            ("GenerateDataKeyWithoutPlaintext", QuotaGroup::Cryptographic),
            ("GenerateDataKeyPair", QuotaGroup::Cryptographic),
            ("GenerateRandom", QuotaGroup::Cryptographic),
            ("CreateKey", QuotaGroup::CreateKey),
            ("CreateAlias", QuotaGroup::AliasOps),
            ("UpdateAlias", QuotaGroup::AliasOps),
            ("DeleteAlias", QuotaGroup::AliasOps),
            ("DescribeKey", QuotaGroup::DescribeKey),
            ("ListKeys", QuotaGroup::ListOps),
            ("ListAliases", QuotaGroup::ListOps),
            ("ListResourceTags", QuotaGroup::ListOps),
            ("ListKeyRotations", QuotaGroup::ListOps),
            ("ListKeyPolicies", QuotaGroup::ListOps),
            ("GetKeyPolicy", QuotaGroup::Other),
            ("PutKeyPolicy", QuotaGroup::Other),
            ("EnableKeyRotation", QuotaGroup::Other),
            ("ScheduleKeyDeletion", QuotaGroup::Other),
            ("encrypt", QuotaGroup::Other),
            ("", QuotaGroup::Other),
        ];
        for (op, group) in table {
            assert_eq!(QuotaGroup::of(op), group, "{op}");
        }
    }

    #[test]
    fn operations_of_one_group_share_a_bucket_and_groups_are_independent() {
        let q = Quotas::new(QuotaConfig {
            cryptographic: 4,
            ..QuotaConfig::default()
        });
        assert!(q.try_acquire_at("Encrypt", ms(0)));
        assert!(q.try_acquire_at("Decrypt", ms(0)));
        assert!(q.try_acquire_at("GenerateDataKey", ms(0)));
        assert!(q.try_acquire_at("GenerateRandom", ms(0)));
        assert!(!q.try_acquire_at("ReEncrypt", ms(0)));
        // Other groups still have their own tokens.
        assert!(q.try_acquire_at("CreateKey", ms(0)));
        assert!(q.try_acquire_at("DescribeKey", ms(0)));
    }

    #[test]
    fn concurrent_callers_never_exceed_the_burst() {
        let q = Quotas::new(QuotaConfig {
            cryptographic: 1_000,
            ..QuotaConfig::default()
        });
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| allowed(&q, "Encrypt", ms(0), 1_000)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 1_000);
    }

    #[test]
    fn public_try_acquire_uses_the_real_clock() {
        let q = Quotas::new(QuotaConfig::default());
        assert_eq!((0..10).filter(|_| q.try_acquire("CreateAlias")).count(), 5);
    }
}
