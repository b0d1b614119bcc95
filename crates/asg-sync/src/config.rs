//! asg-sync's settings, parsed once at cold start from the environment (SPEC "asg-sync").
//!
//! A missing or malformed variable is an error naming the variable; the function does not
//! start with a guess. Beyond SPEC: `SYNC_RULE_QUOTA` (rules per address family and direction
//! a group may hold, default 60, EC2's default quota), `SYNC_HEARTBEAT_SECONDS` (how often
//! a lifecycle heartbeat is sent while a sync is still running, default 60), and the two roles
//! the heal tells apart (the guide's asg-sync chapter, "Healing"): `SGWARDEN_FUNCTION_ROLE_ARN`
//! (asg-sync's own, whose revokes are not healed) and `SYNC_REVERT_ROLE_ARNS` (revert-ingress's,
//! whose revokes of cluster rules are a conflict to report, not to undo).

use std::collections::BTreeSet;
use std::time::Duration;

use sgwarden_aws::autoscaling::LifecycleResult;
use sgwarden_core::rule::Traffic;
pub use sgwarden_core::settings::ConfigError;
use sgwarden_core::settings::{
    bad, comma_list, flag, is_group_id, optional, required, role_arn, role_arns, topic_arn,
};
use sgwarden_core::sync::{parse_ports, AddressKind};
use sgwarden_core::Owner;

/// The longest interval between lifecycle heartbeats `SYNC_HEARTBEAT_SECONDS` accepts.
pub const MAX_HEARTBEAT_SECONDS: u64 = 3_600;

/// A security group of the cluster in another region, and the registry table there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGroup {
    pub region: String,
    pub group_id: String,
    pub table: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncConfig {
    /// `CHAT_TOPIC_ARN`: chat messages in the custom notification schema (optional).
    pub chat_topic_arn: Option<String>,
    pub cluster: Owner,
    /// This region's Auto Scaling groups of the cluster: the only ones asg-sync acts for.
    pub auto_scaling_groups: BTreeSet<String>,
    pub table: String,
    pub security_group_ids: Vec<String>,
    pub peers: Vec<PeerGroup>,
    pub ports: Vec<Traffic>,
    pub address: AddressKind,
    pub on_failure: LifecycleResult,
    pub dry_run: bool,
    pub rule_quota: usize,
    pub heartbeat_every: Duration,
    /// `SGWARDEN_FUNCTION_ROLE_ARN`: asg-sync's own role. Its revokes (a node leaving) are
    /// not healed. Unset: every revoke is healed, its own ones finding nothing to restore.
    pub function_role_arn: Option<String>,
    /// `SYNC_REVERT_ROLE_ARNS`: the roles revert-ingress acts as on these groups (its function
    /// role, or the member role it assumes here). A cluster rule they revoked is not restored.
    pub revert_role_arns: Vec<String>,
}

impl SyncConfig {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment in production, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cluster = Owner::new(&required(&get, "SYNC_CLUSTER")?)
            .map_err(|e| bad("SYNC_CLUSTER", e.reason))?;
        let table = required(&get, "SYNC_TABLE")?;
        Ok(Self {
            chat_topic_arn: topic_arn(&get, "CHAT_TOPIC_ARN")?,
            cluster,
            auto_scaling_groups: auto_scaling_groups(&get)?,
            security_group_ids: security_group_ids(&get)?,
            peers: peers(&get, &table)?,
            table,
            ports: parse_ports(&get("SYNC_PORTS").unwrap_or_else(|| "all".to_string()))
                .map_err(|e| bad("SYNC_PORTS", e.reason))?,
            address: address(&get)?,
            on_failure: on_failure(&get)?,
            dry_run: flag("SYNC_DRY_RUN", get("SYNC_DRY_RUN"))?,
            // EC2's largest rules-per-group quota is 1,000.
            rule_quota: usize::try_from(whole_number(&get, "SYNC_RULE_QUOTA", 60, 1_000)?)
                .map_err(|_| bad("SYNC_RULE_QUOTA", "too large"))?,
            // A lifecycle hook's heartbeat timeout is at most 7,200 s: a heartbeat every hour
            // at the most keeps any hook alive, and bounds the timer's arithmetic.
            heartbeat_every: Duration::from_secs(whole_number(
                &get,
                "SYNC_HEARTBEAT_SECONDS",
                60,
                MAX_HEARTBEAT_SECONDS,
            )?),
            function_role_arn: role_arn(&get, "SGWARDEN_FUNCTION_ROLE_ARN")?,
            revert_role_arns: role_arns(&get, "SYNC_REVERT_ROLE_ARNS")?,
        })
    }
}

