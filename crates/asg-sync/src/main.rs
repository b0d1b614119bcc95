//! The asg-sync Lambda binary: configuration and clients once at cold start, then one
//! `AsgSync::handle` per event. All logic lives in the library.

use std::time::SystemTime;

use asg_sync::{AsgSync, SyncConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sgwarden_lambda::init_logging();
    let config = match SyncConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            return sgwarden_lambda::refuse::<asg_sync::Report>(asg_sync::FUNCTION, error).await
        }
    };
    let sdk = sgwarden_aws::sdk::load().await;
    let sync = AsgSync::new(config, &sdk);
    sgwarden_lambda::serve(asg_sync::FUNCTION, |event, _| {
        let sync = &sync;
        async move { sync.handle(&event, SystemTime::now()).await }
    })
    .await
}
