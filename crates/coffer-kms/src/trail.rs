//! The CloudTrail-shaped audit events of the key service (DESIGN §6): one per API request, success
//! or failure, and one per service event (automatic rotation, key deletion).
//!
//! What goes into `requestParameters` is an allow-list ([`RequestParameters`]): fields not named
//! there never reach the log. Plaintext, ciphertext blobs, data keys, grant tokens and attestation
//! documents are deliberately absent, and must stay so. The log itself (hash chain, durability) is
//! `audit.rs`; this module only builds the JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::Recovery;
use crate::ids::Arns;
use crate::refusals::Summary;
use crate::router::Op;
use crate::{Caller, KmsConfig, KmsError};

/// The request fields copied into `requestParameters`, renamed to CloudTrail's camelCase.
/// Everything else in a request body is dropped unread.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RequestParameters {
    #[serde(
        rename(deserialize = "KeyId", serialize = "keyId"),
        skip_serializing_if = "Option::is_none"
    )]
    key_id: Option<Value>,
    #[serde(
        rename(deserialize = "EncryptionContext", serialize = "encryptionContext"),
        skip_serializing_if = "Option::is_none"
    )]
    encryption_context: Option<Value>,
    #[serde(
        rename(deserialize = "KeySpec", serialize = "keySpec"),
        skip_serializing_if = "Option::is_none"
    )]
    key_spec: Option<Value>,
    #[serde(
        rename(
            deserialize = "CustomerMasterKeySpec",
            serialize = "customerMasterKeySpec"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    customer_master_key_spec: Option<Value>,
    #[serde(
        rename(deserialize = "KeyUsage", serialize = "keyUsage"),
        skip_serializing_if = "Option::is_none"
    )]
    key_usage: Option<Value>,
    #[serde(
        rename(deserialize = "Origin", serialize = "origin"),
        skip_serializing_if = "Option::is_none"
    )]
    origin: Option<Value>,
    #[serde(
        rename(deserialize = "MultiRegion", serialize = "multiRegion"),
        skip_serializing_if = "Option::is_none"
    )]
    multi_region: Option<Value>,
    #[serde(
        rename(deserialize = "NumberOfBytes", serialize = "numberOfBytes"),
        skip_serializing_if = "Option::is_none"
    )]
    number_of_bytes: Option<Value>,
    #[serde(
        rename(deserialize = "Description", serialize = "description"),
        skip_serializing_if = "Option::is_none"
    )]
    description: Option<Value>,
    #[serde(
        rename(deserialize = "Tags", serialize = "tags"),
        skip_serializing_if = "Option::is_none"
    )]
    tags: Option<Value>,
    #[serde(
        rename(deserialize = "TagKeys", serialize = "tagKeys"),
        skip_serializing_if = "Option::is_none"
    )]
    tag_keys: Option<Value>,
    #[serde(
        rename(deserialize = "AliasName", serialize = "aliasName"),
        skip_serializing_if = "Option::is_none"
    )]
    alias_name: Option<Value>,
    #[serde(
        rename(deserialize = "TargetKeyId", serialize = "targetKeyId"),
        skip_serializing_if = "Option::is_none"
    )]
    target_key_id: Option<Value>,
    #[serde(
        rename(deserialize = "SourceKeyId", serialize = "sourceKeyId"),
        skip_serializing_if = "Option::is_none"
    )]
    source_key_id: Option<Value>,
    #[serde(
        rename(deserialize = "DestinationKeyId", serialize = "destinationKeyId"),
        skip_serializing_if = "Option::is_none"
    )]
    destination_key_id: Option<Value>,
    #[serde(
        rename(
            deserialize = "SourceEncryptionContext",
            serialize = "sourceEncryptionContext"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    source_encryption_context: Option<Value>,
    #[serde(
        rename(
            deserialize = "DestinationEncryptionContext",
            serialize = "destinationEncryptionContext"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    destination_encryption_context: Option<Value>,
    #[serde(
        rename(deserialize = "EncryptionAlgorithm", serialize = "encryptionAlgorithm"),
        skip_serializing_if = "Option::is_none"
    )]
    encryption_algorithm: Option<Value>,
    #[serde(
        rename(
            deserialize = "SourceEncryptionAlgorithm",
            serialize = "sourceEncryptionAlgorithm"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    source_encryption_algorithm: Option<Value>,
    #[serde(
        rename(
            deserialize = "DestinationEncryptionAlgorithm",
            serialize = "destinationEncryptionAlgorithm"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    destination_encryption_algorithm: Option<Value>,
    #[serde(
        rename(deserialize = "PendingWindowInDays", serialize = "pendingWindowInDays"),
        skip_serializing_if = "Option::is_none"
    )]
    pending_window_in_days: Option<Value>,
    #[serde(
        rename(
            deserialize = "RotationPeriodInDays",
            serialize = "rotationPeriodInDays"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    rotation_period_in_days: Option<Value>,
    #[serde(
        rename(deserialize = "PolicyName", serialize = "policyName"),
        skip_serializing_if = "Option::is_none"
    )]
    policy_name: Option<Value>,
    #[serde(
        rename(deserialize = "Policy", serialize = "policy"),
        skip_serializing_if = "Option::is_none"
    )]
    policy: Option<Value>,
    #[serde(
        rename(
            deserialize = "BypassPolicyLockoutSafetyCheck",
            serialize = "bypassPolicyLockoutSafetyCheck"
        ),
        skip_serializing_if = "Option::is_none"
    )]
    bypass_policy_lockout_safety_check: Option<Value>,
    #[serde(
        rename(deserialize = "Limit", serialize = "limit"),
        skip_serializing_if = "Option::is_none"
    )]
    limit: Option<Value>,
    #[serde(
        rename(deserialize = "Marker", serialize = "marker"),
        skip_serializing_if = "Option::is_none"
    )]
    marker: Option<Value>,
    #[serde(
        rename(deserialize = "DryRun", serialize = "dryRun"),
        skip_serializing_if = "Option::is_none"
    )]
    dry_run: Option<Value>,
}

