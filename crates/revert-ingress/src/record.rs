//! The record of one revert, published as JSON to `REVERT_NOTIFY_TOPIC_ARN`.
//!
//! The schema is a contract with whoever subscribes (a chat bridge, a SIEM, a ticketing
//! rule), so it is versioned (`schema`) and documented in the guide
//! (`docs/guide/src/revert-ingress.md#the-revert-record`): fields are only ever added. One record is published per group per event (or per group per sweep).

use serde::Serialize;
use sgwarden_core::event::Principal;
use sgwarden_core::{Rule, RuleSet};

pub const SCHEMA: &str = "sgwarden.revert/1";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevertRecord {
    pub schema: &'static str,
    pub function: &'static str,
    /// `api-call` (a CloudTrail event) or `sweep`.
    pub cause: &'static str,
    /// Why the rules were revoked, in words.
    pub reason: String,
    pub account: Option<String>,
    pub region: String,
    pub group_id: String,
    pub event_id: Option<String>,
    pub event_name: Option<String>,
    pub event_time: Option<String>,
    /// Who made the change (absent for a sweep: drift has no known author).
    pub actor: Option<Actor>,
    /// When sgwarden revoked the rules (RFC 3339).
    pub reverted_at: String,
    pub rules: Vec<RecordRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Actor {
    pub kind: Option<String>,
    pub arn: Option<String>,
    pub role_arn: Option<String>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self {
            kind: p.kind.clone(),
            arn: p.arn.clone(),
            role_arn: p.role_arn.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRule {
    /// `ingress tcp/22 0.0.0.0/0`.
    pub rule: String,
    pub direction: String,
    pub traffic: String,
    pub peer: String,
    pub rule_id: Option<String>,
    pub description: Option<String>,
}

/// The rules of a record, from the set that was revoked.
pub fn record_rules(rules: &RuleSet) -> Vec<RecordRule> {
    rules
        .iter()
        .map(|(rule, info): (&Rule, _)| RecordRule {
            rule: rule.to_string(),
            direction: rule.direction.to_string(),
            traffic: rule.traffic.to_string(),
            peer: rule.peer.to_string(),
            rule_id: info.rule_id.clone(),
            description: info.description.clone(),
        })
        .collect()
}

impl RevertRecord {
    /// The SNS subject: what happened, where.
    pub fn subject(&self) -> String {
        format!(
            "sgwarden reverted {} rule(s) on {} in {}",
            self.rules.len(),
            self.group_id,
            self.region
        )
    }
}
