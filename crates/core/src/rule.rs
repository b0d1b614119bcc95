//! The rule model: one security-group permission expands into atomic [`Rule`]s.
//!
//! AWS speaks of permissions (`IpPermission`: one protocol and port range, many peers), of
//! security-group rules (`SecurityGroupRule`: one peer, with an id), and of configuration items
//! (permissions again, in another spelling). Comparing any of them needs one atomic form: a
//! direction, the traffic (protocol and ports), and exactly one peer. Identity is those three;
//! the description, the rule id and a referenced group's owner account are carried in
//! [`RuleInfo`] and never take part in comparisons. CIDRs are normalised (host bits cleared) so
//! `10.0.0.7/24` and `10.0.0.0/24` are the same rule, as they are to EC2.
//!
//! This module does not know any wire spelling: [`crate::wire`] turns the three JSON shapes into
//! [`Permission`]s and [`SecurityGroupRule`]s, and the AWS adapter builds them from SDK types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::ParseError;
use crate::wire::{CidrEntry, GroupEntry, Permission, PrefixListEntry};

/// Which way traffic flows through the group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic into the group's members (`IpPermissions`; `isEgress: false`).
    Ingress,
    /// Traffic out of the group's members (`IpPermissionsEgress`; `isEgress: true`).
    Egress,
}

impl Direction {
    /// The lowercase name, `ingress` or `egress`: how logs, plans and the serde form spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive TCP or UDP port range, never backwards: built only by [`PortRange::new`]
/// (which refuses one) and [`PortRange::single`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub(crate) from: u16,
    pub(crate) to: u16,
}

impl PortRange {
    /// The ports `from` to `to`, both included; refuses a range that runs backwards (`from > to`).
    pub fn new(from: u16, to: u16) -> Result<Self, ParseError> {
        if from > to {
            return Err(ParseError::new(
                "ports",
                format!("range {from}-{to} runs backwards"),
            ));
        }
        Ok(Self { from, to })
    }

    /// One port.
    pub fn single(port: u16) -> Self {
        Self {
            from: port,
            to: port,
        }
    }

    /// True when every port of `other` lies inside `self`.
    pub fn contains(&self, other: &PortRange) -> bool {
        self.from <= other.from && other.to <= self.to
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// What a rule admits: a protocol and, where the protocol has them, ports or ICMP type/code.
///
/// Protocols are normalised the way EC2 does: `6` is `tcp`, `17` is `udp`, `1` is `icmp`,
/// `58` is `icmpv6` and `-1` is every protocol. For any other protocol number EC2 ignores ports,
/// and so do we. `None` in an ICMP type or code means "any" (`-1` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// Every protocol, port and ICMP type (`IpProtocol` `-1`).
    All,
    /// TCP (protocol 6) on a range of ports.
    Tcp(PortRange),
    /// UDP (protocol 17) on a range of ports.
    Udp(PortRange),
    /// ICMP (protocol 1), on `FromPort`/`ToPort` as type and code.
    Icmp {
        /// The type (`FromPort` on the wire); `None` is any type (`-1`).
        kind: Option<u8>,
        /// The code (`ToPort` on the wire); `None` is any code (`-1`). The parsers refuse a
        /// code without a type.
        code: Option<u8>,
    },
    /// ICMPv6 (protocol 58), on `FromPort`/`ToPort` as type and code.
    Icmpv6 {
        /// The type (`FromPort` on the wire); `None` is any type (`-1`).
        kind: Option<u8>,
        /// The code (`ToPort` on the wire); `None` is any code (`-1`). The parsers refuse a
        /// code without a type.
        code: Option<u8>,
    },
    /// Any other IP protocol, by number (`50` is ESP). EC2 ignores ports for these, so it has
    /// none; the parsers never put 1, 6, 17 or 58 here.
    Protocol(u8),
}

impl Traffic {
    /// Builds the traffic of a permission from its wire fields (`IpProtocol`, `FromPort`,
    /// `ToPort`).
    pub(crate) fn from_wire(
        protocol: &str,
        from_port: Option<i64>,
        to_port: Option<i64>,
    ) -> Result<Self, ParseError> {
        let number = match protocol.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => return Ok(Traffic::All),
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" => 58,
            other => other.parse::<u8>().map_err(|_| {
                ParseError::new("ipProtocol", format!("unknown protocol {protocol:?}"))
            })?,
        };
        match number {
            6 => Ok(Traffic::Tcp(port_range(from_port, to_port)?)),
            17 => Ok(Traffic::Udp(port_range(from_port, to_port)?)),
            1 => {
                let (kind, code) = icmp_fields(from_port, to_port)?;
                Ok(Traffic::Icmp { kind, code })
            }
            58 => {
                let (kind, code) = icmp_fields(from_port, to_port)?;
                Ok(Traffic::Icmpv6 { kind, code })
            }
            n => Ok(Traffic::Protocol(n)),
        }
    }

