//! CloudTrail "AWS API Call via CloudTrail" events for security-group changes.
//!
//! What revert-ingress needs from a call is exactly what it changed, so this parser keeps
//! both views CloudTrail gives: the rules the call *asked for* (`requestParameters`, in
//! CloudTrail's `{"items": [...]}` spelling or the legacy flat `ipProtocol`/`cidrIp`
//! parameters) and the rules EC2 *created* (`responseElements.securityGroupRuleSet`, with
//! rule ids). A failed call (`errorCode`) changed nothing; its parameters are not read at all,
//! so a failed "Duplicate" authorize can never be mistaken for the pre-existing rule.
//!
//! `ModifySecurityGroupRules` is recorded with the new definition only (CloudTrail does not
//! carry the old one) and without the rule's direction; both are for the function to look up.

use std::collections::BTreeSet;
use std::net::IpAddr;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{from_value, ParseError};
use crate::rule::{Direction, Peer, Rule, RuleInfo, RuleSet, Traffic};
use crate::wire::{CidrEntry, Permission, Permissions, SecurityGroupRule};

/// The `detail-type` EventBridge gives every CloudTrail-recorded API call.
pub const API_CALL: &str = "AWS API Call via CloudTrail";

pub(crate) const AUTHORIZE_INGRESS: &str = "AuthorizeSecurityGroupIngress";
pub(crate) const AUTHORIZE_EGRESS: &str = "AuthorizeSecurityGroupEgress";
pub(crate) const MODIFY_RULES: &str = "ModifySecurityGroupRules";
pub(crate) const MODIFY_PREFIX_LIST: &str = "ModifyManagedPrefixList";
pub(crate) const RESTORE_PREFIX_LIST: &str = "RestoreManagedPrefixListVersion";

/// Every call the parser reads and revert-ingress judges, by CloudTrail's `eventName`.
pub const JUDGED_CALLS: [&str; 5] = [
    AUTHORIZE_INGRESS,
    AUTHORIZE_EGRESS,
    MODIFY_RULES,
    MODIFY_PREFIX_LIST,
    RESTORE_PREFIX_LIST,
];

/// Who made the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// `userIdentity.type`: `IAMUser`, `AssumedRole`, `Root`, `AWSService`, …
    pub kind: Option<String>,
    /// `userIdentity.arn`: for an assumed role, the *session* ARN.
    pub arn: Option<String>,
    /// For an assumed-role session, the role it was issued from
    /// (`sessionContext.sessionIssuer.arn`).
    pub role_arn: Option<String>,
    /// `userIdentity.invokedBy`, when a service made the call for the principal.
    pub invoked_by: Option<String>,
}

impl Principal {
    /// The name records give the principal: the role, for an assumed-role session (every
    /// session of a pipeline's role is the same principal), else its ARN.
    pub fn name(&self) -> String {
        self.role_arn
            .clone()
            .or_else(|| self.arn.clone())
            .unwrap_or_else(|| "unknown".to_string())
    }
}

/// How the call names its group: by id, or (EC2-Classic and default-VPC style) by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSelector {
    /// `requestParameters.groupId` (`sg-…`).
    Id(String),
    /// `requestParameters.groupName`, when the call gives no id: the group must be looked up.
    Name(String),
}

/// One rule as `ModifySecurityGroupRules` set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifiedRule {
    /// The rule modified (`SecurityGroupRuleId`, `sgr-…`).
    pub rule_id: String,
    /// The traffic the rule admits from now on.
    pub traffic: Traffic,
    /// The peer the rule admits from now on.
    pub peer: Peer,
    /// The new description, when the call set a non-empty one.
    pub description: Option<String>,
}

/// What a successful call changed.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleChange {
    /// `AuthorizeSecurityGroupIngress` or `AuthorizeSecurityGroupEgress`: rules added to a group.
    Authorize {
        /// The group the rules were added to, by id or by name.
        group: GroupSelector,
        /// `Ingress` for `AuthorizeSecurityGroupIngress`, `Egress` for `…Egress`.
        direction: Direction,
        /// The rules the call asked for.
        requested: RuleSet,
        /// The rules EC2 reported creating, with their ids; empty when the response omits
        /// them (older events, other producers).
        created: RuleSet,
    },
    /// `ModifySecurityGroupRules`: existing rules given a new definition, replacing the old
    /// one (which the event does not carry).
    Modify {
        /// The group the rules belong to (`GroupId`, `sg-…`).
        group_id: String,
        /// Each rule as the call set it; never empty. The direction is not recorded: the
        /// function looks the rule up by id.
        rules: Vec<ModifiedRule>,
    },
    /// `ModifyManagedPrefixList`: entries added to or removed from a managed prefix list
    /// (a rename or resize names none). No security-group call is made, yet every rule on
    /// the list now exposes what it holds.
    ListModify {
        /// The managed prefix list (`PrefixListId`, `pl-…`).
        list_id: String,
        /// The CIDRs the call added (`AddEntry`); empty for a restore.
        added: BTreeSet<Peer>,
        /// The CIDRs the call removed (`RemoveEntry`); empty for a restore.
        removed: BTreeSet<Peer>,
        /// `RestoreManagedPrefixListVersion`: the call brought back an earlier version's
        /// entries and names none of them, so every entry the list holds now may be one it
        /// added (none is vouched for on its strength).
        restored: bool,
    },
}

