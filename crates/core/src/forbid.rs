//! Forbid entries and the presets for Security Hub's controls: what must never be open.
//!
//! An allow list says what may stay; most teams start from the other end ("never ssh from the
//! internet"). A [`Forbid`] names traffic and the addresses it must not come from, and a rule
//! is forbidden when what it *exposes* overlaps it: a port range spanning a forbidden port,
//! every protocol, half the internet (`0.0.0.0/1`), a prefix list holding a public entry.
//! Overlap is decided on address and port *sets*, never on spellings, so a rule is caught
//! however it is written or split: each piece of a split overlaps what the whole did.
//! (AWS Security Hub's own remediation compares the strings `0.0.0.0/0` and `::/0`; a rule
//! from `0.0.0.0/1` walks past it, not past this.)
//!
//! `internet` is every address outside the private (`10.0.0.0/8`, `172.16.0.0/12`,
//! `192.168.0.0/16`), shared (`100.64.0.0/10`), loopback (`127.0.0.0/8`, `::1/128`),
//! link-local (`169.254.0.0/16`, `fe80::/10`) and unique-local (`fc00::/7`) ranges.
//!
//! A security-group peer names instances, not addresses: no forbid entry of addresses matches
//! it. What an AWS-managed prefix list holds (CloudFront, S3) is public AWS address space:
//! it is judged as the internet. A customer-managed list is judged by its entries, and one
//! that could not be read is forbidden wherever its traffic is (nothing is known to be safe).

use std::fmt;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

use crate::error::ParseError;
use crate::rule::{Direction, Peer, PortRange, Traffic};

/// A set of addresses of both families, as sorted, disjoint, inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

/// The ranges that are not the internet (module docs).
const NOT_INTERNET: [&str; 9] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
];

/// The word for [`AddressSet::internet`] in a policy document.
pub(crate) const INTERNET: &str = "internet";

fn v4_bounds(net: &Ipv4Net) -> (u128, u128) {
    (
        u128::from(u32::from(net.network())),
        u128::from(u32::from(net.broadcast())),
    )
}

fn v6_bounds(net: &Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

/// Sorts and merges intervals (touching ones too).
fn normalised(mut spans: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    spans.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// What `[0, max]` holds outside `spans` (normalised).
fn complement(spans: &[(u128, u128)], max: u128) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut next = Some(0u128);
    for &(from, to) in spans {
        if let Some(start) = next {
            if from > start {
                out.push((start, from - 1));
            }
        }
        next = to.checked_add(1).filter(|n| *n <= max);
    }
    if let Some(start) = next {
        out.push((start, max));
    }
    out
}

fn meets(spans: &[(u128, u128)], (from, to): (u128, u128)) -> bool {
    spans.iter().any(|&(a, b)| a <= to && from <= b)
}

impl AddressSet {
    /// The addresses of the given CIDR peers (other peers hold no addresses).
    pub fn of<'p>(peers: impl IntoIterator<Item = &'p Peer>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for peer in peers {
            match peer {
                Peer::Ipv4(net) => v4.push(v4_bounds(net)),
                Peer::Ipv6(net) => v6.push(v6_bounds(net)),
                Peer::Group(_) | Peer::PrefixList(_) => {}
            }
        }
        Self {
            v4: normalised(v4),
            v6: normalised(v6),
        }
    }

    /// Every public address of both families (module docs).
    pub fn internet() -> Self {
        let private: Vec<Peer> = NOT_INTERNET
            .iter()
            .filter_map(|text| Peer::cidr(text, "").ok())
            .collect();
        let private = Self::of(&private);
        Self {
            v4: complement(&private.v4, u128::from(u32::MAX)),
            v6: complement(&private.v6, u128::MAX),
        }
    }

    /// The union of two sets.
    pub(crate) fn union(&self, other: &AddressSet) -> Self {
        Self {
            v4: normalised(self.v4.iter().chain(&other.v4).copied().collect()),
            v6: normalised(self.v6.iter().chain(&other.v6).copied().collect()),
        }
    }

    /// True when the CIDR peer holds an address of the set (other peers hold none).
    pub(crate) fn meets(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Ipv4(net) => meets(&self.v4, v4_bounds(net)),
            Peer::Ipv6(net) => meets(&self.v6, v6_bounds(net)),
            Peer::Group(_) | Peer::PrefixList(_) => false,
        }
    }

    /// True when the two sets share an address.
    pub(crate) fn meets_set(&self, other: &AddressSet) -> bool {
        other.v4.iter().any(|span| meets(&self.v4, *span))
            || other.v6.iter().any(|span| meets(&self.v6, *span))
    }
}

