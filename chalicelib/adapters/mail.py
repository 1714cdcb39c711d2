"""SES v2 sending, with failures sorted into retry-later and give-up."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters import aws

# Codes worth another try; anything else is a permanent failure for that copy.
TRANSIENT = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServiceError",
        "RequestTimeout",
        "SendingPausedException",
    }
)


class SendFailed(Exception):
    def __init__(self, code: str, transient: bool) -> None:
        super().__init__(code)
        self.code = code
        self.transient = transient


class Mailer:
    def __init__(self, *, configuration_set: str = "", client: Any = None) -> None:
        self.configuration_set = configuration_set
        self._client = client

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
                raise SendFailed(type(exc).__name__, transient=True) from exc
            raise SendFailed(code, transient=code in TRANSIENT) from exc
