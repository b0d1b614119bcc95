//! Who made a change: the CloudTrail event behind a Config item's `relatedEvents`, looked up
//! by id (`LookupEvents`, the management-event history of the last 90 days).

use aws_config::SdkConfig;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_cloudtrail::Client;
use serde_json::Value;

use sgwarden_core::event::Principal;
use sgwarden_core::notify::Actor;

use crate::error::AwsError;

/// CloudTrail's event history in one region: `LookupEvents` finds only the events recorded
/// in the region it is asked in, which is the region of the call.
#[derive(Debug, Clone)]
pub struct CloudTrail {
    client: Client,
    region: String,
}

impl CloudTrail {
    /// A CloudTrail client in `config`'s region.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// The principal behind event `event_id` as CloudTrail recorded it, or `None` when
    /// CloudTrail does not know the event.
    pub async fn actor(&self, event_id: &str) -> Result<Option<Actor>, AwsError> {
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
        Ok(out.events().first().map(|event| {
            let record: Option<Value> = event
                .cloud_trail_event()
                .and_then(|text| serde_json::from_str(text).ok());
            let identity = record.as_ref().map(|r| &r["userIdentity"]);
            let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_string);
            Actor {
                principal: Principal {
                    kind: text(identity.map(|i| &i["type"])),
                    arn: text(identity.map(|i| &i["arn"])),
                    role_arn: text(identity.map(|i| &i["sessionContext"]["sessionIssuer"]["arn"])),
                    invoked_by: text(identity.map(|i| &i["invokedBy"])),
                },
                user_name: event.username().map(str::to_string),
            }
        }))
    }
}
