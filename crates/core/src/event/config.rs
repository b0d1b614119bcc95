//! AWS Config messages, as SNS or EventBridge delivers them to notify-owner.
//!
//! Config publishes a JSON *string* in each SNS record's `Message`; on EventBridge (a central
//! deployment's bus, SPEC "One deployment, many accounts") the same message is the `detail`
//! of a `Config Configuration Item Change` event. The message types that
//! matter are `ConfigurationItemChangeNotification` (the item and a diff of what changed) and
//! `OversizedConfigurationItemChangeNotification` (only a summary: the item was too large for
//! SNS and must be fetched through the Config API). Every other type is kept as
//! [`ConfigMessage::Other`] so the function can acknowledge and ignore it.
//!
//! For a security group, [`ItemChange::security_group_diff`] turns Config's
//! `changedProperties` into atomic rules added and removed (ingress and egress), tag changes,
//! and whether only relationships changed.

use std::collections::BTreeMap;

use aws_lambda_events::event::sns::SnsEvent;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{from_str, from_value, ParseError};
use crate::rule::{Direction, RuleSet};
use crate::wire::Permission;
use crate::wire::Permissions;

pub(crate) const ITEM_CHANGE: &str = "ConfigurationItemChangeNotification";
pub(crate) const OVERSIZED_ITEM_CHANGE: &str = "OversizedConfigurationItemChangeNotification";
/// The Config resource type of a security group: the only items notify-owner mails about.
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";
/// The EventBridge `detail-type` of a Config item change (source `aws.config`).
pub(crate) const EVENTBRIDGE_ITEM_CHANGE: &str = "Config Configuration Item Change";

/// One Config message.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigMessage {
    /// `ConfigurationItemChangeNotification`: the item as it is now, and the diff of what
    /// changed.
    Change(Box<ItemChange>),
    /// `OversizedConfigurationItemChangeNotification`: the item was too large for SNS; only
    /// its summary came, and the item must be read through the Config API.
    Oversized(Box<OversizedItem>),
    /// Any other message type (snapshots, compliance, history deliveries …).
    Other {
        /// The `messageType` as Config wrote it.
        message_type: String,
    },
}

/// What kind of change Config reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    /// `CREATE`: the resource was first recorded (also assumed when Config sends no diff).
    Create,
    /// `UPDATE`: a recorded resource changed.
    Update,
    /// `DELETE`: the resource was deleted.
    Delete,
}

impl ChangeType {
    fn parse(text: &str, field: &str) -> Result<Self, ParseError> {
        match text {
            "CREATE" => Ok(ChangeType::Create),
            "UPDATE" => Ok(ChangeType::Update),
            "DELETE" => Ok(ChangeType::Delete),
            other => Err(ParseError::new(
                field,
                format!("unknown change type {other:?}"),
            )),
        }
    }

    /// The change as a past participle for mail (`created`, `changed`, `deleted`); not Config's
    /// spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "created",
            ChangeType::Update => "changed",
            ChangeType::Delete => "deleted",
        }
    }
}

/// A configuration item: a resource's recorded state at one moment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationItem {
    /// `resourceType`, e.g. `AWS::EC2::SecurityGroup` ([`SECURITY_GROUP`]).
    pub resource_type: String,
    /// `resourceId`: for a security group, its id (`sg-…`).
    pub resource_id: String,
    #[serde(default)]
    /// `resourceName`: for a security group, its name, when recorded.
    pub resource_name: Option<String>,
    #[serde(default)]
    /// `awsRegion`: the region the resource is in, when recorded.
    pub aws_region: Option<String>,
    #[serde(default)]
    /// `awsAccountId`: the account the resource is in, when recorded. Not always a real id
    /// (recorded items may carry the sanitised `0123456789`); see
    /// [`crate::accounts::names_an_account`].
    pub aws_account_id: Option<String>,
    #[serde(default)]
    /// `configurationItemCaptureTime`: when Config recorded this state, as Config wrote it.
    pub configuration_item_capture_time: Option<String>,
    #[serde(default)]
    /// `configurationItemStatus` (`OK`, `ResourceDiscovered`, `ResourceDeleted`, …), as Config
    /// wrote it.
    pub configuration_item_status: Option<String>,
    /// Config writes it as a number in notifications and as a string in the API.
    #[serde(default)]
    pub configuration_state_id: Option<Value>,
    #[serde(default)]
    /// `configurationStateMd5Hash`, as Config wrote it.
    pub configuration_state_md5_hash: Option<String>,
    /// The resource's own configuration; `null` once the resource is deleted.
    #[serde(default)]
    pub configuration: Option<Value>,
    #[serde(default)]
    /// `tags`: the resource's tags at this state, key → value; `None` when the item has none.
    pub tags: Option<BTreeMap<String, String>>,
    /// CloudTrail event ids behind this change, when Config knows them.
    #[serde(default)]
    pub related_events: Option<Vec<String>>,
}

