//! Test harness: starts the real `coffer` binary on an ephemeral port with its own data dir and
//! hands out aws-sdk-s3 and aws-sdk-kms clients, plus helpers for data, errors, raw HTTP(S) and
//! hand-made SigV4. `TestServer::builder()` starts a server with extra flags
//! (KMS quotas, an injected KMS clock, TLS). It must never reach into the server's internals:
//! everything goes over a socket, the disk or the `coffer` command line.

pub mod checksum;
pub mod raw_http;
pub mod sigv4;

use std::ffi::{OsStr, OsString};
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
const READY_MARKER_TLS: &str = "listening on https://";
/// How long a graceful stop (SIGTERM) may take before the harness kills the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start `coffer serve`: the harness defaults (ephemeral port, root credentials,
/// `--allow-insecure-http`) plus extra flags. Kept by the server, so
/// `TestServer::restart` starts the same configuration again.
#[derive(Clone)]
pub struct ServerBuilder {
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    allow_insecure_http: bool,
}

impl ServerBuilder {
    /// Adds one flag or value to `coffer serve`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ServerBuilder {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds flags and values to `coffer serve`.
    pub fn args<I, S>(mut self, args: I) -> ServerBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable of the server process (e.g. `COFFER_LOG`).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ServerBuilder {
        self.envs
            .push((name.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Leaves out `--allow-insecure-http`: the server then refuses key material over plain HTTP.
    pub fn without_insecure_http(mut self) -> ServerBuilder {
        self.allow_insecure_http = false;
        self
    }

    /// Serves HTTPS with a certificate generated at start (`--tls-self-signed`, written to
    /// `<data-dir>/self-signed.pem`) and without `--allow-insecure-http`.
    pub fn tls_self_signed(self) -> ServerBuilder {
        self.without_insecure_http().arg("--tls-self-signed")
    }

    /// Starts the server in a fresh temporary data dir that lives as long as the server.
    pub fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("create temp data dir");
        let mut server = self.start_in(dir.path());
        server.owned_dir = Some(dir);
        server
    }

    /// Starts the server on `dir` (which may hold data of an earlier run) and waits until it
    /// listens.
    pub fn start_in(self, dir: &Path) -> TestServer {
        let running = spawn(&self, dir);
        TestServer {
            child: Some(running.child),
            owned_dir: None,
            data_dir: dir.to_path_buf(),
            addr: running.addr,
            secure: running.secure,
            launch: self,
            stdout: running.stdout,
            stderr: running.stderr,
        }
    }
}

/// One running `coffer serve` process. Dropping it kills the process (SIGKILL).
pub struct TestServer {
    child: Option<Child>,
    owned_dir: Option<TempDir>,
    data_dir: PathBuf,
    addr: SocketAddr,
    /// Whether the server announced `https://`.
    secure: bool,
    launch: ServerBuilder,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// A freshly spawned server that announced its address.
struct Running {
    child: Child,
    addr: SocketAddr,
    secure: bool,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn spawn(launch: &ServerBuilder, dir: &Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    if launch.allow_insecure_http {
        command.arg("--allow-insecure-http");
    }
    command
        .args(&launch.args)
        .env("COFFER_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("COFFER_ROOT_SECRET_KEY", SECRET_KEY)
        .env("NO_COLOR", "1")
        .envs(launch.envs.iter().map(|(k, v)| (k, v)));
    let mut child = command
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

    let (addr, secure) = match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(ready) => ready,
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
    Running {
        child,
        addr,
        secure,
        stdout,
        stderr,
    }
}

impl TestServer {
    /// Starts a server in a fresh temporary data dir that lives as long as the server.
    pub fn start() -> TestServer {
        TestServer::builder().start()
    }

    /// Starts a server on `dir` (which may hold data of an earlier run) and waits until it listens.
    pub fn start_in(dir: &Path) -> TestServer {
        TestServer::builder().start_in(dir)
    }

    /// The harness defaults, to add flags before starting.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            envs: Vec::new(),
            allow_insecure_http: true,
        }
    }

    /// `http://127.0.0.1:<port>` (or `https://…` for a TLS server).
    pub fn endpoint(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the server serves HTTPS.
    pub fn is_https(&self) -> bool {
        self.secure
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 30 s) so it can flush, e.g. the
    /// audit log, and release the database; the data dir stays.
    pub fn stop(&mut self) {
        let Some(child) = self.child.as_ref() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.wait_for_exit(STOP_TIMEOUT);
        assert!(
            status.is_some(),
            "coffer did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
            self.output()
        );
    }

    /// Starts the server again, with the same flags, on the same data dir (stopping it first
    /// if it still runs). The port changes: build clients again afterwards.
    pub fn restart(&mut self) {
        self.stop();
        let running = spawn(&self.launch, &self.data_dir);
        self.child = Some(running.child);
        self.addr = running.addr;
        self.secure = running.secure;
        self.stdout = running.stdout;
        self.stderr = running.stderr;
    }

    /// Adds a user allowed everything by its identity policy with `coffer user add` on the
    /// stopped server's data dir, starts the server again and returns the user's key pair.
    pub fn add_user(&mut self, name: &str) -> (String, String) {
        self.add_user_with_policy(name, ALLOW_ALL_POLICY)
    }

    /// Adds a user with this identity policy (JSON) offline, as [`TestServer::add_user`].
    pub fn add_user_with_policy(&mut self, name: &str, policy: &str) -> (String, String) {
        self.stop();
        let dir = self
            .data_dir
            .to_str()
            .expect("data dir is UTF-8")
            .to_owned();
        let policy_file = tempfile::NamedTempFile::new().expect("temp policy file");
        std::fs::write(policy_file.path(), policy).expect("write policy");
        let out = run_coffer(&[
            "user",
            "add",
            "--data-dir",
            &dir,
            name,
            "--policy-file",
            policy_file.path().to_str().expect("UTF-8 temp path"),
        ]);
        let pair = new_user_keys(&out, name);
        self.restart();
        pair
    }

    /// Adds a user with this identity policy to the *running* server (`coffer user add
    /// --endpoint`, through its IAM endpoint) and returns the user's key pair.
    pub fn add_user_online(&self, name: &str, policy: Option<&str>) -> (String, String) {
        let endpoint = self.endpoint();
        let policy_file = tempfile::NamedTempFile::new().expect("temp policy file");
        let mut args = vec!["user", "add", "--endpoint", &endpoint, name];
        if let Some(policy) = policy {
            std::fs::write(policy_file.path(), policy).expect("write policy");
            args.extend(["--policy-file", policy_file.path().to_str().expect("UTF-8")]);
        }
        new_user_keys(&run_coffer(&args), name)
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

    /// An S3 client with other credentials (a user's, or wrong ones).
    pub fn client_as(&self, access_key: &str, secret_key: &str) -> Client {
        Client::from_conf(
            self.config_builder()
                .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
                .build(),
        )
    }

    /// An aws-sdk-kms config builder with the endpoint, root credentials and no retries (so
    /// throttling and every other error stays visible), for tests that change one setting.
    pub fn kms_config_builder(&self) -> aws_sdk_kms::config::Builder {
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_kms::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            )
    }

    /// A KMS client authenticated as the root user.
    pub fn kms_client(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(self.kms_config_builder().build())
    }

    /// A KMS client with other credentials (a user's, or wrong ones).
    pub fn kms_client_as(&self, access_key: &str, secret_key: &str) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::from_conf(
            self.kms_config_builder()
                .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
                .build(),
        )
    }

    /// `<data-dir>/audit/kms-audit.log`.
    pub fn audit_log_path(&self) -> PathBuf {
        self.data_dir.join("audit").join("kms-audit.log")
    }

    /// The audit log's lines as they are on disk now (empty if there is no log yet).
    pub fn audit_lines(&self) -> Vec<String> {
        match std::fs::read_to_string(self.audit_log_path()) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The audit log's events, each line parsed as JSON (panics on a line that is not JSON).
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        self.audit_lines()
            .iter()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("audit log line {} is not JSON ({e}): {line}", i + 1)
                })
            })
            .collect()
    }

    /// Waits up to `timeout` for an audit event that `pred` accepts (the log may be written
    /// by a group commit a moment after the response).
    pub fn wait_for_audit_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.audit_lines();
            if let Some(event) = lines
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| pred(e))
            {
                return Some(event);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `coffer audit <args> --data-dir <this server's dir>`.
    pub fn audit_command(&self, args: &[&str]) -> std::process::Output {
        let dir = self.data_dir.to_str().expect("data dir is UTF-8");
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", dir]);
        run_coffer(&all)
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
    ready: Option<mpsc::Sender<(SocketAddr, bool)>>,
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

/// The address (and whether it is HTTPS) of a `listening on http(s)://ip:port` line.
fn parse_listen_addr(line: &str) -> Option<(SocketAddr, bool)> {
    let (start, secure) = match line.find(READY_MARKER) {
        Some(i) => (i + READY_MARKER.len(), false),
        None => (line.find(READY_MARKER_TLS)? + READY_MARKER_TLS.len(), true),
    };
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok().map(|addr| (addr, secure))
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

/// Runs `coffer serve` on `dir` and expects it to exit (refusing) within 30 s.
pub fn serve_expecting_refusal(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-insecure-http"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("COFFER_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("COFFER_ROOT_SECRET_KEY", SECRET_KEY)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coffer");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("poll coffer").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("coffer serve kept running on {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    assert!(
        !out.status.success(),
        "coffer serve should have refused to start"
    );
    out
}

/// An identity policy that allows everything.
pub const ALLOW_ALL_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The key pair `coffer user add` printed.
fn new_user_keys(out: &std::process::Output, name: &str) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "coffer user add {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {prefix}… line in `coffer user add` output:\n{stdout}"))
    };
    (value("AWS_ACCESS_KEY_ID="), value("AWS_SECRET_ACCESS_KEY="))
}