impl RequestParameters {
    /// The allowed fields of a request body; `None` when the body is not a JSON object.
    pub fn from_body(body: &[u8]) -> Option<RequestParameters> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            body
        };
        serde_json::from_slice(body).ok()
    }
}

/// What one API request did, for its audit event.
pub struct ApiCall<'a> {
    /// Who asked.
    pub caller: &'a Caller,
    /// The operation name as asked (for an unknown operation, the sanitized name).
    pub event_name: &'a str,
    /// Whether the operation changes nothing.
    pub read_only: bool,
    /// When the request arrived.
    pub time: OffsetDateTime,
    /// The allowed request fields.
    pub parameters: Option<RequestParameters>,
    /// Non-secret response fields (key ARNs, states, dates), or none.
    pub response: Option<Value>,
    /// ARNs of the keys the request touched.
    pub resources: &'a [String],
    /// The outcome.
    pub error: Option<&'a KmsError>,
}

/// CloudTrail's `userIdentity` of an authenticated caller: `Root` or `IAMUser`.
fn caller_identity(arns: &Arns, caller: &Caller) -> Value {
    let mut identity = json!({
        "arn": caller.principal_arn,
        "accountId": arns.account(),
        "accessKeyId": caller.access_key,
    });
    match caller.principal_arn.rsplit_once(":user/") {
        Some((_, user)) => {
            identity["type"] = "IAMUser".into();
            identity["principalId"] = caller.access_key.clone().into();
            identity["userName"] = user.into();
        }
        None => {
            identity["type"] = "Root".into();
            identity["principalId"] = arns.account().into();
        }
    }
    identity
}

/// The CloudTrail record of an API request.
pub fn api_call(arns: &Arns, call: ApiCall<'_>) -> Value {
    let caller = call.caller;
    let identity = caller_identity(arns, caller);
    let mut event = api_event(
        arns,
        identity,
        call.time,
        call.event_name,
        EventOrigin {
            source_ip: &caller.source_ip,
            user_agent: caller.user_agent.as_deref(),
            request_id: &caller.request_id,
        },
    );
    event["requestParameters"] = call.parameters.map_or(Value::Null, |p| {
        serde_json::to_value(p).unwrap_or(Value::Null)
    });
    event["responseElements"] = call.response.unwrap_or(Value::Null);
    event["readOnly"] = call.read_only.into();
    event["resources"] = resources(arns, call.resources);
    if let Some(err) = call.error {
        event["errorCode"] = err.error_type().into();
        event["errorMessage"] = err.message().into();
    }
    event
}