impl ConfigurationItem {
    /// The item's state id as text, whichever way Config wrote it.
    pub fn state_id(&self) -> Option<String> {
        match &self.configuration_state_id {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The group's rules (ingress and egress) as recorded in `configuration`; empty when the
    /// group is deleted.
    pub fn security_group_rules(&self) -> Result<RuleSet, ParseError> {
        let mut rules = RuleSet::new();
        let Some(configuration) = self.configuration.as_ref().filter(|c| !c.is_null()) else {
            return Ok(rules);
        };
        for (key, direction) in [
            ("ipPermissions", Direction::Ingress),
            ("ipPermissionsEgress", Direction::Egress),
        ] {
            let Some(value) = configuration.get(key) else {
                continue;
            };
            let Permissions(list) =
                from_value(value).map_err(|e| e.within(&format!("configuration.{key}")))?;
            rules
                .extend_permissions(direction, &list)
                .map_err(|e| e.within(&format!("configuration.{key}")))?;
        }
        Ok(rules)
    }
}

impl ConfigurationItem {
    /// What changed from `previous` to this item, from the two full configurations: the
    /// diff of an oversized notification, whose message carries no diff. With no previous
    /// item (a creation), every rule is added.
    pub fn diff_from(
        &self,
        previous: Option<&ConfigurationItem>,
    ) -> Result<SecurityGroupDiff, ParseError> {
        let after = self.security_group_rules()?;
        let before = match previous {
            Some(p) => p.security_group_rules()?,
            None => RuleSet::new(),
        };
        let empty = BTreeMap::new();
        let tags_after = self.tags.as_ref().unwrap_or(&empty);
        let tags_before = previous.and_then(|p| p.tags.as_ref()).unwrap_or(&empty);
        let mut tags = BTreeMap::new();
        for key in tags_after.keys().chain(tags_before.keys()) {
            let (b, a) = (tags_before.get(key), tags_after.get(key));
            if b != a {
                tags.insert(key.clone(), (b.cloned(), a.cloned()));
            }
        }
        Ok(SecurityGroupDiff {
            added: difference(&after, &before),
            removed: difference(&before, &after),
            tags,
            relationships_only: false,
        })
    }
}

/// The rules of `a` that `b` does not hold.
fn difference(a: &RuleSet, b: &RuleSet) -> RuleSet {
    a.iter()
        .filter(|(r, _)| !b.contains(r))
        .map(|(r, i)| (r.clone(), i.clone()))
        .collect()
}

/// A `ConfigurationItemChangeNotification`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    /// `configurationItem`: the resource as it is after the change.
    pub item: ConfigurationItem,
    /// `configurationItemDiff.changeType`; `Create` when the message has no diff.
    pub change_type: ChangeType,
    /// `configurationItemDiff.changedProperties`, as Config wrote it.
    pub changed_properties: Map<String, Value>,
    /// `notificationCreationTime`: when Config sent the message, as Config wrote it.
    pub notification_time: Option<String>,
}

/// What changed in a security group, in sgwarden's terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecurityGroupDiff {
    /// Rules the group holds after the change and not before.
    pub added: RuleSet,
    /// Rules the group held before the change and not after.
    pub removed: RuleSet,
    /// Tag key → (before, after); `None` where the tag did not exist on that side.
    pub tags: BTreeMap<String, (Option<String>, Option<String>)>,
    /// True when every changed property is a relationship (an instance or interface
    /// attached or detached): nothing an owner acts on.
    pub relationships_only: bool,
}