    /// The wire fields (`IpProtocol`, `FromPort`, `ToPort`) EC2 expects for this traffic.
    pub(crate) fn to_wire(self) -> (String, Option<i32>, Option<i32>) {
        let icmp = |k: Option<u8>, c: Option<u8>| {
            (Some(k.map_or(-1, i32::from)), Some(c.map_or(-1, i32::from)))
        };
        match self {
            Traffic::All => ("-1".into(), None, None),
            Traffic::Tcp(r) => ("tcp".into(), Some(r.from.into()), Some(r.to.into())),
            Traffic::Udp(r) => ("udp".into(), Some(r.from.into()), Some(r.to.into())),
            Traffic::Icmp { kind, code } => {
                let (f, t) = icmp(kind, code);
                ("icmp".into(), f, t)
            }
            Traffic::Icmpv6 { kind, code } => {
                let (f, t) = icmp(kind, code);
                ("icmpv6".into(), f, t)
            }
            Traffic::Protocol(n) => (n.to_string(), None, None),
        }
    }

    /// True when everything `other` admits is admitted by `self`.
    pub fn contains(&self, other: &Traffic) -> bool {
        let icmp_inside = |k: Option<u8>, c: Option<u8>, ok: Option<u8>, oc: Option<u8>| {
            (k.is_none() || k == ok) && (c.is_none() || c == oc)
        };
        match (self, other) {
            (Traffic::All, _) => true,
            (Traffic::Tcp(a), Traffic::Tcp(b)) | (Traffic::Udp(a), Traffic::Udp(b)) => {
                a.contains(b)
            }
            (Traffic::Icmp { kind, code }, Traffic::Icmp { kind: ok, code: oc })
            | (Traffic::Icmpv6 { kind, code }, Traffic::Icmpv6 { kind: ok, code: oc }) => {
                icmp_inside(*kind, *code, *ok, *oc)
            }
            (a, b) => a == b,
        }
    }
}

impl Traffic {
    /// True when some packet is admitted by both: what a forbid entry asks of a rule, so a
    /// range that spans a forbidden port, or every protocol, is caught however it is written.
    pub(crate) fn overlaps(&self, other: &Traffic) -> bool {
        let icmp_meet = |k: Option<u8>, c: Option<u8>, ok: Option<u8>, oc: Option<u8>| {
            (k.is_none() || ok.is_none() || k == ok) && (c.is_none() || oc.is_none() || c == oc)
        };
        match (self, other) {
            (Traffic::All, _) | (_, Traffic::All) => true,
            (Traffic::Tcp(a), Traffic::Tcp(b)) | (Traffic::Udp(a), Traffic::Udp(b)) => {
                a.from <= b.to && b.from <= a.to
            }
            (Traffic::Icmp { kind, code }, Traffic::Icmp { kind: ok, code: oc })
            | (Traffic::Icmpv6 { kind, code }, Traffic::Icmpv6 { kind: ok, code: oc }) => {
                icmp_meet(*kind, *code, *ok, *oc)
            }
            (a, b) => a == b,
        }
    }
}

fn port(value: Option<i64>, field: &'static str) -> Result<u16, ParseError> {
    let value = value.ok_or_else(|| ParseError::missing(field))?;
    u16::try_from(value).map_err(|_| ParseError::new(field, format!("{value} is not a port")))
}

