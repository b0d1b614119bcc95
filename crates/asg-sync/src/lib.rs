//! asg-sync: keeps a cluster's security groups, in every region, in step with the addresses
//! of its Auto Scaling groups.
//!
//! One invocation, whatever triggered it:
//! 1. **parse** the trigger (lifecycle action, launch/terminate successful, schedule, manual
//!    true-up); anything else is refused before any AWS call;
//! 2. **observe** each Auto Scaling group concerned: one `DescribeAutoScalingGroups` and one
//!    batched `DescribeInstances`; instances leaving (and the one being terminated) are out;
//! 3. **register** the group's addresses as its member of the cluster registry, in the local
//!    table and every peer's, each write conditioned on `seq` (a stale invocation cannot
//!    overwrite newer state);
//! 4. **reconcile**: read the whole cluster from the local table (it survives any peer's
//!    outage), plan every local and peer group to exactly addresses × ports (removing only
//!    rules whose ids the group's region recorded as asg-sync's, `core::sync::plan_group`),
//!    check every plan against the quota, then apply and record the ids of the rules
//!    created in the registry of the group's region;
//! 5. **verify**: read the registry again; if another invocation registered newer state while
//!    this one was applying, plan and apply again (at most [`ROUNDS`] rounds), so concurrent
//!    invocations converge on the newest state whichever finishes last;
//! 6. **complete** the lifecycle action, once: CONTINUE, or `SYNC_ON_FAILURE` when the local
//!    sync failed, with heartbeats while the work runs long.
//!
//! **Healing.** A CloudTrail call that can take a rule away from one of this region's groups
//! (`core::event::REMOVING_CALLS`) is answered with steps 4 and 5 for that group alone, from
//! the registry as it stands: what the cluster needs is back in seconds, not at the next
//! true-up. The event only picks the group; what is restored comes from the registry and EC2.
//! Failed calls and asg-sync's own revokes (a node leaving) are skipped before any AWS call.
//! A cluster rule that revert-ingress revoked is not restored: the two functions would undo
//! each other forever, so the conflict is logged at `warn`, counted (`HealConflicts`) and left
//! for an operator (the guide's asg-sync chapter, "Healing").
//!
//! Peers are written to, read and applied at once, so any number of peers that do not
//! answer cost one bounded wait together. A peer region that does not answer is logged,
//! skipped for the rest of the invocation and healed by the next true-up; it never holds
//! local scaling back. So is a peer group that
//! cannot take its plan (over its quota, access denied, gone): one failure stays one
//! failure. Only the local groups' own failures fail the invocation.

pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;
use sgwarden_aws::autoscaling::{AutoScaling, Completion, LifecycleResult};
use sgwarden_aws::registry::{Records, Registry, Write};
use sgwarden_aws::sdk::{self, Regional};
use sgwarden_aws::sns::Chat;
use sgwarden_aws::{AuditContext, AwsError, Ec2, GroupRules};
use sgwarden_core::accounts::CallerIdentity;
use sgwarden_core::chat::ChatMessage;
use sgwarden_core::event::cloudtrail::{parse_removal, API_CALL, REMOVING_CALLS};
use sgwarden_core::event::{GroupSelector, LifecycleAction, LifecycleTransition, RemovalCall};
use sgwarden_core::register::{registrations, stale_registrations, Registrant};
use sgwarden_core::sync::{
    check_quota, desired_rules, member_addresses, plan_group, split_strangers, GroupPlan, Member,
    QuotaExceeded,
};
use sgwarden_core::{ErrorType, ParseError, Plan, Recorded, RuleSet, Trigger};

pub use config::{ConfigError, SyncConfig};

/// The function's name in audit lines.
pub const FUNCTION: &str = "asg-sync";
/// The trigger's name in reports and logs for a removing call.
pub const HEAL: &str = "heal";
/// Plan-apply-verify rounds before leaving the rest to the next true-up.
pub const ROUNDS: usize = 3;

/// Why an invocation failed. Each variant says what an operator must look at.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("event not understood: {0}")]
    Event(#[from] ParseError),
    #[error("asg-sync does not handle {0} events")]
    WrongTrigger(&'static str),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("refused, nothing changed: {0}")]
    Quota(#[from] QuotaExceeded),
    #[error(
        "refused, nothing changed: Auto Scaling group {0:?} is not in SYNC_AUTO_SCALING_GROUPS"
    )]
    NotInCluster(String),
    /// The trigger's Auto Scaling group no longer exists: answered as a skip, not retried.
    #[error("nothing to sync: {0}")]
    Gone(AwsError),
}

impl sgwarden_lambda::FunctionError for SyncError {
    fn kind(&self) -> ErrorType {
        SyncError::kind(self)
    }
}

impl SyncError {
    /// A stable name for the Lambda error type.
    pub fn kind(&self) -> ErrorType {
        match self {
            SyncError::Event(_) => ErrorType::EventNotUnderstood,
            SyncError::WrongTrigger(_) => ErrorType::WrongTrigger,
            SyncError::Aws(e) => e.kind(),
            SyncError::Quota(_) => ErrorType::QuotaExceeded,
            SyncError::NotInCluster(_) => ErrorType::GroupNotInCluster,
            SyncError::Gone(_) => ErrorType::GroupGone,
        }
    }
}

