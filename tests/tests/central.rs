//! One deployment, many accounts, end to end: the emulator serves a central account (the
//! default one) and member accounts; a member's world is built with an administrator's key
//! there, and the functions reach it only through STS `AssumeRole` into the member role, which
//! the emulator refuses, as IAM does, when the role is missing or does not trust the caller.
//! Every assertion reads the member account back with its own credentials.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::Client;
use notify_owner::{MessageOutcome, NotifyConfig, NotifyOwner, Unmailed};
use revert_ingress::{NotSwept, OwnRole, RevertConfig, RevertIngress};
use serde_json::{json, Value};
use sgwarden_core::accounts::CallerIdentity;
use sgwarden_core::policy::Skip;
use sgwarden_core::settings::from_pairs;
use sgwarden_core::ErrorType;
use sgwarden_lambda::Measured;
use sgwarden_tests::cloudtrail::{self, in_account, session, user, ACCOUNT as CENTRAL};
use sgwarden_tests::organization::{ingress_rules as rules, FUNCTION_ROLE, MEMBER_ROLE, POLICY};
use sgwarden_tests::runtime::{self, Outcome, RuntimeApi};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const MEMBER: &str = "222233334444";

/// A protected group in `account`, with a hand-made rule no test may lose.
async fn protected_group(ec2: &Client) -> String {
    let vpc = world::vpc(ec2, "10.9.0.0/16").await;
    let group = world::group(ec2, &vpc, "db", &[("Protected", "true")]).await;
    world::hand_rule(ec2, &group, 443, "10.0.0.0/8", "pre-existing").await;
    group
}

async fn revert_ingress(emulator: &Emulator, vars: &[(&str, &str)]) -> RevertIngress {
    let config = RevertConfig::from_lookup(from_pairs(vars)).unwrap();
    RevertIngress::new(
        config,
        &emulator.sdk_config(REGION).await,
        OwnRole::Known(CallerIdentity::new(FUNCTION_ROLE)),
    )
}

/// A member account's EC2 client and its protected group.
async fn member(emulator: &Emulator, account: &str) -> (Client, String) {
    let ec2 = Client::new(&emulator.account_sdk_config(account, REGION).await);
    let group = protected_group(&ec2).await;
    (ec2, group)
}

