//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream`, for requests the SDK cannot make:
//! presigned URLs, hand-signed requests, and uploads cut off mid-body. One request per
//! connection (`Connection: close`), response read to EOF.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response as received.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The text of the first `<tag>…</tag>` in the body, for S3 XML error bodies.
    pub fn xml_element(&self, tag: &str) -> Option<String> {
        let text = self.body_text();
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&close)? + start;
        Some(text[start..end].to_string())
    }
}

/// Splits `http://host:port/path?query` into the socket address and the request target.
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let slash = rest.find('/').unwrap_or(rest.len());
    let addr = rest[..slash].parse().expect("URL host is ip:port");
    let target = if slash == rest.len() {
        "/".to_string()
    } else {
        rest[slash..].to_string()
    };
    (addr, target)
}

fn head_bytes(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    content_length: usize,
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    if !has("content-length") {
        head.push_str(&format!("content-length: {content_length}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    head.into_bytes()
}

/// Sends one request and reads the whole response. Adds `host` and `content-length` unless given.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set read timeout");
    stream
        .write_all(&head_bytes(addr, method, target, headers, body.len()))
        .expect("send request head");
    stream.write_all(body).expect("send request body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(&raw, method == "HEAD")
}

/// Fetches a presigned URL, sending the headers the presigner said must go with it.
pub fn fetch_presigned(
    presigned: &aws_sdk_s3::presigning::PresignedRequest,
    extra_headers: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    let (addr, target) = split_url(presigned.uri());
    let mut headers: Vec<(String, String)> = presigned
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.extend_from_slice(extra_headers);
    request(addr, presigned.method(), &target, &headers, body)
}

/// Sends a request head announcing `content_length` bytes and only `body_prefix` of them, and
/// hands back the open connection so the test can cut it or kill the server.
pub fn start_partial_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    content_length: usize,
    body_prefix: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream
        .write_all(&head_bytes(addr, method, target, headers, content_length))
        .expect("send request head");
    stream
        .write_all(body_prefix)
        .expect("send part of the body");
    stream.flush().expect("flush");
    stream
}

fn parse_response(raw: &[u8], head_only: bool) -> RawResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        decode_chunked(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn decode_chunked(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    body
}
