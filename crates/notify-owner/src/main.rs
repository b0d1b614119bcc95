//! The notify-owner Lambda binary: configuration, templates and clients once at cold start,
//! then one `NotifyOwner::handle` per SNS delivery. All logic lives in the library.

use std::time::SystemTime;

use notify_owner::{NotifyConfig, NotifyOwner};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sgwarden_lambda::init_logging();
    let config = match NotifyConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            return sgwarden_lambda::refuse::<notify_owner::Report>(notify_owner::FUNCTION, error)
                .await
        }
    };
    let sdk = sgwarden_aws::sdk::load().await;
    // The templates are compiled into the binary and tested; failing here is a build defect.
    let notify = NotifyOwner::new(config, &sdk)?;
    sgwarden_lambda::serve(notify_owner::FUNCTION, |event, invocation| {
        let notify = &notify;
        if let Some(account) = invocation.account() {
            notify.learn_own_account(account);
        }
        async move { notify.handle(&event, SystemTime::now()).await }
    })
    .await
}
