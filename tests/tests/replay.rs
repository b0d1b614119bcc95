//! `sgwarden replay revert-ingress` end to end: the real binary, against the emulator's
//! CloudTrail history (seeded with real-shaped records of changes made for real) and its EC2,
//! in the own account and a member account. The output is checked line by line, the JSON and
//! the exit code too, and the emulator's call log proves the replay wrote nothing.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::Client;
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, in_account, session, user, ACCOUNT};
use sgwarden_tests::runtime::{run_sgwarden, Output};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const MEMBER: &str = "222233334444";
const TABLE: &str = "sgwarden-approvals";
const ADMIN: &str = "arn:aws:iam::123456789012:role/ops/NetworkAdmin";
const PIPELINE: &str = "arn:aws:iam::123456789012:role/ci/deploy";
const DAVE: &str = "arn:aws:iam::123456789012:user/dave";
/// The member account's own dave: `in_account` names the member account in every ARN.
const MEMBER_DAVE: &str = "arn:aws:iam::222233334444:user/dave";
const FUNCTION_ROLE: &str = "arn:aws:iam::123456789012:role/sgwarden-revert-ingress";

async fn sgwarden(emulator: &Emulator, args: &[&str], env: &[(&str, String)]) -> Output {
    run_sgwarden(emulator, REGION, args, env, None).await
}