/// Runs `coffer <args>` to completion (admin commands, load generators) with the root
/// credentials in the environment, where coffer takes secrets from.
pub fn run_coffer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env("COFFER_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("COFFER_ROOT_SECRET_KEY", SECRET_KEY)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
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
pub fn assert_s3_error<T, E>(result: Result<T, SdkError<E>>, status: u16, code: &str) -> S3Failure
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
    failure
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

/// Asserts that a KMS request failed with HTTP 400 and this `__type` (AWS KMS answers every
/// client error with 400; the code is what tells them apart).
#[track_caller]
pub fn assert_kms_error<T, E>(result: Result<T, SdkError<E>>, code: &str) -> S3Failure
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = s3_failure(result);
    assert_eq!(
        (failure.status, failure.code.as_deref()),
        (400, Some(code)),
        "expected 400 {code}, got {failure:?}"
    );
    failure
}

/// Asserts that a KMS request failed with HTTP 400 and one of these `__type`s; returns it.
#[track_caller]
pub fn assert_kms_error_in<T, E>(result: Result<T, SdkError<E>>, codes: &[&str]) -> S3Failure
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let failure = s3_failure(result);
    assert!(
        failure.status == 400 && failure.code.as_deref().is_some_and(|c| codes.contains(&c)),
        "expected 400 with one of {codes:?}, got {failure:?}"
    );
    failure
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

