//! One deployment, many accounts (SPEC "One deployment, many accounts"): which account an
//! event is acted on in, with which role, and which accounts and regions a sweep covers.
//!
//! A central deployment receives events from every member account on its EventBridge bus.
//! An event names its account; the function acts there through the member role
//! (`SGWARDEN_MEMBER_ROLE`), which StackSets deploy with the same name in every account.
//! Deciding that is pure and lives here: [`acting_in`] says "own account", "member account,
//! through this role ARN", or "skip, because…". The credentials themselves are the adapter's.
//!
//! Anything here is a setting or an event field, so every reader refuses what is not an
//! account id, a region or an IAM role name rather than build an ARN from it.

use crate::event::Principal;
use crate::settings::{bad, comma_list, optional, ConfigError};

/// The member role: the same name (and path) in every member account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    /// `/` or `/path/…/`, as IAM writes a role's path.
    path: String,
    name: String,
}

impl MemberRole {
    /// Reads `name`, `path/name` or `/path/name/…` (IAM's role name and path characters).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_matches('/');
        let (path, name) = match trimmed.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_string(), trimmed),
        };
        let iam_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(iam_char) {
            return Err(format!("{text:?} is not an IAM role name"));
        }
        if path.len() > 512 || path.contains("//") || !path.chars().all(|c| c == '/' || iam_char(c))
        {
            return Err(format!("{text:?} has a path IAM does not accept"));
        }
        Ok(Self {
            path,
            name: name.to_string(),
        })
    }

    /// The role's ARN in `account` (whose partition `region` is in).
    pub fn arn(&self, account: &str, region: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role{}{}",
            partition_of(region),
            self.path,
            self.name
        )
    }

    /// True when `principal` acts through this role, in any account: a session of it (its
    /// ARN names the role, not the path) or a call whose issuer is the role. Such calls are
    /// the function's own.
    pub fn is_session(&self, principal: &Principal) -> bool {
        let session_role = principal
            .arn
            .as_deref()
            .and_then(|arn| arn_parts(arn, "sts"))
            .and_then(|(_, resource)| resource.strip_prefix("assumed-role/"))
            .and_then(|rest| rest.split('/').next());
        let issuer = principal
            .role_arn
            .as_deref()
            .and_then(|arn| arn_parts(arn, "iam"))
            .and_then(|(_, resource)| resource.strip_prefix("role"));
        session_role == Some(self.name.as_str())
            || issuer == Some(format!("{}{}", self.path, self.name).as_str())
    }
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.path.trim_start_matches('/'), self.name)
    }
}

/// The identity a function runs as (its role's ARN, or the session ARN STS reports), to
/// recognise its own calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity(String);

impl CallerIdentity {
    /// The identity whose ARN is `arn`: the role's, or the session's as STS
    /// `GetCallerIdentity` reports it.
    pub fn new(arn: impl Into<String>) -> Self {
        Self(arn.into())
    }

    /// The ARN as given to [`Self::new`].
    pub fn arn(&self) -> &str {
        &self.0
    }

    /// True when `principal` is this identity. The identity is the function's role (its IAM
    /// role ARN, or the assumed-role session ARN STS reports); CloudTrail names a Lambda's
    /// calls by its session and by the role (with its path) that issued it: all are compared
    /// by account and role name.
    pub fn is(&self, principal: &Principal) -> bool {
        if principal.arn.as_deref() == Some(self.0.as_str()) {
            return true;
        }
        let Some(me) = role_of(&self.0) else {
            return false;
        };
        [&principal.arn, &principal.role_arn]
            .into_iter()
            .flatten()
            .filter_map(|arn| role_of(arn))
            .any(|role| role == me)
    }
}

/// `(account, role name)` of a role's ARN (`arn:aws:iam::<account>:role/<path>/<name>`) or of
/// one of its sessions (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
fn role_of(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (account, name) = match parts.as_slice() {
        ["arn", _, "iam", "", account, resource] => {
            let path = resource.strip_prefix("role/")?;
            (*account, path.rsplit('/').next()?)
        }
        _ => assumed_role(arn)?,
    };
    (!name.is_empty()).then_some((account, name))
}

