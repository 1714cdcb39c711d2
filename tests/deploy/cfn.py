"""A small offline reader for the packaged CloudFormation template.

``Stack(template, parameters)`` resolves the intrinsics our template uses (Ref,
Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If) against a pretend account, so tests can
compare physical names and ARNs as strings. Attributes it cannot know (a role's
generated ARN, a DKIM token) come back as ``<Logical.Attribute>`` placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO: dict[str, str | None] = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "muster-stack",
    "AWS::NoValue": None,
}

# Resource type -> property that holds its explicit physical name.
NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SES::ReceiptRuleSet": "RuleSetName",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::SMSVOICE::ConfigurationSet": "ConfigurationSetName",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::SES::EmailIdentity": "EmailIdentity",
    "AWS::Serverless::Api": "Name",
}


class Stack:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.params = {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items() if "Default" in v}
        self.params.update(parameters or {})

    # -- lookup -------------------------------------------------------------------

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == kind}

    def props(self, logical: str) -> dict[str, Any]:
        return dict(self.resources[logical].get("Properties", {}))

    def name(self, logical: str) -> str | None:
        resource = self.resources[logical]
        if resource.get("Type") == "AWS::SES::ReceiptRule":
            return str(self.resolve(resource["Properties"]["Rule"]["Name"]))
        prop = NAME_PROPERTY.get(resource.get("Type", ""))
        value = resource.get("Properties", {}).get(prop) if prop else None
        return None if value is None else str(self.resolve(value))

    def physical_names(self) -> dict[str, str]:
        """Every explicitly named resource: ``{"Type name": logical id}``."""
        out = {}
        for logical, resource in self.resources.items():
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            name = self.name(logical)
            if name is not None:
                out[f"{resource['Type']} {name}"] = logical
        return out

    # -- intrinsics -----------------------------------------------------------------

    def ref(self, target: str) -> Any:
        if target in PSEUDO:
            return PSEUDO[target]
        if target in self.params:
            return self.params[target]
        if target not in self.resources:
            raise KeyError(f"Ref to unknown {target}")
        kind = self.resources[target].get("Type")
        name = self.name(target)
        if name is None:
            return f"<{target}>"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
        return name

    def getatt(self, target: str, attribute: str) -> str:
        if target not in self.resources:
            raise KeyError(f"GetAtt of unknown {target}")
        kind = self.resources[target].get("Type")
        name = self.name(target)
        if name is not None:
            if attribute == "Arn":
                arn = {
                    "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
                    "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                    "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
                    "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                    "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                }.get(kind or "")
                if arn:
                    return arn
            if attribute in ("QueueName", "TopicName", "Name"):
                return name
        return f"<{target}.{attribute}>"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                target, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self.getatt(target, attribute)
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::Join":
                return value[0].join(str(part) for part in self.resolve(value[1]))
            if key == "Fn::If":
                return self.resolve(value[1] if self.condition(value[0]) else value[2])
            if key == "Fn::Equals":
                return self.resolve(value[0]) == self.resolve(value[1])
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Condition":
                return self.condition(value)
        return {k: self.resolve(v) for k, v in node.items()}

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and token not in PSEUDO:
                target, attribute = token.split(".", 1)
                return self.getatt(target, attribute)
            return self.ref(token)

        # Dynamic references ({{resolve:...}}) stay as they are, with their ${} filled in.
        return re.sub(r"\$\{([^}]+)\}", replace, text)


def policy_statements(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document in the template: (logical id, statement)."""
    for logical, resource in stack.resources.items():
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", []) if "PolicyDocument" in p]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                yield logical, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, ${...} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if not isinstance(value, str):
                    found |= references(value[1])
            else:
                found |= references(value)
    return found


def cycle(stack: Stack) -> list[str] | None:
    """A dependency cycle among the resources (Ref, GetAtt, Sub, DependsOn), if any."""
    edges = {
        logical: (references(resource.get("Properties", {})) | set(as_list(resource.get("DependsOn", []))))
        & set(stack.resources)
        for logical, resource in stack.resources.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None
