//! A local Lambda Runtime API, to drive the real function binaries as Lambda does.
//!
//! The binary is started with `AWS_LAMBDA_RUNTIME_API` pointing here. It long-polls
//! `GET /2018-06-01/runtime/invocation/next`, gets one queued event with the headers Lambda
//! sends, and posts its result to `.../invocation/<id>/response` or `.../error` (or
//! `/runtime/init/error` when it cannot start). This server answers exactly that protocol,
//! on a free loopback port, and collects the results for the test to assert on.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the function posted back for one invocation (or for its start).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response { request_id: String, body: Value },
    Error { request_id: String, body: Value },
    InitError { body: Value },
}

impl Outcome {
    /// Asserts this is an invocation's error of `error_type` whose message names `naming`
    /// (the field, setting or resource the function refused on), and returns its body.
    #[track_caller]
    pub fn expect_error(&self, error_type: &str, naming: &str) -> &Value {
        match self {
            Outcome::Error { body, .. } => {
                assert_eq!(body["errorType"], error_type, "{body}");
                let message = body["errorMessage"].as_str().unwrap_or_default();
                assert!(message.contains(naming), "{naming} not named: {body}");
                body
            }
            other => panic!("expected an error {error_type}: {other:?}"),
        }
    }
}

/// How long Lambda gives an invocation unless a test says otherwise (the functions' timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// One queued invocation: its request id, event and deadline.
type Queued = (String, Value, SystemTime);

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    outcomes: Vec<Outcome>,
    /// When the function asked for each invocation it was given; the first is the end of
    /// its init, as Lambda's `Init Duration` counts it.
    polls: Vec<Instant>,
    /// When each outcome arrived, in the order of `outcomes`.
    outcome_times: Vec<Instant>,
}

/// The Runtime API server. Dropping it stops serving.
pub struct RuntimeApi {
    port: u16,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind runtime API");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let server = {
            let (state, changed) = (state.clone(), changed.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, state.clone(), changed.clone()));
                }
            })
        };
        Self {
            port,
            state,
            changed,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Queues an event with the functions' usual timeout; returns its request id.
    pub fn invoke(&self, event: Value) -> String {
        self.invoke_until(event, SystemTime::now() + DEFAULT_TIMEOUT)
    }

    /// Queues an event that Lambda would end at `deadline`; returns its request id.
    pub fn invoke_until(&self, event: Value, deadline: SystemTime) -> String {
        let id = format!("req-{}", uuid_like());
        self.state
            .lock()
            .expect("runtime state")
            .queue
            .push_back((id.clone(), event, deadline));
        self.changed.notify_waiters();
        id
    }

    /// How long each invocation took, from the function's request for it to its outcome:
    /// Lambda's `Duration`. The first poll, less the process's start, is its init.
    pub fn timeline(&self) -> (Option<Instant>, Vec<Duration>) {
        let state = self.state.lock().expect("runtime state");
        let durations = state
            .polls
            .iter()
            .zip(&state.outcome_times)
            .map(|(poll, done)| done.saturating_duration_since(*poll))
            .collect();
        (state.polls.first().copied(), durations)
    }

    /// Waits until `count` outcomes have arrived (or `limit` passes) and returns them.
    pub async fn outcomes(&self, count: usize, limit: Duration) -> Vec<Outcome> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            {
                let state = self.state.lock().expect("runtime state");
                if state.outcomes.len() >= count {
                    return state.outcomes.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.state.lock().expect("runtime state").outcomes.clone();
            }
        }
    }

    /// Starts a function binary of this workspace against this Runtime API.
    pub fn spawn(&self, binary: &str, env: &[(&str, String)]) -> FunctionProcess {
        let path = binary_path(binary);
        let mut child = Command::new(&path)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", self.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", binary)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut out, &mut text);
                text
            })
        });
        FunctionProcess { child, stdout }
    }
}

