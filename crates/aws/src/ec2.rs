//! Security groups through the EC2 API: read their state, apply a plan.
//!
//! Reading uses `DescribeSecurityGroups` filtered by group id and paginated: one call returns
//! a group's rules in both directions, its tags, VPC and owner, which is all any function
//! needs, and many groups of one region are read together.
//!
//! Applying a [`Plan`] makes at most one revoke and one authorize call per direction: the
//! core batches rules into the fewest permissions, and a revoke whose rules all carry their
//! `sgr-` ids names them by id (exact whatever the rule's shape). EC2 applies a batch atomically, so when
//! a batch fails because one of its rules already exists (`InvalidPermission.Duplicate`) or
//! is already gone (`InvalidPermission.NotFound`), the batch is retried rule by rule and
//! those rules count as done: the goal state is reached either way. Revokes run first so a
//! group near its quota has room for the additions. Every apply that changes anything, or
//! fails part way, leaves exactly one audit line (target `sgwarden::audit`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{Filter, IpPermission, SecurityGroup};
use aws_sdk_ec2::Client;
use sgwarden_core::policy::{GroupFacts, ListEntries, PrefixLists, Scope};
use sgwarden_core::rule::{Direction, Peer, Rule, RuleInfo, RuleSet};
use sgwarden_core::sync::{Instance, Lifecycle};
use sgwarden_core::Plan;

use crate::convert::{permission_from_sdk, permission_to_sdk, security_group_rule_from_sdk};
use crate::error::AwsError;

const DUPLICATE: &str = "InvalidPermission.Duplicate";
const NOT_FOUND: &str = "InvalidPermission.NotFound";
const RULE_ID_NOT_FOUND: &str = "InvalidSecurityGroupRuleId.NotFound";
/// EC2 accepts at most this many values in one describe filter.
const FILTER_VALUES: usize = 200;

/// How a paginated `DescribeSecurityGroups` asks for its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pages {
    /// An event's read of the groups it names: EC2's largest page, within the event path's
    /// budget of one call.
    Event,
    /// A sweep's read of a whole scope: pages of [`SWEEP_PAGE_SIZE`] groups, each a call of
    /// its own with [`SWEEP_PAGE_ATTEMPT`] per attempt and [`SWEEP_PAGE_OPERATION`] in all,
    /// retried on its own, so one slow page is neither the whole region's budget nor the end
    /// of the sweep.
    Sweep,
}

/// Groups per page of a sweep. A page of EC2's largest size (1,000 groups with every rule)
/// once took longer than an event's 12-second budget on a loaded machine; a fifth of it
/// answers in a fifth of the time, and costs five calls of EC2's read rate instead of one.
pub const SWEEP_PAGE_SIZE: i32 = 200;
/// One attempt at one page of a sweep.
pub const SWEEP_PAGE_ATTEMPT: std::time::Duration = std::time::Duration::from_secs(20);
/// One page of a sweep, its retries included.
pub const SWEEP_PAGE_OPERATION: std::time::Duration = std::time::Duration::from_secs(45);

/// A security group as sgwarden needs to see it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    /// The group's `sg-` id.
    pub group_id: String,
    /// The group's name (`GroupName`), unique within its VPC.
    pub group_name: Option<String>,
    /// The id of the VPC the group belongs to; `None` only when EC2's answer leaves it out.
    pub vpc_id: Option<String>,
    /// The id of the account that owns the group.
    pub owner_id: Option<String>,
    /// The group's tags, key to value (a tag without a value maps to `""`).
    pub tags: BTreeMap<String, String>,
    /// Ingress and egress rules, atomic.
    pub rules: RuleSet,
}

/// Groups as one describe read them: those the core can read, and the others.
#[derive(Debug, Default)]
pub struct GroupsRead {
    /// The groups whose every rule the core can read.
    pub groups: Vec<GroupState>,
    /// The groups with at least one rule the core cannot read, each with the reason.
    pub unreadable: Vec<UnreadableGroup>,
}

/// Rules as one `DescribeSecurityGroupRules` read them: those the core can read, and why
/// each other one could not be read (an [`AwsError::Unreadable`] naming group and rule).
#[derive(Debug, Default)]
pub struct RulesRead {
    /// The rules the core can read, each with its group and `sgr-` id.
    pub records: Vec<RuleRecord>,
    /// One [`AwsError::Unreadable`] per rule the core cannot read.
    pub unreadable: Vec<AwsError>,
}