/// The event CloudTrail records in `account` for `who` opening tcp/22 to the world there.
async fn opened_in(ec2: &Client, account: &str, group: &str, who: Value) -> Value {
    let event = cloudtrail::opened_by_hand(
        ec2,
        REGION,
        group,
        who,
        json!([{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]),
        true,
    )
    .await;
    in_account(&event, account)
}

#[tokio::test]
async fn a_member_account_s_change_is_reverted_there_through_the_member_role() {
    let emulator = Emulator::start();
    let (ec2, group) = member(&emulator, MEMBER).await;
    let role = emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    // Records stay central: the topic is the central account's.
    let sns = aws_sdk_sns::Client::new(&emulator.sdk_config(REGION).await);
    let topic = world::topic(&sns, "sgwarden-reverts").await;
    let function = revert_ingress(
        &emulator,
        &[
            ("REVERT_POLICY", POLICY),
            ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE),
            ("REVERT_NOTIFY_TOPIC_ARN", &topic),
        ],
    )
    .await;
    emulator.clear_calls();

    let event = opened_in(&ec2, MEMBER, &group, user("mallory")).await;
    let report = function.handle(&event, SystemTime::now()).await.unwrap();
    assert_eq!(report.groups[0].account.as_deref(), Some(MEMBER));
    assert_eq!(report.groups[0].revoked, ["ingress tcp/22 0.0.0.0/0"]);
    assert_eq!(rules(&ec2, &group).await, ["tcp/443 10.0.0.0/8"]);
    let assumed = emulator.calls_of("AssumeRole");
    assert_eq!(assumed.len(), 1);
    assert_eq!(assumed[0].account, CENTRAL);
    assert_eq!(assumed[0].params["RoleArn"], role.as_str());
    assert_eq!(
        assumed[0].params["RoleSessionName"],
        "sgwarden-revert-ingress"
    );
    let revokes = emulator.calls_of("RevokeSecurityGroupIngress");
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].account, MEMBER, "revoked in the member account");
    let published = emulator.calls_of("Publish");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].account, CENTRAL);
    let record: Value =
        serde_json::from_str(published[0].params["Message"].as_str().unwrap()).unwrap();
    assert_eq!(record["account"], MEMBER, "{record}");
    assert_eq!(record["group_id"], group.as_str(), "{record}");

    // A second change from the same account reuses the session: no second AssumeRole.
    let event = opened_in(&ec2, MEMBER, &group, user("mallory")).await;
    let report = function.handle(&event, SystemTime::now()).await.unwrap();
    assert_eq!(report.groups[0].revoked, ["ingress tcp/22 0.0.0.0/0"]);
    assert_eq!(emulator.calls_of("AssumeRole").len(), 1);

    // The member role's own sessions, in any account, are the function's: not judged, and
    // recognised without a call.
    let mine = opened_in(
        &ec2,
        MEMBER,
        &group,
        session("", MEMBER_ROLE, "sgwarden-revert-ingress"),
    )
    .await;
    for account in [MEMBER, "999988887777"] {
        let mine = serde_json::from_str(
            &mine
                .to_string()
                .replace(&format!("sts::{MEMBER}:"), &format!("sts::{account}:"))
                .replace(&format!("iam::{MEMBER}:"), &format!("iam::{account}:")),
        )
        .unwrap();
        emulator.clear_calls();
        let report = function.handle(&mine, SystemTime::now()).await.unwrap();
        assert_eq!(report.skipped, Some(Skip::OwnCall));
        assert!(emulator.calls().is_empty(), "{:?}", emulator.calls());
    }
    assert_eq!(
        rules(&ec2, &group).await,
        ["tcp/22 0.0.0.0/0", "tcp/443 10.0.0.0/8"]
    );
}

#[tokio::test]
async fn a_member_s_finding_is_imported_in_the_member_account_through_the_member_role() {
    let emulator = Emulator::start();
    let (ec2, group) = member(&emulator, MEMBER).await;
    emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    let event = opened_in(&ec2, MEMBER, &group, user("mallory")).await;
    emulator.clear_calls();
    let mut env = emulator.function_env(REGION);
    env.extend([
        ("REVERT_POLICY", POLICY.to_string()),
        ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE.to_string()),
        ("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()),
        ("SECURITY_HUB", "true".to_string()),
    ]);
    let outcomes = runtime::serve_events("revert-ingress", &env, vec![event]).await;
    assert!(
        matches!(outcomes[0], Outcome::Response { .. }),
        "{outcomes:?}"
    );
    assert_eq!(rules(&ec2, &group).await, ["tcp/443 10.0.0.0/8"]);
    // Security Hub takes a finding about the member only from the member (the emulator
    // refuses any other, as Security Hub does): imported with the member role's session.
    let imports = emulator.calls_of("POST /findings/import");
    assert_eq!(imports.len(), 1, "{imports:?}");
    assert_eq!(imports[0].account, MEMBER);
    let finding = &imports[0].params["Findings"][0];
    assert_eq!(finding["AwsAccountId"], MEMBER);
    assert_eq!(
        finding["ProductArn"],
        format!("arn:aws:securityhub:{REGION}:{MEMBER}:product/{MEMBER}/default")
    );
    assert_eq!(
        finding["Resources"][0]["Id"],
        format!("arn:aws:ec2:{REGION}:{MEMBER}:security-group/{group}")
    );
    assert_eq!(
        emulator.calls_of("AssumeRole").len(),
        1,
        "the revert's session, reused"
    );
}

