//! notify-owner: tells a security group's owner, by email, exactly what changed, when AWS
//! Config reports a change on a group tagged for it.
//!
//! One invocation carries one or more SNS records, each a Config message, or one EventBridge
//! `Config Configuration Item Change` (a central deployment's bus). The whole delivery is
//! parsed first, so a malformed message fails the invocation before anything is sent.
//! Then, per message:
//! 0. **where**: an item of another account is read there through the member role
//!    (`SGWARDEN_MEMBER_ROLE`: Config history and CloudTrail look-ups), or ignored with the
//!    reason when none is set; the mail goes out from this account's SES either way;
//! 1. **ignore, on purpose**: other message types, other resource types, groups opted in
//!    (`NOTIFY_TAG`=`NOTIFY_TAG_VALUE`, value case-insensitive) neither before the change nor
//!    after it, updates that change no rule and no tag (relationship-only changes among
//!    them), groups whose owner tags name no valid, allowed recipient. The owners before the
//!    change are told too (the core's `OwnerTags::audience`), so a change that re-points the
//!    owner tag or removes the opt-in reaches the owners who had opted in;
//! 2. **resolve** an oversized notification through Config's history (current and previous
//!    items, diffed by the core), and the tags of a deleted group when its last item has
//!    none;
//! 3. **claim** the notification (`<account>/<region>/<group>/<configurationStateId>`) with a
//!    conditional write: a redelivered message finds the claim and sends nothing;
//! 4. **find who** made the change: the CloudTrail event in `relatedEvents`, looked up by
//!    id; `unknown` when there is none or it cannot be found;
//! 5. **render and send** one mail (text and HTML, from the core's templates) to every valid
//!    recipient. A send that fails gives the claim back; the invocation fails only when a
//!    retry can help (throttling, no answer, a 5xx), so SNS's retry sends it then.

pub mod config;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use sgwarden_aws::accounts::{Place, Sessions};
use sgwarden_aws::cloudtrail::CloudTrail;
use sgwarden_aws::config_history::ConfigHistory;
use sgwarden_aws::dedup::{Claim, Dedup};
use sgwarden_aws::sdk::{self, Regional};
use sgwarden_aws::ses::{Outgoing, Ses};
use sgwarden_aws::sns::Chat;
use sgwarden_aws::AwsError;
use sgwarden_core::accounts::OutOfReach;
use sgwarden_core::chat::ChatMessage;
use sgwarden_core::event::config::SECURITY_GROUP;
use sgwarden_core::event::{
    ChangeType, ConfigMessage, ConfigurationItem, OversizedItem, SecurityGroupDiff,
};
use sgwarden_core::notify::{
    Audience, Mail, Mailer, Notice, NoticeFacts, OwnerTags, Recipients, RenderError,
};
use sgwarden_core::{ErrorType, ParseError, Trigger};

pub use config::NotifyConfig;

/// The function's name in audit lines, metrics and chat messages.
pub const FUNCTION: &str = "notify-owner";
pub use sgwarden_core::settings::ConfigError;

