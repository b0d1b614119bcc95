//! Attacks on notify-owner.
//!
//! The insider changes a group opted in to notify-owner for real in the emulator (one
//! `CreateTags` or `DeleteTags` and one new rule, as an ordinary EC2 user may), AWS Config's
//! item change for it is built from the group as EC2 held it before and after (its
//! configuration, its tags, and `configurationItemDiff.changedProperties` in Config's
//! spelling), and the real notify-owner binary gets it through the Lambda Runtime API.
//! What SES received, read back from the emulator's call log, is the verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{IpPermission, SecurityGroup, Tag};
use aws_sdk_ec2::Client;
use serde_json::{json, Map, Value};
use sgwarden_tests::cloudtrail::ACCOUNT;
use sgwarden_tests::runtime::{Outcome, RuntimeApi};
use sgwarden_tests::{world, Call, Emulator};

const REGION: &str = "eu-west-1";
const SENDER: &str = "sgwarden@example.com";
const DEDUP: &str = "sgwarden-notified";
const SEND: &str = "POST /v2/email/outbound-emails";
const OWNERS: &str = "db-team@example.com, lead@example.com";

/// An opted-in group owned by `OWNERS`, in an emulator with a verified sender and the
/// "mailed once" table.
struct World {
    emulator: Emulator,
    ec2: Client,
    group_id: String,
}

impl World {
    async fn new() -> Self {
        let emulator = Emulator::start();
        let sdk = emulator.sdk_config(REGION).await;
        world::verified_sender(&aws_sdk_sesv2::Client::new(&sdk), SENDER).await;
        world::dedup_table(&aws_sdk_dynamodb::Client::new(&sdk), DEDUP).await;
        let ec2 = Client::new(&sdk);
        let vpc = world::vpc(&ec2, "10.6.0.0/16").await;
        let group_id = world::group(
            &ec2,
            &vpc,
            "payments-db",
            &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNERS)],
        )
        .await;
        Self {
            emulator,
            ec2,
            group_id,
        }
    }

    async fn group(&self) -> SecurityGroup {
        self.ec2
            .describe_security_groups()
            .group_ids(&self.group_id)
            .send()
            .await
            .expect("describe the group")
            .security_groups()[0]
            .clone()
    }

    /// The insider's change, made for real: tags set and removed in one call each, and SSH
    /// opened to the world. Returns Config's item change for it.
    async fn attack(&self, set: &[(&str, &str)], remove: &[&str]) -> Value {
        let before = self.group().await;
        if !set.is_empty() {
            self.ec2
                .create_tags()
                .resources(&self.group_id)
                .set_tags(Some(
                    set.iter()
                        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                        .collect(),
                ))
                .send()
                .await
                .expect("re-tag the group");
        }
        if !remove.is_empty() {
            self.ec2
                .delete_tags()
                .resources(&self.group_id)
                .set_tags(Some(
                    remove
                        .iter()
                        .map(|k| Tag::builder().key(*k).build())
                        .collect(),
                ))
                .send()
                .await
                .expect("untag the group");
        }
        world::hand_rule(&self.ec2, &self.group_id, 22, "0.0.0.0/0", "debug").await;
        let after = self.group().await;
        self.emulator.seed_cloudtrail_events(&json!([{
            "eventID": "ev-mallory", "awsRegion": REGION, "eventName": "CreateTags",
            "eventSource": "ec2.amazonaws.com",
            "userIdentity": {"type": "IAMUser", "userName": "mallory",
                             "arn": format!("arn:aws:iam::{ACCOUNT}:user/mallory")}
        }]));
        item_change(&before, &after)
    }

    /// Delivers Config's `message` to the real binary (one SNS delivery, through the
    /// Runtime API), with `ALLOWED_RECIPIENT_DOMAINS` as given; the binary must answer.
    async fn deliver(&self, message: &Value, allowed_domains: &str) {
        self.emulator.clear_calls();
        let runtime = RuntimeApi::start().await;
        let mut env = self.emulator.function_env(REGION);
        env.push(("NOTIFY_SENDER", SENDER.to_string()));
        env.push(("NOTIFY_DEDUP_TABLE", DEDUP.to_string()));
        env.push(("ALLOWED_RECIPIENT_DOMAINS", allowed_domains.to_string()));
        let function = runtime.spawn("notify-owner", &env);
        runtime.invoke(world::config_delivery(std::slice::from_ref(message)));
        let outcomes = runtime.outcomes(1, Duration::from_secs(60)).await;
        let logs = function.stop();
        assert!(
            matches!(outcomes.as_slice(), [Outcome::Response { .. }]),
            "{outcomes:?}\n{logs}"
        );
    }

    fn mails(&self) -> Vec<Call> {
        self.emulator.calls_of(SEND)
    }
}

