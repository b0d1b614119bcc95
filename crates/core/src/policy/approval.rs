//! Time-limited approvals of one rule shape on one group, and the checked request
//! (`sgwarden approve`) that writes one.

use crate::error::ParseError;
use crate::rule::{Direction, Peer, Rule, Traffic};

/// A time-limited approval of one rule shape on one group (the approvals table's item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The group it approves a rule on (`sg-…`; the table's partition key).
    pub group_id: String,
    /// The item's sort key (`approval-<UTC time>` when `sgwarden approve` wrote it).
    pub approval_id: String,
    /// The approved shape; a rule inside it (traffic inside, peer inside) is approved.
    pub direction: Direction,
    /// The approved traffic; a rule whose traffic it contains is covered.
    pub traffic: Traffic,
    /// The approved peer; a CIDR covers the CIDRs inside it, a group or prefix list only
    /// itself.
    pub peer: Peer,
    /// Epoch seconds; the approval holds while `now < expires_at`.
    pub expires_at: u64,
    /// Who approved it (the caller's ARN, for `sgwarden approve`), when the item says.
    pub approved_by: Option<String>,
    /// Why the access is needed, when the item says.
    pub reason: Option<String>,
}

impl Approval {
    /// Reads the `rule` attribute: `[ingress|egress] <traffic> <peer>`, e.g.
    /// `tcp/22 203.0.113.7/32` (ingress when the direction is left out) or
    /// `egress tcp/443 pl-0123`.
    pub fn parse_rule(text: &str) -> Result<(Direction, Traffic, Peer), ParseError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (direction, rest) = match words.as_slice() {
            ["ingress", rest @ ..] => (Direction::Ingress, rest),
            ["egress", rest @ ..] => (Direction::Egress, rest),
            rest => (Direction::Ingress, rest),
        };
        let [traffic, peer] = rest else {
            return Err(ParseError::new(
                "rule",
                format!("{text:?} is not \"[ingress|egress] <traffic> <peer>\""),
            ));
        };
        let traffic: Traffic = traffic.parse().map_err(|e: ParseError| e.within("rule"))?;
        let peer = if peer.starts_with("sg-") {
            Peer::group(*peer, None)
        } else if peer.starts_with("pl-") {
            Peer::PrefixList(peer.to_string())
        } else {
            Peer::cidr(peer, "rule")?
        };
        Ok((direction, traffic, peer))
    }

    /// The approved shape as the table's `rule` attribute holds it.
    pub fn rule_text(&self) -> String {
        Rule::new(self.direction, self.traffic, self.peer.clone()).to_string()
    }

    /// True when the approval keeps `rule` on `group_id` at `now` (epoch seconds): it has not
    /// expired, and the rule is inside the approved shape.
    pub fn covers(&self, group_id: &str, rule: &Rule, now: u64) -> bool {
        now < self.expires_at
            && self.group_id == group_id
            && self.direction == rule.direction
            && self.traffic.contains(&rule.traffic)
            && match (&self.peer, &rule.peer) {
                (Peer::Ipv4(a), Peer::Ipv4(b)) => a.contains(b),
                (Peer::Ipv6(a), Peer::Ipv6(b)) => a.contains(b),
                (a, b) => a == b,
            }
    }
}

/// The longest an approval written with `sgwarden approve` may last. Approvals are for
/// temporary access (an incident, a migration window); access needed for longer belongs in
/// the policy's `allow` list, reviewed like any other change to it.
pub(crate) const MAX_APPROVAL_SECONDS: u64 = 7 * 24 * 3600;

/// An approval of a public IPv4 range with a prefix shorter than this (more than 16 million
/// addresses), or of an IPv6 range shorter than [`WIDE_IPV6`] (more than an ISP's
/// allocation), needs `--allow-anywhere`.
pub(crate) const WIDE_IPV4: u8 = 8;
pub(crate) const WIDE_IPV6: u8 = 32;

/// What an operator asks to approve (`sgwarden approve`), before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The group to approve a rule on; must be a security group id (`sg-…`).
    pub group_id: String,
    /// `[ingress|egress] <traffic> <peer>`, as the table's `rule` attribute.
    pub rule: String,
    /// How long it lasts, in seconds.
    pub seconds: u64,
    /// Why the access is needed; must not be blank.
    pub reason: String,
    /// Lets the approval cover a wide part of the internet (`0.0.0.0/0`, `0.0.0.0/1`, `::/1`:
    /// wider than [`WIDE_IPV4`] or [`WIDE_IPV6`]), which is refused otherwise.
    pub allow_anywhere: bool,
}