impl SecurityGroupDiff {
    /// The tags a group had before this change: `after` (the item's tags) with every tag
    /// change of the diff undone. notify-owner reads the owners and the opt-in before the
    /// change from it, so that re-pointing the owner tag or removing the opt-in is told to
    /// the owners it takes the mail from.
    pub fn tags_before(&self, after: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut before = after.clone();
        for (key, (was, _)) in &self.tags {
            match was {
                Some(value) => before.insert(key.clone(), value.clone()),
                None => before.remove(key),
            };
        }
        before
    }
}

impl ItemChange {
    /// True when the item is a security group ([`SECURITY_GROUP`]).
    pub fn is_security_group(&self) -> bool {
        self.item.resource_type == SECURITY_GROUP
    }

    /// The group's tags before this change, from the item's tags and the change's diff; none
    /// for a creation (the group had no state before it).
    pub fn tags_before(&self, diff: &SecurityGroupDiff) -> Option<BTreeMap<String, String>> {
        if self.change_type == ChangeType::Create {
            return None;
        }
        let empty = BTreeMap::new();
        Some(diff.tags_before(self.item.tags.as_ref().unwrap_or(&empty)))
    }

    /// The rules and tags this change added and removed.
    ///
    /// Each `Configuration.IpPermissions[Egress].N` property holds the permission before
    /// (`previousValue`) and after (`updatedValue`). Indexes shift as rules come and go, so
    /// the sides are compared as sets of atomic rules: what is after but not before was
    /// added, and the reverse was removed. A creation reports every current rule as added,
    /// a deletion every previous one as removed.
    pub fn security_group_diff(&self) -> Result<SecurityGroupDiff, ParseError> {
        let mut before = RuleSet::new();
        let mut after = RuleSet::new();
        let mut diff = SecurityGroupDiff::default();
        let mut only_relationships = !self.changed_properties.is_empty();
        for (key, change) in &self.changed_properties {
            let field = format!("configurationItemDiff.changedProperties.{key}");
            if !key.starts_with("Relationships.") {
                only_relationships = false;
            }
            let direction = if key.starts_with("Configuration.IpPermissionsEgress") {
                Direction::Egress
            } else if key.starts_with("Configuration.IpPermissions") {
                Direction::Ingress
            } else {
                if let Some(tag) = key
                    .strip_prefix("SupplementaryConfiguration.Tags.")
                    .or_else(|| key.strip_prefix("Tags."))
                {
                    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
                    diff.tags.insert(
                        tag.to_string(),
                        (
                            text(change.get("previousValue")),
                            text(change.get("updatedValue")),
                        ),
                    );
                } else if key.starts_with("Configuration.Tags") {
                    self.collect_tag_pair(change, &mut diff.tags);
                }
                continue;
            };
            for (side, set) in [("previousValue", &mut before), ("updatedValue", &mut after)] {
                match change.get(side) {
                    None | Some(Value::Null) => {}
                    Some(value) => {
                        let permission: Permission =
                            from_value(value).map_err(|e| e.within(&format!("{field}.{side}")))?;
                        set.extend_permissions(direction, [&permission])
                            .map_err(|e| e.within(&format!("{field}.{side}")))?;
                    }
                }
            }
        }
        match self.change_type {
            ChangeType::Create if self.changed_properties.is_empty() => {
                after = self.item.security_group_rules()?;
            }
            _ => {}
        }
        // The configuration's tag list is compared index by index: a tag that only moved
        // (another was added or removed before it) is on both sides, unchanged.
        diff.tags.retain(|_, (was, is)| was != is);
        diff.added = difference(&after, &before);
        diff.removed = difference(&before, &after);
        diff.relationships_only = only_relationships;
        Ok(diff)
    }

