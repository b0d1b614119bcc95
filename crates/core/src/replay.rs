//! `sgwarden replay`'s pure part: what revert-ingress would have done with the calls of the
//! last weeks, gathered by principal and group, counted, rendered, and turned into
//! suggestions.
//!
//! Turning on an auto-revert is frightening because nobody knows whose changes it would have
//! undone. The replay answers from CloudTrail's event history: each call is judged by the
//! function's own judgement (revert-ingress's library, `core::policy`), and what is decided
//! here is only how the answers are told: who would have been reverted, where, how often,
//! and which principals or shapes look like they belong in the policy (`exempt`, `allow`, or
//! an approval). Deciding nothing about a rule here keeps the replay from drifting from the
//! function it previews.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::ParseError;

/// CloudTrail's event history keeps 90 days: the longest window a replay can read.
pub const MAX_WINDOW_SECONDS: u64 = 90 * 86_400;

/// A principal is suggested for `exempt` only after this many calls, every one reverted.
pub const EXEMPT_AFTER: usize = 2;

/// A shape is suggested for `allow` or an approval once it would have been reverted this
/// many times.
pub const ALLOW_AFTER: usize = 3;

/// Reads `--since`: whole hours or days back from now (`36h`, `14d`), at most 90 days.
pub fn parse_since(text: &str) -> Result<u64, ParseError> {
    let bad = |why: &str| {
        ParseError::new(
            "since",
            format!("{text:?} {why}: give hours or days back from now, like 36h or 14d, at most 90d (CloudTrail's event history)"),
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(|| bad("is empty"))?;
    let (number, unit) = text.split_at(split);
    let unit = match unit {
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad("is not a window")),
    };
    let number: u64 = match number.parse() {
        Ok(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(bad("is not a window")),
    };
    match number.checked_mul(unit) {
        Some(seconds) if seconds <= MAX_WINDOW_SECONDS => Ok(seconds),
        _ => Err(bad("is longer than CloudTrail keeps")),
    }
}

/// What became of a rule the replay would have reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fate {
    /// Still in the group: the function would revert it now.
    WouldRevert,
    /// Gone from the group since (by hand, or replaced).
    SinceRemoved,
}

impl Fate {
    fn text(self) -> &'static str {
        match self {
            Fate::WouldRevert => "would be reverted",
            Fate::SinceRemoved => "would have been reverted, since removed",
        }
    }
}

/// One rule of a call that the function would have revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reverted {
    /// The rule, as `sgwarden` prints rules (`ingress tcp/22 0.0.0.0/0`).
    pub rule: String,
    /// Whether it is still there.
    pub fate: Fate,
    /// What decided, when more than "not allowed" (a forbid entry, a prefix list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// How one call of the history came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Judged: the rules that would have been reverted, and how many were kept.
    Judged {
        /// The rules revoked.
        reverted: Vec<Reverted>,
        /// Rules the policy, an approval or an exemption keeps.
        kept: usize,
    },
    /// The call failed (`errorCode`): it changed nothing.
    Failed {
        /// CloudTrail's `errorCode`.
        code: String,
    },
    /// The group the call changed is gone: nothing is left to revert.
    GroupGone,
    /// Not judged, as the function would not judge it (its own call, out of scope, an
    /// unguarded direction, a prefix-list change), with the reason.
    Skipped {
        /// Why, in the function's words.
        reason: String,
    },
}

/// One call of the history, and how it came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Call {
    /// CloudTrail's `eventID`.
    pub event_id: String,
    /// CloudTrail's `eventName`.
    pub event_name: String,
    /// CloudTrail's `eventTime`.
    pub event_time: Option<String>,
    /// The account the call was made in.
    pub account: String,
    /// The region the call was made in.
    pub region: String,
    /// Who made it (the role, for a session: see [`crate::event::Principal::name`]).
    pub principal: String,
    /// The group it changed, when known.
    pub group_id: Option<String>,
    /// How it came out.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Call {
    fn reverted(&self) -> &[Reverted] {
        match &self.outcome {
            Outcome::Judged { reverted, .. } => reverted,
            _ => &[],
        }
    }
}

