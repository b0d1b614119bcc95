//! The sweep's per-group reads (#24), attacked: the approvals table read only for the groups
//! the policy alone would revoke on (one `Query` each), the prefix lists' records read by
//! their own id, and no group begun near the invocation's deadline. An insider with ordinary
//! EC2 rights cannot write the table; they can shape groups, rules and lists, and they can
//! keep groups offending.

use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{AddPrefixListEntry, IpPermission, PrefixListId};
use serde_json::json;
use sgwarden_tests::cloudtrail::{user, ACCOUNT};
use sgwarden_tests::event_source;
use sgwarden_tests::revert_world::*;
use sgwarden_tests::world;

const SSH: &str = "ingress tcp/22 0.0.0.0/0";
const PARTNER: &str = "203.0.113.0/24";

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|g| g.to_string()).collect();
    ids.sort();
    ids
}

/// The table grants by group id: reading per group must not let one group's approval keep
/// the same rule on another offending group of the account-region, nor an approval of a
/// narrower rule keep a wider one on its own group.
#[tokio::test]
async fn an_approval_keeps_its_own_group_s_rule_and_nothing_on_another_offending_group() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    let web = world::group(&w.ec2, &w.vpc, "web", &[("Protected", "true")]).await;
    let cache = world::group(&w.ec2, &w.vpc, "cache", &[("Protected", "true")]).await;
    for group in [&w.protected, &web, &cache] {
        world::hand_rule(&w.ec2, group, 22, "0.0.0.0/0", "opened by mallory").await;
    }
    let expires = epoch(now()) + 3600;
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.protected,
        "CHG-1",
        "tcp/22 0.0.0.0/0",
        expires,
    )
    .await;
    // The cache's own approval names one address only.
    world::approve(
        &dynamodb,
        APPROVALS,
        &cache,
        "CHG-2",
        "tcp/22 203.0.113.7/32",
        expires,
    )
    .await;
    // The unguarded group's approval of the very rule, in the same account-region.
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.open,
        "CHG-3",
        "tcp/22 0.0.0.0/0",
        expires,
    )
    .await;
    w.emulator.clear_calls();
    let policy = exempt_policy();
    let report = w
        .function(&[
            ("REVERT_POLICY", policy.as_str()),
            ("REVERT_APPROVALS_TABLE", APPROVALS),
        ])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    assert_eq!(
        w.rules(&w.protected).await,
        [SSH, PRE_EXISTING],
        "{report:?}"
    );
    assert!(w.rules(&web).await.is_empty(), "{report:?}");
    assert!(w.rules(&cache).await.is_empty(), "{report:?}");
    assert!(w.emulator.calls_of("Scan").is_empty());
    assert_eq!(
        approvals_queried(&w.emulator),
        sorted(&[&w.protected, &web, &cache])
    );
}

/// An exemption recorded for one rule id: the sweep reads the group's rule ids only after
/// its per-group read of the table found the record, so the exempt rule stays; the same
/// shape on another group, or made again on its own group under a new id, goes.
#[tokio::test]
async fn an_exemption_by_rule_id_keeps_that_rule_only_when_read_per_group() {
    let w = World::new().await;
    let function = w.guarded_function().await;
    let made = w.admin_opens(5432, "10.2.0.0/16", true).await;
    let exempt_id = created_rule_id(&made);
    function.handle(&made, now()).await.unwrap();
    let records = w.exemption_records(&w.protected).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["rule_id"], json!(exempt_id));
    let web = world::group(&w.ec2, &w.vpc, "web", &[("Protected", "true")]).await;
    world::hand_rule(&w.ec2, &web, 5432, "10.2.0.0/16", "same shape, other group").await;
    w.emulator.clear_calls();
    let sweep = world::scheduled_event(REGION);
    let report = function.handle(&sweep, now()).await.unwrap();
    let postgres = "ingress tcp/5432 10.2.0.0/16";
    assert_eq!(
        w.rules(&w.protected).await,
        [PRE_EXISTING, postgres],
        "{report:?}"
    );
    assert!(w.rules(&web).await.is_empty(), "{report:?}");
    // Mallory takes the exempt rule away and makes it again: a new id, no exemption.
    w.ec2
        .revoke_security_group_ingress()
        .group_id(&w.protected)
        .security_group_rule_ids(&exempt_id)
        .send()
        .await
        .unwrap();
    world::hand_rule(&w.ec2, &w.protected, 5432, "10.2.0.0/16", "made again").await;
    let report = function.handle(&sweep, now()).await.unwrap();
    assert_eq!(w.rules(&w.protected).await, [PRE_EXISTING], "{report:?}");
}

