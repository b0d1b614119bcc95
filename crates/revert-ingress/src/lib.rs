//! revert-ingress: undoes unapproved security-group changes seconds after CloudTrail reports
//! them, and sweeps the groups in scope for what events missed.
//!
//! One invocation, whatever triggered it:
//! 1. **parse** the trigger: a CloudTrail `AuthorizeSecurityGroupIngress`/`Egress` or
//!    `ModifySecurityGroupRules` call, or a schedule (the sweep); anything else is refused
//!    before any AWS call;
//! 2. **skip on purpose** what is not an unapproved change: a failed call (it changed
//!    nothing), a call by this function's own role, a call by an exempt principal (whose new
//!    rules are marked with the `sgwarden:exempt` tag so later sweeps keep them), a direction
//!    the policy does not guard, a group out of scope or exempted by its tag;
//! 3. **read** only what the decision needs: the group's VPC and tags when the policy names
//!    them, the approvals of the group when a rule is not allowed by the policy itself, the
//!    current rules when the event carries no rule ids or when a modified rule's direction
//!    must be known;
//! 4. **plan** in the core: every rule the call added is allowed, approved, exempted, or
//!    revoked, each with its reason;
//! 5. **revoke** exactly those rules (by `sgr-` id whenever known; a pre-existing rule is
//!    never touched, because only rules the call created are ever judged), in the event's
//!    region, with one audit line, then **record** the revert on the SNS topic.
//!
//! `REVERT_DRY_RUN` stops after the plan: it logs what would be revoked and writes nothing
//! (no revoke, no exempt mark, no record).

pub mod config;
pub mod record;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use sgwarden_aws::approvals::Approvals;
use sgwarden_aws::sdk::{self, Regional};
use sgwarden_aws::sns::Topic;
use sgwarden_aws::{AuditContext, AwsError, Ec2, RuleRecord};
use sgwarden_core::event::{ApiCall, CallOutcome, GroupSelector, RuleChange};
use sgwarden_core::policy::{CallerIdentity, GroupFacts, RevertPlan, Verdict, EXEMPT_MARK};
use sgwarden_core::{ParseError, RuleSet, Trigger};

pub use config::{ConfigError, RevertConfig};
use record::{record_rules, Actor, RevertRecord, SCHEMA};

/// The function's name in audit lines and records.
pub const FUNCTION: &str = "revert-ingress";

/// Why an invocation failed. Each variant says what an operator must look at.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("event not understood: {0}")]
    Event(#[from] ParseError),
    #[error("revert-ingress does not handle {0} events")]
    WrongTrigger(&'static str),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("rules revoked, but the record was not published: {0}")]
    Record(AwsError),
}

impl sgwarden_lambda::FunctionError for RevertError {
    fn kind(&self) -> &'static str {
        RevertError::kind(self)
    }
}

impl RevertError {
    /// A stable name for the Lambda error type.
    pub fn kind(&self) -> &'static str {
        match self {
            RevertError::Event(_) => "EventNotUnderstood",
            RevertError::WrongTrigger(_) => "WrongTrigger",
            RevertError::Aws(e) if e.is_transient() => "AwsUnavailable",
            RevertError::Aws(_) => "AwsError",
            RevertError::Record(_) => "RecordNotPublished",
        }
    }
}

/// What one invocation did, returned as the Lambda's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `api-call` or `sweep`.
    pub trigger: &'static str,
    pub event_id: Option<String>,
    /// Why nothing was judged, when the whole event was skipped on purpose.
    pub skipped: Option<String>,
    pub groups: Vec<GroupReport>,
    /// Rule ids tagged `sgwarden:exempt` because an exempt principal created them.
    pub marked: Vec<String>,
    /// Records published to the topic.
    pub records: usize,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    pub region: String,
    pub group_id: String,
    /// Rules revoked (or, in a dry run, that would be).
    pub revoked: Vec<String>,
    /// Rules that stay, each with its reason.
    pub kept: Vec<KeptRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptRule {
    pub rule: String,
    pub reason: String,
}

/// What one group's judgement is about: the rules to judge and why they are being judged.
struct Judged<'a> {
    region: &'a str,
    group_id: &'a str,
    rules: RuleSet,
    /// Exempt marks of the rules, by rule id.
    marks: BTreeMap<String, String>,
    call: Option<&'a ApiCall>,
    reason: String,
}