/// What one call an AWS service made for its caller did (see `for_services.rs`), for its audit
/// event.
pub struct ServiceCall<'a> {
    /// The service's caller, on whose behalf the call was made.
    pub caller: &'a Caller,
    /// The service, as CloudTrail names it: `s3.amazonaws.com`.
    pub invoked_by: &'a str,
    /// The operation: `GenerateDataKey`, `Decrypt`, or `CreateKey` / `CreateAlias` for an AWS
    /// managed key made on first use.
    pub event_name: &'a str,
    /// Whether the operation changes nothing.
    pub read_only: bool,
    /// When the call was made.
    pub time: OffsetDateTime,
    /// `requestParameters`: built by the caller of this function from typed fields, never from
    /// anything secret.
    pub parameters: Value,
    /// Non-secret response fields, or none.
    pub response: Option<Value>,
    /// ARNs of the keys the call touched.
    pub resources: &'a [String],
    /// The outcome.
    pub error: Option<&'a KmsError>,
}

/// The CloudTrail record of a call an AWS service made on its caller's behalf, in the shape
/// CloudTrail gives the KMS events of SSE-KMS: `userIdentity` is the caller with `invokedBy` the
/// service, and `sourceIPAddress` and `userAgent` are the service. The caller's own address and
/// user agent, which CloudTrail does not show there, are kept in `additionalEventData`
/// (`callerSourceIPAddress`, `callerUserAgent`).
pub fn service_call(arns: &Arns, call: ServiceCall<'_>) -> Value {
    let caller = call.caller;
    let mut identity = caller_identity(arns, caller);
    identity["invokedBy"] = call.invoked_by.into();
    let mut event = api_event(
        arns,
        identity,
        call.time,
        call.event_name,
        EventOrigin {
            source_ip: call.invoked_by,
            user_agent: Some(call.invoked_by),
            request_id: &caller.request_id,
        },
    );
    event["requestParameters"] = call.parameters;
    event["responseElements"] = call.response.unwrap_or(Value::Null);
    event["additionalEventData"] = json!({
        "callerSourceIPAddress": caller.source_ip,
        "callerUserAgent": caller.user_agent.as_deref().map(|ua| cap(ua, MAX_USER_AGENT)),
    });
    event["readOnly"] = call.read_only.into();
    event["resources"] = resources(arns, call.resources);
    if let Some(err) = call.error {
        event["errorCode"] = err.error_type().into();
        event["errorMessage"] = err.message().into();
    }
    event
}

/// Where an API request came from, as the transport saw it.
struct EventOrigin<'a> {
    source_ip: &'a str,
    user_agent: Option<&'a str>,
    request_id: &'a str,
}

/// Longest `userAgent` kept (CloudTrail also cuts long user agents).
pub const MAX_USER_AGENT: usize = 256;
/// Longest claimed access key id kept (AWS access key ids are at most 128 characters).
pub const MAX_ACCESS_KEY_ID: usize = 128;
/// Longest error message of a refused request kept: some echo parts of the request.
pub const MAX_ERROR_MESSAGE: usize = 512;

/// At most `max` bytes of `text`, cut at a character boundary: nothing unbounded from a request
/// may reach the log.
pub fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The CloudTrail skeleton every `AwsApiCall` record shares; the request-specific fields start
/// empty (no parameters, no response, no resources, not read-only) for callers to fill in.
fn api_event(
    arns: &Arns,
    identity: Value,
    time: OffsetDateTime,
    event_name: &str,
    origin: EventOrigin<'_>,
) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": event_time(time),
        "eventSource": "kms.amazonaws.com",
        "eventName": event_name,
        "awsRegion": arns.region(),
        "sourceIPAddress": origin.source_ip,
        "userAgent": origin.user_agent.map(|ua| cap(ua, MAX_USER_AGENT)),
        "requestParameters": null,
        "responseElements": null,
        "requestID": origin.request_id,
        "eventID": event_id(),
        "readOnly": false,
        "resources": [],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": arns.account(),
        "eventCategory": "Management",
    })
}

