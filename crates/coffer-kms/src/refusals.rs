//! Aggregation of requests refused before authentication, so that a stranger cannot fill the disk
//! (or the audit log's sync queue) by sending bad requests: per window of [`WINDOW`], the first
//! refusal from a source with a given error code is logged as its own event; the rest are only
//! counted, and each source's count becomes one summary event when the window ends. At most
//! [`MAX_SOURCES`] (source, error code) pairs are tracked; refusals beyond them are counted per
//! error code under one "many sources" tally and never logged one by one. So, whatever arrives,
//! a window adds at most `2 × MAX_SOURCES` lines plus one per error code.
//!
//! A source is an IPv4 address, or an IPv6 /64 (one host commonly holds a whole /64). Nothing here
//! is trusted input beyond the transport's own address; what the request claimed is bounded by
//! `trail.rs`. This module only counts: it never writes the log itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

/// How long a window lasts.
pub(crate) const WINDOW: time::Duration = time::Duration::seconds(60);

/// Most (source, error code) pairs tracked in one window.
pub(crate) const MAX_SOURCES: usize = 256;

/// Most distinct operation names a summary lists.
const MAX_EVENT_NAMES: usize = 8;

/// The source of the tally that holds refusals beyond [`MAX_SOURCES`].
pub(crate) const MANY_SOURCES: &str = "*";

/// Refusals of one source and error code in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    /// First and last refusal.
    pub first: OffsetDateTime,
    pub last: OffsetDateTime,
    /// Every refusal counted, logged or not.
    pub refused: u64,
    /// How many of them were logged as their own event.
    pub logged: u64,
    /// The operations they named (sanitized by the caller), at most [`MAX_EVENT_NAMES`].
    pub event_names: Vec<String>,
}

/// A tally whose window ended with refusals that were not logged one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// An IPv4 address, an IPv6 /64, or [`MANY_SOURCES`].
    pub source: String,
    pub error_code: String,
    pub tally: Tally,
    /// When the window started and ended.
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
}

/// The current window.
#[derive(Default)]
pub(crate) struct Refusals {
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    start: Option<OffsetDateTime>,
    /// (source, error code) → tally.
    sources: HashMap<(String, String), Tally>,
    /// error code → tally of refusals from sources beyond [`MAX_SOURCES`].
    overflow: HashMap<String, Tally>,
}

impl Refusals {
    /// Counts one refusal at `now`; says whether to log it as its own event, and returns the
    /// summaries of the window it ended, if it ended one.
    pub fn admit(
        &self,
        now: OffsetDateTime,
        source_ip: &str,
        error_code: &str,
        event_name: &str,
    ) -> (bool, Vec<Summary>) {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let ended = window.end_if_due(now);
        window.start.get_or_insert(now);
        let key = (source_key(source_ip), bounded(error_code));
        let log_it = if let Some(tally) = window.sources.get_mut(&key) {
            tally.count(now, event_name, false);
            false
        } else if window.sources.len() < MAX_SOURCES {
            window
                .sources
                .insert(key, Tally::new(now, event_name, true));
            true
        } else {
            let (_, code) = key;
            match window.overflow.get_mut(&code) {
                Some(tally) => tally.count(now, event_name, false),
                None => {
                    window
                        .overflow
                        .insert(code, Tally::new(now, event_name, false));
                }
            }
            false
        };
        (log_it, ended)
    }

    /// The summaries of the window, if it has ended by `now` (the window is then reset).
    pub fn ended(&self, now: OffsetDateTime) -> Vec<Summary> {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .end_if_due(now)
    }

    /// Ends the window now, whatever its age (at shutdown), and returns its summaries.
    pub fn end_now(&self, now: OffsetDateTime) -> Vec<Summary> {
        self.window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .end(now)
    }
}

impl Window {
    fn end_if_due(&mut self, now: OffsetDateTime) -> Vec<Summary> {
        match self.start {
            // A clock that went back by a window also ends it. A refusal stamped a moment
            // before the window's start is not that: callers take the time before the lock, so
            // concurrent refusals arrive slightly out of order (ending the window on each of
            // those let a flood write a line per reordering).
            Some(start) if now >= start + WINDOW || now + WINDOW < start => self.end(now),
            _ => Vec::new(),
        }
    }

    fn end(&mut self, now: OffsetDateTime) -> Vec<Summary> {
        let Some(window_start) = self.start.take() else {
            return Vec::new();
        };
        let tallies = std::mem::take(&mut self.sources).into_iter().chain(
            std::mem::take(&mut self.overflow)
                .into_iter()
                .map(|(code, tally)| ((MANY_SOURCES.to_owned(), code), tally)),
        );
        let mut summaries: Vec<Summary> = tallies
            .filter(|(_, tally)| tally.refused > tally.logged)
            .map(|((source, error_code), tally)| Summary {
                source,
                error_code,
                tally,
                window_start,
                window_end: now,
            })
            .collect();
        summaries.sort_by(|a, b| (&a.source, &a.error_code).cmp(&(&b.source, &b.error_code)));
        summaries
    }
}

