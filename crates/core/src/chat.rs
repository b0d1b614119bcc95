//! Chat messages: what sgwarden did, for the channel where the team talks.
//!
//! Each function publishes one message per revert, per owner notice and per failed or
//! partial sync to `CHAT_TOPIC_ARN`. Amazon Q Developer in chat applications reads a topic's
//! messages in its *custom notification* schema and shows them in the Slack, Microsoft Teams
//! or Chime channels configured on that topic, with no code of ours in between:
//!
//! ```json
//! {"version": "1.0", "source": "custom",
//!  "content": {"textType": "client-markdown", "title": "…", "description": "…",
//!              "nextSteps": ["…"]},
//!  "metadata": {"threadId": "sg-0123…", "summary": "…"}}
//! ```
//!
//! `version`, `source` and `content.description` are what the schema requires; messages about
//! one security group share its id as `threadId`, so a channel that allows threads keeps one
//! thread per group. Texts are cut to the schema's limits (title 250 characters, description
//! 8,000) rather than refused: a long list of rules must not lose the message.

use serde::Serialize;

/// The schema's limit on `content.title`, in characters.
pub(crate) const TITLE_LIMIT: usize = 250;
/// The schema's limit on `content.description`, in characters.
pub(crate) const DESCRIPTION_LIMIT: usize = 8_000;

/// One custom notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    version: &'static str,
    source: &'static str,
    content: Content,
    metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    text_type: &'static str,
    title: String,
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    next_steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    thread_id: String,
    summary: String,
}

impl ChatMessage {
    /// A message about `thread` (a security group id, or a cluster for asg-sync). The title
    /// doubles as the summary shown where the channel lists notifications.
    pub fn new(thread: &str, title: &str, description: &str) -> Self {
        let title = cut(title, TITLE_LIMIT);
        Self {
            version: "1.0",
            source: "custom",
            metadata: Metadata {
                thread_id: thread.to_string(),
                summary: title.clone(),
            },
            content: Content {
                text_type: "client-markdown",
                title,
                description: cut(description, DESCRIPTION_LIMIT),
                next_steps: Vec::new(),
            },
        }
    }

    /// Adds what the reader may do next (shown as a list under the description).
    pub fn next_step(mut self, step: &str) -> Self {
        self.content.next_steps.push(cut(step, TITLE_LIMIT));
        self
    }

    /// The message as the topic carries it.
    pub fn to_json(&self) -> String {
        // A struct of strings always serializes; the fallback is never taken.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `text` cut to `limit` characters, marked with an ellipsis when cut.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut short: String = text.chars().take(limit - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_message_carries_the_schema_s_required_fields_and_values() {
        let message = ChatMessage::new("sg-0123", "Reverted on sg-0123", "ssh from *anywhere*")
            .next_step("Approve it with `sgwarden approve` if it was wanted");
        let json: Value = serde_json::from_str(&message.to_json()).unwrap_or_default();
        assert_eq!(json["version"], "1.0");
        assert_eq!(json["source"], "custom");
        assert_eq!(json["content"]["textType"], "client-markdown");
        assert_eq!(json["content"]["title"], "Reverted on sg-0123");
        assert_eq!(json["content"]["description"], "ssh from *anywhere*");
        assert_eq!(
            json["content"]["nextSteps"][0],
            "Approve it with `sgwarden approve` if it was wanted"
        );
        assert_eq!(json["metadata"]["threadId"], "sg-0123");
        assert_eq!(json["metadata"]["summary"], "Reverted on sg-0123");
        let plain: Value =
            serde_json::from_str(&ChatMessage::new("t", "x", "y").to_json()).unwrap_or_default();
        assert!(plain["content"].get("nextSteps").is_none(), "{plain}");
    }

    #[test]
    fn long_texts_are_cut_to_the_schema_s_limits() {
        let long = "é".repeat(DESCRIPTION_LIMIT + 10);
        let message = ChatMessage::new("t", &long, &long);
        assert_eq!(message.content.title.chars().count(), TITLE_LIMIT);
        assert!(message.content.title.ends_with('…'));
        assert_eq!(
            message.content.description.chars().count(),
            DESCRIPTION_LIMIT
        );
        let exact = "a".repeat(TITLE_LIMIT);
        assert_eq!(ChatMessage::new("t", &exact, "d").content.title, exact);
    }
}
