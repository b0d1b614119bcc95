//! A fanned-out organisation sweep end to end (issue #24): the real revert-ingress binary
//! behind the Lambda Runtime API, its sweep queue a real SQS queue of the emulator with a
//! redrive policy to a dead-letter queue, and its messages delivered back to the binary by a
//! player of Lambda's SQS event source (`sgwarden_tests::event_source`). Every assertion reads
//! the accounts back with their own credentials, or reads the queues, the responses and the
//! function's audit lines.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::Client;
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::ACCOUNT as CENTRAL;
use sgwarden_tests::event_source::{self, EventSource, Queue, RedrivenQueue};
use sgwarden_tests::organization::{
    ingress_rules as rules, FUNCTION_ROLE, MEMBER_ROLE, PERMITTED, POLICY, VIOLATING,
};
use sgwarden_tests::runtime::{self, run_sgwarden, Outcome, RuntimeApi};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const OTHER_REGION: &str = "eu-west-1";
const REGIONS: [&str; 2] = [REGION, OTHER_REGION];
/// Three member accounts; the last has no member role.
const MEMBERS: [&str; 3] = ["222233334444", "333344445555", "444455556666"];
const NO_ROLE: &str = MEMBERS[2];
/// Receives before SQS moves a message to the dead-letter queue (the template says 3; 2 keeps
/// the test short and still retries once).
const MAX_RECEIVES: u32 = 2;
/// Four at a time: one batch holds two reachable account-regions and the two unreachable.
const BATCH_SIZE: i32 = 4;
/// Longer than any invocation here: a message comes back early only when the player makes it
/// visible, as the visibility timeout would.
const VISIBILITY: Duration = Duration::from_secs(120);

/// One protected group of the organisation: where it is, and a client acting there.
struct Guarded {
    account: String,
    region: String,
    ec2: Client,
    group: String,
}

/// A protected group holding the permitted rule and a violating rule opened by hand.
async fn guarded(emulator: &Emulator, account: &str, region: &str) -> Guarded {
    let ec2 = Client::new(&emulator.account_sdk_config(account, region).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
    world::hand_rule(&ec2, &group, 443, "10.0.0.0/8", "pre-existing").await;
    world::hand_rule(&ec2, &group, 22, "0.0.0.0/0", "by hand").await;
    Guarded {
        account: account.to_string(),
        region: region.to_string(),
        ec2,
        group,
    }
}

/// The central account and three members, each with a violating group in both regions; the
/// member role in every member but [`NO_ROLE`].
async fn organisation(emulator: &Emulator) -> Vec<Guarded> {
    let mut groups = Vec::new();
    for account in std::iter::once(CENTRAL).chain(MEMBERS) {
        for region in REGIONS {
            groups.push(guarded(emulator, account, region).await);
        }
    }
    for member in MEMBERS.iter().filter(|m| **m != NO_ROLE) {
        emulator.create_role(member, "/", MEMBER_ROLE, &[CENTRAL]);
    }
    groups
}

/// The central SQS client and the sweep queue with its dead letters.
async fn sweep_queue(emulator: &Emulator) -> (aws_sdk_sqs::Client, RedrivenQueue) {
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config(REGION).await);
    let queues =
        event_source::queue_with_dead_letters(&sqs, "sgwarden-sweep", MAX_RECEIVES, VISIBILITY)
            .await;
    (sqs, queues)
}

/// The function's settings as the central template sets them, fanned out to `queue`.
fn settings(accounts: &str, queue: &Queue) -> Vec<(&'static str, String)> {
    vec![
        ("REVERT_POLICY", POLICY.to_string()),
        ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE.to_string()),
        ("SGWARDEN_ACCOUNTS", accounts.to_string()),
        ("SGWARDEN_REGIONS", REGIONS.join(",")),
        ("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()),
        ("SGWARDEN_SWEEP_QUEUE_URL", queue.url.clone()),
    ]
}

/// The function's audit lines among its logs.
fn audit_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "sgwarden::audit")
        .collect()
}

