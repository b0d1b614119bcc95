//! revert-ingress's findings for AWS Security Hub (`SECURITY_HUB=true`), in the AWS Security
//! Finding Format, as data: the adapter turns a [`Finding`] into the SDK's type and imports it
//! with `BatchImportFindings`.
//!
//! Security teams read Security Hub, not log groups. A revert is one finding per group (the
//! rules it revoked, who made the call, what decided); a dry run is one finding per rule it
//! would revoke, the onboarding view of what enforcing would do. A finding's `Id` is derived
//! from what it is about (account, region, group, mode and the rules), so the same revert
//! of the same rule updates the finding in place instead of piling up another.
//!
//! Security Hub takes a finding under the default product ARN of a custom integration only
//! from the account the finding is about (`AwsAccountId` must be the caller's): a central
//! deployment imports each member's findings through the member role, in the member's
//! account and region, and the security account sees them through Security Hub's own
//! administrator aggregation.

use crate::forbid::{reaches_internet, HIGH_RISK_PORTS};
use crate::rule::{Peer, PortRange, Rule, Traffic};

/// The ASFF schema version every finding declares.
pub const SCHEMA_VERSION: &str = "2018-10-08";

/// How bad what was exposed is, as Security Hub's severity labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `LOW`: reaches no public address (a private range, a group, a prefix list of private
    /// entries).
    Low,
    /// `MEDIUM`: from the internet, on a port that is not high-risk.
    Medium,
    /// `HIGH`: from the internet, on one of Security Hub EC2.19's high-risk TCP ports.
    High,
    /// `CRITICAL`: every protocol, or every TCP port, from the internet.
    Critical,
}

impl Severity {
    /// The ASFF `Severity.Label` (`LOW`, `MEDIUM`, `HIGH`, `CRITICAL`).
    pub fn label(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// What one rule exposes: every protocol or port from the internet is critical, a
    /// Security Hub EC2.19 high-risk port from the internet high, anything else from the
    /// internet medium, and what reaches no public address (a private range, a group) low.
    /// A rule on a prefix list is judged by the entries given for it (`reaches`), and counts
    /// as the internet when they are not known.
    pub fn of(rule: &Rule, reaches: Option<&[Peer]>) -> Severity {
        let public = match (&rule.peer, reaches) {
            (Peer::PrefixList(_), None) => true,
            (Peer::PrefixList(_), Some(entries)) => entries.iter().any(reaches_internet),
            (peer, _) => reaches_internet(peer),
        };
        if !public {
            return Severity::Low;
        }
        let every_port = Traffic::Tcp(PortRange::single(0)).overlaps(&rule.traffic)
            && Traffic::Tcp(PortRange::single(u16::MAX)).overlaps(&rule.traffic);
        if rule.traffic == Traffic::All || every_port {
            return Severity::Critical;
        }
        let high_risk = HIGH_RISK_PORTS
            .iter()
            .any(|p| Traffic::Tcp(PortRange::single(*p)).overlaps(&rule.traffic));
        if high_risk {
            Severity::High
        } else {
            Severity::Medium
        }
    }
}

/// Whether the finding reports a revert done or one a dry run would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The rules were revoked: `Compliance.Status` PASSED (the group complies again) and
    /// `Workflow.Status` RESOLVED (remediated).
    Reverted,
    /// Dry run: the rule is still there. `Compliance.Status` FAILED, `Workflow.Status` NEW.
    WouldRevert,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Reverted => "reverted",
            Mode::WouldRevert => "would-revert",
        }
    }
}

/// One rule a finding is about, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRule {
    /// The rule revoked, or that a dry run would revoke.
    pub rule: Rule,
    /// The verdict in words (`forbidden by security-hub-ec2-13: …`).
    pub why: String,
    /// What the rule exposes ([`Severity::of`]).
    pub severity: Severity,
}

