//! The queue of a fanned-out sweep (`SGWARDEN_SWEEP_QUEUE_URL`): one message per
//! account-region, sent by the scheduled sweep in `SendMessageBatch` calls of ten.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use sgwarden_core::fanout::{batches, Place};

use crate::error::AwsError;

/// How often the entries SQS did not take are sent again before the sweep fails naming them.
const ENTRY_ATTEMPTS: usize = 3;

/// The sweep queue, with a client in the queue's own region (taken from its URL).
#[derive(Debug, Clone)]
pub struct SweepQueue {
    client: Client,
    url: String,
    region: String,
}

impl SweepQueue {
    /// `config` is any region's configuration; the client is moved to the region the URL
    /// names (`https://sqs.<region>.amazonaws.com/<account>/<name>`), else kept.
    pub fn new(config: &SdkConfig, url: &str) -> Self {
        let region = url
            .split("://")
            .nth(1)
            .and_then(|host| host.split('/').next())
            .and_then(|host| host.strip_prefix("sqs."))
            .and_then(|rest| rest.split('.').next())
            .filter(|r| r.contains('-'))
            .map_or_else(|| crate::sdk::region_of(config), str::to_string);
        let regional = crate::sdk::in_region(config, &region);
        Self {
            client: Client::new(&regional),
            url: url.to_string(),
            region,
        }
    }

    /// The queue's URL, for logs and reports.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one message per place, ten per call. Entries SQS did not take are sent again
    /// (up to three attempts); the places still not taken fail the call, each named, so the
    /// scheduled sweep fails and is retried. Returns how many calls were made.
    pub async fn send(&self, places: &[Place]) -> Result<usize, AwsError> {
        let mut calls = 0;
        for batch in batches(places) {
            let mut pending: Vec<&Place> = batch.iter().collect();
            let mut last = String::new();
            for _ in 0..ENTRY_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let entries = pending
                    .iter()
                    .map(|place| {
                        SendMessageBatchRequestEntry::builder()
                            .id(place.entry_id())
                            .message_body(place.body())
                            .build()
                            .map_err(|e| AwsError::Request {
                                operation: "SendMessageBatch",
                                resource: self.url.clone(),
                                region: self.region.clone(),
                                detail: e.to_string(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                calls += 1;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk("SendMessageBatch", &self.url, &self.region, e)
                    })?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                if let Some(first) = out.failed().first() {
                    last = format!("{}: {}", first.code(), first.message().unwrap_or_default());
                }
                pending.retain(|place| failed.contains(&place.entry_id().as_str()));
            }
            if !pending.is_empty() {
                let named: Vec<String> = pending.iter().map(|p| p.to_string()).collect();
                return Err(AwsError::Service {
                    operation: "SendMessageBatch",
                    resource: format!("{} ({})", self.url, named.join(", ")),
                    region: self.region.clone(),
                    status: 200,
                    code: "EntriesNotSent".to_string(),
                    message: last,
                });
            }
        }
        Ok(calls)
    }
}
