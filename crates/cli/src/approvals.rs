//! `sgwarden approve`, `sgwarden approvals`, `sgwarden approvals revoke`: revert-ingress's
//! approvals table from the command line, instead of a raw `aws dynamodb put-item`.
//!
//! The checks (a rule that parses, a bounded duration, no peer of anywhere unless asked for)
//! are the core's (`ApprovalRequest::approve`); who approved is the caller's identity as STS
//! names it, never a flag. Every write leaves an audit line on stderr like the functions'.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use sgwarden_aws::approvals::Approvals;
use sgwarden_aws::Ec2;
use sgwarden_core::policy::{duration_seconds, ApprovalRequest, Grants, ListEntries};
use sgwarden_core::rule::Peer;
use sgwarden_core::ErrorType;

use crate::Failure;

/// The CLI's name in audit lines.
const FUNCTION: &str = "cli";

/// `sgwarden approve`.
pub(crate) struct Approve {
    pub(crate) table: String,
    pub(crate) group_id: String,
    pub(crate) rule: String,
    pub(crate) duration: String,
    pub(crate) reason: String,
    pub(crate) allow_anywhere: bool,
}

fn now() -> Result<u64, Failure> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Failure::new(ErrorType::ClockError, "the clock reads before 1970"))
}

/// The approvals table's name, or the refusal naming where it comes from.
fn table(table: Option<&str>) -> Result<&str, Failure> {
    table.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        Failure::new(
            ErrorType::ConfigurationError,
            "REVERT_APPROVALS_TABLE (or --table) names the approvals table",
        )
    })
}

pub(crate) async fn approve(args: Approve) -> Result<ExitCode, Failure> {
    let table_name = table(Some(&args.table))?.to_string();
    let request = ApprovalRequest {
        group_id: args.group_id,
        rule: args.rule,
        seconds: duration_seconds(&args.duration)
            .map_err(|e| Failure::new(ErrorType::ApprovalRefused, e))?,
        reason: args.reason,
        allow_anywhere: args.allow_anywhere,
    };
    let now = now()?;
    // Checked before any call: a refused approval costs nothing and writes nothing.
    request
        .approve("check", "check", now)
        .map_err(|e| Failure::new(ErrorType::ApprovalRefused, e))?;
    let sdk = sgwarden_aws::sdk::load().await;
    let reaches = list_entries(&sdk, &request).await?;
    request
        .approve_reaching("check", "check", now, &reaches)
        .map_err(|e| Failure::new(ErrorType::ApprovalRefused, e))?;
    let by = sgwarden_aws::sts::caller_arn(&sdk)
        .await
        .map_err(|e| Failure::new(ErrorType::IdentityUnknown, e))?;
    let approval_id = format!(
        "approval-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ")
    );
    let approval = request
        .approve_reaching(&approval_id, &by, now, &reaches)
        .map_err(|e| Failure::new(ErrorType::ApprovalRefused, e))?;
    Approvals::new(&sdk, &table_name)
        .put_approval(&approval, FUNCTION)
        .await
        .map_err(|e| Failure::new(e.kind(), e))?;
    println!(
        "approved {} on {} as {approval_id}, until {} (by {by})",
        approval.rule_text(),
        approval.group_id,
        timestamp(approval.expires_at)
    );
    Ok(ExitCode::SUCCESS)
}

/// What the request's peer resolves to when it is a customer-managed prefix list: its
/// entries, read from EC2, so that an approval of a list holding `0.0.0.0/0` is refused like
/// one of `0.0.0.0/0` itself. A list that cannot be read is refused: what it opens is unknown.
async fn list_entries(
    sdk: &aws_config::SdkConfig,
    request: &ApprovalRequest,
) -> Result<Vec<Peer>, Failure> {
    let Some(list_id) = request.prefix_list() else {
        return Ok(Vec::new());
    };
    let lists = Ec2::new(sdk)
        .prefix_lists(&[list_id.clone()].into())
        .await
        .map_err(|e| Failure::new(e.kind(), e))?;
    match lists.get(&list_id) {
        Some(ListEntries::Customer(entries)) => Ok(entries.iter().cloned().collect()),
        Some(ListEntries::AwsManaged) => Ok(Vec::new()),
        Some(ListEntries::Unreadable(reason)) => Err(Failure::new(
            ErrorType::ApprovalRefused,
            format!("the entries of {list_id} cannot be read ({reason}): what it opens is unknown"),
        )),
        None => Err(Failure::new(
            ErrorType::ApprovalRefused,
            format!("the entries of {list_id} were not read"),
        )),
    }
}

