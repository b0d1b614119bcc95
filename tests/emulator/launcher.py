"""sgwarden's local AWS emulator: moto's server, plus the calls moto lacks, a call log, and outages.

Started by the Rust test harness (`tests/src/emulator.rs`) and by `make demo`; never by hand in
CI. It binds a free loopback port, prints one line `SGWARDEN_EMULATOR_READY port=<port>` on
stdout, and serves until its standard input closes (the harness holds the pipe, so the
emulator dies with the process that started it, even on SIGKILL: no leaked servers).

Every AWS request passes through `Emulator.__call__`, which
  * records it (service, region, account, operation, parameters) for tests to assert on
    (`GET /_sgwarden/calls`, `DELETE /_sgwarden/calls`);
  * serves several accounts, as moto does: a request acts in the account its access key
    belongs to. `POST /_sgwarden/account` with `{"account": "222233334444"}` answers an
    administrator's access key in that account (a test builds a member account's world with
    it), and credentials from STS AssumeRole act in the role's account. `POST /_sgwarden/role`
    with `{"account", "name", "path", "trust"}` creates an IAM role there with that trust
    policy (the tests' member role; the Rust workspace has no IAM client to build it with);
  * refuses STS AssumeRole, as IAM does, when the role does not exist in its account or its
    trust policy does not name the caller (its account, its root, or its role): moto 5.2.5
    hands out credentials for any ARN, which would hide a missing member role;
  * makes a region unreachable on demand (`POST /_sgwarden/outage` with
    `{"region": "us-west-2", "mode": "hang" | "error" | "none"}`): `hang` holds the request
    until the outage ends (a black-holed region, to test client timeouts), `error` answers 503;
    with `"service": "ses"` only that service of the region is cut off;
  * answers every AWS request after a delay on demand (`POST /_sgwarden/latency` with
    `{"seconds": 0.02}`; `{"seconds": 0}` ends it): the round trip of a real AWS call, which
    loopback does not have. With `"operation": "DescribeSecurityGroups"` only that operation
    waits (a slow page of a large read), beside the delay of every request. The delay does not hold the interpreter, so concurrent requests
    wait together, as they would on a network;
  * throttles EC2's mutating calls on demand, as EC2 does (`POST /_sgwarden/throttle` with
    `{"capacity": 20, "refill_per_second": 5}`; `{}` ends it): one token bucket per account
    and region shared by every Authorize/Revoke/Modify/Create/Delete call, a call finding it
    empty answered HTTP 503 `RequestLimitExceeded` in EC2's error format;
  * answers the calls moto 5.2.5 gets wrong, in the real wire format (see GAPS below);
  * hands everything else to moto unchanged.

With `--tls DIR` it also serves the same emulator over HTTPS, on a second free loopback port,
with a certificate for 127.0.0.1 and localhost signed by a certificate authority made for this
run (`DIR/ca.pem`, trusted by nothing else), and prints `SGWARDEN_EMULATOR_TLS port=<port>`
before the ready line: the tests of the functions' TLS client (roots, proxy tunnels) use it.

GAPS, each checked against moto 5.2.5 and filled here:
  * Auto Scaling CompleteLifecycleAction and RecordLifecycleActionHeartbeat: moto answers
    HTTP 500. Filled with the Query/XML responses AWS sends. A lifecycle action is active
    from the first heartbeat or completion that names it until it is completed; completing
    it again fails with AWS's ValidationError ("No active Lifecycle Action found"), so tests
    can prove an action is completed exactly once. The group and hook must exist in moto.
  * AWS Config GetResourceConfigHistory for AWS::EC2::SecurityGroup: moto only knows S3, IAM
    and SNS resources and answers ResourceNotDiscoveredException. Filled from items a test
    seeds with `POST /_sgwarden/config-history` (a JSON list of configuration items in the
    API's shape: `configuration` as a JSON string, times as epoch seconds), newest first, as
    the API returns them.
  * CloudTrail LookupEvents: moto 5.2.5 does not implement it. Filled from events a test
    seeds with `POST /_sgwarden/cloudtrail-events` (a JSON list of CloudTrail records, each
    with its `awsRegion`, and `recipientAccountId` when not the default account), looked up
    by the `EventId` lookup attribute, or by `EventName` (any of those given; none: every
    record) within `StartTime`/`EndTime` (the records' `eventTime`), newest first, `MaxResults`
    (at most 50) to a page and `NextToken` for the next, in the caller's account and region,
    in the API's shape (`CloudTrailEvent` is the record as a JSON string). Config history
    items are likewise kept per account (their `accountId`).
  * SESv2 SendEmail: moto keeps only one body part (HTML when both are sent). The recorded
    call keeps the whole request, so tests read both parts from `GET /_sgwarden/calls`.
    (SESv2's `POST /v2/email/list-identities` and `list-configuration-sets`, the paths the
    current Rust SDK uses, are served by moto 5.2.5 itself; a test pins that.)
  * Security Hub BatchImportFindings: moto 5.2.5 takes a finding of any account under any
    product. Security Hub takes one under a custom integration's default product only from
    the account the finding is about, and within the format's limits (Title 256,
    Description 1024, a ProductFields value 2048 characters); a batch breaking that is
    refused here (each such finding in FailedFindings). GetFindings is moto's (no filters).
  * SNS filter policies with `$or` at the top, scope MessageBody: moto 5.2.5 fails the
    publish with HTTP 500 (it matches the alternatives as message attributes). The policy is
    expanded into its alternatives here, each matched by moto's own body matcher.
  * EC2 AuthorizeSecurityGroupIngress/Egress with several permissions in one call: moto 5.2.5
    answers `securityGroupRuleSet` with the rules of the last permission only (AWS lists every
    rule the call created, and asg-sync records their ids as its proof of ownership). Filled by
    moto's own handler, answering the rules of every permission.
  * EC2 DescribeSecurityGroups with `MaxResults`: moto 5.2.5 ignores it and `NextToken`, and
    answers every group in one page. Filled by moto's own handler, paged as EC2 pages: in the
    order of its unpaged answer, `MaxResults` from 5 to 1000 (else InvalidParameterValue), a
    `NextToken` for the rest (one it did not give: InvalidNextToken). EC2 may answer fewer:
    `POST /_sgwarden/pages` with `{"most": 2}` caps every page at two groups, so a test pages
    a small world; `{"repeat_token": true}` answers a page's own token again, as a broken or
    hostile endpoint would (the reader must not go round for ever); `{}` ends both.
  * EventBridge TestEventPattern: moto 5.2.5 answers without a `Result`. Filled by moto's own
    pattern engine (`moto.events.models.EventPattern`, the one its rules deliver by), so the
    templates' patterns are checked against sample events by a real matcher, not ours.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from moto.core.responses import ActionResult
from moto.ec2.exceptions import InvalidNextToken, InvalidParameterValue
from moto.ec2.responses.security_groups import SecurityGroups
from moto.events.exceptions import InvalidEventPatternException
from moto.events.models import EventPattern
from moto.sns.utils import FilterPolicyMatcher
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

ACCOUNT = "123456789012"
ACCESS_KEY = re.compile(r"Credential=([^/]+)/")
CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
HANG_LIMIT_SECONDS = 120
# `Filter.<n>.Value.<m>` in an EC2 query request; EC2 takes at most 200 values per filter.
FILTER_VALUE = re.compile(r"^Filter\.(\d+)\.Value\.\d+$")
MAX_FILTER_VALUES = 200
# EC2's "mutating actions" share one request-token bucket per account and region.
MUTATING = re.compile(r"^(Authorize|Revoke|Modify|Create|Delete|Update)")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def xml_response(operation: str, result: str = "") -> Response:
    body = (
        f'<{operation}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
        f"<{operation}Result>{result}</{operation}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    )
    return Response(body, status=200, content_type="text/xml")


def query_error(code: str, message: str, status: int = 400) -> Response:
    body = (
        '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")


def ec2_error(code: str, message: str, status: int) -> Response:
    body = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
    return Response(body, status=status, content_type="text/xml")


def sts_error(code: str, message: str, status: int) -> Response:
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(body, status=status, content_type="text/xml")


def access_key(environ: Environ) -> str | None:
    """The access key that signed a request (moto maps each key to its account)."""
    match = ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def caller_account(environ: Environ) -> str:
    """The account a request acts in: moto's, from the access key that signed it."""
    from moto.iam.models import get_account_id_from

    key = access_key(environ)
    return get_account_id_from(key) if key else ACCOUNT


