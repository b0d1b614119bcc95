//! Attacks on revert-ingress's forbid entries and Security Hub presets: an insider with
//! ordinary EC2 rights (authorize, modify, `CreateSecurityGroup`, `ModifyManagedPrefixList`)
//! tries to keep ssh or a database port open to the internet past a forbid-only policy or a
//! preset. Each change is made for real in the emulator, its CloudTrail event served to the
//! real binary through the Runtime API, and the rules read back from EC2.
//!
//! The first five are attacks that worked on the first forbid code (each failed on its
//! binaries; each comment says what the hole was and what closes it now). The tests after
//! them are attacks that were defended from the start, kept for the coverage they add beside
//! `tests/forbid.rs`.

use std::path::PathBuf;

use aws_sdk_ec2::types::{AddPrefixListEntry, RemovePrefixListEntry};
use serde_json::{json, Value};
use sgwarden_tests::cloudtrail::{self, api_call, session, user};
use sgwarden_tests::revert_world::*;
use sgwarden_tests::runtime::{binary_path, Outcome};
use sgwarden_tests::world;

/// The brief's policy: EC2.19 on the groups tagged `Protected=true`.
fn ec2_19_on_protected() -> String {
    r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
        "presets": ["security-hub-ec2-19"]}"#
        .to_string()
}

/// Adds (and removes) entries of `list` by hand; returns the event CloudTrail records for it
/// as `identity`.
async fn modify_list(
    w: &World,
    list: &str,
    identity: Value,
    add: Option<&str>,
    remove: Option<&str>,
) -> Value {
    let mut request = w.ec2.modify_managed_prefix_list().prefix_list_id(list);
    let mut parameters = serde_json::Map::new();
    parameters.insert("PrefixListId".into(), json!(list));
    if let Some(cidr) = add {
        request = request.add_entries(AddPrefixListEntry::builder().cidr(cidr).build());
        parameters.insert("AddEntry".into(), json!({"Cidr": cidr, "tag": 1}));
    }
    if let Some(cidr) = remove {
        request = request.remove_entries(RemovePrefixListEntry::builder().cidr(cidr).build());
        parameters.insert("RemoveEntry".into(), json!({"Cidr": cidr, "tag": 1}));
    }
    request.send().await.unwrap();
    w.emulator.clear_calls();
    api_call(
        REGION,
        "ModifyManagedPrefixList",
        identity,
        json!({"ModifyManagedPrefixListRequest": parameters}),
        json!({"ModifyManagedPrefixListResponse": {"prefixList": {"prefixListId": list}}}),
    )
}

/// Every rule of the group, both directions, read back from EC2.
async fn all_rules(w: &World, group_id: &str) -> Vec<String> {
    sgwarden_aws::Ec2::new(&w.emulator.sdk_config(REGION).await)
        .read_group(group_id)
        .await
        .unwrap()
        .rules
        .texts()
}