/// `SYNC_AUTO_SCALING_GROUPS`: at least one name, each a possible Auto Scaling group name.
fn auto_scaling_groups(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<BTreeSet<String>, ConfigError> {
    let names: BTreeSet<String> = comma_list(&required(get, "SYNC_AUTO_SCALING_GROUPS")?).collect();
    if names.is_empty() {
        return Err(bad(
            "SYNC_AUTO_SCALING_GROUPS",
            "names no Auto Scaling group",
        ));
    }
    if let Some(wrong) = names
        .iter()
        .find(|name| name.len() > 255 || name.contains('/'))
    {
        return Err(bad(
            "SYNC_AUTO_SCALING_GROUPS",
            format!("{wrong:?} is not an Auto Scaling group name"),
        ));
    }
    Ok(names)
}

/// `SYNC_SECURITY_GROUP_IDS`: security group ids only.
fn security_group_ids(get: &impl Fn(&str) -> Option<String>) -> Result<Vec<String>, ConfigError> {
    let ids: Vec<String> = comma_list(&required(get, "SYNC_SECURITY_GROUP_IDS")?).collect();
    if let Some(wrong) = ids.iter().find(|id| !is_group_id(id)) {
        return Err(bad(
            "SYNC_SECURITY_GROUP_IDS",
            format!("{wrong:?} is not a security group id"),
        ));
    }
    Ok(ids)
}

/// `SYNC_PEERS`: `region/sg-id[/table]` entries, separated by spaces; the table defaults to
/// this region's.
fn peers(
    get: &impl Fn(&str) -> Option<String>,
    table: &str,
) -> Result<Vec<PeerGroup>, ConfigError> {
    get("SYNC_PEERS")
        .unwrap_or_default()
        .split_whitespace()
        .map(|entry| {
            let wrong = || {
                bad(
                    "SYNC_PEERS",
                    format!("{entry:?} is not region/sg-id[/table]"),
                )
            };
            let (region, group_id, peer_table) =
                match entry.split('/').collect::<Vec<_>>().as_slice() {
                    [region, group] => (*region, *group, table),
                    [region, group, table] => (*region, *group, *table),
                    _ => return Err(wrong()),
                };
            if region.is_empty() || !is_group_id(group_id) || peer_table.is_empty() {
                return Err(wrong());
            }
            Ok(PeerGroup {
                region: region.to_string(),
                group_id: group_id.to_string(),
                table: peer_table.to_string(),
            })
        })
        .collect()
}

/// `SYNC_ADDRESS`: which address of an instance is synced (default public).
fn address(get: &impl Fn(&str) -> Option<String>) -> Result<AddressKind, ConfigError> {
    Ok(optional(get, "SYNC_ADDRESS")
        .map(|v| v.parse::<AddressKind>())
        .transpose()
        .map_err(|e| bad("SYNC_ADDRESS", e.reason))?
        .unwrap_or(AddressKind::Public))
}

/// `SYNC_ON_FAILURE`: how a lifecycle action ends when the sync fails (default continue).
fn on_failure(get: &impl Fn(&str) -> Option<String>) -> Result<LifecycleResult, ConfigError> {
    match optional(get, "SYNC_ON_FAILURE")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("continue") => Ok(LifecycleResult::Continue),
        Some("abandon") => Ok(LifecycleResult::Abandon),
        Some(other) => Err(bad(
            "SYNC_ON_FAILURE",
            format!("{other:?} is not continue or abandon"),
        )),
    }
}

