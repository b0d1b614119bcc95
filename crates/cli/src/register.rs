//! `sgwarden register` / `deregister`: a host's own address on a security group, owned by
//! its instance id (core `register`), planned and quota-checked by the core, applied by the
//! adapter with the usual audit line.

use std::net::IpAddr;
use std::process::ExitCode;

use aws_config::imds;
use aws_config::provider_config::ProviderConfig;
use sgwarden_aws::{AuditContext, Ec2};
use sgwarden_core::register::Registrant;
use sgwarden_core::sync::{check_quota, parse_ports};
use sgwarden_core::{plan, ErrorType, Plan, RuleSet};

use crate::{DeregisterArgs, Failure, HostArgs, RegisterArgs};

/// Instance metadata (IMDSv2; `AWS_EC2_METADATA_SERVICE_ENDPOINT` points elsewhere, as the
/// SDK documents), read only for what the command line did not give.
struct Metadata(imds::Client);

impl Metadata {
    fn new() -> Self {
        let config = ProviderConfig::default().with_http_client(sgwarden_aws::sdk::https_client());
        Self(imds::Client::builder().configure(&config).build())
    }

    async fn get(&self, path: &str) -> Result<String, Failure> {
        self.0
            .get(path)
            .await
            .map(|v| v.as_ref().trim().to_string())
            .map_err(|e| {
                Failure::new(
                    ErrorType::MetadataUnavailable,
                    format!("instance metadata {path}: {e}"),
                )
            })
    }
}

async fn registrant(host: &HostArgs, metadata: &Metadata) -> Result<Registrant, Failure> {
    let instance_id = match &host.instance_id {
        Some(id) => id.clone(),
        None => metadata.get("/latest/meta-data/instance-id").await?,
    };
    let region = match &host.instance_region {
        Some(region) => region.clone(),
        None => metadata.get("/latest/meta-data/placement/region").await?,
    };
    Registrant::new(&instance_id, &region).map_err(|e| Failure::new(ErrorType::BadArgument, e))
}

pub(crate) async fn register(args: RegisterArgs) -> Result<ExitCode, Failure> {
    let ports = parse_ports(&args.ports)
        .map_err(|e| Failure::new(ErrorType::BadArgument, format!("--ports: {e}")))?;
    let metadata = Metadata::new();
    let host = registrant(&args.host, &metadata).await?;
    let address: IpAddr = match args.address {
        Some(address) => address,
        None => {
            let path = if args.private {
                "/latest/meta-data/local-ipv4"
            } else {
                "/latest/meta-data/public-ipv4"
            };
            let text = metadata.get(path).await?;
            text.parse().map_err(|_| {
                Failure::new(
                    ErrorType::MetadataUnavailable,
                    format!("{path}: {text:?} is not an address"),
                )
            })?
        }
    };
    let desired = host.rules(address, &ports);
    change(
        &args.host,
        &host,
        &desired,
        Some(args.quota),
        &format!("register {address}"),
    )
    .await
}

pub(crate) async fn deregister(args: DeregisterArgs) -> Result<ExitCode, Failure> {
    let host = registrant(&args.host, &Metadata::new()).await?;
    change(&args.host, &host, &RuleSet::new(), None, "deregister").await
}

/// Brings the host's rules on the group to `desired`, touching no other rule.
async fn change(
    args: &HostArgs,
    host: &Registrant,
    desired: &RuleSet,
    quota: Option<usize>,
    what: &str,
) -> Result<ExitCode, Failure> {
    let sdk = sgwarden_aws::sdk::in_region(&sgwarden_aws::sdk::load().await, &args.region);
    let ec2 = Ec2::new(&sdk);
    let aws = |e: sgwarden_aws::AwsError| Failure::new(e.kind(), e);
    let group = ec2.read_group(&args.group_id).await.map_err(aws)?;
    let planned: Plan = plan(&group.rules, desired, host.owner());
    if let Some(quota) = quota {
        check_quota(&group.group_id, &group.rules, &planned, quota).map_err(|e| {
            Failure::new(
                ErrorType::QuotaExceeded,
                format!("refused, nothing changed: {e}"),
            )
        })?;
    }
    let summary = format!(
        "{} {what} on {} in {}: +{} -{}",
        host.instance_id,
        group.group_id,
        args.region,
        planned.add.len(),
        planned.remove.len()
    );
    if args.dry_run {
        println!("{summary} (dry run, nothing changed)\n{planned}");
        return Ok(ExitCode::SUCCESS);
    }
    let audit = AuditContext {
        function: "sgwarden-cli",
        cause: format!("{} {what}", host.instance_id),
    };
    ec2.apply(&group.group_id, &planned, &audit)
        .await
        .map_err(aws)?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
