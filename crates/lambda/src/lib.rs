//! sgwarden-lambda: what every function binary does around its handler, written once.
//!
//! - JSON logs for CloudWatch (no ANSI, no timestamps: Lambda adds its own), `info` and up
//!   unless `RUST_LOG` or Lambda's `AWS_LAMBDA_LOG_LEVEL` says otherwise ([`log_filter`]).
//! - A handler error becomes the runtime's diagnostic with a stable `errorType` (the
//!   error's [`FunctionError::kind`]), so alarms and dead-letter triage can match on it.
//! - Each event is received as raw JSON text and parsed here: an event the parser refuses
//!   (nested deeper than its recursion limit, say) fails as `EventNotUnderstood` like any
//!   other event sgwarden cannot read, instead of as the runtime's own deserializer error.
//! - A report that cannot be written as JSON fails the invocation as `ReportNotWritten`,
//!   instead of answering a success whose result is `null`.
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
//! - Each handler is given what Lambda says about its invocation ([`Invocation`]): when it
//!   ends, and the ARN it was invoked by, which names the function's own account without an
//!   AWS call.
//!
//! It holds no function logic: each `main.rs` parses its settings, builds its clients and
//! hands its handler to [`serve`].

#![warn(missing_docs, unreachable_pub)]

use std::fmt::Display;
use std::future::Future;
use std::time::SystemTime;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sgwarden_core::settings::ConfigError;
use sgwarden_core::ErrorType;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    /// The `errorType` of an invocation that fails with this error: one per cause, never
    /// changed, because alarms and dead-letter triage match on it.
    fn kind(&self) -> ErrorType;
}

/// An invocation's failure as the runtime reports it.
#[derive(Debug)]
pub struct Failure {
    error_type: ErrorType,
    error_message: String,
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.error_type.to_string(),
            error_message: failure.error_message,
        }
    }
}

/// Which log lines are written, and why the environment's choice was not taken when it was
/// not: see [`log_filter`].
#[derive(Debug, Clone)]
pub struct LogFilter {
    /// The filter the subscriber applies.
    pub targets: Targets,
    /// The variable and value that could not be read, when one could not.
    pub refused: Option<String>,
}

pub use sgwarden_core::AUDIT_TARGET;

/// The log filter from the environment's two conventions, in order: `RUST_LOG` (tracing's
/// directives: a level, `target=level` pairs, or both), then `AWS_LAMBDA_LOG_LEVEL` (what
/// Lambda's advanced logging controls set: `TRACE` to `ERROR`, and `FATAL`, which `tracing`
/// has not, as `ERROR`). With neither, or a value that cannot be read, `info` and up; a
/// value that cannot be read is named in [`LogFilter::refused`], for one warning. Audit
/// lines ([`AUDIT_TARGET`]) are kept at every level.
pub fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> LogFilter {
    let mut filter = chosen_filter(rust_log, lambda_level);
    filter.targets = filter.targets.with_target(AUDIT_TARGET, LevelFilter::INFO);
    filter
}

/// The filter the environment asks for, before the audit lines are added back.
fn chosen_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> LogFilter {
    let set = |v: &&str| !v.trim().is_empty();
    let chosen = match (rust_log.filter(set), lambda_level.filter(set)) {
        (Some(directives), _) => directives
            .parse::<Targets>()
            .map_err(|_| ("RUST_LOG", directives)),
        (None, Some(level)) => lambda_level_filter(level)
            .map(|filter| Targets::new().with_default(filter))
            .ok_or(("AWS_LAMBDA_LOG_LEVEL", level)),
        (None, None) => Ok(Targets::new().with_default(LevelFilter::INFO)),
    };
    match chosen {
        Ok(targets) => LogFilter {
            targets,
            refused: None,
        },
        Err((variable, value)) => LogFilter {
            targets: Targets::new().with_default(LevelFilter::INFO),
            refused: Some(format!("{variable}={value:?}")),
        },
    }
}

