//! The AWS JSON 1.1 details shared by every operation: reading a request body, base64 blobs,
//! timestamps (epoch seconds), `Limit`/`Marker` paging, and enum-valued fields.
//!
//! Parse errors must never echo field values: a body may hold a plaintext, and a serde message
//! quotes what it could not read. Secrets decoded here stay in zeroizing buffers.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::KmsError;

/// Reads a request body into its input type; an empty body is `{}` (some clients send nothing for
/// operations without required fields).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let what = match e.classify() {
            Category::Data => "a field has the wrong JSON type",
            Category::Eof => "the JSON ends too early",
            Category::Syntax | Category::Io => "the body is not valid JSON",
        };
        KmsError::Serialization(format!(
            "Could not read the request: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A request field that holds a secret (Plaintext) as it arrives: wiped when dropped, whatever
/// happens to the request.
pub struct SecretText(Zeroizing<String>);

impl<'de> serde::Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| SecretText(Zeroizing::new(text)))
    }
}

/// Decodes a base64 field that holds a secret into a buffer that is wiped when dropped.
pub fn decode_secret(text: &SecretText, field: &str) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    STANDARD
        .decode(text.0.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| not_base64(field))
}

/// Decodes a base64 field that is not secret (CiphertextBlob).
pub fn decode_blob(text: &str, field: &str) -> Result<Vec<u8>, KmsError> {
    STANDARD
        .decode(text.as_bytes())
        .map_err(|_| not_base64(field))
}

fn not_base64(field: &str) -> KmsError {
    KmsError::Serialization(format!("The field {field} is not valid base64"))
}

/// Base64 of a blob for a response.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Base64 of a secret for a response, in a buffer that is wiped when dropped.
pub fn encode_secret(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(STANDARD.encode(bytes))
}

