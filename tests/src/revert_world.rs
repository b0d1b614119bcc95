//! The world most revert-ingress tests share: two groups in one VPC of the emulator, one
//! guarded (`Protected=true`), one not, each with a hand-made rule no test may lose; changes
//! made there by hand with the CloudTrail events that record them; the function as a handler
//! or as the real binary behind the Lambda Runtime API; and the approvals table read back.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::Client;
use revert_ingress::{OwnRole, RevertConfig, RevertIngress};
use serde_json::{json, Value};
use sgwarden_aws::Ec2;
use sgwarden_core::accounts::CallerIdentity;

use crate::cloudtrail::{self, api_call, session, user};
use crate::runtime::{self, Outcome};
use crate::{world, Emulator};

pub const REGION: &str = "us-east-1";
pub const OTHER_REGION: &str = "eu-west-1";
pub const APPROVALS: &str = "sgwarden-approvals";
pub const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/ops/NetworkAdmin";
pub const FUNCTION_ROLE: &str = "arn:aws:iam::123456789012:role/sgwarden-revert-ingress";

/// Two groups in one VPC: `protected` carries `Protected=true`, `open` carries nothing.
/// Each already has a hand-made rule that no test may lose.
pub struct World {
    pub emulator: Emulator,
    pub ec2: Client,
    pub vpc: String,
    pub protected: String,
    pub open: String,
}

impl World {
    pub async fn new() -> Self {
        Self::on(Emulator::start()).await
    }

    /// The same world in an emulator the test started itself (one serving HTTPS, say).
    pub async fn on(emulator: Emulator) -> Self {
        let ec2 = Client::new(&emulator.sdk_config(REGION).await);
        let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
        let protected = world::group(&ec2, &vpc, "db", &[("Protected", "true")]).await;
        let open = world::group(&ec2, &vpc, "scratch", &[]).await;
        for group in [&protected, &open] {
            world::hand_rule(&ec2, group, 443, "10.0.0.0/8", "pre-existing").await;
        }
        emulator.clear_calls();
        Self {
            emulator,
            ec2,
            vpc,
            protected,
            open,
        }
    }

    /// The function as the template deploys it: its own role given, in the emulator's account.
    pub async fn function(&self, vars: &[(&str, &str)]) -> RevertIngress {
        self.function_as(vars, OwnRole::Known(CallerIdentity::new(FUNCTION_ROLE)))
            .await
    }

    pub async fn function_as(&self, vars: &[(&str, &str)], own_role: OwnRole) -> RevertIngress {
        let config = RevertConfig::from_lookup(sgwarden_core::settings::from_pairs(vars))
            .expect("the test's settings are valid");
        RevertIngress::new(config, &self.emulator.sdk_config(REGION).await, own_role)
    }

    /// The group's rules, read back from AWS, as `ingress tcp/22 0.0.0.0/0` lines.
    pub async fn rules(&self, group_id: &str) -> Vec<String> {
        rules_in(&self.emulator, REGION, group_id).await
    }

    /// Authorizes `permissions` by hand on `group_id` as `identity`, and returns the event
    /// CloudTrail records for it (with the created rules' ids unless `with_ids` is false).
    pub async fn authorize(
        &self,
        group_id: &str,
        identity: Value,
        permissions: Value,
        with_ids: bool,
    ) -> Value {
        let event = cloudtrail::opened_by_hand(
            &self.ec2,
            REGION,
            group_id,
            identity,
            permissions,
            with_ids,
        )
        .await;
        self.emulator.clear_calls();
        event
    }

    /// The commonest unapproved change: ssh opened to the world by mallory, with rule ids.
    pub async fn ssh_opened(&self, group_id: &str) -> Value {
        self.authorize(
            group_id,
            user("mallory"),
            json!([tcp(22, "0.0.0.0/0")]),
            true,
        )
        .await
    }

