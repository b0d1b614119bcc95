//! The AWS adapter against the emulator: one test per operation, reading state back from
//! AWS rather than trusting what the adapter reports.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use sgwarden_aws::{AuditContext, AwsError, Ec2};
use sgwarden_core::rule::{Direction, Peer, PortRange, Rule, RuleInfo, RuleSet, Traffic};
use sgwarden_core::{plan, Owner};
use sgwarden_tests::{world, Emulator, Outage};

const REGION: &str = "eu-west-1";

struct World {
    emulator: Emulator,
    client: aws_sdk_ec2::Client,
    ec2: Ec2,
    vpc: String,
}

async fn world() -> World {
    let emulator = Emulator::start();
    let config = emulator.sdk_config(REGION).await;
    let client = aws_sdk_ec2::Client::new(&config);
    let vpc = world::vpc(&client, "10.0.0.0/16").await;
    World {
        ec2: Ec2::new(&config),
        emulator,
        client,
        vpc,
    }
}

fn owner() -> Owner {
    Owner::new("db").unwrap()
}

fn tcp(port: u16, cidr: &str) -> Rule {
    Rule::new(
        Direction::Ingress,
        Traffic::Tcp(PortRange::single(port)),
        Peer::cidr(cidr, "test").unwrap(),
    )
}

fn owned(rules: &[Rule]) -> RuleSet {
    rules
        .iter()
        .map(|r| (r.clone(), RuleInfo::described(owner().describe("test"))))
        .collect()
}

fn audit() -> AuditContext {
    AuditContext {
        function: "test",
        cause: "adapter-test".into(),
    }
}

/// Collects what the code under test logs, as JSON lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l["target"] == "sgwarden::audit")
            .collect()
    }
}

#[tokio::test]
async fn reads_many_groups_with_rules_and_tags() {
    let w = world().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = world::group(
            &w.client,
            &w.vpc,
            &format!("g{i}"),
            &[("Team", "db"), ("Index", &i.to_string())],
        )
        .await;
        world::hand_rule(&w.client, &id, 22, &format!("203.0.113.{i}/32"), "ssh").await;
        ids.push(id);
    }
    w.emulator.clear_calls();
    let groups = w.ec2.read_groups(&ids).await.unwrap();
    assert_eq!(w.emulator.calls_of("DescribeSecurityGroups").len(), 1);
    assert_eq!(groups.len(), 7);
    for (i, group) in groups.iter().enumerate() {
        assert_eq!(group.group_id, ids[i], "returned in the order asked");
        assert_eq!(group.tags["Team"], "db");
        assert_eq!(group.tags["Index"], i.to_string());
        assert_eq!(group.vpc_id.as_deref(), Some(w.vpc.as_str()));
        let ingress = group.rules.direction(Direction::Ingress);
        assert_eq!(
            ingress.texts(),
            vec![format!("ingress tcp/22 203.0.113.{i}/32")]
        );
        assert_eq!(
            ingress.iter().next().unwrap().1.description.as_deref(),
            Some("ssh")
        );
        assert_eq!(
            group.rules.direction(Direction::Egress).len(),
            1,
            "the default egress rule"
        );
    }
}

#[tokio::test]
async fn more_groups_than_one_filter_takes_are_read_in_parts() {
    let w = world().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            world::group(
                &w.client,
                &w.vpc,
                &format!("g{n}"),
                &[("Protected", "true")],
            )
            .await,
        );
    }
    // 250 ids in scope, three of which exist: EC2 (and the emulator) refuses more than 200
    // values in one filter, so the adapter must ask in parts.
    let mut scope_ids: Vec<String> = (0..247).map(|n| format!("sg-{n:017x}")).collect();
    scope_ids.extend(ids.iter().cloned());
    let scope = sgwarden_core::policy::Scope {
        group_ids: scope_ids.iter().cloned().collect(),
        vpc_ids: (0..201)
            .map(|n| format!("vpc-{n:017x}"))
            .chain([w.vpc.clone()])
            .collect(),
        tag: Some(sgwarden_core::policy::TagCondition {
            key: "Protected".into(),
            value: "true".into(),
        }),
    };
    w.emulator.clear_calls();
    let mut found: Vec<String> = w
        .ec2
        .groups_in_scope(&scope)
        .await
        .unwrap()
        .groups
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    found.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(found, expected);
    // Two parts of group ids times two parts of VPC ids.
    assert_eq!(w.emulator.calls_of("DescribeSecurityGroups").len(), 4);
    let mut many = scope_ids[..198].to_vec();
    many.extend(ids.iter().cloned());
    let err = w.ec2.read_groups(&many).await.unwrap_err();
    assert!(matches!(err, AwsError::NotFound { .. }), "{err}");
    let read = w.ec2.read_groups(&ids).await.unwrap();
    assert_eq!(read.len(), 3);
}

