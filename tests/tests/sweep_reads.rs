//! What one account-region of revert-ingress's sweep reads, and when it stops: the
//! approvals of its own offending groups only (never a Scan of a table the whole
//! organisation shares), every page of its scope to the last (and none trusted whose token
//! comes back), a slow page of its groups waited for within a page's own budget, and no
//! group begun near the invocation's deadline.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use revert_ingress::RevertError;
use serde_json::{json, Value};
use sgwarden_core::ErrorType;
use sgwarden_tests::cloudtrail::ACCOUNT;
use sgwarden_tests::event_source;
use sgwarden_tests::revert_world::*;
use sgwarden_tests::runtime::{Outcome, RuntimeApi};
use sgwarden_tests::world;
use sgwarden_tests::GroupPages;

/// The sweep's policy: ssh, https from anywhere is revoked on the protected groups.
const POLICY: &str = world::SWEEP_POLICY;

/// The test world with ssh opened to the world on its protected group, no event sent.
async fn ssh_left_open() -> World {
    let w = World::new().await;
    world::hand_rule(
        &w.ec2,
        &w.protected,
        22,
        "0.0.0.0/0",
        "opened in the console",
    )
    .await;
    w
}

#[tokio::test]
async fn the_sweep_reads_the_approvals_of_its_offending_groups_only_and_never_scans_the_table() {
    let w = World::new().await;
    let dynamodb = w.approvals().await;
    let (protected, _) = world::sweep_world(&w.ec2, &w.vpc, 4).await;
    // A compliant protected group: nothing to revoke, so nothing to read for it.
    let clean = world::group(&w.ec2, &w.vpc, "clean", &[("Protected", "true")]).await;
    world::hand_rule(&w.ec2, &clean, 5432, "10.0.0.0/8", "the database port").await;
    let expires = epoch(now()) + 3600;
    world::approve(
        &dynamodb,
        APPROVALS,
        &protected[0],
        "CHG-9",
        "tcp/22 0.0.0.0/0",
        expires,
    )
    .await;
    // The organisation's other grants, which this account-region has no use for.
    for n in 0..20 {
        let group = format!("sg-0elsewhere{n:05}");
        world::approve(
            &dynamodb,
            APPROVALS,
            &group,
            "CHG-1",
            "tcp/22 0.0.0.0/0",
            expires,
        )
        .await;
    }
    w.emulator.clear_calls();
    let report = w
        .function(&[
            ("REVERT_POLICY", POLICY),
            ("REVERT_APPROVALS_TABLE", APPROVALS),
        ])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await
        .unwrap();
    // The approved ssh stays on its group; every other offending rule is revoked.
    assert_eq!(
        w.rules(&protected[0]).await,
        ["ingress tcp/22 0.0.0.0/0", "ingress tcp/5432 10.0.0.0/8"]
    );
    assert_eq!(
        w.rules(&protected[1]).await,
        ["ingress tcp/5432 10.0.0.0/8"]
    );
    assert_eq!(w.rules(&clean).await, ["ingress tcp/5432 10.0.0.0/8"]);
    // The world's own protected group offends too (https from 10.0.0.0/8).
    assert_eq!(
        w.rules(&w.protected).await,
        Vec::<String>::new(),
        "{report:?}"
    );
    let offending = [&protected[0], &protected[1], &w.protected];
    assert!(
        w.emulator.calls_of("Scan").is_empty(),
        "{:?}",
        w.emulator.calls()
    );
    let mut expected: Vec<String> = offending.iter().map(|g| g.to_string()).collect();
    expected.sort();
    assert_eq!(
        approvals_queried(&w.emulator),
        expected,
        "{:?}",
        w.emulator.calls_of("Query")
    );
}

#[tokio::test]
async fn a_slow_page_of_the_sweep_is_waited_for_within_its_own_budget() {
    let w = ssh_left_open().await;
    // Longer than one attempt of an event's call (5 s): the event path would give up.
    w.emulator
        .set_operation_latency("DescribeSecurityGroups", Duration::from_secs(6));
    let report = w
        .function(&[("REVERT_POLICY", POLICY)])
        .await
        .handle(&world::scheduled_event(REGION), now())
        .await;
    w.emulator
        .set_operation_latency("DescribeSecurityGroups", Duration::ZERO);
    let report = report.unwrap();
    // One page, asked once: the slow answer was waited for, not retried.
    let pages = w.emulator.calls_of("DescribeSecurityGroups");
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0].params["MaxResults"], "200");
    assert_eq!(report.groups.len(), 1, "{report:?}");
    assert!(w.rules(&w.protected).await.is_empty());
}

#[tokio::test]
async fn near_the_deadline_the_sweep_begins_nothing_and_fails_to_be_retried() {
    let w = ssh_left_open().await;
    w.emulator.clear_calls();
    let function = w.function(&[("REVERT_POLICY", POLICY)]).await;
    let sweep = world::scheduled_event(REGION);
    let deadline = SystemTime::now() + Duration::from_secs(10);
    let error = function
        .handle_until(&sweep, now(), Some(deadline))
        .await
        .unwrap_err();
    assert!(matches!(error, RevertError::DeadlineNear(_)), "{error}");
    assert_eq!(error.kind(), ErrorType::DeadlineNear);
    assert!(w.emulator.calls().is_empty(), "{:?}", w.emulator.calls());
    assert_eq!(
        w.rules(&w.protected).await,
        ["ingress tcp/22 0.0.0.0/0", PRE_EXISTING]
    );
    // With its time ahead, the same sweep revokes (the policy allows neither rule).
    let deadline = SystemTime::now() + Duration::from_secs(300);
    function
        .handle_until(&sweep, now(), Some(deadline))
        .await
        .unwrap();
    assert!(w.rules(&w.protected).await.is_empty());
}

