//! The revert-ingress Lambda binary: configuration, policy and clients once at cold start,
//! then one `RevertIngress::handle` per event. All logic lives in the library. No AWS call is
//! made before the first event: the function's own role comes from `SGWARDEN_FUNCTION_ROLE_ARN`
//! (the template sets it), else from STS the first time an event needs it.

use std::time::SystemTime;

use revert_ingress::{OwnRole, RevertConfig, RevertIngress};
use sgwarden_core::accounts::CallerIdentity;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sgwarden_lambda::init_logging();
    // A policy with a typo fails every invocation, naming REVERT_POLICY: nothing is judged
    // by a policy half understood.
    let config = match RevertConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            return sgwarden_lambda::refuse::<revert_ingress::Report>(
                revert_ingress::FUNCTION,
                error,
            )
            .await
        }
    };
    let sdk = sgwarden_aws::sdk::load().await;
    let own_role = match &config.function_role_arn {
        Some(arn) => OwnRole::Known(CallerIdentity::new(arn.clone())),
        None => OwnRole::AskSts,
    };
    let revert = RevertIngress::new(config, &sdk, own_role);
    sgwarden_lambda::serve(revert_ingress::FUNCTION, |event, invocation| {
        let revert = &revert;
        if let Some(account) = invocation.account() {
            revert.learn_own_account(account);
        }
        let deadline = Some(invocation.deadline);
        async move {
            revert
                .handle_until(&event, SystemTime::now(), deadline)
                .await
        }
    })
    .await
}
