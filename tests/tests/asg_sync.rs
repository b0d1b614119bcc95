//! asg-sync end to end: a cluster in two regions, against the emulator, through the real
//! handler and (last test) the real binary through the Lambda Runtime API. Every assertion
//! reads AWS back.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use asg_sync::{Lifecycle, SyncError};
use serde_json::{json, Value};
use sgwarden_aws::autoscaling::LifecycleResult;
use sgwarden_aws::Ec2;
use sgwarden_core::ErrorType;
use sgwarden_tests::cluster_world::*;
use sgwarden_tests::runtime::{self, Outcome, RuntimeApi};
use sgwarden_tests::{world, Outage};

/// A lifecycle action completed with `CONTINUE`.
const CONTINUED: Lifecycle = Lifecycle::Completed(LifecycleResult::Continue);

#[tokio::test]
async fn launches_in_each_region_bring_both_groups_in_step() {
    let c = Cluster::new(2).await;
    let local = c.site(LOCAL).instances.clone();
    let peer = c.site(PEER).instances.clone();
    c.launch(LOCAL, &local[0]).await.unwrap();
    c.emulator.clear_calls();
    let report = c.launch(PEER, &peer[0]).await.unwrap();
    assert_eq!(report.lifecycle, Some(CONTINUED));

    // The API calls of one launch, per the performance target.
    let count = |op: &str| c.emulator.calls_of(op).len();
    assert_eq!(count("DescribeAutoScalingGroups"), 1);
    assert_eq!(count("DescribeInstances"), 1);
    assert_eq!(count("PutItem"), 2, "one registry write per region");
    assert_eq!(
        count("Query"),
        3,
        "one registry read to plan, one to verify, one of the peer table's records"
    );
    assert_eq!(
        count("DescribeSecurityGroupRules"),
        2,
        "one read per group, rules with their ids"
    );
    assert_eq!(count("DescribeSecurityGroups"), 0);
    assert_eq!(
        count("UpdateItem"),
        2,
        "the created rules' ids recorded, one update per group"
    );
    assert!(
        count("AuthorizeSecurityGroupIngress") <= 2,
        "at most one per group"
    );
    assert_eq!(count("RevokeSecurityGroupIngress"), 0);
    let completions = c.emulator.calls_of("CompleteLifecycleAction");
    assert_eq!(completions.len(), 1);
    assert_eq!(completions[0].params["LifecycleActionResult"], "CONTINUE");
    assert_eq!(completions[0].params["InstanceId"], peer[0].as_str());
    assert_eq!(completions[0].region, PEER);

    let expected = c
        .expected(&[(LOCAL, local.clone()), (PEER, peer.clone())])
        .await;
    assert_eq!(expected.len(), 8);
    assert_eq!(c.owned_rules(LOCAL).await, expected);
    assert_eq!(c.owned_rules(PEER).await, expected);
}

#[tokio::test]
async fn a_termination_removes_the_instance_everywhere_and_keeps_hand_made_rules() {
    let c = Cluster::new(2).await;
    let local = c.site(LOCAL).instances.clone();
    world::hand_rule(
        &c.site(LOCAL).ec2,
        &c.site(LOCAL).group_id,
        22,
        "192.0.2.0/24",
        "ops ssh",
    )
    .await;
    c.launch(LOCAL, &local[0]).await.unwrap();
    c.launch(PEER, &c.site(PEER).instances[0].clone())
        .await
        .unwrap();

    let site = c.site(LOCAL);
    let event = world::lifecycle_event(LOCAL, &site.asg, &local[1], false);
    let report = c.handle(LOCAL, &[], &event).await.unwrap();
    assert_eq!(report.lifecycle, Some(CONTINUED));

    let expected = c
        .expected(&[
            (LOCAL, vec![local[0].clone()]),
            (PEER, c.site(PEER).instances.clone()),
        ])
        .await;
    assert_eq!(c.owned_rules(LOCAL).await, expected);
    assert_eq!(c.owned_rules(PEER).await, expected);
    let gone = world::public_addresses(&site.ec2, &[local[1].clone()]).await;
    assert!(c
        .owned_rules(PEER)
        .await
        .iter()
        .all(|r| !r.contains(&gone[0])));

    let ec2 = Ec2::new(&c.emulator.sdk_config(LOCAL).await);
    let rules = ec2.read_group(&site.group_id).await.unwrap().rules;
    assert!(
        rules
            .iter()
            .any(|(r, i)| r.to_string() == "ingress tcp/22 192.0.2.0/24"
                && i.description.as_deref() == Some("ops ssh")),
        "the hand-made rule survives"
    );
}