impl RuleChange {
    /// True when this call made `rule`, as EC2 holds it now (its `sgr-` id in `info`), in
    /// exactly that shape: the created rule of that id (or, when the response lists no ids,
    /// a requested rule) has that shape, or the modify set that id to it. A rule reshaped
    /// by someone else since the call is not what the call made.
    pub fn made(&self, rule: &Rule, info: &RuleInfo) -> bool {
        match self {
            RuleChange::Authorize {
                requested, created, ..
            } => match created.rule_ids() {
                Some(ids) if !ids.is_empty() => info.rule_id.as_ref().is_some_and(|id| {
                    created
                        .iter()
                        .any(|(r, i)| i.rule_id.as_ref() == Some(id) && r == rule)
                }),
                _ => requested.contains(rule),
            },
            RuleChange::Modify { rules, .. } => rules.iter().any(|m| {
                info.rule_id.as_deref() == Some(m.rule_id.as_str())
                    && m.traffic == rule.traffic
                    && m.peer == rule.peer
            }),
            // A list's entries are vouched for by their own record, never as a rule.
            RuleChange::ListModify { .. } => false,
        }
    }
}

/// The outcome the event records.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The call failed (`errorCode` is set): it changed nothing, and its parameters were not
    /// read.
    Failed {
        /// `errorCode`, e.g. `Client.InvalidPermission.Duplicate`.
        code: String,
        /// `errorMessage`, when recorded.
        message: Option<String>,
    },
    /// The call succeeded, and this is what it changed.
    Succeeded(RuleChange),
}

/// A parsed CloudTrail API call on a security group.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// The CloudTrail record's id (`eventID`).
    pub event_id: String,
    /// The API action (`eventName`), one of those the parser handles.
    pub event_name: String,
    /// When the call was made (`eventTime`, as recorded), when present.
    pub event_time: Option<String>,
    /// The region the call was made in (`awsRegion`): where any revert must happen.
    pub region: String,
    /// The account the call was made in (the envelope's `account`, which EventBridge sets).
    pub account: Option<String>,
    /// Who made the call (`userIdentity`); every field `None` when the record has none.
    pub principal: Principal,
    /// The address the call came from (`sourceIPAddress`), when it is one: AWS records it,
    /// the caller cannot write it. A call a service made for the principal names the service
    /// there instead.
    pub source_address: Option<IpAddr>,
    /// Whether the call failed, and if not, what it changed.
    pub outcome: CallOutcome,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "eventID")]
    event_id: String,
    event_name: String,
    #[serde(default)]
    event_time: Option<String>,
    aws_region: String,
    #[serde(default, rename = "sourceIPAddress")]
    source_ip_address: Option<String>,
    #[serde(default)]
    recipient_account_id: Option<String>,
    #[serde(default)]
    user_identity: Option<UserIdentity>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    request_parameters: Option<Value>,
    #[serde(default)]
    response_elements: Option<Value>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    invoked_by: Option<String>,
    #[serde(default)]
    session_context: Option<SessionContext>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext {
    #[serde(default)]
    session_issuer: Option<SessionIssuer>,
}

#[derive(Deserialize, Serialize)]
struct SessionIssuer {
    #[serde(default)]
    arn: Option<String>,
}

/// Parses an EventBridge "AWS API Call via CloudTrail" event for a security-group change.
pub fn parse(event: &Value) -> Result<ApiCall, ParseError> {
    let envelope: EventBridgeEvent<Detail> = from_value(event)?;
    if envelope.source != "aws.ec2" {
        return Err(ParseError::new(
            "source",
            format!("expected aws.ec2, found {:?}", envelope.source),
        ));
    }
    let detail = envelope.detail;
    // EventBridge sets `account` (where the call was made, also on a central bus); the
    // record's own `recipientAccountId` must agree, or the event is not believed.
    let account = match (envelope.account, detail.recipient_account_id) {
        (Some(envelope), Some(recipient)) if envelope != recipient => {
            return Err(ParseError::new(
                "detail.recipientAccountId",
                format!("{recipient} is not the account the event came from ({envelope})"),
            ))
        }
        (envelope, recipient) => envelope.or(recipient),
    };
    let principal = detail
        .user_identity
        .map(|u| Principal {
            kind: u.kind,
            arn: u.arn,
            role_arn: u
                .session_context
                .and_then(|s| s.session_issuer)
                .and_then(|i| i.arn),
            invoked_by: u.invoked_by,
        })
        .unwrap_or_default();
    let outcome = match detail.error_code {
        Some(code) => CallOutcome::Failed {
            code,
            message: detail.error_message,
        },
        None => CallOutcome::Succeeded(
            parse_change(
                &detail.event_name,
                detail.request_parameters.as_ref(),
                detail.response_elements.as_ref(),
            )
            .map_err(|e| e.within("detail"))?,
        ),
    };
    Ok(ApiCall {
        event_id: detail.event_id,
        event_name: detail.event_name,
        event_time: detail.event_time,
        region: detail.aws_region,
        account,
        principal,
        source_address: detail
            .source_ip_address
            .and_then(|address| address.parse().ok()),
        outcome,
    })
}

/// Parses one record of CloudTrail's event history (a `LookupEvents` result's
/// `CloudTrailEvent`, read in `account`) with the same parser as the EventBridge event that
/// carries the same record, so `sgwarden replay` reads every call as the function does.
pub fn parse_record(record: &Value, account: &str) -> Result<ApiCall, ParseError> {
    let event = serde_json::json!({
        "version": "0",
        "id": record.get("eventID").cloned().unwrap_or(Value::Null),
        "detail-type": API_CALL,
        "source": "aws.ec2",
        "account": account,
        "time": record.get("eventTime").cloned().unwrap_or(Value::Null),
        "region": record.get("awsRegion").cloned().unwrap_or(Value::Null),
        "resources": [],
        "detail": record,
    });
    parse(&event)
}

