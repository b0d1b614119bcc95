//! The JSON spellings AWS uses for permissions and security-group rules.
//!
//! The same `IpPermission` reaches us in three shapes:
//! - the EC2 API as JSON (`aws ec2 describe-security-groups`): PascalCase, plain arrays;
//! - CloudTrail `requestParameters` / `responseElements`: lower camel case, every collection
//!   wrapped as `{"items": [...]}`, an empty one written `{}`, peer groups under `groups`;
//! - AWS Config configuration items: lower camel case, plain arrays, peer groups under
//!   `userIdGroupPairs`, and IPv4 twice: legacy `ipRanges` strings beside `ipv4Ranges` objects.
//!
//! Each deserialises here into the neutral [`Permission`] / [`SecurityGroupRule`] defined
//! below, which expand into [`crate::rule`]'s atomic rules; nothing else in the crate sees a
//! spelling.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ParseError;
use crate::rule::{Direction, Peer, Rule, RuleInfo, RuleSet, Traffic};

/// An IPv4 or IPv6 range of a permission, as text, with its description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrEntry {
    /// The range as written (`CidrIp`, `CidrIpv6`, or a legacy `ipRanges` string); parsed and
    /// normalised only when the permission expands.
    pub cidr: String,
    /// The range's `Description`; `None` when it has none (legacy strings never do).
    pub description: Option<String>,
}

/// A security-group peer of a permission (`UserIdGroupPair`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupEntry {
    /// The peer group's id (`GroupId`, `sg-…`); `None` when the call named it by name alone,
    /// which expansion refuses.
    pub group_id: Option<String>,
    /// Only EC2-Classic and default-VPC calls name a peer group by name alone.
    pub group_name: Option<String>,
    /// The account that owns the peer group (`UserId`), when the source names it.
    pub owner: Option<String>,
    /// The pair's `Description`, when it has one.
    pub description: Option<String>,
}

/// A managed prefix list peer of a permission.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixListEntry {
    /// The list's id (`PrefixListId`, `pl-…`).
    pub prefix_list_id: String,
    /// The entry's `Description`, when it has one.
    pub description: Option<String>,
}

/// A permission (`IpPermission`) in neutral form: one protocol and port range, many peers.
/// Every wire shape parses into this; the AWS adapter converts it to and from the SDK's type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// `IpProtocol` as text: `tcp`, `udp`, `icmp`, `icmpv6`, a protocol number, or `-1` for
    /// every protocol. A number on the wire is kept as its digits.
    pub protocol: String,
    /// `FromPort`: the first port, or the ICMP type (`-1` is any); `None` where the protocol
    /// has no ports.
    pub from_port: Option<i64>,
    /// `ToPort`: the last port, or the ICMP code (`-1` is any); `None` where the protocol has
    /// no ports.
    pub to_port: Option<i64>,
    /// IPv4 peers (`IpRanges`). From AWS Config, the `ipv4Ranges` objects come first and the
    /// legacy `ipRanges` strings that repeat them after.
    pub ipv4_ranges: Vec<CidrEntry>,
    /// IPv6 peers (`Ipv6Ranges`).
    pub ipv6_ranges: Vec<CidrEntry>,
    /// Security-group peers (`UserIdGroupPairs`; `groups` in CloudTrail).
    pub groups: Vec<GroupEntry>,
    /// Managed prefix list peers (`PrefixListIds`).
    pub prefix_lists: Vec<PrefixListEntry>,
}

impl Permission {
    /// How many peers (CIDRs, groups, prefix lists) the permission names.
    pub(crate) fn peer_count(&self) -> usize {
        self.ipv4_ranges.len()
            + self.ipv6_ranges.len()
            + self.groups.len()
            + self.prefix_lists.len()
    }

