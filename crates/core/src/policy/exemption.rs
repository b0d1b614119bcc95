//! Exempt principals and their bounds, the records of what they made, and everything else
//! the approvals table grants: approvals, exemptions, vouched prefix-list entries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::event::{ApiCall, Principal, RuleChange};
use crate::rule::{Peer, Rule, RuleInfo, RuleSet};

use super::*;

/// Whose changes stand: principals (IAM ARNs; an assumed-role session matches its role), each
/// with its bounds, and groups carrying a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Exempt {
    pub principals: BTreeMap<String, Bounds>,
    pub tag: Option<TagCondition>,
}

/// Which rules an exempt principal's calls may make and have stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bounds {
    /// Any rule it makes (a network administrator's role).
    Unbounded,
    /// Only rules inside one of these shapes; anything else it makes is judged like anyone's
    /// (a host role that may add only `tcp/443` from its own address).
    Within(Vec<AllowEntry>),
}

impl Bounds {
    fn admit(&self, rule: &Rule, caller: Option<IpAddr>) -> bool {
        match self {
            Bounds::Unbounded => true,
            Bounds::Within(shapes) => shapes.iter().any(|s| s.covers_from(rule, caller)),
        }
    }
}

/// The record of a rule an exempt principal made: kept by later sweeps for as long as the
/// rule keeps exactly the shape it had then (a modify by anyone else is judged afresh).
///
/// revert-ingress writes it to the approvals table when it handles the exempt principal's
/// call; the security team may write one by hand. Unlike an [`Approval`] it does not expire
/// and covers one shape exactly, not the rules inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The group the rule is on (`sg-…`; the table's partition key).
    pub group_id: String,
    /// The exact shape the exempt principal made; only a rule of this very shape is covered.
    pub rule: Rule,
    /// The rule's `sgr-` id when known: then only that rule is covered, not a rule of the same
    /// shape made later by somebody else.
    pub rule_id: Option<String>,
    /// The exempt principal (its role, for a session).
    pub by: String,
    /// Why: the CloudTrail event id of the exempt call.
    pub reason: String,
    /// When the exempt call was made (CloudTrail's `eventTime`): a record is replaced only
    /// by one of a call made as late or later, so a late or repeated delivery of an older
    /// exempt event cannot bring back a shape the principal has since changed.
    pub made_at: Option<String>,
}

impl Exemption {
    /// The approvals table's sort key for this record. One record per rule id, so the exempt
    /// principal's later modify of the same rule replaces the shape recorded before.
    pub fn record_id(&self, index: usize) -> String {
        match &self.rule_id {
            Some(id) => format!("exempt:{id}"),
            None => format!("exempt:{}:{index}", self.reason),
        }
    }

    /// True when the record keeps `rule` (carrying `info`) on `group_id`: same group, same
    /// shape, and, when the record names a rule id, the same `sgr-` id.
    pub fn covers(&self, group_id: &str, rule: &Rule, info: &RuleInfo) -> bool {
        self.group_id == group_id
            && self.rule == *rule
            && self
                .rule_id
                .as_ref()
                .is_none_or(|id| info.rule_id.as_ref() == Some(id))
    }
}

/// What the approvals table grants for the groups being judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The approvals of the judged groups. Expired ones may be among them (DynamoDB's TTL
    /// deletes late), so each is checked against the time it is judged at.
    pub approvals: Vec<Approval>,
    /// The records of rules exempt principals made on the judged groups.
    pub exemptions: Vec<Exemption>,
    /// The entries sgwarden vouches for, per customer-managed prefix list.
    pub vouched: Vec<Vouched>,
    /// What the prefix lists the judged rules reference hold now (read from EC2 beside the
    /// table: a list's entries are what a rule on it grants). A list missing here is judged
    /// as unreadable: nothing is kept on the strength of a list nobody read.
    pub lists: PrefixLists,
    /// The judged groups that are their VPC's default group (named `default` by EC2), read
    /// beside the rules when the policy forbids every rule of a default group (EC2.2).
    pub default_groups: BTreeSet<String>,
}