/// One of Lambda's application log levels as tracing's, `FATAL` (which tracing has not) as
/// `ERROR`; `None` for any other value.
fn lambda_level_filter(level: &str) -> Option<LevelFilter> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::TRACE),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "INFO" => Some(LevelFilter::INFO),
        "WARN" => Some(LevelFilter::WARN),
        "ERROR" | "FATAL" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// JSON log lines written by `writer` (stdout for a function, stderr for the CLI), filtered
/// as [`log_filter`] reads the environment. Without timestamps when `timestamps` is false:
/// Lambda adds its own.
pub fn init_logging_to<W>(writer: W, timestamps: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let env = |name: &str| std::env::var(name).ok();
    let filter = log_filter(
        env("RUST_LOG").as_deref(),
        env("AWS_LAMBDA_LOG_LEVEL").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_current_span(false)
        .with_writer(writer);
    if timestamps {
        builder.finish().with(filter.targets).init();
    } else {
        builder.without_time().finish().with(filter.targets).init();
    }
    if let Some(refused) = filter.refused {
        tracing::warn!(setting = %refused, "log level not understood; logging info and up");
    }
}

/// A function's JSON log lines on stdout, as [`init_logging_to`] filters them.
pub fn init_logging() {
    init_logging_to(std::io::stdout, false);
}

/// What Lambda says about one invocation, beside its event (the Runtime API's headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// When Lambda ends the invocation: work still running then is killed mid-way.
    pub deadline: SystemTime,
    /// The ARN the function was invoked by (with a version or alias when one was named).
    pub function_arn: String,
}

impl Invocation {
    /// The function's own account, read from the ARN it was invoked by.
    pub fn account(&self) -> Option<&str> {
        sgwarden_core::accounts::account_of(&self.function_arn)
    }
}

impl From<&lambda_runtime::Context> for Invocation {
    fn from(context: &lambda_runtime::Context) -> Self {
        Self {
            deadline: context.deadline(),
            function_arn: context.invoked_function_arn.clone(),
        }
    }
}

/// Serves every event with `handler`; its report is the invocation's result, its error the
/// invocation's error (logged once, at `error`). `function` names the metrics' dimension.
pub async fn serve<H, Fut, R, E>(
    function: &'static str,
    handler: H,
) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value, Invocation) -> Fut,
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
                Ok(payload) => Box::pin(handler(payload, Invocation::from(&event.context)))
                    .await
                    .map_err(|error| failed(error.kind(), error.to_string())),
                Err(failure) => Err(failure),
            };
            // What the invocation did is counted even when its report cannot be written:
            // that failure says nothing about the work, only about the result.
            let (mut counts, result) = match outcome {
                Ok(report) => (report.counts(), written(&report)),
                Err(failure) => (R::default().counts(), Err(failure)),
            };
            counts.push(("Errors", u64::from(result.is_err())));
            emit(function, &counts);
            result
        },
    ))
    .await
}

/// The report as the invocation's JSON result, or the `ReportNotWritten` failure: a result
/// that cannot be written is not a success with no result.
fn written<R: Serialize>(report: &R) -> Result<Value, Failure> {
    serde_json::to_value(report).map_err(|error| {
        failed(
            ErrorType::ReportNotWritten,
            format!("the report could not be written as JSON: {error}"),
        )
    })
}

/// The event as JSON, or the `EventNotUnderstood` failure the parser's refusal is.
fn parse(raw: &RawValue) -> Result<Value, Failure> {
    serde_json::from_str(raw.get()).map_err(|error| {
        failed(
            ErrorType::EventNotUnderstood,
            format!("event not understood: {error}"),
        )
    })
}

/// An invocation's failure, logged once at `error`.
fn failed(kind: ErrorType, message: String) -> Failure {
    tracing::error!(error = %message, kind = kind.name(), "invocation failed");
    Failure {
        error_type: kind,
        error_message: message,
    }
}