    /// Expands into atomic rules. A permission with no peer at all is malformed: EC2 never
    /// reports one, and accepting it would hide a parse gap behind an empty set.
    pub(crate) fn expand_into(
        &self,
        direction: Direction,
        set: &mut RuleSet,
    ) -> Result<(), ParseError> {
        let traffic = Traffic::from_wire(&self.protocol, self.from_port, self.to_port)?;
        if self.peer_count() == 0 {
            return Err(ParseError::new(
                "ipRanges",
                "permission names no peer (no CIDR, group or prefix list)",
            ));
        }
        let mut add = |peer: Peer, description: &Option<String>| {
            set.insert(
                Rule::new(direction, traffic, peer),
                RuleInfo {
                    description: description.clone().filter(|d| !d.is_empty()),
                    rule_id: None,
                },
            );
        };
        for (i, range) in self.ipv4_ranges.iter().enumerate() {
            let peer = Peer::cidr(&range.cidr, &format!("ipRanges[{i}].cidrIp"))?;
            add(peer, &range.description);
        }
        for (i, range) in self.ipv6_ranges.iter().enumerate() {
            let peer = Peer::cidr(&range.cidr, &format!("ipv6Ranges[{i}].cidrIpv6"))?;
            add(peer, &range.description);
        }
        for (i, group) in self.groups.iter().enumerate() {
            let id = group.group_id.clone().ok_or_else(|| {
                ParseError::new(
                    format!("groups[{i}].groupId"),
                    "a group peer named only by name cannot be compared; resolve it first",
                )
            })?;
            add(Peer::group(id, group.owner.clone()), &group.description);
        }
        for list in &self.prefix_lists {
            add(
                Peer::PrefixList(list.prefix_list_id.clone()),
                &list.description,
            );
        }
        Ok(())
    }
}

/// A security-group rule as EC2's `DescribeSecurityGroupRules`, CloudTrail's
/// `securityGroupRuleSet` and `ModifySecurityGroupRules` report it: one peer, with an id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityGroupRule {
    /// `SecurityGroupRuleId` (`sgr-…`), when the source gives it.
    pub rule_id: Option<String>,
    /// `GroupId`: the group the rule belongs to, when the source gives it. [`Self::to_rule`]
    /// does not read it.
    pub group_id: Option<String>,
    /// `IsEgress`: true for an egress rule; absent on the wire reads as ingress.
    pub is_egress: bool,
    /// `IpProtocol` as text, as in [`Permission::protocol`].
    pub protocol: String,
    /// `FromPort`: the first port, or the ICMP type; `None` where the protocol has no ports.
    pub from_port: Option<i64>,
    /// `ToPort`: the last port, or the ICMP code; `None` where the protocol has no ports.
    pub to_port: Option<i64>,
    /// `CidrIpv4`, when the peer is an IPv4 range.
    pub cidr_ipv4: Option<String>,
    /// `CidrIpv6`, when the peer is an IPv6 range.
    pub cidr_ipv6: Option<String>,
    /// `PrefixListId` (`pl-…`), when the peer is a managed prefix list.
    pub prefix_list_id: Option<String>,
    /// The peer group, when the peer is one: from `ReferencedGroupInfo` (id and owner), or
    /// from `ModifySecurityGroupRules`' `ReferencedGroupId` (id alone).
    pub referenced_group: Option<GroupEntry>,
    /// `Description`; [`Self::to_rule`] reads an empty one as none.
    pub description: Option<String>,
}

