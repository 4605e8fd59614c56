//! POST policies, the signed documents that authorize browser form uploads: parsing the
//! base64 JSON (`expiration`, `conditions`), and checking a form against it — the expiration,
//! every condition (`eq`, `starts-with`, `content-length-range`), and S3's rule that each form
//! field is named by some condition.
//!
//! Pure functions over strings and a clock: they never see the file, a secret or the network.
//! Messages are S3's ("Invalid according to Policy: …"), and quote only the policy itself.

use base64::Engine;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a form does not satisfy its policy; each maps to one S3 error in `post_object`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not a policy S3 would read (`400 InvalidPolicyDocument`).
    #[error("Invalid Policy: {0}")]
    Invalid(String),
    /// `expiration` has passed (`403 AccessDenied`).
    #[error("Invalid according to Policy: Policy expired.")]
    Expired,
    /// A condition does not hold; the condition as S3 prints it (`403 AccessDenied`).
    #[error("Invalid according to Policy: Policy Condition failed: {0}")]
    ConditionFailed(String),
    /// A form field no condition names (`403 AccessDenied`).
    #[error("Invalid according to Policy: Extra input fields: {0}")]
    ExtraField(String),
}

/// The file sizes a policy allows, inclusive (`content-length-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    pub min: u64,
    pub max: u64,
}

impl Default for SizeRange {
    fn default() -> SizeRange {
        SizeRange {
            min: 0,
            max: u64::MAX,
        }
    }
}

/// A parsed POST policy.
#[derive(Debug)]
pub struct PostPolicy {
    expiration: OffsetDateTime,
    conditions: Vec<Condition>,
}

#[derive(Debug, PartialEq, Eq)]
enum Condition {
    /// The field equals the value (`{"field": "value"}` or `["eq", "$field", "value"]`).
    Eq {
        field: String,
        value: String,
        shown: String,
    },
    /// The field starts with the prefix; for Content-Type, each comma-separated item does.
    StartsWith {
        field: String,
        prefix: String,
        shown: String,
    },
    /// The file's size is within the range.
    Length(SizeRange),
    /// A condition S3 reads but no form meets (a name without `$`, a bound that is no number).
    Unmeetable { shown: String },
}

/// What a form offers to be checked: its fields (names as sent, values with `${filename}`
/// already filled in) and the bucket of the request's URL, which the `bucket` condition names.
pub struct FormView<'a> {
    pub bucket: &'a str,
    pub fields: &'a [(String, String)],
}

impl FormView<'_> {
    fn value(&self, field: &str) -> Option<&str> {
        if field == "bucket" {
            return Some(self.bucket);
        }
        self.fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map(|(_, v)| v.as_str())
    }
}

fn invalid(message: &str) -> PolicyError {
    PolicyError::Invalid(message.to_owned())
}

/// Parses the `policy` field as sent (base64 of UTF-8 JSON).
pub fn parse(policy_b64: &str) -> Result<PostPolicy, PolicyError> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(policy_b64.trim())
        .map_err(|_| invalid("invalid Base64 encoding."))?;
    let doc: Value = serde_json::from_slice(&json).map_err(|_| invalid("Invalid JSON."))?;
    let Value::Object(members) = doc else {
        return Err(invalid("Invalid JSON."));
    };
    if let Some(other) = members
        .keys()
        .find(|k| *k != "expiration" && *k != "conditions")
    {
        return Err(PolicyError::Invalid(format!(
            "Unexpected: '{}'",
            other.to_lowercase()
        )));
    }
    let expiration = match members.get("expiration") {
        None => return Err(invalid("Policy missing expiration.")),
        Some(v) => parse_expiration(v)?,
    };
    let conditions = match members.get("conditions") {
        None => return Err(invalid("Policy missing conditions.")),
        Some(Value::Array(list)) => list
            .iter()
            .map(parse_condition)
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("Invalid 'conditions' value: must be a List.")),
    };
    Ok(PostPolicy {
        expiration,
        conditions,
    })
}

/// An ISO 8601 UTC time, `2026-01-01T12:00:00Z` or with fractional seconds; S3 refuses
/// offsets other than `Z`.
fn parse_expiration(v: &Value) -> Result<OffsetDateTime, PolicyError> {
    let text = v.as_str().unwrap_or_default();
    if text.ends_with('Z')
        && let Ok(t) = OffsetDateTime::parse(text, &Rfc3339)
    {
        return Ok(t);
    }
    Err(PolicyError::Invalid(format!(
        "Invalid 'expiration' value: '{}'",
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    )))
}

