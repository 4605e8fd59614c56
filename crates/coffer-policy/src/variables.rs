//! Policy variables: the `${aws:username}`-style placeholders a policy of Version `2012-10-17`
//! may put in a `Resource` entry and in the values of string and ARN conditions, replaced per
//! request by the value of the condition key they name (`${key, 'default'}` when it has none), and
//! `${*}`, `${?}`, `${$}` for a literal `*`, `?` and `$`.
//!
//! A variable whose key the request does not carry (and that has no default) is *null*, as AWS
//! documents: the entry or value holding it matches nothing — so `StringEquals` and `ArnLike`
//! fail, and their negations (`StringNotEquals`, …) hold. A substituted value is always literal
//! text: a `*` in a user name is never a wildcard.
//!
//! This module must never expand anything in a `2008-10-17` policy (where `${…}` is text, as in
//! AWS), and never accept a `${` it cannot read exactly: an unterminated or malformed variable is
//! refused when the policy is stored.

use std::borrow::Cow;

use crate::{EvalContext, PolicyError, context_values, malformed};

/// A policy string that may hold policy variables.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    /// As written (lower-cased for the `…IgnoreCase` operators).
    pub(crate) raw: String,
    /// `None` when there is nothing to expand: `raw` is used as is.
    pieces: Option<Vec<Piece>>,
}

#[derive(Debug, Clone)]
enum Piece {
    /// Written text; `*` and `?` keep their wildcard meaning where the operator has one.
    Written(String),
    /// `${*}`, `${?}` or `${$}`: the character itself, never a wildcard.
    Char(char),
    /// `${key}` or `${key, 'default'}`.
    Variable {
        key: String,
        default: Option<String>,
    },
}

