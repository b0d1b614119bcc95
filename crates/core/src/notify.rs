//! notify-owner's pure part: who opted in, who the owners are, what the mail says.
//!
//! - [`opted_in`]: the opt-in tag, its value compared case-insensitively (`yes`, `Yes` and
//!   `YES` all opt in; `No` does not).
//! - [`recipients`]: the owner tag holds one or more addresses (separated by `,` `;` or
//!   white space). Each is parsed by an RFC 5322 parser; a bare name gets the default domain
//!   when one is configured; `ALLOWED_RECIPIENT_DOMAINS` is enforced. A tag value carrying a
//!   control character (a line break above all: the shape of a header injection) is refused
//!   whole, so no part of it is ever mailed.
//! - [`OwnerTags::audience`]: who hears of one change, from the group's tags before and
//!   after it. The opt-in and owner tags are written by anyone with `ec2:CreateTags`, so a
//!   change to them never silences the owners who had opted in: they are told too.
//! - [`Notice`] and [`Mailer`]: the mail's content as data, rendered from the templates in
//!   `templates/` (HTML auto-escaped), never by concatenating strings.
//!
//! Nothing here sends anything or reads a clock: the function passes the facts in.

use std::collections::BTreeMap;
use std::fmt;

use email_address::{EmailAddress, Options};
use serde::Serialize;

use crate::accounts::MemberRole;
use crate::event::{ChangeType, Principal, SecurityGroupDiff};
use crate::rule::{Rule, RuleInfo, RuleSet};

/// True when `tags` carry the opt-in tag with the opt-in value (trimmed, case-insensitive).
pub fn opted_in(tags: &BTreeMap<String, String>, key: &str, value: &str) -> bool {
    tags.get(key)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(value.trim()))
}

/// An owner-tag entry that gets no mail, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The entry as the tag wrote it (the whole value, escaped, when it held a control
    /// character).
    pub given: String,
    /// Why it gets no mail, for the log.
    pub reason: String,
}

/// The owner tag, read: who gets the mail and who does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recipients {
    /// Valid, allowed, de-duplicated addresses, in the order given.
    pub to: Vec<String>,
    /// The entries that get no mail, each with why.
    pub refused: Vec<Refused>,
}

/// Reads the owner tag's value. `default_domain` completes a bare name (`db-team` →
/// `db-team@example.com`); `allowed_domains` (lower case), when not empty, is the only
/// set of domains mail may go to (exact match, no subdomains).
pub fn recipients(
    value: &str,
    default_domain: Option<&str>,
    allowed_domains: &[String],
) -> Recipients {
    let mut result = Recipients::default();
    if value.chars().any(char::is_control) {
        result.refused.push(Refused {
            given: value.escape_default().to_string(),
            reason: "contains a control character (a line break could inject mail headers); \
                     the whole tag is refused"
                .to_string(),
        });
        return result;
    }
    for given in value
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        match recipient(given, default_domain, allowed_domains) {
            Ok(address) if result.to.iter().any(|a| a.eq_ignore_ascii_case(&address)) => {}
            Ok(address) => result.to.push(address),
            Err(reason) => result.refused.push(Refused {
                given: given.to_string(),
                reason,
            }),
        }
    }
    result
}

/// One owner-tag entry as the address it is mailed to, or why it gets nothing.
fn recipient(
    given: &str,
    default_domain: Option<&str>,
    allowed_domains: &[String],
) -> Result<String, String> {
    let full = match (given.contains('@'), default_domain) {
        (true, _) => given.to_string(),
        (false, Some(domain)) => format!("{given}@{domain}"),
        (false, None) => return Err("not an address, and no default domain is set".into()),
    };
    let options = Options {
        minimum_sub_domains: 2,
        allow_domain_literal: false,
        allow_display_text: false,
    };
    let address = EmailAddress::parse_with_options(&full, options)
        .map_err(|error| format!("not a valid address: {error}"))?;
    if !full.is_ascii() {
        return Err("non-ASCII addresses are not sent to".into());
    }
    let domain = address.domain().to_ascii_lowercase();
    if !allowed_domains.is_empty() && !allowed_domains.contains(&domain) {
        return Err(format!(
            "domain {domain} is not in ALLOWED_RECIPIENT_DOMAINS"
        ));
    }
    Ok(address.as_str().to_string())
}