/// Where the group is and who changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The account the group is in (12 digits); the finding is imported there.
    pub account: String,
    /// The region the group is in; the finding is imported there.
    pub region: String,
    /// The group's id (`sg-…`).
    pub group_id: String,
    /// The caller of the change (its ARN), when an event named one; a sweep has none.
    pub actor: Option<String>,
    /// The CloudTrail event id, when an event was handled.
    pub event_id: Option<String>,
}

/// A finding as sgwarden writes it; every field maps to one ASFF field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// ASFF `Id`: `sgwarden/revert-ingress/<account>/<region>/<group>/<mode>/<digest of the
    /// rules>`, so the same revert of the same rules updates one finding.
    pub id: String,
    /// ASFF `ProductArn`: the account's default custom-integration product ([`product_arn`]).
    pub product_arn: String,
    /// ASFF `GeneratorId`: always `sgwarden-revert-ingress`.
    pub generator_id: String,
    /// ASFF `AwsAccountId`: the group's account, which must be the importing account.
    pub aws_account_id: String,
    /// ASFF `Region`, and the resource's region: the group's.
    pub region: String,
    /// ASFF `Types`: the network-reachability best-practice type.
    pub types: Vec<String>,
    /// ASFF `Title`, cut to Security Hub's 256 bytes.
    pub title: String,
    /// ASFF `Description`: the rules and why each was judged, cut to 1024 bytes.
    pub description: String,
    /// ASFF `Severity.Label`: the worst of the finding's rules.
    pub severity: Severity,
    /// Reverted or dry run: decides `Compliance.Status` and `Workflow.Status`.
    pub mode: Mode,
    /// ASFF `Resources[0].Type`: always `AwsEc2SecurityGroup`.
    pub resource_type: &'static str,
    /// ASFF `Resources[0].Id`: the group's ARN.
    pub resource_id: String,
    /// ASFF `Resources[0].Partition`, from the region ([`partition`]).
    pub partition: &'static str,
    /// `Resources[0].Details.AwsEc2SecurityGroup.GroupId` (`sg-…`).
    pub group_id: String,
    /// ASFF `ProductFields`: rules, decision, actor, event, mode.
    pub product_fields: Vec<(String, String)>,
    /// RFC 3339, both `CreatedAt` and `UpdatedAt` of this import.
    pub at: String,
}

/// The generator every sgwarden finding names.
pub(crate) const GENERATOR_ID: &str = "sgwarden-revert-ingress";

/// ASFF finding type: a network reachability check of security best practice.
pub(crate) const FINDING_TYPE: &str =
    "Software and Configuration Checks/AWS Security Best Practices/Network Reachability";

/// Security Hub's limits: a description, a title, a `ProductFields` value (a finding over
/// any of them is refused whole).
const DESCRIPTION_LIMIT: usize = 1024;
const TITLE_LIMIT: usize = 256;
const FIELD_LIMIT: usize = 2048;

/// `text` cut to at most `limit` bytes on a character boundary, ending in `...` when cut.
fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// The partition a region is in.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// The default product of a custom integration in the account and region: the only product
/// a finding may be imported under without a partner integration.
pub fn product_arn(account: &str, region: &str) -> String {
    format!(
        "arn:{}:securityhub:{region}:{account}:product/{account}/default",
        partition(region)
    )
}

/// A 64-bit FNV-1a digest: stable across builds and platforms, which the std hasher is not.
fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The findings for one group: one for the whole revert, or one per rule in a dry run.
/// Nothing when no rule is given.
pub fn findings(subject: &Subject, rules: &[RevokedRule], mode: Mode, at: &str) -> Vec<Finding> {
    if rules.is_empty() {
        return Vec::new();
    }
    match mode {
        Mode::Reverted => vec![finding(subject, rules, mode, at)],
        Mode::WouldRevert => rules
            .iter()
            .map(|rule| finding(subject, std::slice::from_ref(rule), mode, at))
            .collect(),
    }
}