/// Runs the real `sgwarden` binary with the emulator's environment and the approvals
/// table; returns its exit code and stderr.
async fn run_sgwarden(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let binary: PathBuf = binary_path("sgwarden");
    let out = tokio::process::Command::new(binary)
        .args(args)
        .env_clear()
        .envs(w.emulator.function_env(REGION))
        .env("REVERT_APPROVALS_TABLE", APPROVALS)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Attacks that work (each test FAILS on the code it was written against).

/// Attack (closed). A rule the core cannot read, anywhere in a group holding a rule on a prefix list,
/// made that list's `ModifyManagedPrefixList` event fail before judging: the widened list kept ssh open
/// to the internet until the next sweep (never, for a forbid-only policy without a scope).
///
/// The hole was: `RevertIngress::judge_list_rules` reads the referencing groups' rules with
/// `Ec2::rules_of_groups` (`describe_rules`), which fails on the first unreadable rule,
/// although `on_list_change` found the groups with `guarded_rules`, which tolerates one.
/// Attack 5's defence (`an_unreadable_rule_in_a_group_does_not_stop_its_events_being_judged`)
/// covered the authorize path only. Closed by: the list path reads what it can
/// (`readable_rules_of_groups`), judges it, then fails naming the odd rule.
#[tokio::test]
async fn an_odd_rule_beside_a_rule_on_a_widened_list_keeps_ssh_open_past_the_list_s_event() {
    let w = World::new().await;
    let list = w.prefix_list(&["10.0.0.0/8"]).await;
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([listed(&list, 22)]),
            true,
        )
        .await;
    let vars = policy(SSH_FROM_INTERNET);
    let first = w.serve(&vars, vec![event]).await;
    assert!(
        revoked(response(&first[0])).is_empty(),
        "a private list is no exposure"
    );
    w.add_odd_rule(&w.protected).await;
    let widened = modify_list(&w, &list, user("mallory"), Some("0.0.0.0/0"), None).await;
    let outcomes = w.serve(&vars, vec![widened]).await;
    // Read rule by rule: the group as a whole cannot be read with the odd rule in it.
    let on_list = cloudtrail::rules(&w.ec2, &w.protected)
        .await
        .into_iter()
        .filter(|r| r["prefixListId"] == json!(list))
        .count();
    assert_eq!(
        on_list, 0,
        "ssh from the widened list is still open: {:?}",
        outcomes[0]
    );
    // Judged first, then the invocation fails naming the rule it could not read (the
    // Errors alarm; the sweep does the same), as the odd rule could be on the list too.
    match &outcomes[0] {
        Outcome::Error { body, .. } => assert!(
            body["errorMessage"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot read"),
            "{body}"
        ),
        other => panic!("the odd rule went unreported: {other:?}"),
    }
}

/// Attack (closed). `RestoreManagedPrefixListVersion` puts back the entries of an older version of a
/// list, with no `ModifyManagedPrefixList` call: a list that held `0.0.0.0/0` once, emptied of
/// it before a rule pointed at it, is restored after. The README used to call it "not a trigger (the
/// sweep catches it)", but a forbid-only policy without a scope has no sweep (the sweep
/// refuses an empty scope), so ssh stays open to the internet for good.
///
/// The hole was: `sgwarden_core::event::cloudtrail::parse_change` knows only
/// `ModifyManagedPrefixList` among list changes (the event is refused as not understood),
/// and `RevertIngress::sweep` skips a policy whose scope is everything, forbid-only or not.
/// Moto has no `RestoreManagedPrefixListVersion`: the restore is made by hand (the same
/// entries) and its CloudTrail event served. Closed by: the restore is a trigger, judged like
/// a modify whose additions are every entry the list holds (none vouched for by the call).
#[tokio::test]
async fn restoring_an_old_list_version_opens_ssh_past_a_forbid_only_policy_for_good() {
    let w = World::new().await;
    // Version 1 holds the internet; version 2 does not.
    let list = w.prefix_list(&["10.0.0.0/8", "0.0.0.0/0"]).await;
    let narrowed = modify_list(&w, &list, user("mallory"), None, Some("0.0.0.0/0")).await;
    let opened = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([listed(&list, 22)]),
            true,
        )
        .await;
    let vars = policy(SSH_FROM_INTERNET);
    let first = w.serve(&vars, vec![narrowed, opened]).await;
    assert!(revoked(response(&first[1])).is_empty(), "{:?}", first[1]);
    // Version 1 restored: the list holds the internet again.
    w.ec2
        .modify_managed_prefix_list()
        .prefix_list_id(&list)
        .add_entries(AddPrefixListEntry::builder().cidr("0.0.0.0/0").build())
        .send()
        .await
        .unwrap();
    let restore = api_call(
        REGION,
        "RestoreManagedPrefixListVersion",
        user("mallory"),
        json!({"RestoreManagedPrefixListVersionRequest": {"PrefixListId": list,
            "PreviousVersion": 1, "CurrentVersion": 2}}),
        json!({"RestoreManagedPrefixListVersionResponse": {"prefixList": {"prefixListId": list,
            "version": 3}}}),
    );
    let outcomes = w.serve(&vars, vec![restore]).await;
    assert_eq!(
        revoked(response(&outcomes[0])),
        vec![format!("ingress tcp/22 {list}")]
    );
    let ssh = format!("ingress tcp/22 {list}");
    assert!(
        !w.rules(&w.protected).await.contains(&ssh),
        "ssh from the restored list is still open: {outcomes:?}"
    );
}