/// What one invocation did, returned as the Lambda's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub trigger: &'static str,
    pub cluster: String,
    /// Why nothing was synced, when the trigger's Auto Scaling group no longer exists.
    #[serde(serialize_with = "sgwarden_core::text::as_optional_text")]
    pub skipped: Option<Skipped>,
    /// Members registered by this invocation (`region/asg`).
    pub registered: Vec<String>,
    /// Members whose write was refused because the registry held newer state.
    pub stale: Vec<String>,
    pub groups: Vec<GroupReport>,
    /// Peer regions that could not be reached and were skipped.
    pub unreachable: Vec<String>,
    /// Peer groups that could not take their plan (quota, access denied, gone) and were
    /// left as they were.
    pub skipped_groups: Vec<SkippedGroup>,
    /// Rules that carry the cluster's marker but that asg-sync has no record of creating and
    /// the cluster does not want (`region group rule`): left alone, for an operator to judge.
    pub unproven: Vec<String>,
    /// Cluster rules revert-ingress revoked, not restored (`region group rule`): the two
    /// functions disagree, and an operator settles it.
    pub conflicts: Vec<String>,
    pub rounds: usize,
    pub dry_run: bool,
    /// `CONTINUE`, `ABANDON`, `already-completed`, or absent when there was no action.
    #[serde(serialize_with = "sgwarden_core::text::as_optional_text")]
    pub lifecycle: Option<Lifecycle>,
}

/// Why an invocation synced nothing, on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// The trigger's Auto Scaling group was deleted (with its instances, each termination
    /// still sending its event): Auto Scaling's answer.
    GroupGone(String),
    /// A removing call that failed (`eventName`, `errorCode`): it took nothing away.
    FailedCall(String, String),
    /// asg-sync's own removing call (`eventName`): the registry already says so.
    OwnCall(String),
    /// A removing call on a group this function does not keep (`region`, group).
    NotManaged(String, String),
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::GroupGone(answer) => write!(f, "nothing to sync: {answer}"),
            Skipped::FailedCall(call, code) => {
                write!(f, "nothing to heal: {call} failed ({code})")
            }
            Skipped::OwnCall(call) => write!(f, "nothing to heal: asg-sync's own {call}"),
            Skipped::NotManaged(region, group) => write!(
                f,
                "nothing to heal: {group} in {region} is not in SYNC_SECURITY_GROUP_IDS"
            ),
        }
    }
}

/// How the invocation's lifecycle action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Completed with this result.
    Completed(LifecycleResult),
    /// Completed before this invocation (a redelivery, or the hook's timeout).
    AlreadyCompleted,
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lifecycle::Completed(result) => result.as_str(),
            Lifecycle::AlreadyCompleted => "already-completed",
        })
    }
}

/// A peer group left out of this invocation, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SkippedGroup {
    pub region: String,
    pub group_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupReport {
    pub region: String,
    pub group_id: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl sgwarden_lambda::Measured for Report {
    /// Rules added and removed (none in a dry run), and the peer regions that could not be
    /// reached plus the peer groups that could not take their plan (`PeerUnreachable`, the
    /// one asg-sync alarms on: either way a peer keeps old addresses until a later sync).
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let sum = |f: fn(&GroupReport) -> usize| -> u64 {
            if self.dry_run {
                return 0;
            }
            self.groups.iter().map(|g| f(g) as u64).sum()
        };
        vec![
            ("RulesAdded", sum(|g| g.added.len())),
            ("RulesRemoved", sum(|g| g.removed.len())),
            (
                "PeerUnreachable",
                (self.unreachable.len() + self.skipped_groups.len()) as u64,
            ),
            ("HealConflicts", self.conflicts.len() as u64),
        ]
    }
}

struct RegionClients {
    region: String,
    ec2: Ec2,
    registry: Registry,
    group_ids: Vec<String>,
}

/// Why one group's plan did not go through whole.
enum GroupFailure {
    /// EC2 refused it (quota, access denied, gone): the group is left as it is.
    Refused(AwsError),
    /// The region did not answer (applying, or recording the rule ids).
    Unanswered(AwsError),
}

/// One region's groups, each with its plan, in the order they are applied.
type GroupPlans = Vec<(String, GroupPlan)>;

/// What applying one peer region's plans came to.
struct PeerApplied<'a> {
    clients: &'a RegionClients,
    changed: Vec<GroupReport>,
    /// Groups EC2 refused, with why.
    refused: Vec<(String, AwsError)>,
    /// Why the region stopped answering, when it did: its remaining groups were not tried.
    unanswered: Option<AwsError>,
}

/// Clients and settings, built once at cold start and borrowed by every invocation.
pub struct AsgSync {
    config: SyncConfig,
    autoscaling: AutoScaling,
    /// EC2 in any region, to check whether a self-registered instance still exists.
    anywhere: Regional<Ec2>,
    local: RegionClients,
    peers: Vec<RegionClients>,
    chat: Chat,
}

/// What to observe for this trigger.
struct Work {
    kind: &'static str,
    /// A true-up (scheduled or manual) also removes self-registrations of instances that no
    /// longer exist.
    true_up: bool,
    asg_names: Vec<String>,
    excluded: Option<String>,
    lifecycle: Option<LifecycleAction>,
    /// The scheduled true-up acts only on a registry that already holds the cluster: an empty
    /// one is a missing table or a first deployment, and planning from this region alone
    /// would strip every peer's addresses.
    needs_registry: bool,
    /// A heal: only these local groups are reconciled, no peer.
    heal: Option<Heal>,
}