impl SecurityGroupRule {
    /// The atomic rule and its info. Exactly one peer must be named.
    pub fn to_rule(&self) -> Result<(Rule, RuleInfo), ParseError> {
        let direction = if self.is_egress {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let traffic = Traffic::from_wire(&self.protocol, self.from_port, self.to_port)?;
        let mut peers = Vec::new();
        if let Some(cidr) = &self.cidr_ipv4 {
            peers.push(Peer::cidr(cidr, "cidrIpv4")?);
        }
        if let Some(cidr) = &self.cidr_ipv6 {
            peers.push(Peer::cidr(cidr, "cidrIpv6")?);
        }
        if let Some(id) = &self.prefix_list_id {
            peers.push(Peer::PrefixList(id.clone()));
        }
        if let Some(group) = &self.referenced_group {
            let id = group
                .group_id
                .clone()
                .ok_or_else(|| ParseError::missing("referencedGroupInfo.groupId"))?;
            peers.push(Peer::group(id, group.owner.clone()));
        }
        let peer = match (peers.pop(), peers.is_empty()) {
            (Some(peer), true) => peer,
            (None, _) => return Err(ParseError::new("cidrIpv4", "rule names no peer")),
            (Some(_), false) => {
                return Err(ParseError::new("cidrIpv4", "rule names more than one peer"))
            }
        };
        Ok((
            Rule::new(direction, traffic, peer),
            RuleInfo {
                description: self.description.clone().filter(|d| !d.is_empty()),
                rule_id: self.rule_id.clone(),
            },
        ))
    }
}

/// A collection in any of AWS's spellings: `[...]`, `{"items": [...]}`, `{}` or `null`.
pub(crate) fn collection<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let items = match Value::deserialize(deserializer)? {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("items") {
            None if map.is_empty() => return Ok(Vec::new()),
            Some(Value::Array(items)) if map.is_empty() => items,
            Some(Value::Null) if map.is_empty() => return Ok(Vec::new()),
            _ => {
                return Err(D::Error::custom(
                    "expected a list, {\"items\": [...]} or {}",
                ))
            }
        },
        other => {
            return Err(D::Error::custom(format!(
                "expected a list, found {}",
                kind_of(&other)
            )))
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| T::deserialize(item).map_err(|e| D::Error::custom(format!("[{i}]: {e}"))))
        .collect()
}

/// A protocol written as text (`"tcp"`, `"-1"`) or, in some producers, as a number.
fn protocol_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(D::Error::custom(format!(
            "expected a protocol, found {}",
            kind_of(&other)
        ))),
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Ipv4Range {
    Legacy(String),
    Entry {
        #[serde(rename = "cidrIp", alias = "CidrIp")]
        cidr: String,
        #[serde(default, alias = "Description")]
        description: Option<String>,
    },
}

#[derive(Deserialize)]
struct Ipv6Range {
    #[serde(rename = "cidrIpv6", alias = "CidrIpv6")]
    cidr: String,
    #[serde(default, alias = "Description")]
    description: Option<String>,
}

#[derive(Deserialize)]
struct WireGroup {
    #[serde(default, rename = "groupId", alias = "GroupId")]
    group_id: Option<String>,
    #[serde(default, rename = "groupName", alias = "GroupName")]
    group_name: Option<String>,
    #[serde(default, rename = "userId", alias = "UserId")]
    user_id: Option<String>,
    #[serde(default, alias = "Description")]
    description: Option<String>,
}

impl From<WireGroup> for GroupEntry {
    fn from(g: WireGroup) -> Self {
        GroupEntry {
            group_id: g.group_id,
            group_name: g.group_name,
            owner: g.user_id,
            description: g.description,
        }
    }
}

#[derive(Deserialize)]
struct WirePrefixList {
    #[serde(rename = "prefixListId", alias = "PrefixListId")]
    id: String,
    #[serde(default, alias = "Description")]
    description: Option<String>,
}

#[derive(Deserialize)]
struct WirePermission {
    #[serde(
        default,
        rename = "ipProtocol",
        alias = "IpProtocol",
        deserialize_with = "protocol_text"
    )]
    protocol: Option<String>,
    #[serde(default, rename = "fromPort", alias = "FromPort")]
    from_port: Option<i64>,
    #[serde(default, rename = "toPort", alias = "ToPort")]
    to_port: Option<i64>,
    #[serde(
        default,
        rename = "ipRanges",
        alias = "IpRanges",
        deserialize_with = "collection"
    )]
    ip_ranges: Vec<Ipv4Range>,
    #[serde(default, rename = "ipv4Ranges", deserialize_with = "collection")]
    ipv4_ranges: Vec<Ipv4Range>,
    #[serde(
        default,
        rename = "ipv6Ranges",
        alias = "Ipv6Ranges",
        deserialize_with = "collection"
    )]
    ipv6_ranges: Vec<Ipv6Range>,
    #[serde(
        default,
        rename = "groups",
        alias = "userIdGroupPairs",
        alias = "UserIdGroupPairs",
        deserialize_with = "collection"
    )]
    groups: Vec<WireGroup>,
    #[serde(
        default,
        rename = "prefixListIds",
        alias = "PrefixListIds",
        deserialize_with = "collection"
    )]
    prefix_lists: Vec<WirePrefixList>,
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WirePermission::deserialize(deserializer)?;
        let protocol = wire
            .protocol
            .ok_or_else(|| D::Error::custom("ipProtocol: missing"))?;
        // Config repeats every IPv4 range as a legacy string; the rule set dedupes them, and
        // the object form (which carries the description) is listed first so it wins.
        let ipv4_ranges = wire
            .ipv4_ranges
            .into_iter()
            .chain(wire.ip_ranges)
            .map(|range| match range {
                Ipv4Range::Legacy(cidr) => CidrEntry {
                    cidr,
                    description: None,
                },
                Ipv4Range::Entry { cidr, description } => CidrEntry { cidr, description },
            })
            .collect();
        Ok(Permission {
            protocol,
            from_port: wire.from_port,
            to_port: wire.to_port,
            ipv4_ranges,
            ipv6_ranges: wire
                .ipv6_ranges
                .into_iter()
                .map(|r| CidrEntry {
                    cidr: r.cidr,
                    description: r.description,
                })
                .collect(),
            groups: wire.groups.into_iter().map(GroupEntry::from).collect(),
            prefix_lists: wire
                .prefix_lists
                .into_iter()
                .map(|p| PrefixListEntry {
                    prefix_list_id: p.id,
                    description: p.description,
                })
                .collect(),
        })
    }
}

