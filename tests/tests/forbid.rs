//! Forbid entries, the Security Hub presets and findings, end to end: rules opened for real
//! in the emulator, judged by the real revert-ingress binary (through the Lambda Runtime
//! API) on their CloudTrail events and by its sweep, read back from EC2; findings read back
//! with Security Hub's `GetFindings`.

#![allow(clippy::unwrap_used)]

use aws_sdk_securityhub::types::AwsSecurityFinding;
use serde_json::json;
use sgwarden_tests::cloudtrail::{session, user};
use sgwarden_tests::revert_world::*;
use sgwarden_tests::{world, Outage};

const SSH_ENTRY: &str =
    r#""forbid": [{"protocol": "tcp", "ports": "22", "sources": ["internet"]}]"#;

fn with_scope(forbid: &str) -> String {
    format!(r#"{{"scope": {{"tag": {{"key": "Protected", "value": "true"}}}}, {forbid}}}"#)
}

#[tokio::test]
async fn a_forbid_only_policy_reverts_ssh_from_the_internet_and_keeps_everything_else() {
    let w = World::new().await;
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                permission("tcp", Some((22, 22)), &["0.0.0.0/0", "10.0.0.0/8"], &[]),
                permission("tcp", Some((443, 443)), &["0.0.0.0/0"], &["::/0"]),
            ]),
            true,
        )
        .await;
    let outcomes = w.serve(&policy(SSH_FROM_INTERNET), vec![event]).await;
    let report = response(&outcomes[0]);
    assert_eq!(
        w.rules(&w.protected).await,
        vec![
            "ingress tcp/22 10.0.0.0/8",
            "ingress tcp/443 0.0.0.0/0",
            PRE_EXISTING,
            "ingress tcp/443 ::/0"
        ]
    );
    let group = &report["groups"][0];
    assert_eq!(group["revoked"], json!(["ingress tcp/22 0.0.0.0/0"]));
    assert_eq!(
        group["reasons"][0]["reason"],
        "forbidden by forbid[0]: ingress tcp/22 from internet"
    );
    assert!(group["kept"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["reason"] == "not forbidden by policy"));
    assert_eq!(w.writes(), vec!["RevokeSecurityGroupIngress"]);
}

#[tokio::test]
async fn a_forbid_only_policy_sweeps_every_group_without_a_scope() {
    let w = World::new().await;
    for group in [&w.protected, &w.open] {
        w.authorize(
            group,
            user("mallory"),
            json!([permission(
                "tcp",
                Some((22, 22)),
                &["0.0.0.0/0", "10.0.0.0/8"],
                &[]
            )]),
            true,
        )
        .await;
    }
    let outcomes = w
        .serve(
            &policy(SSH_FROM_INTERNET),
            vec![world::scheduled_event(REGION)],
        )
        .await;
    let report = response(&outcomes[0]);
    assert!(report["skipped"].is_null(), "{report}");
    for group in [&w.protected, &w.open] {
        assert_eq!(
            w.rules(group).await,
            vec!["ingress tcp/22 10.0.0.0/8", PRE_EXISTING],
            "{report}"
        );
    }
    // Every group's default egress rule stays: nothing forbids it.
    let egress = sgwarden_aws::Ec2::new(&w.emulator.sdk_config(REGION).await)
        .read_group(&w.open)
        .await
        .unwrap()
        .rules
        .direction(sgwarden_core::Direction::Egress)
        .len();
    assert_eq!(egress, 1);
}