/// A whole number from 1 to `max`, `default` when unset.
fn whole_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match optional(get, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| bad(name, format!("{v:?} is not a whole number from 1 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<SyncConfig, ConfigError> {
        SyncConfig::from_lookup(sgwarden_core::settings::from_pairs(vars))
    }

    const BASE: [(&str, &str); 4] = [
        ("SYNC_CLUSTER", "db"),
        ("SYNC_AUTO_SCALING_GROUPS", "db-a, db-b"),
        ("SYNC_TABLE", "sgwarden-registry"),
        ("SYNC_SECURITY_GROUP_IDS", "sg-0a1, sg-0b2"),
    ];

    #[test]
    fn defaults_follow_spec() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.security_group_ids, ["sg-0a1", "sg-0b2"]);
        assert_eq!(
            c.auto_scaling_groups,
            BTreeSet::from(["db-a".to_string(), "db-b".to_string()])
        );
        assert_eq!(c.heartbeat_every, Duration::from_secs(60));
        assert_eq!(c.ports, vec![Traffic::All]);
        assert_eq!(c.address, AddressKind::Public);
        assert_eq!(c.on_failure, LifecycleResult::Continue);
        assert!(!c.dry_run);
        assert_eq!(c.rule_quota, 60);
        assert!(c.peers.is_empty());
        assert_eq!(c.function_role_arn, None);
        assert!(c.revert_role_arns.is_empty());
    }

    #[test]
    fn the_roles_the_heal_tells_apart_are_role_arns() {
        let mut vars = BASE.to_vec();
        vars.push((
            "SGWARDEN_FUNCTION_ROLE_ARN",
            "arn:aws:iam::111122223333:role/asg-sync",
        ));
        vars.push((
            "SYNC_REVERT_ROLE_ARNS",
            "arn:aws:iam::111122223333:role/revert, arn:aws:iam::111122223333:role/org/member",
        ));
        let c = config(&vars).unwrap();
        assert_eq!(
            c.function_role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/asg-sync")
        );
        assert_eq!(
            c.revert_role_arns,
            [
                "arn:aws:iam::111122223333:role/revert",
                "arn:aws:iam::111122223333:role/org/member"
            ]
        );
    }

    #[test]
    fn peers_take_an_optional_table() {
        let mut vars = BASE.to_vec();
        vars.push((
            "SYNC_PEERS",
            "us-west-2/sg-0c3  eu-west-1/sg-0d4/other-table",
        ));
        let c = config(&vars).unwrap();
        assert_eq!(c.peers[0].table, "sgwarden-registry");
        assert_eq!(c.peers[1].table, "other-table");
        assert_eq!(c.peers[1].region, "eu-west-1");
    }

    #[test]
    fn each_bad_setting_names_its_variable() {
        for (name, value) in [
            ("SYNC_CLUSTER", ""),
            ("SYNC_CLUSTER", "has space"),
            ("SYNC_SECURITY_GROUP_IDS", "web"),
            ("SYNC_PEERS", "us-west-2"),
            ("SYNC_PORTS", "tcp"),
            ("SYNC_ADDRESS", "elastic"),
            ("SYNC_ON_FAILURE", "retry"),
            ("SYNC_DRY_RUN", "yes"),
            ("SYNC_RULE_QUOTA", "0"),
            ("SYNC_AUTO_SCALING_GROUPS", " , "),
            ("SYNC_AUTO_SCALING_GROUPS", "a/b"),
            ("SYNC_HEARTBEAT_SECONDS", "0"),
            // Past the bound, and far past it: refused, never an overflowing timer.
            ("SYNC_HEARTBEAT_SECONDS", "3601"),
            ("SYNC_HEARTBEAT_SECONDS", "18446744073709551615"),
            ("SGWARDEN_FUNCTION_ROLE_ARN", "asg-sync"),
            // A session is not a role: anyone may name a session like revert-ingress's.
            (
                "SYNC_REVERT_ROLE_ARNS",
                "arn:aws:sts::111122223333:assumed-role/revert/sgwarden-revert-ingress",
            ),
        ] {
            let mut vars: Vec<(&str, &str)> =
                BASE.iter().filter(|(k, _)| *k != name).copied().collect();
            vars.push((name, value));
            assert_eq!(config(&vars).unwrap_err().variable, name, "{name}={value}");
        }
        let missing: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| *k != "SYNC_TABLE")
            .copied()
            .collect();
        assert_eq!(
            config(&missing).unwrap_err().to_string(),
            "SYNC_TABLE: required"
        );
    }

    #[test]
    fn the_heartbeat_takes_an_hour_at_the_most() {
        let mut vars = BASE.to_vec();
        vars.push(("SYNC_HEARTBEAT_SECONDS", "3600"));
        let c = config(&vars).unwrap();
        assert_eq!(
            c.heartbeat_every,
            Duration::from_secs(MAX_HEARTBEAT_SECONDS)
        );
        // The heartbeat timer's first deadline is now + interval: it must not overflow.
        assert!(std::time::Instant::now()
            .checked_add(c.heartbeat_every)
            .is_some());
    }
}
