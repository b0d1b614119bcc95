//! revert-ingress's approvals table: time-limited approvals of one rule shape on one group,
//! and the records of rules exempt principals made. It is the one place that proves a rule
//! may stay, because only sgwarden's role and the security team can write it (SPEC "Trust").
//!
//! Schema (SPEC): partition key `group_id` (S), sort key `approval_id` (S); `rule` (S, e.g.
//! `tcp/22 203.0.113.7/32`), `expires_at` (N, epoch seconds, also the table's TTL attribute),
//! `approved_by` (S), `reason` (S). DynamoDB deletes expired items only eventually (up to
//! days later), so expiry is always checked against the clock by the core, never left to TTL.
//!
//! An exemption record is an item with `kind` = `exemption` (S): `rule` is the exact shape
//! the exempt principal made, `rule_id` (S) its `sgr-` id when known, `approved_by` the
//! principal, `reason` the CloudTrail event id, and no `expires_at` (so TTL never removes it).
//!
//! A prefix list's record is an item with `kind` = `prefix-list` (S): partition `group_id` =
//! the list's id, sort `approval_id` = `entries`; `entries` (L of S, the CIDRs sgwarden
//! vouches for, may be empty), `approved_by` (who vouched: an exempt principal, or sgwarden on
//! first use), `reason` (the CloudTrail event id, or `first use`), no `expires_at`.
//!
//! An item that does not follow the schema approves nothing: it is logged (`warn`) and
//! skipped, so a typo in an approval can never open a port.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sgwarden_core::policy::{Approval, Exemption, Grants, Vouched};
use sgwarden_core::rule::Peer;
use sgwarden_core::ParseError;

use crate::error::AwsError;
use crate::item::{all_items, number, optional_text, text, Item};

/// The approvals table in one region: revert-ingress reads its grants and records
/// exemptions and vouched prefix lists; `sgwarden approve` writes and deletes approvals.
#[derive(Debug, Clone)]
pub struct Approvals {
    client: Client,
    table: String,
    region: String,
}

