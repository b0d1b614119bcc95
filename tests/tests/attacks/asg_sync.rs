//! Attacks on asg-sync: a cluster in two regions, the real binary served lifecycle events
//! through the Runtime API, the attacker an insider with ordinary EC2 rights (no right on
//! sgwarden's tables, functions or roles). Assertions read the groups and the lifecycle
//! completion back from AWS.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, SecurityGroupRuleRequest, SecurityGroupRuleUpdate,
};
use serde_json::Value;
use sgwarden_tests::cluster_world::*;
use sgwarden_tests::runtime::Outcome;
use sgwarden_tests::world;

fn response(outcome: &Outcome) -> &Value {
    match outcome {
        Outcome::Response { body, .. } => body,
        other => panic!("expected a response: {other:?}"),
    }
}

/// Threat model: a developer with EC2 rights edits the description of a cluster node's rules
/// (`ModifySecurityGroupRules` in one region, `UpdateSecurityGroupRuleDescriptionsIngress` in
/// the other) so they no longer start with `sgwarden:ring `, hoping the node's address keeps
/// the cluster's ports after it terminates; and forges that marker on a hand-made rule of
/// their own, hoping asg-sync removes it. asg-sync knows its rules by the ids it recorded.
#[tokio::test]
async fn a_stripped_marker_keeps_no_departed_node_and_a_forged_one_removes_nothing() {
    let c = Cluster::with_capacities([2, 0]).await;
    let local = c.site(LOCAL).instances.clone();
    let launch = world::lifecycle_event(LOCAL, &c.site(LOCAL).asg, &local[0], true);
    let outcomes = c.serve(LOCAL, &[], vec![launch]).await;
    response(&outcomes[0]);
    let departing = c.cluster_rules(LOCAL, &local[1..]).await;
    let staying = c.cluster_rules(LOCAL, &local[..1]).await;

    // The attack, in both regions.
    let forged = format!("sgwarden:{CLUSTER} {LOCAL}/{}", c.site(LOCAL).asg);
    for region in [LOCAL, PEER] {
        let site = c.site(region);
        let rules = c.rules(region).await;
        for shape in &departing {
            let (id, description) = &rules[shape];
            assert!(description.starts_with("sgwarden:ring "), "{description}");
            let (traffic, cidr) = shape.split_once(' ').unwrap();
            let ports = traffic.trim_start_matches("tcp/");
            let (from, to) = ports.split_once('-').unwrap_or((ports, ports));
            let (from, to) = (from.parse::<i32>().unwrap(), to.parse::<i32>().unwrap());
            if region == LOCAL {
                site.ec2
                    .modify_security_group_rules()
                    .group_id(&site.group_id)
                    .security_group_rules(
                        SecurityGroupRuleUpdate::builder()
                            .security_group_rule_id(id)
                            .security_group_rule(
                                SecurityGroupRuleRequest::builder()
                                    .ip_protocol("tcp")
                                    .from_port(from)
                                    .to_port(to)
                                    .cidr_ipv4(cidr)
                                    .description("prod debugging, keep")
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            } else {
                site.ec2
                    .update_security_group_rule_descriptions_ingress()
                    .group_id(&site.group_id)
                    .ip_permissions(
                        IpPermission::builder()
                            .ip_protocol("tcp")
                            .from_port(from)
                            .to_port(to)
                            .ip_ranges(
                                IpRange::builder()
                                    .cidr_ip(cidr)
                                    .description("prod debugging, keep")
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
        world::hand_rule(&site.ec2, &site.group_id, 9042, "203.0.113.50/32", &forged).await;
        let rules = c.rules(region).await;
        for shape in &departing {
            assert_eq!(rules[shape].1, "prod debugging, keep", "the strip took");
        }
    }

    // The node terminates.
    c.emulator.clear_calls();
    let terminate = world::lifecycle_event(LOCAL, &c.site(LOCAL).asg, &local[1], false);
    let outcomes = c.serve(LOCAL, &[], vec![terminate]).await;
    let body = response(&outcomes[0]);
    assert_eq!(c.completion(), "CONTINUE");
    // Both halves, in both regions, read back from EC2.
    let mut broken = Vec::new();
    for region in [LOCAL, PEER] {
        let rules = c.rules(region).await;
        for shape in &departing {
            if let Some((_, description)) = rules.get(shape) {
                broken.push(format!(
                    "{region}: the departed node keeps {shape} ({description})"
                ));
            }
        }
        for shape in &staying {
            if !rules.contains_key(shape) {
                broken.push(format!("{region}: the staying node lost {shape}"));
            }
        }
        if rules
            .get("tcp/9042 203.0.113.50/32")
            .map(|(_, d)| d.as_str())
            != Some(&forged)
        {
            broken.push(format!(
                "{region}: the hand-made rule with a forged marker was removed"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    // The forged rule is named for an operator, in each group.
    let unproven = body["unproven"].as_array().unwrap();
    assert_eq!(unproven.len(), 2, "{body}");
    assert!(unproven
        .iter()
        .all(|r| r.as_str().unwrap().ends_with("tcp/9042 203.0.113.50/32")));
}

/// Threat model: a developer with EC2 rights fills the peer region's cluster group to its
/// quota (60 inbound rules) with rules of their own: every launch elsewhere would then fail
/// with `QuotaExceeded` naming the peer's group, and local scaling would wait on a peer. The
/// peer group is reported and skipped; the local group and the lifecycle go on.
#[tokio::test]
async fn a_peer_group_filled_to_its_quota_does_not_hold_local_scaling() {
    let c = Cluster::with_capacities([1, 0]).await;
    let peer = c.site(PEER);
    let filler = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(443)
        .to_port(443)
        .set_ip_ranges(Some(
            (1..=60)
                .map(|i| {
                    IpRange::builder()
                        .cidr_ip(format!("192.0.2.{i}/32"))
                        .description("load test")
                        .build()
                })
                .collect(),
        ))
        .build();
    peer.ec2
        .authorize_security_group_ingress()
        .group_id(&peer.group_id)
        .ip_permissions(filler)
        .send()
        .await
        .unwrap();
    let filled = c.rules(PEER).await;
    assert_eq!(filled.len(), 60);

    let local = c.site(LOCAL).instances.clone();
    c.emulator.clear_calls();
    let launch = world::lifecycle_event(LOCAL, &c.site(LOCAL).asg, &local[0], true);
    let outcomes = c
        .serve(LOCAL, &[("SYNC_ON_FAILURE", "abandon")], vec![launch])
        .await;

    // The local group took its plan and the lifecycle went on.
    let wanted = c.cluster_rules(LOCAL, &local).await;
    let held: BTreeSet<String> = c.rules(LOCAL).await.into_keys().collect();
    assert_eq!(held, wanted, "the local group is in step");
    assert_eq!(
        c.completion(),
        "CONTINUE",
        "local scaling does not wait on the peer"
    );
    // The peer group is left as the attacker made it, and is named in the report.
    assert_eq!(
        c.rules(PEER).await.into_keys().collect::<BTreeSet<_>>(),
        filled.into_keys().collect::<BTreeSet<_>>()
    );
    let body = response(&outcomes[0]);
    let skipped = body["skipped_groups"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{body}");
    assert_eq!(skipped[0]["region"], PEER);
    assert_eq!(skipped[0]["group_id"], peer.group_id.as_str());
    assert!(
        skipped[0]["reason"].as_str().unwrap().contains("quota"),
        "{body}"
    );
}