/// A JSON string as S3 quotes it in its messages.
fn quoted(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn parse_condition(c: &Value) -> Result<Condition, PolicyError> {
    match c {
        Value::Object(map) => {
            if map.len() != 1 {
                return Err(invalid(
                    "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.",
                ));
            }
            let (name, value) = map.iter().next().expect("invariant: one member");
            let value = match value {
                Value::String(s) => s,
                Value::Null => return Err(invalid("Invalid JSON.")),
                _ => {
                    return Err(invalid("Invalid Simple-Condition: value must be a string."));
                }
            };
            Ok(Condition::Eq {
                field: name.to_ascii_lowercase(),
                value: value.clone(),
                shown: format!(
                    "[\"eq\", {}, {}]",
                    quoted(&format!("${name}")),
                    quoted(value)
                ),
            })
        }
        Value::Array(items) => {
            let Some(Value::String(op)) = items.first() else {
                return Err(invalid("Invalid Condition: missing operation identifier."));
            };
            let shown = format!(
                "[{}]",
                items
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let op_lower = op.to_ascii_lowercase();
            if !matches!(
                op_lower.as_str(),
                "eq" | "starts-with" | "content-length-range"
            ) {
                return Err(PolicyError::Invalid(format!(
                    "Invalid Condition: unknown operation '{op}'."
                )));
            }
            if items.len() != 3 {
                return Err(PolicyError::Invalid(format!(
                    "Invalid {op}: wrong number of arguments."
                )));
            }
            if op_lower == "content-length-range" {
                return match (bound(&items[1])?, bound(&items[2])?) {
                    (Some(min), Some(max)) => Ok(Condition::Length(SizeRange { min, max })),
                    _ => Ok(Condition::Unmeetable { shown }),
                };
            }
            let (Value::String(name), Value::String(operand)) = (&items[1], &items[2]) else {
                return Err(invalid("Invalid JSON."));
            };
            let Some(field) = name.strip_prefix('$') else {
                return Ok(Condition::Unmeetable { shown });
            };
            let field = field.to_ascii_lowercase();
            Ok(if op_lower == "eq" {
                Condition::Eq {
                    field,
                    value: operand.clone(),
                    shown,
                }
            } else {
                Condition::StartsWith {
                    field,
                    prefix: operand.clone(),
                    shown,
                }
            })
        }
        _ => Err(invalid("Invalid condition test: must be a List or Object.")),
    }
}

/// A `content-length-range` bound: an integer or a string of digits (S3 takes both); `None`
/// for a string that is no number, which makes the condition unmeetable as on S3.
fn bound(v: &Value) -> Result<Option<u64>, PolicyError> {
    match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(_)) => Err(invalid(
                "Invalid content-length-range: the bounds must not be negative.",
            )),
            (None, None) => Err(invalid("Invalid JSON.")),
        },
        Value::String(s) => Ok(s.trim().parse().ok()),
        _ => Err(invalid("Invalid JSON.")),
    }
}

impl PostPolicy {
    /// Checks `form` at `now`: the expiration, then every condition but the size (returned, to
    /// be enforced as the file streams), then that every field is named by a condition unless
    /// `exempt` says it needs none.
    pub fn check(
        &self,
        form: &FormView<'_>,
        now: OffsetDateTime,
        exempt: impl Fn(&str) -> bool,
    ) -> Result<SizeRange, PolicyError> {
        if now >= self.expiration {
            return Err(PolicyError::Expired);
        }
        let mut size = SizeRange::default();
        for condition in &self.conditions {
            let holds = match condition {
                Condition::Eq { field, value, .. } => form.value(field) == Some(value.as_str()),
                Condition::StartsWith { field, prefix, .. } => form.value(field).is_some_and(|v| {
                    if field == "content-type" {
                        v.split(',')
                            .all(|item| item.trim_start().starts_with(prefix.as_str()))
                    } else {
                        v.starts_with(prefix.as_str())
                    }
                }),
                Condition::Length(range) => {
                    size.min = size.min.max(range.min);
                    size.max = size.max.min(range.max);
                    true
                }
                Condition::Unmeetable { .. } => false,
            };
            if !holds {
                return Err(PolicyError::ConditionFailed(condition.shown().to_owned()));
            }
        }
        for (name, _) in form.fields {
            let lower = name.to_ascii_lowercase();
            if exempt(&lower) || lower.starts_with("x-ignore-") {
                continue;
            }
            if !self
                .conditions
                .iter()
                .any(|c| c.field() == Some(lower.as_str()))
            {
                return Err(PolicyError::ExtraField(name.clone()));
            }
        }
        Ok(size)
    }
}