#[tokio::test]
async fn without_a_member_role_another_account_s_event_is_skipped_and_nothing_changes() {
    let emulator = Emulator::start();
    let (ec2, group) = member(&emulator, MEMBER).await;
    emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    let event = opened_in(&ec2, MEMBER, &group, user("mallory")).await;
    emulator.clear_calls();

    let single = revert_ingress(&emulator, &[("REVERT_POLICY", POLICY)]).await;
    let report = single.handle(&event, SystemTime::now()).await.unwrap();
    let Some(Skip::OutOfReach(reason)) = report.skipped else {
        panic!("acted in {MEMBER} without a member role: {report:?}");
    };
    assert_eq!(reason.account, MEMBER);
    assert!(emulator.calls().is_empty(), "{:?}", emulator.calls());
    assert_eq!(
        rules(&ec2, &group).await,
        ["tcp/22 0.0.0.0/0", "tcp/443 10.0.0.0/8"]
    );

    // A member role that does not trust this deployment is refused by STS: the invocation
    // fails naming it, and nothing changes.
    let untrusting = revert_ingress(
        &emulator,
        &[
            ("REVERT_POLICY", POLICY),
            ("SGWARDEN_MEMBER_ROLE", "someone-else"),
        ],
    )
    .await;
    emulator.create_role(MEMBER, "/", "someone-else", &["999988887777"]);
    let error = untrusting
        .handle(&event, SystemTime::now())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("AccessDenied"), "{error}");
    assert_eq!(error.kind(), ErrorType::AwsError);
    assert_eq!(
        rules(&ec2, &group).await,
        ["tcp/22 0.0.0.0/0", "tcp/443 10.0.0.0/8"]
    );
}

#[tokio::test]
async fn a_sweep_covers_the_organisation_and_reports_the_account_it_cannot_reach() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk_config(REGION).await;
    let organizations = aws_sdk_organizations::Client::new(&sdk);
    organizations
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let mut members = Vec::new();
    for name in ["payments", "sandbox"] {
        let created = organizations
            .create_account()
            .account_name(name)
            .email(format!("{name}@example.com"))
            .send()
            .await
            .unwrap();
        members.push(
            created
                .create_account_status()
                .and_then(|s| s.account_id())
                .unwrap()
                .to_string(),
        );
    }
    let (with_role, without_role) = (&members[0], &members[1]);
    // The central account's own group, and both members' groups, each opened to the world.
    let own_ec2 = Client::new(&sdk);
    let own_group = protected_group(&own_ec2).await;
    world::hand_rule(&own_ec2, &own_group, 22, "0.0.0.0/0", "by hand").await;
    let mut member_groups = Vec::new();
    for account in &members {
        let (ec2, group) = member(&emulator, account).await;
        world::hand_rule(&ec2, &group, 22, "0.0.0.0/0", "by hand").await;
        member_groups.push((ec2, group));
    }
    emulator.create_role(with_role, "/", MEMBER_ROLE, &[CENTRAL]);
    let function = revert_ingress(
        &emulator,
        &[
            ("REVERT_POLICY", POLICY),
            ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE),
            ("SGWARDEN_ACCOUNTS", "organization"),
        ],
    )
    .await;
    emulator.clear_calls();

    let report = function
        .handle(&world::scheduled_event(REGION), SystemTime::now())
        .await
        .unwrap();
    let mut swept: Vec<(String, Vec<String>)> = report
        .groups
        .iter()
        .map(|g| (g.account.clone().unwrap(), g.revoked.clone()))
        .collect();
    swept.sort();
    let mut expected = vec![
        (
            CENTRAL.to_string(),
            vec!["ingress tcp/22 0.0.0.0/0".to_string()],
        ),
        (
            with_role.clone(),
            vec!["ingress tcp/22 0.0.0.0/0".to_string()],
        ),
    ];
    expected.sort();
    assert_eq!(swept, expected, "{report:?}");
    assert_eq!(report.unswept.len(), 1, "{report:?}");
    assert_eq!(&report.unswept[0].account, without_role);
    assert_eq!(report.unswept[0].region, REGION);
    assert!(
        matches!(&report.unswept[0].reason, NotSwept::Refused(answer) if answer.contains("AccessDenied")),
        "{report:?}"
    );
    assert!(report.counts().contains(&("AccountsUnswept", 1)));
    assert_eq!(rules(&own_ec2, &own_group).await, ["tcp/443 10.0.0.0/8"]);
    assert_eq!(
        rules(&member_groups[0].0, &member_groups[0].1).await,
        ["tcp/443 10.0.0.0/8"]
    );
    assert_eq!(
        rules(&member_groups[1].0, &member_groups[1].1).await,
        ["tcp/22 0.0.0.0/0", "tcp/443 10.0.0.0/8"],
        "the account without the role is left as it is"
    );
    assert_eq!(emulator.calls_of("ListAccounts").len(), 1);
}