/// Fails every invocation with `ConfigurationError`, naming the refused setting. Each still
/// writes its metrics line (`R`'s metrics at zero, `Errors` 1), as a failed invocation of a
/// well-configured function does: the alarms and the dashboard see it.
pub async fn refuse<R: Measured>(
    function: &'static str,
    error: ConfigError,
) -> Result<(), lambda_runtime::Error> {
    tracing::error!(error = %error, "configuration refused");
    lambda_runtime::run(service_fn(|_: LambdaEvent<Box<RawValue>>| {
        let message = error.to_string();
        async move {
            let mut counts = R::default().counts();
            counts.push(("Errors", 1));
            emit(function, &counts);
            Err::<Value, _>(Failure {
                error_type: ErrorType::ConfigurationError,
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
    fn the_own_account_is_the_invoked_arn_s_with_or_without_an_alias() {
        let invocation = |arn: &str| Invocation {
            deadline: SystemTime::UNIX_EPOCH,
            function_arn: arn.to_string(),
        };
        let by_alias = invocation("arn:aws:lambda:eu-west-1:111122223333:function:notify:live");
        assert_eq!(by_alias.account(), Some("111122223333"));
        let plain = invocation("arn:aws-cn:lambda:cn-north-1:444455556666:function:notify");
        assert_eq!(plain.account(), Some("444455556666"));
        assert_eq!(invocation("").account(), None);
    }

    #[test]
    fn rust_log_comes_first_then_lambda_s_level_then_info() {
        let chosen = |rust_log, lambda| {
            let filter = chosen_filter(rust_log, lambda);
            (filter.targets.to_string(), filter.refused)
        };
        assert_eq!(chosen(None, None), ("info".to_string(), None));
        assert_eq!(chosen(Some("  "), Some("")), ("info".to_string(), None));
        assert_eq!(chosen(None, Some("DEBUG")), ("debug".to_string(), None));
        assert_eq!(chosen(None, Some("warn")), ("warn".to_string(), None));
        // Lambda has FATAL; tracing's most severe level is ERROR.
        assert_eq!(chosen(None, Some("FATAL")), ("error".to_string(), None));
        assert_eq!(
            chosen(Some("revert_ingress=debug,warn"), Some("ERROR")),
            ("revert_ingress=debug,warn".to_string(), None)
        );
    }

    #[test]
    fn audit_lines_are_written_at_every_level() {
        use tracing::Level;
        for level in ["ERROR", "FATAL", "WARN"] {
            let targets = log_filter(None, Some(level)).targets;
            assert!(targets.would_enable(AUDIT_TARGET, &Level::INFO), "{level}");
            assert!(
                !targets.would_enable("revert_ingress", &Level::INFO),
                "{level}"
            );
        }
        let targets = log_filter(Some("off"), None).targets;
        assert!(targets.would_enable(AUDIT_TARGET, &Level::INFO));
        assert!(!targets.would_enable("revert_ingress", &Level::ERROR));
    }

    #[test]
    fn a_level_that_cannot_be_read_logs_info_and_says_which() {
        let filter = chosen_filter(None, Some("LOUD"));
        assert_eq!(filter.targets.to_string(), "info");
        assert_eq!(
            filter.refused.as_deref(),
            Some(r#"AWS_LAMBDA_LOG_LEVEL="LOUD""#)
        );
        let filter = chosen_filter(Some("sgwarden=verbose"), Some("DEBUG"));
        assert_eq!(filter.targets.to_string(), "info");
        assert_eq!(
            filter.refused.as_deref(),
            Some(r#"RUST_LOG="sgwarden=verbose""#)
        );
    }

    #[test]
    fn a_report_that_cannot_be_written_is_a_failure_not_a_null_success() {
        // JSON object keys must be strings: a map keyed by pairs cannot be written.
        let report = std::collections::BTreeMap::from([((1, 2), 3)]);
        let failure = written(&report).unwrap_err();
        assert_eq!(failure.error_type, ErrorType::ReportNotWritten);
        assert!(failure.error_message.contains("key must be a string"));
        assert_eq!(
            written(&serde_json::json!({"ok": true})).unwrap(),
            serde_json::json!({"ok": true})
        );
    }

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
