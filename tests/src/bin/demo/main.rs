//! `make demo`: sgwarden against the local AWS emulator, in a small two-region world.
//!
//! It starts the emulator and builds one database cluster in `us-east-1` and `eu-west-1`: an
//! Auto Scaling group with lifecycle hooks, a security group (with a rule an operator added
//! by hand and a rule left behind by a node long gone) and a registry table in each. Then it
//! runs the real asg-sync handler, as each region's Lambda would, through launches, a scale
//! out and a scale in, and shows both groups following. It ends by parsing the real recorded
//! events and samples to show how each trigger reads. Then revert-ingress guards a protected
//! group (`revert.rs`): a port opened by hand is closed again, with the record its SNS topic
//! delivers; an exempt administrator's change stays; drift is swept. Last, notify-owner
//! (`notify.rs`) mails a group's owners what a developer changed, once; and one central
//! revert-ingress guards a member account through its member role (`central.rs`).

mod central;
mod notify;
mod revert;

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use asg_sync::{AsgSync, Report, SyncConfig};
use aws_sdk_ec2::Client;
use sgwarden_aws::{AuditContext, Ec2};
use sgwarden_core::rule::{Peer, Rule, RuleInfo, RuleSet};
use sgwarden_core::{plan, Direction, Owner, Trigger};
use sgwarden_tests::{world, Emulator};

const CLUSTER: &str = "demo-db";
const PORTS: &str = "tcp/7000-7001,tcp/9042";
const TABLE: &str = "sgwarden-registry";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

struct Site {
    region: &'static str,
    asg: String,
    group_id: String,
    client: Client,
    ec2: Ec2,
    autoscaling: aws_sdk_autoscaling::Client,
}

async fn build_site(emulator: &Emulator, region: &'static str, owner: &Owner) -> Site {
    let config = emulator.sdk_config(region).await;
    let client = Client::new(&config);
    let ec2 = Ec2::new(&config);
    let autoscaling = aws_sdk_autoscaling::Client::new(&config);
    let vpc = world::vpc(&client, "10.20.0.0/16").await;
    let group_id = world::group(&client, &vpc, CLUSTER, &[("Cluster", CLUSTER)]).await;
    world::hand_rule(
        &client,
        &group_id,
        22,
        "192.0.2.0/24",
        "office ssh, added by hand",
    )
    .await;
    // A rule an earlier sync left for a node that is long gone.
    let stale: RuleSet = [(
        Rule::new(
            Direction::Ingress,
            "tcp/9042".parse().expect("valid traffic"),
            Peer::cidr("198.18.0.9", "demo").expect("valid address"),
        ),
        RuleInfo::described(owner.describe(&format!("{region}/old-node"))),
    )]
    .into_iter()
    .collect();
    let setup = AuditContext {
        function: "demo-setup",
        cause: "world".into(),
    };
    ec2.apply(&group_id, &plan(&RuleSet::new(), &stale, owner), &setup)
        .await
        .expect("seed the stale rule");
    world::registry_table(&aws_sdk_dynamodb::Client::new(&config), TABLE).await;
    let asg = format!("{CLUSTER}-{region}");
    world::auto_scaling_group(&client, &autoscaling, region, &asg, 2).await;
    Site {
        region,
        asg,
        group_id,
        client,
        ec2,
        autoscaling,
    }
}

async fn function(emulator: &Emulator, sites: &[Site], site: &Site) -> AsgSync {
    let peers: Vec<String> = sites
        .iter()
        .filter(|s| s.region != site.region)
        .map(|s| format!("{}/{}", s.region, s.group_id))
        .collect();
    let vars: HashMap<&str, String> = HashMap::from([
        ("SYNC_CLUSTER", CLUSTER.to_string()),
        ("SYNC_AUTO_SCALING_GROUPS", site.asg.clone()),
        ("SYNC_TABLE", TABLE.to_string()),
        ("SYNC_SECURITY_GROUP_IDS", site.group_id.clone()),
        ("SYNC_PEERS", peers.join(" ")),
        ("SYNC_PORTS", PORTS.to_string()),
    ]);
    let config =
        SyncConfig::from_lookup(|k| vars.get(k).cloned()).expect("demo settings are valid");
    AsgSync::new(config, &emulator.sdk_config(site.region).await)
}

fn show_report(step: &str, report: &Report) {
    println!("\n-- {step}");
    println!(
        "   registered {:?}; lifecycle {}; {} round(s)",
        report.registered,
        report
            .lifecycle
            .map_or("none".to_string(), |l| l.to_string()),
        report.rounds
    );
    for group in &report.groups {
        println!(
            "   {} {}: +{} -{}",
            group.region,
            group.group_id,
            group.added.len(),
            group.removed.len()
        );
        for rule in &group.removed {
            println!("      - {rule}");
        }
    }
}

async fn show_groups(sites: &[Site], owner: &Owner) {
    for site in sites {
        let group = site
            .ec2
            .read_group(&site.group_id)
            .await
            .expect("read group");
        let mut owned: Vec<String> = Vec::new();
        let mut other: Vec<String> = Vec::new();
        for (rule, info) in group
            .rules
            .iter()
            .filter(|(r, _)| r.direction == Direction::Ingress)
        {
            if owner.owns(info) {
                owned.push(format!("{} {}", rule.traffic, rule.peer));
            } else {
                other.push(format!(
                    "{rule} ({})",
                    info.description.as_deref().unwrap_or("")
                ));
            }
        }
        println!(
            "   {} {} now holds {} owned rules:",
            site.region,
            site.group_id,
            owned.len()
        );
        for rule in owned {
            println!("      {rule}");
        }
        for rule in other {
            println!("      not sgwarden's, untouched: {rule}");
        }
    }
}

