//! AWS Config's recorded history of a resource: how an oversized change notification (which
//! carries only a summary) is turned back into the current and previous items.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_config::types::ResourceType;
use aws_sdk_config::Client;
use sgwarden_core::event::ConfigurationItem;

use crate::error::AwsError;

/// AWS Config in one region: the history it recorded of that region's resources.
#[derive(Debug, Clone)]
pub struct ConfigHistory {
    client: Client,
    region: String,
}

impl ConfigHistory {
    /// An AWS Config client in `config`'s region.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// The newest `limit` items of a security group, newest first (one
    /// `GetResourceConfigHistory`).
    pub async fn security_group(
        &self,
        group_id: &str,
        limit: i32,
    ) -> Result<Vec<ConfigurationItem>, AwsError> {
        let out = self
            .client
            .get_resource_config_history()
            .resource_type(ResourceType::SecurityGroup)
            .resource_id(group_id)
            .limit(limit)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("GetResourceConfigHistory", group_id, &self.region, e)
            })?;
        out.configuration_items()
            .iter()
            .map(|item| self.item(group_id, item))
            .collect()
    }

    /// One history item as the core's configuration item; its `configuration` must be JSON.
    fn item(
        &self,
        group_id: &str,
        item: &aws_sdk_config::types::ConfigurationItem,
    ) -> Result<ConfigurationItem, AwsError> {
        let configuration = item
            .configuration()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| AwsError::Unreadable {
                operation: "GetResourceConfigHistory",
                resource: group_id.to_string(),
                region: self.region.clone(),
                source: sgwarden_core::ParseError::new("configuration", format!("not JSON: {e}")),
            })?;
        Ok(ConfigurationItem {
            resource_type: item
                .resource_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            resource_id: item.resource_id().unwrap_or_default().to_string(),
            resource_name: item.resource_name().map(str::to_string),
            aws_region: item.aws_region().map(str::to_string),
            aws_account_id: item.account_id().map(str::to_string),
            configuration_item_capture_time: item
                .configuration_item_capture_time()
                .map(|t| t.to_string()),
            configuration_item_status: item
                .configuration_item_status()
                .map(|s| s.as_str().to_string()),
            configuration_state_id: item
                .configuration_state_id()
                .map(|s| serde_json::Value::String(s.to_string())),
            configuration_state_md5_hash: item.configuration_item_md5_hash().map(str::to_string),
            configuration,
            tags: item.tags().map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            }),
            related_events: Some(item.related_events().to_vec()),
        })
    }
}
