//! Self-registration: a host outside any Auto Scaling group puts its own address on a group
//! (often in another region) at boot and takes it off at shutdown (`sgwarden register` /
//! `deregister`).
//!
//! Its rules are owned by the instance id (SPEC ownership): described
//! `sgwarden:<instance-id> <instance-region>/self-registered`, so the host's own plan touches
//! only its rules, and so a true-up can find registrations whose instance no longer exists
//! (a crash skips the shutdown step) and remove them. The instance's region is in the
//! description because the group usually lives elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::error::ParseError;
use crate::plan::{Owner, MARKER};
use crate::rule::{RuleInfo, RuleSet, Traffic};
use crate::sync::{desired_rules, Member};

/// The detail after the region in a registration's description.
pub(crate) const SELF_REGISTERED: &str = "self-registered";

/// True for an EC2 instance id (`i-` and 8 or 17 hex digits).
pub(crate) fn is_instance_id(text: &str) -> bool {
    text.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Who registered: an instance, and the region it runs in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registrant {
    /// The registering instance's id (`i-…`): also the owner of its rules.
    pub instance_id: String,
    /// The region the instance runs in, which is often not the group's.
    pub region: String,
    owner: Owner,
}

impl Registrant {
    /// The registrant `instance_id` in `region`; refuses a text that is not an EC2 instance
    /// id (`i-` and 8 or 17 hex digits) and a region that is empty or holds anything but
    /// letters, digits and `-`.
    pub fn new(instance_id: &str, region: &str) -> Result<Self, ParseError> {
        if !is_instance_id(instance_id) {
            return Err(ParseError::new(
                "instance-id",
                format!("{instance_id:?} is not an EC2 instance id"),
            ));
        }
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ParseError::new(
                "region",
                format!("{region:?} is not a region"),
            ));
        }
        Ok(Self {
            owner: Owner::new(instance_id)?,
            instance_id: instance_id.to_string(),
            region: region.to_string(),
        })
    }

    /// The owner of the registrant's rules: the instance id.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The rules that register `address` for `ports`: ingress, owned by the instance.
    pub fn rules(&self, address: IpAddr, ports: &[Traffic]) -> RuleSet {
        let member = Member {
            member: format!("{}/{SELF_REGISTERED}", self.region),
            region: self.region.clone(),
            asg: String::new(),
            addresses: vec![address],
            updated_at: String::new(),
            seq: 0,
        };
        desired_rules(&[member], ports, &self.owner)
    }
}

/// The registrant a rule's description names, if it is a self-registration.
pub(crate) fn registrant_of(info: &RuleInfo) -> Option<Registrant> {
    let rest = info.description.as_deref()?.strip_prefix(MARKER)?;
    let (owner, detail) = rest.split_once(' ')?;
    let region = detail.strip_suffix(SELF_REGISTERED)?.strip_suffix('/')?;
    Registrant::new(owner, region).ok()
}

/// The self-registrations among a group's rules, by registrant.
pub fn registrations(rules: &RuleSet) -> BTreeMap<Registrant, RuleSet> {
    let mut found: BTreeMap<Registrant, RuleSet> = BTreeMap::new();
    for (rule, info) in rules {
        if let Some(registrant) = registrant_of(info) {
            found
                .entry(registrant)
                .or_default()
                .insert(rule.clone(), info.clone());
        }
    }
    found
}

/// The self-registration rules of `gone` registrants that a true-up removes: all of them
/// except those the cluster wants in the same shape. EC2 holds one rule per shape, so a
/// dead host's rule may be the very rule the cluster needs; removing it would cut a live
/// member off until the next sync.
pub fn stale_registrations(
    rules: &RuleSet,
    gone: &BTreeSet<Registrant>,
    desired: &RuleSet,
) -> RuleSet {
    let mut stale = RuleSet::new();
    for (registrant, rules) in registrations(rules) {
        if gone.contains(&registrant) {
            for (rule, info) in &rules {
                if !desired.contains(rule) {
                    stale.insert(rule.clone(), info.clone());
                }
            }
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::sync::parse_ports;

    #[test]
    fn a_registration_is_owned_by_the_instance_and_found_again() {
        let host = Registrant::new("i-0123456789abcdef0", "us-east-1").unwrap();
        let rules = host.rules(
            "203.0.113.9".parse().unwrap(),
            &parse_ports("tcp/22,tcp/443").unwrap(),
        );
        assert_eq!(rules.len(), 2);
        let (_, info) = rules.iter().next().unwrap();
        assert_eq!(
            info.description.as_deref(),
            Some("sgwarden:i-0123456789abcdef0 us-east-1/self-registered")
        );
        let found = registrations(&rules);
        assert_eq!(found.keys().collect::<Vec<_>>(), vec![&host]);
        // Deregistering is the plan to nothing: it removes exactly the host's rules.
        let mut group = rules.clone();
        group.insert(
            crate::rule::Rule::new(
                crate::rule::Direction::Ingress,
                "tcp/22".parse().unwrap(),
                crate::rule::Peer::cidr("10.0.0.0/8", "t").unwrap(),
            ),
            RuleInfo::described("by hand"),
        );
        let gone = plan(&group, &RuleSet::new(), host.owner());
        assert_eq!(gone.remove, rules);
    }

    #[test]
    fn a_dead_host_s_rule_that_the_cluster_wants_stays() {
        let ports = parse_ports("tcp/22,tcp/443").unwrap();
        let dead = Registrant::new("i-0123456789abcdef0", "us-east-1").unwrap();
        let alive = Registrant::new("i-0fedcba9876543210", "us-east-1").unwrap();
        let address = "203.0.113.9".parse().unwrap();
        let mut group = dead.rules(address, &ports);
        group.extend_from(&alive.rules("203.0.113.10".parse().unwrap(), &ports));
        // The cluster now has a member at the dead host's address, on port 22 only.
        let desired = crate::sync::desired_rules(
            &[crate::sync::Member {
                member: "us-east-1/db".into(),
                region: "us-east-1".into(),
                asg: "db".into(),
                addresses: vec![address],
                updated_at: String::new(),
                seq: 1,
            }],
            &parse_ports("tcp/22").unwrap(),
            &Owner::new("db").unwrap(),
        );
        let stale = stale_registrations(&group, &BTreeSet::from([dead]), &desired);
        assert_eq!(stale.texts(), vec!["ingress tcp/443 203.0.113.9/32"]);
        // With nothing desired, every rule of the dead host goes, and none of the live one's.
        let dead = Registrant::new("i-0123456789abcdef0", "us-east-1").unwrap();
        let stale = stale_registrations(&group, &BTreeSet::from([dead.clone()]), &RuleSet::new());
        assert_eq!(stale, dead.rules(address, &ports));
    }

    #[test]
    fn other_descriptions_are_not_registrations() {
        for text in [
            "sgwarden:ring us-east-1/ring-asg",
            "sgwarden:i-0123456789abcdef0 us-east-1/other",
            "sgwarden:i-xyz us-east-1/self-registered",
            "i-0123456789abcdef0 us-east-1/self-registered",
        ] {
            assert_eq!(registrant_of(&RuleInfo::described(text)), None, "{text}");
        }
        assert!(Registrant::new("i-12345678", "eu-west-1").is_ok());
        assert!(Registrant::new("i-123", "eu-west-1").is_err());
        assert!(Registrant::new("i-12345678", "eu west").is_err());
    }
}
