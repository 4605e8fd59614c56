//! The AWS JSON policy grammar, parsed once and evaluated per request: KMS key policies, IAM
//! identity policies and S3 bucket policies, so nothing here knows about KMS or S3.
//!
//! A document is a list of statements; [`evaluate`] finds the statements whose principal, action,
//! resource and conditions all match the request. An explicit `Deny` wins over any `Allow`; with
//! no matching statement the request is implicitly denied. *Resource* policies (key policies,
//! bucket policies; [`PolicyDocument::parse`]) must name a `Principal` (or `NotPrincipal`) in
//! every statement; *identity* policies ([`PolicyDocument::parse_identity`]) are attached to a
//! user and must not. Every statement names an `Action` (or `NotAction`) and a `Resource` (or
//! `NotResource`). [`authorize`] combines a caller's identity policies with a resource policy the
//! way AWS does within one account.
//!
//! **Principals.** A principal entry `"*"` matches every caller. In an `Allow`, an account
//! principal — `"arn:aws:iam::<account>:root"` or the bare 12-digit account id — grants the
//! account's root user, and *delegates* for every other principal of the account: as in AWS, it
//! grants a user only as far as that user's identity policies allow the request
//! ([`EvalContext::account_delegation`], which [`authorize`] works out). In a `Deny` it binds every
//! principal of the account, whatever grants them access; and a `Deny` with `NotPrincipal`
//! exempts a user only when it lists both the user and its account (AWS: a request is made as the
//! user and as its account). Any other ARN matches the caller's ARN exactly (no wildcards; use
//! `ArnLike` on `aws:PrincipalArn` in a condition for patterns). `Service`, `Federated` and
//! `CanonicalUser` principals are accepted but never match a Coffer caller.
//!
//! **Actions** match case-insensitively, **resources** case-sensitively; both take the wildcards
//! `*` (any run of characters) and `?` (one character). In a Version `2012-10-17` policy,
//! `Resource` entries and string and ARN condition values may hold policy variables
//! (`${aws:username}`, `${aws:PrincipalAccount}`, any single-valued condition key, with an
//! optional `'default'`, and `${*}`, `${?}`, `${$}`), expanded per request: see `variables.rs`.
//!
//! **Conditions**: every operator block and every key in it must hold; a key holds when the
//! request value matches any of the listed values (for a negated operator such as
//! `StringNotEquals`, when it matches none of them). Context key names compare
//! case-insensitively, values as the operator says. A key missing from the request makes the
//! condition false, except: negated operators are true, `…IfExists` is true, `Null` tests for it,
//! `ForAllValues:` is true (vacuously) and `ForAnyValue:` is false. A key present with no values
//! counts as missing. Without a set prefix, a key with several values holds when any value matches
//! (negated: when none does). When the request does not supply them, `aws:PrincipalArn`,
//! `aws:PrincipalAccount`, `kms:CallerAccount` and `aws:ResourceAccount` are taken from the
//! [`EvalContext`].
//!
//! This module must never do I/O or consult anything but the document and the context: the same
//! inputs always give the same [`Decision`]. It must never allow on a parse it is unsure of: what
//! it cannot read exactly (unknown fields, unknown operators, duplicate JSON keys, unparsable
//! condition values) is rejected as [`PolicyError::Malformed`] when the policy is stored.
//!
//! S3 bucket policies add S3's own checks (actions, resources of the bucket, condition keys, the
//! 20 KB limit) and the "is it public" rule: see [`parse_bucket_policy`] and [`is_public`].

mod bucket;
mod variables;

pub use bucket::{
    MAX_BUCKET_POLICY_BYTES, SUPPLIED_S3_CONDITION_KEYS, is_public, parse_bucket_policy,
};

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use variables::Text;

/// Largest policy document accepted, in bytes (AWS KMS's key policy limit, 32 KiB).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not a policy this grammar accepts; the message names the statement and field.
    #[error("malformed policy document: {0}")]
    Malformed(String),
}

fn malformed(msg: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(msg.into())
}

/// A parsed policy, ready to be evaluated many times.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

/// Which side of an authorization a document is on: it decides whether statements name a
/// principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Attached to a resource (key policy, bucket policy): every statement names its principals.
    Resource,
    /// Attached to a user: statements apply to that user and name no principal.
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of entries in a `Foo` (matches when any entry matches) or `NotFoo` element (matches
/// when none does).
#[derive(Debug, Clone)]
struct Element<T> {
    negated: bool,
    entries: Vec<T>,
}

impl<T> Element<T> {
    fn matches(&self, entry_matches: impl Fn(&T) -> bool) -> bool {
        self.entries.iter().any(entry_matches) != self.negated
    }
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    /// `None` in identity policies, whose statements apply to the user they are attached to.
    principal: Option<Element<Principal>>,
    /// Lower-cased patterns.
    action: Element<String>,
    resource: Element<Text>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Everyone,
    /// Every principal of this account.
    Account(String),
    /// Exactly this principal ARN.
    Arn(String),
    /// A service, federated or canonical-user principal: never a Coffer caller.
    Never,
}

impl PolicyDocument {
    /// Parses and validates a policy: `Version` "2012-10-17" or "2008-10-17" (absent means
    /// "2008-10-17", as in AWS), an optional `Id`, and `Statement` as one object or a non-empty
    /// array. Refuses documents over [`MAX_POLICY_BYTES`], bad JSON, duplicate keys, unknown
    /// fields, an `Effect` other than `Allow`/`Deny`, and statements missing their principal,
    /// action or resource.
    pub fn parse(json: &str) -> Result<PolicyDocument, PolicyError> {
        Self::parse_as(json, Kind::Resource)
    }

    /// Parses an identity policy (attached to a user): as [`PolicyDocument::parse`], except that
    /// a statement must not name a `Principal` or `NotPrincipal`.
    pub fn parse_identity(json: &str) -> Result<PolicyDocument, PolicyError> {
        Self::parse_as(json, Kind::Identity)
    }

    /// Whether some statement has a condition on `key` (compared case-insensitively): lets a
    /// caller skip gathering a costly condition key no policy looks at.
    pub fn tests_condition_key(&self, key: &str) -> bool {
        self.statements
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.key.eq_ignore_ascii_case(key))
    }

    fn parse_as(json: &str, kind: Kind) -> Result<PolicyDocument, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!(
                "the policy is {} bytes; at most {MAX_POLICY_BYTES} are allowed",
                json.len()
            )));
        }
        let StrictValue(value) = serde_json::from_str(json)
            .map_err(|e| malformed(format!("the policy is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(malformed("the policy must be a JSON object"));
        };
        let mut statements = None;
        // Policy variables exist from Version 2012-10-17 on; without a Version, 2008-10-17.
        let mut variables = false;
        for (field, value) in &top {
            match field.as_str() {
                "Version" => match value.as_str() {
                    Some("2012-10-17") => variables = true,
                    Some("2008-10-17") => {}
                    _ => {
                        return Err(malformed(format!(
                            "Version must be \"2012-10-17\" or \"2008-10-17\", not {value}"
                        )));
                    }
                },
                "Id" => {
                    if !value.is_string() {
                        return Err(malformed("Id must be a string"));
                    }
                }
                "Statement" => statements = Some(value),
                other => {
                    return Err(malformed(format!(
                        "unknown field \"{other}\" in the policy (expected Version, Id, Statement)"
                    )));
                }
            }
        }
        let statements = match statements {
            None => return Err(malformed("the policy has no Statement")),
            Some(Value::Array(list)) if list.is_empty() => {
                return Err(malformed("Statement must not be an empty list"));
            }
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(malformed(
                    "Statement must be an object or a list of objects",
                ));
            }
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| Statement::parse(i + 1, s, kind, variables))
            .collect::<Result<_, _>>()?;
        Ok(PolicyDocument { statements })
    }
}

