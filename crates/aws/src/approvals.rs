//! revert-ingress's approvals table: time-limited approvals of one rule shape on one group.
//!
//! Schema (SPEC): partition key `group_id` (S), sort key `approval_id` (S); `rule` (S, e.g.
//! `tcp/22 203.0.113.7/32`), `expires_at` (N, epoch seconds, also the table's TTL attribute),
//! `approved_by` (S), `reason` (S). DynamoDB deletes expired items only eventually (up to
//! days later), so expiry is always checked against the clock by the core, never left to TTL.
//!
//! An item that does not follow the schema approves nothing: it is logged (`warn`) and
//! skipped, so a typo in an approval can never open a port.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sgwarden_core::policy::Approval;
use sgwarden_core::ParseError;

use crate::error::AwsError;
use crate::registry::text;

#[derive(Debug, Clone)]
pub struct Approvals {
    client: Client,
    table: String,
    region: String,
}

impl Approvals {
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_string(),
            region: crate::sdk::region_of(config),
        }
    }

    /// The approvals of one group (one consistent `Query`, all pages).
    pub async fn for_group(&self, group_id: &str) -> Result<Vec<Approval>, AwsError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("group_id = :g")
            .expression_attribute_values(":g", AttributeValue::S(group_id.to_string()))
            .into_paginator()
            .items()
            .send();
        let mut approvals = Vec::new();
        while let Some(item) = pages.next().await {
            let item =
                item.map_err(|e| AwsError::from_sdk("Query", &self.table, &self.region, e))?;
            approvals.extend(self.readable(&item));
        }
        Ok(approvals)
    }

    /// Every approval (one consistent `Scan`, all pages): the sweep's view. The table holds
    /// only live and recently expired approvals, so it stays small.
    pub async fn all(&self) -> Result<Vec<Approval>, AwsError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut approvals = Vec::new();
        while let Some(item) = pages.next().await {
            let item =
                item.map_err(|e| AwsError::from_sdk("Scan", &self.table, &self.region, e))?;
            approvals.extend(self.readable(&item));
        }
        Ok(approvals)
    }

    fn readable(&self, item: &HashMap<String, AttributeValue>) -> Option<Approval> {
        match approval_from_item(item) {
            Ok(approval) => Some(approval),
            Err(error) => {
                tracing::warn!(
                    table = %self.table,
                    region = %self.region,
                    group_id = item.get("group_id").and_then(|v| v.as_s().ok()).map(String::as_str),
                    approval_id = item.get("approval_id").and_then(|v| v.as_s().ok()).map(String::as_str),
                    error = %error,
                    "approval unreadable; it approves nothing"
                );
                None
            }
        }
    }
}

/// Reads an approvals item; anything off the schema is refused.
pub fn approval_from_item(item: &HashMap<String, AttributeValue>) -> Result<Approval, ParseError> {
    let rule = text(item, "rule")?;
    let (direction, traffic, peer) = Approval::parse_rule(&rule)?;
    let expires_at = match item.get("expires_at") {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|_| ParseError::new("expires_at", format!("{n:?} is not epoch seconds")))?,
        Some(_) => return Err(ParseError::new("expires_at", "not a number")),
        None => return Err(ParseError::missing("expires_at")),
    };
    Ok(Approval {
        group_id: text(item, "group_id")?,
        approval_id: text(item, "approval_id")?,
        direction,
        traffic,
        peer,
        expires_at,
        approved_by: text(item, "approved_by").ok(),
        reason: text(item, "reason").ok(),
    })
}
