//! `make bench`: the central sweep of an emulated organisation (issue #24), in one invocation
//! and fanned out to its sweep queue with 1, 4 and 16 concurrent workers.
//!
//! The organisation: the own account and [`MEMBERS`] member accounts (each with the member
//! role trusting the central account), in [`REGIONS`]. Every account-region holds one
//! protected group with a permitted rule and a violating rule opened by hand, and one
//! unprotected group opened the same way, which the sweep must leave as it is.
//!
//! - **One invocation**: the release binary without `SGWARDEN_SWEEP_QUEUE_URL` answers one
//!   scheduled event through a local Lambda Runtime API and sweeps every account-region
//!   itself, `PLACE_CONCURRENCY` at a time. Timed from the invoke to its outcome.
//! - **Fanned out**: the same binary with the queue set. The planner (one process) answers
//!   the scheduled event by sending one message per account-region; then N workers (N
//!   processes, each behind its own Runtime API and its own player of Lambda's SQS event
//!   source, batch size 1: `sgwarden_tests::event_source`) drain the queue concurrently until
//!   it is empty. Timed from the planner's invoke to the last worker finding the queue empty.
//!
//! Every process is started and warmed (one invocation with a queue message that is not a
//! place, refused without an AWS call) before the clock starts: the figures are warm
//! invocations (the cold start is `benches/revert_ingress.rs`'s). Between
//! runs the violating rules are opened again (not timed); after each run every group is read
//! back, so a fast wrong answer cannot pass: each violating rule is gone, each permitted rule
//! and each unprotected group kept, the queue and its dead-letter queue empty.
//!
//! The API calls are the emulator's call log of each run, divided by the account-regions:
//! the function's own calls by operation, and apart from them the calls the event source
//! makes on the function's behalf (receive, delete), which Lambda's pollers make in AWS.
//!
//! The set-up runs without added latency; the timed runs add [`LATENCY`] to every AWS request
//! (the round trip of an AWS API call that moto on loopback does not have). moto is one
//! Python process answering on loopback, so the figures bound what the code and its
//! concurrency add rather than predict AWS's own latency. The per-account-region cost of one
//! worker (and of the planner) is printed so that a reader can extrapolate to other sizes and
//! worker counts, with what it predicts for each run beside what was measured: where the two
//! part, something other than the function is the bottleneck (with many workers, the one
//! emulator process answering all of them).

// A panic is the bench's failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::ACCOUNT as CENTRAL;
use sgwarden_tests::event_source::{self, Drained, EventSource, RedrivenQueue};
use sgwarden_tests::organization::{FUNCTION_ROLE, MEMBER_ROLE, PERMITTED, POLICY, VIOLATING};
use sgwarden_tests::runtime::{binary_path, FunctionProcess, Outcome, RuntimeApi};
use sgwarden_tests::{world, Call, Emulator};
use tokio::sync::Barrier;

/// Member accounts besides the own one.
const MEMBERS: usize = 40;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// Where the central deployment runs, its queue included.
const HOME: &str = REGIONS[0];
/// The fanned-out runs' concurrent workers.
const WORKERS: [usize; 3] = [1, 4, 16];
/// Added to every AWS request during the timed runs.
const LATENCY: Duration = Duration::from_millis(20);
/// As the template's sweep queue: three receives before the dead-letter queue.
const MAX_RECEIVES: u32 = 3;
/// Longer than any invocation here: a message comes back only when the player makes it
/// visible after a failure, as the visibility timeout would.
const VISIBILITY: Duration = Duration::from_secs(120);
/// How long one run may take before the bench fails: a bound on a hang, not a measurement.
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The SQS calls the event source mapping makes, not the function.
const EVENT_SOURCE_CALLS: [&str; 3] = [
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
];

/// One account-region: a client acting there, its protected group and its unprotected one.
struct Place {
    account: String,
    region: String,
    ec2: Client,
    protected: String,
    unprotected: String,
}

