//! The policy document as written (`REVERT_POLICY`) and what it compiles into: the scope
//! of guarded groups, allow entries and their sources, and the document's fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{from_str, ParseError};
use crate::forbid::{forbidden_source, AddressSet, Forbid, Forbids, PresetDocument};
use crate::rule::{Direction, Peer, Rule, Traffic};

use super::*;

/// A tag condition: key and exact value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagCondition {
    /// The tag key.
    pub key: String,
    /// The value the tag must have, compared exactly (case and white space count).
    pub value: String,
}

impl TagCondition {
    /// True when `tags` carry the key with exactly this value.
    pub fn holds(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(&self.key) == Some(&self.value)
    }
}

/// What is known of a group when it is judged. Only the id is always known; name, VPC and
/// tags are read when the policy needs them ([`Policy::needs_group_details`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFacts {
    /// The group's id (`sg-…`): always known.
    pub group_id: String,
    /// The group's name (`GroupName`), when read; `default` marks a VPC's default group.
    pub name: Option<String>,
    /// The VPC the group is in, when read.
    pub vpc_id: Option<String>,
    /// The group's tags, key → value; empty when not read or when it has none.
    pub tags: BTreeMap<String, String>,
}

/// Which groups the policy guards. Every condition set must hold; an empty list or absent
/// tag matches every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `scope.group_ids`: when not empty, only these groups (`sg-…`) are guarded.
    pub group_ids: BTreeSet<String>,
    /// `scope.vpc_ids`: when not empty, only groups in these VPCs are guarded; a group whose
    /// VPC is not known is not.
    pub vpc_ids: BTreeSet<String>,
    /// `scope.tag`: when set, only groups carrying this tag and value are guarded.
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
pub(crate) const DEFAULT_GROUP_NAME: &str = "default";

impl Scope {
    /// True when no condition is set: every group in the account is guarded.
    pub fn is_everything(&self) -> bool {
        self.group_ids.is_empty() && self.vpc_ids.is_empty() && self.tag.is_none()
    }

    /// True when the group id alone puts the group outside the scope (no read needed).
    pub fn excludes_id(&self, group_id: &str) -> bool {
        !self.group_ids.is_empty() && !self.group_ids.contains(group_id)
    }

    /// True when the group is in scope: every condition that is set holds for it.
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

/// Where an allowed rule may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
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
pub(crate) struct AllowEntry {
    pub traffic: Traffic,
    pub sources: Vec<Source>,
    pub direction: Option<Direction>,
}

impl AllowEntry {
    pub(crate) fn covers(&self, rule: &Rule) -> bool {
        self.covers_from(rule, None)
    }

    /// Whether the entry covers `rule` made by a call from `caller` (what [`Source::Caller`]
    /// stands for).
    pub(super) fn covers_from(&self, rule: &Rule, caller: Option<IpAddr>) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

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

    proptest! {
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
