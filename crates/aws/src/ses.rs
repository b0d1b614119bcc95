//! Mail through SESv2 `SendEmail`: one message, text and HTML parts, to a list of recipients.

use aws_config::SdkConfig;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_sdk_sesv2::Client;

use crate::error::AwsError;

/// SESv2 in one region: the sender must be an identity verified in that region.
#[derive(Debug, Clone)]
pub struct Ses {
    client: Client,
    region: String,
}

/// A mail to send: addresses already validated by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The sender's address (`FromEmailAddress`).
    pub from: &'a str,
    /// The recipients, all on the one message's `To` line.
    pub to: &'a [String],
    /// The subject line.
    pub subject: &'a str,
    /// The plain-text body.
    pub text: &'a str,
    /// The HTML body.
    pub html: &'a str,
}

impl Ses {
    /// An SESv2 client in `config`'s region.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// Sends one message to every recipient; returns SES's message id.
    pub async fn send(&self, mail: Outgoing<'_>) -> Result<String, AwsError> {
        let content = |text: &str| {
            Content::builder()
                .data(text)
                .charset("UTF-8")
                .build()
                .map_err(|e| AwsError::Request {
                    operation: "SendEmail",
                    resource: mail.from.to_string(),
                    region: self.region.clone(),
                    detail: e.to_string(),
                })
        };
        let message = Message::builder()
            .subject(content(mail.subject)?)
            .body(
                Body::builder()
                    .text(content(mail.text)?)
                    .html(content(mail.html)?)
                    .build(),
            )
            .build();
        let out = self
            .client
            .send_email()
            .from_email_address(mail.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(mail.to.to_vec()))
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendEmail", &mail.to.join(","), &self.region, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}
