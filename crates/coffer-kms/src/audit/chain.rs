//! The two line formats of the audit log and the *link* that chains each line to the one before
//! it (drawn byte by byte in docs/format.md, "Audit log"). A frozen format: a line written today
//! must verify forever, so nothing here may change meaning; a new format is a new variant.
//!
//! - **Format 1** (written by releases before the anchored log): the line is a JSON object whose
//!   last field `previousLineSha256` is the hex SHA-256 of the previous line. The line's link is
//!   the SHA-256 of its own bytes. Anyone can recompute such a chain, so format 1 lines are trusted
//!   only because a later format 2 line, or the anchor, holds the link of the last of them.
//! - **Format 2** (written now): the line ends with
//!   `"previousLink":"<hex>","linkHmacSha256":"<hex>"}`. `previousLink` is the previous line's
//!   link; the line's own link is HMAC-SHA256(chain key, every byte of the line before the 64 hex
//!   digits of `linkHmacSha256`), and `linkHmacSha256` holds it. Nobody without the root key can
//!   compute it.
//!
//! The chain rule: the link before the first line is 32 zero bytes ([`GENESIS`]); every line states
//! the link of the line before it; format 1 lines may only come before the first format 2 line.
//!
//! This module is pure: bytes in, verdicts out. It never reads files and never logs.

use coffer_crypto::{Key256, ct_eq, derive_key, hmac_sha256, sha256};
use serde_json::Value;

/// A line's link: SHA-256 of a format 1 line, HMAC-SHA256 of a format 2 line.
pub type Link = [u8; 32];

/// The link before the first line of a chain. Frozen.
pub const GENESIS: Link = [0; 32];

/// Format 1's only chain field: hex SHA-256 of the previous line. DO NOT RENAME: every log written
/// before the anchored format carries it on every line.
pub const V1_PREVIOUS_FIELD: &str = "previousLineSha256";

/// Format 2: hex link of the previous line (a SHA-256 after a format 1 line, an HMAC otherwise).
/// DO NOT RENAME: part of the bytes every format 2 line's MAC covers.
pub const PREVIOUS_LINK_FIELD: &str = "previousLink";

/// Format 2: hex HMAC-SHA256 of the line's bytes before these hex digits. DO NOT RENAME (as above).
pub const LINK_FIELD: &str = "linkHmacSha256";

/// HKDF info of the key that MACs format 2 lines. DO NOT CHANGE: every format 2 line ever written
/// would stop verifying.
const CHAIN_KEY_INFO: &[u8] = b"coffer audit chain v1";

/// HKDF info of the key that MACs the anchor record. DO NOT CHANGE: the stored anchor would stop
/// verifying and the server would refuse to start.
const ANCHOR_KEY_INFO: &[u8] = b"coffer audit anchor v1";

/// Bytes after the link's hex digits at the end of a format 2 line: `"}`.
const LINE_END: &[u8] = b"\"}";

/// Length of a hex link.
const HEX_LINK: usize = 64;

/// The keys of the log, derived from the root key: only the root key's holder can write a line or
/// an anchor that verifies.
pub struct AuditKeys {
    pub(crate) chain: Key256,
    pub(crate) anchor: Key256,
}

impl AuditKeys {
    /// HKDF-SHA256 of the root key (empty salt) with one info string per purpose.
    pub fn derive(root_key: &Key256) -> AuditKeys {
        AuditKeys {
            chain: derive_key(root_key, &[], CHAIN_KEY_INFO),
            anchor: derive_key(root_key, &[], ANCHOR_KEY_INFO),
        }
    }
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeys([redacted])")
    }
}

/// Which format a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SHA-256 links (`previousLineSha256`).
    V1,
    /// HMAC links (`previousLink`, `linkHmacSha256`).
    V2,
}

/// Where a chain stands after some lines: what the next line must state, and whether format 1
/// lines may still come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPos {
    /// Link of the last line ([`GENESIS`] before the first).
    pub link: Link,
    /// Format of the last line, `None` before the first.
    pub last_format: Option<Format>,
}

impl ChainPos {
    /// The position before the first line.
    pub const START: ChainPos = ChainPos {
        link: GENESIS,
        last_format: None,
    };
}

