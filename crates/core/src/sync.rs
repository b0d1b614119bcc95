//! asg-sync's pure logic: from instances to addresses, from the cluster registry to the
//! rules every group of the cluster should hold, and the quota check.
//!
//! The registry holds one *member* per Auto Scaling group (`<region>/<asg-name>`) with the
//! addresses its instances had when last synced and a `seq` that only grows. The desired
//! rules of every group of the cluster are the union of all members' addresses × the
//! configured traffic, ingress, each described `sgwarden:<cluster> <member>`: a label for
//! people, not the proof of ownership.
//!
//! **Ownership.** A cluster rule is asg-sync's when its `sgr-` id is recorded in the registry
//! of the group's region ([`Recorded`]): asg-sync records every rule it creates, and only
//! sgwarden's roles write the registry. [`plan_group`] removes only recorded rules, so a
//! departed node's rule whose marker was stripped or edited still goes, and a hand-made rule
//! given a forged `sgwarden:<cluster> ` description stays. A marked rule with no record (made
//! before records existed, or created by an invocation that stopped before recording it) is
//! *adopted*, recorded as the cluster's, only while the cluster wants it in that exact shape:
//! recording it then changes no access, since sgwarden would have added that very rule. A
//! marked rule with no record that the cluster does not want is left alone and reported
//! ([`GroupPlan::unproven`]): its marker proves nothing, and an operator removes it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::ParseError;
use crate::plan::{plan, Owner, Plan, Recorded, RuleCounts};
use crate::rule::{Direction, Peer, Rule, RuleInfo, RuleSet, Traffic};
use crate::settings::comma_list;

/// Which address of an instance the cluster's peers reach it by (`SYNC_ADDRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// Public IPv4: peers talk across the internet.
    Public,
    /// Private IPv4: peers talk over VPN, peering or Transit Gateway.
    Private,
    /// IPv6.
    Ipv6,
}

impl FromStr for AddressKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" => Ok(AddressKind::Public),
            "private" => Ok(AddressKind::Private),
            "ipv6" => Ok(AddressKind::Ipv6),
            other => Err(ParseError::new(
                "SYNC_ADDRESS",
                format!("{other:?} is not public, private or ipv6"),
            )),
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressKind::Public => "public",
            AddressKind::Private => "private",
            AddressKind::Ipv6 => "ipv6",
        })
    }
}

/// Parses `SYNC_PORTS`: a comma list of traffic (`tcp/7000-7001,tcp/9042,udp/53,icmp,all`).
pub fn parse_ports(text: &str) -> Result<Vec<Traffic>, ParseError> {
    let mut ports = Vec::new();
    for part in comma_list(text) {
        let traffic: Traffic = part
            .parse()
            .map_err(|e: ParseError| ParseError::new("SYNC_PORTS", e.reason))?;
        if !ports.contains(&traffic) {
            ports.push(traffic);
        }
    }
    if ports.is_empty() {
        return Err(ParseError::new("SYNC_PORTS", "names no traffic"));
    }
    Ok(ports)
}

/// Where an instance is in its Auto Scaling group's lifecycle, as far as asg-sync cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lifecycle {
    /// Launching or in service (or not known: EC2 alone does not say).
    #[default]
    Staying,
    /// `Terminating`, `Terminating:Wait`, `Terminating:Proceed` or `Terminated`.
    Leaving,
}

impl Lifecycle {
    /// Reads an Auto Scaling lifecycle state (`Pending:Wait`, `InService`, `Terminating:Wait`, …).
    pub fn from_state(state: &str) -> Self {
        if state.starts_with("Terminating") || state == "Terminated" {
            Lifecycle::Leaving
        } else {
            Lifecycle::Staying
        }
    }
}

/// What asg-sync knows of one instance of an Auto Scaling group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// The instance id (`i-…`).
    pub id: String,
    /// Where the instance is in its group's lifecycle; EC2 does not say, so the Auto Scaling
    /// group's answer fills it in.
    pub lifecycle: Lifecycle,
    /// The public IPv4 address (`PublicIpAddress`), when it has one.
    pub public_ipv4: Option<IpAddr>,
    /// The primary private IPv4 address (`PrivateIpAddress`), when it has one.
    pub private_ipv4: Option<IpAddr>,
    /// Every IPv6 address of the instance's network interfaces, sorted, without duplicates.
    pub ipv6: Vec<IpAddr>,
}

