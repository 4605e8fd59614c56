//! The IAM Query API (the subset that manages users, their access keys and inline identity
//! policies) on the server's one port, so `aws iam …`, boto3's `iam` client and
//! `coffer user … --endpoint` change users of a *running* server: a change is written to the
//! store and then takes effect on the next request ([`Credentials::replace_users`]).
//!
//! Requests are recognised by their SigV4 credential scope (service `iam`), verified here (IAM
//! clients sign for `us-east-1`, the global endpoint's region; the server's own region is
//! accepted too), refused over plain HTTP unless the operator allowed it (CreateAccessKey answers
//! with a secret), and authorized like any AWS call: the root user may do everything, a user
//! what its identity policies allow (`iam:CreateUser` on `arn:aws:iam::<account>:user/<name>`…).
//! Errors are IAM's XML `ErrorResponse`, built in one place. Nothing here logs a secret or a
//! request body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use coffer_crypto::Key256;
use coffer_store::MetaStore;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::Body;

use crate::auth::{Credentials, Principal};
use crate::authz::Authorizer;
use crate::kms_api::Connection;
use crate::server::xml_escape;
use crate::sigv4::{self, SigError, SignedRequest};
use crate::users::{AccessKey, UserError, UserRecord, Users};

/// The largest request body accepted (a 10 KiB policy, URL-encoded, fits three times over).
const MAX_BODY: usize = 64 * 1024;
/// The region IAM clients sign for.
const IAM_SIGNING_REGION: &str = "us-east-1";
/// The XML namespace of IAM responses.
const XMLNS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// The IAM endpoint of the server.
pub struct IamFront {
    meta: Arc<MetaStore>,
    root_key: Key256,
    credentials: Credentials,
    account_id: String,
    region: String,
    allow_insecure_http: bool,
    /// User changes are read-modify-write of one record: one at a time.
    writer: tokio::sync::Mutex<()>,
}

/// True when a request is signed for the IAM service.
pub fn is_iam<B>(req: &Request<B>) -> bool {
    credential_scope(req.headers()).is_some_and(|(_, service)| service == "iam")
}

/// The (region, service) an `Authorization: AWS4-HMAC-SHA256 Credential=…` header claims.
fn credential_scope(headers: &http::HeaderMap) -> Option<(&str, &str)> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
    let (_, credential) = rest.split_once("Credential=")?;
    let credential = credential.split([',', ' ']).next()?;
    let mut parts = credential.split('/');
    let (_key, _date, region, service) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((region, service))
}

/// An IAM error on its way to the wire.
#[derive(Debug)]
struct IamError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn iam_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> IamError {
    IamError {
        status,
        code,
        message: message.into(),
    }
}

impl From<UserError> for IamError {
    /// The one mapping of user-store errors to IAM errors.
    fn from(e: UserError) -> IamError {
        let (status, code) = match &e {
            UserError::NoSuchEntity(_) => (StatusCode::NOT_FOUND, "NoSuchEntity"),
            UserError::EntityAlreadyExists(_) => (StatusCode::CONFLICT, "EntityAlreadyExists"),
            UserError::DeleteConflict(_) => (StatusCode::CONFLICT, "DeleteConflict"),
            UserError::LimitExceeded(_) => (StatusCode::CONFLICT, "LimitExceeded"),
            UserError::MalformedPolicy(_) => (StatusCode::BAD_REQUEST, "MalformedPolicyDocument"),
            UserError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidInput"),
            UserError::Store(_) | UserError::Corrupt(_) | UserError::Crypto(_) => {
                tracing::error!(error = %e, "user store failure");
                return iam_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceFailure",
                    "The request processing has failed because of an unknown error.",
                );
            }
        };
        iam_error(status, code, e.to_string())
    }
}

/// Who is calling, once authenticated: the principal and what its policies allow, with the
/// same condition keys an S3 request of the caller would have.
struct Caller {
    principal: Principal,
    authz: Authorizer,
}