fn parse_change(
    name: &str,
    request: Option<&Value>,
    response: Option<&Value>,
) -> Result<RuleChange, ParseError> {
    let request = request.ok_or_else(|| ParseError::missing("requestParameters"))?;
    match name {
        AUTHORIZE_INGRESS => parse_authorize(Direction::Ingress, request, response),
        AUTHORIZE_EGRESS => parse_authorize(Direction::Egress, request, response),
        MODIFY_RULES => parse_modify(request).map_err(|e| e.within("requestParameters")),
        MODIFY_PREFIX_LIST => parse_list_modify(request).map_err(|e| e.within("requestParameters")),
        RESTORE_PREFIX_LIST => {
            parse_list_restore(request).map_err(|e| e.within("requestParameters"))
        }
        other => Err(ParseError::new(
            "eventName",
            format!("{other:?} is not a security-group change sgwarden handles"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeRequest {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Option<Permissions>,
    // The legacy flat parameters (`--protocol/--port/--cidr` of the CLI).
    #[serde(default)]
    ip_protocol: Option<Value>,
    #[serde(default)]
    from_port: Option<i64>,
    #[serde(default)]
    to_port: Option<i64>,
    #[serde(default)]
    cidr_ip: Option<String>,
    #[serde(default)]
    source_security_group_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizeResponse {
    #[serde(default)]
    security_group_rule_set: Option<RuleList>,
}

#[derive(Deserialize)]
#[serde(transparent)]
struct RuleList(#[serde(deserialize_with = "crate::wire::collection")] Vec<SecurityGroupRule>);

fn parse_authorize(
    direction: Direction,
    request: &Value,
    response: Option<&Value>,
) -> Result<RuleChange, ParseError> {
    let req: AuthorizeRequest = from_value(request).map_err(|e| e.within("requestParameters"))?;
    let group = match (&req.group_id, &req.group_name) {
        (Some(id), _) if !id.is_empty() => GroupSelector::Id(id.clone()),
        (_, Some(name)) if !name.is_empty() => GroupSelector::Name(name.clone()),
        _ => return Err(ParseError::missing("requestParameters.groupId")),
    };
    let created = created_rules(direction, response)?;
    let requested = requested_rules(direction, &req, !created.is_empty())?;
    Ok(RuleChange::Authorize {
        group,
        direction,
        requested,
        created,
    })
}

/// The rules the call asked for. A peer group named only by name (`sourceSecurityGroupName`,
/// or a `groups` item with a `groupName` and no `groupId`, which EC2 accepts in a default
/// VPC) cannot be read exactly from the request: that is refused, unless the response lists
/// the rules EC2 created (`has_created`). Those say exactly what the call made, peer ids
/// included, so they are the truth and the request's name-only peers are left out of it.
fn requested_rules(
    direction: Direction,
    req: &AuthorizeRequest,
    has_created: bool,
) -> Result<RuleSet, ParseError> {
    let mut permissions = req
        .ip_permissions
        .as_ref()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    if has_created {
        permissions = without_name_only_peers(permissions);
    }
    if permissions.is_empty() {
        if req.source_security_group_name.is_some() {
            if has_created {
                return Ok(RuleSet::new());
            }
            return Err(ParseError::new(
                "requestParameters.sourceSecurityGroupName",
                "a peer group named only by name cannot be reverted exactly",
            ));
        }
        let protocol = match &req.ip_protocol {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ParseError::missing("requestParameters.ipPermissions")),
        };
        let cidr = req
            .cidr_ip
            .clone()
            .ok_or_else(|| ParseError::missing("requestParameters.cidrIp"))?;
        permissions.push(Permission {
            protocol,
            from_port: req.from_port,
            to_port: req.to_port,
            ipv4_ranges: vec![CidrEntry {
                cidr,
                description: None,
            }],
            ..Permission::default()
        });
    }
    let mut requested = RuleSet::new();
    requested
        .extend_permissions(direction, &permissions)
        .map_err(|e| e.within("requestParameters.ipPermissions"))?;
    Ok(requested)
}

/// The permissions without their peer groups named only by name; a permission left with no
/// peer at all is dropped (it named nothing but such groups).
fn without_name_only_peers(permissions: Vec<Permission>) -> Vec<Permission> {
    permissions
        .into_iter()
        .filter_map(|mut permission| {
            let had_peers = permission.peer_count() > 0;
            permission.groups.retain(|g| g.group_id.is_some());
            (!had_peers || permission.peer_count() > 0).then_some(permission)
        })
        .collect()
}

/// The rules EC2 reported creating (`responseElements.securityGroupRuleSet`), with their ids.
fn created_rules(direction: Direction, response: Option<&Value>) -> Result<RuleSet, ParseError> {
    let mut created = RuleSet::new();
    let Some(response) = response.filter(|r| !r.is_null()) else {
        return Ok(created);
    };
    let resp: AuthorizeResponse = from_value(response).map_err(|e| e.within("responseElements"))?;
    for (i, rule) in resp
        .security_group_rule_set
        .map(|r| r.0)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let (rule, info) = rule
            .to_rule()
            .map_err(|e| e.within(&format!("responseElements.securityGroupRuleSet[{i}]")))?;
        if rule.direction != direction {
            return Err(ParseError::new(
                format!("responseElements.securityGroupRuleSet[{i}].isEgress"),
                "does not match the call's direction",
            ));
        }
        created.insert(rule, info);
    }
    Ok(created)
}

#[derive(Deserialize)]
struct ModifyEnvelope {
    #[serde(rename = "ModifySecurityGroupRulesRequest")]
    request: ModifyRequest,
}

#[derive(Deserialize)]
struct ModifyRequest {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "SecurityGroupRule")]
    rules: OneOrMany<ModifyEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

#[derive(Deserialize)]
struct ModifyEntry {
    #[serde(rename = "SecurityGroupRuleId")]
    rule_id: String,
    #[serde(rename = "SecurityGroupRule")]
    rule: SecurityGroupRule,
}

fn parse_modify(request: &Value) -> Result<RuleChange, ParseError> {
    let envelope: ModifyEnvelope = from_value(request)?;
    let entries = match envelope.request.rules {
        OneOrMany::Many(list) => list,
        OneOrMany::One(entry) => vec![entry],
    };
    if entries.is_empty() {
        return Err(ParseError::new(
            "ModifySecurityGroupRulesRequest.SecurityGroupRule",
            "names no rule",
        ));
    }
    let mut rules = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let (rule, RuleInfo { description, .. }) = entry.rule.to_rule().map_err(|e| {
            e.within(&format!(
                "ModifySecurityGroupRulesRequest.SecurityGroupRule[{i}]"
            ))
        })?;
        rules.push(ModifiedRule {
            rule_id: entry.rule_id,
            traffic: rule.traffic,
            peer: rule.peer,
            description,
        });
    }
    Ok(RuleChange::Modify {
        group_id: envelope.request.group_id,
        rules,
    })
}

/// `ModifyManagedPrefixList` as CloudTrail records it: the request wrapped in
/// `ModifyManagedPrefixListRequest` with the API's PascalCase names (as for
/// `ModifySecurityGroupRules`), `AddEntry`/`RemoveEntry` one entry or a list of them, each
/// `{"Cidr": …}`. The camelCase spelling (`prefixListId`, `addEntry: {"items": [...]}`) is
/// read too. What the list holds is read from EC2 in any case; the entries named here only
/// say what this call added, which is vouched for when an exempt principal made it.
fn parse_list_modify(request: &Value) -> Result<RuleChange, ParseError> {
    let (body, wrapper) = match request.get("ModifyManagedPrefixListRequest") {
        Some(body) => (body, "ModifyManagedPrefixListRequest."),
        None => (request, ""),
    };
    let list_id = list_id_in(body, wrapper)?;
    let entries = |names: &[&'static str]| -> Result<BTreeSet<Peer>, ParseError> {
        let Some((name, value)) = field(body, names) else {
            return Ok(BTreeSet::new());
        };
        let items: Vec<&Value> = match value {
            Value::Null => Vec::new(),
            Value::Array(items) => items.iter().collect(),
            Value::Object(map) => match map.get("items") {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(Value::Null) => Vec::new(),
                Some(_) => {
                    return Err(ParseError::new(
                        format!("{wrapper}{name}.items"),
                        "is not a list",
                    ))
                }
                None if map.is_empty() => Vec::new(),
                None => vec![value],
            },
            _ => {
                return Err(ParseError::new(
                    format!("{wrapper}{name}"),
                    "is not an entry or a list of entries",
                ))
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = format!("{wrapper}{name}[{i}].Cidr");
                match item.get("Cidr").or_else(|| item.get("cidr")) {
                    Some(Value::String(cidr)) => Peer::cidr(cidr, &at),
                    _ => Err(ParseError::missing(at)),
                }
            })
            .collect()
    };
    let added = entries(&["AddEntry", "addEntry", "AddEntries", "addEntries"])?;
    let removed = entries(&[
        "RemoveEntry",
        "removeEntry",
        "RemoveEntries",
        "removeEntries",
    ])?;
    Ok(RuleChange::ListModify {
        list_id,
        added,
        removed,
        restored: false,
    })
}

fn field<'a>(body: &'a Value, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names.iter().find_map(|n| body.get(*n).map(|v| (*n, v)))
}

/// The `pl-` id a prefix-list call names (`PrefixListId`, or `prefixListId`).
fn list_id_in(body: &Value, wrapper: &str) -> Result<String, ParseError> {
    match field(body, &["PrefixListId", "prefixListId"]) {
        Some((_, Value::String(id))) if id.starts_with("pl-") => Ok(id.clone()),
        Some((name, other)) => Err(ParseError::new(
            format!("{wrapper}{name}"),
            format!("{other} is not a prefix list id"),
        )),
        None => Err(ParseError::missing(format!("{wrapper}PrefixListId"))),
    }
}

/// `RestoreManagedPrefixListVersion`: the list (`PrefixListId`, wrapped in
/// `RestoreManagedPrefixListVersionRequest` like the modify) is back to an earlier version's
/// entries, which the event does not name.
fn parse_list_restore(request: &Value) -> Result<RuleChange, ParseError> {
    let (body, wrapper) = match request.get("RestoreManagedPrefixListVersionRequest") {
        Some(body) => (body, "RestoreManagedPrefixListVersionRequest."),
        None => (request, ""),
    };
    Ok(RuleChange::ListModify {
        list_id: list_id_in(body, wrapper)?,
        added: BTreeSet::new(),
        removed: BTreeSet::new(),
        restored: true,
    })
}

/// Every call that can take a rule away from a group, by CloudTrail's `eventName`: what
/// asg-sync answers with a true-up of the group it names (SPEC, "asg-sync", heal).
pub const REMOVING_CALLS: [&str; 5] = [
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    MODIFY_RULES,
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
];

/// A call that may have removed (or reshaped, or re-described) rules of one group: which
/// group, which call, who. It is a claim, read only to pick the group to true up; what the
/// group holds is read from AWS, never from the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalCall {
    /// The CloudTrail record's id (`eventID`).
    pub event_id: String,
    /// The API action (`eventName`), one of [`REMOVING_CALLS`].
    pub event_name: String,
    /// The region the call was made in (`awsRegion`).
    pub region: String,
    /// The group the call names: `groupId` (`GroupId` for `ModifySecurityGroupRules`), or
    /// only `groupName` for a revoke in a default VPC.
    pub group: GroupSelector,
    /// Who made the call.
    pub principal: Principal,
    /// `errorCode`, when the call failed: it changed nothing.
    pub error_code: Option<String>,
}

/// Parses an EventBridge "AWS API Call via CloudTrail" event for one of [`REMOVING_CALLS`].
/// Anything else, a call naming no group, or a group id that is not an `sg-` id is a
/// [`ParseError`] naming the field: the caller fails closed with nothing changed. A group
/// named only by name is read as such: the call still took rules away from some group.
pub fn parse_removal(event: &Value) -> Result<RemovalCall, ParseError> {
    let envelope: EventBridgeEvent<Detail> = from_value(event)?;
    if envelope.detail_type != API_CALL {
        return Err(ParseError::new(
            "detail-type",
            format!("expected {API_CALL:?}, found {:?}", envelope.detail_type),
        ));
    }
    if envelope.source != "aws.ec2" {
        return Err(ParseError::new(
            "source",
            format!("expected aws.ec2, found {:?}", envelope.source),
        ));
    }
    let detail = envelope.detail;
    if let (Some(envelope), Some(recipient)) = (&envelope.account, &detail.recipient_account_id) {
        if envelope != recipient {
            return Err(ParseError::new(
                "detail.recipientAccountId",
                format!("{recipient} is not the account the event came from ({envelope})"),
            ));
        }
    }
    if !REMOVING_CALLS.contains(&detail.event_name.as_str()) {
        return Err(ParseError::new(
            "detail.eventName",
            format!("{:?} is not a call that removes rules", detail.event_name),
        ));
    }
    let request = detail
        .request_parameters
        .as_ref()
        .ok_or_else(|| ParseError::missing("detail.requestParameters"))?;
    let (field, group) = if detail.event_name == MODIFY_RULES {
        (
            "detail.requestParameters.ModifySecurityGroupRulesRequest.GroupId",
            request
                .get("ModifySecurityGroupRulesRequest")
                .and_then(|r| r.get("GroupId")),
        )
    } else {
        ("detail.requestParameters.groupId", request.get("groupId"))
    };
    let group = match (group, request.get("groupName")) {
        (Some(Value::String(id)), _) if crate::settings::is_group_id(id) => {
            GroupSelector::Id(id.clone())
        }
        (Some(Value::String(id)), _) => {
            return Err(ParseError::new(
                field,
                format!("{id:?} is not a security group id"),
            ))
        }
        (Some(other), _) => {
            return Err(ParseError::new(
                field,
                format!(
                    "a group id is a string, found {}",
                    crate::wire::kind_of(other)
                ),
            ))
        }
        // Revokes in a default VPC may name the group only by name: which group that is
        // cannot be read from the event, so the caller trues up every group it manages.
        (None, Some(Value::String(name))) if detail.event_name != MODIFY_RULES => {
            GroupSelector::Name(name.clone())
        }
        (None, _) => return Err(ParseError::missing(field)),
    };
    let principal = detail
        .user_identity
        .map(|u| Principal {
            kind: u.kind,
            arn: u.arn,
            role_arn: u
                .session_context
                .and_then(|s| s.session_issuer)
                .and_then(|i| i.arn),
            invoked_by: u.invoked_by,
        })
        .unwrap_or_default();
    Ok(RemovalCall {
        event_id: detail.event_id,
        event_name: detail.event_name,
        region: detail.aws_region,
        group,
        principal,
        error_code: detail.error_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, request: Value, response: Value) -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": API_CALL, "source": "aws.ec2",
            "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.08", "eventID": "ev-1", "eventName": name,
                "eventTime": "2026-01-01T00:00:00Z", "awsRegion": "eu-west-1",
                "recipientAccountId": "111122223333",
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
                "requestParameters": request, "responseElements": response
            }
        })
    }

    #[test]
    fn the_account_is_the_envelope_s_and_the_record_must_agree() {
        let mut event = call(AUTHORIZE_INGRESS, json!({"groupId": "sg-1"}), json!(null));
        event["detail"]["errorCode"] = json!("Client.InvalidPermission.Duplicate");
        assert_eq!(
            parse(&event).unwrap().account.as_deref(),
            Some("111122223333")
        );
        event["detail"]["recipientAccountId"] = json!("222233334444");
        assert_eq!(
            parse(&event).unwrap_err().field,
            "detail.recipientAccountId"
        );
        event.as_object_mut().map(|e| e.remove("account"));
        assert_eq!(
            parse(&event).unwrap().account.as_deref(),
            Some("222233334444")
        );
    }

    #[test]
    fn legacy_flat_parameters_parse() {
        // The protocol may be written as a name or as its number.
        for protocol in [json!("tcp"), json!(6)] {
            let event = call(
                AUTHORIZE_INGRESS,
                json!({"groupId": "sg-1", "ipProtocol": protocol, "fromPort": 22, "toPort": 22,
                       "cidrIp": "0.0.0.0/0", "ipPermissions": {}}),
                json!({"_return": true}),
            );
            let parsed = parse(&event).unwrap();
            let CallOutcome::Succeeded(RuleChange::Authorize {
                requested,
                created,
                group,
                ..
            }) = parsed.outcome
            else {
                panic!("not an authorize")
            };
            assert_eq!(group, GroupSelector::Id("sg-1".into()));
            assert!(created.is_empty());
            assert_eq!(requested.texts(), vec!["ingress tcp/22 0.0.0.0/0"]);
        }
    }

    #[test]
    fn failed_calls_are_not_read_further() {
        let mut event = call(AUTHORIZE_INGRESS, json!({"nonsense": 1}), Value::Null);
        event["detail"]["errorCode"] = json!("InvalidPermission.Duplicate");
        let parsed = parse(&event).unwrap();
        assert!(
            matches!(parsed.outcome, CallOutcome::Failed { ref code, .. } if code == "InvalidPermission.Duplicate")
        );
    }

    #[test]
    fn a_call_with_nothing_requested_is_refused() {
        let e = parse(&call(
            AUTHORIZE_INGRESS,
            json!({"groupId": "sg-1", "ipPermissions": {}}),
            Value::Null,
        ))
        .unwrap_err();
        assert_eq!(e.field, "detail.requestParameters.ipPermissions");
        let e = parse(&call(
            AUTHORIZE_INGRESS,
            json!({"ipPermissions": {}}),
            Value::Null,
        ))
        .unwrap_err();
        assert_eq!(e.field, "detail.requestParameters.groupId");
    }

    /// The requested and created rules of an authorize with this request and response.
    fn requested_and_created(request: Value, response: Value) -> (RuleSet, RuleSet) {
        match parse(&call(AUTHORIZE_INGRESS, request, response))
            .unwrap()
            .outcome
        {
            CallOutcome::Succeeded(RuleChange::Authorize {
                requested, created, ..
            }) => (requested, created),
            other => panic!("not an authorize: {other:?}"),
        }
    }

    #[test]
    fn a_peer_named_by_name_is_read_from_the_rules_ec2_created() {
        let request = json!({"groupId": "sg-1", "sourceSecurityGroupName": "app",
                             "sourceSecurityGroupOwnerId": "111122223333"});
        let response = json!({"_return": true, "securityGroupRuleSet": {"items": [
            {"groupId": "sg-1", "securityGroupRuleId": "sgr-9", "isEgress": false,
             "ipProtocol": "-1", "fromPort": -1, "toPort": -1,
             "referencedGroupInfo": {"userId": "111122223333", "groupId": "sg-app"}}]}});
        let (requested, created) = requested_and_created(request.clone(), response);
        assert!(requested.is_empty());
        assert_eq!(created.rule_ids(), Some(vec!["sgr-9".to_string()]));
        assert_eq!(created.texts(), vec!["ingress all sg-app"]);
        // Without the created rules, the name alone cannot be reverted exactly: refused.
        let e = parse(&call(AUTHORIZE_INGRESS, request, json!({"_return": true}))).unwrap_err();
        assert_eq!(e.field, "detail.requestParameters.sourceSecurityGroupName");
    }

    #[test]
    fn a_permission_naming_a_peer_group_by_name_is_read_from_the_rules_ec2_created() {
        // The default-VPC call of attack 3: the internet and a group named `default`, in one
        // permission; the response lists both rules EC2 made, the group by its id.
        let request = json!({"groupId": "sg-1", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
             "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
             "groups": {"items": [{"groupName": "default"}]}},
            {"ipProtocol": "tcp", "fromPort": 25, "toPort": 25,
             "groups": {"items": [{"groupName": "default"}]}}]}});
        let response = json!({"_return": true, "securityGroupRuleSet": {"items": [
            {"groupId": "sg-1", "securityGroupRuleId": "sgr-1", "isEgress": false,
             "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
            {"groupId": "sg-1", "securityGroupRuleId": "sgr-2", "isEgress": false,
             "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
             "referencedGroupInfo": {"userId": "111122223333", "groupId": "sg-default"}},
            {"groupId": "sg-1", "securityGroupRuleId": "sgr-3", "isEgress": false,
             "ipProtocol": "tcp", "fromPort": 25, "toPort": 25,
             "referencedGroupInfo": {"userId": "111122223333", "groupId": "sg-default"}}]}});
        let (requested, created) = requested_and_created(request.clone(), response);
        // What the request says exactly stays; the name-only peers are left to the response.
        assert_eq!(requested.texts(), vec!["ingress tcp/22 0.0.0.0/0"]);
        assert_eq!(
            created.rule_ids(),
            Some(vec!["sgr-1".into(), "sgr-2".into(), "sgr-3".into()])
        );
        // A permission that named no peer at all is still malformed, response or not.
        let peerless = json!({"groupId": "sg-1", "ipPermissions": {"items": [
            {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22}]}});
        let created = json!({"_return": true, "securityGroupRuleSet": {"items": [
            {"groupId": "sg-1", "securityGroupRuleId": "sgr-1", "isEgress": false,
             "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"}]}});
        let e = parse(&call(AUTHORIZE_INGRESS, peerless, created)).unwrap_err();
        assert_eq!(
            e.field,
            "detail.requestParameters.ipPermissions[0].ipRanges"
        );
        // Without the created rules the name cannot be read exactly: refused, naming it.
        let e = parse(&call(AUTHORIZE_INGRESS, request, json!({"_return": true}))).unwrap_err();
        assert_eq!(
            e.field,
            "detail.requestParameters.ipPermissions[0].groups[0].groupId"
        );
    }

    #[test]
    fn an_empty_group_id_or_name_names_no_group() {
        let by = |request: Value| -> Result<GroupSelector, ParseError> {
            let parsed = parse(&call(AUTHORIZE_INGRESS, request, Value::Null))?;
            match parsed.outcome {
                CallOutcome::Succeeded(RuleChange::Authorize { group, .. }) => Ok(group),
                other => panic!("{other:?}"),
            }
        };
        let ssh = json!({"items": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                                    "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]});
        assert_eq!(
            by(json!({"groupId": "", "groupName": "web", "ipPermissions": ssh})).unwrap(),
            GroupSelector::Name("web".into())
        );
        assert_eq!(
            by(json!({"groupId": "sg-1", "groupName": "web", "ipPermissions": ssh})).unwrap(),
            GroupSelector::Id("sg-1".into())
        );
        for nameless in [
            json!({"groupId": "", "ipPermissions": ssh}),
            json!({"groupName": "", "ipPermissions": ssh}),
            json!({"groupId": "", "groupName": "", "ipPermissions": ssh}),
        ] {
            assert_eq!(
                by(nameless).unwrap_err().field,
                "detail.requestParameters.groupId"
            );
        }
    }

    #[test]
    fn other_api_calls_are_refused() {
        let e = parse(&call(
            "DeleteSecurityGroup",
            json!({"groupId": "sg-1"}),
            Value::Null,
        ))
        .unwrap_err();
        assert_eq!(e.field, "detail.eventName");
    }

    #[test]
    fn a_prefix_list_modify_names_the_list_and_the_entries_it_added_and_removed() {
        let change = |request: Value| match parse(&call(MODIFY_PREFIX_LIST, request, json!({})))
            .map(|c| c.outcome)
        {
            Ok(CallOutcome::Succeeded(RuleChange::ListModify {
                list_id,
                added,
                removed,
                restored: false,
            })) => Ok((
                list_id,
                added.iter().map(ToString::to_string).collect::<Vec<_>>(),
                removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.field),
        };
        // One entry, as CloudTrail records a single `AddEntry.1`.
        assert_eq!(
            change(
                json!({"ModifyManagedPrefixListRequest": {"PrefixListId": "pl-1",
                "CurrentVersion": 2, "AddEntry": {"Cidr": "0.0.0.0/0", "tag": 1}}})
            ),
            Ok(("pl-1".into(), vec!["0.0.0.0/0".into()], vec![]))
        );
        assert_eq!(
            change(
                json!({"ModifyManagedPrefixListRequest": {"PrefixListId": "pl-1",
                "AddEntry": [{"Cidr": "10.0.0.7/24", "tag": 1}, {"Cidr": "::/0", "tag": 2}],
                "RemoveEntry": {"Cidr": "192.0.2.0/24", "tag": 1}}})
            ),
            Ok((
                "pl-1".into(),
                vec!["10.0.0.0/24".into(), "::/0".into()],
                vec!["192.0.2.0/24".into()]
            ))
        );
        assert_eq!(
            change(json!({"prefixListId": "pl-2",
                "addEntry": {"items": [{"cidr": "203.0.113.0/24"}]}, "removeEntry": {}})),
            Ok(("pl-2".into(), vec!["203.0.113.0/24".into()], vec![]))
        );
        // `null` entries (a producer that writes every field) name no entry either.
        assert_eq!(
            change(json!({"prefixListId": "pl-4", "addEntry": null, "removeEntry": null})),
            Ok(("pl-4".into(), vec![], vec![]))
        );
        // A rename names no entry.
        assert_eq!(
            change(
                json!({"ModifyManagedPrefixListRequest": {"PrefixListId": "pl-3",
                "PrefixListName": "partners"}})
            ),
            Ok(("pl-3".into(), vec![], vec![]))
        );
        for (bad, field) in [
            (
                json!({"ModifyManagedPrefixListRequest": {"AddEntry": {"Cidr": "0.0.0.0/0"}}}),
                "detail.requestParameters.ModifyManagedPrefixListRequest.PrefixListId",
            ),
            (
                json!({"prefixListId": "sg-1"}),
                "detail.requestParameters.prefixListId",
            ),
            (
                json!({"ModifyManagedPrefixListRequest": {"PrefixListId": "pl-1",
                    "AddEntry": {"Cidr": "0.0.0.0/33"}}}),
                "detail.requestParameters.ModifyManagedPrefixListRequest.AddEntry[0].Cidr",
            ),
            (
                json!({"ModifyManagedPrefixListRequest": {"PrefixListId": "pl-1",
                    "RemoveEntry": [{"Description": "x"}]}}),
                "detail.requestParameters.ModifyManagedPrefixListRequest.RemoveEntry[0].Cidr",
            ),
            (
                json!({"prefixListId": "pl-1", "addEntry": "0.0.0.0/0"}),
                "detail.requestParameters.addEntry",
            ),
            (
                json!({"prefixListId": "pl-1", "addEntry": {"items": 1}}),
                "detail.requestParameters.addEntry.items",
            ),
        ] {
            assert_eq!(change(bad).unwrap_err(), field);
        }
    }

    #[test]
    fn a_prefix_list_restore_names_the_list_and_says_its_entries_are_unknown() {
        let restored = parse(&call(
            RESTORE_PREFIX_LIST,
            json!({"RestoreManagedPrefixListVersionRequest": {"PrefixListId": "pl-7",
                "PreviousVersion": 1, "CurrentVersion": 3}}),
            json!({}),
        ))
        .unwrap();
        assert_eq!(
            restored.outcome,
            CallOutcome::Succeeded(RuleChange::ListModify {
                list_id: "pl-7".into(),
                added: BTreeSet::new(),
                removed: BTreeSet::new(),
                restored: true,
            })
        );
        let bad = parse(&call(
            RESTORE_PREFIX_LIST,
            json!({"RestoreManagedPrefixListVersionRequest": {"PreviousVersion": 1}}),
            json!({}),
        ))
        .unwrap_err();
        assert_eq!(
            bad.field,
            "detail.requestParameters.RestoreManagedPrefixListVersionRequest.PrefixListId"
        );
    }

    #[test]
    fn modify_accepts_one_or_many_rules() {
        let one = json!({"ModifySecurityGroupRulesRequest": {"GroupId": "sg-1",
            "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-1", "SecurityGroupRule":
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "0.0.0.0/0"}}}});
        let parsed = parse(&call(MODIFY_RULES, one, json!({"_return": true}))).unwrap();
        let CallOutcome::Succeeded(RuleChange::Modify { group_id, rules }) = parsed.outcome else {
            panic!("not a modify")
        };
        assert_eq!(group_id, "sg-1");
        assert_eq!(rules[0].rule_id, "sgr-1");
        assert_eq!(rules[0].traffic.to_string(), "tcp/22");
    }
}