#[tokio::test]
async fn a_peer_region_down_does_not_hold_local_scaling() {
    let c = Cluster::new(1).await;
    let local = c.site(LOCAL).instances.clone();
    c.emulator.set_outage(PEER, Outage::Hang);
    let report = c.launch(LOCAL, &local[0]).await.unwrap();
    assert_eq!(report.unreachable, vec![PEER.to_string()]);
    assert_eq!(report.lifecycle, Some(CONTINUED), "local scaling goes on");
    let completions = c.emulator.calls_of("CompleteLifecycleAction");
    assert_eq!(completions.len(), 1);
    assert!(
        !c.emulator
            .calls_of("RecordLifecycleActionHeartbeat")
            .is_empty(),
        "heartbeats kept the hook alive while the peer timed out"
    );
    assert_eq!(
        c.owned_rules(LOCAL).await,
        c.expected(&[(LOCAL, local.clone())]).await
    );

    // The region comes back; the next scheduled true-up heals its group.
    c.emulator.set_outage(PEER, Outage::None);
    assert!(c.owned_rules(PEER).await.is_empty());
    let schedule = world::scheduled_event(LOCAL);
    c.handle(LOCAL, &[], &schedule).await.unwrap();
    assert_eq!(
        c.owned_rules(PEER).await,
        c.expected(&[(LOCAL, local)]).await
    );
}

#[tokio::test]
async fn two_peer_regions_down_are_each_asked_once_and_the_lifecycle_completes() {
    let c = Cluster::with_sites(&[(LOCAL, 1), (PEER, 0), (THIRD, 0)]).await;
    let local = c.site(LOCAL).instances.clone();
    c.emulator.set_outage(PEER, Outage::Hang);
    c.emulator.set_outage(THIRD, Outage::Hang);
    let report = c.launch(LOCAL, &local[0]).await.unwrap();
    let mut down = vec![PEER.to_string(), THIRD.to_string()];
    down.sort();
    assert_eq!(report.unreachable, down);
    assert_eq!(report.lifecycle, Some(CONTINUED), "local scaling goes on");
    assert_eq!(c.emulator.calls_of("CompleteLifecycleAction").len(), 1);
    // Each region that does not answer is asked for the registry write alone (the SDK's
    // attempts at it), and then left out of the invocation: no read, no rule change.
    for region in [PEER, THIRD] {
        let asked: BTreeSet<String> = c
            .emulator
            .calls()
            .into_iter()
            .filter(|call| call.region == region)
            .map(|call| call.operation)
            .collect();
        assert_eq!(asked, BTreeSet::from(["PutItem".to_string()]), "{region}");
    }
    assert_eq!(
        c.owned_rules(LOCAL).await,
        c.expected(&[(LOCAL, local)]).await
    );
}

#[tokio::test]
async fn instance_events_of_groups_without_hooks_sync_without_completing() {
    let c = Cluster::new(2).await;
    let site = c.site(LOCAL);
    let mut event: Value =
        serde_json::from_str(include_str!("../../events/asg-terminate-successful.json")).unwrap();
    event["region"] = json!(LOCAL);
    event["detail"]["AutoScalingGroupName"] = json!(site.asg);
    event["detail"]["EC2InstanceId"] = json!(site.instances[1]);
    let report = c.handle(LOCAL, &[], &event).await.unwrap();
    assert_eq!(report.trigger, "instance-change");
    assert_eq!(report.lifecycle, None);
    assert!(c.emulator.calls_of("CompleteLifecycleAction").is_empty());
    let expected = c
        .expected(&[(LOCAL, vec![site.instances[0].clone()])])
        .await;
    assert_eq!(
        c.owned_rules(LOCAL).await,
        expected,
        "the terminated instance is left out"
    );
    assert_eq!(c.owned_rules(PEER).await, expected);
}