impl IamFront {
    pub fn new(
        meta: Arc<MetaStore>,
        root_key: Key256,
        credentials: Credentials,
        account_id: String,
        region: String,
        allow_insecure_http: bool,
    ) -> IamFront {
        IamFront {
            meta,
            root_key,
            credentials,
            account_id,
            region,
            allow_insecure_http,
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Handles one IAM request end to end.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &Connection,
        request_id: &str,
    ) -> Response<Body> {
        match self.answer(req, conn, request_id).await {
            Ok(xml) => xml_response(StatusCode::OK, xml, request_id),
            Err(e) => error_response(&e, request_id),
        }
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        conn: &Connection,
        request_id: &str,
    ) -> Result<String, IamError> {
        if !conn.secure && !self.allow_insecure_http {
            return Err(iam_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "IAM requests must use HTTPS: start coffer with --tls-cert/--tls-key or --tls-self-signed (or --allow-insecure-http for development only)",
            ));
        }
        let (parts, body) = req.into_parts();
        let body = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|_| {
                iam_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    "The request body is larger than 64 KiB or did not arrive whole",
                )
            })?
            .to_bytes();
        let caller = self.authenticate(&parts, &body, conn)?;
        let form = parse_form(&body)?;
        let action = form.get("Action").map(String::as_str).unwrap_or("");
        self.run(action, &form, &caller, request_id).await
    }

    fn authenticate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        conn: &Connection,
    ) -> Result<Caller, IamError> {
        let claimed_region = credential_scope(&parts.headers).map_or("", |(r, _)| r);
        let region = if claimed_region == self.region {
            self.region.as_str()
        } else {
            IAM_SIGNING_REGION
        };
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body,
        };
        let access_key = sigv4::verify(&signed, region, "iam", SystemTime::now(), |ak| {
            self.credentials.secret(ak)
        })
        .map_err(|e| match e {
            SigError::Missing => iam_error(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
            SigError::Malformed(m) | SigError::WrongScope(m) => {
                iam_error(StatusCode::BAD_REQUEST, "IncompleteSignature", m)
            }
            SigError::UnknownAccessKey => iam_error(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
            SigError::Skewed => iam_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "Signature expired: the request time is more than 15 minutes from the server time.",
            ),
            SigError::Mismatch => iam_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ),
        })?;
        let invalid = || {
            iam_error(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        };
        let account = self.credentials.lookup(&access_key).ok_or_else(invalid)?;
        let authz = Authorizer::for_access_key(
            &self.credentials,
            &self.account_id,
            &access_key,
            Some(conn),
            &parts.headers,
            None,
        )
        .ok_or_else(invalid)?;
        Ok(Caller {
            principal: account.principal,
            authz,
        })
    }

    /// Refuses unless the caller may do `iam:<action>` on `resource`.
    fn authorize(&self, caller: &Caller, action: &str, resource: &str) -> Result<(), IamError> {
        let action = format!("iam:{action}");
        match caller.authz.verdict(&action, resource).explanation(&action) {
            None => Ok(()),
            Some(why) => Err(iam_error(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
                    caller.authz.principal_arn()
                ),
            )),
        }
    }

    fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account_id)
    }

    /// Runs one action; returns the `<…Result>` XML (or empty) inside its response envelope.
    async fn run(
        &self,
        action: &str,
        form: &HashMap<String, String>,
        caller: &Caller,
        request_id: &str,
    ) -> Result<String, IamError> {
        let param = |name: &str| form.get(name).map(String::as_str);
        let required = |name: &str| required(form, name);
        // The user a request is about: `UserName`, or the caller itself where IAM allows that.
        let subject = || -> Result<String, IamError> {
            match (
                param("UserName").filter(|v| !v.is_empty()),
                &caller.principal,
            ) {
                (Some(name), _) => Ok(name.to_owned()),
                (None, Principal::User(me)) => Ok(me.clone()),
                (None, Principal::Root) => required("UserName").map(str::to_owned),
            }
        };
        let now_ms = unix_ms();
        let result = match action {
            "CreateUser" => {
                let name = required("UserName")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                let user = self.change(|u| u.create(name, now_ms)).await?;
                format!("<User>{}</User>", user_xml(&user, &self.account_id))
            }
            "GetUser" => {
                if param("UserName").is_none() && caller.principal == Principal::Root {
                    format!(
                        "<User><UserId>{0}</UserId><Arn>arn:aws:iam::{0}:root</Arn><CreateDate>{1}</CreateDate></User>",
                        self.account_id,
                        iso_time(0)
                    )
                } else {
                    let name = subject()?;
                    self.authorize(caller, action, &self.user_arn(&name))?;
                    let user = {
                        let name = name.clone();
                        self.read(move |u| u.get(&name)).await?
                    };
                    format!("<User>{}</User>", user_xml(&user, &self.account_id))
                }
            }
            "ListUsers" => {
                self.authorize(
                    caller,
                    action,
                    &format!("arn:aws:iam::{}:user/", self.account_id),
                )?;
                let users = self.read(|u| u.list()).await?;
                let (page, truncated, marker) = page(
                    users,
                    |u| u.name.clone(),
                    param("Marker"),
                    param("MaxItems"),
                )?;
                let members: String = page
                    .iter()
                    .map(|u| format!("<member>{}</member>", user_xml(u, &self.account_id)))
                    .collect();
                format!("<Users>{members}</Users><IsTruncated>{truncated}</IsTruncated>{marker}")
            }
            "DeleteUser" => {
                let name = required("UserName")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                self.change(|u| u.delete(name, false)).await?;
                String::new()
            }
            "CreateAccessKey" => {
                let name = subject()?;
                self.authorize(caller, action, &self.user_arn(&name))?;
                let key: AccessKey = self.change(|u| u.create_access_key(&name, now_ms)).await?;
                format!(
                    "<AccessKey><UserName>{}</UserName><AccessKeyId>{}</AccessKeyId><Status>Active</Status><SecretAccessKey>{}</SecretAccessKey><CreateDate>{}</CreateDate></AccessKey>",
                    xml_escape(&name),
                    xml_escape(&key.id),
                    xml_escape(&key.secret),
                    iso_time(key.created_unix_ms)
                )
            }
            "ListAccessKeys" => {
                let name = subject()?;
                self.authorize(caller, action, &self.user_arn(&name))?;
                let user = {
                    let name = name.clone();
                    self.read(move |u| u.get(&name)).await?
                };
                let members: String = user
                    .access_keys
                    .iter()
                    .map(|k| {
                        format!(
                            "<member><UserName>{}</UserName><AccessKeyId>{}</AccessKeyId><Status>Active</Status><CreateDate>{}</CreateDate></member>",
                            xml_escape(&user.name),
                            xml_escape(&k.id),
                            iso_time(k.created_unix_ms)
                        )
                    })
                    .collect();
                format!(
                    "<UserName>{}</UserName><AccessKeyMetadata>{members}</AccessKeyMetadata><IsTruncated>false</IsTruncated>",
                    xml_escape(&user.name)
                )
            }
            "DeleteAccessKey" => {
                let key_id = required("AccessKeyId")?;
                let name = subject()?;
                self.authorize(caller, action, &self.user_arn(&name))?;
                self.change(|u| u.delete_access_key(&name, key_id)).await?;
                String::new()
            }
            "PutUserPolicy" => {
                let name = required("UserName")?;
                let policy_name = required("PolicyName")?;
                let document = required("PolicyDocument")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                self.change(|u| u.put_policy(name, policy_name, document))
                    .await?;
                String::new()
            }
            "GetUserPolicy" => {
                let name = required("UserName")?;
                let policy_name = required("PolicyName")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                let user = {
                    let name = name.to_owned();
                    self.read(move |u| u.get(&name)).await?
                };
                let document = user.policies.get(policy_name).ok_or_else(|| {
                    IamError::from(UserError::NoSuchEntity(format!(
                        "The user policy with name {policy_name} cannot be found."
                    )))
                })?;
                format!(
                    "<UserName>{}</UserName><PolicyName>{}</PolicyName><PolicyDocument>{}</PolicyDocument>",
                    xml_escape(name),
                    xml_escape(policy_name),
                    xml_escape(&rfc3986_encode(document))
                )
            }
            "DeleteUserPolicy" => {
                let name = required("UserName")?;
                let policy_name = required("PolicyName")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                self.change(|u| u.delete_policy(name, policy_name)).await?;
                String::new()
            }
            "ListUserPolicies" => {
                let name = required("UserName")?;
                self.authorize(caller, action, &self.user_arn(name))?;
                let user = {
                    let name = name.to_owned();
                    self.read(move |u| u.get(&name)).await?
                };
                let members: String = user
                    .policies
                    .keys()
                    .map(|p| format!("<member>{}</member>", xml_escape(p)))
                    .collect();
                format!("<PolicyNames>{members}</PolicyNames><IsTruncated>false</IsTruncated>")
            }
            "" => {
                return Err(iam_error(
                    StatusCode::BAD_REQUEST,
                    "MissingAction",
                    "The request must contain the parameter Action.",
                ));
            }
            other => {
                return Err(iam_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidAction",
                    format!(
                        "Could not find operation {} for version 2010-05-08 (Coffer implements the IAM user, access key and inline user policy operations)",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        };
        let result = if result.is_empty() {
            String::new()
        } else {
            format!("<{action}Result>{result}</{action}Result>")
        };
        Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{action}Response xmlns=\"{XMLNS}\">{result}<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
            xml_escape(request_id)
        ))
    }

    /// Reads the user store on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Users<'_>) -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, IamError> {
        let (meta, root) = (Arc::clone(&self.meta), self.root_key.clone());
        tokio::task::spawn_blocking(move || f(&Users::new(&meta, &root)))
            .await
            .map_err(|_| {
                iam_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceFailure",
                    "The request processing has failed because of an unknown error.",
                )
            })?
            .map_err(IamError::from)
    }

    /// Changes the user store (one change at a time), then makes the change take effect. Runs
    /// the store's blocking writes in place (the server's runtime is multi-threaded).
    async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Users<'_>) -> Result<T, UserError> + Send,
    ) -> Result<T, IamError> {
        let _one_at_a_time = self.writer.lock().await;
        let out = tokio::task::block_in_place(|| {
            let users = Users::new(&self.meta, &self.root_key);
            let out = f(&users)?;
            self.credentials.replace_users(&users.list()?);
            Ok::<_, UserError>(out)
        });
        out.map_err(IamError::from)
    }
}