def caller_role(environ: Environ) -> str | None:
    """The role an STS-issued access key was assumed from, if it was."""
    from moto.sts.models import sts_backends

    key = access_key(environ)
    if key is None:
        return None
    for account in list(sts_backends.values()):
        for backend in list(account.values()):
            assumed = backend.get_assumed_role_from_access_key(key)
            if assumed is not None:
                return assumed.role_arn
    return None


def trusts(policy: Any, account: str, role: str | None) -> bool:
    """Whether a trust policy lets `account` (or its `role`) assume the role."""
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return False
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    callers = {account, f"arn:aws:iam::{account}:root", role}
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        principals = (statement.get("Principal") or {})
        principals = principals.get("AWS", []) if isinstance(principals, dict) else principals
        principals = [principals] if isinstance(principals, str) else principals
        if (
            statement.get("Effect") == "Allow"
            and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
            and any(p == "*" or p in callers for p in principals)
        ):
            return True
    return False


def inactive(key: tuple[str, str, str, str]) -> Response:
    """AWS's answer for an action that was completed (or timed out) already."""
    return query_error("ValidationError", f"No active Lifecycle Action found with instance ID or token {key[3]}")


def json_error(code: str, message: str, status: int = 400) -> Response:
    return Response(
        json.dumps({"__type": code, "message": message}),
        status=status,
        content_type="application/x-amz-json-1.1",
    )