/// Attack (closed). `CreateSecurityGroup` gives every new group an egress rule to `0.0.0.0/0` with no
/// authorize call. Under a forbid of egress to the internet (the guide's reason forbid
/// entries default to ingress), an insider creates a group and puts their instance in it:
/// the forbidden egress is never judged, by event or (without a scope) by sweep.
///
/// The hole was: `parse_change` does not handle `CreateSecurityGroup` (nor `CreateVpc`, whose
/// default group is born with the rules EC2.2 forbids), and the sweep refused an empty scope.
/// Closed by: a policy that only forbids sweeps every group without a scope; a new group's
/// rules are the sweep's (no creation is a trigger).
#[tokio::test]
async fn a_new_group_s_default_egress_stays_open_past_an_egress_forbid() {
    let w = World::new().await;
    let document =
        r#"{"forbid": [{"protocol": "-1", "sources": ["internet"], "direction": "egress"}]}"#;
    let group = world::group(&w.ec2, &w.vpc, "exfil", &[]).await;
    assert_eq!(all_rules(&w, &group).await, vec!["egress all 0.0.0.0/0"]);
    // `CreateSecurityGroup` is no trigger (the template's pattern never sends it): the
    // sweep, which a forbid-only policy runs over every group, takes the rule.
    let outcomes = w
        .serve(&policy(document), vec![world::scheduled_event(REGION)])
        .await;
    assert_eq!(
        all_rules(&w, &group).await,
        Vec::<String>::new(),
        "egress to the internet is still open: {outcomes:?}"
    );
}

/// Attack (closed). `sgwarden approve` refuses `0.0.0.0/0` and `::/0` without `--allow-anywhere`, but
/// takes `0.0.0.0/1` and `::/1` (half of each internet) silently; and an approval is the one
/// thing that beats a forbid entry. The forbid module judges address sets "never spellings",
/// and its own docs name `0.0.0.0/1` as the spelling that walks past a string check: this
/// one is a string check.
///
/// The hole was: `ApprovalRequest::approve_reaching`'s `anywhere` is `prefix_len() == 0`.
/// Closed by: a public range wider than a /8 (IPv6: a /32) needs `--allow-anywhere`.
#[tokio::test]
async fn approving_half_the_internet_needs_allow_anywhere_like_all_of_it() {
    let w = World::new().await;
    w.approvals().await;
    for rule in ["tcp/22 0.0.0.0/1", "tcp/22 ::/1"] {
        let (code, stderr) = run_sgwarden(
            &w,
            &[
                "approve",
                "--group-id",
                &w.protected,
                "--rule",
                rule,
                "--for",
                "4h",
                "--reason",
                "migration window",
            ],
        )
        .await;
        assert_eq!(
            code,
            Some(1),
            "{rule} approved without --allow-anywhere: {stderr}"
        );
    }
    assert!(w.emulator.calls_of("PutItem").is_empty());
}

/// Attack (closed). A revert's one finding lists every rule and every verdict in `ProductFields`,
/// unbounded; Security Hub takes at most 2,048 characters per value (and refuses the whole
/// finding beyond: `FailedFindings`, logged only). One authorize of 50 single hosts on ssh
/// is reverted, but its finding never reaches Security Hub, so the security team reading it
/// does not see the attempt. (Moto does not enforce the limit: the test checks it.) The
/// revert itself stands, as it must.
///
/// The hole was: `sgwarden_core::finding::finding` truncates `Description` to 1,024 but not
/// `sgwarden/rules` or `sgwarden/decided`. Closed by: every value, the title and the
/// description are cut to Security Hub's limits.
#[tokio::test]
async fn a_revert_of_many_forbidden_rules_is_one_finding_security_hub_accepts() {
    let w = World::new().await;
    let hosts: Vec<String> = (1..=50).map(|i| format!("203.0.113.{i}/32")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([permission("tcp", Some((22, 22)), &hosts, &[])]),
            true,
        )
        .await;
    let mut vars = policy(SSH_FROM_INTERNET);
    vars.push(("SECURITY_HUB", "true".to_string()));
    let outcomes = w.serve(&vars, vec![event]).await;
    assert_eq!(revoked(response(&outcomes[0])).len(), 50);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let found = findings(&w.emulator).await;
    assert_eq!(found.len(), 1);
    let f = &found[0];
    for (key, value) in f.product_fields().unwrap() {
        assert!(key.chars().count() <= 128, "{key}");
        assert!(
            value.chars().count() <= 2048,
            "ProductFields {key} holds {} characters: Security Hub refuses the finding",
            value.chars().count()
        );
    }
    assert!(f.title().unwrap().chars().count() <= 256);
    assert!(f.description().unwrap().chars().count() <= 1024);
}