    /// Serves `events`, in order, to the real revert-ingress binary configured with `vars`
    /// (through the Lambda Runtime API) and returns each outcome.
    pub async fn serve(&self, vars: &[(&'static str, String)], events: Vec<Value>) -> Vec<Outcome> {
        let mut env = self.emulator.function_env(REGION);
        env.extend(vars.iter().cloned());
        runtime::serve_events("revert-ingress", &env, events).await
    }

    /// Creates the approvals table; returns its client.
    pub async fn approvals(&self) -> aws_sdk_dynamodb::Client {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.emulator.sdk_config(REGION).await);
        world::approvals_table(&dynamodb, APPROVALS).await;
        dynamodb
    }

    /// The settings of a deployment with the exempt role and its approvals table.
    pub async fn guarded(&self) -> Vec<(&'static str, String)> {
        self.approvals().await;
        vec![
            ("REVERT_POLICY", exempt_policy()),
            ("REVERT_APPROVALS_TABLE", APPROVALS.to_string()),
        ]
    }

    /// The handler of such a deployment.
    pub async fn guarded_function(&self) -> RevertIngress {
        let vars = self.guarded().await;
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.function(&vars).await
    }

    /// The exempt NetworkAdmin role opens `port` to `cidr` by hand; returns its event.
    pub async fn admin_opens(&self, port: i32, cidr: &str, with_ids: bool) -> Value {
        self.authorize(
            &self.protected,
            session("ops/", "NetworkAdmin", "bob"),
            json!([tcp(port, cidr)]),
            with_ids,
        )
        .await
    }

    /// Mallory reshapes rule `rule_id` of the protected group into tcp `ports` from `cidr`,
    /// by hand; returns the event CloudTrail records for it (new definition only).
    pub async fn modify_by_hand(&self, rule_id: &str, ports: (i32, i32), cidr: &str) -> Value {
        self.modify_as(user("mallory"), rule_id, ports, cidr).await
    }

    /// `identity` reshapes rule `rule_id` of the protected group, as [`World::modify_by_hand`].
    pub async fn modify_as(
        &self,
        identity: Value,
        rule_id: &str,
        ports: (i32, i32),
        cidr: &str,
    ) -> Value {
        self.ec2
            .modify_security_group_rules()
            .group_id(&self.protected)
            .security_group_rules(
                aws_sdk_ec2::types::SecurityGroupRuleUpdate::builder()
                    .security_group_rule_id(rule_id)
                    .security_group_rule(
                        aws_sdk_ec2::types::SecurityGroupRuleRequest::builder()
                            .ip_protocol("tcp")
                            .from_port(ports.0)
                            .to_port(ports.1)
                            .cidr_ipv4(cidr)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("modify the rule by hand");
        api_call(
            REGION,
            "ModifySecurityGroupRules",
            identity,
            json!({"ModifySecurityGroupRulesRequest": {"GroupId": self.protected,
                "SecurityGroupRule": {"SecurityGroupRuleId": rule_id, "SecurityGroupRule":
                    {"IpProtocol": "tcp", "FromPort": ports.0, "ToPort": ports.1, "CidrIpv4": cidr}}}}),
            json!({"_return": true}),
        )
    }

    /// The exemption records of a group, as the approvals table holds them.
    pub async fn exemption_records(&self, group_id: &str) -> Vec<Value> {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.emulator.sdk_config(REGION).await);
        let out = dynamodb
            .query()
            .table_name(APPROVALS)
            .key_condition_expression("group_id = :g")
            .expression_attribute_values(
                ":g",
                aws_sdk_dynamodb::types::AttributeValue::S(group_id.to_string()),
            )
            .send()
            .await
            .expect("query the approvals table");
        out.items()
            .iter()
            .filter(|item| {
                item.get("kind")
                    .and_then(|k| k.as_s().ok())
                    .map(String::as_str)
                    == Some("exemption")
            })
            .map(|item| {
                item.iter()
                    .filter_map(|(k, v)| Some((k.clone(), json!(v.as_s().ok()?))))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect()
    }

    /// A customer-managed IPv4 prefix list holding `entries`; returns its id.
    pub async fn prefix_list(&self, entries: &[&str]) -> String {
        let mut request = self
            .ec2
            .create_managed_prefix_list()
            .prefix_list_name("partners")
            .address_family("IPv4")
            .max_entries(5);
        for cidr in entries {
            request = request.entries(
                aws_sdk_ec2::types::AddPrefixListEntry::builder()
                    .cidr(*cidr)
                    .build(),
            );
        }
        let out = request.send().await.expect("create the prefix list");
        out.prefix_list()
            .and_then(|l| l.prefix_list_id())
            .expect("the list has an id")
            .to_string()
    }

    /// Adds a rule the core cannot read to `group_id`: `tcp` from port 100 to 50, which moto
    /// accepts (as a future EC2 field would reach us) and the core refuses.
    pub async fn add_odd_rule(&self, group_id: &str) {
        self.ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(
                aws_sdk_ec2::types::IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(100)
                    .to_port(50)
                    .ip_ranges(
                        aws_sdk_ec2::types::IpRange::builder()
                            .cidr_ip("10.0.0.0/8")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("add the odd rule");
        self.emulator.clear_calls();
    }

    pub fn writes(&self) -> Vec<String> {
        self.emulator
            .calls()
            .into_iter()
            .map(|c| c.operation)
            .filter(|op| {
                !op.starts_with("Describe")
                    && !op.starts_with("Get")
                    && op != "Query"
                    && op != "Scan"
            })
            .collect()
    }
}

/// The groups whose approvals were asked of the table (each `Query`'s `:g`), sorted: what a
/// sweep read of the approvals, to set beside the groups it had to decide.
pub fn approvals_queried(emulator: &Emulator) -> Vec<String> {
    let mut groups: Vec<String> = emulator
        .calls_of("Query")
        .iter()
        .map(|q| {
            q.params["ExpressionAttributeValues"][":g"]["S"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    groups.sort();
    groups
}

pub async fn rules_in(emulator: &Emulator, region: &str, group_id: &str) -> Vec<String> {
    Ec2::new(&emulator.sdk_config(region).await)
        .read_group(group_id)
        .await
        .expect("read the group back")
        .rules
        .direction(sgwarden_core::Direction::Ingress)
        .texts()
}

pub fn tcp(port: i32, cidr: &str) -> Value {
    json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port, "groups": {},
           "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {}, "prefixListIds": {}})
}

pub fn now() -> SystemTime {
    SystemTime::now()
}

pub fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .expect("the clock reads after 1970")
        .as_secs()
}

pub fn exempt_policy() -> String {
    format!(
        r#"{{"scope": {{"tag": {{"key": "Protected", "value": "true"}}}},
            "exempt": {{"principals": ["{ADMIN_ROLE}"]}},
            "allow": [{{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}}],
            "directions": ["ingress"]}}"#
    )
}

pub fn response(body: &Outcome) -> &Value {
    match body {
        Outcome::Response { body, .. } => body,
        other => panic!("expected a response: {other:?}"),
    }
}

/// The `sgr-` id of the first rule an authorize event says it created.
pub fn created_rule_id(event: &Value) -> String {
    event["detail"]["responseElements"]["securityGroupRuleSet"]["items"][0]["securityGroupRuleId"]
        .as_str()
        .expect("the event lists the rules it created")
        .to_string()
}

/// The hand-made rule every group of the world starts with.
pub const PRE_EXISTING: &str = "ingress tcp/443 10.0.0.0/8";

/// The commonest forbid-only policy: no ssh from the internet.
pub const SSH_FROM_INTERNET: &str =
    r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": ["internet"]}]}"#;

/// The settings of a function with `REVERT_POLICY` = `text`.
pub fn policy(text: &str) -> Vec<(&'static str, String)> {
    vec![("REVERT_POLICY", text.to_string())]
}

/// A CloudTrail permission: `protocol` (with `ports`, from and to) from IPv4 and IPv6 ranges.
pub fn permission(protocol: &str, ports: Option<(i32, i32)>, v4: &[&str], v6: &[&str]) -> Value {
    let mut p = json!({"ipProtocol": protocol, "groups": {}, "prefixListIds": {},
        "ipRanges": {"items": v4.iter().map(|c| json!({"cidrIp": c})).collect::<Vec<_>>()},
        "ipv6Ranges": {"items": v6.iter().map(|c| json!({"cidrIpv6": c})).collect::<Vec<_>>()}});
    if let Some((from, to)) = ports {
        p["fromPort"] = json!(from);
        p["toPort"] = json!(to);
    }
    p
}

/// A CloudTrail permission: tcp `port` from the prefix list `list`.
pub fn listed(list: &str, port: i32) -> Value {
    json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port, "groups": {}, "ipRanges": {},
           "ipv6Ranges": {}, "prefixListIds": {"items": [{"prefixListId": list}]}})
}

/// Every rule a report's groups revoked (or would), sorted.
pub fn revoked(report: &Value) -> Vec<String> {
    let mut all: Vec<String> = report["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["revoked"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    all.sort();
    all
}

/// Every Security Hub finding in the emulator's account and region. Read on a thread of its
/// own with a large stack: the SDK's finding type nests deeper than a test thread's stack
/// holds in a debug build.
pub async fn findings(emulator: &Emulator) -> Vec<aws_sdk_securityhub::types::AwsSecurityFinding> {
    let config = emulator.sdk_config(REGION).await;
    let reader = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the reader");
            runtime.block_on(async {
                let hub = aws_sdk_securityhub::Client::new(&config);
                let out = hub.get_findings().send().await.expect("GetFindings");
                out.findings().to_vec()
            })
        })
        .expect("start the reader");
    tokio::task::spawn_blocking(move || reader.join().expect("the reader finishes"))
        .await
        .expect("join the reader")
}
