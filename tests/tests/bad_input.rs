//! Bad input stays harmless: mutated copies of every sample event (`events/`) and every
//! recorded real event (`../shared/real-events/`) are fed to each function's real handler,
//! with the emulator behind it. No handler may panic, and a refused event (not understood,
//! the wrong trigger, a group outside the cluster) must have made no AWS write at all.
//!
//! The mutations are the ones a broken producer or a hostile sender makes: keys dropped,
//! values retyped, huge and odd strings, deep nesting, and the same inside the JSON that SNS
//! embeds as a string. They come from a fixed seed, so a failure names the seed, the file and
//! the mutated event, and reproduces.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use serde_json::{json, Value};
use sgwarden_core::settings::from_pairs;
use sgwarden_core::ErrorType;
use sgwarden_tests::runtime::{self, Outcome};
use sgwarden_tests::Emulator;

const REGION: &str = "us-east-1";
/// Mutated copies per event file.
const COPIES: usize = 8;
/// The error types that mean "refused before acting".
const REFUSALS: [ErrorType; 3] = [
    ErrorType::EventNotUnderstood,
    ErrorType::WrongTrigger,
    ErrorType::GroupNotInCluster,
];

/// A small, fixed pseudo-random sequence (SplitMix64): the same mutations on every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Every event file of both folders, by name.
fn event_files() -> Vec<(String, Value)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let real = std::env::var("SGWARDEN_REAL_EVENTS")
        .unwrap_or_else(|_| format!("{root}/../../shared/real-events"));
    let mut files = Vec::new();
    for dir in [format!("{root}/../events"), real] {
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((
                path.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
    }
    assert!(
        files.len() > 20,
        "every sample and real event: {}",
        files.len()
    );
    files
}

/// Paths (as JSON pointers) to every node of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn odd_value(dice: &mut Dice) -> Value {
    match dice.below(11) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1e308),
        5 => json!(u64::MAX),
        6 => json!(""),
        7 => json!("x".repeat(100_000)),
        8 => json!("\u{0}\u{202e}ü😀\n\"'<>&;"),
        9 => json!([]),
        _ => json!({}),
    }
}

/// One mutation of `event`, somewhere in it; inside SNS's embedded JSON when it has some.
fn mutate(event: &mut Value, dice: &mut Dice) {
    if let Some(message) = embedded_message(event) {
        if dice.below(2) == 0 {
            if let Ok(mut inner) = serde_json::from_str::<Value>(message.as_str().unwrap_or("")) {
                mutate_node(&mut inner, dice);
                *message = json!(inner.to_string());
                return;
            }
        }
    }
    mutate_node(event, dice);
}

fn embedded_message(event: &mut Value) -> Option<&mut Value> {
    event
        .pointer_mut("/Records/0/Sns/Message")
        .filter(|m| m.is_string())
}

fn mutate_node(root: &mut Value, dice: &mut Dice) {
    let mut all = Vec::new();
    pointers(root, String::new(), &mut all);
    let at = all[dice.below(all.len())].clone();
    let Some(node) = root.pointer_mut(&at) else {
        return;
    };
    match dice.below(4) {
        // Drop a key of an object (or empty an array).
        0 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(dice.below(map.len())).cloned().unwrap();
                map.remove(&key);
            }
            Value::Array(items) => items.clear(),
            other => *other = Value::Null,
        },
        // Nest it deep (below serde_json's recursion limit, which the runtime enforces).
        1 => {
            let mut nested = node.take();
            for level in 0..60 {
                nested = if level % 2 == 0 {
                    json!([nested])
                } else {
                    json!({ "k": nested })
                };
            }
            *node = nested;
        }
        // Retype it, or make it odd.
        _ => *node = odd_value(dice),
    }
}

struct Functions {
    asg_sync: asg_sync::AsgSync,
    revert: revert_ingress::RevertIngress,
    notify: notify_owner::NotifyOwner,
}