/// A list of permissions in any collection spelling.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Permissions(#[serde(deserialize_with = "collection")] pub Vec<Permission>);

#[derive(Deserialize)]
struct WireReferencedGroup {
    #[serde(default, rename = "groupId", alias = "GroupId")]
    group_id: Option<String>,
    #[serde(default, rename = "userId", alias = "UserId")]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct WireSecurityGroupRule {
    #[serde(default, rename = "securityGroupRuleId", alias = "SecurityGroupRuleId")]
    rule_id: Option<String>,
    #[serde(default, rename = "groupId", alias = "GroupId")]
    group_id: Option<String>,
    #[serde(default, rename = "isEgress", alias = "IsEgress")]
    is_egress: bool,
    #[serde(
        default,
        rename = "ipProtocol",
        alias = "IpProtocol",
        deserialize_with = "protocol_text"
    )]
    protocol: Option<String>,
    #[serde(default, rename = "fromPort", alias = "FromPort")]
    from_port: Option<i64>,
    #[serde(default, rename = "toPort", alias = "ToPort")]
    to_port: Option<i64>,
    #[serde(default, rename = "cidrIpv4", alias = "CidrIpv4")]
    cidr_ipv4: Option<String>,
    #[serde(default, rename = "cidrIpv6", alias = "CidrIpv6")]
    cidr_ipv6: Option<String>,
    #[serde(default, rename = "prefixListId", alias = "PrefixListId")]
    prefix_list_id: Option<String>,
    #[serde(default, rename = "referencedGroupInfo", alias = "ReferencedGroupInfo")]
    referenced_group: Option<WireReferencedGroup>,
    /// `ModifySecurityGroupRules` names the peer group by id alone.
    #[serde(default, rename = "referencedGroupId", alias = "ReferencedGroupId")]
    referenced_group_id: Option<String>,
    #[serde(default, alias = "Description")]
    description: Option<String>,
}

