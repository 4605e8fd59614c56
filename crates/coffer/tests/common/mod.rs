//! Test harness: starts the real `coffer` binary on an ephemeral port with its own data dir and
//! hands out aws-sdk-s3 clients, plus helpers for data, errors, raw HTTP and hand-made SigV4.
//! It must never reach into the server's internals: everything goes over a socket or the disk.
#![allow(dead_code)] // each test binary uses a different subset of the harness

pub mod checksum;
pub mod raw_http;
pub mod sigv4;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};
use tempfile::TempDir;

/// Root access key every test server is started with.
pub const ACCESS_KEY: &str = "AKIATESTROOT00000001";
/// Root secret key every test server is started with (40 characters, like AWS's).
pub const SECRET_KEY: &str = "TestRootSecretKey0000000000000000000000A";
/// The region the server runs in by default.
pub const REGION: &str = "us-east-1";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const READY_MARKER: &str = "listening on http://";

/// One running `coffer serve` process. Dropping it kills the process (SIGKILL).
pub struct TestServer {
    child: Option<Child>,
    owned_dir: Option<TempDir>,
    data_dir: PathBuf,
    addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Starts a server in a fresh temporary data dir that lives as long as the server.
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("create temp data dir");
        let mut server = TestServer::start_in(dir.path());
        server.owned_dir = Some(dir);
        server
    }

    /// Starts a server on `dir` (which may hold data of an earlier run) and waits until it listens.
    pub fn start_in(dir: &Path) -> TestServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--allow-insecure-http"])
            .env("COFFER_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("COFFER_ROOT_SECRET_KEY", SECRET_KEY)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the coffer binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        drain(
            child.stdout.take().expect("piped stdout"),
            stdout.clone(),
            Some(ready_tx.clone()),
        );
        drain(
            child.stderr.take().expect("piped stderr"),
            stderr.clone(),
            Some(ready_tx),
        );

        let addr = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => addr,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "coffer did not print `{READY_MARKER}…` within {READY_TIMEOUT:?}\n{}",
                    output_report(&stdout, &stderr)
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait for coffer");
                panic!(
                    "coffer exited ({status}) before it was ready\n{}",
                    output_report(&stdout, &stderr)
                );
            }
        };
        TestServer {
            child: Some(child),
            owned_dir: None,
            data_dir: dir.to_path_buf(),
            addr,
            stdout,
            stderr,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on, for raw HTTP requests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the server, for sending it signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// A config builder with the endpoint, root credentials, path style and no retries, so a test
    /// can change one setting (region, credentials) before building its client.
    pub fn config_builder(&self) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            // A retry would hide a flaky server: every request is sent exactly once.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
    }

    /// A client authenticated as the root user.
    pub fn client(&self) -> Client {
        Client::from_conf(self.config_builder().build())
    }

    /// Kills the server with SIGKILL (like `kill -9`) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the server");
            child.wait().expect("reap the server");
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `timeout` for the process to exit.
    /// Returns `None` (after killing it) if it did not exit in time.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.send_interrupt();
        self.wait_for_exit(timeout)
    }

    /// Sends SIGINT (Ctrl-C) without waiting.
    pub fn send_interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(sent.success(), "kill -INT failed");
    }

    /// Waits up to `timeout` for the process to exit on its own; `None` (after killing it) if
    /// it did not.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("server is running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("poll the server") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether any line the server wrote to stderr so far contains `needle`.
    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits up to `timeout` for a stderr line containing `needle`.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the server printed so far, for failure messages.
    pub fn output(&self) -> String {
        output_report(&self.stdout, &self.stderr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines from a child pipe until EOF, strips ANSI colour codes, stores them, and reports
/// the listen address once a line announces it.
fn drain(
    pipe: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Sender<SocketAddr>>,
) {
    thread::spawn(move || {
        let mut ready = ready;
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi(&String::from_utf8_lossy(&buf));
            let line = line.trim_end().to_string();
            if let Some(addr) = parse_listen_addr(&line)
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(addr);
            }
            lines.lock().unwrap().push(line);
        }
    });
}

fn parse_listen_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find(READY_MARKER)? + READY_MARKER.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn output_report(stdout: &Mutex<Vec<String>>, stderr: &Mutex<Vec<String>>) -> String {
    format!(
        "--- coffer stdout ---\n{}\n--- coffer stderr ---\n{}",
        stdout.lock().unwrap().join("\n"),
        stderr.lock().unwrap().join("\n")
    )
}