/// notify-owner as a central deployment configures it.
async fn notify_owner(emulator: &Emulator, member_role: Option<&str>) -> NotifyOwner {
    let mut vars = vec![
        ("NOTIFY_SENDER", "sgwarden@example.com"),
        ("NOTIFY_DEDUP_TABLE", "sgwarden-notified"),
        (
            "SGWARDEN_FUNCTION_ROLE_ARN",
            "arn:aws:iam::123456789012:role/sgwarden-notify-owner",
        ),
    ];
    if let Some(role) = member_role {
        vars.push(("SGWARDEN_MEMBER_ROLE", role));
    }
    let config = NotifyConfig::from_lookup(from_pairs(&vars)).unwrap();
    NotifyOwner::new(config, &emulator.sdk_config(REGION).await).unwrap()
}

/// The EventBridge `Config Configuration Item Change` of a member's opted-in group whose
/// rules changed, naming CloudTrail event `event_id`.
fn config_item_change(account: &str, event_id: &str) -> Value {
    let mut detail = sgwarden_tests::real_event("config-item-rules-changed.json");
    let item = &mut detail["configurationItem"];
    item["awsAccountId"] = json!(account);
    item["awsRegion"] = json!(REGION);
    item["relatedEvents"] = json!([event_id]);
    item["tags"]["NotifyOnChange"] = json!("Yes");
    item["tags"]["OwnerDL"] = json!("db-team@example.com");
    json!({
        "version": "0", "id": format!("cfg-{event_id}"),
        "detail-type": "Config Configuration Item Change", "source": "aws.config",
        "account": account, "time": "2026-11-22T10:00:00Z", "region": REGION,
        "resources": [], "detail": detail
    })
}

