//! The cluster registry in DynamoDB: one item per member (`<region>/<asg>`) of a cluster.
//!
//! Schema (SPEC): partition key `cluster` (S), sort key `member` (S); `region` (S), `asg` (S),
//! `addresses` (L of S), `updated_at` (S, RFC 3339), `seq` (N). Every write is conditioned on
//! `seq` growing, so an invocation that observed the group earlier than another can never
//! overwrite the newer state: its write is refused and reported as [`Write::Stale`].
//!
//! Beside the members, the same partition holds one *record* per security group of the
//! cluster in this table's region: sort key `#rules/<sg-id>` (a member's key starts with a
//! region name, which never holds `#`, so the two cannot collide), attributes `group_id` (S)
//! and `rule_ids` (SS): the `sgr-` ids of the rules asg-sync created there, its proof of
//! ownership (a rule description is a label anyone can edit). Ids are added and deleted with
//! `UpdateItem` set actions (`ADD` / `DELETE`), which DynamoDB applies atomically, so two
//! invocations recording at once both keep their ids. [`Registry::members`] leaves records
//! out; an asg-sync older than the records would refuse them as members off the schema, so
//! every region of a cluster is upgraded together.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sgwarden_core::sync::{Member, RecordChange};
use sgwarden_core::{ParseError, Recorded};

use crate::error::AwsError;
use crate::item::{all_items, number, text, Item};

/// The sort key of every record starts with this; no member's does.
pub(crate) const RECORD_PREFIX: &str = "#rules/";

/// The records of a table, by security group id.
pub type Records = BTreeMap<String, Recorded>;

/// What the registry holds for a cluster: its members and this region's records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// The cluster's members, each region's Auto Scaling group, as this table holds them.
    pub members: Vec<Member>,
    /// The `sgr-` ids asg-sync created in this region, by security group id.
    pub records: Records,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// The member was written: the table held no `seq` for it, or a smaller one.
    Written,
    /// The table already holds this member with a newer (or equal) `seq`.
    Stale,
}

/// One registry table in one region.
#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    table: String,
    region: String,
}

impl Registry {
    /// The table named `table` in `config`'s region. No AWS call is made here.
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_string(),
            region: crate::sdk::region_of(config),
        }
    }

    /// The table's region (`unknown` when the configuration names none), for logs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The table's name, for logs.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes `member` of `cluster` unless the table holds a newer `seq` for it.
    pub async fn put(&self, cluster: &str, member: &Member) -> Result<Write, AwsError> {
        let addresses = member
            .addresses
            .iter()
            .map(|a| AttributeValue::S(a.to_string()))
            .collect();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("cluster", AttributeValue::S(cluster.to_string()))
            .item("member", AttributeValue::S(member.member.clone()))
            .item("region", AttributeValue::S(member.region.clone()))
            .item("asg", AttributeValue::S(member.asg.clone()))
            .item("addresses", AttributeValue::L(addresses))
            .item("updated_at", AttributeValue::S(member.updated_at.clone()))
            .item("seq", AttributeValue::N(member.seq.to_string()))
            .condition_expression("attribute_not_exists(#seq) OR #seq < :seq")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":seq", AttributeValue::N(member.seq.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Write::Written),
            Err(e) => {
                let err = AwsError::from_sdk("PutItem", &self.table, &self.region, e);
                if err.is_condition_failed() {
                    Ok(Write::Stale)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Removes `member` of `cluster` (a `DeleteItem`; already gone is success).
    pub async fn remove(&self, cluster: &str, member: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("cluster", AttributeValue::S(cluster.to_string()))
            .key("member", AttributeValue::S(member.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("DeleteItem", &self.table, &self.region, e))
    }

    /// Every member of `cluster` (records left out), with a consistent read, all pages.
    pub async fn members(&self, cluster: &str) -> Result<Vec<Member>, AwsError> {
        Ok(self.cluster(cluster).await?.members)
    }

    /// Every member of `cluster` and every record of this region, in one consistent
    /// `Query`, all pages.
    pub async fn cluster(&self, cluster: &str) -> Result<Cluster, AwsError> {
        let mut found = Cluster::default();
        for item in self.query(cluster, None).await? {
            if is_record(&item) {
                let (group_id, recorded) = self.readable(record_from_item(&item))?;
                found.records.insert(group_id, recorded);
            } else {
                found.members.push(self.readable(member_from_item(&item))?);
            }
        }
        Ok(found)
    }

    /// This region's records of `cluster` only (a peer's table: its members are not needed).
    pub async fn records(&self, cluster: &str) -> Result<Records, AwsError> {
        self.query(cluster, Some(RECORD_PREFIX))
            .await?
            .iter()
            .map(|item| self.readable(record_from_item(item)))
            .collect()
    }

    /// Applies `change` to the record of `group_id`: ids added, then ids deleted, each one
    /// atomic set update (DynamoDB refuses both actions on one attribute in one update).
    pub async fn record(
        &self,
        cluster: &str,
        group_id: &str,
        change: &RecordChange,
    ) -> Result<(), AwsError> {
        for (action, ids) in [("ADD", &change.add), ("DELETE", &change.remove)] {
            if ids.is_empty() {
                continue;
            }
            self.client
                .update_item()
                .table_name(&self.table)
                .key("cluster", AttributeValue::S(cluster.to_string()))
                .key(
                    "member",
                    AttributeValue::S(format!("{RECORD_PREFIX}{group_id}")),
                )
                .update_expression(format!("SET #group = :group {action} #ids :ids"))
                .expression_attribute_names("#group", "group_id")
                .expression_attribute_names("#ids", "rule_ids")
                .expression_attribute_values(":group", AttributeValue::S(group_id.to_string()))
                .expression_attribute_values(
                    ":ids",
                    AttributeValue::Ss(ids.iter().cloned().collect()),
                )
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("UpdateItem", &self.table, &self.region, e))?;
        }
        Ok(())
    }

    async fn query(&self, cluster: &str, prefix: Option<&str>) -> Result<Vec<Item>, AwsError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_names("#cluster", "cluster")
            .expression_attribute_values(":cluster", AttributeValue::S(cluster.to_string()));
        request = match prefix {
            Some(prefix) => request
                .key_condition_expression("#cluster = :cluster AND begins_with(#member, :prefix)")
                .expression_attribute_names("#member", "member")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_string())),
            None => request.key_condition_expression("#cluster = :cluster"),
        };
        let pages = request.into_paginator().items().send();
        all_items(pages, "Query", &self.table, &self.region).await
    }

    fn readable<T>(&self, read: Result<T, ParseError>) -> Result<T, AwsError> {
        read.map_err(|source| AwsError::Unreadable {
            operation: "Query",
            resource: self.table.clone(),
            region: self.region.clone(),
            source,
        })
    }
}

