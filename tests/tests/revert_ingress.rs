//! revert-ingress end to end: changes are made for real in the emulator, their CloudTrail
//! events are handled by the real handler (and, last test, by the real binary through the
//! Lambda Runtime API), and every assertion reads the groups back from AWS.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use aws_sdk_ec2::Client;
use revert_ingress::{OwnRole, RevertError};
use serde_json::{json, Value};
use sgwarden_aws::Ec2;
use sgwarden_core::accounts::CallerIdentity;
use sgwarden_core::policy::{Skip, Verdict};
use sgwarden_core::ErrorType;
use sgwarden_tests::cloudtrail::{self, api_call, session, user};
use sgwarden_tests::revert_world::*;
use sgwarden_tests::runtime::{self, Outcome, RuntimeApi};
use sgwarden_tests::sink::HttpSink;
use sgwarden_tests::{world, Outage};

#[tokio::test]
async fn ssh_from_anywhere_is_read_back_and_revoked_by_rule_id() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.protected).await;
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
    w.emulator.clear_calls();
    let report = w.function(&[]).await.handle(&event, now()).await.unwrap();
    let calls = w.emulator.calls();
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(report.groups[0].revoked, vec!["ingress tcp/22 0.0.0.0/0"]);
    // One read of the rules the event names, as EC2 holds them, and one revoke by id.
    let operations: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["DescribeSecurityGroupRules", "RevokeSecurityGroupIngress"],
        "{calls:?}"
    );
    assert!(calls[1].params["SecurityGroupRuleId.1"]
        .as_str()
        .unwrap()
        .starts_with("sgr-"));
}

#[tokio::test]
async fn an_egress_rule_is_revoked_and_the_default_egress_rule_stays() {
    let w = World::new().await;
    let permissions = json!([tcp(25, "0.0.0.0/0")]);
    let created = cloudtrail::authorize(&w.ec2, &w.protected, true, &permissions).await;
    let event = api_call(
        REGION,
        "AuthorizeSecurityGroupEgress",
        user("mallory"),
        json!({"groupId": w.protected, "ipPermissions": {"items": permissions}}),
        json!({"_return": true, "securityGroupRuleSet": {"items": created}}),
    );
    w.emulator.clear_calls();
    let report = w.function(&[]).await.handle(&event, now()).await.unwrap();
    assert_eq!(report.groups[0].revoked, vec!["egress tcp/25 0.0.0.0/0"]);
    assert_eq!(w.writes(), vec!["RevokeSecurityGroupEgress"]);
    let egress: Vec<String> = Ec2::new(&w.emulator.sdk_config(REGION).await)
        .read_group(&w.protected)
        .await
        .unwrap()
        .rules
        .direction(sgwarden_core::Direction::Egress)
        .texts();
    assert_eq!(egress, vec!["egress all 0.0.0.0/0"]);
}

#[tokio::test]
async fn a_rule_inside_an_allow_entry_stays_and_the_rest_of_the_call_goes() {
    let w = World::new().await;
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([tcp(8443, "0.0.0.0/0"), tcp(22, "0.0.0.0/0")]),
            true,
        )
        .await;
    let policy =
        r#"{"allow": [{"protocol": "tcp", "ports": "8000-9000", "sources": ["0.0.0.0/0"]}]}"#;
    let report = w
        .function(&[("REVERT_POLICY", policy)])
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert_eq!(
        w.rules(&w.protected).await,
        vec![PRE_EXISTING, "ingress tcp/8443 0.0.0.0/0"]
    );
    assert_eq!(report.groups[0].kept.len(), 1);
    assert!(matches!(
        report.groups[0].kept[0].reason,
        Verdict::Allowed(_)
    ));
}