#[tokio::test]
async fn an_empty_registry_strips_nothing() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    let rule = format!("sgwarden:{CLUSTER} {LOCAL}/{}", site.asg);
    world::hand_rule(&site.ec2, &site.group_id, 9042, "198.51.100.7/32", &rule).await;
    c.emulator.clear_calls();
    let schedule = world::scheduled_event(LOCAL);
    let report = c.handle(LOCAL, &[], &schedule).await.unwrap();
    assert!(report.groups.is_empty());
    assert_eq!(
        c.owned_rules(LOCAL).await,
        BTreeSet::from(["tcp/9042 198.51.100.7/32".to_string()])
    );
    assert!(c.writes().is_empty(), "{:?}", c.writes());
}

#[tokio::test]
async fn a_true_up_repairs_drift_and_removes_stale_owned_rules() {
    let c = Cluster::new(2).await;
    let local = c.site(LOCAL).instances.clone();
    let site = c.site(LOCAL);
    c.launch(LOCAL, &local[0]).await.unwrap();
    // Drift: a stale rule that asg-sync recorded creating is still there (its member's
    // address changed while an event was lost), a desired one is removed by hand.
    world::hand_rule(
        &site.ec2,
        &site.group_id,
        9042,
        "198.18.0.1/32",
        &format!("sgwarden:{CLUSTER} {LOCAL}/old"),
    )
    .await;
    record_as_asg_sync(&c, LOCAL, "198.18.0.1/32").await;
    let address = world::public_addresses(&site.ec2, &[local[0].clone()])
        .await
        .remove(0);
    site.ec2
        .revoke_security_group_ingress()
        .group_id(&site.group_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(9042)
                .to_port(9042)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip(format!("{address}/32"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    c.emulator.clear_calls();
    let true_up = json!({"detail": {"AutoScalingGroupName": site.asg}, "trueup": true});
    let report = c.handle(LOCAL, &[], &true_up).await.unwrap();
    assert_eq!(
        report.lifecycle, None,
        "a true-up completes no lifecycle action"
    );
    assert_eq!(
        c.owned_rules(LOCAL).await,
        c.expected(&[(LOCAL, local)]).await
    );
    assert!(c.emulator.calls_of("CompleteLifecycleAction").is_empty());
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_changes_nothing() {
    let c = Cluster::new(1).await;
    let mut event =
        world::lifecycle_event(LOCAL, &c.site(LOCAL).asg, &c.site(LOCAL).instances[0], true);
    event["detail"]
        .as_object_mut()
        .unwrap()
        .remove("LifecycleActionToken");
    let err = c.handle(LOCAL, &[], &event).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Event(ref e) if e.field == "detail.LifecycleActionToken"),
        "{err}"
    );
    let cloudtrail: Value = serde_json::from_str(include_str!(
        "../../events/cloudtrail-authorize-ingress.json"
    ))
    .unwrap();
    let err = c.handle(LOCAL, &[], &cloudtrail).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::WrongTrigger);
    assert!(c.emulator.calls().is_empty(), "no AWS call at all");
}

#[tokio::test]
async fn dry_run_plans_and_changes_nothing() {
    let c = Cluster::new(2).await;
    let site = c.site(LOCAL);
    let event = world::lifecycle_event(LOCAL, &site.asg, &site.instances[0], true);
    let report = c
        .handle(LOCAL, &[("SYNC_DRY_RUN", "true")], &event)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.groups.len(), 2, "both groups have a plan");
    assert!(report.groups.iter().all(|g| g.added.len() == 4));
    assert!(c.writes().is_empty(), "no write: {:?}", c.writes());
    assert!(c.owned_rules(LOCAL).await.is_empty());
}

#[tokio::test]
async fn five_concurrent_launches_converge() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    let instances = world::scale(&site.autoscaling, &site.asg, 5).await;
    assert_eq!(instances.len(), 5);
    let function = c.function(LOCAL, &[]).await;
    let events: Vec<Value> = instances
        .iter()
        .map(|i| world::lifecycle_event(LOCAL, &site.asg, i, true))
        .collect();
    let results = futures_join(events.iter().map(|e| function.handle(e, SystemTime::now()))).await;
    for result in results {
        let report = result.unwrap();
        assert_eq!(report.lifecycle, Some(CONTINUED));
    }
    let expected = c.expected(&[(LOCAL, instances)]).await;
    assert_eq!(c.owned_rules(LOCAL).await, expected);
    assert_eq!(c.owned_rules(PEER).await, expected);
    assert_eq!(
        c.emulator.calls_of("CompleteLifecycleAction").len(),
        5,
        "each action once"
    );
}

