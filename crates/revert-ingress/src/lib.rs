//! revert-ingress: undoes unapproved security-group changes seconds after CloudTrail reports
//! them, and sweeps the groups in scope for what events missed.
//!
//! One invocation, whatever triggered it:
//! 1. **parse** the trigger: a CloudTrail `AuthorizeSecurityGroupIngress`/`Egress` or
//!    `ModifySecurityGroupRules` call, or a schedule (the sweep); anything else is refused
//!    before any AWS call;
//! 2. **skip on purpose** what cannot be an unapproved change: a failed call (it changed
//!    nothing), a call by this function's own role, a direction the policy does not guard, a
//!    group out of scope or exempted by its tag;
//! 3. **read what EC2 holds now**: the rules the call names, by their `sgr-` ids (or, when
//!    the event carries none, the group's rules of the requested shapes), only in the group
//!    the call names, in parallel with the group's tags and VPC when the scope needs them.
//!    The event is a claim: the rules are judged as they are, not as it describes them, and
//!    an id that is not in the named group is left alone;
//! 4. a call by an **exempt principal** is recorded, not judged: one exemption record per
//!    rule in the approvals table, the only place that proves a rule may stay;
//! 5. **plan** in the core: every rule is allowed, approved, exempted (its exact recorded
//!    shape), or revoked, each with its reason;
//! 6. **revoke** exactly those rules (by `sgr-` id whenever known) in the event's region,
//!    with one audit line, then **record** the revert on the SNS topic.
//!
//! Rule tags and descriptions are never a reason to keep a rule: anyone with ordinary EC2
//! permissions can write them (SPEC "Trust").
//!
//! `REVERT_DRY_RUN` stops after the plan: it logs what would be revoked or recorded and
//! writes nothing.
//!
//! `sgwarden replay` ([`RevertIngress::replay`], in `replay.rs`) runs the calls of CloudTrail's
//! history through the same steps, in dry run, and reports what they would have reverted.
//!
//! **Central mode** (SPEC "One deployment, many accounts"): an event from another account is
//! acted on there through the member role (`SGWARDEN_MEMBER_ROLE`), or skipped with the
//! reason when none is set; every session of the member role is the function's own. The
//! sweep covers the own account and `SGWARDEN_ACCOUNTS` in every region of
//! `SGWARDEN_REGIONS`, [`PLACE_CONCURRENCY`] account-regions at a time; a member account
//! that cannot be swept (its role missing, access denied) is reported in `unswept` and the
//! others are swept. Approvals and records stay central, and name the account.

pub mod config;
mod record;
mod replay;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::Value;
use sgwarden_aws::accounts::{Place, Sessions};
use sgwarden_aws::approvals::Approvals;
use sgwarden_aws::sdk::{self, Regional};
use sgwarden_aws::securityhub::SecurityHub;
use sgwarden_aws::sns::{Chat, Topic};
use sgwarden_aws::sqs::SweepQueue;
use sgwarden_aws::{AuditContext, AwsError, Ec2, RuleRecord, UnreadableGroup};
use sgwarden_core::accounts::{other_accounts, Accounts, CallerIdentity, OutOfReach};
use sgwarden_core::chat::ChatMessage;
use sgwarden_core::event::{ApiCall, GroupSelector, Principal, RuleChange};
use sgwarden_core::fanout::{self, Attempt, ItemFailure, QueueMessage};
use sgwarden_core::finding::{findings, Mode, RevokedRule, Severity, Subject};
use sgwarden_core::policy::{
    referenced_lists, succeeded, Exemption, Grants, GroupFacts, ListEntries, RevertPlan, Skip,
    Verdict, Vouched,
};
use sgwarden_core::rule::Peer;
use sgwarden_core::{ErrorType, ParseError, RuleSet, Trigger};

pub use config::{ConfigError, RevertConfig};
use record::{record_rules, Actor, RevertRecord, SCHEMA};
pub use replay::Replayed;

/// The function's name in audit lines and records.
pub const FUNCTION: &str = "revert-ingress";

/// Groups the sweep revokes on at once. EC2 answers mutating calls from a token bucket per
/// account and region (about 200 deep, refilled about 5 a second): eight in flight keep a
/// large sweep well inside the bucket's burst, and the EC2 client's adaptive retry slows the
/// sweep down, rather than failing groups, once the bucket is empty.
pub const SWEEP_CONCURRENCY: usize = 8;

/// Account-regions a central sweep covers at once. EC2 throttles each account and region on
/// its own, so places in parallel do not share a bucket; four keep the function's own
/// connections and memory small while a 100-account organisation is swept in minutes.
pub const PLACE_CONCURRENCY: usize = 4;

/// What one group's judgement can take once begun: its revoke and its record, each bounded by
/// the SDK's operation timeout (12 s), with room left to report. A sweep begins no group, and
/// no account-region, closer than this to the invocation's deadline: Lambda would kill it
/// mid-way, with nothing reported.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

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
    #[error("rules revoked, but the record could not be written: {0}")]
    RecordUnwritable(serde_json::Error),
    #[error("the clock reads before 1970: approvals cannot be judged, nothing was changed")]
    Clock,
    #[error("a replay runs only with REVERT_DRY_RUN on, so that nothing it shares with the function can write")]
    ReplayWrites,
    #[error("the invocation's deadline is near: {0}, left for the retry")]
    DeadlineNear(String),
}

impl sgwarden_lambda::FunctionError for RevertError {
    fn kind(&self) -> ErrorType {
        RevertError::kind(self)
    }
}

impl RevertError {
    /// True when trying again later may help (AWS throttled or did not answer).
    fn is_transient(&self) -> bool {
        matches!(self, RevertError::Aws(e) | RevertError::Record(e) if e.is_transient())
            || matches!(self, RevertError::DeadlineNear(_))
    }

    /// A stable name for the Lambda error type.
    pub fn kind(&self) -> ErrorType {
        match self {
            RevertError::Event(_) => ErrorType::EventNotUnderstood,
            RevertError::WrongTrigger(_) => ErrorType::WrongTrigger,
            RevertError::Aws(e) => e.kind(),
            RevertError::Record(_) | RevertError::RecordUnwritable(_) => {
                ErrorType::RecordNotPublished
            }
            RevertError::Clock => ErrorType::ClockError,
            RevertError::ReplayWrites => ErrorType::ConfigurationError,
            RevertError::DeadlineNear(_) => ErrorType::DeadlineNear,
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
    #[serde(serialize_with = "sgwarden_core::text::as_optional_text")]
    pub skipped: Option<Skip>,
    pub groups: Vec<GroupReport>,
    /// Rules an exempt principal made, recorded in the approvals table so later sweeps keep
    /// them (or, in a dry run, that would be).
    pub exempted: Vec<String>,
    /// Records published to the topic.
    pub records: usize,
    pub dry_run: bool,
    /// Member account-regions the sweep could not cover, each with the reason.
    pub unswept: Vec<Unswept>,
    /// Account-regions a fanned-out sweep sent to its queue, one message each.
    pub queued: usize,
    /// Account-regions swept from the queue's messages.
    pub places_swept: usize,
    /// Queue messages refused, each with its id and why: malformed, or a place outside the
    /// function's settings. Nothing is changed for them, and they are not received again.
    pub refused: Vec<String>,
    /// The queue messages that failed (`ReportBatchItemFailures`): received again, and after
    /// the queue's `maxReceiveCount` kept in its dead-letter queue. Only for an SQS event.
    #[serde(rename = "batchItemFailures", skip_serializing_if = "Option::is_none")]
    pub batch_item_failures: Option<Vec<ItemFailure>>,
}

/// A member account-region a sweep could not cover.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unswept {
    pub account: String,
    pub region: String,
    #[serde(serialize_with = "sgwarden_core::text::as_text")]
    pub reason: NotSwept,
}

/// Why a member account-region was not swept.
#[derive(Debug, Clone, PartialEq)]
pub enum NotSwept {
    /// No member role is set to reach it.
    OutOfReach(OutOfReach),
    /// AWS refused to let the sweep read or act there (its role missing, access denied):
    /// the answer, which a retry would not change.
    Refused(String),
}

impl std::fmt::Display for NotSwept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSwept::OutOfReach(reason) => reason.fmt(f),
            NotSwept::Refused(answer) => f.write_str(answer),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    /// The account the group is in, when known (the event's, or the one swept).
    pub account: Option<String>,
    pub region: String,
    pub group_id: String,
    /// Rules revoked (or, in a dry run, that would be).
    pub revoked: Vec<String>,
    /// Rules that stay, each with its reason.
    pub kept: Vec<KeptRule>,
    /// The revoked rules that went for a reason beyond "not allowed", each with it: the
    /// forbid entry or preset that decided, or the prefix list they reference and the
    /// entries nobody vouched for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<KeptRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeptRule {
    pub rule: String,
    #[serde(serialize_with = "sgwarden_core::text::as_text")]
    pub reason: Verdict,
}

