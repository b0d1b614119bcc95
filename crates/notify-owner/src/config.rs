//! notify-owner's settings, parsed once at cold start from the environment (SPEC
//! "notify-owner"). A missing or malformed variable is an error naming it.
//!
//! Beyond SPEC: `NOTIFY_DEDUP_TABLE` (the "mailed once" table; without it a redelivered
//! message may mail twice, which is logged at start) and `OWNER_DEFAULT_DOMAIN` (completes
//! owner-tag entries that are a bare name, e.g. `db-team`).

use email_address::{EmailAddress, Options};
use sgwarden_core::accounts::{member_role, MemberRole};
use sgwarden_core::settings::{
    bad, comma_list, optional, required, role_arn, topic_arn, ConfigError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `CHAT_TOPIC_ARN`: chat messages in the custom notification schema (optional).
    pub chat_topic_arn: Option<String>,
    pub sender: String,
    pub tag: String,
    pub tag_value: String,
    pub owner_tag: String,
    /// Lower case; empty means every domain.
    pub allowed_domains: Vec<String>,
    pub dedup_table: Option<String>,
    pub default_domain: Option<String>,
    /// `SGWARDEN_MEMBER_ROLE`: a central deployment reads member accounts through it.
    pub member_role: Option<MemberRole>,
    /// `SGWARDEN_FUNCTION_ROLE_ARN`: the function's own role, so that its account is known
    /// without asking STS (the template sets it).
    pub function_role_arn: Option<String>,
}

fn is_domain(text: &str) -> bool {
    text.contains('.')
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl NotifyConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let sender = required(&get, "NOTIFY_SENDER")?;
        let display = Options {
            minimum_sub_domains: 2,
            allow_domain_literal: false,
            allow_display_text: true,
        };
        if sender.chars().any(char::is_control)
            || EmailAddress::parse_with_options(&sender, display).is_err()
        {
            return Err(bad(
                "NOTIFY_SENDER",
                format!("{sender:?} is not an email address"),
            ));
        }
        let allowed_domains: Vec<String> =
            comma_list(&optional(&get, "ALLOWED_RECIPIENT_DOMAINS").unwrap_or_default())
                .map(|d| d.to_ascii_lowercase())
                .collect();
        if let Some(wrong) = allowed_domains.iter().find(|d| !is_domain(d)) {
            return Err(bad(
                "ALLOWED_RECIPIENT_DOMAINS",
                format!("{wrong:?} is not a domain"),
            ));
        }
        let default_domain = optional(&get, "OWNER_DEFAULT_DOMAIN").map(|d| d.to_ascii_lowercase());
        if let Some(domain) = default_domain.as_deref().filter(|d| !is_domain(d)) {
            return Err(bad(
                "OWNER_DEFAULT_DOMAIN",
                format!("{domain:?} is not a domain"),
            ));
        }
        Ok(Self {
            chat_topic_arn: topic_arn(&get, "CHAT_TOPIC_ARN")?,
            sender,
            tag: optional(&get, "NOTIFY_TAG").unwrap_or_else(|| "NotifyOnChange".into()),
            tag_value: optional(&get, "NOTIFY_TAG_VALUE").unwrap_or_else(|| "Yes".into()),
            owner_tag: optional(&get, "OWNER_TAG").unwrap_or_else(|| "OwnerDL".into()),
            allowed_domains,
            dedup_table: optional(&get, "NOTIFY_DEDUP_TABLE"),
            member_role: member_role(&get)?,
            function_role_arn: role_arn(&get, "SGWARDEN_FUNCTION_ROLE_ARN")?,
            default_domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<NotifyConfig, ConfigError> {
        NotifyConfig::from_lookup(sgwarden_core::settings::from_pairs(vars))
    }

    #[test]
    fn defaults_follow_spec() {
        let c = config(&[("NOTIFY_SENDER", "sgwarden@example.com")]).unwrap();
        assert_eq!(
            (c.tag.as_str(), c.tag_value.as_str()),
            ("NotifyOnChange", "Yes")
        );
        assert_eq!(c.owner_tag, "OwnerDL");
        assert!(c.allowed_domains.is_empty());
        assert_eq!(c.dedup_table, None);
    }

    #[test]
    fn each_bad_setting_names_its_variable() {
        assert_eq!(config(&[]).unwrap_err().variable, "NOTIFY_SENDER");
        for (variable, value) in [
            ("NOTIFY_SENDER", "not an address"),
            ("NOTIFY_SENDER", "a@example.com\r\nBcc: x@evil.example"),
            ("ALLOWED_RECIPIENT_DOMAINS", "example.com, bad domain"),
            ("OWNER_DEFAULT_DOMAIN", "-x"),
            ("SGWARDEN_MEMBER_ROLE", "not a role"),
            ("SGWARDEN_FUNCTION_ROLE_ARN", "arn:aws:iam::1:role/x"),
        ] {
            let mut vars = vec![("NOTIFY_SENDER", "sgwarden@example.com")];
            vars.retain(|(k, _)| *k != variable);
            vars.push((variable, value));
            assert_eq!(config(&vars).unwrap_err().variable, variable, "{value}");
        }
        let c = config(&[
            ("NOTIFY_SENDER", "sgwarden <sgwarden@example.com>"),
            ("ALLOWED_RECIPIENT_DOMAINS", "Example.com, corp.example.org"),
        ])
        .unwrap();
        assert_eq!(c.allowed_domains, vec!["example.com", "corp.example.org"]);
    }
}
