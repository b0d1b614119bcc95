//! Auto Scaling and schedule events: what asg-sync (and revert-ingress's sweep) start from.
//!
//! Lifecycle actions carry the token the function must complete before the hook times out,
//! so their fields are required; `... Successful` events come from groups without hooks and
//! carry nothing to complete. The detail-type and the `LifecycleTransition` must agree: an
//! event that says "launch" in one place and "terminate" in the other is refused.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{from_value, ParseError};

pub(crate) const LAUNCH_LIFECYCLE: &str = "EC2 Instance-launch Lifecycle Action";
pub(crate) const TERMINATE_LIFECYCLE: &str = "EC2 Instance-terminate Lifecycle Action";
pub(crate) const LAUNCH_SUCCESSFUL: &str = "EC2 Instance Launch Successful";
pub(crate) const TERMINATE_SUCCESSFUL: &str = "EC2 Instance Terminate Successful";
pub(crate) const SCHEDULED: &str = "Scheduled Event";

/// Whether an instance is coming or going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleTransition {
    /// Coming in: `autoscaling:EC2_INSTANCE_LAUNCHING`, or `EC2 Instance Launch Successful`.
    Launching,
    /// Going: `autoscaling:EC2_INSTANCE_TERMINATING`, or `EC2 Instance Terminate Successful`.
    Terminating,
}

/// An Auto Scaling lifecycle hook firing: the instance waits in `Pending:Wait` or
/// `Terminating:Wait` until the action is completed (or the hook times out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleAction {
    /// Launch or terminate, from `detail.LifecycleTransition` (which must match the
    /// detail-type).
    pub transition: LifecycleTransition,
    /// The Auto Scaling group's name (`detail.AutoScalingGroupName`); never empty.
    pub asg_name: String,
    /// The lifecycle hook's name (`detail.LifecycleHookName`), needed to complete the action.
    pub hook_name: String,
    /// `detail.LifecycleActionToken`: what completing the action names; never empty.
    pub token: String,
    /// The waiting instance (`detail.EC2InstanceId`, `i-…`); never empty.
    pub instance_id: String,
    /// The envelope's `region`, when present.
    pub region: Option<String>,
    /// The envelope's `account`: the account the group is in, when present.
    pub account: Option<String>,
    /// The envelope's `time`, as RFC 3339, when present.
    pub time: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LifecycleDetail {
    lifecycle_action_token: String,
    auto_scaling_group_name: String,
    lifecycle_hook_name: String,
    #[serde(rename = "EC2InstanceId")]
    ec2_instance_id: String,
    lifecycle_transition: String,
}

pub(crate) fn parse_lifecycle(event: &Value) -> Result<LifecycleAction, ParseError> {
    let envelope: EventBridgeEvent<LifecycleDetail> = from_value(event)?;
    let detail = &envelope.detail;
    let transition = match detail.lifecycle_transition.as_str() {
        "autoscaling:EC2_INSTANCE_LAUNCHING" => LifecycleTransition::Launching,
        "autoscaling:EC2_INSTANCE_TERMINATING" => LifecycleTransition::Terminating,
        other => {
            return Err(ParseError::new(
                "detail.LifecycleTransition",
                format!("unknown transition {other:?}"),
            ))
        }
    };
    let expected = match transition {
        LifecycleTransition::Launching => LAUNCH_LIFECYCLE,
        LifecycleTransition::Terminating => TERMINATE_LIFECYCLE,
    };
    if envelope.detail_type != expected {
        return Err(ParseError::new(
            "detail.LifecycleTransition",
            format!(
                "{:?} does not match detail-type {:?}",
                detail.lifecycle_transition, envelope.detail_type
            ),
        ));
    }
    for (field, value) in [
        (
            "detail.AutoScalingGroupName",
            &detail.auto_scaling_group_name,
        ),
        ("detail.EC2InstanceId", &detail.ec2_instance_id),
        (
            "detail.LifecycleActionToken",
            &detail.lifecycle_action_token,
        ),
    ] {
        if value.trim().is_empty() {
            return Err(ParseError::new(field, "empty"));
        }
    }
    Ok(LifecycleAction {
        transition,
        asg_name: envelope.detail.auto_scaling_group_name,
        hook_name: envelope.detail.lifecycle_hook_name,
        token: envelope.detail.lifecycle_action_token,
        instance_id: envelope.detail.ec2_instance_id,
        region: envelope.region,
        account: envelope.account,
        time: envelope.time.map(|t| t.to_rfc3339()),
    })
}