/// One permission in Config's spelling (the configuration's `ipPermissions` items).
fn permission(p: &IpPermission) -> Value {
    let mut out = Map::new();
    out.insert("ipProtocol".into(), json!(p.ip_protocol()));
    if let Some(port) = p.from_port() {
        out.insert("fromPort".into(), json!(port));
    }
    if let Some(port) = p.to_port() {
        out.insert("toPort".into(), json!(port));
    }
    let v4: Vec<Value> = p
        .ip_ranges()
        .iter()
        .map(|r| json!({"cidrIp": r.cidr_ip(), "description": r.description()}))
        .collect();
    let v6: Vec<Value> = p
        .ipv6_ranges()
        .iter()
        .map(|r| json!({"cidrIpv6": r.cidr_ipv6(), "description": r.description()}))
        .collect();
    out.insert("ipv4Ranges".into(), json!(v4));
    out.insert("ipv6Ranges".into(), json!(v6));
    out.insert("prefixListIds".into(), json!([]));
    out.insert("userIdGroupPairs".into(), json!([]));
    Value::Object(out)
}

fn tags(group: &SecurityGroup) -> BTreeMap<String, String> {
    group
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn change_type(before: &Value, after: &Value) -> &'static str {
    match (before.is_null(), after.is_null()) {
        (true, _) => "CREATE",
        (_, true) => "DELETE",
        _ => "UPDATE",
    }
}

/// Config's diff of two lists, index by index, as `<prefix>.<n>` properties.
fn list_diff(prefix: &str, before: &[Value], after: &[Value], into: &mut Map<String, Value>) {
    for i in 0..before.len().max(after.len()) {
        let was = before.get(i).cloned().unwrap_or(Value::Null);
        let is = after.get(i).cloned().unwrap_or(Value::Null);
        if was != is {
            into.insert(
                format!("{prefix}.{i}"),
                json!({"previousValue": was, "updatedValue": is,
                       "changeType": change_type(&was, &is)}),
            );
        }
    }
}

/// AWS Config's `ConfigurationItemChangeNotification` for the group going from `before` to
/// `after`: the item as Config records it, and the diff it computes (rules and the
/// configuration's tag list index by index, tags by key).
fn item_change(before: &SecurityGroup, after: &SecurityGroup) -> Value {
    let mut changed = Map::new();
    let rules = |g: &SecurityGroup, egress: bool| -> Vec<Value> {
        let list = if egress {
            g.ip_permissions_egress()
        } else {
            g.ip_permissions()
        };
        list.iter().map(permission).collect()
    };
    list_diff(
        "Configuration.IpPermissions",
        &rules(before, false),
        &rules(after, false),
        &mut changed,
    );
    list_diff(
        "Configuration.IpPermissionsEgress",
        &rules(before, true),
        &rules(after, true),
        &mut changed,
    );
    let (tags_before, tags_after) = (tags(before), tags(after));
    let tag_list = |t: &BTreeMap<String, String>| -> Vec<Value> {
        t.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect()
    };
    list_diff(
        "Configuration.Tags",
        &tag_list(&tags_before),
        &tag_list(&tags_after),
        &mut changed,
    );
    for key in tags_before.keys().chain(tags_after.keys()) {
        let was = json!(tags_before.get(key));
        let is = json!(tags_after.get(key));
        if was != is {
            changed.insert(
                format!("Tags.{key}"),
                json!({"previousValue": was, "updatedValue": is,
                       "changeType": change_type(&was, &is)}),
            );
        }
    }
    let group_id = after.group_id().unwrap_or_default();
    json!({
        "configurationItemDiff": {"changedProperties": changed, "changeType": "UPDATE"},
        "configurationItem": {
            "relatedEvents": ["ev-mallory"],
            "relationships": [],
            "configuration": {
                "groupId": group_id,
                "groupName": after.group_name(),
                "description": after.description(),
                "vpcId": after.vpc_id(),
                "ownerId": ACCOUNT,
                "ipPermissions": rules(after, false),
                "ipPermissionsEgress": rules(after, true),
                "tags": tag_list(&tags_after)
            },
            "supplementaryConfiguration": {},
            "tags": tags_after,
            "configurationItemVersion": "1.3",
            "configurationItemCaptureTime": "2026-11-22T10:20:30.000Z",
            "configurationStateId": 1_763_806_830_000_u64,
            "awsAccountId": ACCOUNT,
            "configurationItemStatus": "OK",
            "resourceType": "AWS::EC2::SecurityGroup",
            "resourceId": group_id,
            "resourceName": after.group_name(),
            "ARN": format!("arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{group_id}"),
            "awsRegion": REGION,
            "availabilityZone": "Not Applicable"
        },
        "notificationCreationTime": "2026-11-22T10:21:00.000Z",
        "messageType": "ConfigurationItemChangeNotification",
        "recordVersion": "1.3"
    })
}

