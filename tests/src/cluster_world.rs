//! The world the asg-sync tests share: a cluster in two regions of the emulator (a cluster
//! group, a registry table and an Auto Scaling group in each), the function as a handler or
//! as the real binary behind the Lambda Runtime API, and the groups read back.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use asg_sync::{AsgSync, SyncConfig, SyncError};
use aws_sdk_ec2::Client;
use serde_json::Value;
use sgwarden_aws::Ec2;
use sgwarden_core::{Direction, Owner};

use crate::runtime::{self, Outcome};
use crate::{world, Emulator};

pub const CLUSTER: &str = "ring";
pub const TABLE: &str = "sgwarden-registry";
pub const PORTS: &str = "tcp/7000-7001,tcp/9042";
pub const LOCAL: &str = "us-east-1";
pub const PEER: &str = "eu-west-1";
/// A second peer region, for clusters of three.
pub const THIRD: &str = "ap-southeast-2";

pub struct Site {
    pub region: &'static str,
    pub asg: String,
    pub group_id: String,
    pub ec2: Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub instances: Vec<String>,
}

pub struct Cluster {
    pub emulator: Emulator,
    pub sites: Vec<Site>,
}

impl Cluster {
    /// A cluster group and registry table in each region, and an Auto Scaling group of
    /// `capacity` instances in each.
    pub async fn new(capacity: i32) -> Self {
        Self::with_capacities([capacity, capacity]).await
    }

    /// The same with `capacities[i]` instances in region i (local, then peer).
    pub async fn with_capacities(capacities: [i32; 2]) -> Self {
        Self::with_sites(&[(LOCAL, capacities[0]), (PEER, capacities[1])]).await
    }

    /// A site in each of `sites` (region, instances), every other region a peer of each.
    pub async fn with_sites(sites_wanted: &[(&'static str, i32)]) -> Self {
        let emulator = Emulator::start();
        let mut sites = Vec::new();
        for &(region, capacity) in sites_wanted {
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
                autoscaling,
                instances,
            });
        }
        emulator.clear_calls();
        Self { emulator, sites }
    }

    pub fn site(&self, region: &str) -> &Site {
        self.sites
            .iter()
            .find(|s| s.region == region)
            .expect("the cluster has a site in that region")
    }

    pub fn vars(&self, region: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let site = self.site(region);
        let peers: Vec<String> = self
            .sites
            .iter()
            .filter(|s| s.region != region)
            .map(|s| format!("{}/{}", s.region, s.group_id))
            .collect();
        let mut vars: HashMap<String, String> = [
            ("SYNC_CLUSTER", CLUSTER.to_string()),
            ("SYNC_AUTO_SCALING_GROUPS", site.asg.clone()),
            ("SYNC_TABLE", TABLE.to_string()),
            ("SYNC_SECURITY_GROUP_IDS", site.group_id.clone()),
            ("SYNC_PEERS", peers.join(" ")),
            ("SYNC_PORTS", PORTS.to_string()),
            ("SYNC_HEARTBEAT_SECONDS", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    /// The function as deployed in `region`.
    pub async fn function(&self, region: &str, extra: &[(&str, &str)]) -> AsgSync {
        let vars = self.vars(region, extra);
        let config = SyncConfig::from_lookup(|k| vars.get(k).cloned())
            .expect("the test's settings are valid");
        AsgSync::new(config, &self.emulator.sdk_config(region).await)
    }

    /// Handles one event as the function deployed in `region` (with `extra` settings) would.
    pub async fn handle(
        &self,
        region: &str,
        extra: &[(&str, &str)],
        event: &Value,
    ) -> Result<asg_sync::Report, SyncError> {
        self.function(region, extra)
            .await
            .handle(event, SystemTime::now())
            .await
    }

    pub async fn launch(
        &self,
        region: &str,
        instance: &str,
    ) -> Result<asg_sync::Report, SyncError> {
        let site = self.site(region);
        let event = world::lifecycle_event(region, &site.asg, instance, true);
        self.handle(region, &[], &event).await
    }

    /// The owned ingress rules of a group, as `traffic peer` text, read from AWS.
    pub async fn owned_rules(&self, region: &str) -> BTreeSet<String> {
        let site = self.site(region);
        let ec2 = Ec2::new(&self.emulator.sdk_config(region).await);
        let owner = Owner::new(CLUSTER).expect("the cluster name is a valid owner");
        ec2.read_group(&site.group_id)
            .await
            .expect("read the group back")
            .rules
            .iter()
            .filter(|(r, info)| r.direction == Direction::Ingress && owner.owns(info))
            .map(|(r, _)| format!("{} {}", r.traffic, r.peer))
            .collect()
    }

    /// What every group should hold for these instances (from both regions).
    pub async fn expected(&self, instances: &[(&str, Vec<String>)]) -> BTreeSet<String> {
        let mut expected = BTreeSet::new();
        for (region, ids) in instances {
            for address in world::public_addresses(&self.site(region).ec2, ids).await {
                for port in PORTS.split(',') {
                    expected.insert(format!("{port} {address}/32"));
                }
            }
        }
        expected
    }

    pub fn writes(&self) -> Vec<String> {
        self.emulator
            .calls()
            .into_iter()
            .map(|c| c.operation)
            .filter(|op| {
                op.starts_with("Authorize")
                    || op.starts_with("Revoke")
                    || op == "PutItem"
                    || op == "CompleteLifecycleAction"
            })
            .collect()
    }

    /// The real binary as deployed in `region` (with `extra` settings), serving `events`.
    pub async fn serve(
        &self,
        region: &str,
        extra: &[(&str, &str)],
        events: Vec<Value>,
    ) -> Vec<Outcome> {
        let vars = self.vars(region, extra);
        let mut env: Vec<(&str, String)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        env.extend(self.emulator.function_env(region));
        runtime::serve_events("asg-sync", &env, events).await
    }

    /// A group's ingress rules as EC2 holds them: `traffic peer` → (rule id, description).
    pub async fn rules(&self, region: &str) -> HashMap<String, (String, String)> {
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
            .expect("read the group's rules back");
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

    /// The cluster's rules for these instances' addresses in `region`, as `traffic peer`.
    pub async fn cluster_rules(&self, region: &str, instances: &[String]) -> BTreeSet<String> {
        self.expected(&[(region, instances.to_vec())]).await
    }

    /// The one lifecycle completion made since the calls were last cleared.
    pub fn completion(&self) -> String {
        let completions = self.emulator.calls_of("CompleteLifecycleAction");
        assert_eq!(completions.len(), 1, "{completions:?}");
        completions[0].params["LifecycleActionResult"]
            .as_str()
            .expect("the completion names its result")
            .to_string()
    }
}