impl Condition {
    fn field(&self) -> Option<&str> {
        match self {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => Some(field),
            Condition::Length(_) | Condition::Unmeetable { .. } => None,
        }
    }

    fn shown(&self) -> &str {
        match self {
            Condition::Eq { shown, .. }
            | Condition::StartsWith { shown, .. }
            | Condition::Unmeetable { shown } => shown,
            Condition::Length(_) => "content-length-range",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(v).unwrap())
    }

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(conditions: Value, form: &[(&str, &str)]) -> Result<SizeRange, PolicyError> {
        let policy = parse(&b64(&json!({
            "expiration": "2030-01-01T00:00:00.000Z",
            "conditions": conditions,
        })))?;
        let fields = fields(form);
        policy.check(
            &FormView {
                bucket: "photos",
                fields: &fields,
            },
            at("2029-06-01T00:00:00Z"),
            |name| ["policy", "x-amz-signature", "file"].contains(&name),
        )
    }

    #[test]
    fn aws_documented_example_policy_parses() {
        // The policy of AWS's "Example: Browser-Based Upload using HTTP POST (Using AWS
        // Signature Version 4)", byte for byte (CRLF line ends), as base64 on that page.
        let b64 = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let policy = parse(b64).unwrap();
        assert_eq!(policy.expiration, at("2015-12-30T12:00:00Z"));
        assert_eq!(policy.conditions.len(), 11);
        let form = fields(&[
            ("key", "user/user1/photo.jpg"),
            ("acl", "public-read"),
            (
                "success_action_redirect",
                "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
            ),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-uuid", "14365123651274"),
            ("x-amz-server-side-encryption", "AES256"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            ),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Date", "20151229T000000Z"),
            ("x-amz-meta-tag", ""),
            ("Policy", b64),
            ("X-Amz-Signature", "8afdbf40"),
        ]);
        let view = FormView {
            bucket: "sigv4examplebucket",
            fields: &form,
        };
        let exempt = |n: &str| ["policy", "x-amz-signature", "file"].contains(&n);
        assert_eq!(
            policy.check(&view, at("2015-12-29T00:00:00Z"), exempt),
            Ok(SizeRange::default())
        );
        assert_eq!(
            policy.check(&view, at("2015-12-30T12:00:00Z"), exempt),
            Err(PolicyError::Expired)
        );
        let other_bucket = FormView {
            bucket: "elsewhere",
            fields: &form,
        };
        assert_eq!(
            policy.check(&other_bucket, at("2015-12-29T00:00:00Z"), exempt),
            Err(PolicyError::ConditionFailed(
                "[\"eq\", \"$bucket\", \"sigv4examplebucket\"]".into()
            ))
        );
    }

    #[test]
    fn conditions_hold_or_fail_as_on_s3() {
        let key = |c: Value, v: &str| check(json!([c]), &[("key", v)]);
        // Exact and prefix matches; names are case-insensitive, values are not.
        assert!(key(json!({"key": "a.txt"}), "a.txt").is_ok());
        assert!(key(json!(["eq", "$KEY", "a.txt"]), "a.txt").is_ok());
        assert!(key(json!(["StArTs-WiTh", "$key", "up/"]), "up/a").is_ok());
        assert!(key(json!(["starts-with", "$key", ""]), "anything").is_ok());
        assert_eq!(
            key(json!(["starts-with", "$key", "up/"]), "UP/a"),
            Err(PolicyError::ConditionFailed(
                "[\"starts-with\", \"$key\", \"up/\"]".into()
            ))
        );
        assert_eq!(
            key(json!({"key": "a.txt"}), "b.txt"),
            Err(PolicyError::ConditionFailed(
                "[\"eq\", \"$key\", \"a.txt\"]".into()
            ))
        );
        // A name without `$` never holds.
        assert!(matches!(
            key(json!(["eq", "key", "a.txt"]), "a.txt"),
            Err(PolicyError::ConditionFailed(_))
        ));
        // A condition on an absent field fails, even `starts-with ""`.
        assert!(matches!(
            check(
                json!([{"key": "k"}, ["starts-with", "$Content-Type", ""]]),
                &[("key", "k")]
            ),
            Err(PolicyError::ConditionFailed(_))
        ));
        // Content-Type lists: every item must match.
        let ct = |v: &str| {
            check(
                json!([{"key": "k"}, ["starts-with", "$Content-Type", "image/"]]),
                &[("key", "k"), ("Content-Type", v)],
            )
        };
        assert!(ct("image/jpg,image/png, image/gif").is_ok());
        assert!(ct("image/jpg,text/plain").is_err());
        // Other fields with commas are plain strings.
        assert!(key(json!(["starts-with", "$key", "a,"]), "a,b").is_ok());
    }

