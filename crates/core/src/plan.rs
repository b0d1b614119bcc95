//! Ownership and plans: what sgwarden may change in a group, and the change it will make.
//!
//! A rule belongs to sgwarden only when a [`Proof`] says so. Two proofs exist: the
//! description marker `sgwarden:<owner> ` ([`Owner`]; self-registered hosts, whose owner is
//! an instance id), and a [`Recorded`] set of `sgr-` rule ids that sgwarden wrote down when
//! it created the rules, where only sgwarden writes (asg-sync's registry). A description is
//! a label anyone with `ec2:ModifySecurityGroupRules` can edit; a record is not.
//! [`plan`] compares what a group has with what it should have and returns a [`Plan`] that
//! adds what is missing and removes only *owned* rules that are no longer wanted. Rules made
//! by hand, by other tools, or by another owner are never in `remove`, whatever `desired` says.
//! The plan is a value: it can be printed, logged, tested and applied later by the adapter.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::ParseError;
use crate::rule::{Direction, Peer, RuleInfo, RuleSet};
use crate::wire::Permission;

/// The owner whose rules a plan may remove. Owner names are restricted to characters EC2
/// accepts in a rule description and may not contain spaces (the space ends the marker).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner(String);

/// Every rule sgwarden writes starts with this.
pub(crate) const MARKER: &str = "sgwarden:";

/// EC2 limits a rule description to 255 characters.
const DESCRIPTION_LIMIT: usize = 255;

impl Owner {
    /// An owner named `name`; refuses an empty name, a character outside `._-:/@+=#` and
    /// ASCII letters and digits, and a name too long to leave room in a 255-character description.
    pub fn new(name: &str) -> Result<Self, ParseError> {
        let valid = |c: char| c.is_ascii_alphanumeric() || "._-:/@+=#".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            return Err(ParseError::new(
                "owner",
                format!("{name:?} must be non-empty letters, digits or ._-:/@+=#"),
            ));
        }
        if MARKER.len() + name.len() + 1 >= DESCRIPTION_LIMIT {
            return Err(ParseError::new(
                "owner",
                "name too long for a rule description",
            ));
        }
        Ok(Self(name.to_string()))
    }

    /// The owner's name, as written after `sgwarden:` in the marker.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// The description sgwarden writes on a rule it owns: `sgwarden:<owner> <detail>`,
    /// cut to EC2's limit on a character boundary.
    pub fn describe(&self, detail: &str) -> String {
        let mut text = format!("{MARKER}{} {detail}", self.0);
        if text.len() > DESCRIPTION_LIMIT {
            let mut end = DESCRIPTION_LIMIT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }

    /// True when `info` marks the rule as this owner's.
    pub fn owns(&self, info: &RuleInfo) -> bool {
        info.description.as_deref().is_some_and(|d| {
            d.strip_prefix(MARKER)
                .and_then(|rest| rest.strip_prefix(self.0.as_str()))
                .is_some_and(|rest| rest.starts_with(' '))
        })
    }
}

/// What proves that a rule of a group is the plan's to remove.
pub trait Proof {
    /// True when the rule carrying `info` is owned.
    fn owns(&self, info: &RuleInfo) -> bool;
}

/// The marker proof: the description starts with `sgwarden:<owner> `.
impl Proof for Owner {
    fn owns(&self, info: &RuleInfo) -> bool {
        Owner::owns(self, info)
    }
}

/// The `sgr-` ids of the rules sgwarden recorded creating, read from where only sgwarden
/// writes: a rule is owned when its id is one of them, whatever its description says now.
/// A rule read without its id (`DescribeSecurityGroups` gives none) is never owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded(BTreeSet<String>);

impl Recorded {
    /// The record of these rule ids (`sgr-…`); duplicates collapse.
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        Self(ids.into_iter().collect())
    }

    /// True when `rule_id` is one sgwarden recorded creating.
    pub fn contains(&self, rule_id: &str) -> bool {
        self.0.contains(rule_id)
    }

    /// The recorded rule ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

