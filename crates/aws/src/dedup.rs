//! "Mailed once": a small DynamoDB table of notifications already sent, claimed with a
//! conditional write before sending.
//!
//! SNS delivers at least once, and a retried invocation must not mail twice. The claim is one
//! `PutItem` with `attribute_not_exists(#k)`: the first invocation wins, any redelivery finds
//! the key and sends nothing. A send that fails releases the claim (`DeleteItem`) so the
//! retry can send. Items carry `expires_at` (epoch seconds) for the table's TTL. Schema:
//! partition key `notification` (S).
//!
//! The one case this does not cover: a process killed between the claim and the send
//! (every AWS call is bounded well under the function's timeout, so only a crash does it).
//! That loses one mail rather than sending two, and is logged by the claim's absence of a
//! `sent` line.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::error::AwsError;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation sends.
    Claimed,
    /// Already sent (or being sent) by another invocation.
    AlreadyClaimed,
}

/// notify-owner's "mailed once" table in one region.
#[derive(Debug, Clone)]
pub struct Dedup {
    client: Client,
    table: String,
    region: String,
}

impl Dedup {
    /// The table named `table` in `config`'s region. No AWS call is made here.
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_string(),
            region: crate::sdk::region_of(config),
        }
    }

    /// Claims the notification `key` with one conditional `PutItem`: [`Claim::Claimed`] when
    /// no item holds it, [`Claim::AlreadyClaimed`] when one does, expired or not. `expires_at`
    /// (epoch seconds) only tells the table's TTL when it may delete the item.
    pub async fn claim(&self, key: &str, expires_at: u64) -> Result<Claim, AwsError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("notification", AttributeValue::S(key.to_string()))
            .item("expires_at", AttributeValue::N(expires_at.to_string()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", "notification")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => {
                let err = AwsError::from_sdk("PutItem", &self.table, &self.region, e);
                if err.is_condition_failed() {
                    Ok(Claim::AlreadyClaimed)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Gives a claim back after a failed send, so a retry may send.
    pub async fn release(&self, key: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("notification", AttributeValue::S(key.to_string()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DeleteItem", &self.table, &self.region, e))?;
        Ok(())
    }
}