impl Statement {
    fn parse(
        number: usize,
        value: &Value,
        kind: Kind,
        variables: bool,
    ) -> Result<Statement, PolicyError> {
        let Value::Object(fields) = value else {
            return Err(malformed(format!(
                "statement {number} is not a JSON object"
            )));
        };
        let name = match fields.get("Sid") {
            Some(Value::String(sid)) => format!("statement {number} (Sid \"{sid}\")"),
            Some(_) => {
                return Err(malformed(format!(
                    "statement {number}: Sid must be a string"
                )));
            }
            None => format!("statement {number}"),
        };
        let mut effect = None;
        let mut principal = None;
        let mut action = None;
        let mut resource = None;
        let mut conditions = Vec::new();
        for (field, value) in fields {
            let twice = || malformed(format!("{name} has both {field} and its Not form"));
            match field.as_str() {
                "Sid" => {}
                "Effect" => {
                    effect = Some(match value.as_str() {
                        Some("Allow") => Effect::Allow,
                        Some("Deny") => Effect::Deny,
                        _ => {
                            return Err(malformed(format!(
                                "{name}: Effect must be \"Allow\" or \"Deny\", not {value}"
                            )));
                        }
                    });
                }
                "Principal" | "NotPrincipal" if kind == Kind::Identity => {
                    return Err(malformed(format!(
                        "{name} has a {field}: an identity policy applies to the user it is \
                         attached to and must not name principals"
                    )));
                }
                "Principal" | "NotPrincipal" => {
                    if principal.is_some() {
                        return Err(twice());
                    }
                    principal = Some(Element {
                        negated: field == "NotPrincipal",
                        entries: parse_principal(&name, field, value)?,
                    });
                }
                "Action" | "NotAction" => {
                    if action.is_some() {
                        return Err(twice());
                    }
                    let entries = string_list(&name, field, value)?
                        .into_iter()
                        .map(|a| parse_action(&name, field, a))
                        .collect::<Result<_, _>>()?;
                    action = Some(Element {
                        negated: field == "NotAction",
                        entries,
                    });
                }
                "Resource" | "NotResource" => {
                    if resource.is_some() {
                        return Err(twice());
                    }
                    let entries = string_list(&name, field, value)?
                        .into_iter()
                        .map(|r| {
                            if r.is_empty() {
                                Err(malformed(format!("{name}: {field} has an empty entry")))
                            } else {
                                Text::parse(&format!("{name}: {field}"), r, variables)
                            }
                        })
                        .collect::<Result<_, _>>()?;
                    resource = Some(Element {
                        negated: field == "NotResource",
                        entries,
                    });
                }
                "Condition" => conditions = parse_conditions(&name, value, variables)?,
                other => {
                    return Err(malformed(format!(
                        "{name} has an unknown field \"{other}\" (expected Sid, Effect, \
                         Principal, NotPrincipal, Action, NotAction, Resource, NotResource, \
                         Condition)"
                    )));
                }
            }
        }
        let missing = |what: &str| malformed(format!("{name} has no {what}"));
        Ok(Statement {
            effect: effect.ok_or_else(|| missing("Effect"))?,
            principal: match kind {
                Kind::Resource => {
                    Some(principal.ok_or_else(|| missing("Principal or NotPrincipal"))?)
                }
                Kind::Identity => None,
            },
            action: action.ok_or_else(|| missing("Action or NotAction"))?,
            resource: resource.ok_or_else(|| missing("Resource or NotResource"))?,
            conditions,
        })
    }

    fn applies(&self, ctx: &EvalContext<'_>, action: &str) -> bool {
        self.action.matches(|p| wildcard_match(p, action))
            && self
                .resource
                .matches(|p| glob_matches(p, ctx, ctx.resource))
            && self
                .principal
                .as_ref()
                .is_none_or(|principal| principal.names_caller(self.effect, ctx))
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// A string or a non-empty list of strings.
fn string_list<'v>(name: &str, field: &str, value: &'v Value) -> Result<Vec<&'v str>, PolicyError> {
    let bad = || {
        malformed(format!(
            "{name}: {field} must be a string or a list of strings"
        ))
    };
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(list) if !list.is_empty() => {
            list.iter().map(|v| v.as_str().ok_or_else(bad)).collect()
        }
        Value::Array(_) => Err(malformed(format!(
            "{name}: {field} must not be an empty list"
        ))),
        _ => Err(bad()),
    }
}

fn parse_action(name: &str, field: &str, action: &str) -> Result<String, PolicyError> {
    let valid = action == "*"
        || action.split_once(':').is_some_and(|(service, op)| {
            !service.is_empty() && !op.is_empty() && !action.contains(char::is_whitespace)
        });
    if valid {
        Ok(action.to_ascii_lowercase())
    } else {
        Err(malformed(format!(
            "{name}: {field} entry \"{action}\" is not \"*\" or \"service:Operation\""
        )))
    }
}

fn parse_principal(name: &str, field: &str, value: &Value) -> Result<Vec<Principal>, PolicyError> {
    let types = match value {
        Value::String(s) if s == "*" => return Ok(vec![Principal::Everyone]),
        Value::Object(types) if !types.is_empty() => types,
        _ => {
            return Err(malformed(format!(
                "{name}: {field} must be \"*\" or an object such as {{\"AWS\": \"<arn>\"}}"
            )));
        }
    };
    let mut entries = Vec::new();
    for (kind, ids) in types {
        let ids = string_list(name, &format!("{field}.{kind}"), ids)?;
        match kind.as_str() {
            "AWS" => {
                for id in ids {
                    entries.push(parse_aws_principal(id).ok_or_else(|| {
                        malformed(format!(
                            "{name}: {field} entry \"{id}\" is not \"*\", a 12-digit account id \
                             or a principal ARN without wildcards"
                        ))
                    })?);
                }
            }
            "Service" | "Federated" | "CanonicalUser" => {
                entries.extend(ids.iter().map(|_| Principal::Never));
            }
            other => {
                return Err(malformed(format!(
                    "{name}: unknown principal type \"{other}\" in {field} (expected AWS, \
                     Service, Federated, CanonicalUser)"
                )));
            }
        }
    }
    Ok(entries)
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_aws_principal(id: &str) -> Option<Principal> {
    if id == "*" {
        return Some(Principal::Everyone);
    }
    if is_account_id(id) {
        return Some(Principal::Account(id.to_owned()));
    }
    let parts = arn_parts(id)?;
    if id.contains(['*', '?']) {
        return None;
    }
    if parts[2] == "iam" && parts[3].is_empty() && is_account_id(parts[4]) && parts[5] == "root" {
        Some(Principal::Account(parts[4].to_owned()))
    } else {
        Some(Principal::Arn(id.to_owned()))
    }
}

/// The six colon-separated fields of an ARN (the last keeps any further colons), or `None` if
/// `s` is not shaped like one.
fn arn_parts(s: &str) -> Option<[&str; 6]> {
    let mut fields = s.splitn(6, ':');
    let mut parts = [""; 6];
    for part in &mut parts {
        *part = fields.next()?;
    }
    (parts[0] == "arn").then_some(parts)
}

/// The account of the caller: the account field of its principal ARN.
fn caller_account<'c>(ctx: &EvalContext<'c>) -> Option<&'c str> {
    arn_parts(ctx.principal_arn)
        .map(|p| p[4])
        .filter(|a| !a.is_empty())
}

impl Principal {
    /// Whether an `Allow` naming this principal grants to the caller: an account principal
    /// grants its root user, and its other principals only through delegation.
    fn allows(&self, ctx: &EvalContext<'_>) -> bool {
        match self {
            Principal::Everyone => true,
            Principal::Account(account) => {
                caller_account(ctx) == Some(account.as_str())
                    && (ctx.account_delegation
                        || ctx.principal_arn == format!("arn:aws:iam::{account}:root"))
            }
            Principal::Arn(arn) => ctx.principal_arn == arn,
            Principal::Never => false,
        }
    }

    /// Whether this entry lists `member`, one of the principals a request is made as.
    fn lists(&self, member: Member<'_>) -> bool {
        match (self, member) {
            (Principal::Everyone, _) => true,
            (Principal::Account(account), Member::Account(a)) => account == a,
            (Principal::Arn(arn), Member::Caller(c)) => arn == c,
            _ => false,
        }
    }
}

/// One of the principals a request is made as, as a `Deny` sees them: a user's request is made
/// as the user *and* as its account (AWS's "the policy might deny access to the entire
/// account"); the root user's as the account; an anonymous request's as nobody but `"*"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    Anonymous,
    Account(&'a str),
    /// The caller's own ARN (a user; or a caller outside any account, in tests).
    Caller(&'a str),
}

/// The principals the request of `ctx` is made as (see [`Member`]).
fn members<'c>(ctx: &EvalContext<'c>) -> [Option<Member<'c>>; 2] {
    if ctx.principal_arn.is_empty() {
        return [Some(Member::Anonymous), None];
    }
    match arn_parts(ctx.principal_arn) {
        Some(p) if p[2] == "iam" && p[5] == "root" && !p[4].is_empty() => {
            [Some(Member::Account(p[4])), None]
        }
        Some(p) if !p[4].is_empty() => [
            Some(Member::Account(p[4])),
            Some(Member::Caller(ctx.principal_arn)),
        ],
        _ => [Some(Member::Caller(ctx.principal_arn)), None],
    }
}

impl Element<Principal> {
    /// Whether a statement with `effect` and this `Principal`/`NotPrincipal` applies to the
    /// caller. An `Allow` grants to the principals it lists (an account: through delegation).
    /// A `Deny` binds every principal the request is made as ([`Member`]): naming an account
    /// denies all of the account's users, whatever grants them access; and `NotPrincipal`
    /// exempts a caller only when it lists all of them — a user *and* its account, as AWS
    /// documents ("you must also specify the account ARN of the not-denied principal").
    fn names_caller(&self, effect: Effect, ctx: &EvalContext<'_>) -> bool {
        if effect == Effect::Allow {
            return self.matches(|p| p.allows(ctx));
        }
        let listed = |member: &Member<'_>| self.entries.iter().any(|p| p.lists(*member));
        let mut request_principals = members(ctx).into_iter().flatten();
        if self.negated {
            !request_principals.all(|m| listed(&m))
        } else {
            request_principals.any(|m| listed(&m))
        }
    }
}

