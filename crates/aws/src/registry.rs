//! The cluster registry in DynamoDB: one item per member (`<region>/<asg>`) of a cluster.
//!
//! Schema (SPEC): partition key `cluster` (S), sort key `member` (S); `region` (S), `asg` (S),
//! `addresses` (L of S), `updated_at` (S, RFC 3339), `seq` (N). Every write is conditioned on
//! `seq` growing, so an invocation that observed the group earlier than another can never
//! overwrite the newer state: its write is refused and reported as [`Write::Stale`].

use std::collections::HashMap;
use std::net::IpAddr;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use sgwarden_core::sync::Member;
use sgwarden_core::ParseError;

use crate::error::AwsError;
use crate::item::{all_items, number, text};

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
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
    pub fn new(config: &SdkConfig, table: &str) -> Self {
        Self {
            client: Client::new(config),
            table: table.to_string(),
            region: crate::sdk::region_of(config),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

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

    /// Every member of `cluster`, with a consistent read, all pages.
    pub async fn members(&self, cluster: &str) -> Result<Vec<Member>, AwsError> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("#cluster = :cluster")
            .expression_attribute_names("#cluster", "cluster")
            .expression_attribute_values(":cluster", AttributeValue::S(cluster.to_string()))
            .into_paginator()
            .items()
            .send();
        all_items(pages, "Query", &self.table, &self.region)
            .await?
            .iter()
            .map(|item| {
                member_from_item(item).map_err(|source| AwsError::Unreadable {
                    operation: "Query",
                    resource: self.table.clone(),
                    region: self.region.clone(),
                    source,
                })
            })
            .collect()
    }
}

/// Reads a registry item; an item that does not follow the schema is refused, not guessed.
pub fn member_from_item(item: &HashMap<String, AttributeValue>) -> Result<Member, ParseError> {
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