impl Grants {
    /// Whether judging `rules` of `group_id` needs their `sgr-` ids: true when one of them,
    /// read without its id (as `DescribeSecurityGroups` reports rules), has the shape of an
    /// exemption recorded for one rule id only. Without the id it would be judged a
    /// violation, so the caller reads that group's rules with their ids first.
    pub fn need_rule_ids(&self, group_id: &str, rules: &RuleSet) -> bool {
        rules.iter().any(|(rule, info)| {
            info.rule_id.is_none()
                && self
                    .exemptions
                    .iter()
                    .any(|e| e.rule_id.is_some() && e.group_id == group_id && e.rule == *rule)
        })
    }
}

/// What a managed prefix list holds, as EC2 reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntries {
    /// Owned by `AWS` (a service's addresses): nobody in the account can change it, so it is
    /// judged by its id, as the policy names it.
    AwsManaged,
    /// Customer-managed (owned by an account): its current entries, IPv4 or IPv6 CIDRs.
    Customer(BTreeSet<Peer>),
    /// Its entries could not be read (the reason): no rule stands on its strength.
    Unreadable(String),
}

/// The prefix lists that the judged rules reference, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixLists(BTreeMap<String, ListEntries>);

impl PrefixLists {
    /// Records what `list_id` (`pl-…`) holds, replacing what was known of it.
    pub fn insert(&mut self, list_id: impl Into<String>, entries: ListEntries) {
        self.0.insert(list_id.into(), entries);
    }

    /// What `list_id` holds, when it was read.
    pub fn get(&self, list_id: &str) -> Option<&ListEntries> {
        self.0.get(list_id)
    }

    /// Adds every list of `other`, replacing what was known of it.
    pub fn extend(&mut self, other: PrefixLists) {
        self.0.extend(other.0);
    }

    /// The customer-managed lists and their entries.
    pub fn customer(&self) -> impl Iterator<Item = (&str, &BTreeSet<Peer>)> {
        self.0.iter().filter_map(|(id, entries)| match entries {
            ListEntries::Customer(entries) => Some((id.as_str(), entries)),
            _ => None,
        })
    }
}

