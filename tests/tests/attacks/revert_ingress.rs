//! Attacks on revert-ingress: an insider with ordinary EC2 rights tries to keep a port open
//! past the real binary (served through the Lambda Runtime API, read back from EC2).

use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, api_call, session, user};
use sgwarden_tests::revert_world::*;
use sgwarden_tests::{runtime::Outcome, world};

// The first wave (SPEC "Trust"): a forged tag, a reshaped exempt rule, an event's false
// claims.

#[tokio::test]
async fn a_forged_exempt_tag_keeps_no_rule() {
    let w = World::new().await;
    let vars = w.guarded().await;
    // Mallory opens ssh and tags the rule as if the exempt role had made it.
    let created =
        cloudtrail::authorize(&w.ec2, &w.protected, false, &json!([tcp(22, "0.0.0.0/0")])).await;
    let rule_id = created[0]["securityGroupRuleId"].as_str().unwrap();
    for key in ["sgwarden:exempt", "sgwarden:approved"] {
        w.ec2
            .create_tags()
            .resources(rule_id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(ADMIN_ROLE)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let outcomes = w.serve(&vars, vec![world::scheduled_event(REGION)]).await;
    assert_eq!(
        response(&outcomes[0])["groups"][0]["revoked"],
        json!(["ingress tcp/22 0.0.0.0/0"])
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}

#[tokio::test]
async fn reshaping_an_exempt_role_s_rule_is_judged_on_its_new_shape() {
    let w = World::new().await;
    let vars = w.guarded().await;
    let made = w.admin_opens(5432, "10.2.0.0/16", true).await;
    let rule_id = created_rule_id(&made);
    // The exempt role's change is handled first, then the binary is stopped; mallory reshapes
    // the same rule into ssh from anywhere.
    let first = w.serve(&vars, vec![made]).await;
    assert!(response(&first[0])["skipped"]
        .as_str()
        .unwrap()
        .contains("exempt principal"));
    let modify = w.modify_by_hand(&rule_id, (22, 22), "0.0.0.0/0").await;
    let outcomes = w.serve(&vars, vec![modify]).await;
    assert_eq!(
        response(&outcomes[0])["groups"][0]["revoked"],
        json!(["ingress tcp/22 0.0.0.0/0"])
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}

#[tokio::test]
async fn an_event_s_claims_about_rules_are_checked_against_ec2() {
    let w = World::new().await;
    let vars = w.guarded().await;
    let https = cloudtrail::authorize(&w.ec2, &w.protected, false, &json!([tcp(443, "0.0.0.0/0")]))
        .await
        .remove(0);
    let https_id = https["securityGroupRuleId"].as_str().unwrap().to_string();
    let other_group_rule = cloudtrail::rules(&w.ec2, &w.open)
        .await
        .into_iter()
        .find(|r| r["isEgress"] == false)
        .unwrap();
    // A forged call: "ssh from anywhere was added", naming the allowed https rule's id and a
    // rule of another group.
    let claim = |id: &str| {
        json!({"groupOwnerId": cloudtrail::ACCOUNT, "groupId": w.protected,
               "securityGroupRuleId": id, "isEgress": false, "ipProtocol": "tcp",
               "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"})
    };
    let forged = api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupId": w.protected, "ipPermissions": {"items": [tcp(22, "0.0.0.0/0")]}}),
        json!({"_return": true, "securityGroupRuleSet": {"items": [
            claim(&https_id),
            claim(other_group_rule["securityGroupRuleId"].as_str().unwrap())
        ]}}),
    );
    // The same forgery in the exempt role's name, on a group outside the scope: nothing may
    // be recorded for rules the policy does not guard.
    let mut exempt_forgery = forged.clone();
    exempt_forgery["detail"]["userIdentity"] = session("ops/", "NetworkAdmin", "bob");
    exempt_forgery["detail"]["requestParameters"]["groupId"] = json!(w.open);
    let mut allow_https = vars.clone();
    allow_https[0].1 = exempt_policy().replace(
        r#""ports": "443", "sources": ["10.0.0.0/8"]"#,
        r#""ports": "443", "sources": ["0.0.0.0/0"]"#,
    );
    w.emulator.clear_calls();
    let outcomes = w.serve(&allow_https, vec![forged, exempt_forgery]).await;
    let judged = &response(&outcomes[0])["groups"][0];
    assert_eq!(judged["revoked"], json!([]));
    assert_eq!(judged["kept"][0]["rule"], "ingress tcp/443 0.0.0.0/0");
    assert!(response(&outcomes[1])["skipped"]
        .as_str()
        .unwrap()
        .contains("outside the policy's scope"));
    assert!(w.writes().is_empty(), "{:?}", w.writes());
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/443 0.0.0.0/0", PRE_EXISTING]
    );
    assert_eq!(w.rules(&w.open).await, vec![PRE_EXISTING]);
}

// The second move (issue 21).

/// Attack 1. The exempt NetworkAdmin adds `tcp/5432 10.2.0.0/16`; before its event arrives
/// mallory reshapes that very rule into ssh from anywhere. The exemption must cover what the
/// exempt call made, in the shape it made it: the ssh shape is judged like anyone's, nothing
/// is recorded for it, and neither the reshape's own event nor the next sweep keeps it.
#[tokio::test]
async fn racing_an_exempt_change_keeps_nothing_the_exempt_call_did_not_make() {
    let w = World::new().await;
    let vars = w.guarded().await;
    let made = w.admin_opens(5432, "10.2.0.0/16", true).await;
    let rule_id = created_rule_id(&made);
    let reshape = w.modify_by_hand(&rule_id, (22, 22), "0.0.0.0/0").await;
    let outcomes = w
        .serve(&vars, vec![made, reshape, world::scheduled_event(REGION)])
        .await;
    let first = response(&outcomes[0]);
    assert_eq!(
        first["groups"][0]["revoked"],
        json!(["ingress tcp/22 0.0.0.0/0"])
    );
    assert_eq!(first["exempted"], json!([]));
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert!(w.exemption_records(&w.protected).await.is_empty());
    // The reshape's event finds nothing left, and the sweep finds nothing to keep or revoke.
    assert!(response(&outcomes[1])["skipped"]
        .as_str()
        .unwrap()
        .contains("no longer in"));
    let sweep = &response(&outcomes[2])["groups"][0];
    assert_eq!(sweep["revoked"], json!([]));
    assert!(!sweep["kept"].to_string().contains("exempt"), "{sweep}");
}

/// Attack 1 delivered late. The exempt role opens ssh as break-glass (E1, recorded), then
/// narrows it to 10/8 (E2, the record follows); mallory widens it back to the internet (E3).
/// If E1 is delivered again before E3 is handled (EventBridge delivers at least once, Lambda
/// retries), its shape matches the rule again: it must not bring back the older record, so
/// E3 is judged against the newer one and revoked.
#[tokio::test]
async fn a_late_delivery_of_an_exempt_event_does_not_bring_back_an_older_shape() {
    let w = World::new().await;
    let vars = w.guarded().await;
    let e1 = w.admin_opens(22, "0.0.0.0/0", true).await;
    let rule_id = created_rule_id(&e1);
    w.serve(&vars, vec![e1.clone()]).await;
    let mut e2 = w
        .modify_as(
            session("ops/", "NetworkAdmin", "bob"),
            &rule_id,
            (22, 22),
            "10.0.0.0/8",
        )
        .await;
    e2["detail"]["eventTime"] = json!("2026-11-22T10:05:00Z");
    let narrowed = w.serve(&vars, vec![e2]).await;
    assert_eq!(
        response(&narrowed[0])["exempted"],
        json!(["ingress tcp/22 10.0.0.0/8"])
    );
    let mut e3 = w.modify_by_hand(&rule_id, (22, 22), "0.0.0.0/0").await;
    e3["detail"]["eventTime"] = json!("2026-11-22T10:07:00Z");
    w.serve(&vars, vec![e1, e3]).await;
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let records = w.exemption_records(&w.protected).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["rule"], "ingress tcp/22 10.0.0.0/8");
}

/// The design gap beside attack 1: a self-registering host's role was made an exempt
/// principal, so whoever runs code on the host could open anything for good. Bounded, the
/// role's calls stand only for `tcp/443` from the address the call came from.
#[tokio::test]
async fn a_host_role_exempt_within_bounds_keeps_only_its_own_address() {
    let w = World::new().await;
    w.approvals().await;
    let host_role = "arn:aws:iam::123456789012:role/HostRole";
    let policy = format!(
        r#"{{"scope": {{"tag": {{"key": "Protected", "value": "true"}}}},
            "exempt": {{"principals": [{{"principal": "{host_role}",
                "bounds": [{{"protocol": "tcp", "ports": "443", "sources": ["caller"]}}]}}]}},
            "directions": ["ingress"]}}"#
    );
    let vars = vec![
        ("REVERT_POLICY", policy),
        ("REVERT_APPROVALS_TABLE", APPROVALS.to_string()),
    ];
    // The call comes from 198.51.100.23 (the event's sourceIPAddress): its own /32 on 443
    // stands; the same port to the world and ssh from itself do not.
    let event = w
        .authorize(
            &w.protected,
            session("", "HostRole", "i-0123456789abcdef0"),
            json!([
                tcp(443, "198.51.100.23/32"),
                tcp(443, "0.0.0.0/0"),
                tcp(22, "198.51.100.23/32")
            ]),
            true,
        )
        .await;
    assert_eq!(event["detail"]["sourceIPAddress"], "198.51.100.23");
    let outcomes = w.serve(&vars, vec![event]).await;
    let first = response(&outcomes[0]);
    assert_eq!(
        first["exempted"],
        json!(["ingress tcp/443 198.51.100.23/32"])
    );
    let mut revoked: Vec<String> =
        serde_json::from_value(first["groups"][0]["revoked"].clone()).unwrap();
    revoked.sort();
    assert_eq!(
        revoked,
        vec![
            "ingress tcp/22 198.51.100.23/32",
            "ingress tcp/443 0.0.0.0/0"
        ]
    );
    let mut left = w.rules(&w.protected).await;
    left.sort();
    assert_eq!(
        left,
        vec![
            "ingress tcp/443 10.0.0.0/8",
            "ingress tcp/443 198.51.100.23/32"
        ]
    );
    // The sweep keeps the recorded registration (this policy allows nothing, so the record
    // is what keeps the /32) and revokes the hand-made rule nobody exempt made.
    let outcomes = w.serve(&vars, vec![world::scheduled_event(REGION)]).await;
    let sweep = response(&outcomes[0]);
    assert!(sweep["groups"][0]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["rule"] == "ingress tcp/443 198.51.100.23/32"));
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/443 198.51.100.23/32"]
    );
}