/// How long a "mailed" claim is kept (the dedup table's TTL): far longer than SNS retries.
const CLAIM_DAYS: u64 = 14;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("event not understood: {0}")]
    Event(#[from] ParseError),
    #[error("notify-owner does not handle {0} events")]
    WrongTrigger(&'static str),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("Config has not recorded state {wanted} of {group_id} yet (newest: {newest})")]
    HistoryBehind {
        group_id: String,
        wanted: String,
        newest: String,
    },
    #[error("mail to {recipients} not sent: {source}")]
    Send {
        recipients: String,
        source: AwsError,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl NotifyError {
    pub fn kind(&self) -> ErrorType {
        match self {
            NotifyError::Event(_) => ErrorType::EventNotUnderstood,
            NotifyError::WrongTrigger(_) => ErrorType::WrongTrigger,
            NotifyError::Aws(e) => e.kind(),
            NotifyError::HistoryBehind { .. } => ErrorType::ConfigHistoryBehind,
            NotifyError::Send { .. } => ErrorType::MailNotSent,
            NotifyError::Render(_) => ErrorType::TemplateError,
        }
    }
}

impl sgwarden_lambda::FunctionError for NotifyError {
    fn kind(&self) -> ErrorType {
        NotifyError::kind(self)
    }
}

/// What one invocation did: one entry per Config message.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub messages: Vec<MessageReport>,
}

impl sgwarden_lambda::Measured for Report {
    /// Mails sent and failed, and messages already mailed by an earlier delivery.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let count = |outcome: MessageOutcome| {
            self.messages
                .iter()
                .filter(|m| m.outcome == outcome)
                .count() as u64
        };
        vec![
            ("MailsSent", count(MessageOutcome::Mailed)),
            ("MailsFailed", count(MessageOutcome::Failed)),
            ("Duplicates", count(MessageOutcome::Duplicate)),
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageReport {
    pub outcome: MessageOutcome,
    pub group_id: Option<String>,
    /// Why it was ignored, a duplicate, or failed.
    #[serde(serialize_with = "sgwarden_core::text::as_optional_text")]
    pub reason: Option<Unmailed>,
    pub recipients: Vec<String>,
    /// Of `recipients`, those told only because they were owners before the change.
    pub former_owners: Vec<String>,
    /// Owner-tag entries that got nothing, with the reason.
    pub refused: Vec<String>,
    pub subject: Option<String>,
}

/// What became of one Config message; serialized `mailed`, `ignored`, `duplicate`, `failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageOutcome {
    Mailed,
    /// Not a change the owners asked to hear about, or no one to mail it to.
    #[default]
    Ignored,
    /// Mailed already, for an earlier delivery of the same state.
    Duplicate,
    /// The mail was refused for good (a retry would not help).
    Failed,
}

impl std::fmt::Display for MessageOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MessageOutcome::Mailed => "mailed",
            MessageOutcome::Ignored => "ignored",
            MessageOutcome::Duplicate => "duplicate",
            MessageOutcome::Failed => "failed",
        })
    }
}

/// Why a Config message was not mailed: each a variant, each displayed as the sentence the
/// report carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmailed {
    /// A Config message that is not a change notification (its `messageType`).
    NotAChange(String),
    /// A change to a resource that is not a security group (its type).
    NotASecurityGroup(String),
    /// From an account this deployment cannot read.
    OutOfReach(OutOfReach),
    /// The group carries the opt-in tag neither before nor after the change.
    NotOptedIn {
        /// The opt-in tag's key.
        tag: String,
        /// The value it must hold.
        value: String,
    },
    /// Only relationships changed (instances or interfaces attached or detached).
    OnlyRelationships,
    /// An update in which no rule and no tag changed.
    NothingChanged,
    /// No owner in the owner tag is a valid, allowed address (the tag's key).
    NoRecipient(String),
    /// This state of the group was mailed already (the dedup key).
    MailedAlready(String),
    /// SES refused the mail for good (its answer).
    Refused(String),
}

impl std::fmt::Display for Unmailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unmailed::NotAChange(message_type) => {
                write!(f, "{message_type} is not a change notification")
            }
            Unmailed::NotASecurityGroup(resource_type) => {
                write!(f, "{resource_type} is not a security group")
            }
            Unmailed::OutOfReach(reason) => reason.fmt(f),
            Unmailed::NotOptedIn { tag, value } => write!(
                f,
                "not opted in ({tag}={value} missing before and after the change)"
            ),
            Unmailed::OnlyRelationships => f.write_str(
                "only relationships changed (instances or interfaces attached or detached)",
            ),
            Unmailed::NothingChanged => f.write_str("no rule and no tag changed"),
            Unmailed::NoRecipient(owner_tag) => {
                write!(f, "no valid, allowed recipient in {owner_tag}")
            }
            Unmailed::MailedAlready(key) => write!(f, "{key} was mailed already"),
            Unmailed::Refused(answer) => write!(f, "{answer} (a retry would not help)"),
        }
    }
}

fn ignored(group_id: Option<&str>, reason: Unmailed) -> MessageReport {
    MessageReport {
        outcome: MessageOutcome::Ignored,
        group_id: group_id.map(str::to_string),
        reason: Some(reason),
        ..MessageReport::default()
    }
}

/// Who a notice goes to, and the owner-tag entries that get nothing (with the reason).
struct Addressees {
    to: Vec<String>,
    former: Vec<String>,
    refused: Vec<String>,
}

