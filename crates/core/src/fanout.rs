//! A fanned-out sweep (issue #24, SPEC `SGWARDEN_SWEEP_QUEUE_URL`): the scheduled sweep lists the
//! account-regions it covers and sends one message per account-region to the sweep queue; the
//! function sweeps each message it receives, and only places its own settings cover.
//!
//! Pure: parsing and checking a message, batching the places into `SendMessageBatch` calls.
//! A queue message is a claim, not an order: [`claim`] decides whether a place may be swept.

use serde::{Deserialize, Serialize};

use crate::accounts::{is_account_id, is_region, Accounts, Reach};

/// Most entries one `SendMessageBatch` call takes (an SQS limit).
pub const BATCH_ENTRIES: usize = 10;

/// The largest body a sweep message may have: an account and a region fit in far less. A
/// larger body is refused before it is parsed.
pub const MAX_BODY_BYTES: usize = 256;

/// One account-region of a fanned-out sweep: the body of one queue message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// The account to sweep (12 digits).
    pub account: String,
    /// The region to sweep.
    pub region: String,
}

impl Place {
    /// A place.
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            account: account.into(),
            region: region.into(),
        }
    }

    /// The message body for this place: `{"account":"…","region":"…"}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "account": self.account, "region": self.region }).to_string()
    }

    /// A batch-entry id for this place, unique within a batch and within SQS's alphabet
    /// (alphanumerics, `-`, `_`; at most 80 characters).
    pub fn entry_id(&self) -> String {
        format!("{}_{}", self.account, self.region)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.account, self.region)
    }
}

/// Why a message body is not a place. Nothing is swept for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedMessage {
    /// The body is larger than any place.
    #[error("the message body is {0} bytes, more than the {MAX_BODY_BYTES} a place takes")]
    TooLarge(usize),
    /// The body is not `{"account":"…","region":"…"}`.
    #[error("the message body is not a place ({{\"account\",\"region\"}}): {0}")]
    NotAPlace(String),
    /// The account is not 12 digits.
    #[error("the message names {0:?}, which is not an account id (12 digits)")]
    Account(String),
    /// The region is not a region name.
    #[error("the message names {0:?}, which is not a region name")]
    Region(String),
}

/// The place a message body names. Fails closed: anything but exactly an account id and a
/// region name is refused.
pub fn parse_body(body: &str) -> Result<Place, MalformedMessage> {
    if body.len() > MAX_BODY_BYTES {
        return Err(MalformedMessage::TooLarge(body.len()));
    }
    let place: Place =
        serde_json::from_str(body).map_err(|e| MalformedMessage::NotAPlace(e.to_string()))?;
    if !is_account_id(&place.account) {
        return Err(MalformedMessage::Account(place.account));
    }
    if !is_region(&place.region) {
        return Err(MalformedMessage::Region(place.region));
    }
    Ok(place)
}

/// Why a well-formed message is not swept: its place is outside the function's settings.
/// Refused messages are logged at error, counted (`SweepRefused`) and reported as processed:
/// a retry cannot make them acceptable, so they are not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The account is neither the function's own nor in `SGWARDEN_ACCOUNTS`.
    #[error("account {0} is not one SGWARDEN_ACCOUNTS covers")]
    AccountNotListed(String),
    /// `SGWARDEN_ACCOUNTS=organization`, and the account is not an active member of it.
    #[error("account {0} is not an active account of the organisation")]
    NotInOrganization(String),
    /// The region is not one `SGWARDEN_REGIONS` covers.
    #[error("region {0} is not one SGWARDEN_REGIONS covers")]
    Region(String),
    /// Another account, and no member role to act there.
    #[error("account {0} is not the function's own, and SGWARDEN_MEMBER_ROLE is not set")]
    NoMemberRole(String),
}

/// Whether the function of `own_account` in `own_region` may sweep `place`, under `reach`.
/// `organization` is the organisation's active accounts, read at this invocation, when
/// `reach` covers the organisation (`None` otherwise).
pub fn claim(
    place: &Place,
    own_account: &str,
    own_region: &str,
    reach: &Reach,
    organization: Option<&[String]>,
) -> Result<(), Refused> {
    if !reach.regions_or(own_region).contains(&place.region) {
        return Err(Refused::Region(place.region.clone()));
    }
    if place.account == own_account {
        return Ok(());
    }
    if reach.member_role.is_none() {
        return Err(Refused::NoMemberRole(place.account.clone()));
    }
    match &reach.accounts {
        Accounts::None => Err(Refused::AccountNotListed(place.account.clone())),
        Accounts::Listed(ids) if ids.contains(&place.account) => Ok(()),
        Accounts::Listed(_) => Err(Refused::AccountNotListed(place.account.clone())),
        Accounts::Organization => match organization {
            Some(active) if active.contains(&place.account) => Ok(()),
            _ => Err(Refused::NotInOrganization(place.account.clone())),
        },
    }
}