/// What a removing call on this region's groups asks of a heal.
struct Heal {
    /// This region's groups to reconcile: the one the call named, or every one for a call
    /// that named its group only by name.
    group_ids: Vec<String>,
    /// The call came from revert-ingress (`SYNC_REVERT_ROLE_ARNS`): what it took from the
    /// cluster is reported as a conflict, not restored.
    by_revert_ingress: bool,
    /// The audit lines' cause: the call, its CloudTrail id and who made it.
    cause: String,
}

/// The chat message for a sync that failed, or that left a peer region out; none for a
/// complete sync. Threaded by cluster.
fn chat_message(cluster: &str, outcome: &Result<Report, SyncError>) -> Option<ChatMessage> {
    match outcome {
        Err(error) => Some(
            ChatMessage::new(
                cluster,
                &format!("asg-sync failed for cluster {cluster} ({})", error.kind()),
                &error.to_string(),
            )
            .next_step("Lambda retries the event twice, then it waits in the function's dead-letter queue: replay it with `sgwarden run asg-sync --event <file>` once the cause is fixed"),
        ),
        Ok(report) if !report.unreachable.is_empty() || !report.skipped_groups.is_empty() => {
            let mut left_out = report.unreachable.clone();
            left_out.extend(
                report
                    .skipped_groups
                    .iter()
                    .map(|g| format!("{} {} ({})", g.region, g.group_id, g.reason)),
            );
            let changed: Vec<String> = report
                .groups
                .iter()
                .map(|g| format!("• {} {}: +{} -{}", g.region, g.group_id, g.added.len(), g.removed.len()))
                .collect();
            Some(
                ChatMessage::new(
                    cluster,
                    &format!("asg-sync for cluster {cluster} could not reach {}", left_out.join(", ")),
                    &format!(
                        "The reachable groups were synced ({} trigger):\n{}",
                        report.trigger,
                        if changed.is_empty() { "nothing to change".to_string() } else { changed.join("\n") }
                    ),
                )
                .next_step("The next event or the scheduled true-up syncs what was left out once it answers or has room"),
            )
        }
        Ok(_) => None,
    }
}

impl AsgSync {
    /// Builds the clients for the local region (from `sdk`) and every peer region.
    pub fn new(config: SyncConfig, sdk: &SdkConfig) -> Self {
        let mut by_region: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for peer in &config.peers {
            by_region
                .entry((peer.region.clone(), peer.table.clone()))
                .or_default()
                .push(peer.group_id.clone());
        }
        let peers = by_region
            .into_iter()
            .map(|((region, table), group_ids)| {
                let regional = sdk::in_region(sdk, &region);
                RegionClients {
                    ec2: Ec2::new(&regional),
                    registry: Registry::new(&regional, &table),
                    region,
                    group_ids,
                }
            })
            .collect();
        Self {
            chat: Chat::new(sdk, config.chat_topic_arn.as_deref()),
            autoscaling: AutoScaling::new(sdk),
            anywhere: Regional::new(sdk, Ec2::new),
            local: RegionClients {
                region: sdk::region_of(sdk),
                ec2: Ec2::new(sdk),
                registry: Registry::new(sdk, &config.table),
                group_ids: config.security_group_ids.clone(),
            },
            peers,
            config,
        }
    }

    /// Handles one event. `now` is the invocation's clock: it stamps `updated_at` and `seq`.
    /// A failed sync, or one that left a peer region out, is told to the chat topic.
    pub async fn handle(&self, event: &Value, now: SystemTime) -> Result<Report, SyncError> {
        let outcome = self.sync_event(event, now).await;
        if let Some(message) = chat_message(&self.config.cluster.to_string(), &outcome) {
            self.chat.tell(&message).await;
        }
        outcome
    }

    async fn sync_event(&self, event: &Value, now: SystemTime) -> Result<Report, SyncError> {
        let mut report = Report {
            cluster: self.config.cluster.to_string(),
            dry_run: self.config.dry_run,
            ..Report::default()
        };
        let work = if is_removal(event) {
            report.trigger = HEAL;
            match self.heal_work(parse_removal(event)?) {
                Ok(work) => work,
                Err(skipped) => {
                    tracing::info!(reason = %skipped, "skipped");
                    report.skipped = Some(skipped);
                    return Ok(report);
                }
            }
        } else {
            self.work(Trigger::parse(event)?)?
        };
        report.trigger = work.kind;
        let result = match self
            .with_heartbeats(work.lifecycle.as_ref(), self.sync(&work, now, &mut report))
            .await
        {
            // Deleted with its instances (each termination still sends its event): nothing
            // to sync, nothing changed, and a retry would get the same answer.
            Err(SyncError::Gone(error)) => {
                tracing::info!(reason = %error, "skipped");
                report.skipped = Some(Skipped::GroupGone(error.to_string()));
                Ok(())
            }
            other => other,
        };
        if let Some(action) = &work.lifecycle {
            let outcome = match &result {
                Ok(()) => LifecycleResult::Continue,
                Err(_) => self.config.on_failure,
            };
            if self.config.dry_run {
                tracing::info!(instance = %action.instance_id, result = outcome.as_str(), "dry run: lifecycle action left for the hook's timeout");
            } else {
                match self.complete(action, outcome).await {
                    Ok(done) => report.lifecycle = Some(done),
                    Err(error) => {
                        // The completion's failure is returned; the sync's is not lost.
                        if let Err(sync_error) = &result {
                            tracing::error!(error = %sync_error, "sync failed before the lifecycle completion failed");
                        }
                        return Err(error);
                    }
                }
            }
        }
        result.map(|()| report)
    }