    #[test]
    fn every_field_must_be_named_by_a_condition() {
        assert_eq!(
            check(
                json!([{"key": "k"}]),
                &[("key", "k"), ("X-Amz-Meta-Note", "x")]
            ),
            Err(PolicyError::ExtraField("X-Amz-Meta-Note".into()))
        );
        assert!(
            check(
                json!([{"key": "k"}]),
                &[
                    ("key", "k"),
                    ("x-ignore-me", "x"),
                    ("Policy", "p"),
                    ("X-Amz-Signature", "s")
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn content_length_ranges_intersect() {
        assert_eq!(
            check(
                json!([{"key": "k"}, ["content-length-range", 10, 1000], ["content-length-range", "5", "100"]]),
                &[("key", "k")]
            ),
            Ok(SizeRange { min: 10, max: 100 })
        );
        // S3 reads numeric strings; other strings make the condition fail.
        assert!(matches!(
            check(json!([["content-length-range", "test", "10"]]), &[]),
            Err(PolicyError::ConditionFailed(c)) if c == "[\"content-length-range\", \"test\", \"10\"]"
        ));
    }

    #[test]
    fn malformed_policies_are_invalid_policy_documents() {
        let bad = |doc: Value| match parse(&b64(&doc)) {
            Err(PolicyError::Invalid(m)) => m,
            other => panic!("{doc} gave {other:?}"),
        };
        let exp = "2030-01-01T00:00:00Z";
        assert_eq!(bad(json!({"conditions": []})), "Policy missing expiration.");
        assert_eq!(
            bad(json!({"expiration": exp})),
            "Policy missing conditions."
        );
        assert_eq!(
            bad(json!({"EXPIRATION": exp, "conditions": []})),
            "Unexpected: 'expiration'"
        );
        assert_eq!(
            bad(json!({"expiration": exp, "conditions": {}})),
            "Invalid 'conditions' value: must be a List."
        );
        assert_eq!(
            bad(json!({"expiration": "2030-01-01T00:00:00+02:00", "conditions": []})),
            "Invalid 'expiration' value: '2030-01-01T00:00:00+02:00'"
        );
        assert_eq!(
            bad(json!({"expiration": "2030-01-01 00:00:00 UTC", "conditions": []})),
            "Invalid 'expiration' value: '2030-01-01 00:00:00 UTC'"
        );
        let cond = |c: Value| bad(json!({"expiration": exp, "conditions": [c]}));
        assert!(cond(json!({})).contains("exactly one property"));
        assert!(cond(json!({"a": "1", "b": "2"})).contains("exactly one property"));
        assert_eq!(
            cond(json!({"Content-Length": 6199034})),
            "Invalid Simple-Condition: value must be a string."
        );
        assert_eq!(
            cond(json!({"success_action_redirect": null})),
            "Invalid JSON."
        );
        assert_eq!(
            cond(json!(["content-length-range", 0, 512.0])),
            "Invalid JSON."
        );
        assert!(cond(json!(["content-length-range", -1, 0])).contains("negative"));
        assert_eq!(
            cond(json!(["content-length-range", 0])),
            "Invalid content-length-range: wrong number of arguments."
        );
        assert_eq!(
            cond(json!(["matches", "$key", "x"])),
            "Invalid Condition: unknown operation 'matches'."
        );
        assert_eq!(
            cond(json!([])),
            "Invalid Condition: missing operation identifier."
        );
        assert_eq!(
            cond(json!("key")),
            "Invalid condition test: must be a List or Object."
        );
        assert_eq!(
            parse("not base64!").unwrap_err(),
            invalid("invalid Base64 encoding.")
        );
        assert_eq!(
            parse(&base64::engine::general_purpose::STANDARD.encode("{\"expiration\": "))
                .unwrap_err(),
            invalid("Invalid JSON.")
        );
    }
}
