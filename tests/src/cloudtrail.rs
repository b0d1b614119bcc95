//! CloudTrail events for the changes tests make by hand: the change is made for real in the
//! emulator through the SDK, and the event is written the way CloudTrail records it (the
//! request in CloudTrail's `{"items": [...]}` spelling, the created rules with their real
//! `sgr-` ids in `responseElements.securityGroupRuleSet`).

use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;
use serde_json::{json, Value};
use sgwarden_aws::permission_to_sdk;
use sgwarden_core::wire::Permissions;

/// The emulator's account.
pub const ACCOUNT: &str = "123456789012";

/// The same event as recorded in `account`: its envelope, its record and every ARN in it
/// name that account instead of the emulator's.
pub fn in_account(event: &Value, account: &str) -> Value {
    serde_json::from_str(&event.to_string().replace(ACCOUNT, account)).expect("an event stays JSON")
}

/// An IAM user as CloudTrail names it.
pub fn user(name: &str) -> Value {
    json!({
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        "accountId": ACCOUNT,
        "userName": name
    })
}

/// An assumed-role session as CloudTrail names it: the session ARN, and the role (with its
/// path) as the session issuer.
pub fn session(role_path: &str, role: &str, session: &str) -> Value {
    json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLE:{session}"),
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLE",
                "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role_path}{role}"),
                "accountId": ACCOUNT,
                "userName": role
            }
        }
    })
}

/// The EventBridge envelope of an `AWS API Call via CloudTrail` event.
pub fn api_call(
    region: &str,
    event_name: &str,
    identity: Value,
    request: Value,
    response: Value,
) -> Value {
    let event_id = format!("ev-{:x}", std::process::id() as u128 * 7919 + nanos());
    json!({
        "version": "0",
        "id": format!("eb-{event_id}"),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": "2026-11-22T10:00:01Z",
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": "2026-11-22T10:00:00Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "198.51.100.23",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": request,
            "responseElements": response,
            "eventID": event_id,
            "readOnly": false,
            "eventType": "AwsApiCall",
            "recipientAccountId": ACCOUNT
        }
    })
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Makes the authorize for real and returns the rules it created, as CloudTrail's
/// `securityGroupRuleSet` items. `permissions` is the call's `ipPermissions` item list in
/// CloudTrail spelling.
pub async fn authorize(
    ec2: &Client,
    group_id: &str,
    egress: bool,
    permissions: &Value,
) -> Vec<Value> {
    let parsed: Permissions = serde_json::from_value(json!({ "items": permissions }))
        .expect("permissions in CloudTrail spelling");
    let sdk: Vec<_> = parsed.0.iter().map(permission_to_sdk).collect();
    let before = rule_ids(ec2, group_id).await;
    if egress {
        ec2.authorize_security_group_egress()
            .group_id(group_id)
            .set_ip_permissions(Some(sdk))
            .send()
            .await
            .expect("authorize egress by hand");
    } else {
        ec2.authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(sdk))
            .send()
            .await
            .expect("authorize ingress by hand");
    }
    rules(ec2, group_id)
        .await
        .into_iter()
        .filter(|r| !before.contains(&r["securityGroupRuleId"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Authorizes ingress `permissions` by hand on `group_id` and returns the event CloudTrail
/// records for it as `identity`: with the created rules' ids in `responseElements`, or,
/// when `with_ids` is false, the older shape without them.
pub async fn opened_by_hand(
    ec2: &Client,
    region: &str,
    group_id: &str,
    identity: Value,
    permissions: Value,
    with_ids: bool,
) -> Value {
    let created = authorize(ec2, group_id, false, &permissions).await;
    let response = if with_ids {
        json!({"_return": true, "securityGroupRuleSet": {"items": created}})
    } else {
        json!({"_return": true})
    };
    api_call(
        region,
        "AuthorizeSecurityGroupIngress",
        identity,
        json!({"groupId": group_id, "ipPermissions": {"items": permissions}}),
        response,
    )
}

/// The rules of a group in CloudTrail's `securityGroupRuleSet` item spelling.
pub async fn rules(ec2: &Client, group_id: &str) -> Vec<Value> {
    let out = ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group_id).build())
        .send()
        .await
        .expect("describe security group rules");
    out.security_group_rules()
        .iter()
        .map(|r| {
            let mut item = json!({
                "groupOwnerId": ACCOUNT,
                "groupId": r.group_id(),
                "securityGroupRuleId": r.security_group_rule_id(),
                "isEgress": r.is_egress(),
                "ipProtocol": r.ip_protocol(),
                "fromPort": r.from_port(),
                "toPort": r.to_port(),
            });
            let fields = [
                ("cidrIpv4", r.cidr_ipv4().map(|v| json!(v))),
                ("cidrIpv6", r.cidr_ipv6().map(|v| json!(v))),
                ("prefixListId", r.prefix_list_id().map(|v| json!(v))),
                ("description", r.description().map(|v| json!(v))),
                (
                    "referencedGroupInfo",
                    r.referenced_group_info()
                        .map(|g| json!({"groupId": g.group_id(), "userId": g.user_id()})),
                ),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    item[key] = value;
                }
            }
            item
        })
        .collect()
}

async fn rule_ids(ec2: &Client, group_id: &str) -> Vec<String> {
    rules(ec2, group_id)
        .await
        .iter()
        .filter_map(|r| r["securityGroupRuleId"].as_str().map(str::to_string))
        .collect()
}
