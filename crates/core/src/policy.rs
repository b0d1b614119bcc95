//! revert-ingress's policy: which groups are guarded, whose changes stand, which rules are
//! allowed, and the plan that reverts the rest.
//!
//! The policy is data (`REVERT_POLICY`, JSON) compiled once at cold start into a [`Policy`].
//! Every decision about a rule is a [`Verdict`] with its reason, so the function can keep a
//! rule *and say why*, and tests can check the reason, not just the outcome.
//!
//! The policy fails closed twice over: a policy document with an unknown field or a value it
//! cannot read is refused at start (a typo must not silently widen what is allowed), and an
//! approval it cannot read approves nothing.
//!
//! Only three things keep a rule that the policy's `allow` entries do not cover: an unexpired
//! [`Approval`], an [`Exemption`] (the record of a rule an exempt principal made, matched on
//! the rule's exact current shape) and an unguarded direction. All of them come from the
//! approvals table, which only sgwarden's role and the security team can write; nothing a
//! person with ordinary EC2 permissions can write (a rule tag, a description) is a reason
//! here (SPEC "Trust").
//!
//! Deliberately absent: any I/O. Group facts (VPC, tags), approvals and the current time are
//! passed in by the function.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{from_str, ParseError};
use crate::event::{ApiCall, Principal, RuleChange};
use crate::forbid::{forbidden_source, AddressSet, Forbid, Forbids, PresetDocument};
use crate::rule::{Direction, Peer, Rule, RuleInfo, RuleSet, Traffic};

/// A tag condition: key and exact value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagCondition {
    pub key: String,
    pub value: String,
}

impl TagCondition {
    pub fn holds(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(&self.key) == Some(&self.value)
    }
}

/// What is known of a group when it is judged. Only the id is always known; name, VPC and
/// tags are read when the policy needs them ([`Policy::needs_group_details`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFacts {
    pub group_id: String,
    pub name: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Which groups the policy guards. Every condition set must hold; an empty list or absent
/// tag matches every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub group_ids: BTreeSet<String>,
    pub vpc_ids: BTreeSet<String>,
    pub tag: Option<TagCondition>,
}

impl GroupFacts {
    /// True when the group is its VPC's default group: EC2 names it `default`, and no other
    /// group in a VPC may take that name.
    pub fn is_default(&self) -> bool {
        self.name.as_deref() == Some(DEFAULT_GROUP_NAME)
    }
}

/// The name EC2 gives every VPC's default security group.
pub const DEFAULT_GROUP_NAME: &str = "default";

impl Scope {
    /// True when no condition is set: every group in the account is guarded.
    pub fn is_everything(&self) -> bool {
        self.group_ids.is_empty() && self.vpc_ids.is_empty() && self.tag.is_none()
    }

    /// True when the group id alone puts the group outside the scope (no read needed).
    pub fn excludes_id(&self, group_id: &str) -> bool {
        !self.group_ids.is_empty() && !self.group_ids.contains(group_id)
    }

    pub fn contains(&self, group: &GroupFacts) -> bool {
        !self.excludes_id(&group.group_id)
            && (self.vpc_ids.is_empty()
                || group
                    .vpc_id
                    .as_ref()
                    .is_some_and(|v| self.vpc_ids.contains(v)))
            && self.tag.as_ref().is_none_or(|t| t.holds(&group.tags))
    }
}

/// Whose changes stand: principals (IAM ARNs; an assumed-role session matches its role), each
/// with its bounds, and groups carrying a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exempt {
    pub principals: BTreeMap<String, Bounds>,
    pub tag: Option<TagCondition>,
}

/// Which rules an exempt principal's calls may make and have stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounds {
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

/// Where an allowed rule may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An IPv4 or IPv6 CIDR: any peer inside it.
    Cidr(Peer),
    /// A security group (`sg-…`) or managed prefix list (`pl-…`), by id.
    Id(String),
    /// `caller`, in an exempt principal's bounds only: the one address the call came from
    /// (CloudTrail's `sourceIPAddress`, which AWS records and the caller cannot write), as a
    /// `/32` or `/128`.
    Caller,
}

/// The word for [`Source::Caller`] in a policy document.
const CALLER: &str = "caller";

impl Source {
    fn parse(text: &str, caller_allowed: bool) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.starts_with("sg-") || text.starts_with("pl-") {
            Ok(Source::Id(text.to_string()))
        } else if text == CALLER {
            if caller_allowed {
                Ok(Source::Caller)
            } else {
                Err(ParseError::new(
                    "",
                    "\"caller\" is the address an exempt call came from: it belongs in an \
                     exempt principal's bounds, not in an allow entry",
                ))
            }
        } else {
            Peer::cidr(text, "").map(Source::Cidr)
        }
    }

    fn contains(&self, peer: &Peer, caller: Option<IpAddr>) -> bool {
        match (self, peer) {
            (Source::Cidr(Peer::Ipv4(net)), Peer::Ipv4(p)) => net.contains(p),
            (Source::Cidr(Peer::Ipv6(net)), Peer::Ipv6(p)) => net.contains(p),
            (Source::Id(id), Peer::Group(g)) => *id == g.id,
            (Source::Id(id), Peer::PrefixList(p)) => id == p,
            (Source::Caller, Peer::Ipv4(p)) => {
                p.prefix_len() == 32 && caller == Some(IpAddr::V4(p.addr()))
            }
            (Source::Caller, Peer::Ipv6(p)) => {
                p.prefix_len() == 128 && caller == Some(IpAddr::V6(p.addr()))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cidr(peer) => write!(f, "{peer}"),
            Source::Id(id) => f.write_str(id),
            Source::Caller => f.write_str(CALLER),
        }
    }
}

/// A rule shape that stays: traffic inside `traffic`, peer inside one of `sources`, in
/// `direction` (both when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub traffic: Traffic,
    pub sources: Vec<Source>,
    pub direction: Option<Direction>,
}

impl AllowEntry {
    pub fn covers(&self, rule: &Rule) -> bool {
        self.covers_from(rule, None)
    }

    /// Whether the entry covers `rule` made by a call from `caller` (what [`Source::Caller`]
    /// stands for).
    fn covers_from(&self, rule: &Rule, caller: Option<IpAddr>) -> bool {
        self.direction.is_none_or(|d| d == rule.direction)
            && self.traffic.contains(&rule.traffic)
            && self.sources.iter().any(|s| s.contains(&rule.peer, caller))
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(direction) = self.direction {
            write!(f, "{direction} ")?;
        }
        let sources: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        write!(f, "{} from {}", self.traffic, sources.join(", "))
    }
}

/// A time-limited approval of one rule shape on one group (the approvals table's item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub group_id: String,
    pub approval_id: String,
    /// The approved shape; a rule inside it (traffic inside, peer inside) is approved.
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: Peer,
    /// Epoch seconds; the approval holds while `now < expires_at`.
    pub expires_at: u64,
    pub approved_by: Option<String>,
    pub reason: Option<String>,
}

impl Approval {
    /// Reads the `rule` attribute: `[ingress|egress] <traffic> <peer>`, e.g.
    /// `tcp/22 203.0.113.7/32` (ingress when the direction is left out) or
    /// `egress tcp/443 pl-0123`.
    pub fn parse_rule(text: &str) -> Result<(Direction, Traffic, Peer), ParseError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (direction, rest) = match words.as_slice() {
            ["ingress", rest @ ..] => (Direction::Ingress, rest),
            ["egress", rest @ ..] => (Direction::Egress, rest),
            rest => (Direction::Ingress, rest),
        };
        let [traffic, peer] = rest else {
            return Err(ParseError::new(
                "rule",
                format!("{text:?} is not \"[ingress|egress] <traffic> <peer>\""),
            ));
        };
        let traffic: Traffic = traffic.parse().map_err(|e: ParseError| e.within("rule"))?;
        let peer = if peer.starts_with("sg-") {
            Peer::group(*peer, None)
        } else if peer.starts_with("pl-") {
            Peer::PrefixList(peer.to_string())
        } else {
            Peer::cidr(peer, "rule")?
        };
        Ok((direction, traffic, peer))
    }

    /// The approved shape as the table's `rule` attribute holds it.
    pub fn rule_text(&self) -> String {
        Rule::new(self.direction, self.traffic, self.peer.clone()).to_string()
    }

    pub fn covers(&self, group_id: &str, rule: &Rule, now: u64) -> bool {
        now < self.expires_at
            && self.group_id == group_id
            && self.direction == rule.direction
            && self.traffic.contains(&rule.traffic)
            && match (&self.peer, &rule.peer) {
                (Peer::Ipv4(a), Peer::Ipv4(b)) => a.contains(b),
                (Peer::Ipv6(a), Peer::Ipv6(b)) => a.contains(b),
                (a, b) => a == b,
            }
    }
}

/// The longest an approval written with `sgwarden approve` may last. Approvals are for
/// temporary access (an incident, a migration window); access needed for longer belongs in
/// the policy's `allow` list, reviewed like any other change to it.
pub const MAX_APPROVAL_SECONDS: u64 = 7 * 24 * 3600;

