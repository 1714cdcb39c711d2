"""SES v2 sending, with each failure sorted into one of three kinds (R9):

- ``transient``: throttling, timeouts, SES hiccups. Retry this copy soon.
- ``permanent``: SES refused *this copy* (an invalid recipient address, content
  it will never accept). Record it per recipient; retrying cannot help.
- ``deployment``: nothing this deployment sends can go out (no permission, a
  missing configuration set, a paused or suspended account, the sandbox's
  unverified recipients, an unknown error). Stop the batch and park it for
  retry (SQS, then the dead-letter queue): once an operator fixes IAM or SES,
  a redrive delivers everything that was held, and nothing was recorded as
  failed for a fault that wasn't the recipient's.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from chalicelib.adapters import aws

Kind = Literal["transient", "permanent", "deployment"]

TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServiceError",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Refusals of one copy. MessageRejected also covers the sandbox's "Email address
# is not verified", which is about the deployment, not the recipient.
PER_COPY = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
_DEPLOYMENT_HINTS = ("not verified", "not authorized", "sandbox", "paused", "suspended", "configuration set")
# SES v2's account quota, cached per container.
RATE_TTL_SECONDS = 600


def classify(code: str, message: str = "") -> Kind:
    if code in TRANSIENT:
        return "transient"
    if code in PER_COPY and not any(hint in message.lower() for hint in _DEPLOYMENT_HINTS):
        return "permanent"
    return "deployment"


class SendFailed(Exception):
    def __init__(self, code: str, kind: Kind) -> None:
        super().__init__(code)
        self.code = code
        self.kind: Kind = kind

    @property
    def transient(self) -> bool:
        """Worth another try later (this copy, or the whole batch)."""
        return self.kind != "permanent"


class Mailer:
    def __init__(self, *, configuration_set: str = "", client: Any = None) -> None:
        self.configuration_set = configuration_set
        self._client = client
        self._rate: tuple[float, float] | None = None  # (rate, read at)

    @property
    def client(self) -> Any:
        return self._client or aws.client("sesv2")

    def send_raw(self, *, sender: str, recipient: str, raw: bytes) -> str:
        """Send one raw MIME copy; return SES's MessageId."""
        args: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": raw}},
        }
        if self.configuration_set:
            args["ConfigurationSetName"] = self.configuration_set
        try:
            return str(self.client.send_email(**args)["MessageId"])
        except Exception as exc:
            code = aws.error_code(exc)
            if not code:  # connection errors, timeouts: botocore gave up retrying
                raise SendFailed(type(exc).__name__, "transient") from exc
            message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
            raise SendFailed(code, classify(code, message)) from exc

    def max_send_rate(self, fallback: float) -> float:
        """The account's SendQuota.MaxSendRate (GetAccount), read at most every
        ten minutes; ``fallback`` when SES does not say (no permission, an emulator)."""
        now = time.monotonic()
        if self._rate is not None and now - self._rate[1] < RATE_TTL_SECONDS:
            return self._rate[0]
        try:
            rate = float(self.client.get_account()["SendQuota"]["MaxSendRate"])
        except Exception:
            rate = fallback
        rate = rate if rate > 0 else fallback
        self._rate = (rate, now)
        return rate