// ---------------------------------------------------------------------------------------
// Attacks that are defended (these pass).

/// A kept rule reshaped by `ModifySecurityGroupRules` into a high-risk port from a range
/// that only partly lies in the internet (`100.64.0.0/9` is `100.0.0.0/9`: half shared
/// address space, half public) is judged on its new shape and revoked by id.
#[tokio::test]
async fn reshaping_a_kept_rule_into_a_high_risk_port_is_reverted_by_its_modify() {
    let w = World::new().await;
    let vars = policy(&ec2_19_on_protected());
    let https = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([tcp(443, "0.0.0.0/0")]),
            true,
        )
        .await;
    let rule_id = created_rule_id(&https);
    let first = w.serve(&vars, vec![https]).await;
    assert!(revoked(response(&first[0])).is_empty());
    let modify = w
        .modify_by_hand(&rule_id, (3300, 3310), "100.64.0.0/9")
        .await;
    let outcomes = w.serve(&vars, vec![modify]).await;
    assert_eq!(
        revoked(response(&outcomes[0])),
        vec!["ingress tcp/3300-3310 100.0.0.0/9"]
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
    let revoke = &w.emulator.calls_of("RevokeSecurityGroupIngress")[0];
    assert!(revoke.params.to_string().contains(&rule_id), "{revoke:?}");
}

/// The exempt role's own modify of its own rule into ssh-from-anywhere is what that call
/// made, so it is recorded as an exemption: and still revoked, since no exemption keeps a
/// forbidden rule (by event and by the next sweep).
#[tokio::test]
async fn an_exempt_role_reshaping_its_rule_into_a_forbidden_one_is_still_reverted() {
    let w = World::new().await;
    w.approvals().await;
    let document = format!(
        r#"{{"scope": {{"tag": {{"key": "Protected", "value": "true"}}}},
            "exempt": {{"principals": ["{ADMIN_ROLE}"]}},
            "presets": ["security-hub-ec2-19"]}}"#
    );
    let mut vars = policy(&document);
    vars.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
    let made = w.admin_opens(5432, "10.2.0.0/16", true).await;
    let rule_id = created_rule_id(&made);
    let first = w.serve(&vars, vec![made]).await;
    assert!(response(&first[0])["skipped"]
        .as_str()
        .unwrap()
        .contains("exempt principal"));
    let modify = w
        .modify_as(
            session("ops/", "NetworkAdmin", "bob"),
            &rule_id,
            (5432, 5432),
            "0.0.0.0/0",
        )
        .await;
    let outcomes = w.serve(&vars, vec![modify]).await;
    assert_eq!(
        revoked(response(&outcomes[0])),
        vec!["ingress tcp/5432 0.0.0.0/0"]
    );
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}