fn port_range(from: Option<i64>, to: Option<i64>) -> Result<PortRange, ParseError> {
    PortRange::new(port(from, "fromPort")?, port(to, "toPort")?)
}

fn icmp_fields(
    kind: Option<i64>,
    code: Option<i64>,
) -> Result<(Option<u8>, Option<u8>), ParseError> {
    let one = |v: Option<i64>, field: &'static str| match v {
        None | Some(-1) => Ok(None),
        Some(n) => u8::try_from(n)
            .map(Some)
            .map_err(|_| ParseError::new(field, format!("{n} is not an ICMP type or code"))),
    };
    let kind = one(kind, "fromPort")?;
    let code = one(code, "toPort")?;
    if kind.is_none() && code.is_some() {
        return Err(ParseError::new("toPort", "an ICMP code needs an ICMP type"));
    }
    Ok((kind, code))
}

/// `SYNC_PORTS` spelling: `all`, `tcp/22`, `tcp/7000-7001`, `udp/53`, `icmp`, `icmp/8`,
/// `icmp/8:0`, `icmpv6`, or a bare protocol number such as `50`.
impl FromStr for Traffic {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |why: &str| ParseError::new("traffic", format!("{s:?}: {why}"));
        let (protocol, rest) = match s.split_once('/') {
            Some((p, r)) => (p, Some(r)),
            None => (s, None),
        };
        match (protocol.to_ascii_lowercase().as_str(), rest) {
            ("all" | "-1", None) => Ok(Traffic::All),
            (p @ ("tcp" | "udp"), Some(ports)) => {
                let (from, to) = ports.split_once('-').unwrap_or((ports, ports));
                let parse = |v: &str| v.parse::<u16>().map_err(|_| bad("not a port"));
                let range = PortRange::new(parse(from)?, parse(to)?).map_err(|e| bad(&e.reason))?;
                Ok(if p == "tcp" {
                    Traffic::Tcp(range)
                } else {
                    Traffic::Udp(range)
                })
            }
            ("tcp" | "udp", None) => Err(bad("needs ports, e.g. tcp/443 or tcp/0-65535")),
            (p @ ("icmp" | "icmpv6"), rest) => {
                let parse = |v: &str| v.parse::<u8>().map_err(|_| bad("not an ICMP type or code"));
                let (kind, code) = match rest {
                    None => (None, None),
                    Some(r) => match r.split_once(':') {
                        Some((k, c)) => (Some(parse(k)?), Some(parse(c)?)),
                        None => (Some(parse(r)?), None),
                    },
                };
                Ok(if p == "icmp" {
                    Traffic::Icmp { kind, code }
                } else {
                    Traffic::Icmpv6 { kind, code }
                })
            }
            (number, None) => {
                let n = number.parse::<u8>().map_err(|_| bad("unknown protocol"))?;
                Traffic::from_wire(&n.to_string(), None, None)
                    .map_err(|_| bad("needs ports, e.g. tcp/443"))
            }
            _ => Err(bad("this protocol takes no ports")),
        }
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let icmp =
            |f: &mut fmt::Formatter<'_>, name: &str, k: &Option<u8>, c: &Option<u8>| match (k, c) {
                (None, _) => write!(f, "{name}"),
                (Some(k), None) => write!(f, "{name}/{k}"),
                (Some(k), Some(c)) => write!(f, "{name}/{k}:{c}"),
            };
        match self {
            Traffic::All => f.write_str("all"),
            Traffic::Tcp(r) => write!(f, "tcp/{r}"),
            Traffic::Udp(r) => write!(f, "udp/{r}"),
            Traffic::Icmp { kind, code } => icmp(f, "icmp", kind, code),
            Traffic::Icmpv6 { kind, code } => icmp(f, "icmpv6", kind, code),
            Traffic::Protocol(n) => write!(f, "{n}"),
        }
    }
}

/// A security group named as a peer. Identity is the group id alone: the owner account is
/// present in some AWS shapes and absent in others for the very same rule, so it is carried
/// for API calls (cross-account references need it) but never compared.
#[derive(Debug, Clone)]
pub struct GroupRef {
    /// The referenced group's id (`sg-…`): the whole of its identity.
    pub id: String,
    /// The account id that owns the referenced group (`UserId` on the wire), when the source
    /// names it; cross-account references need it, comparisons ignore it.
    pub owner: Option<String>,
}

