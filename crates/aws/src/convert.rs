//! SDK types to and from the core's neutral permission.
//!
//! The only place that knows both `aws_sdk_ec2::types::IpPermission` and
//! [`sgwarden_core::Permission`]; everything above works with core types.

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};
use sgwarden_core::wire::{CidrEntry, GroupEntry, Permission, PrefixListEntry};

pub(crate) fn permission_from_sdk(p: &IpPermission) -> Permission {
    Permission {
        protocol: p.ip_protocol().unwrap_or_default().to_string(),
        from_port: p.from_port().map(i64::from),
        to_port: p.to_port().map(i64::from),
        ipv4_ranges: p
            .ip_ranges()
            .iter()
            .map(|r| CidrEntry {
                cidr: r.cidr_ip().unwrap_or_default().to_string(),
                description: r.description().map(str::to_string),
            })
            .collect(),
        ipv6_ranges: p
            .ipv6_ranges()
            .iter()
            .map(|r| CidrEntry {
                cidr: r.cidr_ipv6().unwrap_or_default().to_string(),
                description: r.description().map(str::to_string),
            })
            .collect(),
        groups: p
            .user_id_group_pairs()
            .iter()
            .map(|g| GroupEntry {
                group_id: g.group_id().map(str::to_string),
                group_name: g.group_name().map(str::to_string),
                owner: g.user_id().map(str::to_string),
                description: g.description().map(str::to_string),
            })
            .collect(),
        prefix_lists: p
            .prefix_list_ids()
            .iter()
            .map(|l| PrefixListEntry {
                prefix_list_id: l.prefix_list_id().unwrap_or_default().to_string(),
                description: l.description().map(str::to_string),
            })
            .collect(),
    }
}

/// Ports outside `i32` cannot come from the core (it holds `u16` and ICMP `-1..=255`).
fn port(value: Option<i64>) -> Option<i32> {
    value.and_then(|v| i32::try_from(v).ok())
}

fn nonempty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// The core's neutral permission as the `IpPermission` that EC2's authorize and revoke calls
/// take: a list with no entry is left unset, and a port outside `i32` is dropped (the core
/// never holds one). Public for the test harness, which authorizes rules from their
/// CloudTrail spelling.
pub fn permission_to_sdk(p: &Permission) -> IpPermission {
    IpPermission::builder()
        .ip_protocol(&p.protocol)
        .set_from_port(port(p.from_port))
        .set_to_port(port(p.to_port))
        .set_ip_ranges(nonempty(
            p.ipv4_ranges
                .iter()
                .map(|r| {
                    IpRange::builder()
                        .cidr_ip(&r.cidr)
                        .set_description(r.description.clone())
                        .build()
                })
                .collect(),
        ))
        .set_ipv6_ranges(nonempty(
            p.ipv6_ranges
                .iter()
                .map(|r| {
                    Ipv6Range::builder()
                        .cidr_ipv6(&r.cidr)
                        .set_description(r.description.clone())
                        .build()
                })
                .collect(),
        ))
        .set_user_id_group_pairs(nonempty(
            p.groups
                .iter()
                .map(|g| {
                    UserIdGroupPair::builder()
                        .set_group_id(g.group_id.clone())
                        .set_group_name(g.group_name.clone())
                        .set_user_id(g.owner.clone())
                        .set_description(g.description.clone())
                        .build()
                })
                .collect(),
        ))
        .set_prefix_list_ids(nonempty(
            p.prefix_lists
                .iter()
                .map(|l| {
                    PrefixListId::builder()
                        .prefix_list_id(&l.prefix_list_id)
                        .set_description(l.description.clone())
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// A `DescribeSecurityGroupRules` rule as the core's neutral rule.
pub(crate) fn security_group_rule_from_sdk(
    r: &aws_sdk_ec2::types::SecurityGroupRule,
) -> sgwarden_core::wire::SecurityGroupRule {
    sgwarden_core::wire::SecurityGroupRule {
        rule_id: r.security_group_rule_id().map(str::to_string),
        group_id: r.group_id().map(str::to_string),
        is_egress: r.is_egress().unwrap_or(false),
        protocol: r.ip_protocol().unwrap_or_default().to_string(),
        from_port: r.from_port().map(i64::from),
        to_port: r.to_port().map(i64::from),
        cidr_ipv4: r.cidr_ipv4().map(str::to_string),
        cidr_ipv6: r.cidr_ipv6().map(str::to_string),
        prefix_list_id: r.prefix_list_id().map(str::to_string),
        referenced_group: r.referenced_group_info().map(|g| GroupEntry {
            group_id: g.group_id().map(str::to_string),
            group_name: None,
            owner: g.user_id().map(str::to_string),
            description: None,
        }),
        description: r.description().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgwarden_core::rule::{Direction, RuleSet};

    #[test]
    fn sdk_round_trip_keeps_every_peer_kind() {
        let core = Permission {
            protocol: "tcp".into(),
            from_port: Some(443),
            to_port: Some(443),
            ipv4_ranges: vec![CidrEntry {
                cidr: "10.0.0.0/8".into(),
                description: Some("office".into()),
            }],
            ipv6_ranges: vec![CidrEntry {
                cidr: "2001:db8::/32".into(),
                description: None,
            }],
            groups: vec![GroupEntry {
                group_id: Some("sg-1".into()),
                owner: Some("111122223333".into()),
                ..GroupEntry::default()
            }],
            prefix_lists: vec![PrefixListEntry {
                prefix_list_id: "pl-1".into(),
                description: None,
            }],
        };
        let back = permission_from_sdk(&permission_to_sdk(&core));
        assert_eq!(back, core);
        let mut set = RuleSet::new();
        set.extend_permissions(Direction::Ingress, [&back]).unwrap();
        assert_eq!(set.len(), 4);
    }
}