/// `(account, role name)` of an assumed-role session ARN.
fn assumed_role(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "sts", "", account, resource] => {
            let mut path = resource.strip_prefix("assumed-role/")?.split('/');
            Some((*account, path.next()?))
        }
        _ => None,
    }
}

/// `(account, resource)` of an ARN of `service` (`arn:<partition>:<service>::<account>:…`).
fn arn_parts<'a>(arn: &'a str, service: &str) -> Option<(&'a str, &'a str)> {
    match arn.splitn(6, ':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, s, "", account, resource]
            if !partition.is_empty() && *s == service && is_account_id(account) =>
        {
            Some((account, resource))
        }
        _ => None,
    }
}

/// The account an ARN belongs to (`arn:…:<service>:<region>:<account>:…`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| is_account_id(a))
}

/// Twelve digits.
pub(crate) fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A region name as AWS spells them (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
pub(crate) fn is_region(text: &str) -> bool {
    let mut parts = text.split('-');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    !first.is_empty()
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && rest.len() >= 2
        && rest
            .last()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty())
        && rest[..rest.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The partition a region is in: ARNs built for it must name it.
pub(crate) fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The accounts a sweep covers besides the function's own (`SGWARDEN_ACCOUNTS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Accounts {
    /// Listed ids (none: the own account only).
    #[default]
    None,
    /// These account ids (`SGWARDEN_ACCOUNTS=111122223333,…`), sorted, each once; the own
    /// account may be among them.
    Listed(Vec<String>),
    /// Every active account of the organisation, read from AWS Organizations at each sweep.
    Organization,
}

/// Where a central deployment reaches: its member role, and the accounts and regions its
/// sweep covers (SPEC "One deployment, many accounts").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// The role to act through in other accounts (`SGWARDEN_MEMBER_ROLE`); `None` when the
    /// deployment acts only in its own account.
    pub member_role: Option<MemberRole>,
    /// The accounts a sweep covers besides its own (`SGWARDEN_ACCOUNTS`).
    pub accounts: Accounts,
    /// `SGWARDEN_REGIONS`; empty: the function's own region.
    pub regions: Vec<String>,
}

impl Reach {
    /// Reads `SGWARDEN_MEMBER_ROLE`, `SGWARDEN_ACCOUNTS` and `SGWARDEN_REGIONS`. Other
    /// accounts cannot be swept without a role to act there, so accounts without the role are
    /// refused.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let member_role = member_role(get)?;
        let accounts = match optional(get, "SGWARDEN_ACCOUNTS") {
            None => Accounts::None,
            Some(text) if text.eq_ignore_ascii_case("organization") => Accounts::Organization,
            Some(text) => {
                let ids: Vec<String> = comma_list(&text).collect();
                if let Some(wrong) = ids.iter().find(|id| !is_account_id(id)) {
                    return Err(bad(
                        "SGWARDEN_ACCOUNTS",
                        format!("{wrong:?} is not an account id (12 digits) or `organization`"),
                    ));
                }
                let mut ids = ids;
                ids.sort();
                ids.dedup();
                Accounts::Listed(ids)
            }
        };
        if accounts != Accounts::None && member_role.is_none() {
            return Err(bad(
                "SGWARDEN_MEMBER_ROLE",
                "required when SGWARDEN_ACCOUNTS is set: other accounts are swept through it",
            ));
        }
        let regions: Vec<String> = optional(get, "SGWARDEN_REGIONS")
            .map(|text| comma_list(&text).collect())
            .unwrap_or_default();
        if let Some(wrong) = regions.iter().find(|r| !is_region(r)) {
            return Err(bad(
                "SGWARDEN_REGIONS",
                format!("{wrong:?} is not a region name"),
            ));
        }
        Ok(Self {
            member_role,
            accounts,
            regions,
        })
    }

    /// The regions a sweep covers: the listed ones, or `own` alone.
    pub fn regions_or(&self, own: &str) -> Vec<String> {
        if self.regions.is_empty() {
            vec![own.to_string()]
        } else {
            self.regions.clone()
        }
    }
}