    /// What the trigger asks for. A trigger naming an Auto Scaling group outside
    /// `SYNC_AUTO_SCALING_GROUPS` is refused here, before any AWS call: asg-sync never
    /// registers, opens ports to, or completes the lifecycle action of a group it does not
    /// serve (SPEC "Trust").
    fn work(&self, trigger: Trigger) -> Result<Work, SyncError> {
        let work = self.work_for(trigger)?;
        match work
            .asg_names
            .iter()
            .find(|asg| !self.config.auto_scaling_groups.contains(*asg))
        {
            Some(stranger) => Err(SyncError::NotInCluster(stranger.clone())),
            None => Ok(work),
        }
    }

    /// What a removing call asks for: a heal of the groups it named, or nothing, and why.
    fn heal_work(&self, call: RemovalCall) -> Result<Work, Skipped> {
        if let Some(code) = call.error_code {
            return Err(Skipped::FailedCall(call.event_name, code));
        }
        let is = |arn: &String| CallerIdentity::new(arn.as_str()).is(&call.principal);
        if self.config.function_role_arn.as_ref().is_some_and(is) {
            return Err(Skipped::OwnCall(call.event_name));
        }
        if call.region != self.local.region {
            let (GroupSelector::Id(named) | GroupSelector::Name(named)) = call.group;
            return Err(Skipped::NotManaged(call.region, named));
        }
        let group_ids = match &call.group {
            GroupSelector::Id(id) if self.local.group_ids.contains(id) => vec![id.clone()],
            GroupSelector::Id(id) => return Err(Skipped::NotManaged(call.region, id.clone())),
            // Which group a name means in a default VPC is not in the event: every group
            // this function keeps is reconciled, which restores only what the cluster needs.
            GroupSelector::Name(_) => self.local.group_ids.clone(),
        };
        let caller = call.principal.name();
        tracing::info!(call = %call.event_name, event_id = %call.event_id, caller = %caller, groups = %group_ids.join(" "), "healing the groups a call may have taken rules from");
        Ok(Work {
            kind: HEAL,
            true_up: false,
            asg_names: Vec::new(),
            excluded: None,
            lifecycle: None,
            needs_registry: false,
            heal: Some(Heal {
                group_ids,
                by_revert_ingress: self.config.revert_role_arns.iter().any(is),
                cause: format!("{} {} by {caller}", call.event_name, call.event_id),
            }),
        })
    }

    fn work_for(&self, trigger: Trigger) -> Result<Work, SyncError> {
        let kind = trigger.kind();
        Ok(match trigger {
            Trigger::Lifecycle(action) => Work {
                kind,
                true_up: false,
                asg_names: vec![action.asg_name.clone()],
                excluded: (action.transition == LifecycleTransition::Terminating)
                    .then(|| action.instance_id.clone()),
                lifecycle: Some(action),
                needs_registry: false,
                heal: None,
            },
            Trigger::InstanceChange(change) => Work {
                kind,
                true_up: false,
                asg_names: vec![change.asg_name],
                excluded: (change.transition == LifecycleTransition::Terminating)
                    .then_some(change.instance_id),
                lifecycle: None,
                needs_registry: false,
                heal: None,
            },
            Trigger::TrueUp(t) => Work {
                kind,
                true_up: true,
                asg_names: vec![t.asg_name],
                excluded: None,
                lifecycle: None,
                needs_registry: false,
                heal: None,
            },
            // A scheduled true-up re-observes every group of the cluster in this region.
            Trigger::Scheduled(_) => Work {
                kind,
                true_up: true,
                asg_names: self.config.auto_scaling_groups.iter().cloned().collect(),
                excluded: None,
                lifecycle: None,
                needs_registry: true,
                heal: None,
            },
            other => return Err(SyncError::WrongTrigger(other.kind())),
        })
    }