impl sgwarden_lambda::Measured for Report {
    /// `RulesRevoked` counts rules actually revoked (none in a dry run); `RulesKept` the rules
    /// judged and kept; `EventsSkipped` an event skipped on purpose; `AccountsUnswept` the
    /// member account-regions a sweep could not cover.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let sum =
            |f: fn(&GroupReport) -> usize| -> u64 { self.groups.iter().map(|g| f(g) as u64).sum() };
        let revoked = if self.dry_run {
            0
        } else {
            sum(|g| g.revoked.len())
        };
        vec![
            ("RulesRevoked", revoked),
            ("RulesKept", sum(|g| g.kept.len())),
            ("EventsSkipped", u64::from(self.skipped.is_some())),
            ("AccountsUnswept", self.unswept.len() as u64),
            ("SweepMessagesSent", self.queued as u64),
            ("PlacesSwept", self.places_swept as u64),
            (
                "PlacesFailed",
                self.batch_item_failures
                    .as_ref()
                    .map_or(0, |f| f.len() as u64),
            ),
            ("SweepRefused", self.refused.len() as u64),
        ]
    }
}

impl Report {
    fn add(&mut self, judged: JudgedGroup) {
        self.records += usize::from(judged.published);
        self.groups.push(judged.report);
    }
}

/// What judging one group did: its report, and whether its revert record was published.
struct JudgedGroup {
    report: GroupReport,
    published: bool,
}

/// One group's judgement: the rules as EC2 holds them and why they are being judged.
struct Judged<'a> {
    account: Option<&'a str>,
    region: &'a str,
    group_id: &'a str,
    rules: RuleSet,
    call: Option<&'a ApiCall>,
    reason: &'static str,
}

impl<'a> Judged<'a> {
    /// The rules of a call in `group_id`, judged for `reason`.
    fn of_call(call: &'a ApiCall, group_id: &'a str, rules: RuleSet, reason: &'static str) -> Self {
        Self {
            account: call.account.as_deref(),
            region: &call.region,
            group_id,
            rules,
            call: Some(call),
            reason,
        }
    }
}

/// The guarded groups of one account-region with the rules the core can read, why each
/// other rule could not be read, and which groups are their VPC's default group.
struct Guarded {
    groups: Vec<(String, RuleSet)>,
    unreadable: Vec<AwsError>,
    default_groups: BTreeSet<String>,
}

/// The group a call changed and how it names the rules it changed.
struct Target {
    group_id: String,
    named: Named,
}

/// How a call names the rules it changed.
enum Named {
    /// The rules an authorize created, with their `sgr-` ids (the response's claim).
    Created(RuleSet),
    /// The `sgr-` ids a modify changed.
    Modified(Vec<String>),
    /// By shape only (older events, other producers): the exact rules requested.
    Shapes(RuleSet),
}

/// The rules a call names, as EC2 holds them now.
struct NamedRules {
    /// In the named group, in their current shape.
    now: RuleSet,
    /// Rules the call says it created whose ids EC2 no longer knows anywhere, in the shape
    /// the event gives. Revoking a rule that does not exist changes nothing, so these are
    /// judged as claimed: that lets a retry after a revoke whose record could not be
    /// published find them "already gone" and publish the record.
    gone: RuleSet,
}

/// How the function knows its own role, so that its own calls are never judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnRole {
    /// Given: the template sets `SGWARDEN_FUNCTION_ROLE_ARN` to the function's role, so no
    /// call is made at cold start.
    Known(CallerIdentity),
    /// Asked of STS (`GetCallerIdentity`) the first time an event needs it, then kept.
    AskSts,
    /// Nobody's calls are the function's own: the CLI, acting as an operator.
    Unknown,
}

/// Clients, settings and the compiled policy, built once at cold start and borrowed by
/// every invocation.
pub struct RevertIngress {
    config: RevertConfig,
    own_role: OwnRole,
    /// Who the function is, and its member-role sessions in other accounts.
    sessions: Sessions,
    sdk: SdkConfig,
    region: String,
    /// EC2 clients by region: calls are reverted in the region they were made in.
    ec2: Regional<Ec2>,
    approvals: Option<Approvals>,
    topic: Option<Topic>,
    chat: Chat,
    /// Security Hub in the own account, by region (`SECURITY_HUB=true` only).
    hub: Option<Regional<SecurityHub>>,
    /// The queue of a fanned-out sweep (`SGWARDEN_SWEEP_QUEUE_URL`).
    queue: Option<SweepQueue>,
    /// The organisation's active accounts and when they were read, kept for
    /// [`ORGANIZATION_TTL`] so that a fanned-out sweep's messages cost no `ListAccounts` each.
    organization: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

/// How long the organisation's accounts, once read, decide a queue message's claim.
const ORGANIZATION_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl RevertIngress {
    /// `own_role` says how the function recognises its own calls. No AWS call is made here.
    pub fn new(config: RevertConfig, sdk: &SdkConfig, own_role: OwnRole) -> Self {
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
            chat: Chat::new(sdk, config.chat_topic_arn.as_deref()),
            hub: config
                .security_hub
                .then(|| Regional::new(sdk, SecurityHub::new)),
            ec2: Regional::new(sdk, Ec2::new),
            sessions: Sessions::new(
                sdk,
                FUNCTION,
                config.reach.member_role.clone(),
                match &own_role {
                    OwnRole::Known(identity) => Some(identity.arn().to_string()),
                    OwnRole::AskSts | OwnRole::Unknown => None,
                },
            ),
            queue: config
                .sweep_queue_url
                .as_deref()
                .map(|url| SweepQueue::new(sdk, url)),
            organization: std::sync::Mutex::new(None),
            region,
            own_role,
            sdk: sdk.clone(),
            config,
        }
    }

    /// Keeps the own account as Lambda names it, so that telling the own account's events
    /// from a member account's needs no STS call.
    pub fn learn_own_account(&self, account: &str) {
        self.sessions.learn_own_account(account);
    }

    /// Whether this function made the call: its own role (asking STS once if so
    /// configured), or any session of the member role. Not knowing its own role is safe: the
    /// function only revokes, and revocations are not among its triggers.
    async fn is_own_call(&self, principal: &Principal) -> bool {
        if self
            .sessions
            .member_role()
            .is_some_and(|role| role.is_session(principal))
        {
            return true;
        }
        match &self.own_role {
            OwnRole::Known(identity) => identity.is(principal),
            OwnRole::Unknown => false,
            OwnRole::AskSts => match self.sessions.own_arn().await {
                Ok(arn) => CallerIdentity::new(arn).is(principal),
                Err(error) => {
                    tracing::warn!(error = %error, "own role unknown; own calls cannot be recognised");
                    false
                }
            },
        }
    }

    /// The EC2 client that acts in `account` (the own account when `None`) in `region`, or
    /// why the account is not acted on.
    async fn ec2_in(
        &self,
        account: Option<&str>,
        region: &str,
    ) -> Result<Result<Ec2, OutOfReach>, AwsError> {
        Ok(match self.sessions.place(account, region).await? {
            Place::Own => Ok(self.ec2.get(region)),
            Place::Member { sdk, .. } => Ok(Ec2::new(&sdk)),
            Place::OutOfReach(reason) => Err(reason),
        })
    }

    /// Handles one event. `now` decides which approvals are still valid.
    pub async fn handle(&self, event: &Value, now: SystemTime) -> Result<Report, RevertError> {
        self.handle_until(event, now, None).await
    }