/// An instance launched into, or terminated out of, a group that has no lifecycle hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceChange {
    /// `Launching` for `EC2 Instance Launch Successful`, `Terminating` for `… Terminate
    /// Successful`.
    pub transition: LifecycleTransition,
    /// The Auto Scaling group's name (`detail.AutoScalingGroupName`); never empty.
    pub asg_name: String,
    /// The instance (`detail.EC2InstanceId`, `i-…`), as the event gives it; not checked for
    /// being empty.
    pub instance_id: String,
    /// The envelope's `region`, when present.
    pub region: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceChangeDetail {
    auto_scaling_group_name: String,
    #[serde(rename = "EC2InstanceId")]
    ec2_instance_id: String,
}

pub(crate) fn parse_instance_change(event: &Value) -> Result<InstanceChange, ParseError> {
    let envelope: EventBridgeEvent<InstanceChangeDetail> = from_value(event)?;
    let transition = if envelope.detail_type == LAUNCH_SUCCESSFUL {
        LifecycleTransition::Launching
    } else {
        LifecycleTransition::Terminating
    };
    if envelope.detail.auto_scaling_group_name.trim().is_empty() {
        return Err(ParseError::new("detail.AutoScalingGroupName", "empty"));
    }
    Ok(InstanceChange {
        transition,
        asg_name: envelope.detail.auto_scaling_group_name,
        instance_id: envelope.detail.ec2_instance_id,
        region: envelope.region,
    })
}

/// An EventBridge schedule firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The schedule rule's ARN, from `resources`.
    pub rule_arn: Option<String>,
    /// The envelope's `time`, as RFC 3339, when present.
    pub time: Option<String>,
    /// The envelope's `region`, when present.
    pub region: Option<String>,
}

pub(crate) fn parse_scheduled(event: &Value) -> Result<Scheduled, ParseError> {
    let envelope: EventBridgeEvent<Value> = from_value(event)?;
    if envelope.source != "aws.events" {
        return Err(ParseError::new(
            "source",
            format!(
                "a Scheduled Event comes from aws.events, not {:?}",
                envelope.source
            ),
        ));
    }
    Ok(Scheduled {
        rule_arn: envelope.resources.and_then(|r| r.into_iter().next()),
        time: envelope.time.map(|t| t.to_rfc3339()),
        region: envelope.region,
    })
}

/// The seed's manual true-up: re-sync one Auto Scaling group now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrueUp {
    /// The Auto Scaling group to re-sync (`detail.AutoScalingGroupName`); never empty.
    pub asg_name: String,
}

#[derive(Deserialize)]
struct TrueUpEvent {
    detail: TrueUpDetail,
}

#[derive(Deserialize)]
struct TrueUpDetail {
    #[serde(rename = "AutoScalingGroupName")]
    asg_name: String,
}

pub(crate) fn parse_true_up(event: &Value) -> Result<TrueUp, ParseError> {
    let parsed: TrueUpEvent = from_value(event)?;
    if parsed.detail.asg_name.trim().is_empty() {
        return Err(ParseError::new("detail.AutoScalingGroupName", "empty"));
    }
    Ok(TrueUp {
        asg_name: parsed.detail.asg_name,
    })
}