impl Text {
    /// Reads `s`; `variables` is whether the policy's Version expands them. `here` names the
    /// statement and field in a refusal.
    pub(crate) fn parse(here: &str, s: &str, variables: bool) -> Result<Text, PolicyError> {
        let raw = s.to_owned();
        if !variables || !s.contains("${") {
            return Ok(Text { raw, pieces: None });
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Written(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                malformed(format!(
                    "{here}: \"{s}\" has a policy variable with no closing brace"
                ))
            })?;
            pieces.push(variable(here, &after[..end])?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Written(rest.to_owned()));
        }
        Ok(Text {
            raw,
            pieces: Some(pieces),
        })
    }

    /// The same text lower-cased (the `…IgnoreCase` operators); variable names are matched
    /// case-insensitively anyway, and substituted values are lower-cased when compared.
    pub(crate) fn lowercase(self) -> Text {
        let lower = |s: &str| s.to_lowercase();
        Text {
            raw: lower(&self.raw),
            pieces: self.pieces.map(|pieces| {
                pieces
                    .into_iter()
                    .map(|piece| match piece {
                        Piece::Written(w) => Piece::Written(lower(&w)),
                        Piece::Variable { key, default } => Piece::Variable {
                            key,
                            default: default.map(|d| lower(&d)),
                        },
                        char => char,
                    })
                    .collect()
            }),
        }
    }

    /// Whether the text holds a variable (or a `${…}` character).
    pub(crate) fn has_variables(&self) -> bool {
        self.pieces.is_some()
    }

    /// The text for this request, as plain text (no wildcards): `None` if a variable is null.
    pub(crate) fn expand(&self, ctx: &EvalContext<'_>) -> Option<Cow<'_, str>> {
        self.render(ctx, false)
    }

    /// The text for this request as a wildcard pattern, and whether it is escaped (`\` before a
    /// character makes it literal: substituted values and `${*}` / `${?}`); `None` if a
    /// variable is null.
    pub(crate) fn pattern(&self, ctx: &EvalContext<'_>) -> Option<(Cow<'_, str>, bool)> {
        self.render(ctx, true).map(|p| (p, self.pieces.is_some()))
    }

    fn render(&self, ctx: &EvalContext<'_>, escaped: bool) -> Option<Cow<'_, str>> {
        let Some(pieces) = &self.pieces else {
            return Some(Cow::Borrowed(&self.raw));
        };
        let mut out = String::with_capacity(self.raw.len());
        let push_literal = |out: &mut String, text: &str| {
            for c in text.chars() {
                if escaped && matches!(c, '*' | '?' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        };
        for piece in pieces {
            match piece {
                Piece::Written(w) if escaped => {
                    // Written wildcards stay wildcards; only the escape character is escaped.
                    for c in w.chars() {
                        if c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                Piece::Written(w) => out.push_str(w),
                Piece::Char(c) => push_literal(&mut out, c.encode_utf8(&mut [0; 4])),
                Piece::Variable { key, default } => {
                    let value = match context_values(ctx, key) {
                        // A key with several values cannot be a variable (AWS): null.
                        Some(values) if values.len() == 1 => Some(values[0]),
                        Some(_) => None,
                        None => default.as_deref(),
                    }?;
                    push_literal(&mut out, value);
                }
            }
        }
        Some(Cow::Owned(out))
    }
}

/// The inside of `${…}`.
fn variable(here: &str, inside: &str) -> Result<Piece, PolicyError> {
    match inside {
        "*" => return Ok(Piece::Char('*')),
        "?" => return Ok(Piece::Char('?')),
        "$" => return Ok(Piece::Char('$')),
        _ => {}
    }
    let bad = || {
        malformed(format!(
            "{here}: \"${{{inside}}}\" is not a policy variable (${{key}} or ${{key, 'default'}}, \
             or ${{*}}, ${{?}}, ${{$}})"
        ))
    };
    let (key, default) = match inside.split_once(',') {
        None => (inside, None),
        Some((key, default)) => {
            let default = default
                .trim()
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .ok_or_else(bad)?;
            (key, Some(default.to_owned()))
        }
    };
    let key = key.trim();
    let valid = !key.is_empty()
        && key.contains(':')
        && !key.contains(|c: char| c.is_whitespace() || "${}'\"".contains(c));
    if !valid {
        return Err(bad());
    }
    Ok(Piece::Variable {
        key: key.to_owned(),
        default,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::{Decision, EvalContext, PolicyDocument, PolicyError, evaluate};

    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

    /// Evaluates `statement` (with `version`) for `caller` doing `s3:GetObject` on `resource`
    /// with the condition keys `keys`.
    fn decide(
        version: &str,
        statement: &str,
        caller: &str,
        resource: &str,
        keys: &[(&str, &str)],
    ) -> Decision {
        let doc = PolicyDocument::parse(&format!(
            r#"{{"Version":"{version}","Statement":[{statement}]}}"#
        ))
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
        let conditions: HashMap<String, Vec<String>> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect();
        evaluate(
            &doc,
            &EvalContext {
                principal_arn: caller,
                account_id: "111122223333",
                action: "s3:GetObject",
                resource,
                conditions: &conditions,
                account_delegation: true,
            },
        )
    }

    fn allow_on(resource: &str) -> String {
        format!(r#"{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"{resource}"}}"#)
    }

    fn allow_if(condition: &str) -> String {
        format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*","Condition":{condition}}}"#
        )
    }

    #[test]
    fn username_in_a_resource_gives_each_user_a_home() {
        let home = allow_on("arn:aws:s3:::b/home/${aws:username}/*");
        let alice = [("aws:username", "alice")];
        let get = |resource: &str, keys: &[(&str, &str)]| {
            decide("2012-10-17", &home, ALICE, resource, keys)
        };
        assert_eq!(
            get("arn:aws:s3:::b/home/alice/notes", &alice),
            Decision::Allow
        );
        assert_eq!(
            get("arn:aws:s3:::b/home/bob/notes", &alice),
            Decision::ImplicitDeny
        );
        // No user name (the root user, an anonymous caller): the entry matches nothing.
        assert_eq!(
            get("arn:aws:s3:::b/home/${aws:username}/notes", &[]),
            Decision::ImplicitDeny
        );
        assert_eq!(
            get("arn:aws:s3:::b/home//notes", &[]),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn a_substituted_value_is_never_a_wildcard() {
        let home = allow_on("arn:aws:s3:::b/home/${aws:username}/*");
        let starry = [("aws:username", "a*")];
        let get = |resource: &str| decide("2012-10-17", &home, ALICE, resource, &starry);
        assert_eq!(get("arn:aws:s3:::b/home/a*/x"), Decision::Allow);
        assert_eq!(get("arn:aws:s3:::b/home/abc/x"), Decision::ImplicitDeny);
        // ${*}, ${?} and ${$} are the characters themselves.
        let literal = allow_on("arn:aws:s3:::b/${*}${?}${$}/*");
        let get = |resource: &str| decide("2012-10-17", &literal, ALICE, resource, &[]);
        assert_eq!(get("arn:aws:s3:::b/*?$/k"), Decision::Allow);
        assert_eq!(get("arn:aws:s3:::b/xy$/k"), Decision::ImplicitDeny);
        // A written backslash stays a plain character next to a variable.
        let slash = allow_on(r"arn:aws:s3:::b/a\\${aws:username}");
        let get = |resource: &str| {
            decide(
                "2012-10-17",
                &slash,
                ALICE,
                resource,
                &[("aws:username", "x")],
            )
        };
        assert_eq!(get(r"arn:aws:s3:::b/a\x"), Decision::Allow);
        assert_eq!(get("arn:aws:s3:::b/ax"), Decision::ImplicitDeny);
    }

    #[test]
    fn variables_in_string_and_arn_conditions() {
        let alice = [("aws:username", "alice"), ("s3:prefix", "alice/photos/")];
        let holds = |condition: &str, keys: &[(&str, &str)]| {
            decide(
                "2012-10-17",
                &allow_if(condition),
                ALICE,
                "arn:aws:s3:::b",
                keys,
            ) == Decision::Allow
        };
        let like = r#"{"StringLike":{"s3:prefix":["${aws:username}/*"]}}"#;
        assert!(holds(like, &alice));
        assert!(!holds(
            like,
            &[("aws:username", "bob"), ("s3:prefix", "alice/")]
        ));
        let equals = r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}"}}"#;
        assert!(holds(equals, &alice));
        let ignore_case = r#"{"StringEqualsIgnoreCase":{"s3:prefix":"${aws:username}/PHOTOS/"}}"#;
        assert!(holds(
            ignore_case,
            &[("aws:username", "ALICE"), ("s3:prefix", "alice/photos/")]
        ));
        let arn =
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/*"}}"#;
        assert!(holds(arn, &[]));
        // A null variable: positive operators fail, negated ones hold (AWS: "inverted
        // condition operators … do match against a null value").
        let not_equals = r#"{"StringNotEquals":{"s3:prefix":"${aws:username}/"}}"#;
        assert!(holds(not_equals, &[("s3:prefix", "alice/")]));
        assert!(!holds(
            not_equals,
            &[("aws:username", "alice"), ("s3:prefix", "alice/")]
        ));
        assert!(!holds(
            r#"{"StringLike":{"s3:prefix":"${aws:username}*"}}"#,
            &[("s3:prefix", "x")]
        ));
        // A default stands in for a missing key.
        let with_default = r#"{"StringEquals":{"s3:prefix":"${aws:username, 'anonymous'}/"}}"#;
        assert!(holds(with_default, &[("s3:prefix", "anonymous/")]));
        assert!(holds(
            with_default,
            &[("aws:username", "alice"), ("s3:prefix", "alice/")]
        ));
        assert!(!holds(
            with_default,
            &[("aws:username", "alice"), ("s3:prefix", "anonymous/")]
        ));
    }

    #[test]
    fn version_2008_10_17_keeps_the_text_as_written() {
        let home = allow_on("arn:aws:s3:::b/home/${aws:username}/*");
        let alice = [("aws:username", "alice")];
        assert_eq!(
            decide(
                "2008-10-17",
                &home,
                ALICE,
                "arn:aws:s3:::b/home/alice/x",
                &alice
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(
                "2008-10-17",
                &home,
                ALICE,
                "arn:aws:s3:::b/home/${aws:username}/x",
                &alice
            ),
            Decision::Allow
        );
    }

    #[test]
    fn unreadable_variables_are_refused() {
        for resource in [
            "arn:aws:s3:::b/${aws:username",
            "arn:aws:s3:::b/${}",
            "arn:aws:s3:::b/${username}",
            "arn:aws:s3:::b/${aws:username, anonymous}",
            "arn:aws:s3:::b/${aws:user name}",
        ] {
            let json = format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                allow_on(resource)
            );
            match PolicyDocument::parse(&json) {
                Err(PolicyError::Malformed(m)) => assert!(m.contains("variable"), "{m}"),
                Ok(_) => panic!("accepted {resource}"),
            }
        }
    }
}
