//! Auto Scaling: a group's instances, and lifecycle actions.
//!
//! Completing a lifecycle action is the one call asg-sync must make exactly once per action.
//! AWS answers a second completion (a Lambda retry, a duplicate event) with a
//! `ValidationError` "No active Lifecycle Action found" (and one for a group deleted since,
//! "AutoScalingGroup name not found"); that is reported as [`Completion::AlreadyCompleted`],
//! not as a failure, so a retried invocation never fails for having succeeded before, nor for
//! a group torn down.

use aws_config::SdkConfig;
use aws_sdk_autoscaling::Client;
use sgwarden_core::event::LifecycleAction;
use sgwarden_core::sync::Lifecycle;

use crate::error::AwsError;

/// The result sent with a lifecycle completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleResult {
    /// `CONTINUE`: the instance goes on launching or terminating.
    Continue,
    /// `ABANDON`: a launching instance is terminated; a terminating one terminates all the
    /// same, without waiting for the group's other lifecycle hooks.
    Abandon,
}

impl LifecycleResult {
    /// The value sent as `LifecycleActionResult`: `CONTINUE` or `ABANDON`.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleResult::Continue => "CONTINUE",
            LifecycleResult::Abandon => "ABANDON",
        }
    }
}

/// What a completion call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Auto Scaling accepted the completion.
    Completed,
    /// The action was no longer active: completed before, timed out, or its group or hook
    /// deleted.
    AlreadyCompleted,
}

/// One instance of an Auto Scaling group, as the group reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    /// The instance's id (`i-…`).
    pub instance_id: String,
    /// Whether it stays in the group or is leaving, read from its Auto Scaling lifecycle
    /// state.
    pub lifecycle: Lifecycle,
}

/// Auto Scaling in one region.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
    region: String,
}

impl AutoScaling {
    /// An Auto Scaling client in `config`'s region.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            region: crate::sdk::region_of(config),
        }
    }

    /// The instances of one group, in one `DescribeAutoScalingGroups` call.
    pub async fn group_instances(&self, asg_name: &str) -> Result<Vec<GroupInstance>, AwsError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(asg_name)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("DescribeAutoScalingGroups", asg_name, &self.region, e)
            })?;
        let group = out
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(asg_name))
            .ok_or_else(|| AwsError::NotFound {
                what: "Auto Scaling group",
                id: asg_name.to_string(),
                region: self.region.clone(),
            })?;
        Ok(group
            .instances()
            .iter()
            .filter_map(|i| {
                Some(GroupInstance {
                    instance_id: i.instance_id()?.to_string(),
                    lifecycle: Lifecycle::from_state(
                        i.lifecycle_state().map(|s| s.as_str()).unwrap_or_default(),
                    ),
                })
            })
            .collect())
    }

    /// Completes a lifecycle action, by token.
    pub async fn complete(
        &self,
        action: &LifecycleAction,
        result: LifecycleResult,
    ) -> Result<Completion, AwsError> {
        let outcome = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.asg_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .lifecycle_action_result(result.as_str())
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(Completion::Completed),
            Err(e) => {
                let err = AwsError::from_sdk(
                    "CompleteLifecycleAction",
                    &action.instance_id,
                    &self.region,
                    e,
                );
                // No longer active: completed before, timed out, or its group deleted.
                if err.is_gone() {
                    Ok(Completion::AlreadyCompleted)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Extends the hook's timeout while work goes on.
    pub async fn heartbeat(&self, action: &LifecycleAction) -> Result<(), AwsError> {
        self.client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.asg_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    "RecordLifecycleActionHeartbeat",
                    &action.instance_id,
                    &self.region,
                    e,
                )
            })?;
        Ok(())
    }
}