/// A security-group change, whichever message reported it.
struct Change {
    item: ConfigurationItem,
    change_type: ChangeType,
    diff: SecurityGroupDiff,
    /// The group's tags before the change (none for a creation): whose owners had opted in.
    tags_before: Option<BTreeMap<String, String>>,
}

/// A message, read: ignored with its reason, a change with its diff, or an oversized
/// notification still to be resolved through Config.
enum Prepared {
    Ignore(MessageReport),
    Change(Box<Change>),
    Oversized(OversizedItem),
}

fn prepare(message: ConfigMessage) -> Result<Prepared, ParseError> {
    Ok(match message {
        ConfigMessage::Other { message_type } => Prepared::Ignore(ignored(
            None,
            Unmailed::NotAChange(message_type.to_string()),
        )),
        ConfigMessage::Change(change) if !change.is_security_group() => Prepared::Ignore(ignored(
            Some(&change.item.resource_id),
            Unmailed::NotASecurityGroup(change.item.resource_type.clone()),
        )),
        ConfigMessage::Change(change) => {
            let diff = change.security_group_diff()?;
            Prepared::Change(Box::new(Change {
                tags_before: change.tags_before(&diff),
                diff,
                change_type: change.change_type,
                item: change.item,
            }))
        }
        ConfigMessage::Oversized(summary) if summary.item.resource_type != SECURITY_GROUP => {
            Prepared::Ignore(ignored(
                Some(&summary.item.resource_id),
                Unmailed::NotASecurityGroup(summary.item.resource_type.clone()),
            ))
        }
        ConfigMessage::Oversized(summary) => Prepared::Oversized(*summary),
    })
}

/// Clients, settings and templates, built once at cold start.
pub struct NotifyOwner {
    config: NotifyConfig,
    owners: OwnerTags,
    mailer: Mailer,
    region: String,
    ses: Ses,
    dedup: Option<Dedup>,
    history: Regional<ConfigHistory>,
    cloudtrail: Regional<CloudTrail>,
    sessions: Sessions,
    chat: Chat,
}

/// The clients that read an item's account: Config's history and CloudTrail, in the item's
/// region, with the own credentials or the member role's.
struct Readers {
    history: ConfigHistory,
    cloudtrail: CloudTrail,
}

impl Prepared {
    /// The account and region (when the message says) of the item it reports.
    fn origin(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Prepared::Ignore(_) => (None, None),
            Prepared::Change(change) => (
                change.item.aws_account_id.as_deref(),
                change.item.aws_region.as_deref(),
            ),
            Prepared::Oversized(summary) => (
                summary.item.aws_account_id.as_deref(),
                summary.item.aws_region.as_deref(),
            ),
        }
    }

    fn group_id(&self) -> Option<&str> {
        match self {
            Prepared::Ignore(entry) => entry.group_id.as_deref(),
            Prepared::Change(change) => Some(&change.item.resource_id),
            Prepared::Oversized(summary) => Some(&summary.item.resource_id),
        }
    }
}

/// The audience's owners as the mail and the report name them; every owner-tag entry refused
/// is logged.
fn addressees(group_id: &str, recipients: Recipients, former: Vec<String>) -> Addressees {
    for refused in &recipients.refused {
        tracing::warn!(
            group = %group_id,
            given = %refused.given,
            reason = %refused.reason,
            "owner-tag entry gets no mail"
        );
    }
    Addressees {
        refused: recipients
            .refused
            .iter()
            .map(|r| format!("{}: {}", r.given, r.reason))
            .collect(),
        to: recipients.to,
        former,
    }
}

/// The chat message for a notice mailed to a group's owners, threaded by group.
fn owner_notice(entry: &MessageReport) -> ChatMessage {
    let group = entry.group_id.as_deref().unwrap_or("a security group");
    let subject = entry.subject.as_deref().unwrap_or("security group changed");
    ChatMessage::new(
        group,
        &format!("Owners of {group} told: {subject}"),
        &format!("Mailed to {}.", entry.recipients.join(", ")),
    )
}

