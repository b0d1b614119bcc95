//! sgwarden-lambda: what every function binary does around its handler, written once.
//!
//! - JSON logs for CloudWatch (no ANSI, no timestamps: Lambda adds its own), `info` and up.
//! - A handler error becomes the runtime's diagnostic with a stable `errorType` (the
//!   error's [`FunctionError::kind`]), so alarms and dead-letter triage can match on it.
//! - Each event is received as raw JSON text and parsed here: an event the parser refuses
//!   (nested deeper than its recursion limit, say) fails as `EventNotUnderstood` like any
//!   other event sgwarden cannot read, instead of as the runtime's own deserializer error.
//! - Settings refused at cold start fail *every* invocation with `ConfigurationError`
//!   naming the variable, before any AWS call: the operator sees it on the first event,
//!   instead of an init crash loop that hides the message.
//!
//! - After each invocation, one line of CloudWatch embedded metric format (namespace
//!   `sgwarden`, dimension `Function`) carries what it counted ([`Measured`]) and `Errors`:
//!   CloudWatch turns the log line into metrics, with no `PutMetricData` call and no added
//!   latency. Every metric of the function is written every time, zeros included, so alarms
//!   and the dashboard see a data point per invocation. (Written here rather than with an EMF
//!   crate: see this crate's `Cargo.toml`.)
//!
//! It holds no function logic: each `main.rs` parses its settings, builds its clients and
//! hands its handler to [`serve`].

#![warn(missing_docs, unreachable_pub)]

use std::fmt::Display;
use std::future::Future;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sgwarden_core::settings::ConfigError;

/// The CloudWatch namespace of every sgwarden metric.
pub(crate) const NAMESPACE: &str = "sgwarden";

/// What an invocation counted, by SPEC metric name (`docs/guide/src/running.md`, "Metrics"). A failed
/// invocation writes the counts of an empty report (`Default`: every metric, as zero), so every
/// metric has a data point per invocation and the names are written in one place.
pub trait Measured: Default {
    /// Each metric the function writes besides `Errors`, with its count.
    fn counts(&self) -> Vec<(&'static str, u64)>;
}

/// One invocation's counts as a CloudWatch embedded-metric document: one JSON line that
/// CloudWatch Logs turns into one data point per metric, dimension `Function`.
pub fn emf(function: &str, counts: &[(&'static str, u64)], timestamp_ms: u64) -> Value {
    let mut document = serde_json::Map::new();
    document.insert(
        "_aws".to_string(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": counts
                    .iter()
                    .map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    document.insert("Function".to_string(), Value::from(function));
    for (name, count) in counts {
        document.insert((*name).to_string(), Value::from(*count));
    }
    Value::Object(document)
}

/// Writes one invocation's counts (`Errors` included) to stdout as one EMF line.
fn emit(function: &str, counts: &[(&'static str, u64)]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    println!("{}", emf(function, counts, now));
}

/// A function's error: its message, and a stable name for the Lambda error type.
pub trait FunctionError: Display {
    /// The `errorType` of an invocation that fails with this error (`EventNotUnderstood`,
    /// `AwsUnavailable`, …): one name per cause, never changed, because alarms and
    /// dead-letter triage match on it.
    fn kind(&self) -> &'static str;
}

/// An invocation's failure as the runtime reports it.
#[derive(Debug)]
pub struct Failure {
    error_type: String,
    error_message: String,
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.error_type,
            error_message: failure.error_message,
        }
    }
}

/// JSON log lines on stdout, `info` and above.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_current_span(false)
        .without_time()
        .init();
}

/// Serves every event with `handler`; its report is the invocation's result, its error the
/// invocation's error (logged once, at `error`). `function` names the metrics' dimension.
pub async fn serve<H, Fut, R, E>(
    function: &'static str,
    handler: H,
) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Serialize + Measured,
    E: FunctionError,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let outcome = match parse(&event.payload) {
                // Boxed: the handler's future nests inside the runtime's, and unboxed the
                // whole stack of futures exceeds the compiler's layout depth limit.
                Ok(payload) => Box::pin(handler(payload))
                    .await
                    .map_err(|error| failed(error.kind(), error.to_string())),
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(report) => {
                    let mut counts = report.counts();
                    counts.push(("Errors", 0));
                    emit(function, &counts);
                    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
                }
                Err(failure) => {
                    let mut counts = R::default().counts();
                    counts.push(("Errors", 1));
                    emit(function, &counts);
                    Err(failure)
                }
            }
        },
    ))
    .await
}

/// The event as JSON, or the `EventNotUnderstood` failure the parser's refusal is.
fn parse(raw: &RawValue) -> Result<Value, Failure> {
    serde_json::from_str(raw.get()).map_err(|error| {
        failed(
            "EventNotUnderstood",
            format!("event not understood: {error}"),
        )
    })
}

/// An invocation's failure, logged once at `error`.
fn failed(kind: &str, message: String) -> Failure {
    tracing::error!(error = %message, kind, "invocation failed");
    Failure {
        error_type: kind.to_string(),
        error_message: message,
    }
}

/// Fails every invocation with `ConfigurationError`, naming the refused setting.
pub async fn refuse(error: ConfigError) -> Result<(), lambda_runtime::Error> {
    tracing::error!(error = %error, "configuration refused");
    lambda_runtime::run(service_fn(|_: LambdaEvent<Box<RawValue>>| {
        let message = error.to_string();
        async move {
            Err::<Value, _>(Failure {
                error_type: "ConfigurationError".to_string(),
                error_message: message,
            })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_document_declares_every_count_it_carries() {
        let doc = emf(
            "revert-ingress",
            &[("RulesRevoked", 2), ("Errors", 0)],
            1_700_000_000_000,
        );
        assert_eq!(
            doc,
            serde_json::json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "sgwarden",
                        "Dimensions": [["Function"]],
                        "Metrics": [
                            {"Name": "RulesRevoked", "Unit": "Count"},
                            {"Name": "Errors", "Unit": "Count"}
                        ]
                    }]
                },
                "Function": "revert-ingress",
                "RulesRevoked": 2,
                "Errors": 0
            })
        );
    }
}