impl PartialEq for GroupRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for GroupRef {}
impl PartialOrd for GroupRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for GroupRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}
impl std::hash::Hash for GroupRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// The one other end of an atomic rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// An IPv4 CIDR, host bits cleared.
    Ipv4(Ipv4Net),
    /// An IPv6 CIDR, host bits cleared.
    Ipv6(Ipv6Net),
    /// A security group: the traffic of its members (possibly the rule's own group).
    Group(GroupRef),
    /// A managed prefix list, by its id (`pl-…`).
    PrefixList(String),
}

impl Peer {
    /// Parses a CIDR of either family, clearing host bits (`10.0.0.7/24` → `10.0.0.0/24`). A
    /// bare address is a single host (`/32` or `/128`).
    pub fn cidr(text: &str, field: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        let bad = || ParseError::new(field, format!("{text:?} is not a CIDR"));
        if text.contains(':') {
            let net = match text.parse::<Ipv6Net>() {
                Ok(net) => net,
                Err(_) => Ipv6Net::from(text.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?),
            };
            Ok(Peer::Ipv6(net.trunc()))
        } else {
            let net = match text.parse::<Ipv4Net>() {
                Ok(net) => net,
                Err(_) => Ipv4Net::from(text.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?),
            };
            Ok(Peer::Ipv4(net.trunc()))
        }
    }

    /// A group peer by id (`sg-…`), with its owner account when the source names it.
    pub fn group(id: impl Into<String>, owner: Option<String>) -> Self {
        Peer::Group(GroupRef {
            id: id.into(),
            owner,
        })
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ipv4(net) => write!(f, "{net}"),
            Peer::Ipv6(net) => write!(f, "{net}"),
            // The owner is not part of identity, so it is not part of the name either:
            // the same rule prints the same from every source.
            Peer::Group(g) => write!(f, "{}", g.id),
            Peer::PrefixList(id) => write!(f, "{id}"),
        }
    }
}

/// One atomic security-group rule: the unit of every comparison sgwarden makes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// Whether the rule admits traffic into the group or out of it.
    pub direction: Direction,
    /// The protocol, and the ports or ICMP type and code, it admits.
    pub traffic: Traffic,
    /// The one source (ingress) or destination (egress) it admits.
    pub peer: Peer,
}

impl Rule {
    /// A rule from the three parts of its identity.
    pub fn new(direction: Direction, traffic: Traffic, peer: Peer) -> Self {
        Self {
            direction,
            traffic,
            peer,
        }
    }
}

/// `ingress tcp/22 203.0.113.7/32`: the form used in logs, plans and approvals.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.direction, self.traffic, self.peer)
    }
}

/// What a rule carries besides its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's description (`Description` on the wire), when it has one. Rules sgwarden
    /// owns start with the `sgwarden:<owner> ` marker ([`crate::plan::Owner::describe`]).
    pub description: Option<String>,
    /// The `sgr-…` id, when the source names it.
    pub rule_id: Option<String>,
}

impl RuleInfo {
    /// Info with this description and no rule id: what a rule sgwarden is about to add carries.
    pub fn described(description: impl Into<String>) -> Self {
        Self {
            description: Some(description.into()),
            rule_id: None,
        }
    }
}

/// A set of atomic rules with what each carries. Ordered, so plans and logs are stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet(BTreeMap<Rule, RuleInfo>);

