//! notify-owner end to end: Config messages (the real recorded ones and the samples in
//! `events/`) delivered as SNS events to the real handler (and, last test, to the real binary
//! through the Lambda Runtime API); every mail is read back from what SES received.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use notify_owner::{MessageOutcome, NotifyConfig, NotifyOwner, Unmailed};
use serde_json::{json, Value};
use sgwarden_core::settings::from_pairs;
use sgwarden_core::ErrorType;
use sgwarden_tests::runtime::{self, Outcome, RuntimeApi};
use sgwarden_tests::{world, Call, Emulator, Outage};

const REGION: &str = "eu-west-1";
const SENDER: &str = "sgwarden@example.com";
const DEDUP: &str = "sgwarden-notified";
const SEND: &str = "POST /v2/email/outbound-emails";

struct World {
    emulator: Emulator,
}

impl World {
    async fn new() -> Self {
        let emulator = Emulator::start();
        let sdk = emulator.sdk_config(REGION).await;
        world::verified_sender(&aws_sdk_sesv2::Client::new(&sdk), SENDER).await;
        world::dedup_table(&aws_sdk_dynamodb::Client::new(&sdk), DEDUP).await;
        emulator.clear_calls();
        Self { emulator }
    }

    async fn function(&self, vars: &[(&str, &str)]) -> NotifyOwner {
        let mut all = vec![("NOTIFY_SENDER", SENDER), ("NOTIFY_DEDUP_TABLE", DEDUP)];
        all.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
        all.extend_from_slice(vars);
        let config = NotifyConfig::from_lookup(from_pairs(&all)).unwrap();
        NotifyOwner::new(config, &self.emulator.sdk_config(REGION).await).unwrap()
    }

    fn mails(&self) -> Vec<Call> {
        self.emulator.calls_of(SEND)
    }
}

fn real(name: &str) -> Value {
    sgwarden_tests::real_event(name)
}

/// The Config message inside one of the SNS samples in `events/`, recorded in this world's
/// account (the samples name `111122223333`; an item of another account is not this
/// deployment's to read without a member role).
fn sample(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let delivery: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let message = delivery["Records"][0]["Sns"]["Message"].as_str().unwrap();
    serde_json::from_str(&message.replace("111122223333", sgwarden_tests::cloudtrail::ACCOUNT))
        .unwrap()
}

/// The recorded rules-changed message, opted in, owned by `owners`.
fn tagged(opt_in: &str, owners: &str) -> Value {
    let mut message = real("config-item-rules-changed.json");
    let tags = &mut message["configurationItem"]["tags"];
    tags["NotifyOnChange"] = json!(opt_in);
    tags["OwnerDL"] = json!(owners);
    message
}

fn to(call: &Call) -> Vec<String> {
    call.params["Destination"]["ToAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn subject(call: &Call) -> String {
    call.params["Content"]["Simple"]["Subject"]["Data"]
        .as_str()
        .unwrap()
        .to_string()
}

fn now() -> SystemTime {
    SystemTime::now()
}

#[tokio::test]
async fn a_tagged_change_mails_the_owners_once_with_group_rule_and_source() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let event = world::config_delivery(&[tagged("Yes", "db-team@example.com; lead@example.com")]);
    let report = function.handle(&event, now()).await.unwrap();
    assert_eq!(report.messages[0].outcome, MessageOutcome::Mailed);
    let mails = w.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.params["FromEmailAddress"], SENDER);
    assert_eq!(to(mail), vec!["db-team@example.com", "lead@example.com"]);
    assert!(subject(mail).contains("sg-01234567"), "{}", subject(mail));
    let body = mail.mail_text();
    for expected in [
        "sg-01234567",
        "+ ingress  tcp/22  0.0.0.0/0",
        "+ ingress  tcp/22  ::/0",
        "- ingress  tcp/22  77.91.250.235/32",
        "eu-west-1",
        "Who:      unknown",
    ] {
        assert!(body.contains(expected), "{expected:?} not in:\n{body}");
    }
    let html = mail.params["Content"]["Simple"]["Body"]["Html"]["Data"]
        .as_str()
        .unwrap();
    assert!(html.contains("sg-01234567") && html.contains("77.91.250.235"));

    // SNS delivers the same message again: nothing more is sent.
    let again = function.handle(&event, now()).await.unwrap();
    assert_eq!(again.messages[0].outcome, MessageOutcome::Duplicate);
    assert_eq!(w.mails().len(), 1);
}