/// The event an EventBridge schedule sends (`Scheduled Event`): what the CLI hands a
/// function to ask for a true-up or a sweep, as the schedule would.
pub fn scheduled_event(region: &str, time: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "sgwarden-schedule", "detail-type": SCHEDULED,
        "source": "aws.events", "account": "", "time": time, "region": region,
        "resources": [], "detail": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Trigger;
    use serde_json::json;

    fn lifecycle(detail_type: &str, transition: &str) -> Value {
        json!({
            "version": "0", "id": "cb930cf8-ce8b-4b6c-8011-af17966eb7e2",
            "detail-type": detail_type, "source": "aws.autoscaling",
            "account": "123456789012", "time": "2017-05-03T02:20:59Z", "region": "us-east-1",
            "resources": [],
            "detail": {
                "LifecycleHookName": "hook-launching", "AutoScalingGroupName": "db",
                "LifecycleActionToken": "33965228-086a-4aeb-8c26-f82ed3bef495",
                "LifecycleTransition": transition, "EC2InstanceId": "i-017425ec54f22f994"
            }
        })
    }

    #[test]
    fn lifecycle_actions_parse() {
        let Trigger::Lifecycle(action) = Trigger::parse(&lifecycle(
            LAUNCH_LIFECYCLE,
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        ))
        .unwrap() else {
            panic!("not a lifecycle action")
        };
        assert_eq!(action.transition, LifecycleTransition::Launching);
        assert_eq!(action.asg_name, "db");
        assert_eq!(action.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn launch_and_terminate_successful_say_which_way_the_instance_goes() {
        for (detail_type, transition) in [
            (LAUNCH_SUCCESSFUL, LifecycleTransition::Launching),
            (TERMINATE_SUCCESSFUL, LifecycleTransition::Terminating),
        ] {
            let event = json!({
                "version": "0", "id": "e", "detail-type": detail_type,
                "source": "aws.autoscaling", "account": "123456789012",
                "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"AutoScalingGroupName": "db", "EC2InstanceId": "i-1"}
            });
            let Trigger::InstanceChange(change) = Trigger::parse(&event).unwrap() else {
                panic!("not an instance change: {detail_type}")
            };
            assert_eq!(change.transition, transition, "{detail_type}");
        }
    }

    #[test]
    fn the_schedule_the_cli_sends_reads_as_a_schedule() {
        let event = scheduled_event("eu-west-1", "2026-01-01T00:00:00Z");
        assert!(matches!(Trigger::parse(&event), Ok(Trigger::Scheduled(_))));
        assert_eq!(event["region"], "eu-west-1");
    }

    #[test]
    fn contradicting_transition_is_refused() {
        let e = Trigger::parse(&lifecycle(
            TERMINATE_LIFECYCLE,
            "autoscaling:EC2_INSTANCE_LAUNCHING",
        ))
        .unwrap_err();
        assert_eq!(e.field, "detail.LifecycleTransition");
    }

    #[test]
    fn missing_token_names_the_field() {
        let mut event = lifecycle(LAUNCH_LIFECYCLE, "autoscaling:EC2_INSTANCE_LAUNCHING");
        event["detail"]
            .as_object_mut()
            .unwrap()
            .remove("LifecycleActionToken");
        let e = Trigger::parse(&event).unwrap_err();
        assert_eq!(e.to_string(), "detail.LifecycleActionToken: missing");
    }

    #[test]
    fn true_up_needs_a_group_name() {
        let ok = json!({"detail": {"AutoScalingGroupName": "db"}, "trueup": true});
        assert!(matches!(Trigger::parse(&ok), Ok(Trigger::TrueUp(t)) if t.asg_name == "db"));
        let e = Trigger::parse(&json!({"detail": {"AutoScalingGroupName": " "}, "trueup": true}))
            .unwrap_err();
        assert_eq!(e.field, "detail.AutoScalingGroupName");
    }

    #[test]
    fn schedules_come_from_aws_events() {
        let e = Trigger::parse(
            &json!({"detail-type": "Scheduled Event", "source": "me", "detail": {}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "source");
    }
}