/// How a group's tags say who hears of its changes: the opt-in tag and value, the owner tag,
/// and how the owner tag's entries become addresses ([`recipients`]). Built once from the
/// function's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerTags {
    /// The tag key that opts a group in (notify-owner's `NOTIFY_TAG`).
    pub opt_in_tag: String,
    /// The value of that tag that opts in (`NOTIFY_TAG_VALUE`), compared trimmed and
    /// case-insensitively.
    pub opt_in_value: String,
    /// The tag key whose value lists the owners' addresses (`OWNER_TAG`).
    pub owner_tag: String,
    /// The domain a bare name in the owner tag is completed with (`db-team` →
    /// `db-team@<domain>`, `OWNER_DEFAULT_DOMAIN`); `None`: bare names are refused.
    pub default_domain: Option<String>,
    /// Lower case; empty means every domain.
    pub allowed_domains: Vec<String>,
}

/// Who hears of one change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "audience")]
pub enum Audience {
    /// The group was opted in neither before the change nor after it.
    NotOptedIn,
    /// The owners told: the current ones when the group is opted in now, and the ones it had
    /// before the change when it was opted in then.
    Owners {
        /// Everyone told (current owners first, each address once) and every owner-tag
        /// entry, of either side, that gets nothing.
        recipients: Recipients,
        /// Of `recipients.to`, those told only because they were owners before the change:
        /// the change re-pointed the owner tag or took the opt-in away.
        former: Vec<String>,
    },
}

impl OwnerTags {
    /// True when `tags` carry the opt-in tag with the opt-in value.
    pub fn opted_in(&self, tags: &BTreeMap<String, String>) -> bool {
        opted_in(tags, &self.opt_in_tag, &self.opt_in_value)
    }

    /// The owner tag of `tags`, read ([`recipients`]); no tag, no one.
    pub fn owners(&self, tags: &BTreeMap<String, String>) -> Recipients {
        recipients(
            tags.get(&self.owner_tag).map_or("", String::as_str),
            self.default_domain.as_deref(),
            &self.allowed_domains,
        )
    }

    /// Who hears of a change, from the group's tags before it (`None`: the group is new)
    /// and after it. A tag anyone with `ec2:CreateTags` can write must not silence the
    /// owners who opted in: a group opted in before the change is told to the owners it had
    /// then, as well as to its current owners when it is opted in now. Both sides are read
    /// alike (validated, defaulted, domain-checked); an address on both is told once.
    pub fn audience(
        &self,
        before: Option<&BTreeMap<String, String>>,
        after: &BTreeMap<String, String>,
    ) -> Audience {
        let now = self.opted_in(after).then(|| self.owners(after));
        let then = before
            .filter(|tags| self.opted_in(tags))
            .map(|tags| self.owners(tags));
        if now.is_none() && then.is_none() {
            return Audience::NotOptedIn;
        }
        let mut recipients = now.unwrap_or_default();
        let mut former = Vec::new();
        if let Some(previous) = then {
            for address in previous.to {
                if !recipients
                    .to
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&address))
                {
                    recipients.to.push(address.clone());
                    former.push(address);
                }
            }
            for refused in previous.refused {
                if !recipients.refused.contains(&refused) {
                    recipients.refused.push(refused);
                }
            }
        }
        Audience::Owners { recipients, former }
    }
}

/// One rule as the mail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    /// `ingress` or `egress`.
    pub direction: String,
    /// The traffic as sgwarden writes it (`tcp/22`, `all`, `icmp/8:0`).
    pub traffic: String,
    /// The peer: a CIDR, a group id (`sg-…`) or a prefix list id (`pl-…`).
    pub peer: String,
    /// The rule's description, when it has one.
    pub description: Option<String>,
}

fn rows(rules: &RuleSet) -> Vec<RuleRow> {
    rules
        .iter()
        .map(|(rule, info): (&Rule, &RuleInfo)| RuleRow {
            direction: rule.direction.to_string(),
            traffic: rule.traffic.to_string(),
            peer: rule.peer.to_string(),
            description: info.description.clone(),
        })
        .collect()
}