#[tokio::test]
async fn groups_outside_the_scope_are_left_alone() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.open).await;
    // Scope by tag: the group is read (its tags), and nothing is written.
    let tagged = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#;
    let report = w
        .function(&[("REVERT_POLICY", tagged)])
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert_eq!(
        report.skipped,
        Some(Skip::NotGuarded {
            group_id: w.open.clone()
        })
    );
    assert!(w.writes().is_empty(), "{:?}", w.writes());
    // Scope by id: decided without any call.
    w.emulator.clear_calls();
    let by_id = format!(r#"{{"scope": {{"group_ids": ["{}"]}}}}"#, w.protected);
    w.function(&[("REVERT_POLICY", &by_id)])
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert!(w.emulator.calls().is_empty());
    assert_eq!(
        w.rules(&w.open).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
}

#[tokio::test]
async fn a_failed_call_is_ignored_and_the_identical_rule_survives() {
    let w = World::new().await;
    // The rule exists; someone tries to add it again and EC2 refuses with Duplicate.
    let mut event = api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupId": w.protected, "ipPermissions": {"items": [tcp(443, "10.0.0.0/8")]}}),
        Value::Null,
    );
    event["detail"]["errorCode"] = json!("InvalidPermission.Duplicate");
    event["detail"]["errorMessage"] = json!("the specified rule already exists");
    let report = w.function(&[]).await.handle(&event, now()).await.unwrap();
    assert!(
        matches!(&report.skipped, Some(Skip::CallFailed { code }) if code.contains("InvalidPermission.Duplicate")),
        "{report:?}"
    );
    assert!(w.emulator.calls().is_empty());
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}

#[tokio::test]
async fn an_exempt_role_s_change_is_recorded_and_later_sweeps_keep_it() {
    let w = World::new().await;
    let function = w.guarded_function().await;
    let event = w.admin_opens(5432, "10.20.0.0/16", true).await;
    let report = function.handle(&event, now()).await.unwrap();
    assert!(
        matches!(&report.skipped, Some(Skip::Exempt { .. })),
        "{report:?}"
    );
    assert_eq!(report.exempted, vec!["ingress tcp/5432 10.20.0.0/16"]);
    // The record is written where only sgwarden and the security team can write; the rule
    // itself is not touched (no tag, no revoke).
    assert_eq!(w.writes(), vec!["PutItem"]);
    let records = w.exemption_records(&w.protected).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["rule"], "ingress tcp/5432 10.20.0.0/16");
    assert_eq!(records[0]["approved_by"], ADMIN_ROLE);
    assert_eq!(records[0]["reason"], event["detail"]["eventID"]);
    // Drift on the same group, with no event: the sweep removes it and keeps the admin's.
    world::hand_rule(&w.ec2, &w.protected, 3389, "0.0.0.0/0", "drift").await;
    w.emulator.clear_calls();
    let swept = function
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    // The exemption names one rule id: that group's rules are read with their ids.
    assert_eq!(w.emulator.calls_of("DescribeSecurityGroupRules").len(), 1);
    assert_eq!(
        w.rules(&w.protected).await,
        vec![PRE_EXISTING, "ingress tcp/5432 10.20.0.0/16"]
    );
    let group = &swept.groups[0];
    assert_eq!(group.revoked, vec!["ingress tcp/3389 0.0.0.0/0"]);
    assert!(group
        .kept
        .iter()
        .any(|k| k.reason == Verdict::Exempted(ADMIN_ROLE.to_string())));
}

#[tokio::test]
async fn an_exempt_change_without_rule_ids_is_recorded_too_and_survives_the_sweep() {
    let w = World::new().await;
    let function = w.guarded_function().await;
    let event = w.admin_opens(6379, "10.30.0.0/16", false).await;
    let report = function.handle(&event, now()).await.unwrap();
    assert_eq!(report.exempted, vec!["ingress tcp/6379 10.30.0.0/16"]);
    let records = w.exemption_records(&w.protected).await;
    // Found among the group's rules, so recorded with its id.
    assert!(records[0]["rule_id"].as_str().unwrap().starts_with("sgr-"));
    function
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    assert_eq!(
        w.rules(&w.protected).await,
        vec![PRE_EXISTING, "ingress tcp/6379 10.30.0.0/16"]
    );
}

