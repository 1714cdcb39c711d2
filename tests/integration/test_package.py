"""The deployable stack, checked offline (issue 5).

``chalice package --merge-template infra/template.json`` runs once per stage (dev
and prod) for this module; the tests read the packaged template: cfn-lint is clean,
every trigger is wired, every function holds only what its code calls, and the
names match what ``.chalice/config.json`` and ``Settings`` expect. Two stages can
live side by side in one account.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.cli import stage_environment
from chalicelib.models import TABLE_SCHEMA
from chalicelib.settings import Settings
from infra import package
from tests.deploy.cfn import ACCOUNT, REGION, Stack, as_list, cycle, policy_statements

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
RELAY_DOMAINS = {"dev": "chat-dev.example.org", "prod": "chat.example.org"}

# Chalice logical id -> the name in app.py.
FUNCTIONS = {
    "APIHandler": "api_handler",
    "IntegrationEvents": "integration_events",
    "OpenChat": "open_chat",
    "CloseChat": "close_chat",
    "Sweeper": "sweeper",
    "Deliver": "deliver",
    "InboundEmail": "inbound_email",
    "Feedback": "feedback",
    "Digest": "digest",
    "SmsInbound": "sms_inbound",
}
# The AWS services each function's code calls, and nothing more.
SERVICES = {
    "APIHandler": {
        "logs",
        "xray",
        "dynamodb",
        "sqs",
        "scheduler",
        "iam",
        "ses",
        "s3",
    },  # + approvals, steward notices, GET /files/{token}
    "IntegrationEvents": {"logs", "xray", "dynamodb", "sqs", "scheduler", "iam"},
    "OpenChat": {"logs", "xray", "dynamodb", "sqs", "scheduler", "iam"},
    "CloseChat": {"logs", "xray", "dynamodb", "sqs", "scheduler", "iam"},
    "Sweeper": {
        "logs",
        "xray",
        "dynamodb",
        "sqs",
        "scheduler",
        "iam",
        "ses",
        "s3",
        "events",
    },  # + expiring held messages, integration events out
    "Deliver": {"logs", "xray", "dynamodb", "sqs", "ses", "s3", "sms-voice"},  # + texts (issue 12)
    "InboundEmail": {"logs", "xray", "dynamodb", "sqs", "ses", "s3"},
    "Feedback": {"logs", "xray", "dynamodb"},
    "Digest": {"logs", "xray", "dynamodb", "ses", "s3"},
    "SmsInbound": {"logs", "xray", "dynamodb", "sqs", "ses", "s3", "sms-voice"},  # texts in: the relay's path
}
# Actions AWS only authorizes on Resource "*".
# Actions AWS offers no resource-level permissions for.
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ses:GetAccount"}


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = {}
    for stage in STAGES:
        path = package.chalice_package(stage, tmp_path_factory.mktemp(f"package-{stage}"))
        out[stage] = package.pin_stage(path, stage)
        out[stage]["__path__"] = str(path)
    return out


@pytest.fixture(scope="module")
def stacks(templates: dict[str, dict[str, Any]]) -> dict[str, Stack]:
    return {s: Stack(t, {"RelayDomain": RELAY_DOMAINS[s]}) for s, t in templates.items()}


@pytest.fixture(scope="module")
def dev(stacks: dict[str, Stack]) -> Stack:
    return stacks["dev"]


def settings_for(stage: str) -> Settings:
    env = stage_environment(stage, ROOT / ".chalice" / "config.json")
    return Settings.from_env({**env, "MUSTER_ACCOUNT_ID": ACCOUNT, "AWS_REGION": REGION})


def role_of(stack: Stack, function: str) -> str:
    role = stack.props(function)["Role"]
    assert set(role) == {"Fn::GetAtt"}, f"{function} must use a role from this template"
    return str(role["Fn::GetAtt"][0])


def allowed(stack: Stack, role: str) -> Iterator[dict[str, Any]]:
    for logical, statement in policy_statements(stack):
        if logical == role and statement["Effect"] == "Allow":
            yield statement


def grants(stack: Stack, role: str) -> list[tuple[str, str]]:
    """Every (action, resolved resource) pair the role allows."""
    return [
        (action, str(stack.resolve(resource)))
        for statement in allowed(stack, role)
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]


def function_arn(stack: Stack, logical: str) -> str:
    return stack.getatt(logical, "Arn")


# -- the template is valid --------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_cfn_lint_reports_nothing(templates: dict[str, dict[str, Any]], stage: str) -> None:
    result = package.lint(Path(templates[stage]["__path__"]))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_function_exists_and_every_merged_resource_has_a_type(dev: Stack) -> None:
    # A merge-template entry for a function app.py lacks would be a typeless stub.
    untyped = [k for k, v in dev.resources.items() if "Type" not in v]
    assert not untyped, f"merged into resources Chalice did not generate: {untyped}"
    functions = dev.of_type("AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for logical, name in FUNCTIONS.items():
        expected = "muster-dev" if logical == "APIHandler" else f"muster-dev-{name}"
        assert dev.name(logical) == expected


@pytest.mark.parametrize("stage", STAGES)
def test_no_circular_dependencies(stacks: dict[str, Stack], stage: str) -> None:
    # cfn-lint validates SAM templates without transforming them and misses cycles
    # through an AWS::Serverless::Api's DefinitionBody (the API handler must never
    # reference RestAPI, for instance).
    assert cycle(stacks[stage]) is None


def test_stage_parameter_is_pinned(templates: dict[str, dict[str, Any]]) -> None:
    for stage in STAGES:
        parameter = templates[stage]["Parameters"]["Stage"]
        assert parameter["Default"] == stage and parameter["AllowedValues"] == [stage]


# -- triggers ---------------------------------------------------------------------------


def test_ses_receipt_rule_stores_then_invokes_inbound_email(dev: Stack) -> None:
    (rule_id,) = dev.of_type("AWS::SES::ReceiptRule")
    rule = dev.props(rule_id)["Rule"]
    assert rule["Enabled"] is True and rule["ScanEnabled"] is True
    assert dev.resolve(rule["Recipients"]) == [RELAY_DOMAINS["dev"]]
    s3, lam = (a for a in rule["Actions"])  # order matters: raw mail is in S3 before the Lambda runs
    assert dev.resolve(s3["S3Action"]) == {"BucketName": "muster-dev-mail-123456789012", "ObjectKeyPrefix": "inbound/"}
    assert lam["LambdaAction"]["InvocationType"] == "Event"
    assert dev.resolve(lam["LambdaAction"]["FunctionArn"]) == function_arn(dev, "InboundEmail")
    assert dev.props("InboundEmail")["Handler"].startswith(("app.", "chalicelib."))

    rule_arn = (
        f"arn:aws:ses:{REGION}:{ACCOUNT}:receipt-rule-set/{dev.name(dev.props(rule_id)['RuleSetName']['Ref'])}"
        f":receipt-rule/{dev.name(rule_id)}"
    )
    permissions = [
        dev.resolve(p["Properties"])
        for p in dev.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "ses.amazonaws.com"
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": "muster-dev-inbound_email",
            "Principal": "ses.amazonaws.com",
            "SourceAccount": ACCOUNT,
            "SourceArn": rule_arn,
        }
    ]
    # SES checks both grants when the rule is created.
    assert {"MailBucketPolicy", "InboundEmailSesPermission"} <= set(dev.resources[rule_id]["DependsOn"])


def test_sqs_delivers_to_deliver_with_partial_batch_failures(dev: Stack) -> None:
    events = dev.props("Deliver")["Events"]
    (event,) = events.values()
    assert event["Type"] == "SQS"
    assert dev.resolve(event["Properties"]["Queue"]) == dev.getatt("DeliveryQueue", "Arn")
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = dev.props("DeliveryQueue")
    assert queue["VisibilityTimeout"] >= 6 * dev.props("Deliver")["Timeout"]
    assert queue["SqsManagedSseEnabled"] is True
    redrive = dev.resolve(queue["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dev.getatt("DeliveryDeadLetterQueue", "Arn")
    assert 3 <= redrive["maxReceiveCount"] <= 10
    assert dev.props("DeliveryDeadLetterQueue")["SqsManagedSseEnabled"] is True
    # No other function consumes the queue.
    for logical in FUNCTIONS:
        if logical != "Deliver":
            assert all(e["Type"] != "SQS" for e in dev.props(logical).get("Events", {}).values())


def test_ses_feedback_reaches_the_feedback_function(dev: Stack) -> None:
    (event,) = dev.props("Feedback")["Events"].values()
    assert event["Type"] == "SNS"
    topic_arn = dev.ref("FeedbackTopic")
    assert dev.resolve(event["Properties"]["Topic"]) == topic_arn
    (destination,) = dev.of_type("AWS::SES::ConfigurationSetEventDestination").values()
    dest = dev.resolve(destination["Properties"])
    assert dest["EventDestination"]["SnsDestination"]["TopicARN"] == topic_arn
    assert {"bounce", "complaint"} <= set(dest["EventDestination"]["MatchingEventTypes"])
    assert dest["ConfigurationSetName"] == "muster-dev"
    # The senders use that configuration set; the identity defaults to it too.
    for logical in ("Deliver", "InboundEmail", "Digest"):
        assert dev.resolve(dev.props(logical)["Environment"]["Variables"]["MUSTER_CONFIGURATION_SET"]) == "muster-dev"
    identity = dev.resolve(dev.props("EmailIdentity"))
    assert identity["EmailIdentity"] == RELAY_DOMAINS["dev"]
    assert identity["ConfigurationSetAttributes"]["ConfigurationSetName"] == "muster-dev"
    policy = dev.of_type("AWS::SNS::TopicPolicy")["FeedbackTopicPolicy"]
    statement, sms = dev.resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT
    # SMS delivery events (issue 12) come from this account's End User Messaging SMS.
    assert sms["Principal"] == {"Service": "sms-voice.amazonaws.com"} and sms["Action"] == "sns:Publish"
    assert sms["Condition"]["StringEquals"]["aws:SourceAccount"] == ACCOUNT


def test_both_topics_are_encrypted_with_one_rotating_key_only_ses_and_cloudwatch_use(stacks: dict[str, Stack]) -> None:
    for stage, stack in stacks.items():
        (key_id,) = stack.of_type("AWS::KMS::Key")
        key = stack.resolve(stack.props(key_id))
        assert key["EnableKeyRotation"] is True
        (alias,) = (stack.resolve(a["Properties"]) for a in stack.of_type("AWS::KMS::Alias").values())
        assert alias == {"AliasName": f"alias/muster-{stage}-topics", "TargetKeyId": f"<{key_id}>"}
        topics = stack.of_type("AWS::SNS::Topic")
        assert set(topics) == {"FeedbackTopic", "AlarmTopic", "SmsInboundTopic"}
        for topic in topics.values():
            assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}

        statements = key["KeyPolicy"]["Statement"]
        assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in statements)
        by_principal = {json.dumps(s["Principal"], sort_keys=True): s for s in statements}
        root = json.dumps({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
        ses = json.dumps({"Service": "ses.amazonaws.com"})
        cloudwatch = json.dumps({"Service": "cloudwatch.amazonaws.com"})
        sms = json.dumps({"Service": "sms-voice.amazonaws.com"})
        assert set(by_principal) == {root, ses, cloudwatch, sms} and len(statements) == 4
        # The account administers the key (IAM decides who may) but cannot read with it.
        admin = set(as_list(by_principal[root]["Action"]))
        assert {"kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion", "kms:DescribeKey"} <= admin
        assert not {a for a in admin if "*" in a or a in {"kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"}}
        assert not {a for a in admin if a.startswith(("kms:GenerateDataKey", "kms:ReEncrypt"))}
        # The publishers encrypt; SNS decrypts for the Lambda subscriber, which needs no key access.
        for principal in (ses, cloudwatch, sms):
            assert set(as_list(by_principal[principal]["Action"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}
        assert by_principal[ses]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        assert by_principal[sms]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        for logical in FUNCTIONS:
            assert not any(a.startswith("kms:") for a, _ in grants(stack, role_of(stack, logical))), logical


def test_every_queue_is_encrypted_at_rest(dev: Stack) -> None:
    # checkov's CKV_AWS_27 reads only KmsMasterKeyId, so infra/checkov.yaml skips it; this is the check.
    queues = dev.of_type("AWS::SQS::Queue")
    assert len(queues) == 3
    for logical, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, logical


def lambda_runtime_lifecycle() -> dict[str, dict[str, str | None]]:
    """cfn-lint's copy of AWS's Lambda runtime deprecation dates."""
    spec = importlib.resources.files("cfnlint.data.AdditionalSpecs").joinpath("LmbdRuntimeLifecycle.json")
    return json.loads(spec.read_text())  # type: ignore[no-any-return]


def test_the_runtime_is_more_than_90_days_from_deprecation(dev: Stack) -> None:
    """docs/deploy.md, Runtime: Chalice packages for the interpreter it runs under (3.11)."""
    runtimes = {dev.props(logical)["Runtime"] for logical in FUNCTIONS}
    assert runtimes == {"python3.11"}
    (runtime,) = runtimes
    lifecycle = lambda_runtime_lifecycle()[runtime]
    deprecated = dt.date.fromisoformat(str(lifecycle["deprecated"]))
    days_left = (deprecated - dt.date.today()).days
    assert days_left > 90, (
        f"Lambda deprecates {runtime} on {deprecated} ({days_left} days): move the venv, CI and "
        f"`make package` to Python {lifecycle['successor']} as docs/deploy.md (Runtime) describes"
    )


def test_scheduler_role_invokes_exactly_open_chat_and_close_chat(dev: Stack) -> None:
    role = dev.props("SchedulerRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert dev.resolve(trust["Condition"]["StringEquals"]["aws:SourceAccount"]) == ACCOUNT
    # Scheduler sets aws:SourceArn to the schedule group's ARN, not the schedule's.
    assert dev.resolve(trust["Condition"]["ArnEquals"]["aws:SourceArn"]) == (
        f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/muster-dev"
    )
    pairs = grants(dev, "SchedulerRole")
    assert {a for a, _ in pairs} == {"lambda:InvokeFunction"}
    targets = {function_arn(dev, "OpenChat"), function_arn(dev, "CloseChat")}
    assert {r for _, r in pairs} == targets
    # Every function that schedules passes this role and these targets.
    for logical in FUNCTIONS:
        env = dev.resolve(dev.props(logical)["Environment"]["Variables"])
        assert env["MUSTER_OPEN_CHAT_ARN"] == function_arn(dev, "OpenChat")
        assert env["MUSTER_CLOSE_CHAT_ARN"] == function_arn(dev, "CloseChat")
        assert env["MUSTER_SCHEDULER_ROLE_ARN"] == "<SchedulerRole.Arn>"
        assert env["MUSTER_SCHEDULE_GROUP"] == dev.name("ScheduleGroup") == "muster-dev"
        for statement in allowed(dev, role_of(dev, logical)):
            if "iam:PassRole" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["iam:PassRole"]
                assert dev.resolve(as_list(statement["Resource"])) == ["<SchedulerRole.Arn>"]
                assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_api_gateway_routes_to_the_app(dev: Stack) -> None:
    api = dev.props("RestAPI")
    uris = {
        json.dumps(method["x-amazon-apigateway-integration"]["uri"])
        for path in api["DefinitionBody"]["paths"].values()
        for method in path.values()
        if "x-amazon-apigateway-integration" in method
    }
    assert uris and all("${APIHandler.Arn}" in uri for uri in uris)
    permission = dev.props("APIHandlerInvokePermission")
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": "APIHandler"}
    assert dev.props("APIHandler")["Handler"] == "app.app"


# API Gateway's own answers (unknown route or method, throttling, too large, ...) in
# R13's shape: response type -> (status, or None for API Gateway's own; error code).
GATEWAY_RESPONSES = {
    "DEFAULT_4XX": (None, "request_rejected"),
    "DEFAULT_5XX": (None, "internal_error"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),  # what API Gateway says for an unknown route
    "INCOMPLETE_SIGNATURE": ("404", "not_found"),  # the same, when the request carries "Authorization: Bearer"
    "UNAUTHORIZED": ("401", "unauthorized"),
    "ACCESS_DENIED": ("403", "forbidden"),
    "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
    "THROTTLED": ("429", "throttled"),
    "QUOTA_EXCEEDED": ("429", "quota_exceeded"),
    "UNSUPPORTED_MEDIA_TYPE": ("415", "unsupported_media_type"),
    "INTEGRATION_TIMEOUT": ("504", "timeout"),
}


def render_gateway_template(template: str, message: str) -> Any:
    """What API Gateway sends: $context.error.messageString is the message in double quotes."""
    return json.loads(template.replace("$context.error.messageString", json.dumps(message)))


def test_api_gateway_answers_its_own_errors_in_r13_shape(stacks: dict[str, Stack]) -> None:
    for stack in stacks.values():
        body = stack.props("RestAPI")["DefinitionBody"]
        responses = body["x-amazon-apigateway-gateway-responses"]
        assert set(responses) == set(GATEWAY_RESPONSES)
        for kind, (status, code) in GATEWAY_RESPONSES.items():
            response = responses[kind]
            assert response.get("statusCode") == status, kind
            assert set(response["responseTemplates"]) == {"application/json"}, kind
            rendered = render_gateway_template(
                response["responseTemplates"]["application/json"], "Missing Authentication Token"
            )
            assert set(rendered) == {"error"} and set(rendered["error"]) == {"code", "message", "field"}, kind
            assert rendered["error"]["code"] == code and rendered["error"]["field"] is None, kind
            assert isinstance(rendered["error"]["message"], str) and rendered["error"]["message"], kind
            if status is not None:
                assert 400 <= int(status) < 600 and (int(status) < 500) == (code != "timeout"), kind
        # An unknown route must not answer with API Gateway's misleading text.
        unknown = render_gateway_template(
            responses["MISSING_AUTHENTICATION_TOKEN"]["responseTemplates"]["application/json"],
            "Missing Authentication Token",
        )
        assert "Authentication" not in unknown["error"]["message"]
        # Only the generic 4XX passes API Gateway's own message through.
        rejected = render_gateway_template(
            responses["DEFAULT_4XX"]["responseTemplates"]["application/json"], 'a "quoted" text'
        )
        assert rejected["error"]["message"] == 'a "quoted" text'
        # Inside the Swagger body, so SAM's deployment (hashed from the body) carries them;
        # separate AWS::ApiGateway::GatewayResponse resources are dropped by the next deployment.
        assert not stack.of_type("AWS::ApiGateway::GatewayResponse")
        assert stack.props("RestAPI")["TracingEnabled"] is True


def test_eventbridge_and_the_sweeper_are_wired(dev: Stack) -> None:
    (event,) = dev.props("IntegrationEvents")["Events"].values()
    assert event["Type"] == "CloudWatchEvent"
    assert event["Properties"]["Pattern"]["source"] == ["muster.integration"]
    (sweep,) = dev.props("Sweeper")["Events"].values()
    assert sweep["Type"] == "Schedule" and sweep["Properties"]["Schedule"] == "rate(5 minutes)"


def test_the_digest_job_runs_every_15_minutes_with_time_to_send(dev: Stack) -> None:
    from chalicelib.services.digest import LEASE_SECONDS

    (tick,) = dev.props("Digest")["Events"].values()
    assert tick["Type"] == "Schedule" and tick["Properties"]["Schedule"] == "rate(15 minutes)"
    timeout = dev.props("Digest")["Timeout"]
    # A claim outlives the run that took it: only a dead run's claim lapses.
    assert 60 <= timeout < LEASE_SECONDS
    # It reads digest work from the `due` index and sends like Deliver does.
    pairs = grants(dev, role_of(dev, "Digest"))
    table = dev.getatt("Table", "Arn")
    assert ("dynamodb:Query", table + "/index/due") in pairs
    assert {a for a, _ in pairs if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert {a for a, _ in pairs if a.startswith("ses:")} == {"ses:SendEmail", "ses:SendRawEmail", "ses:GetAccount"}


# -- least privilege ----------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_no_policy_grants_a_wildcard_action(stacks: dict[str, Stack], stage: str) -> None:
    stack = stacks[stage]
    statements = list(policy_statements(stack))
    assert len(statements) > 30
    for logical, statement in statements:
        if statement["Effect"] != "Allow":
            continue
        assert "NotAction" not in statement and "NotResource" not in statement, logical
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{logical} allows {action}"
        if "*" in as_list(statement.get("Resource", [])):
            assert set(as_list(statement["Action"])) <= STAR_RESOURCE_ACTIONS, f"{logical}: {statement}"


ASYNC = {"InboundEmail", "IntegrationEvents", "SmsInbound"}


def test_async_functions_park_failures_instead_of_dropping_them(dev: Stack) -> None:
    """R9: an inbound mail or integration event that fails every retry is kept."""
    configs = {dev.props(k)["FunctionName"]["Ref"]: dev.props(k) for k in dev.of_type("AWS::Lambda::EventInvokeConfig")}
    assert set(configs) == ASYNC
    for config in configs.values():
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}


def test_each_function_has_its_own_role_with_only_what_its_code_calls(dev: Stack) -> None:
    roles = {logical: role_of(dev, logical) for logical in FUNCTIONS}
    assert len(set(roles.values())) == len(roles), "functions must not share a role"
    assert "DefaultRole" not in dev.resources, "Chalice's generated wildcard role must be gone"
    for logical, role in roles.items():
        trust = dev.props(role)["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
        pairs = grants(dev, role)
        assert {a.split(":")[0] for a, _ in pairs} == SERVICES[logical], logical
        log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{dev.name(logical)}:*"
        assert {r for a, r in pairs if a.startswith("logs:")} == {log_group}
        table = dev.getatt("Table", "Arn")
        for action, resource in pairs:
            if action.startswith("dynamodb:"):
                assert (
                    resource == table
                    or resource.startswith(table + "/index/")
                    or (resource == dev.getatt("IdempotencyTable", "Arn"))
                ), (logical, action, resource)
            if action.startswith("sqs:"):
                # the delivery queue, or (async functions only) their on-failure destination
                assert resource == dev.getatt("DeliveryQueue", "Arn") or (
                    action == "sqs:SendMessage"
                    and logical in ASYNC
                    and resource == dev.getatt("AsyncFailureQueue", "Arn")
                ), (logical, action, resource)
            if action.startswith("scheduler:"):
                assert resource == f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/muster-dev/*"
            if action == "ses:GetAccount":  # the send quota the pacer shares out (R12)
                assert logical in {"Deliver", "Digest"} and resource == "*"
            elif action.startswith("ses:"):
                assert resource in {
                    f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{RELAY_DOMAINS['dev']}",
                    f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/muster-dev",
                }
        actions = {a for a, _ in pairs}
        if ("dynamodb:DeleteItem", table) in pairs:  # only the upsert paths drop participants
            assert logical in {"APIHandler", "IntegrationEvents"}
        idempotency = dev.getatt("IdempotencyTable", "Arn")
        assert (logical in {"InboundEmail", "SmsInbound"}) == any(r == idempotency for _, r in pairs), logical
        if logical == "Deliver":
            assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= actions
            # Only to queue the rest of a batch that ran out of time (checked above:
            # the delivery queue is its only SQS resource).
            assert "sqs:SendMessage" in actions
        elif "sqs" in SERVICES[logical]:
            assert {a for a in actions if a.startswith("sqs:")} == {"sqs:GetQueueUrl", "sqs:SendMessage"}
        if "scheduler" in SERVICES[logical]:
            assert {a for a in actions if a.startswith("scheduler:")} == {
                "scheduler:CreateSchedule",
                "scheduler:UpdateSchedule",
                "scheduler:DeleteSchedule",
                "scheduler:GetSchedule",
            }


def test_mail_objects_are_split_by_prefix(dev: Stack) -> None:
    bucket = dev.getatt("MailBucket", "Arn")
    s3 = {
        logical: sorted(
            (a, r.removeprefix(bucket)) for a, r in grants(dev, role_of(dev, logical)) if a.startswith("s3:")
        )
        for logical in FUNCTIONS
    }
    assert s3["InboundEmail"] == [
        ("s3:GetObject", "/inbound/*"),
        ("s3:PutObject", "/files/*"),  # large attachments, stored once (issue 14)
        ("s3:PutObject", "/held/*"),  # held messages' jobs (R15)
        ("s3:PutObject", "/outbound/*"),
    ]
    assert s3["Deliver"] == [("s3:GetObject", "/outbound/*"), ("s3:PutObject", "/files/*")]  # + texts' attachments
    # A text becomes a small message at inbound/sms-<id>, then takes InboundEmail's path.
    assert s3["SmsInbound"] == sorted([*s3["InboundEmail"], ("s3:PutObject", "/inbound/sms-*")])
    assert s3["Digest"] == [("s3:GetObject", "/outbound/*")]  # the stored copies a digest embeds
    # An approval relays a held message (its job, the raw mail, a fresh render and
    # its linked files); a report quotes the rendered copy; the download route
    # presigns GETs of linked files; the sweeper expires held messages.
    assert s3["APIHandler"] == [
        ("s3:GetObject", "/files/*"),
        ("s3:GetObject", "/held/*"),
        ("s3:GetObject", "/inbound/*"),
        ("s3:GetObject", "/outbound/*"),
        ("s3:PutObject", "/files/*"),
        ("s3:PutObject", "/outbound/*"),
    ]
    assert s3["Sweeper"] == [("s3:GetObject", "/held/*")]
    assert all(
        not v
        for k, v in s3.items()
        if k not in ("InboundEmail", "Deliver", "Digest", "APIHandler", "Sweeper", "SmsInbound")
    )


# -- data -------------------------------------------------------------------------------


def test_main_table_is_the_models_schema(dev: Stack) -> None:
    props = dev.props("Table")
    for key in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes"):
        assert props[key] == TABLE_SCHEMA[key], key
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert dev.resources["Table"]["DeletionPolicy"] == "Retain"
    idem = dev.props("IdempotencyTable")
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idem["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert idem["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_mail_bucket_is_private_encrypted_expiring_and_only_ses_from_this_account_writes(dev: Stack) -> None:
    props = dev.resolve(dev.props("MailBucket"))
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    rules = {r.get("Prefix"): r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["inbound/"]["ExpirationInDays"] == "14" and rules["inbound/"]["Status"] == "Enabled"
    assert rules["outbound/"]["ExpirationInDays"] == "14"
    # Linked attachments (issue 14) expire with the mail they came from.
    assert rules["files/"]["ExpirationInDays"] == "14" and rules["files/"]["Status"] == "Enabled"
    prefixes = {r.get("Prefix") for r in props["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r}
    written = {
        r.removeprefix(dev.getatt("MailBucket", "Arn") + "/").removesuffix("*")
        for logical in FUNCTIONS
        for a, r in grants(dev, role_of(dev, logical))
        if a == "s3:PutObject"
    }
    assert all(any(w.startswith(p) for p in prefixes) for w in written), "every prefix the app writes must expire"
    policy = dev.resolve(dev.props("MailBucketPolicy"))
    ses = [s for s in policy["PolicyDocument"]["Statement"] if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    (statement,) = ses
    assert statement["Effect"] == "Allow" and statement["Action"] == "s3:PutObject"
    assert statement["Resource"] == dev.getatt("MailBucket", "Arn") + "/inbound/*"
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert re.fullmatch(
        rf"arn:aws:ses:{REGION}:{ACCOUNT}:receipt-rule-set/muster-dev-inbound:receipt-rule/muster-dev-relay",
        statement["Condition"]["ArnLike"]["aws:SourceArn"],
    )


@pytest.mark.parametrize("stage", STAGES)
def test_names_match_config_and_settings(stacks: dict[str, Stack], stage: str) -> None:
    stack, settings = stacks[stage], settings_for(stage)
    config = stage_environment(stage, ROOT / ".chalice" / "config.json")
    assert stack.name("Table") == settings.table_name == config["MUSTER_TABLE"]
    assert stack.name("IdempotencyTable") == settings.idempotency_table_name == config["MUSTER_IDEMPOTENCY_TABLE"]
    assert stack.name("DeliveryQueue") == settings.delivery_queue == config["MUSTER_DELIVERY_QUEUE"]
    assert stack.name("ScheduleGroup") == settings.schedule_group == config["MUSTER_SCHEDULE_GROUP"]
    assert stack.name("MailBucket") == settings.mail_bucket
    assert stack.name("FeedbackTopic") == config.get("MUSTER_FEEDBACK_TOPIC", f"muster-{stage}-feedback")
    assert function_arn(stack, "OpenChat") == settings.open_chat_arn
    assert function_arn(stack, "CloseChat") == settings.close_chat_arn
    for logical in FUNCTIONS:
        env = stack.resolve(stack.props(logical)["Environment"]["Variables"])
        deployed = Settings.from_env({**env, "AWS_REGION": REGION})
        assert deployed.stage == stage
        assert deployed.table_name == stack.name("Table")
        assert deployed.idempotency_table_name == stack.name("IdempotencyTable")
        assert deployed.delivery_queue == stack.name("DeliveryQueue")
        assert deployed.mail_bucket == stack.name("MailBucket")
        assert deployed.relay_domain == RELAY_DOMAINS[stage]
        assert env["MUSTER_FEEDBACK_TOPIC"] == stack.name("FeedbackTopic")
        # The HMAC key comes from Secrets Manager, never from config.json.
        assert env["MUSTER_SECRET"] == "{{resolve:secretsmanager:<RelaySecret>:SecretString}}"
    for logical in ("Deliver", "SmsInbound"):
        env = stack.resolve(stack.props(logical)["Environment"]["Variables"])
        assert env["MUSTER_SMS_CONFIGURATION_SET"] == stack.name("SmsConfigurationSet")
        assert env["MUSTER_SMS_INBOUND_TOPIC"] == stack.name("SmsInboundTopic")
    for logical in ("Deliver", "InboundEmail", "Digest", "SmsInbound"):
        env = stack.resolve(stack.props(logical)["Environment"]["Variables"])
        assert env["MUSTER_PUBLIC_URL"] == f"https://<RestAPI>.execute-api.{REGION}.amazonaws.com/api"


def test_alarms_watch_the_dead_letter_queue_and_every_function(dev: Stack) -> None:
    alarms = [dev.resolve(a["Properties"]) for a in dev.of_type("AWS::CloudWatch::Alarm").values()]
    dlq = [a for a in alarms if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert sorted(a["Dimensions"][0]["Value"] for a in dlq) == ["muster-dev-async-failures", "muster-dev-delivery-dlq"]
    assert dlq[0]["Threshold"] == 0 and dlq[0]["ComparisonOperator"] == "GreaterThanThreshold"
    watched = {d["Value"] for a in alarms if a["MetricName"] == "Errors" for d in a["Dimensions"]}
    assert watched == {dev.name(logical) for logical in FUNCTIONS}


def test_outputs_give_the_dns_records_to_add(templates: dict[str, dict[str, Any]]) -> None:
    outputs = templates["prod"]["Outputs"]
    assert outputs["MxRecord"]["Value"] == {"Fn::Sub": "10 inbound-smtp.${AWS::Region}.amazonaws.com"}
    assert {f"DkimRecord{i}" for i in (1, 2, 3)} <= set(outputs)
    assert {"ApiUrl", "ReceiptRuleSetName", "EndpointURL"} <= set(outputs)


# -- stages side by side -----------------------------------------------------------------


def test_two_stages_share_no_physical_name(stacks: dict[str, Stack]) -> None:
    dev_names, prod_names = stacks["dev"].physical_names(), stacks["prod"].physical_names()
    assert len(dev_names) >= 30
    assert set(dev_names) & set(prod_names) == set()
    for stage, names in (("dev", dev_names), ("prod", prod_names)):
        for name in names:
            if not name.startswith("AWS::SES::EmailIdentity"):  # the relay domain is a parameter
                assert f"muster-{stage}" in name, name


def test_texts_go_out_through_the_sms_configuration_set_and_come_in_through_their_topic(dev: Stack) -> None:
    """Issue 12: texts are sent only by Deliver and SmsInbound, only through the
    deployment's number (or pool) and its configuration set, whose permanent
    failures reach the feedback function; two-way SMS publishes to its own topic."""
    (event,) = dev.props("SmsInbound")["Events"].values()
    assert event["Type"] == "SNS" and dev.resolve(event["Properties"]["Topic"]) == dev.ref("SmsInboundTopic")
    policy = dev.resolve(dev.props("SmsInboundTopicPolicy")["PolicyDocument"]["Statement"])
    assert [s["Principal"] for s in policy] == [{"Service": "sms-voice.amazonaws.com"}]
    config = dev.resolve(dev.props("SmsConfigurationSet"))
    (destination,) = config["EventDestinations"]
    assert destination["SnsDestination"]["TopicArn"] == dev.ref("FeedbackTopic")
    assert set(destination["MatchingEventTypes"]) == {"TEXT_INVALID", "TEXT_BLOCKED", "TEXT_CARRIER_BLOCKED"}
    for logical in FUNCTIONS:
        sends = [r for a, r in grants(dev, role_of(dev, logical)) if a.startswith("sms-voice:")]
        if logical not in {"Deliver", "SmsInbound"}:
            assert not sends, logical
            continue
        assert {a for a, _ in grants(dev, role_of(dev, logical)) if a.startswith("sms-voice:")} == {
            "sms-voice:SendTextMessage"
        }
        assert set(sends) == {
            f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:configuration-set/muster-dev-sms",
            f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:phone-number/*",
            f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:pool/*",
        }