impl NotifyOwner {
    pub fn new(config: NotifyConfig, sdk: &SdkConfig) -> Result<Self, RenderError> {
        if config.dedup_table.is_none() {
            tracing::warn!("NOTIFY_DEDUP_TABLE is not set: a redelivered message may mail twice");
        }
        Ok(Self {
            mailer: Mailer::new()?,
            region: sdk::region_of(sdk),
            ses: Ses::new(sdk),
            dedup: config.dedup_table.as_deref().map(|t| Dedup::new(sdk, t)),
            history: Regional::new(sdk, ConfigHistory::new),
            cloudtrail: Regional::new(sdk, CloudTrail::new),
            sessions: Sessions::new(
                sdk,
                FUNCTION,
                config.member_role.clone(),
                config.function_role_arn.clone(),
            ),
            chat: Chat::new(sdk, config.chat_topic_arn.as_deref()),
            owners: OwnerTags {
                opt_in_tag: config.tag.clone(),
                opt_in_value: config.tag_value.clone(),
                owner_tag: config.owner_tag.clone(),
                default_domain: config.default_domain.clone(),
                allowed_domains: config.allowed_domains.clone(),
            },
            config,
        })
    }

    /// Keeps the own account as Lambda names it, so that telling the own account's items
    /// from a member account's needs no STS call.
    pub fn learn_own_account(&self, account: &str) {
        self.sessions.learn_own_account(account);
    }

