//! The client side of the admin commands that work on a running server (`coffer user …
//! --endpoint`): one SigV4-signed request at a time over HTTP or HTTPS (rustls, trusting the
//! certificates of `--ca-bundle`), to the server's IAM Query endpoint, and a reader for the few
//! XML elements the commands print.
//!
//! Secrets go into signatures only; responses that carry one (CreateAccessKey) are returned to
//! the caller, which prints it once.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::bench_client::Signer;

/// The region IAM requests are signed for (the global endpoint's).
const IAM_REGION: &str = "us-east-1";

/// Where and how to reach a running server.
pub struct AdminClient {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    signer: Signer,
}

impl AdminClient {
    /// A client of `endpoint` (`http://host:port` or `https://host:port`) signing as
    /// `access_key`; an https endpoint needs the certificates to trust in `ca_bundle`.
    pub fn new(
        endpoint: &str,
        ca_bundle: Option<&Path>,
        access_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<AdminClient> {
        let (secure, rest) = match endpoint.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                bail!("--endpoint must be http://host:port or https://host:port, not {endpoint:?}")
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            bail!("--endpoint {endpoint:?} has a path: give scheme://host:port");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p.parse().with_context(|| format!("port of {endpoint:?}"))?,
            ),
            _ => (authority.to_owned(), if secure { 443 } else { 80 }),
        };
        let tls = if secure {
            let bundle = ca_bundle.ok_or_else(|| {
                anyhow!("an https endpoint needs --ca-bundle (or AWS_CA_BUNDLE): the PEM certificate(s) to trust, e.g. <data-dir>/self-signed.pem")
            })?;
            Some(connector(bundle)?)
        } else {
            None
        };
        Ok(AdminClient {
            host,
            port,
            tls,
            signer: Signer::new(access_key, secret_key, IAM_REGION, "iam"),
        })
    }

    /// One IAM Query API call; returns the response XML, or the IAM error as an error.
    pub async fn iam(&self, action: &str, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut body = format!("Action={action}&Version=2010-05-08");
        for (name, value) in params {
            body.push('&');
            body.push_str(name);
            body.push('=');
            body.push_str(&form_encode(value));
        }
        let (status, xml) = self.post(body.into_bytes()).await?;
        if !status.is_success() {
            let code = xml_values(&xml, "Code")
                .into_iter()
                .next()
                .unwrap_or_default();
            let message = xml_values(&xml, "Message")
                .into_iter()
                .next()
                .unwrap_or_else(|| xml.chars().take(300).collect());
            bail!("{action} failed: {status} {code}: {message}");
        }
        Ok(xml)
    }

    async fn post(&self, body: Vec<u8>) -> anyhow::Result<(http::StatusCode, String)> {
        let mut headers = HeaderMap::new();
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        headers.insert(http::header::HOST, authority.parse()?);
        headers.insert(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8".parse()?,
        );
        let hash = hex::encode(coffer_crypto::sha256(&body));
        self.signer.sign(&Method::POST, "/", &hash, &mut headers);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(http_body_util::Full::new(Bytes::from(body)))?;
        *request.headers_mut() = headers;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        let response = match &self.tls {
            None => send(TokioIo::new(tcp), request).await?,
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|_| anyhow!("{} is not a valid TLS server name", self.host))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {authority}"))?;
                send(TokioIo::new(stream), request).await?
            }
        };
        Ok(response)
    }
}

async fn send<I>(
    io: I,
    request: Request<http_body_util::Full<Bytes>>,
) -> anyhow::Result<(http::StatusCode, String)>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn connector(bundle: &Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(bundle)
        .with_context(|| format!("reading CA bundle {}", bundle.display()))?
    {
        let cert = cert.with_context(|| format!("parsing CA bundle {}", bundle.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate of {} is not usable", bundle.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no PEM certificate", bundle.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Encodes a form value: RFC 3986 unreserved characters stay, everything else is `%XX`.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of every `<tag>…</tag>` in `xml`, entities decoded (the responses are flat enough
/// that this is all the commands need).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// Decodes the URL-encoded policy document IAM returns.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_and_url_decoding() {
        let xml = "<A><Code>NoSuchEntity</Code><Message>a &amp; b</Message><Code>2</Code></A>";
        assert_eq!(xml_values(xml, "Code"), ["NoSuchEntity", "2"]);
        assert_eq!(xml_values(xml, "Message"), ["a & b"]);
        assert_eq!(url_decode(&form_encode("{\"s3:*\": é}")), "{\"s3:*\": é}");
        assert_eq!(url_decode("%"), "%");
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(AdminClient::new("ftp://x", None, "a", "s").is_err());
        assert!(AdminClient::new("https://127.0.0.1:9000", None, "a", "s").is_err());
        let c = AdminClient::new("http://127.0.0.1:9000/", None, "a", "s").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 9000));
    }
}