/// `hours` before the tests started, as CloudTrail writes `eventTime`: the same text each
/// time it is asked.
fn hours_ago(hours: u64) -> String {
    static START: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    let at = *START.get_or_init(SystemTime::now) - Duration::from_secs(hours * 3_600);
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The record an event carries, with its id and time set.
fn record(event: &Value, id: &str, hours: u64) -> Value {
    let mut record = event["detail"].clone();
    record["eventID"] = json!(id);
    record["eventTime"] = json!(hours_ago(hours));
    record
}

fn tcp(port: i32, cidr: &str) -> Value {
    json!([{"ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "ipRanges": {"items": [{"cidrIp": cidr}]}}])
}

/// Opens `port` from `cidr` on `group` for real, as `identity`, and returns the record.
async fn opened(
    ec2: &Client,
    group: &str,
    identity: Value,
    permissions: Value,
    id: &str,
    hours: u64,
) -> Value {
    let event = cloudtrail::opened_by_hand(ec2, REGION, group, identity, permissions, true).await;
    record(&event, id, hours)
}

/// The history: an exempt role, a pipeline's role, a person, a failed call, a deleted group,
/// a rule removed since, the function's own call, a call older than the window, and a
/// person's call in a member account. Returns the groups: db, web, api, and the member's.
async fn seed(emulator: &Emulator) -> [String; 4] {
    let ec2 = Client::new(&emulator.sdk_config(REGION).await);
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config(REGION).await);
    world::approvals_table(&dynamodb, TABLE).await;
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let protected = [("Protected", "true")];
    let db = world::group(&ec2, &vpc, "db", &protected).await;
    let web = world::group(&ec2, &vpc, "web", &protected).await;
    let api = world::group(&ec2, &vpc, "api", &protected).await;
    let gone = world::group(&ec2, &vpc, "gone", &protected).await;
    let deploy = || session("ci/", "deploy", "run-42");
    let dave = || user("dave");
    let week = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 7 * 86_400;
    world::approve(
        &dynamodb,
        TABLE,
        &db,
        "change-7",
        "tcp/3000 10.2.0.0/16",
        week,
    )
    .await;
    let mut records = vec![
        opened(
            &ec2,
            &db,
            session("ops/", "NetworkAdmin", "alice"),
            tcp(5432, "10.1.0.0/16"),
            "ev-admin",
            300,
        )
        .await,
        opened(
            &ec2,
            &db,
            deploy(),
            tcp(8080, "10.0.0.0/8"),
            "ev-deploy-db",
            200,
        )
        .await,
        opened(
            &ec2,
            &web,
            deploy(),
            tcp(8080, "10.0.0.0/8"),
            "ev-deploy-web",
            150,
        )
        .await,
        opened(
            &ec2,
            &api,
            deploy(),
            tcp(8080, "10.0.0.0/8"),
            "ev-deploy-api",
            100,
        )
        .await,
        opened(
            &ec2,
            &gone,
            deploy(),
            tcp(8080, "10.0.0.0/8"),
            "ev-deploy-gone",
            90,
        )
        .await,
        opened(&ec2, &db, dave(), tcp(22, "0.0.0.0/0"), "ev-dave-ssh", 50).await,
        opened(
            &ec2,
            &db,
            dave(),
            json!([{"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                    "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}},
                   {"ipProtocol": "tcp", "fromPort": 3000, "toPort": 3000,
                    "ipRanges": {"items": [{"cidrIp": "10.2.0.0/16"}]}}]),
            "ev-dave-web",
            40,
        )
        .await,
        opened(
            &ec2,
            &db,
            dave(),
            tcp(9000, "0.0.0.0/0"),
            "ev-dave-old",
            24 * 20,
        )
        .await,
        opened(
            &ec2,
            &db,
            session("", "sgwarden-revert-ingress", "revert"),
            tcp(9100, "0.0.0.0/0"),
            "ev-own",
            30,
        )
        .await,
    ];
    // A failed call changed nothing: CloudTrail records its error and no response.
    let mut failed = cloudtrail::api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        dave(),
        json!({"groupId": db, "ipPermissions": {"items": tcp(22, "0.0.0.0/0")}}),
        Value::Null,
    );
    failed["detail"]["errorCode"] = json!("Client.InvalidPermission.Duplicate");
    failed["detail"]["errorMessage"] = json!("the specified rule already exists");
    records.push(record(&failed, "ev-dave-failed", 20));
    // The web rule is removed since, and the "gone" group deleted.
    let web_rule = records[2]["responseElements"]["securityGroupRuleSet"]["items"][0]
        ["securityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();
    ec2.revoke_security_group_ingress()
        .group_id(&web)
        .security_group_rule_ids(web_rule)
        .send()
        .await
        .unwrap();
    ec2.delete_security_group()
        .group_id(&gone)
        .send()
        .await
        .unwrap();
    // A member account, reached through the member role.
    let member_ec2 = Client::new(&emulator.account_sdk_config(MEMBER, REGION).await);
    let member_vpc = world::vpc(&member_ec2, "10.9.0.0/16").await;
    let member = world::group(&member_ec2, &member_vpc, "db", &protected).await;
    let event = cloudtrail::opened_by_hand(
        &member_ec2,
        REGION,
        &member,
        dave(),
        tcp(22, "0.0.0.0/0"),
        true,
    )
    .await;
    records.push(record(&in_account(&event, MEMBER), "ev-member-ssh", 10));
    emulator.create_role(MEMBER, "/security/", "sgwarden-member", &[ACCOUNT]);
    emulator.seed_cloudtrail_events(&Value::Array(records));
    emulator.clear_calls();
    [db, web, api, member]
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        (
            "REVERT_POLICY",
            json!({
                "scope": {"tag": {"key": "Protected", "value": "true"}},
                "directions": ["ingress"],
                "exempt": {"principals": [ADMIN]},
                "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}]
            })
            .to_string(),
        ),
        ("REVERT_APPROVALS_TABLE", TABLE.to_string()),
        ("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()),
        (
            "SGWARDEN_MEMBER_ROLE",
            "security/sgwarden-member".to_string(),
        ),
        ("SGWARDEN_ACCOUNTS", MEMBER.to_string()),
    ]
}

/// Every call the emulator received was a read.
fn only_reads(emulator: &Emulator) {
    let calls = emulator.calls();
    assert!(calls.iter().any(|c| c.operation == "LookupEvents"));
    let reads = [
        "Describe",
        "Get",
        "List",
        "Lookup",
        "Scan",
        "Query",
        "AssumeRole",
    ];
    let writes: Vec<String> = calls
        .iter()
        .filter(|c| !reads.iter().any(|r| c.operation.starts_with(r)))
        .map(|c| format!("{} {}", c.service, c.operation))
        .collect();
    assert!(writes.is_empty(), "a replay writes nothing: {writes:?}");
}

#[tokio::test]
async fn replay_tells_who_would_have_been_reverted_where_and_suggests_the_policy_and_writes_nothing(
) {
    let emulator = Emulator::start();
    let [db, web, api, member] = seed(&emulator).await;
    let started = std::time::Instant::now();
    let out = sgwarden(
        &emulator,
        &["replay", "revert-ingress", "--since", "14d"],
        &env(),
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    // Five names looked up in each account-region, at most 2 a second there.
    assert!(started.elapsed() >= Duration::from_secs(2), "paced");
    let time = |hours| hours_ago(hours);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("Replay of revert-ingress over 14d ("),
        "{}",
        out.stdout
    );
    assert!(
        lines[0].ends_with(&format!(") in {ACCOUNT} {REGION}, {MEMBER} {REGION}")),
        "{}",
        lines[0]
    );
    // The pipeline's groups come sorted by account, region and group id.
    let mut pipeline = vec![
        (
            api.clone(),
            format!(
                "    AuthorizeSecurityGroupIngress ev-deploy-api at {}\n      - ingress tcp/8080 10.0.0.0/8  would be reverted",
                time(100)
            ),
        ),
        (
            db.clone(),
            format!(
                "    AuthorizeSecurityGroupIngress ev-deploy-db at {}\n      - ingress tcp/8080 10.0.0.0/8  would be reverted",
                time(200)
            ),
        ),
        (
            web.clone(),
            format!(
                "    AuthorizeSecurityGroupIngress ev-deploy-web at {}\n      - ingress tcp/8080 10.0.0.0/8  would have been reverted, since removed",
                time(150)
            ),
        ),
    ];
    pipeline.sort();
    let mut expected = vec![format!(
        "{PIPELINE}: 3 of 3 call(s) would have been reverted"
    )];
    for (group, call) in pipeline {
        expected.push(format!("  {ACCOUNT} {REGION} {group}"));
        expected.extend(call.lines().map(str::to_string));
    }
    expected.extend([
        format!("{DAVE}: 1 of 2 call(s) would have been reverted"),
        format!("  {ACCOUNT} {REGION} {db}"),
        format!(
            "    AuthorizeSecurityGroupIngress ev-dave-ssh at {}",
            time(50)
        ),
        "      - ingress tcp/22 0.0.0.0/0  would be reverted".to_string(),
        format!("{MEMBER_DAVE}: 1 of 1 call(s) would have been reverted"),
        format!("  {MEMBER} {REGION} {member}"),
        format!(
            "    AuthorizeSecurityGroupIngress ev-member-ssh at {}",
            time(10)
        ),
        "      - ingress tcp/22 0.0.0.0/0  would be reverted".to_string(),
        // admin's 1 rule, dave's allowed and approved ones.
        "7 call(s) judged: 4 rule(s) would be reverted, 1 would have been reverted but since \
         removed, 3 kept; 1 failed call(s) skipped, 1 call(s) on a group gone, 1 call(s) not \
         judged."
            .to_string(),
        "Suggestions:".to_string(),
        format!("  exempt {PIPELINE}? every one of its 3 call(s) would have been reverted"),
        "  allow or approve \"ingress tcp/8080 10.0.0.0/8\"? it would have been reverted 3 times"
            .to_string(),
    ]);
    assert_eq!(lines[1..].to_vec(), expected, "{}", out.stdout);
    only_reads(&emulator);
    let lookups = emulator.calls_of("LookupEvents");
    assert!(
        lookups
            .iter()
            .all(|c| c.params["LookupAttributes"][0]["AttributeKey"] == "EventName"),
        "looked up by name: {lookups:?}"
    );
    assert_eq!(
        lookups.iter().filter(|c| c.account == MEMBER).count(),
        5,
        "every judged call's name, in the member account too"
    );
}

#[tokio::test]
async fn replay_as_json_for_a_pipeline_with_the_exit_code_of_plan() {
    let emulator = Emulator::start();
    let [.., member] = seed(&emulator).await;
    let out = sgwarden(
        &emulator,
        &[
            "replay",
            "revert-ingress",
            "--since",
            "36h",
            "--format",
            "json",
        ],
        &env(),
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["schema"], "sgwarden.replay/1");
    assert_eq!(json["since"], "36h");
    // 36 hours hold only the failed call, the function's own and the member's.
    assert_eq!(
        json["summary"],
        json!({"judged": 1, "would_revert": 1, "since_removed": 0, "kept": 0, "failed": 1,
               "group_gone": 0, "skipped": 1})
    );
    let outcomes: Vec<(&str, &str)> = json["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["event_id"].as_str().unwrap(),
                c["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("ev-dave-failed", "failed"),
            ("ev-own", "skipped"),
            ("ev-member-ssh", "judged")
        ]
    );
    assert_eq!(
        json["calls"][0]["code"],
        "Client.InvalidPermission.Duplicate"
    );
    assert_eq!(json["calls"][0]["principal"], DAVE);
    assert_eq!(
        json["calls"][1]["reason"],
        "made by this function's own role"
    );
    assert_eq!(json["principals"][0]["principal"], MEMBER_DAVE);
    assert_eq!(json["principals"][0]["groups"][0]["group_id"], member);
    assert_eq!(
        json["principals"][0]["groups"][0]["calls"][0]["reverted"][0],
        json!({"rule": "ingress tcp/22 0.0.0.0/0", "fate": "would-revert"})
    );
    assert_eq!(json["suggestions"], json!([]));
    only_reads(&emulator);

    // Nothing to revert in the window: exit 0.
    let out = sgwarden(
        &emulator,
        &["replay", "revert-ingress", "--since", "5h"],
        &env(),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.ends_with("Suggestions: none.\n"),
        "{}",
        out.stdout
    );
    // A window CloudTrail does not keep, or not a window: refused before any AWS call.
    emulator.clear_calls();
    for bad in ["91d", "2w"] {
        let out = sgwarden(
            &emulator,
            &["replay", "revert-ingress", "--since", bad],
            &env(),
        )
        .await;
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("at most 90d"), "{}", out.stderr);
    }
    assert!(emulator.calls().is_empty());
}
