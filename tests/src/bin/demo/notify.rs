//! The notify-owner part of `make demo`: a change on a group tagged for notification, the
//! mail its owners get (read back from what SES received), and the redelivery that mails
//! nobody twice. The mail's HTML part is written to `target/demo/notify-owner-mail.html`
//! (`make mail-png` renders it for the guide).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use notify_owner::{NotifyConfig, NotifyOwner};
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, session};
use sgwarden_tests::{world, Emulator};

const REGION: &str = "eu-west-1";
const SENDER: &str = "sgwarden@example.com";

/// Where the demo leaves the mail's HTML part.
pub fn mail_html_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/demo/notify-owner-mail.html")
}

pub async fn run(emulator: &Emulator) {
    println!("\n== notify-owner: the owner hears exactly what changed ==");
    let sdk = emulator.sdk_config(REGION).await;
    world::verified_sender(&aws_sdk_sesv2::Client::new(&sdk), SENDER).await;
    world::dedup_table(&aws_sdk_dynamodb::Client::new(&sdk), "sgwarden-notified").await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc = world::vpc(&ec2, "10.40.0.0/16").await;
    let owners = "db-team@example.com, lead@example.com";
    let group_id = world::group(
        &ec2,
        &vpc,
        "orders-db",
        &[("NotifyOnChange", "yes"), ("OwnerDL", owners)],
    )
    .await;
    world::hand_rule(&ec2, &group_id, 22, "192.0.2.0/24", "office ssh").await;
    println!("Group {group_id} (orders-db) is tagged NotifyOnChange=yes, OwnerDL={owners}.");

    println!("\n-- carol, a developer, replaces the office ssh rule by postgres open to the world");
    ec2.revoke_security_group_ingress()
        .group_id(&group_id)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("192.0.2.0/24")
        .send()
        .await
        .expect("revoke office ssh");
    let event = cloudtrail::opened_by_hand(
        &ec2,
        REGION,
        &group_id,
        session("", "Developer", "carol"),
        json!([{"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0", "description": "temporary, for a demo"}]}}]),
        true,
    )
    .await;
    emulator.seed_cloudtrail_events(&json!([event["detail"].clone()]));
    // What AWS Config then streams: the recorded message shape, for this group and change.
    let message = config_message(&group_id, &event["detail"]["eventID"], owners);
    let vars: HashMap<&str, String> = HashMap::from([
        ("NOTIFY_SENDER", SENDER.to_string()),
        ("NOTIFY_DEDUP_TABLE", "sgwarden-notified".to_string()),
        ("ALLOWED_RECIPIENT_DOMAINS", "example.com".to_string()),
    ]);
    let config =
        NotifyConfig::from_lookup(|k| vars.get(k).cloned()).expect("demo settings are valid");
    let function = NotifyOwner::new(config, &sdk).expect("templates compile");
    let delivery = world::config_delivery(&[message]);
    let report = function
        .handle(&delivery, SystemTime::now())
        .await
        .expect("notify");
    println!("   notify-owner: {}", report.messages[0].outcome);
    if let Some(mail) = emulator.calls_of("POST /v2/email/outbound-emails").last() {
        let content = &mail.params["Content"]["Simple"];
        println!("   SES received one mail:");
        println!("   To:      {}", mail.params["Destination"]["ToAddresses"]);
        println!(
            "   Subject: {}",
            content["Subject"]["Data"].as_str().unwrap_or("")
        );
        for line in content["Body"]["Text"]["Data"]
            .as_str()
            .unwrap_or("")
            .lines()
        {
            println!("   | {line}");
        }
        let path = mail_html_path();
        let written = path.parent().map(std::fs::create_dir_all).map(|_| {
            std::fs::write(
                &path,
                content["Body"]["Html"]["Data"].as_str().unwrap_or(""),
            )
        });
        if let Some(Ok(())) = written {
            println!("   (its HTML part: {})", path.display());
        }
    }

    println!("\n-- SNS delivers the same message again");
    let again = function
        .handle(&delivery, SystemTime::now())
        .await
        .expect("redelivery");
    println!(
        "   notify-owner: {} ({}); SES received {} mail in all",
        again.messages[0].outcome,
        again.messages[0]
            .reason
            .as_ref()
            .map_or(String::new(), ToString::to_string),
        emulator.calls_of("POST /v2/email/outbound-emails").len()
    );
}

fn config_message(group_id: &str, event_id: &Value, owners: &str) -> Value {
    let permission = json!({"fromPort": 5432, "ipProtocol": "tcp", "ipv6Ranges": [],
        "prefixListIds": [], "toPort": 5432, "userIdGroupPairs": [],
        "ipv4Ranges": [{"cidrIp": "0.0.0.0/0", "description": "temporary, for a demo"}],
        "ipRanges": ["0.0.0.0/0"]});
    let office = json!({"fromPort": 22, "ipProtocol": "tcp", "ipv6Ranges": [],
        "prefixListIds": [], "toPort": 22, "userIdGroupPairs": [],
        "ipv4Ranges": [{"cidrIp": "192.0.2.0/24", "description": "office ssh"}],
        "ipRanges": ["192.0.2.0/24"]});
    json!({
        "configurationItemDiff": {
            "changedProperties": {
                "Configuration.IpPermissions.0": {
                    "previousValue": office, "updatedValue": permission, "changeType": "UPDATE"
                }
            },
            "changeType": "UPDATE"
        },
        "configurationItem": {
            "relatedEvents": [event_id],
            "relationships": [],
            "configuration": {"groupId": group_id, "groupName": "orders-db",
                "ipPermissions": [permission], "ipPermissionsEgress": []},
            "supplementaryConfiguration": {},
            "tags": {"NotifyOnChange": "yes", "OwnerDL": owners},
            "configurationItemVersion": "1.3",
            "configurationItemCaptureTime": "2026-11-22T10:00:30.000Z",
            "configurationStateId": 1763805630000u64,
            "awsAccountId": cloudtrail::ACCOUNT,
            "configurationItemStatus": "OK",
            "resourceType": "AWS::EC2::SecurityGroup",
            "resourceId": group_id,
            "resourceName": "orders-db",
            "awsRegion": REGION
        },
        "notificationCreationTime": "2026-11-22T10:01:00.000Z",
        "messageType": "ConfigurationItemChangeNotification",
        "recordVersion": "1.3"
    })
}
