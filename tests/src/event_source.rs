//! Lambda's SQS event source mapping, played against the emulator: receive a batch, invoke the
//! real function binary with the event Lambda would build, then settle the batch as Lambda does
//! with `ReportBatchItemFailures` (delete all but the failed messages; on an invocation error
//! delete nothing). moto has no event source mappings, and a fanned-out sweep is only proven
//! end to end when its retries and dead letters follow SQS's own rules, not a test's shortcut.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use serde_json::{json, Map, Value};

use crate::runtime::{Outcome, RuntimeApi};

/// The attributes Lambda puts in every record (`attributes`), beside those a queue adds when
/// it has them (FIFO groups, X-Ray, a redrive).
const RECORD_ATTRIBUTES: [&str; 4] = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
];
const OPTIONAL_ATTRIBUTES: [&str; 5] = [
    "AWSTraceHeader",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "DeadLetterQueueSourceArn",
];

/// How long the player waits for one invocation's outcome before it fails the test: a bound
/// on a hung binary, not a measurement.
const INVOCATION_LIMIT: Duration = Duration::from_secs(60);

/// One queue: its URL (what the SDK takes), its ARN (the event's `eventSourceARN`) and its
/// region (the event's `awsRegion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub url: String,
    pub arn: String,
    pub region: String,
}

/// A queue with a real redrive policy, and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivenQueue {
    pub queue: Queue,
    pub dead_letters: Queue,
}

/// Creates `name` with a visibility timeout of `visibility` and a redrive policy sending a
/// message received `max_receive_count` times without being deleted to `name`-dlq, as the
/// template's sweep queue does (`infra/revert-ingress.yaml`).
pub async fn queue_with_dead_letters(
    sqs: &Client,
    name: &str,
    max_receive_count: u32,
    visibility: Duration,
) -> RedrivenQueue {
    let dead_letters = create_queue(sqs, &format!("{name}-dlq"), &[]).await;
    let redrive = json!({
        "deadLetterTargetArn": dead_letters.arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string();
    let queue = create_queue(
        sqs,
        name,
        &[
            (QueueAttributeName::RedrivePolicy, redrive),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            ),
        ],
    )
    .await;
    RedrivenQueue {
        queue,
        dead_letters,
    }
}

async fn create_queue(
    sqs: &Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Queue {
    let mut create = sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        create = create.attributes(key.clone(), value);
    }
    let url = create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create queue {name}: {e:?}"))
        .queue_url()
        .expect("CreateQueue answers the queue's URL")
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the ARN of {name}: {e:?}"))
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("GetQueueAttributes answers QueueArn")
        .to_string();
    let region = sqs
        .config()
        .region()
        .expect("an SQS client with a region")
        .to_string();
    Queue { url, arn, region }
}

/// One message as received: what Lambda copies into a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    pub md5_of_message_attributes: Option<String>,
    /// The system attributes SQS answered (`ApproximateReceiveCount`, `SentTimestamp`, …).
    pub attributes: BTreeMap<String, String>,
    /// The message attributes in the record's spelling (`stringValue`, `dataType`, …).
    pub message_attributes: Map<String, Value>,
}

impl Received {
    fn from_sdk(message: &Message) -> Self {
        let text = |v: Option<&str>, what: &str| {
            v.unwrap_or_else(|| panic!("a received message without {what}: {message:?}"))
                .to_string()
        };
        let attributes = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let message_attributes = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(name, value)| {
                        let mut spelled = Map::new();
                        if let Some(s) = value.string_value() {
                            spelled.insert("stringValue".into(), json!(s));
                        }
                        if let Some(b) = value.binary_value() {
                            spelled.insert("binaryValue".into(), json!(base64(b.as_ref())));
                        }
                        spelled
                            .insert("stringListValues".into(), json!(value.string_list_values()));
                        let binaries: Vec<String> = value
                            .binary_list_values()
                            .iter()
                            .map(|b| base64(b.as_ref()))
                            .collect();
                        spelled.insert("binaryListValues".into(), json!(binaries));
                        spelled.insert("dataType".into(), json!(value.data_type()));
                        (name.clone(), Value::Object(spelled))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            message_id: text(message.message_id(), "MessageId"),
            receipt_handle: text(message.receipt_handle(), "ReceiptHandle"),
            body: message.body().unwrap_or_default().to_string(),
            md5_of_body: message.md5_of_body().unwrap_or_default().to_string(),
            md5_of_message_attributes: message.md5_of_message_attributes().map(str::to_string),
            attributes,
            message_attributes,
        }
    }