#[tokio::test]
async fn ipv6_group_reference_and_prefix_list_rules_are_reverted_from_request_parameters_alone() {
    let w = World::new().await;
    let peer = world::group(&w.ec2, &w.vpc, "analytics", &[]).await;
    let prefix_list = w
        .ec2
        .create_managed_prefix_list()
        .prefix_list_name("partners")
        .address_family("IPv4")
        .max_entries(5)
        .send()
        .await
        .unwrap()
        .prefix_list()
        .unwrap()
        .prefix_list_id()
        .unwrap()
        .to_string();
    let permissions = json!([
        {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
         "groups": {"items": [{"groupId": peer, "userId": cloudtrail::ACCOUNT, "description": "analytics"}]},
         "ipRanges": {}, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]},
         "prefixListIds": {"items": [{"prefixListId": prefix_list}]}},
        {"ipProtocol": "-1", "groups": {}, "ipRanges": {},
         "ipv6Ranges": {"items": [{"cidrIpv6": "2001:db8::/32"}]}, "prefixListIds": {}}
    ]);
    let event = w
        .authorize(&w.protected, user("mallory"), permissions, false)
        .await;
    assert_eq!(w.rules(&w.protected).await.len(), 5);
    let report = w.function(&[]).await.handle(&event, now()).await.unwrap();
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(report.groups[0].revoked.len(), 4);
    assert_eq!(w.writes(), vec!["RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn a_modify_that_opens_a_port_is_reverted_and_one_inside_the_policy_stays() {
    let w = World::new().await;
    let policy = r#"{"allow": [{"protocol": "tcp", "sources": ["10.0.0.0/8"]}]}"#;
    let function = w.function(&[("REVERT_POLICY", policy)]).await;
    let rule_id = cloudtrail::rules(&w.ec2, &w.protected)
        .await
        .into_iter()
        .find(|r| r["isEgress"] == false)
        .unwrap()["securityGroupRuleId"]
        .as_str()
        .unwrap()
        .to_string();
    for (port_to, cidr, stays) in [(444, "10.0.0.0/8", true), (65535, "0.0.0.0/0", false)] {
        let event = w.modify_by_hand(&rule_id, (443, port_to), cidr).await;
        let report = function.handle(&event, now()).await.unwrap();
        let rules = w.rules(&w.protected).await;
        if stays {
            assert_eq!(rules, vec!["ingress tcp/443-444 10.0.0.0/8"]);
            assert!(report.groups[0].revoked.is_empty());
        } else {
            assert!(rules.is_empty(), "{rules:?}");
            assert_eq!(
                report.groups[0].revoked,
                vec!["ingress tcp/443-65535 0.0.0.0/0"]
            );
        }
    }
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_changes_nothing() {
    let w = World::new().await;
    let event = api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupId": w.protected, "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 99999, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}
        ]}}),
        json!({"_return": true}),
    );
    let err = w
        .function(&[])
        .await
        .handle(&event, now())
        .await
        .unwrap_err();
    assert!(matches!(err, RevertError::Event(_)), "{err}");
    assert_eq!(err.kind(), ErrorType::EventNotUnderstood);
    assert!(err.to_string().contains("toPort"), "{err}");
    let wrong = w
        .function(&[])
        .await
        .handle(&world::lifecycle_event(REGION, "asg", "i-1", true), now())
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), ErrorType::WrongTrigger);
    assert!(w.emulator.calls().is_empty());
}

#[tokio::test]
async fn an_approval_holds_until_it_expires_and_then_the_sweep_revokes_the_rule() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    let start = now();
    let expires = epoch(start) + 3600;
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "CHG-7",
        "tcp/22 203.0.113.0/24",
        expires,
    )
    .await;
    // An approval that cannot be read approves nothing.
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "typo",
        "tcp/22 everyone",
        expires,
    )
    .await;
    let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
                     "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}],
                     "directions": ["ingress"]}"#;
    let function = w
        .function(&[
            ("REVERT_POLICY", policy),
            ("REVERT_APPROVALS_TABLE", APPROVALS),
        ])
        .await;
    let event = w
        .authorize(
            &w.protected,
            user("contractor"),
            json!([tcp(22, "203.0.113.7/32"), tcp(22, "198.51.100.7/32")]),
            true,
        )
        .await;
    let report = function.handle(&event, start).await.unwrap();
    assert_eq!(
        report.groups[0].revoked,
        vec!["ingress tcp/22 198.51.100.7/32"]
    );
    assert_eq!(
        report.groups[0].kept[0].reason,
        Verdict::Approved("CHG-7".into())
    );
    let approved = vec!["ingress tcp/22 203.0.113.7/32", PRE_EXISTING];
    assert_eq!(w.rules(&w.protected).await, approved);
    // A sweep while the approval holds keeps it; a sweep after it expired revokes it.
    let sweep = world::scheduled_event(REGION);
    function.handle(&sweep, start).await.unwrap();
    assert_eq!(w.rules(&w.protected).await, approved);
    let later = start + Duration::from_secs(3600);
    let swept = function.handle(&sweep, later).await.unwrap();
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(
        swept.groups[0].revoked,
        vec!["ingress tcp/22 203.0.113.7/32"]
    );
}

