//! The revert-ingress part of `make demo`: a protected group is opened by hand and closed
//! again seconds later; an exempt administrator's change stays; drift is swept.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use revert_ingress::{OwnRole, Report, RevertConfig, RevertIngress};
use serde_json::{json, Value};
use sgwarden_aws::Ec2;
use sgwarden_core::Direction;
use sgwarden_lambda::Measured;
use sgwarden_tests::cloudtrail::{self, session, user};
use sgwarden_tests::sink::HttpSink;
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/NetworkAdmin";

fn tcp(port: i32, cidr: &str) -> Value {
    json!([{"ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "ipRanges": {"items": [{"cidrIp": cidr}]}}])
}

async fn show_group(ec2: &Ec2, group_id: &str) {
    let group = ec2.read_group(group_id).await.expect("read group");
    println!("   {group_id} ingress now:");
    for rule in group.rules.direction(Direction::Ingress).rules() {
        println!("      {}", rule.to_string().trim_start_matches("ingress "));
    }
}

fn show_report(report: &Report, took: Duration) {
    if let Some(reason) = &report.skipped {
        println!("   revert-ingress kept the change: {reason}");
    }
    for group in &report.groups {
        for rule in &group.revoked {
            println!(
                "   revert-ingress revoked {rule} ({:.0} ms)",
                took.as_secs_f64() * 1000.0
            );
        }
        for kept in &group.kept {
            println!("   kept {}: {}", kept.rule, kept.reason);
        }
    }
}

pub async fn run(emulator: &Emulator) {
    println!("\n== revert-ingress: unapproved changes undone within seconds ==");
    let sdk = emulator.sdk_config(REGION).await;
    let client = aws_sdk_ec2::Client::new(&sdk);
    let ec2 = Ec2::new(&sdk);
    let vpc = world::vpc(&client, "10.30.0.0/16").await;
    let group_id = world::group(&client, &vpc, "payments-db", &[("Protected", "true")]).await;
    world::hand_rule(&client, &group_id, 5432, "10.0.0.0/8", "app tier").await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let topic = world::topic(&sns, "sgwarden-reverts").await;
    let sink = HttpSink::start().await;
    world::subscribe_http(&sns, &topic, sink.url()).await;
    let policy = format!(
        r#"{{"scope": {{"tag": {{"key": "Protected", "value": "true"}}}},
            "exempt": {{"principals": ["{ADMIN_ROLE}"]}},
            "allow": [{{"protocol": "tcp", "ports": "5432", "sources": ["10.0.0.0/8"]}}],
            "directions": ["ingress"]}}"#
    );
    println!("Policy: groups tagged Protected=true; postgres from 10.0.0.0/8 allowed; changes by {ADMIN_ROLE} stand.");
    // Exemptions are recorded in the approvals table, which only sgwarden and the security
    // team can write: a rule tag anyone can set would prove nothing.
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let approvals = world::approvals_table(&dynamodb, "sgwarden-approvals").await;
    let chat = world::ChatTopic::new(&sdk, "security-team-chat").await;
    let vars: HashMap<&str, String> = HashMap::from([
        ("REVERT_POLICY", policy),
        ("REVERT_APPROVALS_TABLE", approvals),
        ("REVERT_NOTIFY_TOPIC_ARN", topic.clone()),
        ("CHAT_TOPIC_ARN", chat.arn.clone()),
    ]);
    let config =
        RevertConfig::from_lookup(|k| vars.get(k).cloned()).expect("demo settings are valid");
    let function = RevertIngress::new(config, &sdk, OwnRole::Unknown);
    show_group(&ec2, &group_id).await;

    println!("\n-- alice opens ssh to the world on the protected group, by hand");
    let event = cloudtrail::opened_by_hand(
        &client,
        REGION,
        &group_id,
        user("alice"),
        tcp(22, "0.0.0.0/0"),
        true,
    )
    .await;
    show_group(&ec2, &group_id).await;
    let start = Instant::now();
    let report = function
        .handle(&event, SystemTime::now())
        .await
        .expect("revert");
    show_report(&report, start.elapsed());
    show_group(&ec2, &group_id).await;
    println!("   the metrics line the Lambda writes after this invocation (CloudWatch EMF):");
    let mut counts = report.counts();
    counts.push(("Errors", 0));
    println!(
        "      {}",
        sgwarden_lambda::emf(revert_ingress::FUNCTION, &counts, 0)
    );
    show_chat(&chat).await;
    if let Some(delivered) = sink.wait_for(1, Duration::from_secs(5)).await.first() {
        println!("   the security team's endpoint received from SNS:");
        let record: Value =
            serde_json::from_str(delivered["Message"].as_str().unwrap_or("{}")).unwrap_or_default();
        println!(
            "      {}",
            serde_json::to_string_pretty(&record)
                .unwrap_or_default()
                .replace('\n', "\n      ")
        );
    }

    println!("\n-- bob, as NetworkAdmin, opens postgres to a partner network");
    let event = cloudtrail::opened_by_hand(
        &client,
        REGION,
        &group_id,
        session("", "NetworkAdmin", "bob"),
        tcp(5432, "198.51.100.0/24"),
        true,
    )
    .await;
    let start = Instant::now();
    let report = function
        .handle(&event, SystemTime::now())
        .await
        .expect("exempt");
    show_report(&report, start.elapsed());
    println!(
        "   recorded in the approvals table, so sweeps keep it while it keeps this shape: {:?}",
        report.exempted
    );

    println!(
        "\n-- someone opens rdp while the function was down (no event), and tags the rule\n   sgwarden:exempt={ADMIN_ROLE} to make it look approved: the hourly sweep finds it"
    );
    world::hand_rule(&client, &group_id, 3389, "0.0.0.0/0", "debugging").await;
    let rdp = cloudtrail::rules(&client, &group_id)
        .await
        .into_iter()
        .find(|r| r["fromPort"] == 3389)
        .and_then(|r| r["securityGroupRuleId"].as_str().map(str::to_string))
        .expect("the rdp rule exists");
    client
        .create_tags()
        .resources(rdp)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("sgwarden:exempt")
                .value(ADMIN_ROLE)
                .build(),
        )
        .send()
        .await
        .expect("tag the rule");
    println!("   (a tag anyone with ec2:CreateTags can write proves nothing; only the approvals table does)");
    println!("   the operator previews the sweep with the CLI:");
    println!("   $ sgwarden plan revert-ingress");
    let cli = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("sgwarden")));
    let preview = cli.map(|cli| {
        std::process::Command::new(cli)
            .args(["plan", "revert-ingress"])
            .env_clear()
            .envs(emulator.function_env(REGION))
            .env("REVERT_POLICY", vars["REVERT_POLICY"].clone())
            .env(
                "REVERT_APPROVALS_TABLE",
                vars["REVERT_APPROVALS_TABLE"].clone(),
            )
            .output()
    });
    match preview {
        Some(Ok(out)) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                println!("   | {line}");
            }
            println!(
                "   (exit code {}: changes pending)",
                out.status.code().unwrap_or(-1)
            );
        }
        _ => println!("   (the sgwarden binary is not built; `make demo` builds it)"),
    }
    let start = Instant::now();
    let report = function
        .handle(&world::scheduled_event(REGION), SystemTime::now())
        .await
        .expect("sweep");
    show_report(&report, start.elapsed());
    show_group(&ec2, &group_id).await;
    show_chat(&chat).await;

    println!("\n-- a vendor needs ssh from one address for an afternoon: the operator approves it");
    let approve = [
        "approve",
        "--group-id",
        &group_id,
        "--rule",
        "tcp/22 203.0.113.7/32",
        "--for",
        "4h",
        "--reason",
        "vendor maintenance, CHG-1234",
    ];
    sgwarden_cli(emulator, &vars, &approve);
    sgwarden_cli(emulator, &vars, &["approvals"]);
    println!("   (revert-ingress keeps a rule inside an approval until it expires; `sgwarden approvals revoke` ends it early)");
}

