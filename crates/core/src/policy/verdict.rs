//! Why a rule stays or goes ([`Verdict`]), and the plan that splits a group's rules into
//! what to revoke and what stays.

use std::fmt;

use crate::forbid::{AddressSet, Forbids};
use crate::rule::{Peer, Rule, RuleInfo, RuleSet};

use super::*;

/// Why a rule stays or goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The policy does not guard this direction.
    Unguarded,
    /// Inside an `allow` entry.
    Allowed(String),
    /// Inside an unexpired approval (its id).
    Approved(String),
    /// Made by an exempt principal, in exactly this shape (the principal).
    Exempted(String),
    /// None of the above: revert it.
    Violates,
    /// What the rule exposes overlaps a forbid entry or preset (named, with what it forbids):
    /// revert it, whatever allows it, unless an approval names it.
    Forbidden(String),
    /// A forbid-only policy (no `allow` entries): the rule matches no forbid entry.
    NotForbidden,
    /// Kept by its shape, but the customer-managed prefix list it references holds entries
    /// that nobody vouched for and the policy does not keep on their own: revert it.
    ListWidened {
        /// The prefix list's id (`pl-…`).
        list: String,
        /// The entries nobody vouched for and the policy does not keep.
        entries: Vec<Peer>,
    },
    /// Kept by its shape, but the prefix list it references could not be read: nothing is
    /// kept on the strength of a list whose entries are unknown.
    ListUnreadable {
        /// The prefix list's id (`pl-…`).
        list: String,
        /// Why it could not be read (or that it was not read at all).
        reason: String,
    },
}

impl Verdict {
    /// True when the verdict lets the rule stay; false for `Violates`, `Forbidden`,
    /// `ListWidened` and `ListUnreadable`.
    pub fn keeps(&self) -> bool {
        !matches!(
            self,
            Verdict::Violates
                | Verdict::Forbidden(_)
                | Verdict::ListWidened { .. }
                | Verdict::ListUnreadable { .. }
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Unguarded => f.write_str("direction not guarded"),
            Verdict::Allowed(entry) => write!(f, "allowed by policy ({entry})"),
            Verdict::Approved(id) => write!(f, "approved ({id})"),
            Verdict::Exempted(by) => write!(f, "added by exempt principal {by}"),
            Verdict::Violates => f.write_str("not allowed by policy and not approved"),
            Verdict::Forbidden(by) => write!(f, "forbidden by {by}"),
            Verdict::NotForbidden => f.write_str("not forbidden by policy"),
            Verdict::ListWidened { list, entries } => {
                let entries: Vec<String> = entries.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "prefix list {list} holds entries nobody vouched for: {}",
                    entries.join(", ")
                )
            }
            Verdict::ListUnreadable { list, reason } => {
                write!(f, "prefix list {list} could not be read ({reason})")
            }
        }
    }
}

/// What to revoke in one group, and what stays with its reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertPlan {
    /// The rules to revoke, with what each carries (its `sgr-` id, when read with one).
    pub revoke: RuleSet,
    /// The rules that stay, each with the verdict that keeps it.
    pub kept: Vec<(Rule, Verdict)>,
    /// The rules in `revoke` that go for a reason beyond "not allowed", with the verdict
    /// naming it: the forbid entry or preset that decided, or the prefix list they reference
    /// and its entries.
    pub reasons: Vec<(Rule, Verdict)>,
}

impl Policy {
    /// Judges one rule of `group_id` as EC2 holds it now (`info` carries its `sgr-` id): by
    /// its shape, then, for a rule kept whose peer is a customer-managed prefix list, by what
    /// the list holds ([`Policy::judge_list`]).
    pub fn judge(
        &self,
        group_id: &str,
        rule: &Rule,
        info: &RuleInfo,
        grants: &Grants,
        now: u64,
    ) -> Verdict {
        match self.judge_shape(group_id, rule, info, grants, now) {
            Verdict::Unguarded => Verdict::Unguarded,
            // A forbid-only policy judged the list's entries already, as what the rule exposes.
            Verdict::NotForbidden => Verdict::NotForbidden,
            kept if kept.keeps() => self.judge_list(group_id, rule, grants, now).unwrap_or(kept),
            violates => violates,
        }
    }