/// `ForAnyValue:` / `ForAllValues:` / neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetPrefix {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Compare {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Compare::Equal => request == policy,
            Compare::Less => request < policy,
            Compare::LessOrEqual => request <= policy,
            Compare::Greater => request > policy,
            Compare::GreaterOrEqual => request >= policy,
        }
    }
}

/// What one condition compares, with the policy's values already parsed.
#[derive(Debug, Clone)]
enum Test {
    StringEquals(Vec<Text>),
    /// Values stored lower-cased.
    StringEqualsIgnoreCase(Vec<Text>),
    StringLike(Vec<Text>),
    Numeric(Compare, Vec<f64>),
    /// Nanoseconds since the Unix epoch.
    Date(Compare, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<Cidr>),
    /// `ArnEquals` and `ArnLike` are the same test in AWS: wildcards per ARN field.
    Arn(Vec<Text>),
    /// `Null`: true when the key's absence is the given value.
    Null(bool),
}

impl Test {
    /// Whether one request value matches any of the policy's values (a value whose policy
    /// variable is null matches nothing).
    fn matches(&self, request: &str, ctx: &EvalContext<'_>) -> bool {
        match self {
            Test::StringEquals(values) => values
                .iter()
                .any(|v| v.expand(ctx).is_some_and(|v| v == request)),
            Test::StringEqualsIgnoreCase(values) => {
                let request = request.to_lowercase();
                // Written text is stored lower-cased; a substituted value is lowered here.
                values.iter().any(|v| match v.expand(ctx) {
                    Some(expanded) if v.has_variables() => expanded.to_lowercase() == request,
                    Some(expanded) => expanded == request,
                    None => false,
                })
            }
            Test::StringLike(values) => values.iter().any(|v| glob_matches(v, ctx, request)),
            Test::Numeric(ord, values) => {
                parse_number(request).is_some_and(|r| values.iter().any(|&v| ord.holds(r, v)))
            }
            Test::Date(ord, values) => {
                parse_date(request).is_some_and(|r| values.iter().any(|&v| ord.holds(r, v)))
            }
            Test::Bool(values) => parse_bool(request).is_some_and(|r| values.contains(&r)),
            Test::Ip(cidrs) => request
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| cidrs.iter().any(|c| c.contains(ip))),
            Test::Arn(values) => values.iter().any(|v| {
                v.pattern(ctx)
                    .is_some_and(|(pattern, escaped)| arn_match(&pattern, request, escaped))
            }),
            Test::Null(_) => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Condition {
    /// As written; looked up case-insensitively.
    key: String,
    test: Test,
    negated: bool,
    set: SetPrefix,
    if_exists: bool,
}

fn parse_conditions(
    name: &str,
    value: &Value,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(blocks) = value else {
        return Err(malformed(format!(
            "{name}: Condition must be an object of {{operator: {{key: value}}}}"
        )));
    };
    let mut conditions = Vec::new();
    for (operator, block) in blocks {
        let Value::Object(keys) = block else {
            return Err(malformed(format!(
                "{name}: Condition operator {operator} must map to an object of {{key: value}}"
            )));
        };
        if keys.is_empty() {
            return Err(malformed(format!(
                "{name}: Condition operator {operator} has no keys"
            )));
        }
        for (key, values) in keys {
            conditions.push(parse_condition(name, operator, key, values, variables)?);
        }
    }
    Ok(conditions)
}

fn parse_condition(
    name: &str,
    operator: &str,
    key: &str,
    values: &Value,
    variables: bool,
) -> Result<Condition, PolicyError> {
    let here = format!("{name}: Condition {operator} on \"{key}\"");
    if key.is_empty() {
        return Err(malformed(format!(
            "{name}: Condition {operator} has an empty key"
        )));
    }
    let (set, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        (SetPrefix::ForAnyValue, rest)
    } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        (SetPrefix::ForAllValues, rest)
    } else {
        (SetPrefix::None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let raw = condition_values(values).ok_or_else(|| {
        malformed(format!(
            "{here}: the value must be a string, number or boolean, or a non-empty list of them"
        ))
    })?;
    let parse_all = |what: &str, parse: &dyn Fn(&str) -> Option<()>| -> Result<(), PolicyError> {
        match raw.iter().find(|v| parse(v).is_none()) {
            Some(bad) => Err(malformed(format!("{here}: \"{bad}\" is not {what}"))),
            None => Ok(()),
        }
    };
    let numbers = |ord| -> Result<Test, PolicyError> {
        parse_all("a number", &|v| parse_number(v).map(drop))?;
        Ok(Test::Numeric(
            ord,
            raw.iter().filter_map(|v| parse_number(v)).collect(),
        ))
    };
    let dates = |ord| -> Result<Test, PolicyError> {
        parse_all("a date (ISO 8601 / RFC 3339 or epoch seconds)", &|v| {
            parse_date(v).map(drop)
        })?;
        Ok(Test::Date(
            ord,
            raw.iter().filter_map(|v| parse_date(v)).collect(),
        ))
    };
    // String and ARN values may hold policy variables.
    let texts = || -> Result<Vec<Text>, PolicyError> {
        raw.iter()
            .map(|v| Text::parse(&here, v, variables))
            .collect()
    };
    let lowered = || -> Result<Vec<Text>, PolicyError> {
        Ok(texts()?.into_iter().map(Text::lowercase).collect())
    };
    let (test, negated) = match base {
        "StringEquals" => (Test::StringEquals(texts()?), false),
        "StringNotEquals" => (Test::StringEquals(texts()?), true),
        "StringEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase(lowered()?), false),
        "StringNotEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase(lowered()?), true),
        "StringLike" => (Test::StringLike(texts()?), false),
        "StringNotLike" => (Test::StringLike(texts()?), true),
        "NumericEquals" => (numbers(Compare::Equal)?, false),
        "NumericNotEquals" => (numbers(Compare::Equal)?, true),
        "NumericLessThan" => (numbers(Compare::Less)?, false),
        "NumericLessThanEquals" => (numbers(Compare::LessOrEqual)?, false),
        "NumericGreaterThan" => (numbers(Compare::Greater)?, false),
        "NumericGreaterThanEquals" => (numbers(Compare::GreaterOrEqual)?, false),
        "DateEquals" => (dates(Compare::Equal)?, false),
        "DateNotEquals" => (dates(Compare::Equal)?, true),
        "DateLessThan" => (dates(Compare::Less)?, false),
        "DateLessThanEquals" => (dates(Compare::LessOrEqual)?, false),
        "DateGreaterThan" => (dates(Compare::Greater)?, false),
        "DateGreaterThanEquals" => (dates(Compare::GreaterOrEqual)?, false),
        "Bool" => {
            parse_all("true or false", &|v| parse_bool(v).map(drop))?;
            (
                Test::Bool(raw.iter().filter_map(|v| parse_bool(v)).collect()),
                false,
            )
        }
        "IpAddress" | "NotIpAddress" => {
            parse_all("an IP address or CIDR block", &|v| Cidr::parse(v).map(drop))?;
            let cidrs = raw.iter().filter_map(|v| Cidr::parse(v)).collect();
            (Test::Ip(cidrs), base == "NotIpAddress")
        }
        "ArnEquals" | "ArnLike" => (Test::Arn(texts()?), false),
        "ArnNotEquals" | "ArnNotLike" => (Test::Arn(texts()?), true),
        "Null" => {
            if set != SetPrefix::None || if_exists {
                return Err(malformed(format!(
                    "{name}: Null takes no ForAnyValue:/ForAllValues: prefix and no IfExists suffix"
                )));
            }
            let [single] = raw.as_slice() else {
                return Err(malformed(format!(
                    "{here}: Null takes one value, true or false"
                )));
            };
            let missing = parse_bool(single)
                .ok_or_else(|| malformed(format!("{here}: \"{single}\" is not true or false")))?;
            (Test::Null(missing), false)
        }
        _ => {
            return Err(malformed(format!(
                "{name}: unknown or unsupported condition operator \"{operator}\""
            )));
        }
    };
    Ok(Condition {
        key: key.to_owned(),
        test,
        negated,
        set,
        if_exists,
    })
}

/// Condition values as strings; JSON numbers and booleans are accepted as their text, as AWS does.
fn condition_values(value: &Value) -> Option<Vec<String>> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(scalar).collect(),
        Value::Array(_) => None,
        other => scalar(other).map(|s| vec![s]),
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// RFC 3339 (`2024-01-31T12:00:00Z`) or whole seconds since the Unix epoch.
fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let secs: i64 = s.parse().ok()?;
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

impl Condition {
    fn holds(&self, ctx: &EvalContext<'_>) -> bool {
        let values = context_values(ctx, &self.key);
        if let Test::Null(want_missing) = self.test {
            return values.is_none() == want_missing;
        }
        let Some(values) = values else {
            return match self.set {
                SetPrefix::ForAllValues => true,
                SetPrefix::ForAnyValue => self.if_exists,
                SetPrefix::None => self.if_exists || self.negated,
            };
        };
        let one = |v: &&str| self.test.matches(v, ctx) != self.negated;
        match self.set {
            SetPrefix::ForAnyValue => values.iter().any(one),
            SetPrefix::ForAllValues => values.iter().all(one),
            SetPrefix::None if self.negated => values.iter().all(one),
            SetPrefix::None => values.iter().any(one),
        }
    }
}

/// The request's values for a condition key (name compared case-insensitively), or `None` when
/// the key is missing or has no values.
fn context_values<'c>(ctx: &EvalContext<'c>, key: &str) -> Option<Vec<&'c str>> {
    let map = ctx.conditions;
    let supplied = map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    });
    if let Some(values) = supplied {
        return (!values.is_empty()).then(|| values.iter().map(String::as_str).collect());
    }
    let derived = if key.eq_ignore_ascii_case("aws:PrincipalArn") {
        Some(ctx.principal_arn)
    } else if key.eq_ignore_ascii_case("aws:PrincipalAccount")
        || key.eq_ignore_ascii_case("kms:CallerAccount")
    {
        caller_account(ctx)
    } else if key.eq_ignore_ascii_case("aws:ResourceAccount") {
        Some(ctx.account_id)
    } else {
        None
    };
    derived.filter(|v| !v.is_empty()).map(|v| vec![v])
}

