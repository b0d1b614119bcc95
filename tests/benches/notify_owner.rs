//! `make bench`: notify-owner against the local emulator, end to end.
//!
//! Each round delivers one Config change notification (the recorded rules-changed message,
//! opted in, two owners, a new configuration state each round so none is a duplicate) to the
//! real handler, and times it; the API calls of one notification are counted from the
//! emulator's call log. Wall times include the emulator's own latency (moto in Python on
//! loopback), so they bound what the code adds rather than predict AWS latency.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use notify_owner::{MessageOutcome, NotifyConfig, NotifyOwner};
use serde_json::{json, Value};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "eu-west-1";
const ROUNDS: usize = 20;

fn message(state: usize) -> Value {
    let mut message = sgwarden_tests::real_event("config-item-rules-changed.json");
    let item = &mut message["configurationItem"];
    item["tags"]["NotifyOnChange"] = json!("Yes");
    item["tags"]["OwnerDL"] = json!("db-team@example.com, lead@example.com");
    item["configurationStateId"] = json!(state);
    message
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk_config(REGION).await;
    world::verified_sender(&aws_sdk_sesv2::Client::new(&sdk), "sgwarden@example.com").await;
    world::dedup_table(&aws_sdk_dynamodb::Client::new(&sdk), "notified").await;
    let vars: HashMap<&str, &str> = HashMap::from([
        ("NOTIFY_SENDER", "sgwarden@example.com"),
        ("NOTIFY_DEDUP_TABLE", "notified"),
    ]);
    let config =
        NotifyConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("bench settings");
    let function = NotifyOwner::new(config, &sdk).expect("templates");
    let mut times: Vec<Duration> = Vec::new();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        let event = world::config_delivery(&[message(round)]);
        emulator.clear_calls();
        let start = Instant::now();
        let report = function
            .handle(&event, SystemTime::now())
            .await
            .expect("notification");
        times.push(start.elapsed());
        assert_eq!(report.messages[0].outcome, MessageOutcome::Mailed);
        if round == 0 {
            for call in emulator.calls() {
                *calls.entry(call.operation).or_insert(0) += 1;
            }
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "notify-owner, one change notification mailed to two owners, {ROUNDS} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[ROUNDS / 2]),
        ms(times[ROUNDS - 1])
    );
    let list: Vec<String> = calls.iter().map(|(op, n)| format!("{n} x {op}")).collect();
    println!("  API calls per notification: {}", list.join(", "));
}
