//! revert-ingress's settings, parsed once at cold start from the environment (SPEC
//! "revert-ingress"). A missing or malformed variable is an error naming it.
//!
//! `REVERT_POLICY` is compiled here, at start: a policy with a typo is refused before any
//! event is judged by it, never applied half-understood.

use sgwarden_core::accounts::Reach;
use sgwarden_core::policy::Policy;
pub use sgwarden_core::settings::ConfigError;
use sgwarden_core::settings::{bad, flag, optional, role_arn, topic_arn};

#[derive(Debug, Clone, PartialEq)]
pub struct RevertConfig {
    pub policy: Policy,
    pub approvals_table: Option<String>,
    pub notify_topic_arn: Option<String>,
    pub dry_run: bool,
    /// `SECURITY_HUB`: import one finding per reverted group (per rule a dry run would
    /// revert) into Security Hub.
    pub security_hub: bool,
    /// `SGWARDEN_FUNCTION_ROLE_ARN`: the function's own IAM role, so that its calls are
    /// recognised without asking STS at cold start (the template sets it).
    pub function_role_arn: Option<String>,
    /// `CHAT_TOPIC_ARN`: one chat message per revert (optional).
    pub chat_topic_arn: Option<String>,
    /// `SGWARDEN_MEMBER_ROLE`, `SGWARDEN_ACCOUNTS`, `SGWARDEN_REGIONS`: a central
    /// deployment's member accounts and the regions its sweep covers.
    pub reach: Reach,
    /// `SGWARDEN_SWEEP_QUEUE_URL`: the queue of a fanned-out sweep (issue #24), when set.
    pub sweep_queue_url: Option<String>,
}

impl RevertConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let policy = match optional(&get, "REVERT_POLICY") {
            None => Policy::default(),
            Some(text) => {
                Policy::from_json(&text).map_err(|e| bad("REVERT_POLICY", e.to_string()))?
            }
        };
        let approvals_table = optional(&get, "REVERT_APPROVALS_TABLE");
        if let Some(table) = &approvals_table {
            let valid = (3..=255).contains(&table.len())
                && table
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !valid {
                return Err(bad(
                    "REVERT_APPROVALS_TABLE",
                    format!("{table:?} is not a DynamoDB table name"),
                ));
            }
        }
        // An exempt principal's change is kept only on the strength of its record in the
        // approvals table; without one it would be kept by the event and reverted by the next
        // sweep. Refused at start, so the operator learns it before the first exempt change.
        if policy.exempts_principals() && approvals_table.is_none() {
            return Err(bad(
                "REVERT_APPROVALS_TABLE",
                "required when REVERT_POLICY exempts principals: their changes are recorded \
                 there, the only place that proves an exemption",
            ));
        }
        let notify_topic_arn = topic_arn(&get, "REVERT_NOTIFY_TOPIC_ARN")?;
        let chat_topic_arn = topic_arn(&get, "CHAT_TOPIC_ARN")?;
        let function_role_arn = role_arn(&get, "SGWARDEN_FUNCTION_ROLE_ARN")?;
        Ok(Self {
            policy,
            approvals_table,
            notify_topic_arn,
            dry_run: flag("REVERT_DRY_RUN", get("REVERT_DRY_RUN"))?,
            security_hub: flag("SECURITY_HUB", get("SECURITY_HUB"))?,
            function_role_arn,
            chat_topic_arn,
            reach: Reach::from_lookup(&get)?,
            sweep_queue_url: sweep_queue_url(&get)?,
        })
    }
}

/// `SGWARDEN_SWEEP_QUEUE_URL`, when set: an SQS queue URL (`https://…/<account>/<name>`).
fn sweep_queue_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = optional(get, "SGWARDEN_SWEEP_QUEUE_URL") else {
        return Ok(None);
    };
    let valid = (url.starts_with("https://") || url.starts_with("http://"))
        && url.trim_end_matches('/').rsplit('/').count() >= 3
        && !url.contains(char::is_whitespace);
    if valid {
        Ok(Some(url))
    } else {
        Err(bad(
            "SGWARDEN_SWEEP_QUEUE_URL",
            format!("{url:?} is not an SQS queue URL"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RevertConfig, ConfigError> {
        RevertConfig::from_lookup(sgwarden_core::settings::from_pairs(vars))
    }

    #[test]
    fn nothing_set_means_revert_every_change_everywhere() {
        let config = config(&[]).unwrap();
        assert_eq!(config.policy, Policy::default());
        assert_eq!(config.approvals_table, None);
        assert_eq!(config.notify_topic_arn, None);
        assert!(!config.dry_run);
    }

    #[test]
    fn each_bad_setting_names_its_variable() {
        for (variable, value) in [
            ("REVERT_POLICY", r#"{"scope": {"groups": []}}"#),
            ("REVERT_POLICY", "not json"),
            ("REVERT_APPROVALS_TABLE", "a"),
            (
                "REVERT_NOTIFY_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:111122223333:q",
            ),
            ("REVERT_DRY_RUN", "maybe"),
            ("CHAT_TOPIC_ARN", "arn:aws:sns:eu-west-1:1111:chat"),
            (
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:sts::111122223333:assumed-role/revert/fn",
            ),
            (
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::111122223333:role/",
            ),
            (
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::1111:role/revert",
            ),
            (
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::111122223333:user/x",
            ),
        ] {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
        }
        let ok = config(&[
            (
                "REVERT_NOTIFY_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111122223333:reverts",
            ),
            ("REVERT_APPROVALS_TABLE", "sgwarden-approvals"),
            ("REVERT_DRY_RUN", "true"),
            (
                "SGWARDEN_FUNCTION_ROLE_ARN",
                "arn:aws:iam::111122223333:role/service/revert",
            ),
        ])
        .unwrap();
        assert!(ok.dry_run);
        assert_eq!(
            ok.function_role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/service/revert")
        );
    }

    #[test]
    fn exempt_principals_need_the_table_their_records_live_in() {
        let policy = r#"{"exempt": {"principals": ["arn:aws:iam::111122223333:role/Admin"]}}"#;
        let error = config(&[("REVERT_POLICY", policy)]).unwrap_err();
        assert_eq!(error.variable, "REVERT_APPROVALS_TABLE");
        let ok = config(&[
            ("REVERT_POLICY", policy),
            ("REVERT_APPROVALS_TABLE", "sgwarden-approvals"),
        ])
        .unwrap();
        assert!(ok.policy.exempts_principals());
        // An exempt tag needs no table: it exempts a whole group, decided on the group's tags.
        assert!(config(&[(
            "REVERT_POLICY",
            r#"{"exempt": {"tag": {"key": "AllowManualChanges", "value": "true"}}}"#
        )])
        .is_ok());
    }
}