impl Instance {
    /// True for instances on their way out: never in the desired set.
    pub(crate) fn is_leaving(&self) -> bool {
        self.lifecycle == Lifecycle::Leaving
    }

    fn addresses(&self, kind: AddressKind) -> Vec<IpAddr> {
        match kind {
            AddressKind::Public => self.public_ipv4.into_iter().collect(),
            AddressKind::Private => self.private_ipv4.into_iter().collect(),
            AddressKind::Ipv6 => self.ipv6.clone(),
        }
    }
}

/// The addresses of a group's instances, and the instances left out for lack of one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberAddresses {
    /// The addresses of the kind asked for, sorted and without duplicates.
    pub addresses: Vec<IpAddr>,
    /// Instances that should be in the set but have no address of the kind yet.
    pub without_address: Vec<String>,
}

/// The addresses one member contributes: every instance not leaving and not `excluded`
/// (the instance whose termination triggered this invocation), sorted and deduplicated.
pub fn member_addresses(
    instances: &[Instance],
    kind: AddressKind,
    excluded: Option<&str>,
) -> MemberAddresses {
    let mut addresses = BTreeSet::new();
    let mut without_address = Vec::new();
    for instance in instances {
        if instance.is_leaving() || Some(instance.id.as_str()) == excluded {
            continue;
        }
        let found = instance.addresses(kind);
        if found.is_empty() {
            without_address.push(instance.id.clone());
        }
        addresses.extend(found);
    }
    MemberAddresses {
        addresses: addresses.into_iter().collect(),
        without_address,
    }
}

/// One registry item: an Auto Scaling group's addresses as last synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `<region>/<asg-name>`: the registry's sort key.
    pub member: String,
    /// The region of the Auto Scaling group.
    pub region: String,
    /// The Auto Scaling group's name.
    pub asg: String,
    /// Its instances' addresses when last synced, sorted and without duplicates.
    pub addresses: Vec<IpAddr>,
    /// When the member was last synced, RFC 3339; for people, never compared.
    pub updated_at: String,
    /// Grows with every sync of the member (asg-sync uses milliseconds since the Unix epoch); a
    /// write with a smaller or equal `seq` than the registry holds is refused, so a stale
    /// invocation cannot overwrite a newer one.
    pub seq: u64,
}

impl Member {
    /// The member's key, `<region>/<asg-name>`.
    pub fn key(region: &str, asg: &str) -> String {
        format!("{region}/{asg}")
    }
}

/// Splits the registry's members into the cluster's and strangers: a member of `region`
/// whose Auto Scaling group is not one of `groups` (`SYNC_AUTO_SCALING_GROUPS`) was written
/// by a trigger that should have been refused, and is never planned from. Members of other
/// regions are each region's own to judge.
pub fn split_strangers(
    members: Vec<Member>,
    region: &str,
    groups: &BTreeSet<String>,
) -> (Vec<Member>, Vec<Member>) {
    members
        .into_iter()
        .partition(|m| m.region != region || groups.contains(&m.asg))
}

/// The rules every group of the cluster should hold: each member's addresses × `ports`,
/// ingress, described `sgwarden:<cluster> <member>`.
pub fn desired_rules(members: &[Member], ports: &[Traffic], owner: &Owner) -> RuleSet {
    let mut set = RuleSet::new();
    for member in members {
        let info = RuleInfo::described(owner.describe(&member.member));
        for address in &member.addresses {
            let peer = match address {
                IpAddr::V4(v4) => Peer::Ipv4((*v4).into()),
                IpAddr::V6(v6) => Peer::Ipv6((*v6).into()),
            };
            for traffic in ports {
                set.insert(
                    Rule::new(Direction::Ingress, *traffic, peer.clone()),
                    info.clone(),
                );
            }
        }
    }
    set
}