    /// What a rule on a prefix list exposes is the list's entries: `Some(verdict)` when they
    /// do not let the rule stand. Every entry must be vouched for (the approvals table's
    /// record of the list) or kept by the policy on its own, as the rule's traffic from that
    /// CIDR (an allow entry, or an approval on this group). AWS-managed lists (owner `AWS`)
    /// are not judged by their entries: nobody in the account can change them.
    pub(crate) fn judge_list(
        &self,
        group_id: &str,
        rule: &Rule,
        grants: &Grants,
        now: u64,
    ) -> Option<Verdict> {
        let Peer::PrefixList(list) = &rule.peer else {
            return None;
        };
        let unreadable = |reason: &str| {
            Some(Verdict::ListUnreadable {
                list: list.clone(),
                reason: reason.to_string(),
            })
        };
        let entries = match grants.lists.get(list) {
            Some(ListEntries::AwsManaged) => return None,
            Some(ListEntries::Customer(entries)) => entries,
            Some(ListEntries::Unreadable(reason)) => return unreadable(reason),
            None => return unreadable("not read"),
        };
        let vouched = grants.vouched.iter().find(|v| v.list_id == *list);
        let unvouched: Vec<Peer> = entries
            .iter()
            .filter(|entry| !vouched.is_some_and(|v| v.covers(entry)))
            .filter(|entry| {
                let through = Rule::new(rule.direction, rule.traffic, (*entry).clone());
                !self.allow.iter().any(|a| a.covers(&through))
                    && !grants
                        .approvals
                        .iter()
                        .any(|a| a.covers(group_id, &through, now))
            })
            .cloned()
            .collect();
        (!unvouched.is_empty()).then(|| Verdict::ListWidened {
            list: list.clone(),
            entries: unvouched,
        })
    }

    /// True when an allow entry names the prefix list `list_id`: its widening is judged even
    /// before a rule on it exists.
    pub fn names_list(&self, list_id: &str) -> bool {
        self.allow
            .iter()
            .flat_map(|a| &a.sources)
            .any(|s| matches!(s, Source::Id(id) if id == list_id))
    }

    /// The verdict of the first forbid entry or preset what the rule exposes overlaps, if any:
    /// [`Verdict::Forbidden`], or [`Verdict::ListUnreadable`] for a rule on a prefix list whose
    /// entries are not known and whose traffic is forbidden (nothing is kept on the strength
    /// of entries nobody read).
    pub fn forbidden(&self, group_id: &str, rule: &Rule, grants: &Grants) -> Option<Verdict> {
        let mut unread = None;
        for entry in &self.forbid {
            if !entry.traffic_meets(rule.direction, &rule.traffic) {
                continue;
            }
            let sources = match &entry.forbids {
                Forbids::DefaultGroupRules if grants.default_groups.contains(group_id) => {
                    return Some(Verdict::Forbidden(entry.to_string()))
                }
                Forbids::DefaultGroupRules => continue,
                Forbids::Exposure { sources, .. } => sources,
            };
            let exposes = match &rule.peer {
                Peer::Ipv4(_) | Peer::Ipv6(_) => sources.meets(&rule.peer),
                Peer::Group(_) => false,
                Peer::PrefixList(list) => match grants.lists.get(list) {
                    Some(ListEntries::Customer(entries)) => {
                        entries.iter().any(|e| sources.meets(e))
                    }
                    Some(ListEntries::AwsManaged) => sources.meets_set(&AddressSet::internet()),
                    Some(ListEntries::Unreadable(reason)) => {
                        unread.get_or_insert_with(|| (list.clone(), reason.clone()));
                        false
                    }
                    None => {
                        unread.get_or_insert_with(|| (list.clone(), "not read".to_string()));
                        false
                    }
                },
            };
            if exposes {
                return Some(Verdict::Forbidden(entry.to_string()));
            }
        }
        unread.map(|(list, reason)| Verdict::ListUnreadable { list, reason })
    }