/// One tag change as the mail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRow {
    /// The tag's key.
    pub key: String,
    /// The value before the change; `None` when the tag was added.
    pub before: Option<String>,
    /// The value after the change; `None` when the tag was removed.
    pub after: Option<String>,
}

/// Everything an owner's mail says, as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The account the group is in (`awsAccountId` of the item; empty when unknown).
    pub account: String,
    /// The region the group is in.
    pub region: String,
    /// The group's id (`sg-…`).
    pub group_id: String,
    /// The group's name, when Config recorded it.
    pub group_name: Option<String>,
    /// `created`, `changed` or `deleted`.
    pub change: String,
    /// When Config captured the change (RFC 3339, UTC).
    pub time: String,
    /// Who made the change (the CloudTrail principal), or `unknown`.
    pub actor: String,
    /// The CloudTrail event id behind the change, when Config named one.
    pub event_id: Option<String>,
    /// The rules the change added.
    pub added: Vec<RuleRow>,
    /// The rules the change removed.
    pub removed: Vec<RuleRow>,
    /// The tags the change added, removed or altered.
    pub tags: Vec<TagRow>,
    /// The opt-in tag key, so the mail says why the owner receives it.
    pub opt_in_tag: String,
    /// The opt-in tag's value.
    pub opt_in_value: String,
    /// The owner tag key.
    pub owner_tag: String,
    /// Recipients told only because they were owners before this change ([`Audience`]).
    pub former_owners: Vec<String>,
    /// A link to the group in the EC2 console (the commercial partition's console).
    pub console_url: String,
}

/// Who made a change, as CloudTrail recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The principal CloudTrail recorded for the event.
    pub principal: Principal,
    /// The event's `Username` (for a session, its name).
    pub user_name: Option<String>,
}

impl Actor {
    /// The actor as a mail names it: the session and its role, the principal's ARN, or the
    /// user name. A session of the member role is sgwarden itself acting in that account,
    /// and is named so, not shown as a stranger's change.
    pub fn describe(&self, member_role: Option<&MemberRole>) -> Option<String> {
        let p = &self.principal;
        if let (Some(role), Some(arn)) = (member_role, &p.arn) {
            if role.is_session(p) {
                return Some(format!("sgwarden, through its member role ({arn})"));
            }
        }
        match (&p.arn, &p.role_arn) {
            (Some(arn), Some(role)) if arn.contains(":assumed-role/") => {
                Some(format!("{arn} (role {role})"))
            }
            (Some(arn), _) => Some(arn.clone()),
            _ => self.user_name.clone(),
        }
    }
}

/// The facts a [`Notice`] is made from, besides the diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeFacts {
    /// The account the group is in; empty when unknown.
    pub account: String,
    /// The region the group is in.
    pub region: String,
    /// The group's id (`sg-…`).
    pub group_id: String,
    /// The group's name, when known.
    pub group_name: Option<String>,
    /// When Config captured the change (`configurationItemCaptureTime`); empty when unknown.
    pub time: String,
    /// Who made the change ([`Actor::describe`]); `None` shows as `unknown`.
    pub actor: Option<String>,
    /// The CloudTrail event id behind the change, when known.
    pub event_id: Option<String>,
    /// The opt-in tag key.
    pub opt_in_tag: String,
    /// The opt-in tag's value.
    pub opt_in_value: String,
    /// The owner tag key.
    pub owner_tag: String,
    /// Recipients told only because they were owners before this change.
    pub former_owners: Vec<String>,
}

impl Notice {
    /// The notice of `change`, with the diff's rules and tags as rows and the console link for
    /// the group.
    pub fn new(facts: NoticeFacts, change: ChangeType, diff: &SecurityGroupDiff) -> Self {
        Self {
            console_url: format!(
                "https://console.aws.amazon.com/ec2/home?region={region}#SecurityGroup:groupId={group}",
                region = facts.region,
                group = facts.group_id
            ),
            change: change.as_str().to_string(),
            added: rows(&diff.added),
            removed: rows(&diff.removed),
            tags: diff
                .tags
                .iter()
                .map(|(key, (before, after))| TagRow {
                    key: key.clone(),
                    before: before.clone(),
                    after: after.clone(),
                })
                .collect(),
            actor: facts.actor.unwrap_or_else(|| "unknown".to_string()),
            account: facts.account,
            region: facts.region,
            group_id: facts.group_id,
            group_name: facts.group_name,
            time: facts.time,
            event_id: facts.event_id,
            opt_in_tag: facts.opt_in_tag,
            opt_in_value: facts.opt_in_value,
            owner_tag: facts.owner_tag,
            former_owners: facts.former_owners,
        }
    }
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The subject line: control characters blanked, at most 200 characters.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, every value auto-escaped.
    pub html: String,
}