async fn place(emulator: &Emulator, account: String, region: &str) -> Place {
    let ec2 = Client::new(&emulator.account_sdk_config(&account, region).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let protected = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
    world::hand_rule(&ec2, &protected, 443, "10.0.0.0/8", "pre-existing").await;
    world::hand_rule(&ec2, &protected, 22, "0.0.0.0/0", "by hand").await;
    let unprotected = world::group(&ec2, &vpc, "bastion", &[]).await;
    world::hand_rule(&ec2, &unprotected, 22, "0.0.0.0/0", "by hand").await;
    Place {
        account,
        region: region.to_string(),
        ec2,
        protected,
        unprotected,
    }
}

fn member_ids() -> Vec<String> {
    (0..MEMBERS)
        .map(|n| format!("{}", 210_000_000_000u64 + n as u64 * 1_001))
        .collect()
}

/// The organisation, built without added latency.
async fn organisation(emulator: &Emulator) -> Vec<Place> {
    let members = member_ids();
    for member in &members {
        emulator.create_role(member, "/", MEMBER_ROLE, &[CENTRAL]);
    }
    let mut places = Vec::new();
    for account in std::iter::once(CENTRAL.to_string()).chain(members) {
        for region in REGIONS {
            places.push(place(emulator, account.clone(), region).await);
        }
    }
    places
}

/// The ingress rules of a group, `tcp/<port> <cidr>`, sorted.
async fn ingress(ec2: &Client, group: &str) -> Vec<String> {
    let out = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("read {group} back: {e:?}"));
    let mut rules: Vec<String> = out
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                format!(
                    "{}/{} {}",
                    p.ip_protocol().unwrap_or_default(),
                    p.from_port().unwrap_or_default(),
                    r.cidr_ip().unwrap_or_default()
                )
            })
        })
        .collect();
    rules.sort();
    rules
}

/// Read back after a sweep: every violating rule gone, the rest kept.
async fn assert_swept(places: &[Place], mode: &str) {
    for p in places {
        assert_eq!(
            ingress(&p.ec2, &p.protected).await,
            [PERMITTED],
            "{mode}: {} {} {}",
            p.account,
            p.region,
            p.protected
        );
        assert_eq!(
            ingress(&p.ec2, &p.unprotected).await,
            [VIOLATING],
            "{mode}: {} {} {} is out of scope",
            p.account,
            p.region,
            p.unprotected
        );
    }
}

/// The violating rules opened by hand again, between runs (not timed, no added latency).
async fn reopen(emulator: &Emulator, places: &[Place]) {
    emulator.set_latency(Duration::ZERO);
    for p in places {
        world::hand_rule(&p.ec2, &p.protected, 22, "0.0.0.0/0", "by hand").await;
    }
}

/// The function's settings as the central template sets them; fanned out when `queue` is.
fn settings(emulator: &Emulator, queue: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = emulator.function_env(HOME);
    env.extend([
        ("REVERT_POLICY", POLICY.to_string()),
        ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE.to_string()),
        ("SGWARDEN_ACCOUNTS", member_ids().join(",")),
        ("SGWARDEN_REGIONS", REGIONS.join(",")),
        ("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()),
    ]);
    if let Some(url) = queue {
        env.push(("SGWARDEN_SWEEP_QUEUE_URL", url.to_string()));
    }
    env
}