fn show_events() {
    println!("\n== How sgwarden reads its triggers ==");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for path in [
        root.join("events/asg-launch-lifecycle-action.json"),
        root.join("events/cloudtrail-authorize-ingress-failed-duplicate.json"),
        root.join("../shared/real-events/cloudtrail-authorize-ingress-group-reference.json"),
        root.join("events/config-sns-security-group-rules-changed.json"),
    ] {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(&path) else {
            println!("  {name}: not found");
            continue;
        };
        let parsed = serde_json::from_str(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| Trigger::parse(&v).map_err(|e| e.to_string()));
        match parsed {
            Ok(Trigger::Lifecycle(a)) => println!(
                "  {name}: {:?} of {} in group {} (hook {})",
                a.transition, a.instance_id, a.asg_name, a.hook_name
            ),
            Ok(Trigger::ApiCall(call)) => match &call.outcome {
                sgwarden_core::event::CallOutcome::Failed { code, .. } => {
                    println!(
                        "  {name}: {} failed with {code}: nothing changed, nothing to revert",
                        call.event_name
                    )
                }
                sgwarden_core::event::CallOutcome::Succeeded(change) => {
                    if let sgwarden_core::event::RuleChange::Authorize { created, .. } = change {
                        for (rule, info) in created {
                            println!(
                                "  {name}: {} by {} created {rule} ({})",
                                call.event_name,
                                call.principal
                                    .role_arn
                                    .as_deref()
                                    .or(call.principal.arn.as_deref())
                                    .unwrap_or("unknown"),
                                info.rule_id.as_deref().unwrap_or("no id")
                            );
                        }
                    }
                }
            },
            Ok(Trigger::Config(messages)) => {
                for message in messages {
                    if let sgwarden_core::event::ConfigMessage::Change(change) = message {
                        match change.security_group_diff() {
                            Ok(diff) => {
                                for rule in diff.added.rules() {
                                    println!("  {name}: {} added {rule}", change.item.resource_id);
                                }
                                for rule in diff.removed.rules() {
                                    println!(
                                        "  {name}: {} removed {rule}",
                                        change.item.resource_id
                                    );
                                }
                            }
                            Err(e) => println!("  {name}: {e}"),
                        }
                    }
                }
            }
            Ok(other) => println!("  {name}: {}", other.kind()),
            Err(e) => println!("  {name}: refused: {e}"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stdout)
        .init();
    let owner = Owner::new(CLUSTER).expect("valid cluster name");
    println!("Starting the local AWS emulator (moto, pinned, in .venv) ...");
    let emulator = Emulator::start();
    println!("Emulator on {}", emulator.endpoint());
    let mut sites = Vec::new();
    for region in REGIONS {
        sites.push(build_site(&emulator, region, &owner).await);
    }
    println!(
        "\nCluster {CLUSTER}: an Auto Scaling group of 2 in each of {}; ports {PORTS}.",
        REGIONS.join(" and ")
    );
    println!("Before sgwarden, each group holds a hand-made ssh rule and a stale owned rule:");
    show_groups(&sites, &owner).await;

    // Each region's instances launch; each region's asg-sync answers its lifecycle hook.
    for site in &sites {
        let instances = world::asg_instances(&site.autoscaling, &site.asg).await;
        let event = world::lifecycle_event(site.region, &site.asg, &instances[0], true);
        let report = function(&emulator, &sites, site)
            .await
            .handle(&event, SystemTime::now())
            .await
            .expect("launch");
        show_report(
            &format!("launch in {} ({})", site.region, instances[0]),
            &report,
        );
    }
    show_groups(&sites, &owner).await;

    // Scale out in us-east-1.
    let east = &sites[0];
    let before = world::asg_instances(&east.autoscaling, &east.asg).await;
    let after = world::scale(&east.autoscaling, &east.asg, 3).await;
    let new = after
        .iter()
        .find(|i| !before.contains(i))
        .expect("a new instance")
        .clone();
    let event = world::lifecycle_event(east.region, &east.asg, &new, true);
    let report = function(&emulator, &sites, east)
        .await
        .handle(&event, SystemTime::now())
        .await
        .expect("scale out");
    show_report(
        &format!("scale out: {} launches {new}", east.region),
        &report,
    );

    // Scale in in eu-west-1: the terminating instance leaves both groups.
    let west = &sites[1];
    let leaving = world::asg_instances(&west.autoscaling, &west.asg)
        .await
        .remove(0);
    let address = world::public_addresses(&west.client, std::slice::from_ref(&leaving))
        .await
        .join("");
    let event = world::lifecycle_event(west.region, &west.asg, &leaving, false);
    let report = function(&emulator, &sites, west)
        .await
        .handle(&event, SystemTime::now())
        .await
        .expect("scale in");
    show_report(
        &format!("scale in: {} terminates {leaving} ({address})", west.region),
        &report,
    );
    println!("\nBoth groups follow the cluster (every node x every port range); hand-made rules are kept:");
    show_groups(&sites, &owner).await;

    let completions = emulator.calls_of("CompleteLifecycleAction");
    println!(
        "\n{} lifecycle actions completed, each once: {}",
        completions.len(),
        completions
            .iter()
            .map(|c| format!(
                "{} {}",
                c.params["InstanceId"].as_str().unwrap_or("?"),
                c.params["LifecycleActionResult"].as_str().unwrap_or("?")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    show_events();
    revert::run(&emulator).await;
    notify::run(&emulator).await;
    central::run(&emulator).await;
    println!("\nDone; the emulator stops with this process.");
}