/// The replay of a window of history: where it was read, and every call found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    /// The window as given (`14d`).
    pub since: String,
    /// Its start and end, RFC 3339.
    pub start: String,
    /// The end of the window (now).
    pub end: String,
    /// The account-regions read, as `account region`.
    pub places: Vec<String>,
    /// Every call found, in the order read.
    pub calls: Vec<Call>,
}

/// The counts of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Calls judged.
    pub judged: usize,
    /// Rules that would be reverted now.
    pub would_revert: usize,
    /// Rules that would have been reverted, since removed.
    pub since_removed: usize,
    /// Rules kept.
    pub kept: usize,
    /// Failed calls, skipped.
    pub failed: usize,
    /// Calls whose group is gone.
    pub group_gone: usize,
    /// Calls not judged for another reason.
    pub skipped: usize,
}

/// One principal's reverted calls, by group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalReplay {
    /// The principal.
    pub principal: String,
    /// Its calls judged.
    pub judged: usize,
    /// Those of them with a rule that would have been reverted.
    pub reverted: usize,
    /// By account, region and group: the calls with a rule reverted.
    pub groups: Vec<GroupReplay>,
}

/// The reverted calls of one principal in one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupReplay {
    /// The group's account.
    pub account: String,
    /// The group's region.
    pub region: String,
    /// The group.
    pub group_id: String,
    /// The calls, oldest first.
    pub calls: Vec<Call>,
}

/// What the replay suggests putting in the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Suggestion {
    /// Every change of this principal would have been reverted: perhaps it belongs in
    /// `exempt` (a pipeline's role), perhaps its owner should hear first.
    Exempt {
        /// The principal.
        principal: String,
        /// Its calls judged, all reverted.
        calls: usize,
    },
    /// This shape would have been reverted again and again: perhaps an `allow` entry, or an
    /// approval.
    Allow {
        /// The rule.
        rule: String,
        /// How often it would have been reverted.
        times: usize,
    },
}

impl std::fmt::Display for Suggestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Suggestion::Exempt { principal, calls } => write!(
                f,
                "exempt {principal}? every one of its {calls} call(s) would have been reverted"
            ),
            Suggestion::Allow { rule, times } => write!(
                f,
                "allow or approve \"{rule}\"? it would have been reverted {times} times"
            ),
        }
    }
}