/// `SGWARDEN_MEMBER_ROLE`, when set.
pub fn member_role(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<MemberRole>, ConfigError> {
    optional(get, "SGWARDEN_MEMBER_ROLE")
        .map(|text| MemberRole::parse(&text).map_err(|e| bad("SGWARDEN_MEMBER_ROLE", e)))
        .transpose()
}

/// The accounts a sweep covers besides `own`: `listed` without `own` (its own credentials
/// reach it), sorted, each once.
pub fn other_accounts(listed: &[String], own: &str) -> Vec<String> {
    let mut others: Vec<String> = listed.iter().filter(|a| *a != own).cloned().collect();
    others.sort();
    others.dedup();
    others
}

/// Where an event is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acting {
    /// The function's own account, with its own credentials.
    Own,
    /// A member account, through the member role (its ARN there).
    Member {
        /// The member account's id, as the event names it.
        account: String,
        /// The member role's ARN in that account, in the partition of the event's region.
        role_arn: String,
    },
    /// Not at all: the event is from an account this deployment cannot reach.
    OutOfReach(OutOfReach),
}

/// An event from another account than the function's, when no member role is set: nothing
/// of it is acted on, and the report says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfReach {
    /// The account the event is from.
    pub account: String,
    /// The function's own account, the only one it acts in.
    pub own: String,
}

impl std::fmt::Display for OutOfReach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the event is from account {}, and this deployment acts only in its own ({}): \
             SGWARDEN_MEMBER_ROLE is not set",
            self.account, self.own
        )
    }
}

/// True when an event naming `account` may be in another account than the function's:
/// only a real account id can name one. An event that names none, or something that is not
/// an id (the sanitised `0123456789` of a recorded Config item), is acted on with the
/// function's own credentials, which reach no other account: nothing else can be assumed
/// from it, and nothing outside the own account can be touched with it.
pub fn names_an_account(account: Option<&str>) -> bool {
    account.is_some_and(is_account_id)
}

