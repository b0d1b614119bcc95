//! The adapter's error: which call failed, on what, in which region, and why.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use sgwarden_core::ErrorType;

/// What an AWS error means for an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Trying again later may succeed (throttling, no answer, a 5xx): the invocation fails so
    /// that Lambda's retry can help.
    Transient,
    /// The resource no longer exists (a group deleted with its stack, an Auto Scaling group
    /// deleted, a lifecycle action that ended): when it is the resource the event is about,
    /// the function answers with the reason and is not retried.
    Gone,
    /// Anything else (access denied, a refused request): the invocation fails naming it, and
    /// after Lambda's retries the event is parked in the dead-letter queue for an operator.
    Permanent,
}

/// Error codes that say "try again later".
const TRANSIENT_CODES: [&str; 7] = [
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
];

/// EC2 error codes that say "the group (or instance) named does not exist".
const GONE_CODES: [&str; 4] = [
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
    "InvalidInstanceID.NotFound",
    "InvalidSecurityGroupRuleId.NotFound",
];

/// Auto Scaling answers a vanished group, hook or lifecycle action with a `ValidationError`
/// whose message says so.
const GONE_VALIDATION: [&str; 3] = [
    "No active Lifecycle Action",
    "AutoScalingGroup name not found",
    "No Lifecycle Hook found",
];

/// An AWS call that failed, or an answer sgwarden cannot use: which operation, on which
/// resource, in which region, and why. Every adapter method returns it; [`AwsError::is_transient`]
/// and [`AwsError::is_gone`] say whether the invocation is retried or answered.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error code.
    #[error("{operation} on {resource} in {region} failed (HTTP {status}): {code}: {message}")]
    Service {
        /// The API operation, as AWS names it (`AuthorizeSecurityGroupIngress`, `PutItem`).
        operation: &'static str,
        /// What the call was about: a group or instance id (several joined by commas), a
        /// table name, a topic or role ARN.
        resource: String,
        /// The region the call was sent to (`unknown` when the configuration names none).
        region: String,
        /// The HTTP status of the answer; 200 for a finding Security Hub refused inside a
        /// successful `BatchImportFindings`.
        status: u16,
        /// The AWS error code (`InvalidGroup.NotFound`, `ConditionalCheckFailedException`,
        /// `RequestLimitExceeded`), or `Unknown` when the answer carries none.
        code: String,
        /// AWS's message, as sent (empty when there is none).
        message: String,
    },
    /// No usable answer: timeout, connection refused, DNS, a response we could not read.
    #[error("{operation} on {resource} in {region} got no answer: {detail}")]
    Unreachable {
        /// The API operation, as AWS names it.
        operation: &'static str,
        /// What the call was about (see [`AwsError::Service`]).
        resource: String,
        /// The region the call was sent to.
        region: String,
        /// The SDK's error and each of its causes, on one line.
        detail: String,
    },
    /// The request could not be built (a value the SDK refuses): asking again cannot help.
    #[error("{operation} on {resource} in {region} could not be sent: {detail}")]
    Request {
        /// The API operation, as AWS names it.
        operation: &'static str,
        /// What the call was about (see [`AwsError::Service`]).
        resource: String,
        /// The region the call would have gone to.
        region: String,
        /// Why the SDK's builder refused the value.
        detail: String,
    },
    /// The resource does not exist (or is not visible to this account) in that region.
    #[error("{what} {id} not found in {region}")]
    NotFound {
        /// What was looked for, in words (`security group`, `Auto Scaling group`,
        /// `prefix list`).
        what: &'static str,
        /// The id, name or ARN it was looked for by.
        id: String,
        /// The region it was looked for in.
        region: String,
    },
    /// AWS answered with something the core cannot model; nothing was changed.
    #[error(
        "{operation} on {resource} in {region} returned a rule sgwarden cannot read: {source}"
    )]
    Unreadable {
        /// The API operation whose answer it was.
        operation: &'static str,
        /// What the answer was about: a group id, a group id and `sgr-` rule id, a prefix
        /// list id, a table name.
        resource: String,
        /// The region the answer came from.
        region: String,
        /// The field the core could not read, and why.
        source: sgwarden_core::ParseError,
    },
}

