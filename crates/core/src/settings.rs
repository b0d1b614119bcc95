//! The shape of a function's settings error, and the readers every function's settings share.
//!
//! Each function parses its environment variables once at cold start into a typed struct;
//! the parsing itself lives with the function, but what a refusal looks like (the variable
//! and why) and how common values are read is the same everywhere, so it lives here. Values
//! are passed in: nothing here reads the environment.

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable refused (`SYNC_PORTS`, …).
    pub variable: &'static str,
    /// Why, in words an operator can act on.
    pub reason: String,
}

/// A refusal of `variable`.
pub fn bad(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// The value of `variable`, trimmed; unset and blank are the same: absent.
pub fn optional(get: &impl Fn(&str) -> Option<String>, variable: &str) -> Option<String> {
    get(variable)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The value of `variable`, trimmed; unset or blank is refused as required.
pub fn required(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<String, ConfigError> {
    optional(get, variable).ok_or_else(|| bad(variable, "required"))
}

/// The entries of a comma list (`a, b,,c`), trimmed, empty ones left out.
pub fn comma_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A `true`/`false` switch; unset or empty is `false`, anything else is refused.
pub fn flag(variable: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad(variable, format!("{other:?} is not true or false"))),
    }
}

/// A lookup over fixed `(variable, value)` pairs: settings given by a test, the CLI's flags
/// or a replayed environment instead of the process environment.
pub fn from_pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// An optional SNS topic ARN (`arn:<partition>:sns:<region>:<account>:<name>`).
pub fn topic_arn(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(arn) = optional(get, variable) else {
        return Ok(None);
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let valid = matches!(parts.as_slice(),
        ["arn", partition, "sns", region, account, name]
            if !partition.is_empty() && !region.is_empty()
                && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
                && !name.is_empty());
    if !valid {
        return Err(bad(variable, format!("{arn:?} is not an SNS topic ARN")));
    }
    Ok(Some(arn))
}

/// An optional IAM role ARN (`arn:<partition>:iam::<account>:role/<path/>name`).
pub fn role_arn(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    optional(get, variable)
        .map(|arn| checked_role_arn(variable, arn))
        .transpose()
}

/// A comma list of IAM role ARNs, each checked as [`role_arn`] checks one; empty when unset.
pub fn role_arns(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Vec<String>, ConfigError> {
    comma_list(&get(variable).unwrap_or_default())
        .map(|arn| checked_role_arn(variable, arn))
        .collect()
}

fn checked_role_arn(variable: &'static str, arn: String) -> Result<String, ConfigError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = matches!(parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.ends_with('/')));
    if !valid {
        return Err(bad(variable, format!("{arn:?} is not an IAM role ARN")));
    }
    Ok(arn)
}

/// True for an EC2 security group id (`sg-` and hex digits).
pub fn is_group_id(id: &str) -> bool {
    id.strip_prefix("sg-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_are_checked_and_absent_is_fine() {
        let read = |value: &str| topic_arn(&from_pairs(&[("T", value)]), "T");
        assert_eq!(
            read("arn:aws:sns:eu-west-1:111122223333:chat"),
            Ok(Some("arn:aws:sns:eu-west-1:111122223333:chat".to_string()))
        );
        assert_eq!(read(" "), Ok(None));
        for bad in [
            "arn:aws:sqs:eu-west-1:111122223333:q",
            "arn:aws:sns::111122223333:chat",
            "arn:aws:sns:eu-west-1:1111:chat",
            "arn:aws:sns:eu-west-1:11112222333x:chat",
            "arn:aws:sns:eu-west-1:111122223333:",
            "arn::sns:eu-west-1:111122223333:chat",
            "chat",
        ] {
            assert_eq!(read(bad).map_err(|e| e.variable), Err("T"), "{bad}");
        }
    }

    #[test]
    fn a_list_of_role_arns_is_checked_entry_by_entry() {
        let read = |value: &str| role_arns(&from_pairs(&[("R", value)]), "R");
        assert_eq!(read(""), Ok(Vec::new()));
        assert_eq!(
            read("arn:aws:iam::111122223333:role/a, arn:aws:iam::111122223333:role/p/b"),
            Ok(vec![
                "arn:aws:iam::111122223333:role/a".to_string(),
                "arn:aws:iam::111122223333:role/p/b".to_string()
            ])
        );
        let wrong =
            read("arn:aws:iam::111122223333:role/a,arn:aws:sts::111122223333:assumed-role/a/s");
        assert_eq!(wrong.unwrap_err().variable, "R");
    }

    #[test]
    fn role_arns_are_checked_and_absent_is_fine() {
        let read = |value: &str| role_arn(&from_pairs(&[("R", value)]), "R");
        for good in [
            "arn:aws:iam::111122223333:role/revert",
            "arn:aws-cn:iam::111122223333:role/service/revert",
        ] {
            assert_eq!(read(good), Ok(Some(good.to_string())));
        }
        assert_eq!(read(" "), Ok(None));
        for wrong in [
            "arn:aws:sts::111122223333:assumed-role/revert/fn",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role/service/",
            "arn:aws:iam::1111:role/revert",
            "arn:aws:iam::111122223333:user/x",
            "arn::iam::111122223333:role/revert",
        ] {
            assert_eq!(read(wrong).map_err(|e| e.variable), Err("R"), "{wrong}");
        }
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        let get = from_pairs(&[("A", "  x "), ("B", "   ")]);
        assert_eq!(optional(&get, "A").as_deref(), Some("x"));
        assert_eq!(optional(&get, "B"), None);
        assert_eq!(optional(&get, "C"), None);
        assert_eq!(required(&get, "A").unwrap(), "x");
        assert_eq!(required(&get, "B").unwrap_err().to_string(), "B: required");
    }

    #[test]
    fn a_comma_list_drops_blanks_and_spaces() {
        assert_eq!(
            comma_list(" a, b,, c ,").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(comma_list(" , ").count(), 0);
    }

    #[test]
    fn flags_are_true_false_or_refused() {
        assert_eq!(flag("X", None), Ok(false));
        assert_eq!(flag("X", Some(" TRUE ".into())), Ok(true));
        assert_eq!(flag("X", Some("yes".into())).unwrap_err().variable, "X");
        assert!(is_group_id("sg-0abc"));
        assert!(!is_group_id("sg-"));
        assert!(!is_group_id("sg-xyz"));
    }
}