impl Approvals {
    /// The table named `table` in `config`'s region. No AWS call is made here.
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_string(),
            region: crate::sdk::region_of(config),
        }
    }

    /// The grants of one group (one consistent `Query`, all pages).
    pub async fn for_group(&self, group_id: &str) -> Result<Grants, AwsError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("group_id = :g")
            .expression_attribute_values(":g", AttributeValue::S(group_id.to_string()))
            .into_paginator()
            .items()
            .send();
        Ok(self.grants(all_items(pages, "Query", &self.table, &self.region).await?))
    }

    /// Every grant (one consistent `Scan`, all pages): `sgwarden approvals list`'s view. The
    /// table holds live and recently expired approvals and one record per exempted rule. The
    /// sweep never scans: it asks [`Self::for_group`] for its offending groups.
    pub async fn all(&self) -> Result<Grants, AwsError> {
        let pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        Ok(self.grants(all_items(pages, "Scan", &self.table, &self.region).await?))
    }

    /// Records the rules an exempt principal made, one item each: the proof that later
    /// sweeps keep them. Leaves one audit line per record, like every write.
    pub async fn record_exemptions(
        &self,
        exemptions: &[Exemption],
        function: &str,
    ) -> Result<(), AwsError> {
        for (index, exemption) in exemptions.iter().enumerate() {
            let record_id = exemption.record_id(index);
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("group_id", AttributeValue::S(exemption.group_id.clone()))
                .item("approval_id", AttributeValue::S(record_id.clone()))
                .item("kind", AttributeValue::S(EXEMPTION.to_string()))
                .item("rule", AttributeValue::S(exemption.rule.to_string()))
                .item("approved_by", AttributeValue::S(exemption.by.clone()))
                .item("reason", AttributeValue::S(exemption.reason.clone()));
            if let Some(id) = &exemption.rule_id {
                request = request.item("rule_id", AttributeValue::S(id.clone()));
            }
            // A record moves forward in time only: an older call's delivery, late or
            // repeated, never replaces the record of a newer one (RFC 3339 times of one
            // format order as text).
            request = match &exemption.made_at {
                Some(time) => request
                    .item("made_at", AttributeValue::S(time.clone()))
                    .condition_expression(
                        "attribute_not_exists(approval_id) OR attribute_not_exists(made_at) \
                         OR made_at <= :made_at",
                    )
                    .expression_attribute_values(":made_at", AttributeValue::S(time.clone())),
                None => request.condition_expression("attribute_not_exists(approval_id)"),
            };
            let result = request
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("PutItem", &self.table, &self.region, e));
            if result.as_ref().is_err_and(AwsError::is_condition_failed) {
                tracing::warn!(group = %exemption.group_id, approval_id = %record_id, event = %exemption.reason, "an exemption recorded from a newer call stands; this older call's record is not written");
                continue;
            }
            tracing::info!(
                target: sgwarden_core::AUDIT_TARGET,
                function,
                table = %self.table,
                region = %self.region,
                group = %exemption.group_id,
                approval_id = %record_id,
                rule = %exemption.rule,
                by = %exemption.by,
                cause = %format!("event {}", exemption.reason),
                error = result.as_ref().err().map(ToString::to_string),
                "exemption recorded"
            );
            result?;
        }
        Ok(())
    }

    /// The record of the entries sgwarden vouches for in one prefix list (one consistent
    /// `GetItem`), if there is one. A record off the schema is an error: it would otherwise be
    /// taken for "no record" and replaced by what the list holds now.
    pub async fn vouched(&self, list_id: &str) -> Result<Option<Vouched>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("group_id", AttributeValue::S(list_id.to_string()))
            .key(
                "approval_id",
                AttributeValue::S(Vouched::RECORD_ID.to_string()),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetItem", &self.table, &self.region, e))?;
        out.item()
            .map(|item| {
                vouched_from_item(item).map_err(|source| AwsError::Unreadable {
                    operation: "GetItem",
                    resource: format!("{} {list_id} {}", self.table, Vouched::RECORD_ID),
                    region: self.region.clone(),
                    source,
                })
            })
            .transpose()
    }

    /// Writes the record of a prefix list's vouched entries (replacing the one before), with
    /// one audit line.
    pub async fn record_vouched(
        &self,
        vouched: &Vouched,
        function: &str,
        cause: &str,
    ) -> Result<(), AwsError> {
        let entries: Vec<String> = vouched.entries.iter().map(ToString::to_string).collect();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("group_id", AttributeValue::S(vouched.list_id.clone()))
            .item(
                "approval_id",
                AttributeValue::S(Vouched::RECORD_ID.to_string()),
            )
            .item("kind", AttributeValue::S(PREFIX_LIST.to_string()))
            .item(
                "entries",
                AttributeValue::L(entries.iter().cloned().map(AttributeValue::S).collect()),
            )
            .item("approved_by", AttributeValue::S(vouched.by.clone()))
            .item("reason", AttributeValue::S(vouched.reason.clone()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutItem", &self.table, &self.region, e));
        tracing::info!(
            target: sgwarden_core::AUDIT_TARGET,
            function,
            table = %self.table,
            region = %self.region,
            prefix_list = %vouched.list_id,
            approval_id = Vouched::RECORD_ID,
            entries = %entries.join(", "),
            by = %vouched.by,
            cause,
            error = result.as_ref().err().map(ToString::to_string),
            "prefix list entries vouched for"
        );
        result
    }

    /// Writes a new approval (`sgwarden approve`), with one audit line. An approval with the
    /// same group and id is never replaced: the write is conditional on its absence.
    pub async fn put_approval(&self, approval: &Approval, function: &str) -> Result<(), AwsError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .condition_expression("attribute_not_exists(approval_id)")
            .item("group_id", AttributeValue::S(approval.group_id.clone()))
            .item(
                "approval_id",
                AttributeValue::S(approval.approval_id.clone()),
            )
            .item("rule", AttributeValue::S(approval.rule_text()))
            .item(
                "expires_at",
                AttributeValue::N(approval.expires_at.to_string()),
            );
        for (name, value) in [
            ("approved_by", &approval.approved_by),
            ("reason", &approval.reason),
        ] {
            if let Some(value) = value {
                request = request.item(name, AttributeValue::S(value.clone()));
            }
        }
        let result = request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("PutItem", &self.table, &self.region, e));
        self.audit(
            function,
            &approval.group_id,
            &approval.approval_id,
            "approval written",
            &result,
        );
        result
    }

    /// Deletes one approval or exemption record, with one audit line; `NotFound` when the
    /// table holds no item with that group and id.
    pub async fn delete(
        &self,
        group_id: &str,
        approval_id: &str,
        function: &str,
    ) -> Result<(), AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("group_id", AttributeValue::S(group_id.to_string()))
            .key("approval_id", AttributeValue::S(approval_id.to_string()))
            .condition_expression("attribute_exists(approval_id)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteItem", &self.table, &self.region, e))
            .map_err(|e| {
                if e.is_condition_failed() {
                    AwsError::NotFound {
                        what: "approval",
                        id: format!("{group_id} {approval_id}"),
                        region: self.region.clone(),
                    }
                } else {
                    e
                }
            });
        self.audit(function, group_id, approval_id, "approval deleted", &result);
        result
    }

    fn audit(
        &self,
        function: &str,
        group_id: &str,
        approval_id: &str,
        what: &str,
        result: &Result<(), AwsError>,
    ) {
        tracing::info!(
            target: sgwarden_core::AUDIT_TARGET,
            function,
            table = %self.table,
            region = %self.region,
            group = %group_id,
            approval_id = %approval_id,
            error = result.as_ref().err().map(ToString::to_string),
            "{what}"
        );
    }

    /// The grants among `items`; an item off the schema approves nothing and is logged.
    fn grants(&self, items: Vec<Item>) -> Grants {
        let mut grants = Grants::default();
        for item in &items {
            self.add_readable(item, &mut grants);
        }
        grants
    }

    fn add_readable(&self, item: &Item, grants: &mut Grants) {
        let read = match item.get("kind") {
            Some(AttributeValue::S(kind)) if kind == EXEMPTION => {
                exemption_from_item(item).map(|e| grants.exemptions.push(e))
            }
            Some(AttributeValue::S(kind)) if kind == PREFIX_LIST => {
                vouched_from_item(item).map(|v| grants.vouched.push(v))
            }
            Some(other) => Err(ParseError::new(
                "kind",
                format!("{other:?} is not \"{EXEMPTION}\" or \"{PREFIX_LIST}\""),
            )),
            None => approval_from_item(item).map(|a| grants.approvals.push(a)),
        };
        match read {
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(
                    table = %self.table,
                    region = %self.region,
                    group_id = item.get("group_id").and_then(|v| v.as_s().ok()).map(String::as_str),
                    approval_id = item.get("approval_id").and_then(|v| v.as_s().ok()).map(String::as_str),
                    error = %error,
                    "approval unreadable; it approves nothing"
                );
            }
        }
    }
}