    /// Handles one event that Lambda ends at `deadline`: a sweep begins no group within
    /// [`DEADLINE_MARGIN`] of it, and fails what it left, to be swept again.
    pub async fn handle_until(
        &self,
        event: &Value,
        now: SystemTime,
        deadline: Option<SystemTime>,
    ) -> Result<Report, RevertError> {
        if let Some(messages) = fanout::queue_messages(event) {
            let messages = messages.map_err(|reason| ParseError::new("Records", reason))?;
            return self
                .on_messages(&messages, epoch_seconds(now)?, deadline)
                .await;
        }
        let trigger = Trigger::parse(event)?;
        let now = epoch_seconds(now)?;
        match trigger {
            Trigger::ApiCall(call) => match self.on_call(&call, now).await {
                // The group the call changed is gone (its stack torn down, say): nothing is
                // left to revert, and a retry would get the same answer.
                Err(RevertError::Aws(error)) if error.is_gone() => {
                    let report = self.report("api-call", Some(&call.event_id));
                    Ok(skipped(report, &call, Skip::GroupGone(error.to_string())))
                }
                other => other,
            },
            Trigger::Scheduled(_) => self.sweep(now, deadline).await,
            other => Err(RevertError::WrongTrigger(other.kind())),
        }
    }

    fn report(&self, trigger: &'static str, event_id: Option<&str>) -> Report {
        Report {
            trigger,
            event_id: event_id.map(str::to_string),
            dry_run: self.config.dry_run,
            ..Report::default()
        }
    }

    /// One CloudTrail call: the steps of the module documentation, in order.
    async fn on_call(&self, call: &ApiCall, now: u64) -> Result<Report, RevertError> {
        let mut report = self.report("api-call", Some(&call.event_id));
        let change = match self.succeeded_change(call).await {
            Ok(change) => change,
            Err(reason) => return Ok(skipped(report, call, reason)),
        };
        let ec2 = match self.ec2_in(call.account.as_deref(), &call.region).await? {
            Ok(ec2) => ec2,
            Err(reason) => return Ok(skipped(report, call, Skip::OutOfReach(reason))),
        };
        if let RuleChange::ListModify {
            list_id,
            added,
            restored,
            ..
        } = change
        {
            return self
                .on_list_change(call, &ec2, list_id, added, *restored, now)
                .await;
        }
        let target = match self.target(&ec2, change).await? {
            Ok(target) => target,
            Err(reason) => return Ok(skipped(report, call, reason)),
        };
        let (guarded, named) = tokio::try_join!(
            self.guards(&ec2, &target.group_id),
            named_rules(&ec2, &target)
        )?;
        let facts = match guarded {
            Ok(facts) => facts,
            Err(reason) => return Ok(skipped(report, call, reason)),
        };
        let policy = &self.config.policy;
        let mut known = self.known_of(&facts);
        let (rules, reason) = if policy.exempts(&call.principal) {
            // What the exempt call made, in the shape it made it and inside its bounds,
            // stands; a rule reshaped since (or outside the bounds) is judged like anyone's,
            // and so is one a forbid entry may match: no exemption keeps a forbidden rule.
            // Judged with what is recorded here (a dry run records nothing).
            let split =
                policy.judge_exempt_call(call, change, &target.group_id, &named.now, &mut known);
            let exempt = self
                .record_exemptions(call, &target.group_id, &split.exemptions, &mut report)
                .await?;
            let judged = split.judged;
            if judged.is_empty() {
                return Ok(skipped(report, call, exempt));
            }
            let texts: Vec<String> = judged.texts();
            tracing::warn!(group = %target.group_id, exempted = %report.exempted.join("; "), judged = %texts.join("; "), "an exempt call's rules judged: reshaped since the call, or outside the principal's bounds");
            (judged, EXEMPT_REASON)
        } else {
            let mut rules = named.now;
            rules.extend_from(&named.gone);
            (rules, revert_reason(change))
        };
        if rules.is_empty() {
            // Removed since (by hand, or with the group): there is nothing left to judge.
            let group_id = target.group_id;
            return Ok(skipped(report, call, Skip::RulesGone { group_id }));
        }
        let judged = Judged::of_call(call, &target.group_id, rules, reason);
        let grants = self.grants_for(&judged, &ec2, known, now).await?;
        report.add(self.judge(judged, &ec2, &grants, now).await?);
        Ok(report)
    }