/// An IPv4 or IPv6 network (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr.parse::<IpAddr>().ok()?, Some(prefix)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // A v4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `ArnLike`: each of the six ARN fields is matched separately with wildcards, so a `*` never
/// spans a field boundary. A pattern that starts like an ARN but lacks fields matches nothing;
/// one that does not start with `arn:` (e.g. `"*"`) is matched against the whole string.
/// `escaped`: the pattern comes from [`Text::pattern`] (see [`glob_match`]).
fn arn_match(pattern: &str, arn: &str, escaped: bool) -> bool {
    match (arn_parts(pattern), arn_parts(arn)) {
        (Some(p), Some(a)) => p
            .iter()
            .zip(a.iter())
            .all(|(p, a)| glob_match(p, a, escaped)),
        _ if pattern.starts_with("arn:") => false,
        _ => glob_match(pattern, arn, escaped),
    }
}

/// Whether `text` matches the pattern `value` makes for this request (policy variables
/// expanded; a null one matches nothing).
fn glob_matches(value: &Text, ctx: &EvalContext<'_>, text: &str) -> bool {
    value
        .pattern(ctx)
        .is_some_and(|(pattern, escaped)| glob_match(&pattern, text, escaped))
}

/// Glob match with `*` (any run of characters, also empty) and `?` (exactly one character).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    glob_match(pattern, text, false)
}

/// [`wildcard_match`]; when `escaped`, a `\` makes the character after it literal (how an
/// expanded policy variable keeps its value's `*` and `?` from acting as wildcards).
/// Linear in the common case; backtracks only to the last `*`.
fn glob_match(pattern: &str, text: &str, escaped: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let char_len = |i: usize| match t[i] {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        _ => 2,
    };
    let (mut pi, mut ti) = (0, 0);
    // Pattern index after the last `*` and the text index it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += char_len(ti);
                continue;
            }
            _ => {}
        }
        // A literal byte: `\x` (when escaped) or any other.
        let (literal, width) = match p.get(pi) {
            Some(b'\\') if escaped => (p.get(pi + 1), 2),
            other => (other, 1),
        };
        if literal == Some(&t[ti]) {
            pi += width;
            ti += 1;
            continue;
        }
        match star {
            Some((after_star, matched)) => {
                let matched = matched + char_len(matched);
                star = Some((after_star, matched));
                pi = after_star;
                ti = matched;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// What a request looks like to a policy.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// The caller, e.g. `"arn:aws:iam::111122223333:root"` or
    /// `"arn:aws:iam::111122223333:user/alice"`.
    pub principal_arn: &'a str,
    /// The deployment's account id (the account owning every resource).
    pub account_id: &'a str,
    /// The operation, e.g. `"kms:Encrypt"` or `"s3:PutObject"`.
    pub action: &'a str,
    /// The resource acted on, e.g. the key ARN.
    pub resource: &'a str,
    /// Whether an `Allow` naming the caller's account (rather than the caller) grants to a
    /// caller other than the account's root user: true when that caller's identity policies allow
    /// the request. [`authorize`] sets it; a caller of [`evaluate`] decides it. A `Deny` naming
    /// the account binds all of its principals either way.
    pub account_delegation: bool,
    /// Condition keys of the request (names compare case-insensitively), e.g.
    /// `"kms:EncryptionContext:<k>"`, `"kms:CallerAccount"`, `"aws:SourceIp"`,
    /// `"aws:SecureTransport"` (`"true"`/`"false"`), `"s3:x-amz-server-side-encryption"`.
    pub conditions: &'a HashMap<String, Vec<String>>,
}

/// The outcome of evaluating one policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows the request and none denies it.
    Allow,
    /// A `Deny` statement matches: nothing else can allow the request.
    ExplicitDeny,
    /// No statement matches.
    ImplicitDeny,
}

/// Evaluates `doc` for one request: explicit `Deny` wins; otherwise `Allow` needs a matching
/// `Allow` statement.
pub fn evaluate(doc: &PolicyDocument, ctx: &EvalContext<'_>) -> Decision {
    let action = ctx.action.to_ascii_lowercase();
    let mut allowed = false;
    for statement in &doc.statements {
        if statement.applies(ctx, &action) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// Who a caller is on the identity side of an authorization.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The account's root user: no identity policy limits it.
    Root,
    /// A user, limited to what its identity policies allow (none: nothing).
    User(std::sync::Arc<[PolicyDocument]>),
}

/// How a resource policy takes part in [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceRule {
    /// The resource policy must allow (KMS key policies): a statement naming the account lets the
    /// identity policies decide for the account's users.
    MustAllow,
    /// Within the account, an allow from either side is enough (S3 bucket policies).
    EitherAllows,
}

/// The outcome of [`authorize`], with enough to say why in an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// An identity policy denies explicitly.
    IdentityDeny,
    /// The resource policy denies explicitly.
    ResourceDeny,
    /// No identity policy allows the request (and the resource policy does not name the caller).
    NoIdentityAllow,
    /// The resource policy (which must allow) does not allow the request for this caller.
    NoResourceAllow,
}

impl Verdict {
    /// How AWS ends an `AccessDenied` message for this verdict (after "User: … is not authorized
    /// to perform: <action> on resource: <resource> "); `None` for [`Verdict::Allow`].
    pub fn explanation(self, action: &str) -> Option<String> {
        Some(match self {
            Verdict::Allow => return None,
            Verdict::IdentityDeny => "with an explicit deny in an identity-based policy".to_owned(),
            Verdict::ResourceDeny => "with an explicit deny in a resource-based policy".to_owned(),
            Verdict::NoIdentityAllow => {
                format!("because no identity-based policy allows the {action} action")
            }
            Verdict::NoResourceAllow => {
                format!("because no resource-based policy allows the {action} action")
            }
        })
    }
}

/// Authorizes one request the way AWS does within one account: an explicit `Deny` in any
/// identity policy or in the resource policy wins; otherwise the identity policies (the root
/// user's allow everything) and the resource policy combine by `rule`. `ctx.account_delegation`
/// is ignored: it is derived here from the identity policies.
pub fn authorize(
    identity: &Identity,
    resource_policy: Option<&PolicyDocument>,
    rule: ResourceRule,
    ctx: &EvalContext<'_>,
) -> Verdict {
    let identity_decision = match identity {
        Identity::Root => Decision::Allow,
        Identity::User(policies) => {
            let mut decision = Decision::ImplicitDeny;
            for doc in policies.iter() {
                match evaluate(doc, ctx) {
                    Decision::ExplicitDeny => return Verdict::IdentityDeny,
                    Decision::Allow => decision = Decision::Allow,
                    Decision::ImplicitDeny => {}
                }
            }
            decision
        }
    };
    let identity_allows = identity_decision == Decision::Allow;
    let resource_decision = |delegation: bool| {
        resource_policy.map(|doc| {
            evaluate(
                doc,
                &EvalContext {
                    account_delegation: delegation,
                    ..*ctx
                },
            )
        })
    };
    let resource = resource_decision(identity_allows);
    if resource == Some(Decision::ExplicitDeny) {
        return Verdict::ResourceDeny;
    }
    let resource_allows = resource == Some(Decision::Allow);
    match rule {
        ResourceRule::EitherAllows if identity_allows || resource_allows => Verdict::Allow,
        ResourceRule::EitherAllows => Verdict::NoIdentityAllow,
        ResourceRule::MustAllow if resource_allows => Verdict::Allow,
        // The resource policy would allow through the account: the identity policies did not.
        ResourceRule::MustAllow
            if !identity_allows && resource_decision(true) == Some(Decision::Allow) =>
        {
            Verdict::NoIdentityAllow
        }
        ResourceRule::MustAllow => Verdict::NoResourceAllow,
    }
}