    /// Runs `work`, sending a lifecycle heartbeat every `SYNC_HEARTBEAT_SECONDS` until it ends.
    async fn with_heartbeats<F: std::future::Future<Output = Result<(), SyncError>>>(
        &self,
        action: Option<&LifecycleAction>,
        work: F,
    ) -> Result<(), SyncError> {
        let Some(action) = action else {
            return work.await;
        };
        let every = self.config.heartbeat_every;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = ticker.tick() => {
                    if let Err(e) = self.autoscaling.heartbeat(action).await {
                        tracing::warn!(error = %e, "lifecycle heartbeat failed");
                    }
                }
            }
        }
    }

    async fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleResult,
    ) -> Result<Lifecycle, SyncError> {
        let completion = self.autoscaling.complete(action, result).await?;
        tracing::info!(
            target: sgwarden_core::AUDIT_TARGET,
            function = FUNCTION,
            region = %self.local.region,
            asg = %action.asg_name,
            instance = %action.instance_id,
            result = result.as_str(),
            already_completed = completion == Completion::AlreadyCompleted,
            "lifecycle action completed"
        );
        Ok(match completion {
            Completion::Completed => Lifecycle::Completed(result),
            Completion::AlreadyCompleted => Lifecycle::AlreadyCompleted,
        })
    }

    async fn sync(
        &self,
        work: &Work,
        now: SystemTime,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let cluster = self.config.cluster.name();
        let mut unreachable: BTreeSet<String> = BTreeSet::new();

        if work.needs_registry && self.local.registry.members(cluster).await?.is_empty() {
            warn_empty_registry(cluster, &self.local.registry);
            return Ok(());
        }
        let mut observed = Vec::with_capacity(work.asg_names.len());
        for asg in &work.asg_names {
            let member = match self.observe(asg, work.excluded.as_deref(), now).await {
                // The scheduled true-up goes on with the groups that still exist; a group
                // deleted while its stack stays is for an operator to see.
                Err(SyncError::Gone(error)) if work.needs_registry => {
                    tracing::warn!(asg = %asg, error = %error, "configured Auto Scaling group not found; skipped");
                    continue;
                }
                other => other?,
            };
            self.register(&member, report, &mut unreachable).await?;
            observed.push(member);
        }

        let mut planned_seqs = None;
        for round in 1..=ROUNDS {
            report.rounds = round;
            // The local records are read here, before the groups' rules (see `plan_group`).
            let registry = self.local.registry.cluster(cluster).await?;
            let members = self
                .cluster_members(newest(registry.members, &observed))
                .await;
            if members.is_empty() {
                // An empty registry is a missing table or a first deployment, not a cluster
                // of no nodes: planning from it would strip every owned rule everywhere.
                warn_empty_registry(cluster, &self.local.registry);
                break;
            }
            let seqs = seqs(&members);
            if planned_seqs.as_ref() == Some(&seqs) {
                break;
            }
            let desired = desired_rules(&members, &self.config.ports, &self.config.cluster);
            self.reconcile(&desired, &registry.records, report, &mut unreachable, work)
                .await?;
            planned_seqs = Some(seqs);
            if self.config.dry_run {
                break;
            }
        }
        report.unreachable = unreachable.into_iter().collect();
        report.skipped_groups.sort();
        report.skipped_groups.dedup();
        report.unproven.sort();
        report.unproven.dedup();
        report.conflicts.sort();
        report.conflicts.dedup();
        Ok(())
    }

    /// The registry's members that belong to the cluster. A member of this region whose group
    /// is not in `SYNC_AUTO_SCALING_GROUPS` (written before that setting existed, or by hand)
    /// is never planned from, and is removed from every reachable table, with an audit line.
    async fn cluster_members(&self, members: Vec<Member>) -> Vec<Member> {
        let (members, strangers) = split_strangers(
            members,
            &self.local.region,
            &self.config.auto_scaling_groups,
        );
        for stranger in &strangers {
            tracing::warn!(member = %stranger.member, "registry member is not in SYNC_AUTO_SCALING_GROUPS; ignored");
            if self.config.dry_run {
                continue;
            }
            for registry in
                std::iter::once(&self.local.registry).chain(self.peers.iter().map(|p| &p.registry))
            {
                let result = registry
                    .remove(self.config.cluster.name(), &stranger.member)
                    .await;
                tracing::info!(
                    target: sgwarden_core::AUDIT_TARGET,
                    function = FUNCTION,
                    table = registry.table(),
                    region = registry.region(),
                    member = %stranger.member,
                    error = result.as_ref().err().map(ToString::to_string),
                    "registry member removed: not in SYNC_AUTO_SCALING_GROUPS"
                );
            }
        }
        members
    }

    /// The member one Auto Scaling group contributes, observed now.
    async fn observe(
        &self,
        asg: &str,
        excluded: Option<&str>,
        now: SystemTime,
    ) -> Result<Member, SyncError> {
        // Stamped before reading AWS: a later observation always carries a larger seq.
        let millis = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        let seq = u64::try_from(millis).unwrap_or(u64::MAX);
        let listed = self.autoscaling.group_instances(asg).await.map_err(|e| {
            if e.is_gone() {
                SyncError::Gone(e)
            } else {
                e.into()
            }
        })?;
        let ids: Vec<String> = listed.iter().map(|i| i.instance_id.clone()).collect();
        let mut instances = self.local.ec2.instances(&ids).await?;
        for instance in &mut instances {
            if let Some(listed) = listed.iter().find(|l| l.instance_id == instance.id) {
                instance.lifecycle = listed.lifecycle;
            }
        }
        let found = member_addresses(&instances, self.config.address, excluded);
        for id in &found.without_address {
            tracing::info!(instance = %id, asg, address = %self.config.address, "instance has no address yet; skipped until it does");
        }
        Ok(Member {
            member: Member::key(&self.local.region, asg),
            region: self.local.region.clone(),
            asg: asg.to_string(),
            addresses: found.addresses,
            updated_at: rfc3339(now),
            seq,
        })
    }

    /// Writes the member to the local table (required) and every peer's (best effort).
    async fn register(
        &self,
        member: &Member,
        report: &mut Report,
        unreachable: &mut BTreeSet<String>,
    ) -> Result<(), SyncError> {
        if self.config.dry_run {
            tracing::info!(member = %member.member, addresses = ?member.addresses, "dry run: registry not written");
            return Ok(());
        }
        match self.write_member(&self.local.registry, member).await? {
            Write::Written => report.registered.push(member.member.clone()),
            Write::Stale => report.stale.push(member.member.clone()),
        }
        // Every peer at once: a peer that does not answer costs one bounded wait, however
        // many others are down with it.
        let writes = join_all(
            self.reachable_peers(unreachable)
                .into_iter()
                .map(|peer| async move { (peer, self.write_member(&peer.registry, member).await) }),
        )
        .await;
        for (peer, written) in writes {
            if let Err(e) = written {
                self.skip_peer(peer, &e, unreachable);
            }
        }
        Ok(())
    }

    /// The peers not yet found unreachable in this invocation.
    fn reachable_peers(&self, unreachable: &BTreeSet<String>) -> Vec<&RegionClients> {
        self.peers
            .iter()
            .filter(|peer| !unreachable.contains(&peer.region))
            .collect()
    }

    async fn write_member(&self, registry: &Registry, member: &Member) -> Result<Write, AwsError> {
        let write = registry.put(self.config.cluster.name(), member).await?;
        if write == Write::Written {
            tracing::info!(
                target: sgwarden_core::AUDIT_TARGET,
                function = FUNCTION,
                table = registry.table(),
                region = registry.region(),
                member = %member.member,
                addresses = %member.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                seq = member.seq,
                "registry member written"
            );
        }
        Ok(write)
    }

    fn skip_peer(
        &self,
        peer: &RegionClients,
        error: &AwsError,
        unreachable: &mut BTreeSet<String>,
    ) {
        tracing::warn!(region = %peer.region, error = %error, "peer region skipped; the next true-up heals it");
        unreachable.insert(peer.region.clone());
    }

    /// A peer group that cannot take its plan is left as it is, reported and counted like an
    /// unreachable peer; the other groups and the lifecycle go on.
    fn skip_group(
        &self,
        peer: &RegionClients,
        group_id: &str,
        reason: &dyn std::fmt::Display,
        report: &mut Report,
    ) {
        tracing::warn!(region = %peer.region, group = group_id, error = %reason, "peer group skipped; the next sync that it can take heals it");
        report.skipped_groups.push(SkippedGroup {
            region: peer.region.clone(),
            group_id: group_id.to_string(),
            reason: reason.to_string(),
        });
    }

    fn is_local(&self, clients: &RegionClients) -> bool {
        std::ptr::eq(clients, &self.local)
    }

    /// Plans every reachable group, checks every plan against the quota, then applies and
    /// records. A local group's failure fails the invocation (a local plan over the quota
    /// before anything is changed); a peer group's is reported and skipped.
    async fn reconcile(
        &self,
        desired: &RuleSet,
        local_records: &Records,
        report: &mut Report,
        unreachable: &mut BTreeSet<String>,
        work: &Work,
    ) -> Result<(), SyncError> {
        let groups = self
            .cluster_groups(local_records, report, unreachable, work)
            .await?;
        let gone = if work.true_up {
            self.gone_registrants(groups.iter().map(|(_, g, _)| g))
                .await
        } else {
            BTreeSet::new()
        };
        let mut plans: Vec<(&RegionClients, String, GroupPlan)> = Vec::new();
        for (clients, group, recorded) in groups {
            let mut planned = plan_group(&group.rules, desired, &self.config.cluster, &recorded);
            if let Err(e) = check_quota(
                &group.group_id,
                &group.rules,
                &planned.plan,
                self.config.rule_quota,
            ) {
                if self.is_local(clients) {
                    return Err(e.into());
                }
                self.skip_group(clients, &group.group_id, &e, report);
                continue;
            }
            planned
                .plan
                .remove
                .extend_from(&stale_registrations(&group.rules, &gone, desired));
            for rule in planned.unproven.rules() {
                tracing::warn!(region = %clients.region, group = %group.group_id, rule = %rule, "rule carries the cluster's marker but asg-sync has no record of creating it; left alone");
                report
                    .unproven
                    .push(format!("{} {} {rule}", clients.region, group.group_id));
            }
            plans.push((clients, group.group_id, planned));
        }
        if let Some(heal) = work.heal.as_ref().filter(|h| h.by_revert_ingress) {
            self.report_conflicts(&plans, heal, report);
            return Ok(());
        }
        let audit = AuditContext {
            function: FUNCTION,
            cause: work
                .heal
                .as_ref()
                .map_or_else(|| work.kind.to_string(), |heal| heal.cause.clone()),
        };
        if self.config.dry_run {
            for (clients, group_id, planned) in plans {
                if !planned.plan.is_empty() {
                    tracing::info!(target: "sgwarden::plan", region = %clients.region, group = %group_id, plan = %planned.plan, "dry run: plan not applied");
                    report
                        .groups
                        .push(group_report(&clients.region, &group_id, &planned.plan));
                }
            }
            return Ok(());
        }
        // This region's groups first: any failure there fails the invocation.
        let (local, peers): (Vec<_>, Vec<_>) = plans
            .into_iter()
            .partition(|(clients, ..)| self.is_local(clients));
        for (clients, group_id, planned) in local {
            let (changed, outcome) = self.apply_group(clients, &group_id, planned, &audit).await;
            report.groups.extend(changed);
            match outcome {
                Ok(()) => {}
                Err(GroupFailure::Refused(e) | GroupFailure::Unanswered(e)) => return Err(e.into()),
            }
        }
        // Then every peer region at once, each region's groups in order: a region that does
        // not answer costs one bounded wait, whatever the number of peers.
        let mut by_region: BTreeMap<&str, (&RegionClients, GroupPlans)> = BTreeMap::new();
        for (clients, group_id, planned) in peers {
            if !unreachable.contains(&clients.region) {
                by_region
                    .entry(clients.region.as_str())
                    .or_insert((clients, Vec::new()))
                    .1
                    .push((group_id, planned));
            }
        }
        let applied = join_all(
            by_region
                .into_values()
                .map(|(clients, plans)| self.apply_in_peer(clients, plans, &audit)),
        )
        .await;
        for peer in applied {
            report.groups.extend(peer.changed);
            for (group_id, error) in &peer.refused {
                self.skip_group(peer.clients, group_id, error, report);
            }
            if let Some(error) = &peer.unanswered {
                self.skip_peer(peer.clients, error, unreachable);
            }
        }
        Ok(())
    }

    /// revert-ingress revoked what these plans would restore: nothing is applied, and each
    /// cluster rule it took is a conflict, at `warn` and in the report.
    fn report_conflicts(
        &self,
        plans: &[(&RegionClients, String, GroupPlan)],
        heal: &Heal,
        report: &mut Report,
    ) {
        for (clients, group_id, planned) in plans {
            for rule in planned.plan.add.rules() {
                tracing::warn!(region = %clients.region, group = %group_id, rule = %rule, cause = %heal.cause, "revert-ingress revoked a rule asg-sync keeps for the cluster: not restored, the two functions must not undo each other (allow the cluster's rules in revert-ingress's policy, or exempt asg-sync's role)");
                report
                    .conflicts
                    .push(format!("{} {group_id} {rule}", clients.region));
            }
        }
    }

    /// One peer region's plans, in order, until the region stops answering.
    async fn apply_in_peer<'a>(
        &self,
        clients: &'a RegionClients,
        plans: GroupPlans,
        audit: &AuditContext,
    ) -> PeerApplied<'a> {
        let mut applied = PeerApplied {
            clients,
            changed: Vec::new(),
            refused: Vec::new(),
            unanswered: None,
        };
        for (group_id, planned) in plans {
            let (changed, outcome) = self.apply_group(clients, &group_id, planned, audit).await;
            applied.changed.extend(changed);
            match outcome {
                Ok(()) => {}
                Err(GroupFailure::Refused(e)) => applied.refused.push((group_id, e)),
                Err(GroupFailure::Unanswered(e)) => {
                    applied.unanswered = Some(e);
                    break;
                }
            }
        }
        applied
    }

    /// Applies one group's plan and records the ids of the rules it created: the group's
    /// report when anything changed, and what failed, if anything did.
    async fn apply_group(
        &self,
        clients: &RegionClients,
        group_id: &str,
        planned: GroupPlan,
        audit: &AuditContext,
    ) -> (Option<GroupReport>, Result<(), GroupFailure>) {
        let (changed, created) = if planned.plan.is_empty() {
            (None, Vec::new())
        } else {
            match clients.ec2.apply(group_id, &planned.plan, audit).await {
                Ok(applied) => {
                    let changed = GroupReport {
                        region: clients.region.clone(),
                        group_id: group_id.to_string(),
                        added: applied.added.iter().map(ToString::to_string).collect(),
                        removed: applied.removed.iter().map(ToString::to_string).collect(),
                    };
                    (Some(changed), applied.created_ids)
                }
                Err(e) if e.is_transient() => return (None, Err(GroupFailure::Unanswered(e))),
                Err(e) => return (None, Err(GroupFailure::Refused(e))),
            }
        };
        let change = planned.record_change(created);
        if change.is_empty() {
            return (changed, Ok(()));
        }
        let recorded = clients
            .registry
            .record(self.config.cluster.name(), group_id, &change)
            .await;
        tracing::info!(
            target: sgwarden_core::AUDIT_TARGET,
            function = FUNCTION,
            table = clients.registry.table(),
            region = clients.registry.region(),
            group = %group_id,
            recorded = %change.add.iter().cloned().collect::<Vec<_>>().join(" "),
            forgotten = %change.remove.iter().cloned().collect::<Vec<_>>().join(" "),
            error = recorded.as_ref().err().map(ToString::to_string),
            "rule ids recorded"
        );
        (changed, recorded.map_err(GroupFailure::Unanswered))
    }

    /// The cluster's groups as EC2 holds them (rules with their ids), each with the clients
    /// of its region and the record of the rules asg-sync created there: this region's
    /// (which must answer; its records come from the round's registry read), then every
    /// reachable peer's (a region that does not answer is marked unreachable and left out, a
    /// group that is gone is reported and left out). Records are read before rules, always.
    async fn cluster_groups(
        &self,
        local_records: &Records,
        report: &mut Report,
        unreachable: &mut BTreeSet<String>,
        work: &Work,
    ) -> Result<Vec<(&RegionClients, GroupRules, Recorded)>, SyncError> {
        let recorded =
            |records: &Records, group_id: &str| records.get(group_id).cloned().unwrap_or_default();
        let mut groups = Vec::new();
        let local_ids = work
            .heal
            .as_ref()
            .map_or(&self.local.group_ids, |heal| &heal.group_ids);
        for group in self.local.ec2.read_group_rules(local_ids).await? {
            let group = group?;
            let record = recorded(local_records, &group.group_id);
            groups.push((&self.local, group, record));
        }
        if work.heal.is_some() {
            return Ok(groups);
        }
        // Every peer at once, records before rules in each.
        let cluster = self.config.cluster.name();
        let reads = join_all(self.reachable_peers(unreachable).into_iter().map(
            |peer| async move {
                let read = match peer.registry.records(cluster).await {
                    Ok(records) => peer
                        .ec2
                        .read_group_rules(&peer.group_ids)
                        .await
                        .map(|found| (records, found)),
                    Err(e) => Err(e),
                };
                (peer, read)
            },
        ))
        .await;
        for (peer, read) in reads {
            match read {
                Ok((records, found)) => {
                    for (group_id, group) in peer.group_ids.iter().zip(found) {
                        match group {
                            Ok(group) => {
                                let record = recorded(&records, &group.group_id);
                                groups.push((peer, group, record));
                            }
                            Err(e) => self.skip_group(peer, group_id, &e, report),
                        }
                    }
                }
                Err(e) => self.skip_peer(peer, &e, unreachable),
            }
        }
        Ok(groups)
    }

    /// The self-registered instances (see `sgwarden register`) on these groups that no longer
    /// exist: their host crashed or was terminated without deregistering. An instance whose
    /// region cannot be asked is assumed alive: nothing is removed on a guess.
    async fn gone_registrants<'a>(
        &self,
        groups: impl Iterator<Item = &'a GroupRules>,
    ) -> BTreeSet<Registrant> {
        let mut by_region: BTreeMap<String, BTreeSet<Registrant>> = BTreeMap::new();
        for group in groups {
            for registrant in registrations(&group.rules).into_keys() {
                by_region
                    .entry(registrant.region.clone())
                    .or_default()
                    .insert(registrant);
            }
        }
        let mut gone = BTreeSet::new();
        for (region, registrants) in by_region {
            let ids: Vec<String> = registrants.iter().map(|r| r.instance_id.clone()).collect();
            match self.anywhere.get(&region).live_instances(&ids).await {
                Ok(live) => gone.extend(
                    registrants
                        .into_iter()
                        .filter(|r| !live.contains(&r.instance_id)),
                ),
                Err(error) => {
                    tracing::warn!(region = %region, error = %error, "self-registrations not checked; kept");
                }
            }
        }
        for registrant in &gone {
            tracing::info!(instance = %registrant.instance_id, region = %registrant.region, "self-registered instance no longer exists; its rules are removed");
        }
        gone
    }
}

