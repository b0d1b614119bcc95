//! Acting in other accounts (SPEC "One deployment, many accounts"): who the function is, and
//! credentials for the member role in each member account.
//!
//! [`Sessions`] answers "with which credentials is this account acted on": the function's
//! own for its own account, the member role's (STS `AssumeRole`, session
//! `sgwarden-<function>`) for any other, or no credentials at all when no member role is
//! configured. The member role's credentials are kept per account until five minutes before
//! they expire, so a burst of events from one account costs one `AssumeRole`; concurrent
//! askers for one account (a sweep's regions of it) wait for the same `AssumeRole`.
//!
//! The function's own account comes from its own role's ARN when the template gives it, else
//! from the ARN Lambda invoked it by ([`Sessions::learn_own_account`]), else from STS
//! `GetCallerIdentity`, asked once, at the first event that names an account (the CLI, which
//! runs outside Lambda).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use sgwarden_core::accounts::{
    account_of, acting_in, names_an_account, Acting, MemberRole, OutOfReach,
};

use crate::error::AwsError;

/// Member-role credentials are renewed this long before they expire.
pub(crate) const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Where an account is acted on.
#[derive(Debug, Clone)]
pub enum Place {
    /// The function's own account, with its own configuration.
    Own,
    /// A member account: the configuration that acts there through the member role.
    Member {
        /// The member account's id.
        account: String,
        /// The configuration with the member role's credentials, in the event's region.
        sdk: Box<SdkConfig>,
    },
    /// Not acted on: the event is from an account this deployment cannot reach.
    OutOfReach(OutOfReach),
}

struct Session {
    sdk: SdkConfig,
    renew_at: SystemTime,
}

/// The function's identity and its member-role sessions, for the life of the process.
pub struct Sessions {
    base: SdkConfig,
    session_name: String,
    member_role: Option<MemberRole>,
    /// The function's own ARN when given (`SGWARDEN_FUNCTION_ROLE_ARN`).
    known_arn: Option<String>,
    asked_arn: tokio::sync::OnceCell<String>,
    /// The own account as Lambda named it, when it has.
    learned_account: OnceLock<String>,
    /// One slot per member account; its lock is held while the slot is renewed.
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Session>>>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("member_role", &self.member_role)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// `function` names the member-role sessions (`sgwarden-<function>`); `own_arn` is the
    /// function's role ARN when known. No AWS call is made here.
    pub fn new(
        base: &SdkConfig,
        function: &str,
        member_role: Option<MemberRole>,
        own_arn: Option<String>,
    ) -> Self {
        Self {
            base: base.clone(),
            session_name: format!("sgwarden-{function}"),
            member_role,
            known_arn: own_arn,
            asked_arn: tokio::sync::OnceCell::new(),
            learned_account: OnceLock::new(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The role assumed in member accounts, when one is configured: revert-ingress takes any
    /// session of it for one of its own calls.
    pub fn member_role(&self) -> Option<&MemberRole> {
        self.member_role.as_ref()
    }

    /// The ARN the function acts as: the one given, else STS's answer (asked once; a failed
    /// ask is asked again next time).
    pub async fn own_arn(&self) -> Result<&str, AwsError> {
        if let Some(arn) = &self.known_arn {
            return Ok(arn);
        }
        self.asked_arn
            .get_or_try_init(|| crate::sts::caller_arn(&self.base))
            .await
            .map(String::as_str)
    }

    /// Keeps the own account as Lambda names it (the account of the ARN the function was
    /// invoked by), so that no STS call is needed to learn it. The first one given is kept:
    /// a function runs in one account for the life of its process.
    pub fn learn_own_account(&self, account: &str) {
        let _ = self.learned_account.set(account.to_string());
    }

    /// The function's own account: from the role ARN given, else as Lambda named it, else
    /// from STS's answer.
    pub async fn own_account(&self) -> Result<&str, AwsError> {
        if self.known_arn.is_none() {
            if let Some(account) = self.learned_account.get() {
                return Ok(account);
            }
        }
        let arn = self.own_arn().await?;
        account_of(arn).ok_or_else(|| AwsError::NotFound {
            what: "account in caller ARN",
            id: arn.to_string(),
            region: crate::sdk::region_of(&self.base),
        })
    }

    /// Where an event of `account` (when it names one) in `region` is acted on.
    pub async fn place(&self, account: Option<&str>, region: &str) -> Result<Place, AwsError> {
        if !names_an_account(account) {
            return Ok(Place::Own);
        }
        let own = self.own_account().await?;
        match acting_in(account, own, region, self.member_role.as_ref()) {
            Acting::Own => Ok(Place::Own),
            Acting::OutOfReach(reason) => Ok(Place::OutOfReach(reason)),
            Acting::Member { account, role_arn } => {
                let sdk = self.member_sdk(&account, &role_arn, region).await?;
                Ok(Place::Member {
                    account,
                    sdk: Box::new(sdk),
                })
            }
        }
    }

    /// The configuration that acts in `account` through the member role, in `region`.
    async fn member_sdk(
        &self,
        account: &str,
        role_arn: &str,
        region: &str,
    ) -> Result<SdkConfig, AwsError> {
        let slot = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(account.to_string())
            .or_default()
            .clone();
        let mut session = slot.lock().await;
        let now = SystemTime::now();
        if let Some(fresh) = session.as_ref().filter(|s| now < s.renew_at) {
            return Ok(crate::sdk::in_region(&fresh.sdk, region));
        }
        let out = aws_sdk_sts::Client::new(&self.base)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(&self.session_name)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    "AssumeRole",
                    role_arn,
                    &crate::sdk::region_of(&self.base),
                    e,
                )
            })?;
        let Some(granted) = out.credentials() else {
            return Err(AwsError::NotFound {
                what: "credentials in the AssumeRole answer for",
                id: role_arn.to_string(),
                region: crate::sdk::region_of(&self.base),
            });
        };
        let expires = SystemTime::try_from(*granted.expiration()).unwrap_or(now);
        let credentials = Credentials::new(
            granted.access_key_id(),
            granted.secret_access_key(),
            Some(granted.session_token().to_string()),
            Some(expires),
            "sgwarden-member-role",
        );
        let sdk = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        tracing::info!(account, role = role_arn, session = %self.session_name, "member role assumed");
        let in_region = crate::sdk::in_region(&sdk, region);
        *session = Some(Session {
            sdk,
            renew_at: expires.checked_sub(RENEW_BEFORE_EXPIRY).unwrap_or(expires),
        });
        Ok(in_region)
    }
}

/// Every active account of the organisation (AWS Organizations `ListAccounts`, paginated),
/// sorted.
#[cfg(feature = "organizations")]
pub async fn organization_accounts(sdk: &SdkConfig) -> Result<Vec<String>, AwsError> {
    use aws_sdk_organizations::types::AccountStatus;
    let region = crate::sdk::region_of(sdk);
    let mut pages = aws_sdk_organizations::Client::new(sdk)
        .list_accounts()
        .into_paginator()
        .send();
    let mut accounts = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk("ListAccounts", "organization", &region, e))?;
        accounts.extend(
            page.accounts()
                .iter()
                .filter(|a| a.status() == Some(&AccountStatus::Active))
                .filter_map(|a| a.id().map(str::to_string)),
        );
    }
    accounts.sort();
    Ok(accounts)
}