    /// The verdict on a rule's shape alone: forbid entries, direction, allow entries,
    /// approvals, exemptions.
    ///
    /// A forbid entry beats every allow entry and exemption: it names what must never be
    /// open, and an allow entry or exempt principal is a standing, broad grant. Only an
    /// approval beats it: the security team's own record of that one rule on that group,
    /// for at most [`MAX_APPROVAL_SECONDS`], and only for a rule whose peer is what the
    /// approval names (a CIDR or a group); a rule on a prefix list exposes the list's entries,
    /// which anyone with `ec2:ModifyManagedPrefixList` changes after the approval.
    fn judge_shape(
        &self,
        group_id: &str,
        rule: &Rule,
        info: &RuleInfo,
        grants: &Grants,
        now: u64,
    ) -> Verdict {
        if let Some(forbidden) = self.forbidden(group_id, rule, grants) {
            let approval = grants
                .approvals
                .iter()
                .filter(|_| !matches!(rule.peer, Peer::PrefixList(_)))
                .find(|a| a.covers(group_id, rule, now));
            return match approval {
                Some(approval) => Verdict::Approved(approval.approval_id.clone()),
                None => forbidden,
            };
        }
        if self.forbids_only() {
            return Verdict::NotForbidden;
        }
        if !self.directions.contains(&rule.direction) {
            return Verdict::Unguarded;
        }
        if let Some(entry) = self.allow.iter().find(|a| a.covers(rule)) {
            return Verdict::Allowed(entry.to_string());
        }
        if let Some(approval) = grants
            .approvals
            .iter()
            .find(|a| a.covers(group_id, rule, now))
        {
            return Verdict::Approved(approval.approval_id.clone());
        }
        if let Some(exemption) = grants
            .exemptions
            .iter()
            .find(|e| e.covers(group_id, rule, info))
        {
            return Verdict::Exempted(exemption.by.clone());
        }
        Verdict::Violates
    }

