//! The emulator harness itself: it starts and stops cleanly, records calls, simulates
//! outages, and fills the gaps moto 5.2.5 has, in the real wire format, as the Rust SDK
//! sees it.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;

use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use serde_json::json;
use sgwarden_aws::AwsError;
use sgwarden_tests::{Emulator, Outage};

#[tokio::test]
async fn starts_on_a_free_port_and_stops_on_drop() {
    let first = Emulator::start();
    let second = Emulator::start();
    assert_ne!(
        first.port(),
        second.port(),
        "each test gets its own emulator"
    );
    let (port, pid) = (first.port(), first.pid());
    assert!(first.calls().is_empty());
    drop(first);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers after drop"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "launcher process {pid} outlived its emulator"
    );
    assert!(
        second.calls().is_empty(),
        "the other emulator is unaffected"
    );
}

#[tokio::test]
async fn records_each_call_with_its_region() {
    let emulator = Emulator::start();
    for region in ["us-east-1", "eu-west-1"] {
        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config(region).await);
        ec2.describe_security_groups().send().await.unwrap();
    }
    let calls = emulator.calls_of("DescribeSecurityGroups");
    let regions: Vec<_> = calls.iter().map(|c| c.region.as_str()).collect();
    assert_eq!(regions, ["us-east-1", "eu-west-1"]);
    assert!(calls.iter().all(|c| c.service == "ec2"));
    emulator.clear_calls();
    assert!(emulator.calls().is_empty());
}

#[tokio::test]
async fn a_hanging_region_fails_as_unreachable_and_recovers() {
    let emulator = Emulator::start();
    let config = emulator.sdk_config("us-west-2").await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    emulator.set_outage("us-west-2", Outage::Hang);
    let err = ec2.describe_security_groups().send().await.unwrap_err();
    let err = AwsError::from_sdk("DescribeSecurityGroups", "all", "us-west-2", err);
    assert!(matches!(err, AwsError::Unreachable { .. }), "{err}");
    assert!(err.is_transient());

    let other = aws_sdk_ec2::Client::new(&emulator.sdk_config("us-east-1").await);
    other
        .describe_security_groups()
        .send()
        .await
        .expect("other regions keep answering");

    emulator.set_outage("us-west-2", Outage::None);
    ec2.describe_security_groups()
        .send()
        .await
        .expect("region answers again");
}

#[tokio::test]
async fn an_erroring_region_answers_503() {
    let emulator = Emulator::start();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config("eu-west-1").await);
    emulator.set_outage("eu-west-1", Outage::Error);
    let err = ec2.describe_security_groups().send().await.unwrap_err();
    let err = AwsError::from_sdk("DescribeSecurityGroups", "all", "eu-west-1", err);
    assert!(err.is_transient(), "{err}");
    // The SDK's standard retry tried more than once, and stopped.
    let attempts = emulator.calls_of("DescribeSecurityGroups").len();
    assert_eq!(attempts as u32, sgwarden_aws::sdk::MAX_ATTEMPTS);
}

async fn group_with_hook(emulator: &Emulator, region: &str) -> aws_sdk_autoscaling::Client {
    let config = emulator.sdk_config(region).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    ec2.create_launch_template()
        .launch_template_name("db")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let asg = aws_sdk_autoscaling::Client::new(&config);
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("db")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("db")
                .build(),
        )
        .min_size(0)
        .max_size(3)
        .desired_capacity(0)
        .availability_zones(format!("{region}a"))
        .send()
        .await
        .unwrap();
    asg.put_lifecycle_hook()
        .auto_scaling_group_name("db")
        .lifecycle_hook_name("sgwarden-launch")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
        .heartbeat_timeout(300)
        .send()
        .await
        .unwrap();
    asg
}