    /// The change a call made, or why it is skipped: a failed call changed nothing, and this
    /// function's own calls are its reverts.
    async fn succeeded_change<'c>(&self, call: &'c ApiCall) -> Result<&'c RuleChange, Skip> {
        let change = succeeded(&call.outcome)?;
        if self.is_own_call(&call.principal).await {
            return Err(Skip::OwnCall);
        }
        Ok(change)
    }

    /// The group the change is in and how it names its rules, or why it is skipped (a
    /// direction the policy does not guard, a group outside the scope by its id alone).
    async fn target(
        &self,
        ec2: &Ec2,
        change: &RuleChange,
    ) -> Result<Result<Target, Skip>, AwsError> {
        let policy = &self.config.policy;
        let target = match change {
            RuleChange::Authorize {
                group,
                direction,
                requested,
                created,
            } => {
                if let Some(skip) = policy.skips_direction(*direction) {
                    return Ok(Err(skip));
                }
                let group_id = match group {
                    GroupSelector::Id(id) => id.clone(),
                    GroupSelector::Name(name) => ec2.group_id_by_name(name).await?,
                };
                let named = match created.rule_ids() {
                    Some(ids) if !ids.is_empty() => Named::Created(created.clone()),
                    _ => Named::Shapes(requested.clone()),
                };
                Target { group_id, named }
            }
            // The event has the new definition but not the direction: the rules are read as
            // they are now, by id, and judged on that shape, whoever made them before.
            RuleChange::Modify { group_id, rules } => Target {
                group_id: group_id.clone(),
                named: Named::Modified(rules.iter().map(|r| r.rule_id.clone()).collect()),
            },
            // Handled before any group is named (`on_list_change`).
            RuleChange::ListModify { list_id, .. } => {
                let list_id = list_id.clone();
                return Ok(Err(Skip::NotAGroup { list_id }));
            }
        };
        Ok(match policy.skips_group_id(&target.group_id) {
            Some(skip) => Err(skip),
            None => Ok(target),
        })
    }

    /// What is known of the group when the policy guards it, `Ok(Err(skip))` when it does
    /// not. Reads the group only when the policy needs its name, VPC or tags.
    async fn guards(
        &self,
        ec2: &Ec2,
        group_id: &str,
    ) -> Result<Result<GroupFacts, Skip>, AwsError> {
        let policy = &self.config.policy;
        let facts = if policy.needs_group_details() {
            ec2.group_facts(group_id).await?
        } else {
            GroupFacts {
                group_id: group_id.to_string(),
                ..GroupFacts::default()
            }
        };
        Ok(match policy.skips_group(&facts) {
            Some(skip) => Err(skip),
            None => Ok(facts),
        })
    }

    /// What is known of a guarded group before the approvals table is read: that it is its
    /// VPC's default group, when the policy forbids the rules of such groups.
    fn known_of(&self, facts: &GroupFacts) -> Grants {
        let mut known = Grants::default();
        if facts.is_default() && self.config.policy.forbids_default_group_rules() {
            known.default_groups.insert(facts.group_id.clone());
        }
        known
    }

    /// Records the rules an exempt principal's call made, as EC2 holds them now, so later
    /// sweeps keep them in exactly that shape. Returns why the call is not judged
    /// ([`Skip::Exempt`]).
    async fn record_exemptions(
        &self,
        call: &ApiCall,
        group_id: &str,
        exemptions: &[Exemption],
        report: &mut Report,
    ) -> Result<Skip, RevertError> {
        let by = call.principal.name();
        report.exempted = exemptions.iter().map(|e| e.rule.to_string()).collect();
        // The configuration refuses exempt principals without a table (`docs/guide/src/trust.md`), so
        // the last arm is only a fallback that says what it does.
        match (&self.approvals, self.config.dry_run) {
            (_, true) => {
                tracing::info!(group = group_id, exempted = %report.exempted.join("; "), "dry run: exemptions not recorded");
            }
            (Some(table), false) => table.record_exemptions(exemptions, FUNCTION).await?,
            (None, false) if exemptions.is_empty() => {}
            (None, false) => {
                tracing::warn!(group = group_id, "no approvals table: the exempt change is kept now but not recorded, and the next sweep judges it like any other");
            }
        }
        Ok(Skip::Exempt { by })
    }

    /// The grants that may keep a rule an event names: the group's own, read only when a
    /// rule is not allowed by the policy itself (the sweep reads every grant once), and what
    /// the prefix lists hold that the rules kept by their shape reference.
    async fn grants_for(
        &self,
        judged: &Judged<'_>,
        ec2: &Ec2,
        mut grants: Grants,
        now: u64,
    ) -> Result<Grants, AwsError> {
        self.add_lists_needed(judged, ec2, &mut grants, now).await?;
        let Some(table) = &self.approvals else {
            return Ok(grants);
        };
        let plan = self
            .config
            .policy
            .plan(judged.group_id, &judged.rules, &grants, now);
        if plan.revoke.is_empty() {
            return Ok(grants);
        }
        let table_grants = table.for_group(judged.group_id).await?;
        grants.approvals = table_grants.approvals;
        grants.exemptions.extend(table_grants.exemptions);
        // A rule kept by an approval may stand on a list not read yet.
        self.add_lists_needed(judged, ec2, &mut grants, now).await?;
        Ok(grants)
    }

    /// Adds the prefix lists of the rules that `grants` keep by their shape and that are not
    /// read yet (judged "not read").
    async fn add_lists_needed(
        &self,
        judged: &Judged<'_>,
        ec2: &Ec2,
        grants: &mut Grants,
        now: u64,
    ) -> Result<(), AwsError> {
        let plan = self
            .config
            .policy
            .plan(judged.group_id, &judged.rules, grants, now);
        let needed: BTreeSet<String> = referenced_lists(
            &self.config.policy,
            plan.reasons.iter().map(|(rule, _)| rule),
        )
        .into_iter()
        .filter(|id| grants.lists.get(id).is_none())
        .collect();
        self.add_lists(ec2, &needed, grants).await
    }

    /// Adds to `grants` what the prefix lists `list_ids` hold now and, for each
    /// customer-managed one, the entries vouched for in it: its record in the approvals table,
    /// or, when it has none, what it holds now, recorded (trust on first use; a dry run
    /// records nothing and judges as if it had). Without a table nothing is vouched for: a
    /// list's entries must be kept by the policy on their own.
    async fn add_lists(
        &self,
        ec2: &Ec2,
        list_ids: &BTreeSet<String>,
        grants: &mut Grants,
    ) -> Result<(), AwsError> {
        if list_ids.is_empty() {
            return Ok(());
        }
        let lists = ec2.prefix_lists(list_ids).await?;
        if let Some(table) = &self.approvals {
            for (list_id, entries) in lists.customer() {
                if grants.vouched.iter().any(|v| v.list_id == list_id) {
                    continue;
                }
                let vouched = match table.vouched(list_id).await? {
                    Some(vouched) => vouched,
                    None => {
                        let first = Vouched::first_use(
                            list_id,
                            entries,
                            &BTreeSet::new(),
                            FUNCTION,
                            FIRST_USE,
                        );
                        self.record_vouched(&first, FIRST_USE).await?;
                        first
                    }
                };
                grants.vouched.push(vouched);
            }
        }
        grants.lists.extend(lists);
        Ok(())
    }

    /// Writes a prefix list's vouched entries, or, in a dry run, logs what would be written.
    async fn record_vouched(&self, vouched: &Vouched, cause: &str) -> Result<(), AwsError> {
        let Some(table) = &self.approvals else {
            return Ok(());
        };
        if self.config.dry_run {
            let entries: Vec<String> = vouched.entries.iter().map(ToString::to_string).collect();
            tracing::info!(prefix_list = %vouched.list_id, entries = %entries.join(", "), cause, "dry run: entries not vouched for");
            return Ok(());
        }
        table.record_vouched(vouched, FUNCTION, cause).await
    }

    /// A `ModifyManagedPrefixList` call: every guarded rule on the list, in every group in
    /// scope, is judged by what the list holds now. The list's record follows the change
    /// first: entries gone are no longer vouched for, the entries an exempt principal added
    /// are, and a list with no record yet starts from what it holds but what this call
    /// added. An AWS-managed list is left alone; a list no guarded rule and no allow entry
    /// references is skipped.
    ///
    /// A `RestoreManagedPrefixListVersion` names no entries: every entry the list holds now is
    /// taken as added by the call.
    async fn on_list_change(
        &self,
        call: &ApiCall,
        ec2: &Ec2,
        list_id: &str,
        added: &BTreeSet<Peer>,
        restored: bool,
        now: u64,
    ) -> Result<Report, RevertError> {
        let report = self.report("api-call", Some(&call.event_id));
        let policy = &self.config.policy;
        let ids = BTreeSet::from([list_id.to_string()]);
        let (lists, guarded) = tokio::try_join!(ec2.prefix_lists(&ids), self.guarded_rules(ec2))?;
        let Guarded {
            groups,
            unreadable,
            default_groups,
        } = guarded;
        for error in &unreadable {
            tracing::error!(error = %error, list = list_id, "a rule cannot be read and was not judged");
        }
        let on_list = |rule: &sgwarden_core::Rule| {
            policy.guards_direction(rule.direction)
                && matches!(&rule.peer, Peer::PrefixList(id) if id == list_id)
        };
        let referencing: Vec<String> = groups
            .iter()
            .filter(|(_, rules)| rules.rules().any(on_list))
            .map(|(group_id, _)| group_id.clone())
            .collect();
        if referencing.is_empty() && !policy.names_list(list_id) {
            let list_id = list_id.to_string();
            return Ok(skipped(report, call, Skip::ListUnreferenced { list_id }));
        }
        let mut grants = Grants::default();
        match lists.get(list_id) {
            Some(ListEntries::AwsManaged) => {
                let list_id = list_id.to_string();
                return Ok(skipped(report, call, Skip::ListAwsManaged { list_id }));
            }
            Some(ListEntries::Customer(entries)) => {
                let added = if restored { entries } else { added };
                grants.vouched = self
                    .follow_list(call, list_id, entries, added)
                    .await?
                    .into_iter()
                    .collect();
            }
            // Judged as it is: no rule stands on a list that cannot be read.
            Some(ListEntries::Unreadable(_)) | None => {}
        }
        grants.lists = lists;
        if policy.forbids_default_group_rules() {
            grants.default_groups = default_groups;
        }
        self.judge_list_rules(call, ec2, &referencing, on_list, grants, report, now)
            .await
    }

    /// The record of a list's vouched entries after the call: read, moved on with the list
    /// ([`Vouched::after_change`], or [`Vouched::first_use`] without this call's additions
    /// unless an exempt principal made them), written when it changed.
    async fn follow_list(
        &self,
        call: &ApiCall,
        list_id: &str,
        entries: &BTreeSet<Peer>,
        added: &BTreeSet<Peer>,
    ) -> Result<Option<Vouched>, AwsError> {
        let Some(table) = &self.approvals else {
            return Ok(None);
        };
        let exempt = self.config.policy.exempts(&call.principal);
        let none = BTreeSet::new();
        let by = call.principal.name();
        let before = table.vouched(list_id).await?;
        let next = match &before {
            None if exempt => Vouched::first_use(list_id, entries, &none, &by, &call.event_id),
            None => Vouched::first_use(list_id, entries, added, FUNCTION, &call.event_id),
            Some(vouched) => vouched.after_change(
                entries,
                if exempt { added } else { &none },
                &by,
                &call.event_id,
            ),
        };
        if before.as_ref() != Some(&next) {
            self.record_vouched(&next, &format!("event {}", call.event_id))
                .await?;
        }
        Ok(Some(next))
    }

    /// Judges the rules on a list in each of `groups` (read again with their ids, so they are
    /// revoked by id), with each group's own grants.
    #[allow(clippy::too_many_arguments)]
    async fn judge_list_rules(
        &self,
        call: &ApiCall,
        ec2: &Ec2,
        groups: &[String],
        on_list: impl Fn(&sgwarden_core::Rule) -> bool,
        grants: Grants,
        mut report: Report,
        now: u64,
    ) -> Result<Report, RevertError> {
        if groups.is_empty() {
            return Ok(skipped(report, call, Skip::ListUnused));
        }
        // A rule the core cannot read beside the rules on the list holds nothing up: what
        // can be read is judged first, then the invocation fails naming the odd rule.
        let read = ec2.readable_rules_of_groups(groups).await?;
        let records = read.records;
        for group_id in groups {
            let rules: RuleSet = rules_in(&records, group_id, None)
                .iter()
                .filter(|(rule, _)| on_list(rule))
                .map(|(rule, info)| (rule.clone(), info.clone()))
                .collect();
            let mut group_grants = match &self.approvals {
                Some(table) => table.for_group(group_id).await?,
                None => Grants::default(),
            };
            group_grants.vouched.clone_from(&grants.vouched);
            group_grants.lists = grants.lists.clone();
            group_grants
                .default_groups
                .clone_from(&grants.default_groups);
            let judged = Judged {
                account: call.account.as_deref(),
                region: &call.region,
                group_id,
                rules,
                call: Some(call),
                reason: LIST_REASON,
            };
            report.add(self.judge(judged, ec2, &group_grants, now).await?);
        }
        if let Some(error) = read.unreadable.into_iter().next() {
            tracing::error!(error = %error, revoked = %report.groups.iter().flat_map(|g| &g.revoked).cloned().collect::<Vec<_>>().join("; "), "a rule cannot be read and was not judged; every readable rule on the list was");
            return Err(error.into());
        }
        Ok(report)
    }

    /// The sweep's grants for one account-region before the table's: what the prefix lists
    /// its guarded rules reference hold (and their vouched entries), and its default groups
    /// when the policy forbids their rules.
    async fn place_grants(
        &self,
        ec2: &Ec2,
        groups: &[(String, RuleSet)],
        default_groups: &BTreeSet<String>,
    ) -> Result<Grants, AwsError> {
        let policy = &self.config.policy;
        let lists = referenced_lists(policy, groups.iter().flat_map(|(_, rules)| rules.rules()));
        let mut place = Grants::default();
        if policy.forbids_default_group_rules() {
            place.default_groups.clone_from(default_groups);
        }
        self.add_lists(ec2, &lists, &mut place).await?;
        Ok(place)
    }

    /// Adds the approvals and exemption records of the groups that hold a rule the policy
    /// and `grants` alone would revoke: one consistent `Query` per such group,
    /// [`SWEEP_CONCURRENCY`] at a time. A grant only ever keeps a rule, so a group the
    /// plan without the table leaves whole needs none. What an account-region reads grows
    /// with its own offending groups, never with the organisation's table.
    async fn add_table_grants(
        &self,
        groups: &[(String, RuleSet)],
        grants: &mut Grants,
        now: u64,
    ) -> Result<(), AwsError> {
        let Some(table) = &self.approvals else {
            return Ok(());
        };
        let policy = &self.config.policy;
        let offending: Vec<&str> = groups
            .iter()
            .filter(|(group_id, rules)| {
                !policy.plan(group_id, rules, grants, now).revoke.is_empty()
            })
            .map(|(group_id, _)| group_id.as_str())
            .collect();
        let read: Vec<Grants> = stream::iter(offending)
            .map(|group_id| table.for_group(group_id))
            .buffered(SWEEP_CONCURRENCY)
            .try_collect()
            .await?;
        for group in read {
            grants.approvals.extend(group.approvals);
            grants.exemptions.extend(group.exemptions);
        }
        Ok(())
    }

    /// Plans one group's rules against the policy and its grants, revokes what violates it
    /// and publishes the record.
    async fn judge(
        &self,
        judged: Judged<'_>,
        ec2: &Ec2,
        grants: &Grants,
        now: u64,
    ) -> Result<JudgedGroup, RevertError> {
        let plan = self
            .config
            .policy
            .plan(judged.group_id, &judged.rules, grants, now);
        let mut group = JudgedGroup {
            report: group_report(&judged, &plan),
            published: false,
        };
        if plan.revoke.is_empty() {
            return Ok(group);
        }
        if self.config.dry_run {
            tracing::warn!(
                group = judged.group_id,
                region = judged.region,
                would_revoke = %group.report.revoked.join("; "),
                reason = %judged.reason,
                "dry run: would revoke"
            );
            self.tell_security_hub(&judged, &plan, &plan.revoke, grants, Mode::WouldRevert, now)
                .await;
            return Ok(group);
        }
        group.report.revoked = self.revoke(&judged, ec2, &plan).await?;
        let gone: RuleSet = plan
            .revoke
            .iter()
            .filter(|(rule, _)| group.report.revoked.contains(&rule.to_string()))
            .map(|(rule, info)| (rule.clone(), info.clone()))
            .collect();
        self.tell_security_hub(&judged, &plan, &gone, grants, Mode::Reverted, now)
            .await;
        if let Some(topic) = &self.topic {
            let mut record = revert_record(&judged, &plan.revoke, now);
            record.reason = with_verdicts(record.reason, &plan.reasons);
            let message = serde_json::to_string(&record).map_err(RevertError::RecordUnwritable)?;
            topic
                .publish(&record.subject(), &message)
                .await
                .map_err(RevertError::Record)?;
            group.published = true;
        }
        self.chat.tell(&revert_notice(&judged, &group.report)).await;
        Ok(group)
    }

    /// Imports the findings for `rules` of the judged group into Security Hub, in the
    /// group's account and region, when `SECURITY_HUB=true`. Best effort: a finding that
    /// cannot be imported is logged, and the revert stands.
    async fn tell_security_hub(
        &self,
        judged: &Judged<'_>,
        plan: &RevertPlan,
        rules: &RuleSet,
        grants: &Grants,
        mode: Mode,
        now: u64,
    ) {
        let Some(own) = &self.hub else {
            return;
        };
        if rules.is_empty() {
            return;
        }
        let (hub, account) = match self.sessions.place(judged.account, judged.region).await {
            Ok(Place::Member { sdk, account }) => (SecurityHub::new(&sdk), account),
            Ok(Place::Own) => {
                let account = match judged.account {
                    Some(account) => Ok(account.to_string()),
                    None => self.sessions.own_account().await.map(str::to_string),
                };
                match account {
                    Ok(account) => (own.get(judged.region), account),
                    Err(error) => {
                        tracing::warn!(error = %error, "findings not imported: the account is unknown; the revert stands");
                        return;
                    }
                }
            }
            Ok(Place::OutOfReach(reason)) => {
                tracing::warn!(reason = %reason, "findings not imported; the revert stands");
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "findings not imported; the revert stands");
                return;
            }
        };
        let revoked: Vec<RevokedRule> = rules
            .rules()
            .map(|rule| {
                let why = plan
                    .reasons
                    .iter()
                    .find(|(r, _)| r == rule)
                    .map_or_else(|| Verdict::Violates.to_string(), |(_, v)| v.to_string());
                let entries: Option<Vec<Peer>> = match &rule.peer {
                    Peer::PrefixList(list) => match grants.lists.get(list) {
                        Some(ListEntries::Customer(entries)) => {
                            Some(entries.iter().cloned().collect())
                        }
                        _ => None,
                    },
                    _ => None,
                };
                RevokedRule {
                    severity: Severity::of(rule, entries.as_deref()),
                    why,
                    rule: rule.clone(),
                }
            })
            .collect();
        let subject = Subject {
            account,
            region: judged.region.to_string(),
            group_id: judged.group_id.to_string(),
            actor: judged.call.and_then(|c| c.principal.arn.clone()),
            event_id: judged.call.map(|c| c.event_id.clone()),
        };
        let at = i64::try_from(now)
            .ok()
            .and_then(|secs| chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0))
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        hub.tell(&findings(&subject, &revoked, mode, &at)).await;
    }

    /// Revokes `rules` of the judged group; returns what is gone now.
    async fn revoke(
        &self,
        judged: &Judged<'_>,
        ec2: &Ec2,
        plan: &RevertPlan,
    ) -> Result<Vec<String>, AwsError> {
        let trigger = judged
            .call
            .map_or_else(|| "sweep".to_string(), |c| format!("event {}", c.event_id));
        let cause = match judged.account {
            Some(account) => format!("{trigger} in account {account}"),
            None => trigger,
        };
        let cause = with_verdicts(cause, &plan.reasons);
        let applied = ec2
            .revoke(
                judged.group_id,
                &plan.revoke,
                &AuditContext {
                    function: FUNCTION,
                    cause,
                },
            )
            .await?;
        Ok(applied
            .removed
            .iter()
            .chain(&applied.already_gone)
            .map(ToString::to_string)
            .collect())
    }

    /// The sweep: every group in scope of every account-region it covers, every rule
    /// judged, violations revoked. A sweep needs a scope: with none, it would judge every
    /// group of the account, default VPC egress rules included, so it refuses and says so.
    ///
    /// In each account-region it costs what EC2 cannot do with less: the scope's groups with
    /// all their rules from one paginated `DescribeSecurityGroups`, then one revoke per
    /// offending group, by permission, at most [`SWEEP_CONCURRENCY`] at a time. Rule ids are
    /// read only for a group holding a rule of the shape of an exemption recorded for one id.
    /// The approvals table is read per group, only for the groups the policy alone would
    /// revoke on (see [`Self::add_table_grants`]).
    async fn sweep(&self, now: u64, deadline: Option<SystemTime>) -> Result<Report, RevertError> {
        let mut report = self.report("sweep", None);
        // An allow list over every group would revoke every default egress rule; a policy
        // that only forbids keeps everything it does not name, so it may sweep everything.
        let policy = &self.config.policy;
        if let Some(skip) = policy.skips_sweep() {
            tracing::warn!(reason = %skip, "sweep skipped");
            report.skipped = Some(skip);
            return Ok(report);
        }
        if let Some(queue) = &self.queue {
            let places: Vec<fanout::Place> = self
                .sweep_places()
                .await?
                .iter()
                .map(|p| fanout::Place::new(p.account.clone(), p.region.clone()))
                .collect();
            if fanout::fans_out(true, &places) {
                let calls = queue.send(&places).await?;
                tracing::info!(queue = %queue.url(), places = places.len(), calls, "sweep fanned out: one message per account-region");
                report.queued = places.len();
                return Ok(report);
            }
        }
        let places = self.sweep_places().await?;
        let outcomes: Vec<_> = stream::iter(&places)
            .map(|place| self.sweep_place(place, now, deadline, Attempt::At(now)))
            .buffered(PLACE_CONCURRENCY)
            .collect()
            .await;
        let mut failed = None;
        for (place, outcome) in places.iter().zip(outcomes) {
            match outcome {
                Ok(swept) => {
                    swept
                        .judged
                        .into_iter()
                        .for_each(|judged| report.add(judged));
                    if let Some(reason) = swept.skipped {
                        report
                            .unswept
                            .push(place.unswept(NotSwept::OutOfReach(reason)));
                    }
                    if let Some(error) = swept.failed {
                        failed.get_or_insert(error);
                    }
                }
                // A member account that cannot be swept (its role missing, access denied) is
                // reported; the others are swept, and a retry would not help.
                Err(error) if place.member && !error.is_transient() => {
                    tracing::error!(account = %place.account, region = %place.region, error = %error, "account not swept");
                    report
                        .unswept
                        .push(place.unswept(NotSwept::Refused(error.to_string())));
                }
                Err(error) => {
                    tracing::error!(account = %place.account, region = %place.region, error = %error, "sweep failed");
                    failed.get_or_insert(error);
                }
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// The messages of a fanned-out sweep, one account-region each. A message is a claim:
    /// its place is swept only when the function's own settings cover it. A malformed or
    /// refused message changes nothing, is logged at error and counted (`SweepRefused`), and
    /// is reported processed: receiving it again could not make it acceptable. A place that
    /// fails (unreachable, an error, the deadline) is reported in `batchItemFailures`, alone.
    async fn on_messages(
        &self,
        messages: &[QueueMessage],
        now: u64,
        deadline: Option<SystemTime>,
    ) -> Result<Report, RevertError> {
        let mut report = self.report("sweep-message", None);
        let mut failures = Vec::new();
        if let Some(skip) = self.config.policy.skips_sweep() {
            tracing::warn!(reason = %skip, "sweep messages skipped");
            report.skipped = Some(skip);
            report.batch_item_failures = Some(failures);
            return Ok(report);
        }
        let own = self.sessions.own_account().await?.to_string();
        for message in messages {
            let place = match fanout::parse_body(&message.body) {
                Ok(place) => place,
                Err(error) => {
                    tracing::error!(message_id = %message.message_id, error = %error, "sweep message refused: nothing changed");
                    report
                        .refused
                        .push(format!("{}: {error}", message.message_id));
                    continue;
                }
            };
            let organization = match &self.config.reach.accounts {
                Accounts::Organization if place.account != own => {
                    Some(self.organization_accounts().await?)
                }
                _ => None,
            };
            if let Err(refused) = fanout::claim(
                &place,
                &own,
                &self.region,
                &self.config.reach,
                organization.as_deref(),
            ) {
                tracing::error!(message_id = %message.message_id, account = %place.account, region = %place.region, reason = %refused, "sweep message refused: the place is outside this function's settings; nothing changed");
                report
                    .refused
                    .push(format!("{}: {place}: {refused}", message.message_id));
                continue;
            }
            let sweep_place = SweepPlace {
                member: place.account != own,
                account: place.account.clone(),
                region: place.region.clone(),
            };
            let attempt = Attempt::Receive(message.receive_count);
            let failed = match self.sweep_place(&sweep_place, now, deadline, attempt).await {
                Ok(swept) => {
                    swept
                        .judged
                        .into_iter()
                        .for_each(|judged| report.add(judged));
                    if let Some(reason) = swept.skipped {
                        report
                            .unswept
                            .push(sweep_place.unswept(NotSwept::OutOfReach(reason)));
                        true
                    } else if let Some(error) = swept.failed {
                        tracing::error!(account = %place.account, region = %place.region, error = %error, "account-region partly swept; its message is received again");
                        true
                    } else {
                        false
                    }
                }
                Err(error) => {
                    tracing::error!(message_id = %message.message_id, account = %place.account, region = %place.region, error = %error, "account-region not swept; its message is received again");
                    // Only AWS's refusal is a place out of reach; a timeout or the deadline
                    // is not the member role's fault.
                    if !error.is_transient() {
                        report
                            .unswept
                            .push(sweep_place.unswept(NotSwept::Refused(error.to_string())));
                    }
                    true
                }
            };
            if failed {
                failures.push(ItemFailure {
                    item_identifier: message.message_id.clone(),
                });
            } else {
                report.places_swept += 1;
            }
        }
        report.batch_item_failures = Some(failures);
        Ok(report)
    }

    /// The organisation's active accounts, read at most every [`ORGANIZATION_TTL`].
    async fn organization_accounts(&self) -> Result<Vec<String>, AwsError> {
        let fresh = |kept: &Option<(std::time::Instant, Vec<String>)>| {
            kept.as_ref()
                .filter(|(at, _)| at.elapsed() < ORGANIZATION_TTL)
                .map(|(_, accounts)| accounts.clone())
        };
        if let Some(accounts) = fresh(&self.organization.lock().unwrap_or_else(|p| p.into_inner()))
        {
            return Ok(accounts);
        }
        let accounts = sgwarden_aws::accounts::organization_accounts(&self.sdk).await?;
        *self.organization.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), accounts.clone()));
        Ok(accounts)
    }

    /// Every account-region the sweep covers: the own account, then `SGWARDEN_ACCOUNTS`
    /// (listed, or the organisation's active accounts), each in every sweep region.
    async fn sweep_places(&self) -> Result<Vec<SweepPlace>, AwsError> {
        let reach = &self.config.reach;
        let own = self.sessions.own_account().await?.to_string();
        let members = match &reach.accounts {
            Accounts::None => Vec::new(),
            Accounts::Listed(ids) => other_accounts(ids, &own),
            Accounts::Organization => other_accounts(
                &sgwarden_aws::accounts::organization_accounts(&self.sdk).await?,
                &own,
            ),
        };
        let regions = reach.regions_or(&self.region);
        Ok(std::iter::once((own, false))
            .chain(members.into_iter().map(|account| (account, true)))
            .flat_map(|(account, member)| {
                regions.iter().map(move |region| SweepPlace {
                    account: account.clone(),
                    region: region.clone(),
                    member,
                })
            })
            .collect())
    }

    /// One account-region of the sweep: its guarded groups judged, [`SWEEP_CONCURRENCY`] at a
    /// time. An error reading the place fails it; one group's failure does not stop the
    /// others. Near the deadline no group is begun: those left fail the place, reported.
    /// The groups are begun from the one `attempt` says, so a retry begins where the try
    /// before could not reach.
    async fn sweep_place(
        &self,
        place: &SweepPlace,
        now: u64,
        deadline: Option<SystemTime>,
        attempt: Attempt,
    ) -> Result<PlaceSwept, RevertError> {
        let not_begun = || {
            RevertError::DeadlineNear(format!(
                "account {} in {} not begun",
                place.account, place.region
            ))
        };
        if deadline_near(deadline) {
            return Err(not_begun());
        }
        let ec2 = match self.ec2_in(Some(&place.account), &place.region).await? {
            Ok(ec2) => ec2,
            Err(reason) => return Ok(PlaceSwept::skipped(reason)),
        };
        let guarded = self.guarded_rules(&ec2).await?;
        if deadline_near(deadline) {
            return Err(not_begun());
        }
        let mut failures = guarded.unreadable;
        let mut grants = self
            .place_grants(&ec2, &guarded.groups, &guarded.default_groups)
            .await?;
        self.add_table_grants(&guarded.groups, &mut grants, now)
            .await?;
        let (mut groups, odd) = with_rule_ids_where_needed(&ec2, guarded.groups, &grants).await?;
        failures.extend(odd);
        let first = attempt.first_group(groups.len());
        groups.rotate_left(first);
        let (grants, ec2) = (&grants, &ec2);
        let outcomes: Vec<_> = stream::iter(&groups)
            .map(|(group_id, rules)| async move {
                if deadline_near(deadline) {
                    return None;
                }
                let judged = Judged {
                    account: Some(&place.account),
                    region: &place.region,
                    group_id,
                    rules: rules.clone(),
                    call: None,
                    reason: SWEEP_REASON,
                };
                Some(self.judge(judged, ec2, grants, now).await)
            })
            .buffered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut swept = PlaceSwept::default();
        for error in failures {
            tracing::error!(account = %place.account, region = %place.region, error = %error, "a rule cannot be read and was not judged; every other rule was");
            swept.failed.get_or_insert(error.into());
        }
        let left: Vec<&str> = outcomes
            .iter()
            .zip(&groups)
            .filter(|(outcome, _)| outcome.is_none())
            .map(|(_, (group_id, _))| group_id.as_str())
            .collect();
        if !left.is_empty() {
            let named = left[..left.len().min(LEFT_NAMED)].join(", ");
            tracing::error!(account = %place.account, region = %place.region, judged = groups.len() - left.len(), left = left.len(), first_left = %named, "the invocation's deadline is near: the groups left are not judged, and the account-region fails to be swept again");
            swept
                .failed
                .get_or_insert(RevertError::DeadlineNear(format!(
                    "{} of {} guarded groups in account {} in {} not judged (first: {named})",
                    left.len(),
                    groups.len(),
                    place.account,
                    place.region
                )));
        }
        for (outcome, (group_id, _)) in outcomes.into_iter().zip(&groups) {
            let Some(outcome) = outcome else { continue };
            match outcome {
                Ok(judged) => swept.judged.push(judged),
                // A group deleted since the sweep listed it has nothing left to revert.
                Err(RevertError::Aws(error)) if error.is_gone() => {
                    tracing::info!(group = %group_id, reason = %error, "skipped");
                }
                Err(error) => {
                    tracing::error!(group = %group_id, account = %place.account, region = %place.region, error = %error, "sweep of group failed");
                    swept.failed.get_or_insert(error);
                }
            }
        }
        Ok(swept)
    }

    /// Every guarded group with the rules the core can read (without their ids, but for a
    /// group DescribeSecurityGroups cannot give whole: that one is read rule by rule, with
    /// ids), and why each rule that cannot be read was not. The caller judges what was read
    /// and then fails on the rest: such a rule could be holding anything open.
    async fn guarded_rules(&self, ec2: &Ec2) -> Result<Guarded, AwsError> {
        let (mut groups, unreadable, default_groups) = self.guarded_groups(ec2).await?;
        if unreadable.is_empty() {
            return Ok(Guarded {
                groups,
                unreadable: Vec::new(),
                default_groups,
            });
        }
        let ids: Vec<String> = unreadable.into_iter().map(|g| g.group_id).collect();
        let read = ec2.readable_rules_of_groups(&ids).await?;
        for id in ids {
            let rules = rules_in(&read.records, &id, None);
            groups.push((id, rules));
        }
        Ok(Guarded {
            groups,
            unreadable: read.unreadable,
            default_groups,
        })
    }

    /// The groups the policy guards among those EC2 lists for its scope, each with its rules
    /// (without their ids), those whose rules could not all be read, and which of them are
    /// their VPC's default group.
    #[allow(clippy::type_complexity)]
    async fn guarded_groups(
        &self,
        ec2: &Ec2,
    ) -> Result<
        (
            Vec<(String, RuleSet)>,
            Vec<UnreadableGroup>,
            BTreeSet<String>,
        ),
        AwsError,
    > {
        let policy = &self.config.policy;
        let mut default_groups = BTreeSet::new();
        let mut guards = |group_id: &str,
                          name: &Option<String>,
                          vpc_id: &Option<String>,
                          tags: &BTreeMap<String, String>| {
            let facts = GroupFacts {
                group_id: group_id.to_string(),
                name: name.clone(),
                vpc_id: vpc_id.clone(),
                tags: tags.clone(),
            };
            let guarded = policy.guards_group(&facts);
            if guarded && facts.is_default() {
                default_groups.insert(facts.group_id);
            }
            guarded
        };
        let read = ec2.groups_in_scope(policy.scope()).await?;
        let guarded = read
            .groups
            .into_iter()
            .filter(|g| guards(&g.group_id, &g.group_name, &g.vpc_id, &g.tags))
            .map(|g| (g.group_id, g.rules))
            .collect();
        let unreadable = read
            .unreadable
            .into_iter()
            .filter(|g| guards(&g.group_id, &g.group_name, &g.vpc_id, &g.tags))
            .collect();
        Ok((guarded, unreadable, default_groups))
    }
}