/// Runs the `sgwarden` CLI as an operator would, printing the command and its output.
fn sgwarden_cli(emulator: &Emulator, vars: &HashMap<&str, String>, args: &[&str]) {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\"{a}\"")
            } else {
                a.to_string()
            }
        })
        .collect();
    println!("   $ sgwarden {}", quoted.join(" "));
    let cli = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("sgwarden")));
    let Some(cli) = cli else { return };
    match std::process::Command::new(cli)
        .args(args)
        .env_clear()
        .envs(emulator.function_env(REGION))
        .env(
            "REVERT_APPROVALS_TABLE",
            vars["REVERT_APPROVALS_TABLE"].clone(),
        )
        .output()
    {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                println!("   | {line}");
            }
        }
        Err(_) => println!("   (the sgwarden binary is not built; `make demo` builds it)"),
    }
}

/// Prints the chat messages published since the last call, as a channel would show them.
async fn show_chat(chat: &world::ChatTopic) {
    for message in chat.messages().await {
        println!(
            "   chat ({}): {}",
            message["metadata"]["threadId"].as_str().unwrap_or(""),
            message["content"]["title"].as_str().unwrap_or("")
        );
        for line in message["content"]["description"]
            .as_str()
            .unwrap_or("")
            .lines()
        {
            println!("      {line}");
        }
        if let Some(step) = message["content"]["nextSteps"][0].as_str() {
            println!("      next: {step}");
        }
    }
}