impl Proof for Recorded {
    fn owns(&self, info: &RuleInfo) -> bool {
        info.rule_id.as_deref().is_some_and(|id| self.contains(id))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The change to make to one group: rules to authorize and rules to revoke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Rules to authorize: desired and missing, with the descriptions `desired` gave them.
    pub add: RuleSet,
    /// Rules to revoke: present, owned by the plan's proof, and no longer desired.
    pub remove: RuleSet,
}

/// Compares a group's `actual` rules with the `desired` ones, removing only what `proof`
/// says is owned.
///
/// - A desired rule already present, owned or not, is left alone (EC2 would refuse a
///   duplicate, and a hand-made rule that already grants it is not ours to relabel).
///   Rules are matched by identity (direction, traffic, peer); a description that was
///   edited does not make a present rule missing.
/// - A desired rule that is missing is added, with the description `desired` gives it.
/// - An actual rule that is not desired is removed only when `proof` owns it.
pub fn plan(actual: &RuleSet, desired: &RuleSet, proof: &impl Proof) -> Plan {
    let add = desired
        .iter()
        .filter(|(rule, _)| !actual.contains(rule))
        .map(|(r, i)| (r.clone(), i.clone()))
        .collect();
    let remove = actual
        .iter()
        .filter(|(rule, info)| proof.owns(info) && !desired.contains(rule))
        .map(|(r, i)| (r.clone(), i.clone()))
        .collect();
    Plan { add, remove }
}

impl Plan {
    /// True when the plan neither adds nor removes a rule: the group is already right.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// The group's rules once the plan is applied: what the adapter should read back.
    pub fn applied_to(&self, actual: &RuleSet) -> RuleSet {
        let mut result = actual.clone();
        for rule in self.remove.rules() {
            result.remove(rule);
        }
        for (rule, info) in &self.add {
            result.insert(rule.clone(), info.clone());
        }
        result
    }

    /// Permissions to authorize, per direction, batched into the fewest EC2 accepts.
    pub fn authorizations(&self, direction: Direction) -> Vec<Permission> {
        self.add.to_permissions(direction)
    }

    /// How many rules of each IP family the group will hold per direction after the plan,
    /// for the quota check: EC2 counts IPv4 and IPv6 rules (groups and prefix lists in
    /// both) separately against the per-group limit.
    pub fn rule_counts(&self, actual: &RuleSet) -> RuleCounts {
        let after = self.applied_to(actual);
        let mut counts = RuleCounts::default();
        for rule in after.rules() {
            let slot = match rule.direction {
                Direction::Ingress => &mut counts.ingress,
                Direction::Egress => &mut counts.egress,
            };
            match rule.peer {
                Peer::Ipv4(_) => slot.0 += 1,
                Peer::Ipv6(_) => slot.1 += 1,
                _ => {
                    slot.0 += 1;
                    slot.1 += 1;
                }
            }
        }
        counts
    }
}

/// Rule counts per direction as (IPv4, IPv6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Ingress rules after the plan, as (IPv4, IPv6).
    pub ingress: (usize, usize),
    /// Egress rules after the plan, as (IPv4, IPv6).
    pub egress: (usize, usize),
}

impl RuleCounts {
    /// The largest count, to compare with the per-group quota.
    pub fn max(&self) -> usize {
        [self.ingress.0, self.ingress.1, self.egress.0, self.egress.1]
            .into_iter()
            .max()
            .unwrap_or(0)
    }
}

