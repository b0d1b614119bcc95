//! `sgwarden`: the operator's command line.
//!
//! It calls the very handlers the Lambda binaries call (`run`, `plan`), against whatever AWS
//! the SDK's standard environment points at, a real account or the local emulator; and it
//! registers a host outside any Auto Scaling group on a security group (`register`,
//! `deregister`). It decides nothing itself: plans come from the core, changes go through
//! the AWS adapter, every change leaves the same audit line as the functions'.
//!
//! Exit codes: 0 done (for `plan`: nothing pending; for `replay`: nothing would have been
//! reverted), 2 `plan` found changes pending or `replay` a call that would have been
//! reverted, 1 an error (printed on stderr, with its error type).

mod approvals;
mod plan;
mod register;
mod replay;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use sgwarden_core::settings::ConfigError;
use sgwarden_core::ErrorType;

/// Keep EC2 security groups correct: run a function once, preview a true-up or sweep, replay
/// the last weeks through revert-ingress, register this host on a group, or approve a rule
/// for a while.
///
/// AWS access comes from the SDK's standard environment: AWS_REGION (or AWS_DEFAULT_REGION,
/// or the profile), the credentials chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, instance role…),
/// and AWS_ENDPOINT_URL to point at another endpoint (the local emulator). Each function
/// reads its own settings from the environment, as in Lambda (SYNC_*, REVERT_*, NOTIFY_*).
#[derive(Parser, Debug)]
#[command(name = "sgwarden", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one function's handler once, in this process, and print its result as JSON.
    ///
    /// The operator's "run it now", and the way to replay a captured event (a dead-letter
    /// message, a sample from events/). The function's settings are read from the
    /// environment exactly as its Lambda reads them.
    Run {
        /// The function whose handler runs.
        function: Function,
        /// The event: a JSON file, or - for standard input.
        #[arg(long, value_name = "FILE|-")]
        event: String,
    },
    /// Print what the next true-up (asg-sync) or sweep (revert-ingress) would change, and
    /// change nothing.
    ///
    /// Added rules are marked +, removed rules -, grouped by region and group, in colour on a
    /// terminal (NO_COLOR turns it off). Exits 2 when changes are pending, 0 when none: usable
    /// in CI. The function's settings come from the environment; its dry run is forced on.
    Plan {
        /// asg-sync (the true-up of every group this region registered) or revert-ingress
        /// (the sweep of every group in the policy's scope).
        function: PlanFunction,
    },
    /// Replay the last weeks of CloudTrail's history through revert-ingress, and change
    /// nothing: what it would have reverted, before it is turned on.
    ///
    /// Reads CloudTrail's event history (LookupEvents, at most 2 calls a second per account
    /// and region) for the calls revert-ingress judges, in every account and region its
    /// sweep covers (SGWARDEN_ACCOUNTS x SGWARDEN_REGIONS through SGWARDEN_MEMBER_ROLE), and
    /// judges each as the function would today: today's policy and approvals, on the rules
    /// the call added, then the group as EC2 holds it now. Prints, by principal and group,
    /// the rules that would be reverted (or would have been, since removed), the counts
    /// (failed calls and groups gone counted, not judged) and suggestions: principals to
    /// exempt, shapes to allow or approve. Exits 2 when a call would have been reverted, 0
    /// when none, as plan does.
    Replay {
        /// The function whose judgement is replayed.
        function: ReplayFunction,
        /// How far back: whole hours or days, e.g. 36h or 14d, at most 90d (CloudTrail's
        /// event history).
        #[arg(long, default_value = "14d", value_name = "WINDOW")]
        since: String,
        /// text for people, json for a pipeline.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Put this host's address on a security group (in any region), owned by its instance id.
    ///
    /// For hosts outside Auto Scaling groups: run at boot (see infra/sgwarden-register.service).
    /// The address, instance id and instance region come from instance metadata (IMDSv2)
    /// unless given. Rules are described `sgwarden:<instance-id> <region>/self-registered`:
    /// only they are ever changed, a changed address replaces the old one, and the group's
    /// rule quota is checked before anything is added. asg-sync's true-up removes the
    /// registrations of instances that no longer exist.
    Register(RegisterArgs),
    /// Remove this host's registration from a security group (run at shutdown).
    Deregister(DeregisterArgs),
    /// Approve a rule on a group for a while: revert-ingress keeps it until then.
    ///
    /// Written to revert-ingress's approvals table with the caller's identity (from STS) as
    /// approver. A rule inside the approval (same direction, traffic inside, peer inside) is
    /// kept by events and sweeps until it expires; the first sweep after that revokes it.
    /// Refused: a rule that does not parse, more than 7 days (longer access belongs in the
    /// policy), and a wide part of the internet (0.0.0.0/0, 0.0.0.0/1, ::/1: a public range
    /// wider than a /8, or an IPv6 /32) without --allow-anywhere.
    Approve(ApproveArgs),
    /// List the approvals table (approvals, soonest to expire first, and exemption records),
    /// or revoke one.
    Approvals(ApprovalsArgs),
}

