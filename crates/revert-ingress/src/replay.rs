//! `sgwarden replay`: the calls of the last weeks, from CloudTrail's event history, through
//! this function's judgement, changing nothing.
//!
//! Each call is read with the function's parser and judged by the function's own steps
//! (`succeeded_change`, `target`, `guards`, [`Policy::judge_exempt_call`], `grants_for`,
//! [`Policy::plan`]) against today's policy and approvals, on the rules the call itself added
//! (the response's rules with their ids, else the requested ones; a modify's rules as EC2
//! holds them now, since CloudTrail does not record their direction). The group is then read
//! as EC2 holds it: a rule that would be revoked and is still there "would be reverted", one
//! gone since "would have been reverted, since removed", and a group gone is counted.
//!
//! It writes nothing: no exemption or vouched-list record, no revoke, no record, finding or
//! chat message. Of the steps it shares with the handler only `grants_for` could write (a
//! prefix list's first-use record), and only outside a dry run, which the replay requires.
//! The places read are the sweep's (`SGWARDEN_ACCOUNTS` × `SGWARDEN_REGIONS` through
//! `SGWARDEN_MEMBER_ROLE`), [`PLACE_CONCURRENCY`] at a time, each paced by
//! [`CloudTrail::history`].
//!
//! [`Policy::judge_exempt_call`]: sgwarden_core::policy::Policy::judge_exempt_call
//! [`Policy::plan`]: sgwarden_core::policy::Policy::plan

use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use sgwarden_aws::accounts::Place;
use sgwarden_aws::cloudtrail::CloudTrail;
use sgwarden_aws::{sdk, Ec2};
use sgwarden_core::event::cloudtrail::{parse_record, JUDGED_CALLS};
use sgwarden_core::event::{ApiCall, CallOutcome, RuleChange};
use sgwarden_core::replay::{Call, Fate, Outcome, Replay, Reverted};

use crate::{
    epoch_seconds, named_rules, revert_reason, Judged, Named, NotSwept, RevertError, RevertIngress,
    SweepPlace, Unswept, EXEMPT_REASON, PLACE_CONCURRENCY,
};

/// A replay, and the account-regions it could not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// What was read and how each call came out.
    pub replay: Replay,
    /// Member account-regions not read (the member role missing, access denied), each with
    /// the reason.
    pub unread: Vec<Unswept>,
}

impl RevertIngress {
    /// Replays the calls of the `window` before `now` (`since` is how it was written, for
    /// the report) in every account-region the sweep covers. Refused unless the dry run is
    /// on: see the module documentation.
    pub async fn replay(
        &self,
        since: &str,
        window: Duration,
        now: SystemTime,
    ) -> Result<Replayed, RevertError> {
        if !self.config.dry_run {
            return Err(RevertError::ReplayWrites);
        }
        let seconds = epoch_seconds(now)?;
        let start = now.checked_sub(window).ok_or(RevertError::Clock)?;
        let places = self.sweep_places().await?;
        let outcomes: Vec<_> = stream::iter(&places)
            .map(|place| self.replay_place(place, start, now, seconds))
            .buffered(PLACE_CONCURRENCY)
            .collect()
            .await;
        let mut replayed = Replayed {
            replay: Replay {
                since: since.to_string(),
                start: rfc3339(start),
                end: rfc3339(now),
                places: Vec::new(),
                calls: Vec::new(),
            },
            unread: Vec::new(),
        };
        for (place, outcome) in places.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(calls)) => {
                    replayed
                        .replay
                        .places
                        .push(format!("{} {}", place.account, place.region));
                    replayed.replay.calls.extend(calls);
                }
                Ok(Err(reason)) => replayed.unread.push(place.unswept(reason)),
                Err(RevertError::Aws(error)) if place.member && !error.is_transient() => {
                    replayed
                        .unread
                        .push(place.unswept(NotSwept::Refused(error.to_string())));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(replayed)
    }

    /// Every judged call of one account-region's history, or why the place is not read.
    async fn replay_place(
        &self,
        place: &SweepPlace,
        start: SystemTime,
        end: SystemTime,
        now: u64,
    ) -> Result<Result<Vec<Call>, NotSwept>, RevertError> {
        let sdk = match self
            .sessions
            .place(Some(&place.account), &place.region)
            .await?
        {
            Place::Own => sdk::in_region(&self.sdk, &place.region),
            Place::Member { sdk, .. } => *sdk,
            Place::OutOfReach(reason) => return Ok(Err(NotSwept::OutOfReach(reason))),
        };
        let ec2 = Ec2::new(&sdk);
        let records = CloudTrail::new(&sdk)
            .history(&JUDGED_CALLS, start, end)
            .await?;
        let mut calls = Vec::with_capacity(records.len());
        for record in &records {
            calls.push(self.replay_call(&ec2, &place.account, record, now).await?);
        }
        Ok(Ok(calls))
    }