/// Clients, settings and the compiled policy, built once at cold start and borrowed by
/// every invocation.
pub struct RevertIngress {
    config: RevertConfig,
    identity: Option<CallerIdentity>,
    region: String,
    /// EC2 clients by region: calls are reverted in the region they were made in.
    ec2: Regional<Ec2>,
    approvals: Option<Approvals>,
    topic: Option<Topic>,
}

impl RevertIngress {
    /// `identity` is this function's own ARN (STS `GetCallerIdentity`), so that its calls
    /// are never reverted; `None` when it could not be learned.
    pub fn new(config: RevertConfig, sdk: &SdkConfig, identity: Option<CallerIdentity>) -> Self {
        let region = sdk::region_of(sdk);
        Self {
            approvals: config
                .approvals_table
                .as_deref()
                .map(|t| Approvals::new(sdk, t)),
            topic: config
                .notify_topic_arn
                .as_deref()
                .map(|arn| Topic::new(sdk, arn)),
            ec2: Regional::new(sdk, Ec2::new),
            region,
            identity,
            config,
        }
    }

    /// Handles one event. `now` decides which approvals are still valid.
    pub async fn handle(&self, event: &Value, now: SystemTime) -> Result<Report, RevertError> {
        let trigger = Trigger::parse(event)?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        match trigger {
            Trigger::ApiCall(call) => self.on_call(&call, now).await,
            Trigger::Scheduled(_) => self.sweep(now).await,
            other => Err(RevertError::WrongTrigger(other.kind())),
        }
    }

    fn ec2(&self, region: &str) -> Ec2 {
        self.ec2.get(region)
    }

    fn report(&self, trigger: &'static str, event_id: Option<&str>) -> Report {
        Report {
            trigger,
            event_id: event_id.map(str::to_string),
            dry_run: self.config.dry_run,
            ..Report::default()
        }
    }

    async fn on_call(&self, call: &ApiCall, now: u64) -> Result<Report, RevertError> {
        let mut report = self.report("api-call", Some(&call.event_id));
        let skip = |mut report: Report, reason: String| {
            tracing::info!(event_id = %call.event_id, event = %call.event_name, reason = %reason, "skipped");
            report.skipped = Some(reason);
            Ok(report)
        };
        let change = match &call.outcome {
            CallOutcome::Failed { code, .. } => {
                return skip(
                    report,
                    format!("the call failed ({code}) and changed nothing"),
                )
            }
            CallOutcome::Succeeded(change) => change,
        };
        if self
            .identity
            .as_ref()
            .is_some_and(|me| me.is(&call.principal))
        {
            return skip(report, "made by this function's own role".into());
        }
        let ec2 = self.ec2(&call.region);
        let policy = &self.config.policy;
        if policy.exempts(&call.principal) {
            let by = exempt_name(call);
            let ids = changed_rule_ids(change);
            if !self.config.dry_run && !ids.is_empty() {
                let audit = AuditContext {
                    function: FUNCTION.to_string(),
                    cause: format!("event {}", call.event_id),
                };
                ec2.tag_rules(&ids, EXEMPT_MARK, &by, &audit).await?;
                report.marked = ids;
            }
            return skip(report, format!("made by exempt principal {by}"));
        }
        let (group_id, rules, reason) = match change {
            RuleChange::Authorize {
                group,
                direction,
                requested,
                created,
            } => {
                if !policy.directions.contains(direction) {
                    return skip(report, format!("{direction} is not guarded by the policy"));
                }
                let group_id = match group {
                    GroupSelector::Id(id) => id.clone(),
                    GroupSelector::Name(name) => ec2.group_id_by_name(name).await?,
                };
                // Only the rules this call created are ever judged; with their ids from the
                // response they are revoked by id, otherwise they are the exact rules requested
                // (EC2 refuses the whole call if any of them already existed).
                let rules = if created.is_empty() {
                    requested.clone()
                } else {
                    created.clone()
                };
                (group_id, rules, "added by an unapproved call".to_string())
            }
            RuleChange::Modify { group_id, .. } => (
                group_id.clone(),
                RuleSet::new(),
                "modified by an unapproved call and now violates the policy; CloudTrail does \
                 not carry its previous definition, so it was revoked, not restored"
                    .to_string(),
            ),
        };
        if let Err(reason) = self.guards(&ec2, &group_id).await? {
            return skip(report, reason);
        }
        let (rules, marks) = match change {
            RuleChange::Modify { rules, .. } => {
                // The event has the new definition but not the direction: read the rules as
                // they are now, by id.
                let ids: Vec<String> = rules.iter().map(|r| r.rule_id.clone()).collect();
                current(&ec2.rules_by_id(&ids).await?, &group_id, None)
            }
            _ if sgwarden_core::policy::rule_ids(&rules).is_none() => {
                // No rule ids in the event: find the requested rules among the group's
                // current rules, so they are revoked by id and an exempt mark put on an
                // identical rule since then is respected.
                current(
                    &ec2.rules_of_groups(std::slice::from_ref(&group_id)).await?,
                    &group_id,
                    Some(&rules),
                )
            }
            _ => (rules, BTreeMap::new()),
        };
        let group = self
            .judge(
                Judged {
                    region: &call.region,
                    group_id: &group_id,
                    rules,
                    marks,
                    call: Some(call),
                    reason,
                },
                &ec2,
                None,
                now,
                &mut report,
            )
            .await?;
        report.groups.push(group);
        Ok(report)
    }

