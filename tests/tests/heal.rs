//! asg-sync heals: a CloudTrail call that takes a rule away from one of its groups is answered
//! by the real binary, through the Lambda Runtime API, with a true-up of that group from the
//! registry. Each test first builds the cluster with real launches, then changes a group by
//! hand in the emulator and sends the call's event the way CloudTrail records it.
//!
//! The attacks of an insider with ordinary EC2 rights are here too: naming a session like
//! revert-ingress's, revoking by group name, failing a call on purpose.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, session, user, ACCOUNT};
use sgwarden_tests::cluster_world::{Cluster, LOCAL, PEER};
use sgwarden_tests::runtime::{self, Outcome, RuntimeApi};

const OWN_ROLE: &str = "sgwarden-asg-sync";
const REVERT_ROLE: &str = "sgwarden-revert-ingress";

fn role_arn(role: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{role}")
}

/// The cluster in both regions, every instance launched: each group holds the whole cluster.
async fn cluster() -> Cluster {
    let c = Cluster::new(1).await;
    for region in [LOCAL, PEER] {
        let instance = c.site(region).instances[0].clone();
        c.launch(region, &instance).await.unwrap();
    }
    c
}

/// Revokes the rule `traffic peer` of `region`'s group by hand, by its id; returns the id.
async fn revoke_by_hand(c: &Cluster, region: &str, rule: &str) -> String {
    let (id, _) = c
        .rules(region)
        .await
        .remove(rule)
        .expect("the rule is there");
    c.site(region)
        .ec2
        .revoke_security_group_ingress()
        .group_id(&c.site(region).group_id)
        .security_group_rule_ids(&id)
        .send()
        .await
        .unwrap();
    id
}

/// The `RevokeSecurityGroupIngress` event of that revoke, made by `identity`.
fn revoke_event(region: &str, request: Value, identity: Value) -> Value {
    cloudtrail::api_call(
        region,
        "RevokeSecurityGroupIngress",
        identity,
        request,
        json!({"requestId": "r-1", "_return": true}),
    )
}

fn by_id(group_id: &str, rule_id: &str) -> Value {
    json!({"groupId": group_id, "securityGroupRuleIds": {"items": [{"securityGroupRuleId": rule_id}]}})
}

/// The binary as deployed in `region`, with `extra` settings, serving `events`: what it
/// answered and what it logged.
async fn serve(
    c: &Cluster,
    region: &str,
    extra: &[(&str, &str)],
    events: Vec<Value>,
) -> (Vec<Outcome>, String) {
    let vars = c.vars(region, extra);
    let mut env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    env.extend(c.emulator.function_env(region));
    let runtime = RuntimeApi::start().await;
    let function = runtime.spawn("asg-sync", &env);
    let count = events.len();
    for event in events {
        runtime.invoke(event);
    }
    let outcomes = runtime.outcomes(count, Duration::from_secs(60)).await;
    let logs = function.stop();
    assert_eq!(outcomes.len(), count, "{outcomes:?}\n{logs}");
    (outcomes, logs)
}

fn body(outcome: &Outcome) -> &Value {
    match outcome {
        Outcome::Response { body, .. } => body,
        other => panic!("expected a response: {other:?}"),
    }
}

fn log_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// The operations the emulator served since the calls were last cleared, as `region op`.
fn calls(c: &Cluster) -> Vec<String> {
    c.emulator
        .calls()
        .into_iter()
        .map(|call| format!("{} {}", call.region, call.operation))
        .collect()
}