/// `+ ingress tcp/22 10.0.0.1/32` / `- …` lines, removals first.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "  (no change)");
        }
        for rule in self.remove.rules() {
            writeln!(f, "  - {rule}")?;
        }
        for (rule, info) in &self.add {
            match &info.description {
                Some(d) => writeln!(f, "  + {rule}  ({d})")?,
                None => writeln!(f, "  + {rule}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Peer, PortRange, Rule, Traffic};
    use proptest::prelude::*;

    fn owner() -> Owner {
        Owner::new("db").unwrap()
    }

    fn rule(direction: Direction, port: u16, last: u8) -> Rule {
        Rule::new(
            direction,
            Traffic::Tcp(PortRange::single(port)),
            Peer::cidr(&format!("10.0.0.{last}/32"), "x").unwrap(),
        )
    }

    #[test]
    fn ownership_needs_the_exact_marker() {
        let o = owner();
        assert!(o.owns(&RuleInfo::described("sgwarden:db us-east-1/asg")));
        assert!(!o.owns(&RuleInfo::described("sgwarden:dbx us-east-1/asg")));
        assert!(!o.owns(&RuleInfo::described("sgwarden:db")));
        assert!(!o.owns(&RuleInfo::described("hand made sgwarden:db x")));
        assert!(!o.owns(&RuleInfo::default()));
        assert!(o.owns(&RuleInfo::described(o.describe("anything"))));
    }

    #[test]
    fn owner_names_are_checked() {
        assert!(Owner::new("").is_err());
        assert!(Owner::new("has space").is_err());
        assert!(Owner::new(&"x".repeat(300)).is_err());
        assert!(Owner::new("prod-db.eu").is_ok());
        assert!(owner().describe(&"é".repeat(300)).len() <= 255);
    }

    #[test]
    fn hand_made_rules_survive_and_stale_owned_rules_go() {
        let o = owner();
        let ingress = |port, last, description: String| {
            let rule = rule(Direction::Ingress, port, last);
            (rule, RuleInfo::described(description))
        };
        let actual: RuleSet = [
            ingress(22, 1, "office".into()),
            ingress(9042, 2, o.describe("old")),
            ingress(9042, 3, o.describe("kept")),
        ]
        .into_iter()
        .collect();
        let desired: RuleSet = [
            ingress(9042, 3, o.describe("kept")),
            ingress(9042, 4, o.describe("new")),
        ]
        .into_iter()
        .collect();
        let p = plan(&actual, &desired, &o);
        assert_eq!(
            p.remove.rules().collect::<Vec<_>>(),
            vec![&rule(Direction::Ingress, 9042, 2)]
        );
        assert_eq!(
            p.add.rules().collect::<Vec<_>>(),
            vec![&rule(Direction::Ingress, 9042, 4)]
        );
        assert_eq!(
            p.to_string(),
            "  - ingress tcp/9042 10.0.0.2/32\n  + ingress tcp/9042 10.0.0.4/32  (sgwarden:db new)\n"
        );
        assert!(plan(&p.applied_to(&actual), &desired, &o).is_empty());
    }

    #[test]
    fn an_owner_is_named_in_every_description_it_writes() {
        let o = owner();
        assert_eq!(o.name(), "db");
        assert_eq!(o.to_string(), "db");
        assert_eq!(
            o.describe("us-east-1/db-asg"),
            "sgwarden:db us-east-1/db-asg"
        );
    }

    #[test]
    fn a_description_is_cut_to_ec2_s_limit_on_a_character_boundary() {
        let o = owner();
        let prefix = "sgwarden:db ".len();
        let exact = "x".repeat(DESCRIPTION_LIMIT - prefix);
        assert_eq!(o.describe(&exact).len(), DESCRIPTION_LIMIT);
        assert_eq!(o.describe(&format!("{exact}y")).len(), DESCRIPTION_LIMIT);
        // A two-byte character straddling the limit is dropped whole, not split.
        let straddling = format!("{}é", "x".repeat(DESCRIPTION_LIMIT - prefix - 1));
        let cut = o.describe(&straddling);
        assert_eq!(cut.len(), DESCRIPTION_LIMIT - 1);
        assert!(o.owns(&RuleInfo::described(cut)));
    }

    #[test]
    fn a_plan_with_only_additions_or_only_removals_is_not_empty() {
        let one: RuleSet = [(rule(Direction::Ingress, 22, 1), RuleInfo::default())]
            .into_iter()
            .collect();
        let adds = Plan {
            add: one.clone(),
            remove: RuleSet::new(),
        };
        let removes = Plan {
            add: RuleSet::new(),
            remove: one,
        };
        assert!(!adds.is_empty());
        assert!(!removes.is_empty());
        assert!(Plan::default().is_empty());
    }

    #[test]
    fn an_empty_group_is_fine() {
        let p = plan(&RuleSet::new(), &RuleSet::new(), &owner());
        assert!(p.is_empty());
        assert_eq!(p.rule_counts(&RuleSet::new()).max(), 0);
    }

    #[test]
    fn counts_follow_families() {
        let mut add = RuleSet::new();
        add.insert(rule(Direction::Ingress, 1, 1), RuleInfo::default());
        add.insert(
            Rule::new(Direction::Ingress, Traffic::All, Peer::group("sg-1", None)),
            RuleInfo::default(),
        );
        let p = Plan {
            add,
            remove: RuleSet::new(),
        };
        let counts = p.rule_counts(&RuleSet::new());
        assert_eq!(counts.ingress, (2, 1));
        assert_eq!(counts.max(), 2);
    }

    #[test]
    fn an_ipv6_rule_counts_against_the_ipv6_quota_only() {
        let mut add = RuleSet::new();
        for cidr in ["2001:db8::/64", "2001:db8:1::/64", "::/0"] {
            add.insert(
                Rule::new(
                    Direction::Egress,
                    Traffic::All,
                    Peer::cidr(cidr, "x").unwrap(),
                ),
                RuleInfo::default(),
            );
        }
        add.insert(rule(Direction::Egress, 1, 1), RuleInfo::default());
        let p = Plan {
            add,
            remove: RuleSet::new(),
        };
        let counts = p.rule_counts(&RuleSet::new());
        assert_eq!(counts.egress, (1, 3));
        assert_eq!(counts.ingress, (0, 0));
        assert_eq!(counts.max(), 3, "the IPv6 count is the larger one");
    }

    fn arb_set() -> impl Strategy<Value = RuleSet> {
        let entry = (
            prop::bool::ANY,
            prop::sample::select(vec![22u16, 80, 443, 9042]),
            0u8..12,
            prop::sample::select(vec![None, Some("db"), Some("other"), Some("hand")]),
        );
        prop::collection::vec(entry, 0..30).prop_map(|entries| {
            entries
                .into_iter()
                .map(|(egress, port, last, who)| {
                    let direction = if egress {
                        Direction::Egress
                    } else {
                        Direction::Ingress
                    };
                    let info = match who {
                        None => RuleInfo::default(),
                        Some("hand") => RuleInfo::described("added by hand"),
                        Some(name) => RuleInfo::described(format!("sgwarden:{name} x")),
                    };
                    (rule(direction, port, last), info)
                })
                .collect()
        })
    }

    proptest! {
        /// Applying plan(actual, desired) gives every desired rule, keeps no owned rule that
        /// is not desired, and leaves every rule it does not own exactly as it was.
        #[test]
        fn plans_reach_desired_and_touch_only_owned_rules(actual in arb_set(), desired in arb_set()) {
            let o = owner();
            let p = plan(&actual, &desired, &o);
            let after = p.applied_to(&actual);
            for rule in desired.rules() {
                prop_assert!(after.contains(rule));
            }
            for (rule, info) in &after {
                if o.owns(info) {
                    prop_assert!(desired.contains(rule));
                }
            }
            for (rule, info) in &actual {
                if !o.owns(info) {
                    prop_assert_eq!(after.get(rule), Some(info));
                }
            }
            for (_, info) in &p.remove {
                prop_assert!(o.owns(info));
            }
            prop_assert!(plan(&after, &desired, &o).is_empty());
        }

        /// Batching a plan back into permissions and expanding them gives the same rules.
        #[test]
        fn batches_expand_to_the_plan(actual in arb_set(), desired in arb_set()) {
            let p = plan(&actual, &desired, &owner());
            let mut back = RuleSet::new();
            for direction in [Direction::Ingress, Direction::Egress] {
                back.extend_permissions(direction, &p.authorizations(direction)).unwrap();
            }
            prop_assert_eq!(back, p.add);
        }
    }
}
