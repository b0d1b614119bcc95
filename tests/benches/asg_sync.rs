//! `make bench`: one asg-sync launch invocation against the local emulator, end to end.
//!
//! Builds a two-region cluster (2 instances per region), then times repeated launch
//! invocations of the real handler in the local region and counts the AWS API calls one
//! invocation makes. Wall times include the emulator's own latency (moto in Python on
//! loopback), so they bound what the code adds rather than predict AWS latency.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use asg_sync::{AsgSync, SyncConfig};
use sgwarden_tests::{world, Emulator};

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
}