/// Runs `coffer <args>` to completion (for admin commands run while no server is up).
pub fn run_coffer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env("COFFER_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("COFFER_ROOT_SECRET_KEY", SECRET_KEY)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the coffer binary")
}

// ---------------------------------------------------------------------------------------------
// Errors

/// What an S3 error response said.
#[derive(Debug)]
pub struct S3Failure {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Unwraps the error of a request that must fail with an HTTP response from the server.
pub fn s3_failure<T, E>(result: Result<T, SdkError<E>>) -> S3Failure
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let err = match result {
        Ok(v) => panic!("expected the request to fail, but it succeeded: {v:?}"),
        Err(err) => err,
    };
    let Some(raw) = err.raw_response() else {
        panic!(
            "expected an error response from the server, got a client-side failure: {}",
            DisplayErrorContext(&err)
        );
    };
    S3Failure {
        status: raw.status().as_u16(),
        code: err.code().map(str::to_owned),
        message: err.message().map(str::to_owned),
    }
}

/// Asserts that a request failed with this status and S3 error code.
#[track_caller]
pub fn assert_s3_error<T, E>(result: Result<T, SdkError<E>>, status: u16, code: &str)
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = s3_failure(result);
    assert_eq!(
        (failure.status, failure.code.as_deref()),
        (status, Some(code)),
        "expected {status} {code}, got {failure:?}"
    );
}

/// Asserts that a request failed with this status (for responses without a body: HEAD, 304).
#[track_caller]
pub fn assert_s3_status<T, E>(result: Result<T, SdkError<E>>, status: u16)
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = s3_failure(result);
    assert_eq!(
        failure.status, status,
        "expected status {status}, got {failure:?}"
    );
}

/// Unwraps a result, printing the whole error chain (the SDK's `Display` alone says little).
#[track_caller]
pub fn ok<T, E: std::error::Error + 'static>(result: Result<T, E>) -> T {
    match result {
        Ok(v) => v,
        Err(err) => panic!("request failed: {}", DisplayErrorContext(&err)),
    }
}

// ---------------------------------------------------------------------------------------------
// Common operations

pub async fn create_bucket(client: &Client, bucket: &str) {
    ok(client.create_bucket().bucket(bucket).send().await);
}

/// Puts `body` and returns the ETag.
pub async fn put(client: &Client, bucket: &str, key: &str, body: &[u8]) -> String {
    let out = ok(client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await);
    out.e_tag().expect("PUT returns an ETag").to_string()
}

/// Gets the whole object's bytes.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = ok(client.get_object().bucket(bucket).key(key).send().await);
    ok(out.body.collect().await).into_bytes().to_vec()
}

/// Gets the bytes of `range` (a `Range` header value) and the `Content-Range` the server sent.
pub async fn get_range(
    client: &Client,
    bucket: &str,
    key: &str,
    range: &str,
) -> (Vec<u8>, Option<String>) {
    let out = ok(client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await);
    let content_range = out.content_range().map(str::to_owned);
    let bytes = ok(out.body.collect().await).into_bytes().to_vec();
    (bytes, content_range)
}

/// Uploads `parts` as one multipart object and returns the final ETag.
pub async fn put_multipart(client: &Client, bucket: &str, key: &str, parts: &[&[u8]]) -> String {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let upload = ok(client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await);
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let out = ok(client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(part.to_vec()))
            .send()
            .await);
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().expect("part ETag"))
                .build(),
        );
    }
    let out = ok(client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await);
    out.e_tag().expect("complete returns an ETag").to_string()
}

// ---------------------------------------------------------------------------------------------
// Data

/// Deterministic pseudo-random bytes: every offset differs, so a misplaced segment shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn md5_base64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(Md5::digest(data))
}

/// The quoted ETag S3 gives a single-part SSE-S3 object.
pub fn quoted_md5(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// The ETag S3 gives a multipart object: md5 of the concatenated binary part md5s, `-N`.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut all = Vec::new();
    for part in parts {
        all.extend_from_slice(&Md5::digest(part));
    }
    format!("\"{}-{}\"", md5_hex(&all), parts.len())
}

/// Percent-encodes everything but unreserved characters and `/` (for `x-amz-copy-source`).
pub fn url_encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.expect("read dir entry");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            out.extend(files_under(&path));
        } else if kind.is_file() {
            out.push(path);
        }
    }
    out
}

/// Total size in bytes of the files under `dir`.
pub fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