/// How many of the groups a deadline left are named in its log line and error.
const LEFT_NAMED: usize = 10;

/// Whether an invocation ending at `deadline` is within [`DEADLINE_MARGIN`] of it.
fn deadline_near(deadline: Option<SystemTime>) -> bool {
    deadline.is_some_and(|deadline| SystemTime::now() + DEADLINE_MARGIN >= deadline)
}

/// Why a rule on a widened prefix list is revoked, in the record's words.
const LIST_REASON: &str = "the prefix list it references was changed to hold entries nobody \
                           vouched for and the policy does not allow on their own";

/// Who vouches for a list's entries on first use, and why.
const FIRST_USE: &str = "first use";

/// `text`, followed by the verdicts of the rules revoked for a forbid entry or their prefix
/// list, if any.
fn with_verdicts(text: String, reasons: &[(sgwarden_core::Rule, Verdict)]) -> String {
    if reasons.is_empty() {
        return text;
    }
    let verdicts: Vec<String> = reasons
        .iter()
        .map(|(rule, verdict)| format!("{rule}: {verdict}"))
        .collect();
    format!("{text}; {}", verdicts.join("; "))
}

/// Why the sweep revokes a rule, in the record's words.
const SWEEP_REASON: &str = "found by the sweep: not allowed by the policy, not approved (or its \
                            approval expired), not made in this shape by an exempt principal";