/// A timestamp as AWS JSON 1.1 sends it: seconds since the epoch, with milliseconds.
pub fn epoch(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A `Limit` field: absent means `default`; outside 1..=`max` is a ValidationException.
pub fn limit(value: Option<i64>, max: i64, default: usize) -> Result<usize, KmsError> {
    match value {
        None => Ok(default),
        Some(n) if n < 1 => Err(KmsError::validation(
            "limit",
            n,
            "Member must have value greater than or equal to 1",
        )),
        Some(n) if n > max => Err(KmsError::validation(
            "limit",
            n,
            &format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => Ok(n as usize),
    }
}

/// The opaque `NextMarker` for a page that ended at `last` (a key id, alias name, tag key or
/// version number): listing resumes after it.
pub fn marker_for(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// Reads a `Marker` this service issued; anything else is an InvalidMarkerException.
pub fn read_marker(marker: Option<&str>) -> Result<Option<String>, KmsError> {
    let Some(marker) = marker else {
        return Ok(None);
    };
    if marker.is_empty() {
        return Err(KmsError::validation(
            "marker",
            marker,
            "Member must have length greater than or equal to 1",
        ));
    }
    URL_SAFE_NO_PAD
        .decode(marker.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            KmsError::InvalidMarker(
                "The marker is not one this service issued: pass the NextMarker of the previous response"
                    .to_owned(),
            )
        })
}

/// An integer field that must lie in `min..=max`.
pub fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<u32, KmsError> {
    if value < min {
        return Err(KmsError::validation(
            field,
            value,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(KmsError::validation(
            field,
            value,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(value as u32)
}

/// A value not in an enum's value set.
pub fn not_in_enum(field: &str, value: &str, allowed: &[&str]) -> KmsError {
    KmsError::validation(
        field,
        value,
        &format!(
            "Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ),
    )
}

/// One page of an ordered listing: the items after the marker, at most `limit`, and the marker of
/// the next page if more remain.
pub fn page<T>(
    items: impl Iterator<Item = T>,
    limit: usize,
    name: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let mut out = Vec::with_capacity(limit.min(64));
    let mut items = items.peekable();
    while out.len() < limit {
        match items.next() {
            Some(item) => out.push(item),
            None => break,
        }
    }
    let next = if items.peek().is_some() {
        out.last().map(|last| marker_for(&name(last)))
    } else {
        None
    };
    (out, next)
}

/// Adds `Truncated` and, when truncated, `NextMarker` to a listing response.
pub fn with_paging(mut body: serde_json::Value, next: Option<String>) -> serde_json::Value {
    body["Truncated"] = next.is_some().into();
    if let Some(next) = next {
        body["NextMarker"] = next.into();
    }
    body
}

/// Serializes a response body.
pub fn to_body(value: &impl serde::Serialize) -> Result<Vec<u8>, KmsError> {
    serde_json::to_vec(value).map_err(KmsError::internal)
}

/// Serializes a response body that carries a secret into a buffer of `capacity` bytes allocated
/// up front, so that growing it never leaves a freed copy of the secret behind. `capacity` must
/// cover the secret's base64 plus everything else in the body; if it does not, the buffer grows
/// (correct, only less tidy).
pub fn to_secret_body(value: &impl serde::Serialize, capacity: usize) -> Result<Vec<u8>, KmsError> {
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, value).map_err(KmsError::internal)?;
    Ok(out)
}

/// Room for the JSON around the fields of a response: names, quotes, the key ARN, the algorithm.
pub const BODY_SLACK: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        key_id: Option<String>,
        number_of_bytes: Option<i64>,
    }

    #[test]
    fn empty_body_reads_as_empty_object() {
        let input: Input = parse(b"").unwrap();
        assert!(input.key_id.is_none());
        let input: Input = parse(b" \n").unwrap();
        assert!(input.number_of_bytes.is_none());
    }

    #[test]
    fn bad_json_is_a_serialization_error_that_does_not_echo_values() {
        for body in [
            &b"{"[..],
            b"not json",
            br#"{"KeyId": 5}"#,
            br#"{"NumberOfBytes": "secret-value"}"#,
        ] {
            let err = parse::<Input>(body).unwrap_err();
            assert_eq!(err.error_type(), "SerializationException");
            assert!(!err.message().contains("secret-value"));
        }
    }

    #[test]
    fn base64_fields_round_trip_and_reject_garbage() {
        let text = encode(b"\x00\x01blob");
        assert_eq!(
            decode_blob(&text, "CiphertextBlob").unwrap(),
            b"\x00\x01blob"
        );
        let secret: SecretText = serde_json::from_value(text.into()).unwrap();
        assert_eq!(
            decode_secret(&secret, "Plaintext").unwrap().as_slice(),
            b"\x00\x01blob"
        );
        assert_eq!(
            decode_blob("not base64!", "CiphertextBlob")
                .unwrap_err()
                .error_type(),
            "SerializationException"
        );
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(limit(None, 1000, 100).unwrap(), 100);
        assert_eq!(limit(Some(1000), 1000, 100).unwrap(), 1000);
        assert!(matches!(
            limit(Some(0), 1000, 100),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            limit(Some(1001), 1000, 100),
            Err(KmsError::Validation(_))
        ));
    }

    #[test]
    fn markers_round_trip_and_foreign_markers_are_refused() {
        let m = marker_for("alias/x");
        assert_eq!(read_marker(Some(&m)).unwrap().as_deref(), Some("alias/x"));
        assert_eq!(read_marker(None).unwrap(), None);
        assert!(matches!(
            read_marker(Some("***")),
            Err(KmsError::InvalidMarker(_))
        ));
    }

    #[test]
    fn paging_marks_truncation_only_when_more_remain() {
        let (items, next) = page(1..=5, 2, |n| n.to_string());
        assert_eq!(items, vec![1, 2]);
        assert_eq!(read_marker(next.as_deref()).unwrap().as_deref(), Some("2"));
        let (items, next) = page(1..=2, 2, |n| n.to_string());
        assert_eq!(items, vec![1, 2]);
        assert!(next.is_none());
    }

    #[test]
    fn epoch_seconds_keep_milliseconds() {
        assert_eq!(epoch(1_700_000_000_123), 1_700_000_000.123);
    }
}