#[tokio::test]
async fn the_opt_in_value_is_case_insensitive_and_no_sends_nothing() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let no = function
        .handle(
            &world::config_delivery(&[tagged("No", "db-team@example.com")]),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(no.messages[0].outcome, MessageOutcome::Ignored);
    let mut untagged = real("config-item-rules-changed.json");
    untagged["configurationItem"]["tags"]["OwnerDL"] = json!("db-team@example.com");
    function
        .handle(&world::config_delivery(&[untagged]), now())
        .await
        .unwrap();
    assert!(w.mails().is_empty());
    let yes = function
        .handle(
            &world::config_delivery(&[tagged("yes", "db-team@example.com")]),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(yes.messages[0].outcome, MessageOutcome::Mailed);
    assert_eq!(w.mails().len(), 1);
}

#[tokio::test]
async fn invalid_disallowed_and_injected_recipients_get_nothing() {
    let w = World::new().await;
    let function = w
        .function(&[("ALLOWED_RECIPIENT_DOMAINS", "example.com")])
        .await;
    let mixed = tagged(
        "Yes",
        "not@@valid, intruder@evil.example, db-team@example.com",
    );
    let report = function
        .handle(&world::config_delivery(&[mixed]), now())
        .await
        .unwrap();
    assert_eq!(report.messages[0].refused.len(), 2);
    let mails = w.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(to(&mails[0]), vec!["db-team@example.com"]);

    // A line break in the tag is the shape of a header injection: the whole tag is refused.
    let mut injected = tagged("Yes", "db-team@example.com\r\nBcc: intruder@evil.example");
    injected["configurationItem"]["configurationStateId"] = json!(99);
    let report = function
        .handle(&world::config_delivery(&[injected]), now())
        .await
        .unwrap();
    assert_eq!(report.messages[0].outcome, MessageOutcome::Ignored);
    assert_eq!(w.mails().len(), 1, "no second mail");
    let everyone: Vec<String> = w.mails().iter().flat_map(to).collect();
    assert!(everyone.iter().all(|a| !a.contains("evil")));
}

#[tokio::test]
async fn other_message_types_and_resource_types_are_ignored() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let mut instance = tagged("Yes", "db-team@example.com");
    instance["configurationItem"]["resourceType"] = json!("AWS::EC2::Instance");
    let event = world::config_delivery(&[sample("config-sns-other-message-type.json"), instance]);
    let report = function.handle(&event, now()).await.unwrap();
    assert_eq!(report.messages.len(), 2);
    assert!(report
        .messages
        .iter()
        .all(|m| m.outcome == MessageOutcome::Ignored));
    assert!(w.emulator.calls().is_empty(), "not even a dedup write");
}

#[tokio::test]
async fn a_batch_of_records_sends_one_mail_each() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let first = tagged("Yes", "a@example.com");
    let mut second = tagged("Yes", "b@example.com");
    second["configurationItem"]["resourceId"] = json!("sg-0abcdef");
    let event =
        world::config_delivery(&[first, second, sample("config-sns-other-message-type.json")]);
    let report = function.handle(&event, now()).await.unwrap();
    let outcomes: Vec<MessageOutcome> = report.messages.iter().map(|m| m.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            MessageOutcome::Mailed,
            MessageOutcome::Mailed,
            MessageOutcome::Ignored
        ]
    );
    let recipients: Vec<Vec<String>> = w.mails().iter().map(to).collect();
    assert_eq!(
        recipients,
        vec![vec!["a@example.com"], vec!["b@example.com"]]
    );
}

#[tokio::test]
async fn a_relationship_only_change_sends_nothing() {
    let w = World::new().await;
    let mut message = real("config-item-relationships-only.json");
    message["configurationItem"]["tags"]["NotifyOnChange"] = json!("Yes");
    message["configurationItem"]["tags"]["OwnerDL"] = json!("db-team@example.com");
    let report = w
        .function(&[])
        .await
        .handle(&world::config_delivery(&[message]), now())
        .await
        .unwrap();
    assert_eq!(report.messages[0].outcome, MessageOutcome::Ignored);
    assert_eq!(report.messages[0].reason, Some(Unmailed::OnlyRelationships));
    assert!(w.mails().is_empty());
}

