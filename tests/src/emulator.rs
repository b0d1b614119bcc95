//! One emulator process, owned by one test (or the demo).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;
use serde_json::Value;

/// How long the launcher may take to import moto and bind its port.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A region outage the emulator can simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// Requests to the region are held without an answer (a black-holed region).
    Hang,
    /// Requests to the region are answered with HTTP 503.
    Error,
    /// The region answers normally again.
    None,
}

/// One AWS call the emulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub service: String,
    pub region: String,
    /// The account the call acted in (its access key's).
    pub account: String,
    pub operation: String,
    pub params: Value,
}

impl Call {
    /// The text part of a SESv2 `SendEmail` this call made (the launcher keeps the whole
    /// request; moto keeps one part only).
    pub fn mail_text(&self) -> String {
        self.params["Content"]["Simple"]["Body"]["Text"]["Data"]
            .as_str()
            .expect("a SendEmail call with a text part")
            .to_string()
    }
}

/// How the emulator cuts the pages of DescribeSecurityGroups ([`Emulator::set_group_pages`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupPages {
    /// At most this many groups to a page, whatever MaxResults asks.
    pub most: Option<usize>,
    /// Each page after the first answers the NextToken it was asked with.
    pub repeat_token: bool,
}

/// A running emulator. Dropping it stops the process.
pub struct Emulator {
    child: Child,
    // Held open: the launcher exits when this pipe closes, so it cannot outlive us.
    _stdin: ChildStdin,
    port: u16,
    /// The HTTPS port and the directory of its test CA, when started with [`Emulator::start_with_tls`].
    tls: Option<(u16, PathBuf)>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python that has the pinned moto (and cfn-lint): `SGWARDEN_PYTHON`, else the
/// project's `.venv`.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SGWARDEN_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make emulator` (make test and make demo do it for you)",
        venv.display()
    );
    venv
}