#[tokio::test]
async fn lifecycle_actions_complete_once() {
    let emulator = Emulator::start();
    let asg = group_with_hook(&emulator, "us-east-1").await;
    asg.record_lifecycle_action_heartbeat()
        .auto_scaling_group_name("db")
        .lifecycle_hook_name("sgwarden-launch")
        .instance_id("i-0123456789abcdef0")
        .send()
        .await
        .expect("heartbeat on an active action");
    let complete = || {
        asg.complete_lifecycle_action()
            .auto_scaling_group_name("db")
            .lifecycle_hook_name("sgwarden-launch")
            .instance_id("i-0123456789abcdef0")
            .lifecycle_action_result("CONTINUE")
            .send()
    };
    complete().await.expect("first completion");
    let again = complete().await.unwrap_err();
    let again = AwsError::from_sdk("CompleteLifecycleAction", "db", "us-east-1", again);
    assert_eq!(again.code(), Some("ValidationError"), "{again}");

    let unknown_hook = asg
        .complete_lifecycle_action()
        .auto_scaling_group_name("db")
        .lifecycle_hook_name("no-such-hook")
        .instance_id("i-1")
        .lifecycle_action_result("CONTINUE")
        .send()
        .await;
    assert!(unknown_hook.is_err());

    let calls = emulator.calls_of("CompleteLifecycleAction");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].params["LifecycleActionResult"], "CONTINUE");
    assert_eq!(calls[0].params["InstanceId"], "i-0123456789abcdef0");
}

#[tokio::test]
async fn config_history_answers_for_security_groups() {
    let emulator = Emulator::start();
    let configuration = json!({"groupId": "sg-0123456789abcdef0", "ipPermissions": []});
    let item = |state: &str, time: i64| {
        json!({
            "version": "1.3", "accountId": "123456789012",
            "configurationItemCaptureTime": time, "configurationItemStatus": "OK",
            "configurationStateId": state, "arn": "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0",
            "resourceType": "AWS::EC2::SecurityGroup", "resourceId": "sg-0123456789abcdef0",
            "resourceName": "web", "awsRegion": "eu-west-1", "availabilityZone": "Not Applicable",
            "tags": {"OwnerDL": "team@example.com"}, "relatedEvents": [], "relationships": [],
            "configuration": configuration.to_string(), "supplementaryConfiguration": {}
        })
    };
    emulator.seed_config_history(&json!([item("1", 1_700_000_000), item("2", 1_700_000_600)]));
    let config = aws_sdk_config::Client::new(&emulator.sdk_config("eu-west-1").await);
    let history = config
        .get_resource_config_history()
        .resource_type(aws_sdk_config::types::ResourceType::SecurityGroup)
        .resource_id("sg-0123456789abcdef0")
        .limit(2)
        .send()
        .await
        .expect("history for a seeded group");
    let items = history.configuration_items();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].configuration_state_id(), Some("2"), "newest first");
    assert_eq!(
        items[0].configuration(),
        Some(configuration.to_string().as_str())
    );
    assert_eq!(
        items[0].configuration_item_capture_time().map(|t| t.secs()),
        Some(1_700_000_600)
    );

    let unknown = config
        .get_resource_config_history()
        .resource_type(aws_sdk_config::types::ResourceType::SecurityGroup)
        .resource_id("sg-unknown")
        .send()
        .await
        .unwrap_err();
    let unknown = AwsError::from_sdk(
        "GetResourceConfigHistory",
        "sg-unknown",
        "eu-west-1",
        unknown,
    );
    assert_eq!(unknown.code(), Some("ResourceNotDiscoveredException"));
}

#[tokio::test]
async fn sesv2_lists_identities_and_keeps_both_mail_parts() {
    let emulator = Emulator::start();
    let ses = aws_sdk_sesv2::Client::new(&emulator.sdk_config("eu-west-1").await);
    ses.create_email_identity()
        .email_identity("sgwarden@example.com")
        .send()
        .await
        .unwrap();
    let listed = ses
        .list_email_identities()
        .send()
        .await
        .expect("list-identities path");
    let names: Vec<_> = listed
        .email_identities()
        .iter()
        .filter_map(|i| i.identity_name())
        .collect();
    assert_eq!(names, ["sgwarden@example.com"]);

    let text = Content::builder().data("plain part").build().unwrap();
    let html = Content::builder().data("<p>html part</p>").build().unwrap();
    ses.send_email()
        .from_email_address("sgwarden@example.com")
        .destination(
            Destination::builder()
                .to_addresses("owner@example.com")
                .build(),
        )
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(Content::builder().data("subject").build().unwrap())
                        .body(Body::builder().text(text).html(html).build())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("send email");
    let sent = emulator.calls_of("POST /v2/email/outbound-emails");
    assert_eq!(sent.len(), 1);
    let body = &sent[0].params["Content"]["Simple"]["Body"];
    assert_eq!(body["Text"]["Data"], "plain part");
    assert_eq!(body["Html"]["Data"], "<p>html part</p>");
    assert_eq!(
        sent[0].params["Destination"]["ToAddresses"][0],
        "owner@example.com"
    );
}