    /// `ApproximateReceiveCount`: how often SQS has handed this message out, this time
    /// included.
    pub fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no ApproximateReceiveCount: {self:?}"))
    }

    /// The body as JSON (a sweep message's `{"account","region"}`), `Null` when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The record Lambda's SQS event source builds for this message.
    pub fn record(&self, queue: &Queue) -> Value {
        let mut attributes = Map::new();
        for name in RECORD_ATTRIBUTES {
            let value = self
                .attributes
                .get(name)
                .unwrap_or_else(|| panic!("SQS did not answer {name}: {self:?}"));
            attributes.insert(name.into(), json!(value));
        }
        for name in OPTIONAL_ATTRIBUTES {
            if let Some(value) = self.attributes.get(name) {
                attributes.insert(name.into(), json!(value));
            }
        }
        let mut record = json!({
            "messageId": self.message_id,
            "receiptHandle": self.receipt_handle,
            "body": self.body,
            "attributes": attributes,
            "messageAttributes": self.message_attributes,
            "md5OfBody": self.md5_of_body,
            "eventSource": "aws:sqs",
            "eventSourceARN": queue.arn,
            "awsRegion": queue.region,
        });
        if let Some(md5) = &self.md5_of_message_attributes {
            record["md5OfMessageAttributes"] = json!(md5);
        }
        record
    }
}

/// The event of one fanned-out sweep message for `account` in `region`, as Lambda hands it
/// over on its `receive_count`-th receive, for a test that invokes a handler with it directly.
pub fn sweep_message(id: &str, account: &str, region: &str, receive_count: u32) -> Value {
    json!({"Records": [{
        "messageId": id,
        "receiptHandle": format!("handle-{id}"),
        "body": sgwarden_core::fanout::Place::new(account, region).body(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(),
                       "SentTimestamp": "1764770000000", "SenderId": "AROAEXAMPLE",
                       "ApproximateFirstReceiveTimestamp": "1764770000001"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{region}:{account}:sgwarden-sweep"),
        "awsRegion": region,
    }]})
}

/// The event Lambda invokes the function with for one batch.
pub fn sqs_event(messages: &[Received], queue: &Queue) -> Value {
    json!({ "Records": messages.iter().map(|m| m.record(queue)).collect::<Vec<_>>() })
}

/// Which messages of a batch Lambda leaves on the queue after `outcome`, under
/// `ReportBatchItemFailures`: those a response names in `batchItemFailures`; every one when
/// the invocation failed, or when the response names an item wrongly (no, an empty or an
/// unknown `itemIdentifier`: Lambda then treats the batch as a complete failure). A response
/// without `batchItemFailures`, or with an empty or null list, is a complete success.
pub fn failed_items(outcome: &Outcome, batch: &[Received]) -> Vec<String> {
    let all = || batch.iter().map(|m| m.message_id.clone()).collect();
    let Outcome::Response { body, .. } = outcome else {
        return all();
    };
    let failures = match body.get("batchItemFailures") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(failures)) => failures,
        Some(_) => return all(),
    };
    let mut failed = Vec::new();
    for failure in failures {
        let id = failure.get("itemIdentifier").and_then(Value::as_str);
        match id {
            Some(id) if !id.is_empty() && batch.iter().any(|m| m.message_id == id) => {
                if !failed.iter().any(|f| f == id) {
                    failed.push(id.to_string());
                }
            }
            _ => return all(),
        }
    }
    failed
}

