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
//!
//! By topic: `document` (the document and the scope it compiles into), `approval`,
//! `exemption` (exempt principals, their records and the other grants), `skip` (why an
//! event or a sweep judges nothing) and `verdict` (the verdict on a rule and the revert
//! plan).

mod approval;
mod document;
mod exemption;
mod skip;
#[cfg(test)]
pub(crate) mod testing;
mod verdict;

pub use approval::*;
pub use document::*;
pub use exemption::*;
pub use skip::*;
pub use verdict::*;

use std::collections::BTreeSet;

use crate::forbid::{Forbid, Forbids};
use crate::rule::Direction;

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
}