#[tokio::test]
async fn a_member_account_s_config_change_on_eventbridge_mails_its_owner() {
    let emulator = Emulator::start();
    let sdk = emulator.sdk_config(REGION).await;
    world::verified_sender(&aws_sdk_sesv2::Client::new(&sdk), "sgwarden@example.com").await;
    world::dedup_table(&aws_sdk_dynamodb::Client::new(&sdk), "sgwarden-notified").await;
    emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    // Who made each change is in the member account's CloudTrail only.
    let alice = in_account(&user("alice"), MEMBER);
    let sgwarden = in_account(&session("", MEMBER_ROLE, "sgwarden-revert-ingress"), MEMBER);
    emulator.seed_cloudtrail_events(&json!([
        {"eventID": "ev-alice", "awsRegion": REGION, "recipientAccountId": MEMBER,
         "eventName": "AuthorizeSecurityGroupIngress", "userIdentity": alice},
        {"eventID": "ev-sgwarden", "awsRegion": REGION, "recipientAccountId": MEMBER,
         "eventName": "RevokeSecurityGroupIngress", "userIdentity": sgwarden},
    ]));
    let function = notify_owner(&emulator, Some(MEMBER_ROLE)).await;
    emulator.clear_calls();

    let report = function
        .handle(&config_item_change(MEMBER, "ev-alice"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        report.messages[0].outcome,
        MessageOutcome::Mailed,
        "{report:?}"
    );
    let mails = emulator.calls_of("POST /v2/email/outbound-emails");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].account, CENTRAL,
        "mailed from the central account's SES"
    );
    let body = mails[0].mail_text();
    assert!(
        body.contains("arn:aws:iam::222233334444:user/alice"),
        "{body}"
    );
    assert!(body.contains(MEMBER), "{body}");
    let lookups = emulator.calls_of("LookupEvents");
    assert_eq!(lookups.len(), 1);
    assert_eq!(
        lookups[0].account, MEMBER,
        "looked up in the member's CloudTrail"
    );
    let assumed = emulator.calls_of("AssumeRole");
    assert_eq!(
        assumed[0].params["RoleSessionName"],
        "sgwarden-notify-owner"
    );

    // sgwarden's own revert in the member account is named as sgwarden's, not a stranger's.
    let mut change = config_item_change(MEMBER, "ev-sgwarden");
    change["detail"]["configurationItem"]["configurationStateId"] = json!(99);
    function.handle(&change, SystemTime::now()).await.unwrap();
    let mails = emulator.calls_of("POST /v2/email/outbound-emails");
    let body = mails[1].mail_text();
    assert!(body.contains("sgwarden, through its member role"), "{body}");

    // An oversized item is resolved from the member account's Config history.
    let history_item = |state: u64, ports: &[u16]| {
        let permissions: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({"fromPort": p, "toPort": p, "ipProtocol": "tcp",
                            "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
                            "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []})
            })
            .collect();
        json!({"version": "1.3", "accountId": MEMBER, "awsRegion": REGION,
               "configurationItemCaptureTime": 1_700_000_000 + state,
               "configurationItemStatus": "OK", "configurationStateId": state.to_string(),
               "resourceType": "AWS::EC2::SecurityGroup", "resourceId": "sg-0big",
               "resourceName": "big", "relatedEvents": [],
               "tags": {"NotifyOnChange": "Yes", "OwnerDL": "db-team@example.com"},
               "configuration": json!({"groupId": "sg-0big", "groupName": "big",
                   "ipPermissions": permissions, "ipPermissionsEgress": []}).to_string()})
    };
    emulator.seed_config_history(&json!([
        history_item(1, &[443]),
        history_item(2, &[443, 22])
    ]));
    let mut oversized = config_item_change(MEMBER, "ev-alice");
    oversized["detail"] = json!({
        "messageType": "OversizedConfigurationItemChangeNotification",
        "configurationItemSummary": {
            "changeType": "UPDATE", "resourceType": "AWS::EC2::SecurityGroup",
            "resourceId": "sg-0big", "awsAccountId": MEMBER, "awsRegion": REGION,
            "configurationStateId": 2
        }
    });
    emulator.clear_calls();
    let report = function
        .handle(&oversized, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(
        report.messages[0].outcome,
        MessageOutcome::Mailed,
        "{report:?}"
    );
    let history = emulator.calls_of("GetResourceConfigHistory");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].account, MEMBER, "read in the member's Config");
    let mails = emulator.calls_of("POST /v2/email/outbound-emails");
    let body = mails[0].mail_text();
    assert!(body.contains("+ ingress  tcp/22  0.0.0.0/0"), "{body}");

    // Without a member role, another account's item is not this deployment's: ignored,
    // with the reason, and nothing is read or sent.
    emulator.clear_calls();
    let single = notify_owner(&emulator, None).await;
    let mut change = config_item_change(MEMBER, "ev-alice");
    change["detail"]["configurationItem"]["configurationStateId"] = json!(100);
    let report = single.handle(&change, SystemTime::now()).await.unwrap();
    assert_eq!(report.messages[0].outcome, MessageOutcome::Ignored);
    assert!(
        matches!(&report.messages[0].reason, Some(Unmailed::OutOfReach(r)) if r.account == MEMBER),
        "{report:?}"
    );
    assert!(emulator.calls().is_empty(), "{:?}", emulator.calls());
}