impl ApprovalRequest {
    /// The approval, checked: a `sg-` group, a rule that parses, a duration of 1 second up to
    /// [`MAX_APPROVAL_SECONDS`], a reason, and no peer of anywhere unless asked for.
    pub fn approve(
        &self,
        approval_id: &str,
        approved_by: &str,
        now: u64,
    ) -> Result<Approval, ParseError> {
        self.approve_reaching(approval_id, approved_by, now, &[])
    }

    /// The peer named by the request's rule, when it is a prefix list: its entries are what
    /// an approval of it opens, so the caller reads them ([`ApprovalRequest::approve_reaching`]).
    pub fn prefix_list(&self) -> Option<String> {
        match Approval::parse_rule(&self.rule) {
            Ok((_, _, Peer::PrefixList(id))) => Some(id),
            _ => None,
        }
    }

    /// [`ApprovalRequest::approve`], with the anywhere check applied to what the peer
    /// resolves to as well: `reaches` holds a prefix list's entries. A security-group peer
    /// resolves to whoever can attach an interface to that group, which no entry shows.
    pub fn approve_reaching(
        &self,
        approval_id: &str,
        approved_by: &str,
        now: u64,
        reaches: &[Peer],
    ) -> Result<Approval, ParseError> {
        if !crate::settings::is_group_id(&self.group_id) {
            return Err(ParseError::new(
                "group_id",
                format!("{:?} is not a security group id", self.group_id),
            ));
        }
        let (direction, traffic, peer) = Approval::parse_rule(&self.rule)?;
        if !(1..=MAX_APPROVAL_SECONDS).contains(&self.seconds) {
            return Err(ParseError::new(
                "for",
                format!(
                    "an approval lasts from 1 second to {} days; longer access belongs in the policy",
                    MAX_APPROVAL_SECONDS / 86_400
                ),
            ));
        }
        // An approval is the one thing that keeps a forbidden rule, so "anywhere" is judged
        // on what a range holds, not on its spelling: `0.0.0.0/1` is half the internet.
        let anywhere = |peer: &Peer| {
            let wide = match peer {
                Peer::Ipv4(net) => net.prefix_len() < WIDE_IPV4,
                Peer::Ipv6(net) => net.prefix_len() < WIDE_IPV6,
                _ => false,
            };
            wide && crate::forbid::reaches_internet(peer)
        };
        let wide = format!(
            "a wide part of the internet (wider than a /{WIDE_IPV4}, or an IPv6 /{WIDE_IPV6}); \
             say --allow-anywhere if that is meant"
        );
        if anywhere(&peer) && !self.allow_anywhere {
            return Err(ParseError::new("rule", format!("{peer} is {wide}")));
        }
        if let Some(entry) = reaches.iter().find(|e| anywhere(e)) {
            if !self.allow_anywhere {
                return Err(ParseError::new(
                    "rule",
                    format!("{peer} holds {entry}, {wide}"),
                ));
            }
        }
        if self.reason.trim().is_empty() {
            return Err(ParseError::new("reason", "say why the access is needed"));
        }
        Ok(Approval {
            group_id: self.group_id.clone(),
            approval_id: approval_id.to_string(),
            direction,
            traffic,
            peer,
            expires_at: now.saturating_add(self.seconds),
            approved_by: Some(approved_by.to_string()),
            reason: Some(self.reason.clone()),
        })
    }
}

