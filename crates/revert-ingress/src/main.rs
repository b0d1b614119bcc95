//! The revert-ingress Lambda binary: configuration, policy, clients and the function's own
//! identity once at cold start, then one `RevertIngress::handle` per event. All logic lives
//! in the library.

use std::time::SystemTime;

use revert_ingress::{RevertConfig, RevertIngress};
use sgwarden_core::policy::CallerIdentity;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sgwarden_lambda::init_logging();
    // A policy with a typo fails every invocation, naming REVERT_POLICY: nothing is judged
    // by a policy half understood.
    let config = match RevertConfig::from_env() {
        Ok(config) => config,
        Err(error) => return sgwarden_lambda::refuse(error).await,
    };
    let sdk = sgwarden_aws::sdk::load().await;
    // Knowing its own role lets the function skip its own calls. It only ever revokes, and
    // revocations are not among its triggers, so running without it is safe: warn and go on.
    let identity = match sgwarden_aws::sts::caller_arn(&sdk).await {
        Ok(arn) => Some(CallerIdentity::new(arn)),
        Err(error) => {
            tracing::warn!(error = %error, "own identity unknown; own calls cannot be recognised");
            None
        }
    };
    let revert = RevertIngress::new(config, &sdk, identity);
    sgwarden_lambda::serve(|event| {
        let revert = &revert;
        async move { revert.handle(&event, SystemTime::now()).await }
    })
    .await
}