/// A configuration item in the Config API's shape, for the emulator's history.
fn history_item(state: u64, time: i64, ports: &[u16], tags: Value) -> Value {
    let permissions: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({"fromPort": p, "toPort": p, "ipProtocol": "tcp", "ipv6Ranges": [],
                        "prefixListIds": [], "userIdGroupPairs": [],
                        "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"]})
        })
        .collect();
    json!({
        "version": "1.3", "accountId": "123456789012", "configurationItemCaptureTime": time,
        "configurationItemStatus": "OK", "configurationStateId": state.to_string(),
        "resourceType": "AWS::EC2::SecurityGroup", "resourceId": "sg-0big", "resourceName": "big",
        "awsRegion": REGION, "tags": tags, "relatedEvents": [],
        "configuration": json!({"groupId": "sg-0big", "groupName": "big",
            "ipPermissions": permissions, "ipPermissionsEgress": []}).to_string()
    })
}

#[tokio::test]
async fn an_oversized_notification_is_resolved_through_config_history() {
    let w = World::new().await;
    let tags = json!({"NotifyOnChange": "Yes", "OwnerDL": "db-team@example.com"});
    w.emulator.seed_config_history(&json!([
        history_item(1, 1_700_000_000, &[22, 443], tags.clone()),
        history_item(2, 1_700_000_100, &[443, 8443], tags),
    ]));
    let mut summary = sample("config-sns-oversized.json");
    summary["configurationItemSummary"]["resourceId"] = json!("sg-0big");
    summary["configurationItemSummary"]["awsRegion"] = json!(REGION);
    summary["configurationItemSummary"]["configurationStateId"] = json!(2);
    let report = w
        .function(&[])
        .await
        .handle(&world::config_delivery(&[summary.clone()]), now())
        .await
        .unwrap();
    assert_eq!(
        report.messages[0].outcome,
        MessageOutcome::Mailed,
        "{report:?}"
    );
    let body = w.mails()[0].mail_text();
    assert!(body.contains("+ ingress  tcp/8443  0.0.0.0/0"), "{body}");
    assert!(body.contains("- ingress  tcp/22  0.0.0.0/0"), "{body}");
    assert!(!body.contains("tcp/443 "), "{body}");

    // A notification for a state Config has not recorded yet is retried, not guessed.
    summary["configurationItemSummary"]["configurationStateId"] = json!(3);
    let err = w
        .function(&[])
        .await
        .handle(&world::config_delivery(&[summary]), now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorType::ConfigHistoryBehind);
    assert_eq!(w.mails().len(), 1);
}

#[tokio::test]
async fn an_oversized_change_that_re_points_the_owner_tag_tells_the_owners_before_it() {
    let w = World::new().await;
    w.emulator.seed_config_history(&json!([
        history_item(
            1,
            1_700_000_000,
            &[443],
            json!({"NotifyOnChange": "Yes", "OwnerDL": "db-team@example.com"})
        ),
        history_item(
            2,
            1_700_000_100,
            &[22, 443],
            json!({"NotifyOnChange": "Yes", "OwnerDL": "mallory@evil.example"})
        ),
    ]));
    let mut summary = sample("config-sns-oversized.json");
    summary["configurationItemSummary"]["resourceId"] = json!("sg-0big");
    summary["configurationItemSummary"]["awsRegion"] = json!(REGION);
    summary["configurationItemSummary"]["configurationStateId"] = json!(2);
    let report = w
        .function(&[("ALLOWED_RECIPIENT_DOMAINS", "example.com")])
        .await
        .handle(&world::config_delivery(&[summary]), now())
        .await
        .unwrap();
    let entry = &report.messages[0];
    assert_eq!(entry.outcome, MessageOutcome::Mailed, "{report:?}");
    assert_eq!(entry.former_owners, vec!["db-team@example.com"]);
    assert_eq!(entry.refused.len(), 1, "{report:?}");
    let mails = w.mails();
    assert_eq!(to(&mails[0]), vec!["db-team@example.com"]);
    let body = mails[0].mail_text();
    assert!(
        body.contains("OwnerDL: db-team@example.com -> mallory@evil.example"),
        "{body}"
    );
    assert!(body.contains("+ ingress  tcp/22  0.0.0.0/0"), "{body}");
}

