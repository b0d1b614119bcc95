//! sgwarden-core: what is true about security groups, with no AWS SDK and no I/O.
//!
//! - [`accounts`]: one deployment, many accounts: the member role, which account an event
//!   is acted on in, and the accounts and regions a sweep covers.
//! - [`chat`]: the custom-notification messages every function sends to its chat topic.
//! - [`register`]: self-registration of hosts outside Auto Scaling groups: rules owned by the
//!   instance, and finding them again.
//! - [`rule`]: the atomic rule model every comparison uses, and its batching back into
//!   permissions.
//! - [`wire`]: the three JSON spellings AWS uses for the same permission (EC2 API,
//!   CloudTrail, AWS Config), and the neutral permission and rule they read into.
//! - [`notify`]: notify-owner's opt-in test, owner addresses and the mail, rendered from
//!   templates.
//! - [`plan`]: ownership (`sgwarden:<owner> `) and the plan that brings a group from what it
//!   has to what it should have, touching only rules it owns.
//! - [`event`]: typed parsing of every trigger the functions answer.
//! - [`policy`]: revert-ingress's policy (scope, exempt, allow, approvals) and the plan
//!   that reverts what it does not allow.
//! - [`finding`]: revert-ingress's Security Hub findings, as data.
//! - [`forbid`]: forbid entries and the Security Hub presets: what a rule exposes, and
//!   `internet`.
//! - [`replay`]: `sgwarden replay`'s pure part: the calls of the last weeks, as revert-ingress
//!   would have judged them, by principal and group, counted, told and turned into
//!   suggestions.
//! - [`settings`]: what a refused setting looks like, and readers every function shares.
//! - [`sync`]: asg-sync's pure logic: addresses, the registry's members, desired rules, quota.
//! - [`text`]: outcomes that are enums in the code and sentences in reports.
//!
//! The core reads no clock and no environment; callers pass both in. Every parser returns a
//! [`ParseError`] naming the field it could not read, and none panics on any JSON.

#![warn(missing_docs, unreachable_pub)]

pub mod accounts;
pub mod chat;
pub mod error;
pub mod event;
pub mod fanout;
pub mod finding;
pub mod forbid;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod register;
pub mod replay;
pub mod rule;
pub mod settings;
pub mod sync;
pub mod text;
pub mod wire;

pub use error::{ErrorType, ParseError};

/// The `tracing` target of the audit lines, one per change sgwarden makes: every function
/// writes them under this name, and the log filter keeps them at every level.
pub const AUDIT_TARGET: &str = "sgwarden::audit";
pub use event::Trigger;
pub use plan::{plan, Owner, Plan, Proof, Recorded};
pub use rule::{Direction, Peer, PortRange, Rule, RuleInfo, RuleSet, Traffic};
pub use wire::Permission;