/// What a forbid entry forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forbids {
    /// Traffic in `direction` overlapping one of `traffic`, from a peer reaching `sources`.
    Exposure {
        /// The direction the entry applies to; rules of the other direction never match.
        direction: Direction,
        /// The forbidden traffic; a rule is caught when its traffic overlaps any of these.
        traffic: Vec<Traffic>,
        /// The forbidden addresses; a rule is caught when its peer (a CIDR, or a prefix list's
        /// entries) holds any of them.
        sources: AddressSet,
        /// The sources as the document wrote them, for the verdict.
        written: String,
    },
    /// Every rule, both directions, of a VPC's default group (Security Hub EC2.2).
    DefaultGroupRules,
}

/// One forbid entry: a name (`forbid[0]`, or a preset's) and what it forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbid {
    /// The entry's name in verdicts: `forbid[<index>]` for a written entry, or the preset's
    /// (`security-hub-ec2-13`, …).
    pub name: String,
    /// What the entry forbids.
    pub forbids: Forbids,
}

impl fmt::Display for Forbid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.forbids {
            Forbids::DefaultGroupRules => {
                write!(
                    f,
                    "{}: the default security group holds no rules",
                    self.name
                )
            }
            Forbids::Exposure {
                direction,
                traffic,
                written,
                ..
            } => {
                let traffic: Vec<String> = traffic.iter().map(ToString::to_string).collect();
                let traffic = match traffic.len() {
                    0..=4 => traffic.join(", "),
                    n => format!("{}, … ({n} ranges)", traffic[..3].join(", ")),
                };
                write!(f, "{}: {direction} {traffic} from {written}", self.name)
            }
        }
    }
}

impl Forbid {
    /// The traffic this entry forbids in `direction` (none for other directions; every kind
    /// for the default group's rules).
    pub(crate) fn traffic_meets(&self, direction: Direction, traffic: &Traffic) -> bool {
        match &self.forbids {
            Forbids::DefaultGroupRules => true,
            Forbids::Exposure {
                direction: d,
                traffic: forbidden,
                ..
            } => *d == direction && forbidden.iter().any(|t| t.overlaps(traffic)),
        }
    }
}

/// Security Hub EC2.19's high-risk ports.
pub(crate) const HIGH_RISK_PORTS: [u16; 24] = [
    20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432, 5500,
    5601, 8080, 8088, 8888, 9200, 9300,
];

/// The presets' names, each the Security Hub control it enforces.
pub(crate) const PRESETS: [&str; 5] = [
    "security-hub-ec2-2",
    "security-hub-ec2-13",
    "security-hub-ec2-14",
    "security-hub-ec2-18",
    "security-hub-ec2-19",
];

/// A preset as the policy lists it: its name, or EC2.18 with the ports it authorises.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum PresetDocument {
    Named(String),
    Authorized(AuthorizedDocument),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizedDocument {
    preset: String,
    #[serde(default)]
    tcp_ports: Option<Vec<String>>,
    #[serde(default)]
    udp_ports: Option<Vec<String>>,
}

fn ingress_from_internet(name: &str, traffic: Vec<Traffic>) -> Forbid {
    Forbid {
        name: name.to_string(),
        forbids: Forbids::Exposure {
            direction: Direction::Ingress,
            traffic,
            sources: AddressSet::internet(),
            written: INTERNET.to_string(),
        },
    }
}

