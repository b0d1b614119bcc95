//! The central part of `make demo`: one revert-ingress in the security account guards a
//! member account through the member role, from the member's event and by its sweep, and
//! names the account it cannot reach.

use std::time::SystemTime;

use revert_ingress::{OwnRole, Report, RevertConfig, RevertIngress};
use serde_json::json;
use sgwarden_aws::Ec2;
use sgwarden_core::accounts::CallerIdentity;
use sgwarden_core::Direction;
use sgwarden_tests::cloudtrail::{self, in_account, user, ACCOUNT as CENTRAL};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "us-east-1";
const MEMBER: &str = "222233334444";
const WITHOUT_ROLE: &str = "333344445555";
const MEMBER_ROLE: &str = "sgwarden-member";

async fn show_group(ec2: &Ec2, account: &str, group_id: &str) {
    let group = ec2.read_group(group_id).await.expect("read group");
    let rules: Vec<String> = group
        .rules
        .direction(Direction::Ingress)
        .rules()
        .map(|r| r.to_string().trim_start_matches("ingress ").to_string())
        .collect();
    println!("   {account} {group_id} ingress now: {}", rules.join(", "));
}

fn show_report(report: &Report) {
    if let Some(reason) = &report.skipped {
        println!("   skipped: {reason}");
    }
    for group in &report.groups {
        for rule in &group.revoked {
            println!(
                "   revoked {rule} in account {} ({})",
                group.account.as_deref().unwrap_or("?"),
                group.group_id
            );
        }
    }
    for unswept in &report.unswept {
        println!(
            "   not swept: account {} in {}: {}",
            unswept.account, unswept.region, unswept.reason
        );
    }
}

pub async fn run(emulator: &Emulator) {
    println!("\n== One deployment, many accounts: the security account guards a member ==");
    let member_sdk = emulator.account_sdk_config(MEMBER, REGION).await;
    let client = aws_sdk_ec2::Client::new(&member_sdk);
    let ec2 = Ec2::new(&member_sdk);
    let vpc = world::vpc(&client, "10.40.0.0/16").await;
    let group_id = world::group(&client, &vpc, "orders-db", &[("Guarded", "central")]).await;
    world::hand_rule(&client, &group_id, 5432, "10.0.0.0/8", "app tier").await;
    let role = emulator.create_role(MEMBER, "/", MEMBER_ROLE, &[CENTRAL]);
    println!("Member account {MEMBER} runs the member stack: its role {role} trusts the central functions.");
    println!("Account {WITHOUT_ROLE} is listed too, but has no member role yet.");
    let policy = r#"{"scope": {"tag": {"key": "Guarded", "value": "central"}},
        "allow": [{"protocol": "tcp", "ports": "5432", "sources": ["10.0.0.0/8"]}],
        "directions": ["ingress"]}"#;
    let vars = [
        ("REVERT_POLICY", policy.to_string()),
        ("SGWARDEN_MEMBER_ROLE", MEMBER_ROLE.to_string()),
        ("SGWARDEN_ACCOUNTS", format!("{MEMBER},{WITHOUT_ROLE}")),
    ];
    let config = RevertConfig::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("demo settings are valid");
    let central = emulator.sdk_config(REGION).await;
    let function = RevertIngress::new(
        config,
        &central,
        OwnRole::Known(CallerIdentity::new(format!(
            "arn:aws:iam::{CENTRAL}:role/sgwarden-revert-ingress"
        ))),
    );

    println!(
        "\n-- mallory opens ssh to the world in the member account; its rule forwards the event"
    );
    let event = cloudtrail::opened_by_hand(
        &client,
        REGION,
        &group_id,
        user("mallory"),
        json!([{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]),
        true,
    )
    .await;
    let event = in_account(&event, MEMBER);
    show_group(&ec2, MEMBER, &group_id).await;
    let report = function
        .handle(&event, SystemTime::now())
        .await
        .expect("revert");
    show_report(&report);
    show_group(&ec2, MEMBER, &group_id).await;
    let assumed = emulator.calls_of("AssumeRole");
    if let Some(call) = assumed.first() {
        println!(
            "   acted as {} (session {})",
            call.params["RoleArn"].as_str().unwrap_or("?"),
            call.params["RoleSessionName"].as_str().unwrap_or("?")
        );
    }

    println!("\n-- someone opens RDP there while the forwarding rule is off; the hourly sweep covers every account");
    world::hand_rule(&client, &group_id, 3389, "0.0.0.0/0", "by hand").await;
    let report = function
        .handle(&world::scheduled_event(REGION), SystemTime::now())
        .await
        .expect("sweep");
    show_report(&report);
    show_group(&ec2, MEMBER, &group_id).await;
}
