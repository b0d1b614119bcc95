//! Reading DynamoDB items attribute by attribute, for every table sgwarden keeps.
//!
//! An item is written by sgwarden or by a person (an approval put by hand), so each value is
//! read for the type the schema says and refused, naming the attribute, when it is not:
//! nothing is guessed from an item off the schema.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use sgwarden_core::ParseError;

use crate::error::AwsError;

/// One item of a table.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Every item of a paginated `Query` or `Scan` (`into_paginator().items().send()`), in order;
/// the first page that fails fails the read, naming `operation` on `table`.
pub(crate) async fn all_items<E>(
    mut pages: PaginationStream<Result<Item, SdkError<E, HttpResponse>>>,
    operation: &'static str,
    table: &str,
    region: &str,
) -> Result<Vec<Item>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut items = Vec::new();
    while let Some(item) = pages.next().await {
        items.push(item.map_err(|e| AwsError::from_sdk(operation, table, region, e))?);
    }
    Ok(items)
}

/// A string attribute.
pub(crate) fn text(
    item: &HashMap<String, AttributeValue>,
    key: &str,
) -> Result<String, ParseError> {
    match item.get(key) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        Some(_) => Err(ParseError::new(key, "not a string")),
        None => Err(ParseError::missing(key)),
    }
}

/// A string attribute that may be absent; present, it must be a string.
pub(crate) fn optional_text(
    item: &HashMap<String, AttributeValue>,
    key: &str,
) -> Result<Option<String>, ParseError> {
    match item.get(key) {
        None => Ok(None),
        Some(_) => text(item, key).map(Some),
    }
}

/// A whole, non-negative number attribute (epoch seconds, a sequence number).
pub(crate) fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Result<u64, ParseError> {
    match item.get(key) {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|_| ParseError::new(key, format!("{n:?} is not a whole number"))),
        Some(_) => Err(ParseError::new(key, "not a number")),
        None => Err(ParseError::missing(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attribute_is_read_for_its_type_or_refused_by_name() {
        let item = HashMap::from([
            ("s".to_string(), AttributeValue::S("x".into())),
            ("n".to_string(), AttributeValue::N("42".into())),
            ("neg".to_string(), AttributeValue::N("-1".into())),
        ]);
        assert_eq!(text(&item, "s").unwrap(), "x");
        assert_eq!(number(&item, "n").unwrap(), 42);
        assert_eq!(text(&item, "n").unwrap_err().field, "n");
        assert_eq!(number(&item, "s").unwrap_err().field, "s");
        assert_eq!(number(&item, "neg").unwrap_err().field, "neg");
        assert_eq!(text(&item, "absent").unwrap_err().field, "absent");
    }
}