fn to(call: &Call) -> Vec<String> {
    call.params["Destination"]["ToAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The mail shows the new rule, the tag change (old → new) and who made it.
fn assert_shows(mail: &Call, tag_change: &str) {
    let text = mail.mail_text();
    for expected in [
        "+ ingress  tcp/22  0.0.0.0/0",
        tag_change,
        "arn:aws:iam::123456789012:user/mallory",
        "the owners before it are told too (db-team@example.com, lead@example.com)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[tokio::test]
async fn re_pointing_the_owner_tag_to_an_outside_domain_with_a_new_rule_still_tells_the_owners() {
    let w = World::new().await;
    let change = w.attack(&[("OwnerDL", "mallory@evil.example")], &[]).await;
    w.deliver(&change, "example.com").await;
    let mails = w.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    // Mallory's domain is not allowed: only the owners before the change are mailed.
    assert_eq!(to(&mails[0]), ["db-team@example.com", "lead@example.com"]);
    assert_shows(
        &mails[0],
        "OwnerDL: db-team@example.com, lead@example.com -> mallory@evil.example",
    );

    // SNS delivers it again: mailed once.
    w.deliver(&change, "example.com").await;
    assert!(w.mails().is_empty(), "a redelivery mailed again");
}

#[tokio::test]
async fn re_pointing_the_owner_tag_inside_the_domain_with_a_new_rule_tells_mallory_and_the_owners()
{
    let w = World::new().await;
    let change = w.attack(&[("OwnerDL", "mallory@example.com")], &[]).await;
    w.deliver(&change, "example.com").await;
    let mails = w.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        to(&mails[0]),
        [
            "mallory@example.com",
            "db-team@example.com",
            "lead@example.com"
        ]
    );
    assert_shows(
        &mails[0],
        "OwnerDL: db-team@example.com, lead@example.com -> mallory@example.com",
    );
}

#[tokio::test]
async fn removing_the_opt_in_tag_with_a_new_rule_still_tells_the_owners() {
    let w = World::new().await;
    let change = w.attack(&[], &["NotifyOnChange"]).await;
    w.deliver(&change, "example.com").await;
    let mails = w.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(to(&mails[0]), ["db-team@example.com", "lead@example.com"]);
    assert_shows(&mails[0], "NotifyOnChange: Yes -> (none)");
}

#[tokio::test]
async fn removing_the_opt_in_and_re_pointing_the_owner_tell_the_owners_and_not_mallory() {
    let w = World::new().await;
    let change = w
        .attack(&[("OwnerDL", "mallory@example.com")], &["NotifyOnChange"])
        .await;
    w.deliver(&change, "example.com").await;
    let mails = w.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    // The group is not opted in now: its new owner asked for nothing.
    assert_eq!(to(&mails[0]), ["db-team@example.com", "lead@example.com"]);
    assert_shows(
        &mails[0],
        "OwnerDL: db-team@example.com, lead@example.com -> mallory@example.com",
    );
}
