//! `sgwarden plan`: the function's own handler, dry run forced, on the event its schedule
//! sends; the report's changes printed by account, region and group. revert-ingress's plan
//! covers what its sweep covers (`SGWARDEN_ACCOUNTS` × `SGWARDEN_REGIONS`, through
//! `SGWARDEN_MEMBER_ROLE`), and names the accounts it could not reach.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use sgwarden_core::ErrorType;

use crate::{for_people, Failure, PlanFunction};

/// One group's pending changes.
pub(crate) struct Pending {
    /// The group's account, when the plan names it (revert-ingress's does).
    pub(crate) account: Option<String>,
    pub(crate) region: String,
    pub(crate) group_id: String,
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
}

/// The function's settings from the environment, with its dry run forced on.
pub(crate) fn dry_run_env(dry_run_variable: &'static str) -> impl Fn(&str) -> Option<String> {
    move |name| {
        if name == dry_run_variable {
            Some("true".to_string())
        } else if name == "SGWARDEN_SWEEP_QUEUE_URL" {
            // A preview sweeps in place: fanned out, it would send the queue its places to
            // sweep for real.
            None
        } else {
            std::env::var(name).ok()
        }
    }
}

pub(crate) async fn plan(function: PlanFunction) -> Result<ExitCode, Failure> {
    let sdk = sgwarden_aws::sdk::load().await;
    let region = sgwarden_aws::sdk::region_of(&sdk);
    let now = SystemTime::now();
    let schedule = sgwarden_core::event::asg::scheduled_event(
        &region,
        &chrono::DateTime::<chrono::Utc>::from(now).to_rfc3339(),
    );
    let progress = for_people(&std::io::stderr());
    let started = Instant::now();
    if progress {
        let name = match function {
            PlanFunction::AsgSync => "asg-sync true-up",
            PlanFunction::RevertIngress => "revert-ingress sweep",
        };
        eprint!("planning the {name} in {region} …");
        let _ = std::io::stderr().flush();
    }
    let pending = match function {
        PlanFunction::AsgSync => true_up_pending(&sdk, &schedule, now).await?,
        PlanFunction::RevertIngress => sweep_pending(&sdk, &schedule, now).await?,
    };
    if progress {
        eprintln!(" done in {:.1} s", started.elapsed().as_secs_f64());
    }
    print!("{}", render(&pending, for_people(&std::io::stdout())));
    let changes = pending
        .iter()
        .any(|p| !p.added.is_empty() || !p.removed.is_empty());
    Ok(if changes {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// What asg-sync's true-up would change (peers it cannot reach named on stderr).
async fn true_up_pending(
    sdk: &aws_config::SdkConfig,
    schedule: &serde_json::Value,
    now: SystemTime,
) -> Result<Vec<Pending>, Failure> {
    let config = asg_sync::SyncConfig::from_lookup(dry_run_env("SYNC_DRY_RUN"))?;
    let report = asg_sync::AsgSync::new(config, sdk)
        .handle(schedule, now)
        .await
        .map_err(|e| Failure::new(e.kind(), e))?;
    if !report.unreachable.is_empty() {
        eprintln!(
            "sgwarden: not planned, unreachable: {}",
            report.unreachable.join(", ")
        );
    }
    Ok(report
        .groups
        .into_iter()
        .map(|g| Pending {
            account: None,
            region: g.region,
            group_id: g.group_id,
            added: g.added,
            removed: g.removed,
        })
        .collect())
}

/// What revert-ingress's sweep would revoke, in every account and region it covers (those
/// it cannot reach named on stderr).
async fn sweep_pending(
    sdk: &aws_config::SdkConfig,
    schedule: &serde_json::Value,
    now: SystemTime,
) -> Result<Vec<Pending>, Failure> {
    let config = revert_ingress::RevertConfig::from_lookup(dry_run_env("REVERT_DRY_RUN"))?;
    let report = revert_ingress::RevertIngress::new(config, sdk, revert_ingress::OwnRole::Unknown)
        .handle(schedule, now)
        .await
        .map_err(|e| Failure::new(e.kind(), e))?;
    if let Some(reason) = report.skipped {
        return Err(Failure::new(ErrorType::NotPlanned, reason));
    }
    for unswept in &report.unswept {
        eprintln!(
            "sgwarden: not planned, account {} in {}: {}",
            unswept.account, unswept.region, unswept.reason
        );
    }
    Ok(report
        .groups
        .into_iter()
        .map(|g| {
            let removed = with_reasons(g.revoked, &g.reasons);
            Pending {
                account: g.account,
                region: g.region,
                group_id: g.group_id,
                added: Vec::new(),
                removed,
            }
        })
        .collect())
}

/// Each revoked rule, followed by what decided it when that is more than "not allowed" (the
/// forbid entry or preset, or the prefix list).
fn with_reasons(revoked: Vec<String>, reasons: &[revert_ingress::KeptRule]) -> Vec<String> {
    revoked
        .into_iter()
        .map(|rule| match reasons.iter().find(|r| r.rule == rule) {
            Some(why) => format!("{rule}  ({})", why.reason),
            None => rule,
        })
        .collect()
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// The plan as text: a heading per account (when known), region and group, `+` and `-`
/// lines, a summary. Groups come sorted by account, region and group.
pub(crate) fn render(pending: &[Pending], colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let mut changes = 0;
    let mut groups = 0;
    let mut pending: Vec<&Pending> = pending
        .iter()
        .filter(|p| !p.added.is_empty() || !p.removed.is_empty())
        .collect();
    pending.sort_by(|a, b| {
        (&a.account, &a.region, &a.group_id).cmp(&(&b.account, &b.region, &b.group_id))
    });
    for group in pending {
        groups += 1;
        let heading = match &group.account {
            Some(account) => format!("{account} {} {}", group.region, group.group_id),
            None => format!("{} {}", group.region, group.group_id),
        };
        out.push_str(&paint(BOLD, &heading));
        out.push('\n');
        for rule in &group.removed {
            out.push_str(&paint(RED, &format!("  - {rule}")));
            out.push('\n');
        }
        for rule in &group.added {
            out.push_str(&paint(GREEN, &format!("  + {rule}")));
            out.push('\n');
        }
        changes += group.added.len() + group.removed.len();
    }
    if changes == 0 {
        out.push_str("No changes pending.\n");
    } else {
        out.push_str(&format!(
            "{changes} change(s) pending in {groups} group(s).\n"
        ));
    }
    out
}