impl Emulator {
    /// Starts an emulator on a free loopback port and waits until it serves.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts an emulator that also serves HTTPS on a second port, with a certificate from a
    /// test CA that nothing trusts unless told ([`Emulator::ca_file`]).
    pub fn start_with_tls() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sgwarden-emulator-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("create the emulator's TLS directory");
        Self::launch(Some(dir))
    }

    fn launch(tls_dir: Option<PathBuf>) -> Self {
        let mut command = Command::new(python());
        command.arg(repo_root().join("tests/emulator/launcher.py"));
        if let Some(dir) = &tls_dir {
            command.arg("--tls").arg(dir);
        }
        let mut child = command
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the emulator launcher");
        let stdin = child.stdin.take().expect("launcher stdin is piped");
        let stdout = child.stdout.take().expect("launcher stdout is piped");
        let (ready, port) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut tls_port = None;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("SGWARDEN_EMULATOR_TLS port=") {
                    tls_port = port.trim().parse::<u16>().ok();
                }
                if let Some(port) = line.strip_prefix("SGWARDEN_EMULATOR_READY port=") {
                    let _ = ready.send(port.trim().parse::<u16>().ok().map(|p| (p, tls_port)));
                    break;
                }
            }
            // Keep draining so the launcher never blocks on a full pipe.
            for _ in lines {}
        });
        let (port, tls_port) = match port.recv_timeout(START_LIMIT) {
            Ok(Some(ports)) if tls_dir.is_none() || ports.1.is_some() => ports,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the emulator did not start within {START_LIMIT:?}: {other:?}");
            }
        };
        Self {
            child,
            _stdin: stdin,
            port,
            tls: tls_port.zip(tls_dir),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The HTTPS endpoint of an emulator started with [`Emulator::start_with_tls`].
    pub fn https_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls().0)
    }

    /// The PEM file of the test CA that signed the HTTPS endpoint's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.tls().1.join("ca.pem")
    }

    fn tls(&self) -> &(u16, PathBuf) {
        self.tls
            .as_ref()
            .expect("an emulator started with Emulator::start_with_tls")
    }

    /// The OS process id, for tests that prove the process is gone after drop.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An SDK configuration for `region`, pointed at this emulator, with production bounds.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        sgwarden_aws::sdk::bounded(aws_config::defaults(BehaviorVersion::latest()))
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(
                "testing", "testing", None, None, "emulator",
            ))
            .load()
            .await
    }

    /// An SDK configuration for `region` that acts in `account` (an administrator's access
    /// key there): how a test builds a member account's world.
    pub async fn account_sdk_config(&self, account: &str, region: &str) -> SdkConfig {
        let body = serde_json::json!({ "account": account }).to_string();
        let key: Value =
            serde_json::from_str(&self.control("POST", "/_sgwarden/account", Some(&body)))
                .expect("an access key as JSON");
        sgwarden_aws::sdk::bounded(aws_config::defaults(BehaviorVersion::latest()))
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(
                key["AccessKeyId"].as_str().expect("AccessKeyId"),
                key["SecretAccessKey"].as_str().expect("SecretAccessKey"),
                None,
                None,
                "emulator-account",
            ))
            .load()
            .await
    }

    /// Creates IAM role `path` + `name` in `account`, trusting `trusted` (ARNs or account
    /// ids) to assume it; returns its ARN. STS AssumeRole checks both, as IAM does.
    pub fn create_role(&self, account: &str, path: &str, name: &str, trusted: &[&str]) -> String {
        let body = serde_json::json!({
            "account": account, "name": name, "path": path,
            "trust": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": trusted}}]}
        })
        .to_string();
        let created: Value =
            serde_json::from_str(&self.control("POST", "/_sgwarden/role", Some(&body)))
                .expect("the role as JSON");
        created["Arn"].as_str().expect("Arn").to_string()
    }

    /// The environment a function binary needs to use this emulator in `region`: the SDK's
    /// standard variables only, as in Lambda.
    pub fn function_env(&self, region: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_REGION", region.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ]
    }

    /// Every AWS call received so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        let body = self.control("GET", "/_sgwarden/calls", None);
        let list: Vec<Value> = serde_json::from_str(&body).expect("calls are JSON");
        list.into_iter()
            .map(|c| Call {
                service: c["service"].as_str().unwrap_or_default().to_string(),
                region: c["region"].as_str().unwrap_or_default().to_string(),
                account: c["account"].as_str().unwrap_or_default().to_string(),
                operation: c["operation"].as_str().unwrap_or_default().to_string(),
                params: c["params"].clone(),
            })
            .collect()
    }

    /// Calls of one operation.
    pub fn calls_of(&self, operation: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.operation == operation)
            .collect()
    }

    /// Forgets the calls received so far (after a test has built its world).
    pub fn clear_calls(&self) {
        self.control("DELETE", "/_sgwarden/calls", None);
    }

    /// Makes `region` unreachable, or reachable again.
    pub fn set_outage(&self, region: &str, outage: Outage) {
        self.outage(region, None, outage);
    }

    /// Cuts off one service (SigV4 name: `ses`, `dynamodb`, …) of a region only.
    pub fn set_service_outage(&self, region: &str, service: &str, outage: Outage) {
        self.outage(region, Some(service), outage);
    }

    fn outage(&self, region: &str, service: Option<&str>, outage: Outage) {
        let mode = match outage {
            Outage::Hang => "hang",
            Outage::Error => "error",
            Outage::None => "none",
        };
        let body =
            serde_json::json!({"region": region, "service": service, "mode": mode}).to_string();
        self.control("POST", "/_sgwarden/outage", Some(&body));
    }

    /// Answers every AWS request after `delay`, the round trip a real call has and loopback
    /// does not (benchmarks); `Duration::ZERO` ends it.
    pub fn set_latency(&self, delay: Duration) {
        let body = serde_json::json!({"seconds": delay.as_secs_f64()}).to_string();
        self.control("POST", "/_sgwarden/latency", Some(&body));
    }

    /// Answers `operation` (as the call log names it) after `delay`, beside the delay of
    /// every request; `Duration::ZERO` ends it.
    pub fn set_operation_latency(&self, operation: &str, delay: Duration) {
        let body =
            serde_json::json!({"seconds": delay.as_secs_f64(), "operation": operation}).to_string();
        self.control("POST", "/_sgwarden/latency", Some(&body));
    }

    /// Cuts DescribeSecurityGroups pages at `most` groups, below their MaxResults, as EC2
    /// may; with `repeat_token` a page answers its own NextToken again (a broken endpoint).
    /// `GroupPages::default()` ends both.
    pub fn set_group_pages(&self, pages: GroupPages) {
        let mut body = serde_json::Map::new();
        if let Some(most) = pages.most {
            body.insert("most".into(), most.into());
        }
        if pages.repeat_token {
            body.insert("repeat_token".into(), true.into());
        }
        self.control(
            "POST",
            "/_sgwarden/pages",
            Some(&serde_json::Value::Object(body).to_string()),
        );
    }

    /// Throttles EC2's mutating calls as EC2 does: a bucket of `capacity` request tokens per
    /// account and region, refilled at `refill_per_second`. `None` ends the throttling.
    pub fn set_ec2_throttle(&self, bucket: Option<(u32, u32)>) {
        let body = match bucket {
            Some((capacity, refill)) => {
                serde_json::json!({"capacity": capacity, "refill_per_second": refill}).to_string()
            }
            None => "{}".to_string(),
        };
        self.control("POST", "/_sgwarden/throttle", Some(&body));
    }

    /// Seeds CloudTrail records (each with its `awsRegion` and `eventID`) for `LookupEvents`.
    pub fn seed_cloudtrail_events(&self, records: &Value) {
        self.control(
            "POST",
            "/_sgwarden/cloudtrail-events",
            Some(&records.to_string()),
        );
    }

    /// Seeds AWS Config history items (API shape) for `GetResourceConfigHistory`.
    pub fn seed_config_history(&self, items: &Value) {
        self.control(
            "POST",
            "/_sgwarden/config-history",
            Some(&items.to_string()),
        );
    }

    /// A plain HTTP/1.1 request to the launcher's control endpoints.
    fn control(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to emulator");
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write control request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read control response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{method} {path}: {head}"
        );
        body.to_string()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((_, dir)) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