    /// One record of the history, judged. A record the parser refuses is not judged, as the
    /// function would refuse its event; a group gone is counted.
    async fn replay_call(
        &self,
        ec2: &Ec2,
        account: &str,
        record: &Value,
        now: u64,
    ) -> Result<Call, RevertError> {
        let text = |field: &str| record[field].as_str().unwrap_or_default().to_string();
        let mut replayed = Call {
            event_id: text("eventID"),
            event_name: text("eventName"),
            event_time: record["eventTime"].as_str().map(str::to_string),
            account: account.to_string(),
            region: ec2.region().to_string(),
            principal: String::new(),
            group_id: None,
            outcome: Outcome::GroupGone,
        };
        let call = match parse_record(record, account) {
            Ok(call) => call,
            Err(error) => {
                replayed.outcome = Outcome::Skipped {
                    reason: format!("not understood: {error}"),
                };
                return Ok(replayed);
            }
        };
        replayed.principal = call.principal.name();
        replayed.outcome = match self
            .replay_outcome(ec2, &call, &mut replayed.group_id, now)
            .await
        {
            Ok(outcome) => outcome,
            Err(RevertError::Aws(error)) if error.is_gone() => Outcome::GroupGone,
            Err(error) => return Err(error),
        };
        Ok(replayed)
    }

    /// What the function would decide on `call` today, and what became of each rule it
    /// would revoke. `group_id` is set as soon as the group is known.
    async fn replay_outcome(
        &self,
        ec2: &Ec2,
        call: &ApiCall,
        group_id: &mut Option<String>,
        now: u64,
    ) -> Result<Outcome, RevertError> {
        if let CallOutcome::Failed { code, .. } = &call.outcome {
            return Ok(Outcome::Failed { code: code.clone() });
        }
        let skipped = |reason: String| Ok(Outcome::Skipped { reason });
        let change = match self.succeeded_change(call).await {
            Ok(change) => change,
            Err(reason) => return skipped(reason.to_string()),
        };
        if let RuleChange::ListModify { list_id, .. } = change {
            return skipped(format!(
                "a change of prefix list {list_id}: its rules are judged by what the list holds \
                 now (`sgwarden plan revert-ingress`)"
            ));
        }
        let target = match self.target(ec2, change).await? {
            Ok(target) => target,
            Err(reason) => return skipped(reason.to_string()),
        };
        *group_id = Some(target.group_id.clone());
        let facts = match self.guards(ec2, &target.group_id).await? {
            Ok(facts) => facts,
            Err(reason) => return skipped(reason.to_string()),
        };
        let group = ec2.read_group(&target.group_id).await?;
        let claimed = match &target.named {
            Named::Created(rules) | Named::Shapes(rules) => rules.clone(),
            Named::Modified(_) => named_rules(ec2, &target).await?.now,
        };
        let policy = &self.config.policy;
        let mut known = self.known_of(&facts);
        let (rules, reason) = if policy.exempts(&call.principal) {
            let split =
                policy.judge_exempt_call(call, change, &target.group_id, &claimed, &mut known);
            (split.judged, EXEMPT_REASON)
        } else {
            (claimed.clone(), revert_reason(change))
        };
        let standing = claimed.len() - rules.len();
        if rules.is_empty() {
            return Ok(Outcome::Judged {
                reverted: Vec::new(),
                kept: standing,
            });
        }
        let judged = Judged::of_call(call, &target.group_id, rules, reason);
        let grants = self.grants_for(&judged, ec2, known, now).await?;
        let plan = policy.plan(&target.group_id, &judged.rules, &grants, now);
        let reverted = plan
            .revoke
            .rules()
            .map(|rule| Reverted {
                rule: rule.to_string(),
                fate: if group.rules.contains(rule) {
                    Fate::WouldRevert
                } else {
                    Fate::SinceRemoved
                },
                why: plan
                    .reasons
                    .iter()
                    .find(|(r, _)| r == rule)
                    .map(|(_, verdict)| verdict.to_string()),
            })
            .collect();
        Ok(Outcome::Judged {
            reverted,
            kept: standing + plan.kept.len(),
        })
    }
}

/// `at` in RFC 3339, to the second.
fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
