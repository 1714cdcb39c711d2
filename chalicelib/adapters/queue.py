"""SQS: recipient batches for fan-out."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from chalicelib.adapters import aws


class DeliveryQueue:
    def __init__(self, *, name: str, client: Any = None) -> None:
        self.name = name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")

    @cached_property
    def url(self) -> str:
        return str(self.client.get_queue_url(QueueName=self.name)["QueueUrl"])

    def send_all(self, bodies: list[dict[str, Any]]) -> None:
        """Enqueue every body, ten per call; raise if any entry is refused."""
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            result = self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(body, separators=(",", ":"))}
                    for i, body in enumerate(chunk)
                ],
            )
            if result.get("Failed"):
                raise RuntimeError(f"SQS refused {len(result['Failed'])} batch entries")
