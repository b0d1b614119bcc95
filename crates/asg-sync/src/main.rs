//! The asg-sync Lambda binary: configuration and clients once at cold start, then one
//! `AsgSync::handle` per event. All logic lives in the library.

use std::time::SystemTime;

use asg_sync::{AsgSync, ConfigError, SyncConfig, SyncError};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[derive(Debug)]
enum Failure {
    Sync(SyncError),
    Config(ConfigError),
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        let (error_type, error_message) = match failure {
            Failure::Sync(error) => (error.kind().to_string(), error.to_string()),
            Failure::Config(error) => ("ConfigurationError".to_string(), error.to_string()),
        };
        Diagnostic {
            error_type,
            error_message,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_current_span(false)
        .without_time()
        .init();
    // A bad setting fails every invocation at its start, naming the variable, before any
    // AWS call: the operator sees it on the first event instead of a silent crash loop.
    let config = match SyncConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(error = %error, "configuration refused");
            return lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
                let error = error.clone();
                async move { Err::<Value, _>(Failure::Config(error)) }
            }))
            .await;
        }
    };
    let sdk = sgwarden_aws::sdk::load().await;
    let sync = AsgSync::new(config, &sdk);
    let sync = &sync;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        match sync.handle(&event.payload, SystemTime::now()).await {
            Ok(report) => Ok(serde_json::to_value(report).unwrap_or(Value::Null)),
            Err(error) => {
                tracing::error!(error = %error, kind = error.kind(), "invocation failed");
                Err(Failure::Sync(error))
            }
        }
    }))
    .await
}