/// A group whose rules the core cannot read: what is known of it, and why (an
/// [`AwsError::Unreadable`] naming the group).
#[derive(Debug)]
pub struct UnreadableGroup {
    /// The group's `sg-` id.
    pub group_id: String,
    /// The group's name, as for [`GroupState::group_name`].
    pub group_name: Option<String>,
    /// The group's VPC, as for [`GroupState::vpc_id`].
    pub vpc_id: Option<String>,
    /// The group's tags, as for [`GroupState::tags`]: enough for scope and exemption tests.
    pub tags: BTreeMap<String, String>,
    /// Why its rules cannot be read: an [`AwsError::Unreadable`] naming the group.
    pub error: AwsError,
}

/// One rule as `DescribeSecurityGroupRules` reports it: its group and its `sgr-` id. Its tags
/// are not read: anyone who may tag a rule could write them, so they decide nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// The `sg-` id of the group the rule belongs to.
    pub group_id: String,
    /// The rule, in the core's terms.
    pub rule: Rule,
    /// Description and `sgr-` id.
    pub info: RuleInfo,
}

/// A group's rules, each with its `sgr-` id, as `DescribeSecurityGroupRules` reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRules {
    /// The group's `sg-` id.
    pub group_id: String,
    /// Its ingress and egress rules, each with its description and `sgr-` id; empty for a
    /// group that exists and has no rule.
    pub rules: RuleSet,
}

/// Who is changing a group, and why: carried into the audit line.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// `asg-sync`, `revert-ingress`, `notify-owner`, `cli`, …
    pub function: &'static str,
    /// What triggered the change: an event id, `true-up`, `sweep`, …
    pub cause: String,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Rules this apply authorized.
    pub added: Vec<Rule>,
    /// Rules this apply revoked.
    pub removed: Vec<Rule>,
    /// Rules the plan added that were already there (a concurrent writer got there first).
    pub already_present: Vec<Rule>,
    /// Rules the plan removed that were already gone.
    pub already_gone: Vec<Rule>,
    /// The `sgr-` ids EC2 gave the rules this apply created (from the authorize answers).
    pub created_ids: Vec<String>,
    /// Authorize and revoke calls sent, the failed one and the rule-by-rule retries included.
    pub calls: usize,
}

/// EC2 in one region.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    region: String,
}

impl Ec2 {
    /// An EC2 client in `config`'s region, with EC2's own retry (adaptive, up to five
    /// attempts): a throttled sweep slows down instead of failing groups.
    pub fn new(config: &SdkConfig) -> Self {
        let ec2_config = aws_sdk_ec2::config::Builder::from(config)
            .retry_config(crate::sdk::ec2_retry())
            .build();
        Self {
            client: Client::from_conf(ec2_config),
            region: crate::sdk::region_of(config),
        }
    }