/// A CloudTrail call that can take a rule away, by its envelope: what the heal answers. Any
/// other call is an `api-call` trigger, which asg-sync does not handle.
fn is_removal(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some(API_CALL)
        && event
            .pointer("/detail/eventName")
            .and_then(Value::as_str)
            .is_some_and(|name| REMOVING_CALLS.contains(&name))
}

fn group_report(region: &str, group_id: &str, plan: &Plan) -> GroupReport {
    GroupReport {
        region: region.to_string(),
        group_id: group_id.to_string(),
        added: plan.add.texts(),
        removed: plan.remove.texts(),
    }
}

/// The registry's members with this invocation's observations laid over them where they are
/// newer (in a dry run nothing was written; otherwise the registry already holds them).
fn newest(mut members: Vec<Member>, observed: &[Member]) -> Vec<Member> {
    for mine in observed {
        match members.iter_mut().find(|m| m.member == mine.member) {
            Some(stored) if stored.seq >= mine.seq => {}
            Some(stored) => *stored = mine.clone(),
            None => members.push(mine.clone()),
        }
    }
    members
}

fn warn_empty_registry(cluster: &str, registry: &Registry) {
    tracing::warn!(
        cluster,
        table = registry.table(),
        "registry holds no member of the cluster; nothing reconciled"
    );
}

