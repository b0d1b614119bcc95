//! Outcomes written as sentences: in the code they are enums (tests match their variants),
//! in reports and logs they are the sentence their `Display` gives, so the JSON a report
//! carries stays what operators and alarms have always read.

use std::fmt::Display;

use serde::Serializer;

/// Serialises `value` as its `Display` text (`#[serde(serialize_with = "…as_text")]`).
pub fn as_text<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Serialises `value` as its `Display` text, or `null` when absent.
pub fn as_optional_text<T: Display, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Report {
        #[serde(serialize_with = "as_text")]
        reason: std::net::Ipv4Addr,
        #[serde(serialize_with = "as_optional_text")]
        skipped: Option<std::net::Ipv4Addr>,
        #[serde(serialize_with = "as_optional_text")]
        absent: Option<std::net::Ipv4Addr>,
    }

    #[test]
    fn an_outcome_is_written_as_its_sentence() {
        let report = Report {
            reason: [10, 0, 0, 1].into(),
            skipped: Some([10, 0, 0, 2].into()),
            absent: None,
        };
        assert_eq!(
            serde_json::to_value(report).unwrap(),
            serde_json::json!({"reason": "10.0.0.1", "skipped": "10.0.0.2", "absent": null})
        );
    }
}