impl Functions {
    async fn new(emulator: &Emulator) -> Self {
        let sdk = emulator.sdk_config(REGION).await;
        let asg = asg_sync::SyncConfig::from_lookup(from_pairs(&[
            ("SYNC_CLUSTER", "db"),
            ("SYNC_AUTO_SCALING_GROUPS", "db-use1"),
            ("SYNC_TABLE", "registry"),
            ("SYNC_SECURITY_GROUP_IDS", "sg-0123456789abcdef0"),
        ]))
        .unwrap();
        let revert = revert_ingress::RevertConfig::from_lookup(from_pairs(&[])).unwrap();
        let notify = notify_owner::NotifyConfig::from_lookup(from_pairs(&[
            ("NOTIFY_SENDER", "sgwarden@example.com"),
            ("NOTIFY_DEDUP_TABLE", "notified"),
        ]))
        .unwrap();
        Self {
            asg_sync: asg_sync::AsgSync::new(asg, &sdk),
            revert: revert_ingress::RevertIngress::new(
                revert,
                &sdk,
                revert_ingress::OwnRole::Unknown,
            ),
            notify: notify_owner::NotifyOwner::new(notify, &sdk).unwrap(),
        }
    }

    /// The functions' names, in the order [`Functions::handle`] takes them.
    const NAMES: [&'static str; 3] = ["asg-sync", "revert-ingress", "notify-owner"];

    /// Handles `event` with function `which`; returns the error type when it fails.
    async fn handle(&self, which: usize, event: &Value) -> Option<ErrorType> {
        let now = SystemTime::now();
        match which {
            0 => self
                .asg_sync
                .handle(event, now)
                .await
                .err()
                .map(|e| e.kind()),
            1 => self.revert.handle(event, now).await.err().map(|e| e.kind()),
            _ => self.notify.handle(event, now).await.err().map(|e| e.kind()),
        }
    }
}

/// The write calls the emulator received since its call log was last cleared.
fn writes(emulator: &Emulator) -> Vec<String> {
    emulator
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .filter(|op| is_write(op))
        .collect()
}

fn is_write(operation: &str) -> bool {
    !(operation.starts_with("Describe")
        || operation.starts_with("Get")
        || operation.starts_with("List")
        || operation.starts_with("Lookup")
        || operation == "Query"
        || operation == "Scan")
}

#[tokio::test]
async fn mutated_events_never_panic_and_a_refusal_writes_nothing() {
    let emulator = Emulator::start();
    let functions = Functions::new(&emulator).await;
    let mut dice = Dice(0x5EED_5A17);
    let mut not_understood = 0;
    for (file, original) in event_files() {
        for copy in 0..COPIES {
            let mut event = original.clone();
            for _ in 0..=dice.below(3) {
                mutate(&mut event, &mut dice);
            }
            for (which, function) in Functions::NAMES.iter().enumerate() {
                emulator.clear_calls();
                let refusal = functions.handle(which, &event).await;
                if refusal == Some(ErrorType::EventNotUnderstood) {
                    not_understood += 1;
                }
                if refusal.is_some_and(|kind| REFUSALS.contains(&kind)) {
                    let writes = writes(&emulator);
                    assert!(
                        writes.is_empty(),
                        "{function} refused copy {copy} of {file} after writing {writes:?}: {event}"
                    );
                }
            }
        }
    }
    // The mutations do reach the parsers: many copies are not understood by their function.
    eprintln!("{not_understood} copies not understood");
    assert!(not_understood > COPIES * 20, "only {not_understood}");
}

#[tokio::test]
async fn an_event_nested_deeper_than_the_parser_allows_is_not_understood() {
    let emulator = Emulator::start();
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let event = json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
                       "detail": deep});
    for binary in Functions::NAMES {
        let mut env = emulator.function_env(REGION);
        env.extend([
            ("SYNC_CLUSTER", "db".to_string()),
            ("SYNC_AUTO_SCALING_GROUPS", "db-use1".to_string()),
            ("SYNC_TABLE", "registry".to_string()),
            (
                "SYNC_SECURITY_GROUP_IDS",
                "sg-0123456789abcdef0".to_string(),
            ),
            ("NOTIFY_SENDER", "sgwarden@example.com".to_string()),
        ]);
        let outcomes = runtime::serve_events(binary, &env, vec![event.clone()]).await;
        match &outcomes[0] {
            Outcome::Error { body, .. } => {
                assert_eq!(body["errorType"], "EventNotUnderstood", "{binary}: {body}");
                assert!(body["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("recursion limit"));
            }
            other => panic!("{binary}: expected a refusal: {other:?}"),
        }
    }
    let writes = writes(&emulator);
    assert!(writes.is_empty(), "{writes:?}");
}