    /// Whether the policy guards the group: `Ok(Err(reason))` when it does not. Reads the
    /// group only when the policy needs its VPC or tags.
    async fn guards(&self, ec2: &Ec2, group_id: &str) -> Result<Result<(), String>, AwsError> {
        let policy = &self.config.policy;
        if policy.scope.excludes_id(group_id) {
            return Ok(Err(format!("{group_id} is outside the policy's scope")));
        }
        let facts = if policy.needs_group_details() {
            let group = ec2.read_group(group_id).await?;
            GroupFacts {
                group_id: group.group_id,
                vpc_id: group.vpc_id,
                tags: group.tags,
            }
        } else {
            GroupFacts {
                group_id: group_id.to_string(),
                ..GroupFacts::default()
            }
        };
        Ok(if policy.guards_group(&facts) {
            Ok(())
        } else {
            Err(format!(
                "{group_id} is outside the policy's scope or exempted by its tag"
            ))
        })
    }

    /// Plans one group's rules against the policy and approvals, revokes what violates it
    /// and publishes the record. `approvals` are the sweep's (all of them, read once); for an
    /// event they are read for this group, and only when a rule needs them.
    async fn judge(
        &self,
        judged: Judged<'_>,
        ec2: &Ec2,
        approvals: Option<&[sgwarden_core::policy::Approval]>,
        now: u64,
        report: &mut Report,
    ) -> Result<GroupReport, RevertError> {
        let policy = &self.config.policy;
        let mut plan = policy.plan(judged.group_id, &judged.rules, &judged.marks, &[], now);
        if !plan.revoke.is_empty() {
            let read;
            let approvals = match (approvals, &self.approvals) {
                (Some(all), _) => all,
                (None, Some(table)) => {
                    read = table.for_group(judged.group_id).await?;
                    &read
                }
                (None, None) => &[],
            };
            if !approvals.is_empty() {
                plan = policy.plan(
                    judged.group_id,
                    &judged.rules,
                    &judged.marks,
                    approvals,
                    now,
                );
            }
        }
        let mut group = group_report(judged.region, judged.group_id, &plan);
        if plan.revoke.is_empty() {
            return Ok(group);
        }
        if self.config.dry_run {
            tracing::warn!(
                group = judged.group_id,
                region = judged.region,
                would_revoke = %group.revoked.join("; "),
                reason = %judged.reason,
                "dry run: would revoke"
            );
            return Ok(group);
        }
        let cause = judged
            .call
            .map_or_else(|| "sweep".to_string(), |c| format!("event {}", c.event_id));
        let applied = ec2
            .revoke(
                judged.group_id,
                &plan.revoke,
                &AuditContext {
                    function: FUNCTION.to_string(),
                    cause,
                },
            )
            .await?;
        group.revoked = applied
            .removed
            .iter()
            .chain(&applied.already_gone)
            .map(ToString::to_string)
            .collect();
        if let Some(topic) = &self.topic {
            let record = RevertRecord {
                schema: SCHEMA,
                function: FUNCTION,
                cause: if judged.call.is_some() {
                    "api-call"
                } else {
                    "sweep"
                },
                reason: judged.reason,
                account: judged.call.and_then(|c| c.account.clone()),
                region: judged.region.to_string(),
                group_id: judged.group_id.to_string(),
                event_id: judged.call.map(|c| c.event_id.clone()),
                event_name: judged.call.map(|c| c.event_name.clone()),
                event_time: judged.call.and_then(|c| c.event_time.clone()),
                actor: judged.call.map(|c| Actor::from(&c.principal)),
                reverted_at: chrono::DateTime::from_timestamp(now as i64, 0)
                    .unwrap_or_default()
                    .to_rfc3339(),
                rules: record_rules(&plan.revoke),
            };
            let message = serde_json::to_string(&record).unwrap_or_default();
            topic
                .publish(&record.subject(), &message)
                .await
                .map_err(RevertError::Record)?;
            report.records += 1;
        }
        Ok(group)
    }