    fn collect_tag_pair(
        &self,
        change: &Value,
        tags: &mut BTreeMap<String, (Option<String>, Option<String>)>,
    ) {
        let pair = |v: Option<&Value>| {
            let v = v?;
            Some((
                v.get("key")?.as_str()?.to_string(),
                v.get("value")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ))
        };
        let before = pair(change.get("previousValue"));
        let after = pair(change.get("updatedValue"));
        if let Some((key, value)) = &before {
            tags.entry(key.clone()).or_insert((None, None)).0 = Some(value.clone());
        }
        if let Some((key, value)) = &after {
            tags.entry(key.clone()).or_insert((None, None)).1 = Some(value.clone());
        }
    }
}

/// An `OversizedConfigurationItemChangeNotification`: only the summary is delivered. The
/// summary names the item as an item does (type, id, name, region, account, capture time,
/// state id) and carries no configuration, so it is read as a [`ConfigurationItem`] without
/// one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OversizedItem {
    /// An unknown value is refused with the message, never read as an update.
    pub change_type: ChangeType,
    /// The item the summary names; its `configuration` is absent.
    #[serde(flatten)]
    pub item: ConfigurationItem,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessage {
    message_type: String,
    #[serde(default)]
    configuration_item: Option<ConfigurationItem>,
    #[serde(default)]
    configuration_item_diff: Option<RawDiff>,
    #[serde(default)]
    configuration_item_summary: Option<OversizedItem>,
    #[serde(default)]
    notification_creation_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDiff {
    #[serde(default)]
    changed_properties: Option<Map<String, Value>>,
    change_type: String,
}

/// Parses one Config message (the SNS `Message`, already decoded from its string).
pub fn parse_message(value: &Value) -> Result<ConfigMessage, ParseError> {
    let raw: RawMessage = from_value(value)?;
    match raw.message_type.as_str() {
        ITEM_CHANGE => {
            let item = raw
                .configuration_item
                .ok_or_else(|| ParseError::missing("configurationItem"))?;
            let (change_type, changed_properties) = match raw.configuration_item_diff {
                Some(diff) => (
                    ChangeType::parse(&diff.change_type, "configurationItemDiff.changeType")?,
                    diff.changed_properties.unwrap_or_default(),
                ),
                // Config sends no diff for the first item of a newly recorded resource.
                None => (ChangeType::Create, Map::new()),
            };
            Ok(ConfigMessage::Change(Box::new(ItemChange {
                item,
                change_type,
                changed_properties,
                notification_time: raw.notification_creation_time,
            })))
        }
        OVERSIZED_ITEM_CHANGE => raw
            .configuration_item_summary
            .map(|summary| ConfigMessage::Oversized(Box::new(summary)))
            .ok_or_else(|| ParseError::missing("configurationItemSummary")),
        other => Ok(ConfigMessage::Other {
            message_type: other.to_string(),
        }),
    }
}

/// Parses a Config message from the text SNS carries.
pub(crate) fn parse_message_text(text: &str) -> Result<ConfigMessage, ParseError> {
    let value: Value = from_str(text)?;
    parse_message(&value)
}

/// Parses an SNS delivery: every record's `Message` must be a Config message.
pub(crate) fn parse_sns(event: &Value) -> Result<Vec<ConfigMessage>, ParseError> {
    let sns: SnsEvent = from_value(event)?;
    if sns.records.is_empty() {
        return Err(ParseError::new("Records", "empty"));
    }
    sns.records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            parse_message_text(&record.sns.message)
                .map_err(|e| e.within(&format!("Records[{i}].Sns.Message")))
        })
        .collect()
}

#[derive(Deserialize)]
struct ConfigEnvelope {
    source: String,
    #[serde(default)]
    account: Option<String>,
    detail: Value,
}