#[tokio::test]
async fn more_instances_than_one_filter_takes_are_read_in_parts() {
    let w = world().await;
    let image = w
        .client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let launched: Vec<String> = w
        .client
        .run_instances()
        .image_id(image)
        .min_count(2)
        .max_count(2)
        .send()
        .await
        .unwrap()
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    // A group of 250 instances, two of which still exist.
    let mut ids: Vec<String> = (0..248).map(|n| format!("i-{n:017x}")).collect();
    ids.extend(launched.iter().cloned());
    let found = w.ec2.instances(&ids).await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|i| i.private_ipv4.is_some()));
    let live = w.ec2.live_instances(&ids).await.unwrap();
    assert_eq!(live, launched.iter().cloned().collect());
}

#[tokio::test]
async fn a_missing_group_is_an_error_not_an_empty_group() {
    let w = world().await;
    let err = w.ec2.read_group("sg-0000000000000000f").await.unwrap_err();
    assert!(
        matches!(err, AwsError::NotFound { what: "security group", ref id, .. } if id == "sg-0000000000000000f"),
        "{err}"
    );
}

#[tokio::test]
async fn applies_a_plan_in_one_call_per_direction_and_keeps_hand_made_rules() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    world::hand_rule(&w.client, &id, 22, "198.51.100.0/24", "office ssh").await;
    let before = w.ec2.read_group(&id).await.unwrap();

    let mut desired = owned(&[
        tcp(9042, "203.0.113.1/32"),
        tcp(9042, "203.0.113.2/32"),
        tcp(7000, "203.0.113.1/32"),
    ]);
    let egress = Rule::new(
        Direction::Egress,
        Traffic::Udp(PortRange::single(53)),
        Peer::cidr("2001:db8::/64", "t").unwrap(),
    );
    desired.insert(egress.clone(), RuleInfo::described(owner().describe("dns")));
    let p = plan(&before.rules, &desired, &owner());
    w.emulator.clear_calls();
    let (logs, _guard) = Logs::capture();
    let applied = w.ec2.apply(&id, &p, &audit()).await.unwrap();

    assert_eq!(applied.added.len(), 4);
    assert_eq!(
        w.emulator.calls_of("AuthorizeSecurityGroupIngress").len(),
        1
    );
    assert_eq!(w.emulator.calls_of("AuthorizeSecurityGroupEgress").len(), 1);
    assert!(w.emulator.calls_of("RevokeSecurityGroupIngress").is_empty());

    let after = w.ec2.read_group(&id).await.unwrap();
    assert_eq!(
        after.rules,
        p.applied_to(&before.rules),
        "AWS holds exactly the planned state"
    );
    assert_eq!(
        after
            .rules
            .get(&tcp(22, "198.51.100.0/24"))
            .unwrap()
            .description
            .as_deref(),
        Some("office ssh")
    );
    assert!(owner().owns(after.rules.get(&egress).unwrap()));

    let lines = logs.audit_lines();
    assert_eq!(lines.len(), 1, "one audit line per apply");
    let fields = &lines[0]["fields"];
    assert_eq!(fields["group"], id.as_str());
    assert_eq!(fields["region"], REGION);
    assert_eq!(fields["added_count"], 4);
    assert_eq!(fields["function"], "test");
    assert_eq!(fields["cause"], "adapter-test");
    assert!(fields["added"]
        .as_str()
        .unwrap()
        .contains("egress udp/53 2001:db8::/64"));
}