/// The internet in odd spellings: IPv4-mapped and NAT64 IPv6 (`::ffff:0:0/96`,
/// `64:ff9b::/96`), 6to4 (`2002::/16`), `0.0.0.0/8`, just outside the private ranges
/// (`172.32.0.0/11`, `100.128.0.0/9`), and tcp spelled as its number: each is revoked;
/// what is private, ssh over another protocol (SCTP, ICMP) and other ports stay.
#[tokio::test]
async fn odd_spellings_of_the_internet_and_of_tcp_are_forbidden_and_private_ones_kept() {
    let w = World::new().await;
    let event = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([
                permission(
                    "tcp",
                    Some((22, 22)),
                    &[
                        "0.0.0.0/8",
                        "172.32.0.0/11",
                        "100.128.0.0/9",
                        "100.64.0.0/10"
                    ],
                    &[
                        "::ffff:0:0/96",
                        "64:ff9b::/96",
                        "2002::/16",
                        "fc00::/7",
                        "fe80::/10"
                    ]
                ),
                permission("6", Some((20, 23)), &["198.51.100.0/24"], &[]),
                permission("132", Some((-1, -1)), &["0.0.0.0/0"], &[]),
                permission("icmp", Some((-1, -1)), &["0.0.0.0/0"], &[]),
            ]),
            true,
        )
        .await;
    let outcomes = w.serve(&policy(SSH_FROM_INTERNET), vec![event]).await;
    let report = response(&outcomes[0]);
    assert_eq!(
        revoked(report),
        vec![
            "ingress tcp/20-23 198.51.100.0/24",
            "ingress tcp/22 0.0.0.0/8",
            "ingress tcp/22 100.128.0.0/9",
            "ingress tcp/22 172.32.0.0/11",
            "ingress tcp/22 2002::/16",
            "ingress tcp/22 64:ff9b::/96",
            "ingress tcp/22 ::ffff:0.0.0.0/96",
        ],
        "{report}"
    );
    let mut left = w.rules(&w.protected).await;
    left.sort();
    assert_eq!(
        left,
        vec![
            "ingress 132 0.0.0.0/0",
            "ingress icmp 0.0.0.0/0",
            "ingress tcp/22 100.64.0.0/10",
            "ingress tcp/22 fc00::/7",
            "ingress tcp/22 fe80::/10",
            PRE_EXISTING,
        ]
    );
}

/// A list private when the rule on it was judged, widened later, by the exempt role even:
/// the rule is revoked within the `ModifyManagedPrefixList` event. The exempt role's entry is
/// vouched for in the list's record, but a forbid entry judges what the list holds, not who
/// vouched for it.
#[tokio::test]
async fn a_private_list_widened_later_even_by_an_exempt_role_is_reverted_within_its_event() {
    let w = World::new().await;
    w.approvals().await;
    let document = format!(
        r#"{{"exempt": {{"principals": ["{ADMIN_ROLE}"]}},
            "presets": ["security-hub-ec2-13"]}}"#
    );
    let mut vars = policy(&document);
    vars.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
    let list = w.prefix_list(&["10.0.0.0/8"]).await;
    let opened = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([listed(&list, 22)]),
            true,
        )
        .await;
    let first = w.serve(&vars, vec![opened]).await;
    assert!(revoked(response(&first[0])).is_empty(), "{:?}", first[0]);
    let widened = modify_list(
        &w,
        &list,
        session("ops/", "NetworkAdmin", "bob"),
        Some("0.0.0.0/1"),
        None,
    )
    .await;
    let outcomes = w.serve(&vars, vec![widened]).await;
    let ssh = format!("ingress tcp/22 {list}");
    assert_eq!(revoked(response(&outcomes[0])), vec![ssh]);
    assert_eq!(w.rules(&w.protected).await, vec![PRE_EXISTING]);
}

/// An approval of a narrow CIDR keeps ssh from inside it past a forbid entry, and nothing
/// wider: ssh from the same approved /24 on another group, and from a /23 around it, goes.
#[tokio::test]
async fn an_approval_beats_a_forbid_only_inside_it_and_only_on_its_group() {
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
    let mut vars = policy(SSH_FROM_INTERNET);
    vars.push(("REVERT_APPROVALS_TABLE", APPROVALS.to_string()));
    let here = w
        .authorize(
            &w.protected,
            user("mallory"),
            json!([permission(
                "tcp",
                Some((22, 22)),
                &["198.51.100.128/25", "198.51.100.0/23"],
                &[]
            )]),
            true,
        )
        .await;
    let there = w
        .authorize(
            &w.open,
            user("mallory"),
            json!([tcp(22, "198.51.100.0/24")]),
            true,
        )
        .await;
    let outcomes = w.serve(&vars, vec![here, there]).await;
    assert_eq!(
        revoked(response(&outcomes[0])),
        vec!["ingress tcp/22 198.51.100.0/23"]
    );
    assert_eq!(
        revoked(response(&outcomes[1])),
        vec!["ingress tcp/22 198.51.100.0/24"]
    );
    assert_eq!(
        w.rules(&w.protected).await,
        vec!["ingress tcp/22 198.51.100.128/25", PRE_EXISTING]
    );
    assert_eq!(w.rules(&w.open).await, vec![PRE_EXISTING]);
}