/// A template failed to render: a defect in a template, never in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mail template {template} failed: {reason}")]
pub struct RenderError {
    /// The template's name (`subject.txt`, `notify.txt`, `notify.html`).
    pub template: &'static str,
    /// What the template engine reported.
    pub reason: String,
}

/// The compiled mail templates, built once at cold start.
pub struct Mailer {
    env: minijinja::Environment<'static>,
}

const TEMPLATES: [(&str, &str); 3] = [
    ("subject.txt", include_str!("../templates/subject.txt")),
    ("notify.txt", include_str!("../templates/notify.txt")),
    ("notify.html", include_str!("../templates/notify.html")),
];

/// SES limits nothing below this, but mail clients cut subjects; it also keeps a hostile
/// group name from filling the inbox line.
const SUBJECT_LIMIT: usize = 200;

impl Mailer {
    /// Compiles the templates built into the crate, once at cold start. An error is a defect
    /// in a template, never in any input.
    pub fn new() -> Result<Self, RenderError> {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).map_err(|e| RenderError {
                template: name,
                reason: e.to_string(),
            })?;
        }
        Ok(Self { env })
    }

    /// Renders a notice into its subject, text body and HTML body.
    pub fn render(&self, notice: &Notice) -> Result<Mail, RenderError> {
        let render = |name: &'static str, ctx: minijinja::Value| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(ctx))
                .map_err(|e| RenderError {
                    template: name,
                    reason: e.to_string(),
                })
        };
        let ctx = minijinja::Value::from(minijinja::value::Serde(notice));
        let subject: String = render("subject.txt", ctx.clone())?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(SUBJECT_LIMIT)
            .collect();
        let subject = subject.trim().to_string();
        let html_ctx = minijinja::context! { subject => subject.clone(), ..ctx.clone() };
        Ok(Mail {
            text: render("notify.txt", ctx)?,
            html: render("notify.html", html_ctx)?,
            subject,
        })
    }
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mailer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Direction, Peer};
    use proptest::prelude::*;

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn the_opt_in_value_is_case_insensitive_and_no_means_no() {
        let tags = |v: &str| BTreeMap::from([("NotifyOnChange".to_string(), v.to_string())]);
        assert!(opted_in(&tags("yes"), "NotifyOnChange", "Yes"));
        assert!(opted_in(&tags(" YES "), "NotifyOnChange", "Yes"));
        assert!(!opted_in(&tags("No"), "NotifyOnChange", "Yes"));
        assert!(!opted_in(&tags("no"), "NotifyOnChange", "Yes"));
        assert!(!opted_in(&BTreeMap::new(), "NotifyOnChange", "Yes"));
    }

    #[test]
    fn several_owners_in_one_tag_each_validated() {
        let r = recipients(
            "db@example.com, lead@Example.com;ops@example.com  not-an-address@ db@example.com",
            None,
            &[],
        );
        assert_eq!(
            r.to,
            vec!["db@example.com", "lead@Example.com", "ops@example.com"]
        );
        // The repeated address is sent to once; the broken one is refused.
        assert_eq!(r.refused.len(), 1, "{r:?}");
    }

    #[test]
    fn a_non_ascii_address_is_refused_and_says_why() {
        let r = recipients("jörg@example.com ops@example.com", None, &[]);
        assert_eq!(r.to, vec!["ops@example.com"]);
        assert_eq!(r.refused.len(), 1, "{r:?}");
        assert!(r.refused[0].reason.contains("non-ASCII"), "{r:?}");
    }

    #[test]
    fn a_bare_name_takes_the_default_domain() {
        let r = recipients("db-team", Some("example.com"), &[]);
        assert_eq!(r.to, vec!["db-team@example.com"]);
        assert_eq!(recipients("db-team", None, &[]).to, Vec::<String>::new());
    }

    #[test]
    fn only_allowed_domains_get_mail() {
        let r = recipients(
            "a@example.com b@evil.example c@sub.example.com",
            None,
            &allowed(&["example.com"]),
        );
        assert_eq!(r.to, vec!["a@example.com"]);
        assert_eq!(r.refused.len(), 2);
        assert!(r.refused[0].reason.contains("evil.example"));
    }

    #[test]
    fn a_header_injection_is_refused_whole() {
        for value in [
            "owner@example.com\r\nBcc: attacker@evil.example",
            "owner@example.com\nattacker@evil.example",
            "owner@example.com\u{0}",
        ] {
            let r = recipients(value, None, &[]);
            assert!(r.to.is_empty(), "{value:?} gave {r:?}");
            assert_eq!(r.refused.len(), 1);
        }
        // Display names, quoted locals with tricks and domain literals are not addresses here.
        for value in ["Eve <eve@example.com>", "x@[127.0.0.1]", "x@localhost"] {
            assert!(recipients(value, None, &[]).to.is_empty(), "{value}");
        }
    }

    fn owner_tags(allowed_domains: &[&str]) -> OwnerTags {
        OwnerTags {
            opt_in_tag: "NotifyOnChange".into(),
            opt_in_value: "Yes".into(),
            owner_tag: "OwnerDL".into(),
            default_domain: Some("example.com".into()),
            allowed_domains: allowed(allowed_domains),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The audience's addresses, former owners and refused entries (given only).
    fn told(audience: Audience) -> (Vec<String>, Vec<String>, Vec<String>) {
        match audience {
            Audience::Owners { recipients, former } => (
                recipients.to,
                former,
                recipients.refused.into_iter().map(|r| r.given).collect(),
            ),
            Audience::NotOptedIn => panic!("not opted in"),
        }
    }

    #[test]
    fn a_re_pointed_owner_tag_is_told_to_the_owners_before_it_too() {
        let before = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "db@example.com, lead@example.com"),
        ]);
        let after = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "mallory@example.com"),
        ]);
        let (to, former, refused) = told(owner_tags(&[]).audience(Some(&before), &after));
        assert_eq!(
            to,
            ["mallory@example.com", "db@example.com", "lead@example.com"]
        );
        assert_eq!(former, ["db@example.com", "lead@example.com"]);
        assert!(refused.is_empty());

        // Mallory outside the allowed domains gets nothing; the owners before still hear.
        let after = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "mallory@evil.example"),
        ]);
        let (to, former, refused) =
            told(owner_tags(&["example.com"]).audience(Some(&before), &after));
        assert_eq!(to, ["db@example.com", "lead@example.com"]);
        assert_eq!(former, to);
        assert_eq!(refused, ["mallory@evil.example"]);
    }

    #[test]
    fn the_owners_before_are_checked_like_the_current_ones() {
        let before = tags(&[
            ("NotifyOnChange", "yes"),
            ("OwnerDL", "db-team outsider@evil.example not@@valid"),
        ]);
        let after = tags(&[("NotifyOnChange", "Yes"), ("OwnerDL", "lead@example.com")]);
        let (to, former, refused) =
            told(owner_tags(&["example.com"]).audience(Some(&before), &after));
        // The bare name takes the default domain; the others are refused with a reason.
        assert_eq!(to, ["lead@example.com", "db-team@example.com"]);
        assert_eq!(former, ["db-team@example.com"]);
        assert_eq!(refused, ["outsider@evil.example", "not@@valid"]);

        // A previous owner tag with a line break is refused whole, as a current one is.
        let injected = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "db@example.com\r\nBcc: x@evil.example"),
        ]);
        let (to, former, refused) = told(owner_tags(&[]).audience(Some(&injected), &after));
        assert_eq!(to, ["lead@example.com"]);
        assert!(former.is_empty());
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn a_removed_or_changed_opt_in_is_told_to_the_owners_before_it() {
        let before = tags(&[("NotifyOnChange", "Yes"), ("OwnerDL", "db@example.com")]);
        for after in [
            tags(&[("OwnerDL", "db@example.com")]),
            tags(&[("NotifyOnChange", "No"), ("OwnerDL", "db@example.com")]),
            // Both at once: the new owner did not opt in and hears nothing.
            tags(&[("OwnerDL", "mallory@example.com")]),
        ] {
            let (to, former, _) = told(owner_tags(&[]).audience(Some(&before), &after));
            assert_eq!(to, ["db@example.com"], "{after:?}");
            assert_eq!(former, ["db@example.com"], "{after:?}");
        }
    }

    #[test]
    fn only_a_side_that_opted_in_is_told() {
        let owners = owner_tags(&[]);
        let untagged = tags(&[("OwnerDL", "db@example.com")]);
        assert_eq!(
            owners.audience(Some(&untagged), &untagged),
            Audience::NotOptedIn
        );
        assert_eq!(owners.audience(None, &untagged), Audience::NotOptedIn);
        // Opting in now tells the owners now, not the ones who never asked.
        let after = tags(&[("NotifyOnChange", "Yes"), ("OwnerDL", "lead@example.com")]);
        let (to, former, _) = told(owners.audience(Some(&untagged), &after));
        assert_eq!((to, former), (vec!["lead@example.com".to_string()], vec![]));
        // A new group has no owners before.
        let (to, former, _) = told(owners.audience(None, &after));
        assert_eq!((to, former), (vec!["lead@example.com".to_string()], vec![]));
        // Opted in on both sides with no owner at all: opted in, no one to tell.
        let nobody = tags(&[("NotifyOnChange", "Yes")]);
        let (to, former, refused) = told(owners.audience(Some(&nobody), &nobody));
        assert!(to.is_empty() && former.is_empty() && refused.is_empty());
    }

    #[test]
    fn an_owner_on_both_sides_is_told_once_and_a_refusal_reported_once() {
        let before = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "DB@example.com not@@valid"),
        ]);
        let after = tags(&[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", "db@example.com not@@valid"),
        ]);
        let (to, former, refused) = told(owner_tags(&[]).audience(Some(&before), &after));
        assert_eq!(to, ["db@example.com"]);
        assert!(former.is_empty());
        assert_eq!(refused, ["not@@valid"]);
    }

    #[test]
    fn the_mail_names_the_owners_before_a_change_and_the_tag_change() {
        let mut notice = notice();
        notice.tags.push(TagRow {
            key: "OwnerDL".into(),
            before: Some("db@example.com".into()),
            after: Some("mallory@example.com".into()),
        });
        let plain = Mailer::new().unwrap().render(&notice).unwrap();
        assert!(!plain.text.contains("before this change"), "{}", plain.text);
        notice.former_owners = vec!["db@example.com".into()];
        let mail = Mailer::new().unwrap().render(&notice).unwrap();
        assert!(
            mail.text
                .contains("OwnerDL: db@example.com -> mallory@example.com"),
            "{}",
            mail.text
        );
        assert!(mail.html.contains("mallory@example.com"), "{}", mail.html);
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("or did before this change"), "{part}");
            assert!(
                part.contains("the owners before it are told too (db@example.com)"),
                "{part}"
            );
        }
    }

    fn notice() -> Notice {
        let mut diff = SecurityGroupDiff::default();
        diff.added.insert(
            Rule::new(
                Direction::Ingress,
                "tcp/22".parse().unwrap(),
                Peer::cidr("0.0.0.0/0", "t").unwrap(),
            ),
            RuleInfo::described("<script>alert(1)</script>"),
        );
        diff.removed.insert(
            Rule::new(
                Direction::Egress,
                "all".parse().unwrap(),
                Peer::cidr("::/0", "t").unwrap(),
            ),
            RuleInfo::default(),
        );
        diff.tags
            .insert("Stage".into(), (Some("dev".into()), Some("prod".into())));
        Notice::new(
            NoticeFacts {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
                group_id: "sg-0123".into(),
                group_name: Some("db\r\nBcc: x@evil.example".into()),
                time: "2026-11-20T10:20:30Z".into(),
                actor: None,
                event_id: None,
                opt_in_tag: "NotifyOnChange".into(),
                opt_in_value: "Yes".into(),
                owner_tag: "OwnerDL".into(),
                former_owners: Vec::new(),
            },
            ChangeType::Update,
            &diff,
        )
    }

    #[test]
    fn an_actor_is_named_by_session_arn_or_user_and_sgwarden_s_member_role_as_itself() {
        let session = Actor {
            principal: Principal {
                arn: Some("arn:aws:sts::222233334444:assumed-role/sgwarden-member/sgwarden-revert-ingress".into()),
                role_arn: Some("arn:aws:iam::222233334444:role/sgwarden-member".into()),
                ..Principal::default()
            },
            user_name: Some("sgwarden-revert-ingress".into()),
        };
        let member = MemberRole::parse("sgwarden-member").unwrap();
        assert_eq!(
            session.describe(Some(&member)).unwrap(),
            "sgwarden, through its member role (arn:aws:sts::222233334444:assumed-role/sgwarden-member/sgwarden-revert-ingress)"
        );
        assert_eq!(
            session.describe(None).unwrap(),
            "arn:aws:sts::222233334444:assumed-role/sgwarden-member/sgwarden-revert-ingress (role arn:aws:iam::222233334444:role/sgwarden-member)"
        );
        let other = MemberRole::parse("another-role").unwrap();
        assert!(!session
            .describe(Some(&other))
            .unwrap()
            .starts_with("sgwarden"));
        let user = Actor {
            principal: Principal {
                arn: Some("arn:aws:iam::222233334444:user/ops".into()),
                ..Principal::default()
            },
            user_name: Some("ops".into()),
        };
        assert_eq!(
            user.describe(Some(&member)).unwrap(),
            "arn:aws:iam::222233334444:user/ops"
        );
        // Only a session is named with the role it was issued from.
        let federated = Actor {
            principal: Principal {
                arn: Some("arn:aws:sts::222233334444:federated-user/ops".into()),
                role_arn: Some("arn:aws:iam::222233334444:role/Ops".into()),
                ..Principal::default()
            },
            user_name: None,
        };
        assert_eq!(
            federated.describe(None).unwrap(),
            "arn:aws:sts::222233334444:federated-user/ops"
        );
        let named = Actor {
            user_name: Some("ops".into()),
            ..Actor::default()
        };
        assert_eq!(named.describe(None).as_deref(), Some("ops"));
        assert_eq!(Actor::default().describe(None), None);
    }

    #[test]
    fn the_mail_names_group_change_rules_and_an_unknown_actor() {
        let mail = Mailer::new().unwrap().render(&notice()).unwrap();
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
        assert!(
            mail.subject.starts_with("[sgwarden] sg-0123 (db"),
            "{}",
            mail.subject
        );
        assert!(
            mail.subject.ends_with("changed in eu-west-1: +1/-1 rules"),
            "{}",
            mail.subject
        );
        // minijinja escapes `/` in HTML as `&#x2f;`; mail clients show it as `/`.
        let html = mail.html.replace("&#x2f;", "/");
        for part in [&mail.text, &html] {
            assert!(part.contains("111122223333"));
            assert!(part.contains("eu-west-1"));
            assert!(part.contains("2026-11-20T10:20:30Z"));
            assert!(part.contains("unknown"));
            assert!(part.contains("tcp/22"));
            assert!(part.contains("0.0.0.0/0"));
            assert!(part.contains("::/0"));
            assert!(part.contains("Stage"));
        }
        assert!(mail.text.contains("  + ingress  tcp/22  0.0.0.0/0"));
        assert!(mail.text.contains("  - egress  all  ::/0"));
        assert!(mail.text.contains("Stage: dev -> prod"));
        // The HTML part escapes what came from the account; the text part is text.
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("&lt;script&gt;"));
    }

    proptest! {
        #[test]
        fn no_owner_tag_panics_or_yields_an_address_with_a_control_character(text in "\\PC{0,60}|[a-z@.,; \\r\\n]{0,60}") {
            let r = recipients(&text, Some("example.com"), &[]);
            for address in &r.to {
                prop_assert!(!address.chars().any(char::is_control));
                prop_assert!(address.contains('@'));
            }
        }
    }
}
