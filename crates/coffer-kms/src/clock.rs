//! Where the key service reads the time: rotation schedules, deletion dates, audit timestamps.
//!
//! Injectable so that tests can jump 30 days ahead without waiting ([`OffsetClock`]). Nothing else in
//! the crate may call `OffsetDateTime::now_utc` directly; it must never be used to measure request
//! rates (the quotas use a monotonic clock of their own).

use std::path::PathBuf;

use time::OffsetDateTime;

/// The source of "now" for every schedule and timestamp of the key service.
pub trait Clock: Send + Sync {
    /// The current time, UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock: what production uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Real time plus an offset in seconds read from a file on every call, so an end-to-end test can move
/// a running server forward (write `2592000` to jump 30 days). A missing, empty or unreadable file
/// means no offset.
#[derive(Debug, Clone)]
pub struct OffsetClock {
    path: PathBuf,
}

impl OffsetClock {
    /// A clock whose offset lives in the file at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> OffsetClock {
        OffsetClock { path }
    }

    /// The offset in seconds currently written in the file; 0 when there is none.
    fn offset_seconds(&self) -> i64 {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return 0;
        };
        let text = text.trim();
        if text.is_empty() {
            return 0;
        }
        text.parse().unwrap_or_else(|_| {
            tracing::warn!(path = %self.path.display(), "clock offset file does not hold a whole number of seconds; ignoring it");
            0
        })
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.checked_add(time::Duration::seconds(self.offset_seconds()))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_without_a_file_is_real_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = OffsetClock::new(dir.path().join("offset"));
        let skew = (clock.now() - OffsetDateTime::now_utc()).abs();
        assert!(skew < time::Duration::seconds(5));
    }

    #[test]
    fn offset_clock_adds_the_seconds_in_the_file_on_every_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        let clock = OffsetClock::new(path.clone());
        std::fs::write(&path, "2592000\n").unwrap();
        let ahead = clock.now() - OffsetDateTime::now_utc();
        assert!((ahead - time::Duration::days(30)).abs() < time::Duration::seconds(5));
        std::fs::write(&path, "").unwrap();
        assert!((clock.now() - OffsetDateTime::now_utc()).abs() < time::Duration::seconds(5));
    }

    #[test]
    fn offset_clock_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offset");
        std::fs::write(&path, "thirty days").unwrap();
        let clock = OffsetClock::new(path);
        assert!((clock.now() - OffsetDateTime::now_utc()).abs() < time::Duration::seconds(5));
    }
}