#[tokio::test]
async fn a_malformed_message_is_an_error_and_sends_nothing() {
    let w = World::new().await;
    let good = tagged("Yes", "db-team@example.com");
    let mut bad = tagged("Yes", "db-team@example.com");
    bad["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
        ["updatedValue"]["fromPort"] = json!("twenty-two");
    let err = w
        .function(&[])
        .await
        .handle(&world::config_delivery(&[good, bad]), now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorType::EventNotUnderstood);
    assert!(err.to_string().contains("fromPort"), "{err}");
    assert!(w.emulator.calls().is_empty());
}

#[tokio::test]
async fn creation_and_deletion_of_an_opted_in_group_are_reported() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let mut created = sample("config-sns-security-group-created.json");
    created["configurationItem"]["tags"]["NotifyOnChange"] = json!("Yes");
    created["configurationItem"]["tags"]["OwnerDL"] = json!("db-team@example.com");
    let mut deleted = sample("config-sns-security-group-deleted.json");
    deleted["configurationItem"]["configurationStateId"] = json!(1222333444999u64);
    let report = function
        .handle(&world::config_delivery(&[created, deleted]), now())
        .await
        .unwrap();
    assert_eq!(
        report.messages[0].outcome,
        MessageOutcome::Mailed,
        "{report:?}"
    );
    assert_eq!(
        report.messages[1].outcome,
        MessageOutcome::Mailed,
        "{report:?}"
    );
    let mails = w.mails();
    assert!(
        subject(&mails[0]).contains("created"),
        "{}",
        subject(&mails[0])
    );
    assert!(
        subject(&mails[1]).contains("deleted"),
        "{}",
        subject(&mails[1])
    );
    assert_eq!(
        to(&mails[1]),
        vec!["network-team@example.com", "lead@example.com"]
    );
    assert!(mails[1]
        .mail_text()
        .contains("- ingress  tcp/22  0.0.0.0/0"));
}

#[tokio::test]
async fn the_mail_says_who_made_the_change_from_cloudtrail() {
    let w = World::new().await;
    w.emulator.seed_cloudtrail_events(&json!([{
        "eventID": "ev-42", "awsRegion": REGION, "eventName": "AuthorizeSecurityGroupIngress",
        "eventSource": "ec2.amazonaws.com",
        "userIdentity": {"type": "AssumedRole",
            "arn": "arn:aws:sts::123456789012:assumed-role/Developer/alice",
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/Developer",
                                                 "userName": "Developer"}}}
    }]));
    let mut message = tagged("Yes", "db-team@example.com");
    message["configurationItem"]["relatedEvents"] = json!(["ev-42"]);
    w.function(&[])
        .await
        .handle(&world::config_delivery(&[message]), now())
        .await
        .unwrap();
    let body = w.mails()[0].mail_text();
    assert!(
        body.contains("Who:      arn:aws:sts::123456789012:assumed-role/Developer/alice (role arn:aws:iam::123456789012:role/Developer) (CloudTrail event ev-42)"),
        "{body}"
    );
    let lookups = w.emulator.calls_of("LookupEvents");
    assert_eq!(lookups.len(), 1);
}