/// One account-region a sweep covers.
struct SweepPlace {
    account: String,
    region: String,
    /// Reached through the member role (not the function's own account).
    member: bool,
}

impl SweepPlace {
    fn unswept(&self, reason: NotSwept) -> Unswept {
        Unswept {
            account: self.account.clone(),
            region: self.region.clone(),
            reason,
        }
    }
}

/// What sweeping one account-region did.
#[derive(Default)]
struct PlaceSwept {
    judged: Vec<JudgedGroup>,
    /// The first group that failed (the others were still judged).
    failed: Option<RevertError>,
    /// Why the place was not swept at all.
    skipped: Option<OutOfReach>,
}

impl PlaceSwept {
    fn skipped(reason: OutOfReach) -> Self {
        Self {
            skipped: Some(reason),
            ..Self::default()
        }
    }
}

/// Replaces the rules of each group that needs them with ids (see [`Grants::need_rule_ids`])
/// by the group's rules as `DescribeSecurityGroupRules` reports them, with why each rule it
/// reports but the core cannot read was left out.
async fn with_rule_ids_where_needed(
    ec2: &Ec2,
    mut groups: Vec<(String, RuleSet)>,
    grants: &Grants,
) -> Result<(Vec<(String, RuleSet)>, Vec<AwsError>), AwsError> {
    let needing: Vec<String> = groups
        .iter()
        .filter(|(group_id, rules)| grants.need_rule_ids(group_id, rules))
        .map(|(group_id, _)| group_id.clone())
        .collect();
    if needing.is_empty() {
        return Ok((groups, Vec::new()));
    }
    let read = ec2.readable_rules_of_groups(&needing).await?;
    for (group_id, rules) in &mut groups {
        if needing.contains(group_id) {
            *rules = rules_in(&read.records, group_id, None);
        }
    }
    Ok((groups, read.unreadable))
}