/// A request refused before its caller was known: bad or missing signature, unknown access key,
/// plain HTTP, an unreadable body. Nothing in it was verified, so the event records only what
/// the transport saw — the access key id the request *claimed*, never its body.
pub struct RefusedCall<'a> {
    /// The access key id from the `Authorization` header, if one could be read.
    pub claimed_access_key: Option<&'a str>,
    /// The operation named by `X-Amz-Target` (sanitized by [`sanitize_event_name`]).
    pub event_name: &'a str,
    pub source_ip: &'a str,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
    /// The error type and message the client was answered with.
    pub error_code: &'a str,
    pub error_message: &'a str,
}

/// The CloudTrail record of a refused request; `userIdentity.type` is `Unknown`, as CloudTrail
/// writes for callers it could not authenticate.
pub fn refused_call(arns: &Arns, time: OffsetDateTime, call: RefusedCall<'_>) -> Value {
    let mut identity = json!({ "type": "Unknown", "accountId": arns.account() });
    if let Some(key) = call.claimed_access_key {
        identity["accessKeyId"] = cap(key, MAX_ACCESS_KEY_ID).into();
    }
    let event_name = sanitize_event_name(call.event_name);
    // CloudTrail's readOnly belongs to the API, not to whether the call got through.
    let read_only = Op::parse(&event_name).is_some_and(Op::read_only);
    let mut event = api_event(
        arns,
        identity,
        time,
        &event_name,
        EventOrigin {
            source_ip: call.source_ip,
            user_agent: call.user_agent,
            request_id: call.request_id,
        },
    );
    event["readOnly"] = read_only.into();
    event["errorCode"] = cap(call.error_code, 64).into();
    event["errorMessage"] = cap(call.error_message, MAX_ERROR_MESSAGE).into();
    event
}

/// The record of refusals a window counted but did not log one by one (see `refusals.rs`): an
/// `AwsServiceEvent` named `RefusedRequestsSummary`, whose `sourceIPAddress` is the source (an
/// IPv4 address, an IPv6 /64, or `*` for sources beyond the tracked ones) and whose
/// `serviceEventDetails` carry the counts.
pub(crate) fn refusals_summary(arns: &Arns, summary: &Summary) -> Value {
    let tally = &summary.tally;
    json!({
        "eventVersion": "1.08",
        "userIdentity": { "type": "Unknown", "accountId": arns.account() },
        "eventTime": event_time(summary.window_end),
        "eventSource": "kms.amazonaws.com",
        "eventName": "RefusedRequestsSummary",
        "awsRegion": arns.region(),
        "sourceIPAddress": summary.source,
        "userAgent": null,
        "requestParameters": null,
        "responseElements": null,
        "eventID": event_id(),
        "readOnly": false,
        "resources": [],
        "eventType": "AwsServiceEvent",
        "managementEvent": true,
        "recipientAccountId": arns.account(),
        "errorCode": summary.error_code,
        "errorMessage": format!(
            "{} requests from {} were refused with {} before authentication; {} of them are \
             logged as their own events",
            tally.refused, summary.source, summary.error_code, tally.logged
        ),
        "serviceEventDetails": {
            "refusedRequests": tally.refused,
            "loggedIndividually": tally.logged,
            "firstEventTime": event_time(tally.first),
            "lastEventTime": event_time(tally.last),
            "eventNames": tally.event_names,
            "windowStart": event_time(summary.window_start),
            "windowEnd": event_time(summary.window_end),
        },
        "eventCategory": "Management",
    })
}