#[tokio::test]
async fn ses_faults_fail_only_when_a_retry_helps_and_the_retry_mails_once() {
    let w = World::new().await;
    let function = w.function(&[]).await;
    let event = world::config_delivery(&[tagged("Yes", "db-team@example.com")]);
    // SES answers 503: the invocation fails so SNS retries; the claim is given back.
    w.emulator.set_service_outage(REGION, "ses", Outage::Error);
    let err = function.handle(&event, now()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::MailNotSent);
    assert!(err.to_string().contains("db-team@example.com"), "{err}");
    w.emulator.set_service_outage(REGION, "ses", Outage::None);
    w.emulator.clear_calls();
    let retried = function.handle(&event, now()).await.unwrap();
    assert_eq!(retried.messages[0].outcome, MessageOutcome::Mailed);
    assert_eq!(w.mails().len(), 1);

    // An unverified sender is refused by SES for good: logged, reported, not retried.
    let mut other = tagged("Yes", "db-team@example.com");
    other["configurationItem"]["configurationStateId"] = json!(7);
    let unverified = w
        .function(&[("NOTIFY_SENDER", "nobody@unverified.example")])
        .await;
    let report = unverified
        .handle(&world::config_delivery(&[other]), now())
        .await
        .unwrap();
    assert_eq!(
        report.messages[0].outcome,
        MessageOutcome::Failed,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_normal_change_costs_one_dedup_write_and_one_send() {
    let w = World::new().await;
    w.function(&[])
        .await
        .handle(
            &world::config_delivery(&[tagged("Yes", "a@example.com b@example.com")]),
            now(),
        )
        .await
        .unwrap();
    let operations: Vec<String> = w
        .emulator
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(operations, vec!["PutItem", SEND]);
}

/// The binary's own account is the account of the ARN Lambda invoked it by: an item of that
/// account is read with the function's own credentials, and no STS call is made to learn it
/// (`SGWARDEN_FUNCTION_ROLE_ARN` unset; the harness invokes as `123456789012`).
#[tokio::test]
async fn the_binary_knows_its_account_from_the_arn_it_was_invoked_by() {
    let w = World::new().await;
    let runtime = RuntimeApi::start().await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("NOTIFY_SENDER", SENDER.to_string()));
    let function = runtime.spawn("notify-owner", &env);
    let mut created = sample("config-sns-security-group-created.json");
    assert_eq!(
        created["configurationItem"]["awsAccountId"],
        sgwarden_tests::cloudtrail::ACCOUNT
    );
    created["configurationItem"]["tags"]["NotifyOnChange"] = json!("Yes");
    created["configurationItem"]["tags"]["OwnerDL"] = json!("db-team@example.com");
    runtime.invoke(world::config_delivery(&[created]));
    let outcomes = runtime.outcomes(1, Duration::from_secs(60)).await;
    function.stop();
    match &outcomes[0] {
        Outcome::Response { body, .. } => {
            assert_eq!(body["messages"][0]["outcome"], "mailed", "{body}")
        }
        other => panic!("expected a response: {other:?}"),
    }
    assert_eq!(w.mails().len(), 1);
    assert!(
        w.emulator.calls_of("GetCallerIdentity").is_empty(),
        "{:?}",
        w.emulator.calls()
    );
}

#[tokio::test]
async fn the_lambda_binary_mails_through_the_runtime_api() {
    let w = World::new().await;
    let runtime = RuntimeApi::start().await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("NOTIFY_SENDER", SENDER.to_string()));
    env.push(("NOTIFY_DEDUP_TABLE", DEDUP.to_string()));
    let chat = world::ChatTopic::new(&w.emulator.sdk_config(REGION).await, "owners-chat").await;
    env.push(("CHAT_TOPIC_ARN", chat.arn.clone()));
    let function = runtime.spawn("notify-owner", &env);
    let ok = runtime.invoke(world::config_delivery(&[tagged(
        "Yes",
        "db-team@example.com",
    )]));
    let bad = runtime.invoke(json!({"Records": [{"Sns": {"Message": "{"}}]}));
    let outcomes = runtime.outcomes(2, Duration::from_secs(60)).await;
    let logs = function.stop();
    match &outcomes[0] {
        Outcome::Response { request_id, body } => {
            assert_eq!(request_id, &ok);
            assert_eq!(body["messages"][0]["outcome"], "mailed");
        }
        other => panic!("expected a response: {other:?}"),
    }
    match &outcomes[1] {
        Outcome::Error { request_id, body } => {
            assert_eq!(request_id, &bad);
            assert_eq!(body["errorType"], "EventNotUnderstood");
        }
        other => panic!("expected an error: {other:?}"),
    }
    assert_eq!(w.mails().len(), 1);
    assert!(logs.contains("owner mailed"), "{logs}");
    let metrics = runtime::metrics_in(&logs);
    assert_eq!(metrics.len(), 2, "{logs}");
    let mail_counts = [
        ("MailsSent", 1),
        ("MailsFailed", 0),
        ("Duplicates", 0),
        ("Errors", 0),
    ];
    runtime::assert_metrics(&metrics[0], "notify-owner", &mail_counts);
    // A failure writes every metric, as zero.
    runtime::assert_metrics(
        &metrics[1],
        "notify-owner",
        &[
            ("MailsSent", 0),
            ("MailsFailed", 0),
            ("Duplicates", 0),
            ("Errors", 1),
        ],
    );
    let messages = chat.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let group = match &outcomes[0] {
        Outcome::Response { body, .. } => body["messages"][0]["group_id"]
            .as_str()
            .unwrap()
            .to_string(),
        other => panic!("{other:?}"),
    };
    world::assert_chat_schema(&messages[0], &group);
    assert!(messages[0]["content"]["description"]
        .as_str()
        .unwrap()
        .contains("db-team@example.com"));

    let runtime = RuntimeApi::start().await;
    let mut broken = w.emulator.function_env(REGION);
    broken.push(("NOTIFY_SENDER", "not an address".to_string()));
    let function = runtime.spawn("notify-owner", &broken);
    runtime.invoke(world::config_delivery(&[tagged(
        "Yes",
        "db-team@example.com",
    )]));
    let outcomes = runtime.outcomes(1, Duration::from_secs(30)).await;
    drop(function);
    outcomes
        .first()
        .expect("an outcome")
        .expect_error("ConfigurationError", "NOTIFY_SENDER");
}
