//! The `sgwarden` CLI end to end: the real binary, run as an operator would, against the
//! emulator (and, for `register`, a local stand-in for instance metadata). Every assertion
//! reads AWS back or reads what the command printed and its exit code.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use aws_sdk_ec2::Client;
use serde_json::{json, Value};
use sgwarden_aws::Ec2;
use sgwarden_core::Direction;
use sgwarden_tests::cloudtrail::{self, user, ACCOUNT};
use sgwarden_tests::imds::Metadata;
use sgwarden_tests::runtime::{run_sgwarden, Output};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const REMOTE: &str = "eu-west-1";
const HOST: &str = "i-0123456789abcdef0";

/// Runs `sgwarden args…` with only the emulator's environment and `env`, `stdin` piped in.
async fn sgwarden(
    emulator: &Emulator,
    args: &[&str],
    env: &[(&str, String)],
    stdin: Option<&str>,
) -> Output {
    run_sgwarden(emulator, REGION, args, env, stdin).await
}

async fn ingress(emulator: &Emulator, region: &str, group_id: &str) -> Vec<(String, String)> {
    Ec2::new(&emulator.sdk_config(region).await)
        .read_group(group_id)
        .await
        .unwrap()
        .rules
        .iter()
        .filter(|(r, _)| r.direction == Direction::Ingress)
        .map(|(r, i)| (r.to_string(), i.description.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn help_explains_every_command_and_matches_its_snapshot() {
    let emulator = Emulator::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots");
    for command in [
        "",
        "run",
        "plan",
        "replay",
        "register",
        "deregister",
        "approve",
        "approvals",
    ] {
        let args: Vec<&str> = [command, "--help"]
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        let out = sgwarden(&emulator, &args, &[], None).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let name = if command.is_empty() {
            "sgwarden"
        } else {
            command
        };
        let path = dir.join(format!("help-{name}.txt"));
        if std::env::var_os("SGWARDEN_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &out.stdout).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            out.stdout,
            expected,
            "`sgwarden {}` changed; review and run with SGWARDEN_UPDATE_SNAPSHOTS=1",
            args.join(" ")
        );
    }
}

#[tokio::test]
async fn run_replays_an_event_through_the_real_handler() {
    let emulator = Emulator::start();
    let ec2 = Client::new(&emulator.sdk_config(REGION).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "db", &[]).await;
    let event = cloudtrail::opened_by_hand(
        &ec2,
        REGION,
        &group,
        user("mallory"),
        json!([{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]),
        true,
    )
    .await;
    let file = std::env::temp_dir().join(format!("sgwarden-cli-{}.json", std::process::id()));
    std::fs::write(&file, event.to_string()).unwrap();
    let out = sgwarden(
        &emulator,
        &["run", "revert-ingress", "--event", file.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["groups"][0]["revoked"][0],
        "ingress tcp/22 0.0.0.0/0"
    );
    assert!(ingress(&emulator, REGION, &group).await.is_empty());
    assert!(
        out.stderr.contains("sgwarden::audit"),
        "audit line on stderr"
    );

    // The operator's own change is judged like anyone's: the CLI is not the function, so
    // the identity it runs as (moto's `user/moto`) is never taken for the function's role.
    let own = cloudtrail::opened_by_hand(
        &ec2,
        REGION,
        &group,
        json!({"type": "IAMUser", "arn": "arn:aws:sts::123456789012:user/moto"}),
        json!([{"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]),
        true,
    )
    .await;
    let out = sgwarden(
        &emulator,
        &["run", "revert-ingress", "--event", "-"],
        &[],
        Some(&own.to_string()),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        ingress(&emulator, REGION, &group).await.is_empty(),
        "{}",
        out.stdout
    );

    // From standard input; a bad event is an error naming its type, exit 1.
    let out = sgwarden(
        &emulator,
        &["run", "revert-ingress", "--event", "-"],
        &[],
        Some(
            r#"{"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {}}"#,
        ),
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("(EventNotUnderstood)"),
        "{}",
        out.stderr
    );
    let out = sgwarden(
        &emulator,
        &["run", "notify-owner", "--event", "-"],
        &[],
        Some("{}"),
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("NOTIFY_SENDER"), "{}", out.stderr);
}

#[tokio::test]
async fn plan_revert_ingress_names_the_preset_that_decided_each_revert() {
    let emulator = Emulator::start();
    let ec2 = Client::new(&emulator.sdk_config(REGION).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
    world::hand_rule(&ec2, &group, 3306, "0.0.0.0/0", "drift").await;
    world::hand_rule(&ec2, &group, 3306, "10.0.0.0/8", "app").await;
    world::hand_rule(&ec2, &group, 443, "0.0.0.0/0", "web").await;
    let policy = (
        "REVERT_POLICY",
        r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
            "presets": ["security-hub-ec2-19"],
            "forbid": [{"protocol": "tcp", "ports": "443", "sources": ["0.0.0.0/1"]}]}"#
            .to_string(),
    );
    let out = sgwarden(
        &emulator,
        &["plan", "revert-ingress"],
        std::slice::from_ref(&policy),
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{ACCOUNT} {REGION} {group}\n\
             \x20 - ingress tcp/443 0.0.0.0/0  (forbidden by forbid[0]: ingress tcp/443 from 0.0.0.0/1)\n\
             \x20 - ingress tcp/3306 0.0.0.0/0  (forbidden by security-hub-ec2-19: ingress tcp/20, \
             tcp/21, tcp/22, … (24 ranges) from internet)\n\
             2 change(s) pending in 1 group(s).\n"
        )
    );
    assert_eq!(
        ingress(&emulator, REGION, &group).await.len(),
        3,
        "a plan changes nothing"
    );
}

#[tokio::test]
async fn plan_revert_ingress_shows_the_sweep_and_exits_2_while_changes_are_pending() {
    let emulator = Emulator::start();
    let ec2 = Client::new(&emulator.sdk_config(REGION).await);
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
    world::hand_rule(&ec2, &group, 22, "0.0.0.0/0", "drift").await;
    let policy = (
        "REVERT_POLICY",
        r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}, "directions": ["ingress"]}"#
            .to_string(),
    );
    let out = sgwarden(
        &emulator,
        &["plan", "revert-ingress"],
        std::slice::from_ref(&policy),
        None,
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{ACCOUNT} {REGION} {group}\n  - ingress tcp/22 0.0.0.0/0\n1 change(s) pending in 1 group(s).\n"
        )
    );
    assert_eq!(
        ingress(&emulator, REGION, &group).await.len(),
        1,
        "a plan changes nothing"
    );

    let sweep = world::scheduled_event(REGION).to_string();
    let out = sgwarden(
        &emulator,
        &["run", "revert-ingress", "--event", "-"],
        std::slice::from_ref(&policy),
        Some(&sweep),
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = sgwarden(&emulator, &["plan", "revert-ingress"], &[policy], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "No changes pending.\n");
    // Without a scope there is no sweep to plan: an error, not "nothing pending".
    let out = sgwarden(&emulator, &["plan", "revert-ingress"], &[], None).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("needs a scope"), "{}", out.stderr);
}

/// A one-region cluster: an Auto Scaling group of two, its security group, the registry.
struct Cluster {
    emulator: Emulator,
    ec2: Client,
    group: String,
    env: Vec<(&'static str, String)>,
    true_up: String,
    instances: Vec<String>,
}

impl Cluster {
    async fn new() -> Self {
        let emulator = Emulator::start();
        let config = emulator.sdk_config(REGION).await;
        let ec2 = Client::new(&config);
        let autoscaling = aws_sdk_autoscaling::Client::new(&config);
        let vpc = world::vpc(&ec2, "10.1.0.0/16").await;
        let group = world::group(&ec2, &vpc, "ring", &[]).await;
        world::registry_table(&aws_sdk_dynamodb::Client::new(&config), "registry").await;
        let instances = world::auto_scaling_group(&ec2, &autoscaling, REGION, "ring-asg", 2).await;
        let env = vec![
            ("SYNC_CLUSTER", "ring".to_string()),
            ("SYNC_AUTO_SCALING_GROUPS", "ring-asg".to_string()),
            ("SYNC_TABLE", "registry".to_string()),
            ("SYNC_SECURITY_GROUP_IDS", group.clone()),
            ("SYNC_PORTS", "tcp/9042".to_string()),
        ];
        let true_up =
            json!({"detail": {"AutoScalingGroupName": "ring-asg"}, "trueup": true}).to_string();
        Self {
            emulator,
            ec2,
            group,
            env,
            true_up,
            instances,
        }
    }

    async fn run_true_up(&self) -> Value {
        let out = sgwarden(
            &self.emulator,
            &["run", "asg-sync", "--event", "-"],
            &self.env,
            Some(&self.true_up),
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

#[tokio::test]
async fn plan_asg_sync_shows_drift_and_exits_0_when_in_step() {
    let c = Cluster::new().await;
    let report = c.run_true_up().await;
    assert_eq!(report["groups"][0]["added"].as_array().unwrap().len(), 2);
    let out = sgwarden(&c.emulator, &["plan", "asg-sync"], &c.env, None).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "No changes pending.\n");

    // Someone removes one of the cluster's rules by hand: the plan shows it coming back.
    let rules = ingress(&c.emulator, REGION, &c.group).await;
    let (rule, _) = &rules[0];
    let address = rule.rsplit(' ').next().unwrap().trim_end_matches("/32");
    c.ec2
        .revoke_security_group_ingress()
        .group_id(&c.group)
        .ip_protocol("tcp")
        .from_port(9042)
        .to_port(9042)
        .cidr_ip(format!("{address}/32"))
        .send()
        .await
        .unwrap();
    let out = sgwarden(&c.emulator, &["plan", "asg-sync"], &c.env, None).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "{REGION} {}\n  + ingress tcp/9042 {address}/32\n",
            c.group
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\u{1b}'), "no colour into a pipe");
    assert_eq!(ingress(&c.emulator, REGION, &c.group).await.len(), 1);
}

#[tokio::test]
async fn register_and_deregister_a_host_from_instance_metadata() {
    let emulator = Emulator::start();
    let remote = Client::new(&emulator.sdk_config(REMOTE).await);
    let vpc = world::vpc(&remote, "10.8.0.0/16").await;
    let group = world::group(&remote, &vpc, "eu-db", &[]).await;
    world::hand_rule(&remote, &group, 5432, "10.0.0.0/8", "app tier").await;
    let metadata = Metadata::start(&[
        ("instance-id", HOST),
        ("public-ipv4", "203.0.113.9"),
        ("local-ipv4", "10.1.2.3"),
        ("placement/region", REGION),
    ])
    .await;
    let env = vec![(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        metadata.endpoint().to_string(),
    )];
    let host = ["--group-id", group.as_str(), "--region", REMOTE];
    let register = |ports: &'static str, extra: &'static [&'static str]| {
        let mut args = vec!["register", "--ports", ports];
        args.extend(host);
        args.extend(extra);
        args
    };

    let out = sgwarden(&emulator, &register("tcp/5432,tcp/9042", &[]), &env, None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let owned = format!("sgwarden:{HOST} {REGION}/self-registered");
    assert_eq!(
        ingress(&emulator, REMOTE, &group).await,
        vec![
            (
                "ingress tcp/5432 10.0.0.0/8".to_string(),
                "app tier".to_string()
            ),
            ("ingress tcp/5432 203.0.113.9/32".to_string(), owned.clone()),
            ("ingress tcp/9042 203.0.113.9/32".to_string(), owned.clone()),
        ]
    );

    // After a reboot with a new address (the private one here), the old one is replaced.
    let out = sgwarden(
        &emulator,
        &register("tcp/5432,tcp/9042", &["--private"]),
        &env,
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rules = ingress(&emulator, REMOTE, &group).await;
    assert_eq!(rules.len(), 3);
    assert!(rules.iter().all(|(r, _)| !r.contains("203.0.113.9")));

    // The quota is checked before anything is added.
    let out = sgwarden(
        &emulator,
        &register("tcp/1,tcp/2,tcp/3", &["--quota", "3"]),
        &env,
        None,
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("(QuotaExceeded)"), "{}", out.stderr);
    assert_eq!(ingress(&emulator, REMOTE, &group).await, rules);

    let mut args = vec!["deregister"];
    args.extend(host);
    let out = sgwarden(&emulator, &args, &env, None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ingress(&emulator, REMOTE, &group).await,
        vec![(
            "ingress tcp/5432 10.0.0.0/8".to_string(),
            "app tier".to_string()
        )]
    );

    // No metadata and no --instance-id: a clear error, nothing changed.
    let out = sgwarden(
        &emulator,
        &register("tcp/22", &["--address", "198.51.100.1"]),
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            "http://127.0.0.1:9".to_string(),
        )],
        None,
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("(MetadataUnavailable)"),
        "{}",
        out.stderr
    );
    assert_eq!(ingress(&emulator, REMOTE, &group).await.len(), 1);
}

#[tokio::test]
async fn a_true_up_removes_registrations_of_instances_that_no_longer_exist() {
    let c = Cluster::new().await;
    // The cluster is in the registry: scheduled true-ups (and plans) have work to do.
    c.run_true_up().await;
    // One registrant still runs (a cluster node doubles as one here); the other is gone.
    let live = c.instances[0].clone();
    for (instance, address) in [(live.as_str(), "198.51.100.1"), (HOST, "198.51.100.2")] {
        let out = sgwarden(
            &c.emulator,
            &[
                "register",
                "--group-id",
                &c.group,
                "--region",
                REGION,
                "--ports",
                "tcp/22",
                "--instance-id",
                instance,
                "--instance-region",
                REGION,
                "--address",
                address,
            ],
            &[],
            None,
        )
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    // The plan shows the crashed host's registration going; the true-up removes it.
    let out = sgwarden(&c.emulator, &["plan", "asg-sync"], &c.env, None).await;
    assert!(
        out.stdout.contains("  - ingress tcp/22 198.51.100.2/32"),
        "{}",
        out.stdout
    );
    c.run_true_up().await;
    let rules: Vec<String> = ingress(&c.emulator, REGION, &c.group)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(
        rules.contains(&"ingress tcp/22 198.51.100.1/32".to_string()),
        "{rules:?}"
    );
    assert!(
        !rules.contains(&"ingress tcp/22 198.51.100.2/32".to_string()),
        "{rules:?}"
    );
}

#[tokio::test]
async fn approvals_round_trip_through_the_table_and_the_revert_honours_them() {
    let emulator = Emulator::start();
    let config = emulator.sdk_config(REGION).await;
    let ec2 = Client::new(&config);
    world::approvals_table(&aws_sdk_dynamodb::Client::new(&config), "approvals").await;
    let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
    let group = world::group(&ec2, &vpc, "db", &[]).await;
    let table = [("REVERT_APPROVALS_TABLE", "approvals".to_string())];
    emulator.clear_calls();

    // Refused before anything is written: anywhere, too long, a rule that does not parse.
    for (rule, duration) in [
        ("tcp/22 0.0.0.0/0", "4h"),
        ("tcp/22 ::/0", "4h"),
        ("tcp/22 203.0.113.7/32", "8d"),
        ("tcp/22", "4h"),
        ("tcp/22 203.0.113.7/32", "4 hours"),
    ] {
        let args = [
            "approve",
            "--group-id",
            &group,
            "--rule",
            rule,
            "--for",
            duration,
            "--reason",
            "x",
        ];
        let out = sgwarden(&emulator, &args, &table, None).await;
        assert_eq!(out.code, 1, "{rule} for {duration}: {}", out.stdout);
        assert!(out.stderr.contains("ApprovalRefused"), "{}", out.stderr);
    }
    assert!(emulator.calls().is_empty(), "{:?}", emulator.calls());

    let out = sgwarden(
        &emulator,
        &[
            "approve",
            "--group-id",
            &group,
            "--rule",
            "tcp/22 203.0.113.7/32",
            "--for",
            "4h",
            "--reason",
            "INC-42 vendor access",
        ],
        &table,
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with(&format!(
        "approved ingress tcp/22 203.0.113.7/32 on {group} as approval-"
    )));
    let approval_id = out
        .stdout
        .split(" as ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert!(
        out.stderr.contains("approval written"),
        "audited: {}",
        out.stderr
    );

    let listed = sgwarden(
        &emulator,
        &["approvals", "--group-id", &group],
        &table,
        None,
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("GROUP"), "{}", listed.stdout);
    assert_eq!(lines.len(), 2, "{}", listed.stdout);
    for expected in [
        group.as_str(),
        approval_id.as_str(),
        "ingress tcp/22 203.0.113.7/32",
        "arn:aws:sts::123456789012:user/moto",
        "INC-42 vendor access",
    ] {
        assert!(lines[1].contains(expected), "{expected} in {}", lines[1]);
    }
    assert!(
        lines[1].contains("3h 59m") || lines[1].contains("4h 0m"),
        "{}",
        lines[1]
    );

    // The revert function keeps the approved rule and reverts the rest of the same call.
    let event = cloudtrail::opened_by_hand(
        &ec2,
        REGION,
        &group,
        user("vendor"),
        json!([{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "203.0.113.7/32"}, {"cidrIp": "198.51.100.9/32"}]}}]),
        true,
    )
    .await;
    let file = std::env::temp_dir().join(format!("sgwarden-approved-{}.json", std::process::id()));
    std::fs::write(&file, event.to_string()).unwrap();
    let run = sgwarden(
        &emulator,
        &["run", "revert-ingress", "--event", file.to_str().unwrap()],
        &table,
        None,
    )
    .await;
    std::fs::remove_file(&file).unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["groups"][0]["revoked"],
        json!(["ingress tcp/22 198.51.100.9/32"])
    );
    assert_eq!(
        report["groups"][0]["kept"][0]["reason"],
        format!("approved ({approval_id})")
    );
    let left: Vec<String> = ingress(&emulator, REGION, &group)
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(left, vec!["ingress tcp/22 203.0.113.7/32"]);

    let revoked = sgwarden(
        &emulator,
        &["approvals", "revoke", &group, &approval_id],
        &table,
        None,
    )
    .await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert!(
        revoked.stderr.contains("approval deleted"),
        "audited: {}",
        revoked.stderr
    );
    let listed = sgwarden(&emulator, &["approvals"], &table, None).await;
    assert!(
        listed.stdout.contains("(no approvals)"),
        "{}",
        listed.stdout
    );
    let again = sgwarden(
        &emulator,
        &["approvals", "revoke", &group, &approval_id],
        &table,
        None,
    )
    .await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("ApprovalNotFound"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn plan_revert_ingress_covers_every_account_it_sweeps_and_names_those_it_cannot_reach() {
    const MEMBER: &str = "222233334444";
    const UNREACHABLE: &str = "333344445555";
    let emulator = Emulator::start();
    let mut groups = Vec::new();
    for account in [ACCOUNT, MEMBER] {
        let ec2 = Client::new(&emulator.account_sdk_config(account, REGION).await);
        let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
        let group = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
        world::hand_rule(&ec2, &group, 22, "0.0.0.0/0", "drift").await;
        groups.push(group);
    }
    emulator.create_role(MEMBER, "/security/", "sgwarden-member", &[ACCOUNT]);
    let env = [
        (
            "REVERT_POLICY",
            r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}, "directions": ["ingress"]}"#
                .to_string(),
        ),
        ("SGWARDEN_MEMBER_ROLE", "security/sgwarden-member".to_string()),
        ("SGWARDEN_ACCOUNTS", format!("{UNREACHABLE},{MEMBER}")),
    ];
    let out = sgwarden(&emulator, &["plan", "revert-ingress"], &env, None).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{ACCOUNT} {REGION} {}\n  - ingress tcp/22 0.0.0.0/0\n\
             {MEMBER} {REGION} {}\n  - ingress tcp/22 0.0.0.0/0\n\
             2 change(s) pending in 2 group(s).\n",
            groups[0], groups[1]
        )
    );
    assert!(
        out.stderr.contains(&format!(
            "not planned, account {UNREACHABLE} in {REGION}: AssumeRole"
        )),
        "{}",
        out.stderr
    );
    assert!(
        emulator
            .calls()
            .iter()
            .all(|c| !c.operation.starts_with("Revoke")),
        "a plan changes nothing"
    );
}