/// The first event of a chain started by a recovery (`coffer serve --audit-log-recover`): what
/// was wrong with the old log, where it was moved, and the anchor it failed.
pub fn audit_log_recovered(cfg: &KmsConfig, time: OffsetDateTime, recovery: &Recovery) -> Value {
    let arns = Arns::new(&cfg.region, &cfg.account_id);
    json!({
        "eventVersion": "1.08",
        "userIdentity": { "accountId": arns.account(), "invokedBy": "coffer" },
        "eventTime": event_time(time),
        "eventSource": "kms.amazonaws.com",
        "eventName": "AuditLogRecovered",
        "awsRegion": arns.region(),
        "sourceIPAddress": "coffer",
        "userAgent": "coffer",
        "requestParameters": null,
        "responseElements": null,
        "eventID": event_id(),
        "readOnly": false,
        "resources": [],
        "eventType": "AwsServiceEvent",
        "managementEvent": true,
        "recipientAccountId": arns.account(),
        "serviceEventDetails": {
            "finding": recovery.mismatch.kind(),
            "description": recovery.mismatch.to_string(),
            "rejectedLog": recovery.rejected_log.as_ref().map(|p| p.display().to_string()),
            "previousAnchor": recovery.previous_anchor.map(|a| json!({
                "lines": a.lines,
                "bytes": a.bytes,
                "link": hex::encode(a.link),
            })),
        },
        "eventCategory": "Management",
    })
}

/// The CloudTrail record of something the service did on its own (`RotateKey`, `DeleteKey`).
pub fn service_event(
    arns: &Arns,
    event_name: &str,
    time: OffsetDateTime,
    key_arn: &str,
    details: Value,
) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": { "accountId": arns.account(), "invokedBy": "kms.amazonaws.com" },
        "eventTime": event_time(time),
        "eventSource": "kms.amazonaws.com",
        "eventName": event_name,
        "awsRegion": arns.region(),
        "sourceIPAddress": "kms.amazonaws.com",
        "userAgent": "kms.amazonaws.com",
        "requestParameters": null,
        "responseElements": null,
        "eventID": event_id(),
        "readOnly": false,
        "resources": resources(arns, &[key_arn.to_owned()]),
        "eventType": "AwsServiceEvent",
        "managementEvent": true,
        "recipientAccountId": arns.account(),
        "serviceEventDetails": details,
        "eventCategory": "Management",
    })
}

fn resources(arns: &Arns, key_arns: &[String]) -> Value {
    key_arns
        .iter()
        .map(|arn| json!({ "accountId": arns.account(), "type": "AWS::KMS::Key", "ARN": arn }))
        .collect()
}

/// A random (v4) UUID for `eventID`, from the user-space generator: one `getrandom` system call
/// per request showed in profiles of the crypto path.
fn event_id() -> String {
    match coffer_crypto::random_array::<16>() {
        Ok(bytes) => uuid::Builder::from_random_bytes(bytes).into_uuid(),
        Err(_) => uuid::Uuid::new_v4(),
    }
    .hyphenated()
    .to_string()
}