    /// The region this client acts in (`unknown` when the configuration names none).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Reads the groups named, in one paginated `DescribeSecurityGroups`. A group that does
    /// not exist is an error, not an empty group: sgwarden never plans against a group it
    /// cannot see.
    pub async fn read_groups(&self, group_ids: &[String]) -> Result<Vec<GroupState>, AwsError> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = BTreeMap::new();
        for chunk in group_ids.chunks(FILTER_VALUES) {
            let request = self
                .client
                .describe_security_groups()
                .filters(id_filter("group-id", chunk));
            let read = self.describe_groups(request, &chunk.join(",")).await?;
            if let Some(group) = read.unreadable.into_iter().next() {
                return Err(group.error);
            }
            for state in read.groups {
                found.insert(state.group_id.clone(), state);
            }
        }
        group_ids
            .iter()
            .map(|id| {
                found.remove(id).ok_or_else(|| AwsError::NotFound {
                    what: "security group",
                    id: id.clone(),
                    region: self.region.clone(),
                })
            })
            .collect()
    }

    /// What the policy may ask of one group (its VPC and tags), read even when its rules
    /// cannot be: an odd rule elsewhere in a group must not stop an event's judgement.
    pub async fn group_facts(&self, group_id: &str) -> Result<GroupFacts, AwsError> {
        let request = self
            .client
            .describe_security_groups()
            .filters(id_filter("group-id", &[group_id.to_string()]));
        let read = self.describe_groups(request, group_id).await?;
        let facts = read
            .groups
            .into_iter()
            .map(|g| (g.group_id, g.group_name, g.vpc_id, g.tags))
            .chain(
                read.unreadable
                    .into_iter()
                    .map(|g| (g.group_id, g.group_name, g.vpc_id, g.tags)),
            )
            .find(|(id, ..)| id == group_id);
        match facts {
            Some((group_id, name, vpc_id, tags)) => Ok(GroupFacts {
                group_id,
                name,
                vpc_id,
                tags,
            }),
            None => Err(AwsError::NotFound {
                what: "security group",
                id: group_id.to_string(),
                region: self.region.clone(),
            }),
        }
    }

    /// Reads one group.
    pub async fn read_group(&self, group_id: &str) -> Result<GroupState, AwsError> {
        let mut groups = self.read_groups(&[group_id.to_string()]).await?;
        Ok(groups.remove(0))
    }

    /// The id of the group a call named only by `groupName`: EC2 resolves such a name in the
    /// region's default VPC, and so does `DescribeSecurityGroups --group-names`.
    pub async fn group_id_by_name(&self, name: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .describe_security_groups()
            .group_names(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", name, &self.region, e));
        let not_found = || AwsError::NotFound {
            what: "security group named",
            id: name.to_string(),
            region: self.region.clone(),
        };
        match out {
            Ok(out) => out
                .security_groups()
                .iter()
                .find_map(|g| g.group_id().map(str::to_string))
                .ok_or_else(not_found),
            Err(e) if e.code() == Some("InvalidGroup.NotFound") => Err(not_found()),
            Err(e) => Err(e),
        }
    }

    /// Every group of the region inside `scope`, read in one paginated
    /// `DescribeSecurityGroups` whose filters are the scope's conditions. A group whose rules
    /// the core cannot read is returned as unreadable beside the others, so that one such
    /// group does not hide every other group of the region from a sweep.
    pub async fn groups_in_scope(&self, scope: &Scope) -> Result<GroupsRead, AwsError> {
        let ids: Vec<String> = scope.group_ids.iter().cloned().collect();
        let vpcs: Vec<String> = scope.vpc_ids.iter().cloned().collect();
        let mut groups = GroupsRead::default();
        // EC2 takes at most 200 values per filter: a long list is asked in parts, and every
        // part of the one list is combined with every part of the other.
        for id_part in filter_parts(&ids) {
            for vpc_part in filter_parts(&vpcs) {
                let mut request = self.client.describe_security_groups();
                if let Some(part) = id_part {
                    request = request.filters(id_filter("group-id", part));
                }
                if let Some(part) = vpc_part {
                    request = request.filters(id_filter("vpc-id", part));
                }
                if let Some(tag) = &scope.tag {
                    request = request.filters(id_filter(
                        &format!("tag:{}", tag.key),
                        std::slice::from_ref(&tag.value),
                    ));
                }
                let read = self.paged_groups(request, "scope", Pages::Sweep).await?;
                groups.groups.extend(read.groups);
                groups.unreadable.extend(read.unreadable);
            }
        }
        Ok(groups)
    }

    /// Runs one paginated `DescribeSecurityGroups` of an event and reads every group it
    /// returns.
    async fn describe_groups(
        &self,
        request: aws_sdk_ec2::operation::describe_security_groups::builders::DescribeSecurityGroupsFluentBuilder,
        resource: &str,
    ) -> Result<GroupsRead, AwsError> {
        self.paged_groups(request, resource, Pages::Event).await
    }

    /// Runs `request` page by page, as `pages` says, and reads every group it returns. A
    /// next token seen before in the same read fails it: the pages would go round for ever,
    /// or the read would end with groups never judged, and neither may pass for whole.
    async fn paged_groups(
        &self,
        request: aws_sdk_ec2::operation::describe_security_groups::builders::DescribeSecurityGroupsFluentBuilder,
        resource: &str,
        pages: Pages,
    ) -> Result<GroupsRead, AwsError> {
        let mut read = GroupsRead::default();
        let mut token: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let page = request.clone().set_next_token(token.clone());
            let answer = match pages {
                Pages::Event => page.max_results(1000).send().await,
                Pages::Sweep => {
                    page.max_results(SWEEP_PAGE_SIZE)
                        .customize()
                        .config_override(sweep_page_budget())
                        .send()
                        .await
                }
            }
            .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", resource, &self.region, e))?;
            for group in answer.security_groups() {
                self.add_group(group, &mut read);
            }
            let Some(next) = answer.next_token().filter(|next| !next.is_empty()) else {
                return Ok(read);
            };
            if !seen.insert(next.to_string()) {
                return Err(AwsError::Unreadable {
                    operation: "DescribeSecurityGroups",
                    resource: resource.to_string(),
                    region: self.region.clone(),
                    source: sgwarden_core::ParseError::new(
                        "NextToken",
                        "repeats a token of this read: its pages cannot be trusted to be whole",
                    ),
                });
            }
            token = Some(next.to_string());
        }
    }

    /// Reads one group EC2 returned into `read`: its state, or why it cannot be read.
    fn add_group(&self, group: &SecurityGroup, read: &mut GroupsRead) {
        match self.group_state(group) {
            Ok(state) => read.groups.push(state),
            Err(error) => read.unreadable.push(UnreadableGroup {
                group_id: group.group_id().unwrap_or_default().to_string(),
                group_name: group.group_name().map(str::to_string),
                vpc_id: group.vpc_id().map(str::to_string),
                tags: tags_of(group),
                error,
            }),
        }
    }

    /// The rules of `group_ids`, with their ids (`DescribeSecurityGroupRules`, filtered by
    /// group id, paginated).
    pub async fn rules_of_groups(&self, group_ids: &[String]) -> Result<Vec<RuleRecord>, AwsError> {
        self.describe_rules("group-id", group_ids).await
    }

    /// The rules of each group named, with their ids, in the order named: one paginated
    /// `DescribeSecurityGroupRules` for all of them. A group that answers no rule is looked up
    /// (`DescribeSecurityGroups`): one that does not exist is `NotFound` in its place, never an
    /// empty group, so nothing is planned against a group sgwarden cannot see.
    pub async fn read_group_rules(
        &self,
        group_ids: &[String],
    ) -> Result<Vec<Result<GroupRules, AwsError>>, AwsError> {
        let mut by_group: BTreeMap<String, RuleSet> = BTreeMap::new();
        for record in self.rules_of_groups(group_ids).await? {
            by_group
                .entry(record.group_id)
                .or_default()
                .insert(record.rule, record.info);
        }
        let empty: Vec<String> = group_ids
            .iter()
            .filter(|id| !by_group.contains_key(*id))
            .cloned()
            .collect();
        let mut existing = std::collections::BTreeSet::new();
        for chunk in empty.chunks(FILTER_VALUES) {
            let request = self
                .client
                .describe_security_groups()
                .filters(id_filter("group-id", chunk));
            let read = self.describe_groups(request, &chunk.join(",")).await?;
            existing.extend(read.groups.into_iter().map(|g| g.group_id));
            existing.extend(read.unreadable.into_iter().map(|g| g.group_id));
        }
        Ok(group_ids
            .iter()
            .map(|id| match by_group.remove(id) {
                Some(rules) => Ok(GroupRules {
                    group_id: id.clone(),
                    rules,
                }),
                None if existing.contains(id) => Ok(GroupRules {
                    group_id: id.clone(),
                    rules: RuleSet::new(),
                }),
                None => Err(AwsError::NotFound {
                    what: "security group",
                    id: id.clone(),
                    region: self.region.clone(),
                }),
            })
            .collect())
    }

    /// The rules with these ids; ids that no longer exist are absent from the answer.
    pub async fn rules_by_id(&self, rule_ids: &[String]) -> Result<Vec<RuleRecord>, AwsError> {
        self.describe_rules("security-group-rule-id", rule_ids)
            .await
    }

    async fn describe_rules(
        &self,
        filter: &str,
        values: &[String],
    ) -> Result<Vec<RuleRecord>, AwsError> {
        let read = self.describe_readable_rules(filter, values).await?;
        match read.unreadable.into_iter().next() {
            Some(error) => Err(error),
            None => Ok(read.records),
        }
    }

    /// The rules of `group_ids` that the core can read, with their ids, and why each other
    /// rule could not be read: one odd rule does not hide the rules beside it.
    pub async fn readable_rules_of_groups(
        &self,
        group_ids: &[String],
    ) -> Result<RulesRead, AwsError> {
        self.describe_readable_rules("group-id", group_ids).await
    }

    async fn describe_readable_rules(
        &self,
        filter: &str,
        values: &[String],
    ) -> Result<RulesRead, AwsError> {
        let mut read = RulesRead::default();
        for chunk in values.chunks(FILTER_VALUES) {
            let resource = chunk.join(",");
            let mut pages = self
                .client
                .describe_security_group_rules()
                .filters(id_filter(filter, chunk))
                .max_results(1000)
                .into_paginator()
                .items()
                .send();
            while let Some(rule) = pages.next().await {
                let rule = rule.map_err(|e| {
                    AwsError::from_sdk("DescribeSecurityGroupRules", &resource, &self.region, e)
                })?;
                let neutral = security_group_rule_from_sdk(&rule);
                let group_id = neutral.group_id.clone().unwrap_or_default();
                match neutral.to_rule() {
                    Ok((core_rule, info)) => read.records.push(RuleRecord {
                        group_id,
                        rule: core_rule,
                        info,
                    }),
                    Err(source) => read.unreadable.push(AwsError::Unreadable {
                        operation: "DescribeSecurityGroupRules",
                        resource: format!(
                            "{group_id} {}",
                            neutral.rule_id.as_deref().unwrap_or("(no rule id)")
                        ),
                        region: self.region.clone(),
                        source,
                    }),
                }
            }
        }
        Ok(read)
    }

    /// What the managed prefix lists `list_ids` hold now: per list, its owner
    /// (`DescribeManagedPrefixLists`; owner `AWS` is an AWS-managed list, not read further)
    /// and the entries of a customer-managed one (`GetManagedPrefixListEntries`, paginated).
    /// A list that cannot be read for good (not found, access denied, an entry that is no
    /// CIDR) is [`ListEntries::Unreadable`], so no rule stands on it; a transient failure is
    /// an error, so the invocation is retried rather than a rule revoked on a blip.
    pub async fn prefix_lists(
        &self,
        list_ids: &std::collections::BTreeSet<String>,
    ) -> Result<PrefixLists, AwsError> {
        let mut lists = PrefixLists::default();
        for list_id in list_ids {
            let entries = match self.prefix_list(list_id).await {
                Ok(entries) => entries,
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::warn!(prefix_list = %list_id, region = %self.region, error = %error, "prefix list unreadable; no rule stands on it");
                    ListEntries::Unreadable(error.to_string())
                }
            };
            lists.insert(list_id.clone(), entries);
        }
        Ok(lists)
    }

    async fn prefix_list(&self, list_id: &str) -> Result<ListEntries, AwsError> {
        let described = self
            .client
            .describe_managed_prefix_lists()
            .prefix_list_ids(list_id)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("DescribeManagedPrefixLists", list_id, &self.region, e)
            })?;
        let Some(list) = described
            .prefix_lists()
            .iter()
            .find(|l| l.prefix_list_id() == Some(list_id))
        else {
            return Err(AwsError::NotFound {
                what: "prefix list",
                id: list_id.to_string(),
                region: self.region.clone(),
            });
        };
        if list.owner_id() == Some("AWS") {
            return Ok(ListEntries::AwsManaged);
        }
        let mut pages = self
            .client
            .get_managed_prefix_list_entries()
            .prefix_list_id(list_id)
            .into_paginator()
            .items()
            .send();
        let mut entries = std::collections::BTreeSet::new();
        while let Some(entry) = pages.next().await {
            let entry = entry.map_err(|e| {
                AwsError::from_sdk("GetManagedPrefixListEntries", list_id, &self.region, e)
            })?;
            let cidr = entry.cidr().unwrap_or_default();
            let peer = Peer::cidr(cidr, "Cidr").map_err(|source| AwsError::Unreadable {
                operation: "GetManagedPrefixListEntries",
                resource: list_id.to_string(),
                region: self.region.clone(),
                source,
            })?;
            entries.insert(peer);
        }
        Ok(ListEntries::Customer(entries))
    }

    /// Revokes exactly `rules` (by id when every rule of a direction has one), with the
    /// same settle-and-audit behaviour as [`Ec2::apply`].
    pub async fn revoke(
        &self,
        group_id: &str,
        rules: &RuleSet,
        audit: &AuditContext,
    ) -> Result<Applied, AwsError> {
        let plan = Plan {
            add: RuleSet::new(),
            remove: rules.clone(),
        };
        self.apply(group_id, &plan, audit).await
    }

    /// The addresses of instances, in one paginated `DescribeInstances` (filter
    /// `instance-id`). Instances AWS no longer knows are absent from the answer. The
    /// lifecycle state is the Auto Scaling group's to tell and is left empty here.
    pub async fn instances(&self, instance_ids: &[String]) -> Result<Vec<Instance>, AwsError> {
        let parse = |a: Option<&str>| a.and_then(|a| a.parse::<IpAddr>().ok());
        Ok(self
            .describe_instances(instance_ids, false)
            .await?
            .iter()
            .map(|instance| {
                let mut ipv6: Vec<IpAddr> = instance
                    .network_interfaces()
                    .iter()
                    .flat_map(|n| n.ipv6_addresses())
                    .filter_map(|a| parse(a.ipv6_address()))
                    .collect();
                ipv6.extend(parse(instance.ipv6_address()));
                ipv6.sort();
                ipv6.dedup();
                Instance {
                    id: instance.instance_id().unwrap_or_default().to_string(),
                    lifecycle: Lifecycle::Staying,
                    public_ipv4: parse(instance.public_ip_address()),
                    private_ipv4: parse(instance.private_ip_address()),
                    ipv6,
                }
            })
            .collect())
    }

    /// Which of `instance_ids` still exist (pending, running, stopping or stopped).
    /// Terminated and shutting-down instances, and ids AWS no longer knows, are absent.
    pub async fn live_instances(
        &self,
        instance_ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>, AwsError> {
        Ok(self
            .describe_instances(instance_ids, true)
            .await?
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }

    /// The instances named (only those not leaving when `live_only`): one paginated
    /// `DescribeInstances` per 200 ids, the most one filter takes.
    async fn describe_instances(
        &self,
        instance_ids: &[String],
        live_only: bool,
    ) -> Result<Vec<aws_sdk_ec2::types::Instance>, AwsError> {
        let mut instances = Vec::new();
        for chunk in instance_ids.chunks(FILTER_VALUES) {
            let resource = chunk.join(",");
            let mut request = self
                .client
                .describe_instances()
                .filters(id_filter("instance-id", chunk));
            if live_only {
                request = request.filters(id_filter(
                    "instance-state-name",
                    &["pending", "running", "stopping", "stopped"].map(String::from),
                ));
            }
            let mut pages = request.max_results(1000).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    AwsError::from_sdk("DescribeInstances", &resource, &self.region, e)
                })?;
                instances.extend(
                    page.reservations()
                        .iter()
                        .flat_map(|r| r.instances())
                        .cloned(),
                );
            }
        }
        Ok(instances)
    }

    fn group_state(&self, group: &SecurityGroup) -> Result<GroupState, AwsError> {
        let group_id = group.group_id().unwrap_or_default().to_string();
        let mut rules = RuleSet::new();
        for (direction, permissions) in [
            (Direction::Ingress, group.ip_permissions()),
            (Direction::Egress, group.ip_permissions_egress()),
        ] {
            let permissions: Vec<_> = permissions.iter().map(permission_from_sdk).collect();
            rules
                .extend_permissions(direction, &permissions)
                .map_err(|source| AwsError::Unreadable {
                    operation: "DescribeSecurityGroups",
                    resource: group_id.clone(),
                    region: self.region.clone(),
                    source,
                })?;
        }
        Ok(GroupState {
            group_name: group.group_name().map(str::to_string),
            vpc_id: group.vpc_id().map(str::to_string),
            owner_id: group.owner_id().map(str::to_string),
            tags: tags_of(group),
            rules,
            group_id,
        })
    }

    /// Applies a plan to a group. See the module documentation for batching and audit.
    pub async fn apply(
        &self,
        group_id: &str,
        plan: &Plan,
        audit: &AuditContext,
    ) -> Result<Applied, AwsError> {
        let mut applied = Applied::default();
        let result = self.apply_steps(group_id, plan, &mut applied).await;
        self.audit(group_id, audit, &applied, result.as_ref().err());
        result.map(|()| applied)
    }

    async fn apply_steps(
        &self,
        group_id: &str,
        plan: &Plan,
        applied: &mut Applied,
    ) -> Result<(), AwsError> {
        // Revokes first, so that a group near its quota has room for the additions.
        for (change, rules) in [
            (Change::Revoke, &plan.remove),
            (Change::Authorize, &plan.add),
        ] {
            for direction in [Direction::Ingress, Direction::Egress] {
                let rules = rules.direction(direction);
                if !rules.is_empty() {
                    let batch = Batch {
                        change,
                        group_id,
                        direction,
                    };
                    self.change(batch, &rules, applied).await?;
                }
            }
        }
        Ok(())
    }

    /// One batched call; on a "some rule already done" error, one call per rule.
    async fn change(
        &self,
        batch: Batch<'_>,
        rules: &RuleSet,
        applied: &mut Applied,
    ) -> Result<(), AwsError> {
        let change = batch.change;
        match self.call(batch, rules, applied).await {
            Err(e) if change.settles(e.code()) && rules.len() > 1 => {
                tracing::info!(
                    group = batch.group_id,
                    region = %self.region,
                    code = e.code(),
                    "batch refused as a whole; applying rule by rule"
                );
                for (rule, info) in rules {
                    let single: RuleSet = [(rule.clone(), info.clone())].into_iter().collect();
                    match self.call(batch, &single, applied).await {
                        Err(e) if change.settles(e.code()) => {
                            change.settled(applied).push(rule.clone());
                        }
                        other => other?,
                    }
                }
                Ok(())
            }
            Err(e) if change.settles(e.code()) => {
                change.settled(applied).extend(rules.rules().cloned());
                Ok(())
            }
            other => other,
        }
    }

    async fn call(
        &self,
        batch: Batch<'_>,
        rules: &RuleSet,
        applied: &mut Applied,
    ) -> Result<(), AwsError> {
        let (change, direction) = (batch.change, batch.direction);
        // A revoke names rules by id when it can: exact, whatever shape the rule was written in.
        let target = match change {
            Change::Revoke => rules.rule_ids().map(Target::Ids),
            Change::Authorize => None,
        }
        .unwrap_or_else(|| {
            Target::Permissions(
                rules
                    .to_permissions(direction)
                    .iter()
                    .map(permission_to_sdk)
                    .collect(),
            )
        });
        applied.calls += 1;
        let (unknown, created) = self.send(batch, target).await?;
        applied.created_ids.extend(created);
        let mut gone = RuleSet::new();
        let unknown: Vec<_> = unknown.iter().map(permission_from_sdk).collect();
        // An unreadable "unknown" list only loses the already-gone detail, never a change.
        let _ = gone.extend_permissions(direction, &unknown);
        for rule in rules.rules() {
            if gone.contains(rule) {
                applied.already_gone.push(rule.clone());
            } else {
                match change {
                    Change::Authorize => applied.added.push(rule.clone()),
                    Change::Revoke => applied.removed.push(rule.clone()),
                }
            }
        }
        Ok(())
    }

    /// One authorize or revoke call; returns the permissions a revoke did not find and the
    /// ids of the rules an authorize created.
    async fn send(
        &self,
        batch: Batch<'_>,
        target: Target,
    ) -> Result<(Vec<IpPermission>, Vec<String>), AwsError> {
        let Batch {
            change,
            group_id,
            direction,
        } = batch;
        let ids = |rules: &[aws_sdk_ec2::types::SecurityGroupRule]| -> Vec<String> {
            rules
                .iter()
                .filter_map(|r| r.security_group_rule_id().map(str::to_string))
                .collect()
        };
        let operation = change.operation(direction);
        let (permissions, rule_ids) = match target {
            Target::Ids(ids) => (None, Some(ids)),
            Target::Permissions(permissions) => (Some(permissions), None),
        };
        // EC2's ingress and egress calls are distinct SDK types of one shape: one body
        // sends either.
        macro_rules! send {
            ($request:expr) => {
                $request
                    .group_id(group_id)
                    .set_ip_permissions(permissions)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(operation, group_id, &self.region, e))?
            };
        }
        let client = &self.client;
        Ok(match (change, direction) {
            (Change::Authorize, Direction::Ingress) => {
                let out = send!(client.authorize_security_group_ingress());
                (Vec::new(), ids(out.security_group_rules()))
            }
            (Change::Authorize, Direction::Egress) => {
                let out = send!(client.authorize_security_group_egress());
                (Vec::new(), ids(out.security_group_rules()))
            }
            (Change::Revoke, Direction::Ingress) => {
                let request = client.revoke_security_group_ingress();
                let out = send!(request.set_security_group_rule_ids(rule_ids));
                (out.unknown_ip_permissions().to_vec(), Vec::new())
            }
            (Change::Revoke, Direction::Egress) => {
                let request = client.revoke_security_group_egress();
                let out = send!(request.set_security_group_rule_ids(rule_ids));
                (out.unknown_ip_permissions().to_vec(), Vec::new())
            }
        })
    }

    fn audit(
        &self,
        group_id: &str,
        ctx: &AuditContext,
        applied: &Applied,
        error: Option<&AwsError>,
    ) {
        if applied.added.is_empty() && applied.removed.is_empty() && error.is_none() {
            return;
        }
        let join = |rules: &[Rule]| {
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        tracing::info!(
            target: sgwarden_core::AUDIT_TARGET,
            function = %ctx.function,
            group = group_id,
            region = %self.region,
            added = %join(&applied.added),
            removed = %join(&applied.removed),
            added_count = applied.added.len(),
            removed_count = applied.removed.len(),
            cause = %ctx.cause,
            error = error.map(ToString::to_string),
            "security group changed"
        );
    }
}