/// Reads a list of ports and ranges (`"80"`, `"8000-8100"`).
fn port_ranges(texts: &[String], field: &str) -> Result<Vec<PortRange>, ParseError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let text = text.trim();
            let bad = || {
                ParseError::new(
                    format!("{field}[{i}]"),
                    format!("{text:?} is not a port or range"),
                )
            };
            let (from, to) = text.split_once('-').unwrap_or((text, text));
            let from = from.trim().parse::<u16>().map_err(|_| bad())?;
            let to = to.trim().parse::<u16>().map_err(|_| bad())?;
            PortRange::new(from, to).map_err(|e| e.within(&format!("{field}[{i}]")))
        })
        .collect()
}

/// The ports of `0-65535` outside `allowed`.
fn other_ports(allowed: &[PortRange]) -> Vec<PortRange> {
    let spans: Vec<(u128, u128)> = allowed
        .iter()
        .map(|r| (u128::from(r.from), u128::from(r.to)))
        .collect();
    complement(&normalised(spans), u128::from(u16::MAX))
        .into_iter()
        .filter_map(|(from, to)| {
            let from = u16::try_from(from).ok()?;
            let to = u16::try_from(to).ok()?;
            PortRange::new(from, to).ok()
        })
        .collect()
}

impl PresetDocument {
    /// The forbid entry the preset stands for.
    pub(crate) fn compile(&self) -> Result<Forbid, ParseError> {
        let (name, tcp, udp) = match self {
            PresetDocument::Named(name) => (name.trim(), None, None),
            PresetDocument::Authorized(doc) => (
                doc.preset.trim(),
                doc.tcp_ports.as_ref(),
                doc.udp_ports.as_ref(),
            ),
        };
        if (tcp.is_some() || udp.is_some()) && name != "security-hub-ec2-18" {
            return Err(ParseError::new(
                "",
                format!("{name} takes no ports: only security-hub-ec2-18 lists authorised ports"),
            ));
        }
        let single = |port: u16| Traffic::Tcp(PortRange::single(port));
        Ok(match name {
            "security-hub-ec2-2" => Forbid {
                name: name.to_string(),
                forbids: Forbids::DefaultGroupRules,
            },
            "security-hub-ec2-13" => ingress_from_internet(name, vec![single(22)]),
            "security-hub-ec2-14" => ingress_from_internet(name, vec![single(3389)]),
            "security-hub-ec2-19" => {
                ingress_from_internet(name, HIGH_RISK_PORTS.iter().map(|p| single(*p)).collect())
            }
            "security-hub-ec2-18" => {
                let default_tcp = vec!["80".to_string(), "443".to_string()];
                let tcp = port_ranges(tcp.unwrap_or(&default_tcp), "tcp_ports")?;
                let udp = port_ranges(udp.map_or(&[][..], Vec::as_slice), "udp_ports")?;
                let traffic = other_ports(&tcp)
                    .into_iter()
                    .map(Traffic::Tcp)
                    .chain(other_ports(&udp).into_iter().map(Traffic::Udp))
                    .collect();
                ingress_from_internet(name, traffic)
            }
            other => {
                return Err(ParseError::new(
                    "",
                    format!(
                        "{other:?} is not a preset; the presets are {}",
                        PRESETS.join(", ")
                    ),
                ))
            }
        })
    }
}

/// Reads a forbid entry's source: `internet` or a CIDR (a group or list names no addresses).
pub(crate) fn forbidden_source(text: &str) -> Result<AddressSet, ParseError> {
    let text = text.trim();
    if text == INTERNET {
        return Ok(AddressSet::internet());
    }
    if text.starts_with("sg-") || text.starts_with("pl-") {
        return Err(ParseError::new(
            "",
            format!("{text}: a forbid entry names addresses (a CIDR or \"internet\"), not a group or list"),
        ));
    }
    Peer::cidr(text, "").map(|peer| AddressSet::of([&peer]))
}