/// Runs futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}

#[tokio::test]
async fn a_plan_over_the_quota_is_refused_with_nothing_changed() {
    let c = Cluster::new(2).await;
    let site = c.site(LOCAL);
    let event = world::lifecycle_event(LOCAL, &site.asg, &site.instances[0], true);
    let quota = [("SYNC_RULE_QUOTA", "3"), ("SYNC_ON_FAILURE", "abandon")];
    let err = c.handle(LOCAL, &quota, &event).await.unwrap_err();
    assert_eq!(err.kind(), ErrorType::QuotaExceeded, "{err}");
    assert!(err.to_string().contains(&site.group_id), "{err}");
    assert!(c.owned_rules(LOCAL).await.is_empty());
    assert!(c.owned_rules(PEER).await.is_empty());
    let completions = c.emulator.calls_of("CompleteLifecycleAction");
    assert_eq!(completions.len(), 1, "the action is still completed, once");
    assert_eq!(completions[0].params["LifecycleActionResult"], "ABANDON");
    assert!(c
        .emulator
        .calls()
        .iter()
        .all(|call| !call.operation.starts_with("Authorize")));
}

/// The rules a sync's response says it added, over every group.
fn outcomes_added(outcome: &Outcome) -> u64 {
    match outcome {
        Outcome::Response { body, .. } => body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["added"].as_array().unwrap().len() as u64)
            .sum(),
        other => panic!("expected a response: {other:?}"),
    }
}

#[tokio::test]
async fn the_lambda_binary_serves_events_through_the_runtime_api() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    let runtime = RuntimeApi::start().await;
    let mut env: Vec<(&str, String)> = c
        .vars(LOCAL, &[])
        .into_iter()
        .map(|(k, v)| (leak(k), v))
        .collect();
    env.extend(c.emulator.function_env(LOCAL));
    let chat = world::ChatTopic::new(&c.emulator.sdk_config(LOCAL).await, "ops-chat").await;
    let mut with_chat = env.clone();
    with_chat.push(("CHAT_TOPIC_ARN", chat.arn.clone()));
    let function = runtime.spawn("asg-sync", &with_chat);
    let ok = runtime.invoke(world::lifecycle_event(
        LOCAL,
        &site.asg,
        &site.instances[0],
        true,
    ));
    let bad = runtime.invoke(json!({"detail-type": "EC2 Instance-launch Lifecycle Action", "source": "aws.autoscaling", "detail": {}}));
    let outcomes = runtime.outcomes(2, Duration::from_secs(60)).await;
    let logs = function.stop();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    match &outcomes[0] {
        Outcome::Response { request_id, body } => {
            assert_eq!(request_id, &ok);
            assert_eq!(body["lifecycle"], "CONTINUE");
            assert_eq!(body["groups"].as_array().unwrap().len(), 2);
        }
        other => panic!("expected a response: {other:?}"),
    }
    outcomes[1].expect_error("EventNotUnderstood", "detail.LifecycleActionToken");
    assert!(matches!(&outcomes[1], Outcome::Error { request_id, .. } if request_id == &bad));
    assert_eq!(
        c.owned_rules(LOCAL).await,
        c.expected(&[(LOCAL, site.instances.clone())]).await
    );
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["target"] == "sgwarden::audit" && l["fields"]["message"] == "security group changed"
        })
        .collect();
    assert_eq!(audit.len(), 2, "one audit line per group changed: {logs}");
    let added = outcomes_added(&outcomes[0]);
    let metrics = runtime::metrics_in(&logs);
    assert_eq!(metrics.len(), 2, "{logs}");
    let sync_counts = [
        ("RulesAdded", added),
        ("RulesRemoved", 0),
        ("PeerUnreachable", 0),
        ("Errors", 0),
    ];
    runtime::assert_metrics(&metrics[0], "asg-sync", &sync_counts);
    // A failure writes every metric, as zero.
    runtime::assert_metrics(
        &metrics[1],
        "asg-sync",
        &[
            ("RulesAdded", 0),
            ("RulesRemoved", 0),
            ("PeerUnreachable", 0),
            ("Errors", 1),
        ],
    );
    // The complete sync says nothing in chat; the failed one does, threaded by cluster.
    let messages = chat.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    world::assert_chat_schema(&messages[0], CLUSTER);
    assert!(messages[0]["content"]["title"]
        .as_str()
        .unwrap()
        .contains("EventNotUnderstood"));

    // A bad setting stops the function at start, naming the variable.
    let runtime = RuntimeApi::start().await;
    let mut broken = env.clone();
    broken.retain(|(k, _)| *k != "SYNC_TABLE");
    let function = runtime.spawn("asg-sync", &broken);
    runtime.invoke(world::lifecycle_event(
        LOCAL,
        &site.asg,
        &site.instances[0],
        true,
    ));
    let outcomes = runtime.outcomes(1, Duration::from_secs(30)).await;
    drop(function);
    outcomes
        .first()
        .expect("an outcome")
        .expect_error("ConfigurationError", "SYNC_TABLE");
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Records the rules of `region`'s group from `cidr` as asg-sync records the rules it
/// creates (their ids, in the registry of the group's region): a rule an earlier sync made.
async fn record_as_asg_sync(c: &Cluster, region: &str, cidr: &str) {
    let config = c.emulator.sdk_config(region).await;
    let group_id = &c.site(region).group_id;
    let ids = Ec2::new(&config)
        .rules_of_groups(std::slice::from_ref(group_id))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.rule.peer.to_string() == cidr)
        .filter_map(|r| r.info.rule_id)
        .collect::<BTreeSet<_>>();
    assert!(!ids.is_empty(), "no rule from {cidr} in {group_id}");
    let change = sgwarden_core::sync::RecordChange {
        add: ids,
        remove: BTreeSet::new(),
    };
    sgwarden_aws::registry::Registry::new(&config, TABLE)
        .record(CLUSTER, group_id, &change)
        .await
        .unwrap();
}

