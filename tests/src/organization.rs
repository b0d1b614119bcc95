//! The emulated organisation that the central tests, the fanned-out sweep's tests and its
//! bench share: the member role's name, the function's role, the policy every account-region
//! is swept with, and the two rules each protected group holds, read back as text.

use aws_sdk_ec2::Client;

use crate::cloudtrail;

/// The role the central function assumes in each member account.
pub const MEMBER_ROLE: &str = "sgwarden-member";
/// The function's own role, as the template sets `SGWARDEN_FUNCTION_ROLE_ARN`.
pub const FUNCTION_ROLE: &str = crate::revert_world::FUNCTION_ROLE;
/// Keeps https from the private range on the protected groups; everything else there goes.
pub const POLICY: &str = r#"{"scope": {"tag": {"key": "Protected", "value": "true"}},
    "allow": [{"protocol": "tcp", "ports": "443", "sources": ["10.0.0.0/8"]}],
    "directions": ["ingress"]}"#;
/// The rule the policy permits, and the one opened by hand that it does not, as
/// [`ingress_rules`] writes them.
pub const PERMITTED: &str = "tcp/443 10.0.0.0/8";
pub const VIOLATING: &str = "tcp/22 0.0.0.0/0";

/// A group's ingress rules as EC2 holds them now, `tcp/<port> <cidr>` each, sorted.
pub async fn ingress_rules(ec2: &Client, group_id: &str) -> Vec<String> {
    let mut lines: Vec<String> = cloudtrail::rules(ec2, group_id)
        .await
        .iter()
        .filter(|r| !r["isEgress"].as_bool().unwrap_or(false))
        .map(|r| {
            format!(
                "tcp/{} {}",
                r["fromPort"],
                r["cidrIpv4"].as_str().unwrap_or_default()
            )
        })
        .collect();
    lines.sort();
    lines
}