    /// Splits `rules` of one group into what to revoke and what stays.
    pub fn plan(&self, group_id: &str, rules: &RuleSet, grants: &Grants, now: u64) -> RevertPlan {
        let mut plan = RevertPlan::default();
        for (rule, info) in rules {
            match self.judge(group_id, rule, info, grants, now) {
                Verdict::Violates => plan.revoke.insert(rule.clone(), info.clone()),
                goes if !goes.keeps() => {
                    plan.revoke.insert(rule.clone(), info.clone());
                    plan.reasons.push((rule.clone(), goes));
                }
                kept => plan.kept.push((rule.clone(), kept)),
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn every_verdict_says_why_in_words() {
        let policy = Policy::from_json(EXAMPLE).unwrap();
        let verdict = |r: &str, grants: &Grants| {
            policy
                .judge("sg-1", &rule(r), &with_id("sgr-1"), grants, 0)
                .to_string()
        };
        assert_eq!(
            verdict("tcp/443 0.0.0.0/0", &Grants::default()),
            "allowed by policy (tcp/443 from 0.0.0.0/0, ::/0)"
        );
        assert_eq!(
            verdict("egress tcp/22 0.0.0.0/0", &Grants::default()),
            "direction not guarded"
        );
        assert_eq!(
            verdict("tcp/22 0.0.0.0/0", &Grants::default()),
            "not allowed by policy and not approved"
        );
        let exempted = Grants {
            exemptions: vec![exemption("tcp/5432 10.2.0.0/16", Some("sgr-1"))],
            ..Grants::default()
        };
        assert_eq!(
            verdict("tcp/5432 10.2.0.0/16", &exempted),
            "added by exempt principal arn:aws:iam::1:role/Admin"
        );
        assert_eq!(
            Verdict::Approved("CHG-7".into()).to_string(),
            "approved (CHG-7)"
        );
        let egress_only = Policy::from_json(
            r#"{"allow": [{"protocol": "all", "sources": ["sg-0abc"], "direction": "egress"}]}"#,
        )
        .unwrap();
        assert_eq!(egress_only.allow[0].to_string(), "egress all from sg-0abc");
    }

    #[test]
    fn a_rule_on_a_widened_prefix_list_goes_and_the_verdict_names_the_list_and_entries() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let widened = holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24", "0.0.0.0/0"])),
            vec![vouched("pl-x", &["203.0.113.0/24"])],
        );
        let verdict = policy.judge("sg-1", &ssh, &RuleInfo::default(), &widened, 0);
        assert_eq!(
            verdict,
            Verdict::ListWidened {
                list: "pl-x".into(),
                entries: cidrs(&["0.0.0.0/0"]).into_iter().collect(),
            }
        );
        assert!(!verdict.keeps());
        assert_eq!(
            verdict.to_string(),
            "prefix list pl-x holds entries nobody vouched for: 0.0.0.0/0"
        );
        let mut rules = RuleSet::new();
        rules.insert(ssh.clone(), with_id("sgr-7"));
        rules.insert(rule("tcp/443 0.0.0.0/0"), RuleInfo::default());
        let plan = policy.plan("sg-1", &rules, &widened, 0);
        assert_eq!(plan.revoke.rules().collect::<Vec<_>>(), vec![&ssh]);
        assert_eq!(plan.revoke.rule_ids(), Some(vec!["sgr-7".to_string()]));
        assert_eq!(plan.reasons, vec![(ssh.clone(), verdict)]);
        assert_eq!(plan.kept.len(), 1);
    }

    #[test]
    fn a_list_holding_only_vouched_entries_or_entries_the_policy_keeps_keeps_its_rule() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let judge = |grants: &Grants| policy.judge("sg-1", &ssh, &RuleInfo::default(), grants, 5);
        let vouched_only = holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24", "198.51.100.7/32"])),
            vec![vouched("pl-x", &["203.0.113.0/24", "198.51.100.0/24"])],
        );
        assert!(matches!(judge(&vouched_only), Verdict::Allowed(_)));
        // Nobody vouches, but an approval of ssh from the entry itself keeps it, on its group.
        let approved = Grants {
            approvals: vec![approval("a-1", "tcp/22 192.0.2.0/24", 10)],
            ..holding(
                "pl-x",
                ListEntries::Customer(cidrs(&["192.0.2.0/25"])),
                Vec::new(),
            )
        };
        assert!(judge(&approved).keeps());
        assert!(!policy
            .judge("sg-2", &ssh, &RuleInfo::default(), &approved, 5)
            .keeps());
        assert!(!policy
            .judge("sg-1", &ssh, &RuleInfo::default(), &approved, 10)
            .keeps());
        // The traffic must be kept too: 0.0.0.0/0 is allowed for 443, not for 22.
        let anywhere = holding("pl-x", ListEntries::Customer(cidrs(&["0.0.0.0/0"])), vec![]);
        assert!(!judge(&anywhere).keeps());
        // An empty list exposes nothing; another list's record vouches for nothing here.
        assert!(judge(&holding(
            "pl-x",
            ListEntries::Customer(BTreeSet::new()),
            vec![]
        ))
        .keeps());
        assert!(!judge(&holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["203.0.113.0/24"])),
            vec![vouched("pl-y", &["203.0.113.0/24"])]
        ))
        .keeps());
        // A vouched IPv4 entry says nothing of an IPv6 one.
        assert!(!judge(&holding(
            "pl-x",
            ListEntries::Customer(cidrs(&["::/0"])),
            vec![vouched("pl-x", &["0.0.0.0/0"])]
        ))
        .keeps());
    }

    #[test]
    fn an_unread_or_unreadable_list_keeps_nothing_and_an_aws_managed_one_is_judged_by_id() {
        let policy = ssh_from_list();
        let ssh = rule("tcp/22 pl-x");
        let judge = |grants: &Grants| policy.judge("sg-1", &ssh, &RuleInfo::default(), grants, 0);
        assert_eq!(
            judge(&Grants::default()),
            Verdict::ListUnreadable {
                list: "pl-x".into(),
                reason: "not read".into()
            }
        );
        let denied = holding(
            "pl-x",
            ListEntries::Unreadable("AccessDenied".into()),
            vec![],
        );
        assert_eq!(
            judge(&denied).to_string(),
            "prefix list pl-x could not be read (AccessDenied)"
        );
        assert!(!judge(&denied).keeps());
        assert!(matches!(
            judge(&holding("pl-x", ListEntries::AwsManaged, vec![])),
            Verdict::Allowed(_)
        ));
        // A rule the policy reverts anyway, or does not guard, is not judged by its list.
        let unread = |text: &str| {
            policy.judge(
                "sg-1",
                &rule(text),
                &RuleInfo::default(),
                &Grants::default(),
                0,
            )
        };
        assert_eq!(unread("tcp/23 pl-x"), Verdict::Violates);
        assert_eq!(unread("egress tcp/22 pl-x"), Verdict::Unguarded);
        // An exempt principal's rule on the list, and an approval of the list, are judged too.
        let exempted = Grants {
            exemptions: vec![Exemption {
                rule: rule("tcp/5432 pl-x"),
                ..exemption("tcp/5432 pl-x", None)
            }],
            ..holding("pl-x", ListEntries::Customer(cidrs(&["0.0.0.0/0"])), vec![])
        };
        assert!(matches!(
            policy.judge(
                "sg-1",
                &rule("tcp/5432 pl-x"),
                &RuleInfo::default(),
                &exempted,
                0
            ),
            Verdict::ListWidened { .. }
        ));
    }

    #[test]
    fn only_allow_entries_naming_a_list_name_it() {
        let policy = ssh_from_list();
        assert!(policy.names_list("pl-x"));
        assert!(!policy.names_list("pl-y"));
        assert!(!Policy::default().names_list("pl-x"));
        let rules = [
            rule("tcp/22 pl-x"),
            rule("egress tcp/22 pl-y"),
            rule("tcp/22 10.0.0.0/8"),
            rule("udp/53 pl-z"),
        ];
        let mut lists = PrefixLists::default();
        lists.insert("pl-x", ListEntries::AwsManaged);
        let mut more = PrefixLists::default();
        more.insert("pl-x", ListEntries::Unreadable("gone".into()));
        more.insert("pl-y", ListEntries::Customer(BTreeSet::new()));
        lists.extend(more);
        assert_eq!(
            lists.get("pl-x"),
            Some(&ListEntries::Unreadable("gone".into()))
        );
        assert_eq!(
            lists.customer().map(|(id, _)| id).collect::<Vec<_>>(),
            vec!["pl-y"]
        );
        assert_eq!(
            referenced_lists(&policy, &rules),
            ["pl-x".to_string(), "pl-z".to_string()].into()
        );
    }

    proptest! {
        /// A plan partitions the rules it was given: it never revokes a rule it was not
        /// given, never loses one, and never revokes what an allow entry covers.
        #[test]
        fn a_revert_plan_partitions_the_rules_and_spares_allowed_ones(
            rules in proptest::collection::vec(any_rule(), 0..40)
        ) {
            let policy = Policy::from_json(
                r#"{"allow": [{"protocol": "tcp", "ports": "0-1000", "sources": ["10.0.0.0/8"]}],
                    "directions": ["ingress"]}"#,
            ).unwrap();
            let set: RuleSet = rules.iter().map(|r| (r.clone(), RuleInfo::default())).collect();
            let plan = policy.plan("sg-1", &set, &Grants::default(), 0);
            prop_assert_eq!(plan.revoke.len() + plan.kept.len(), set.len());
            for rule in plan.revoke.rules() {
                prop_assert!(set.contains(rule));
                prop_assert!(!policy.allow.iter().any(|a| a.covers(rule)));
                prop_assert_eq!(rule.direction, Direction::Ingress);
            }
        }

        /// A rule on a prefix list stays only when every entry of the list is vouched for or
        /// allowed as the rule's traffic from that entry, and the plan still partitions.
        #[test]
        fn a_rule_on_a_list_stays_only_when_every_entry_is_vouched_for_or_allowed(
            (rule, entries, vouched_entries) in any_list_rule(),
            extra in proptest::collection::vec(any_rule(), 0..10),
        ) {
            let policy = Policy::from_json(
                r#"{"allow": [{"protocol": "tcp", "ports": "0-30", "sources": ["pl-x"]},
                              {"protocol": "tcp", "ports": "0-20", "sources": ["10.0.0.0/8"]}]}"#,
            ).unwrap();
            let record = Vouched {
                list_id: "pl-x".into(),
                entries: vouched_entries,
                by: "sgwarden".into(),
                reason: "first use".into(),
            };
            let grants = Grants {
                vouched: vec![record.clone()],
                ..holding("pl-x", ListEntries::Customer(entries.clone()), vec![])
            };
            let mut set: RuleSet = extra.iter().map(|r| (r.clone(), RuleInfo::default())).collect();
            set.insert(rule.clone(), RuleInfo::default());
            let plan = policy.plan("sg-1", &set, &grants, 0);
            prop_assert_eq!(plan.revoke.len() + plan.kept.len(), set.len());
            let exposed_ok = entries.iter().all(|e| {
                record.covers(e)
                    || policy.allow.iter().any(|a| a.covers(&Rule::new(rule.direction, rule.traffic, e.clone())))
            });
            let shape_ok = policy.allow[0].covers(&rule);
            prop_assert_eq!(!plan.revoke.contains(&rule), shape_ok && exposed_ok);
            prop_assert_eq!(plan.reasons.len(), usize::from(shape_ok && !exposed_ok));
            for (listed, _) in &plan.reasons {
                prop_assert!(plan.revoke.contains(listed));
            }
        }
    }
}