/// The members the registry of `region` holds, by key.
async fn registry_members(c: &Cluster, region: &str) -> Vec<String> {
    sgwarden_aws::registry::Registry::new(&c.emulator.sdk_config(region).await, TABLE)
        .members(CLUSTER)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.member)
        .collect()
}

/// The real binary as deployed in `region`, serving `events` in order.
async fn serve(c: &Cluster, region: &str, events: Vec<Value>) -> Vec<Outcome> {
    let mut env: Vec<(&str, String)> = c
        .vars(region, &[])
        .into_iter()
        .map(|(k, v)| (leak(k), v))
        .collect();
    env.extend(c.emulator.function_env(region));
    runtime::serve_events("asg-sync", &env, events).await
}

#[tokio::test]
async fn triggers_naming_a_group_outside_the_cluster_are_refused_with_nothing_changed() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    let intruders =
        world::auto_scaling_group(&site.ec2, &site.autoscaling, LOCAL, "intruder", 1).await;
    c.launch(LOCAL, &site.instances[0]).await.unwrap();
    let expected = c.expected(&[(LOCAL, site.instances.clone())]).await;
    c.emulator.clear_calls();
    let outcomes = serve(
        &c,
        LOCAL,
        vec![
            json!({"detail": {"AutoScalingGroupName": "intruder"}, "trueup": true}),
            world::lifecycle_event(LOCAL, "intruder", &intruders[0], true),
        ],
    )
    .await;
    for outcome in &outcomes {
        match outcome {
            Outcome::Error { body, .. } => {
                assert_eq!(body["errorType"], "GroupNotInCluster", "{body}");
                assert!(body["errorMessage"].as_str().unwrap().contains("intruder"));
            }
            other => panic!("expected a refusal: {other:?}"),
        }
    }
    assert!(c.writes().is_empty(), "{:?}", c.writes());
    assert_eq!(c.owned_rules(LOCAL).await, expected);
    assert_eq!(c.owned_rules(PEER).await, expected);
    assert_eq!(
        registry_members(&c, LOCAL).await,
        [format!("{LOCAL}/{}", site.asg)]
    );
}

