//! Typed parsing of every trigger sgwarden answers.
//!
//! A Lambda receives untyped JSON. [`Trigger::parse`] decides what it is from the envelope
//! (`detail-type`, an SNS `Records` list, the manual true-up flag) and parses the rest into
//! the typed events of [`asg`], [`cloudtrail`] and [`config`]. It never guesses: anything it
//! does not recognise, or a recognised event with a field it cannot read, is a [`ParseError`]
//! naming the field, so a function fails closed before it reads or writes anything. Whether a
//! well-formed event is in scope for a function (a failed call, an untagged group) is the
//! function's decision, not the parser's.

pub mod asg;
pub mod cloudtrail;
pub mod config;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{from_value, ParseError};

pub use asg::{InstanceChange, LifecycleAction, LifecycleTransition, Scheduled, TrueUp};
pub use cloudtrail::{
    ApiCall, CallOutcome, GroupSelector, ModifiedRule, Principal, RemovalCall, RuleChange,
};
pub use config::{
    ChangeType, ConfigMessage, ConfigurationItem, ItemChange, OversizedItem, SecurityGroupDiff,
};

/// Every event sgwarden's functions are triggered by.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// `EC2 Instance-launch Lifecycle Action` / `EC2 Instance-terminate Lifecycle Action`.
    Lifecycle(LifecycleAction),
    /// `EC2 Instance Launch Successful` / `EC2 Instance Terminate Successful`.
    InstanceChange(InstanceChange),
    /// An EventBridge schedule: asg-sync's true-up, revert-ingress's sweep.
    Scheduled(Scheduled),
    /// The manual true-up `{"detail": {"AutoScalingGroupName": "..."}, "trueup": true}`.
    TrueUp(TrueUp),
    /// `AWS API Call via CloudTrail` from `aws.ec2`.
    ApiCall(Box<ApiCall>),
    /// AWS Config messages: an SNS delivery (one per record) or one EventBridge
    /// `Config Configuration Item Change`.
    Config(Vec<ConfigMessage>),
}

impl Trigger {
    /// Parses any trigger. See the module documentation for what is refused.
    pub fn parse(event: &Value) -> Result<Self, ParseError> {
        let Some(object) = event.as_object() else {
            return Err(ParseError::new(
                "",
                format!(
                    "an event is a JSON object, found {}",
                    crate::wire::kind_of(event)
                ),
            ));
        };
        if object.contains_key("Records") {
            return config::parse_sns(event).map(Trigger::Config);
        }
        if let Some(flag) = object.get("trueup") {
            return match flag {
                Value::Bool(true) => asg::parse_true_up(event).map(Trigger::TrueUp),
                _ => Err(ParseError::new("trueup", "must be true when present")),
            };
        }
        let envelope: Envelope = from_value(event)?;
        match envelope.detail_type.as_str() {
            asg::LAUNCH_LIFECYCLE | asg::TERMINATE_LIFECYCLE => {
                asg::parse_lifecycle(event).map(Trigger::Lifecycle)
            }
            asg::LAUNCH_SUCCESSFUL | asg::TERMINATE_SUCCESSFUL => {
                asg::parse_instance_change(event).map(Trigger::InstanceChange)
            }
            asg::SCHEDULED => asg::parse_scheduled(event).map(Trigger::Scheduled),
            config::EVENTBRIDGE_ITEM_CHANGE => {
                config::parse_eventbridge(event).map(|message| Trigger::Config(vec![message]))
            }
            cloudtrail::API_CALL => {
                cloudtrail::parse(event).map(|call| Trigger::ApiCall(Box::new(call)))
            }
            other => Err(ParseError::new(
                "detail-type",
                format!("{other:?} is not an event sgwarden handles"),
            )),
        }
    }

    /// A short name for logs: what kind of trigger this was.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Lifecycle(_) => "lifecycle-action",
            Trigger::InstanceChange(_) => "instance-change",
            Trigger::Scheduled(_) => "scheduled",
            Trigger::TrueUp(_) => "true-up",
            Trigger::ApiCall(_) => "api-call",
            Trigger::Config(_) => "config",
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn unknown_events_name_what_was_wrong() {
        assert_eq!(Trigger::parse(&json!([])).unwrap_err().field, "");
        assert_eq!(Trigger::parse(&json!({})).unwrap_err().field, "detail-type");
        let e =
            Trigger::parse(&json!({"detail-type": "Something Else", "detail": {}})).unwrap_err();
        assert_eq!(e.field, "detail-type");
        assert_eq!(
            Trigger::parse(&json!({"trueup": "yes"})).unwrap_err().field,
            "trueup"
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "",
                "tcp",
                "-1",
                "sg-1",
                "10.0.0.0/8",
                "::/0",
                "items",
                "true",
                "EC2 Instance-launch Lifecycle Action",
                "AWS API Call via CloudTrail",
                "Scheduled Event",
                "ConfigurationItemChangeNotification",
                "OversizedConfigurationItemChangeNotification",
                "AWS::EC2::SecurityGroup",
            ])
            .prop_map(|s| Value::String(s.to_string())),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            let key = prop::sample::select(vec![
                "detail-type",
                "detail",
                "Records",
                "Sns",
                "Message",
                "trueup",
                "items",
                "requestParameters",
                "responseElements",
                "ipPermissions",
                "groupId",
                "ipProtocol",
                "fromPort",
                "toPort",
                "ipRanges",
                "cidrIp",
                "errorCode",
                "eventName",
                "userIdentity",
                "configurationItem",
                "configuration",
                "messageType",
                "AutoScalingGroupName",
                "EC2InstanceId",
                "LifecycleActionToken",
                "securityGroupRuleSet",
                "configurationItemDiff",
                "changedProperties",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        /// No JSON makes a parser panic: it is a trigger or a ParseError.
        #[test]
        fn no_input_panics(value in arb_json()) {
            let _ = Trigger::parse(&value);
            let _ = config::parse_message(&value);
            let _ = cloudtrail::parse(&value);
            let _ = from_value::<crate::wire::Permissions>(&value);
            let _ = from_value::<crate::wire::SecurityGroupRule>(&value);
            let _ = config::parse_message_text(&value.to_string());
        }

        /// Every recognised shape with a random detail still never panics.
        #[test]
        fn random_details_never_panic(
            kind in prop::sample::select(vec![
                asg::LAUNCH_LIFECYCLE, asg::TERMINATE_LIFECYCLE, asg::LAUNCH_SUCCESSFUL,
                asg::TERMINATE_SUCCESSFUL, asg::SCHEDULED, cloudtrail::API_CALL,
            ]),
            detail in arb_json(),
        ) {
            let _ = Trigger::parse(&json!({"detail-type": kind, "source": "aws.ec2", "detail": detail}));
            let _ = Trigger::parse(&json!({"Records": [{"Sns": {"Message": detail.to_string()}}]}));
        }
    }
}