#[tokio::test]
async fn every_evasion_of_a_forbid_entry_is_reverted_by_event_and_by_sweep() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    let public_list = w.prefix_list(&["10.0.0.0/8", "52.0.0.0/8"]).await;
    let private_list = w.prefix_list(&["10.0.0.0/8", "192.168.0.0/16"]).await;
    // An approval of the list rule approves the list, not whatever it holds.
    let rule = format!("tcp/22 {public_list}");
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "list",
        &rule,
        u64::MAX / 2,
    )
    .await;
    let listed = |list: &str| {
        json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {}, "ipRanges": {},
               "ipv6Ranges": {}, "prefixListIds": {"items": [{"prefixListId": list}]}})
    };
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                // Half the internet each, every port.
                permission("tcp", Some((0, 65535)), &["0.0.0.0/1", "128.0.0.0/1"], &[]),
                // Every protocol from half of IPv6 (all of its global unicast).
                permission("-1", None, &[], &["::/1"]),
                // A range spanning 22, from one public host.
                permission("tcp", Some((20, 25)), &["203.0.113.7/32"], &[]),
                listed(&public_list),
                listed(&private_list),
            ]),
            true,
        )
        .await;
    let mut vars = policy(&with_scope(SSH_ENTRY));
    vars.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
    let outcomes = w.serve(&vars, vec![event]).await;
    let report = response(&outcomes[0]);
    let mut revoked: Vec<&str> = report["groups"][0]["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    revoked.sort_unstable();
    let listed_rule = format!("ingress tcp/22 {public_list}");
    let mut expected = vec![
        "ingress all ::/1",
        "ingress tcp/0-65535 0.0.0.0/1",
        "ingress tcp/0-65535 128.0.0.0/1",
        "ingress tcp/20-25 203.0.113.7/32",
        listed_rule.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(revoked, expected, "{report}");
    let private_rule = format!("ingress tcp/22 {private_list}");
    assert_eq!(
        w.rules(&w.protected).await,
        vec![private_rule.as_str(), PRE_EXISTING]
    );

    // The same shapes, opened again by hand without an event: the sweep finds each.
    let again = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                permission("tcp", Some((0, 65535)), &["0.0.0.0/1"], &[]),
                permission("-1", None, &[], &["::/1"]),
                listed(&public_list),
            ]),
            true,
        )
        .await;
    drop(again);
    let outcomes = w.serve(&vars, vec![world::scheduled_event(REGION)]).await;
    let swept = response(&outcomes[0]);
    assert_eq!(
        w.rules(&w.protected).await,
        vec![private_rule.as_str(), PRE_EXISTING],
        "{swept}"
    );
    // The unguarded group's rules are not the sweep's.
    assert_eq!(w.rules(&w.open).await, vec![PRE_EXISTING]);
}

#[tokio::test]
async fn forbid_beats_allow_and_an_exempt_principal_and_only_an_approval_of_the_address_beats_forbid(
) {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "office",
        "tcp/22 198.51.100.0/24",
        u64::MAX / 2,
    )
    .await;
    let document = format!(
        r#"{{"exempt": {{"principals": ["{ADMIN_ROLE}"]}},
            "allow": [{{"protocol": "tcp", "sources": ["0.0.0.0/0"]}}],
            "presets": ["security-hub-ec2-13"]}}"#
    );
    let mut vars = policy(&document);
    vars.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
    let by_mallory = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                permission(
                    "tcp",
                    Some((22, 22)),
                    &["0.0.0.0/0", "198.51.100.0/24"],
                    &[]
                ),
                permission("tcp", Some((8443, 8443)), &["0.0.0.0/0"], &[]),
            ]),
            true,
        )
        .await;
    let by_admin = w
        .authorize(
            &w.protected,
            session("ops/", "NetworkAdmin", "bob"),
            json!([permission("tcp", Some((22, 22)), &["203.0.113.0/24"], &[])]),
            true,
        )
        .await;
    let outcomes = w.serve(&vars, vec![by_mallory, by_admin]).await;
    let admin = response(&outcomes[1]);
    assert_eq!(
        w.rules(&w.protected).await,
        vec![
            "ingress tcp/22 198.51.100.0/24",
            PRE_EXISTING,
            "ingress tcp/8443 0.0.0.0/0"
        ],
        "{admin}"
    );
    assert_eq!(
        admin["groups"][0]["reasons"][0]["reason"],
        "forbidden by security-hub-ec2-13: ingress tcp/22 from internet"
    );
}