/// An approval of a public IPv4 range with a prefix shorter than this (more than 16 million
/// addresses), or of an IPv6 range shorter than [`WIDE_IPV6`] (more than an ISP's
/// allocation), needs `--allow-anywhere`.
pub const WIDE_IPV4: u8 = 8;
pub const WIDE_IPV6: u8 = 32;

/// What an operator asks to approve (`sgwarden approve`), before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub group_id: String,
    /// `[ingress|egress] <traffic> <peer>`, as the table's `rule` attribute.
    pub rule: String,
    /// How long it lasts, in seconds.
    pub seconds: u64,
    pub reason: String,
    /// Lets the approval cover a wide part of the internet (`0.0.0.0/0`, `0.0.0.0/1`, `::/1`:
    /// wider than [`WIDE_IPV4`] or [`WIDE_IPV6`]), which is refused otherwise.
    pub allow_anywhere: bool,
}

impl ApprovalRequest {
    /// The approval, checked: a `sg-` group, a rule that parses, a duration of 1 second up to
    /// [`MAX_APPROVAL_SECONDS`], a reason, and no peer of anywhere unless asked for.
    pub fn approve(
        &self,
        approval_id: &str,
        approved_by: &str,
        now: u64,
    ) -> Result<Approval, ParseError> {
        self.approve_reaching(approval_id, approved_by, now, &[])
    }

    /// The peer named by the request's rule, when it is a prefix list: its entries are what
    /// an approval of it opens, so the caller reads them ([`ApprovalRequest::approve_reaching`]).
    pub fn prefix_list(&self) -> Option<String> {
        match Approval::parse_rule(&self.rule) {
            Ok((_, _, Peer::PrefixList(id))) => Some(id),
            _ => None,
        }
    }

    /// [`ApprovalRequest::approve`], with the anywhere check applied to what the peer
    /// resolves to as well: `reaches` holds a prefix list's entries. A security-group peer
    /// resolves to whoever can attach an interface to that group, which no entry shows.
    pub fn approve_reaching(
        &self,
        approval_id: &str,
        approved_by: &str,
        now: u64,
        reaches: &[Peer],
    ) -> Result<Approval, ParseError> {
        if !crate::settings::is_group_id(&self.group_id) {
            return Err(ParseError::new(
                "group_id",
                format!("{:?} is not a security group id", self.group_id),
            ));
        }
        let (direction, traffic, peer) = Approval::parse_rule(&self.rule)?;
        if !(1..=MAX_APPROVAL_SECONDS).contains(&self.seconds) {
            return Err(ParseError::new(
                "for",
                format!(
                    "an approval lasts from 1 second to {} days; longer access belongs in the policy",
                    MAX_APPROVAL_SECONDS / 86_400
                ),
            ));
        }
        // An approval is the one thing that keeps a forbidden rule, so "anywhere" is judged
        // on what a range holds, not on its spelling: `0.0.0.0/1` is half the internet.
        let anywhere = |peer: &Peer| {
            let wide = match peer {
                Peer::Ipv4(net) => net.prefix_len() < WIDE_IPV4,
                Peer::Ipv6(net) => net.prefix_len() < WIDE_IPV6,
                _ => false,
            };
            wide && crate::forbid::reaches_internet(peer)
        };
        let wide = format!(
            "a wide part of the internet (wider than a /{WIDE_IPV4}, or an IPv6 /{WIDE_IPV6}); \
             say --allow-anywhere if that is meant"
        );
        if anywhere(&peer) && !self.allow_anywhere {
            return Err(ParseError::new("rule", format!("{peer} is {wide}")));
        }
        if let Some(entry) = reaches.iter().find(|e| anywhere(e)) {
            if !self.allow_anywhere {
                return Err(ParseError::new(
                    "rule",
                    format!("{peer} holds {entry}, {wide}"),
                ));
            }
        }
        if self.reason.trim().is_empty() {
            return Err(ParseError::new("reason", "say why the access is needed"));
        }
        Ok(Approval {
            group_id: self.group_id.clone(),
            approval_id: approval_id.to_string(),
            direction,
            traffic,
            peer,
            expires_at: now.saturating_add(self.seconds),
            approved_by: Some(approved_by.to_string()),
            reason: Some(self.reason.clone()),
        })
    }
}

/// Reads a duration: a whole number of seconds, minutes, hours or days (`90s`, `30m`, `4h`,
/// `2d`).
pub fn duration_seconds(text: &str) -> Result<u64, ParseError> {
    let text = text.trim();
    let bad = || {
        ParseError::new(
            "for",
            format!("{text:?} is not a duration like 30m, 4h or 2d"),
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    number.checked_mul(unit).ok_or_else(bad)
}

/// The record of a rule an exempt principal made: kept by later sweeps for as long as the
/// rule keeps exactly the shape it had then (a modify by anyone else is judged afresh).
///
/// revert-ingress writes it to the approvals table when it handles the exempt principal's
/// call; the security team may write one by hand. Unlike an [`Approval`] it does not expire
/// and covers one shape exactly, not the rules inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    pub group_id: String,
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
    pub approvals: Vec<Approval>,
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
    pub fn insert(&mut self, list_id: impl Into<String>, entries: ListEntries) {
        self.0.insert(list_id.into(), entries);
    }

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
    pub list_id: String,
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

/// Why a rule stays or goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The policy does not guard this direction.
    Unguarded,
    /// Inside an `allow` entry.
    Allowed(String),
    /// Inside an unexpired approval (its id).
    Approved(String),
    /// Made by an exempt principal, in exactly this shape (the principal).
    Exempted(String),
    /// None of the above: revert it.
    Violates,
    /// What the rule exposes overlaps a forbid entry or preset (named, with what it forbids):
    /// revert it, whatever allows it, unless an approval names it.
    Forbidden(String),
    /// A forbid-only policy (no `allow` entries): the rule matches no forbid entry.
    NotForbidden,
    /// Kept by its shape, but the customer-managed prefix list it references holds entries
    /// that nobody vouched for and the policy does not keep on their own: revert it.
    ListWidened { list: String, entries: Vec<Peer> },
    /// Kept by its shape, but the prefix list it references could not be read: nothing is
    /// kept on the strength of a list whose entries are unknown.
    ListUnreadable { list: String, reason: String },
}

impl Verdict {
    pub fn keeps(&self) -> bool {
        !matches!(
            self,
            Verdict::Violates
                | Verdict::Forbidden(_)
                | Verdict::ListWidened { .. }
                | Verdict::ListUnreadable { .. }
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Unguarded => f.write_str("direction not guarded"),
            Verdict::Allowed(entry) => write!(f, "allowed by policy ({entry})"),
            Verdict::Approved(id) => write!(f, "approved ({id})"),
            Verdict::Exempted(by) => write!(f, "added by exempt principal {by}"),
            Verdict::Violates => f.write_str("not allowed by policy and not approved"),
            Verdict::Forbidden(by) => write!(f, "forbidden by {by}"),
            Verdict::NotForbidden => f.write_str("not forbidden by policy"),
            Verdict::ListWidened { list, entries } => {
                let entries: Vec<String> = entries.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "prefix list {list} holds entries nobody vouched for: {}",
                    entries.join(", ")
                )
            }
            Verdict::ListUnreadable { list, reason } => {
                write!(f, "prefix list {list} could not be read ({reason})")
            }
        }
    }
}

/// What to revoke in one group, and what stays with its reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertPlan {
    pub revoke: RuleSet,
    pub kept: Vec<(Rule, Verdict)>,
    /// The rules in `revoke` that go for a reason beyond "not allowed", with the verdict
    /// naming it: the forbid entry or preset that decided, or the prefix list they reference
    /// and its entries.
    pub reasons: Vec<(Rule, Verdict)>,
}

/// The compiled `REVERT_POLICY`: read only through its questions, so nothing outside the
/// core can change what was checked when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    scope: Scope,
    exempt: Exempt,
    allow: Vec<AllowEntry>,
    /// The policy's forbid entries, then its presets, in the order written.
    forbid: Vec<Forbid>,
    directions: BTreeSet<Direction>,
}