/// True when the CIDR peer holds a public address (the module's `internet`).
pub(crate) fn reaches_internet(peer: &Peer) -> bool {
    AddressSet::internet().meets(peer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::policy::testing::{approval, rule};
    use crate::policy::{Exemption, Grants, ListEntries, Policy, Verdict};
    use crate::rule::{Rule, RuleInfo, RuleSet};

    fn cidr(text: &str) -> Peer {
        Peer::cidr(text, "").unwrap()
    }

    fn judge(policy: &Policy, text: &str, grants: &Grants) -> Verdict {
        policy.judge("sg-1", &rule(text), &RuleInfo::default(), grants, 0)
    }

    const SSH_FROM_INTERNET: &str =
        r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": ["internet"]}]}"#;

    #[test]
    fn the_internet_is_every_address_outside_the_private_and_local_ranges() {
        for public in [
            "0.0.0.0/0",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "8.8.8.8",
            "203.0.113.7/32",
            "172.15.255.255",
            "172.32.0.0",
            "100.128.0.0",
            "9.0.0.0/8",
            "192.169.0.0",
            "::/0",
            "::/1",
            "2001:db8::/32",
            "2600::1",
            "fe00::/9",
        ] {
            assert!(reaches_internet(&cidr(public)), "{public} is public");
        }
        for private in [
            "10.0.0.0/8",
            "10.9.8.7",
            "172.16.0.0/12",
            "172.31.255.255",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.1",
            "169.254.169.254",
            "::1",
            "fe80::/10",
            "fc00::/7",
            "fd12:3456::/32",
        ] {
            assert!(!reaches_internet(&cidr(private)), "{private} is not public");
        }
        assert!(!reaches_internet(&Peer::group("sg-9", None)));
    }

    #[test]
    fn traffic_overlaps_when_one_packet_is_admitted_by_both() {
        let t = |text: &str| text.parse::<Traffic>().unwrap();
        assert!(t("tcp/0-65535").overlaps(&t("tcp/22")));
        assert!(t("tcp/20-22").overlaps(&t("tcp/22-30")));
        assert!(!t("tcp/23-30").overlaps(&t("tcp/22")));
        assert!(!t("udp/22").overlaps(&t("tcp/22")));
        assert!(t("all").overlaps(&t("tcp/22")) && t("tcp/22").overlaps(&t("all")));
        assert!(t("icmp/8").overlaps(&t("icmp/8:0")) && t("icmp").overlaps(&t("icmp/3:1")));
        assert!(t("icmp/8:0").overlaps(&t("icmp/8")) && t("icmp/3:1").overlaps(&t("icmp")));
        assert!(!t("icmp/8").overlaps(&t("icmp/0")) && !t("icmp/8:0").overlaps(&t("icmp/8:1")));
        assert!(!t("icmp").overlaps(&t("icmpv6")) && t("50").overlaps(&t("50")));
        assert!(!t("50").overlaps(&t("51")));
    }

    #[test]
    fn a_forbid_only_policy_reverts_what_is_forbidden_and_keeps_everything_else() {
        let policy = Policy::from_json(SSH_FROM_INTERNET).unwrap();
        let none = Grants::default();
        let forbidden = "forbidden by forbid[0]: ingress tcp/22 from internet";
        for exposed in [
            "tcp/22 0.0.0.0/0",
            "tcp/22 ::/0",
            "tcp/0-65535 0.0.0.0/1",
            "tcp/0-65535 128.0.0.0/1",
            "all ::/1",
            "tcp/20-25 203.0.113.7/32",
            "tcp/22 10.0.0.0/7",
        ] {
            assert_eq!(
                judge(&policy, exposed, &none).to_string(),
                forbidden,
                "{exposed}"
            );
        }
        for kept in [
            "tcp/22 10.0.0.0/8",
            "tcp/443 0.0.0.0/0",
            "udp/22 0.0.0.0/0",
            "tcp/22 sg-9",
            "egress all 0.0.0.0/0",
            "icmp 0.0.0.0/0",
        ] {
            assert_eq!(judge(&policy, kept, &none), Verdict::NotForbidden, "{kept}");
        }
        assert!(policy.forbids_only());
    }

    #[test]
    fn forbid_beats_allow_and_exemptions_and_only_an_approval_of_the_address_beats_forbid() {
        let policy = Policy::from_json(
            r#"{"allow": [{"protocol": "all", "sources": ["0.0.0.0/0"]}],
                "presets": ["security-hub-ec2-13"]}"#,
        )
        .unwrap();
        assert!(!policy.forbids_only());
        let none = Grants::default();
        assert_eq!(
            judge(&policy, "tcp/22 0.0.0.0/0", &none),
            Verdict::Forbidden("security-hub-ec2-13: ingress tcp/22 from internet".into())
        );
        assert!(matches!(
            judge(&policy, "tcp/443 0.0.0.0/0", &none),
            Verdict::Allowed(_)
        ));
        assert_eq!(judge(&policy, "udp/53 sg-9", &none), Verdict::Violates);

        let approved = |text: &str| approval("office", text, 10);
        let mut grants = Grants {
            approvals: vec![approved("tcp/22 198.51.100.0/24"), approved("tcp/22 pl-x")],
            exemptions: vec![Exemption {
                group_id: "sg-1".into(),
                rule: rule("tcp/22 203.0.113.7/32"),
                rule_id: None,
                by: "arn:aws:iam::111122223333:role/NetworkAdmin".into(),
                reason: "event-1".into(),
                made_at: None,
            }],
            ..Grants::default()
        };
        grants.lists.insert(
            "pl-x",
            ListEntries::Customer(BTreeSet::from([cidr("0.0.0.0/0")])),
        );
        assert_eq!(
            judge(&policy, "tcp/22 198.51.100.0/24", &grants),
            Verdict::Approved("office".into())
        );
        assert!(matches!(
            judge(&policy, "tcp/22 203.0.113.7/32", &grants),
            Verdict::Forbidden(_)
        ));
        assert!(matches!(
            judge(&policy, "tcp/22 pl-x", &grants),
            Verdict::Forbidden(_)
        ));
        // Expired, the approval keeps nothing.
        let late = policy.judge(
            "sg-1",
            &rule("tcp/22 198.51.100.0/24"),
            &RuleInfo::default(),
            &grants,
            11,
        );
        assert!(matches!(late, Verdict::Forbidden(_)));
    }

    #[test]
    fn a_rule_on_a_prefix_list_is_forbidden_by_what_the_list_holds() {
        let policy = Policy::from_json(SSH_FROM_INTERNET).unwrap();
        let with = |entries: ListEntries| {
            let mut grants = Grants::default();
            grants.lists.insert("pl-x", entries);
            grants
        };
        let private = with(ListEntries::Customer(BTreeSet::from([cidr("10.0.0.0/8")])));
        assert_eq!(
            judge(&policy, "tcp/22 pl-x", &private),
            Verdict::NotForbidden
        );
        let public = with(ListEntries::Customer(BTreeSet::from([
            cidr("10.0.0.0/8"),
            cidr("0.0.0.0/1"),
        ])));
        assert!(matches!(
            judge(&policy, "tcp/22 pl-x", &public),
            Verdict::Forbidden(_)
        ));
        assert!(matches!(
            judge(&policy, "tcp/22 pl-x", &with(ListEntries::AwsManaged)),
            Verdict::Forbidden(_)
        ));
        assert_eq!(
            judge(&policy, "tcp/22 pl-x", &Grants::default()),
            Verdict::ListUnreadable {
                list: "pl-x".into(),
                reason: "not read".into()
            }
        );
        assert_eq!(
            judge(
                &policy,
                "tcp/22 pl-x",
                &with(ListEntries::Unreadable("AccessDenied".into()))
            ),
            Verdict::ListUnreadable {
                list: "pl-x".into(),
                reason: "AccessDenied".into()
            }
        );
        // An AWS-managed list is public address space: forbidden by a source reaching the
        // internet in either family, not by a private one.
        let managed = with(ListEntries::AwsManaged);
        for (source, forbidden) in [("0.0.0.0/0", true), ("::/0", true), ("10.0.0.0/8", false)] {
            let only = Policy::from_json(&format!(
                r#"{{"forbid": [{{"protocol": "tcp", "ports": "22", "sources": ["{source}"]}}]}}"#
            ))
            .unwrap();
            assert_eq!(
                !judge(&only, "tcp/22 pl-x", &managed).keeps(),
                forbidden,
                "{source}"
            );
        }
        // A list whose traffic no entry forbids needs no read.
        assert_eq!(
            judge(&policy, "tcp/443 pl-x", &Grants::default()),
            Verdict::NotForbidden
        );
    }

    #[test]
    fn each_preset_does_what_its_control_says() {
        let judge_with = |preset: &str, text: &str| {
            let policy = Policy::from_json(&format!(r#"{{"presets": [{preset}]}}"#)).unwrap();
            judge(&policy, text, &Grants::default()).keeps()
        };
        let ec2_19 = r#""security-hub-ec2-19""#;
        for port in HIGH_RISK_PORTS {
            assert!(
                !judge_with(ec2_19, &format!("tcp/{port} 0.0.0.0/0")),
                "{port}"
            );
            assert!(
                judge_with(ec2_19, &format!("tcp/{port} 10.0.0.0/8")),
                "{port}"
            );
        }
        assert!(judge_with(ec2_19, "tcp/443 0.0.0.0/0") && judge_with(ec2_19, "tcp/24 ::/0"));
        assert!(
            !judge_with(ec2_19, "tcp/1000-2000 ::/0"),
            "spans 1433 and 1434"
        );
        assert!(!judge_with(r#""security-hub-ec2-14""#, "tcp/3389 ::/0"));
        assert!(judge_with(r#""security-hub-ec2-14""#, "tcp/22 ::/0"));
        assert!(!judge_with(r#""security-hub-ec2-13""#, "tcp/22 ::/0"));
        assert!(judge_with(r#""security-hub-ec2-13""#, "tcp/3389 ::/0"));

        let ec2_18 = r#""security-hub-ec2-18""#;
        assert!(judge_with(ec2_18, "tcp/80 0.0.0.0/0") && judge_with(ec2_18, "tcp/443 ::/0"));
        for open in [
            "tcp/8443 0.0.0.0/0",
            "udp/53 0.0.0.0/0",
            "all ::/0",
            "tcp/80-443 0.0.0.0/0",
        ] {
            assert!(!judge_with(ec2_18, open), "{open}");
        }
        assert!(judge_with(ec2_18, "tcp/8443 10.0.0.0/8") && judge_with(ec2_18, "icmp 0.0.0.0/0"));
        // Authorised ports overlapping, nested or starting at 0 are one set of ports.
        let nested = r#"{"preset": "security-hub-ec2-18", "tcp_ports": ["80-100", "85", "0-9"]}"#;
        assert!(judge_with(nested, "tcp/90 0.0.0.0/0") && judge_with(nested, "tcp/0-9 ::/0"));
        assert!(!judge_with(nested, "tcp/101 0.0.0.0/0") && !judge_with(nested, "tcp/10 ::/0"));
        let custom = r#"{"preset": "security-hub-ec2-18", "tcp_ports": ["443", "8000-8100"], "udp_ports": ["53"]}"#;
        assert!(judge_with(custom, "tcp/8000-8100 0.0.0.0/0") && judge_with(custom, "udp/53 ::/0"));
        assert!(!judge_with(custom, "tcp/80 0.0.0.0/0") && !judge_with(custom, "udp/54 ::/0"));
    }

    #[test]
    fn the_default_group_preset_forbids_every_rule_of_a_default_group_in_both_directions() {
        let policy =
            Policy::from_json(r#"{"presets": ["security-hub-ec2-2"], "directions": ["ingress"]}"#)
                .unwrap();
        assert!(policy.forbids_default_group_rules());
        assert!(
            policy.guards_direction(Direction::Egress),
            "EC2.2 judges egress too"
        );
        let mut grants = Grants::default();
        grants.default_groups.insert("sg-1".into());
        let rules: RuleSet = ["all sg-1", "egress all 0.0.0.0/0", "tcp/22 10.0.0.0/8"]
            .iter()
            .map(|t| (rule(t), RuleInfo::default()))
            .collect();
        let plan = policy.plan("sg-1", &rules, &grants, 0);
        assert_eq!(plan.revoke.len(), 3);
        assert!(plan.reasons.iter().all(|(_, v)| v.to_string()
            == "forbidden by security-hub-ec2-2: the default security group holds no rules"));
        let other = policy.plan("sg-2", &rules, &grants, 0);
        assert!(other.revoke.is_empty() && other.kept.len() == 3);
    }

    #[test]
    fn a_forbid_entry_or_preset_that_cannot_be_read_is_refused_naming_it() {
        for (document, field) in [
            (
                r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": ["sg-1"]}]}"#,
                "forbid[0].sources[0]",
            ),
            (
                r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": ["internets"]}]}"#,
                "forbid[0].sources[0]",
            ),
            (
                r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": []}]}"#,
                "forbid[0].sources",
            ),
            (
                r#"{"forbid": [{"protocol": "tcp", "port": "22", "sources": ["internet"]}]}"#,
                "",
            ),
            (r#"{"presets": ["security-hub-ec2-99"]}"#, "presets[0]"),
            (
                r#"{"presets": ["security-hub-ec2-13", "security-hub-ec2-13"]}"#,
                "presets[1]",
            ),
            (
                r#"{"presets": [{"preset": "security-hub-ec2-13", "tcp_ports": ["22"]}]}"#,
                "presets[0]",
            ),
            (
                r#"{"presets": [{"preset": "security-hub-ec2-18", "tcp_ports": ["90-80"]}]}"#,
                "presets[0].tcp_ports[0]",
            ),
        ] {
            let error = Policy::from_json(document).unwrap_err();
            assert!(error.field.starts_with(field), "{document}: {error}");
        }
        for id in ["sg-1", "pl-1"] {
            let document = format!(
                r#"{{"forbid": [{{"protocol": "tcp", "ports": "22", "sources": ["{id}"]}}]}}"#
            );
            let error = Policy::from_json(&document).unwrap_err();
            assert!(error.reason.contains("not a group or list"), "{error}");
        }
        let facts = |name: Option<&str>| crate::policy::GroupFacts {
            name: name.map(str::to_string),
            ..Default::default()
        };
        assert!(facts(Some("default")).is_default());
        assert!(!facts(Some("db")).is_default() && !facts(None).is_default());
        let egress = Policy::from_json(
            r#"{"forbid": [{"protocol": "-1", "sources": ["0.0.0.0/0"], "direction": "egress"}], "directions": ["ingress"]}"#,
        )
        .unwrap();
        assert!(egress.guards_direction(Direction::Egress));
        assert!(!judge(&egress, "egress tcp/443 0.0.0.0/0", &Grants::default()).keeps());
        assert!(judge(&egress, "tcp/443 0.0.0.0/0", &Grants::default()).keeps());
    }

    fn any_forbid() -> impl Strategy<Value = Policy> {
        let source = prop_oneof![
            Just("internet".to_string()),
            (any::<[u8; 4]>(), 0u8..=32)
                .prop_map(|(o, len)| format!("{}/{len}", Ipv4Addr::from(o))),
            (any::<u128>(), 0u8..=128).prop_map(|(a, len)| format!("{}/{len}", Ipv6Addr::from(a))),
        ];
        (0u16..200, 0u16..50, proptest::collection::vec(source, 1..3)).prop_map(
            |(from, width, sources)| {
                let ports = format!("{from}-{}", from + width);
                let doc = serde_json::json!({"forbid": [
                    {"protocol": "tcp", "ports": ports, "sources": sources}]});
                Policy::from_json(&doc.to_string()).unwrap()
            },
        )
    }

    fn forbidden(policy: &Policy, traffic: Traffic, peer: Peer) -> bool {
        let rule = Rule::new(Direction::Ingress, traffic, peer);
        policy
            .forbidden("sg-1", &rule, &Grants::default())
            .is_some()
    }

    proptest! {
        /// A rule is forbidden exactly when one of the halves it splits into is: splitting a
        /// range never walks past a forbid entry, and never catches what the whole did not.
        #[test]
        fn a_forbid_match_never_depends_on_how_an_address_range_is_split(
            policy in any_forbid(),
            octets in any::<[u8; 4]>(),
            len in 0u8..32,
            v6 in any::<u128>(),
            len6 in 0u8..128,
            port in 0u16..260,
        ) {
            let traffic = Traffic::Tcp(PortRange::single(port));
            let net = Ipv4Net::new(octets.into(), len).unwrap().trunc();
            let halves = net.subnets(len + 1).unwrap();
            let mut halves = halves;
            let split = halves.any(|h| forbidden(&policy, traffic, Peer::Ipv4(h)));
            prop_assert_eq!(forbidden(&policy, traffic, Peer::Ipv4(net)), split);
            let net = Ipv6Net::new(v6.into(), len6).unwrap().trunc();
            let halves = net.subnets(len6 + 1).unwrap();
            let mut halves = halves;
            let split = halves.any(|h| forbidden(&policy, traffic, Peer::Ipv6(h)));
            prop_assert_eq!(forbidden(&policy, traffic, Peer::Ipv6(net)), split);
        }

        /// The same for ports: a range is forbidden exactly when one of its two parts is, and
        /// every protocol (`-1`, `all`) is forbidden wherever any port is.
        #[test]
        fn a_forbid_match_never_depends_on_how_a_port_range_is_split_or_spelled(
            policy in any_forbid(),
            from in 0u16..300,
            width in 1u16..300,
            cut in 0u16..300,
            octets in any::<[u8; 4]>(),
            len in 0u8..=32,
        ) {
            let to = from + width;
            let cut = from + cut % width;
            let peer = Peer::Ipv4(Ipv4Net::new(octets.into(), len).unwrap().trunc());
            let tcp = |a: u16, b: u16| Traffic::Tcp(PortRange::new(a, b).unwrap());
            let whole = forbidden(&policy, tcp(from, to), peer.clone());
            let parts = forbidden(&policy, tcp(from, cut), peer.clone())
                || forbidden(&policy, tcp(cut + 1, to), peer.clone());
            prop_assert_eq!(whole, parts);
            let any_port = forbidden(&policy, tcp(0, 65535), peer.clone());
            for spelled in ["-1", "all", "ALL"] {
                let all = Traffic::from_wire(spelled, None, None).unwrap();
                prop_assert_eq!(forbidden(&policy, all, peer.clone()), any_port);
            }
        }

        /// A prefix list is forbidden exactly when a rule from one of its entries would be.
        #[test]
        fn a_list_is_forbidden_exactly_when_one_of_its_entries_is(
            policy in any_forbid(),
            entries in proptest::collection::btree_set(
                (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, l)| Peer::Ipv4(Ipv4Net::new(o.into(), l).unwrap().trunc())),
                0..5),
            port in 0u16..260,
        ) {
            let traffic = Traffic::Tcp(PortRange::single(port));
            let mut grants = Grants::default();
            grants.lists.insert("pl-x", ListEntries::Customer(entries.clone()));
            let rule = Rule::new(Direction::Ingress, traffic, Peer::PrefixList("pl-x".into()));
            let listed = policy.forbidden("sg-1", &rule, &grants).is_some();
            let any_entry = entries.iter().any(|e| forbidden(&policy, traffic, e.clone()));
            prop_assert_eq!(listed, any_entry);
        }
    }
}
