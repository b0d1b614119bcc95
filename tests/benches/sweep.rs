//! `make bench`: the revert-ingress sweep at 10, 200 and 1,000 groups, beside Cloud Custodian.
//!
//! The world (per N, in a fresh emulator): N groups, every other one tagged `Protected=true`,
//! each opened by hand to ssh and https from anywhere and to postgres from 10.0.0.0/8. The
//! sweep's policy guards the protected groups and allows postgres from 10.0.0.0/8; the peer's
//! policy (`remove-permissions ingress: matched` on protected groups with a rule from
//! anywhere) asks for the same result. Both start as processes and are timed from spawn to
//! done: sgwarden is the release binary answering one scheduled event through a local Lambda
//! Runtime API, Custodian is `custodian run` in pull mode. Between rounds the offending rules
//! are put back (not timed); after each round the protected groups are checked to hold only
//! postgres, so a fast wrong answer cannot win.
//!
//! Each size is measured twice: against the emulator as it is (every call served in a few
//! milliseconds by one Python process, one call at a time), and with 20 ms added to every
//! call, the round trip of an AWS API call that loopback does not have. The first is the
//! emulator's floor, the same for both tools; the second is closer to what an account sees.
//!
//! The peer runs when `custodian` is found (`SGWARDEN_CUSTODIAN`, else `.venv-peer`, which
//! `make bench` installs from `tests/bench-peer.lock`). The table is printed, and drawn as
//! `docs/guide/src/images/sweep-bench.svg` for the guide.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use sgwarden_tests::runtime::{binary_path, Outcome, RuntimeApi};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const SIZES: [usize; 3] = [10, 200, 1000];
const ROUNDS: usize = 3;
/// The added round trip of the second measurement.
const AWS_LIKE_LATENCY: Duration = Duration::from_millis(20);

const PEER_POLICY: &str = r#"policies:
  - name: protected-open-ingress
    resource: aws.security-group
    filters:
      - "tag:Protected": "true"
      - type: ingress
        Cidr:
          value: "0.0.0.0/0"
    actions:
      - type: remove-permissions
        ingress: matched
"#;

struct Row {
    groups: usize,
    latency: Duration,
    sgwarden: Duration,
    sgwarden_calls: usize,
    peer: Option<(Duration, usize)>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn custodian() -> Option<PathBuf> {
    let path = std::env::var_os("SGWARDEN_CUSTODIAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv-peer/bin/custodian"));
    path.exists().then_some(path)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// One sweep by the release binary, spawn to response.
async fn sgwarden_sweep(emulator: &Emulator) -> Duration {
    let runtime = RuntimeApi::start().await;
    runtime.invoke(world::scheduled_event(REGION));
    let mut env = emulator.function_env(REGION);
    env.push(("REVERT_POLICY", world::SWEEP_POLICY.to_string()));
    let start = Instant::now();
    let function = runtime.spawn("revert-ingress", &env);
    let outcomes = runtime.outcomes(1, Duration::from_secs(600)).await;
    let took = start.elapsed();
    function.stop();
    assert!(
        matches!(outcomes.first(), Some(Outcome::Response { .. })),
        "{outcomes:?}"
    );
    took
}

/// One `custodian run` of the peer policy, spawn to exit.
fn peer_sweep(custodian: &PathBuf, emulator: &Emulator, dir: &std::path::Path) -> Duration {
    let policy = dir.join("policy.yml");
    std::fs::write(&policy, PEER_POLICY).expect("write peer policy");
    let start = Instant::now();
    let status = Command::new(custodian)
        .args(["run", "--cache-period", "0", "--region", REGION, "-s"])
        .arg(dir.join("out"))
        .arg(&policy)
        .envs(emulator.function_env(REGION))
        .env("AWS_DEFAULT_REGION", REGION)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run custodian");
    let took = start.elapsed();
    assert!(status.success(), "custodian failed");
    took
}

async fn closed(ec2: &aws_sdk_ec2::Client, protected: &[String]) {
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:Protected")
                .values("true")
                .build(),
        )
        .max_results(1000)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("read protected groups");
    assert_eq!(groups.len(), protected.len());
    for group in groups {
        let ports: Vec<i32> = group
            .ip_permissions()
            .iter()
            .filter_map(|p| p.from_port())
            .collect();
        assert_eq!(ports, vec![5432], "{:?}", group.group_id());
    }
}