#[tokio::test]
async fn the_sweep_removes_drift_in_scope_only_and_needs_a_scope() {
    let w = World::new().await;
    for group in [&w.protected, &w.open] {
        world::hand_rule(&w.ec2, group, 22, "0.0.0.0/0", "opened in the console").await;
    }
    let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
                     "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}],
                     "directions": ["ingress"]}"#;
    let report = w
        .function(&[("REVERT_POLICY", policy)])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    assert_eq!(report.groups.len(), 1);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(
        w.rules(&w.open).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
    // Egress is not guarded by this policy: the default egress rule is untouched.
    let egress = Ec2::new(&w.emulator.sdk_config(REGION).await)
        .read_group(&w.protected)
        .await
        .unwrap()
        .rules
        .direction(sgwarden_core::Direction::Egress);
    assert_eq!(egress.len(), 1);

    // With no scope, a sweep would judge every group of the account: it refuses.
    w.emulator.clear_calls();
    let unscoped = w
        .function(&[])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    assert_eq!(unscoped.skipped, Some(Skip::SweepNeedsScope));
    assert!(w.emulator.calls().is_empty());
    assert_eq!(
        w.rules(&w.open).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
}

#[tokio::test]
async fn the_sweep_reads_every_rule_in_one_call_and_revokes_once_per_offending_group() {
    let w = World::new().await;
    let (protected, others) = world::sweep_world(&w.ec2, &w.vpc, 12).await;
    w.emulator.clear_calls();
    let report = w
        .function(&[("REVERT_POLICY", world::SWEEP_POLICY)])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    let calls: Vec<String> = w
        .emulator
        .calls()
        .into_iter()
        .map(|c| c.operation)
        .collect();
    // The six fleet groups and the world's own protected group, whose https from 10.0.0.0/8
    // this policy does not allow either.
    assert_eq!(report.groups.len(), 7);
    assert!(w.rules(&w.protected).await.is_empty());
    for id in &protected {
        assert_eq!(w.rules(id).await, vec!["ingress tcp/5432 10.0.0.0/8"]);
    }
    for id in &others {
        assert_eq!(w.rules(id).await.len(), 3, "out of scope: untouched");
    }
    let count = |op: &str| calls.iter().filter(|c| *c == op).count();
    assert_eq!(count("DescribeSecurityGroups"), 1, "{calls:?}");
    assert_eq!(count("DescribeSecurityGroupRules"), 0, "{calls:?}");
    assert_eq!(count("RevokeSecurityGroupIngress"), 7, "{calls:?}");
    assert_eq!(calls.len(), 8, "{calls:?}");
}

#[tokio::test]
async fn a_throttled_sweep_slows_down_and_finishes() {
    let w = World::new().await;
    let (protected, _) = world::sweep_world(&w.ec2, &w.vpc, 40).await;
    // EC2's bucket, scaled down: 4 calls at once, then 10 a second.
    w.emulator.set_ec2_throttle(Some((4, 10)));
    w.emulator.clear_calls();
    let report = w
        .function(&[("REVERT_POLICY", world::SWEEP_POLICY)])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await;
    w.emulator.set_ec2_throttle(None);
    let report = report.unwrap();
    assert_eq!(
        report
            .groups
            .iter()
            .filter(|g| !g.revoked.is_empty())
            .count(),
        21
    );
    for id in &protected {
        assert_eq!(w.rules(id).await, vec!["ingress tcp/5432 10.0.0.0/8"]);
    }
    let revokes = w.emulator.calls_of("RevokeSecurityGroupIngress").len();
    assert!(
        revokes > 21,
        "some calls were throttled and retried: {revokes}"
    );
}

#[tokio::test]
async fn a_chat_message_that_cannot_be_published_does_not_undo_the_revert() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.protected).await;
    let report = w
        .function(&[(
            "CHAT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        )])
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert_eq!(report.groups[0].revoked, vec!["ingress tcp/22 0.0.0.0/0"]);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(w.emulator.calls_of("Publish").len(), 1, "it was tried");
}

#[tokio::test]
async fn a_clock_before_1970_is_refused_rather_than_read_as_the_epoch() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    // An approval that expired long ago would hold again at "0".
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "old",
        "tcp/22 0.0.0.0/0",
        1,
    )
    .await;
    let event = w.ssh_opened(&w.protected).await;
    let function = w.function(&[("REVERT_APPROVALS_TABLE", APPROVALS)]).await;
    let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
    let err = function.handle(&event, before_1970).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::ClockError, "{err}");
    assert!(w.emulator.calls().is_empty());
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.protected).await;
    let function = w.function(&[("REVERT_DRY_RUN", "true")]).await;
    let report = function.handle(&event, now()).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.groups[0].revoked, vec!["ingress tcp/22 0.0.0.0/0"]);
    assert!(w.writes().is_empty(), "{:?}", w.writes());
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
}