/// One group's plan for asg-sync, and what it changes in the group's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// Adds what the cluster is missing; removes only recorded rules it no longer wants.
    pub plan: Plan,
    /// Ids of marked rules without a record that the cluster wants in their exact shape:
    /// recorded as the cluster's from now on.
    pub adopt: BTreeSet<String>,
    /// Marked rules without a record that the cluster does not want: left alone (a marker
    /// anyone can write is no proof) and reported for an operator to judge.
    pub unproven: RuleSet,
    /// Recorded ids the group no longer holds (revoked by someone, or by an earlier
    /// invocation that stopped before forgetting them): dropped from the record.
    pub forget: BTreeSet<String>,
}

/// Plans one group of the cluster: `actual` as EC2 holds it now, with rule ids, read *after*
/// `recorded` (so an id recorded but absent from `actual` is truly gone: `sgr-` ids are never
/// reused), `desired` from the registry, `owner` the cluster (its marker only decides what
/// may be adopted, never what is removed).
pub fn plan_group(
    actual: &RuleSet,
    desired: &RuleSet,
    owner: &Owner,
    recorded: &Recorded,
) -> GroupPlan {
    let mut adopt = BTreeSet::new();
    let mut unproven = RuleSet::new();
    for (rule, info) in actual {
        let Some(id) = info.rule_id.as_deref() else {
            continue;
        };
        if recorded.contains(id) || !owner.owns(info) {
            continue;
        }
        if desired.contains(rule) {
            adopt.insert(id.to_string());
        } else {
            unproven.insert(rule.clone(), info.clone());
        }
    }
    let held: BTreeSet<&str> = actual
        .iter()
        .filter_map(|(_, info)| info.rule_id.as_deref())
        .collect();
    let forget = recorded
        .ids()
        .filter(|id| !held.contains(id.as_str()))
        .cloned()
        .collect();
    GroupPlan {
        plan: plan(actual, desired, recorded),
        adopt,
        unproven,
        forget,
    }
}

/// What to change in a group's record once its plan is applied: `created` are the ids EC2
/// gave the rules the plan added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordChange {
    /// Ids (`sgr-…`) to record as the cluster's: the rules the plan created, and those adopted.
    pub add: BTreeSet<String>,
    /// Ids to drop from the record: the rules the plan removed, and those already gone.
    pub remove: BTreeSet<String>,
}

