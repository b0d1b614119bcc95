//! Who made a change: the CloudTrail event behind a Config item's `relatedEvents`, looked up
//! by id (`LookupEvents`, the management-event history of the last 90 days).

use aws_config::SdkConfig;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_cloudtrail::Client;
use serde_json::Value;

use crate::error::AwsError;

#[derive(Debug, Clone)]
pub struct CloudTrail {
    client: Client,
    region: String,
}

impl CloudTrail {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// The principal behind event `event_id` (the role for an assumed-role session, else the
    /// ARN, else the user name), or `None` when CloudTrail does not know the event.
    pub async fn actor(&self, event_id: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .lookup_events()
            .lookup_attributes(
                LookupAttribute::builder()
                    .attribute_key(LookupAttributeKey::EventId)
                    .attribute_value(event_id)
                    .build()
                    .map_err(|e| AwsError::Request {
                        operation: "LookupEvents",
                        resource: event_id.to_string(),
                        region: self.region.clone(),
                        detail: e.to_string(),
                    })?,
            )
            .max_results(1)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("LookupEvents", event_id, &self.region, e))?;
        Ok(out.events().first().and_then(|event| {
            let record: Option<Value> = event
                .cloud_trail_event()
                .and_then(|text| serde_json::from_str(text).ok());
            let identity = record.as_ref().map(|r| &r["userIdentity"]);
            let arn = identity.and_then(|i| i["arn"].as_str());
            let role = identity.and_then(|i| i["sessionContext"]["sessionIssuer"]["arn"].as_str());
            match (arn, role) {
                (Some(arn), Some(role)) if arn.contains(":assumed-role/") => {
                    Some(format!("{arn} (role {role})"))
                }
                (Some(arn), _) => Some(arn.to_string()),
                _ => event.username().map(str::to_string),
            }
        }))
    }
}