/// A parameter that must be present and non-empty (IAM's ValidationError otherwise).
fn required<'f>(form: &'f HashMap<String, String>, name: &str) -> Result<&'f str, IamError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            iam_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!(
                    "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                    lower_first(name)
                ),
            )
        })
}

fn unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2013-03-07T20:15:16Z`, as IAM formats dates.
fn iso_time(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

fn user_xml(user: &UserRecord, account_id: &str) -> String {
    format!(
        "<Path>/</Path><UserName>{0}</UserName><UserId>{1}</UserId><Arn>arn:aws:iam::{2}:user/{0}</Arn><CreateDate>{3}</CreateDate>",
        xml_escape(&user.name),
        xml_escape(&user.user_id),
        account_id,
        iso_time(user.created_unix_ms)
    )
}

/// One page of `items` (sorted by `key`) after `marker`, at most `max_items` (1–1000, default
/// 100): the page, whether more follow, and the `<Marker>` element to continue from.
fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: Option<&str>,
) -> Result<(Vec<T>, bool, String), IamError> {
    let max = match max_items {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                iam_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    "MaxItems must be a number from 1 to 1000",
                )
            })?,
    };
    items.sort_by_key(&key);
    if let Some(marker) = marker {
        items.retain(|i| key(i).as_str() > marker);
    }
    let truncated = items.len() > max;
    items.truncate(max);
    let next = if truncated {
        items
            .last()
            .map(|i| format!("<Marker>{}</Marker>", xml_escape(&key(i))))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((items, truncated, next))
}

/// `application/x-www-form-urlencoded` into a map; a repeated name is refused.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, IamError> {
    let mut out = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(iam_error(
                StatusCode::BAD_REQUEST,
                "MalformedQueryString",
                format!("the parameter {name} is given twice"),
            ));
        }
    }
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (how IAM returns policies).
fn rfc3986_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn xml_response(status: StatusCode, xml: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(Bytes::from(xml)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// The one place an IAM error becomes a response.
fn error_response(e: &IamError, request_id: &str) -> Response<Body> {
    let kind = if e.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.code,
        xml_escape(&e.message),
        xml_escape(request_id)
    );
    xml_response(e.status, xml, request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        let form = parse_form(
            b"Action=PutUserPolicy&PolicyDocument=%7B%22a%22%3A+1%7D&Version=2010-05-08",
        )
        .unwrap();
        assert_eq!(form["Action"], "PutUserPolicy");
        assert_eq!(form["PolicyDocument"], "{\"a\": 1}");
        assert!(parse_form(b"A=1&A=2").is_err());
    }

    #[test]
    fn policies_come_back_rfc3986_encoded() {
        assert_eq!(
            rfc3986_encode("{\"A\": \"s3:*\"}"),
            "%7B%22A%22%3A%20%22s3%3A%2A%22%7D"
        );
    }

    #[test]
    fn the_credential_scope_names_the_service() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIA/20261205/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00"),
        );
        assert_eq!(credential_scope(&headers), Some(("us-east-1", "iam")));
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIA/2026"),
        );
        assert_eq!(credential_scope(&headers), None);
    }

    proptest! {
        /// Hostile bodies and headers never panic the decoders.
        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), auth in ".*") {
            let _ = parse_form(&body);
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&auth) {
                headers.insert(http::header::AUTHORIZATION, v);
            }
            let _ = credential_scope(&headers);
        }

        #[test]
        fn form_decoding_inverts_rfc3986_encoding(s in ".*") {
            let body = format!("P={}", rfc3986_encode(&s));
            prop_assert_eq!(&parse_form(body.as_bytes()).unwrap()["P"], &s);
        }
    }
}