/// One invocation the event source made, and how it settled the batch.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub messages: Vec<Received>,
    pub outcome: Outcome,
    /// Messages deleted after it.
    pub deleted: Vec<String>,
    /// Messages left to be received again (made visible at once).
    pub retried: Vec<String>,
}

impl Delivery {
    /// The response body, or the test fails naming the outcome.
    #[track_caller]
    pub fn response(&self) -> &Value {
        match &self.outcome {
            Outcome::Response { body, .. } => body,
            other => panic!("expected a response: {other:?}"),
        }
    }
}

/// What a [`EventSource::drain`] did.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    pub deliveries: Vec<Delivery>,
    /// Every message deleted, in order.
    pub deleted: Vec<String>,
    /// Every message left for a retry, once per time it failed.
    pub failed: Vec<String>,
    /// True when the last receive found the queue empty (rather than the rounds running out).
    pub emptied: bool,
}

/// The event source mapping of one queue to one running function.
pub struct EventSource<'a> {
    sqs: Client,
    queue: Queue,
    runtime: &'a RuntimeApi,
    batch_size: i32,
}

impl<'a> EventSource<'a> {
    /// Delivers `queue`'s messages to the function behind `runtime`, `batch_size` (1 to 10,
    /// the mapping's `BatchSize`) at a time.
    pub fn new(sqs: &Client, queue: &Queue, runtime: &'a RuntimeApi, batch_size: i32) -> Self {
        assert!((1..=10).contains(&batch_size), "batch size {batch_size}");
        Self {
            sqs: sqs.clone(),
            queue: queue.clone(),
            runtime,
            batch_size,
        }
    }

    /// One poll: receives a batch and, when there is one, invokes the function with it and
    /// settles it. `None` when the queue had nothing visible (a receive may also move messages
    /// past their `maxReceiveCount` to the dead-letter queue, as SQS does).
    pub async fn poll(&self) -> Option<Delivery> {
        let messages = receive(&self.sqs, &self.queue, self.batch_size, None).await;
        if messages.is_empty() {
            return None;
        }
        let request_id = self.runtime.invoke(sqs_event(&messages, &self.queue));
        let outcome = outcome_of(self.runtime, &request_id).await;
        let retried = failed_items(&outcome, &messages);
        let (failed, succeeded): (Vec<&Received>, Vec<&Received>) = messages
            .iter()
            .partition(|m| retried.contains(&m.message_id));
        self.delete(&succeeded).await;
        self.make_visible(&failed).await;
        Some(Delivery {
            deleted: succeeded.iter().map(|m| m.message_id.clone()).collect(),
            retried,
            messages,
            outcome,
        })
    }

    /// Polls until a receive finds the queue empty, at most `rounds` times.
    pub async fn drain(&self, rounds: usize) -> Drained {
        let mut drained = Drained::default();
        for _ in 0..rounds {
            let Some(delivery) = self.poll().await else {
                drained.emptied = true;
                break;
            };
            drained.deleted.extend(delivery.deleted.iter().cloned());
            drained.failed.extend(delivery.retried.iter().cloned());
            drained.deliveries.push(delivery);
        }
        drained
    }

    async fn delete(&self, messages: &[&Received]) {
        if messages.is_empty() {
            return;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(&m.receipt_handle)
                    .build()
                    .expect("a delete entry")
            })
            .collect();
        let out = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteMessageBatch: {e:?}"));
        assert!(out.failed().is_empty(), "not deleted: {:?}", out.failed());
    }

    /// What the visibility timeout would do, at once: the failed messages are visible again.
    async fn make_visible(&self, messages: &[&Received]) {
        if messages.is_empty() {
            return;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(&m.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .expect("a visibility entry")
            })
            .collect();
        let out = self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("ChangeMessageVisibilityBatch: {e:?}"));
        assert!(
            out.failed().is_empty(),
            "not made visible: {:?}",
            out.failed()
        );
    }
}