impl Tally {
    fn new(now: OffsetDateTime, event_name: &str, logged: bool) -> Tally {
        Tally {
            first: now,
            last: now,
            refused: 1,
            logged: u64::from(logged),
            event_names: vec![bounded(event_name)],
        }
    }

    fn count(&mut self, now: OffsetDateTime, event_name: &str, logged: bool) {
        self.last = now;
        self.refused += 1;
        self.logged += u64::from(logged);
        let name = bounded(event_name);
        if self.event_names.len() < MAX_EVENT_NAMES && !self.event_names.contains(&name) {
            self.event_names.push(name);
        }
    }
}

/// What refusals are grouped by: the IPv4 address, or the IPv6 /64.
pub(crate) fn source_key(source_ip: &str) -> String {
    match source_ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                format!("{}/64", std::net::Ipv6Addr::from(segments))
            }
        },
        Err(_) => bounded(source_ip),
    }
}

/// At most 64 bytes of `text`, cut at a character boundary.
fn bounded(text: &str) -> String {
    crate::trail::cap(text, 64).to_owned()
}

#[cfg(test)]
mod tests {

    /// Regression: refusals that took the time before the lock arrived out of order, and each
    /// such arrival ended the window (a summary line plus a new first line), under load.
    #[test]
    fn refusals_arriving_slightly_out_of_order_stay_in_one_window() {
        let r = Refusals::default();
        let t = OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        assert!(r.admit(t, "192.0.2.1", "E", "Op").0);
        for back in 1..50 {
            let (log_it, ended) = r.admit(
                t - time::Duration::milliseconds(back),
                "192.0.2.1",
                "E",
                "Op",
            );
            assert!(!log_it && ended.is_empty(), "{back} ms back");
        }
        let (_, ended) = r.admit(
            t - WINDOW - time::Duration::seconds(1),
            "192.0.2.1",
            "E",
            "Op",
        );
        assert_eq!(
            ended.len(),
            1,
            "a clock that went back a whole window ends it"
        );
    }

    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_750_000_000 + secs).unwrap()
    }

    #[test]
    fn the_first_refusal_of_a_source_and_code_is_logged_and_the_rest_summarized_when_the_window_ends()
     {
        let r = Refusals::default();
        assert_eq!(
            r.admit(at(0), "192.0.2.1", "InvalidSignatureException", "Encrypt"),
            (true, vec![])
        );
        for i in 1..1000 {
            let (log_it, ended) = r.admit(
                at(i % 50),
                "192.0.2.1",
                "InvalidSignatureException",
                "Decrypt",
            );
            assert!(!log_it && ended.is_empty());
        }
        // Another code from the same source is logged once too.
        assert!(
            r.admit(
                at(1),
                "192.0.2.1",
                "UnrecognizedClientException",
                "ListKeys"
            )
            .0
        );
        assert!(r.ended(at(59)).is_empty(), "the window has not ended");
        let summaries = r.ended(at(60));
        assert_eq!(
            summaries.len(),
            1,
            "only the tally with unlogged refusals: {summaries:?}"
        );
        let s = &summaries[0];
        assert_eq!(
            (s.source.as_str(), s.error_code.as_str()),
            ("192.0.2.1", "InvalidSignatureException")
        );
        assert_eq!((s.tally.refused, s.tally.logged), (1000, 1));
        assert_eq!(s.tally.event_names, ["Encrypt", "Decrypt"]);
        assert_eq!((s.window_start, s.window_end), (at(0), at(60)));
        // A new window logs the source's first refusal again.
        assert!(
            r.admit(at(61), "192.0.2.1", "InvalidSignatureException", "Encrypt")
                .0
        );
    }

    #[test]
    fn a_refusal_after_the_window_ended_returns_its_summaries() {
        let r = Refusals::default();
        r.admit(at(0), "192.0.2.1", "X", "Encrypt");
        r.admit(at(1), "192.0.2.1", "X", "Encrypt");
        let (log_it, ended) = r.admit(at(120), "192.0.2.1", "X", "Encrypt");
        assert!(log_it);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].tally.refused, 2);
    }

    #[test]
    fn sources_beyond_the_bound_are_counted_together_and_never_logged() {
        let r = Refusals::default();
        let mut logged = 0;
        for i in 0..(MAX_SOURCES as u32 + 500) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            logged += u64::from(r.admit(at(0), &ip, "X", "Encrypt").0);
        }
        assert_eq!(logged, MAX_SOURCES as u64);
        let summaries = r.end_now(at(5));
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].source, MANY_SOURCES);
        assert_eq!(summaries[0].tally.refused, 500);
        assert_eq!(summaries[0].tally.logged, 0);
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(source_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(source_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(source_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn event_names_and_codes_in_a_tally_are_bounded() {
        let r = Refusals::default();
        for i in 0..100 {
            r.admit(at(0), "192.0.2.1", &"E".repeat(1000), &format!("Op{i}"));
        }
        let s = r.end_now(at(1));
        assert_eq!(s[0].tally.event_names.len(), MAX_EVENT_NAMES);
        assert_eq!(s[0].error_code.len(), 64);
    }
}