#[cfg(test)]
mod removal_tests {
    use super::*;
    use serde_json::json;

    fn removal(name: &str, request: Value) -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": API_CALL, "source": "aws.ec2",
            "account": "111122223333", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.08", "eventID": "ev-9", "eventName": name,
                "eventTime": "2026-01-01T00:00:00Z", "awsRegion": "eu-west-1",
                "recipientAccountId": "111122223333",
                "userIdentity": {"type": "AssumedRole",
                    "arn": "arn:aws:sts::111122223333:assumed-role/ops/alice",
                    "sessionContext": {"sessionIssuer":
                        {"arn": "arn:aws:iam::111122223333:role/ops"}}},
                "requestParameters": request, "responseElements": null
            }
        })
    }

    #[test]
    fn every_removing_call_names_its_group_call_and_caller() {
        for name in REMOVING_CALLS {
            let request = if name == MODIFY_RULES {
                json!({"ModifySecurityGroupRulesRequest": {"GroupId": "sg-0a1",
                    "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-1"}}})
            } else {
                json!({"groupId": "sg-0a1", "ipPermissions": {"items": []}})
            };
            let call = parse_removal(&removal(name, request)).unwrap();
            assert_eq!(call.group, GroupSelector::Id("sg-0a1".into()));
            assert_eq!(call.event_name, name);
            assert_eq!(call.event_id, "ev-9");
            assert_eq!(call.region, "eu-west-1");
            assert_eq!(call.principal.name(), "arn:aws:iam::111122223333:role/ops");
            assert_eq!(call.error_code, None);
        }
    }

    #[test]
    fn a_revoke_by_group_name_is_read_by_name() {
        let event = removal(
            "RevokeSecurityGroupIngress",
            json!({"groupName": "ring-nodes", "ipPermissions": {"items": []}}),
        );
        let call = parse_removal(&event).unwrap();
        assert_eq!(call.group, GroupSelector::Name("ring-nodes".into()));
    }

    #[test]
    fn a_failed_call_is_read_as_failed() {
        let mut event = removal("RevokeSecurityGroupIngress", json!({"groupId": "sg-0a1"}));
        event["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
        let call = parse_removal(&event).unwrap();
        assert_eq!(
            call.error_code.as_deref(),
            Some("Client.UnauthorizedOperation")
        );
    }

    #[test]
    fn malformed_or_foreign_events_are_refused_naming_the_field() {
        let revoke = "RevokeSecurityGroupIngress";
        let cases = [
            (
                removal(
                    "AuthorizeSecurityGroupIngress",
                    json!({"groupId": "sg-0a1"}),
                ),
                "detail.eventName",
            ),
            (
                removal(revoke, json!({"groupName": 7})),
                "detail.requestParameters.groupId",
            ),
            (
                removal(
                    MODIFY_RULES,
                    json!({"ModifySecurityGroupRulesRequest": {}, "groupName": "web"}),
                ),
                "detail.requestParameters.ModifySecurityGroupRulesRequest.GroupId",
            ),
            (
                removal(revoke, json!({})),
                "detail.requestParameters.groupId",
            ),
            (
                removal(revoke, json!({"groupId": 7})),
                "detail.requestParameters.groupId",
            ),
            (
                removal(revoke, json!({"groupId": "sg-0a1,sg-0b2"})),
                "detail.requestParameters.groupId",
            ),
            (
                removal(revoke, json!({"groupId": "sg-"})),
                "detail.requestParameters.groupId",
            ),
            (
                removal(MODIFY_RULES, json!({"GroupId": "sg-0a1"})),
                "detail.requestParameters.ModifySecurityGroupRulesRequest.GroupId",
            ),
        ];
        for (event, field) in cases {
            assert_eq!(parse_removal(&event).unwrap_err().field, field, "{event}");
        }
        let mut event = removal(revoke, json!({"groupId": "sg-0a1"}));
        event["detail"]["requestParameters"] = Value::Null;
        assert_eq!(
            parse_removal(&event).unwrap_err().field,
            "detail.requestParameters"
        );
        let mut event = removal(revoke, json!({"groupId": "sg-0a1"}));
        event["source"] = json!("custom.forged");
        assert_eq!(parse_removal(&event).unwrap_err().field, "source");
        let mut event = removal(revoke, json!({"groupId": "sg-0a1"}));
        event["detail-type"] = json!("Scheduled Event");
        assert_eq!(parse_removal(&event).unwrap_err().field, "detail-type");
        let mut event = removal(revoke, json!({"groupId": "sg-0a1"}));
        event["detail"]["recipientAccountId"] = json!("222233334444");
        assert_eq!(
            parse_removal(&event).unwrap_err().field,
            "detail.recipientAccountId"
        );
    }
}
