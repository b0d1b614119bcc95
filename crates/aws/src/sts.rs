//! Who this process is: STS `GetCallerIdentity`. revert-ingress asks it once, at the first
//! event that needs its own role, when `SGWARDEN_FUNCTION_ROLE_ARN` is not set; the CLI asks
//! it to name the approver of `sgwarden approve`.

use aws_config::SdkConfig;

use crate::error::AwsError;

/// The ARN the configured credentials act as (an assumed-role session ARN in Lambda).
pub async fn caller_arn(config: &SdkConfig) -> Result<String, AwsError> {
    let region = crate::sdk::region_of(config);
    let out = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetCallerIdentity", "caller", &region, e))?;
    out.arn()
        .map(str::to_string)
        .ok_or_else(|| AwsError::NotFound {
            what: "caller identity",
            id: "arn".to_string(),
            region,
        })
}