#[tokio::test]
async fn the_scheduled_true_up_drops_a_member_that_is_not_the_cluster_s() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    let intruders =
        world::auto_scaling_group(&site.ec2, &site.autoscaling, LOCAL, "intruder", 1).await;
    c.launch(LOCAL, &site.instances[0]).await.unwrap();
    // A registry poisoned before SYNC_AUTO_SCALING_GROUPS existed: the intruder is a member in
    // both regions' tables, and the cluster's port is open to it in both groups.
    let address = world::public_addresses(&site.ec2, &intruders)
        .await
        .remove(0);
    let poisoned = sgwarden_core::sync::Member {
        member: format!("{LOCAL}/intruder"),
        region: LOCAL.to_string(),
        asg: "intruder".to_string(),
        addresses: vec![address.parse().unwrap()],
        updated_at: "2026-11-01T00:00:00Z".to_string(),
        seq: 1,
    };
    for region in [LOCAL, PEER] {
        sgwarden_aws::registry::Registry::new(&c.emulator.sdk_config(region).await, TABLE)
            .put(CLUSTER, &poisoned)
            .await
            .unwrap();
        let s = c.site(region);
        let description = format!("sgwarden:{CLUSTER} {LOCAL}/intruder");
        world::hand_rule(
            &s.ec2,
            &s.group_id,
            9042,
            &format!("{address}/32"),
            &description,
        )
        .await;
        record_as_asg_sync(&c, region, &format!("{address}/32")).await;
    }
    let outcomes = serve(&c, LOCAL, vec![world::scheduled_event(LOCAL)]).await;
    assert!(
        matches!(outcomes[0], Outcome::Response { .. }),
        "{outcomes:?}"
    );
    let expected = c.expected(&[(LOCAL, site.instances.clone())]).await;
    assert_eq!(c.owned_rules(LOCAL).await, expected);
    assert_eq!(c.owned_rules(PEER).await, expected);
    for region in [LOCAL, PEER] {
        assert_eq!(
            registry_members(&c, region).await,
            [format!("{LOCAL}/{}", site.asg)],
            "{region}"
        );
    }
}

#[tokio::test]
async fn events_of_an_auto_scaling_group_deleted_with_its_stack_are_answered_not_retried() {
    let c = Cluster::new(1).await;
    let site = c.site(LOCAL);
    c.launch(LOCAL, &site.instances[0]).await.unwrap();
    let before = c.owned_rules(LOCAL).await;
    site.autoscaling
        .delete_auto_scaling_group()
        .auto_scaling_group_name(&site.asg)
        .force_delete(true)
        .send()
        .await
        .unwrap();
    // Each termination still sends its events after the group is gone.
    let mut terminated: Value =
        serde_json::from_str(include_str!("../../events/asg-terminate-successful.json")).unwrap();
    terminated["region"] = json!(LOCAL);
    terminated["detail"]["AutoScalingGroupName"] = json!(site.asg);
    terminated["detail"]["EC2InstanceId"] = json!(site.instances[0]);
    let action = world::lifecycle_event(LOCAL, &site.asg, &site.instances[0], false);
    c.emulator.clear_calls();
    let outcomes = serve(&c, LOCAL, vec![terminated, action]).await;
    for outcome in &outcomes {
        match outcome {
            Outcome::Response { body, .. } => assert!(
                body["skipped"]
                    .as_str()
                    .unwrap()
                    .contains("Auto Scaling group"),
                "{body}"
            ),
            other => panic!("expected an answer, not an error to retry: {other:?}"),
        }
    }
    // The lifecycle action went with its group: asked once, answered as no longer active.
    match &outcomes[1] {
        Outcome::Response { body, .. } => assert_eq!(body["lifecycle"], "already-completed"),
        other => panic!("{other:?}"),
    }
    let writes = c.writes();
    assert!(
        writes.iter().all(|op| op == "CompleteLifecycleAction"),
        "nothing changed: {writes:?}"
    );
    assert_eq!(c.owned_rules(LOCAL).await, before);
}