#[tokio::test]
async fn the_binary_near_its_deadline_leaves_a_queued_place_unswept_and_fails_its_message() {
    let w = ssh_left_open().await;
    let mut env = w.emulator.function_env(REGION);
    env.push(("REVERT_POLICY", POLICY.to_string()));
    env.push(("SGWARDEN_FUNCTION_ROLE_ARN", FUNCTION_ROLE.to_string()));
    let runtime = RuntimeApi::start().await;
    let soon = SystemTime::now() + Duration::from_secs(10);
    runtime.invoke_until(event_source::sweep_message("m-1", ACCOUNT, REGION, 1), soon);
    runtime.invoke(event_source::sweep_message("m-2", ACCOUNT, REGION, 2));
    let function = runtime.spawn("revert-ingress", &env);
    let outcomes = runtime.outcomes(2, Duration::from_secs(60)).await;
    let logs = function.stop();
    let bodies: Vec<&Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Response { body, .. } => body,
            other => panic!("expected a response: {other:?}\n{logs}"),
        })
        .collect();
    // Ten seconds left: the place is not begun, and its message is received again.
    assert_eq!(
        bodies[0]["batchItemFailures"],
        json!([{"itemIdentifier": "m-1"}])
    );
    assert_eq!(bodies[0]["groups"], json!([]));
    assert!(
        logs.contains("DeadlineNear") || logs.contains("deadline is near"),
        "{logs}"
    );
    // Received again with its time ahead, it is swept.
    assert_eq!(bodies[1]["batchItemFailures"], json!([]));
    assert_eq!(bodies[1]["places_swept"], 1);
    assert!(w.rules(&w.protected).await.is_empty());
}

/// A scheduled sweep of a fleet of six (the world's protected group and three of the
/// fleet's in scope), its scope read in pages cut as `pages` says; the cut ends with it. A
/// sweep that does not answer within two minutes fails the test. Returns the fleet's protected and unprotected groups and what the sweep answered.
async fn sweep_paged(
    w: &World,
    pages: GroupPages,
) -> (
    Vec<String>,
    Vec<String>,
    Result<revert_ingress::Report, RevertError>,
) {
    let (protected, others) = world::sweep_world(&w.ec2, &w.vpc, 6).await;
    w.emulator.set_group_pages(pages);
    w.emulator.clear_calls();
    let function = w.function(&[("REVERT_POLICY", POLICY)]).await;
    // A reader that pages for ever fails here instead of holding the run.
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        function.handle(&world::scheduled_event(REGION), now()),
    )
    .await
    .expect("the sweep's read of its pages came to an end");
    w.emulator.set_group_pages(GroupPages::default());
    (protected, others, outcome)
}

/// The sweep's pages of its scope, in the order asked: the calls with the sweep's page size.
fn scope_pages(w: &World) -> Vec<sgwarden_tests::Call> {
    w.emulator
        .calls_of("DescribeSecurityGroups")
        .into_iter()
        .filter(|c| c.params["MaxResults"] == "200")
        .collect()
}

#[tokio::test]
async fn the_sweep_follows_every_page_of_its_scope_to_the_last() {
    let w = World::new().await;
    // EC2 may answer fewer groups than asked: one to a page here, so four pages for the
    // world's protected group and the fleet's three.
    let pages = GroupPages {
        most: Some(1),
        repeat_token: false,
    };
    let (protected, others, report) = sweep_paged(&w, pages).await;
    let report = report.unwrap();
    let pages = scope_pages(&w);
    assert_eq!(pages.len(), 4, "{pages:?}");
    assert!(pages[0].params.get("NextToken").is_none(), "{pages:?}");
    for page in &pages[1..] {
        assert!(page.params["NextToken"].is_string(), "{pages:?}");
    }
    assert_eq!(report.groups.len(), 4, "{report:?}");
    for group in &protected {
        assert_eq!(w.rules(group).await, ["ingress tcp/5432 10.0.0.0/8"]);
    }
    assert!(w.rules(&w.protected).await.is_empty());
    // Out of scope, untouched.
    for group in &others {
        assert_eq!(w.rules(group).await.len(), 3);
    }
}

#[tokio::test]
async fn a_page_token_that_comes_back_fails_the_read_and_revokes_nothing() {
    let w = World::new().await;
    let pages = GroupPages {
        most: Some(1),
        repeat_token: true,
    };
    let (protected, _, outcome) = sweep_paged(&w, pages).await;
    let error = outcome.unwrap_err();
    assert!(error.to_string().contains("NextToken"), "{error}");
    // The second page gave back the token it was asked with: the read stops there.
    assert_eq!(scope_pages(&w).len(), 2, "{:?}", scope_pages(&w));
    for group in &protected {
        assert_eq!(
            w.rules(group).await,
            [
                "ingress tcp/22 0.0.0.0/0",
                "ingress tcp/443 0.0.0.0/0",
                "ingress tcp/5432 10.0.0.0/8"
            ]
        );
    }
    assert_eq!(w.emulator.calls_of("RevokeSecurityGroupIngress").len(), 0);
}
