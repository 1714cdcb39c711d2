"""AWS End User Messaging SMS (``pinpoint-sms-voice-v2``): the one adapter.

``SendTextMessage`` with the deployment's origination identity and configuration
set (delivery events go to SNS through its event destination). Failures are
sorted like SES's (``adapters/mail.py``, R9):

- ``transient``: throttling (``ThrottlingException``: MPS limits), internal
  errors, connection errors. The copy is retried (the batch goes back to SQS).
- ``permanent``: this destination will not take it (``ValidationException``: an
  invalid or unsupported number; ``ConflictException``: the number opted out
  at AWS). Recorded per copy, and the number is suppressed.
- ``deployment``: no permission, a missing origination identity or configuration
  set, the spend limit reached (``ServiceQuotaExceededException``), anything
  unknown. The batch is parked.

moto has no End User Messaging SMS: the local twin serves the same JSON protocol
(``infra/twin/sms.py``) and ``MUSTER_SMS_ENDPOINT_URL`` points the client at it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.adapters import aws
from chalicelib.adapters.mail import Kind, SendFailed

TRANSIENT = frozenset({"ThrottlingException", "InternalServerException", "TooManyRequestsException"})
PER_COPY = frozenset({"ValidationException", "ConflictException"})
# ValidationException reasons that are about the deployment, not the number.
_DEPLOYMENT_REASONS = frozenset(
    {"INVALID_IDENTITY_FOR_DESTINATION_COUNTRY", "DESTINATION_COUNTRY_BLOCKED", "MISSING_PARAMETER", "INVALID_ARN"}
)


def classify(code: str, reason: str = "") -> Kind:
    if code in TRANSIENT:
        return "transient"
    if code in PER_COPY and reason not in _DEPLOYMENT_REASONS:
        return "permanent"
    return "deployment"


@cache
def _client(endpoint_url: str, region: str) -> Any:
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        "pinpoint-sms-voice-v2",
        region_name=region,
        endpoint_url=endpoint_url or None,
        config=aws._CONFIG,
    )


class Texter:
    """Sends one text message to one number."""

    def __init__(
        self,
        *,
        origination_identity: str = "",
        configuration_set: str = "",
        endpoint_url: str = "",
        region: str = "us-east-1",
        client: Any = None,
    ) -> None:
        self.origination_identity = origination_identity
        self.configuration_set = configuration_set
        self.endpoint_url = endpoint_url
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or _client(self.endpoint_url, self.region)

    def send(self, *, to: str, body: str, context: dict[str, str] | None = None) -> str:
        """Send ``body`` to ``to`` (E.164); return the service's MessageId."""
        args: dict[str, Any] = {
            "DestinationPhoneNumber": to,
            "MessageBody": body,
            "MessageType": "TRANSACTIONAL",
        }
        if self.origination_identity:
            args["OriginationIdentity"] = self.origination_identity
        if self.configuration_set:
            args["ConfigurationSetName"] = self.configuration_set
        if context:
            args["Context"] = context  # comes back in the delivery events (ids only, never numbers)
        try:
            return str(self.client.send_text_message(**args)["MessageId"])
        except Exception as exc:
            code = aws.error_code(exc)
            if not code:
                raise SendFailed(type(exc).__name__, "transient") from exc
            response = getattr(exc, "response", {}) or {}
            reason = str(response.get("Reason") or response.get("Error", {}).get("Reason") or "")
            raise SendFailed(code, classify(code, reason)) from exc


def reset() -> None:
    _client.cache_clear()