/// Reads a duration: a whole number of seconds, minutes, hours or days (`90s`, `30m`, `4h`,
/// `2d`).
pub fn duration_seconds(text: &str) -> Result<u64, ParseError> {
    let text = text.trim();
    let bad = || {
        ParseError::new(
            "for",
            format!("{text:?} is not a duration like 30m, 4h or 2d"),
        )
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    number.checked_mul(unit).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn approvals_hold_until_they_expire_and_only_on_their_group() {
        let approval = approval("change-42", "tcp/22 203.0.113.0/24", 1_000);
        let policy = Policy::default();
        let ssh = rule("tcp/22 203.0.113.7/32");
        let approvals = Grants {
            approvals: vec![approval],
            ..Grants::default()
        };
        assert_eq!(
            policy.judge("sg-1", &ssh, &RuleInfo::default(), &approvals, 999),
            Verdict::Approved("change-42".into())
        );
        assert_eq!(
            policy.judge("sg-1", &ssh, &RuleInfo::default(), &approvals, 1_000),
            Verdict::Violates
        );
        assert_eq!(
            policy.judge("sg-2", &ssh, &RuleInfo::default(), &approvals, 0),
            Verdict::Violates
        );
        let wider = rule("tcp/22 0.0.0.0/0");
        assert_eq!(
            policy.judge("sg-1", &wider, &RuleInfo::default(), &approvals, 0),
            Verdict::Violates
        );
        assert!(Approval::parse_rule("tcp/22").is_err());
        assert!(Approval::parse_rule("sideways tcp/22 10.0.0.0/8").is_err());
        assert_eq!(
            Approval::parse_rule("egress tcp/443 pl-1").unwrap().0,
            Direction::Egress
        );
    }

    #[test]
    fn an_approval_request_is_checked_before_anything_is_written() {
        let ok = request("tcp/22 203.0.113.7/32", 4 * 3600)
            .approve("a-1", "arn:aws:iam::111122223333:user/ops", 1_000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.expires_at, 1_000 + 4 * 3600);
        assert_eq!(ok.rule_text(), "ingress tcp/22 203.0.113.7/32");
        assert_eq!(
            ok.approved_by.as_deref(),
            Some("arn:aws:iam::111122223333:user/ops")
        );
        assert!(ok.covers("sg-0123", &rule("tcp/22 203.0.113.7/32"), 1_000));
        let refused = |r: ApprovalRequest| r.approve("a", "me", 0).map_err(|e| e.to_string());
        for (bad, field) in [
            (request("tcp/22", 60), "rule"),
            (request("tcp/22 0.0.0.0/0", 60), "rule"),
            (request("tcp/22 ::/0", 60), "rule"),
            (request("tcp/22 10.0.0.0/8", 0), "for"),
            (
                request("tcp/22 10.0.0.0/8", MAX_APPROVAL_SECONDS + 1),
                "for",
            ),
            (
                ApprovalRequest {
                    reason: " ".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "reason",
            ),
            (
                ApprovalRequest {
                    group_id: "i-1".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "group_id",
            ),
            (
                ApprovalRequest {
                    group_id: "sg-".into(),
                    ..request("tcp/22 10.0.0.0/8", 60)
                },
                "group_id",
            ),
        ] {
            let error = refused(bad).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
        assert!(request("tcp/22 10.0.0.0/8", MAX_APPROVAL_SECONDS)
            .approve("a", "me", 0)
            .is_ok());
        assert_eq!(duration_seconds("7d").ok(), Some(MAX_APPROVAL_SECONDS));
        let anywhere = ApprovalRequest {
            allow_anywhere: true,
            ..request("egress tcp/443 0.0.0.0/0", 60)
        };
        assert_eq!(
            anywhere
                .approve("a", "me", 0)
                .map(|a| a.rule_text())
                .ok()
                .as_deref(),
            Some("egress tcp/443 0.0.0.0/0")
        );
        assert!(
            request("tcp/22 11.0.0.0/8", 60)
                .approve("a", "me", 0)
                .is_ok(),
            "a /8 is not anywhere"
        );
    }

    #[test]
    fn durations_read_in_seconds_minutes_hours_and_days() {
        for (text, seconds) in [("90s", 90), ("30m", 1_800), ("4h", 14_400), ("2d", 172_800)] {
            assert_eq!(duration_seconds(text).ok(), Some(seconds), "{text}");
        }
        for bad in ["", "h", "4", "4w", "-4h", "4.5h", "99999999999999999999d"] {
            assert!(duration_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_kind_of_rule_reads_back_from_its_text() {
        for text in [
            "ingress all 0.0.0.0/0",
            "egress icmp 10.0.0.0/8",
            "ingress icmp/8:0 10.0.0.0/8",
            "ingress icmpv6/128 ::/0",
            "ingress 47 192.0.2.0/24",
            "ingress udp/53 sg-0abc",
            "egress tcp/443 pl-0def",
            "ingress tcp/0-65535 2001:db8::/32",
        ] {
            assert_eq!(rule(text).to_string(), text);
        }
    }

    #[test]
    fn an_approval_of_a_group_or_prefix_list_covers_exactly_that_peer() {
        let approval = |text: &str| approval("a", text, 10);
        let by_group = approval("tcp/5432 sg-app");
        assert!(by_group.covers("sg-1", &rule("tcp/5432 sg-app"), 0));
        assert!(!by_group.covers("sg-1", &rule("tcp/5432 sg-other"), 0));
        assert!(!by_group.covers("sg-1", &rule("egress tcp/5432 sg-app"), 0));
        assert!(!by_group.covers("sg-1", &rule("tcp/5433 sg-app"), 0));
        let by_list = approval("egress tcp/443 pl-1");
        assert!(by_list.covers("sg-1", &rule("egress tcp/443 pl-1"), 9));
        assert!(!by_list.covers("sg-1", &rule("egress tcp/443 pl-2"), 9));
        assert!(!by_list.covers("sg-1", &rule("egress tcp/443 pl-1"), 10));
        let by_cidr = approval("tcp/22 10.0.0.0/8");
        assert!(by_cidr.covers("sg-1", &rule("tcp/22 10.1.0.0/16"), 0));
        assert!(!by_cidr.covers("sg-1", &rule("tcp/22 11.0.0.0/16"), 0));
        assert!(!by_cidr.covers("sg-1", &rule("tcp/22 ::/0"), 0));
    }

    #[test]
    fn an_approval_of_a_prefix_list_is_refused_when_the_list_holds_anywhere() {
        let list = request("tcp/22 pl-x", 60);
        assert_eq!(list.prefix_list().as_deref(), Some("pl-x"));
        assert_eq!(request("tcp/22 10.0.0.0/8", 60).prefix_list(), None);
        assert_eq!(request("tcp/22 sg-1", 60).prefix_list(), None);
        assert_eq!(request("nonsense", 60).prefix_list(), None);
        for anywhere in ["0.0.0.0/0", "::/0"] {
            let error = list
                .approve_reaching(
                    "a",
                    "me",
                    0,
                    &[
                        Peer::cidr("10.0.0.0/8", "").unwrap(),
                        Peer::cidr(anywhere, "").unwrap(),
                    ],
                )
                .unwrap_err();
            assert_eq!(error.field, "rule");
            assert!(error.reason.contains(anywhere), "{error}");
            assert!(error.reason.contains("pl-x"), "{error}");
        }
        let reaches = [Peer::cidr("0.0.0.0/0", "").unwrap()];
        assert!(ApprovalRequest {
            allow_anywhere: true,
            ..list.clone()
        }
        .approve_reaching("a", "me", 0, &reaches)
        .is_ok());
        // Half the internet is as wide as all of it; a private or narrow range is not.
        for wide in ["0.0.0.0/1", "::/1", "10.0.0.0/7"] {
            assert!(list
                .approve_reaching("a", "me", 0, &[Peer::cidr(wide, "").unwrap()])
                .is_err());
        }
        for narrow in ["10.0.0.0/8", "11.0.0.0/8", "fc00::/7", "2001:db8::/32"] {
            assert!(list
                .approve_reaching("a", "me", 0, &[Peer::cidr(narrow, "").unwrap()])
                .is_ok());
        }
        assert!(list.approve("a", "me", 0).is_ok());
    }

    #[test]
    fn approving_a_wide_part_of_the_internet_needs_allow_anywhere_however_it_is_written() {
        let refused = |rule: &str| request(rule, 60).approve("a", "me", 0).is_err();
        for wide in [
            "tcp/22 0.0.0.0/1",
            "tcp/22 128.0.0.0/1",
            "tcp/22 ::/1",
            "tcp/22 2000::/3",
            "tcp/22 8.0.0.0/7",
        ] {
            assert!(refused(wide), "{wide}");
            let asked = ApprovalRequest {
                allow_anywhere: true,
                ..request(wide, 60)
            };
            assert!(asked.approve("a", "me", 0).is_ok(), "{wide}");
        }
        for fine in [
            "tcp/22 9.0.0.0/8",
            "tcp/22 2600:1f00::/32",
            "tcp/22 fc00::/7",
            "tcp/22 sg-1",
        ] {
            assert!(!refused(fine), "{fine}");
        }
    }

    proptest! {
        /// A rule's text is what the approvals table stores for an exemption: reading it back
        /// gives the same rule.
        #[test]
        fn a_rule_s_text_reads_back_as_the_same_rule(rule in any_rule()) {
            let (direction, traffic, peer) = Approval::parse_rule(&rule.to_string()).unwrap();
            prop_assert_eq!(Rule::new(direction, traffic, peer), rule);
        }
    }
}