#[tokio::test]
async fn a_cluster_rule_revoked_by_hand_in_a_peer_region_is_back_after_its_event() {
    let c = cluster().await;
    let peer = c.site(PEER);
    sgwarden_tests::world::hand_rule(&peer.ec2, &peer.group_id, 22, "192.0.2.0/24", "ops ssh")
        .await;
    let whole = c.owned_rules(PEER).await;
    let local_address =
        &sgwarden_tests::world::public_addresses(&c.site(LOCAL).ec2, &c.site(LOCAL).instances)
            .await[0];
    let taken = format!("tcp/9042 {local_address}/32");
    let rule_id = revoke_by_hand(&c, PEER, &taken).await;
    assert!(!c.owned_rules(PEER).await.contains(&taken));
    let before_local = c.rules(LOCAL).await;
    c.emulator.clear_calls();

    let event = revoke_event(PEER, by_id(&peer.group_id, &rule_id), user("mallory"));
    let event_id = event["detail"]["eventID"].as_str().unwrap().to_string();
    let (outcomes, logs) = serve(
        &c,
        PEER,
        &[("SGWARDEN_FUNCTION_ROLE_ARN", &role_arn(OWN_ROLE))],
        vec![event],
    )
    .await;

    let report = body(&outcomes[0]);
    assert_eq!(report["trigger"], "heal", "{report}");
    assert_eq!(
        report["groups"][0]["added"],
        json!([format!("ingress {taken}")])
    );
    assert_eq!(report["groups"][0]["removed"], json!([]));
    let writes: Vec<String> = calls(&c)
        .into_iter()
        .filter(|call| {
            !call.contains(" Describe") && !call.ends_with(" Query") && !call.ends_with(" Scan")
        })
        .collect();
    // One authorize of the taken rule, then the registry's record of rule ids (the new id
    // added, the revoked one forgotten), in the peer region only: no registry member
    // written, no other region or Auto Scaling group touched.
    assert_eq!(
        writes[0],
        format!("{PEER} AuthorizeSecurityGroupIngress"),
        "{logs}"
    );
    assert!(
        writes[1..]
            .iter()
            .all(|w| *w == format!("{PEER} UpdateItem")),
        "{writes:?}"
    );
    assert_eq!(c.owned_rules(PEER).await, whole);
    let rules = c.rules(PEER).await;
    assert_eq!(
        rules["tcp/22 192.0.2.0/24"].1, "ops ssh",
        "the hand-made rule beside it is untouched"
    );
    assert_eq!(c.rules(LOCAL).await, before_local);

    let audit: Vec<Value> = log_lines(&logs)
        .into_iter()
        .filter(|l| {
            l["target"] == "sgwarden::audit" && l["fields"]["message"] == "security group changed"
        })
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    let cause = audit[0]["fields"]["cause"].as_str().unwrap();
    assert_eq!(
        cause,
        format!("RevokeSecurityGroupIngress {event_id} by arn:aws:iam::{ACCOUNT}:user/mallory")
    );
    let metrics = runtime::metrics_in(&logs);
    runtime::assert_metrics(
        &metrics[0],
        "asg-sync",
        &[
            ("RulesAdded", 1),
            ("RulesRemoved", 0),
            ("PeerUnreachable", 0),
            ("HealConflicts", 0),
            ("Errors", 0),
        ],
    );
}

#[tokio::test]
async fn asg_sync_s_own_revoke_causes_no_second_true_up() {
    let c = Cluster::new(2).await;
    let local = c.site(LOCAL).instances.clone();
    for instance in &local {
        c.launch(LOCAL, instance).await.unwrap();
    }
    // A node leaves: asg-sync revokes its rules, and CloudTrail records that revoke as made
    // by asg-sync's role.
    let leaving =
        sgwarden_tests::world::lifecycle_event(LOCAL, &c.site(LOCAL).asg, &local[1], false);
    let report = c.handle(LOCAL, &[], &leaving).await.unwrap();
    assert!(!report.groups[0].removed.is_empty(), "{report:?}");
    let after_leaving = c.rules(LOCAL).await;
    let own = session("", OWN_ROLE, "sgwarden-asg-sync-fn");
    let event = revoke_event(
        LOCAL,
        json!({"groupId": c.site(LOCAL).group_id, "ipPermissions": {"items": []}}),
        own,
    );
    c.emulator.clear_calls();

    let (outcomes, _) = serve(
        &c,
        LOCAL,
        &[("SGWARDEN_FUNCTION_ROLE_ARN", &role_arn(OWN_ROLE))],
        vec![event.clone()],
    )
    .await;
    let report = body(&outcomes[0]);
    assert_eq!(
        report["skipped"],
        "nothing to heal: asg-sync's own RevokeSecurityGroupIngress"
    );
    assert_eq!(calls(&c), Vec::<String>::new(), "no AWS call at all");

    // Without its own role known, the same event is a true-up that finds nothing to do.
    let (outcomes, _) = serve(&c, LOCAL, &[], vec![event]).await;
    assert_eq!(body(&outcomes[0])["groups"], json!([]));
    assert!(calls(&c)
        .iter()
        .all(|call| call.contains(" Describe") || call.ends_with(" Query")));
    assert_eq!(c.rules(LOCAL).await, after_leaving);
}