#[tokio::test]
async fn removes_stale_owned_rules_only() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    world::hand_rule(&w.client, &id, 9042, "203.0.113.9/32", "partner, by hand").await;
    let stale = owned(&[tcp(9042, "203.0.113.1/32"), tcp(9042, "203.0.113.2/32")]);
    w.ec2
        .apply(&id, &plan(&RuleSet::new(), &stale, &owner()), &audit())
        .await
        .unwrap();

    let keep = owned(&[tcp(9042, "203.0.113.2/32")]);
    let actual = w.ec2.read_group(&id).await.unwrap().rules;
    let p = plan(&actual, &keep, &owner());
    assert_eq!(p.remove.len(), 1);
    w.emulator.clear_calls();
    let applied = w.ec2.apply(&id, &p, &audit()).await.unwrap();
    assert_eq!(applied.removed, vec![tcp(9042, "203.0.113.1/32")]);
    assert_eq!(w.emulator.calls_of("RevokeSecurityGroupIngress").len(), 1);

    let after = w.ec2.read_group(&id).await.unwrap().rules;
    assert!(!after.contains(&tcp(9042, "203.0.113.1/32")));
    assert!(after.contains(&tcp(9042, "203.0.113.2/32")));
    assert!(
        after.contains(&tcp(9042, "203.0.113.9/32")),
        "the hand-made rule survives"
    );
}

#[tokio::test]
async fn duplicates_from_a_concurrent_writer_are_success() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    let desired = owned(&[tcp(9042, "203.0.113.1/32"), tcp(9042, "203.0.113.2/32")]);
    let stale_plan = plan(&RuleSet::new(), &desired, &owner());
    // Another invocation adds one of the rules between our read and our apply.
    let first: RuleSet = owned(&[tcp(9042, "203.0.113.1/32")]);
    w.ec2
        .apply(&id, &plan(&RuleSet::new(), &first, &owner()), &audit())
        .await
        .unwrap();

    let applied = w.ec2.apply(&id, &stale_plan, &audit()).await.unwrap();
    assert_eq!(applied.already_present, vec![tcp(9042, "203.0.113.1/32")]);
    assert_eq!(applied.added, vec![tcp(9042, "203.0.113.2/32")]);
    let after = w.ec2.read_group(&id).await.unwrap().rules;
    assert!(desired.rules().all(|r| after.contains(r)));
}

#[tokio::test]
async fn rules_already_gone_are_success() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    let rules = owned(&[tcp(9042, "203.0.113.1/32"), tcp(9042, "203.0.113.2/32")]);
    w.ec2
        .apply(&id, &plan(&RuleSet::new(), &rules, &owner()), &audit())
        .await
        .unwrap();
    let actual = w.ec2.read_group(&id).await.unwrap().rules;
    let remove_all = plan(&actual, &RuleSet::new(), &owner());
    // Someone removes one rule first.
    let one = plan(
        &owned(&[tcp(9042, "203.0.113.1/32")]),
        &RuleSet::new(),
        &owner(),
    );
    w.ec2.apply(&id, &one, &audit()).await.unwrap();

    let applied = w.ec2.apply(&id, &remove_all, &audit()).await.unwrap();
    assert_eq!(applied.removed, vec![tcp(9042, "203.0.113.2/32")]);
    assert_eq!(applied.already_gone, vec![tcp(9042, "203.0.113.1/32")]);
    let after = w.ec2.read_group(&id).await.unwrap().rules;
    assert!(after.direction(Direction::Ingress).is_empty());
}

#[tokio::test]
async fn an_unreachable_region_changes_nothing_and_says_so() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    let p = plan(
        &RuleSet::new(),
        &owned(&[tcp(9042, "203.0.113.1/32")]),
        &owner(),
    );
    w.emulator.set_outage(REGION, Outage::Error);
    let (logs, _guard) = Logs::capture();
    let err = w.ec2.apply(&id, &p, &audit()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let lines = logs.audit_lines();
    assert_eq!(lines.len(), 1, "a failed apply is audited too");
    assert_eq!(lines[0]["fields"]["added_count"], 0);
    assert!(lines[0]["fields"]["error"].as_str().is_some());
    w.emulator.set_outage(REGION, Outage::None);
    assert!(w
        .ec2
        .read_group(&id)
        .await
        .unwrap()
        .rules
        .direction(Direction::Ingress)
        .is_empty());
}