/// Parses a `Config Configuration Item Change` event. Only AWS Config can send source
/// `aws.config`, and EventBridge sets `account` to the account the item was recorded in: an
/// item that names another account is refused, not believed.
pub(crate) fn parse_eventbridge(event: &Value) -> Result<ConfigMessage, ParseError> {
    let envelope: ConfigEnvelope = from_value(event)?;
    if envelope.source != "aws.config" {
        return Err(ParseError::new(
            "source",
            format!("{:?} does not send Config item changes", envelope.source),
        ));
    }
    let message = parse_message(&envelope.detail).map_err(|e| e.within("detail"))?;
    let item_account = match &message {
        ConfigMessage::Change(change) => change.item.aws_account_id.as_deref(),
        ConfigMessage::Oversized(summary) => summary.item.aws_account_id.as_deref(),
        ConfigMessage::Other { .. } => None,
    };
    if let (Some(item), Some(account)) = (item_account, envelope.account.as_deref()) {
        if item != account {
            return Err(ParseError::new(
                "detail.configurationItem.awsAccountId",
                format!("{item} is not the account the event came from ({account})"),
            ));
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_eventbridge_item_change_is_the_sns_message_in_detail() {
        let detail = json!({
            "messageType": ITEM_CHANGE,
            "configurationItemDiff": {"changeType": "UPDATE", "changedProperties": {}},
            "configurationItem": {"resourceType": SECURITY_GROUP, "resourceId": "sg-1",
                                  "awsAccountId": "222233334444", "awsRegion": "eu-west-1"}
        });
        let event = |source: &str, account: &str| {
            json!({"detail-type": EVENTBRIDGE_ITEM_CHANGE, "source": source,
                   "account": account, "region": "eu-west-1", "detail": detail})
        };
        let Ok(ConfigMessage::Change(change)) =
            parse_eventbridge(&event("aws.config", "222233334444"))
        else {
            panic!("not read as a change");
        };
        assert_eq!(change.item.resource_id, "sg-1");
        assert_eq!(change.change_type, ChangeType::Update);
        assert_eq!(
            parse_eventbridge(&event("aws.config", "999988887777"))
                .unwrap_err()
                .field,
            "detail.configurationItem.awsAccountId"
        );
        assert_eq!(
            parse_eventbridge(&event("my.app", "222233334444"))
                .unwrap_err()
                .field,
            "source"
        );
        let mut broken = event("aws.config", "222233334444");
        broken["detail"]["configurationItemDiff"]["changeType"] = json!("RENAME");
        assert_eq!(
            parse_eventbridge(&broken).unwrap_err().field,
            "detail.configurationItemDiff.changeType"
        );
    }

    #[test]
    fn other_message_types_are_kept_for_acknowledging() {
        let m = parse_message(&json!({"messageType": "ConfigurationSnapshotDeliveryCompleted"}))
            .unwrap();
        assert!(
            matches!(m, ConfigMessage::Other { ref message_type } if message_type == "ConfigurationSnapshotDeliveryCompleted")
        );
    }

    #[test]
    fn a_change_without_its_item_is_refused() {
        let e = parse_message(&json!({"messageType": ITEM_CHANGE})).unwrap_err();
        assert_eq!(e.field, "configurationItem");
    }

    #[test]
    fn an_oversized_summary_s_change_type_is_read_or_refused() {
        let summary = |change_type: &str| {
            parse_message(&json!({
                "messageType": OVERSIZED_ITEM_CHANGE,
                "configurationItemSummary": {
                    "changeType": change_type,
                    "resourceType": "AWS::EC2::SecurityGroup",
                    "resourceId": "sg-1"
                }
            }))
        };
        for (text, expected) in [
            ("CREATE", ChangeType::Create),
            ("UPDATE", ChangeType::Update),
            ("DELETE", ChangeType::Delete),
        ] {
            assert!(
                matches!(summary(text), Ok(ConfigMessage::Oversized(ref s)) if s.change_type == expected),
                "{text}"
            );
        }
        let refused = summary("RENAME").unwrap_err();
        assert_eq!(
            refused.field, "configurationItemSummary.changeType",
            "{refused}"
        );
    }

    #[test]
    fn sns_message_must_be_json() {
        let e = parse_message_text("not json").unwrap_err();
        assert!(e.reason.contains("expected"), "{e}");
    }

    #[test]
    fn tag_changes_are_reported() {
        let change = ItemChange {
            item: from_value(&json!({"resourceType": SECURITY_GROUP, "resourceId": "sg-1"})).unwrap(),
            change_type: ChangeType::Update,
            changed_properties: json!({
                "SupplementaryConfiguration.Tags.Team": {"previousValue": "a", "updatedValue": "b", "changeType": "UPDATE"},
                "Configuration.Tags.0": {"previousValue": null, "updatedValue": {"key": "Env", "value": "prod"}, "changeType": "CREATE"}
            })
            .as_object()
            .cloned()
            .unwrap(),
            notification_time: None,
        };
        let diff = change.security_group_diff().unwrap();
        assert_eq!(diff.tags["Team"], (Some("a".into()), Some("b".into())));
        assert_eq!(diff.tags["Env"], (None, Some("prod".into())));
        assert!(!diff.relationships_only);
        assert!(diff.added.is_empty() && diff.removed.is_empty());
    }

    fn tag_change(tags: &[(&str, &str)], changed: Value) -> ItemChange {
        ItemChange {
            item: item(&[], tags),
            change_type: ChangeType::Update,
            changed_properties: changed.as_object().cloned().unwrap(),
            notification_time: None,
        }
    }

    fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_tags_before_a_change_are_the_item_s_with_the_diff_undone() {
        // Config's `Tags.<key>` form: the owner tag re-pointed, the opt-in removed, a tag added.
        let change = tag_change(
            &[
                ("OwnerDL", "mallory@example.com"),
                ("New", "x"),
                ("Team", "a"),
            ],
            json!({
                "Tags.OwnerDL": {"previousValue": "db@example.com",
                                 "updatedValue": "mallory@example.com", "changeType": "UPDATE"},
                "Tags.NotifyOnChange": {"previousValue": "Yes", "updatedValue": null,
                                        "changeType": "DELETE"},
                "Tags.New": {"previousValue": null, "updatedValue": "x", "changeType": "CREATE"}
            }),
        );
        let diff = change.security_group_diff().unwrap();
        assert_eq!(
            change.tags_before(&diff).unwrap(),
            tag_map(&[
                ("NotifyOnChange", "Yes"),
                ("OwnerDL", "db@example.com"),
                ("Team", "a")
            ])
        );
        // The configuration's tag list, whose indexes shift as tags come and go.
        let change = tag_change(
            &[("OwnerDL", "mallory@example.com")],
            json!({
                "Configuration.Tags.0": {"previousValue": {"key": "NotifyOnChange", "value": "Yes"},
                                         "updatedValue": {"key": "OwnerDL", "value": "mallory@example.com"},
                                         "changeType": "UPDATE"},
                "Configuration.Tags.1": {"previousValue": {"key": "OwnerDL", "value": "db@example.com"},
                                         "updatedValue": null, "changeType": "DELETE"}
            }),
        );
        let diff = change.security_group_diff().unwrap();
        assert_eq!(
            change.tags_before(&diff).unwrap(),
            tag_map(&[("NotifyOnChange", "Yes"), ("OwnerDL", "db@example.com")])
        );
        // The opt-in removed: the owner tag only moved up the list, and is no change.
        let change = tag_change(
            &[("OwnerDL", "db@example.com")],
            json!({
                "Configuration.Tags.0": {"previousValue": {"key": "NotifyOnChange", "value": "Yes"},
                                         "updatedValue": {"key": "OwnerDL", "value": "db@example.com"},
                                         "changeType": "UPDATE"},
                "Configuration.Tags.1": {"previousValue": {"key": "OwnerDL", "value": "db@example.com"},
                                         "updatedValue": null, "changeType": "DELETE"}
            }),
        );
        let diff = change.security_group_diff().unwrap();
        assert_eq!(
            diff.tags,
            BTreeMap::from([(
                "NotifyOnChange".to_string(),
                (Some("Yes".to_string()), None)
            )])
        );
        assert_eq!(
            change.tags_before(&diff).unwrap(),
            tag_map(&[("NotifyOnChange", "Yes"), ("OwnerDL", "db@example.com")])
        );
        // No tag changed: the tags before are the tags now; a creation has none before.
        let untouched = tag_change(&[("OwnerDL", "db@example.com")], json!({}));
        let diff = untouched.security_group_diff().unwrap();
        assert_eq!(
            untouched.tags_before(&diff).unwrap(),
            tag_map(&[("OwnerDL", "db@example.com")])
        );
        let created = ItemChange {
            change_type: ChangeType::Create,
            ..untouched
        };
        assert_eq!(created.tags_before(&diff), None);
        // An item without tags still has tags before, from the diff.
        let mut bare = tag_change(
            &[],
            json!({"Tags.OwnerDL": {"previousValue": "db@example.com", "updatedValue": null}}),
        );
        bare.item.tags = None;
        let diff = bare.security_group_diff().unwrap();
        assert_eq!(
            bare.tags_before(&diff).unwrap(),
            tag_map(&[("OwnerDL", "db@example.com")])
        );
    }

    fn item(rules: &[(u16, &str)], tags: &[(&str, &str)]) -> ConfigurationItem {
        let permissions: Vec<Value> = rules
            .iter()
            .map(|(port, cidr)| {
                json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port,
                       "ipv4Ranges": [{"cidrIp": cidr}]})
            })
            .collect();
        from_value(&json!({
            "resourceType": SECURITY_GROUP, "resourceId": "sg-1",
            "configuration": {"ipPermissions": permissions, "ipPermissionsEgress": []},
            "tags": tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        }))
        .unwrap()
    }

    #[test]
    fn two_full_items_diff_into_rules_and_tags_added_and_removed() {
        let before = item(
            &[(22, "10.0.0.0/8"), (443, "0.0.0.0/0")],
            &[("Team", "a"), ("Old", "x")],
        );
        let after = item(&[(443, "0.0.0.0/0"), (5432, "0.0.0.0/0")], &[("Team", "b")]);
        let diff = after.diff_from(Some(&before)).unwrap();
        assert_eq!(diff.added.texts(), ["ingress tcp/5432 0.0.0.0/0"]);
        assert_eq!(diff.removed.texts(), ["ingress tcp/22 10.0.0.0/8"]);
        assert_eq!(diff.tags["Team"], (Some("a".into()), Some("b".into())));
        assert_eq!(diff.tags["Old"], (Some("x".into()), None));
        assert_eq!(diff.tags.len(), 2, "an unchanged tag is not a change");
        let created = after.diff_from(None).unwrap();
        assert_eq!(created.added.len(), 2);
        assert!(created.removed.is_empty());
    }

    #[test]
    fn the_state_id_reads_as_text_whichever_way_config_wrote_it() {
        for written in [json!("1763805630000"), json!(1_763_805_630_000_u64)] {
            let item: ConfigurationItem = from_value(&json!({
                "resourceType": SECURITY_GROUP, "resourceId": "sg-1",
                "configurationStateId": written
            }))
            .unwrap();
            assert_eq!(item.state_id().as_deref(), Some("1763805630000"));
        }
        assert_eq!(item(&[], &[]).state_id(), None);
    }

    #[test]
    fn only_security_groups_are_security_groups() {
        let change = |resource_type: &str| ItemChange {
            item: from_value(&json!({"resourceType": resource_type, "resourceId": "x"})).unwrap(),
            change_type: ChangeType::Update,
            changed_properties: Map::new(),
            notification_time: None,
        };
        assert!(change(SECURITY_GROUP).is_security_group());
        assert!(!change("AWS::EC2::Instance").is_security_group());
    }

    #[test]
    fn a_creation_with_changed_properties_reports_exactly_those() {
        let change = ItemChange {
            item: item(&[(22, "10.0.0.0/8"), (443, "0.0.0.0/0")], &[]),
            change_type: ChangeType::Create,
            changed_properties: json!({
                "Configuration.IpPermissions.0": {"previousValue": null, "changeType": "CREATE",
                    "updatedValue": {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                                     "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}}
            })
            .as_object()
            .cloned()
            .unwrap(),
            notification_time: None,
        };
        let diff = change.security_group_diff().unwrap();
        assert_eq!(diff.added.texts(), ["ingress tcp/443 0.0.0.0/0"]);
        // Without changed properties, a creation reports every rule the item holds.
        let bare = ItemChange {
            changed_properties: Map::new(),
            ..change
        };
        assert_eq!(bare.security_group_diff().unwrap().added.len(), 2);
    }
}