/// Both tools at `groups` groups, once per latency, in one world.
async fn measure(groups: usize, custodian: Option<&PathBuf>) -> Vec<Row> {
    let emulator = Emulator::start();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config(REGION).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let (protected, _) = world::sweep_world(&ec2, &vpc, groups).await;
    let dir = std::env::temp_dir().join(format!("sgwarden-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("peer directory");
    let mut rows = Vec::new();
    for latency in [Duration::ZERO, AWS_LIKE_LATENCY] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut ours_calls, mut their_calls) = (0, 0);
        for _ in 0..ROUNDS {
            emulator.clear_calls();
            emulator.set_latency(latency);
            ours.push(sgwarden_sweep(&emulator).await);
            emulator.set_latency(Duration::ZERO);
            ours_calls = emulator.calls().len();
            closed(&ec2, &protected).await;
            world::reopen(&ec2, &protected).await;
            if let Some(custodian) = custodian {
                emulator.clear_calls();
                emulator.set_latency(latency);
                theirs.push(peer_sweep(custodian, &emulator, &dir));
                emulator.set_latency(Duration::ZERO);
                their_calls = emulator.calls().len();
                closed(&ec2, &protected).await;
                world::reopen(&ec2, &protected).await;
            }
        }
        rows.push(Row {
            groups,
            latency,
            sgwarden: median(ours),
            sgwarden_calls: ours_calls,
            peer: (!theirs.is_empty()).then(|| (median(theirs), their_calls)),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

/// One measurement on the chart: N groups, wall time.
type Point = (usize, Duration);

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The table as an SVG line chart: wall time against N, one line per tool.
fn chart(rows: &[Row]) -> String {
    let (width, height, left, bottom) = (560.0, 300.0, 60.0, 40.0);
    let max_n = rows.iter().map(|r| r.groups).max().unwrap_or(1) as f64;
    let max_t = rows
        .iter()
        .flat_map(|r| [Some(r.sgwarden), r.peer.map(|p| p.0)])
        .flatten()
        .map(|d| d.as_secs_f64())
        .fold(0.1, f64::max)
        * 1.1;
    let x = |n: usize| left + (n as f64 / max_n) * (width - left - 20.0);
    let y = |t: f64| height - bottom - (t / max_t) * (height - bottom - 20.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{left}" y1="20" x2="{left}" y2="{0}" stroke="black"/>"#,
        height - bottom,
        width - 20.0
    );
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.groups).collect();
    sizes.dedup();
    for n in sizes {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{n}</text>"#,
            x(n),
            height - bottom + 16.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">security groups in the account (half in scope)</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">sweep wall time (s)</text>"#,
        (width + left) / 2.0,
        height - 6.0,
        height / 2.0,
        height / 2.0
    );
    for tick in 0..=4 {
        let t = max_t * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{t:.1}</text>"#,
            left - 6.0,
            y(t) + 4.0
        );
    }
    let at = |latency: Duration| rows.iter().filter(move |r| r.latency == latency);
    let lines: [(&str, &str, Vec<Point>); 4] = [
        (
            "sgwarden, emulator as is",
            "#1f77b4",
            at(Duration::ZERO).map(|r| (r.groups, r.sgwarden)).collect(),
        ),
        (
            "Cloud Custodian, emulator as is",
            "#d62728",
            at(Duration::ZERO)
                .filter_map(|r| r.peer.map(|p| (r.groups, p.0)))
                .collect(),
        ),
        (
            "sgwarden, +20 ms per call",
            "#17becf",
            at(AWS_LIKE_LATENCY)
                .map(|r| (r.groups, r.sgwarden))
                .collect(),
        ),
        (
            "Cloud Custodian, +20 ms per call",
            "#ff9896",
            at(AWS_LIKE_LATENCY)
                .filter_map(|r| r.peer.map(|p| (r.groups, p.0)))
                .collect(),
        ),
    ];
    for (i, (name, colour, points)) in lines.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(n, t)| format!("{:.1},{:.1}", x(*n), y(t.as_secs_f64())))
            .collect();
        for point in &path {
            let (px, py) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                svg,
                r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#
            );
        }
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="{}" fill="{colour}">{name}</text>"#,
            path.join(" "),
            left + 12.0,
            30.0 + 16.0 * i as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // The binary this bench runs is the one `make package` ships: built first by `make bench`.
    let binary = binary_path("revert-ingress");
    let custodian = custodian();
    println!(
        "sweep bench: {} against the local emulator; peer: {}",
        binary.display(),
        custodian
            .as_ref()
            .map_or("not installed".to_string(), |p| p.display().to_string())
    );
    // SGWARDEN_SWEEP_SIZES=10,200 runs only those sizes (a quick look).
    let sizes: Vec<usize> = std::env::var("SGWARDEN_SWEEP_SIZES")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|_| SIZES.to_vec());
    let mut rows = Vec::new();
    for groups in sizes {
        rows.extend(measure(groups, custodian.as_ref()).await);
    }
    println!("| N groups | added per call | sgwarden sweep | Cloud Custodian | API calls sgwarden / Custodian | speed-up |");
    println!("|---|---|---|---|---|---|");
    rows.sort_by_key(|r| (r.latency, r.groups));
    for row in &rows {
        let (peer, peer_calls, speedup) = match row.peer {
            Some((t, calls)) => (
                secs(t),
                calls.to_string(),
                format!("{:.1}x", t.as_secs_f64() / row.sgwarden.as_secs_f64()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} ms | {} | {} | {} / {} | {} |",
            row.groups,
            row.latency.as_millis(),
            secs(row.sgwarden),
            peer,
            row.sgwarden_calls,
            peer_calls,
            speedup
        );
    }
    let svg = repo().join("docs/guide/src/images/sweep-bench.svg");
    std::fs::write(&svg, chart(&rows)).expect("write the chart");
    println!("chart: {}", svg.display());
}