/// The timeouts of one page of a sweep, in place of the event path's: the connect timeout
/// is kept, so the page uses the same connections.
fn sweep_page_budget() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(crate::sdk::CONNECT_TIMEOUT)
            .operation_attempt_timeout(SWEEP_PAGE_ATTEMPT)
            .operation_timeout(SWEEP_PAGE_OPERATION)
            .build(),
    )
}

fn tags_of(group: &SecurityGroup) -> BTreeMap<String, String> {
    group
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// A filter's values in parts EC2 accepts; `[None]` (no filter) for an empty list.
fn filter_parts(values: &[String]) -> Vec<Option<&[String]>> {
    if values.is_empty() {
        vec![None]
    } else {
        values.chunks(FILTER_VALUES).map(Some).collect()
    }
}

/// A filter on ids: with a filter, unlike with an id list, describes can be paginated and a
/// missing id is simply absent instead of failing the whole call.
fn id_filter(name: &str, ids: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(ids.to_vec()))
        .build()
}

/// One kind of call (authorize or revoke) on one group in one direction: what a batch of
/// rules is sent as, and, when EC2 refuses the batch, each rule of it.
#[derive(Debug, Clone, Copy)]
struct Batch<'a> {
    change: Change,
    group_id: &'a str,
    direction: Direction,
}

/// What one call names: rules by their `sgr-` ids, or permissions by shape.
enum Target {
    Ids(Vec<String>),
    Permissions(Vec<IpPermission>),
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Authorize,
    Revoke,
}

impl Change {
    /// True for the error codes that mean "this rule is already as the plan wants it".
    fn settles(self, code: Option<&str>) -> bool {
        match self {
            Change::Authorize => code == Some(DUPLICATE),
            Change::Revoke => matches!(code, Some(NOT_FOUND | RULE_ID_NOT_FOUND)),
        }
    }

    fn settled(self, applied: &mut Applied) -> &mut Vec<Rule> {
        match self {
            Change::Authorize => &mut applied.already_present,
            Change::Revoke => &mut applied.already_gone,
        }
    }

    fn operation(self, direction: Direction) -> &'static str {
        match (self, direction) {
            (Change::Authorize, Direction::Ingress) => "AuthorizeSecurityGroupIngress",
            (Change::Authorize, Direction::Egress) => "AuthorizeSecurityGroupEgress",
            (Change::Revoke, Direction::Ingress) => "RevokeSecurityGroupIngress",
            (Change::Revoke, Direction::Egress) => "RevokeSecurityGroupEgress",
        }
    }
}
