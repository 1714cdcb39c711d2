"""EventBridge Scheduler: one-time ``at()`` schedules that open and close chats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from chalicelib.adapters import aws


class ChatScheduler:
    def __init__(self, *, group: str, role_arn: str, client: Any = None) -> None:
        self.group = group
        self.role_arn = role_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("scheduler")

    def put(self, name: str, at: datetime, target_arn: str, payload: dict[str, Any]) -> None:
        """Create or move the schedule ``name`` to fire once at ``at`` (UTC)."""
        args = {
            "Name": name,
            "GroupName": self.group,
            "ScheduleExpression": f"at({at.strftime('%Y-%m-%dT%H:%M:%S')})",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(payload, separators=(",", ":")),
                "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 86400},
            },
        }
        try:
            self.client.create_schedule(**args)
        except Exception as exc:
            if aws.error_code(exc) != "ConflictException":
                raise
            self.client.update_schedule(**args)

    def delete(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group)
        except Exception as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise
