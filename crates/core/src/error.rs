//! The one error of the core: input it does not understand, naming the field.
//!
//! Every parser in the core fails with a [`ParseError`] whose `field` is a path into the input
//! (`detail.requestParameters.ipPermissions.items[0].fromPort`), so an operator reading the
//! Lambda error knows what to look at. Nothing in the core panics on input.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Input the core could not read: where it is (`field`) and what is wrong there (`reason`).
/// Displays as `field: reason`, or the reason alone when there is no path.
pub struct ParseError {
    /// Where in the input the problem is, as a dotted path.
    pub field: String,
    /// What is wrong there.
    pub reason: String,
}

impl ParseError {
    /// An error at `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An error for a required `field` that is absent; the reason is `missing`.
    pub fn missing(field: impl Into<String>) -> Self {
        Self::new(field, "missing")
    }

    /// Prefixes the field path with the place the failing part was found at.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = match (prefix.is_empty(), self.field.is_empty()) {
            (true, _) => self.field,
            (false, true) => prefix.to_string(),
            (false, false) if self.field.starts_with('[') => format!("{prefix}{}", self.field),
            (false, false) => format!("{prefix}.{}", self.field),
        };
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// Every error type sgwarden reports: the Lambda `errorType` of a failed invocation, and the
/// type the CLI prints after its message. Alarms, dead-letter triage and the guide's
/// troubleshooting chapter match on these names, so each is written here once and never
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// A setting was refused at cold start (every invocation fails with it).
    ConfigurationError,
    /// The event is not one sgwarden can read.
    EventNotUnderstood,
    /// The event is one sgwarden reads, but not one this function answers.
    WrongTrigger,
    /// AWS did not answer or throttled, and the SDK's retries are spent: a retry may help.
    AwsUnavailable,
    /// AWS refused the call: a retry gives the same answer.
    AwsError,
    /// asg-sync: the plan would exceed a group's rule quota; nothing was changed.
    QuotaExceeded,
    /// asg-sync: the trigger's Auto Scaling group is not one of the cluster's.
    GroupNotInCluster,
    /// asg-sync: the trigger's Auto Scaling group no longer exists.
    GroupGone,
    /// revert-ingress: rules were revoked, but their record was not published.
    RecordNotPublished,
    /// revert-ingress: the clock reads before 1970, so approvals cannot be judged.
    ClockError,
    /// revert-ingress: a sweep neared the invocation's deadline and left groups unjudged,
    /// for the retry.
    DeadlineNear,
    /// notify-owner: AWS Config has not recorded the state the message names yet.
    ConfigHistoryBehind,
    /// notify-owner: SES did not take the mail.
    MailNotSent,
    /// notify-owner: a mail template failed to render.
    TemplateError,
    /// The invocation's report could not be written as JSON, so its result is unknown.
    ReportNotWritten,
    /// CLI: the event file (or standard input) could not be read.
    EventNotRead,
    /// CLI: `plan revert-ingress` found the sweep skipped on purpose.
    NotPlanned,
    /// CLI: a flag's value is wrong.
    BadArgument,
    /// CLI: `approve` refused the request.
    ApprovalRefused,
    /// CLI: `approvals revoke` names an approval the table does not hold.
    ApprovalNotFound,
    /// CLI: instance metadata (IMDSv2) did not answer.
    MetadataUnavailable,
    /// CLI: STS could not say who the caller is.
    IdentityUnknown,
}

impl ErrorType {
    /// The name reported, exactly as alarms and the guide spell it.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorType::ConfigurationError => "ConfigurationError",
            ErrorType::EventNotUnderstood => "EventNotUnderstood",
            ErrorType::WrongTrigger => "WrongTrigger",
            ErrorType::AwsUnavailable => "AwsUnavailable",
            ErrorType::AwsError => "AwsError",
            ErrorType::QuotaExceeded => "QuotaExceeded",
            ErrorType::GroupNotInCluster => "GroupNotInCluster",
            ErrorType::GroupGone => "GroupGone",
            ErrorType::RecordNotPublished => "RecordNotPublished",
            ErrorType::ClockError => "ClockError",
            ErrorType::DeadlineNear => "DeadlineNear",
            ErrorType::ConfigHistoryBehind => "ConfigHistoryBehind",
            ErrorType::MailNotSent => "MailNotSent",
            ErrorType::TemplateError => "TemplateError",
            ErrorType::ReportNotWritten => "ReportNotWritten",
            ErrorType::EventNotRead => "EventNotRead",
            ErrorType::NotPlanned => "NotPlanned",
            ErrorType::BadArgument => "BadArgument",
            ErrorType::ApprovalRefused => "ApprovalRefused",
            ErrorType::ApprovalNotFound => "ApprovalNotFound",
            ErrorType::MetadataUnavailable => "MetadataUnavailable",
            ErrorType::IdentityUnknown => "IdentityUnknown",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Deserialises `T` from a JSON value, naming the failing field on error.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// Parses JSON text into `T`, naming the failing field on error.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(path_error)
}

/// serde reports a missing field at its parent; name the field itself instead.
fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ParseError {
    let path = e.path().to_string();
    let field = if path == "." { String::new() } else { path };
    let message = e.into_inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string());
    match missing {
        Some(name) => ParseError::missing(name).within(&field),
        None => ParseError::new(field, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_join_into_a_path() {
        let e = ParseError::new("fromPort", "missing")
            .within("[2]")
            .within("ipPermissions");
        assert_eq!(e.field, "ipPermissions[2].fromPort");
        assert_eq!(e.to_string(), "ipPermissions[2].fromPort: missing");
    }

    #[test]
    fn serde_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            port: u16,
        }
        let e = from_str::<Outer>(r#"{"inner": {"port": "x"}}"#).unwrap_err();
        assert_eq!(e.field, "inner.port");
        let e = from_str::<Outer>(r#"{"inner": {}}"#).unwrap_err();
        assert_eq!(e.to_string(), "inner.port: missing");
    }
}