/// The prefix lists that `rules` reference in the directions the policy guards: the lists
/// whose entries judging them needs.
pub fn referenced_lists<'r>(
    policy: &Policy,
    rules: impl IntoIterator<Item = &'r Rule>,
) -> BTreeSet<String> {
    rules
        .into_iter()
        .filter(|r| policy.guards_direction(r.direction))
        .filter_map(|r| match &r.peer {
            Peer::PrefixList(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

/// The entries of one customer-managed prefix list that sgwarden vouches for: the approvals
/// table's record of the list (partition `group_id` = the list id, sort `approval_id` =
/// [`Vouched::RECORD_ID`]). Anyone with `ec2:ModifyManagedPrefixList` can add an entry; only
/// an entry vouched for here (or kept by the policy on its own) keeps a rule on the list.
///
/// It is made the first time sgwarden judges a rule on the list, from what the list holds
/// then (trust on first use, previewed like a first sweep), and changes only with the list:
/// an entry removed is no longer vouched for, an entry an exempt principal added is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The list's id (`pl-…`; the table's partition key).
    pub list_id: String,
    /// The CIDRs vouched for; may be empty.
    pub entries: BTreeSet<Peer>,
    /// Who vouched: the exempt principal of the last change, or sgwarden on first use.
    pub by: String,
    /// Why: the CloudTrail event id, or `first use`.
    pub reason: String,
}

impl Vouched {
    /// The approvals table's sort key of a list's record.
    pub const RECORD_ID: &'static str = "entries";

    /// Trust on first use: the list's `current` entries, but those the call being handled
    /// added (`added_now`, empty for a sweep): a widening is never vouched for by its own
    /// event.
    pub fn first_use(
        list_id: &str,
        current: &BTreeSet<Peer>,
        added_now: &BTreeSet<Peer>,
        by: &str,
        reason: &str,
    ) -> Self {
        Self {
            list_id: list_id.to_string(),
            entries: current.difference(added_now).cloned().collect(),
            by: by.to_string(),
            reason: reason.to_string(),
        }
    }

    /// After a change of the list: what is vouched for and still in it, and what an exempt
    /// principal's call added (`exempt_added`) and the list holds.
    pub fn after_change(
        &self,
        current: &BTreeSet<Peer>,
        exempt_added: &BTreeSet<Peer>,
        by: &str,
        reason: &str,
    ) -> Self {
        let entries = current
            .iter()
            .filter(|e| self.entries.contains(e) || exempt_added.contains(e))
            .cloned()
            .collect();
        let (by, reason) = if exempt_added.iter().any(|e| current.contains(e)) {
            (by.to_string(), reason.to_string())
        } else {
            (self.by.clone(), self.reason.clone())
        };
        Self {
            list_id: self.list_id.clone(),
            entries,
            by,
            reason,
        }
    }

    /// True when `entry` lies inside a vouched entry.
    pub fn covers(&self, entry: &Peer) -> bool {
        self.entries.iter().any(|v| match (v, entry) {
            (Peer::Ipv4(v), Peer::Ipv4(e)) => v.contains(e),
            (Peer::Ipv6(v), Peer::Ipv6(e)) => v.contains(e),
            _ => false,
        })
    }
}

impl Policy {
    /// True when the principal is exempt, within its bounds: its ARN, or the role of its
    /// assumed-role session, is listed.
    pub fn exempts(&self, principal: &Principal) -> bool {
        self.bounds_of(principal).next().is_some()
    }

    /// The bounds of every listing that names the principal (its ARN, its session's role).
    fn bounds_of<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a Bounds> {
        [&principal.arn, &principal.role_arn]
            .into_iter()
            .flatten()
            .filter_map(|arn| self.exempt.principals.get(arn))
    }

    /// Splits the rules an exempt principal's call names, as EC2 holds them now, into those
    /// that stand (the call made them in exactly this shape, inside the principal's bounds:
    /// they are recorded as exemptions) and those judged like anyone's: a rule reshaped since
    /// the call (a race between the exempt change and its event), or one outside the bounds.
    pub fn split_exempt(
        &self,
        call: &ApiCall,
        change: &RuleChange,
        rules: &RuleSet,
    ) -> (RuleSet, RuleSet) {
        let mut stand = RuleSet::new();
        let mut judged = RuleSet::new();
        for (rule, info) in rules {
            let admitted = change.made(rule, info)
                && self
                    .bounds_of(&call.principal)
                    .any(|b| b.admit(rule, call.source_address));
            let side = if admitted { &mut stand } else { &mut judged };
            side.insert(rule.clone(), info.clone());
        }
        (stand, judged)
    }

    /// The judgement of an exempt principal's call on the rules it names (`rules`, each with
    /// its `sgr-` id when known): what stands, as the exemption records that keep it, and
    /// what is judged like anyone's ([`Policy::split_exempt`]), with every rule that stands
    /// but a forbid entry may match added back, since no exemption keeps a forbidden rule.
    /// `known` is given the exemptions, so that the plan judges with them; the function
    /// records them, `sgwarden replay` only counts them.
    pub fn judge_exempt_call(
        &self,
        call: &ApiCall,
        change: &RuleChange,
        group_id: &str,
        rules: &RuleSet,
        known: &mut Grants,
    ) -> ExemptCall {
        let (made, mut judged) = self.split_exempt(call, change, rules);
        let by = call.principal.name();
        known.exemptions = made
            .iter()
            .map(|(rule, info)| Exemption {
                group_id: group_id.to_string(),
                rule: rule.clone(),
                rule_id: info.rule_id.clone(),
                by: by.clone(),
                reason: call.event_id.clone(),
                made_at: call.event_time.clone(),
            })
            .collect();
        for (rule, info) in &made {
            if self.forbidden(group_id, rule, known).is_some() {
                judged.insert(rule.clone(), info.clone());
            }
        }
        ExemptCall {
            exemptions: known.exemptions.clone(),
            judged,
        }
    }
}

/// An exempt principal's call, judged: see [`Policy::judge_exempt_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptCall {
    /// One record per rule the call made that stands.
    pub exemptions: Vec<Exemption>,
    /// The rules judged like anyone's: reshaped since, outside the bounds, or forbidden.
    pub judged: RuleSet,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn exempt_principals_match_users_and_the_role_of_a_session() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        let session = Principal {
            kind: Some("AssumedRole".into()),
            arn: Some("arn:aws:sts::111122223333:assumed-role/NetworkAdmin/bob".into()),
            role_arn: Some("arn:aws:iam::111122223333:role/NetworkAdmin".into()),
            invoked_by: None,
        };
        assert!(policy.exempts(&session));
        let other = Principal {
            role_arn: Some("arn:aws:iam::111122223333:role/Developer".into()),
            ..session.clone()
        };
        // The session ARN alone never matches a role entry by accident of its name.
        assert!(!policy.exempts(&Principal {
            arn: Some("arn:aws:sts::111122223333:assumed-role/NetworkAdmin/x".into()),
            role_arn: None,
            ..other.clone()
        }));
        assert!(!policy.exempts(&other));
    }

    #[test]
    fn an_exemption_keeps_exactly_the_recorded_rule_and_the_plan_says_why() {
        let policy = Policy::default();
        let grants = Grants {
            exemptions: vec![exemption("tcp/5432 10.2.0.0/16", Some("sgr-1"))],
            ..Grants::default()
        };
        let mut rules = RuleSet::new();
        let made = rule("tcp/5432 10.2.0.0/16");
        rules.insert(made.clone(), with_id("sgr-1"));
        rules.insert(rule("tcp/23 10.0.0.0/8"), RuleInfo::default());
        let plan = policy.plan("sg-1", &rules, &grants, 0);
        assert_eq!(plan.revoke.len(), 1);
        assert!(!plan.revoke.contains(&made));
        assert_eq!(
            plan.kept,
            vec![(made, Verdict::Exempted("arn:aws:iam::1:role/Admin".into()))]
        );
        assert_eq!(plan.revoke.rule_ids(), None);
    }

    #[test]
    fn an_exempt_rule_reshaped_by_anyone_is_judged_on_its_new_shape() {
        let policy = Policy::default();
        let grants = Grants {
            exemptions: vec![exemption("tcp/5432 10.2.0.0/16", Some("sgr-1"))],
            ..Grants::default()
        };
        let judge =
            |text: &str, info: &RuleInfo| policy.judge("sg-1", &rule(text), info, &grants, 0);
        // The same rule id, a new shape: the record proves nothing about it.
        assert_eq!(
            judge("tcp/22 0.0.0.0/0", &with_id("sgr-1")),
            Verdict::Violates
        );
        // A narrower shape is still not the recorded one.
        assert_eq!(
            judge("tcp/5432 10.2.0.0/24", &with_id("sgr-1")),
            Verdict::Violates
        );
        // The recorded shape on another rule (made later by someone else) is not covered.
        assert_eq!(
            judge("tcp/5432 10.2.0.0/16", &with_id("sgr-2")),
            Verdict::Violates
        );
        // Nor on another group, nor in the other direction.
        assert_eq!(
            policy.judge(
                "sg-2",
                &rule("tcp/5432 10.2.0.0/16"),
                &with_id("sgr-1"),
                &grants,
                0
            ),
            Verdict::Violates
        );
        assert_eq!(
            judge("egress tcp/5432 10.2.0.0/16", &with_id("sgr-1")),
            Verdict::Violates
        );
        assert!(judge("tcp/5432 10.2.0.0/16", &with_id("sgr-1")).keeps());
    }

    #[test]
    fn an_exemption_without_a_rule_id_covers_its_shape_on_its_group() {
        let policy = Policy::default();
        let grants = Grants {
            exemptions: vec![exemption("udp/53 10.0.0.0/8", None)],
            ..Grants::default()
        };
        assert!(policy
            .judge(
                "sg-1",
                &rule("udp/53 10.0.0.0/8"),
                &with_id("sgr-9"),
                &grants,
                u64::MAX
            )
            .keeps());
        assert_eq!(
            policy.judge(
                "sg-1",
                &rule("udp/53 10.0.0.0/7"),
                &with_id("sgr-9"),
                &grants,
                0
            ),
            Verdict::Violates
        );
        assert_eq!(grants.exemptions[0].record_id(3), "exempt:e-1:3");
        assert_eq!(
            exemption("udp/53 10.0.0.0/8", Some("sgr-4")).record_id(3),
            "exempt:sgr-4"
        );
    }

    #[test]
    fn an_exemption_covers_only_what_the_exempt_call_made_in_that_shape() {
        // Attack 1: the exempt call made sgr-1 as tcp/5432 10.2.0.0/16; before its event was
        // handled somebody reshaped sgr-1 into ssh from anywhere.
        let policy = Policy::from_json(EXAMPLE).unwrap();
        let admin = "arn:aws:iam::111122223333:role/NetworkAdmin";
        let (call, change) = exempt_call(
            admin,
            "198.51.100.7",
            &[
                ("tcp/5432 10.2.0.0/16", "sgr-1"),
                ("tcp/5433 10.2.0.0/16", "sgr-2"),
            ],
        );
        let now: RuleSet = [
            (rule("tcp/22 0.0.0.0/0"), with_id("sgr-1")),
            (rule("tcp/5433 10.2.0.0/16"), with_id("sgr-2")),
            // A rule of the created shape but another id is not the call's either.
            (rule("tcp/5432 10.2.0.0/16"), with_id("sgr-9")),
        ]
        .into_iter()
        .collect();
        let (stand, judged) = policy.split_exempt(&call, &change, &now);
        assert_eq!(stand.texts(), vec!["ingress tcp/5433 10.2.0.0/16"]);
        assert_eq!(
            judged.texts(),
            vec!["ingress tcp/22 0.0.0.0/0", "ingress tcp/5432 10.2.0.0/16"]
        );
        // Nobody else's call is exempt at all.
        let (mallory, _) = exempt_call("arn:aws:iam::111122223333:role/Dev", "198.51.100.7", &[]);
        let (stand, judged) = policy.split_exempt(&mallory, &change, &now);
        assert!(stand.is_empty());
        assert_eq!(judged.len(), 3);
    }

    #[test]
    fn a_modify_by_an_exempt_principal_stands_only_in_the_shape_it_set() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        let (call, _) = exempt_call("arn:aws:iam::111122223333:role/NetworkAdmin", "", &[]);
        let set = rule("tcp/5432 10.2.0.0/16");
        let change = RuleChange::Modify {
            group_id: "sg-1".into(),
            rules: vec![crate::event::ModifiedRule {
                rule_id: "sgr-1".into(),
                traffic: set.traffic,
                peer: set.peer.clone(),
                description: None,
            }],
        };
        assert!(change.made(&set, &with_id("sgr-1")));
        // Another id, another shape, a rule read without its id: not what the modify set.
        assert!(!change.made(&set, &with_id("sgr-2")));
        assert!(!change.made(&rule("tcp/5432 10.3.0.0/16"), &with_id("sgr-1")));
        assert!(!change.made(&rule("tcp/5433 10.2.0.0/16"), &with_id("sgr-1")));
        assert!(!change.made(&set, &RuleInfo::default()));
        let now: RuleSet = [(rule("tcp/22 0.0.0.0/0"), with_id("sgr-1"))]
            .into_iter()
            .collect();
        let (stand, judged) = policy.split_exempt(&call, &change, &now);
        assert!(stand.is_empty());
        assert_eq!(judged.len(), 1);
    }

    #[test]
    fn an_authorize_without_rule_ids_made_exactly_the_rules_it_requested() {
        let requested: RuleSet = [(rule("udp/53 10.0.0.0/8"), RuleInfo::default())]
            .into_iter()
            .collect();
        let change = RuleChange::Authorize {
            group: crate::event::GroupSelector::Id("sg-1".into()),
            direction: Direction::Ingress,
            requested,
            created: RuleSet::new(),
        };
        assert!(change.made(&rule("udp/53 10.0.0.0/8"), &with_id("sgr-5")));
        assert!(!change.made(&rule("udp/53 10.0.0.0/9"), &with_id("sgr-5")));
    }

    #[test]
    fn a_bounded_exempt_principal_stands_only_inside_its_bounds() {
        let policy = bounded_policy();
        let made = [
            ("tcp/443 198.51.100.7/32", "sgr-1"),
            ("tcp/443 198.51.100.8/32", "sgr-2"),
            ("tcp/443 198.51.100.0/24", "sgr-3"),
            ("tcp/22 198.51.100.7/32", "sgr-4"),
            ("udp/8125 10.1.2.3/32", "sgr-5"),
            ("udp/8125 0.0.0.0/0", "sgr-6"),
        ];
        let (call, change) = exempt_call(HOST_ROLE, "198.51.100.7", &made);
        let now: RuleSet = made.iter().map(|(t, id)| (rule(t), with_id(id))).collect();
        let (stand, judged) = policy.split_exempt(&call, &change, &now);
        // Its own address on 443, and statsd from inside 10/8; nothing else.
        assert_eq!(
            stand.texts(),
            vec![
                "ingress tcp/443 198.51.100.7/32",
                "ingress udp/8125 10.1.2.3/32"
            ]
        );
        assert_eq!(judged.len(), 4);
        // The caller's address over IPv6, as a /128; another /128 is not the caller.
        let v6 = [
            ("tcp/443 2001:db8::7/128", "sgr-7"),
            ("tcp/443 2001:db8::/64", "sgr-8"),
            ("tcp/443 2001:db8::8/128", "sgr-9"),
        ];
        let (call, change) = exempt_call(HOST_ROLE, "2001:db8::7", &v6);
        let now: RuleSet = v6.iter().map(|(t, id)| (rule(t), with_id(id))).collect();
        let (stand, _) = policy.split_exempt(&call, &change, &now);
        assert_eq!(stand.texts(), vec!["ingress tcp/443 2001:db8::7/128"]);
        // A call with no address (a service made it) has no caller to match.
        let now: RuleSet = made.iter().map(|(t, id)| (rule(t), with_id(id))).collect();
        let (call, change) = exempt_call(HOST_ROLE, "ec2.amazonaws.com", &made);
        let (stand, judged) = policy.split_exempt(&call, &change, &now);
        assert_eq!(stand.texts(), vec!["ingress udp/8125 10.1.2.3/32"]);
        assert_eq!(judged.len(), 5);
        // The unbounded principal beside it is still unbounded.
        let (call, change) = exempt_call("arn:aws:iam::111122223333:role/NetworkAdmin", "", &made);
        assert_eq!(policy.split_exempt(&call, &change, &now).0.len(), 6);
        assert!(policy.exempts(&call.principal));
    }

    #[test]
    fn rules_read_without_ids_need_them_only_where_an_exemption_names_one() {
        let by_id = Grants {
            exemptions: vec![exemption("udp/53 10.0.0.0/8", Some("sgr-4"))],
            ..Grants::default()
        };
        let by_shape = Grants {
            exemptions: vec![exemption("udp/53 10.0.0.0/8", None)],
            ..Grants::default()
        };
        let set =
            |text: &str, info: RuleInfo| -> RuleSet { [(rule(text), info)].into_iter().collect() };
        let unread = set("udp/53 10.0.0.0/8", RuleInfo::default());
        assert!(by_id.need_rule_ids("sg-1", &unread));
        assert!(
            !by_id.need_rule_ids("sg-2", &unread),
            "another group's exemption"
        );
        assert!(!by_id.need_rule_ids("sg-1", &set("udp/53 10.0.0.0/7", RuleInfo::default())));
        assert!(!by_id.need_rule_ids("sg-1", &set("udp/53 10.0.0.0/8", with_id("sgr-4"))));
        assert!(
            !by_shape.need_rule_ids("sg-1", &unread),
            "a shape needs no id"
        );
        assert!(!Grants::default().need_rule_ids("sg-1", &unread));
    }

    #[test]
    fn a_vouched_entry_covers_what_lies_inside_it_in_its_own_family() {
        let record = vouched("pl-x", &["10.0.0.0/8", "2001:db8::/32"]);
        for inside in ["10.1.0.0/16", "10.0.0.0/8", "2001:db8:1::/48"] {
            assert!(record.covers(&Peer::cidr(inside, "").unwrap()), "{inside}");
        }
        for outside in ["0.0.0.0/0", "11.0.0.0/8", "2001:db9::/32", "::/0"] {
            assert!(
                !record.covers(&Peer::cidr(outside, "").unwrap()),
                "{outside}"
            );
        }
    }

    #[test]
    fn what_is_vouched_for_starts_without_the_widening_and_follows_the_list() {
        let first = Vouched::first_use(
            "pl-x",
            &cidrs(&["203.0.113.0/24", "0.0.0.0/0"]),
            &cidrs(&["0.0.0.0/0"]),
            "sgwarden",
            "ev-1",
        );
        assert_eq!(first.entries, cidrs(&["203.0.113.0/24"]));
        assert_eq!(
            (first.by.as_str(), first.reason.as_str()),
            ("sgwarden", "ev-1")
        );
        // An exempt principal's additions are vouched for; a removed entry no longer is.
        let grown = first.after_change(
            &cidrs(&["198.51.100.0/24", "0.0.0.0/0"]),
            &cidrs(&["198.51.100.0/24"]),
            "arn:aws:iam::1:role/NetworkAdmin",
            "ev-2",
        );
        assert_eq!(grown.entries, cidrs(&["198.51.100.0/24"]));
        assert_eq!(grown.by, "arn:aws:iam::1:role/NetworkAdmin");
        assert_eq!(grown.reason, "ev-2");
        // A change by anyone else vouches for nothing new and keeps who vouched last.
        let shrunk =
            grown.after_change(&cidrs(&["0.0.0.0/0"]), &BTreeSet::new(), "mallory", "ev-3");
        assert!(shrunk.entries.is_empty());
        assert_eq!(
            (shrunk.by.as_str(), shrunk.reason.as_str()),
            (grown.by.as_str(), "ev-2")
        );
        // An exempt addition the list no longer holds is not vouched for.
        let gone = first.after_change(
            &cidrs(&["203.0.113.0/24"]),
            &cidrs(&["192.0.2.0/24"]),
            "admin",
            "ev-4",
        );
        assert_eq!(gone.entries, cidrs(&["203.0.113.0/24"]));
        assert_eq!(gone.by, "sgwarden");
        assert!(first.covers(&Peer::cidr("203.0.113.9/32", "").unwrap()));
        assert!(!first.covers(&Peer::cidr("203.0.112.0/23", "").unwrap()));
        assert!(!first.covers(&Peer::PrefixList("pl-x".into())));
        assert_eq!(Vouched::RECORD_ID, "entries");
    }

    #[test]
    fn an_exempt_call_records_what_stands_and_judges_what_a_forbid_entry_matches() {
        let policy = Policy::from_json(
            r#"{"exempt": {"principals": ["arn:aws:iam::111122223333:role/NetworkAdmin"]},
                "presets": ["security-hub-ec2-19"]}"#,
        )
        .unwrap();
        let (call, change) = exempt_call(
            "arn:aws:iam::111122223333:role/NetworkAdmin",
            "198.51.100.7",
            &[
                ("tcp/5432 10.2.0.0/16", "sgr-1"),
                ("tcp/22 0.0.0.0/0", "sgr-2"),
            ],
        );
        let RuleChange::Authorize { created, .. } = &change else {
            unreachable!("an authorize")
        };
        let mut known = Grants::default();
        let split = policy.judge_exempt_call(&call, &change, "sg-1", created, &mut known);
        // Both stand as made, and both are recorded; the forbidden one is judged all the same.
        let recorded: Vec<(String, Option<&str>, &str)> = split
            .exemptions
            .iter()
            .map(|e| (e.rule.to_string(), e.rule_id.as_deref(), e.by.as_str()))
            .collect();
        assert_eq!(
            recorded,
            vec![
                (
                    "ingress tcp/22 0.0.0.0/0".to_string(),
                    Some("sgr-2"),
                    "arn:aws:iam::111122223333:role/NetworkAdmin"
                ),
                (
                    "ingress tcp/5432 10.2.0.0/16".to_string(),
                    Some("sgr-1"),
                    "arn:aws:iam::111122223333:role/NetworkAdmin"
                ),
            ]
        );
        assert_eq!(split.exemptions[0].reason, "e-1");
        assert_eq!(
            known.exemptions, split.exemptions,
            "the plan judges with them"
        );
        assert_eq!(split.judged.texts(), vec!["ingress tcp/22 0.0.0.0/0"]);
    }
}