/// CloudTrail's time format: RFC 3339, UTC, whole seconds.
fn event_time(time: OffsetDateTime) -> String {
    time.replace_nanosecond(0)
        .unwrap_or(time)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// An operation name fit for the log: at most 64 ASCII letters and digits (the name of an unknown
/// operation is whatever the client sent).
pub fn sanitize_event_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(arn: &str) -> Caller {
        Caller {
            access_key: "AKIAEXAMPLE".into(),
            principal_arn: arn.into(),
            source_ip: "192.0.2.1".into(),
            user_agent: Some("aws-cli/2".into()),
            request_id: "req-1".into(),
            secure_transport: true,
            identity: coffer_policy::Identity::Root,
        }
    }

    fn arns() -> Arns {
        Arns::new("us-east-1", "111122223333")
    }

    #[test]
    fn request_parameters_keep_only_allowed_fields() {
        let body = br#"{"KeyId":"alias/x","Plaintext":"c2VjcmV0","EncryptionContext":{"a":"b"},
            "GrantTokens":["t"],"CiphertextBlob":"AAAA","NumberOfBytes":32,"Recipient":{}}"#;
        let params = RequestParameters::from_body(body).unwrap();
        let value = serde_json::to_value(params).unwrap();
        assert_eq!(
            value,
            json!({"keyId":"alias/x","encryptionContext":{"a":"b"},"numberOfBytes":32})
        );
        assert!(RequestParameters::from_body(b"[1]").is_none());
    }

    #[test]
    fn api_call_event_has_the_cloudtrail_shape() {
        let c = caller("arn:aws:iam::111122223333:user/alice");
        let err = KmsError::Disabled("k is disabled.".into());
        let event = api_call(
            &arns(),
            ApiCall {
                caller: &c,
                event_name: "Encrypt",
                read_only: true,
                time: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
                parameters: RequestParameters::from_body(br#"{"KeyId":"k"}"#),
                response: None,
                resources: &["arn:aws:kms:us-east-1:111122223333:key/k".into()],
                error: Some(&err),
            },
        );
        assert_eq!(event["eventVersion"], "1.08");
        assert_eq!(event["userIdentity"]["type"], "IAMUser");
        assert_eq!(event["userIdentity"]["userName"], "alice");
        assert_eq!(event["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
        assert_eq!(event["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(event["eventSource"], "kms.amazonaws.com");
        assert_eq!(event["eventType"], "AwsApiCall");
        assert_eq!(event["errorCode"], "DisabledException");
        assert_eq!(event["requestParameters"]["keyId"], "k");
        assert_eq!(event["resources"][0]["type"], "AWS::KMS::Key");
        assert_eq!(event["requestID"], "req-1");
        assert_eq!(event["eventID"].as_str().unwrap().len(), 36);
    }

    #[test]
    fn root_caller_is_type_root() {
        let c = caller("arn:aws:iam::111122223333:root");
        let event = api_call(
            &arns(),
            ApiCall {
                caller: &c,
                event_name: "ListKeys",
                read_only: true,
                time: OffsetDateTime::UNIX_EPOCH,
                parameters: None,
                response: None,
                resources: &[],
                error: None,
            },
        );
        assert_eq!(event["userIdentity"]["type"], "Root");
        assert_eq!(event["userIdentity"]["principalId"], "111122223333");
        assert!(event.get("errorCode").is_none());
    }

    #[test]
    fn a_call_made_by_s3_for_the_root_user_has_cloudtrails_shape() {
        let c = caller("arn:aws:iam::111122223333:root");
        let err = KmsError::Disabled("k is disabled.".into());
        let event = service_call(
            &arns(),
            ServiceCall {
                caller: &c,
                invoked_by: "s3.amazonaws.com",
                event_name: "Decrypt",
                read_only: true,
                time: OffsetDateTime::UNIX_EPOCH,
                parameters: json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
                response: None,
                resources: &["arn:k".into()],
                error: Some(&err),
            },
        );
        assert_eq!(
            event["userIdentity"],
            json!({"type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root",
                   "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE", "invokedBy": "s3.amazonaws.com"})
        );
        assert_eq!(event["sourceIPAddress"], "s3.amazonaws.com");
        assert_eq!(event["userAgent"], "s3.amazonaws.com");
        assert_eq!(
            event["additionalEventData"],
            json!({"callerSourceIPAddress": "192.0.2.1", "callerUserAgent": "aws-cli/2"})
        );
        assert_eq!(event["requestID"], "req-1");
        assert_eq!(event["eventType"], "AwsApiCall");
        assert_eq!(event["errorCode"], "DisabledException");
        assert_eq!(event["resources"][0]["ARN"], "arn:k");
    }

    #[test]
    fn service_events_name_the_key() {
        let event = service_event(
            &arns(),
            "DeleteKey",
            OffsetDateTime::UNIX_EPOCH,
            "arn:k",
            json!({}),
        );
        assert_eq!(event["eventType"], "AwsServiceEvent");
        assert_eq!(event["resources"][0]["ARN"], "arn:k");
        assert_eq!(event["userIdentity"]["invokedBy"], "kms.amazonaws.com");
    }

    #[test]
    fn unknown_operation_names_are_sanitized() {
        assert_eq!(sanitize_event_name("Foo\n\"Bar"), "FooBar");
        assert_eq!(sanitize_event_name(&"x".repeat(100)).len(), 64);
    }
}