    pub async fn handle(&self, event: &Value, now: SystemTime) -> Result<Report, NotifyError> {
        let messages = match Trigger::parse(event)? {
            Trigger::Config(messages) => messages,
            other => return Err(NotifyError::WrongTrigger(other.kind())),
        };
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Every change's diff is read before anything is sent: one message that cannot be
        // understood fails the delivery with nothing mailed.
        let prepared = messages
            .into_iter()
            .map(prepare)
            .collect::<Result<Vec<_>, ParseError>>()?;
        let mut report = Report::default();
        let mut retry = None;
        for message in prepared {
            match self.message(message, now).await {
                Ok(entry) => {
                    tracing::info!(
                        outcome = %entry.outcome,
                        group = entry.group_id.as_deref(),
                        reason = entry.reason.as_ref().map(ToString::to_string),
                        "config message handled"
                    );
                    if entry.outcome == MessageOutcome::Mailed {
                        self.chat.tell(&owner_notice(&entry)).await;
                    }
                    report.messages.push(entry);
                }
                // The other messages still go out; the failed one is retried with the
                // whole delivery, and the claims keep the others from going out twice.
                Err(error) => {
                    tracing::error!(error = %error, kind = error.kind().name(), "config message failed");
                    retry.get_or_insert(error);
                }
            }
        }
        match retry {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    async fn message(&self, message: Prepared, now: u64) -> Result<MessageReport, NotifyError> {
        let readers = match self.readers_for(&message).await? {
            Ok(readers) => readers,
            Err(reason) => return Ok(ignored(message.group_id(), Unmailed::OutOfReach(reason))),
        };
        let change = match message {
            Prepared::Ignore(entry) => return Ok(entry),
            Prepared::Change(mut change) => {
                if change.change_type == ChangeType::Delete && !self.opted(&change.item) {
                    // A deleted group's last item may carry no tags: take them from the
                    // last item that still had a configuration.
                    self.tags_before_deletion(&readers, &mut change.item)
                        .await?;
                }
                *change
            }
            Prepared::Oversized(summary) => self.resolve_oversized(&readers, summary).await?,
        };
        self.notify(&readers, change, now).await
    }

    /// The readers of the message's account and region, or why the message is not read.
    async fn readers_for(
        &self,
        message: &Prepared,
    ) -> Result<Result<Readers, OutOfReach>, AwsError> {
        let (account, region) = message.origin();
        let region = region.unwrap_or(&self.region);
        Ok(match self.sessions.place(account, region).await? {
            Place::Own => Ok(Readers {
                history: self.history.get(region),
                cloudtrail: self.cloudtrail.get(region),
            }),
            Place::Member { sdk, .. } => Ok(Readers {
                history: ConfigHistory::new(&sdk),
                cloudtrail: CloudTrail::new(&sdk),
            }),
            Place::OutOfReach(reason) => Err(reason),
        })
    }

    /// The change an oversized notification reports, read from Config's history: the
    /// group's newest two items (the state the summary names, and the one before). History
    /// that has not caught up with the summary is retried, never mailed from older state.
    async fn resolve_oversized(
        &self,
        readers: &Readers,
        summary: OversizedItem,
    ) -> Result<Change, NotifyError> {
        let items = readers
            .history
            .security_group(&summary.item.resource_id, 2)
            .await?;
        let wanted = summary.item.state_id();
        let newest = items.first().and_then(ConfigurationItem::state_id);
        let behind = match (&wanted, &newest) {
            (Some(w), Some(n)) => n.parse::<u128>().ok() < w.parse::<u128>().ok(),
            (Some(_), None) => true,
            _ => false,
        };
        let mut items = items.into_iter();
        let current = items.next().filter(|_| !behind);
        let Some(mut current) = current else {
            return Err(NotifyError::HistoryBehind {
                group_id: summary.item.resource_id,
                wanted: wanted.unwrap_or_default(),
                newest: newest.unwrap_or_else(|| "none".into()),
            });
        };
        let previous = items.next();
        let mut diff = current.diff_from(previous.as_ref())?;
        let tags_before = previous
            .as_ref()
            .map(|p| p.tags.clone().unwrap_or_default());
        if summary.change_type == ChangeType::Delete {
            // The deleted item's empty tags are not a change to report.
            diff.tags.clear();
            if let Some(previous) = &previous {
                current.tags = previous.tags.clone();
            }
        }
        Ok(Change {
            item: current,
            change_type: summary.change_type,
            diff,
            tags_before,
        })
    }

    fn opted(&self, item: &ConfigurationItem) -> bool {
        item.tags
            .as_ref()
            .is_some_and(|tags| self.owners.opted_in(tags))
    }

    async fn tags_before_deletion(
        &self,
        readers: &Readers,
        item: &mut ConfigurationItem,
    ) -> Result<(), NotifyError> {
        match readers.history.security_group(&item.resource_id, 2).await {
            Ok(items) => {
                if let Some(last) = items.into_iter().find(|i| i.configuration.is_some()) {
                    item.tags = last.tags;
                }
                Ok(())
            }
            // Config forgets nothing it recorded, but a group it never recorded has no
            // history: then the group was never opted in as far as anyone can tell.
            Err(e) if e.code() == Some("ResourceNotDiscoveredException") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn notify(
        &self,
        readers: &Readers,
        change: Change,
        now: u64,
    ) -> Result<MessageReport, NotifyError> {
        let group_id = change.item.resource_id.as_str();
        let Audience::Owners { recipients, former } = self.audience(&change) else {
            return Ok(ignored(
                Some(group_id),
                Unmailed::NotOptedIn {
                    tag: self.config.tag.clone(),
                    value: self.config.tag_value.clone(),
                },
            ));
        };
        if let Some(reason) = Self::nothing_to_tell(&change) {
            return Ok(ignored(Some(group_id), reason));
        }
        let to = addressees(group_id, recipients, former);
        if to.to.is_empty() {
            let mut entry = ignored(
                Some(group_id),
                Unmailed::NoRecipient(self.config.owner_tag.clone()),
            );
            entry.refused = to.refused;
            return Ok(entry);
        }
        let key = self.dedup_key(&change.item);
        if !self.claim(&key, now).await? {
            return Ok(MessageReport {
                outcome: MessageOutcome::Duplicate,
                group_id: Some(group_id.to_string()),
                reason: Some(Unmailed::MailedAlready(key)),
                ..MessageReport::default()
            });
        }
        let mut facts = self.facts(readers, &change.item).await;
        facts.former_owners = to.former.clone();
        let mail = self
            .mailer
            .render(&Notice::new(facts, change.change_type, &change.diff))?;
        self.send(group_id, &key, to, mail).await
    }

    /// Why the owners do not hear of this change: nothing they follow changed (an update of
    /// relationships only, say).
    fn nothing_to_tell(change: &Change) -> Option<Unmailed> {
        let diff = &change.diff;
        let unchanged = change.change_type == ChangeType::Update
            && diff.added.is_empty()
            && diff.removed.is_empty()
            && diff.tags.is_empty();
        unchanged.then_some(if diff.relationships_only {
            Unmailed::OnlyRelationships
        } else {
            Unmailed::NothingChanged
        })
    }

    /// Who hears of the change (core: the owners now and, when the group was opted in
    /// before the change, the owners then; parsed, defaulted, checked against the allowed
    /// domains).
    fn audience(&self, change: &Change) -> Audience {
        let empty = BTreeMap::new();
        let after = change.item.tags.as_ref().unwrap_or(&empty);
        self.owners.audience(change.tags_before.as_ref(), after)
    }

    /// What the mail says about the change: where, when, and who (from CloudTrail when the
    /// item names the event; unknown when the look-up fails).
    async fn facts(&self, readers: &Readers, item: &ConfigurationItem) -> NoticeFacts {
        let region = self.region_of(item);
        let event_id = item
            .related_events
            .as_ref()
            .and_then(|events| events.first())
            .cloned();
        let actor = match &event_id {
            None => None,
            Some(id) => match readers.cloudtrail.actor(id).await {
                Ok(actor) => actor.and_then(|a| a.describe(self.config.member_role.as_ref())),
                Err(error) => {
                    tracing::warn!(event_id = %id, error = %error, "who made the change is unknown");
                    None
                }
            },
        };
        NoticeFacts {
            account: item.aws_account_id.clone().unwrap_or_default(),
            region,
            group_id: item.resource_id.clone(),
            group_name: item.resource_name.clone(),
            time: item
                .configuration_item_capture_time
                .clone()
                .unwrap_or_default(),
            actor,
            event_id,
            opt_in_tag: self.config.tag.clone(),
            opt_in_value: self.config.tag_value.clone(),
            owner_tag: self.config.owner_tag.clone(),
            former_owners: Vec::new(),
        }
    }

    /// The item's region (the function's own when the item does not say).
    fn region_of(&self, item: &ConfigurationItem) -> String {
        item.aws_region.clone().unwrap_or(self.region.clone())
    }

    /// The dedup table's key for one state of one group: a redelivery of the same state is
    /// mailed once.
    fn dedup_key(&self, item: &ConfigurationItem) -> String {
        let state = item
            .state_id()
            .or_else(|| item.configuration_item_capture_time.clone())
            .unwrap_or_default();
        format!(
            "{}/{}/{}/{state}",
            item.aws_account_id.as_deref().unwrap_or_default(),
            self.region_of(item),
            item.resource_id
        )
    }

    /// Claims `key` in the dedup table; false when an earlier delivery mailed it already.
    /// Without a table every delivery mails.
    async fn claim(&self, key: &str, now: u64) -> Result<bool, NotifyError> {
        match &self.dedup {
            Some(dedup) => {
                Ok(dedup.claim(key, now + CLAIM_DAYS * 86_400).await? != Claim::AlreadyClaimed)
            }
            None => Ok(true),
        }
    }

    /// Gives a claim back after a refused send, so that a retry may mail.
    async fn release(&self, key: &str) {
        if let Some(dedup) = &self.dedup {
            if let Err(error) = dedup.release(key).await {
                tracing::error!(notification = %key, error = %error, "claim not released; a retry will not mail");
            }
        }
    }

    /// Sends the mail. A refused send releases the claim, so a retry may mail; a transient
    /// refusal fails the delivery (SNS retries it), a permanent one is reported.
    async fn send(
        &self,
        group_id: &str,
        key: &str,
        to: Addressees,
        mail: Mail,
    ) -> Result<MessageReport, NotifyError> {
        let sent = self
            .ses
            .send(Outgoing {
                from: &self.config.sender,
                to: &to.to,
                subject: &mail.subject,
                text: &mail.text,
                html: &mail.html,
            })
            .await;
        let recipients_text = to.to.join(", ");
        let mut report = MessageReport {
            outcome: MessageOutcome::Mailed,
            group_id: Some(group_id.to_string()),
            reason: None,
            recipients: to.to,
            former_owners: to.former,
            refused: to.refused,
            subject: Some(mail.subject),
        };
        match sent {
            Ok(message_id) => {
                tracing::info!(
                    group = group_id,
                    recipients = %recipients_text,
                    former_owners = %report.former_owners.join(", "),
                    subject = report.subject.as_deref(),
                    message_id = %message_id,
                    notification = %key,
                    "owner mailed"
                );
            }
            Err(error) => {
                tracing::error!(
                    group = group_id,
                    recipients = %recipients_text,
                    error = %error,
                    "mail not sent"
                );
                self.release(key).await;
                if error.is_transient() {
                    return Err(NotifyError::Send {
                        recipients: recipients_text,
                        source: error,
                    });
                }
                report.outcome = MessageOutcome::Failed;
                report.reason = Some(Unmailed::Refused(error.to_string()));
            }
        }
        Ok(report)
    }
}