fn seqs(members: &[Member]) -> BTreeMap<String, u64> {
    members.iter().map(|m| (m.member.clone(), m.seq)).collect()
}

/// RFC 3339 in UTC, second precision.
fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn chat_hears_of_failed_and_partial_syncs_only() {
        let json = |m: Option<ChatMessage>| -> Option<Value> {
            m.and_then(|m| serde_json::from_str(&m.to_json()).ok())
        };
        let complete = Report {
            trigger: "launch",
            groups: vec![GroupReport {
                region: "us-east-1".into(),
                group_id: "sg-1".into(),
                added: vec!["ingress tcp/5432 192.0.2.1/32".into()],
                removed: Vec::new(),
            }],
            ..Report::default()
        };
        assert_eq!(json(chat_message("ring", &Ok(complete.clone()))), None);
        let partial = Report {
            unreachable: vec!["eu-west-1".into()],
            ..complete
        };
        let told = json(chat_message("ring", &Ok(partial))).unwrap_or_default();
        assert_eq!(told["metadata"]["threadId"], "ring");
        assert!(told["content"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("could not reach eu-west-1")));
        assert!(told["content"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("us-east-1 sg-1: +1 -0")));
        let skipped = Report {
            skipped_groups: vec![SkippedGroup {
                region: "eu-west-1".into(),
                group_id: "sg-2".into(),
                reason: "over its quota".into(),
            }],
            ..Report::default()
        };
        let told = json(chat_message("ring", &Ok(skipped.clone()))).unwrap_or_default();
        assert!(told["content"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("eu-west-1 sg-2 (over its quota)")));
        let counts = sgwarden_lambda::Measured::counts(&skipped);
        assert!(counts.contains(&("PeerUnreachable", 1)), "{counts:?}");
        let failed = json(chat_message(
            "ring",
            &Err(SyncError::NotInCluster("web".into())),
        ))
        .unwrap_or_default();
        assert!(failed["content"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("asg-sync failed for cluster ring")));
    }
}