fn place(account: &str, region: &str) -> Value {
    json!({"account": account, "region": region})
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn failure_ids(body: &Value) -> Vec<String> {
    body["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures: {body}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_fanned_out_sweep_reverts_every_reachable_account_region_and_dead_letters_the_rest() {
    let emulator = Emulator::start();
    let groups = organisation(&emulator).await;
    let (sqs, queues) = sweep_queue(&emulator).await;
    let runtime = RuntimeApi::start().await;
    let mut env = emulator.function_env(REGION);
    env.extend(settings(&MEMBERS.join(","), &queues.queue));
    let function = runtime.spawn("revert-ingress", &env);
    emulator.clear_calls();

    // The schedule: one message per account-region, and nothing revoked by the sweep itself.
    runtime.invoke(world::scheduled_event(REGION));
    let outcomes = runtime.outcomes(1, Duration::from_secs(60)).await;
    let Some(Outcome::Response {
        body: scheduled, ..
    }) = outcomes.first()
    else {
        panic!("expected a response: {outcomes:?}");
    };
    assert_eq!(scheduled["queued"], 8, "{scheduled}");
    assert_eq!(scheduled["groups"], json!([]), "{scheduled}");
    assert!(
        scheduled.get("batchItemFailures").is_none(),
        "a schedule is no SQS event: {scheduled}"
    );
    // The calls the function made, before the test's own reads back.
    let calls = emulator.calls();
    for g in &groups {
        assert_eq!(
            rules(&g.ec2, &g.group).await,
            [VIOLATING, PERMITTED],
            "{} {}: the scheduled invocation sweeps nothing itself",
            g.account,
            g.region
        );
    }
    assert!(
        calls.iter().all(|c| c.service != "ec2"),
        "the schedule reads and changes no EC2: {calls:?}"
    );
    let sent: Vec<Value> = calls
        .iter()
        .filter(|c| c.operation == "SendMessageBatch")
        .flat_map(|c| c.params["Entries"].as_array().unwrap().clone())
        .map(|entry| serde_json::from_str(entry["MessageBody"].as_str().unwrap()).unwrap())
        .collect();
    let expected_places: BTreeSet<String> = groups
        .iter()
        .map(|g| place(&g.account, &g.region).to_string())
        .collect();
    let sent_places: BTreeSet<String> = sent.iter().map(Value::to_string).collect();
    assert_eq!(sent.len(), 8, "one message per account-region: {sent:?}");
    assert_eq!(sent_places, expected_places);
    assert_eq!(
        event_source::depth(&sqs, &queues.queue).await,
        (8, 0),
        "the queue holds them"
    );

    // Lambda's event source delivers them back to the same binary, four at a time.
    emulator.clear_calls();
    let source = EventSource::new(&sqs, &queues.queue, &runtime, BATCH_SIZE);
    let drained = source.drain(20).await;
    let logs = function.stop();
    let drain_calls = emulator.calls();
    assert!(drained.emptied, "{drained:?}\n{logs}");

    // Every message was received; the reachable ones were deleted once, after one delivery.
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for delivery in &drained.deliveries {
        for message in &delivery.messages {
            by_id.insert(message.message_id.clone(), message.json());
        }
    }
    let received: BTreeSet<String> = by_id.values().map(Value::to_string).collect();
    assert_eq!(by_id.len(), 8, "{by_id:?}");
    assert_eq!(received, expected_places);
    let unreachable: BTreeSet<&String> = by_id
        .iter()
        .filter(|(_, body)| body["account"] == NO_ROLE)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(unreachable.len(), 2);
    let mut deleted = drained.deleted.clone();
    deleted.sort();
    let mut reachable: Vec<String> = by_id
        .keys()
        .filter(|id| !unreachable.contains(id))
        .cloned()
        .collect();
    reachable.sort();
    assert_eq!(deleted, reachable, "{drained:?}");
    // The account without the role: reported failed on each of its receives, never deleted.
    for id in &unreachable {
        let failures = drained.failed.iter().filter(|f| f == id).count();
        assert_eq!(failures, MAX_RECEIVES as usize, "{id}: {drained:?}");
    }
    assert_eq!(
        drained.failed.len(),
        2 * MAX_RECEIVES as usize,
        "{drained:?}"
    );
    for id in &unreachable {
        let counts: Vec<u32> = drained
            .deliveries
            .iter()
            .flat_map(|d| &d.messages)
            .filter(|m| &&m.message_id == id)
            .map(|m| m.receive_count())
            .collect();
        assert_eq!(counts, [1, 2], "{id}: received again after failing");
    }
    assert!(
        drained
            .deliveries
            .iter()
            .any(|d| !d.deleted.is_empty() && !d.retried.is_empty()),
        "a batch that partly failed: {drained:?}"
    );

    // Each response names exactly its batch's unreachable messages, and why.
    let mut revoked = BTreeSet::new();
    let mut swept = 0;
    for delivery in &drained.deliveries {
        let body = delivery.response();
        assert_eq!(body["trigger"], "sweep-message", "{body}");
        assert_eq!(body["refused"], json!([]), "{body}");
        let in_batch: BTreeSet<String> = delivery
            .messages
            .iter()
            .filter(|m| unreachable.contains(&m.message_id))
            .map(|m| m.message_id.clone())
            .collect();
        let reported: BTreeSet<String> = failure_ids(body).into_iter().collect();
        assert_eq!(reported, in_batch, "{body}");
        let unswept = body["unswept"].as_array().unwrap();
        assert_eq!(unswept.len(), in_batch.len(), "{body}");
        for entry in unswept {
            assert_eq!(entry["account"], NO_ROLE, "{body}");
            assert!(
                entry["reason"].as_str().unwrap().contains("AccessDenied"),
                "{body}"
            );
        }
        swept += body["places_swept"].as_u64().unwrap();
        for group in body["groups"].as_array().unwrap() {
            revoked.insert((
                group["account"].as_str().unwrap().to_string(),
                group["region"].as_str().unwrap().to_string(),
                group["group_id"].as_str().unwrap().to_string(),
                strings(&group["revoked"]),
            ));
        }
    }
    assert_eq!(swept, 6);
    let expected_revoked: BTreeSet<_> = groups
        .iter()
        .filter(|g| g.account != NO_ROLE)
        .map(|g| {
            (
                g.account.clone(),
                g.region.clone(),
                g.group.clone(),
                vec![format!("ingress {VIOLATING}")],
            )
        })
        .collect();
    assert_eq!(revoked, expected_revoked);

    // After its retries, each unreachable account-region waits in the dead-letter queue.
    assert_eq!(event_source::depth(&sqs, &queues.queue).await, (0, 0));
    let dead = event_source::receive_all(&sqs, &queues.dead_letters).await;
    let dead_ids: BTreeSet<&String> = dead.iter().map(|m| &m.message_id).collect();
    assert_eq!(dead_ids, unreachable, "{dead:?}");
    let dead_places: BTreeSet<String> = dead.iter().map(|m| m.json().to_string()).collect();
    let expected_dead: BTreeSet<String> = REGIONS
        .iter()
        .map(|r| place(NO_ROLE, r).to_string())
        .collect();
    assert_eq!(dead_places, expected_dead);

    // EC2 read back in each account: the violating rule gone where reachable, the permitted
    // one kept everywhere, the unreachable account untouched.
    for g in &groups {
        let expected: &[&str] = if g.account == NO_ROLE {
            &[VIOLATING, PERMITTED]
        } else {
            &[PERMITTED]
        };
        assert_eq!(
            rules(&g.ec2, &g.group).await,
            expected,
            "{} {}",
            g.account,
            g.region
        );
    }
    assert!(
        drain_calls
            .iter()
            .all(|c| !(c.service == "ec2" && c.account == NO_ROLE)),
        "nothing read or changed in the account without the role: {drain_calls:?}"
    );

    // One audit line per revert, naming the account-region it was made in.
    let audit: BTreeSet<(String, String, String, String)> = audit_lines(&logs)
        .iter()
        .map(|l| {
            let f = &l["fields"];
            (
                f["cause"].as_str().unwrap().to_string(),
                f["region"].as_str().unwrap().to_string(),
                f["group"].as_str().unwrap().to_string(),
                f["removed"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(audit_lines(&logs).len(), 6, "{logs}");
    let expected_audit: BTreeSet<_> = groups
        .iter()
        .filter(|g| g.account != NO_ROLE)
        .map(|g| {
            (
                format!("sweep in account {}", g.account),
                g.region.clone(),
                g.group.clone(),
                format!("ingress {VIOLATING}"),
            )
        })
        .collect();
    assert_eq!(audit, expected_audit, "{logs}");
}

#[tokio::test]
async fn a_forged_sweep_message_changes_nothing_is_reported_refused_and_is_not_retried() {
    const MEMBER: &str = MEMBERS[0];
    /// An account the settings do not list, whose role would let the function in.
    const STRANGER: &str = "999988887777";
    /// A region the settings do not cover.
    const UNCOVERED: &str = "ap-south-1";
    let emulator = Emulator::start();
    let member = guarded(&emulator, MEMBER, REGION).await;
    let stranger = guarded(&emulator, STRANGER, REGION).await;
    let uncovered = guarded(&emulator, CENTRAL, UNCOVERED).await;
    for account in [MEMBER, STRANGER] {
        emulator.create_role(account, "/", MEMBER_ROLE, &[CENTRAL]);
    }
    let (sqs, queues) = sweep_queue(&emulator).await;
    let runtime = RuntimeApi::start().await;
    let mut env = emulator.function_env(REGION);
    env.extend(settings(MEMBER, &queues.queue));
    let function = runtime.spawn("revert-ingress", &env);
    // Whoever can send to the queue writes what they like; one message is genuine.
    let bodies = [
        ("genuine", place(MEMBER, REGION).to_string()),
        ("stranger", place(STRANGER, REGION).to_string()),
        ("uncovered", place(CENTRAL, UNCOVERED).to_string()),
        ("not json", "sweep everything".to_string()),
        (
            "extra field",
            json!({"account": STRANGER, "region": REGION, "member": true}).to_string(),
        ),
    ];
    let mut ids = BTreeMap::new();
    for (name, body) in &bodies {
        let sent = sqs
            .send_message()
            .queue_url(&queues.queue.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
        ids.insert(*name, sent.message_id().unwrap().to_string());
    }
    emulator.clear_calls();

    let source = EventSource::new(&sqs, &queues.queue, &runtime, 10);
    let drained = source.drain(10).await;
    let logs = function.stop();
    let calls = emulator.calls();

    // One delivery: every message settled by it, none failed, none received again.
    assert!(drained.emptied, "{drained:?}");
    assert_eq!(drained.deliveries.len(), 1, "{drained:?}");
    assert!(drained.failed.is_empty(), "{drained:?}");
    let mut deleted = drained.deleted.clone();
    deleted.sort();
    let mut all: Vec<String> = ids.values().cloned().collect();
    all.sort();
    assert_eq!(deleted, all, "refused messages are deleted, not retried");
    assert_eq!(event_source::depth(&sqs, &queues.queue).await, (0, 0));
    let dead = event_source::receive_all(&sqs, &queues.dead_letters).await;
    assert!(dead.is_empty(), "{dead:?}");

    // The response: the genuine place swept, each forged message refused, naming why.
    let body = drained.deliveries[0].response();
    assert_eq!(failure_ids(body), Vec::<String>::new(), "{body}");
    assert_eq!(body["places_swept"], 1, "{body}");
    let refused = strings(&body["refused"]);
    assert_eq!(refused.len(), 4, "{body}");
    for (name, why) in [
        (
            "stranger",
            format!("account {STRANGER} is not one SGWARDEN_ACCOUNTS covers"),
        ),
        (
            "uncovered",
            format!("region {UNCOVERED} is not one SGWARDEN_REGIONS covers"),
        ),
        ("not json", "the message body is not a place".to_string()),
        ("extra field", "the message body is not a place".to_string()),
    ] {
        let id = &ids[name];
        assert!(
            refused
                .iter()
                .any(|r| r.starts_with(&format!("{id}: ")) && r.contains(&why)),
            "{name} ({id}) not refused with {why:?}: {refused:?}"
        );
    }
    assert_eq!(body["groups"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["groups"][0]["account"], MEMBER, "{body}");
    assert_eq!(body["groups"][0]["group_id"], member.group.as_str());
    assert_eq!(
        body["groups"][0]["revoked"],
        json!([format!("ingress {VIOLATING}")])
    );

    // Read back: only the genuine place changed.
    assert_eq!(rules(&member.ec2, &member.group).await, [PERMITTED]);
    assert_eq!(
        rules(&stranger.ec2, &stranger.group).await,
        [VIOLATING, PERMITTED],
        "an account outside SGWARDEN_ACCOUNTS is left as it is"
    );
    assert_eq!(
        rules(&uncovered.ec2, &uncovered.group).await,
        [VIOLATING, PERMITTED],
        "a region outside SGWARDEN_REGIONS is left as it is"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.service == "ec2" || c.operation == "AssumeRole")
            .all(|c| c.account != STRANGER && !c.params.to_string().contains(STRANGER)),
        "the stranger's account is not even entered: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| c.region != UNCOVERED),
        "the uncovered region is not even read: {calls:?}"
    );

    // Logged at error and counted; one audit line, the genuine revert's.
    // (Matched on the line's text: its `fields` hold `message` twice, the sentence and then
    // the message id, so a JSON reader keeps only the id; see the report on issue #24.)
    let refusals: Vec<&str> = logs
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| v["level"] == "ERROR")
                && l.contains("sweep message refused")
        })
        .collect();
    for name in ["stranger", "uncovered", "not json", "extra field"] {
        let id = &ids[name];
        assert_eq!(
            refusals.iter().filter(|l| l.contains(id.as_str())).count(),
            1,
            "{name} ({id}) logged once at error: {logs}"
        );
    }
    assert_eq!(refusals.len(), 4, "{logs}");
    let metrics = runtime::metrics_in(&logs);
    assert_eq!(metrics.len(), 1, "{logs}");
    runtime::assert_metrics(
        &metrics[0],
        "revert-ingress",
        &[
            ("SweepRefused", 4),
            ("PlacesSwept", 1),
            ("PlacesFailed", 0),
            ("RulesRevoked", 1),
        ],
    );
    let audit = audit_lines(&logs);
    assert_eq!(audit.len(), 1, "{logs}");
    assert_eq!(
        audit[0]["fields"]["cause"],
        format!("sweep in account {MEMBER}")
    );
}

#[tokio::test]
async fn plan_across_an_organisation_sweeps_in_place_and_sends_the_queue_nothing() {
    let emulator = Emulator::start();
    let groups = organisation(&emulator).await;
    let (sqs, queues) = sweep_queue(&emulator).await;
    emulator.clear_calls();

    let env = settings(&MEMBERS.join(","), &queues.queue);
    let out = run_sgwarden(&emulator, REGION, &["plan", "revert-ingress"], &env, None).await;

    // Planned where the sweep would act, every reachable account-region, in place.
    assert_eq!(out.code, 2, "{}", out.stderr);
    let mut pending: Vec<&Guarded> = groups.iter().filter(|g| g.account != NO_ROLE).collect();
    pending
        .sort_by(|a, b| (&a.account, &a.region, &a.group).cmp(&(&b.account, &b.region, &b.group)));
    let mut expected: String = pending
        .iter()
        .map(|g| {
            format!(
                "{} {} {}\n  - ingress {VIOLATING}\n",
                g.account, g.region, g.group
            )
        })
        .collect();
    expected.push_str("6 change(s) pending in 6 group(s).\n");
    assert_eq!(out.stdout, expected, "{}", out.stderr);
    for region in REGIONS {
        assert!(
            out.stderr
                .contains(&format!("not planned, account {NO_ROLE} in {region}: ")),
            "{}",
            out.stderr
        );
    }

    // Nothing sent, nothing queued, nothing changed.
    let calls = emulator.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.operation != "SendMessage" && c.operation != "SendMessageBatch"),
        "a plan sends the queue nothing: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| !c.operation.starts_with("Revoke")),
        "a plan changes nothing: {calls:?}"
    );
    assert_eq!(event_source::depth(&sqs, &queues.queue).await, (0, 0));
    assert!(event_source::receive_all(&sqs, &queues.queue)
        .await
        .is_empty());
    for g in &groups {
        assert_eq!(
            rules(&g.ec2, &g.group).await,
            [VIOLATING, PERMITTED],
            "{} {}",
            g.account,
            g.region
        );
    }
}
