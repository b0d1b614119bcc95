//! `make bench`: revert-ingress against the local emulator, end to end.
//!
//! - **Per event**: a rule is opened by hand (not timed), then its CloudTrail event is
//!   handled by the real handler (timed), for three shapes: rule ids in the event with the
//!   default policy (one read of the named rules, by id), rule ids with a tag-scoped policy
//!   (the same read, in parallel with one read of the group), and the legacy shape without
//!   rule ids (one read of the group's rules). The API calls of one event of each shape are
//!   counted from the emulator's call log.
//! - **Cold start**: the release binary is started against a local Lambda Runtime API with
//!   two events already queued. Its init is the time from process start to its first poll
//!   (Lambda's `Init Duration`); the first event's time less the second's (the same work
//!   warm: the emulator's latency for the same calls) is what the cold start adds to the
//!   event. Their sum is the cold start's own cost, printed with the total, process start to
//!   first revert done. The start is configuration, policy and SDK clients; its own role
//!   comes from `SGWARDEN_FUNCTION_ROLE_ARN` as the template sets it, so no call precedes
//!   the event's; the HTTPS client's TLS roots come from one bundle file, as in Lambda's
//!   image.
//!   Its peak resident memory is read from /proc.
//!
//! Wall times include the emulator's own latency (moto in Python on loopback), so they bound
//! what the code adds rather than predict AWS latency.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use revert_ingress::{OwnRole, RevertConfig, RevertIngress};
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, user};
use sgwarden_tests::runtime::{binary_path, Outcome, RuntimeApi};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const ROUNDS: usize = 20;
const COLD_STARTS: usize = 10;
/// Where Debian and Amazon Linux keep their one bundle of TLS roots.
const CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

fn ssh() -> Value {
    json!([{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}])
}

async fn opened(ec2: &aws_sdk_ec2::Client, group: &str, with_ids: bool) -> Value {
    cloudtrail::opened_by_hand(ec2, REGION, group, user("bench"), ssh(), with_ids).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let n = times.len();
    println!(
        "{label}, {n} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[n / 2]),
        ms(times[n - 1])
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk_config(REGION).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "bench", &[("Protected", "true")]).await;
    // The cold start's second event, the same work on a group of its own.
    let twin = world::group(&ec2, &vpc, "bench-twin", &[("Protected", "true")]).await;

    let shapes: [(&str, &str, bool); 3] = [
        ("rule ids, default policy", "", true),
        (
            "rule ids, tag-scoped policy",
            r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#,
            true,
        ),
        ("no rule ids (legacy shape), default policy", "", false),
    ];
    for (label, policy, with_ids) in shapes {
        let vars: HashMap<&str, String> = HashMap::from([("REVERT_POLICY", policy.to_string())]);
        let config = RevertConfig::from_lookup(|k| vars.get(k).cloned()).expect("bench settings");
        let function = RevertIngress::new(config, &sdk, OwnRole::Unknown);
        // As the binary learns it from the ARN Lambda invokes it by: no STS call.
        function.learn_own_account("123456789012");
        let mut times = Vec::new();
        let mut first_calls: BTreeMap<String, usize> = BTreeMap::new();
        for round in 0..ROUNDS {
            let event = opened(&ec2, &group, with_ids).await;
            emulator.clear_calls();
            let start = Instant::now();
            let report = function
                .handle(&event, SystemTime::now())
                .await
                .expect("revert");
            times.push(start.elapsed());
            assert_eq!(report.groups[0].revoked.len(), 1, "the rule was revoked");
            if round == 0 {
                for call in emulator.calls() {
                    *first_calls.entry(call.operation).or_insert(0) += 1;
                }
            }
        }
        summary(&format!("revert one event ({label})"), times);
        let calls: Vec<String> = first_calls
            .iter()
            .map(|(op, n)| format!("{n} x {op}"))
            .collect();
        println!("  API calls per event: {}", calls.join(", "));
    }

    let binary = binary_path("revert-ingress");
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let (mut init, mut first, mut warm, mut own, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut peak = 0;
    for _ in 0..COLD_STARTS {
        // Two events queued before the process starts: the first is its cold start's, the
        // second the same work warm, which is what the emulator's latency costs.
        let runtime = RuntimeApi::start().await;
        runtime.invoke(opened(&ec2, &group, true).await);
        runtime.invoke(opened(&ec2, &twin, true).await);
        let mut env = emulator.function_env(REGION);
        env.push((
            "SGWARDEN_FUNCTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/sgwarden-revert-ingress".to_string(),
        ));
        // The TLS roots as Lambda's image holds them, in one bundle. Without it, the SDK's
        // HTTPS client reads every file of this machine's certificate directory.
        if let Some(bundle) = CA_BUNDLES.iter().find(|b| std::path::Path::new(b).exists()) {
            env.push(("SSL_CERT_FILE", (*bundle).to_string()));
        }
        let start = Instant::now();
        let function = runtime.spawn("revert-ingress", &env);
        let outcomes = runtime.outcomes(2, Duration::from_secs(30)).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Outcome::Response { .. })),
            "{outcomes:?}"
        );
        let (first_poll, durations) = runtime.timeline();
        let first_poll = first_poll.expect("the function asked for its first event");
        let started = first_poll.saturating_duration_since(start);
        init.push(started);
        first.push(durations[0]);
        warm.push(durations[1]);
        total.push(started + durations[0]);
        own.push((started + durations[0]).saturating_sub(durations[1]));
        peak = peak.max(function.peak_rss_kib().unwrap_or(0));
        function.stop();
    }
    println!(
        "cold start of {} ({:.1} MB):",
        binary.display(),
        size as f64 / 1e6
    );
    summary(
        "  init (process start to its first poll, Lambda's Init Duration)",
        init,
    );
    summary("  first event (its poll to its response)", first);
    summary(
        "  second event, warm (the emulator's share of an event)",
        warm,
    );
    summary("  process start to first revert done", total);
    summary(
        "  the cold start's own cost (init + first event - warm event)",
        own,
    );
    println!("  peak resident memory: {:.1} MB", peak as f64 / 1024.0);
}