impl RuleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule; when the same rule is already present its info is kept, filling in what
    /// it lacked (a rule id seen in one shape, a description seen in another).
    pub fn insert(&mut self, rule: Rule, info: RuleInfo) {
        let entry = self.0.entry(rule).or_default();
        if entry.description.is_none() {
            entry.description = info.description;
        }
        if entry.rule_id.is_none() {
            entry.rule_id = info.rule_id;
        }
    }

    /// Adds every rule of `other` (see [`RuleSet::insert`]).
    pub fn extend_from(&mut self, other: &RuleSet) {
        for (rule, info) in other {
            self.insert(rule.clone(), info.clone());
        }
    }

    /// Removes a rule, returning what it carried; `None` when it was not in the set.
    pub fn remove(&mut self, rule: &Rule) -> Option<RuleInfo> {
        self.0.remove(rule)
    }

    /// True when the rule is in the set; identity only, so descriptions and ids do not matter.
    pub fn contains(&self, rule: &Rule) -> bool {
        self.0.contains_key(rule)
    }

    /// The `sgr-` ids of the rules, when every rule has one: the input of a revoke by id.
    pub fn rule_ids(&self) -> Option<Vec<String>> {
        self.0.values().map(|info| info.rule_id.clone()).collect()
    }

    /// What the rule carries, when it is in the set.
    pub fn get(&self, rule: &Rule) -> Option<&RuleInfo> {
        self.0.get(rule)
    }

    /// How many atomic rules the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the set holds no rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rules with what each carries, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (&Rule, &RuleInfo)> {
        self.0.iter()
    }

    /// The rules alone, in rule order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.0.keys()
    }

    /// Each rule as text (`ingress tcp/22 0.0.0.0/0`), in rule order: how reports, audit
    /// lines and tests name them.
    pub fn texts(&self) -> Vec<String> {
        self.rules().map(ToString::to_string).collect()
    }

    /// The rules of one direction.
    pub fn direction(&self, direction: Direction) -> RuleSet {
        self.iter()
            .filter(|(r, _)| r.direction == direction)
            .map(|(r, i)| (r.clone(), i.clone()))
            .collect()
    }

    /// Expands permissions of one direction into this set.
    pub fn extend_permissions<'a>(
        &mut self,
        direction: Direction,
        permissions: impl IntoIterator<Item = &'a Permission>,
    ) -> Result<(), ParseError> {
        for (index, permission) in permissions.into_iter().enumerate() {
            permission
                .expand_into(direction, self)
                .map_err(|e| e.within(&format!("[{index}]")))?;
        }
        Ok(())
    }

    /// Batches the rules back into the fewest permissions EC2 accepts: one per
    /// (direction, traffic), carrying every peer of that traffic with its description.
    pub fn to_permissions(&self, direction: Direction) -> Vec<Permission> {
        let mut by_traffic: BTreeMap<Traffic, Permission> = BTreeMap::new();
        for (rule, info) in self.iter().filter(|(r, _)| r.direction == direction) {
            let permission = by_traffic.entry(rule.traffic).or_insert_with(|| {
                let (protocol, from_port, to_port) = rule.traffic.to_wire();
                Permission {
                    protocol,
                    from_port: from_port.map(i64::from),
                    to_port: to_port.map(i64::from),
                    ..Permission::default()
                }
            });
            let description = info.description.clone();
            match &rule.peer {
                Peer::Ipv4(net) => permission.ipv4_ranges.push(CidrEntry {
                    cidr: net.to_string(),
                    description,
                }),
                Peer::Ipv6(net) => permission.ipv6_ranges.push(CidrEntry {
                    cidr: net.to_string(),
                    description,
                }),
                Peer::Group(group) => permission.groups.push(GroupEntry {
                    group_id: Some(group.id.clone()),
                    group_name: None,
                    owner: group.owner.clone(),
                    description,
                }),
                Peer::PrefixList(id) => permission.prefix_lists.push(PrefixListEntry {
                    prefix_list_id: id.clone(),
                    description,
                }),
            }
        }
        by_traffic.into_values().collect()
    }
}

impl FromIterator<(Rule, RuleInfo)> for RuleSet {
    fn from_iter<I: IntoIterator<Item = (Rule, RuleInfo)>>(iter: I) -> Self {
        let mut set = RuleSet::new();
        for (rule, info) in iter {
            set.insert(rule, info);
        }
        set
    }
}

