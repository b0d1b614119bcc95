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
//! It holds no function logic: each `main.rs` parses its settings, builds its clients and
//! hands its handler to [`serve`].

use std::fmt::Display;
use std::future::Future;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sgwarden_core::settings::ConfigError;

/// A function's error: its message, and a stable name for the Lambda error type.
pub trait FunctionError: Display {
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
/// invocation's error (logged once, at `error`).
pub async fn serve<H, Fut, R, E>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    R: Serialize,
    E: FunctionError,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let payload = parse(&event.payload)?;
            // Boxed: the handler's future nests inside the runtime's, and unboxed the whole
            // stack of futures exceeds the compiler's layout depth limit.
            match Box::pin(handler(payload)).await {
                Ok(report) => Ok(serde_json::to_value(report).unwrap_or(Value::Null)),
                Err(error) => Err(failed(error.kind(), error.to_string())),
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
