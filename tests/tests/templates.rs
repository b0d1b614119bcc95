//! The templates' event filters, proven against the sample events: every EventBridge pattern
//! and SNS filter policy a template wires to a function is read from the template itself (by
//! cfn-lint's CloudFormation loader) and run by a real matcher in the emulator (EventBridge's
//! `TestEventPattern`, SNS delivery with the subscription's filter policy). Each event the
//! function must receive matches; each it must not (failed calls, its own revokes, other
//! resource types and message types, another Auto Scaling group) does not. A pattern broken
//! in a template fails here, not in an account.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sgwarden_tests::sink::HttpSink;
use sgwarden_tests::{emulator, real_event, world, Emulator};

const REGION: &str = "us-east-1";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The template as JSON, intrinsic functions as `{"Ref": …}` / `{"Fn::GetAtt": …}` objects.
fn template(name: &str) -> Value {
    let path = repo().join("infra").join(name);
    let out = Command::new(emulator::python())
        .args([
            "-c",
            "import json, sys\nfrom cfnlint.decode import decode\n\
             template, errors = decode(sys.argv[1])\n\
             assert not errors, errors\nprint(json.dumps(template))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `value` with each `{"Ref": parameter}` replaced by the parameter's value in `parameters`:
/// a list for a `CommaDelimitedList` parameter of `template`, as CloudFormation gives it.
fn resolved(template: &Value, value: &Value, parameters: &BTreeMap<&str, &str>) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().unwrap();
            let given = parameters
                .get(name)
                .unwrap_or_else(|| panic!("no value for parameter {name}"));
            if template["Parameters"][name]["Type"] == "CommaDelimitedList" {
                json!(given.split(',').collect::<Vec<_>>())
            } else {
                json!(given)
            }
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolved(template, v, parameters)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolved(template, v, parameters))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The patterns of every EventBridge rule the template gives `function`.
fn patterns(template: &Value, function: &str, parameters: &BTreeMap<&str, &str>) -> Vec<Value> {
    let events = template["Resources"][function]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let patterns: Vec<Value> = events
        .values()
        .filter(|e| e["Type"] == "EventBridgeRule")
        .map(|e| resolved(template, &e["Properties"]["Pattern"], parameters))
        .collect();
    assert!(!patterns.is_empty(), "{function} has no EventBridge rule");
    patterns
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("events").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Whether any of `patterns` matches `event`, by the emulator's EventBridge.
async fn received(events: &aws_sdk_eventbridge::Client, patterns: &[Value], event: &Value) -> bool {
    let mut matched = false;
    for pattern in patterns {
        let answer = events
            .test_event_pattern()
            .event_pattern(pattern.to_string())
            .event(event.to_string())
            .send()
            .await
            .unwrap();
        matched |= answer.result();
    }
    matched
}

/// Checks each `(name, event, must_receive)` against the patterns; fails naming every miss.
async fn check_rules(patterns: &[Value], cases: Vec<(String, Value, bool)>) {
    let emulator = Emulator::start();
    let events = aws_sdk_eventbridge::Client::new(&emulator.sdk_config(REGION).await);
    let mut wrong = Vec::new();
    for (name, event, must) in cases {
        if received(&events, patterns, &event).await != must {
            wrong.push(format!(
                "{name}: expected {}",
                if must { "a match" } else { "no match" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\npatterns: {patterns:#?}");
}

/// `event` with the field at `pointer` set to `value` (added when absent).
fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    event.pointer_mut(parent).unwrap()[key] = value;
    event
}

#[tokio::test]
async fn revert_ingress_receives_every_rule_change_and_nothing_else() {
    let patterns = patterns(
        &template("revert-ingress.yaml"),
        "RevertIngressFunction",
        &BTreeMap::new(),
    );
    let ingress = sample("cloudtrail-authorize-ingress.json");
    let mut cases: Vec<(String, Value, bool)> = [
        "cloudtrail-authorize-ingress.json",
        "cloudtrail-authorize-egress.json",
        "cloudtrail-authorize-ingress-by-group-name.json",
        "cloudtrail-authorize-ingress-ipv6-group-prefix-list.json",
        "cloudtrail-authorize-ingress-legacy-flat.json",
        "cloudtrail-modify-security-group-rules.json",
        // A prefix list widened: every rule on it exposes the new entries.
        "cloudtrail-modify-managed-prefix-list.json",
        "cloudtrail-restore-managed-prefix-list-version.json",
        "cloudtrail-restore-managed-prefix-list-version.json",
    ]
    .into_iter()
    .map(|name| (name.to_string(), sample(name), true))
    .collect();
    cases.push((
        "real: cloudtrail-authorize-ingress-group-reference.json".into(),
        real_event("cloudtrail-authorize-ingress-group-reference.json"),
        true,
    ));
    for name in [
        "cloudtrail-authorize-ingress-failed-duplicate.json",
        "scheduled.json",
        "asg-launch-lifecycle-action.json",
        "config-sns-security-group-rules-changed.json",
    ] {
        cases.push((name.to_string(), sample(name), false));
    }
    for (name, event) in [
        // The function's own revokes must never come back to it.
        (
            "its own RevokeSecurityGroupIngress",
            with(
                ingress.clone(),
                "/detail/eventName",
                json!("RevokeSecurityGroupIngress"),
            ),
        ),
        (
            "another resource type's ingress (Client VPN)",
            with(
                ingress.clone(),
                "/detail/eventName",
                json!("AuthorizeClientVpnIngress"),
            ),
        ),
        (
            "a call CloudTrail saw in another service",
            with(
                ingress.clone(),
                "/detail/eventSource",
                json!("rds.amazonaws.com"),
            ),
        ),
        (
            "a denied call",
            with(
                ingress.clone(),
                "/detail/errorCode",
                json!("Client.UnauthorizedOperation"),
            ),
        ),
        (
            "a failed prefix-list modify",
            with(
                sample("cloudtrail-modify-managed-prefix-list.json"),
                "/detail/errorCode",
                json!("Client.IncorrectState"),
            ),
        ),
    ] {
        cases.push((name.to_string(), event, false));
    }
    check_rules(&patterns, cases).await;
}

#[tokio::test]
async fn asg_sync_receives_its_own_group_s_scaling_events_only() {
    let parameters = BTreeMap::from([
        ("AutoScalingGroupName", "db-use1"),
        ("SecurityGroupIds", "sg-0a1,sg-0b2"),
    ]);
    let patterns = patterns(&template("asg-sync.yaml"), "AsgSyncFunction", &parameters);
    let mut cases: Vec<(String, Value, bool)> = [
        "asg-launch-lifecycle-action.json",
        "asg-terminate-lifecycle-action.json",
        "asg-launch-successful.json",
        "asg-terminate-successful.json",
    ]
    .into_iter()
    .map(|name| (name.to_string(), sample(name), true))
    .collect();
    for name in [
        "asg-manual-trueup.json",
        "scheduled.json",
        "cloudtrail-authorize-ingress.json",
        "config-sns-security-group-rules-changed.json",
    ] {
        cases.push((name.to_string(), sample(name), false));
    }
    let launch = sample("asg-launch-lifecycle-action.json");
    cases.push((
        "another Auto Scaling group's launch".into(),
        with(
            launch.clone(),
            "/detail/AutoScalingGroupName",
            json!("web-use1"),
        ),
        false,
    ));
    cases.push((
        "a failed launch".into(),
        with(
            sample("asg-launch-successful.json"),
            "/detail-type",
            json!("EC2 Instance Launch Unsuccessful"),
        ),
        false,
    ));
    // Heal: every call that can take a rule from one of its groups, and no other.
    let revoke = sample("cloudtrail-revoke-ingress.json");
    let modify = sample("cloudtrail-modify-security-group-rules.json");
    let on = |event: &Value, pointer: &str, group: &str| with(event.clone(), pointer, json!(group));
    let modify_group = "/detail/requestParameters/ModifySecurityGroupRulesRequest/GroupId";
    for name in [
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "UpdateSecurityGroupRuleDescriptionsEgress",
    ] {
        let call = with(revoke.clone(), "/detail/eventName", json!(name));
        cases.push((
            format!("{name} on a cluster group"),
            on(&call, "/detail/requestParameters/groupId", "sg-0b2"),
            true,
        ));
        cases.push((
            format!("{name} on another group"),
            on(&call, "/detail/requestParameters/groupId", "sg-0c3"),
            false,
        ));
        cases.push((
            format!("{name} that failed"),
            with(
                call.clone(),
                "/detail/errorCode",
                json!("Client.InvalidPermission.NotFound"),
            ),
            false,
        ));
    }
    let mut by_name = revoke.clone();
    let request = by_name["detail"]["requestParameters"]
        .as_object_mut()
        .unwrap();
    request.remove("groupId");
    request.insert("groupName".into(), json!("db-nodes"));
    cases.push(("a revoke naming its group by name".into(), by_name, true));
    cases.push((
        "ModifySecurityGroupRules on a cluster group".into(),
        on(&modify, modify_group, "sg-0a1"),
        true,
    ));
    cases.push((
        "ModifySecurityGroupRules on another group".into(),
        on(&modify, modify_group, "sg-0c3"),
        false,
    ));
    cases.push((
        "a failed ModifySecurityGroupRules".into(),
        with(
            on(&modify, modify_group, "sg-0a1"),
            "/detail/errorCode",
            json!("Client.UnauthorizedOperation"),
        ),
        false,
    ));
    cases.push((
        "an authorize on a cluster group".into(),
        on(
            &sample("cloudtrail-authorize-ingress.json"),
            "/detail/requestParameters/groupId",
            "sg-0a1",
        ),
        false,
    ));
    check_rules(&patterns, cases).await;
}

/// The SNS subscriptions the notify-owner template gives its function: `(policy, scope)`.
fn sns_filters(template: &Value) -> Vec<(Value, String)> {
    let resources = template["Resources"].as_object().unwrap();
    let function = "NotifyOwnerFunction";
    let events = resources[function]["Properties"]["Events"]
        .as_object()
        .unwrap();
    let from_events = events
        .values()
        .filter(|e| e["Type"] == "SNS")
        .map(|e| &e["Properties"]);
    let subscriptions = resources
        .values()
        .filter(|r| r["Type"] == "AWS::SNS::Subscription")
        .filter(|r| r["Properties"]["Endpoint"]["Fn::GetAtt"][0] == function)
        .map(|r| &r["Properties"]);
    let filters: Vec<(Value, String)> = from_events
        .chain(subscriptions)
        .map(|p| {
            (
                p["FilterPolicy"].clone(),
                p["FilterPolicyScope"]
                    .as_str()
                    .unwrap_or("MessageAttributes")
                    .to_string(),
            )
        })
        .collect();
    // SNS refuses a second subscription of one endpoint to one topic with other attributes
    // (the emulator does not), so the deployment would fail on it.
    assert_eq!(
        filters.len(),
        1,
        "one subscription of the function to the topic"
    );
    filters
}

/// The Config message inside an SNS delivery sample.
fn config_message(name: &str) -> Value {
    let delivery = sample(name);
    serde_json::from_str(delivery["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn notify_owner_receives_security_group_changes_and_nothing_else() {
    let filters = sns_filters(&template("notify-owner.yaml"));
    let emulator = Emulator::start();
    let sns = aws_sdk_sns::Client::new(&emulator.sdk_config(REGION).await);
    let topic = world::topic(&sns, "config-stream").await;
    let sink = HttpSink::start().await;
    for (policy, scope) in &filters {
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("http")
            .endpoint(sink.url())
            .attributes("FilterPolicy", policy.to_string())
            .attributes("FilterPolicyScope", scope)
            .send()
            .await
            .unwrap();
    }
    let mut cases: Vec<(String, Value, bool)> = [
        "config-sns-security-group-rules-changed.json",
        "config-sns-relationships-only.json",
        "config-sns-security-group-created.json",
        "config-sns-security-group-deleted.json",
        "config-sns-oversized.json",
    ]
    .into_iter()
    .map(|name| (name.to_string(), config_message(name), true))
    .collect();
    for name in [
        "config-item-rules-changed.json",
        "config-item-relationships-only.json",
    ] {
        cases.push((format!("real: {name}"), real_event(name), true));
    }
    cases.push((
        "config-sns-other-message-type.json".into(),
        config_message("config-sns-other-message-type.json"),
        false,
    ));
    cases.push((
        "an instance's change".into(),
        with(
            config_message("config-sns-security-group-rules-changed.json"),
            "/configurationItem/resourceType",
            json!("AWS::EC2::Instance"),
        ),
        false,
    ));
    cases.push((
        "a bucket's oversized change".into(),
        with(
            config_message("config-sns-oversized.json"),
            "/configurationItemSummary/resourceType",
            json!("AWS::S3::Bucket"),
        ),
        false,
    ));
    // Each case is marked so deliveries can be told apart. The emulator's SNS delivers while
    // publishing, and the cases that must not arrive are published first: once every match
    // has arrived, a wrong delivery would have arrived before them.
    cases.sort_by_key(|(_, _, must)| *must);
    let mut expected = Vec::new();
    for (n, (name, mut message, must)) in cases.into_iter().enumerate() {
        message["sgwardenCase"] = json!(n);
        sns.publish()
            .topic_arn(&topic)
            .message(message.to_string())
            .send()
            .await
            .unwrap();
        if must {
            expected.push((n, name));
        }
    }
    let deliveries = sink.wait_for(expected.len(), Duration::from_secs(10)).await;
    let mut got: Vec<u64> = deliveries
        .iter()
        .map(|d| {
            let message: Value = serde_json::from_str(d["Message"].as_str().unwrap()).unwrap();
            message["sgwardenCase"].as_u64().unwrap()
        })
        .collect();
    got.sort_unstable();
    let want: Vec<u64> = expected.iter().map(|(n, _)| *n as u64).collect();
    assert_eq!(got, want, "cases by number: {expected:?}");
}

/// The patterns of a template's plain `AWS::Events::Rule` resources.
fn rule_patterns(template: &Value) -> Vec<(String, Value)> {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Events::Rule")
        .map(|(name, r)| (name.clone(), r["Properties"]["EventPattern"].clone()))
        .collect()
}

#[tokio::test]
async fn member_accounts_forward_exactly_what_the_central_functions_handle() {
    let member = template("member.yaml");
    let forwarded: Vec<Value> = rule_patterns(&member).into_iter().map(|(_, p)| p).collect();
    assert_eq!(forwarded.len(), 3, "{forwarded:#?}");
    let config_change = sample("config-eventbridge-security-group-rules-changed.json");
    let oversized = {
        let summary = sample("config-sns-oversized.json");
        let message: Value =
            serde_json::from_str(summary["Records"][0]["Sns"]["Message"].as_str().unwrap())
                .unwrap();
        with(config_change.clone(), "/detail", message)
    };
    let mut cases: Vec<(String, Value, bool)> = [
        "cloudtrail-authorize-ingress.json",
        "cloudtrail-authorize-egress.json",
        "cloudtrail-modify-security-group-rules.json",
        "cloudtrail-modify-managed-prefix-list.json",
        "cloudtrail-restore-managed-prefix-list-version.json",
    ]
    .into_iter()
    .map(|name| (name.to_string(), sample(name), true))
    .collect();
    cases.push((
        "a security group's Config item change".into(),
        config_change.clone(),
        true,
    ));
    cases.push(("an oversized one".into(), oversized.clone(), true));
    for (name, event) in [
        (
            "a failed call",
            sample("cloudtrail-authorize-ingress-failed-duplicate.json"),
        ),
        (
            "sgwarden's own revoke",
            with(
                sample("cloudtrail-authorize-ingress.json"),
                "/detail/eventName",
                json!("RevokeSecurityGroupIngress"),
            ),
        ),
        (
            "another resource type's Config item change",
            with(
                config_change.clone(),
                "/detail/configurationItem/resourceType",
                json!("AWS::S3::Bucket"),
            ),
        ),
        (
            "a compliance change",
            with(
                config_change.clone(),
                "/detail/messageType",
                json!("ComplianceChangeNotification"),
            ),
        ),
    ] {
        cases.push((name.to_string(), event, false));
    }
    check_rules(&forwarded, cases).await;

    // What arrives on the central bus reaches notify-owner there (full and oversized).
    let notify = patterns(
        &template("notify-owner.yaml"),
        "NotifyOwnerFunction",
        &BTreeMap::new(),
    );
    check_rules(
        &notify,
        vec![
            ("full".into(), config_change, true),
            ("oversized".into(), oversized, true),
            (
                "a CloudTrail call".into(),
                sample("cloudtrail-authorize-ingress.json"),
                false,
            ),
        ],
    )
    .await;
}

#[test]
fn the_member_role_trusts_only_the_central_functions_and_never_widens() {
    let member = template("member.yaml");
    let role = &member["Resources"]["MemberRole"]["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"],
        json!({"Ref": "CentralFunctionRoleArns"})
    );
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let allowed: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        allowed.iter().all(|a| a.starts_with("ec2:Describe")
            || a.starts_with("ec2:Revoke")
            || *a == "ec2:GetManagedPrefixListEntries"
            || *a == "config:GetResourceConfigHistory"
            || *a == "cloudtrail:LookupEvents"),
        "{allowed:?}"
    );
    let denied: Vec<&str> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(denied.contains(&"ec2:AuthorizeSecurityGroupIngress"));
    assert!(denied.contains(&"ec2:ModifyManagedPrefixList"));
    // The central bus takes events from the organisation only.
    let central = template("central.yaml");
    let policy = &central["Resources"]["OrganizationMayPutEvents"]["Properties"]["Statement"];
    assert_eq!(
        policy["Condition"]["StringEquals"]["aws:PrincipalOrgID"],
        json!({"Ref": "OrganizationId"})
    );
}

/// True when `pattern` matches the whole of `value`, as CloudFormation's `AllowedPattern`
/// does (Python's `re.fullmatch`: the same answer as Java's for a pattern this plain).
fn allows(pattern: &str, value: &str) -> bool {
    let out = Command::new(emulator::python())
        .args([
            "-c",
            "import re, sys\nprint(bool(re.fullmatch(sys.argv[1], sys.argv[2])))",
        ])
        .args([pattern, value])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

#[test]
fn notify_owner_is_deployed_only_with_the_domains_its_mail_may_go_to() {
    // The owner tag is anyone's to write (ec2:CreateTags): without a domain list, a
    // re-pointed tag mails a group's changes out of the company. Both templates that deploy
    // notify-owner require the list and refuse an empty one.
    for name in ["notify-owner.yaml", "central.yaml"] {
        let parameter = &template(name)["Parameters"]["AllowedRecipientDomains"];
        assert!(parameter.get("Default").is_none(), "{name}: {parameter}");
        let pattern = parameter["AllowedPattern"].as_str().unwrap();
        for refused in ["", " ", ",", "example", "example.com,", "a@example.com"] {
            assert!(!allows(pattern, refused), "{name} allows {refused:?}");
        }
        for allowed in [
            "example.com",
            "Example.com, corp.example.org",
            "example.com,corp.example.org",
        ] {
            assert!(allows(pattern, allowed), "{name} refuses {allowed:?}");
        }
    }
    let central = template("central.yaml");
    assert_eq!(
        central["Resources"]["NotifyOwner"]["Properties"]["Parameters"]["AllowedRecipientDomains"],
        json!({"Ref": "AllowedRecipientDomains"})
    );
    let function = &template("notify-owner.yaml")["Resources"]["NotifyOwnerFunction"];
    assert_eq!(
        function["Properties"]["Environment"]["Variables"]["ALLOWED_RECIPIENT_DOMAINS"],
        json!({"Ref": "AllowedRecipientDomains"})
    );
}

/// Every statement of a role's policies granting `action`: `(condition, statement)`, the
/// condition of the `Fn::If` it sits in (`None` when unconditional).
fn grants<'t>(policies: &'t Value, action: &str) -> Vec<(Option<&'t str>, &'t Value)> {
    let statements = policies.as_array().unwrap().iter().flat_map(|p| {
        p.get("PolicyDocument").unwrap_or(p)["Statement"]
            .as_array()
            .unwrap()
            .iter()
    });
    statements
        .map(|s| match s.get("Fn::If") {
            Some(branches) => (branches[0].as_str(), &branches[1]),
            None => (None, s),
        })
        .filter(|(_, s)| {
            let actions = &s["Action"];
            actions == action
                || actions
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == action))
        })
        .collect()
}

#[test]
fn security_hub_is_granted_only_when_its_parameter_is_on() {
    let revert = template("revert-ingress.yaml");
    let function = &revert["Resources"]["RevertIngressFunction"]["Properties"];
    assert_eq!(
        function["Environment"]["Variables"]["SECURITY_HUB"],
        json!({"Ref": "SecurityHub"})
    );
    assert_eq!(revert["Parameters"]["SecurityHub"]["Default"], "false");
    assert_eq!(
        revert["Conditions"]["ImportsFindings"],
        json!({"Fn::Equals": [{"Ref": "SecurityHub"}, "true"]})
    );
    let member = template("member.yaml");
    assert_eq!(
        member["Conditions"]["ImportsFindings"],
        json!({"Fn::Equals": [{"Ref": "SecurityHub"}, "true"]})
    );
    for policies in [
        &function["Policies"],
        &member["Resources"]["MemberRole"]["Properties"]["Policies"],
    ] {
        let granted = grants(policies, "securityhub:BatchImportFindings");
        assert_eq!(granted.len(), 1, "{granted:?}");
        assert_eq!(granted[0].0, Some("ImportsFindings"));
        assert_eq!(
            granted[0].1["Resource"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"})
        );
    }
    let central = template("central.yaml");
    assert_eq!(
        central["Resources"]["RevertIngress"]["Properties"]["Parameters"]["SecurityHub"],
        json!({"Ref": "SecurityHub"})
    );
}

#[test]
fn the_fanned_out_sweep_s_queue_is_used_only_by_the_function_and_as_little_as_it_needs() {
    let revert = template("revert-ingress.yaml");
    let resources = &revert["Resources"];
    let function = &resources["RevertIngressFunction"]["Properties"];
    assert_eq!(revert["Parameters"]["FanOut"]["Default"], "true");
    assert_eq!(
        function["Environment"]["Variables"]["SGWARDEN_SWEEP_QUEUE_URL"],
        json!({"Fn::If": ["FansOut", {"Ref": "SweepQueue"}, ""]})
    );
    let queue = json!({"Fn::GetAtt": ["SweepQueue", "Arn"]});
    // The planner sends, the event source mapping receives and deletes: scoped to the queue,
    // only when the sweep fans out. The only other SQS grant is the failed-events queue.
    let sends = grants(&function["Policies"], "sqs:SendMessage");
    assert_eq!(sends.len(), 2, "{sends:?}");
    for (condition, statement) in &sends {
        match condition {
            Some("FansOut") => assert_eq!(statement["Resource"], queue),
            None => assert_eq!(
                statement["Resource"],
                json!({"Fn::GetAtt": ["FailedEvents", "Arn"]})
            ),
            other => panic!("sqs:SendMessage under {other:?}"),
        }
    }
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    ] {
        let granted = grants(&function["Policies"], action);
        assert_eq!(granted.len(), 1, "{action}: {granted:?}");
        assert_eq!(granted[0].0, Some("FansOut"), "{action}");
        assert_eq!(granted[0].1["Resource"], queue, "{action}");
    }
    let wildcard = grants(&function["Policies"], "sqs:*");
    assert!(wildcard.is_empty(), "sqs:* granted: {wildcard:?}");
    // Failures are reported per message, and a message failed three times waits in the
    // dead-letter queue.
    let mapping = &resources["SweepEventSource"];
    assert_eq!(mapping["Condition"], "FansOut");
    let mapping = &mapping["Properties"];
    assert_eq!(mapping["EventSourceArn"], queue);
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(mapping["BatchSize"], json!({"Ref": "SweepBatchSize"}));
    assert_eq!(
        mapping["ScalingConfig"]["MaximumConcurrency"],
        json!({"Ref": "SweepMaximumConcurrency"})
    );
    let sweep_queue = &resources["SweepQueue"]["Properties"];
    assert_eq!(
        sweep_queue["RedrivePolicy"]["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["SweepDeadLetters", "Arn"]})
    );
    // Messages stay invisible while a sweep of them may still run (the function's timeout).
    let timeout = function["Timeout"].as_u64().unwrap();
    assert!(sweep_queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);
    // Only the function's role may send: a message is a claim on a place to sweep.
    let policy = &resources["SweepQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Effect"], "Deny");
    assert_eq!(policy["Principal"], "*");
    assert_eq!(policy["Action"], "sqs:SendMessage");
    assert_eq!(
        policy["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
        json!({"Fn::GetAtt": ["RevertIngressFunctionRole", "Arn"]})
    );
    for alarm in ["SweepQueueAgeAlarm", "SweepDeadLetterAlarm"] {
        assert_eq!(resources[alarm]["Condition"], "FansOut", "{alarm}");
    }
    let central = template("central.yaml");
    let passed = &central["Resources"]["RevertIngress"]["Properties"]["Parameters"];
    for parameter in ["FanOut", "SweepBatchSize", "SweepMaximumConcurrency"] {
        assert_eq!(passed[parameter], json!({"Ref": parameter}), "{parameter}");
    }
}