/// Starts the function behind `runtime` and warms it with one invocation that touches no
/// AWS service (a queue message that is not a place, refused): the process is then initialised
/// and polling for its next event, as a warm Lambda instance is.
async fn started(runtime: &RuntimeApi, env: &[(&'static str, String)]) -> FunctionProcess {
    let function = runtime.spawn("revert-ingress", env);
    let warm_up = json!({"Records": [{
        "messageId": "warm-up", "receiptHandle": "warm-up", "body": "warm-up",
        "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:warm-up",
        "awsRegion": HOME,
    }]});
    let id = runtime.invoke(warm_up);
    let body = response(runtime, &id, "warm-up").await;
    assert_eq!(body["refused"].as_array().map(Vec::len), Some(1), "{body}");
    function
}

/// The response to invocation `id`, or the bench fails naming the outcome.
async fn response(runtime: &RuntimeApi, id: &str, what: &str) -> Value {
    let deadline = Instant::now() + RUN_LIMIT;
    let mut wanted = 1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcomes = runtime.outcomes(wanted, left).await;
        for outcome in &outcomes {
            match outcome {
                Outcome::Response { request_id, body } if request_id == id => return body.clone(),
                Outcome::Error { request_id, .. } if request_id == id => {
                    panic!("{what}: expected a response: {outcome:?}")
                }
                Outcome::InitError { .. } => panic!("{what}: did not start: {outcome:?}"),
                _ => {}
            }
        }
        assert!(
            outcomes.len() >= wanted,
            "{what}: no outcome within {RUN_LIMIT:?}"
        );
        wanted = outcomes.len() + 1;
    }
}

/// The revoked rules a response reports, as `(account, region, group)`.
fn revoked_in(body: &Value) -> Vec<(String, String, String)> {
    body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups: {body}"))
        .iter()
        .filter(|g| g["revoked"] == json!([format!("ingress {VIOLATING}")]))
        .map(|g| {
            (
                g["account"].as_str().unwrap().to_string(),
                g["region"].as_str().unwrap().to_string(),
                g["group_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_revoked(places: &[Place]) -> BTreeSet<(String, String, String)> {
    places
        .iter()
        .map(|p| (p.account.clone(), p.region.clone(), p.protected.clone()))
        .collect()
}

/// One timed run's figures.
struct Run {
    mode: &'static str,
    /// The fanned-out runs' concurrent workers.
    workers: Option<usize>,
    wall: Duration,
    /// The planner's share of a fanned-out run (invoke to its outcome).
    planner: Option<Duration>,
    calls: Vec<Call>,
    /// Deliveries per worker, invocations that failed an item, messages delivered twice.
    deliveries: Vec<usize>,
    retried: usize,
    duplicates: usize,
}

impl Run {
    fn function_calls(&self) -> impl Iterator<Item = &Call> {
        self.calls
            .iter()
            .filter(|c| !EVENT_SOURCE_CALLS.contains(&c.operation.as_str()))
    }

    fn event_source_calls(&self) -> usize {
        self.calls.len() - self.function_calls().count()
    }
}

/// The sweep in one invocation, without the queue.
async fn one_invocation(emulator: &Emulator, places: &[Place]) -> Run {
    let runtime = RuntimeApi::start().await;
    let function = started(&runtime, &settings(emulator, None)).await;
    emulator.clear_calls();
    emulator.set_latency(LATENCY);
    let start = Instant::now();
    let id = runtime.invoke(world::scheduled_event(HOME));
    let body = response(&runtime, &id, "one invocation").await;
    let wall = start.elapsed();
    emulator.set_latency(Duration::ZERO);
    let calls = emulator.calls();
    function.stop();
    assert_eq!(body["trigger"], "sweep", "{body}");
    assert_eq!(body["unswept"], json!([]), "{body}");
    assert_eq!(body["queued"], 0, "{body}");
    let revoked: BTreeSet<_> = revoked_in(&body).into_iter().collect();
    assert_eq!(revoked, expected_revoked(places), "{body}");
    assert_swept(places, "one invocation").await;
    Run {
        mode: "one invocation",
        workers: None,
        wall,
        planner: None,
        calls,
        deliveries: Vec::new(),
        retried: 0,
        duplicates: 0,
    }
}

/// The sweep fanned out: the planner, then `workers` workers draining the queue together.
async fn fanned_out(
    emulator: &Emulator,
    places: &[Place],
    sqs: &aws_sdk_sqs::Client,
    queues: &RedrivenQueue,
    workers: usize,
) -> Run {
    let env = settings(emulator, Some(&queues.queue.url));
    let planner = RuntimeApi::start().await;
    let planner_process = started(&planner, &env).await;
    // Every worker started and polling, then held until the planner is done.
    let ready = Arc::new(Barrier::new(workers + 1));
    let go = Arc::new(Barrier::new(workers + 1));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (sqs, queue, env) = (sqs.clone(), queues.queue.clone(), env.clone());
        let (ready, go) = (ready.clone(), go.clone());
        let rounds = places.len() * MAX_RECEIVES as usize + 1;
        handles.push(tokio::spawn(async move {
            let runtime = RuntimeApi::start().await;
            let function = started(&runtime, &env).await;
            ready.wait().await;
            go.wait().await;
            let drained = EventSource::new(&sqs, &queue, &runtime, 1)
                .drain(rounds)
                .await;
            let done = Instant::now();
            let logs = function.stop();
            (drained, done, logs)
        }));
    }
    ready.wait().await;
    emulator.clear_calls();
    emulator.set_latency(LATENCY);
    let start = Instant::now();
    let id = planner.invoke(world::scheduled_event(HOME));
    let plan = response(&planner, &id, "planner").await;
    let planned = start.elapsed();
    go.wait().await;
    let mut drains: Vec<(Drained, Instant, String)> = Vec::new();
    for handle in handles {
        drains.push(handle.await.unwrap());
    }
    let wall = drains
        .iter()
        .map(|(_, done, _)| done.duration_since(start))
        .max()
        .unwrap_or_default();
    emulator.set_latency(Duration::ZERO);
    let calls = emulator.calls();
    planner_process.stop();
    let mode = "fanned out";

    assert_eq!(plan["queued"], places.len(), "planner: {plan}");
    assert_eq!(plan["groups"], json!([]), "planner: {plan}");
    let mut revoked = BTreeSet::new();
    let mut seen = BTreeMap::new();
    let mut retried = 0;
    for (drained, _, logs) in &drains {
        assert!(drained.emptied, "a worker gave up: {drained:?}\n{logs}");
        for delivery in &drained.deliveries {
            for message in &delivery.messages {
                *seen.entry(message.message_id.clone()).or_insert(0) += 1;
            }
            if !delivery.retried.is_empty() {
                retried += 1;
                eprintln!("{mode} {workers}: retried {:?}", delivery.outcome);
                continue;
            }
            let body = delivery.response();
            assert_eq!(body["trigger"], "sweep-message", "{body}");
            assert_eq!(body["refused"], json!([]), "{body}");
            revoked.extend(revoked_in(body));
        }
    }
    assert_eq!(seen.len(), places.len(), "one message per place: {seen:?}");
    let duplicates = seen.values().map(|n| n - 1).sum();
    assert_eq!(revoked, expected_revoked(places), "{mode} {workers}");
    assert_eq!(event_source::depth(sqs, &queues.queue).await, (0, 0));
    let dead = event_source::receive_all(sqs, &queues.dead_letters).await;
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    assert_swept(places, mode).await;
    Run {
        mode,
        workers: Some(workers),
        wall,
        planner: Some(planned),
        calls,
        deliveries: drains.iter().map(|(d, _, _)| d.deliveries.len()).collect(),
        retried,
        duplicates,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Calls per account-region, by operation (`service:Operation`), the function's only.
fn by_operation(run: &Run, places: usize) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for call in run.function_calls() {
        *counts
            .entry(format!("{}:{}", call.service, call.operation))
            .or_insert(0.0) += 1.0;
    }
    counts.values_mut().for_each(|n| *n /= places as f64);
    counts
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let began = Instant::now();
    // The binary this bench runs is the one `make package` ships: built first by `make bench`.
    let binary = binary_path("revert-ingress");
    println!(
        "fanout bench: {} against the local emulator, {} accounts x {} regions, +{} ms per call",
        binary.display(),
        MEMBERS + 1,
        REGIONS.len(),
        LATENCY.as_millis()
    );
    let emulator = Emulator::start();
    let places = organisation(&emulator).await;
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config(HOME).await);
    let queues =
        event_source::queue_with_dead_letters(&sqs, "sgwarden-sweep", MAX_RECEIVES, VISIBILITY)
            .await;
    println!(
        "set-up: {} account-regions in {:.1} s (not timed)",
        places.len(),
        began.elapsed().as_secs_f64()
    );

    let mut runs = vec![one_invocation(&emulator, &places).await];
    for workers in WORKERS {
        reopen(&emulator, &places).await;
        runs.push(fanned_out(&emulator, &places, &sqs, &queues, workers).await);
    }

    let n = places.len();
    println!();
    println!("| mode | workers | wall time (s) | planner (s) | account-regions | wall per account-region (ms) | function calls per account-region | event-source calls per account-region |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in &runs {
        println!(
            "| {} | {} | {:.2} | {} | {} | {:.1} | {:.2} | {:.2} |",
            run.mode,
            run.workers.map_or("-".to_string(), |w| w.to_string()),
            run.wall.as_secs_f64(),
            run.planner
                .map_or("-".to_string(), |p| format!("{:.2}", p.as_secs_f64())),
            n,
            ms(run.wall) / n as f64,
            run.function_calls().count() as f64 / n as f64,
            run.event_source_calls() as f64 / n as f64,
        );
    }

    let operations: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| by_operation(r, n).into_keys())
        .collect();
    let columns: Vec<BTreeMap<String, f64>> = runs.iter().map(|r| by_operation(r, n)).collect();
    println!();
    println!("The function's calls per account-region, by operation:");
    println!();
    let heads: Vec<String> = runs
        .iter()
        .map(|r| match r.workers {
            None => r.mode.to_string(),
            Some(w) => format!("{}, {w}", r.mode),
        })
        .collect();
    println!("| operation | {} |", heads.join(" | "));
    println!("|---|{}", "---|".repeat(runs.len()));
    for operation in &operations {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| format!("{:.2}", c.get(operation).copied().unwrap_or(0.0)))
            .collect();
        println!("| {operation} | {} |", cells.join(" | "));
    }

    println!();
    for run in &runs {
        let Some(workers) = run.workers else { continue };
        let (least, most) = (
            run.deliveries.iter().min().copied().unwrap_or(0),
            run.deliveries.iter().max().copied().unwrap_or(0),
        );
        println!(
            "fanned out, {} worker(s): {least} to {most} deliveries per worker, {} retried, {} delivered twice",
            workers, run.retried, run.duplicates
        );
    }
    if let Some(one) = runs.iter().find(|r| r.workers == Some(1)) {
        let planner = one.planner.unwrap_or_default();
        let plan_per_place = ms(planner) / n as f64;
        let per_place = ms(one.wall.saturating_sub(planner)) / n as f64;
        println!(
            "one worker: {per_place:.1} ms per account-region (its drain's wall time / {n}, the event source's \
             receive and delete included), after the planner's {plan_per_place:.1} ms per account-region \
             (its SendMessageBatch calls of ten); so P account-regions and W workers take about \
             P x ({plan_per_place:.1} + {per_place:.1} / W) ms while nothing else is the bottleneck:"
        );
        for run in &runs {
            let Some(workers) = run.workers else { continue };
            let predicted = n as f64 * (plan_per_place + per_place / workers as f64);
            println!(
                "  {workers:>2} worker(s): predicted {:.2} s, measured {:.2} s",
                predicted / 1000.0,
                run.wall.as_secs_f64()
            );
        }
    }
    if let Some(single) = runs.first() {
        println!(
            "one invocation: {:.1} ms per account-region, {} account-regions at a time (PLACE_CONCURRENCY)",
            ms(single.wall) / n as f64,
            revert_ingress::PLACE_CONCURRENCY
        );
    }
    println!("bench run time: {:.1} s", began.elapsed().as_secs_f64());
}