#[derive(clap::Args, Debug)]
struct ApproveArgs {
    /// The security group.
    #[arg(long, value_name = "SG_ID")]
    group_id: String,
    /// The rule: [ingress|egress] <traffic> <peer>, e.g. "tcp/22 203.0.113.7/32".
    #[arg(long)]
    rule: String,
    /// How long it lasts: 90s, 30m, 4h or 2d (at most 7d).
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Why the access is needed (kept with the approval).
    #[arg(long)]
    reason: String,
    /// Allow an approval that covers a wide part of the internet (a public range wider than a
    /// /8, or an IPv6 /32: 0.0.0.0/0, 0.0.0.0/1, ::/1).
    #[arg(long)]
    allow_anywhere: bool,
    /// revert-ingress's approvals table.
    #[arg(long, env = "REVERT_APPROVALS_TABLE", value_name = "TABLE")]
    table: String,
}

#[derive(clap::Args, Debug)]
struct ApprovalsArgs {
    #[command(subcommand)]
    action: Option<ApprovalsAction>,
    /// Only this group's approvals.
    #[arg(long, value_name = "SG_ID")]
    group_id: Option<String>,
    /// revert-ingress's approvals table (required).
    #[arg(
        long,
        global = true,
        env = "REVERT_APPROVALS_TABLE",
        value_name = "TABLE"
    )]
    table: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ApprovalsAction {
    /// Delete one approval (or exemption record): the next sweep judges the rule without it.
    Revoke {
        /// The approval's group.
        group_id: String,
        /// The approval's id (the ID column of `sgwarden approvals`).
        approval_id: String,
    },
}

#[derive(clap::Args, Debug)]
struct HostArgs {
    /// The security group to register on.
    #[arg(long, env = "SGWARDEN_GROUP_ID", value_name = "SG_ID")]
    group_id: String,
    /// The group's region (may differ from the host's).
    #[arg(long, env = "SGWARDEN_GROUP_REGION")]
    region: String,
    /// This host's instance id [default: from instance metadata].
    #[arg(long, env = "SGWARDEN_INSTANCE_ID")]
    instance_id: Option<String>,
    /// This host's region [default: from instance metadata].
    #[arg(long, env = "SGWARDEN_INSTANCE_REGION")]
    instance_region: Option<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args, Debug)]
struct RegisterArgs {
    #[command(flatten)]
    host: HostArgs,
    /// The traffic to admit from this host, e.g. tcp/5432,tcp/9042 (as SYNC_PORTS).
    #[arg(long, env = "SGWARDEN_PORTS")]
    ports: String,
    /// The address to register [default: the public IPv4 from instance metadata, or the
    /// private one with --private].
    #[arg(long, env = "SGWARDEN_ADDRESS")]
    address: Option<std::net::IpAddr>,
    /// Register the private IPv4 address (VPN, peered VPCs) instead of the public one.
    #[arg(long)]
    private: bool,
    /// Rules per address family and direction the group may hold (EC2's default is 60).
    #[arg(long, default_value_t = 60)]
    quota: usize,
}