impl RecordChange {
    /// True when the record stays as it is.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

impl GroupPlan {
    /// The record's change after the plan was applied: the created and adopted ids in, the
    /// removed and forgotten ones out.
    pub fn record_change(&self, created: impl IntoIterator<Item = String>) -> RecordChange {
        let mut add: BTreeSet<String> = created.into_iter().collect();
        add.extend(self.adopt.iter().cloned());
        let mut remove = self.forget.clone();
        remove.extend(
            self.plan
                .remove
                .iter()
                .filter_map(|(_, info)| info.rule_id.clone()),
        );
        RecordChange { add, remove }
    }
}

/// A plan that would leave a group with more rules than its quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group {group_id} would need {needed} rules per address family and direction after this plan; its quota is {quota} (raise SYNC_RULE_QUOTA only if the account's quota is raised)")]
pub struct QuotaExceeded {
    /// The group's id (`sg-…`).
    pub group_id: String,
    /// The largest count of rules, per address family and direction, after the plan.
    pub needed: usize,
    /// The per-group limit it was checked against (asg-sync's `SYNC_RULE_QUOTA`, the CLI's
    /// `--quota`).
    pub quota: usize,
}

/// Checks the group's rule count after `plan` against `quota` (rules per address family per
/// direction: EC2's "inbound or outbound rules per security group", 60 by default).
pub fn check_quota(
    group_id: &str,
    actual: &RuleSet,
    plan: &Plan,
    quota: usize,
) -> Result<RuleCounts, QuotaExceeded> {
    let counts = plan.rule_counts(actual);
    if counts.max() > quota {
        return Err(QuotaExceeded {
            group_id: group_id.to_string(),
            needed: counts.max(),
            quota,
        });
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn address_kinds_read_back_from_their_names() {
        for kind in [AddressKind::Public, AddressKind::Private, AddressKind::Ipv6] {
            assert_eq!(kind.to_string().parse::<AddressKind>().unwrap(), kind);
        }
        assert_eq!(AddressKind::Ipv6.to_string(), "ipv6");
    }

    #[test]
    fn members_of_groups_outside_the_cluster_are_strangers_in_their_own_region_only() {
        let member = |region: &str, asg: &str| Member {
            member: Member::key(region, asg),
            region: region.into(),
            asg: asg.into(),
            addresses: Vec::new(),
            updated_at: String::new(),
            seq: 1,
        };
        let groups = BTreeSet::from(["db".to_string()]);
        let (kept, strangers) = split_strangers(
            vec![
                member("us-east-1", "db"),
                member("us-east-1", "intruder"),
                member("eu-west-1", "db-west"),
            ],
            "us-east-1",
            &groups,
        );
        let keys = |m: &[Member]| m.iter().map(|m| m.member.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&kept), ["us-east-1/db", "eu-west-1/db-west"]);
        assert_eq!(keys(&strangers), ["us-east-1/intruder"]);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn instance(id: &str, state: &str, public: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            lifecycle: Lifecycle::from_state(state),
            public_ipv4: public.map(ip),
            private_ipv4: Some(ip("10.0.0.1")),
            ipv6: vec![],
        }
    }

    #[test]
    fn ports_parse_and_dedupe() {
        let ports = parse_ports("tcp/7000-7001, tcp/9042,udp/53,icmp,all,tcp/9042").unwrap();
        assert_eq!(ports.len(), 5);
        assert_eq!(parse_ports("").unwrap_err().field, "SYNC_PORTS");
        assert_eq!(parse_ports("tcp").unwrap_err().field, "SYNC_PORTS");
    }

    #[test]
    fn leaving_excluded_and_addressless_instances_are_left_out() {
        let instances = [
            instance("i-1", "InService", Some("198.51.100.1")),
            instance("i-2", "Pending:Wait", Some("198.51.100.2")),
            instance("i-3", "Terminating:Wait", Some("198.51.100.3")),
            instance("i-4", "Terminated", Some("198.51.100.4")),
            instance("i-5", "InService", None),
            instance("i-6", "InService", Some("198.51.100.6")),
            instance("i-7", "InService", Some("198.51.100.1")),
        ];
        let got = member_addresses(&instances, AddressKind::Public, Some("i-6"));
        assert_eq!(got.addresses, vec![ip("198.51.100.1"), ip("198.51.100.2")]);
        assert_eq!(got.without_address, vec!["i-5".to_string()]);
        let private = member_addresses(&instances, AddressKind::Private, None);
        assert_eq!(private.addresses, vec![ip("10.0.0.1")]);
    }

    #[test]
    fn desired_rules_cross_addresses_and_ports() {
        let owner = Owner::new("db").unwrap();
        let members = [Member {
            member: "us-east-1/db".into(),
            region: "us-east-1".into(),
            asg: "db".into(),
            addresses: vec![ip("198.51.100.1"), ip("2001:db8::1")],
            updated_at: String::new(),
            seq: 1,
        }];
        let ports = parse_ports("tcp/9042,udp/53").unwrap();
        let set = desired_rules(&members, &ports, &owner);
        assert_eq!(
            set.texts(),
            vec![
                "ingress tcp/9042 198.51.100.1/32",
                "ingress tcp/9042 2001:db8::1/128",
                "ingress udp/53 198.51.100.1/32",
                "ingress udp/53 2001:db8::1/128",
            ]
        );
        assert!(set.iter().all(|(_, info)| owner.owns(info)));
        assert_eq!(
            set.iter().next().unwrap().1.description.as_deref(),
            Some("sgwarden:db us-east-1/db")
        );
    }

    fn with_id(description: &str, id: &str) -> RuleInfo {
        RuleInfo {
            description: Some(description.to_string()),
            rule_id: Some(id.to_string()),
        }
    }

    fn node(last: u8) -> Rule {
        Rule::new(
            Direction::Ingress,
            "tcp/9042".parse().unwrap(),
            Peer::cidr(&format!("198.51.100.{last}/32"), "t").unwrap(),
        )
    }

    #[test]
    fn a_recorded_rule_goes_when_undesired_whatever_its_description_says() {
        let owner = Owner::new("ring").unwrap();
        let mut actual = RuleSet::new();
        // Asg-sync made it; someone stripped the marker.
        actual.insert(node(1), with_id("office vpn", "sgr-1"));
        // Someone made it and forged the marker.
        actual.insert(node(2), with_id("sgwarden:ring us-east-1/ring", "sgr-2"));
        // Asg-sync made it, the cluster still wants it, its description was edited.
        actual.insert(node(3), with_id("edited", "sgr-3"));
        let mut desired = RuleSet::new();
        desired.insert(
            node(3),
            RuleInfo::described(owner.describe("us-east-1/ring")),
        );
        let recorded = Recorded::new(["sgr-1".to_string(), "sgr-3".to_string()]);
        let group = plan_group(&actual, &desired, &owner, &recorded);
        assert_eq!(
            group.plan.remove.rules().collect::<Vec<_>>(),
            vec![&node(1)]
        );
        assert!(
            group.plan.add.is_empty(),
            "an edited description is still the rule"
        );
        assert!(group.adopt.is_empty());
        assert_eq!(group.unproven.rules().collect::<Vec<_>>(), vec![&node(2)]);
        assert!(group.forget.is_empty());
        let change = group.record_change([]);
        assert_eq!(change.remove, BTreeSet::from(["sgr-1".to_string()]));
        assert!(change.add.is_empty());
        assert!(!change.is_empty());
    }

    #[test]
    fn a_marked_rule_without_a_record_is_adopted_only_in_a_shape_the_cluster_wants() {
        let owner = Owner::new("ring").unwrap();
        let mut actual = RuleSet::new();
        actual.insert(node(1), with_id("sgwarden:ring us-east-1/ring", "sgr-1"));
        actual.insert(node(2), with_id("sgwarden:ring us-east-1/ring", "sgr-2"));
        actual.insert(node(3), with_id("sgwarden:other us-east-1/x", "sgr-3"));
        // Marked, but read without an id: neither adopted nor reported.
        actual.insert(node(4), RuleInfo::described("sgwarden:ring us-east-1/ring"));
        let mut desired = RuleSet::new();
        for last in [1, 3, 4, 5] {
            desired.insert(
                node(last),
                RuleInfo::described(owner.describe("us-east-1/ring")),
            );
        }
        let group = plan_group(&actual, &desired, &owner, &Recorded::default());
        assert_eq!(group.adopt, BTreeSet::from(["sgr-1".to_string()]));
        assert_eq!(group.unproven.rules().collect::<Vec<_>>(), vec![&node(2)]);
        assert!(
            group.plan.remove.is_empty(),
            "nothing unrecorded is removed"
        );
        assert_eq!(group.plan.add.rules().collect::<Vec<_>>(), vec![&node(5)]);
        let change = group.record_change(["sgr-9".to_string()]);
        assert_eq!(
            change.add,
            BTreeSet::from(["sgr-1".to_string(), "sgr-9".to_string()])
        );
        assert!(change.remove.is_empty());
    }

    #[test]
    fn recorded_ids_the_group_no_longer_holds_are_forgotten() {
        let owner = Owner::new("ring").unwrap();
        let mut actual = RuleSet::new();
        actual.insert(node(1), with_id("sgwarden:ring x", "sgr-1"));
        let recorded = Recorded::new(["sgr-1".to_string(), "sgr-gone".to_string()]);
        let group = plan_group(&actual, &RuleSet::new(), &owner, &recorded);
        assert_eq!(group.forget, BTreeSet::from(["sgr-gone".to_string()]));
        assert_eq!(
            group.record_change([]).remove,
            BTreeSet::from(["sgr-1".to_string(), "sgr-gone".to_string()])
        );
        assert!(RecordChange::default().is_empty());
        let only_add = RecordChange {
            add: BTreeSet::from(["sgr-1".to_string()]),
            remove: BTreeSet::new(),
        };
        assert!(!only_add.is_empty());
    }

    fn arb_group() -> impl Strategy<Value = (RuleSet, RuleSet, Recorded)> {
        let entry = (
            0u8..10,
            prop::sample::select(vec!["sgwarden:ring x", "sgwarden:other x", "by hand", ""]),
            prop::bool::ANY,
            prop::bool::ANY,
        );
        (
            prop::collection::vec(entry, 0..20),
            prop::collection::btree_set(0u8..10, 0..10),
            prop::collection::btree_set(0u8..14, 0..8),
        )
            .prop_map(|(entries, wanted, dead)| {
                let owner = Owner::new("ring").unwrap();
                let mut actual = RuleSet::new();
                let mut ids = Vec::new();
                for (last, description, has_id, recorded) in entries {
                    let id = format!("sgr-{last}");
                    let info = RuleInfo {
                        description: (!description.is_empty()).then(|| description.to_string()),
                        rule_id: has_id.then(|| id.clone()),
                    };
                    if recorded {
                        ids.push(id);
                    }
                    actual.insert(node(last), info);
                }
                // Ids recorded for rules that are gone (sgr-10 … sgr-13 never exist).
                ids.extend(dead.into_iter().map(|n| format!("sgr-{n}")));
                let desired = wanted
                    .into_iter()
                    .map(|n| (node(n), RuleInfo::described(owner.describe("r/a"))))
                    .collect();
                (actual, desired, Recorded::new(ids))
            })
    }

    proptest! {
        /// The plan of a group never removes a rule whose id is not recorded, whatever its
        /// description; every recorded rule left is desired; adoption takes only marked,
        /// unrecorded, desired rules; and the record after the plan holds exactly the
        /// group's recorded rules that stay.
        #[test]
        fn a_group_plan_removes_only_recorded_rules((actual, desired, recorded) in arb_group()) {
            let owner = Owner::new("ring").unwrap();
            let group = plan_group(&actual, &desired, &owner, &recorded);
            let owned = |info: &RuleInfo| info.rule_id.as_deref().is_some_and(|id| recorded.contains(id));
            for (_, info) in &group.plan.remove {
                prop_assert!(owned(info));
            }
            let after = group.plan.applied_to(&actual);
            for (rule, info) in &actual {
                if !owned(info) {
                    prop_assert_eq!(after.get(rule), Some(info));
                } else if !desired.contains(rule) {
                    prop_assert!(!after.contains(rule));
                }
            }
            for rule in desired.rules() {
                prop_assert!(after.contains(rule));
            }
            for id in &group.adopt {
                let (rule, info) = actual.iter().find(|(_, i)| i.rule_id.as_deref() == Some(id.as_str())).unwrap();
                prop_assert!(owner.owns(info) && !recorded.contains(id) && desired.contains(rule));
            }
            for (rule, info) in &group.unproven {
                prop_assert!(owner.owns(info) && !owned(info) && !desired.contains(rule));
                prop_assert_eq!(after.get(rule), Some(info));
            }
            let change = group.record_change([]);
            let mut record: BTreeSet<String> = recorded.ids().cloned().collect();
            record.extend(change.add.iter().cloned());
            record.retain(|id| !change.remove.contains(id));
            let held: BTreeSet<String> = after
                .iter()
                .filter(|(rule, info)| {
                    desired.contains(rule)
                        && (owned(info) || owner.owns(info))
                })
                .filter_map(|(_, info)| info.rule_id.clone())
                .collect();
            prop_assert_eq!(record, held);
        }
    }

    #[test]
    fn quota_counts_per_family() {
        let owner = Owner::new("db").unwrap();
        let member = |n: u8| Member {
            member: format!("r/{n}"),
            region: "r".into(),
            asg: n.to_string(),
            addresses: (0..n).map(|i| ip(&format!("198.51.100.{i}"))).collect(),
            updated_at: String::new(),
            seq: 1,
        };
        let ports = parse_ports("tcp/1,tcp/2").unwrap();
        let desired = desired_rules(&[member(30)], &ports, &owner);
        let p = plan(&RuleSet::new(), &desired, &owner);
        assert_eq!(
            check_quota("sg-1", &RuleSet::new(), &p, 60).unwrap().max(),
            60
        );
        let desired = desired_rules(&[member(31)], &ports, &owner);
        let p = plan(&RuleSet::new(), &desired, &owner);
        let err = check_quota("sg-1", &RuleSet::new(), &p, 60).unwrap_err();
        assert_eq!(err.needed, 62);
        assert!(err.to_string().contains("sg-1"));
    }
}