/// Every account-region a sweep covers: `accounts` (the own among them or not) × `regions`,
/// each once, in order.
pub fn places(own_account: &str, accounts: &[String], regions: &[String]) -> Vec<Place> {
    let mut all: Vec<String> = std::iter::once(own_account.to_string())
        .chain(accounts.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    let mut regions = regions.to_vec();
    regions.sort();
    regions.dedup();
    all.iter()
        .flat_map(|a| {
            regions
                .iter()
                .map(move |r| Place::new(a.clone(), r.clone()))
        })
        .collect()
}

/// `places` in `SendMessageBatch` calls of at most [`BATCH_ENTRIES`].
pub fn batches(places: &[Place]) -> impl Iterator<Item = &[Place]> {
    places.chunks(BATCH_ENTRIES)
}

/// True when a sweep fans out: a queue is configured and the sweep covers more than the
/// function's own account-region.
pub fn fans_out(queue_configured: bool, places: &[Place]) -> bool {
    queue_configured && places.len() > 1
}

/// One message of an SQS event (Lambda's SQS event source): its id, to report it failed, and
/// its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// `messageId`: what `batchItemFailures` names.
    pub message_id: String,
    /// The body, unparsed: each is judged alone, so one malformed body fails only itself.
    pub body: String,
    /// How many times SQS has handed it out (`attributes.ApproximateReceiveCount`, 1 when
    /// absent or unreadable): which try this is, so a retry begins where the last one
    /// could not reach ([`Attempt`]).
    pub receive_count: u32,
}

/// The receives a sweep message gets before the dead-letter queue: the template's
/// `maxReceiveCount`.
pub const SWEEP_RECEIVES: u32 = 3;

/// Which try of an account-region's sweep this is, to choose the group it begins with. A sweep
/// that runs out of time leaves the groups at the end of its order; begun always in EC2's
/// order, a group kept behind enough offending ones (reopened by their owner between tries)
/// would never be reached. Each try begins a third further on, so [`SWEEP_RECEIVES`] tries
/// that each judge a third of the groups have judged them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A queue message's receive, counted by SQS from 1.
    Receive(u32),
    /// A scheduled sweep in place, at this time (epoch seconds): its retries and the next
    /// runs begin at places spread over the groups by the minute.
    At(u64),
}

impl Attempt {
    /// The index, among `groups` groups in EC2's order, of the one this try begins with.
    pub fn first_group(self, groups: usize) -> usize {
        if groups == 0 {
            return 0;
        }
        match self {
            Attempt::Receive(count) => {
                let tries = SWEEP_RECEIVES as usize;
                let nth = (count.max(1) as usize - 1) % tries;
                (nth * groups).div_ceil(tries) % groups
            }
            // Knuth's multiplicative hash of the minute: consecutive minutes land far apart.
            Attempt::At(epoch) => {
                ((epoch / 60).wrapping_mul(2_654_435_761) % groups as u64) as usize
            }
        }
    }
}

/// The messages of an SQS event (`{"Records":[{"eventSource":"aws:sqs",…}]}`), or `None` when
/// the event is not one (an SNS delivery also has `Records`). A record without a `messageId`
/// cannot be reported on alone: the whole event is refused (`Err`), and Lambda retries it.
pub fn queue_messages(event: &serde_json::Value) -> Option<Result<Vec<QueueMessage>, String>> {
    let records = event.get("Records")?.as_array()?;
    let first = records.first()?;
    if first.get("eventSource").and_then(serde_json::Value::as_str) != Some("aws:sqs") {
        return None;
    }
    Some(
        records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let text = |field: &str| {
                    record
                        .get(field)
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                };
                if text("eventSource").as_deref() != Some("aws:sqs") {
                    return Err(format!("Records[{i}] is not an SQS message"));
                }
                let message_id = text("messageId")
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| format!("Records[{i}] has no messageId"))?;
                let receive_count = record
                    .pointer("/attributes/ApproximateReceiveCount")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1);
                Ok(QueueMessage {
                    message_id,
                    body: text("body").unwrap_or_default(),
                    receive_count,
                })
            })
            .collect(),
    )
}

