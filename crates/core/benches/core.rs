//! `make bench`: the core's hot paths, per operation.
//!
//! - parse a CloudTrail API-call event (the real recorded one) into a typed trigger;
//! - parse an SNS-wrapped AWS Config message and diff its rules;
//! - plan between two 1,000-rule groups (half shared, a quarter owned and stale, a quarter new).

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;
use sgwarden_core::event::ConfigMessage;
use sgwarden_core::rule::{Direction, Peer, PortRange, Rule, RuleInfo, RuleSet, Traffic};
use sgwarden_core::{plan, Owner, Trigger};

fn sample(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).expect("bench sample exists");
    serde_json::from_str(&text).expect("bench sample is JSON")
}

fn group(owner: &Owner, offset: u32) -> RuleSet {
    (0..1000u32)
        .map(|i| {
            let n = i + offset;
            let rule = Rule::new(
                Direction::Ingress,
                Traffic::Tcp(PortRange::single(9042)),
                Peer::cidr(
                    &format!("10.{}.{}.{}/32", n >> 16 & 255, n >> 8 & 255, n & 255),
                    "bench",
                )
                .expect("valid"),
            );
            // Three rules in four are sgwarden's, one is hand-made.
            let info = if n % 4 == 0 {
                RuleInfo::described("added by hand")
            } else {
                RuleInfo::described(owner.describe("bench"))
            };
            (rule, info)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let cloudtrail =
        sample("../../events/cloudtrail-authorize-ingress-ipv6-group-prefix-list.json");
    c.bench_function("parse cloudtrail api call", |b| {
        b.iter(|| Trigger::parse(black_box(&cloudtrail)).expect("parses"))
    });

    let config = sample("../../events/config-sns-security-group-rules-changed.json");
    c.bench_function("parse config sns message and diff rules", |b| {
        b.iter(|| {
            let Trigger::Config(messages) = Trigger::parse(black_box(&config)).expect("parses")
            else {
                unreachable!("a config sample")
            };
            for message in messages {
                if let ConfigMessage::Change(change) = message {
                    black_box(change.security_group_diff().expect("diffs"));
                }
            }
        })
    });

    let owner = Owner::new("bench").expect("valid owner");
    let actual = group(&owner, 0);
    let desired = group(&owner, 500);
    c.bench_function("plan 1000-rule group against 1000 desired", |b| {
        b.iter(|| plan(black_box(&actual), black_box(&desired), &owner))
    });
    let p = plan(&actual, &desired, &owner);
    c.bench_function("batch a 1000-rule plan into permissions", |b| {
        b.iter(|| black_box(&p).authorizations(Direction::Ingress))
    });
}

criterion_group!(core, benches);
criterion_main!(core);