/// Appends one format 2 line (without its newline) for `compact_object`, a compact JSON object
/// without chain fields, chained to `prev`; returns the line's link.
pub(crate) fn push_line(
    buf: &mut Vec<u8>,
    compact_object: &str,
    prev: &Link,
    keys: &AuditKeys,
) -> Link {
    let start = buf.len();
    let body = compact_object
        .strip_suffix('}')
        .expect("a serialized JSON object ends with '}'");
    buf.extend_from_slice(body.as_bytes());
    if body != "{" {
        buf.push(b',');
    }
    push_field_start(buf, PREVIOUS_LINK_FIELD);
    push_hex(buf, prev);
    buf.push(b'"');
    buf.push(b',');
    push_field_start(buf, LINK_FIELD);
    let link = hmac_sha256(keys.chain.expose_secret(), &buf[start..]);
    push_hex(buf, &link);
    buf.extend_from_slice(LINE_END);
    link
}

/// `"name":"`
fn push_field_start(buf: &mut Vec<u8>, name: &str) {
    buf.push(b'"');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":\"");
}

fn push_hex(buf: &mut Vec<u8>, bytes: &Link) {
    let mut hex_link = [0u8; HEX_LINK];
    hex::encode_to_slice(bytes, &mut hex_link).expect("64 hex digits for 32 bytes");
    buf.extend_from_slice(&hex_link);
}

/// What one line says about itself, before it is compared with the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLinks {
    pub format: Format,
    /// The previous line's link, as this line states it (`None`: not 64 lowercase hex digits,
    /// which matches no link).
    pub stated_previous: Option<Link>,
    /// This line's own link (for format 2, its MAC has been checked).
    pub link: Link,
}

/// Why a line cannot be part of any chain by itself (before looking at its neighbours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// Not a JSON object.
    NotJson,
    /// A JSON object without either format's chain fields.
    NoChainField,
    /// A format 2 line whose fields are not where the writer puts them.
    MisplacedLink,
    /// A format 2 line whose MAC does not match its bytes.
    BadMac,
}

/// Reads a line's links; for a format 2 line, also checks its MAC.
pub fn read_line(line: &[u8], keys: &AuditKeys) -> Result<LineLinks, LineProblem> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(line) else {
        return Err(LineProblem::NotJson);
    };
    if fields.contains_key(LINK_FIELD) {
        return read_v2(line, keys);
    }
    let stated = fields
        .get(V1_PREVIOUS_FIELD)
        .and_then(Value::as_str)
        .ok_or(LineProblem::NoChainField)?;
    Ok(LineLinks {
        format: Format::V1,
        stated_previous: decode_hex(stated.as_bytes()),
        link: sha256(line),
    })
}

/// A format 2 line: `…"previousLink":"<64 hex>","linkHmacSha256":"<64 hex>"}`, exactly.
fn read_v2(line: &[u8], keys: &AuditKeys) -> Result<LineLinks, LineProblem> {
    let link_field = format!("\"{LINK_FIELD}\":\"");
    let previous_field = format!("\"{PREVIOUS_LINK_FIELD}\":\"");
    let Some(before_end) = line.strip_suffix(LINE_END) else {
        return Err(LineProblem::MisplacedLink);
    };
    let Some(mac_input_len) = before_end.len().checked_sub(HEX_LINK) else {
        return Err(LineProblem::MisplacedLink);
    };
    let (mac_input, stated_link) = before_end.split_at(mac_input_len);
    let Some(before_link) = mac_input.strip_suffix(link_field.as_bytes()) else {
        return Err(LineProblem::MisplacedLink);
    };
    let Some(before_link) = before_link.strip_suffix(b"\",") else {
        return Err(LineProblem::MisplacedLink);
    };
    let Some(prev_start) = before_link.len().checked_sub(HEX_LINK) else {
        return Err(LineProblem::MisplacedLink);
    };
    let (before_prev, stated_previous) = before_link.split_at(prev_start);
    if !before_prev.ends_with(previous_field.as_bytes()) {
        return Err(LineProblem::MisplacedLink);
    }
    let (Some(stated_link), Some(stated_previous)) =
        (decode_hex(stated_link), decode_hex(stated_previous))
    else {
        return Err(LineProblem::MisplacedLink);
    };
    let link = hmac_sha256(keys.chain.expose_secret(), mac_input);
    if !ct_eq(&link, &stated_link) {
        return Err(LineProblem::BadMac);
    }
    Ok(LineLinks {
        format: Format::V2,
        stated_previous: Some(stated_previous),
        link,
    })
}

