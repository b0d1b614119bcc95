//! sgwarden-aws: how sgwarden talks to AWS, shared by every function.
//!
//! - [`sdk`]: the SDK configuration every client is built from: the SDK's standard
//!   environment (`AWS_REGION`, the credentials chain, `AWS_ENDPOINT_URL`) plus bounded
//!   connect, attempt and operation timeouts and a bounded standard retry, so a region that
//!   does not answer costs seconds, not minutes.
//! - [`ec2`]: reading security groups (rules, tags, VPC) and applying a core
//!   [`Plan`](sgwarden_core::Plan) in the fewest calls, with one audit line per change.
//! - `autoscaling` (feature `autoscaling`): a group's instances, lifecycle completion and
//!   heartbeats.
//! - `registry` (feature `dynamodb`): asg-sync's cluster registry, with `seq`-conditioned
//!   writes.
//! - `approvals` (feature `dynamodb`): revert-ingress's time-limited approvals.
//! - `dedup` (feature `dynamodb`): notify-owner's "mailed once" claims.
//! - `item` (feature `dynamodb`): reading those tables' items attribute by attribute.
//! - `ses` (feature `sesv2`), `config_history` (feature `config`), `cloudtrail` (feature
//!   `cloudtrail`): sending the owner's mail, reading a resource's recorded history, and
//!   finding who made a change.
//! - `sns` (feature `sns`): publishing records to a topic.
//! - `securityhub` (feature `securityhub`): importing revert-ingress's findings.
//! - `sts` (feature `sts`): the caller's own identity.
//! - `accounts` (feature `sts`): acting in member accounts through the member role; with
//!   feature `organizations`, the organisation's active accounts.
//! - `convert`: SDK types to and from the core's neutral [`Permission`](sgwarden_core::Permission).
//! - [`error`]: one error type whose variants tell an operator what failed where.
//!
//! No decision is made here: what to change is the core's, when to change it the
//! function's. This crate only carries plans out and reads state back.

#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "sts")]
pub mod accounts;
#[cfg(feature = "dynamodb")]
pub mod approvals;
#[cfg(feature = "autoscaling")]
pub mod autoscaling;
#[cfg(feature = "cloudtrail")]
pub mod cloudtrail;
#[cfg(feature = "config")]
pub mod config_history;
mod convert;
#[cfg(feature = "dynamodb")]
pub mod dedup;
pub mod ec2;
pub mod error;
#[cfg(feature = "dynamodb")]
mod item;
#[cfg(feature = "dynamodb")]
pub mod registry;
pub mod sdk;
#[cfg(feature = "securityhub")]
pub mod securityhub;
#[cfg(feature = "sesv2")]
pub mod ses;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "sts")]
pub mod sts;

pub use convert::permission_to_sdk;
pub use ec2::{
    Applied, AuditContext, Ec2, GroupRules, GroupState, GroupsRead, RuleRecord, RulesRead,
    UnreadableGroup,
};
pub use error::{AwsError, Fault};