/// A `serde_json::Value` that refuses duplicate object keys: `{"Effect": "Deny", "Effect":
/// "Allow"}` must not quietly become whichever one a parser keeps.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictValue, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            list.push(v);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key \"{key}\"")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
    /// AWS's default key policy: the account's root may do everything (delegating to IAM).
    const ACCOUNT_POLICY: &str = r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn ctx_map(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn decide(policy: &str, principal: &str, action: &str, resource: &str) -> Decision {
        let doc = PolicyDocument::parse(policy).unwrap();
        let conditions = HashMap::new();
        evaluate(
            &doc,
            &EvalContext {
                principal_arn: principal,
                account_id: "111122223333",
                action,
                resource,
                conditions: &conditions,
                account_delegation: true,
            },
        )
    }

    /// Whether an Allow-everything statement guarded by `condition` allows a request with the
    /// given condition keys.
    fn condition_holds(condition: &str, keys: &[(&str, &[&str])]) -> bool {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":"*",
                "Action":"*","Resource":"*","Condition":{condition}}}}}"#
        );
        let doc = PolicyDocument::parse(&policy)
            .unwrap_or_else(|e| panic!("{condition} does not parse: {e}"));
        let conditions = ctx_map(keys);
        let ctx = EvalContext {
            principal_arn: ALICE,
            account_id: "111122223333",
            action: "kms:Encrypt",
            resource: KEY,
            conditions: &conditions,
            account_delegation: true,
        };
        evaluate(&doc, &ctx) == Decision::Allow
    }

    /// Condition keys of a request: (name, values).
    type Keys<'a> = &'a [(&'a str, &'a [&'a str])];

    fn check_table(table: &[(&str, Keys<'_>, bool)]) {
        for (condition, keys, expected) in table {
            assert_eq!(
                condition_holds(condition, keys),
                *expected,
                "{condition} with {keys:?}"
            );
        }
    }

    fn malformed_message(policy: &str) -> String {
        match PolicyDocument::parse(policy) {
            Err(PolicyError::Malformed(msg)) => msg,
            Ok(_) => panic!("accepted: {policy}"),
        }
    }

    fn statement(body: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{body}]}}"#)
    }

    fn verdict(
        identity: &Identity,
        resource: Option<&str>,
        rule: ResourceRule,
        principal: &str,
        action: &str,
        on: &str,
    ) -> Verdict {
        let doc = resource.map(|r| PolicyDocument::parse(r).unwrap());
        let conditions = HashMap::new();
        authorize(
            identity,
            doc.as_ref(),
            rule,
            &EvalContext {
                principal_arn: principal,
                account_id: "111122223333",
                action,
                resource: on,
                conditions: &conditions,
                account_delegation: false,
            },
        )
    }

    fn user(policies: &[&str]) -> Identity {
        Identity::User(
            policies
                .iter()
                .map(|p| PolicyDocument::parse_identity(p).unwrap())
                .collect(),
        )
    }

    #[test]
    fn identity_policies_name_no_principal() {
        let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#;
        match PolicyDocument::parse_identity(with_principal) {
            Err(PolicyError::Malformed(m)) => {
                assert!(m.contains("must not name principals"), "{m}")
            }
            Ok(_) => panic!("accepted a Principal in an identity policy"),
        }
        let without = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
        assert!(PolicyDocument::parse_identity(without).is_ok());
        assert!(
            PolicyDocument::parse(without).is_err(),
            "a resource policy needs a Principal"
        );
    }

    /// The account principal of a key policy delegates to IAM: a user gets what both allow.
    #[test]
    fn account_principal_delegates_to_identity_policies() {
        let read_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}"#;
        let must = ResourceRule::MustAllow;
        let alice = user(&[read_only]);
        assert_eq!(
            verdict(
                &alice,
                Some(ACCOUNT_POLICY),
                must,
                ALICE,
                "kms:Decrypt",
                KEY
            ),
            Verdict::Allow
        );
        assert_eq!(
            verdict(
                &alice,
                Some(ACCOUNT_POLICY),
                must,
                ALICE,
                "kms:Encrypt",
                KEY
            ),
            Verdict::NoIdentityAllow
        );
        assert_eq!(
            verdict(
                &user(&[]),
                Some(ACCOUNT_POLICY),
                must,
                ALICE,
                "kms:Decrypt",
                KEY
            ),
            Verdict::NoIdentityAllow
        );
        // The root user needs no identity policy; nobody gets past a key policy that does not allow.
        let root = "arn:aws:iam::111122223333:root";
        assert_eq!(
            verdict(
                &Identity::Root,
                Some(ACCOUNT_POLICY),
                must,
                root,
                "kms:Encrypt",
                KEY
            ),
            Verdict::Allow
        );
        let only_bob = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*"}]}"#;
        assert_eq!(
            verdict(
                &Identity::Root,
                Some(only_bob),
                must,
                root,
                "kms:Encrypt",
                KEY
            ),
            Verdict::NoResourceAllow
        );
        assert_eq!(
            verdict(&alice, Some(only_bob), must, ALICE, "kms:Decrypt", KEY),
            Verdict::NoResourceAllow
        );
        // A key policy naming the user directly needs no identity policy.
        let names_alice = only_bob.replace("user/bob", "user/alice");
        assert_eq!(
            verdict(
                &user(&[]),
                Some(&names_alice),
                must,
                ALICE,
                "kms:Encrypt",
                KEY
            ),
            Verdict::Allow
        );
    }

    #[test]
    fn explicit_deny_on_either_side_wins() {
        let allow_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let deny_decrypt = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#;
        let both = user(&[allow_all, deny_decrypt]);
        assert_eq!(
            verdict(
                &both,
                Some(ACCOUNT_POLICY),
                ResourceRule::MustAllow,
                ALICE,
                "kms:Decrypt",
                KEY
            ),
            Verdict::IdentityDeny
        );
        let resource_deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
        assert_eq!(
            verdict(
                &Identity::Root,
                Some(resource_deny),
                ResourceRule::EitherAllows,
                "arn:aws:iam::111122223333:root",
                "s3:GetObject",
                "arn:aws:s3:::b/k"
            ),
            Verdict::ResourceDeny
        );
    }

    #[test]
    fn within_the_account_either_side_may_allow_s3() {
        let either = ResourceRule::EitherAllows;
        let read_b = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let alice = user(&[read_b]);
        assert_eq!(
            verdict(
                &alice,
                None,
                either,
                ALICE,
                "s3:GetObject",
                "arn:aws:s3:::b/k"
            ),
            Verdict::Allow
        );
        assert_eq!(
            verdict(
                &alice,
                None,
                either,
                ALICE,
                "s3:GetObject",
                "arn:aws:s3:::c/k"
            ),
            Verdict::NoIdentityAllow
        );
        assert_eq!(
            verdict(
                &alice,
                None,
                either,
                ALICE,
                "s3:PutObject",
                "arn:aws:s3:::b/k"
            ),
            Verdict::NoIdentityAllow
        );
        let bucket_names_alice = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert_eq!(
            verdict(
                &alice,
                Some(bucket_names_alice),
                either,
                ALICE,
                "s3:PutObject",
                "arn:aws:s3:::b/k"
            ),
            Verdict::Allow
        );
        // An account principal in a bucket policy still leaves the decision to IAM.
        let bucket_names_account = bucket_names_alice.replace("user/alice", "root");
        assert_eq!(
            verdict(
                &user(&[]),
                Some(&bucket_names_account),
                either,
                ALICE,
                "s3:PutObject",
                "arn:aws:s3:::b/k"
            ),
            Verdict::NoIdentityAllow
        );
    }

    #[test]
    fn default_policy_allows_every_principal_of_the_account_and_no_other() {
        let policy = ACCOUNT_POLICY.to_owned();
        for principal in [ALICE, "arn:aws:iam::111122223333:root"] {
            for action in [
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:PutKeyPolicy",
                "KMS:decrypt",
            ] {
                assert_eq!(decide(&policy, principal, action, KEY), Decision::Allow);
            }
        }
        let bob = "arn:aws:iam::444455556666:user/bob";
        assert_eq!(
            decide(&policy, bob, "kms:Encrypt", KEY),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&policy, ALICE, "s3:GetObject", KEY),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&policy, "not-an-arn", "kms:Encrypt", KEY),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn explicit_deny_beats_allow_in_either_order() {
        let allow = r#"{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}"#;
        let deny = r#"{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#;
        for policy in [
            statement(&format!("{allow},{deny}")),
            statement(&format!("{deny},{allow}")),
        ] {
            assert_eq!(
                decide(&policy, ALICE, "kms:Decrypt", KEY),
                Decision::ExplicitDeny
            );
            assert_eq!(decide(&policy, ALICE, "kms:Encrypt", KEY), Decision::Allow);
        }
    }

    #[test]
    fn no_matching_statement_is_an_implicit_deny() {
        let policy = statement(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/carol"},
                "Action":"kms:Encrypt","Resource":"*"}"#,
        );
        assert_eq!(
            decide(&policy, ALICE, "kms:Encrypt", KEY),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(
                &policy,
                "arn:aws:iam::111122223333:user/carol",
                "kms:Encrypt",
                KEY
            ),
            Decision::Allow
        );
    }

    #[test]
    fn principal_forms() {
        let bob = "arn:aws:iam::444455556666:user/bob";
        let table: &[(&str, &str, Decision)] = &[
            (r#""*""#, bob, Decision::Allow),
            (r#"{"AWS":"*"}"#, bob, Decision::Allow),
            (r#"{"AWS":"111122223333"}"#, ALICE, Decision::Allow),
            (r#"{"AWS":"111122223333"}"#, bob, Decision::ImplicitDeny),
            (
                r#"{"AWS":"arn:aws:iam::444455556666:root"}"#,
                bob,
                Decision::Allow,
            ),
            (
                r#"{"AWS":["arn:aws:iam::999999999999:root",
                 "arn:aws:iam::444455556666:user/bob"]}"#,
                bob,
                Decision::Allow,
            ),
            (
                r#"{"AWS":"arn:aws:iam::111122223333:user/alicE"}"#,
                ALICE,
                Decision::ImplicitDeny,
            ),
            (
                r#"{"Service":"logs.amazonaws.com"}"#,
                ALICE,
                Decision::ImplicitDeny,
            ),
        ];
        for (principal, caller, expected) in table {
            let policy = statement(&format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":"kms:*","Resource":"*"}}"#
            ));
            assert_eq!(
                decide(&policy, caller, "kms:Encrypt", KEY),
                *expected,
                "{principal} / {caller}"
            );
        }
    }

    #[test]
    fn not_principal_in_a_deny_exempts_only_a_caller_listed_with_its_account() {
        let admin = "arn:aws:iam::111122223333:user/admin";
        let exempting = |listed: &str| {
            statement(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}},
                   {{"Effect":"Deny","NotPrincipal":{{"AWS":{listed}}},
                    "Action":"kms:ScheduleKeyDeletion","Resource":"*"}}"#
            ))
        };
        let both = exempting(&format!(r#"["{admin}","arn:aws:iam::111122223333:root"]"#));
        assert_eq!(
            decide(&both, admin, "kms:ScheduleKeyDeletion", KEY),
            Decision::Allow
        );
        assert_eq!(
            decide(&both, ALICE, "kms:ScheduleKeyDeletion", KEY),
            Decision::ExplicitDeny
        );
        assert_eq!(decide(&both, ALICE, "kms:Encrypt", KEY), Decision::Allow);
        // AWS: without the account's ARN the whole account is denied, the listed user too.
        let user_only = exempting(&format!(r#""{admin}""#));
        assert_eq!(
            decide(&user_only, admin, "kms:ScheduleKeyDeletion", KEY),
            Decision::ExplicitDeny
        );
        // The account alone exempts its root user, not its users.
        let account_only = exempting(r#""111122223333""#);
        assert_eq!(
            decide(
                &account_only,
                "arn:aws:iam::111122223333:root",
                "kms:ScheduleKeyDeletion",
                KEY
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&account_only, admin, "kms:ScheduleKeyDeletion", KEY),
            Decision::ExplicitDeny
        );
        // Anonymous callers are exempted only by "*".
        assert_eq!(
            decide(&both, "", "kms:ScheduleKeyDeletion", KEY),
            Decision::ExplicitDeny
        );
    }

    /// Regression (review of issue 9): a Deny naming the account did not bind a user whose
    /// access came from the resource policy itself, as the account principal matched a user only
    /// "through delegation" — an Allow-side rule. AWS: a Deny naming the account applies to
    /// every principal of the account.
    #[test]
    fn an_account_principal_deny_binds_users_without_identity_allows() {
        let bob = "arn:aws:iam::111122223333:user/bob";
        let get = |policy: &str, caller: &str, rule| {
            verdict(
                &user(&[]),
                Some(policy),
                rule,
                caller,
                "s3:GetObject",
                "arn:aws:s3:::b/doc",
            )
        };
        for account in ["111122223333", "arn:aws:iam::111122223333:root"] {
            let policy = |allowed: &str| {
                statement(&format!(
                    r#"{{"Effect":"Allow","Principal":{allowed},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}},
                       {{"Effect":"Deny","Principal":{{"AWS":"{account}"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#
                ))
            };
            let names_bob = policy(&format!(r#"{{"AWS":"{bob}"}}"#));
            for rule in [ResourceRule::EitherAllows, ResourceRule::MustAllow] {
                assert_eq!(
                    get(&names_bob, bob, rule),
                    Verdict::ResourceDeny,
                    "{account}"
                );
            }
            // Another account's callers are not named by the Deny.
            let everyone = policy(r#""*""#);
            let stranger = "arn:aws:iam::444455556666:user/bob";
            assert_eq!(
                get(&everyone, stranger, ResourceRule::EitherAllows),
                Verdict::Allow
            );
            assert_eq!(
                get(&everyone, "", ResourceRule::EitherAllows),
                Verdict::Allow
            );
        }
    }

    #[test]
    fn action_wildcards_are_case_insensitive() {
        let table: &[(&str, &str, bool)] = &[
            ("kms:Encrypt", "kms:Encrypt", true),
            ("kms:encrypt", "KMS:ENCRYPT", true),
            ("kms:*", "kms:Decrypt", true),
            ("*", "s3:GetObject", true),
            (
                "kms:GenerateDataKey*",
                "kms:GenerateDataKeyWithoutPlaintext",
                true,
            ),
            ("kms:GenerateDataKey*", "kms:GenerateDataKey", true),
            ("kms:GenerateDataKey*", "kms:Decrypt", false),
            ("kms:?ncrypt", "kms:Encrypt", true),
            ("kms:?ncrypt", "kms:ReEncrypt", false),
            ("kms:*Encrypt", "kms:ReEncrypt", true),
            ("kms:Encrypt", "s3:Encrypt", false),
            ("kms:Encrypt", "kms:EncryptX", false),
        ];
        for (pattern, action, expected) in table {
            let policy = statement(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"{pattern}","Resource":"*"}}"#
            ));
            let got = decide(&policy, ALICE, action, KEY) == Decision::Allow;
            assert_eq!(got, *expected, "{pattern} vs {action}");
        }
    }

    #[test]
    fn not_action_allows_everything_but_the_listed_actions() {
        let policy = statement(
            r#"{"Effect":"Allow","Principal":"*","NotAction":["kms:PutKeyPolicy","kms:Schedule*"],
                "Resource":"*"}"#,
        );
        assert_eq!(decide(&policy, ALICE, "kms:Encrypt", KEY), Decision::Allow);
        assert_eq!(
            decide(&policy, ALICE, "kms:PutKeyPolicy", KEY),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(&policy, ALICE, "kms:ScheduleKeyDeletion", KEY),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn resources_match_with_wildcards_case_sensitively() {
        let policy = statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":["arn:aws:s3:::bucket/public/*","arn:aws:s3:::b?cket/x"]}"#,
        );
        let allow = |r| decide(&policy, ALICE, "s3:GetObject", r) == Decision::Allow;
        assert!(allow("arn:aws:s3:::bucket/public/a/b.txt"));
        assert!(allow("arn:aws:s3:::bucket/public/"));
        assert!(allow("arn:aws:s3:::bucket/x"));
        assert!(allow("arn:aws:s3:::bécket/x"));
        assert!(!allow("arn:aws:s3:::bucket/private/a"));
        assert!(!allow("arn:aws:s3:::BUCKET/public/a"));
        assert!(!allow("arn:aws:s3:::buckets/x"));
    }

    #[test]
    fn not_resource_matches_every_other_resource() {
        let policy = statement(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"},
               {"Effect":"Deny","Principal":"*","Action":"s3:*",
                "NotResource":"arn:aws:s3:::open/*"}"#,
        );
        assert_eq!(
            decide(&policy, ALICE, "s3:GetObject", "arn:aws:s3:::open/a"),
            Decision::Allow
        );
        assert_eq!(
            decide(&policy, ALICE, "s3:GetObject", "arn:aws:s3:::closed/a"),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn wildcard_matcher_edge_cases() {
        let table: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("**", "abc", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*.txt", "a.txt.txt", true),
            ("?", "é", true),
            ("??", "é", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            (
                "*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                wildcard_match(pattern, text),
                *expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn string_operators() {
        let dept: &[(&str, &[&str])] = &[("kms:EncryptionContext:Dept", &["Finance"])];
        let none: &[(&str, &[&str])] = &[];
        check_table(&[
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Dept":"Finance"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Dept":"finance"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Dept":["HR","Finance"]}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringEquals":{"KMS:encryptioncontext:dept":"Finance"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringEquals":{"kms:EncryptionContext:Dept":"Finance"}}"#,
                none,
                false,
            ),
            (
                r#"{"StringNotEquals":{"kms:EncryptionContext:Dept":"Finance"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringNotEquals":{"kms:EncryptionContext:Dept":["HR","Legal"]}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringNotEquals":{"kms:EncryptionContext:Dept":"Finance"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"FINANCE"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"HR"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"x"}}"#,
                none,
                false,
            ),
            (
                r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"fInAnCe"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"HR"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:Dept":"HR"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringLike":{"kms:EncryptionContext:Dept":"Fin*"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringLike":{"kms:EncryptionContext:Dept":"F?nance"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringLike":{"kms:EncryptionContext:Dept":"fin*"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringLike":{"kms:EncryptionContext:Dept":"*"}}"#,
                none,
                false,
            ),
            (
                r#"{"StringNotLike":{"kms:EncryptionContext:Dept":"Fin*"}}"#,
                dept,
                false,
            ),
            (
                r#"{"StringNotLike":{"kms:EncryptionContext:Dept":"HR*"}}"#,
                dept,
                true,
            ),
            (
                r#"{"StringNotLike":{"kms:EncryptionContext:Dept":"HR*"}}"#,
                none,
                true,
            ),
        ]);
    }

    #[test]
    fn numeric_operators() {
        let n: &[(&str, &[&str])] = &[("s3:max-keys", &["10"])];
        let junk: &[(&str, &[&str])] = &[("s3:max-keys", &["ten"])];
        let none: &[(&str, &[&str])] = &[];
        check_table(&[
            (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, n, true),
            (r#"{"NumericEquals":{"s3:max-keys":10}}"#, n, true),
            (r#"{"NumericEquals":{"s3:max-keys":"10.0"}}"#, n, true),
            (r#"{"NumericEquals":{"s3:max-keys":"11"}}"#, n, false),
            (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, junk, false),
            (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, none, false),
            (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, n, false),
            (r#"{"NumericNotEquals":{"s3:max-keys":"11"}}"#, n, true),
            (r#"{"NumericNotEquals":{"s3:max-keys":"11"}}"#, none, true),
            (r#"{"NumericLessThan":{"s3:max-keys":"11"}}"#, n, true),
            (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, n, false),
            (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, n, true),
            (
                r#"{"NumericLessThanEquals":{"s3:max-keys":"9.5"}}"#,
                n,
                false,
            ),
            (r#"{"NumericGreaterThan":{"s3:max-keys":"9"}}"#, n, true),
            (r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#, n, false),
            (
                r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#,
                n,
                true,
            ),
            (
                r#"{"NumericGreaterThanEquals":{"s3:max-keys":"-3"}}"#,
                n,
                true,
            ),
            (
                r#"{"NumericGreaterThanEquals":{"s3:max-keys":"11"}}"#,
                n,
                false,
            ),
        ]);
    }

    #[test]
    fn date_operators() {
        let t: &[(&str, &[&str])] = &[("aws:CurrentTime", &["2024-06-01T12:00:00Z"])];
        let epoch: &[(&str, &[&str])] = &[("aws:EpochTime", &["1717243200"])];
        check_table(&[
            (
                r#"{"DateEquals":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateEquals":{"aws:CurrentTime":"2024-06-01T14:00:00+02:00"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateEquals":{"aws:CurrentTime":"1717243200"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateNotEquals":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}"#,
                t,
                false,
            ),
            (
                r#"{"DateLessThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateLessThan":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}"#,
                t,
                false,
            ),
            (
                r#"{"DateLessThanEquals":{"aws:CurrentTime":"2024-06-01T12:00:00Z"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#,
                t,
                true,
            ),
            (
                r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-07-01T00:00:00Z"}}"#,
                t,
                false,
            ),
            (
                r#"{"DateGreaterThan":{"aws:EpochTime":"2024-06-01T11:59:59Z"}}"#,
                epoch,
                true,
            ),
            (
                r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#,
                &[],
                false,
            ),
        ]);
    }

    #[test]
    fn bool_and_null_operators() {
        let https: &[(&str, &[&str])] = &[("aws:SecureTransport", &["true"])];
        let http: &[(&str, &[&str])] = &[("aws:SecureTransport", &["false"])];
        let none: &[(&str, &[&str])] = &[];
        let empty: &[(&str, &[&str])] = &[("aws:SecureTransport", &[])];
        check_table(&[
            (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, https, true),
            (r#"{"Bool":{"aws:SecureTransport":true}}"#, https, true),
            (r#"{"Bool":{"aws:SecureTransport":"True"}}"#, https, true),
            (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, http, false),
            (r#"{"Bool":{"aws:SecureTransport":false}}"#, http, true),
            (r#"{"Bool":{"aws:SecureTransport":"false"}}"#, none, false),
            (r#"{"Null":{"aws:SecureTransport":"true"}}"#, none, true),
            (r#"{"Null":{"aws:SecureTransport":"true"}}"#, empty, true),
            (r#"{"Null":{"aws:SecureTransport":"true"}}"#, http, false),
            (r#"{"Null":{"aws:SecureTransport":false}}"#, http, true),
            (r#"{"Null":{"aws:SecureTransport":"false"}}"#, none, false),
        ]);
    }

    #[test]
    fn ip_address_operators_v4_and_v6() {
        let v4: &[(&str, &[&str])] = &[("aws:SourceIp", &["203.0.113.77"])];
        let v6: &[(&str, &[&str])] = &[("aws:SourceIp", &["2001:db8::1234"])];
        let mapped: &[(&str, &[&str])] = &[("aws:SourceIp", &["::ffff:203.0.113.77"])];
        let none: &[(&str, &[&str])] = &[];
        check_table(&[
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                v4,
                true,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.64/26"}}"#,
                v4,
                true,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/26"}}"#,
                v4,
                false,
            ),
            (r#"{"IpAddress":{"aws:SourceIp":"203.0.113.77"}}"#, v4, true),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.78/32"}}"#,
                v4,
                false,
            ),
            (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, v4, true),
            (r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, v6, false),
            (
                r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}"#,
                v6,
                true,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/120"}}"#,
                v6,
                false,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"2001:db8::1234/128"}}"#,
                v6,
                true,
            ),
            (r#"{"IpAddress":{"aws:SourceIp":"::/0"}}"#, v6, true),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                mapped,
                true,
            ),
            (
                r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                none,
                false,
            ),
            (
                r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
                v4,
                false,
            ),
            (
                r#"{"NotIpAddress":{"aws:SourceIp":"198.51.100.0/24"}}"#,
                v4,
                true,
            ),
            (
                r#"{"NotIpAddress":{"aws:SourceIp":"198.51.100.0/24"}}"#,
                none,
                true,
            ),
        ]);
    }

    #[test]
    fn arn_operators() {
        let p: &[(&str, &[&str])] = &[(
            "aws:PrincipalArn",
            &["arn:aws:iam::111122223333:user/alice"],
        )];
        check_table(&[
            (
                r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
                p,
                true,
            ),
            (
                r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/bob"}}"#,
                p,
                false,
            ),
            (
                r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
                p,
                true,
            ),
            (
                r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a?ice"}}"#,
                p,
                true,
            ),
            (
                r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/*"}}"#,
                p,
                false,
            ),
            // Wildcards stay inside their field: `*` in the account field cannot eat the service.
            (
                r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:*:user/alice"}}"#,
                p,
                false,
            ),
            (r#"{"ArnLike":{"aws:PrincipalArn":"*"}}"#, p, true),
            (
                r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
                p,
                false,
            ),
            (
                r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/b*"}}"#,
                p,
                true,
            ),
            (
                r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
                p,
                false,
            ),
            (r#"{"ArnLike":{"aws:SourceArn":"arn:*"}}"#, p, false),
            (r#"{"ArnNotLike":{"aws:SourceArn":"arn:*"}}"#, p, true),
        ]);
    }

    #[test]
    fn context_derived_keys_fill_in_when_the_request_lacks_them() {
        let none: &[(&str, &[&str])] = &[];
        let overridden: &[(&str, &[&str])] = &[("kms:CallerAccount", &["999999999999"])];
        check_table(&[
            (
                r#"{"StringEquals":{"kms:CallerAccount":"111122223333"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEquals":{"aws:ResourceAccount":"111122223333"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEquals":{"kms:CallerAccount":"111122223333"}}"#,
                overridden,
                false,
            ),
        ]);
    }

    #[test]
    fn set_prefixes_over_multi_valued_keys() {
        let keys: &[(&str, &[&str])] = &[("kms:EncryptionContextKeys", &["Dept", "Project"])];
        let none: &[(&str, &[&str])] = &[];
        check_table(&[
            (
                r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                keys,
                true,
            ),
            (
                r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Owner"}}"#,
                keys,
                false,
            ),
            (
                r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                none,
                false,
            ),
            (
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Dept","Project","Owner"]}}"#,
                keys,
                true,
            ),
            (
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                keys,
                false,
            ),
            // Vacuously true with no values: the reason AWS pairs ForAllValues with Null checks.
            (
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                none,
                true,
            ),
            (
                r#"{"ForAnyValue:StringNotEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                keys,
                true,
            ),
            (
                r#"{"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":"Owner"}}"#,
                keys,
                true,
            ),
            (
                r#"{"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":"Dept"}}"#,
                keys,
                false,
            ),
            (
                r#"{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":["D*","P*"]}}"#,
                keys,
                true,
            ),
            // No prefix: positive matches any value, negated matches none.
            (
                r#"{"StringEquals":{"kms:EncryptionContextKeys":"Project"}}"#,
                keys,
                true,
            ),
            (
                r#"{"StringNotEquals":{"kms:EncryptionContextKeys":"Project"}}"#,
                keys,
                false,
            ),
            (
                r#"{"StringNotEquals":{"kms:EncryptionContextKeys":"Owner"}}"#,
                keys,
                true,
            ),
        ]);
    }

    #[test]
    fn if_exists_is_true_for_a_missing_key_and_tests_a_present_one() {
        let https: &[(&str, &[&str])] = &[("aws:SecureTransport", &["true"])];
        let http: &[(&str, &[&str])] = &[("aws:SecureTransport", &["false"])];
        let none: &[(&str, &[&str])] = &[];
        check_table(&[
            (
                r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
                https,
                true,
            ),
            (
                r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
                http,
                false,
            ),
            (
                r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringEqualsIfExists":{"s3:x-amz-server-side-encryption":"aws:kms"}}"#,
                none,
                true,
            ),
            (
                r#"{"StringNotEqualsIfExists":{"aws:SecureTransport":"false"}}"#,
                http,
                false,
            ),
            (
                r#"{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":"x"}}"#,
                none,
                true,
            ),
        ]);
    }

    #[test]
    fn all_conditions_must_hold() {
        let both: &[(&str, &[&str])] = &[
            ("aws:SecureTransport", &["true"]),
            ("aws:SourceIp", &["10.1.2.3"]),
        ];
        let wrong_ip: &[(&str, &[&str])] = &[
            ("aws:SecureTransport", &["true"]),
            ("aws:SourceIp", &["192.168.0.1"]),
        ];
        let condition = r#"{"Bool":{"aws:SecureTransport":"true"},
                            "IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
        check_table(&[(condition, both, true), (condition, wrong_ip, false)]);
    }

    #[test]
    fn deny_unless_encryption_context_is_the_usual_kms_guard() {
        let policy = statement(
            r#"{"Sid":"Enable IAM User Permissions","Effect":"Allow",
                "Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
               {"Sid":"Require context","Effect":"Deny","Principal":"*",
                "Action":["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*",
                "Condition":{"Null":{"kms:EncryptionContext:aws:s3:arn":"true"}}}"#,
        );
        let doc = PolicyDocument::parse(&policy).unwrap();
        let eval = |action, keys: &[(&str, &[&str])]| {
            let conditions = ctx_map(keys);
            evaluate(
                &doc,
                &EvalContext {
                    principal_arn: ALICE,
                    account_id: "111122223333",
                    action,
                    resource: KEY,
                    conditions: &conditions,
                    account_delegation: true,
                },
            )
        };
        assert_eq!(eval("kms:Decrypt", &[]), Decision::ExplicitDeny);
        assert_eq!(
            eval(
                "kms:Decrypt",
                &[("kms:EncryptionContext:aws:s3:arn", &["arn:aws:s3:::b/k"])]
            ),
            Decision::Allow
        );
        assert_eq!(eval("kms:DescribeKey", &[]), Decision::Allow);
    }

    #[test]
    fn accepted_document_shapes() {
        let one = r#"{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}"#;
        for doc in [
            format!(r#"{{"Version":"2012-10-17","Statement":{one}}}"#),
            format!(r#"{{"Version":"2008-10-17","Id":"x","Statement":[{one},{one}]}}"#),
            format!(r#"{{"Statement":[{one}]}}"#),
            r#"{"Version":"2012-10-17","Statement":{"Sid":"","Effect":"Deny",
                "Principal":{"AWS":["111122223333"],"Service":"s3.amazonaws.com"},
                "Action":["kms:Encrypt"],"NotResource":["arn:aws:kms:*"]}}"#
                .to_owned(),
        ] {
            PolicyDocument::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        }
    }

    #[test]
    fn malformed_documents_are_rejected_with_a_message_naming_the_problem() {
        let ok_rest = r#""Principal":"*","Action":"kms:*","Resource":"*""#;
        let table: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("[]".into(), "must be a JSON object"),
            (r#"{"Version":"2012-10-17"}"#.into(), "no Statement"),
            (
                r#"{"Version":"2012-10-17","Statement":[]}"#.into(),
                "empty list",
            ),
            (
                r#"{"Version":"2012-10-17","Statement":"x"}"#.into(),
                "object or a list",
            ),
            (
                r#"{"Version":"2020-01-01","Statement":[]}"#.into(),
                "Version must be",
            ),
            (
                r#"{"Version":"2012-10-17","Statment":[]}"#.into(),
                "unknown field \"Statment\"",
            ),
            (
                statement(&format!(r#"{{"Effect":"Permit",{ok_rest}}}"#)),
                "Effect must be",
            ),
            (
                statement(&format!(r#"{{"Effect":"allow",{ok_rest}}}"#)),
                "Effect must be",
            ),
            (statement(&format!(r#"{{{ok_rest}}}"#)), "has no Effect"),
            (
                statement(r#"{"Sid":"S1","Effect":"Allow","Principal":"*","Resource":"*"}"#),
                "statement 1 (Sid \"S1\") has no Action or NotAction",
            ),
            (
                statement(r#"{"Effect":"Allow","Principal":"*","Action":"kms:*"}"#),
                "no Resource or NotResource",
            ),
            (
                statement(r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#),
                "no Principal or NotPrincipal",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow","NotAction":"kms:Encrypt",{ok_rest}}}"#
                )),
                "both NotAction and its Not form",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":"*","Action":"Encrypt","Resource":"*"}"#,
                ),
                "is not \"*\" or \"service:Operation\"",
            ),
            (
                statement(r#"{"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"}"#),
                "must not be an empty list",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root","Action":"kms:*","Resource":"*"}"#,
                ),
                "Principal must be",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"kms:*","Resource":"*"}"#,
                ),
                "entry \"alice\"",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"kms:*","Resource":"*"}"#,
                ),
                "without wildcards",
            ),
            (
                statement(
                    r#"{"Effect":"Allow","Principal":{"IAM":"*"},"Action":"kms:*","Resource":"*"}"#,
                ),
                "unknown principal type \"IAM\"",
            ),
            (
                statement(&format!(r#"{{"Effect":"Allow",{ok_rest},"Extra":1}}"#)),
                "unknown field \"Extra\"",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"StringEqualz":{{"a":"b"}}}}}}"#
                )),
                "unknown or unsupported condition operator \"StringEqualz\"",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"NumericEquals":{{"a":"ten"}}}}}}"#
                )),
                "\"ten\" is not a number",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"IpAddress":{{"aws:SourceIp":"10.0.0.0/33"}}}}}}"#
                )),
                "not an IP address or CIDR block",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"Bool":{{"a":"yes"}}}}}}"#
                )),
                "\"yes\" is not true or false",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"DateLessThan":{{"a":"tomorrow"}}}}}}"#
                )),
                "is not a date",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"NullIfExists":{{"a":"true"}}}}}}"#
                )),
                "Null takes no",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"StringEquals":{{"a":[]}}}}}}"#
                )),
                "non-empty list",
            ),
            (
                statement(&format!(
                    r#"{{"Effect":"Allow",{ok_rest},"Condition":{{"StringEquals":{{"a":{{"b":"c"}}}}}}}}"#
                )),
                "must be a string, number or boolean",
            ),
            (
                statement(
                    r#"{"Effect":"Deny","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}"#,
                ),
                "duplicate key \"Effect\"",
            ),
        ];
        for (policy, expected) in table {
            let msg = malformed_message(&policy);
            assert!(
                msg.contains(expected),
                "{policy}\n  gave: {msg}\n  expected: {expected}"
            );
        }
    }

    #[test]
    fn documents_over_32_kib_are_rejected() {
        let sid = "x".repeat(MAX_POLICY_BYTES);
        let policy = statement(&format!(
            r#"{{"Sid":"{sid}","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}"#
        ));
        assert!(malformed_message(&policy).contains("at most 32768"));
        let padded = format!("{}{}", ACCOUNT_POLICY.to_owned(), " ".repeat(1000));
        assert!(PolicyDocument::parse(&padded).is_ok());
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            Cidr::parse("10.0.0.0/8"),
            Some(Cidr {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            })
        );
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/8/8",
            "x",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
        assert!(
            Cidr::parse("10.1.2.3/0")
                .unwrap()
                .contains("99.0.0.1".parse().unwrap())
        );
    }
}