#[tokio::test]
async fn an_apply_answers_the_ids_of_every_rule_it_created_and_reads_them_back_by_group() {
    let w = world().await;
    let id = world::group(&w.client, &w.vpc, "db", &[]).await;
    let empty = world::group(&w.client, &w.vpc, "empty", &[]).await;
    // Two traffics: two permissions in one authorize call, three rules.
    let desired = owned(&[
        tcp(9042, "203.0.113.1/32"),
        tcp(9042, "203.0.113.2/32"),
        tcp(7000, "203.0.113.1/32"),
    ]);
    let applied = w
        .ec2
        .apply(&id, &plan(&RuleSet::new(), &desired, &owner()), &audit())
        .await
        .unwrap();
    let mut created = applied.created_ids.clone();
    created.sort();
    let read = w
        .ec2
        .read_group_rules(&[id.clone(), empty.clone(), "sg-0123456789abcdef0".into()])
        .await
        .unwrap();
    let group = read[0].as_ref().unwrap();
    let mut held: Vec<String> = group
        .rules
        .iter()
        .filter(|(r, _)| r.direction == Direction::Ingress)
        .filter_map(|(_, i)| i.rule_id.clone())
        .collect();
    held.sort();
    assert_eq!(created.len(), 3, "{created:?}");
    assert_eq!(created, held, "the ids answered are the ids EC2 holds");
    // A group without a rule left is an empty group; one that does not exist is not.
    let defaults = read[1].as_ref().unwrap().rules.clone();
    assert!(!defaults.is_empty(), "a new group allows all egress");
    w.ec2.revoke(&empty, &defaults, &audit()).await.unwrap();
    let read = w
        .ec2
        .read_group_rules(&[empty.clone(), "sg-0123456789abcdef0".into()])
        .await
        .unwrap();
    assert!(read[0].as_ref().unwrap().rules.is_empty());
    assert!(
        matches!(read[1], Err(AwsError::NotFound { ref id, .. }) if id == "sg-0123456789abcdef0"),
        "{:?}",
        read[1]
    );
}

#[tokio::test]
async fn the_history_of_a_window_is_read_by_name_page_by_page_newest_first_and_paced() {
    use std::time::{Duration, SystemTime};
    let emulator = Emulator::start();
    let now = SystemTime::now();
    let at = |minutes: u64| {
        chrono::DateTime::<chrono::Utc>::from(now - Duration::from_secs(minutes * 60))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // 60 calls in the window, one before it, one of another name, one in another region.
    let mut records: Vec<serde_json::Value> = (1..=60)
        .map(|m| {
            serde_json::json!({"eventID": format!("ev-{m}"), "eventTime": at(m),
                "eventName": "AuthorizeSecurityGroupIngress", "awsRegion": REGION})
        })
        .collect();
    records.push(
        serde_json::json!({"eventID": "ev-old", "eventTime": at(600),
        "eventName": "AuthorizeSecurityGroupIngress", "awsRegion": REGION}),
    );
    records.push(
        serde_json::json!({"eventID": "ev-other", "eventTime": at(5),
        "eventName": "RunInstances", "awsRegion": REGION}),
    );
    records.push(serde_json::json!({"eventID": "ev-away", "eventTime": at(5),
        "eventName": "AuthorizeSecurityGroupIngress", "awsRegion": "us-east-1"}));
    emulator.seed_cloudtrail_events(&serde_json::Value::Array(records));
    let trail = sgwarden_aws::cloudtrail::CloudTrail::new(&emulator.sdk_config(REGION).await);
    let started = std::time::Instant::now();
    let found = trail
        .history(
            &["AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"],
            now - Duration::from_secs(120 * 60),
            now,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = found
        .iter()
        .map(|r| r["eventID"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=60).map(|m| format!("ev-{m}")).collect();
    assert_eq!(
        ids, expected,
        "newest first, in the window, by name and region"
    );
    let lookups = emulator.calls_of("LookupEvents");
    assert_eq!(lookups.len(), 3, "two pages, then the other name's one");
    assert!(lookups[0].params.get("NextToken").is_none());
    assert_eq!(lookups[1].params["NextToken"], "50");
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "three calls at most 2 a second"
    );
}