/// Sets a bucket's `BlockedEncryptionTypes` — `SSE-C` blocks SSE-C writes (every new bucket's
/// setting), `NONE` allows them — with SSE-S3 as the bucket's default encryption.
pub async fn set_sse_c_allowed(client: &Client, bucket: &str, allowed: bool) {
    use aws_sdk_s3::types::{
        BlockedEncryptionTypes, EncryptionType, ServerSideEncryption,
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let block = if allowed {
        EncryptionType::None
    } else {
        EncryptionType::SseC
    };
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .expect("a complete default"),
        )
        .blocked_encryption_types(
            BlockedEncryptionTypes::builder()
                .encryption_type(block)
                .build(),
        )
        .build();
    ok(client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .expect("a complete configuration"),
        )
        .send()
        .await);
}

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

/// The body of a DeleteObjects request for `keys`.
pub fn delete_request(keys: &[&str], quiet: bool) -> aws_sdk_s3::types::Delete {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
        .collect();
    Delete::builder()
        .set_objects(Some(objects))
        .quiet(quiet)
        .build()
        .unwrap()
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

// ---------------------------------------------------------------------------------------------
// KMS

/// The account id in ARNs when the server is started without `--account-id`.
pub const ACCOUNT_ID: &str = "111122223333";

/// `arn:aws:kms:us-east-1:111122223333:key/<key_id>`.
pub fn key_arn(key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key_id}")
}

/// `arn:aws:kms:us-east-1:111122223333:<alias_name>` (the name includes `alias/`).
pub fn alias_arn(alias_name: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:{alias_name}")
}

/// The principal ARN of the root access key.
pub fn root_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:root")
}

/// The principal ARN of a user made with `coffer user add`.
pub fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:user/{name}")
}

/// An encryption context from pairs.
pub fn context(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Creates a symmetric key (with a description) and returns its metadata.
pub async fn create_key(
    kms: &aws_sdk_kms::Client,
    description: &str,
) -> aws_sdk_kms::types::KeyMetadata {
    ok(kms.create_key().description(description).send().await)
        .key_metadata
        .expect("CreateKey returns KeyMetadata")
}

/// Encrypts `plaintext` under `key_id` with `ctx` (empty for none) and returns the blob.
pub async fn encrypt(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    plaintext: &[u8],
    ctx: &[(&str, &str)],
) -> Vec<u8> {
    let mut req = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext));
    if !ctx.is_empty() {
        req = req.set_encryption_context(Some(context(ctx)));
    }
    ok(req.send().await)
        .ciphertext_blob
        .expect("Encrypt returns a CiphertextBlob")
        .into_inner()
}