#[tokio::test]
async fn the_revert_record_reaches_the_topic_s_subscribers() {
    let w = World::new().await;
    let sns = aws_sdk_sns::Client::new(&w.emulator.sdk_config(REGION).await);
    let topic = world::topic(&sns, "sgwarden-reverts").await;
    let sink = HttpSink::start().await;
    world::subscribe_http(&sns, &topic, sink.url()).await;
    let event = w.ssh_opened(&w.protected).await;
    let report = w
        .function(&[("REVERT_NOTIFY_TOPIC_ARN", &topic)])
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert_eq!(report.records, 1);
    let delivered = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["Type"], "Notification");
    assert!(delivered[0]["Subject"]
        .as_str()
        .unwrap()
        .contains(&w.protected));
    let record: Value = serde_json::from_str(delivered[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(record["schema"], "sgwarden.revert/1");
    assert_eq!(record["group_id"], w.protected.as_str());
    assert_eq!(record["region"], REGION);
    assert_eq!(record["event_id"], event["detail"]["eventID"]);
    assert_eq!(
        record["actor"]["arn"],
        "arn:aws:iam::123456789012:user/mallory"
    );
    assert_eq!(record["rules"][0]["rule"], "ingress tcp/22 0.0.0.0/0");
    assert!(record["rules"][0]["rule_id"]
        .as_str()
        .unwrap()
        .starts_with("sgr-"));
}

#[tokio::test]
async fn an_outage_fails_the_invocation_for_a_retry_and_the_retry_finishes_the_job() {
    let w = World::new().await;
    // The record goes to a topic in another region, so each part can fail on its own.
    let sns = aws_sdk_sns::Client::new(&w.emulator.sdk_config(OTHER_REGION).await);
    let topic = world::topic(&sns, "reverts").await;
    let function = w.function(&[("REVERT_NOTIFY_TOPIC_ARN", &topic)]).await;
    let event = w.ssh_opened(&w.protected).await;
    let opened = vec!["ingress tcp/22 0.0.0.0/0", PRE_EXISTING];

    // EC2 down: a transient error Lambda retries; nothing changed, nothing recorded.
    w.emulator.set_outage(REGION, Outage::Error);
    let err = function.handle(&event, now()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::AwsUnavailable, "{err}");
    w.emulator.set_outage(REGION, Outage::None);
    assert_eq!(w.rules(&w.protected).await, opened);
    assert!(w.emulator.calls_of("Publish").is_empty());

    // EC2 back, SNS down: the rule is revoked and the invocation still fails, so the retry
    // publishes the record that would otherwise be lost.
    w.emulator.set_outage(OTHER_REGION, Outage::Error);
    let err = function.handle(&event, now()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::RecordNotPublished, "{err}");
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    w.emulator.set_outage(OTHER_REGION, Outage::None);
    w.emulator.clear_calls();
    let report = function.handle(&event, now()).await.unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.groups[0].revoked, vec!["ingress tcp/22 0.0.0.0/0"]);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let published = w.emulator.calls_of("Publish");
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].region, OTHER_REGION);
}

