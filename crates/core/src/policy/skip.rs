//! Why revert-ingress judges nothing of an event, or does not sweep at all: each reason a
//! variant, decided here by pure functions of the policy and the call, so the function only
//! asks and the tests match variants. Each displays as the sentence the report carries.

use std::fmt;

use super::{GroupFacts, Policy};
use crate::accounts::OutOfReach;
use crate::event::{CallOutcome, RuleChange};
use crate::rule::Direction;

/// Why an event (or a sweep) was skipped on purpose: nothing was judged, nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The call failed (its `errorCode`) and changed nothing.
    CallFailed {
        /// The call's `errorCode`.
        code: String,
    },
    /// The call was the function's own (one of its reverts).
    OwnCall,
    /// The call is in an account this deployment cannot act in.
    OutOfReach(OutOfReach),
    /// The call changed a direction the policy does not guard.
    DirectionNotGuarded(Direction),
    /// The group is outside the policy's scope by its id alone.
    OutsideScope {
        /// The group's id.
        group_id: String,
    },
    /// The group is outside the scope by its VPC or tag, or exempted by its tag.
    NotGuarded {
        /// The group's id.
        group_id: String,
    },
    /// An exempt principal made the call, and every rule it made stands.
    Exempt {
        /// The principal, as the exemption records name it.
        by: String,
    },
    /// The rules the call names are no longer in the group: nothing is left to judge.
    RulesGone {
        /// The group's id.
        group_id: String,
    },
    /// The group the call changed no longer exists (EC2's answer).
    GroupGone(String),
    /// A prefix-list change that no guarded rule and no allow entry references.
    ListUnreferenced {
        /// The list's id.
        list_id: String,
    },
    /// A change to an AWS-managed prefix list: its rules are judged by the list's id.
    ListAwsManaged {
        /// The list's id.
        list_id: String,
    },
    /// A prefix-list change whose list no guarded rule references (only allow entries do).
    ListUnused,
    /// A prefix-list change taken for a group's (revert-ingress judges those by the list).
    NotAGroup {
        /// The list's id.
        list_id: String,
    },
    /// A sweep with no scope under a policy with allow entries: it would judge every group
    /// of the account, default egress rules included.
    SweepNeedsScope,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::CallFailed { code } => write!(f, "the call failed ({code}) and changed nothing"),
            Skip::OwnCall => f.write_str("made by this function's own role"),
            Skip::OutOfReach(reason) => reason.fmt(f),
            Skip::DirectionNotGuarded(direction) => {
                write!(f, "{direction} is not guarded by the policy")
            }
            Skip::OutsideScope { group_id } => {
                write!(f, "{group_id} is outside the policy's scope")
            }
            Skip::NotGuarded { group_id } => write!(
                f,
                "{group_id} is outside the policy's scope or exempted by its tag"
            ),
            Skip::Exempt { by } => write!(f, "made by exempt principal {by}"),
            Skip::RulesGone { group_id } => write!(
                f,
                "nothing to revert: the rules the call names are no longer in {group_id}"
            ),
            Skip::GroupGone(answer) => write!(f, "nothing to revert: {answer}"),
            Skip::ListUnreferenced { list_id } => {
                write!(f, "no guarded rule and no allow entry references {list_id}")
            }
            Skip::ListAwsManaged { list_id } => {
                write!(f, "{list_id} is AWS-managed: judged by its id")
            }
            Skip::ListUnused => f.write_str("no guarded rule references the list"),
            Skip::NotAGroup { list_id } => write!(f, "{list_id} is a prefix list, not a group"),
            Skip::SweepNeedsScope => f.write_str(
                "the sweep needs a scope (group_ids, vpc_ids or tag) in REVERT_POLICY; with none \
                 it would judge every group of the account against the allow list",
            ),
        }
    }
}

/// The change a call made, or [`Skip::CallFailed`]: a failed call changed nothing.
pub fn succeeded(outcome: &CallOutcome) -> Result<&RuleChange, Skip> {
    match outcome {
        CallOutcome::Failed { code, .. } => Err(Skip::CallFailed { code: code.clone() }),
        CallOutcome::Succeeded(change) => Ok(change),
    }
}

impl Policy {
    /// Why a change in `direction` is not judged, when the policy does not guard it.
    pub fn skips_direction(&self, direction: Direction) -> Option<Skip> {
        (!self.guards_direction(direction)).then_some(Skip::DirectionNotGuarded(direction))
    }

    /// Why a change to `group_id` is not judged, when its id alone puts it outside the
    /// scope (decided before any call to read the group).
    pub fn skips_group_id(&self, group_id: &str) -> Option<Skip> {
        self.scope
            .excludes_id(group_id)
            .then(|| Skip::OutsideScope {
                group_id: group_id.to_string(),
            })
    }

    /// Why a change to `group` is not judged, when the policy does not guard it.
    pub fn skips_group(&self, group: &GroupFacts) -> Option<Skip> {
        (!self.guards_group(group)).then(|| Skip::NotGuarded {
            group_id: group.group_id.clone(),
        })
    }

    /// Why the sweep judges nothing, when it would judge every group of the account
    /// against an allow list: it needs a scope. A forbid-only policy keeps what it does not
    /// name, so it may sweep everything.
    pub fn skips_sweep(&self) -> Option<Skip> {
        (self.scope.is_everything() && !self.forbids_only()).then_some(Skip::SweepNeedsScope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    fn policy(json: &str) -> Policy {
        Policy::from_json(json).unwrap()
    }

    #[test]
    fn a_failed_call_is_skipped_with_its_code() {
        let failed = CallOutcome::Failed {
            code: "Client.InvalidPermission.Duplicate".into(),
            message: None,
        };
        assert_eq!(
            succeeded(&failed),
            Err(Skip::CallFailed {
                code: "Client.InvalidPermission.Duplicate".into()
            })
        );
        assert_eq!(
            succeeded(&failed).unwrap_err().to_string(),
            "the call failed (Client.InvalidPermission.Duplicate) and changed nothing"
        );
    }

    #[test]
    fn directions_and_groups_outside_the_policy_are_skipped() {
        let ingress_only =
            policy(r#"{"directions": ["ingress"], "scope": {"group_ids": ["sg-1"]}}"#);
        assert_eq!(ingress_only.skips_direction(Direction::Ingress), None);
        assert_eq!(
            ingress_only.skips_direction(Direction::Egress),
            Some(Skip::DirectionNotGuarded(Direction::Egress))
        );
        assert_eq!(ingress_only.skips_group_id("sg-1"), None);
        assert_eq!(
            ingress_only.skips_group_id("sg-2"),
            Some(Skip::OutsideScope {
                group_id: "sg-2".into()
            })
        );
        let facts = |id: &str| GroupFacts {
            group_id: id.into(),
            ..GroupFacts::default()
        };
        assert_eq!(ingress_only.skips_group(&facts("sg-1")), None);
        assert_eq!(
            ingress_only.skips_group(&facts("sg-2")),
            Some(Skip::NotGuarded {
                group_id: "sg-2".into()
            })
        );
    }

    #[test]
    fn a_sweep_needs_a_scope_unless_the_policy_only_forbids() {
        assert_eq!(Policy::default().skips_sweep(), Some(Skip::SweepNeedsScope));
        let scoped = policy(r#"{"scope": {"group_ids": ["sg-1"]}}"#);
        assert_eq!(scoped.skips_sweep(), None);
        let forbid_only =
            policy(r#"{"forbid": [{"protocol": "tcp", "ports": "22", "sources": ["internet"]}]}"#);
        assert_eq!(forbid_only.skips_sweep(), None);
    }
}
