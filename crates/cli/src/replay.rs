//! `sgwarden replay`: revert-ingress's judgement of the last weeks of CloudTrail's history,
//! before the function acts. The judgement is the function's own
//! (`RevertIngress::replay`, dry run forced as for `sgwarden plan`); what is printed is the
//! core's (`sgwarden_core::replay`): for people, or as JSON for a pipeline. The exit code is
//! `plan`'s: 2 when a call would have been reverted, 0 when none.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use sgwarden_core::accounts::CallerIdentity;
use sgwarden_core::replay::parse_since;
use sgwarden_core::ErrorType;

use crate::plan::dry_run_env;
use crate::{print_json, Failure, Format};

pub(crate) async fn replay(since: &str, format: Format) -> Result<ExitCode, Failure> {
    let window = parse_since(since).map_err(|e| Failure::new(ErrorType::BadArgument, e))?;
    let config = revert_ingress::RevertConfig::from_lookup(dry_run_env("REVERT_DRY_RUN"))?;
    // The function's own calls are skipped as the function skips them, when its role is
    // named; the operator running the CLI is not the function.
    let own_role = match &config.function_role_arn {
        Some(arn) => revert_ingress::OwnRole::Known(CallerIdentity::new(arn.clone())),
        None => revert_ingress::OwnRole::Unknown,
    };
    let sdk = sgwarden_aws::sdk::load().await;
    let replayed = revert_ingress::RevertIngress::new(config, &sdk, own_role)
        .replay(since, Duration::from_secs(window), SystemTime::now())
        .await
        .map_err(|e| Failure::new(e.kind(), e))?;
    for unread in &replayed.unread {
        eprintln!(
            "sgwarden: not replayed, account {} in {}: {}",
            unread.account, unread.region, unread.reason
        );
    }
    match format {
        Format::Text => print!("{}", replayed.replay.render()),
        Format::Json => print_json(&replayed.replay.to_json()),
    }
    Ok(if replayed.replay.reverts() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