/// Attack 3. In the default VPC, one authorize opens ssh to the internet and names a peer
/// group by name only. The request cannot say which group that is, but the response lists
/// every rule EC2 created: the event is read from it and both rules are revoked at once,
/// instead of the event failing into the dead-letter queue with ssh left open.
#[tokio::test]
async fn a_peer_named_only_by_name_does_not_make_the_event_unreadable() {
    let w = World::new().await;
    let group_id = w
        .ec2
        .create_security_group()
        .group_name("legacy-db")
        .description("default VPC group")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::SecurityGroup)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Protected")
                        .value("true")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let before = cloudtrail::rules(&w.ec2, &group_id).await;
    w.ec2
        .authorize_security_group_ingress()
        .group_id(&group_id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .user_id_group_pairs(UserIdGroupPair::builder().group_name("default").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let created: Vec<Value> = cloudtrail::rules(&w.ec2, &group_id)
        .await
        .into_iter()
        .filter(|r| !before.contains(r))
        .collect();
    assert_eq!(created.len(), 2, "{created:?}");
    let event = api_call(
        REGION,
        "AuthorizeSecurityGroupIngress",
        user("mallory"),
        json!({"groupId": group_id, "ipPermissions": {"items": [{
            "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
            "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
            "groups": {"items": [{"groupName": "default"}]}}]}}),
        json!({"_return": true, "securityGroupRuleSet": {"items": created}}),
    );
    let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#;
    let outcomes = w
        .serve(&[("REVERT_POLICY", policy.to_string())], vec![event])
        .await;
    let revoked = &response(&outcomes[0])["groups"][0]["revoked"];
    assert_eq!(revoked.as_array().map(Vec::len), Some(2), "{revoked}");
    assert!(w.rules(&group_id).await.is_empty());
}

/// Attack 5, its revert-ingress half. A rule the core cannot read (moto, like a future EC2
/// field, lets one in: `tcp` from port 100 to 50) on one guarded group used to fail the
/// whole sweep of its account-region before any group was judged. Now every rule that can be
/// read is judged, that group's too, and the odd rule fails the sweep once all is done: ssh
/// opened on another guarded group, and beside the odd rule, is revoked.
#[tokio::test]
async fn one_unreadable_group_does_not_hide_the_others_from_the_sweep() {
    let w = World::new().await;
    let odd = world::group(&w.ec2, &w.vpc, "odd", &[("Protected", "true")]).await;
    w.add_odd_rule(&odd).await;
    for group in [&w.protected, &odd] {
        cloudtrail::authorize(&w.ec2, group, false, &json!([tcp(22, "0.0.0.0/0")])).await;
    }
    let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
                     "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}]}"#;
    let outcomes = w
        .serve(
            &[("REVERT_POLICY", policy.to_string())],
            vec![world::scheduled_event(REGION)],
        )
        .await;
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let left = cloudtrail::rules(&w.ec2, &odd).await;
    assert!(
        left.iter().all(|r| r["fromPort"] != 22),
        "ssh beside the odd rule is still open: {left:?}"
    );
    match &outcomes[0] {
        Outcome::Error { body, .. } => {
            let message = body["errorMessage"].as_str().unwrap();
            assert!(message.contains(&odd), "{message}");
        }
        other => panic!("the unreadable rule must fail the sweep: {other:?}"),
    }
}

/// Attack 5's second half: with a scope by tag the event path reads the group for its tags.
/// An unreadable rule elsewhere in the group must not fail that read, or ssh opened beside
/// it would wait in the dead-letter queue: the new rule is judged and revoked on its event.
#[tokio::test]
async fn an_unreadable_rule_in_a_group_does_not_stop_its_events_being_judged() {
    let w = World::new().await;
    w.add_odd_rule(&w.protected).await;
    let event = w.ssh_opened(&w.protected).await;
    let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#;
    let outcomes = w
        .serve(&[("REVERT_POLICY", policy.to_string())], vec![event])
        .await;
    assert_eq!(
        response(&outcomes[0])["groups"][0]["revoked"],
        json!(["ingress tcp/22 0.0.0.0/0"])
    );
    let left = cloudtrail::rules(&w.ec2, &w.protected).await;
    assert!(
        left.iter().all(|r| r["fromPort"] != 22),
        "ssh is still open: {left:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Issue 21, attack 2: widen an allowed prefix list. With `tcp/22 from pl-X` allowed, one
// `ModifyManagedPrefixList pl-X add 0.0.0.0/0` opens ssh to the internet without a single
// security-group call. The rule on the list must go within its event, or at the next sweep.

mod prefix_list {
    use std::path::PathBuf;

    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_ec2::types::{AddPrefixListEntry, RemovePrefixListEntry};
    use aws_sdk_ec2::Client;
    use serde_json::{json, Value};
    use sgwarden_tests::cloudtrail::{self, api_call, session, user};
    use sgwarden_tests::runtime::{self, binary_path, Outcome};
    use sgwarden_tests::{world, Emulator};

    const REGION: &str = "us-east-1";
    const APPROVALS: &str = "sgwarden-approvals";
    const ADMIN_ROLE: &str = "arn:aws:iam::123456789012:role/ops/NetworkAdmin";
    const PARTNER: &str = "203.0.113.0/24";

    /// A protected group whose ssh is allowed from a customer-managed list of partners,
    /// holding one rule on the list; the approvals table; the exempt NetworkAdmin role.
    struct ListWorld {
        emulator: Emulator,
        ec2: Client,
        dynamodb: aws_sdk_dynamodb::Client,
        group: String,
        list: String,
    }

    impl ListWorld {
        async fn new() -> Self {
            let emulator = Emulator::start();
            let config = emulator.sdk_config(REGION).await;
            let ec2 = Client::new(&config);
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            world::approvals_table(&dynamodb, APPROVALS).await;
            let vpc = world::vpc(&ec2, "10.9.0.0/16").await;
            let group = world::group(&ec2, &vpc, "bastion", &[("Protected", "true")]).await;
            let list = ec2
                .create_managed_prefix_list()
                .prefix_list_name("partners")
                .address_family("IPv4")
                .max_entries(5)
                .entries(AddPrefixListEntry::builder().cidr(PARTNER).build())
                .send()
                .await
                .unwrap()
                .prefix_list()
                .unwrap()
                .prefix_list_id()
                .unwrap()
                .to_string();
            ec2.authorize_security_group_ingress()
                .group_id(&group)
                .ip_permissions(
                    aws_sdk_ec2::types::IpPermission::builder()
                        .ip_protocol("tcp")
                        .from_port(22)
                        .to_port(22)
                        .prefix_list_ids(
                            aws_sdk_ec2::types::PrefixListId::builder()
                                .prefix_list_id(&list)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            Self {
                emulator,
                ec2,
                dynamodb,
                group,
                list,
            }
        }

        fn ssh(&self) -> String {
            format!("ingress tcp/22 {}", self.list)
        }

        fn env(&self) -> Vec<(&'static str, String)> {
            let policy = json!({
                "scope": {"tag": {"key": "Protected", "value": "true"}},
                "exempt": {"principals": [ADMIN_ROLE]},
                "allow": [{"protocol": "tcp", "ports": "22", "sources": [self.list]}],
                "directions": ["ingress"]
            });
            let mut env = self.emulator.function_env(REGION);
            env.push(("REVERT_POLICY", policy.to_string()));
            env.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
            env.push((
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::123456789012:role/sgwarden-revert-ingress".to_string(),
            ));
            env
        }

        /// Serves `events` to the real revert-ingress binary; every one must be answered.
        async fn serve(&self, events: Vec<Value>) -> Vec<Value> {
            runtime::serve_events("revert-ingress", &self.env(), events)
                .await
                .into_iter()
                .map(|outcome| match outcome {
                    Outcome::Response { body, .. } => body,
                    other => panic!("expected a response: {other:?}"),
                })
                .collect()
        }

        /// The first sweep: nothing to revoke (the list's entries are vouched for on first use).
        async fn first_sweep(&self) {
            let report = &self.serve(vec![world::scheduled_event(REGION)]).await[0];
            assert_eq!(report["groups"][0]["revoked"], json!([]), "{report}");
        }

        /// Adds (or removes) `cidr` to the list by hand as `identity`; returns the event
        /// CloudTrail records for it.
        async fn modify_list(
            &self,
            identity: Value,
            add: Option<&str>,
            remove: Option<&str>,
        ) -> Value {
            let mut request = self
                .ec2
                .modify_managed_prefix_list()
                .prefix_list_id(&self.list);
            let mut parameters = serde_json::Map::new();
            parameters.insert("PrefixListId".into(), json!(self.list));
            if let Some(cidr) = add {
                request = request.add_entries(AddPrefixListEntry::builder().cidr(cidr).build());
                parameters.insert("AddEntry".into(), json!({"Cidr": cidr, "tag": 1}));
            }
            if let Some(cidr) = remove {
                request =
                    request.remove_entries(RemovePrefixListEntry::builder().cidr(cidr).build());
                parameters.insert("RemoveEntry".into(), json!({"Cidr": cidr, "tag": 1}));
            }
            request.send().await.unwrap();
            self.emulator.clear_calls();
            api_call(
                REGION,
                "ModifyManagedPrefixList",
                identity,
                json!({"ModifyManagedPrefixListRequest": parameters}),
                json!({"ModifyManagedPrefixListResponse": {"prefixList": {"prefixListId": self.list}}}),
            )
        }

        /// The group's ingress rules, read back from EC2.
        async fn rules(&self) -> Vec<String> {
            cloudtrail::rules(&self.ec2, &self.group)
                .await
                .iter()
                .filter(|r| r["isEgress"] == json!(false))
                .map(|r| {
                    let peer = r["prefixListId"]
                        .as_str()
                        .or(r["cidrIpv4"].as_str())
                        .unwrap_or_default();
                    format!("ingress tcp/{} {peer}", r["fromPort"])
                })
                .collect()
        }

        /// The entries the approvals table vouches for in the list.
        async fn vouched(&self) -> Vec<String> {
            let item = self
                .dynamodb
                .get_item()
                .table_name(APPROVALS)
                .key("group_id", AttributeValue::S(self.list.clone()))
                .key("approval_id", AttributeValue::S("entries".into()))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap_or_default();
            assert!(item.is_empty() || item["kind"] == AttributeValue::S("prefix-list".into()));
            item.get("entries")
                .and_then(|e| e.as_l().ok())
                .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                .unwrap_or_default()
        }

        fn revokes(&self) -> usize {
            self.emulator.calls_of("RevokeSecurityGroupIngress").len()
        }
    }

    #[tokio::test]
    async fn widening_an_allowed_prefix_list_is_reverted_within_its_event() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let event = w
            .modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        assert_eq!(w.rules().await, vec![w.ssh()]);
        // On first use the list's entries were vouched for.
        assert_eq!(w.vouched().await, vec![PARTNER.to_string()]);
        let report = &w.serve(vec![event]).await[0];
        // Read back from EC2: the rule on the widened list is gone, revoked by its id.
        assert_eq!(w.rules().await, Vec::<String>::new(), "{report}");
        assert_eq!(report["groups"][0]["revoked"], json!([w.ssh()]), "{report}");
        let why = report["groups"][0]["reasons"][0]["reason"]
            .as_str()
            .unwrap();
        assert!(why.contains(&w.list) && why.contains("0.0.0.0/0"), "{why}");
        let revoke = &w.emulator.calls_of("RevokeSecurityGroupIngress")[0];
        assert!(revoke.params.to_string().contains("sgr-"), "{revoke:?}");
        // The widening is not vouched for by its own event.
        assert_eq!(w.vouched().await, vec![PARTNER.to_string()]);
    }

    #[tokio::test]
    async fn widening_an_allowed_prefix_list_unseen_is_reverted_by_the_next_sweep() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        // The event is lost: only the sweep can see the list now holds the internet.
        w.modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        let report = &w.serve(vec![world::scheduled_event(REGION)]).await[0];
        assert_eq!(w.rules().await, Vec::<String>::new(), "{report}");
        assert_eq!(report["groups"][0]["revoked"], json!([w.ssh()]), "{report}");
        assert_eq!(w.revokes(), 1);
    }

    #[tokio::test]
    async fn an_exempt_principal_s_widening_is_vouched_for_and_kept() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let event = w
            .modify_list(
                session("ops/", "NetworkAdmin", "bob"),
                Some("198.51.100.0/24"),
                None,
            )
            .await;
        let reports = w.serve(vec![event, world::scheduled_event(REGION)]).await;
        assert_eq!(w.rules().await, vec![w.ssh()], "{reports:?}");
        assert_eq!(w.revokes(), 0);
        assert_eq!(
            w.vouched().await,
            vec!["198.51.100.0/24".to_string(), PARTNER.to_string()]
        );
    }

    #[tokio::test]
    async fn a_list_holding_only_vouched_entries_keeps_its_rule() {
        let w = ListWorld::new().await;
        w.first_sweep().await;
        let again = &w.serve(vec![world::scheduled_event(REGION)]).await[0];
        assert_eq!(
            again["groups"][0]["kept"][0]["rule"],
            json!(w.ssh()),
            "{again}"
        );
        // Narrowing, by anyone, is no widening: the rule stays, and the entry that left is
        // no longer vouched for, so adding it back later is judged afresh.
        let removed = w.modify_list(user("mallory"), None, Some(PARTNER)).await;
        let report = &w.serve(vec![removed]).await[0];
        assert_eq!(w.rules().await, vec![w.ssh()], "{report}");
        assert_eq!(w.revokes(), 0);
        assert_eq!(w.vouched().await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn approving_ssh_from_a_prefix_list_that_holds_the_internet_is_refused() {
        let w = ListWorld::new().await;
        w.modify_list(user("mallory"), Some("0.0.0.0/0"), None)
            .await;
        let approve = |extra: &'static [&'static str]| {
            let mut args = vec![
                "approve".to_string(),
                "--group-id".into(),
                w.group.clone(),
                "--rule".into(),
                format!("tcp/22 {}", w.list),
                "--for".into(),
                "4h".into(),
                "--reason".into(),
                "partner access".into(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            run_sgwarden(&w.emulator, args)
        };
        let refused = approve(&[]).await;
        assert_eq!(refused.0, Some(1), "{refused:?}");
        assert!(refused.2.contains("ApprovalRefused"), "{refused:?}");
        assert!(refused.2.contains("0.0.0.0/0"), "{refused:?}");
        assert!(w.emulator.calls_of("PutItem").is_empty());
        let asked = approve(&["--allow-anywhere"]).await;
        assert_eq!(asked.0, Some(0), "{asked:?}");
    }

    /// Runs the real `sgwarden` binary with the emulator's environment and the approvals
    /// table; returns its exit code, stdout and stderr.
    async fn run_sgwarden(emulator: &Emulator, args: Vec<String>) -> (Option<i32>, String, String) {
        let binary: PathBuf = binary_path("sgwarden");
        let out = tokio::process::Command::new(binary)
            .args(&args)
            .env_clear()
            .envs(emulator.function_env(REGION))
            .env("REVERT_APPROVALS_TABLE", APPROVALS)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
