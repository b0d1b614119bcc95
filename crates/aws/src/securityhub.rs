//! Importing revert-ingress's findings into AWS Security Hub (`BatchImportFindings`).
//!
//! Best effort, like the chat topic: a finding that cannot be imported is logged and never
//! undoes or fails the revert it reports. The client acts in the account the findings are
//! about (a member's session for a member's group), as Security Hub requires of findings
//! under a custom integration's default product.

use aws_config::SdkConfig;
use aws_sdk_securityhub::types::{
    AwsEc2SecurityGroupDetails, AwsSecurityFinding, Compliance, ComplianceStatus, Partition,
    RecordState, Resource, ResourceDetails, Severity as HubSeverity, SeverityLabel, Workflow,
    WorkflowStatus,
};
use aws_sdk_securityhub::Client;
use sgwarden_core::finding::{Finding, Mode, Severity, SCHEMA_VERSION};

use crate::error::AwsError;

/// Security Hub in one account and region.
#[derive(Debug, Clone)]
pub struct SecurityHub {
    client: Client,
    region: String,
}

/// Security Hub takes at most 100 findings a call.
const BATCH: usize = 100;

impl SecurityHub {
    /// A Security Hub client in `config`'s account and region, which must be those the
    /// findings are about.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// Imports `findings` (updating any with the same id). An error names the first finding
    /// Security Hub refused and why.
    pub async fn import(&self, findings: &[Finding]) -> Result<(), AwsError> {
        for batch in findings.chunks(BATCH) {
            let resource = batch.first().map_or("", |f| f.group_id.as_str());
            let out = self
                .client
                .batch_import_findings()
                .set_findings(Some(batch.iter().map(to_sdk).collect()))
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("BatchImportFindings", resource, &self.region, e)
                })?;
            if let Some(refused) = out.failed_findings().first() {
                return Err(AwsError::Service {
                    operation: "BatchImportFindings",
                    resource: refused.id().unwrap_or(resource).to_string(),
                    region: self.region.clone(),
                    status: 200,
                    code: refused.error_code().unwrap_or("Unknown").to_string(),
                    message: refused.error_message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }

    /// [`SecurityHub::import`], logging a failure instead of returning it: the revert stands.
    pub async fn tell(&self, findings: &[Finding]) -> bool {
        if findings.is_empty() {
            return true;
        }
        match self.import(findings).await {
            Ok(()) => {
                tracing::info!(findings = findings.len(), region = %self.region, "findings imported into Security Hub");
                true
            }
            Err(error) => {
                tracing::warn!(error = %error, findings = findings.len(), "findings not imported into Security Hub; the revert stands");
                false
            }
        }
    }
}

fn to_sdk(finding: &Finding) -> AwsSecurityFinding {
    let label = match finding.severity {
        Severity::Low => SeverityLabel::Low,
        Severity::Medium => SeverityLabel::Medium,
        Severity::High => SeverityLabel::High,
        Severity::Critical => SeverityLabel::Critical,
    };
    let (compliance, workflow) = match finding.mode {
        Mode::Reverted => (ComplianceStatus::Passed, WorkflowStatus::Resolved),
        Mode::WouldRevert => (ComplianceStatus::Failed, WorkflowStatus::New),
    };
    let resource = Resource::builder()
        .r#type(finding.resource_type)
        .id(&finding.resource_id)
        .partition(Partition::from(finding.partition))
        .region(&finding.region)
        .details(
            ResourceDetails::builder()
                .aws_ec2_security_group(
                    AwsEc2SecurityGroupDetails::builder()
                        .group_id(&finding.group_id)
                        .build(),
                )
                .build(),
        )
        .build();
    let mut builder = AwsSecurityFinding::builder()
        .schema_version(SCHEMA_VERSION)
        .id(&finding.id)
        .product_arn(&finding.product_arn)
        .generator_id(&finding.generator_id)
        .aws_account_id(&finding.aws_account_id)
        .region(&finding.region)
        .product_name("sgwarden")
        .company_name("sgwarden")
        .created_at(&finding.at)
        .updated_at(&finding.at)
        .severity(HubSeverity::builder().label(label).build())
        .title(&finding.title)
        .description(&finding.description)
        .resources(resource)
        .compliance(Compliance::builder().status(compliance).build())
        .workflow(Workflow::builder().status(workflow).build())
        .record_state(RecordState::Active);
    for kind in &finding.types {
        builder = builder.types(kind);
    }
    for (key, value) in &finding.product_fields {
        builder = builder.product_fields(key, value);
    }
    builder.build()
}