/// The answer to an SQS event with `ReportBatchItemFailures`: the messages that failed, to
/// be received again; every other one is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// The failed message's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::MemberRole;

    const OWN: &str = "111111111111";
    const MEMBER: &str = "222222222222";
    const STRANGER: &str = "999999999999";

    fn reach(accounts: Accounts, regions: &[&str]) -> Reach {
        Reach {
            member_role: Some(MemberRole::parse("sgwarden-member").expect("a role name")),
            accounts,
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn sqs_record(id: &str, body: &str) -> serde_json::Value {
        serde_json::json!({
            "messageId": id, "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:111111111111:sweep", "awsRegion": "eu-west-1"
        })
    }

    #[test]
    fn an_sqs_event_gives_its_messages_and_nothing_else_is_one() {
        let mut again = sqs_record("b", "y");
        again["attributes"]["ApproximateReceiveCount"] = serde_json::json!("3");
        let mut odd = sqs_record("c", "z");
        odd["attributes"]["ApproximateReceiveCount"] = serde_json::json!("many");
        let event = serde_json::json!({"Records": [sqs_record("a", "x"), again, odd]});
        let messages = queue_messages(&event).unwrap().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[1],
            QueueMessage {
                message_id: "b".into(),
                body: "y".into(),
                receive_count: 3,
            }
        );
        // A count that cannot be read is the first receive: it only chooses where to begin.
        assert_eq!(messages[0].receive_count, 1);
        assert_eq!(messages[2].receive_count, 1);
        let sns = serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]});
        assert_eq!(queue_messages(&sns), None);
        assert_eq!(
            queue_messages(&serde_json::json!({"detail-type": "Scheduled Event"})),
            None
        );
        let mut no_id = sqs_record("", "x");
        no_id["messageId"] = serde_json::Value::Null;
        let event = serde_json::json!({"Records": [sqs_record("a", "x"), no_id]});
        assert!(queue_messages(&event).unwrap().is_err());
    }

    #[test]
    fn a_body_round_trips() {
        let place = Place::new(MEMBER, "eu-west-1");
        assert_eq!(parse_body(&place.body()), Ok(place));
    }

    #[test]
    fn malformed_bodies_fail_closed() {
        for body in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"account":"222222222222"}"#,
            r#"{"account":222222222222,"region":"eu-west-1"}"#,
            r#"{"account":"222222222222","region":"eu-west-1","extra":1}"#,
            r#"{"account":"22222222222x","region":"eu-west-1"}"#,
            r#"{"account":"222222222222","region":"EU-WEST-1"}"#,
            r#"{"account":"222222222222","region":"eu-west-1; rm"}"#,
        ] {
            assert!(parse_body(body).is_err(), "{body}");
        }
    }

    #[test]
    fn a_huge_body_is_refused_before_it_is_parsed() {
        let body = format!(
            r#"{{"account":"{MEMBER}","region":"eu-west-1","x":"{}"}}"#,
            "a".repeat(1 << 20)
        );
        assert_eq!(
            parse_body(&body),
            Err(MalformedMessage::TooLarge(body.len()))
        );
    }

    #[test]
    fn the_own_account_in_a_covered_region_is_claimed() {
        let r = reach(Accounts::None, &[]);
        assert_eq!(
            claim(&Place::new(OWN, "eu-west-1"), OWN, "eu-west-1", &r, None),
            Ok(())
        );
    }

    #[test]
    fn a_region_outside_the_settings_is_refused() {
        let r = reach(
            Accounts::Listed(vec![MEMBER.into()]),
            &["eu-west-1", "us-east-1"],
        );
        assert_eq!(
            claim(
                &Place::new(MEMBER, "ap-south-1"),
                OWN,
                "eu-west-1",
                &r,
                None
            ),
            Err(Refused::Region("ap-south-1".into()))
        );
        // Without SGWARDEN_REGIONS only the own region is covered.
        let own_only = reach(Accounts::Listed(vec![MEMBER.into()]), &[]);
        assert!(claim(
            &Place::new(OWN, "us-east-1"),
            OWN,
            "eu-west-1",
            &own_only,
            None
        )
        .is_err());
    }

    #[test]
    fn an_account_outside_the_settings_is_refused() {
        let r = reach(Accounts::Listed(vec![MEMBER.into()]), &["eu-west-1"]);
        assert_eq!(
            claim(&Place::new(MEMBER, "eu-west-1"), OWN, "eu-west-1", &r, None),
            Ok(())
        );
        assert_eq!(
            claim(
                &Place::new(STRANGER, "eu-west-1"),
                OWN,
                "eu-west-1",
                &r,
                None
            ),
            Err(Refused::AccountNotListed(STRANGER.into()))
        );
        let alone = Reach::default();
        assert_eq!(
            claim(
                &Place::new(MEMBER, "eu-west-1"),
                OWN,
                "eu-west-1",
                &alone,
                None
            ),
            Err(Refused::NoMemberRole(MEMBER.into()))
        );
    }

    #[test]
    fn an_account_that_left_the_organisation_is_refused() {
        let r = reach(Accounts::Organization, &["eu-west-1"]);
        let active = vec![MEMBER.to_string()];
        assert_eq!(
            claim(
                &Place::new(MEMBER, "eu-west-1"),
                OWN,
                "eu-west-1",
                &r,
                Some(&active)
            ),
            Ok(())
        );
        assert_eq!(
            claim(
                &Place::new(STRANGER, "eu-west-1"),
                OWN,
                "eu-west-1",
                &r,
                Some(&active)
            ),
            Err(Refused::NotInOrganization(STRANGER.into()))
        );
        // The organisation could not be read: nothing but the own account is claimed.
        assert!(claim(&Place::new(MEMBER, "eu-west-1"), OWN, "eu-west-1", &r, None).is_err());
    }

    #[test]
    fn places_cover_every_account_and_region_once() {
        let p = places(
            OWN,
            &[MEMBER.into(), OWN.into(), MEMBER.into()],
            &["us-east-1".into(), "eu-west-1".into()],
        );
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], Place::new(OWN, "eu-west-1"));
        let unique: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!(unique.len(), 4);
    }

    #[test]
    fn batches_hold_at_most_ten() {
        let accounts: Vec<String> = (0..23)
            .map(|i| format!("{:012}", 300_000_000_000u64 + i))
            .collect();
        let p = places(OWN, &accounts, &["eu-west-1".into()]);
        let sizes: Vec<usize> = batches(&p).map(<[Place]>::len).collect();
        assert_eq!(sizes, vec![10, 10, 4]);
        for batch in batches(&p) {
            let ids: std::collections::HashSet<_> = batch.iter().map(Place::entry_id).collect();
            assert_eq!(ids.len(), batch.len());
            assert!(ids.iter().all(|id| id.len() <= 80
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')));
        }
    }

    #[test]
    fn only_a_queue_and_more_than_one_place_fan_out() {
        let one = places(OWN, &[], &["eu-west-1".into()]);
        let two = places(OWN, &[MEMBER.into()], &["eu-west-1".into()]);
        assert!(!fans_out(true, &one));
        assert!(!fans_out(false, &two));
        assert!(fans_out(true, &two));
    }

    #[test]
    fn each_receive_begins_a_third_further_on_so_three_cover_every_group() {
        for groups in [1usize, 2, 3, 7, 14, 1000] {
            let starts: Vec<usize> = (1..=SWEEP_RECEIVES)
                .map(|count| Attempt::Receive(count).first_group(groups))
                .collect();
            assert_eq!(starts[0], 0);
            // Three tries that each judge a third (rounded up) of the groups from their start
            // judge every group.
            let share = groups.div_ceil(SWEEP_RECEIVES as usize);
            let mut judged = vec![false; groups];
            for start in &starts {
                for i in 0..share {
                    judged[(start + i) % groups] = true;
                }
            }
            assert!(judged.iter().all(|j| *j), "{groups}: {starts:?}");
        }
        // A fourth receive (a raised maxReceiveCount) starts over; none is out of range.
        assert_eq!(Attempt::Receive(4).first_group(14), 0);
        assert_eq!(Attempt::Receive(0).first_group(14), 0);
        assert_eq!(Attempt::At(0).first_group(0), 0);
        for minute in 0..100u64 {
            assert!(Attempt::At(minute * 60).first_group(14) < 14);
        }
    }

    #[test]
    fn consecutive_minutes_begin_scheduled_sweeps_at_different_groups() {
        let starts: std::collections::BTreeSet<usize> = (0..5u64)
            .map(|minute| Attempt::At(1_764_770_000 + minute * 60).first_group(14))
            .collect();
        assert!(starts.len() >= 4, "{starts:?}");
    }
}
