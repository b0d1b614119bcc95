//! Building blocks for the worlds tests and the demo create in the emulator.

use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_sdk_ec2::Client;

/// Creates a VPC and returns its id.
pub async fn vpc(ec2: &Client, cidr: &str) -> String {
    ec2.create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .expect("create VPC")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("VPC id")
        .to_string()
}

/// Creates a security group in `vpc_id` and returns its id. Tags are `(key, value)`.
pub async fn group(ec2: &Client, vpc_id: &str, name: &str, tags: &[(&str, &str)]) -> String {
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description(format!("sgwarden test group {name}"))
        .vpc_id(vpc_id)
        .send()
        .await
        .expect("create security group")
        .group_id()
        .expect("group id")
        .to_string();
    if !tags.is_empty() {
        ec2.create_tags()
            .resources(&id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .send()
            .await
            .expect("tag security group");
    }
    id
}

/// Adds an IPv4 TCP ingress rule by hand, as an operator would in the console.
pub async fn hand_rule(ec2: &Client, group_id: &str, port: i32, cidr: &str, description: &str) {
    ec2.authorize_security_group_ingress()
        .group_id(group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(
                    IpRange::builder()
                        .cidr_ip(cidr)
                        .description(description)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("authorize hand-made rule");
}

/// Creates asg-sync's registry table (SPEC schema) and returns its name.
pub async fn registry_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    table(dynamodb, name, "cluster", Some("member")).await
}

/// Creates notify-owner's "mailed once" table and returns its name.
pub async fn dedup_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    table(dynamodb, name, "notification", None).await
}

/// Verifies a sender identity in SES (the emulator then accepts mail from it).
pub async fn verified_sender(ses: &aws_sdk_sesv2::Client, address: &str) {
    ses.create_email_identity()
        .email_identity(address)
        .send()
        .await
        .expect("verify sender");
}

/// An SNS delivery (the Lambda event) of AWS Config messages, one record each.
pub fn config_delivery(messages: &[serde_json::Value]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            serde_json::json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:config-topic:sub",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": format!("msg-{i}"),
                    "TopicArn": "arn:aws:sns:eu-west-1:123456789012:config-topic",
                    "Subject": "[AWS Config:eu-west-1] change",
                    "Message": message.to_string(),
                    "Timestamp": "2026-11-22T10:21:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {}
                }
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// Creates revert-ingress's approvals table (SPEC schema) and returns its name.
pub async fn approvals_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> String {
    table(dynamodb, name, "group_id", Some("approval_id")).await
}

/// Writes an approval of `rule` (e.g. `tcp/22 203.0.113.7/32`) on a group until `expires_at`.
pub async fn approve(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    group_id: &str,
    approval_id: &str,
    rule: &str,
    expires_at: u64,
) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    dynamodb
        .put_item()
        .table_name(table)
        .item("group_id", S(group_id.into()))
        .item("approval_id", S(approval_id.into()))
        .item("rule", S(rule.into()))
        .item("expires_at", N(expires_at.to_string()))
        .item("approved_by", S("security-lead".into()))
        .item("reason", S("change ticket".into()))
        .send()
        .await
        .expect("write approval");
}

/// A table with a string partition key (and a string sort key), billed per request.
async fn table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    partition: &str,
    sort: Option<&str>,
) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let mut request = dynamodb
        .create_table()
        .table_name(name)
        .attribute_definitions(attribute(partition))
        .key_schema(key(partition, KeyType::Hash));
    if let Some(sort) = sort {
        request = request
            .attribute_definitions(attribute(sort))
            .key_schema(key(sort, KeyType::Range));
    }
    request
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    name.to_string()
}