/// The CloudWatch embedded-metric documents among a function's log lines, as JSON.
pub fn metrics_in(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

/// Checks one embedded-metric document: namespace `sgwarden`, dimension `Function` = `function`,
/// and each `(metric, value)` both declared and carried.
pub fn assert_metrics(doc: &Value, function: &str, expected: &[(&str, u64)]) {
    let declared = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(declared["Namespace"], "sgwarden", "{doc}");
    assert_eq!(
        declared["Dimensions"],
        serde_json::json!([["Function"]]),
        "{doc}"
    );
    assert_eq!(doc["Function"], function, "{doc}");
    assert!(doc["_aws"]["Timestamp"].as_u64().is_some(), "{doc}");
    let names: Vec<&str> = declared["Metrics"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["Name"].as_str()).collect())
        .unwrap_or_default();
    for (name, value) in expected {
        assert!(names.contains(name), "{name} not declared: {doc}");
        assert_eq!(doc[*name].as_u64(), Some(*value), "{name}: {doc}");
    }
}

/// Starts `binary` with `env`, serves it `events` in order and returns one outcome per event
/// (the test fails when one does not arrive within a minute).
pub async fn serve_events(
    binary: &str,
    env: &[(&str, String)],
    events: Vec<Value>,
) -> Vec<Outcome> {
    let runtime = RuntimeApi::start().await;
    let function = runtime.spawn(binary, env);
    let count = events.len();
    for event in events {
        runtime.invoke(event);
    }
    let outcomes = runtime.outcomes(count, Duration::from_secs(60)).await;
    function.stop();
    assert_eq!(outcomes.len(), count, "{binary}: {outcomes:?}");
    outcomes
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A running function binary; killed on drop.
pub struct FunctionProcess {
    child: Child,
    /// Reads the process's stdout as it is written: a function logging more than a pipe holds
    /// (a sweep's audit lines) must never block on a full pipe.
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl FunctionProcess {
    /// The process's peak resident memory so far (`VmHWM`), in KiB; Linux only.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Stops the process and returns what it logged on stdout.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a function binary: in `SGWARDEN_BIN_DIR` when set (to bench the binaries
/// `make package` built, say), else beside the running test or bench executable.
pub fn binary_path(binary: &str) -> PathBuf {
    let dir = match std::env::var_os("SGWARDEN_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("test executable lives in target/<profile>/deps")
                .to_path_buf()
        }
    };
    let path = dir.join(binary);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, changed: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let response = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let asked = Instant::now();
            let (id, event, deadline) = next_event(&state, &changed).await;
            // An invocation's time starts when it is handed out, not while the poll waits.
            let handed = asked.max(Instant::now());
            state.lock().expect("runtime state").polls.push(handed);
            let payload = event.to_string();
            let deadline = deadline
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:test\r\nLambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\nContent-Length: {}\r\n\r\n{payload}",
                payload.len()
            )
        } else if method == "POST" {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let outcome = match segments.as_slice() {
                [_, "runtime", "invocation", id, "response"] => Some(Outcome::Response {
                    request_id: id.to_string(),
                    body,
                }),
                [_, "runtime", "invocation", id, "error"] => Some(Outcome::Error {
                    request_id: id.to_string(),
                    body,
                }),
                [_, "runtime", "init", "error"] => Some(Outcome::InitError { body }),
                _ => None,
            };
            match outcome {
                Some(outcome) => {
                    let mut state = state.lock().expect("runtime state");
                    state.outcomes.push(outcome);
                    state.outcome_times.push(Instant::now());
                    changed.notify_waiters();
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n"
                        .to_string()
                }
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
            }
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if write.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn next_event(state: &Arc<Mutex<State>>, changed: &Arc<Notify>) -> Queued {
    loop {
        let notified = changed.notified();
        if let Some(next) = state.lock().expect("runtime state").queue.pop_front() {
            return next;
        }
        notified.await;
    }
}

/// What a run of the `sgwarden` binary left: its exit code and output.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sgwarden args…` as an operator would, with only the emulator's environment (in
/// `region`) and `env`, and `stdin` piped in.
pub async fn run_sgwarden(
    emulator: &crate::Emulator,
    region: &str,
    args: &[&str],
    env: &[(&str, String)],
    stdin: Option<&str>,
) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(binary_path("sgwarden"))
        .args(args)
        .env_clear()
        .envs(emulator.function_env(region))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sgwarden");
    let mut input = child.stdin.take().expect("sgwarden's standard input");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .expect("write sgwarden's standard input");
    drop(input);
    let out = child.wait_with_output().await.expect("sgwarden ran");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}
