//! `make bench`: one asg-sync launch invocation against the local emulator, end to end.
//!
//! Builds a two-region cluster (2 instances per region), then times repeated launch
//! invocations of the real handler in the local region and counts the AWS API calls one
//! invocation makes. Then a three-region cluster with both peers black-holed: the time until
//! the local lifecycle action is completed, against one call's bound (the SDK's operation
//! timeout), since the peers are asked at once. Wall times include the emulator's own latency (moto in Python on
//! loopback), so they bound what the code adds rather than predict AWS latency.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use asg_sync::{AsgSync, SyncConfig};
use sgwarden_aws::sdk::OPERATION_TIMEOUT;
use sgwarden_tests::cluster_world::{Cluster, LOCAL, PEER, THIRD};
use sgwarden_tests::{world, Emulator, Outage};

const ROUNDS: usize = 20;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let emulator = Emulator::start();
    let mut groups = Vec::new();
    for region in ["us-east-1", "eu-west-1"] {
        let config = emulator.sdk_config(region).await;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let autoscaling = aws_sdk_autoscaling::Client::new(&config);
        let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
        let group = world::group(&ec2, &vpc, "bench", &[]).await;
        world::registry_table(&aws_sdk_dynamodb::Client::new(&config), "registry").await;
        let instances = world::auto_scaling_group(&ec2, &autoscaling, region, "bench-asg", 2).await;
        groups.push((region, group, instances));
    }
    let (local_region, local_group, local_instances) = &groups[0];
    let (peer_region, peer_group, _) = &groups[1];
    let vars: HashMap<&str, String> = HashMap::from([
        ("SYNC_CLUSTER", "bench".to_string()),
        ("SYNC_AUTO_SCALING_GROUPS", "bench-asg".to_string()),
        ("SYNC_TABLE", "registry".to_string()),
        ("SYNC_SECURITY_GROUP_IDS", local_group.clone()),
        ("SYNC_PEERS", format!("{peer_region}/{peer_group}")),
        ("SYNC_PORTS", "tcp/7000-7001,tcp/9042".to_string()),
    ]);
    let config = SyncConfig::from_lookup(|k| vars.get(k).cloned()).expect("bench settings");
    let function = AsgSync::new(config, &emulator.sdk_config(local_region).await);

    let mut times: Vec<Duration> = Vec::new();
    let mut calls: Vec<BTreeMap<String, usize>> = Vec::new();
    for round in 0..ROUNDS {
        // Alternate launches of the two instances so every round has real work after the first.
        let instance = &local_instances[round % local_instances.len()];
        let event = world::lifecycle_event(local_region, "bench-asg", instance, round % 2 == 0);
        emulator.clear_calls();
        let start = Instant::now();
        function
            .handle(&event, SystemTime::now())
            .await
            .expect("launch invocation");
        times.push(start.elapsed());
        let mut count = BTreeMap::new();
        for call in emulator.calls() {
            *count.entry(call.operation).or_insert(0) += 1;
        }
        calls.push(count);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "asg-sync launch invocation, 2 regions, {ROUNDS} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(times[0]),
        ms(times[ROUNDS / 2]),
        ms(times[ROUNDS - 1])
    );
    println!("API calls of the first invocation (a launch that changes both groups):");
    for (operation, count) in &calls[0] {
        println!("  {count} x {operation}");
    }
    let total: usize = calls[0].values().sum();
    println!("  {total} calls in all");
    drop(emulator);
    two_peers_down().await;
}

/// A launch in a three-region cluster whose two peers answer nothing: asked at once, they
/// cost one bounded wait before the lifecycle action is completed, not one each.
async fn two_peers_down() {
    let cluster = Cluster::with_sites(&[(LOCAL, 1), (PEER, 0), (THIRD, 0)]).await;
    cluster.emulator.set_outage(PEER, Outage::Hang);
    cluster.emulator.set_outage(THIRD, Outage::Hang);
    let instance = cluster.site(LOCAL).instances[0].clone();
    let start = Instant::now();
    let report = cluster.launch(LOCAL, &instance).await.expect("launch");
    let elapsed = start.elapsed();
    assert_eq!(report.unreachable.len(), 2, "{report:?}");
    assert!(report.lifecycle.is_some(), "{report:?}");
    println!(
        "asg-sync launch, 3 regions, 2 peers down: lifecycle completed after {:.1} s \
         (one call's bound: {} s)",
        elapsed.as_secs_f64(),
        OPERATION_TIMEOUT.as_secs()
    );
    assert!(
        elapsed < OPERATION_TIMEOUT * 2,
        "two hung peers cost more than one bounded wait: {elapsed:?}"
    );
}