impl<'a> IntoIterator for &'a RuleSet {
    type Item = (&'a Rule, &'a RuleInfo);
    type IntoIter = std::collections::btree_map::Iter<'a, Rule, RuleInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(from: u16, to: u16) -> Traffic {
        Traffic::Tcp(PortRange { from, to })
    }

    #[test]
    fn protocol_numbers_and_names_are_the_same_traffic() {
        assert_eq!(
            Traffic::from_wire("6", Some(22), Some(22)).unwrap(),
            Traffic::from_wire("TCP", Some(22), Some(22)).unwrap()
        );
        assert_eq!(Traffic::from_wire("-1", None, None).unwrap(), Traffic::All);
        assert_eq!(
            Traffic::from_wire("-1", Some(0), Some(65535)).unwrap(),
            Traffic::All
        );
        assert_eq!(
            Traffic::from_wire("1", Some(-1), Some(-1)).unwrap(),
            Traffic::Icmp {
                kind: None,
                code: None
            }
        );
        assert_eq!(
            Traffic::from_wire("50", Some(0), Some(0)).unwrap(),
            Traffic::Protocol(50)
        );
    }

    #[test]
    fn bad_protocols_and_ports_name_the_field() {
        assert_eq!(
            Traffic::from_wire("tcp", None, Some(22)).unwrap_err().field,
            "fromPort"
        );
        assert_eq!(
            Traffic::from_wire("tcp", Some(70000), Some(70000))
                .unwrap_err()
                .field,
            "fromPort"
        );
        assert_eq!(
            Traffic::from_wire("gre", None, None).unwrap_err().field,
            "ipProtocol"
        );
        assert!(Traffic::from_wire("tcp", Some(30), Some(20)).is_err());
    }

    #[test]
    fn traffic_text_round_trips() {
        for text in [
            "all",
            "tcp/22",
            "tcp/7000-7001",
            "udp/53",
            "icmp",
            "icmp/8",
            "icmp/8:0",
            "icmpv6",
            "50",
        ] {
            let traffic: Traffic = text.parse().unwrap();
            assert_eq!(traffic.to_string(), text);
        }
        assert_eq!("6/22".parse::<Traffic>().ok(), None);
        assert!("tcp".parse::<Traffic>().is_err());
        assert!("tcp/a".parse::<Traffic>().is_err());
        assert!("all/22".parse::<Traffic>().is_err());
        assert_eq!("17".parse::<Traffic>().ok(), None, "udp needs ports");
    }

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(
            Peer::cidr("10.0.0.7/24", "x").unwrap(),
            Peer::cidr("10.0.0.0/24", "x").unwrap()
        );
        assert_eq!(
            Peer::cidr("203.0.113.7", "x").unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            Peer::cidr("2001:db8::1/64", "x").unwrap().to_string(),
            "2001:db8::/64"
        );
        assert_eq!(Peer::cidr("nope", "cidrIp").unwrap_err().field, "cidrIp");
    }

    #[test]
    fn group_owner_is_carried_not_compared() {
        assert_eq!(
            Peer::group("sg-1", Some("111122223333".into())),
            Peer::group("sg-1", None)
        );
    }

    #[test]
    fn containment() {
        assert!(tcp(0, 1024).contains(&tcp(22, 22)));
        assert!(!tcp(22, 22).contains(&tcp(22, 23)));
        assert!(Traffic::All.contains(&Traffic::Udp(PortRange { from: 1, to: 2 })));
        assert!(!tcp(0, 65535).contains(&Traffic::Udp(PortRange { from: 1, to: 2 })));
    }

    #[test]
    fn permissions_batch_back_to_one_per_traffic() {
        let mut set = RuleSet::new();
        for cidr in ["10.0.0.1/32", "10.0.0.2/32", "2001:db8::/64"] {
            set.insert(
                Rule::new(
                    Direction::Ingress,
                    tcp(22, 22),
                    Peer::cidr(cidr, "x").unwrap(),
                ),
                RuleInfo::described("sgwarden:c x"),
            );
        }
        set.insert(
            Rule::new(
                Direction::Ingress,
                Traffic::All,
                Peer::PrefixList("pl-1".into()),
            ),
            RuleInfo::default(),
        );
        set.insert(
            Rule::new(Direction::Egress, Traffic::All, Peer::group("sg-9", None)),
            RuleInfo::default(),
        );
        let ingress = set.to_permissions(Direction::Ingress);
        assert_eq!(ingress.len(), 2);
        let mut back = RuleSet::new();
        back.extend_permissions(Direction::Ingress, &ingress)
            .unwrap();
        back.extend_permissions(Direction::Egress, &set.to_permissions(Direction::Egress))
            .unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn a_port_range_holds_its_edges_and_nothing_past_them() {
        let range = tcp(22, 25);
        for inside in [tcp(22, 22), tcp(25, 25), tcp(23, 24), tcp(22, 25)] {
            assert!(range.contains(&inside), "{inside}");
        }
        for outside in [
            tcp(21, 21),
            tcp(26, 26),
            tcp(21, 22),
            tcp(25, 26),
            tcp(0, 65535),
        ] {
            assert!(!range.contains(&outside), "{outside}");
        }
        let udp = |from, to| Traffic::Udp(PortRange { from, to });
        assert!(udp(53, 53).contains(&udp(53, 53)));
        assert!(!udp(53, 53).contains(&udp(54, 54)));
        assert!(!udp(0, 65535).contains(&tcp(53, 53)));
        assert!(
            !tcp(0, 65535).contains(&Traffic::All),
            "all is wider than any port range"
        );
    }

    #[test]
    fn icmp_any_type_holds_every_type_and_a_type_holds_its_codes() {
        let icmp = |kind, code| Traffic::Icmp { kind, code };
        assert!(icmp(None, None).contains(&icmp(Some(8), Some(0))));
        assert!(icmp(Some(8), None).contains(&icmp(Some(8), Some(0))));
        assert!(icmp(Some(8), Some(0)).contains(&icmp(Some(8), Some(0))));
        assert!(!icmp(Some(8), None).contains(&icmp(Some(0), Some(0))));
        assert!(!icmp(Some(8), Some(0)).contains(&icmp(Some(8), Some(1))));
        assert!(!icmp(Some(8), Some(0)).contains(&icmp(Some(8), None)));
        assert!(!icmp(Some(8), None).contains(&icmp(None, None)));
        let v6 = Traffic::Icmpv6 {
            kind: None,
            code: None,
        };
        assert!(v6.contains(&Traffic::Icmpv6 {
            kind: Some(128),
            code: None
        }));
        assert!(!v6.contains(&icmp(None, None)));
        assert!(!icmp(None, None).contains(&v6));
        assert!(Traffic::Protocol(47).contains(&Traffic::Protocol(47)));
        assert!(!Traffic::Protocol(47).contains(&Traffic::Protocol(50)));
    }

    #[test]
    fn icmp_type_and_code_are_read_from_the_port_fields() {
        assert_eq!(
            Traffic::from_wire("icmp", Some(8), Some(0)).unwrap(),
            Traffic::Icmp {
                kind: Some(8),
                code: Some(0)
            }
        );
        assert_eq!(
            Traffic::from_wire("58", Some(128), Some(-1)).unwrap(),
            Traffic::Icmpv6 {
                kind: Some(128),
                code: None
            }
        );
        assert_eq!(
            Traffic::from_wire("icmp", Some(-1), Some(3))
                .unwrap_err()
                .field,
            "toPort"
        );
        assert_eq!(
            Traffic::from_wire("icmp", Some(300), Some(0))
                .unwrap_err()
                .field,
            "fromPort"
        );
    }

    #[test]
    fn tcp_and_udp_need_ports() {
        // The operator reads this in a refused SYNC_PORTS: it must say what is missing.
        for bare in ["tcp", "udp"] {
            let e = bare.parse::<Traffic>().unwrap_err();
            assert!(e.reason.contains("needs ports"), "{e}");
        }
        assert!("tcp/22".parse::<Traffic>().is_ok());
    }

    #[test]
    fn peer_groups_are_the_same_only_with_the_same_id() {
        assert_ne!(Peer::group("sg-1", None), Peer::group("sg-2", None));
        let mut set = RuleSet::new();
        for (id, owner) in [
            ("sg-1", None),
            ("sg-1", Some("111122223333")),
            ("sg-2", None),
        ] {
            set.insert(
                Rule::new(
                    Direction::Ingress,
                    tcp(5432, 5432),
                    Peer::group(id, owner.map(str::to_string)),
                ),
                RuleInfo::default(),
            );
        }
        assert_eq!(set.len(), 2, "sg-1 (with or without its owner) and sg-2");
    }

    #[test]
    fn a_direction_of_a_set_holds_exactly_that_direction_s_rules() {
        let mut set = RuleSet::new();
        for direction in [Direction::Ingress, Direction::Egress] {
            for port in [22, 443] {
                set.insert(
                    Rule::new(
                        direction,
                        tcp(port, port),
                        Peer::cidr("10.0.0.0/8", "t").unwrap(),
                    ),
                    RuleInfo::default(),
                );
            }
        }
        let ingress = set.direction(Direction::Ingress);
        assert_eq!(ingress.len(), 2);
        assert!(ingress.rules().all(|r| r.direction == Direction::Ingress));
        assert_eq!(set.direction(Direction::Egress).len(), 2);
    }

    fn any_traffic() -> impl proptest::strategy::Strategy<Value = Traffic> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Traffic::All),
            (0u16..40, 0u16..10).prop_map(|(f, w)| tcp(f, f + w)),
            (0u16..40, 0u16..10).prop_map(|(f, w)| Traffic::Udp(PortRange { from: f, to: f + w })),
            (proptest::option::of(0u8..4), proptest::option::of(0u8..3)).prop_map(|(k, c)| {
                Traffic::Icmp {
                    kind: k,
                    code: k.and(c),
                }
            }),
            (46u8..49).prop_map(Traffic::Protocol),
        ]
    }

    proptest::proptest! {
        /// Containment is an order: every traffic holds itself, and what is inside
        /// something inside a third is inside the third.
        #[test]
        fn containment_is_reflexive_and_transitive(
            a in any_traffic(), b in any_traffic(), c in any_traffic()
        ) {
            proptest::prop_assert!(a.contains(&a));
            if a.contains(&b) && b.contains(&c) {
                proptest::prop_assert!(a.contains(&c), "{a} ⊇ {b} ⊇ {c}");
            }
            if a.contains(&b) && b.contains(&a) {
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn any_icmp_type_or_code_goes_to_ec2_as_minus_one() {
        let any = Traffic::Icmp {
            kind: None,
            code: None,
        };
        assert_eq!(any.to_wire(), ("icmp".to_string(), Some(-1), Some(-1)));
        let echo = Traffic::Icmpv6 {
            kind: Some(128),
            code: None,
        };
        assert_eq!(echo.to_wire(), ("icmpv6".to_string(), Some(128), Some(-1)));
    }

    #[test]
    fn peers_order_the_same_way_whichever_comparison_is_asked() {
        let a = Peer::group("sg-1", None);
        let b = Peer::group("sg-2", Some("111122223333".into()));
        assert!(a < b);
        assert_eq!(a.partial_cmp(&b), Some(a.cmp(&b)));
        assert_eq!(
            a.partial_cmp(&Peer::group("sg-1", Some("1".into()))),
            Some(std::cmp::Ordering::Equal)
        );
    }

    #[test]
    fn extending_a_set_keeps_what_it_had_and_fills_in_what_it_lacked() {
        let rule = Rule::new(
            Direction::Ingress,
            tcp(22, 22),
            Peer::cidr("10.0.0.0/8", "t").unwrap(),
        );
        let mut set: RuleSet = [(rule.clone(), RuleInfo::described("kept"))]
            .into_iter()
            .collect();
        let other: RuleSet = [
            (
                rule.clone(),
                RuleInfo {
                    description: Some("ignored".into()),
                    rule_id: Some("sgr-1".into()),
                },
            ),
            (
                Rule::new(
                    Direction::Egress,
                    Traffic::All,
                    Peer::cidr("0.0.0.0/0", "t").unwrap(),
                ),
                RuleInfo::default(),
            ),
        ]
        .into_iter()
        .collect();
        set.extend_from(&other);
        assert_eq!(set.len(), 2);
        let (_, info) = set.iter().find(|(r, _)| **r == rule).unwrap();
        assert_eq!(info.description.as_deref(), Some("kept"));
        assert_eq!(info.rule_id.as_deref(), Some("sgr-1"));
    }
}