/// 64 lowercase hex digits as 32 bytes.
fn decode_hex(text: &[u8]) -> Option<Link> {
    if text.len() != HEX_LINK || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Checks that line `number` (1-based) continues the chain at `pos`; returns the position after
/// it, or what is wrong, for a person. `links` is what [`read_line`] made of the line.
pub fn next(number: u64, links: &LineLinks, pos: &ChainPos) -> Result<ChainPos, String> {
    if links.format == Format::V1 && pos.last_format == Some(Format::V2) {
        return Err(format!(
            "line {number} is in the old SHA-256 format after lines with MACs: Coffer never \
             writes that, so it was written by someone else (old-format lines, which anyone \
             can chain, may only come before the first line with a MAC)"
        ));
    }
    if !links
        .stated_previous
        .is_some_and(|stated| ct_eq(&stated, &pos.link))
    {
        return Err(match (number, links.format, pos.last_format) {
            (1, Format::V2, _) => "line 1 is authentic but does not start a chain: lines before \
                                   it were removed"
                .to_owned(),
            (1, Format::V1, _) => "line 1 does not chain to the start of the log (64 zeros): \
                                   lines before it were removed, or it was edited"
                .to_owned(),
            (_, Format::V2, Some(Format::V2)) => format!(
                "line {number} is authentic but does not follow line {}: lines were deleted, \
                 inserted or reordered just before line {number}",
                number - 1
            ),
            (_, _, _) => format!(
                "line {number}'s link to the previous line is not the SHA-256 of line {}: \
                 line {} (old SHA-256 format) was edited, or lines were deleted, inserted or \
                 reordered just before line {number}",
                number - 1,
                number - 1
            ),
        });
    }
    Ok(ChainPos {
        link: links.link,
        last_format: Some(links.format),
    })
}

/// A person's explanation of a [`LineProblem`] at line `number`.
pub fn explain(number: u64, problem: &LineProblem) -> String {
    match problem {
        LineProblem::NotJson => {
            format!("line {number} is not a JSON object: it was edited or cut short")
        }
        LineProblem::NoChainField => format!(
            "line {number} has neither {LINK_FIELD} nor {V1_PREVIOUS_FIELD}: it was edited, or \
             not written by Coffer"
        ),
        LineProblem::MisplacedLink => format!(
            "line {number}'s {PREVIOUS_LINK_FIELD} and {LINK_FIELD} are not the last fields, in \
             that order, with 64 hex digits each: it was edited"
        ),
        LineProblem::BadMac => format!(
            "line {number}'s {LINK_FIELD} is not the MAC of its bytes: the line was edited, or \
             written (or its chain recomputed) by someone without the root key"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::derive(&Key256::from_bytes([7; 32]))
    }

    fn line(object: &str, prev: &Link) -> (Vec<u8>, Link) {
        let mut buf = Vec::new();
        let link = push_line(&mut buf, object, prev, &keys());
        (buf, link)
    }

    #[test]
    fn a_format_2_line_ends_with_its_two_links_and_its_mac_covers_the_bytes_before_it() {
        let (bytes, link) = line(r#"{"eventName":"Encrypt"}"#, &GENESIS);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let expected_prefix = format!(
            r#"{{"eventName":"Encrypt","previousLink":"{}","linkHmacSha256":""#,
            "0".repeat(64)
        );
        assert!(text.starts_with(&expected_prefix), "{text}");
        assert_eq!(text, format!("{expected_prefix}{}\"}}", hex::encode(link)));
        let mac = hmac_sha256(keys().chain.expose_secret(), expected_prefix.as_bytes());
        assert_eq!(mac, link);
        let links = read_line(&bytes, &keys()).unwrap();
        assert_eq!(
            links,
            LineLinks {
                format: Format::V2,
                stated_previous: Some(GENESIS),
                link
            }
        );
    }

    #[test]
    fn the_chain_and_anchor_keys_are_independent_of_each_other_and_of_the_root_key() {
        let root = Key256::from_bytes([7; 32]);
        let k = AuditKeys::derive(&root);
        assert_ne!(k.chain.expose_secret(), k.anchor.expose_secret());
        assert_ne!(k.chain.expose_secret(), root.expose_secret());
        assert_eq!(format!("{k:?}"), "AuditKeys([redacted])");
    }

    #[test]
    fn an_empty_event_still_makes_a_valid_line() {
        let (bytes, _) = line("{}", &GENESIS);
        assert!(bytes.starts_with(br#"{"previousLink":"#));
        assert!(read_line(&bytes, &keys()).is_ok());
    }

    #[test]
    fn any_edit_of_a_format_2_line_fails_its_mac_or_its_layout() {
        let (bytes, _) = line(r#"{"eventName":"Encrypt","n":12}"#, &GENESIS);
        for i in 0..bytes.len() {
            let mut edited = bytes.clone();
            edited[i] = if edited[i] == b'1' { b'2' } else { b'1' };
            assert!(
                read_line(&edited, &keys()).is_err(),
                "edit at byte {i} went unnoticed: {}",
                String::from_utf8_lossy(&edited)
            );
        }
    }

    #[test]
    fn a_line_maced_under_another_root_key_fails() {
        let (bytes, _) = line(r#"{"eventName":"Encrypt"}"#, &GENESIS);
        let other = AuditKeys::derive(&Key256::from_bytes([8; 32]));
        assert_eq!(read_line(&bytes, &other), Err(LineProblem::BadMac));
    }

    #[test]
    fn a_format_1_line_links_by_sha256() {
        let text = format!(
            r#"{{"eventName":"Decrypt","{V1_PREVIOUS_FIELD}":"{}"}}"#,
            "0".repeat(64)
        );
        let links = read_line(text.as_bytes(), &keys()).unwrap();
        assert_eq!(links.format, Format::V1);
        assert_eq!(links.stated_previous, Some(GENESIS));
        assert_eq!(links.link, sha256(text.as_bytes()));
    }

    #[test]
    fn format_2_may_follow_format_1_but_not_the_other_way_round() {
        let v1 = format!(r#"{{"a":1,"{V1_PREVIOUS_FIELD}":"{}"}}"#, "0".repeat(64));
        let v1_links = read_line(v1.as_bytes(), &keys()).unwrap();
        let pos = next(1, &v1_links, &ChainPos::START).unwrap();
        let (v2, _) = line(r#"{"a":2}"#, &pos.link);
        let v2_links = read_line(&v2, &keys()).unwrap();
        let pos = next(2, &v2_links, &pos).unwrap();
        assert_eq!(pos.last_format, Some(Format::V2));

        let forged = format!(
            r#"{{"a":3,"{V1_PREVIOUS_FIELD}":"{}"}}"#,
            hex::encode(pos.link)
        );
        let forged_links = read_line(forged.as_bytes(), &keys()).unwrap();
        let err = next(3, &forged_links, &pos).unwrap_err();
        assert!(
            err.contains("old SHA-256 format after lines with MACs"),
            "{err}"
        );
    }

    #[test]
    fn an_authentic_line_out_of_place_says_lines_were_moved() {
        let (first, l1) = line(r#"{"a":1}"#, &GENESIS);
        let (_, l2) = line(r#"{"a":2}"#, &l1);
        let (third, _) = line(r#"{"a":3}"#, &l2);
        let pos = next(1, &read_line(&first, &keys()).unwrap(), &ChainPos::START).unwrap();
        let err = next(2, &read_line(&third, &keys()).unwrap(), &pos).unwrap_err();
        assert!(err.contains("deleted, inserted or reordered"), "{err}");
        let err = next(1, &read_line(&third, &keys()).unwrap(), &ChainPos::START).unwrap_err();
        assert!(err.contains("lines before it were removed"), "{err}");
    }

    #[test]
    fn uppercase_or_short_hex_is_not_a_link() {
        assert_eq!(decode_hex(&[b'A'; 64]), None);
        assert_eq!(decode_hex(&[b'a'; 63]), None);
        assert_eq!(decode_hex(&[b'a'; 64]), Some([0xaa; 32]));
    }
}