/// `sgwarden approvals [--group-id …]`: a table of approvals and exemption records.
pub(crate) async fn list(
    table_name: Option<&str>,
    group_id: Option<&str>,
) -> Result<ExitCode, Failure> {
    let table_name = table(table_name)?;
    let sdk = sgwarden_aws::sdk::load().await;
    let approvals = Approvals::new(&sdk, table_name);
    let grants = match group_id {
        Some(group) => approvals.for_group(group).await,
        None => approvals.all().await,
    }
    .map_err(|e| Failure::new(e.kind(), e))?;
    print!("{}", render(&grants, now()?));
    Ok(ExitCode::SUCCESS)
}

/// `sgwarden approvals revoke <group-id> <approval-id>`.
pub(crate) async fn revoke(
    table_name: Option<&str>,
    group_id: &str,
    approval_id: &str,
) -> Result<ExitCode, Failure> {
    let table_name = table(table_name)?;
    let sdk = sgwarden_aws::sdk::load().await;
    Approvals::new(&sdk, table_name)
        .delete(group_id, approval_id, FUNCTION)
        .await
        .map_err(|e| {
            Failure::new(
                if e.is_gone() {
                    ErrorType::ApprovalNotFound
                } else {
                    e.kind()
                },
                e,
            )
        })?;
    println!("revoked {approval_id} on {group_id}");
    Ok(ExitCode::SUCCESS)
}

/// The listing: one row per approval (soonest to expire first, expired ones marked), then
/// one per exemption record.
fn render(grants: &Grants, now: u64) -> String {
    let mut rows = vec![[
        "GROUP".to_string(),
        "ID".to_string(),
        "RULE".to_string(),
        "EXPIRES IN".to_string(),
        "BY".to_string(),
        "REASON".to_string(),
    ]];
    let mut approvals: Vec<_> = grants.approvals.iter().collect();
    approvals.sort_by_key(|a| (a.expires_at, a.group_id.clone()));
    for a in approvals {
        rows.push([
            a.group_id.clone(),
            a.approval_id.clone(),
            a.rule_text(),
            expires_in(a.expires_at, now),
            a.approved_by.clone().unwrap_or_default(),
            a.reason.clone().unwrap_or_default(),
        ]);
    }
    for (index, e) in grants.exemptions.iter().enumerate() {
        rows.push([
            e.group_id.clone(),
            e.record_id(index),
            e.rule.to_string(),
            "never (exemption)".to_string(),
            e.by.clone(),
            format!("event {}", e.reason),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.len() == 1 {
        out.push_str("(no approvals)\n");
    }
    out
}

/// `3h 59m`, or `expired 2h 1m ago`.
fn expires_in(expires_at: u64, now: u64) -> String {
    let span = |seconds: u64| {
        let (d, h, m) = (
            seconds / 86_400,
            seconds % 86_400 / 3_600,
            seconds % 3_600 / 60,
        );
        match (d, h) {
            (0, 0) => format!("{m}m"),
            (0, _) => format!("{h}h {m}m"),
            _ => format!("{d}d {h}h"),
        }
    };
    if expires_at > now {
        span(expires_at - now)
    } else {
        format!("expired {} ago", span(now - expires_at))
    }
}

fn timestamp(epoch: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(epoch).unwrap_or(i64::MAX), 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| epoch.to_string())
}
