//! CloudTrail's event history (`LookupEvents`, the management events of the last 90 days):
//! who made a change (the event behind a Config item's `relatedEvents`, looked up by id), and
//! the calls of a window by name, for `sgwarden replay`.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_cloudtrail::primitives::DateTime;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_sdk_cloudtrail::Client;
use serde_json::Value;
use tokio::time::MissedTickBehavior;

use sgwarden_core::event::Principal;
use sgwarden_core::notify::Actor;

use crate::error::AwsError;

/// `LookupEvents` calls a second, at most, per account and region: CloudTrail's quota for it
/// is 2, and a replay must not take it from the consoles and tools sharing it.
pub const LOOKUPS_PER_SECOND: u64 = 2;

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
            .lookup_attributes(self.attribute(LookupAttributeKey::EventId, event_id)?)
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

    /// The records of every call named in `event_names` made between `start` and `end`, as
    /// CloudTrail recorded them (failed calls too: the caller decides), newest first for each
    /// name. Paged with `NextToken`, one `LookupEvents` call every
    /// 1/[`LOOKUPS_PER_SECOND`] s at most (a timer, not a busy loop); a throttled call is
    /// retried by the SDK's standard retry.
    pub async fn history(
        &self,
        event_names: &[&str],
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Vec<Value>, AwsError> {
        let mut pace = tokio::time::interval(Duration::from_millis(1_000 / LOOKUPS_PER_SECOND));
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut records = Vec::new();
        for name in event_names {
            let mut token = None;
            loop {
                pace.tick().await;
                let out = self
                    .client
                    .lookup_events()
                    .lookup_attributes(self.attribute(LookupAttributeKey::EventName, name)?)
                    .start_time(DateTime::from(start))
                    .end_time(DateTime::from(end))
                    .max_results(50)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("LookupEvents", name, &self.region, e))?;
                for event in out.events() {
                    let text = event.cloud_trail_event().unwrap_or_default();
                    let record = serde_json::from_str(text).map_err(|e| AwsError::Request {
                        operation: "LookupEvents",
                        resource: event.event_id().unwrap_or(name).to_string(),
                        region: self.region.clone(),
                        detail: format!("the record is not JSON: {e}"),
                    })?;
                    records.push(record);
                }
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(records)
    }

    /// A lookup attribute, `key` = `value`.
    fn attribute(&self, key: LookupAttributeKey, value: &str) -> Result<LookupAttribute, AwsError> {
        LookupAttribute::builder()
            .attribute_key(key)
            .attribute_value(value)
            .build()
            .map_err(|e| AwsError::Request {
                operation: "LookupEvents",
                resource: value.to_string(),
                region: self.region.clone(),
                detail: e.to_string(),
            })
    }
}