#[tokio::test]
async fn the_recorded_real_event_is_handled() {
    let w = World::new().await;
    let text =
        sgwarden_tests::real_event("cloudtrail-authorize-ingress-group-reference.json").to_string();
    // As recorded: it is another account's call, and this deployment has no member role,
    // so it is skipped without a call.
    let by_id = format!(r#"{{"scope": {{"group_ids": ["{}"]}}}}"#, w.protected);
    let function = w.function(&[("REVERT_POLICY", &by_id)]).await;
    let report = function
        .handle(&serde_json::from_str(&text).unwrap(), now())
        .await
        .unwrap();
    assert!(
        matches!(&report.skipped, Some(Skip::OutOfReach(r)) if r.account == "770203350335"),
        "{report:?}"
    );
    assert!(w.emulator.calls().is_empty());
    // In this account, its group is not in this world's scope: skipped, still without a call.
    let text = text.replace("770203350335", cloudtrail::ACCOUNT);
    let report = function
        .handle(&serde_json::from_str(&text).unwrap(), now())
        .await
        .unwrap();
    assert_eq!(
        report.skipped,
        Some(Skip::OutsideScope {
            group_id: "sg-01f414f5313452cd1".into()
        })
    );
    assert!(w.emulator.calls().is_empty());
    // The same event with this world's ids: the same rule, made for real, is revoked by id.
    let app = world::group(&w.ec2, &w.vpc, "app", &[]).await;
    let created = cloudtrail::authorize(
        &w.ec2,
        &w.protected,
        false,
        &json!([{"ipProtocol": "tcp", "fromPort": 1521, "toPort": 1521,
                 "groups": {"items": [{"groupId": app, "description": "from the app stack"}]}}]),
    )
    .await;
    let text = text
        .replace("sg-01f414f5313452cd1", &w.protected)
        .replace("sg-000537769a1c2d858", &app)
        .replace(
            "sgr-02e2ca7d55820dc26",
            created[0]["securityGroupRuleId"].as_str().unwrap(),
        );
    w.emulator.clear_calls();
    let report = function
        .handle(&serde_json::from_str(&text).unwrap(), now())
        .await
        .unwrap();
    assert_eq!(
        report.groups[0].revoked,
        vec![format!("ingress tcp/1521 {app}")]
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(w.writes(), vec!["RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn a_call_naming_the_group_by_name_is_resolved_in_the_default_vpc() {
    let w = World::new().await;
    let group_id = w
        .ec2
        .create_security_group()
        .group_name("legacy-web")
        .description("default VPC group")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let created =
        cloudtrail::authorize(&w.ec2, &group_id, false, &json!([tcp(22, "0.0.0.0/0")])).await;
    let event = api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupName": "legacy-web", "ipPermissions": {"items": [tcp(22, "0.0.0.0/0")]}}),
        json!({"_return": true, "securityGroupRuleSet": {"items": created}}),
    );
    w.function(&[]).await.handle(&event, now()).await.unwrap();
    assert!(w.rules(&group_id).await.is_empty());
}

#[tokio::test]
async fn the_revert_happens_in_the_event_s_region() {
    let w = World::new().await;
    let remote = Client::new(&w.emulator.sdk_config(OTHER_REGION).await);
    let vpc = world::vpc(&remote, "10.8.0.0/16").await;
    let group_id = world::group(&remote, &vpc, "eu-db", &[]).await;
    let created =
        cloudtrail::authorize(&remote, &group_id, false, &json!([tcp(22, "0.0.0.0/0")])).await;
    let event = api_call(
        OTHER_REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupId": group_id, "ipPermissions": {"items": [tcp(22, "0.0.0.0/0")]}}),
        json!({"_return": true, "securityGroupRuleSet": {"items": created}}),
    );
    w.emulator.clear_calls();
    w.function(&[]).await.handle(&event, now()).await.unwrap();
    assert!(rules_in(&w.emulator, OTHER_REGION, &group_id)
        .await
        .is_empty());
    let revoke = w.emulator.calls_of("RevokeSecurityGroupIngress");
    assert_eq!(revoke.len(), 1);
    assert_eq!(revoke[0].region, OTHER_REGION);
}

#[tokio::test]
async fn calls_made_by_the_function_s_own_role_are_ignored() {
    let w = World::new().await;
    let event = w
        .authorize(
            &w.protected,
            session("service-role/", "sgwarden-revert", "revert-ingress"),
            json!([tcp(22, "0.0.0.0/0")]),
            true,
        )
        .await;
    // Lambda runs as a session of its role; the role in CloudTrail carries its path.
    let me = CallerIdentity::new(
        "arn:aws:sts::123456789012:assumed-role/sgwarden-revert/revert-ingress",
    );
    let report = w
        .function_as(&[], OwnRole::Known(me))
        .await
        .handle(&event, now())
        .await
        .unwrap();
    assert_eq!(report.skipped, Some(Skip::OwnCall));
    assert!(w.emulator.calls().is_empty());
    assert_eq!(w.rules(&w.protected).await.len(), 2);
}

#[tokio::test]
async fn the_binary_makes_no_aws_call_before_its_first_event() {
    let w = World::new().await;
    let mut failed = w.ssh_opened(&w.protected).await;
    failed["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
    let own = w
        .authorize(
            &w.protected,
            session("service-role/", "sgwarden-revert", "revert-ingress"),
            json!([tcp(3389, "0.0.0.0/0")]),
            true,
        )
        .await;
    let mallory = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([tcp(8080, "0.0.0.0/0")]),
            true,
        )
        .await;

    // The template's way: the role comes from the environment, STS is never asked.
    let runtime = RuntimeApi::start().await;
    let mut env = w.emulator.function_env(REGION);
    env.push((
        "SGWARDEN_FUNCTION_ROLE_ARN",
        "arn:aws:iam::123456789012:role/service-role/sgwarden-revert".to_string(),
    ));
    let function = runtime.spawn("revert-ingress", &env);
    runtime.invoke(failed.clone());
    runtime.outcomes(1, Duration::from_secs(30)).await;
    assert!(w.emulator.calls().is_empty(), "nothing at cold start");
    runtime.invoke(own.clone());
    let outcomes = runtime.outcomes(2, Duration::from_secs(30)).await;
    drop(function);
    assert!(response(&outcomes[1])["skipped"]
        .as_str()
        .unwrap()
        .contains("own role"));
    assert!(w.emulator.calls().is_empty(), "{:?}", w.emulator.calls());

    // Without it, STS is asked once, at the first event that needs the answer.
    let runtime = RuntimeApi::start().await;
    let function = runtime.spawn("revert-ingress", &w.emulator.function_env(REGION));
    runtime.invoke(failed);
    runtime.outcomes(1, Duration::from_secs(30)).await;
    assert!(w.emulator.calls().is_empty(), "nothing at cold start");
    runtime.invoke(mallory);
    runtime.invoke(own);
    let outcomes = runtime.outcomes(3, Duration::from_secs(30)).await;
    drop(function);
    assert_eq!(
        response(&outcomes[1])["groups"][0]["revoked"][0],
        "ingress tcp/8080 0.0.0.0/0"
    );
    assert_eq!(w.emulator.calls_of("GetCallerIdentity").len(), 1);
}

/// The metrics of a failed invocation: every metric, as zero, and `Errors` 1.
const FAILED_COUNTS: [(&str, u64); 5] = [
    ("RulesRevoked", 0),
    ("RulesKept", 0),
    ("EventsSkipped", 0),
    ("AccountsUnswept", 0),
    ("Errors", 1),
];

/// The JSON log lines of `logs` (the metrics documents have no `level`).
fn log_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"].is_string())
        .collect()
}

#[tokio::test]
async fn the_binary_logs_at_the_level_lambda_sets_and_keeps_every_audit_line() {
    let w = World::new().await;
    let bad =
        json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {}});
    // Lambda's advanced logging controls at ERROR: the revert's audit line stays, and the
    // failure's error; nothing else below ERROR is written (a failed call's skip is info).
    let runtime = RuntimeApi::start().await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("AWS_LAMBDA_LOG_LEVEL", "ERROR".to_string()));
    let function = runtime.spawn("revert-ingress", &env);
    let mut failed = w.ssh_opened(&w.open).await;
    failed["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
    runtime.invoke(w.ssh_opened(&w.protected).await);
    runtime.invoke(bad);
    runtime.invoke(failed.clone());
    runtime.outcomes(3, Duration::from_secs(60)).await;
    let lines = log_lines(&function.stop());
    let audit = |l: &&Value| l["target"] == "sgwarden::audit";
    assert_eq!(lines.iter().filter(audit).count(), 1, "{lines:?}");
    assert!(lines.iter().any(|l| l["level"] == "ERROR"), "{lines:?}");
    assert!(
        lines.iter().all(|l| audit(&l) || l["level"] == "ERROR"),
        "{lines:?}"
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);

    // RUST_LOG comes first; one it cannot read is named once, and info is logged.
    let runtime = RuntimeApi::start().await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("AWS_LAMBDA_LOG_LEVEL", "ERROR".to_string()));
    env.push(("RUST_LOG", "revert_ingress=loud".to_string()));
    let function = runtime.spawn("revert-ingress", &env);
    runtime.invoke(failed);
    runtime.outcomes(1, Duration::from_secs(60)).await;
    let lines = log_lines(&function.stop());
    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "log level not understood; logging info and up")
        .collect();
    assert_eq!(refused.len(), 1, "{lines:?}");
    assert_eq!(refused[0]["level"], "WARN");
    assert!(
        refused[0]["fields"]["setting"]
            .as_str()
            .unwrap()
            .contains("revert_ingress=loud"),
        "{refused:?}"
    );
    // The failed call's skip is logged at info, as with no level set.
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "skipped"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn the_lambda_binary_serves_events_through_the_runtime_api() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.protected).await;
    let runtime = RuntimeApi::start().await;
    let chat = world::ChatTopic::new(&w.emulator.sdk_config(REGION).await, "team-chat").await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("CHAT_TOPIC_ARN", chat.arn.clone()));
    let function = runtime.spawn("revert-ingress", &env);
    let ok = runtime.invoke(event);
    let bad = runtime.invoke(
        json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {}}),
    );
    let outcomes = runtime.outcomes(2, Duration::from_secs(60)).await;
    let logs = function.stop();
    match &outcomes[0] {
        Outcome::Response { request_id, body } => {
            assert_eq!(request_id, &ok);
            assert_eq!(body["groups"][0]["revoked"][0], "ingress tcp/22 0.0.0.0/0");
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
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "sgwarden::audit")
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    assert_eq!(audit[0]["fields"]["function"], "revert-ingress");
    assert_eq!(audit[0]["fields"]["removed"], "ingress tcp/22 0.0.0.0/0");
    // One metrics document per invocation: the revert's counts, then the failure's.
    let metrics = runtime::metrics_in(&logs);
    assert_eq!(metrics.len(), 2, "{logs}");
    let revert_counts = [
        ("RulesRevoked", 1),
        ("RulesKept", 0),
        ("EventsSkipped", 0),
        ("Errors", 0),
    ];
    runtime::assert_metrics(&metrics[0], "revert-ingress", &revert_counts);
    // A failure writes every metric, as zero.
    runtime::assert_metrics(&metrics[1], "revert-ingress", &FAILED_COUNTS);
    // One chat message, for the revert, threaded by the group.
    let messages = chat.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    world::assert_chat_schema(&messages[0], &w.protected);
    let title = messages[0]["content"]["title"].as_str().unwrap();
    assert!(title.contains("reverted 1 rule(s)"), "{title}");
    let description = messages[0]["content"]["description"].as_str().unwrap();
    assert!(
        description.contains("ingress tcp/22 0.0.0.0/0"),
        "{description}"
    );
    assert!(description.contains("mallory"), "{description}");
    assert!(messages[0]["content"]["nextSteps"][0]
        .as_str()
        .unwrap()
        .contains("sgwarden approve"));

    // A policy with a typo fails every invocation, naming the variable; nothing is judged.
    let runtime = RuntimeApi::start().await;
    let mut broken = env.clone();
    broken.push(("REVERT_POLICY", r#"{"scope": {"tags": {}}}"#.to_string()));
    let function = runtime.spawn("revert-ingress", &broken);
    runtime.invoke(world::scheduled_event(REGION));
    let outcomes = runtime.outcomes(1, Duration::from_secs(30)).await;
    let logs = function.stop();
    // The refused invocation is counted like any failed one: every metric, Errors 1.
    let metrics = runtime::metrics_in(&logs);
    assert_eq!(metrics.len(), 1, "{logs}");
    runtime::assert_metrics(&metrics[0], "revert-ingress", &FAILED_COUNTS);
    outcomes
        .first()
        .expect("an outcome")
        .expect_error("ConfigurationError", "REVERT_POLICY");
}

#[tokio::test]
async fn an_event_for_a_group_deleted_with_its_stack_is_answered_not_retried() {
    let w = World::new().await;
    let doomed = world::group(&w.ec2, &w.vpc, "stack-web", &[("Protected", "true")]).await;
    let by_id = w.ssh_opened(&doomed).await;
    let by_shape = w
        .authorize(
            &doomed,
            user("mallory"),
            json!([tcp(80, "0.0.0.0/0")]),
            false,
        )
        .await;
    w.ec2
        .delete_security_group()
        .group_id(&doomed)
        .send()
        .await
        .unwrap();
    // A scope by tag reads the group first; the default policy goes straight to its rules.
    let tagged = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#;
    w.emulator.clear_calls();
    for vars in [vec![], vec![("REVERT_POLICY", tagged.to_string())]] {
        let outcomes = w.serve(&vars, vec![by_id.clone(), by_shape.clone()]).await;
        for outcome in &outcomes {
            let skipped = response(outcome)["skipped"].as_str().unwrap_or_default();
            assert!(skipped.starts_with("nothing to revert"), "{outcome:?}");
            assert!(skipped.contains(&doomed), "{outcome:?}");
        }
    }
    // Nothing was changed anywhere: the only write tried was a revoke the group's absence
    // refused.
    assert!(
        w.writes()
            .iter()
            .all(|op| op == "RevokeSecurityGroupIngress"),
        "{:?}",
        w.writes()
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}