fn finding(subject: &Subject, rules: &[RevokedRule], mode: Mode, at: &str) -> Finding {
    let mut texts: Vec<String> = rules.iter().map(|r| r.rule.to_string()).collect();
    texts.sort();
    let id = format!(
        "sgwarden/revert-ingress/{}/{}/{}/{}/{}",
        subject.account,
        subject.region,
        subject.group_id,
        mode.word(),
        digest(&texts.join("\n"))
    );
    let severity = rules
        .iter()
        .map(|r| r.severity)
        .max()
        .unwrap_or(Severity::Low);
    let who = subject
        .actor
        .as_deref()
        .unwrap_or("someone (found by the sweep)");
    let listed: Vec<String> = rules
        .iter()
        .map(|r| format!("{} ({})", r.rule, r.why))
        .collect();
    let (title, verb) = match mode {
        Mode::Reverted => (
            format!(
                "sgwarden reverted {} rule(s) on {}",
                rules.len(),
                subject.group_id
            ),
            "revoked",
        ),
        Mode::WouldRevert => (
            format!("sgwarden would revert {} on {}", texts[0], subject.group_id),
            "would revoke (dry run)",
        ),
    };
    let description = cut(
        format!(
            "revert-ingress {verb} from {} what {who} opened: {}",
            subject.group_id,
            listed.join("; ")
        ),
        DESCRIPTION_LIMIT,
    );
    let mut product_fields = vec![
        ("sgwarden/mode".to_string(), mode.word().to_string()),
        ("sgwarden/rules".to_string(), texts.join("; ")),
        (
            "sgwarden/decided".to_string(),
            rules
                .iter()
                .map(|r| r.why.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ];
    if let Some(actor) = &subject.actor {
        product_fields.push(("sgwarden/actor".to_string(), actor.clone()));
    }
    if let Some(event) = &subject.event_id {
        product_fields.push(("sgwarden/event".to_string(), event.clone()));
    }
    let product_fields = product_fields
        .into_iter()
        .map(|(key, value)| (key, cut(value, FIELD_LIMIT)))
        .collect();
    let partition = partition(&subject.region);
    Finding {
        id,
        product_arn: product_arn(&subject.account, &subject.region),
        generator_id: GENERATOR_ID.to_string(),
        aws_account_id: subject.account.clone(),
        region: subject.region.clone(),
        types: vec![FINDING_TYPE.to_string()],
        title: cut(title, TITLE_LIMIT),
        description,
        severity,
        mode,
        resource_type: "AwsEc2SecurityGroup",
        resource_id: format!(
            "arn:{partition}:ec2:{}:{}:security-group/{}",
            subject.region, subject.account, subject.group_id
        ),
        partition,
        group_id: subject.group_id.clone(),
        product_fields,
        at: at.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::rule;

    fn revoked(text: &str) -> RevokedRule {
        let rule = rule(text);
        RevokedRule {
            severity: Severity::of(&rule, None),
            why: "forbidden by security-hub-ec2-19".into(),
            rule,
        }
    }

    fn subject() -> Subject {
        Subject {
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            group_id: "sg-1".into(),
            actor: Some("arn:aws:iam::111122223333:user/mallory".into()),
            event_id: Some("event-1".into()),
        }
    }

    #[test]
    fn severity_follows_what_the_rule_exposes() {
        let of = |text: &str| Severity::of(&rule(text), None);
        assert_eq!(of("all 0.0.0.0/0"), Severity::Critical);
        assert_eq!(of("tcp/0-65535 ::/1"), Severity::Critical);
        assert_eq!(of("tcp/22 0.0.0.0/0"), Severity::High);
        assert_eq!(
            of("tcp/1000-2000 203.0.113.0/24"),
            Severity::High,
            "spans 1433"
        );
        assert_eq!(of("tcp/443 0.0.0.0/0"), Severity::Medium);
        assert_eq!(of("tcp/0-100 0.0.0.0/0"), Severity::High, "not every port");
        assert_eq!(
            of("tcp/60000-65535 0.0.0.0/0"),
            Severity::Medium,
            "not every port"
        );
        assert_eq!(of("udp/22 0.0.0.0/0"), Severity::Medium);
        assert_eq!(of("all 10.0.0.0/8"), Severity::Low);
        assert_eq!(of("tcp/22 sg-2"), Severity::Low);
        assert_eq!(
            of("tcp/22 pl-1"),
            Severity::High,
            "unknown entries count as public"
        );
        let private = [Peer::cidr("10.0.0.0/8", "").unwrap()];
        assert_eq!(
            Severity::of(&rule("tcp/22 pl-1"), Some(&private)),
            Severity::Low
        );
        assert!(Severity::Critical > Severity::High && Severity::High > Severity::Medium);
        assert_eq!(Severity::High.label(), "HIGH");
    }

    #[test]
    fn a_revert_is_one_finding_per_group_with_a_stable_id_and_a_dry_run_one_per_rule() {
        let rules = [revoked("tcp/22 0.0.0.0/0"), revoked("tcp/443 0.0.0.0/0")];
        let done = findings(&subject(), &rules, Mode::Reverted, "2026-12-02T10:00:00Z");
        assert_eq!(done.len(), 1);
        let f = &done[0];
        assert_eq!(f.severity, Severity::High);
        assert_eq!(
            f.product_arn,
            "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
        );
        assert_eq!(
            f.resource_id,
            "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-1"
        );
        assert_eq!(f.mode, Mode::Reverted);
        assert!(f
            .id
            .starts_with("sgwarden/revert-ingress/111122223333/eu-west-1/sg-1/reverted/"));
        assert!(f
            .product_fields
            .contains(&("sgwarden/mode".into(), "reverted".into())));
        assert!(
            f.description.contains("mallory") && f.description.contains("ingress tcp/22 0.0.0.0/0")
        );
        // The same rules in another order, later: the same finding.
        let again = findings(
            &subject(),
            &[rules[1].clone(), rules[0].clone()],
            Mode::Reverted,
            "later",
        );
        assert_eq!(again[0].id, f.id);
        let other = findings(&subject(), &rules[..1], Mode::Reverted, "later");
        assert_ne!(other[0].id, f.id);

        let dry = findings(&subject(), &rules, Mode::WouldRevert, "t");
        assert_eq!(dry.len(), 2);
        assert_ne!(dry[0].id, dry[1].id);
        assert!(dry.iter().all(|f| f.mode == Mode::WouldRevert));
        assert!(dry.iter().all(|f| f.id.contains("/sg-1/would-revert/")));
        assert!(dry.iter().all(|f| f.id != done[0].id));
        assert!(findings(&subject(), &[], Mode::Reverted, "t").is_empty());
    }

    fn rules_of(n: u16) -> Vec<RevokedRule> {
        (0..n)
            .map(|p| revoked(&format!("tcp/{p} 0.0.0.0/0")))
            .collect()
    }

    #[test]
    fn a_long_description_is_cut_to_security_hub_s_limit() {
        let rules: Vec<RevokedRule> = (0..200)
            .map(|p| revoked(&format!("tcp/{p} 0.0.0.0/0")))
            .collect();
        let f = &findings(&subject(), &rules, Mode::Reverted, "t")[0];
        assert!(f.description.len() <= DESCRIPTION_LIMIT && f.description.ends_with("..."));
        for (key, value) in &f.product_fields {
            assert!(value.len() <= FIELD_LIMIT, "{key}: {}", value.len());
        }
        let rules = f
            .product_fields
            .iter()
            .find(|(k, _)| k == "sgwarden/rules")
            .unwrap();
        assert!(rules.1.ends_with("..."));
        assert_eq!(cut("ab".repeat(10), 20), "ab".repeat(10));
        assert_eq!(cut("é".repeat(10), 8), "éé...");
        let long = Subject {
            group_id: "sg-".to_string() + &"9".repeat(300),
            ..subject()
        };
        let one = findings(&long, &rules_of(1), Mode::WouldRevert, "t");
        assert!(one[0].title.len() <= TITLE_LIMIT);
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        // FNV-1a's published test vectors: the id must not change between releases.
        assert_eq!(digest(""), "cbf29ce484222325");
        assert_eq!(digest("a"), "af63dc4c8601ec8c");
        assert_eq!(digest("foobar"), "85944171f73967e8");
    }
}
