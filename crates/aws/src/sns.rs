//! One SNS topic, for records that people and other systems subscribe to; and the chat topic
//! every function tells what it did.

use aws_config::SdkConfig;
use aws_sdk_sns::Client;
use sgwarden_core::chat::ChatMessage;

use crate::error::AwsError;

/// A topic, with a client in the topic's own region (taken from its ARN).
#[derive(Debug, Clone)]
pub struct Topic {
    client: Client,
    arn: String,
    region: String,
}

impl Topic {
    /// `config` is any region's configuration; the client is moved to the ARN's region.
    pub fn new(config: &SdkConfig, arn: &str) -> Self {
        let region = arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .map_or_else(|| crate::sdk::region_of(config), str::to_string);
        let regional = crate::sdk::in_region(config, &region);
        Self {
            client: Client::new(&regional),
            arn: arn.to_string(),
            region,
        }
    }

    /// The topic's ARN, for logs.
    pub(crate) fn arn(&self) -> &str {
        &self.arn
    }

    /// Publishes one message; returns its SNS message id. `subject` is cut to SNS's limit
    /// (100 ASCII characters, no line breaks).
    pub async fn publish(&self, subject: &str, message: &str) -> Result<String, AwsError> {
        let subject: String = subject
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    ' '
                }
            })
            .take(100)
            .collect();
        let out = self
            .client
            .publish()
            .topic_arn(&self.arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Publish", &self.arn, &self.region, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

/// The chat topic (`CHAT_TOPIC_ARN`), when one is configured. Telling it is best effort: a
/// message that cannot be published is logged and never undoes or fails the change it reports.
#[derive(Debug, Clone)]
pub struct Chat(Option<Topic>);

impl Chat {
    /// The chat topic at `arn`, or none when `arn` is `None`: then [`Chat::tell`] publishes
    /// nothing and answers false.
    pub fn new(config: &SdkConfig, arn: Option<&str>) -> Self {
        Self(arn.map(|arn| Topic::new(config, arn)))
    }

    /// Publishes `message`; true when the topic took it.
    pub async fn tell(&self, message: &ChatMessage) -> bool {
        let Some(topic) = &self.0 else {
            return false;
        };
        match topic.publish("sgwarden", &message.to_json()).await {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(topic = %topic.arn(), error = %error, "chat message not published; the change it reports stands");
                false
            }
        }
    }
}