/// Where an event from `event_account` in `region` is acted on by a function of `own`.
pub fn acting_in(
    event_account: Option<&str>,
    own: &str,
    region: &str,
    member_role: Option<&MemberRole>,
) -> Acting {
    match (event_account, member_role) {
        (None, _) => Acting::Own,
        (Some(account), _) if account == own || !is_account_id(account) => Acting::Own,
        (Some(account), Some(role)) => Acting::Member {
            account: account.to_string(),
            role_arn: role.arn(account, region),
        },
        (Some(account), None) => Acting::OutOfReach(OutOfReach {
            account: account.to_string(),
            own: own.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::from_pairs;

    fn role(text: &str) -> MemberRole {
        MemberRole::parse(text).unwrap()
    }

    #[test]
    fn member_roles_are_names_with_an_optional_path() {
        assert_eq!(
            role("sgwarden-member").arn("222233334444", "eu-west-1"),
            "arn:aws:iam::222233334444:role/sgwarden-member"
        );
        assert_eq!(
            role("/security/sgwarden-member").arn("222233334444", "cn-north-1"),
            "arn:aws-cn:iam::222233334444:role/security/sgwarden-member"
        );
        assert_eq!(
            role("security/tools/member/").to_string(),
            "security/tools/member"
        );
        for wrong in [
            "",
            "/",
            "a b",
            "x:y",
            &"n".repeat(65),
            "a//b",
            "arn:aws:iam::1:role/x",
        ] {
            assert!(MemberRole::parse(wrong).is_err(), "{wrong}");
        }
        // IAM's limits, exactly: a 64-character name, a 512-character path.
        assert!(MemberRole::parse(&"n".repeat(64)).is_ok());
        let path = |length: usize| format!("/{}/member", "p".repeat(length - 2));
        assert!(MemberRole::parse(&path(512)).is_ok());
        assert!(MemberRole::parse(&path(513)).is_err());
    }

    #[test]
    fn every_session_of_the_member_role_in_any_account_is_recognised() {
        let member = role("security/sgwarden-member");
        let session = |arn: &str, issuer: Option<&str>| Principal {
            arn: Some(arn.into()),
            role_arn: issuer.map(str::to_string),
            ..Principal::default()
        };
        assert!(member.is_session(&session(
            "arn:aws:sts::222233334444:assumed-role/sgwarden-member/sgwarden-revert-ingress",
            None
        )));
        assert!(member.is_session(&session(
            "arn:aws:sts::999988887777:assumed-role/sgwarden-member/anyone",
            Some("arn:aws:iam::999988887777:role/security/sgwarden-member")
        )));
        assert!(member.is_session(&Principal {
            role_arn: Some("arn:aws:iam::999988887777:role/security/sgwarden-member".into()),
            ..Principal::default()
        }));
        // A role of the same name on another path is another role.
        assert!(!member.is_session(&Principal {
            role_arn: Some("arn:aws:iam::999988887777:role/sgwarden-member".into()),
            ..Principal::default()
        }));
        for stranger in [
            "arn:aws:sts::222233334444:assumed-role/sgwarden-member-2/x",
            "arn:aws:sts::222233334444:assumed-role/Admin/sgwarden-member",
            "arn:aws:iam::222233334444:user/sgwarden-member",
            "arn:aws:sts::2222:assumed-role/sgwarden-member/x",
        ] {
            assert!(!member.is_session(&session(stranger, None)), "{stranger}");
        }
        assert!(!member.is_session(&Principal::default()));
    }

    #[test]
    fn an_event_is_acted_on_in_its_account_through_the_member_role_or_skipped() {
        let member = role("sgwarden-member");
        let own = "111122223333";
        assert_eq!(acting_in(None, own, "eu-west-1", None), Acting::Own);
        assert_eq!(acting_in(Some(own), own, "eu-west-1", None), Acting::Own);
        assert_eq!(
            acting_in(Some("222233334444"), own, "us-gov-west-1", Some(&member)),
            Acting::Member {
                account: "222233334444".into(),
                role_arn: "arn:aws-us-gov:iam::222233334444:role/sgwarden-member".into()
            }
        );
        let out_of_reach = acting_in(Some("222233334444"), own, "eu-west-1", None);
        let Acting::OutOfReach(reason) = out_of_reach else {
            panic!("acted without a member role: {out_of_reach:?}");
        };
        assert_eq!(reason.account, "222233334444");
        assert!(reason.to_string().contains("SGWARDEN_MEMBER_ROLE"));
        // Not an account id: nothing to assume a role in; the own credentials reach no other.
        for sanitised in ["0123456789", "2222/../x", ""] {
            assert_eq!(
                acting_in(Some(sanitised), own, "eu-west-1", Some(&member)),
                Acting::Own
            );
        }
    }

    #[test]
    fn reach_reads_accounts_regions_and_refuses_accounts_without_a_role() {
        let reach = |pairs: &[(&str, &str)]| Reach::from_lookup(&from_pairs(pairs));
        assert_eq!(reach(&[]).unwrap(), Reach::default());
        let central = reach(&[
            ("SGWARDEN_MEMBER_ROLE", "sgwarden-member"),
            (
                "SGWARDEN_ACCOUNTS",
                "333344445555, 222233334444,333344445555",
            ),
            ("SGWARDEN_REGIONS", "eu-west-1,us-east-1"),
        ])
        .unwrap();
        assert_eq!(
            central.accounts,
            Accounts::Listed(vec!["222233334444".into(), "333344445555".into()])
        );
        assert_eq!(
            central.regions_or("eu-central-1"),
            ["eu-west-1", "us-east-1"]
        );
        assert_eq!(
            reach(&[]).unwrap().regions_or("eu-central-1"),
            ["eu-central-1"]
        );
        assert_eq!(
            reach(&[
                ("SGWARDEN_MEMBER_ROLE", "m"),
                ("SGWARDEN_ACCOUNTS", "Organization")
            ])
            .unwrap()
            .accounts,
            Accounts::Organization
        );
        for (variable, pairs) in [
            (
                "SGWARDEN_MEMBER_ROLE",
                vec![("SGWARDEN_ACCOUNTS", "222233334444")],
            ),
            (
                "SGWARDEN_ACCOUNTS",
                vec![("SGWARDEN_MEMBER_ROLE", "m"), ("SGWARDEN_ACCOUNTS", "2222")],
            ),
            (
                "SGWARDEN_REGIONS",
                vec![("SGWARDEN_REGIONS", "eu-west-1,EU")],
            ),
            ("SGWARDEN_REGIONS", vec![("SGWARDEN_REGIONS", "eu-west")]),
            (
                "SGWARDEN_MEMBER_ROLE",
                vec![("SGWARDEN_MEMBER_ROLE", "a b")],
            ),
        ] {
            assert_eq!(reach(&pairs).unwrap_err().variable, variable, "{pairs:?}");
        }
    }

    #[test]
    fn other_accounts_leave_out_the_own_one() {
        let listed = ["3".repeat(12), "1".repeat(12), "3".repeat(12)].map(String::from);
        assert_eq!(other_accounts(&listed, &"1".repeat(12)), ["3".repeat(12)]);
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
        assert_eq!(account_of("arn:aws:iam::1:role/x"), None);
        assert!(is_region("us-gov-west-1") && is_region("ap-southeast-2"));
        for wrong in [
            "eu-west-",
            "-west-1",
            "eu-1",
            "eu--1",
            "eu-WEST-1",
            "EU-west-1",
            "eu-west-x",
        ] {
            assert!(!is_region(wrong), "{wrong}");
        }
        assert!(names_an_account(Some("111122223333")));
        assert!(!names_an_account(Some("0123456789")));
        assert!(!names_an_account(None));
    }

    #[test]
    fn the_caller_identity_recognises_its_sessions_and_role_with_a_path() {
        let me = CallerIdentity::new("arn:aws:sts::111122223333:assumed-role/revert-role/fn");
        let by_issuer = Principal {
            arn: Some("arn:aws:sts::111122223333:assumed-role/revert-role/other-session".into()),
            role_arn: Some("arn:aws:iam::111122223333:role/service/revert-role".into()),
            ..Principal::default()
        };
        assert!(me.is(&by_issuer));
        let same_name_other_account = Principal {
            arn: Some("arn:aws:sts::999999999999:assumed-role/revert-role/fn".into()),
            role_arn: Some("arn:aws:iam::999999999999:role/revert-role".into()),
            ..Principal::default()
        };
        assert!(!me.is(&same_name_other_account));
        let user = CallerIdentity::new("arn:aws:iam::111122223333:user/ops");
        assert!(user.is(&Principal {
            arn: Some("arn:aws:iam::111122223333:user/ops".into()),
            ..Principal::default()
        }));
        assert!(!user.is(&by_issuer));
    }

    #[test]
    fn the_function_s_role_is_recognised_from_the_session_issuer_alone() {
        let me = CallerIdentity::new("arn:aws:sts::111122223333:assumed-role/revert-role/fn");
        let issuer_only = |role: &str| Principal {
            arn: None,
            role_arn: Some(role.into()),
            ..Principal::default()
        };
        assert!(me.is(&issuer_only(
            "arn:aws:iam::111122223333:role/service/revert-role"
        )));
        assert!(me.is(&issuer_only("arn:aws:iam::111122223333:role/revert-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::111122223333:role/other-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::999999999999:role/revert-role")));
        assert!(!me.is(&issuer_only("arn:aws:iam::111122223333:user/revert-role")));
        assert!(!me.is(&Principal::default()));
    }

    #[test]
    fn the_function_s_role_given_by_its_arn_recognises_its_sessions() {
        let arn = "arn:aws:iam::111122223333:role/revert";
        assert_eq!(CallerIdentity::new(arn).arn(), arn);
        let me = CallerIdentity::new("arn:aws:iam::111122223333:role/service/revert-role");
        let session = |arn: &str| Principal {
            arn: Some(arn.into()),
            role_arn: None,
            ..Principal::default()
        };
        assert!(me.is(&session(
            "arn:aws:sts::111122223333:assumed-role/revert-role/revert-fn"
        )));
        assert!(me.is(&Principal {
            arn: None,
            role_arn: Some("arn:aws:iam::111122223333:role/service/revert-role".into()),
            ..Principal::default()
        }));
        assert!(!me.is(&session(
            "arn:aws:sts::999999999999:assumed-role/revert-role/revert-fn"
        )));
        assert!(!me.is(&session(
            "arn:aws:sts::111122223333:assumed-role/other-role/revert-fn"
        )));
        assert!(!me.is(&session("arn:aws:iam::111122223333:user/revert-role")));
        assert!(!CallerIdentity::new("arn:aws:iam::111122223333:role/")
            .is(&session("arn:aws:sts::111122223333:assumed-role//x")));
    }
}
