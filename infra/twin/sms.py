"""The twin's End User Messaging SMS (moto has none), behind the same adapter.

- :class:`SmsBackend` is the service: ``send_text_message`` takes
  SendTextMessage's parameters and returns its answer; every text lands in
  ``<state>/sms/<E.164>/<time>-<id>.txt`` (the text alone, UTF-8). Tests can make
  the next sends throttle (``ThrottlingException``), refuse a number
  (``ValidationException``) or accept it and then report ``TEXT_INVALID`` on the
  feedback topic, as a configuration set's event destination does.
- Over HTTP it speaks the service's JSON protocol (``X-Amz-Target:
  PinpointSMSVoiceV2.SendTextMessage``) on the mailbox's port: the app's boto3
  client reaches it through ``MUSTER_SMS_ENDPOINT_URL``, so production code runs
  unchanged down to the adapter call.
- ``POST /sms`` (form fields ``from``, ``text``) is a text *to* Muster: published
  to the inbound topic in moto as two-way SMS publishes it, and delivered to the
  ``sms_inbound`` handler by the twin's SNS→SQS dispatcher like any SNS trigger.
- ``GET /phone``: a page to send a text by hand and read what each number received.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TARGET = "PinpointSMSVoiceV2.SendTextMessage"


def _error(code: str, message: str, status: int = 400, reason: str = "") -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    if reason:
        response["Reason"] = reason
    return ClientError(response, "SendTextMessage")  # type: ignore[arg-type]


class SmsBackend:
    def __init__(
        self,
        root: Path,
        *,
        number: str = "+15550100000",
        publish_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.root = root
        self.number = number  # the deployment's number (the origination identity)
        self.publish_event = publish_event
        self.sent: list[dict[str, Any]] = []
        self.calls = 0
        self.throttle_next = 0
        self.refused: set[str] = set()  # ValidationException at send time
        self.invalid: set[str] = set()  # accepted, then a TEXT_INVALID delivery event
        self._lock = threading.Lock()

    def send_text_message(self, **params: Any) -> dict[str, Any]:
        to = str(params.get("DestinationPhoneNumber") or "")
        body = params.get("MessageBody")
        with self._lock:
            self.calls += 1
            if self.throttle_next > 0:
                self.throttle_next -= 1
                raise _error("ThrottlingException", "Rate exceeded", 429)
            if not E164.match(to) or not isinstance(body, str):
                raise _error("ValidationException", "invalid destination or body", reason="INVALID_PARAMETER")
            if to in self.refused:
                raise _error(
                    "ValidationException", "destination not supported", reason="DESTINATION_PHONE_NUMBER_NOT_VERIFIED"
                )
            message_id = str(uuid.uuid4())
            folder = self.root / to
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{time.time_ns()}-{message_id}.txt").write_text(body, encoding="utf-8")
            self.sent.append({**params, "MessageId": message_id})
        if to in self.invalid and self.publish_event is not None:
            self.publish_event(
                {
                    "eventType": "TEXT_INVALID",
                    "eventVersion": "1.0",
                    "eventTimestamp": int(time.time() * 1000),
                    "isFinal": True,
                    "originationPhoneNumber": self.number,
                    "destinationPhoneNumber": to,
                    "messageId": message_id,
                    "messageStatus": "INVALID",
                    "messageStatusDescription": "Destination phone number is invalid",
                    "context": params.get("Context") or {},
                    "totalMessageParts": 1,
                }
            )
        return {"MessageId": message_id}

    # -- what each number received ------------------------------------------------

    def numbers(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def texts(self, number: str) -> list[str]:
        folder = self.root / number
        if not E164.match(number) or not folder.is_dir():
            return []
        return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))]

    # -- the JSON protocol --------------------------------------------------------

    def handle_api(self, target: str, body: bytes) -> tuple[int, bytes]:
        if target != TARGET:
            return 400, json.dumps({"__type": "UnknownOperationException", "message": target}).encode()
        try:
            params = json.loads(body or b"{}")
            return 200, json.dumps(self.send_text_message(**params)).encode()
        except ClientError as exc:
            err = exc.response["Error"]
            out = {"__type": err["Code"], "message": err["Message"]}
            if exc.response.get("Reason"):
                out["Reason"] = exc.response["Reason"]
            return int(exc.response["ResponseMetadata"]["HTTPStatusCode"]), json.dumps(out).encode()


def inbound_message(origin: str, text: str, destination: str, inbound_id: str | None = None) -> dict[str, Any]:
    """What two-way SMS publishes to the inbound topic for one received text."""
    return {
        "originationNumber": origin,
        "destinationNumber": destination,
        "messageKeyword": "KEYWORD_TWIN",
        "messageBody": text,
        "inboundMessageId": inbound_id or str(uuid.uuid4()),
        "previousPublishedMessageId": None,
    }


def phone_page(backend: SmsBackend, notice: str = "") -> str:
    rows = "".join(
        f"<h3 id='n{html.escape(n[1:])}'>{html.escape(n)}</h3><ol>"
        + "".join(f"<li><pre class='text'>{html.escape(t)}</pre></li>" for t in backend.texts(n))
        + "</ol>"
        for n in backend.numbers()
    )
    return (
        "<h2>Phone</h2>"
        + (f"<p id='notice'>{html.escape(notice)}</p>" if notice else "")
        + f"<p class='muted'>Texts to Muster's number {html.escape(backend.number)}.</p>"
        "<form method='post' action='/sms'>"
        "<label>From <input name='from' id='from' placeholder='+15551234567' required></label> "
        "<label>Text <input name='text' id='text' size='60' required></label> "
        "<button id='send' type='submit'>Send</button></form>"
        "<h2>Received texts</h2>" + (rows or "<p class='muted'>No texts yet.</p>")
    )


def phone_link(number: str) -> str:
    return f"/phone#n{quote(number[1:])}"


class TwinSms:
    """The SMS service's two HTTP faces on the mailbox's port (see the module doc):
    the JSON API the app's adapter calls, ``POST /sms`` and the ``/phone`` page."""

    def __init__(self, backend: SmsBackend, publish_inbound: Callable[[dict[str, Any]], None] | None) -> None:
        self.backend = backend
        self.publish_inbound = publish_inbound

    def receive(self, origin: str, text: str) -> str:
        """A text to Muster: as two-way SMS publishes it. Returns its inbound id."""
        if not E164.match(origin) or not text.strip():
            raise ValueError("'from' must be an E.164 number and 'text' not empty")
        if self.publish_inbound is None:
            raise ValueError("the app has no sms_inbound handler")
        message = inbound_message(origin, text, self.backend.number)
        self.publish_inbound(message)
        return str(message["inboundMessageId"])

    def post(self, handler: Any) -> tuple[int, bytes, str, dict[str, str]]:
        """(status, body, content type, extra headers) for a POST to the mailbox."""
        from urllib.parse import parse_qs

        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, 1_000_000)) if length else b""
        target = handler.headers.get("X-Amz-Target")
        if target:
            status, out = self.backend.handle_api(target, body)
            return status, out, "application/x-amz-json-1.0", {}
        if handler.path.split("?")[0].rstrip("/") not in {"/sms", "/phone"}:
            return 404, b"no such endpoint", "text/plain", {}
        fields = parse_qs(body.decode("utf-8", "replace"))
        origin, text = (fields.get("from") or [""])[0].strip(), (fields.get("text") or [""])[0]
        try:
            inbound_id = self.receive(origin, text)
        except ValueError as exc:
            return 400, json.dumps({"error": str(exc)}).encode(), "application/json", {}
        if "text/html" in (handler.headers.get("Accept") or ""):
            return 303, b"", "text/plain", {"Location": phone_link(origin)}
        return 202, json.dumps({"inboundMessageId": inbound_id}).encode(), "application/json", {}