#[derive(clap::Args, Debug)]
struct DeregisterArgs {
    #[command(flatten)]
    host: HostArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    AsgSync,
    RevertIngress,
    NotifyOwner,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum PlanFunction {
    AsgSync,
    RevertIngress,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ReplayFunction {
    RevertIngress,
}

/// How `replay` prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

/// A failure: its error type (as the Lambda would report it) and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorType,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorType, message: impl ToString) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::new(ErrorType::ConfigurationError, error)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs (audit lines included) go to stderr as JSON, so stdout carries only the result.
    // Filtered as a function's are: `RUST_LOG`, then `AWS_LAMBDA_LOG_LEVEL`, else info.
    sgwarden_lambda::init_logging_to(std::io::stderr, true);
    let outcome = match cli.command {
        Command::Run { function, event } => run(function, &event).await,
        Command::Plan { function } => plan::plan(function).await,
        Command::Replay {
            function: ReplayFunction::RevertIngress,
            since,
            format,
        } => replay::replay(&since, format).await,
        Command::Register(args) => register::register(args).await,
        Command::Deregister(args) => register::deregister(args).await,
        Command::Approve(args) => {
            approvals::approve(approvals::Approve {
                table: args.table,
                group_id: args.group_id,
                rule: args.rule,
                duration: args.duration,
                reason: args.reason,
                allow_anywhere: args.allow_anywhere,
            })
            .await
        }
        Command::Approvals(args) => match args.action {
            None => approvals::list(args.table.as_deref(), args.group_id.as_deref()).await,
            Some(ApprovalsAction::Revoke {
                group_id,
                approval_id,
            }) => approvals::revoke(args.table.as_deref(), &group_id, &approval_id).await,
        },
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("sgwarden: {} ({})", failure.message, failure.kind);
            ExitCode::from(1)
        }
    }
}

fn read_event(source: &str) -> Result<Value, Failure> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(ErrorType::EventNotRead, format!("standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(PathBuf::from(source))
            .map_err(|e| Failure::new(ErrorType::EventNotRead, format!("{source}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorType::EventNotUnderstood,
            format!("{source}: not JSON: {e}"),
        )
    })
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    );
}

async fn run(function: Function, source: &str) -> Result<ExitCode, Failure> {
    let event = read_event(source)?;
    let sdk = sgwarden_aws::sdk::load().await;
    let now = SystemTime::now();
    match function {
        Function::AsgSync => {
            let sync = asg_sync::AsgSync::new(asg_sync::SyncConfig::from_env()?, &sdk);
            let report = sync
                .handle(&event, now)
                .await
                .map_err(|e| Failure::new(e.kind(), e))?;
            print_json(&report);
        }
        Function::RevertIngress => {
            let config = revert_ingress::RevertConfig::from_env()?;
            // The operator running the CLI is not the function: a change the operator made is
            // judged like anyone's. The function's own calls are only revokes, which are not
            // among its triggers, so there is no own call to recognise here.
            let revert =
                revert_ingress::RevertIngress::new(config, &sdk, revert_ingress::OwnRole::Unknown);
            let report = revert
                .handle(&event, now)
                .await
                .map_err(|e| Failure::new(e.kind(), e))?;
            print_json(&report);
        }
        Function::NotifyOwner => {
            let notify =
                notify_owner::NotifyOwner::new(notify_owner::NotifyConfig::from_env()?, &sdk)
                    .map_err(|e| Failure::new(ErrorType::TemplateError, e))?;
            let report = notify
                .handle(&event, now)
                .await
                .map_err(|e| Failure::new(e.kind(), e))?;
            print_json(&report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// True when `stream` is a terminal and NO_COLOR is unset: colour and progress are for
/// people, never for pipes and logs.
pub(crate) fn for_people(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