/// Up to `count` visible messages of `queue`, with every system and message attribute, by a
/// short poll (moto answers every visible message to one; SQS samples its servers).
async fn receive(
    sqs: &Client,
    queue: &Queue,
    count: i32,
    visibility: Option<i32>,
) -> Vec<Received> {
    sqs.receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(count)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .wait_time_seconds(0)
        .set_visibility_timeout(visibility)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage from {}: {e:?}", queue.url))
        .messages()
        .iter()
        .map(Received::from_sdk)
        .collect()
}

/// Every message `queue` holds (a dead-letter queue, read by a test), received and hidden
/// for a minute so that each is read once; none is deleted.
pub async fn receive_all(sqs: &Client, queue: &Queue) -> Vec<Received> {
    let mut all = Vec::new();
    loop {
        let batch = receive(sqs, queue, 10, Some(60)).await;
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

/// `ApproximateNumberOfMessages` and `ApproximateNumberOfMessagesNotVisible` of `queue`:
/// what waits, and what is in flight.
pub async fn depth(sqs: &Client, queue: &Queue) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes of {}: {e:?}", queue.url));
    let number = |name: &QueueAttributeName| {
        out.attributes()
            .and_then(|a| a.get(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name:?} of {}: {out:?}", queue.url))
    };
    (
        number(&QueueAttributeName::ApproximateNumberOfMessages),
        number(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The outcome the function posted for `request_id`; the test fails when none arrives within
/// [`INVOCATION_LIMIT`], or when the function could not start.
async fn outcome_of(runtime: &RuntimeApi, request_id: &str) -> Outcome {
    let deadline = tokio::time::Instant::now() + INVOCATION_LIMIT;
    let mut wanted = 1;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let outcomes = runtime.outcomes(wanted, left).await;
        for outcome in &outcomes {
            match outcome {
                Outcome::Response { request_id: id, .. }
                | Outcome::Error { request_id: id, .. }
                    if id == request_id =>
                {
                    return outcome.clone();
                }
                Outcome::InitError { body } => panic!("the function did not start: {body}"),
                _ => {}
            }
        }
        assert!(
            outcomes.len() >= wanted,
            "no outcome for {request_id} within {INVOCATION_LIMIT:?}: {outcomes:?}"
        );
        wanted = outcomes.len() + 1;
    }
}

/// Standard base64 with padding: how Lambda spells a binary message attribute.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Received {
        Received {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: "{}".into(),
            md5_of_body: String::new(),
            md5_of_message_attributes: None,
            attributes: BTreeMap::new(),
            message_attributes: Map::new(),
        }
    }

    fn response(body: Value) -> Outcome {
        Outcome::Response {
            request_id: "r".into(),
            body,
        }
    }

    #[test]
    fn lambda_settles_a_batch_by_its_reported_failures() {
        let batch = [message("a"), message("b")];
        assert!(failed_items(&response(json!({})), &batch).is_empty());
        assert!(failed_items(&response(Value::Null), &batch).is_empty());
        assert!(failed_items(&response(json!({"batchItemFailures": []})), &batch).is_empty());
        assert_eq!(
            failed_items(
                &response(json!({"batchItemFailures": [{"itemIdentifier": "b"}]})),
                &batch
            ),
            ["b"]
        );
        for wrong in [
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"id": "a"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "z"}]}),
            json!({"batchItemFailures": "a"}),
        ] {
            assert_eq!(
                failed_items(&response(wrong.clone()), &batch),
                ["a", "b"],
                "{wrong}"
            );
        }
        let error = Outcome::Error {
            request_id: "r".into(),
            body: json!({"errorType": "AwsError"}),
        };
        assert_eq!(failed_items(&error, &batch), ["a", "b"]);
    }

    #[test]
    fn binary_attributes_are_spelled_in_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"1100"), "MTEwMA==");
    }
}