    /// The sweep: every group of this region in scope, every rule judged, violations
    /// revoked. A sweep needs a scope: with none, it would judge every group of the account,
    /// default VPC egress rules included, so it refuses and says so.
    async fn sweep(&self, now: u64) -> Result<Report, RevertError> {
        let mut report = self.report("sweep", None);
        let policy = &self.config.policy;
        if policy.scope.is_everything() {
            let reason = "the sweep needs a scope (group_ids, vpc_ids or tag) in REVERT_POLICY; \
                          with none it would judge every group of the account"
                .to_string();
            tracing::warn!(reason = %reason, "sweep skipped");
            report.skipped = Some(reason);
            return Ok(report);
        }
        let ec2 = self.ec2(&self.region);
        let groups: Vec<String> = ec2
            .groups_in_scope(&policy.scope)
            .await?
            .into_iter()
            .filter(|g| {
                policy.guards_group(&GroupFacts {
                    group_id: g.group_id.clone(),
                    vpc_id: g.vpc_id.clone(),
                    tags: g.tags.clone(),
                })
            })
            .map(|g| g.group_id)
            .collect();
        let records = ec2.rules_of_groups(&groups).await?;
        let approvals = match &self.approvals {
            Some(table) => table.all().await?,
            None => Vec::new(),
        };
        let mut failed = None;
        for group_id in &groups {
            let (rules, marks) = current(&records, group_id, None);
            let judged = Judged {
                region: &self.region,
                group_id,
                rules,
                marks,
                call: None,
                reason: "found by the sweep: not allowed by the policy, not approved (or its \
                         approval expired), not added by an exempt principal"
                    .to_string(),
            };
            match self
                .judge(judged, &ec2, Some(&approvals), now, &mut report)
                .await
            {
                Ok(group) => report.groups.push(group),
                // One group's failure does not stop the sweep of the others.
                Err(error) => {
                    tracing::error!(group = %group_id, error = %error, "sweep of group failed");
                    failed.get_or_insert(error);
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }
}

/// The rules of `group_id` among `records` (only those in `only`, when given), with their
/// ids, and the exempt marks found on them.
fn current(
    records: &[RuleRecord],
    group_id: &str,
    only: Option<&RuleSet>,
) -> (RuleSet, BTreeMap<String, String>) {
    let mut rules = RuleSet::new();
    let mut marks = BTreeMap::new();
    for record in records.iter().filter(|r| r.group_id == group_id) {
        if only.is_some_and(|only| !only.contains(&record.rule)) {
            continue;
        }
        if let (Some(id), Some(by)) = (&record.info.rule_id, record.tags.get(EXEMPT_MARK)) {
            marks.insert(id.clone(), by.clone());
        }
        rules.insert(record.rule.clone(), record.info.clone());
    }
    (rules, marks)
}

/// The rule ids a change created or modified, when the event names them.
fn changed_rule_ids(change: &RuleChange) -> Vec<String> {
    match change {
        RuleChange::Authorize { created, .. } => created
            .iter()
            .filter_map(|(_, info)| info.rule_id.clone())
            .collect(),
        RuleChange::Modify { rules, .. } => rules.iter().map(|r| r.rule_id.clone()).collect(),
    }
}

/// The name an exempt mark carries: the role for a session, else the principal's ARN.
fn exempt_name(call: &ApiCall) -> String {
    let p = &call.principal;
    p.role_arn
        .clone()
        .or_else(|| p.arn.clone())
        .unwrap_or_else(|| "unknown".to_string())
}

fn group_report(region: &str, group_id: &str, plan: &RevertPlan) -> GroupReport {
    GroupReport {
        region: region.to_string(),
        group_id: group_id.to_string(),
        revoked: plan.revoke.rules().map(ToString::to_string).collect(),
        kept: plan
            .kept
            .iter()
            .map(|(rule, verdict): &(_, Verdict)| KeptRule {
                rule: rule.to_string(),
                reason: verdict.to_string(),
            })
            .collect(),
    }
}