/// The default: every change, everywhere, in both directions, is reverted.
impl Default for Policy {
    fn default() -> Self {
        Self {
            scope: Scope::default(),
            exempt: Exempt::default(),
            allow: Vec::new(),
            forbid: Vec::new(),
            directions: [Direction::Ingress, Direction::Egress].into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDocument {
    #[serde(default)]
    scope: ScopeDocument,
    #[serde(default)]
    exempt: ExemptDocument,
    #[serde(default)]
    allow: Vec<EntryDocument>,
    #[serde(default)]
    forbid: Vec<EntryDocument>,
    #[serde(default)]
    presets: Vec<PresetDocument>,
    #[serde(default)]
    directions: Option<Vec<Direction>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ScopeDocument {
    #[serde(default)]
    group_ids: BTreeSet<String>,
    #[serde(default)]
    vpc_ids: BTreeSet<String>,
    #[serde(default)]
    tag: Option<TagCondition>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExemptDocument {
    #[serde(default)]
    principals: Vec<PrincipalDocument>,
    #[serde(default)]
    tag: Option<TagCondition>,
}

/// An exempt principal: its ARN alone (unbounded), or with the shapes it may make.
#[derive(Deserialize)]
#[serde(untagged)]
enum PrincipalDocument {
    Unbounded(String),
    Bounded(BoundedDocument),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundedDocument {
    principal: String,
    bounds: Vec<EntryDocument>,
}

impl ExemptDocument {
    fn compile(self) -> Result<Exempt, ParseError> {
        let mut principals = BTreeMap::new();
        for (i, listed) in self.principals.into_iter().enumerate() {
            let at = |e: ParseError| e.within(&format!("exempt.principals[{i}]"));
            let (arn, bounds) = match listed {
                PrincipalDocument::Unbounded(arn) => (arn, Bounds::Unbounded),
                PrincipalDocument::Bounded(doc) => {
                    if doc.bounds.is_empty() {
                        return Err(at(ParseError::new(
                            "bounds",
                            "lists no shape: leave the principal out instead",
                        )));
                    }
                    let shapes = doc
                        .bounds
                        .iter()
                        .enumerate()
                        .map(|(j, b)| {
                            b.compile(true)
                                .map_err(|e| e.within(&format!("bounds[{j}]")))
                        })
                        .collect::<Result<_, _>>()
                        .map_err(at)?;
                    (doc.principal, Bounds::Within(shapes))
                }
            };
            if principals.insert(arn.clone(), bounds).is_some() {
                return Err(at(ParseError::new(
                    "",
                    format!("{arn} is listed twice: say its bounds once"),
                )));
            }
        }
        Ok(Exempt {
            principals,
            tag: self.tag,
        })
    }
}

/// An allow entry, an exempt principal's bound or a forbid entry, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDocument {
    protocol: String,
    #[serde(default)]
    ports: Option<String>,
    sources: Vec<String>,
    #[serde(default)]
    direction: Option<Direction>,
}

impl EntryDocument {
    /// The entry as an allow entry; `caller_allowed` lets its sources name `caller` (an exempt principal's
    /// bounds).
    fn compile(&self, caller_allowed: bool) -> Result<AllowEntry, ParseError> {
        let traffic = entry_traffic(&self.protocol, self.ports.as_deref())?;
        if self.sources.is_empty() {
            return Err(ParseError::new("sources", "lists no source"));
        }
        let sources = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| Source::parse(s, caller_allowed).map_err(|e| e.within(&format!("[{i}]"))))
            .collect::<Result<_, _>>()
            .map_err(|e| e.within("sources"))?;
        Ok(AllowEntry {
            traffic,
            sources,
            direction: self.direction,
        })
    }
}

/// The traffic of an allow or forbid entry: its protocol (a name or number, `-1`/`all`)
/// and ports; a tcp or udp entry without ports means every port.
fn entry_traffic(protocol: &str, ports: Option<&str>) -> Result<Traffic, ParseError> {
    let protocol = match protocol.trim().to_ascii_lowercase().as_str() {
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        "58" => "icmpv6".to_string(),
        "-1" => "all".to_string(),
        other => other.to_string(),
    };
    let spelled = match (ports, protocol.as_str()) {
        (Some(ports), _) => format!("{protocol}/{}", ports.trim()),
        (None, "tcp" | "udp") => format!("{protocol}/0-65535"),
        (None, _) => protocol,
    };
    spelled
        .parse()
        .map_err(|e: ParseError| ParseError::new("protocol", e.reason))
}

impl EntryDocument {
    /// The entry as a forbid entry: written like an allow entry, but its sources are
    /// addresses (CIDRs or `internet`) and its direction defaults to ingress (a forbid of
    /// every direction would revoke every group's default egress rule).
    fn compile_forbid(&self, name: String) -> Result<Forbid, ParseError> {
        let traffic = entry_traffic(&self.protocol, self.ports.as_deref())?;
        if self.sources.is_empty() {
            return Err(ParseError::new("sources", "lists no source"));
        }
        let mut sources = AddressSet::default();
        for (i, text) in self.sources.iter().enumerate() {
            let set = forbidden_source(text).map_err(|e| e.within(&format!("sources[{i}]")))?;
            sources = sources.union(&set);
        }
        Ok(Forbid {
            name,
            forbids: Forbids::Exposure {
                direction: self.direction.unwrap_or(Direction::Ingress),
                traffic: vec![traffic],
                sources,
                written: self
                    .sources
                    .iter()
                    .map(|s| s.trim())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        })
    }
}

impl Policy {
    /// The groups the policy guards (a sweep lists them with it).
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// True when changes in `direction` are judged at all: the policy's `directions`, and
    /// every direction a forbid entry or preset names.
    pub fn guards_direction(&self, direction: Direction) -> bool {
        self.directions.contains(&direction)
            || self.forbid.iter().any(|f| match &f.forbids {
                Forbids::DefaultGroupRules => true,
                Forbids::Exposure { direction: d, .. } => *d == direction,
            })
    }

    /// True when the policy keeps every rule no forbid entry matches (it has forbid entries
    /// or presets and no `allow` entries).
    pub fn forbids_only(&self) -> bool {
        self.allow.is_empty() && !self.forbid.is_empty()
    }

    /// True when every rule of a VPC's default group is forbidden (the EC2.2 preset): the
    /// function tells the core which judged groups are default groups
    /// ([`Grants::default_groups`]).
    pub fn forbids_default_group_rules(&self) -> bool {
        self.forbid
            .iter()
            .any(|f| f.forbids == Forbids::DefaultGroupRules)
    }

    /// True when some principals' changes are exempt (and so recorded, not judged).
    pub fn exempts_principals(&self) -> bool {
        !self.exempt.principals.is_empty()
    }

    /// Compiles a `REVERT_POLICY` document. Unknown fields are refused.
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        let doc: PolicyDocument = from_str(text)?;
        let allow = doc
            .allow
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.compile(false)
                    .map_err(|e| e.within(&format!("allow[{i}]")))
            })
            .collect::<Result<_, _>>()?;
        let mut forbid = doc
            .forbid
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = format!("forbid[{i}]");
                f.compile_forbid(name.clone()).map_err(|e| e.within(&name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, preset) in doc.presets.iter().enumerate() {
            let compiled = preset
                .compile()
                .map_err(|e| e.within(&format!("presets[{i}]")))?;
            if forbid.iter().any(|f| f.name == compiled.name) {
                return Err(ParseError::new(
                    format!("presets[{i}]"),
                    format!("{} is listed twice", compiled.name),
                ));
            }
            forbid.push(compiled);
        }
        let directions = match doc.directions {
            None => Policy::default().directions,
            Some(list) if list.is_empty() => {
                return Err(ParseError::new(
                    "directions",
                    "is empty: the policy would guard nothing",
                ))
            }
            Some(list) => list.into_iter().collect(),
        };
        Ok(Self {
            scope: Scope {
                group_ids: doc.scope.group_ids,
                vpc_ids: doc.scope.vpc_ids,
                tag: doc.scope.tag,
            },
            exempt: doc.exempt.compile()?,
            allow,
            forbid,
            directions,
        })
    }

    /// True when judging a group needs its name, VPC or tags (one read of the group).
    pub fn needs_group_details(&self) -> bool {
        !self.scope.vpc_ids.is_empty()
            || self.scope.tag.is_some()
            || self.exempt.tag.is_some()
            || self.forbids_default_group_rules()
    }

    /// True when the group is guarded: in scope and not exempted by its tag.
    pub fn guards_group(&self, group: &GroupFacts) -> bool {
        self.scope.contains(group)
            && self
                .exempt
                .tag
                .as_ref()
                .is_none_or(|t| !t.holds(&group.tags))
    }

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

    /// Judges one rule of `group_id` as EC2 holds it now (`info` carries its `sgr-` id): by
    /// its shape, then, for a rule kept whose peer is a customer-managed prefix list, by what
    /// the list holds ([`Policy::judge_list`]).
    pub fn judge(
        &self,
        group_id: &str,
        rule: &Rule,
        info: &RuleInfo,
        grants: &Grants,
        now: u64,
    ) -> Verdict {
        match self.judge_shape(group_id, rule, info, grants, now) {
            Verdict::Unguarded => Verdict::Unguarded,
            // A forbid-only policy judged the list's entries already, as what the rule exposes.
            Verdict::NotForbidden => Verdict::NotForbidden,
            kept if kept.keeps() => self.judge_list(group_id, rule, grants, now).unwrap_or(kept),
            violates => violates,
        }
    }

    /// What a rule on a prefix list exposes is the list's entries: `Some(verdict)` when they
    /// do not let the rule stand. Every entry must be vouched for (the approvals table's
    /// record of the list) or kept by the policy on its own, as the rule's traffic from that
    /// CIDR (an allow entry, or an approval on this group). AWS-managed lists (owner `AWS`)
    /// are not judged by their entries: nobody in the account can change them.
    pub fn judge_list(
        &self,
        group_id: &str,
        rule: &Rule,
        grants: &Grants,
        now: u64,
    ) -> Option<Verdict> {
        let Peer::PrefixList(list) = &rule.peer else {
            return None;
        };
        let unreadable = |reason: &str| {
            Some(Verdict::ListUnreadable {
                list: list.clone(),
                reason: reason.to_string(),
            })
        };
        let entries = match grants.lists.get(list) {
            Some(ListEntries::AwsManaged) => return None,
            Some(ListEntries::Customer(entries)) => entries,
            Some(ListEntries::Unreadable(reason)) => return unreadable(reason),
            None => return unreadable("not read"),
        };
        let vouched = grants.vouched.iter().find(|v| v.list_id == *list);
        let unvouched: Vec<Peer> = entries
            .iter()
            .filter(|entry| !vouched.is_some_and(|v| v.covers(entry)))
            .filter(|entry| {
                let through = Rule::new(rule.direction, rule.traffic, (*entry).clone());
                !self.allow.iter().any(|a| a.covers(&through))
                    && !grants
                        .approvals
                        .iter()
                        .any(|a| a.covers(group_id, &through, now))
            })
            .cloned()
            .collect();
        (!unvouched.is_empty()).then(|| Verdict::ListWidened {
            list: list.clone(),
            entries: unvouched,
        })
    }

    /// True when an allow entry names the prefix list `list_id`: its widening is judged even
    /// before a rule on it exists.
    pub fn names_list(&self, list_id: &str) -> bool {
        self.allow
            .iter()
            .flat_map(|a| &a.sources)
            .any(|s| matches!(s, Source::Id(id) if id == list_id))
    }

    /// The verdict of the first forbid entry or preset what the rule exposes overlaps, if any:
    /// [`Verdict::Forbidden`], or [`Verdict::ListUnreadable`] for a rule on a prefix list whose
    /// entries are not known and whose traffic is forbidden (nothing is kept on the strength
    /// of entries nobody read).
    pub fn forbidden(&self, group_id: &str, rule: &Rule, grants: &Grants) -> Option<Verdict> {
        let mut unread = None;
        for entry in &self.forbid {
            if !entry.traffic_meets(rule.direction, &rule.traffic) {
                continue;
            }
            let sources = match &entry.forbids {
                Forbids::DefaultGroupRules if grants.default_groups.contains(group_id) => {
                    return Some(Verdict::Forbidden(entry.to_string()))
                }
                Forbids::DefaultGroupRules => continue,
                Forbids::Exposure { sources, .. } => sources,
            };
            let exposes = match &rule.peer {
                Peer::Ipv4(_) | Peer::Ipv6(_) => sources.meets(&rule.peer),
                Peer::Group(_) => false,
                Peer::PrefixList(list) => match grants.lists.get(list) {
                    Some(ListEntries::Customer(entries)) => {
                        entries.iter().any(|e| sources.meets(e))
                    }
                    Some(ListEntries::AwsManaged) => sources.meets_set(&AddressSet::internet()),
                    Some(ListEntries::Unreadable(reason)) => {
                        unread.get_or_insert_with(|| (list.clone(), reason.clone()));
                        false
                    }
                    None => {
                        unread.get_or_insert_with(|| (list.clone(), "not read".to_string()));
                        false
                    }
                },
            };
            if exposes {
                return Some(Verdict::Forbidden(entry.to_string()));
            }
        }
        unread.map(|(list, reason)| Verdict::ListUnreadable { list, reason })
    }

    /// The verdict on a rule's shape alone: forbid entries, direction, allow entries,
    /// approvals, exemptions.
    ///
    /// A forbid entry beats every allow entry and exemption: it names what must never be
    /// open, and an allow entry or exempt principal is a standing, broad grant. Only an
    /// approval beats it: the security team's own record of that one rule on that group,
    /// for at most [`MAX_APPROVAL_SECONDS`], and only for a rule whose peer is what the
    /// approval names (a CIDR or a group); a rule on a prefix list exposes the list's entries,
    /// which anyone with `ec2:ModifyManagedPrefixList` changes after the approval.
    fn judge_shape(
        &self,
        group_id: &str,
        rule: &Rule,
        info: &RuleInfo,
        grants: &Grants,
        now: u64,
    ) -> Verdict {
        if let Some(forbidden) = self.forbidden(group_id, rule, grants) {
            let approval = grants
                .approvals
                .iter()
                .filter(|_| !matches!(rule.peer, Peer::PrefixList(_)))
                .find(|a| a.covers(group_id, rule, now));
            return match approval {
                Some(approval) => Verdict::Approved(approval.approval_id.clone()),
                None => forbidden,
            };
        }
        if self.forbids_only() {
            return Verdict::NotForbidden;
        }
        if !self.directions.contains(&rule.direction) {
            return Verdict::Unguarded;
        }
        if let Some(entry) = self.allow.iter().find(|a| a.covers(rule)) {
            return Verdict::Allowed(entry.to_string());
        }
        if let Some(approval) = grants
            .approvals
            .iter()
            .find(|a| a.covers(group_id, rule, now))
        {
            return Verdict::Approved(approval.approval_id.clone());
        }
        if let Some(exemption) = grants
            .exemptions
            .iter()
            .find(|e| e.covers(group_id, rule, info))
        {
            return Verdict::Exempted(exemption.by.clone());
        }
        Verdict::Violates
    }

    /// Splits `rules` of one group into what to revoke and what stays.
    pub fn plan(&self, group_id: &str, rules: &RuleSet, grants: &Grants, now: u64) -> RevertPlan {
        let mut plan = RevertPlan::default();
        for (rule, info) in rules {
            match self.judge(group_id, rule, info, grants, now) {
                Verdict::Violates => plan.revoke.insert(rule.clone(), info.clone()),
                goes if !goes.keeps() => {
                    plan.revoke.insert(rule.clone(), info.clone());
                    plan.reasons.push((rule.clone(), goes));
                }
                kept => plan.kept.push((rule.clone(), kept)),
            }
        }
        plan
    }
}

/// The identity a function runs as (its role's ARN, or the session ARN STS reports), to
/// recognise its own calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity(String);

impl CallerIdentity {
    pub fn new(arn: impl Into<String>) -> Self {
        Self(arn.into())
    }

    pub fn arn(&self) -> &str {
        &self.0
    }

    /// True when `principal` is this identity. The identity is the function's role (its IAM
    /// role ARN, or the assumed-role session ARN STS reports); CloudTrail names a Lambda's
    /// calls by its session and by the role (with its path) that issued it: all are compared
    /// by account and role name.
    pub fn is(&self, principal: &Principal) -> bool {
        if principal.arn.as_deref() == Some(self.0.as_str()) {
            return true;
        }
        let Some(me) = role_of(&self.0) else {
            return false;
        };
        [&principal.arn, &principal.role_arn]
            .into_iter()
            .flatten()
            .filter_map(|arn| role_of(arn))
            .any(|role| role == me)
    }
}

/// `(account, role name)` of a role's ARN (`arn:aws:iam::<account>:role/<path>/<name>`) or of
/// one of its sessions (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (account, name) = match parts.as_slice() {
        ["arn", _, "iam", "", account, resource] => {
            let path = resource.strip_prefix("role/")?;
            (*account, path.rsplit('/').next()?)
        }
        _ => assumed_role(arn)?,
    };
    (!name.is_empty()).then_some((account, name))
}

/// `(account, role name)` of an assumed-role session ARN.
fn assumed_role(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "sts", "", account, resource] => {
            let mut path = resource.strip_prefix("assumed-role/")?.split('/');
            Some((*account, path.next()?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::PortRange;
    use proptest::prelude::*;

    const EXAMPLE: &str = r#"{
      "scope":  {"group_ids": [], "vpc_ids": [], "tag": {"key": "Protected", "value": "true"}},
      "exempt": {"principals": ["arn:aws:iam::111122223333:role/NetworkAdmin"],
                 "tag": {"key": "AllowManualChanges", "value": "true"}},
      "allow":  [{"protocol": "tcp", "ports": "443", "sources": ["0.0.0.0/0", "::/0"]}],
      "directions": ["ingress"]
    }"#;

    fn rule(text: &str) -> Rule {
        let (direction, traffic, peer) = Approval::parse_rule(text).unwrap();
        Rule::new(direction, traffic, peer)
    }

    fn protected(tags: &[(&str, &str)]) -> GroupFacts {
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

    #[test]
    fn the_spec_example_compiles_and_reads_as_written() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        assert!(policy.needs_group_details());
        assert!(policy.guards_group(&protected(&[("Protected", "true")])));
        assert!(!policy.guards_group(&protected(&[("Protected", "false")])));
        assert!(!policy.guards_group(&protected(&[
            ("Protected", "true"),
            ("AllowManualChanges", "true")
        ])));
        let judge = |r: &str| {
            policy.judge(
                "sg-1",
                &rule(r),
                &RuleInfo::default(),
                &Grants::default(),
                0,
            )
        };
        assert!(matches!(judge("tcp/443 0.0.0.0/0"), Verdict::Allowed(_)));
        assert!(matches!(
            judge("tcp/443 2001:db8::/64"),
            Verdict::Allowed(_)
        ));
        assert_eq!(judge("tcp/22 0.0.0.0/0"), Verdict::Violates);
        assert_eq!(judge("tcp/443-444 0.0.0.0/0"), Verdict::Violates);
        assert_eq!(judge("egress tcp/22 0.0.0.0/0"), Verdict::Unguarded);
    }

    #[test]
    fn the_default_policy_reverts_everything_everywhere() {
        let policy = Policy::default();
        assert!(policy.scope.is_everything());
        assert!(!policy.needs_group_details());
        assert!(policy.guards_group(&GroupFacts::default()));
        for r in ["tcp/22 10.0.0.0/8", "egress all 0.0.0.0/0"] {
            assert_eq!(
                policy.judge(
                    "sg-1",
                    &rule(r),
                    &RuleInfo::default(),
                    &Grants::default(),
                    0
                ),
                Verdict::Violates
            );
        }
    }

    #[test]
    fn a_policy_with_a_typo_or_bad_value_is_refused_naming_it() {
        let e = Policy::from_json(r#"{"alow": []}"#).unwrap_err();
        assert!(e.reason.contains("alow"), "{e}");
        let e = Policy::from_json(
            r#"{"allow": [{"protocol": "tcp", "ports": "22", "sources": ["10.0.0.0/33"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "allow[0].sources[0]");
        let e = Policy::from_json(
            r#"{"allow": [{"protocol": "tcp", "ports": "x", "sources": ["10.0.0.0/8"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "allow[0].protocol");
        let e = Policy::from_json(r#"{"directions": ["sideways"]}"#).unwrap_err();
        assert!(e.field.starts_with("directions"), "{e}");
        assert!(Policy::from_json(r#"{"directions": []}"#).is_err());
        assert!(Policy::from_json(r#"{"allow": [{"protocol": "tcp", "sources": []}]}"#).is_err());
    }

    #[test]
    fn allow_entries_take_ids_numbers_and_a_direction() {
        let policy = Policy::from_json(
            r#"{"allow": [
                {"protocol": "6", "ports": "8000-8100", "sources": ["sg-0abc", "pl-0def"]},
                {"protocol": "all", "sources": ["0.0.0.0/0"], "direction": "egress"},
                {"protocol": "udp", "sources": ["10.0.0.0/8"]}
            ]}"#,
        )
        .unwrap();
        let mut grants = Grants::default();
        grants.lists.insert("pl-0def", ListEntries::AwsManaged);
        let keeps = |r: &str| {
            policy
                .judge("sg-1", &rule(r), &RuleInfo::default(), &grants, 0)
                .keeps()
        };
        assert!(keeps("tcp/8080 sg-0abc"));
        assert!(keeps("tcp/8080 pl-0def"));
        // Ids match exactly: not another group or prefix list, not an address.
        assert!(!keeps("tcp/8080 sg-0other"));
        assert!(!keeps("tcp/8080 pl-0deg"));
        assert!(!keeps("tcp/8080 10.0.0.0/8"));
        assert!(keeps("egress all 0.0.0.0/0"));
        assert!(!keeps("all 0.0.0.0/0"));
        assert!(keeps("udp/53 10.1.0.0/16"));
        assert!(!keeps("udp/53 11.0.0.0/8"));
    }

    #[test]
    fn approvals_hold_until_they_expire_and_only_on_their_group() {
        let (direction, traffic, peer) = Approval::parse_rule("tcp/22 203.0.113.0/24").unwrap();
        let approval = Approval {
            group_id: "sg-1".into(),
            approval_id: "change-42".into(),
            direction,
            traffic,
            peer,
            expires_at: 1_000,
            approved_by: Some("alice".into()),
            reason: None,
        };
        let policy = Policy::default();
        let ssh = rule("tcp/22 203.0.113.7/32");
        let approvals = Grants {
            approvals: vec![approval],
            ..Grants::default()
        };
        assert_eq!(
            policy.judge("sg-1", &ssh, &RuleInfo::default(), &approvals, 999),
            Verdict::Approved("change-42".into())
        );
        assert_eq!(
            policy.judge("sg-1", &ssh, &RuleInfo::default(), &approvals, 1_000),
            Verdict::Violates
        );
        assert_eq!(
            policy.judge("sg-2", &ssh, &RuleInfo::default(), &approvals, 0),
            Verdict::Violates
        );
        let wider = rule("tcp/22 0.0.0.0/0");
        assert_eq!(
            policy.judge("sg-1", &wider, &RuleInfo::default(), &approvals, 0),
            Verdict::Violates
        );
        assert!(Approval::parse_rule("tcp/22").is_err());
        assert!(Approval::parse_rule("sideways tcp/22 10.0.0.0/8").is_err());
        assert_eq!(
            Approval::parse_rule("egress tcp/443 pl-1").unwrap().0,
            Direction::Egress
        );
    }

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
    fn the_caller_identity_recognises_its_sessions_and_role_with_a_path() {
        let me = CallerIdentity::new("arn:aws:sts::111122223333:assumed-role/revert-role/fn");
        let by_issuer = Principal {
            arn: Some("arn:aws:sts::111122223333:assumed-role/revert-role/other-session".into()),
            role_arn: Some("arn:aws:iam::111122223333:role/service/revert-role".into()),
            ..Principal::default()
        };
        assert!(me.is(&by_issuer));
        let same_name_other_account = Principal {
            arn: Some("arn:aws:sts::999999999999:assumed-role/revert-role/fn".into()),
            role_arn: Some("arn:aws:iam::999999999999:role/revert-role".into()),
            ..Principal::default()
        };
        assert!(!me.is(&same_name_other_account));
        let user = CallerIdentity::new("arn:aws:iam::111122223333:user/ops");
        assert!(user.is(&Principal {
            arn: Some("arn:aws:iam::111122223333:user/ops".into()),
            ..Principal::default()
        }));
        assert!(!user.is(&by_issuer));
    }

    fn exemption(rule_text: &str, rule_id: Option<&str>) -> Exemption {
        Exemption {
            made_at: None,
            group_id: "sg-1".into(),
            rule: rule(rule_text),
            rule_id: rule_id.map(str::to_string),
            by: "arn:aws:iam::1:role/Admin".into(),
            reason: "e-1".into(),
        }
    }

    fn with_id(id: &str) -> RuleInfo {
        RuleInfo {
            description: None,
            rule_id: Some(id.into()),
        }
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

    /// An authorize by `principal` from `caller` that created `rules` (text, `sgr-` id).
    fn exempt_call(principal: &str, caller: &str, rules: &[(&str, &str)]) -> (ApiCall, RuleChange) {
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

    fn texts(rules: &RuleSet) -> Vec<String> {
        rules.rules().map(ToString::to_string).collect()
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
        assert_eq!(texts(&stand), vec!["ingress tcp/5433 10.2.0.0/16"]);
        assert_eq!(
            texts(&judged),
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

    const HOST_ROLE: &str = "arn:aws:iam::111122223333:role/HostRole";

    fn bounded_policy() -> Policy {
        Policy::from_json(&format!(
            r#"{{"exempt": {{"principals": [
                 "arn:aws:iam::111122223333:role/NetworkAdmin",
                 {{"principal": "{HOST_ROLE}",
                   "bounds": [{{"protocol": "tcp", "ports": "443", "sources": ["caller"]}},
                              {{"protocol": "udp", "ports": "8125", "sources": ["10.0.0.0/8"]}}]}}]}}}}"#
        ))
        .unwrap()
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
            texts(&stand),
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
        assert_eq!(texts(&stand), vec!["ingress tcp/443 2001:db8::7/128"]);
        // A call with no address (a service made it) has no caller to match.
        let now: RuleSet = made.iter().map(|(t, id)| (rule(t), with_id(id))).collect();
        let (call, change) = exempt_call(HOST_ROLE, "ec2.amazonaws.com", &made);
        let (stand, judged) = policy.split_exempt(&call, &change, &now);
        assert_eq!(texts(&stand), vec!["ingress udp/8125 10.1.2.3/32"]);
        assert_eq!(judged.len(), 5);
        // The unbounded principal beside it is still unbounded.
        let (call, change) = exempt_call("arn:aws:iam::111122223333:role/NetworkAdmin", "", &made);
        assert_eq!(policy.split_exempt(&call, &change, &now).0.len(), 6);
        assert!(policy.exempts(&call.principal));
    }

    #[test]
    fn exempt_bounds_are_checked_when_the_policy_is_compiled() {
        let refused = |text: &str| Policy::from_json(text).unwrap_err().field;
        assert_eq!(
            refused(
                r#"{"exempt": {"principals": [{"principal": "arn:aws:iam::1:role/H", "bounds": []}]}}"#
            ),
            "exempt.principals[0].bounds"
        );
        assert_eq!(
            refused(
                r#"{"exempt": {"principals": ["arn:aws:iam::1:role/H", {"principal": "arn:aws:iam::1:role/H", "bounds": [{"protocol": "tcp", "sources": ["caller"]}]}]}}"#
            ),
            "exempt.principals[1]"
        );
        assert_eq!(
            refused(
                r#"{"exempt": {"principals": [{"principal": "arn:aws:iam::1:role/H", "bounds": [{"protocol": "tcp", "sources": ["nowhere"]}]}]}}"#
            ),
            "exempt.principals[0].bounds[0].sources[0]"
        );
        assert!(Policy::from_json(r#"{"exempt": {"principals": [{"principal": "arn:aws:iam::1:role/H", "bounds": [{"protocol": "tcp", "sources": ["caller"]}], "extra": 1}]}}"#).is_err());
        // `caller` means nothing without a call: not in an allow entry.
        assert_eq!(
            refused(r#"{"allow": [{"protocol": "tcp", "ports": "443", "sources": ["caller"]}]}"#),
            "allow[0].sources[0]"
        );
    }

    fn request(rule: &str, seconds: u64) -> ApprovalRequest {
        ApprovalRequest {
            group_id: "sg-0123".into(),
            rule: rule.into(),
            seconds,
            reason: "INC-42".into(),
            allow_anywhere: false,
        }
    }

    #[test]
    fn an_approval_request_is_checked_before_anything_is_written() {
        let ok = request("tcp/22 203.0.113.7/32", 4 * 3600)
            .approve("a-1", "arn:aws:iam::111122223333:user/ops", 1_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.expires_at, 1_000 + 4 * 3600);
        assert_eq!(ok.rule_text(), "ingress tcp/22 203.0.113.7/32");
        assert_eq!(
            ok.approved_by.as_deref(),
            Some("arn:aws:iam::111122223333:user/ops")
        );
        assert!(ok.covers("sg-0123", &rule("tcp/22 203.0.113.7/32"), 1_000));
        let refused = |r: ApprovalRequest| r.approve("a", "me", 0).map_err(|e| e.to_string());
        for (bad, field) in [
            (request("tcp/22", 60), "rule"),
            (request("tcp/22 0.0.0.0/0", 60), "rule"),
            (request("tcp/22 ::/0", 60), "rule"),
            (request("tcp/22 10.0.0.0/8", 0), "for"),
            (
                request("tcp/22 10.0.0.0/8", MAX_APPROVAL_SECONDS + 1),
                "for",
            ),
            (
                ApprovalRequest {
                    reason: " ".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "reason",
            ),
            (
                ApprovalRequest {
                    group_id: "i-1".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "group_id",
            ),
            (
                ApprovalRequest {
                    group_id: "sg-".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "group_id",
            ),
        ] {
            let error = refused(bad).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
        assert!(request("tcp/22 10.0.0.0/8", MAX_APPROVAL_SECONDS)
            .approve("a", "me", 0)
            .is_ok());
        assert_eq!(duration_seconds("7d").ok(), Some(MAX_APPROVAL_SECONDS));
        let anywhere = ApprovalRequest {
            allow_anywhere: true,
            ..request("egress tcp/443 0.0.0.0/0", 60)
        };
        assert_eq!(
            anywhere
                .approve("a", "me", 0)
                .map(|a| a.rule_text())
                .ok()
                .as_deref(),
            Some("egress tcp/443 0.0.0.0/0")
        );
        assert!(
            request("tcp/22 11.0.0.0/8", 60)
                .approve("a", "me", 0)
                .is_ok(),
            "a /8 is not anywhere"
        );
    }

    #[test]
    fn durations_read_in_seconds_minutes_hours_and_days() {
        for (text, seconds) in [("90s", 90), ("30m", 1_800), ("4h", 14_400), ("2d", 172_800)] {
            assert_eq!(duration_seconds(text).ok(), Some(seconds), "{text}");
        }
        for bad in ["", "h", "4", "4w", "-4h", "4.5h", "99999999999999999999d"] {
            assert!(duration_seconds(bad).is_err(), "{bad}");
        }
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
    fn every_kind_of_rule_reads_back_from_its_text() {
        for text in [
            "ingress all 0.0.0.0/0",
            "egress icmp 10.0.0.0/8",
            "ingress icmp/8:0 10.0.0.0/8",
            "ingress icmpv6/128 ::/0",
            "ingress 47 192.0.2.0/24",
            "ingress udp/53 sg-0abc",
            "egress tcp/443 pl-0def",
            "ingress tcp/0-65535 2001:db8::/32",
        ] {
            assert_eq!(rule(text).to_string(), text);
        }
    }

    #[test]
    fn a_scope_by_id_excludes_every_other_group_without_a_read() {
        let scope = Scope {
            group_ids: ["sg-1".to_string()].into(),
            ..Scope::default()
        };
        assert!(!scope.excludes_id("sg-1"));
        assert!(scope.excludes_id("sg-2"));
        assert!(!scope.contains(&GroupFacts {
            group_id: "sg-2".into(),
            ..GroupFacts::default()
        }));
        assert!(
            !Scope::default().excludes_id("sg-2"),
            "an empty list matches every group"
        );
        for narrowed in [
            scope.clone(),
            Scope {
                vpc_ids: ["vpc-1".to_string()].into(),
                ..Scope::default()
            },
            Scope {
                tag: Some(TagCondition {
                    key: "Protected".into(),
                    value: "true".into(),
                }),
                ..Scope::default()
            },
        ] {
            assert!(!narrowed.is_everything(), "{narrowed:?}");
        }
        assert!(Scope::default().is_everything());
    }

    #[test]
    fn an_approval_of_a_group_or_prefix_list_covers_exactly_that_peer() {
        let approval = |text: &str| {
            let (direction, traffic, peer) = Approval::parse_rule(text).unwrap();
            Approval {
                group_id: "sg-1".into(),
                approval_id: "a".into(),
                direction,
                traffic,
                peer,
                expires_at: 10,
                approved_by: None,
                reason: None,
            }
        };
        let by_group = approval("tcp/5432 sg-app");
        assert!(by_group.covers("sg-1", &rule("tcp/5432 sg-app"), 0));
        assert!(!by_group.covers("sg-1", &rule("tcp/5432 sg-other"), 0));
        assert!(!by_group.covers("sg-1", &rule("egress tcp/5432 sg-app"), 0));
        assert!(!by_group.covers("sg-1", &rule("tcp/5433 sg-app"), 0));
        let by_list = approval("egress tcp/443 pl-1");
        assert!(by_list.covers("sg-1", &rule("egress tcp/443 pl-1"), 9));
        assert!(!by_list.covers("sg-1", &rule("egress tcp/443 pl-2"), 9));
        assert!(!by_list.covers("sg-1", &rule("egress tcp/443 pl-1"), 10));
        let by_cidr = approval("tcp/22 10.0.0.0/8");
        assert!(by_cidr.covers("sg-1", &rule("tcp/22 10.1.0.0/16"), 0));
        assert!(!by_cidr.covers("sg-1", &rule("tcp/22 11.0.0.0/16"), 0));
        assert!(!by_cidr.covers("sg-1", &rule("tcp/22 ::/0"), 0));
    }

    #[test]
    fn the_function_s_role_is_recognised_from_the_session_issuer_alone() {
        let me = CallerIdentity::new("arn:aws:sts::111122223333:assumed-role/revert-role/fn");
        let issuer_only = |role: &str| Principal {
            arn: None,
            role_arn: Some(role.into()),
            ..Principal::default()
        };
        assert!(me.is(&issuer_only(
            "arn:aws:iam::111122223333:role/service/revert-role"
        )));
        assert!(me.is(&issuer_only("arn:aws:iam::111122223333:role/revert-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::111122223333:role/other-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::999999999999:role/revert-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::111122223333:user/revert-role")));
        assert!(!me.is(&Principal::default()));
    }

    #[test]
    fn a_compiled_policy_answers_its_questions() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        assert!(policy.guards_direction(Direction::Ingress));
        assert!(!policy.guards_direction(Direction::Egress));
        assert!(policy.exempts_principals());
        assert!(!policy.scope().is_everything());
        let default = Policy::default();
        assert!(default.guards_direction(Direction::Egress));
        assert!(!default.exempts_principals());
        assert!(default.scope().is_everything());
        let arn = "arn:aws:iam::111122223333:role/revert";
        assert_eq!(CallerIdentity::new(arn).arn(), arn);
    }

    #[test]
    fn the_function_s_role_given_by_its_arn_recognises_its_sessions() {
        let me = CallerIdentity::new("arn:aws:iam::111122223333:role/service/revert-role");
        let session = |arn: &str| Principal {
            arn: Some(arn.into()),
            role_arn: None,
            ..Principal::default()
        };
        assert!(me.is(&session(
            "arn:aws:sts::111122223333:assumed-role/revert-role/revert-fn"
        )));
        assert!(me.is(&Principal {
            arn: None,
            role_arn: Some("arn:aws:iam::111122223333:role/service/revert-role".into()),
            ..Principal::default()
        }));
        assert!(!me.is(&session(
            "arn:aws:sts::999999999999:assumed-role/revert-role/revert-fn"
        )));
        assert!(!me.is(&session(
            "arn:aws:sts::111122223333:assumed-role/other-role/revert-fn"
        )));
        assert!(!me.is(&session("arn:aws:iam::111122223333:user/revert-role")));
        assert!(!CallerIdentity::new("arn:aws:iam::111122223333:role/")
            .is(&session("arn:aws:sts::111122223333:assumed-role//x")));
    }

    #[test]
    fn every_verdict_says_why_in_words() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        let verdict = |r: &str, grants: &Grants| {
            policy
                .judge("sg-1", &rule(r), &with_id("sgr-1"), grants, 0)
                .to_string()
        };
        assert_eq!(
            verdict("tcp/443 0.0.0.0/0", &Grants::default()),
            "allowed by policy (tcp/443 from 0.0.0.0/0, ::/0)"
        );
        assert_eq!(
            verdict("egress tcp/22 0.0.0.0/0", &Grants::default()),
            "direction not guarded"
        );
        assert_eq!(
            verdict("tcp/22 0.0.0.0/0", &Grants::default()),
            "not allowed by policy and not approved"
        );
        let exempted = Grants {
            exemptions: vec![exemption("tcp/5432 10.2.0.0/16", Some("sgr-1"))],
            ..Grants::default()
        };
        assert_eq!(
            verdict("tcp/5432 10.2.0.0/16", &exempted),
            "added by exempt principal arn:aws:iam::1:role/Admin"
        );
        assert_eq!(
            Verdict::Approved("CHG-7".into()).to_string(),
            "approved (CHG-7)"
        );
        let egress_only = Policy::from_json(
            r#"{"allow": [{"protocol": "all", "sources": ["sg-0abc"], "direction": "egress"}]}"#,
        )
        .unwrap();
        assert_eq!(egress_only.allow[0].to_string(), "egress all from sg-0abc");
    }

    #[test]
    fn a_group_is_read_only_when_the_scope_or_exempt_tag_needs_it() {
        let needs = |json: &str| Policy::from_json(json).unwrap().needs_group_details();
        assert!(!needs(r#"{"scope": {"group_ids": ["sg-1"]}}"#));
        assert!(needs(r#"{"scope": {"vpc_ids": ["vpc-1"]}}"#));
        assert!(needs(
            r#"{"scope": {"tag": {"key": "Protected", "value": "true"}}}"#
        ));
        assert!(needs(
            r#"{"exempt": {"tag": {"key": "AllowManualChanges", "value": "true"}}}"#
        ));
    }

    fn cidrs(texts: &[&str]) -> BTreeSet<Peer> {
        texts.iter().map(|t| Peer::cidr(t, "").unwrap()).collect()
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

    fn vouched(list: &str, texts: &[&str]) -> Vouched {
        Vouched {
            list_id: list.into(),
            entries: cidrs(texts),
            by: "sgwarden".into(),
            reason: "first use".into(),
        }
    }

    /// The attack's policy: ssh allowed from a customer-managed list.
    fn ssh_from_list() -> Policy {
        Policy::from_json(
            r#"{"allow": [{"protocol": "tcp", "ports": "22", "sources": ["pl-x"]},
                          {"protocol": "tcp", "ports": "443", "sources": ["0.0.0.0/0"]}],
                "directions": ["ingress"]}"#,
        )
        .unwrap()
    }

    fn holding(list: &str, entries: ListEntries, vouched: Vec<Vouched>) -> Grants {
        let mut grants = Grants {
            vouched,
            ..Grants::default()
        };
        grants.lists.insert(list, entries);
        grants
    }

    #[test]
    fn a_rule_on_a_widened_prefix_list_goes_and_the_verdict_names_the_list_and_entries() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let widened = holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24", "0.0.0.0/0"])),
            vec![vouched("pl-x", &["203.0.113.0/24"])],
        );
        let verdict = policy.judge("sg-1", &ssh, &RuleInfo::default(), &widened, 0);
        assert_eq!(
            verdict,
            Verdict::ListWidened {
                list: "pl-x".into(),
                entries: cidrs(&["0.0.0.0/0"]).into_iter().collect(),
            }
        );
        assert!(!verdict.keeps());
        assert_eq!(
            verdict.to_string(),
            "prefix list pl-x holds entries nobody vouched for: 0.0.0.0/0"
        );
        let mut rules = RuleSet::new();
        rules.insert(ssh.clone(), with_id("sgr-7"));
        rules.insert(rule("tcp/443 0.0.0.0/0"), RuleInfo::default());
        let plan = policy.plan("sg-1", &rules, &widened, 0);
        assert_eq!(plan.revoke.rules().collect::<Vec<_>>(), vec![&ssh]);
        assert_eq!(plan.revoke.rule_ids(), Some(vec!["sgr-7".to_string()]));
        assert_eq!(plan.reasons, vec![(ssh.clone(), verdict)]);
        assert_eq!(plan.kept.len(), 1);
    }

    #[test]
    fn a_list_holding_only_vouched_entries_or_entries_the_policy_keeps_keeps_its_rule() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let judge = |grants: &Grants| policy.judge("sg-1", &ssh, &RuleInfo::default(), grants, 5);
        let vouched_only = holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24", "198.51.100.7/32"])),
            vec![vouched("pl-x", &["203.0.113.0/24", "198.51.100.0/24"])],
        );
        assert!(matches!(judge(&vouched_only), Verdict::Allowed(_)));
        // Nobody vouches, but an approval of ssh from the entry itself keeps it, on its group.
        let (direction, traffic, peer) = Approval::parse_rule("tcp/22 192.0.2.0/24").unwrap();
        let approved = Grants {
            approvals: vec![Approval {
                group_id: "sg-1".into(),
                approval_id: "a-1".into(),
                direction,
                traffic,
                peer,
                expires_at: 10,
                approved_by: None,
                reason: None,
            }],
            ..holding(
                "pl-x",
                ListEntries::Customer(cidrs(&["192.0.2.0/25"])),
                Vec::new(),
            )
        };
        assert!(judge(&approved).keeps());
        assert!(!policy
            .judge("sg-2", &ssh, &RuleInfo::default(), &approved, 5)
            .keeps());
        assert!(!policy
            .judge("sg-1", &ssh, &RuleInfo::default(), &approved, 10)
            .keeps());
        // The traffic must be kept too: 0.0.0.0/0 is allowed for 443, not for 22.
        let anywhere = holding("pl-x", ListEntries::Customer(cidrs(&["0.0.0.0/0"])), vec![]);
        assert!(!judge(&anywhere).keeps());
        // An empty list exposes nothing; another list's record vouches for nothing here.
        assert!(judge(&holding(
            "pl-x",
            ListEntries::Customer(BTreeSet::new()),
            vec![]
        ))
        .keeps());
        assert!(!judge(&holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24"])),
            vec![vouched("pl-y", &["203.0.113.0/24"])]
        ))
        .keeps());
        // A vouched IPv4 entry says nothing of an IPv6 one.
        assert!(!judge(&holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["::/0"])),
            vec![vouched("pl-x", &["0.0.0.0/0"])]
        ))
        .keeps());
    }

    #[test]
    fn an_unread_or_unreadable_list_keeps_nothing_and_an_aws_managed_one_is_judged_by_id() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let judge = |grants: &Grants| policy.judge("sg-1", &ssh, &RuleInfo::default(), grants, 0);
        assert_eq!(
            judge(&Grants::default()),
            Verdict::ListUnreadable {
                list: "pl-x".into(),
                reason: "not read".into()
            }
        );
        let denied = holding(
            "pl-x",
            ListEntries::Unreadable("AccessDenied".into()),
            vec![],
        );
        assert_eq!(
            judge(&denied).to_string(),
            "prefix list pl-x could not be read (AccessDenied)"
        );
        assert!(!judge(&denied).keeps());
        assert!(matches!(
            judge(&holding("pl-x", ListEntries::AwsManaged, vec![])),
            Verdict::Allowed(_)
        ));
        // A rule the policy reverts anyway, or does not guard, is not judged by its list.
        assert_eq!(
            policy.judge(
                "sg-1",
                &rule("tcp/23 pl-x"),
                &RuleInfo::default(),
                &Grants::default(),
                0
            ),
            Verdict::Violates
        );
        assert_eq!(
            policy.judge(
                "sg-1",
                &rule("egress tcp/22 pl-x"),
                &RuleInfo::default(),
                &Grants::default(),
                0
            ),
            Verdict::Unguarded
        );
        // An exempt principal's rule on the list, and an approval of the list, are judged too.
        let exempted = Grants {
            exemptions: vec![Exemption {
                rule: rule("tcp/5432 pl-x"),
                ..exemption("tcp/5432 pl-x", None)
            }],
            ..holding("pl-x", ListEntries::Customer(cidrs(&["0.0.0.0/0"])), vec![])
        };
        assert!(matches!(
            policy.judge(
                "sg-1",
                &rule("tcp/5432 pl-x"),
                &RuleInfo::default(),
                &exempted,
                0
            ),
            Verdict::ListWidened { .. }
        ));
    }

    #[test]
    fn only_allow_entries_naming_a_list_name_it() {
        let policy = ssh_from_list();
        assert!(policy.names_list("pl-x"));
        assert!(!policy.names_list("pl-y"));
        assert!(!Policy::default().names_list("pl-x"));
        let rules = [
            rule("tcp/22 pl-x"),
            rule("egress tcp/22 pl-y"),
            rule("tcp/22 10.0.0.0/8"),
            rule("udp/53 pl-z"),
        ];
        let mut lists = PrefixLists::default();
        lists.insert("pl-x", ListEntries::AwsManaged);
        let mut more = PrefixLists::default();
        more.insert("pl-x", ListEntries::Unreadable("gone".into()));
        more.insert("pl-y", ListEntries::Customer(BTreeSet::new()));
        lists.extend(more);
        assert_eq!(
            lists.get("pl-x"),
            Some(&ListEntries::Unreadable("gone".into()))
        );
        assert_eq!(
            lists.customer().map(|(id, _)| id).collect::<Vec<_>>(),
            vec!["pl-y"]
        );
        assert_eq!(
            referenced_lists(&policy, &rules),
            ["pl-x".to_string(), "pl-z".to_string()].into()
        );
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
    fn an_approval_of_a_prefix_list_is_refused_when_the_list_holds_anywhere() {
        let list = request("tcp/22 pl-x", 60);
        assert_eq!(list.prefix_list().as_deref(), Some("pl-x"));
        assert_eq!(request("tcp/22 10.0.0.0/8", 60).prefix_list(), None);
        assert_eq!(request("tcp/22 sg-1", 60).prefix_list(), None);
        assert_eq!(request("nonsense", 60).prefix_list(), None);
        for anywhere in ["0.0.0.0/0", "::/0"] {
            let error = list
                .approve_reaching(
                    "a",
                    "me",
                    0,
                    &[
                        Peer::cidr("10.0.0.0/8", "").unwrap(),
                        Peer::cidr(anywhere, "").unwrap(),
                    ],
                )
                .unwrap_err();
            assert_eq!(error.field, "rule");
            assert!(error.reason.contains(anywhere), "{error}");
            assert!(error.reason.contains("pl-x"), "{error}");
        }
        let reaches = [Peer::cidr("0.0.0.0/0", "").unwrap()];
        assert!(ApprovalRequest {
            allow_anywhere: true,
            ..list.clone()
        }
        .approve_reaching("a", "me", 0, &reaches)
        .is_ok());
        // Half the internet is as wide as all of it; a private or narrow range is not.
        for wide in ["0.0.0.0/1", "::/1", "10.0.0.0/7"] {
            assert!(list
                .approve_reaching("a", "me", 0, &[Peer::cidr(wide, "").unwrap()])
                .is_err());
        }
        for narrow in ["10.0.0.0/8", "11.0.0.0/8", "fc00::/7", "2001:db8::/32"] {
            assert!(list
                .approve_reaching("a", "me", 0, &[Peer::cidr(narrow, "").unwrap()])
                .is_ok());
        }
        assert!(list.approve("a", "me", 0).is_ok());
    }

    #[test]
    fn approving_a_wide_part_of_the_internet_needs_allow_anywhere_however_it_is_written() {
        let refused = |rule: &str| request(rule, 60).approve("a", "me", 0).is_err();
        for wide in [
            "tcp/22 0.0.0.0/1",
            "tcp/22 128.0.0.0/1",
            "tcp/22 ::/1",
            "tcp/22 2000::/3",
            "tcp/22 8.0.0.0/7",
        ] {
            assert!(refused(wide), "{wide}");
            let asked = ApprovalRequest {
                allow_anywhere: true,
                ..request(wide, 60)
            };
            assert!(asked.approve("a", "me", 0).is_ok(), "{wide}");
        }
        for fine in [
            "tcp/22 9.0.0.0/8",
            "tcp/22 2600:1f00::/32",
            "tcp/22 fc00::/7",
            "tcp/22 sg-1",
        ] {
            assert!(!refused(fine), "{fine}");
        }
    }

    fn any_list_rule() -> impl Strategy<Value = (Rule, BTreeSet<Peer>, BTreeSet<Peer>)> {
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

    fn any_rule() -> impl Strategy<Value = Rule> {
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

    proptest! {
        /// A plan partitions the rules it was given: it never revokes a rule it was not
        /// given, never loses one, and never revokes what an allow entry covers.
        #[test]
        fn a_revert_plan_partitions_the_rules_and_spares_allowed_ones(
            rules in proptest::collection::vec(any_rule(), 0..40)
        ) {
            let policy = Policy::from_json(
                r#"{"allow": [{"protocol": "tcp", "ports": "0-1000", "sources": ["10.0.0.0/8"]}],
                    "directions": ["ingress"]}"#,
            ).unwrap();
            let set: RuleSet = rules.iter().map(|r| (r.clone(), RuleInfo::default())).collect();
            let plan = policy.plan("sg-1", &set, &Grants::default(), 0);
            prop_assert_eq!(plan.revoke.len() + plan.kept.len(), set.len());
            for rule in plan.revoke.rules() {
                prop_assert!(set.contains(rule));
                prop_assert!(!policy.allow.iter().any(|a| a.covers(rule)));
                prop_assert_eq!(rule.direction, Direction::Ingress);
            }
        }

        /// A rule on a prefix list stays only when every entry of the list is vouched for or
        /// allowed as the rule's traffic from that entry, and the plan still partitions.
        #[test]
        fn a_rule_on_a_list_stays_only_when_every_entry_is_vouched_for_or_allowed(
            (rule, entries, vouched_entries) in any_list_rule(),
            extra in proptest::collection::vec(any_rule(), 0..10),
        ) {
            let policy = Policy::from_json(
                r#"{"allow": [{"protocol": "tcp", "ports": "0-30", "sources": ["pl-x"]},
                              {"protocol": "tcp", "ports": "0-20", "sources": ["10.0.0.0/8"]}]}"#,
            ).unwrap();
            let record = Vouched {
                list_id: "pl-x".into(),
                entries: vouched_entries,
                by: "sgwarden".into(),
                reason: "first use".into(),
            };
            let grants = Grants {
                vouched: vec![record.clone()],
                ..holding("pl-x", ListEntries::Customer(entries.clone()), vec![])
            };
            let mut set: RuleSet = extra.iter().map(|r| (r.clone(), RuleInfo::default())).collect();
            set.insert(rule.clone(), RuleInfo::default());
            let plan = policy.plan("sg-1", &set, &grants, 0);
            prop_assert_eq!(plan.revoke.len() + plan.kept.len(), set.len());
            let exposed_ok = entries.iter().all(|e| {
                record.covers(e)
                    || policy.allow.iter().any(|a| a.covers(&Rule::new(rule.direction, rule.traffic, e.clone())))
            });
            let shape_ok = policy.allow[0].covers(&rule);
            prop_assert_eq!(!plan.revoke.contains(&rule), shape_ok && exposed_ok);
            prop_assert_eq!(plan.reasons.len(), usize::from(shape_ok && !exposed_ok));
            for (listed, _) in &plan.reasons {
                prop_assert!(plan.revoke.contains(listed));
            }
        }

        /// A rule's text is what the approvals table stores for an exemption: reading it back
        /// gives the same rule.
        #[test]
        fn a_rule_s_text_reads_back_as_the_same_rule(rule in any_rule()) {
            let (direction, traffic, peer) = Approval::parse_rule(&rule.to_string()).unwrap();
            prop_assert_eq!(Rule::new(direction, traffic, peer), rule);
        }

        /// A group is in scope or out, never both: a group its id excludes is never in scope.
        #[test]
        fn a_group_is_in_scope_or_out_never_both(
            listed in proptest::collection::btree_set("sg-[0-3]", 0..3),
            id in "sg-[0-3]",
        ) {
            let scope = Scope { group_ids: listed, ..Scope::default() };
            let facts = GroupFacts { group_id: id.clone(), ..GroupFacts::default() };
            prop_assert_eq!(scope.contains(&facts), !scope.excludes_id(&id));
        }

        #[test]
        fn policy_and_approval_parsers_never_panic(text in ".{0,80}") {
            let _ = Policy::from_json(&text);
            let _ = Approval::parse_rule(&text);
        }
    }
}
