//! Builders shared by the policy's tests.

pub(crate) use std::collections::BTreeSet;

pub(crate) use proptest::prelude::*;

pub(crate) use crate::event::{ApiCall, Principal, RuleChange};
pub(crate) use crate::policy::*;
pub(crate) use crate::rule::{Direction, Peer, PortRange, Rule, RuleInfo, RuleSet, Traffic};

pub(crate) const EXAMPLE: &str = r#"{
  "scope":  {"group_ids": [], "vpc_ids": [], "tag": {"key": "Protected", "value": "true"}},
  "exempt": {"principals": ["arn:aws:iam::111122223333:role/NetworkAdmin"],
             "tag": {"key": "AllowManualChanges", "value": "true"}},
  "allow":  [{"protocol": "tcp", "ports": "443", "sources": ["0.0.0.0/0", "::/0"]}],
  "directions": ["ingress"]
}"#;

pub(crate) fn rule(text: &str) -> Rule {
    let (direction, traffic, peer) = Approval::parse_rule(text).unwrap();
    Rule::new(direction, traffic, peer)
}

/// An approval of `rule_text` on `sg-1`, valid until `expires_at`.
pub(crate) fn approval(approval_id: &str, rule_text: &str, expires_at: u64) -> Approval {
    let (direction, traffic, peer) = Approval::parse_rule(rule_text).unwrap();
    Approval {
        group_id: "sg-1".into(),
        approval_id: approval_id.into(),
        direction,
        traffic,
        peer,
        expires_at,
        approved_by: None,
        reason: None,
    }
}

pub(crate) fn protected(tags: &[(&str, &str)]) -> GroupFacts {
    GroupFacts {
        group_id: "sg-1".into(),
        name: None,
        vpc_id: Some("vpc-1".into()),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub(crate) fn exemption(rule_text: &str, rule_id: Option<&str>) -> Exemption {
    Exemption {
        made_at: None,
        group_id: "sg-1".into(),
        rule: rule(rule_text),
        rule_id: rule_id.map(str::to_string),
        by: "arn:aws:iam::1:role/Admin".into(),
        reason: "e-1".into(),
    }
}

pub(crate) fn with_id(id: &str) -> RuleInfo {
    RuleInfo {
        description: None,
        rule_id: Some(id.into()),
    }
}

/// An authorize by `principal` from `caller` that created `rules` (text, `sgr-` id).
pub(crate) fn exempt_call(
    principal: &str,
    caller: &str,
    rules: &[(&str, &str)],
) -> (ApiCall, RuleChange) {
    let created: RuleSet = rules
        .iter()
        .map(|(text, id)| (rule(text), with_id(id)))
        .collect();
    let change = RuleChange::Authorize {
        group: crate::event::GroupSelector::Id("sg-1".into()),
        direction: Direction::Ingress,
        requested: RuleSet::new(),
        created,
    };
    let call = ApiCall {
        event_id: "e-1".into(),
        event_name: "AuthorizeSecurityGroupIngress".into(),
        event_time: None,
        region: "us-east-1".into(),
        account: None,
        principal: Principal {
            arn: Some(format!("{principal}/session")),
            role_arn: Some(principal.into()),
            ..Principal::default()
        },
        source_address: caller.parse().ok(),
        outcome: crate::event::CallOutcome::Succeeded(change.clone()),
    };
    (call, change)
}

pub(crate) const HOST_ROLE: &str = "arn:aws:iam::111122223333:role/HostRole";

pub(crate) fn bounded_policy() -> Policy {
    Policy::from_json(&format!(
        r#"{{"exempt": {{"principals": [
             "arn:aws:iam::111122223333:role/NetworkAdmin",
             {{"principal": "{HOST_ROLE}",
               "bounds": [{{"protocol": "tcp", "ports": "443", "sources": ["caller"]}},
                          {{"protocol": "udp", "ports": "8125", "sources": ["10.0.0.0/8"]}}]}}]}}}}"#
    ))
    .unwrap()
}

pub(crate) fn request(rule: &str, seconds: u64) -> ApprovalRequest {
    ApprovalRequest {
        group_id: "sg-0123".into(),
        rule: rule.into(),
        seconds,
        reason: "INC-42".into(),
        allow_anywhere: false,
    }
}

pub(crate) fn cidrs(texts: &[&str]) -> BTreeSet<Peer> {
    texts.iter().map(|t| Peer::cidr(t, "").unwrap()).collect()
}

pub(crate) fn vouched(list: &str, texts: &[&str]) -> Vouched {
    Vouched {
        list_id: list.into(),
        entries: cidrs(texts),
        by: "sgwarden".into(),
        reason: "first use".into(),
    }
}

/// The attack's policy: ssh allowed from a customer-managed list.
pub(crate) fn ssh_from_list() -> Policy {
    Policy::from_json(
        r#"{"allow": [{"protocol": "tcp", "ports": "22", "sources": ["pl-x"]},
                      {"protocol": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}],
            "directions": ["ingress"]}"#,
    )
    .unwrap()
}

pub(crate) fn holding(list: &str, entries: ListEntries, vouched: Vec<Vouched>) -> Grants {
    let mut grants = Grants {
        vouched,
        ..Grants::default()
    };
    grants.lists.insert(list, entries);
    grants
}

pub(crate) fn any_list_rule() -> impl Strategy<Value = (Rule, BTreeSet<Peer>, BTreeSet<Peer>)> {
    let cidr = (any::<[u8; 4]>(), 0u8..=32)
        .prop_map(|(o, len)| Peer::Ipv4(ipnet::Ipv4Net::new(o.into(), len).unwrap().trunc()));
    (
        0u16..40,
        proptest::collection::btree_set(cidr.clone(), 0..5),
        proptest::collection::btree_set(cidr, 0..5),
    )
        .prop_map(|(port, entries, vouched)| {
            let range = PortRange::new(port, port).unwrap();
            let rule = Rule::new(
                Direction::Ingress,
                Traffic::Tcp(range),
                Peer::PrefixList("pl-x".into()),
            );
            (rule, entries, vouched)
        })
}

pub(crate) fn any_rule() -> impl Strategy<Value = Rule> {
    (
        any::<bool>(),
        0u16..2000,
        0u16..50,
        any::<[u8; 4]>(),
        0u8..=32,
    )
        .prop_map(|(egress, from, width, octets, len)| {
            let direction = if egress {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            let range = PortRange::new(from, from.saturating_add(width)).unwrap();
            let net = ipnet::Ipv4Net::new(octets.into(), len).unwrap().trunc();
            Rule::new(direction, Traffic::Tcp(range), Peer::Ipv4(net))
        })
}