impl<'de> Deserialize<'de> for SecurityGroupRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireSecurityGroupRule::deserialize(deserializer)?;
        let referenced_group = match (wire.referenced_group, wire.referenced_group_id) {
            (Some(info), _) => Some(GroupEntry {
                group_id: info.group_id,
                group_name: None,
                owner: info.user_id,
                description: None,
            }),
            (None, Some(id)) => Some(GroupEntry {
                group_id: Some(id),
                ..GroupEntry::default()
            }),
            (None, None) => None,
        };
        Ok(SecurityGroupRule {
            rule_id: wire.rule_id,
            group_id: wire.group_id,
            is_egress: wire.is_egress,
            protocol: wire
                .protocol
                .ok_or_else(|| D::Error::custom("ipProtocol: missing"))?,
            from_port: wire.from_port,
            to_port: wire.to_port,
            cidr_ipv4: wire.cidr_ipv4,
            cidr_ipv6: wire.cidr_ipv6,
            prefix_list_id: wire.prefix_list_id,
            referenced_group,
            description: wire.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_value;
    use crate::rule::{Direction, RuleSet};
    use serde_json::json;

    fn rules(value: Value) -> RuleSet {
        let Permissions(list) = from_value(&value).unwrap();
        let mut set = RuleSet::new();
        set.extend_permissions(Direction::Ingress, &list).unwrap();
        set
    }

    #[test]
    fn a_collection_is_a_list_an_items_object_or_nothing_else() {
        let count = |value: Value| from_value::<Permissions>(&value).map(|p| p.0.len());
        let ssh = json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22});
        assert_eq!(count(json!([ssh])).unwrap(), 1);
        assert_eq!(count(json!({"items": [ssh]})).unwrap(), 1);
        assert_eq!(count(json!({})).unwrap(), 0);
        assert_eq!(count(json!({"items": null})).unwrap(), 0);
        assert_eq!(count(Value::Null).unwrap(), 0);
        // Anything beside `items`, or an object without it, is not a collection.
        assert!(count(json!({"items": [ssh], "more": 1})).is_err());
        assert!(count(json!({"items": null, "more": 1})).is_err());
        assert!(count(json!({"elements": [ssh]})).is_err());
        assert!(count(json!("tcp")).is_err());
    }

    #[test]
    fn the_three_spellings_give_the_same_rules() {
        let ec2 = rules(json!([{
            "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
            "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "office"}],
            "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}],
            "UserIdGroupPairs": [{"GroupId": "sg-1", "UserId": "111122223333"}],
            "PrefixListIds": [{"PrefixListId": "pl-1"}]
        }]));
        let cloudtrail = rules(json!({"items": [{
            "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
            "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8", "description": "office"}]},
            "ipv6Ranges": {"items": [{"cidrIpv6": "2001:db8::/32"}]},
            "groups": {"items": [{"groupId": "sg-1"}]},
            "prefixListIds": {"items": [{"prefixListId": "pl-1"}]}
        }]}));
        let config = rules(json!([{
            "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
            "ipv4Ranges": [{"cidrIp": "10.0.0.0/8"}], "ipRanges": ["10.0.0.0/8"],
            "ipv6Ranges": [{"cidrIpv6": "2001:db8::/32"}],
            "userIdGroupPairs": [{"groupId": "sg-1", "userId": "111122223333"}],
            "prefixListIds": [{"prefixListId": "pl-1"}]
        }]));
        assert_eq!(ec2.len(), 4);
        let ids = |s: &RuleSet| s.rules().cloned().collect::<Vec<_>>();
        assert_eq!(ids(&ec2), ids(&cloudtrail));
        assert_eq!(ids(&ec2), ids(&config));
    }

    #[test]
    fn empty_collections_in_every_spelling() {
        for empty in [json!({}), json!([]), json!(null), json!({"items": []})] {
            let Permissions(list) = from_value(&empty).unwrap();
            assert!(list.is_empty());
        }
    }

    #[test]
    fn odd_collections_are_refused_with_the_field() {
        let err = from_value::<Permissions>(&json!({"things": []})).unwrap_err();
        assert!(err.reason.contains("items"), "{err}");
        let err = from_value::<Permissions>(&json!([{"fromPort": 1}])).unwrap_err();
        assert!(err.reason.contains("ipProtocol"), "{err}");
        let err = from_value::<Permissions>(&json!("tcp")).unwrap_err();
        assert!(err.reason.contains("a string"), "{err}");
    }

    #[test]
    fn modify_request_names_the_group_by_id() {
        let rule: SecurityGroupRule = from_value(&json!({
            "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "ReferencedGroupId": "sg-2", "Description": "db"
        }))
        .unwrap();
        assert_eq!(
            rule.to_rule().unwrap().0.to_string(),
            "ingress tcp/5432 sg-2"
        );
    }

    #[test]
    fn a_permission_without_peers_is_refused() {
        let p = Permission {
            protocol: "tcp".into(),
            from_port: Some(1),
            to_port: Some(1),
            ..Permission::default()
        };
        assert!(p
            .expand_into(Direction::Ingress, &mut RuleSet::new())
            .is_err());
    }

    #[test]
    fn a_security_group_rule_needs_exactly_one_peer() {
        let mut r = SecurityGroupRule {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            ..Default::default()
        };
        assert!(r.to_rule().is_err());
        r.cidr_ipv4 = Some("0.0.0.0/0".into());
        assert_eq!(
            r.to_rule().unwrap().0.to_string(),
            "ingress tcp/22 0.0.0.0/0"
        );
        r.cidr_ipv6 = Some("::/0".into());
        assert!(r.to_rule().is_err());
    }

    #[test]
    fn an_empty_rule_description_is_no_description() {
        let mut r = SecurityGroupRule {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            cidr_ipv4: Some("10.0.0.0/8".into()),
            description: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(r.to_rule().unwrap().1.description, None);
        r.description = Some("office".into());
        assert_eq!(
            r.to_rule().unwrap().1.description.as_deref(),
            Some("office")
        );
    }
}
