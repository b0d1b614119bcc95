//! Every sample in `events/` and every real recorded event in `../shared/real-events/` parses,
//! into the trigger its name promises, with the rules it carries.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sgwarden_core::event::cloudtrail::{parse_removal, REMOVING_CALLS};
use sgwarden_core::event::config::{self, ConfigMessage};
use sgwarden_core::event::{CallOutcome, GroupSelector, RuleChange, Trigger};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn texts<'a>(rules: impl Iterator<Item = &'a sgwarden_core::Rule>) -> Vec<String> {
    rules.map(ToString::to_string).collect()
}

#[test]
fn every_sample_parses_into_its_trigger() {
    let files = json_files(&repo_root().join("events"));
    assert!(files.len() >= 15, "events/ lost samples: {files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("cloudtrail-revoke") {
            // A removal is asg-sync's heal, read by its own parser.
            let call = parse_removal(&load(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(REMOVING_CALLS.contains(&call.event_name.as_str()), "{name}");
            continue;
        }
        let trigger = Trigger::parse(&load(&path)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = match name.split('-').next().unwrap() {
            "asg" if name.contains("trueup") => "true-up",
            "asg" if name.contains("lifecycle") => "lifecycle-action",
            "asg" => "instance-change",
            "scheduled.json" => "scheduled",
            "cloudtrail" => "api-call",
            "config" => "config",
            other => panic!("{name}: no expectation for prefix {other}"),
        };
        assert_eq!(trigger.kind(), expected, "{name}");
    }
}

#[test]
fn a_revoke_names_its_group_its_call_and_its_caller() {
    let event = load(&repo_root().join("events/cloudtrail-revoke-ingress.json"));
    let call = parse_removal(&event).unwrap();
    assert_eq!(call.group, GroupSelector::Id("sg-0123456789abcdef0".into()));
    assert_eq!(call.event_name, "RevokeSecurityGroupIngress");
    assert_eq!(call.event_id, "3b4c5d6e-7f80-4a1b-9c2d-3e4f5a6b7c8d");
    assert_eq!(call.region, "eu-west-1");
    assert_eq!(call.principal.name(), "arn:aws:iam::111122223333:user/bob");
    assert_eq!(call.error_code, None);
}

fn sample(name: &str) -> Trigger {
    Trigger::parse(&load(&repo_root().join("events").join(name))).expect(name)
}

#[test]
fn failed_call_carries_no_change() {
    let Trigger::ApiCall(call) = sample("cloudtrail-authorize-ingress-failed-duplicate.json")
    else {
        panic!("not an API call")
    };
    assert!(
        matches!(call.outcome, CallOutcome::Failed { ref code, .. } if code == "InvalidPermission.Duplicate")
    );
}

#[test]
fn request_only_call_keeps_every_peer_kind() {
    let Trigger::ApiCall(call) = sample("cloudtrail-authorize-ingress-ipv6-group-prefix-list.json")
    else {
        panic!("not an API call")
    };
    let CallOutcome::Succeeded(RuleChange::Authorize {
        requested, created, ..
    }) = call.outcome
    else {
        panic!("not an authorize")
    };
    assert!(created.is_empty());
    assert_eq!(
        texts(requested.rules()),
        vec![
            "ingress tcp/5432 ::/0",
            "ingress tcp/5432 sg-0fedcba9876543210",
            "ingress tcp/5432 pl-0123456789abcdef0",
            "ingress icmpv6 2001:db8::/32",
        ]
    );
}

#[test]
fn group_name_call_keeps_the_name() {
    let Trigger::ApiCall(call) = sample("cloudtrail-authorize-ingress-by-group-name.json") else {
        panic!("not an API call")
    };
    let CallOutcome::Succeeded(RuleChange::Authorize { group, .. }) = call.outcome else {
        panic!("not an authorize")
    };
    assert_eq!(group, GroupSelector::Name("legacy-web".into()));
    assert_eq!(call.region, "us-east-1");
}

#[test]
fn modify_keeps_the_session_role() {
    let Trigger::ApiCall(call) = sample("cloudtrail-modify-security-group-rules.json") else {
        panic!("not an API call")
    };
    assert_eq!(
        call.principal.role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/Developer")
    );
    let CallOutcome::Succeeded(RuleChange::Modify { rules, .. }) = call.outcome else {
        panic!("not a modify")
    };
    assert_eq!(rules[0].traffic.to_string(), "tcp/0-65535");
    assert_eq!(rules[0].peer.to_string(), "0.0.0.0/0");
}

#[test]
fn config_samples_give_their_diffs() {
    let change = |name: &str| {
        let Trigger::Config(mut messages) = sample(name) else {
            panic!("{name}: not config")
        };
        match messages.remove(0) {
            ConfigMessage::Change(change) => change,
            other => panic!("{name}: {other:?}"),
        }
    };
    let created = change("config-sns-security-group-created.json")
        .security_group_diff()
        .unwrap();
    assert_eq!(
        created.added.len(),
        4,
        "every current ingress and egress rule is new"
    );
    let deleted = change("config-sns-security-group-deleted.json")
        .security_group_diff()
        .unwrap();
    assert_eq!(deleted.removed.len(), 2);
    assert!(deleted.added.is_empty());
    let Trigger::Config(messages) = sample("config-sns-oversized.json") else {
        panic!()
    };
    assert!(
        matches!(&messages[0], ConfigMessage::Oversized(s) if s.item.resource_id == "sg-0123456789abcdef0")
    );
    let Trigger::Config(messages) = sample("config-sns-other-message-type.json") else {
        panic!()
    };
    assert!(
        matches!(&messages[0], ConfigMessage::Other { message_type } if message_type == "ConfigurationHistoryDeliveryCompleted")
    );
}

/// The real recorded events: `SGWARDEN_REAL_EVENTS` or `../shared/real-events` beside the repo.
fn real_events() -> PathBuf {
    std::env::var_os("SGWARDEN_REAL_EVENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/real-events"))
}

#[test]
fn every_real_event_parses() {
    let files = json_files(&real_events());
    assert!(
        !files.is_empty(),
        "no real events found in {}",
        real_events().display()
    );
    for path in files {
        let value = load(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Config messages are recorded unwrapped from SNS; everything else is a trigger.
        let parsed = if value.get("messageType").is_some() {
            config::parse_message(&value).map(|_| ())
        } else {
            Trigger::parse(&value).map(|_| ())
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn real_cloudtrail_event_names_the_created_rule() {
    let value = load(&real_events().join("cloudtrail-authorize-ingress-group-reference.json"));
    let Trigger::ApiCall(call) = Trigger::parse(&value).unwrap() else {
        panic!("not an API call")
    };
    assert_eq!(
        call.principal.role_arn.as_deref(),
        Some("arn:aws:iam::770203350335:role/Shibboleth-InfraMgt")
    );
    let CallOutcome::Succeeded(RuleChange::Authorize {
        requested, created, ..
    }) = call.outcome
    else {
        panic!("not an authorize")
    };
    assert_eq!(texts(requested.rules()), texts(created.rules()));
    let (rule, info) = created.iter().next().unwrap();
    let sgwarden_core::Peer::Group(group) = &rule.peer else {
        panic!("not a group peer")
    };
    assert_eq!(group.owner.as_deref(), Some("770203350335"));
    assert_eq!(rule.to_string(), "ingress tcp/1521 sg-000537769a1c2d858");
    assert_eq!(info.rule_id.as_deref(), Some("sgr-02e2ca7d55820dc26"));
}

#[test]
fn real_config_messages_give_rule_diffs() {
    let change = |file: &str| match config::parse_message(&load(&real_events().join(file))).unwrap()
    {
        ConfigMessage::Change(change) => change,
        other => panic!("{file}: {other:?}"),
    };
    let rules = change("config-item-rules-changed.json")
        .security_group_diff()
        .unwrap();
    assert_eq!(
        texts(rules.added.rules()),
        vec!["ingress tcp/22 0.0.0.0/0", "ingress tcp/22 ::/0"]
    );
    assert_eq!(
        texts(rules.removed.rules()),
        vec!["ingress tcp/22 77.91.250.235/32"]
    );
    assert!(!rules.relationships_only);

    let relationships = change("config-item-relationships-only.json");
    let diff = relationships.security_group_diff().unwrap();
    assert!(diff.relationships_only);
    assert!(diff.added.is_empty() && diff.removed.is_empty());
    assert_eq!(relationships.item.security_group_rules().unwrap().len(), 4);
}

#[test]
fn a_prefix_list_restore_names_the_list_and_no_entries() {
    let Trigger::ApiCall(call) = sample("cloudtrail-restore-managed-prefix-list-version.json")
    else {
        panic!("not an API call")
    };
    assert_eq!(
        call.outcome,
        CallOutcome::Succeeded(RuleChange::ListModify {
            list_id: "pl-0a1b2c3d4e5f60718".into(),
            added: Default::default(),
            removed: Default::default(),
            restored: true,
        })
    );
}

#[test]
fn a_prefix_list_modify_names_the_list_and_what_it_added() {
    let Trigger::ApiCall(call) = sample("cloudtrail-modify-managed-prefix-list.json") else {
        panic!("not an API call")
    };
    let CallOutcome::Succeeded(RuleChange::ListModify {
        list_id,
        added,
        removed,
        restored: false,
    }) = call.outcome
    else {
        panic!("not a prefix-list modify")
    };
    assert_eq!(list_id, "pl-0a1b2c3d4e5f60718");
    assert_eq!(
        added.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["0.0.0.0/0"]
    );
    assert!(removed.is_empty());
    assert_eq!(
        call.principal.role_arn.as_deref(),
        Some("arn:aws:iam::111122223333:role/Developer")
    );
}