/// Creates an Auto Scaling group of `capacity` instances with launch and terminate
/// lifecycle hooks, and returns the ids of its instances.
pub async fn auto_scaling_group(
    ec2: &Client,
    autoscaling: &aws_sdk_autoscaling::Client,
    region: &str,
    name: &str,
    capacity: i32,
) -> Vec<String> {
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe images")
        .images()
        .first()
        .and_then(|i| i.image_id())
        .expect("the emulator ships images")
        .to_string();
    let template = format!("{name}-template");
    ec2.create_launch_template()
        .launch_template_name(&template)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("create launch template");
    autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(&template)
                .build(),
        )
        .min_size(0)
        .max_size(20)
        .desired_capacity(capacity)
        .availability_zones(format!("{region}a"))
        .send()
        .await
        .expect("create Auto Scaling group");
    for (hook, transition) in [
        ("sgwarden-launch", "autoscaling:EC2_INSTANCE_LAUNCHING"),
        ("sgwarden-terminate", "autoscaling:EC2_INSTANCE_TERMINATING"),
    ] {
        autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(name)
            .lifecycle_hook_name(hook)
            .lifecycle_transition(transition)
            .heartbeat_timeout(300)
            .send()
            .await
            .expect("put lifecycle hook");
    }
    asg_instances(autoscaling, name).await
}

/// The instance ids of an Auto Scaling group, sorted.
pub async fn asg_instances(autoscaling: &aws_sdk_autoscaling::Client, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .expect("describe Auto Scaling group")
        .auto_scaling_groups()
        .iter()
        .flat_map(|g| g.instances())
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Changes an Auto Scaling group's desired capacity and returns its instances after.
pub async fn scale(
    autoscaling: &aws_sdk_autoscaling::Client,
    name: &str,
    capacity: i32,
) -> Vec<String> {
    autoscaling
        .set_desired_capacity()
        .auto_scaling_group_name(name)
        .desired_capacity(capacity)
        .send()
        .await
        .expect("set desired capacity");
    asg_instances(autoscaling, name).await
}

/// An EventBridge lifecycle-action event, as Auto Scaling sends it.
pub fn lifecycle_event(
    region: &str,
    asg: &str,
    instance: &str,
    launching: bool,
) -> serde_json::Value {
    let (detail_type, hook, transition) = if launching {
        (
            "EC2 Instance-launch Lifecycle Action",
            "sgwarden-launch",
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        )
    } else {
        (
            "EC2 Instance-terminate Lifecycle Action",
            "sgwarden-terminate",
            "autoscaling:EC2_INSTANCE_TERMINATING",
        )
    };
    serde_json::json!({
        "version": "0", "id": format!("evt-{instance}"), "detail-type": detail_type,
        "source": "aws.autoscaling", "account": "123456789012", "time": "2026-11-22T10:00:00Z",
        "region": region, "resources": [],
        "detail": {
            "LifecycleActionToken": format!("token-{hook}-{instance}"), "AutoScalingGroupName": asg,
            "LifecycleHookName": hook, "EC2InstanceId": instance,
            "LifecycleTransition": transition, "NotificationMetadata": ""
        }
    })
}

/// The public addresses of instances, sorted.
pub async fn public_addresses(ec2: &Client, ids: &[String]) -> Vec<String> {
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .expect("describe instances");
    let mut addresses: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.public_ip_address().map(str::to_string))
        .collect();
    addresses.sort();
    addresses
}

/// An EventBridge schedule firing (asg-sync's true-up, revert-ingress's sweep).
pub fn scheduled_event(region: &str) -> serde_json::Value {
    sgwarden_core::event::asg::scheduled_event(region, "2026-11-22T10:00:00Z")
}

/// Creates an SNS topic and returns its ARN.
pub async fn topic(sns: &aws_sdk_sns::Client, name: &str) -> String {
    sns.create_topic()
        .name(name)
        .send()
        .await
        .expect("create topic")
        .topic_arn()
        .expect("topic ARN")
        .to_string()
}

/// Subscribes an HTTP endpoint (see [`crate::sink::HttpSink`]) to a topic.
pub async fn subscribe_http(sns: &aws_sdk_sns::Client, topic_arn: &str, url: &str) {
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("http")
        .endpoint(url)
        .send()
        .await
        .expect("subscribe endpoint");
}