#[tokio::test]
async fn each_preset_alone_does_what_its_control_says() {
    let w = World::new().await;
    w.authorize(
        &w.protected,
        user("mallory"),
        json!([
            permission("tcp", Some((3306, 3306)), &["0.0.0.0/0", "10.0.0.0/8"], &[]),
            permission("tcp", Some((3389, 3389)), &[], &["::/0"]),
            permission("tcp", Some((8443, 8443)), &["0.0.0.0/0"], &[]),
            permission("udp", Some((53, 53)), &["0.0.0.0/0"], &[]),
            permission("tcp", Some((80, 80)), &["0.0.0.0/0"], &[]),
        ]),
        true,
    )
    .await;
    let w = &w;
    let sweep = |preset: &str| {
        let document = with_scope(&format!(r#""presets": [{preset}]"#));
        let vars = policy(&document);
        async move {
            let outcomes = w.serve(&vars, vec![world::scheduled_event(REGION)]).await;
            response(&outcomes[0]).clone()
        }
    };
    let dry = |preset: &str| {
        let document = with_scope(&format!(r#""presets": [{preset}]"#));
        let mut vars = policy(&document);
        vars.push(("REVERT_DRY_RUN", "true".to_string()));
        async move {
            let outcomes = w.serve(&vars, vec![world::scheduled_event(REGION)]).await;
            let mut revoked: Vec<String> = response(&outcomes[0])["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["revoked"].as_array().unwrap().clone())
                .map(|r| r.as_str().unwrap().to_string())
                .collect();
            revoked.sort();
            revoked
        }
    };
    assert_eq!(
        dry(r#""security-hub-ec2-13""#).await,
        Vec::<String>::new(),
        "no ssh is open"
    );
    assert_eq!(
        dry(r#""security-hub-ec2-14""#).await,
        ["ingress tcp/3389 ::/0"]
    );
    assert_eq!(
        dry(r#""security-hub-ec2-19""#).await,
        ["ingress tcp/3306 0.0.0.0/0", "ingress tcp/3389 ::/0"]
    );
    assert_eq!(
        dry(r#""security-hub-ec2-18""#).await,
        [
            "ingress tcp/3306 0.0.0.0/0",
            "ingress tcp/3389 ::/0",
            "ingress tcp/8443 0.0.0.0/0",
            "ingress udp/53 0.0.0.0/0"
        ]
    );
    assert_eq!(
        dry(
            r#"{"preset": "security-hub-ec2-18", "tcp_ports": ["80", "8443"], "udp_ports": ["53"]}"#
        )
        .await,
        ["ingress tcp/3306 0.0.0.0/0", "ingress tcp/3389 ::/0"]
    );
    // Dry runs changed nothing; the EC2.19 sweep enforces.
    assert_eq!(w.rules(&w.protected).await.len(), 7);
    let report = sweep(r#""security-hub-ec2-19""#).await;
    assert_eq!(
        w.rules(&w.protected).await,
        vec![
            "ingress tcp/80 0.0.0.0/0",
            PRE_EXISTING,
            "ingress tcp/3306 10.0.0.0/8",
            "ingress tcp/8443 0.0.0.0/0",
            "ingress udp/53 0.0.0.0/0"
        ],
        "{report}"
    );
}

#[tokio::test]
async fn the_default_group_preset_empties_the_vpc_s_default_group_and_only_it() {
    let w = World::new().await;
    let default = w
        .ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&w.vpc)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("default")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    let event = w
        .authorize(
            &default,
            user("mallory"),
            json!([permission("tcp", Some((443, 443)), &["10.0.0.0/8"], &[])]),
            true,
        )
        .await;
    let document = r#"{"presets": ["security-hub-ec2-2"], "directions": ["ingress"]}"#;
    let outcomes = w.serve(&policy(document), vec![event]).await;
    let report = response(&outcomes[0]);
    assert_eq!(
        report["groups"][0]["revoked"],
        json!(["ingress tcp/443 10.0.0.0/8"])
    );
    assert_eq!(
        report["groups"][0]["reasons"][0]["reason"],
        "forbidden by security-hub-ec2-2: the default security group holds no rules"
    );
    // The sweep takes what the VPC gave its default group, egress too, and leaves the
    // other groups' rules.
    let scoped = format!(
        r#"{{"scope": {{"vpc_ids": ["{}"]}}, "presets": ["security-hub-ec2-2"], "directions": ["ingress"]}}"#,
        w.vpc
    );
    let outcomes = w
        .serve(&policy(&scoped), vec![world::scheduled_event(REGION)])
        .await;
    response(&outcomes[0]);
    let group = sgwarden_aws::Ec2::new(&w.emulator.sdk_config(REGION).await)
        .read_group(&default)
        .await
        .unwrap();
    assert!(group.rules.is_empty(), "{:?}", group.rules);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert_eq!(w.rules(&w.open).await, vec![PRE_EXISTING]);
}

fn field<'f>(finding: &'f AwsSecurityFinding, key: &str) -> &'f str {
    finding
        .product_fields()
        .and_then(|f| f.get(key))
        .map_or("", String::as_str)
}

#[tokio::test]
async fn a_revert_is_one_finding_in_security_hub_updated_in_place_the_next_time() {
    let w = World::new().await;
    let mut vars = policy(SSH_FROM_INTERNET);
    vars.push(("SECURITY_HUB", "true".to_string()));
    let first = w.ssh_opened(&w.protected).await;
    let outcomes = w.serve(&vars, vec![first]).await;
    response(&outcomes[0]);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let found = findings(&w.emulator).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    let account = sgwarden_tests::cloudtrail::ACCOUNT;
    assert!(f.id().unwrap().starts_with(&format!(
        "sgwarden/revert-ingress/{account}/{REGION}/{}/reverted/",
        w.protected
    )));
    assert_eq!(
        f.product_arn(),
        Some(format!("arn:aws:securityhub:{REGION}:{account}:product/{account}/default").as_str())
    );
    assert_eq!(f.aws_account_id(), Some(account));
    assert_eq!(f.generator_id(), Some("sgwarden-revert-ingress"));
    assert_eq!(f.schema_version(), Some("2018-10-08"));
    assert_eq!(f.severity().unwrap().label().unwrap().as_str(), "HIGH");
    assert_eq!(f.compliance().unwrap().status().unwrap().as_str(), "PASSED");
    assert_eq!(f.workflow().unwrap().status().unwrap().as_str(), "RESOLVED");
    assert_eq!(f.record_state().unwrap().as_str(), "ACTIVE");
    let resource = &f.resources()[0];
    assert_eq!(resource.r#type(), Some("AwsEc2SecurityGroup"));
    assert_eq!(
        resource.id(),
        Some(
            format!(
                "arn:aws:ec2:{REGION}:{account}:security-group/{}",
                w.protected
            )
            .as_str()
        )
    );
    assert_eq!(
        resource
            .details()
            .unwrap()
            .aws_ec2_security_group()
            .unwrap()
            .group_id(),
        Some(w.protected.as_str())
    );
    assert_eq!(field(f, "sgwarden/rules"), "ingress tcp/22 0.0.0.0/0");
    assert_eq!(
        field(f, "sgwarden/decided"),
        "forbidden by forbid[0]: ingress tcp/22 from internet"
    );
    assert!(field(f, "sgwarden/actor").ends_with(":user/mallory"));
    assert!(f.description().unwrap().contains("mallory"));

    // Opened again, reverted again: the same finding, updated, not a second one.
    let second = w.ssh_opened(&w.protected).await;
    let outcomes = w.serve(&vars, vec![second]).await;
    response(&outcomes[0]);
    let found = findings(&w.emulator).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id(), f.id());
}

#[tokio::test]
async fn a_dry_run_is_one_new_finding_per_rule_it_would_revert() {
    let w = World::new().await;
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                permission("tcp", Some((22, 22)), &["0.0.0.0/0"], &[]),
                permission("-1", None, &["0.0.0.0/1"], &[]),
                permission("tcp", Some((22, 22)), &["10.0.0.0/8"], &[]),
            ]),
            true,
        )
        .await;
    let mut vars = policy(SSH_FROM_INTERNET);
    vars.push(("SECURITY_HUB", "true".to_string()));
    vars.push(("REVERT_DRY_RUN", "true".to_string()));
    let outcomes = w.serve(&vars, vec![event.clone(), event]).await;
    response(&outcomes[1]);
    assert_eq!(
        w.rules(&w.protected).await.len(),
        4,
        "a dry run changes nothing"
    );
    let mut found = findings(&w.emulator).await;
    found.sort_by_key(|f| field(f, "sgwarden/rules").to_string());
    assert_eq!(
        found.len(),
        2,
        "one per rule, the second event updating them: {found:?}"
    );
    let labels: Vec<(&str, &str)> = found
        .iter()
        .map(|f| {
            (
                field(f, "sgwarden/rules"),
                f.severity().unwrap().label().unwrap().as_str(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("ingress all 0.0.0.0/1", "CRITICAL"),
            ("ingress tcp/22 0.0.0.0/0", "HIGH")
        ]
    );
    for f in &found {
        assert_eq!(f.compliance().unwrap().status().unwrap().as_str(), "FAILED");
        assert_eq!(f.workflow().unwrap().status().unwrap().as_str(), "NEW");
        assert_eq!(field(f, "sgwarden/mode"), "would-revert");
        assert!(f.id().unwrap().contains("/would-revert/"));
    }
}

#[tokio::test]
async fn a_finding_that_cannot_be_imported_never_undoes_or_fails_the_revert() {
    let w = World::new().await;
    w.emulator
        .set_service_outage(REGION, "securityhub", Outage::Error);
    let mut vars = policy(SSH_FROM_INTERNET);
    vars.push(("SECURITY_HUB", "true".to_string()));
    let event = w.ssh_opened(&w.protected).await;
    let outcomes = w.serve(&vars, vec![event]).await;
    let report = response(&outcomes[0]);
    assert_eq!(
        report["groups"][0]["revoked"],
        json!(["ingress tcp/22 0.0.0.0/0"])
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert!(
        !w.emulator.calls_of("POST /findings/import").is_empty(),
        "it was tried"
    );
}

#[tokio::test]
async fn without_security_hub_on_no_finding_is_imported() {
    let w = World::new().await;
    let event = w.ssh_opened(&w.protected).await;
    let outcomes = w.serve(&policy(SSH_FROM_INTERNET), vec![event]).await;
    response(&outcomes[0]);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    assert!(w.emulator.calls_of("POST /findings/import").is_empty());
    assert!(findings(&w.emulator).await.is_empty());
}
