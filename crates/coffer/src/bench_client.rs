//! The load generator of `coffer bench` and `coffer bench-kms`: a minimal HTTP/1.1 client on
//! hyper's connection API with its own SigV4 signer (Authorization header; S3 requests with
//! `UNSIGNED-PAYLOAD`, KMS requests with the body's SHA-256), and a pool of keep-alive
//! connections.
//!
//! Why not the AWS SDKs: on a 2-core machine the client shares the CPU with the server it
//! measures, and the SDKs spend several times the server's own CPU per small request (their
//! orchestrator, interceptors, retry and checksum machinery). A server figure that is really a
//! client figure tells nothing. This client does per request what any S3 client must — sign,
//! send, read — and nothing else; every response is still checked by the callers. The SDKs'
//! compatibility is proven by the integration tests, not here.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request body: in memory, or generated as it is sent.
pub type Body = BoxBody<Bytes, Infallible>;

/// A body held in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// SigV4 request signing with one access key, for one region and service. The signing key is
/// derived once per UTC day.
pub struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    service: &'static str,
    /// (date `YYYYMMDD`, signing key) of the last request.
    signing_key: Mutex<Option<(String, [u8; 32])>>,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str, region: &str, service: &'static str) -> Signer {
        Signer {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            region: region.to_owned(),
            service,
            signing_key: Mutex::new(None),
        }
    }

    fn key_for(&self, date: &str) -> [u8; 32] {
        let mut cached = self.signing_key.lock().expect("signing key lock");
        if let Some((day, key)) = cached.as_ref()
            && day == date
        {
            return *key;
        }
        let k_date = coffer_crypto::hmac_sha256(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = coffer_crypto::hmac_sha256(&k_date, self.region.as_bytes());
        let k_service = coffer_crypto::hmac_sha256(&k_region, self.service.as_bytes());
        let key = coffer_crypto::hmac_sha256(&k_service, b"aws4_request");
        *cached = Some((date.to_owned(), key));
        key
    }

    /// Adds `x-amz-date` and `Authorization` to `headers`, signing every header in it (names
    /// must be lowercase, `host` included). `path` is the URI-encoded path; the query is empty.
    pub fn sign(&self, method: &Method, path: &str, payload_sha256: &str, headers: &mut HeaderMap) {
        let amz_date = amz_date(SystemTime::now());
        let date = &amz_date[..8];
        headers.insert("x-amz-date", amz_date.parse().expect("ASCII date"));
        let mut names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        names.sort_unstable();
        names.dedup();
        let mut canonical = format!("{method}\n{path}\n\n");
        for name in &names {
            let value = headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let _ = writeln!(canonical, "{name}:{}", value.trim());
        }
        let signed = names.join(";");
        let _ = write!(canonical, "\n{signed}\n{payload_sha256}");
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(coffer_crypto::sha256(canonical.as_bytes()))
        );
        let signature = hex::encode(coffer_crypto::hmac_sha256(
            &self.key_for(date),
            to_sign.as_bytes(),
        ));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.access_key
        );
        headers.insert(
            http::header::AUTHORIZATION,
            auth.parse().expect("ASCII authorization"),
        );
    }
}

/// `YYYYMMDDTHHMMSSZ` for `time` (UTC).
fn amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// URI-encodes a path per SigV4: unreserved characters and `/` stay, the rest is `%XX`.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Keep-alive HTTP/1.1 connections to one server, shared by the benchmark's tasks.
pub struct Client {
    addr: String,
    signer: Signer,
    idle: Mutex<Vec<SendRequest<Body>>>,
}

/// What a request returned, its body already read and checked by the caller's callback.
pub struct Answer {
    pub headers: HeaderMap,
    pub body_len: u64,
}

impl Client {
    /// A client of the plain-HTTP endpoint `endpoint` (`http://host:port`), signing as `signer`.
    pub fn new(endpoint: &str, signer: Signer) -> anyhow::Result<Client> {
        let addr = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| {
                anyhow!(
                    "the benchmark client speaks plain HTTP: {endpoint:?} is not http://host:port"
                )
            })?
            .trim_end_matches('/');
        if addr.contains('/') {
            bail!("the endpoint {endpoint:?} has a path: give http://host:port");
        }
        Ok(Client {
            addr: addr.to_owned(),
            signer,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connection(&self) -> anyhow::Result<SendRequest<Body>> {
        loop {
            let pooled = self.idle.lock().expect("pool lock").pop();
            match pooled {
                Some(mut conn) => {
                    if conn.ready().await.is_ok() {
                        return Ok(conn);
                    }
                }
                None => break,
            }
        }
        let stream = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// Sends one signed request and streams the response body through `on_chunk`; the
    /// connection goes back to the pool once the body is read. A non-2xx status is an error
    /// carrying the start of the body (the S3/KMS error document).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        payload_sha256: &str,
        body: Body,
        mut on_chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Answer> {
        let path = encode_path(path);
        headers.insert(http::header::HOST, self.addr.parse()?);
        self.signer
            .sign(&method, &path, payload_sha256, &mut headers);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&path)
            .body(body)?;
        *request.headers_mut() = headers;
        let mut conn = self.connection().await?;
        let response = conn
            .send_request(request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let (parts, mut incoming): (_, Incoming) = response.into_parts();
        let ok = parts.status.is_success();
        let mut error_body = Vec::new();
        let mut body_len = 0u64;
        while let Some(frame) = incoming.frame().await {
            let frame = frame.with_context(|| format!("{method} {path}: reading the body"))?;
            if let Some(data) = frame.data_ref() {
                body_len += data.len() as u64;
                if ok {
                    on_chunk(data)?;
                } else if error_body.len() < 1024 {
                    error_body.extend_from_slice(data);
                }
            }
        }
        self.idle.lock().expect("pool lock").push(conn);
        if !ok {
            bail!(
                "{method} {path}: {} {}",
                parts.status,
                String::from_utf8_lossy(&error_body)
            );
        }
        Ok(Answer {
            headers: parts.headers,
            body_len,
        })
    }

    /// An S3 request with `UNSIGNED-PAYLOAD` (path-style addressing).
    pub async fn s3(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Body,
        on_chunk: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Answer> {
        const UNSIGNED: &str = "UNSIGNED-PAYLOAD";
        headers.insert(
            "x-amz-content-sha256",
            http::HeaderValue::from_static(UNSIGNED),
        );
        self.send(method, path, headers, UNSIGNED, body, on_chunk)
            .await
    }

    /// A KMS JSON 1.1 call (`TrentService.<operation>`); returns the response document.
    pub async fn kms(
        &self,
        operation: &str,
        request: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::to_vec(request)?;
        let hash = hex::encode(coffer_crypto::sha256(&body));
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert("x-amz-target", format!("TrentService.{operation}").parse()?);
        let mut out = Vec::new();
        self.send(Method::POST, "/", headers, &hash, full(body), |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })
        .await
        .with_context(|| format!("KMS {operation}"))?;
        serde_json::from_slice(&out)
            .with_context(|| format!("KMS {operation}: response is not JSON"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_formats_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
    }

    /// AWS's documented GET example (IAM ListUsers, 2015-08-30) has a query string, which this
    /// signer never sends; the signing-key derivation is checked against the example's key.
    #[test]
    fn signing_key_matches_the_aws_example() {
        let signer = Signer::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(signer.key_for("20150830")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn paths_are_encoded_except_slashes() {
        assert_eq!(encode_path("/b/a key+1/é"), "/b/a%20key%2B1/%C3%A9");
    }
}