/// A rule on a customer-managed list is judged by what the list holds and the list's own
/// record (read by the list's id, not by a group's `Query`). A record filed under the list's
/// id that looks like an approval, or an approval on another group, keeps nothing when the
/// list is widened.
#[tokio::test]
async fn an_approval_filed_under_a_prefix_list_s_id_keeps_no_rule_on_the_widened_list() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    let list = w.prefix_list(&[PARTNER]).await;
    w.ec2
        .authorize_security_group_ingress()
        .group_id(&w.protected)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .prefix_list_ids(PrefixListId::builder().prefix_list_id(&list).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let policy = json!({
        "scope": {"tag": {"key": "Protected", "value": "true"}},
        "allow": [{"protocol": "tcp", "ports": "22", "sources": [list]},
                  {"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}],
        "directions": ["ingress"]
    })
    .to_string();
    let function = w
        .function(&[
            ("REVERT_POLICY", policy.as_str()),
            ("REVERT_APPROVALS_TABLE", APPROVALS),
        ])
        .await;
    let on_list = format!("ingress tcp/22 {list}");
    // The first sweep vouches for what the list holds, and reads no group's approvals.
    w.emulator.clear_calls();
    let sweep = world::scheduled_event(REGION);
    function.handle(&sweep, now()).await.unwrap();
    assert_eq!(
        w.rules(&w.protected).await,
        [on_list.as_str(), PRE_EXISTING]
    );
    assert!(
        approvals_queried(&w.emulator).is_empty(),
        "{:?}",
        w.emulator.calls()
    );
    // Mallory widens the list to the internet; its event never reaches the function.
    w.ec2
        .modify_managed_prefix_list()
        .prefix_list_id(&list)
        .current_version(1)
        .add_entries(AddPrefixListEntry::builder().cidr("0.0.0.0/0").build())
        .send()
        .await
        .unwrap();
    let expires = epoch(now()) + 3600;
    world::approve(
        &dynamodb,
        APPROVALS,
        &list,
        "CHG-L",
        "tcp/22 0.0.0.0/0",
        expires,
    )
    .await;
    world::approve(
        &dynamodb,
        APPROVALS,
        &w.open,
        "CHG-O",
        "tcp/22 0.0.0.0/0",
        expires,
    )
    .await;
    w.emulator.clear_calls();
    let report = function.handle(&sweep, now()).await.unwrap();
    assert_eq!(w.rules(&w.protected).await, [PRE_EXISTING], "{report:?}");
    assert_eq!(approvals_queried(&w.emulator), sorted(&[&w.protected]));
    let record = dynamodb
        .get_item()
        .table_name(APPROVALS)
        .key("group_id", AttributeValue::S(list.clone()))
        .key("approval_id", AttributeValue::S("entries".into()))
        .send()
        .await
        .unwrap();
    let entries = record.item().unwrap()["entries"].as_l().unwrap().clone();
    assert_eq!(entries, [AttributeValue::S(PARTNER.into())]);
}

/// Mallory's deadline world: 12 guarded groups she keeps open to ssh from anywhere, then,
/// last in EC2's order, her late group, opened the same way, whose event (returned) never
/// reached the function; revokes slowed (as a throttled account's are) so that one
/// invocation revokes about one batch of [`revert_ingress::SWEEP_CONCURRENCY`] before
/// `DEADLINE_MARGIN`. The function has no table.
struct Churn {
    w: World,
    churned: Vec<String>,
    late: String,
    lost_event: serde_json::Value,
    function: revert_ingress::RevertIngress,
}

impl Churn {
    async fn new() -> Self {
        let w = World::new().await;
        let mut churned = Vec::new();
        for n in 0..12 {
            let tags = [("Protected", "true")];
            let group = world::group(&w.ec2, &w.vpc, &format!("churn-{n}"), &tags).await;
            world::hand_rule(&w.ec2, &group, 22, "0.0.0.0/0", "kept open by mallory").await;
            churned.push(group);
        }
        let late = world::group(&w.ec2, &w.vpc, "late", &[("Protected", "true")]).await;
        let lost_event = w
            .authorize(&late, user("mallory"), json!([tcp(22, "0.0.0.0/0")]), true)
            .await;
        let policy = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
            "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}],
            "directions": ["ingress"]}"#;
        let function = w.function(&[("REVERT_POLICY", policy)]).await;
        w.emulator
            .set_operation_latency("RevokeSecurityGroupIngress", Duration::from_secs(4));
        Self {
            w,
            churned,
            late,
            lost_event,
            function,
        }
    }

    /// The `count`-th receive of the place's sweep message, 32 s before Lambda's deadline: it
    /// must fail the message, the deadline near.
    async fn receive(&self, count: u32) -> revert_ingress::Report {
        let deadline = SystemTime::now() + Duration::from_secs(32);
        let message = event_source::sweep_message("m-1", ACCOUNT, REGION, count);
        let report = self
            .function
            .handle_until(&message, now(), Some(deadline))
            .await
            .unwrap();
        let failed = report.batch_item_failures.as_ref().map(Vec::len);
        assert_eq!(failed, Some(1), "{report:?}");
        report
    }

    /// Mallory reopens what the sweep closed.
    async fn reopen(&self) {
        for group in &self.churned {
            if self.w.rules(group).await.is_empty() {
                world::hand_rule(&self.w.ec2, group, 22, "0.0.0.0/0", "reopened").await;
            }
        }
    }

    fn unslowed(&self) {
        self.w
            .emulator
            .set_operation_latency("RevokeSecurityGroupIngress", Duration::ZERO);
    }
}

/// The deadline, played against: mallory keeps more groups offending than one invocation
/// can revoke before `DEADLINE_MARGIN`, all of them ahead of her late group in EC2's order,
/// and reopens them between receives. Begun always in EC2's order, every receive revoked the
/// same early groups and the late one was never reached before the dead-letter queue. Each
/// receive now begins a third further on (`sgwarden_core::fanout::Attempt`), so the
/// receives of one message begin every guarded group.
#[tokio::test]
async fn groups_kept_offending_ahead_of_a_late_group_do_not_keep_the_sweep_off_it() {
    let c = Churn::new().await;
    let mut errors = Vec::new();
    // Three receives: the sweep queue's maxReceiveCount before the dead-letter queue.
    for count in 1..=3 {
        errors.push(c.receive(count).await);
        c.reopen().await;
    }
    c.unslowed();
    assert!(
        c.w.rules(&c.late).await.is_empty(),
        "the late group outlived every receive: {errors:?}"
    );
}

/// What still catches the late group that a deadline-bounded receive left: the message
/// fails (received again, then dead-lettered), the group's
/// own event revokes it at once, and a sweep with its time ahead reaches every group.
#[tokio::test]
async fn a_group_the_deadline_left_is_caught_by_its_event_and_by_a_sweep_with_time() {
    let c = Churn::new().await;
    let report = c.receive(1).await;
    assert_eq!(c.w.rules(&c.late).await, [SSH], "{report:?}");
    c.reopen().await;
    c.unslowed();
    let report = c.function.handle(&c.lost_event, now()).await.unwrap();
    assert!(c.w.rules(&c.late).await.is_empty(), "{report:?}");
    world::hand_rule(&c.w.ec2, &c.late, 22, "0.0.0.0/0", "opened again").await;
    let deadline = SystemTime::now() + Duration::from_secs(300);
    c.function
        .handle_until(&world::scheduled_event(REGION), now(), Some(deadline))
        .await
        .unwrap();
    assert!(c.w.rules(&c.late).await.is_empty());
    for group in &c.churned {
        assert!(c.w.rules(group).await.is_empty());
    }
}