#[tokio::test]
async fn the_binary_guards_a_member_account_from_its_event_and_its_sweep() {
    let emulator = Emulator::start();
    let (ec2, group) = member(&emulator, MEMBER).await;
    emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    let event = opened_in(&ec2, MEMBER, &group, user("mallory")).await;
    let runtime = RuntimeApi::start().await;
    let mut env = emulator.function_env(REGION);
    env.push(("REVERT_POLICY", POLICY.to_string()));
    env.push(("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE.to_string()));
    env.push(("SGWARDEN_ACCOUNTS", MEMBER.to_string()));
    env.push(("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()));
    let function = runtime.spawn("revert-ingress", &env);
    runtime.invoke(event);
    runtime.outcomes(1, Duration::from_secs(60)).await;
    // Opened again by hand after the revert: the sweep finds it.
    world::hand_rule(&ec2, &group, 3389, "0.0.0.0/0", "by hand").await;
    runtime.invoke(world::scheduled_event(REGION));
    let outcomes = runtime.outcomes(2, Duration::from_secs(60)).await;
    let logs = function.stop();
    for (outcome, rule) in outcomes.iter().zip(["tcp/22", "tcp/3389"]) {
        let Outcome::Response { body, .. } = outcome else {
            panic!("expected a response: {outcome:?}\n{logs}");
        };
        assert_eq!(body["groups"][0]["account"], MEMBER, "{body}");
        assert_eq!(
            body["groups"][0]["revoked"][0],
            format!("ingress {rule} 0.0.0.0/0")
        );
    }
    assert_eq!(rules(&ec2, &group).await, ["tcp/443 10.0.0.0/8"]);
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "sgwarden::audit")
        .collect();
    assert_eq!(audit.len(), 2, "{logs}");
    for line in &audit {
        let cause = line["fields"]["cause"].as_str().unwrap();
        assert!(cause.ends_with(&format!("in account {MEMBER}")), "{cause}");
    }
    let metrics = runtime::metrics_in(&logs);
    runtime::assert_metrics(
        &metrics[1],
        "revert-ingress",
        &[("RulesRevoked", 1), ("AccountsUnswept", 0), ("Errors", 0)],
    );
    // One session for both invocations.
    assert_eq!(emulator.calls_of("AssumeRole").len(), 1);
}

#[tokio::test]
async fn a_sweep_of_several_regions_assumes_each_member_role_once() {
    let emulator = Emulator::start();
    let regions = [REGION, "eu-west-1"];
    let mut groups = Vec::new();
    for region in regions {
        let ec2 = Client::new(&emulator.account_sdk_config(MEMBER, region).await);
        let group = protected_group(&ec2).await;
        world::hand_rule(&ec2, &group, 22, "0.0.0.0/0", "by hand").await;
        groups.push((ec2, group));
    }
    emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    let function = revert_ingress(
        &emulator,
        &[
            ("REVERT_POLICY", POLICY),
            ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE),
            ("SGWARDEN_ACCOUNTS", MEMBER),
            ("SGWARDEN_REGIONS", &regions.join(",")),
        ],
    )
    .await;
    emulator.clear_calls();

    let report = function
        .handle(&world::scheduled_event(REGION), SystemTime::now())
        .await
        .unwrap();
    let mut swept: Vec<(String, String)> = report
        .groups
        .iter()
        .filter(|g| !g.revoked.is_empty())
        .map(|g| (g.account.clone().unwrap(), g.region.clone()))
        .collect();
    swept.sort();
    assert_eq!(
        swept,
        [
            (MEMBER.to_string(), "eu-west-1".to_string()),
            (MEMBER.to_string(), REGION.to_string())
        ],
        "{report:?}"
    );
    for (ec2, group) in &groups {
        assert_eq!(rules(ec2, group).await, ["tcp/443 10.0.0.0/8"]);
    }
    // Both regions of the member were swept at once, with one session between them.
    assert_eq!(emulator.calls_of("AssumeRole").len(), 1);
}