fn is_record(item: &Item) -> bool {
    matches!(item.get("member"), Some(AttributeValue::S(key)) if key.starts_with(RECORD_PREFIX))
}

/// Reads a record: its group id and the rule ids it holds (none once every id was deleted:
/// DynamoDB drops an emptied set).
pub(crate) fn record_from_item(item: &Item) -> Result<(String, Recorded), ParseError> {
    let group_id = text(item, "group_id")?;
    let ids = match item.get("rule_ids") {
        Some(AttributeValue::Ss(ids)) => ids.clone(),
        None => Vec::new(),
        Some(_) => return Err(ParseError::new("rule_ids", "not a string set")),
    };
    Ok((group_id, Recorded::new(ids)))
}

/// Reads a registry item; an item that does not follow the schema is refused, not guessed.
pub(crate) fn member_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<Member, ParseError> {
    let member = text(item, "member")?;
    let seq = number(item, "seq")?;
    let addresses = match item.get("addresses") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                AttributeValue::S(s) => s.parse::<IpAddr>().map_err(|_| {
                    ParseError::new(
                        format!("addresses[{i}]"),
                        format!("{s:?} is not an IP address"),
                    )
                }),
                _ => Err(ParseError::new(format!("addresses[{i}]"), "not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(_) => return Err(ParseError::new("addresses", "not a list")),
    };
    Ok(Member {
        region: text(item, "region")?,
        asg: text(item, "asg")?,
        updated_at: text(item, "updated_at").unwrap_or_default(),
        member,
        addresses,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_string())
    }

    #[test]
    fn a_record_is_told_from_a_member_by_its_key_and_read_for_its_ids() {
        let record = Item::from([
            ("cluster".to_string(), s("ring")),
            ("member".to_string(), s("#rules/sg-1")),
            ("group_id".to_string(), s("sg-1")),
            (
                "rule_ids".to_string(),
                AttributeValue::Ss(vec!["sgr-1".into(), "sgr-2".into()]),
            ),
        ]);
        assert!(is_record(&record));
        let (group, ids) = record_from_item(&record).unwrap();
        assert_eq!(group, "sg-1");
        assert_eq!(
            ids,
            Recorded::new(["sgr-1".to_string(), "sgr-2".to_string()])
        );
        // Every id deleted: DynamoDB drops the set, the record is empty.
        let mut emptied = record.clone();
        emptied.remove("rule_ids");
        assert_eq!(record_from_item(&emptied).unwrap().1, Recorded::default());
        emptied.insert("rule_ids".into(), s("sgr-1"));
        assert_eq!(record_from_item(&emptied).unwrap_err().field, "rule_ids");
        let member = Item::from([("member".to_string(), s("us-east-1/ring"))]);
        assert!(!is_record(&member));
    }
}