/// The rules a call names, as EC2 holds them now, in the group it names. An id EC2 reports in
/// another group is left alone and logged: the event is a claim, not a fact.
async fn named_rules(ec2: &Ec2, target: &Target) -> Result<NamedRules, AwsError> {
    let group_id = &target.group_id;
    let (ids, claimed) = match &target.named {
        Named::Created(created) => (created.rule_ids().unwrap_or_default(), Some(created)),
        Named::Modified(ids) => (ids.clone(), None),
        // Found among the group's rules, so that they are revoked by id.
        // An odd rule beside them cannot be of a requested shape (those were read), so it is
        // logged and left out rather than failing the event.
        Named::Shapes(requested) => {
            let read = ec2
                .readable_rules_of_groups(std::slice::from_ref(group_id))
                .await?;
            for error in &read.unreadable {
                tracing::warn!(group = %group_id, error = %error, "a rule of the group cannot be read; not one the call requested");
            }
            return Ok(NamedRules {
                now: rules_in(&read.records, group_id, Some(requested)),
                gone: RuleSet::new(),
            });
        }
    };
    let records = ec2.rules_by_id(&ids).await?;
    for stranger in records.iter().filter(|r| &r.group_id != group_id) {
        tracing::warn!(
            group = %group_id,
            rule_id = stranger.info.rule_id.as_deref().unwrap_or_default(),
            rule_group = %stranger.group_id,
            "the event names a rule of another group; left alone"
        );
    }
    let known: Vec<&str> = records
        .iter()
        .filter_map(|r| r.info.rule_id.as_deref())
        .collect();
    let gone = claimed
        .map(|created| {
            created
                .iter()
                .filter(|(_, info)| {
                    info.rule_id
                        .as_deref()
                        .is_some_and(|id| !known.contains(&id))
                })
                .map(|(rule, info)| (rule.clone(), info.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok(NamedRules {
        now: rules_in(&records, group_id, None),
        gone,
    })
}

/// The rules of `group_id` among `records` (only those of the shapes in `only`, when given),
/// with their ids.
fn rules_in(records: &[RuleRecord], group_id: &str, only: Option<&RuleSet>) -> RuleSet {
    records
        .iter()
        .filter(|r| r.group_id == group_id)
        .filter(|r| only.is_none_or(|only| only.contains(&r.rule)))
        .map(|r| (r.rule.clone(), r.info.clone()))
        .collect()
}

/// Why rules an exempt principal's call names are revoked, in the record's words.
const EXEMPT_REASON: &str = "named by an exempt principal's call, but not in the shape that call \
                             made them (reshaped since) or outside the principal's bounds, and \
                             not allowed by the policy";

/// Why the rules of an unapproved change are revoked, in the record's words.
fn revert_reason(change: &RuleChange) -> &'static str {
    match change {
        RuleChange::Authorize { .. } => "added by an unapproved call",
        RuleChange::Modify { .. } => {
            "modified by an unapproved call and now violates the policy; CloudTrail does not \
             carry its previous definition, so it was revoked, not restored"
        }
        RuleChange::ListModify { .. } => LIST_REASON,
    }
}

/// Marks the report skipped, with the reason logged.
fn skipped(mut report: Report, call: &ApiCall, reason: Skip) -> Report {
    tracing::info!(event_id = %call.event_id, event = %call.event_name, reason = %reason, "skipped");
    report.skipped = Some(reason);
    report
}

/// Seconds since 1970. A clock before that is refused rather than read as 0, which would make
/// every approval look valid.
fn epoch_seconds(now: SystemTime) -> Result<u64, RevertError> {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| RevertError::Clock)
}

/// The record of a revert, for the topic.
fn revert_record(judged: &Judged<'_>, revoked: &RuleSet, now: u64) -> RevertRecord {
    let call = judged.call;
    RevertRecord {
        schema: SCHEMA,
        function: FUNCTION,
        cause: if call.is_some() { "api-call" } else { "sweep" },
        reason: judged.reason.to_string(),
        account: judged.account.map(str::to_string),
        region: judged.region.to_string(),
        group_id: judged.group_id.to_string(),
        event_id: call.map(|c| c.event_id.clone()),
        event_name: call.map(|c| c.event_name.clone()),
        event_time: call.and_then(|c| c.event_time.clone()),
        actor: call.map(|c| Actor::from(&c.principal)),
        reverted_at: chrono::DateTime::from_timestamp(i64::try_from(now).unwrap_or(i64::MAX), 0)
            .unwrap_or_default()
            .to_rfc3339(),
        rules: record_rules(revoked),
    }
}

/// The chat message for a revert, threaded by group: what went, why, who, and how to keep it
/// next time.
fn revert_notice(judged: &Judged<'_>, group: &GroupReport) -> ChatMessage {
    let who = judged
        .call
        .map(|c| {
            c.principal
                .arn
                .clone()
                .unwrap_or_else(|| c.principal.name())
        })
        .unwrap_or_else(|| "found by the scheduled sweep".to_string());
    let rules: Vec<String> = group.revoked.iter().map(|r| format!("• `{r}`")).collect();
    let mut message = ChatMessage::new(
        judged.group_id,
        &format!(
            "sgwarden reverted {} rule(s) on {} ({})",
            group.revoked.len(),
            judged.group_id,
            judged.region
        ),
        &format!(
            "{}\n*Why:* {}\n*Made by:* {who}",
            rules.join("\n"),
            judged.reason
        ),
    );
    if let Some(rule) = group.revoked.first() {
        message = message.next_step(&format!(
            "If the access is needed, approve it for a while: `sgwarden approve --group-id {} --rule \"{rule}\" --for 4h --reason \"…\"`",
            judged.group_id
        ));
    }
    message
}

fn group_report(judged: &Judged<'_>, plan: &RevertPlan) -> GroupReport {
    GroupReport {
        account: judged.account.map(str::to_string),
        region: judged.region.to_string(),
        group_id: judged.group_id.to_string(),
        revoked: plan.revoke.texts(),
        kept: plan
            .kept
            .iter()
            .map(|(rule, verdict): &(_, Verdict)| KeptRule {
                rule: rule.to_string(),
                reason: verdict.clone(),
            })
            .collect(),
        reasons: plan
            .reasons
            .iter()
            .map(|(rule, verdict)| KeptRule {
                rule: rule.to_string(),
                reason: verdict.clone(),
            })
            .collect(),
    }
}