#[tokio::test]
async fn a_cluster_rule_revert_ingress_revoked_is_a_conflict_reported_not_restored() {
    let c = cluster().await;
    let site = c.site(LOCAL);
    let address =
        &sgwarden_tests::world::public_addresses(&c.site(PEER).ec2, &c.site(PEER).instances).await
            [0];
    let taken = format!("tcp/9042 {address}/32");
    let settings = [
        ("SGWARDEN_FUNCTION_ROLE_ARN", role_arn(OWN_ROLE)),
        ("SYNC_REVERT_ROLE_ARNS", role_arn(REVERT_ROLE)),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let rule_id = revoke_by_hand(&c, LOCAL, &taken).await;
    let reverted = revoke_event(
        LOCAL,
        by_id(&site.group_id, &rule_id),
        session("", REVERT_ROLE, "sgwarden-revert-ingress"),
    );
    c.emulator.clear_calls();
    let (outcomes, logs) = serve(&c, LOCAL, &settings, vec![reverted]).await;
    let report = body(&outcomes[0]);
    assert_eq!(
        report["conflicts"],
        json!([format!("{LOCAL} {} ingress {taken}", site.group_id)])
    );
    assert!(calls(&c).iter().all(|call| !call.contains("Authorize")));
    assert!(!c.owned_rules(LOCAL).await.contains(&taken));
    let warned: Vec<Value> = log_lines(&logs)
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert_eq!(warned.len(), 1, "{logs}");
    let message = warned[0]["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("revert-ingress") && message.contains("asg-sync"),
        "{message}"
    );
    runtime::assert_metrics(
        &runtime::metrics_in(&logs)[0],
        "asg-sync",
        &[
            ("RulesAdded", 0),
            ("RulesRemoved", 0),
            ("PeerUnreachable", 0),
            ("HealConflicts", 1),
            ("Errors", 0),
        ],
    );

    // The attack: an insider names the session of a role of their own like revert-ingress's,
    // hoping the cluster rule they took stays gone. Only the role counts: it is healed.
    let disguised = revoke_event(
        LOCAL,
        by_id(&site.group_id, &rule_id),
        session("", "ops", "sgwarden-revert-ingress"),
    );
    let (outcomes, _) = serve(&c, LOCAL, &settings, vec![disguised]).await;
    assert_eq!(body(&outcomes[0])["conflicts"], json!([]));
    assert!(c.owned_rules(LOCAL).await.contains(&taken));
}

#[tokio::test]
async fn a_revoke_by_group_name_heals_every_group_of_the_region() {
    let c = cluster().await;
    let whole = c.owned_rules(LOCAL).await;
    let taken = whole.iter().next().unwrap().clone();
    revoke_by_hand(&c, LOCAL, &taken).await;
    // Default-VPC style: the call names the group by name, the event carries no id.
    let event = revoke_event(
        LOCAL,
        json!({"groupName": "ring-nodes", "ipPermissions": {"items": []}}),
        user("mallory"),
    );
    let (outcomes, _) = serve(&c, LOCAL, &[], vec![event]).await;
    assert_eq!(body(&outcomes[0])["trigger"], "heal");
    assert_eq!(c.owned_rules(LOCAL).await, whole);
}

#[tokio::test]
async fn calls_that_took_nothing_or_not_from_its_groups_change_nothing() {
    let c = cluster().await;
    let whole = c.owned_rules(LOCAL).await;
    let taken = whole.iter().next().unwrap().clone();
    let rule_id = revoke_by_hand(&c, LOCAL, &taken).await;
    let site = c.site(LOCAL);
    let mut failed = revoke_event(LOCAL, by_id(&site.group_id, &rule_id), user("mallory"));
    failed["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
    let other_group = revoke_event(
        LOCAL,
        by_id("sg-0123456789abcdef0", &rule_id),
        user("mallory"),
    );
    // The peer's group named in this region's event: this function keeps it only as a peer.
    let peer_group = revoke_event(
        LOCAL,
        by_id(&c.site(PEER).group_id, &rule_id),
        user("mallory"),
    );
    let other_region = revoke_event(PEER, by_id(&site.group_id, &rule_id), user("mallory"));
    c.emulator.clear_calls();
    let (outcomes, _) = serve(
        &c,
        LOCAL,
        &[],
        vec![failed, other_group, peer_group, other_region],
    )
    .await;
    let skipped: Vec<&Value> = outcomes.iter().map(|o| &body(o)["skipped"]).collect();
    assert_eq!(
        skipped[0],
        "nothing to heal: RevokeSecurityGroupIngress failed (Client.UnauthorizedOperation)"
    );
    for reason in &skipped[1..] {
        assert!(
            reason
                .as_str()
                .unwrap()
                .contains("is not in SYNC_SECURITY_GROUP_IDS"),
            "{reason}"
        );
    }
    assert_eq!(calls(&c), Vec::<String>::new(), "no AWS call at all");
    assert!(!c.owned_rules(LOCAL).await.contains(&taken));

    // A malformed removal fails closed, naming the field.
    c.emulator.clear_calls();
    let mut malformed = revoke_event(LOCAL, by_id(&site.group_id, &rule_id), user("mallory"));
    malformed["detail"]["requestParameters"]["groupId"] = json!("sg-zz");
    let (outcomes, _) = serve(&c, LOCAL, &[], vec![malformed]).await;
    outcomes[0].expect_error("EventNotUnderstood", "detail.requestParameters.groupId");
    assert_eq!(calls(&c), Vec::<String>::new());
}