impl AwsError {
    /// Classifies an SDK error: service errors keep their code, everything else is
    /// "unreachable" (the retries the SDK already made did not help).
    pub fn from_sdk<E>(
        operation: &'static str,
        resource: &str,
        region: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &err {
            SdkError::ServiceError(service) => AwsError::Service {
                operation,
                resource: resource.to_string(),
                region: region.to_string(),
                status: service.raw().status().as_u16(),
                code: service.err().code().unwrap_or("Unknown").to_string(),
                message: service.err().message().unwrap_or_default().to_string(),
            },
            _ => AwsError::Unreachable {
                operation,
                resource: resource.to_string(),
                region: region.to_string(),
                detail: error_chain(&err),
            },
        }
    }

    /// The AWS error code, for service errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What this error means for the invocation. The one place that decides, for every
    /// function, what is retried and what is not (`docs/guide/src/troubleshooting.md`,
    /// "What is retried, what is answered, what reaches the dead-letter queue").
    pub(crate) fn fault(&self) -> Fault {
        match self {
            AwsError::Unreachable { .. } => Fault::Transient,
            AwsError::Service { status, .. } if *status >= 500 => Fault::Transient,
            AwsError::Service { code, .. } if TRANSIENT_CODES.contains(&code.as_str()) => {
                Fault::Transient
            }
            AwsError::Service { code, message, .. }
                if GONE_CODES.contains(&code.as_str())
                    || (code == "ValidationError"
                        && GONE_VALIDATION.iter().any(|m| message.contains(m))) =>
            {
                Fault::Gone
            }
            AwsError::NotFound { .. } => Fault::Gone,
            _ => Fault::Permanent,
        }
    }

    /// True when trying again later may succeed (the SDK's own retries are spent): no
    /// answer, a 5xx, or throttling.
    pub fn is_transient(&self) -> bool {
        self.fault() == Fault::Transient
    }

    /// True when the resource named no longer exists (or the lifecycle action is no longer
    /// active): asking again can only give the same answer.
    pub fn is_gone(&self) -> bool {
        self.fault() == Fault::Gone
    }

    /// True when a conditional DynamoDB write found its condition false: an answer about the
    /// table's state (claimed already, newer state, no such item), not a failure.
    pub(crate) fn is_condition_failed(&self) -> bool {
        self.code() == Some("ConditionalCheckFailedException")
    }

    /// The Lambda error type of an invocation that failed on this error, for every function:
    /// `AwsUnavailable` when a retry may help, else `AwsError`.
    pub fn kind(&self) -> ErrorType {
        if self.is_transient() {
            ErrorType::AwsUnavailable
        } else {
            ErrorType::AwsError
        }
    }
}

/// The error and its causes on one line: SDK errors keep the useful part in their sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> AwsError {
        AwsError::Service {
            operation: "SendEmail",
            resource: "r".into(),
            region: "eu-west-1".into(),
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_resource_that_no_longer_exists_is_gone_not_transient() {
        for gone in [
            service(400, "InvalidGroup.NotFound"),
            service(400, "InvalidSecurityGroupRuleId.NotFound"),
            AwsError::NotFound {
                what: "Auto Scaling group",
                id: "db".into(),
                region: "eu-west-1".into(),
            },
        ] {
            assert_eq!(gone.fault(), Fault::Gone, "{gone}");
        }
        let inactive = AwsError::Service {
            operation: "CompleteLifecycleAction",
            resource: "i-1".into(),
            region: "eu-west-1".into(),
            status: 400,
            code: "ValidationError".into(),
            message: "No active Lifecycle Action found with instance ID i-1".into(),
        };
        assert!(inactive.is_gone());
        // Any other validation error is the request's fault: permanent.
        assert_eq!(service(400, "ValidationError").fault(), Fault::Permanent);
        assert_eq!(
            service(403, "UnauthorizedOperation").fault(),
            Fault::Permanent
        );
    }

    #[test]
    fn only_what_may_pass_is_transient() {
        assert!(AwsError::Unreachable {
            operation: "SendEmail",
            resource: "r".into(),
            region: "eu-west-1".into(),
            detail: "timeout".into(),
        }
        .is_transient());
        assert!(service(503, "ServiceUnavailable").is_transient());
        assert!(service(400, "Throttling").is_transient());
        assert!(!service(400, "MessageRejected").is_transient());
        // A request the SDK would not build fails the same way every time: not retried.
        assert!(!AwsError::Request {
            operation: "SendEmail",
            resource: "r".into(),
            region: "eu-west-1".into(),
            detail: "data was not specified".into(),
        }
        .is_transient());
    }
}