def record_time(record: dict[str, Any]) -> float:
    """A CloudTrail record's `eventTime` in epoch seconds (now when it has none)."""
    text = record.get("eventTime")
    if not text:
        return time.time()
    return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def lookup_result(at: float, record: dict[str, Any]) -> dict[str, Any]:
    """One `LookupEvents` result for a seeded record, in the API's shape."""
    identity = record.get("userIdentity") or {}
    return {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "EventSource": record.get("eventSource"),
        "ReadOnly": "false",
        "EventTime": at,
        "Username": identity.get("userName")
        or ((identity.get("sessionContext") or {}).get("sessionIssuer") or {}).get("userName"),
        "CloudTrailEvent": json.dumps(record),
        "Resources": [],
    }


class Emulator:
    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.outages: dict[str, str] = {}
        self.outage_changed = threading.Condition(self.lock)
        self.lifecycle_completed: set[tuple[str, str, str, str]] = set()
        self.config_history: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        self.cloudtrail_events: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.throttle: dict[str, float] = {}
        self.latency = 0.0
        self.operation_latency: dict[str, float] = {}
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.administrator_keys: dict[str, dict[str, str]] = {}

    # -- the WSGI entry point ---------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sgwarden/"):
            return self.control(Request(environ))(environ, start_response)

        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = _Replay(body)
        service, region = self.service_and_region(environ)
        operation, params = self.operation(environ, body, service)
        account = caller_account(environ)
        self.record(service, region, account, operation, params)
        delay = self.latency + self.operation_latency.get(operation, 0.0)
        if delay:
            time.sleep(delay)

        key = f"{service}@{region}" if f"{service}@{region}" in self.outages else region
        mode = self.outages.get(key)
        if mode == "hang":
            self.hang(key)
            mode = self.outages.get(key)
        if mode is not None:
            return Response("region unavailable", status=503)(environ, start_response)

        refused = self.filter_limit(service, params)
        if refused is None:
            refused = self.throttled(account, service, region, operation)
        if refused is not None:
            return refused(environ, start_response)
        if (service, operation) == ("sts", "AssumeRole"):
            refused = self.assume_role_refused(environ, account, params)
            if refused is not None:
                return refused(environ, start_response)
        if (service, operation) == ("securityhub", "POST /findings/import"):
            refused = self.findings_refused(region, account, params)
            if refused is not None:
                return refused(environ, start_response)
        filler = self.fillers().get((service, operation))
        if filler is not None:
            return filler(region, account, params)(environ, start_response)
        return self.moto(environ, start_response)

    @staticmethod
    def assume_role_refused(environ: Environ, account: str, params: dict[str, Any]) -> Response | None:
        """IAM's answer when the role is missing or does not trust the caller."""
        from moto.iam.models import iam_backends

        role_arn = str(params.get("RoleArn", ""))
        parts = role_arn.split(":", 5)
        denied = sts_error(
            "AccessDenied",
            f"User: {account} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            403,
        )
        if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
            return denied
        name = parts[5].rsplit("/", 1)[-1]
        backend = iam_backends[parts[4]]["aws"]
        role = next((r for r in list(backend.roles.values()) if r.name == name), None)
        if role is None or role.arn != role_arn:
            return denied
        if not trusts(role.assume_role_policy_document, account, caller_role(environ)):
            return denied
        return None

    @staticmethod
    def findings_refused(region: str, account: str, params: dict[str, Any]) -> Response | None:
        """Security Hub's rules for a custom integration: a finding under the account's default
        product is taken only from the account it is about, and within ASFF's field limits.
        moto takes any; a batch holding a finding that breaks them is refused whole here, each
        such finding listed in FailedFindings as Security Hub lists them."""
        product = f"arn:aws:securityhub:{region}:{account}:product/{account}/default"
        def refusal(f: dict[str, Any]) -> tuple[str, str] | None:
            if f.get("AwsAccountId") != account or f.get("ProductArn") != product:
                return (
                    "AccessDeniedException",
                    f"account {account} may not import a finding of account {f.get('AwsAccountId')} under {f.get('ProductArn')}",
                )
            limits = {"Title": 256, "Description": 1024}
            for field, limit in limits.items():
                if len(str(f.get(field, ""))) > limit:
                    return ("InvalidInput", f"{field} is longer than {limit} characters")
            for key, value in (f.get("ProductFields") or {}).items():
                if len(key) > 128 or len(str(value)) > 2048:
                    return ("InvalidInput", f"ProductFields {key} is over its limit (key 128, value 2048)")
            return None

        failed = [
            {"Id": f.get("Id", ""), "ErrorCode": code, "ErrorMessage": message}
            for f in params.get("Findings", [])
            for code, message in [refusal(f) or ("", "")]
            if code
        ]
        if not failed:
            return None
        body = {"FailedCount": len(failed), "SuccessCount": 0, "FailedFindings": failed}
        return Response(json.dumps(body), status=200, content_type="application/json")

    @staticmethod
    def service_and_region(environ: Environ) -> tuple[str, str]:
        match = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match:
            return match.group(2), match.group(1)
        return "unknown", "unknown"

    @staticmethod
    def operation(environ: Environ, body: bytes, service: str) -> tuple[str, dict[str, Any]]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        text = body.decode("utf-8", "replace")
        if target:
            try:
                params = json.loads(text) if text else {}
            except json.JSONDecodeError:
                params = {"_raw": text}
            return target.split(".")[-1], params
        content_type = environ.get("CONTENT_TYPE", "")
        if "x-www-form-urlencoded" in content_type or (text and "Action=" in text):
            params = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text).items()}
            return str(params.pop("Action", "Unknown")), params
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            params = json.loads(text) if text else {}
        except json.JSONDecodeError:
            params = {"_raw": text}
        return f"{method} {environ.get('PATH_INFO', '')}", params

    def record(self, service: str, region: str, account: str, operation: str, params: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append(
                {
                    "service": service,
                    "region": region,
                    "account": account,
                    "operation": operation,
                    "params": params,
                    "at": time.time(),
                }
            )

    def hang(self, key: str) -> None:
        deadline = time.monotonic() + HANG_LIMIT_SECONDS
        with self.outage_changed:
            while self.outages.get(key) == "hang":
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.outage_changed.wait(remaining)

    @staticmethod
    def filter_limit(service: str, params: dict[str, Any]) -> Response | None:
        """EC2 refuses a describe filter with more than 200 values; moto accepts any number."""
        if service != "ec2":
            return None
        values: dict[str, int] = {}
        for key in params:
            match = FILTER_VALUE.match(key)
            if match:
                values[match.group(1)] = values.get(match.group(1), 0) + 1
        if any(count > MAX_FILTER_VALUES for count in values.values()):
            return query_error(
                "FilterLimitExceeded",
                f"The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}",
            )
        return None

    def throttled(self, account: str, service: str, region: str, operation: str) -> Response | None:
        """EC2's request-token bucket for mutating calls: refilled continuously, one token a call."""
        if service != "ec2" or not MUTATING.match(operation):
            return None
        with self.lock:
            if not self.throttle:
                return None
            capacity, rate = self.throttle["capacity"], self.throttle["refill_per_second"]
            now = time.monotonic()
            tokens, since = self.buckets.get((account, region), (capacity, now))
            tokens = min(capacity, tokens + (now - since) * rate)
            if tokens < 1:
                self.buckets[(account, region)] = (tokens, now)
                return ec2_error("RequestLimitExceeded", "Request limit exceeded.", 503)
            self.buckets[(account, region)] = (tokens - 1, now)
        return None

    # -- gap fillers ------------------------------------------------------------------------

    def fillers(self) -> dict[tuple[str, str], Callable[[str, str, dict[str, Any]], Response]]:
        return {
            ("autoscaling", "CompleteLifecycleAction"): self.complete_lifecycle_action,
            ("events", "TestEventPattern"): self.test_event_pattern,
            ("autoscaling", "RecordLifecycleActionHeartbeat"): self.record_heartbeat,
            ("config", "GetResourceConfigHistory"): self.get_resource_config_history,
            ("cloudtrail", "LookupEvents"): self.lookup_events,
        }

    def lifecycle_key(self, region: str, params: dict[str, Any]) -> tuple[tuple[str, str, str, str], Response | None]:
        from moto.autoscaling.models import autoscaling_backends

        group = str(params.get("AutoScalingGroupName", ""))
        hook = str(params.get("LifecycleHookName", ""))
        subject = str(params.get("LifecycleActionToken") or params.get("InstanceId") or "")
        key = (region, group, hook, subject)
        if not group or not hook:
            return key, query_error("ValidationError", "AutoScalingGroupName and LifecycleHookName are required")
        if not subject:
            return key, query_error("ValidationError", "Either LifecycleActionToken or InstanceId is required")
        backend = autoscaling_backends[ACCOUNT][region]
        if group not in backend.autoscaling_groups:
            return key, query_error("ValidationError", f"AutoScalingGroup name not found - {group}")
        hooks = [h for h in backend.describe_lifecycle_hooks(group) if h.name == hook]
        if not hooks:
            return key, query_error("ValidationError", f"No Lifecycle Hook found named {hook}")
        return key, None

    def complete_lifecycle_action(self, region: str, account: str, params: dict[str, Any]) -> Response:
        result = params.get("LifecycleActionResult")
        if result not in ("CONTINUE", "ABANDON"):
            return query_error("ValidationError", "LifecycleActionResult must be CONTINUE or ABANDON")
        key, error = self.lifecycle_key(region, params)
        if error is not None:
            return error
        with self.lock:
            if key in self.lifecycle_completed:
                return inactive(key)
            self.lifecycle_completed.add(key)
        return xml_response("CompleteLifecycleAction")

    def record_heartbeat(self, region: str, account: str, params: dict[str, Any]) -> Response:
        key, error = self.lifecycle_key(region, params)
        if error is not None:
            return error
        with self.lock:
            if key in self.lifecycle_completed:
                return inactive(key)
        return xml_response("RecordLifecycleActionHeartbeat")

    def test_event_pattern(self, region: str, account: str, params: dict[str, Any]) -> Response:
        try:
            pattern = EventPattern.load(params["EventPattern"])
            event = json.loads(params["Event"])
        except (InvalidEventPatternException, ValueError, KeyError) as error:
            return json_error("InvalidEventPatternException", str(error))
        return Response(
            json.dumps({"Result": pattern.matches_event(event)}),
            status=200,
            content_type="application/x-amz-json-1.1",
        )

    def get_resource_config_history(self, region: str, account: str, params: dict[str, Any]) -> Response:
        resource_type = params.get("resourceType", "")
        resource_id = params.get("resourceId", "")
        items = self.config_history.get((account, region, resource_type, resource_id))
        if not items:
            return json_error(
                "ResourceNotDiscoveredException",
                f"Resource {resource_id} of resourceType:{resource_type} is unknown or has not been discovered",
            )
        limit = int(params.get("limit") or 10)
        newest_first = sorted(items, key=lambda i: i.get("configurationItemCaptureTime", 0), reverse=True)
        return Response(
            json.dumps({"configurationItems": newest_first[:limit]}),
            status=200,
            content_type="application/x-amz-json-1.1",
        )

    def lookup_events(self, region: str, account: str, params: dict[str, Any]) -> Response:
        attributes = params.get("LookupAttributes") or []
        by_id = [str(a.get("AttributeValue")) for a in attributes if a.get("AttributeKey") == "EventId"]
        names = [str(a.get("AttributeValue")) for a in attributes if a.get("AttributeKey") == "EventName"]
        start, end = params.get("StartTime"), params.get("EndTime")
        with self.lock:
            if by_id:
                records = [self.cloudtrail_events.get((account, region, event_id)) for event_id in by_id]
            else:
                records = [
                    record
                    for (acct, reg, _), record in self.cloudtrail_events.items()
                    if acct == account and reg == region and (not names or record.get("eventName") in names)
                ]
            found = [
                (record_time(record), record)
                for record in records
                if record is not None
                and (start is None or record_time(record) >= float(start))
                and (end is None or record_time(record) <= float(end))
            ]
        # Newest first, as the API answers; NextToken is the offset of the next page.
        found.sort(key=lambda f: f[0], reverse=True)
        offset = int(params.get("NextToken") or 0)
        limit = min(int(params.get("MaxResults") or 50), 50)
        page = found[offset : offset + limit]
        answer: dict[str, Any] = {"Events": [lookup_result(at, record) for at, record in page]}
        if offset + limit < len(found):
            answer["NextToken"] = str(offset + limit)
        return Response(json.dumps(answer), status=200, content_type="application/x-amz-json-1.1")

    # -- control endpoints ------------------------------------------------------------------

    def control(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/_sgwarden/health":
            return Response("ok")
        if path == "/_sgwarden/calls" and method == "GET":
            with self.lock:
                return Response(json.dumps(self.calls), content_type="application/json")
        if path == "/_sgwarden/calls" and method == "DELETE":
            with self.lock:
                self.calls.clear()
            return Response("cleared")
        if path == "/_sgwarden/outage" and method == "POST":
            spec = request.get_json(force=True)
            region, mode = spec.get("region"), spec.get("mode")
            if not region or mode not in ("hang", "error", "none"):
                return Response("need region and mode hang|error|none", status=400)
            key = f"{spec['service']}@{region}" if spec.get("service") else region
            with self.outage_changed:
                if mode == "none":
                    self.outages.pop(key, None)
                else:
                    self.outages[key] = mode
                self.outage_changed.notify_all()
            return Response("ok")
        if path == "/_sgwarden/latency" and method == "POST":
            spec = request.get_json(force=True)
            seconds = max(0.0, float(spec.get("seconds", 0)))
            if spec.get("operation"):
                self.operation_latency[str(spec["operation"])] = seconds
            else:
                self.latency = seconds
            return Response("ok")
        if path == "/_sgwarden/pages" and method == "POST":
            spec = request.get_json(force=True)
            GROUP_PAGES.clear()
            if "most" in spec:
                GROUP_PAGES["most"] = max(1, int(spec["most"]))
            if spec.get("repeat_token"):
                GROUP_PAGES["repeat_token"] = True
            return Response("ok")
        if path == "/_sgwarden/throttle" and method == "POST":
            spec = request.get_json(force=True)
            with self.lock:
                self.buckets.clear()
                self.throttle = (
                    {"capacity": float(spec["capacity"]), "refill_per_second": float(spec["refill_per_second"])}
                    if spec
                    else {}
                )
            return Response("ok")
        if path == "/_sgwarden/config-history" and method == "POST":
            items = request.get_json(force=True)
            if not isinstance(items, list):
                return Response("need a JSON list of configuration items", status=400)
            with self.lock:
                for item in items:
                    key = (item.get("accountId") or ACCOUNT, item["awsRegion"], item["resourceType"], item["resourceId"])
                    self.config_history.setdefault(key, []).append(item)
            return Response("ok")
        if path == "/_sgwarden/cloudtrail-events" and method == "POST":
            records = request.get_json(force=True)
            if not isinstance(records, list):
                return Response("need a JSON list of CloudTrail records", status=400)
            with self.lock:
                for record in records:
                    account = record.get("recipientAccountId") or ACCOUNT
                    self.cloudtrail_events[(account, record["awsRegion"], record["eventID"])] = record
            return Response("ok")
        if path == "/_sgwarden/role" and method == "POST":
            from moto.iam.models import iam_backends

            spec = request.get_json(force=True)
            role = iam_backends[str(spec["account"])]["aws"].create_role(
                role_name=spec["name"],
                assume_role_policy_document=json.dumps(spec["trust"]),
                path=spec.get("path") or "/",
                permissions_boundary=None,
                description="",
                tags=[],
                max_session_duration=None,
            )
            return Response(json.dumps({"Arn": role.arn}), content_type="application/json")
        if path == "/_sgwarden/account" and method == "POST":
            return self.administrator_key(str(request.get_json(force=True).get("account", "")))
        return Response(f"unknown control call {method} {path}", status=404)

    def administrator_key(self, account: str) -> Response:
        """An access key of an IAM user in `account`: requests it signs act in that account."""
        from moto.iam.models import iam_backends

        if not re.fullmatch(r"\d{12}", account):
            return Response("need a 12-digit account", status=400)
        with self.lock:
            if account not in self.administrator_keys:
                backend = iam_backends[account]["aws"]
                backend.create_user(region_name="us-east-1", user_name="emulator-administrator", path="/")
                key = backend.create_access_key(user_name="emulator-administrator")
                self.administrator_keys[account] = {
                    "AccessKeyId": key.access_key_id,
                    "SecretAccessKey": key.secret_access_key,
                }
            return Response(json.dumps(self.administrator_keys[account]), content_type="application/json")


_moto_body_match = FilterPolicyMatcher._body_based_match


def _body_match_with_or(self: FilterPolicyMatcher, message: dict[str, Any]) -> bool:
    """A MessageBody policy `{..., "$or": [a, b]}` matches when `{..., **a}` or `{..., **b}` does."""
    alternatives = self.filter_policy.get("$or") if isinstance(self.filter_policy, dict) else None
    if not isinstance(alternatives, list):
        return _moto_body_match(self, message)
    rest = {k: v for k, v in self.filter_policy.items() if k != "$or"}
    return any(
        _body_match_with_or(FilterPolicyMatcher({**rest, **alternative}, "MessageBody"), message)
        for alternative in alternatives
    )


FilterPolicyMatcher._body_based_match = _body_match_with_or  # type: ignore[method-assign]


def _authorize_answering_every_rule(direction: str) -> Callable[[SecurityGroups], ActionResult]:
    """moto's Authorize handler, answering the rules of every permission of the call."""

    def authorize(self: SecurityGroups) -> ActionResult:
        self.error_on_dryrun()
        backend_call = getattr(self.ec2_backend, f"authorize_security_group_{direction}")
        created: list[Any] = []
        for kwargs in self._process_rules_from_querystring():
            rules, _ = backend_call(**kwargs)
            created.extend(rules)
        return ActionResult({"Return": True, "SecurityGroupRules": created})

    return authorize


SecurityGroups.authorize_security_group_ingress = _authorize_answering_every_rule("ingress")  # type: ignore[method-assign]
SecurityGroups.authorize_security_group_egress = _authorize_answering_every_rule("egress")  # type: ignore[method-assign]

# How DescribeSecurityGroups pages are cut, set by `POST /_sgwarden/pages`: `most` caps a page
# below its MaxResults, `repeat_token` answers a page's own NextToken again.
GROUP_PAGES: dict[str, Any] = {}
_moto_describe_security_groups = SecurityGroups.describe_security_groups


def _describe_security_groups_paged(self: SecurityGroups) -> ActionResult:
    """moto's DescribeSecurityGroups, in pages of MaxResults groups when it is given."""
    max_results = self._get_param("MaxResults")
    token = self._get_param("NextToken")
    if max_results is None and token is None:
        return _moto_describe_security_groups(self)
    size = int(max_results) if max_results is not None else 1000
    if not 5 <= size <= 1000:
        raise InvalidParameterValue(
            f"Value ( {size} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."
        )
    if token is not None and not token.isdigit():
        raise InvalidNextToken(token)
    # moto's own order (the order groups were created in), as its unpaged answer has it.
    groups = list(
        self.ec2_backend.describe_security_groups(
            group_ids=self._get_param("GroupIds", []),
            groupnames=self._get_param("GroupNames", []),
            filters=self._filters_from_querystring(),
        )
    )
    start = int(token or 0)
    end = start + min(size, int(GROUP_PAGES.get("most", size)))
    result: dict[str, Any] = {"SecurityGroups": groups[start:end]}
    if GROUP_PAGES.get("repeat_token") and token is not None:
        result["NextToken"] = token
    elif end < len(groups):
        result["NextToken"] = str(end)
    return ActionResult(result)


SecurityGroups.describe_security_groups = _describe_security_groups_paged  # type: ignore[method-assign]


class _Replay:
    """A request body that has been read once and can be read again by moto."""

    def __init__(self, body: bytes) -> None:
        self.body, self.offset = body, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.body) if size is None or size < 0 else self.offset + size
        chunk, self.offset = self.body[self.offset : end], min(end, len(self.body))
        return chunk

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def tls_context(directory: str) -> Any:
    """A server TLS context for 127.0.0.1 and localhost, signed by a new CA written to `directory`/ca.pem."""
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))

    def certificate(subject: str, key: Any, issuer: Any, issuer_key: Any, ca: bool) -> Any:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("sgwarden emulator test CA", ca_key, None, None, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate("127.0.0.1", server_key, ca.subject, ca_key, False)
    pem = serialization.Encoding.PEM
    with open(os.path.join(directory, "ca.pem"), "wb") as out:
        out.write(ca.public_bytes(pem))
    chain, key_file = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    with open(chain, "wb") as out:
        out.write(server.public_bytes(pem) + ca.public_bytes(pem))
    with open(key_file, "wb") as out:
        out.write(
            server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    return context


def exit_when_stdin_closes() -> None:
    for _ in sys.stdin:
        pass
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--keep-running", action="store_true", help="ignore stdin; stop with a signal")
    parser.add_argument("--tls", metavar="DIR", help="also serve HTTPS, with a new CA written to DIR/ca.pem")
    args = parser.parse_args()

    # Request lines would drown the test output; errors still reach stderr.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    emulator = Emulator()
    server = make_server(args.host, args.port, emulator, threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.server_port)
    if args.tls:
        secure = make_server(
            args.host, 0, emulator, threaded=True, request_handler=MotoRequestHandler, ssl_context=tls_context(args.tls)
        )
        threading.Thread(target=secure.serve_forever, daemon=True).start()
        print(f"SGWARDEN_EMULATOR_TLS port={secure.server_port}", flush=True)
    print(f"SGWARDEN_EMULATOR_READY port={server.server_port}", flush=True)
    if not args.keep_running:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