/// The `kind` of an exemption record.
pub(crate) const EXEMPTION: &str = "exemption";

/// The `kind` of a prefix list's record of vouched entries.
pub(crate) const PREFIX_LIST: &str = "prefix-list";

/// Reads a prefix list's record of vouched entries; anything off the schema is refused.
pub(crate) fn vouched_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Vouched, ParseError> {
    let list_id = text(item, "group_id")?;
    if !list_id.starts_with("pl-") {
        return Err(ParseError::new(
            "group_id",
            format!("{list_id:?} is not a prefix list id"),
        ));
    }
    if text(item, "approval_id")? != Vouched::RECORD_ID {
        return Err(ParseError::new(
            "approval_id",
            format!("a prefix list's record is \"{}\"", Vouched::RECORD_ID),
        ));
    }
    let entries = match item.get("entries") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                AttributeValue::S(cidr) => Peer::cidr(cidr, &format!("entries[{i}]")),
                _ => Err(ParseError::new(format!("entries[{i}]"), "not a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ParseError::new("entries", "not a list")),
        None => return Err(ParseError::missing("entries")),
    };
    Ok(Vouched {
        list_id,
        entries,
        by: text(item, "approved_by")?,
        reason: text(item, "reason")?,
    })
}

/// Reads an exemption record; anything off the schema is refused.
pub(crate) fn exemption_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Exemption, ParseError> {
    let (direction, traffic, peer) = Approval::parse_rule(&text(item, "rule")?)?;
    let rule_id = optional_text(item, "rule_id")?;
    Ok(Exemption {
        group_id: text(item, "group_id")?,
        rule: sgwarden_core::Rule::new(direction, traffic, peer),
        rule_id,
        by: text(item, "approved_by")?,
        reason: text(item, "reason")?,
        made_at: optional_text(item, "made_at")?,
    })
}

/// Reads an approvals item; anything off the schema is refused.
pub(crate) fn approval_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Approval, ParseError> {
    let rule = text(item, "rule")?;
    let (direction, traffic, peer) = Approval::parse_rule(&rule)?;
    let expires_at = number(item, "expires_at")?;
    Ok(Approval {
        group_id: text(item, "group_id")?,
        approval_id: text(item, "approval_id")?,
        direction,
        traffic,
        peer,
        expires_at,
        approved_by: text(item, "approved_by").ok(),
        reason: text(item, "reason").ok(),
    })
}