impl Replay {
    /// The counts over every call.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for call in &self.calls {
            match &call.outcome {
                Outcome::Judged { reverted, kept } => {
                    summary.judged += 1;
                    summary.kept += kept;
                    for rule in reverted {
                        match rule.fate {
                            Fate::WouldRevert => summary.would_revert += 1,
                            Fate::SinceRemoved => summary.since_removed += 1,
                        }
                    }
                }
                Outcome::Failed { .. } => summary.failed += 1,
                Outcome::GroupGone => summary.group_gone += 1,
                Outcome::Skipped { .. } => summary.skipped += 1,
            }
        }
        summary
    }

    /// True when any call would have been reverted: the exit code's "changes pending".
    pub fn reverts(&self) -> bool {
        self.calls.iter().any(|c| !c.reverted().is_empty())
    }

    /// The principals with a call that would have been reverted, most reverted first, each
    /// with its calls by group.
    pub fn by_principal(&self) -> Vec<PrincipalReplay> {
        type Groups = BTreeMap<(String, String, String), Vec<Call>>;
        let mut principals: BTreeMap<&str, (usize, usize, Groups)> = BTreeMap::new();
        for call in &self.calls {
            if !matches!(call.outcome, Outcome::Judged { .. }) {
                continue;
            }
            let (judged, reverted, groups) = principals.entry(&call.principal).or_default();
            *judged += 1;
            if call.reverted().is_empty() {
                continue;
            }
            *reverted += 1;
            let group_id = call.group_id.clone().unwrap_or_default();
            groups
                .entry((call.account.clone(), call.region.clone(), group_id))
                .or_default()
                .push(call.clone());
        }
        let mut list: Vec<PrincipalReplay> = principals
            .into_iter()
            .filter(|(_, (_, reverted, _))| *reverted > 0)
            .map(|(principal, (judged, reverted, groups))| PrincipalReplay {
                principal: principal.to_string(),
                judged,
                reverted,
                groups: groups
                    .into_iter()
                    .map(|((account, region, group_id), mut calls)| {
                        calls.sort_by(|a, b| a.event_time.cmp(&b.event_time));
                        GroupReplay {
                            account,
                            region,
                            group_id,
                            calls,
                        }
                    })
                    .collect(),
            })
            .collect();
        list.sort_by(|a, b| {
            b.reverted
                .cmp(&a.reverted)
                .then(a.principal.cmp(&b.principal))
        });
        list
    }

    /// Principals whose every judged call (at least [`EXEMPT_AFTER`]) would have been
    /// reverted, then shapes that would have been reverted at least [`ALLOW_AFTER`] times.
    pub fn suggestions(&self) -> Vec<Suggestion> {
        let mut suggestions: Vec<Suggestion> = self
            .by_principal()
            .into_iter()
            .filter(|p| p.judged >= EXEMPT_AFTER && p.reverted == p.judged)
            .map(|p| Suggestion::Exempt {
                principal: p.principal,
                calls: p.judged,
            })
            .collect();
        let mut shapes: BTreeMap<&str, usize> = BTreeMap::new();
        for rule in self.calls.iter().flat_map(Call::reverted) {
            *shapes.entry(&rule.rule).or_default() += 1;
        }
        let mut repeated: Vec<(&str, usize)> = shapes
            .into_iter()
            .filter(|(_, times)| *times >= ALLOW_AFTER)
            .collect();
        repeated.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        suggestions.extend(repeated.into_iter().map(|(rule, times)| Suggestion::Allow {
            rule: rule.to_string(),
            times,
        }));
        suggestions
    }

    /// The replay for people: the window and places, each principal's reverted calls by
    /// group, the counts, the suggestions.
    pub fn render(&self) -> String {
        let mut out = format!(
            "Replay of revert-ingress over {} ({} to {}) in {}\n",
            self.since,
            self.start,
            self.end,
            self.places.join(", ")
        );
        for principal in self.by_principal() {
            out.push_str(&format!(
                "{}: {} of {} call(s) would have been reverted\n",
                principal.principal, principal.reverted, principal.judged
            ));
            for group in &principal.groups {
                out.push_str(&format!(
                    "  {} {} {}\n",
                    group.account, group.region, group.group_id
                ));
                for call in &group.calls {
                    out.push_str(&format!(
                        "    {} {} at {}\n",
                        call.event_name,
                        call.event_id,
                        call.event_time.as_deref().unwrap_or("an unknown time")
                    ));
                    for rule in call.reverted() {
                        let why = rule
                            .why
                            .as_ref()
                            .map(|why| format!(" ({why})"))
                            .unwrap_or_default();
                        out.push_str(&format!(
                            "      - {}  {}{why}\n",
                            rule.rule,
                            rule.fate.text()
                        ));
                    }
                }
            }
        }
        let s = self.summary();
        out.push_str(&format!(
            "{} call(s) judged: {} rule(s) would be reverted, {} would have been reverted but \
             since removed, {} kept; {} failed call(s) skipped, {} call(s) on a group gone, {} \
             call(s) not judged.\n",
            s.judged, s.would_revert, s.since_removed, s.kept, s.failed, s.group_gone, s.skipped
        ));
        let suggestions = self.suggestions();
        if suggestions.is_empty() {
            out.push_str("Suggestions: none.\n");
        } else {
            out.push_str("Suggestions:\n");
            for suggestion in suggestions {
                out.push_str(&format!("  {suggestion}\n"));
            }
        }
        out
    }

    /// The replay for a pipeline (`--format json`, schema `sgwarden.replay/1`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "schema": "sgwarden.replay/1",
            "since": self.since,
            "start": self.start,
            "end": self.end,
            "places": self.places,
            "summary": self.summary(),
            "principals": self.by_principal(),
            "suggestions": self.suggestions(),
            "calls": self.calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_hours_and_days_up_to_ninety_days() {
        assert_eq!(parse_since("14d").unwrap(), 14 * 86_400);
        assert_eq!(parse_since("36h").unwrap(), 36 * 3_600);
        assert_eq!(parse_since("90d").unwrap(), MAX_WINDOW_SECONDS);
        assert_eq!(parse_since("2160h").unwrap(), MAX_WINDOW_SECONDS);
        for bad in [
            "91d", "2161h", "0d", "", "d", "14", "2w", "30m", "+3d", "1.5d", " 3d",
        ] {
            let error = parse_since(bad).unwrap_err().to_string();
            assert!(
                error.contains("like 36h or 14d, at most 90d"),
                "{bad}: {error}"
            );
        }
        assert!(parse_since("91d")
            .unwrap_err()
            .to_string()
            .contains("longer than CloudTrail keeps"));
    }

    fn call(id: &str, principal: &str, group: &str, outcome: Outcome) -> Call {
        Call {
            event_id: id.into(),
            event_name: "AuthorizeSecurityGroupIngress".into(),
            event_time: Some(format!("2026-11-2{}T10:00:00Z", id.len() % 10)),
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            principal: principal.into(),
            group_id: Some(group.into()),
            outcome,
        }
    }

    fn judged(rules: &[(&str, Fate)], kept: usize) -> Outcome {
        Outcome::Judged {
            reverted: rules
                .iter()
                .map(|(rule, fate)| Reverted {
                    rule: rule.to_string(),
                    fate: *fate,
                    why: None,
                })
                .collect(),
            kept,
        }
    }

    fn replay(calls: Vec<Call>) -> Replay {
        Replay {
            since: "14d".into(),
            start: "2026-11-18T10:00:00Z".into(),
            end: "2026-12-02T10:00:00Z".into(),
            places: vec!["111122223333 eu-west-1".into()],
            calls,
        }
    }

    const SSH: &str = "ingress tcp/22 0.0.0.0/0";
    const WEB: &str = "ingress tcp/8080 10.0.0.0/8";

    fn history() -> Replay {
        replay(vec![
            call(
                "e1",
                "pipeline",
                "sg-2",
                judged(&[(WEB, Fate::WouldRevert)], 0),
            ),
            call(
                "e22",
                "pipeline",
                "sg-1",
                judged(&[(WEB, Fate::SinceRemoved)], 0),
            ),
            call(
                "e333",
                "pipeline",
                "sg-1",
                judged(&[(WEB, Fate::WouldRevert)], 0),
            ),
            call(
                "e4444",
                "dave",
                "sg-1",
                judged(&[(SSH, Fate::WouldRevert)], 1),
            ),
            call("e55555", "dave", "sg-1", judged(&[], 2)),
            call("e666666", "admin", "sg-1", judged(&[], 1)),
            call(
                "f",
                "dave",
                "sg-1",
                Outcome::Failed {
                    code: "Client.InvalidPermission.Duplicate".into(),
                },
            ),
            call("g", "dave", "sg-9", Outcome::GroupGone),
            call(
                "s",
                "sgwarden",
                "sg-1",
                Outcome::Skipped {
                    reason: "made by this function's own role".into(),
                },
            ),
        ])
    }

    #[test]
    fn the_summary_counts_rules_by_fate_and_calls_by_why_they_were_not_judged() {
        assert_eq!(
            history().summary(),
            Summary {
                judged: 6,
                would_revert: 3,
                since_removed: 1,
                kept: 4,
                failed: 1,
                group_gone: 1,
                skipped: 1,
            }
        );
        assert!(history().reverts());
        assert!(!replay(vec![call("e", "admin", "sg-1", judged(&[], 1))]).reverts());
    }

    #[test]
    fn principals_come_most_reverted_first_with_their_calls_by_group() {
        let principals = history().by_principal();
        let names: Vec<(&str, usize, usize)> = principals
            .iter()
            .map(|p| (p.principal.as_str(), p.reverted, p.judged))
            .collect();
        assert_eq!(names, vec![("pipeline", 3, 3), ("dave", 1, 2)]);
        let groups: Vec<(&str, usize)> = principals[0]
            .groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.calls.len()))
            .collect();
        assert_eq!(groups, vec![("sg-1", 2), ("sg-2", 1)]);
    }

    #[test]
    fn suggestions_name_principals_always_reverted_and_shapes_reverted_again_and_again() {
        assert_eq!(
            history().suggestions(),
            vec![
                Suggestion::Exempt {
                    principal: "pipeline".into(),
                    calls: 3
                },
                Suggestion::Allow {
                    rule: WEB.into(),
                    times: 3
                },
            ]
        );
        // One reverted call is not a pattern, nor is a shape reverted twice.
        let few = replay(vec![
            call("e1", "dave", "sg-1", judged(&[(SSH, Fate::WouldRevert)], 0)),
            call("e2", "erin", "sg-1", judged(&[(SSH, Fate::WouldRevert)], 0)),
        ]);
        assert!(few.suggestions().is_empty());
    }

    #[test]
    fn the_text_says_who_where_what_became_of_each_rule_the_counts_and_suggestions() {
        assert_eq!(
            history().render(),
            "Replay of revert-ingress over 14d (2026-11-18T10:00:00Z to 2026-12-02T10:00:00Z) \
             in 111122223333 eu-west-1\n\
             pipeline: 3 of 3 call(s) would have been reverted\n\
             \x20 111122223333 eu-west-1 sg-1\n\
             \x20   AuthorizeSecurityGroupIngress e22 at 2026-11-23T10:00:00Z\n\
             \x20     - ingress tcp/8080 10.0.0.0/8  would have been reverted, since removed\n\
             \x20   AuthorizeSecurityGroupIngress e333 at 2026-11-24T10:00:00Z\n\
             \x20     - ingress tcp/8080 10.0.0.0/8  would be reverted\n\
             \x20 111122223333 eu-west-1 sg-2\n\
             \x20   AuthorizeSecurityGroupIngress e1 at 2026-11-22T10:00:00Z\n\
             \x20     - ingress tcp/8080 10.0.0.0/8  would be reverted\n\
             dave: 1 of 2 call(s) would have been reverted\n\
             \x20 111122223333 eu-west-1 sg-1\n\
             \x20   AuthorizeSecurityGroupIngress e4444 at 2026-11-25T10:00:00Z\n\
             \x20     - ingress tcp/22 0.0.0.0/0  would be reverted\n\
             6 call(s) judged: 3 rule(s) would be reverted, 1 would have been reverted but since \
             removed, 4 kept; 1 failed call(s) skipped, 1 call(s) on a group gone, 1 call(s) not \
             judged.\n\
             Suggestions:\n\
             \x20 exempt pipeline? every one of its 3 call(s) would have been reverted\n\
             \x20 allow or approve \"ingress tcp/8080 10.0.0.0/8\"? it would have been reverted 3 \
             times\n"
        );
        let quiet = replay(vec![call("e", "admin", "sg-1", judged(&[], 1))]).render();
        assert!(quiet.ends_with(
            "1 call(s) judged: 0 rule(s) would be reverted, 0 would have been reverted but since \
             removed, 1 kept; 0 failed call(s) skipped, 0 call(s) on a group gone, 0 call(s) not \
             judged.\nSuggestions: none.\n"
        ));
    }

    #[test]
    fn the_json_carries_the_summary_principals_suggestions_and_every_call() {
        let json = history().to_json();
        assert_eq!(json["schema"], "sgwarden.replay/1");
        assert_eq!(json["summary"]["since_removed"], 1);
        assert_eq!(json["principals"][0]["principal"], "pipeline");
        assert_eq!(
            json["principals"][0]["groups"][0]["calls"][0]["reverted"][0]["fate"],
            "since-removed"
        );
        assert_eq!(json["suggestions"][0]["kind"], "exempt");
        assert_eq!(json["suggestions"][1]["rule"], WEB);
        assert_eq!(json["calls"][6]["outcome"], "failed");
        assert_eq!(
            json["calls"][6]["code"],
            "Client.InvalidPermission.Duplicate"
        );
        assert_eq!(json["calls"][7]["outcome"], "group-gone");
        assert_eq!(json["calls"].as_array().unwrap().len(), 9);
    }

    #[test]
    fn a_history_record_parses_as_the_event_that_carries_it() {
        let event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/cloudtrail-authorize-ingress.json"
        ))
        .unwrap();
        let record = crate::event::cloudtrail::parse_record(&event["detail"], "111122223333");
        assert_eq!(
            record.unwrap(),
            crate::event::cloudtrail::parse(&event).unwrap()
        );
    }
}