/// Decrypts `blob` (no KeyId: the key comes from the blob) with `ctx` and returns the plaintext.
pub async fn decrypt(kms: &aws_sdk_kms::Client, blob: &[u8], ctx: &[(&str, &str)]) -> Vec<u8> {
    let mut req = kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob));
    if !ctx.is_empty() {
        req = req.set_encryption_context(Some(context(ctx)));
    }
    ok(req.send().await)
        .plaintext
        .expect("Decrypt returns a Plaintext")
        .into_inner()
}

/// The state of a key as DescribeKey reports it.
pub async fn key_state(kms: &aws_sdk_kms::Client, key_id: &str) -> aws_sdk_kms::types::KeyState {
    ok(kms.describe_key().key_id(key_id).send().await)
        .key_metadata
        .expect("DescribeKey returns KeyMetadata")
        .key_state
        .expect("KeyMetadata has a KeyState")
}

/// Writes the number of seconds the server's KMS clock runs ahead of real time into `path`
/// (the file given to the hidden `--clock-offset-file`; the server re-reads it each time).
pub fn set_clock_offset(path: &Path, seconds: i64) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seconds}\n")).expect("write the clock offset file");
    std::fs::rename(&tmp, path).expect("move the clock offset file into place");
}

/// One day in seconds, for clock offsets.
pub const DAY: i64 = 86_400;

/// Headers of a KMS JSON 1.1 request `TrentService.<operation>` with `body`, signed with SigV4
/// (service `kms`) by `signer` at `time`. `host` is the Host header value.
pub fn kms_signed_headers(
    signer: &sigv4::Signer<'_>,
    host: &str,
    operation: &str,
    body: &[u8],
    time: std::time::SystemTime,
) -> Vec<(String, String)> {
    use sigv4::{amz_date, hmac_sha256, sha256_hex};
    let amz_date = amz_date(time);
    let date = &amz_date[..8];
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
        (
            "x-amz-target".to_string(),
            format!("TrentService.{operation}"),
        ),
    ];
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(body)
    );
    let scope = format!("{date}/{}/kms/aws4_request", signer.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac_sha256(
        format!("AWS4{}", signer.secret_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, signer.region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"kms");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            signer.access_key
        ),
    ));
    headers
}

/// Sends one KMS request signed as root over plain HTTP and returns the raw response.
pub fn kms_raw_request(server: &TestServer, operation: &str, body: &[u8]) -> raw_http::RawResponse {
    let host = server.addr().to_string();
    let headers = kms_signed_headers(
        &sigv4::Signer::root(),
        &host,
        operation,
        body,
        std::time::SystemTime::now(),
    );
    raw_http::request(server.addr(), "POST", "/", &headers, body)
}

/// Sends one KMS request signed as root over HTTPS to a `--tls-self-signed` server (see
/// [`https_request`]) and returns the raw response.
pub fn kms_https_request(
    server: &TestServer,
    operation: &str,
    body: &[u8],
) -> raw_http::RawResponse {
    let host = format!("localhost:{}", server.addr().port());
    let headers = kms_signed_headers(
        &sigv4::Signer::root(),
        &host,
        operation,
        body,
        std::time::SystemTime::now(),
    );
    https_request(server, "POST", "/", &headers, body)
}

/// Sends one request over HTTPS to a `--tls-self-signed` server, trusting only the certificate
/// the server wrote to `<data-dir>/self-signed.pem` (and checking that it is valid for
/// `localhost`), and returns the raw response. `headers` must hold `host` (and any signature).
pub fn https_request(
    server: &TestServer,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> raw_http::RawResponse {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::Write as _;

    let pem_path = server.data_dir().join("self-signed.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pem_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", pem_path.display()))
    {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("add the self-signed certificate to the trust store");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = std::net::TcpStream::connect(server.addr()).expect("connect to the server");
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set read timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);

    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    tls.write_all(head.as_bytes())
        .expect("send request head over TLS");
    tls.write_all(body).expect("send request body over TLS");
    tls.flush().expect("flush TLS");
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify: what arrived is still the whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => panic!("read the HTTPS response: {e}"),
    }
    parse_http_response(&raw)
}

/// Parses a whole HTTP/1.1 response (Content-Length or chunked body).
fn parse_http_response(raw: &[u8]) -> raw_http::RawResponse {
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
    let mut rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
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
    } else {
        rest.to_vec()
    };
    raw_http::RawResponse {
        status,
        headers,
        body,
    }
}

/// A server for KMS tests that are not about quotas: `--kms-quotas off`, so that creating a
/// few keys in a row (AWS allows 5 CreateKey/s) never throttles a test of something else.
pub fn kms_server() -> TestServer {
    TestServer::builder().args(["--kms-quotas", "off"]).start()
}
