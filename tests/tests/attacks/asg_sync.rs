//! Attacks on asg-sync: a cluster in two regions, the real binary served lifecycle events
//! through the Runtime API, the attacker an insider with ordinary EC2 rights (no right on
//! sgwarden's tables, functions or roles). Assertions read the groups and the lifecycle
//! completion back from AWS.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_ec2::types::{
    IpPermission, IpRange, SecurityGroupRuleRequest, SecurityGroupRuleUpdate,
};
use aws_sdk_ec2::Client;
use serde_json::Value;
use sgwarden_tests::runtime::{self, Outcome};
use sgwarden_tests::{world, Emulator};

const CLUSTER: &str = "ring";
const TABLE: &str = "sgwarden-registry";
const PORTS: &str = "tcp/7000-7001,tcp/9042";
const LOCAL: &str = "us-east-1";
const PEER: &str = "eu-west-1";

struct Site {
    region: &'static str,
    asg: String,
    group_id: String,
    ec2: Client,
    instances: Vec<String>,
}

struct Cluster {
    emulator: Emulator,
    sites: Vec<Site>,
}

impl Cluster {
    /// A cluster group and registry table in each region, and an Auto Scaling group of
    /// `capacity[i]` instances in region i.
    async fn new(capacity: [i32; 2]) -> Self {
        let emulator = Emulator::start();
        let mut sites = Vec::new();
        for (region, capacity) in [LOCAL, PEER].into_iter().zip(capacity) {
            let config = emulator.sdk_config(region).await;
            let ec2 = Client::new(&config);
            let autoscaling = aws_sdk_autoscaling::Client::new(&config);
            let vpc = world::vpc(&ec2, "10.1.0.0/16").await;
            let group_id = world::group(&ec2, &vpc, "ring-nodes", &[]).await;
            world::registry_table(&aws_sdk_dynamodb::Client::new(&config), TABLE).await;
            let asg = format!("ring-{region}");
            let instances =
                world::auto_scaling_group(&ec2, &autoscaling, region, &asg, capacity).await;
            sites.push(Site {
                region,
                asg,
                group_id,
                ec2,
                instances,
            });
        }
        emulator.clear_calls();
        Self { emulator, sites }
    }

    fn site(&self, region: &str) -> &Site {
        self.sites.iter().find(|s| s.region == region).unwrap()
    }

    /// The real binary as deployed in `region` (with `extra` settings), serving `events`.
    async fn serve(
        &self,
        region: &str,
        extra: &[(&str, &str)],
        events: Vec<Value>,
    ) -> Vec<Outcome> {
        let site = self.site(region);
        let peers: Vec<String> = self
            .sites
            .iter()
            .filter(|s| s.region != region)
            .map(|s| format!("{}/{}", s.region, s.group_id))
            .collect();
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("SYNC_CLUSTER", CLUSTER.to_string()),
            ("SYNC_AUTO_SCALING_GROUPS", site.asg.clone()),
            ("SYNC_TABLE", TABLE.to_string()),
            ("SYNC_SECURITY_GROUP_IDS", site.group_id.clone()),
            ("SYNC_PEERS", peers.join(" ")),
            ("SYNC_PORTS", PORTS.to_string()),
            ("SYNC_HEARTBEAT_SECONDS", "1".to_string()),
        ]);
        for (k, v) in extra {
            vars.insert(k, v.to_string());
        }
        let mut env: Vec<(&str, String)> = vars.into_iter().collect();
        env.extend(self.emulator.function_env(region));
        runtime::serve_events("asg-sync", &env, events).await
    }

    /// A group's ingress rules as EC2 holds them: `traffic peer` → (rule id, description).
    async fn rules(&self, region: &str) -> HashMap<String, (String, String)> {
        let site = self.site(region);
        let out = site
            .ec2
            .describe_security_group_rules()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-id")
                    .values(&site.group_id)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.security_group_rules()
            .iter()
            .filter(|r| r.is_egress() == Some(false))
            .map(|r| {
                let ports = match (r.from_port(), r.to_port()) {
                    (Some(a), Some(b)) if a == b => format!("{a}"),
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => String::new(),
                };
                (
                    format!(
                        "{}/{ports} {}",
                        r.ip_protocol().unwrap_or_default(),
                        r.cidr_ipv4().unwrap_or_default()
                    ),
                    (
                        r.security_group_rule_id().unwrap_or_default().to_string(),
                        r.description().unwrap_or_default().to_string(),
                    ),
                )
            })
            .collect()
    }

    /// The cluster's rules for these instances' addresses, as `traffic peer`.
    async fn cluster_rules(&self, region: &str, instances: &[String]) -> BTreeSet<String> {
        let mut rules = BTreeSet::new();
        for address in world::public_addresses(&self.site(region).ec2, instances).await {
            for port in PORTS.split(',') {
                rules.insert(format!("{port} {address}/32"));
            }
        }
        rules
    }

    /// The one lifecycle completion made since the calls were last cleared.
    fn completion(&self) -> String {
        let completions = self.emulator.calls_of("CompleteLifecycleAction");
        assert_eq!(completions.len(), 1, "{completions:?}");
        completions[0].params["LifecycleActionResult"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

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
    let c = Cluster::new([2, 0]).await;
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
    let c = Cluster::new([1, 0]).await;
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