/// The sweep's world (`make bench` and its tests): `count` groups in `vpc_id`, every other one
/// tagged `Protected=true`, each opened by hand to ssh and https from anywhere and to
/// postgres from 10.0.0.0/8. Returns the protected groups' ids, then the others'.
pub async fn sweep_world(ec2: &Client, vpc_id: &str, count: usize) -> (Vec<String>, Vec<String>) {
    let (mut protected, mut others) = (Vec::new(), Vec::new());
    for n in 0..count {
        let tags = if n % 2 == 0 {
            &[("Protected", "true")][..]
        } else {
            &[][..]
        };
        let id = group(ec2, vpc_id, &format!("fleet-{n}"), tags).await;
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(vec![
                tcp_permission(5432, "10.0.0.0/8"),
                tcp_permission(22, "0.0.0.0/0"),
                tcp_permission(443, "0.0.0.0/0"),
            ]))
            .send()
            .await
            .expect("open the fleet group");
        if n % 2 == 0 {
            protected.push(id);
        } else {
            others.push(id);
        }
    }
    (protected, others)
}

/// Opens ssh and https from anywhere again on groups a sweep closed.
pub async fn reopen(ec2: &Client, group_ids: &[String]) {
    for id in group_ids {
        ec2.authorize_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(vec![
                tcp_permission(22, "0.0.0.0/0"),
                tcp_permission(443, "0.0.0.0/0"),
            ]))
            .send()
            .await
            .expect("reopen the fleet group");
    }
}

/// The sweep world's policy: groups tagged `Protected=true`, postgres from 10.0.0.0/8 allowed.
pub const SWEEP_POLICY: &str = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
    "allow": [{"protocol": "tcp", "ports": "5432", "sources": ["10.0.0.0/8"]}],
    "directions": ["ingress"]}"#;

fn tcp_permission(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

/// A chat topic as Amazon Q Developer in chat applications would read it: an SNS topic with
/// an SQS queue subscribed (raw delivery), so a test reads back exactly what was published.
pub struct ChatTopic {
    pub arn: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl ChatTopic {
    pub async fn new(config: &aws_config::SdkConfig, name: &str) -> Self {
        let sns = aws_sdk_sns::Client::new(config);
        let sqs = aws_sdk_sqs::Client::new(config);
        let arn = topic(&sns, name).await;
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-reader"))
            .send()
            .await
            .expect("create chat queue")
            .queue_url()
            .expect("queue URL")
            .to_string();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue ARN")
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .expect("queue ARN attribute");
        sns.subscribe()
            .topic_arn(&arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribe the queue");
        Self {
            arn,
            queue_url,
            sqs,
        }
    }

    /// Every message published so far, each parsed as JSON (a test fails on any other text).
    pub async fn messages(&self) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive chat messages");
            let batch = out.messages();
            if batch.is_empty() {
                return all;
            }
            for message in batch {
                let body = message.body().unwrap_or_default();
                all.push(serde_json::from_str(body).expect("a chat message is JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .set_receipt_handle(message.receipt_handle().map(str::to_string))
                    .send()
                    .await
                    .expect("delete chat message");
            }
        }
    }
}

/// Checks `message` against the custom notification schema of Amazon Q Developer in chat
/// applications: the required fields and fixed values, and sgwarden's thread per subject.
pub fn assert_chat_schema(message: &serde_json::Value, thread: &str) {
    assert_eq!(message["version"], "1.0", "{message}");
    assert_eq!(message["source"], "custom", "{message}");
    let content = &message["content"];
    assert!(
        content["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{message}"
    );
    assert!(
        content["title"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.chars().count() <= 250),
        "{message}"
    );
    assert_eq!(content["textType"], "client-markdown", "{message}");
    if let Some(steps) = content.get("nextSteps") {
        assert!(
            steps
                .as_array()
                .is_some_and(|s| s.iter().all(|step| step.is_string())),
            "{message}"
        );
    }
    assert_eq!(message["metadata"]["threadId"], thread, "{message}");
    let known = ["version", "source", "content", "metadata", "id"];
    assert!(
        message
            .as_object()
            .is_some_and(|o| o.keys().all(|k| known.contains(&k.as_str()))),
        "{message}"
    );
}
