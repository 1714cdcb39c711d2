"""Every message SES would have sent, as files:
``<twin dir>/outbox/<envelope recipient>/<timestamp>-<SES message id>.eml``,
plus one JSON line per copy in ``<twin dir>/outbox.jsonl``.

moto's SES keeps sent mail in memory (``sent_messages``); the twin runs moto
in-process, so this reads it directly. moto appends the header To/Cc addresses
to ``destinations``; real SES v2 sends to ``Destination`` only, so the first
destination is the envelope recipient (relay-domain addresses are skipped).
Like SES, the twin replaces each message's Message-ID with
``<SES MessageId@email.amazonses.com>``; ``outbox.jsonl`` keeps the one the app
set (``sent_message_id``).

Copies to ``@bounce.muster.test`` (or ``@complaint.muster.test``) also produce an
SES Bounce (Complaint) notification on the feedback topic, as SES would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from chalicelib import clock
from infra.twin.config import ACCOUNT, BOUNCE_DOMAIN, REGION
from infra.twin.lambdas import iso_millis
from infra.twin.mime import set_header

log = logging.getLogger("twin.outbox")
COMPLAINT_DOMAIN = "complaint.muster.test"
SES_MESSAGE_ID_DOMAIN = f"{REGION}.amazonses.com" if REGION != "us-east-1" else "email.amazonses.com"
_UNSAFE = re.compile(r"[^a-z0-9@._+=-]")


def folder_name(address: str) -> str:
    """A recipient's folder: the lower-cased address, never a path."""
    name = _UNSAFE.sub("_", address.strip().lower()).strip(".") or "unknown"
    return name[:200]


def envelope_recipient(destinations: list[str], relay_domain: str) -> str | None:
    for dest in destinations:
        addr = parseaddr(dest)[1].strip().lower()
        if addr and not addr.endswith("@" + relay_domain):
            return addr
    return None


def _sent_messages() -> list[Any]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages  # type: ignore[no-any-return]


def feedback_notification(kind: str, recipient: str, ses_id: str, source: str) -> dict[str, Any]:
    now = iso_millis()
    mail = {
        "timestamp": now,
        "messageId": ses_id,
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source.rpartition('@')[2]}",
        "sendingAccountId": ACCOUNT,
        "destination": [recipient],
        "headersTruncated": False,
    }
    if kind == "Bounce":
        return {
            "notificationType": "Bounce",
            "eventType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": recipient,
                        "action": "failed",
                        "status": "5.1.1",
                        "diagnosticCode": "smtp; 550 5.1.1 user unknown (local twin)",
                    }
                ],
                "timestamp": now,
                "feedbackId": str(uuid.uuid4()),
                "reportingMTA": "dsn; twin.muster.test",
            },
            "mail": mail,
        }
    return {
        "notificationType": "Complaint",
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": now,
            "feedbackId": str(uuid.uuid4()),
            "complaintFeedbackType": "abuse",
        },
        "mail": mail,
    }


class Outbox:
    def __init__(
        self,
        directory: Path,
        log_path: Path,
        relay_domain: str,
        publish_feedback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.directory = directory
        self.log_path = log_path
        self.relay_domain = relay_domain.lower()
        self.publish_feedback = publish_feedback
        self.seen = 0
        self.written = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, interval: float = 0.05) -> None:
        def loop() -> None:
            while not self.stopping.is_set():
                try:
                    self.flush()
                except Exception:
                    log.exception("outbox flush failed (will retry)")
                self.stopping.wait(interval)

        self._thread = threading.Thread(target=loop, name="twin-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.flush()

    def flush(self) -> int:
        with self._lock:
            messages = _sent_messages()
            new = messages[self.seen :]
            self.seen += len(new)
            for message in new:
                self._write(message)
            return len(new)

    def _write(self, message: Any) -> None:
        raw_data = getattr(message, "raw_data", None)
        if raw_data is None:  # a formatted (non-raw) send: the app never does this
            raw_data = f"Subject: {getattr(message, 'subject', '')}\n\n{getattr(message, 'body', '')}"
        raw = raw_data.encode("utf-8", "surrogateescape") if isinstance(raw_data, str) else bytes(raw_data)
        destinations = list(getattr(message, "destinations", []) or [])
        if isinstance(getattr(message, "destinations", None), dict):  # send_email's shape
            destinations = [a for v in message.destinations.values() for a in v]
        recipient = envelope_recipient(destinations, self.relay_domain)
        if recipient is None:
            log.warning("SES message %s has no recipient outside @%s", message.id, self.relay_domain)
            return
        # SES replaces the Message-ID of everything it sends with its own.
        raw, original = set_header(raw, "Message-ID", f"<{message.id}@{SES_MESSAGE_ID_DOMAIN}>")
        folder = self.directory / folder_name(recipient)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}-{message.id}.eml"
        tmp = folder / f".{path.name}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, path)  # readers never see half a message
        self.written += 1
        line = {
            "to": recipient,
            "path": str(path),
            "ses_message_id": message.id,
            "sent_message_id": original[0].decode("ascii", "replace") if original else None,
            "at": time.time(),
        }
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        domain = recipient.rpartition("@")[2]
        if self.publish_feedback is not None and domain in (BOUNCE_DOMAIN, COMPLAINT_DOMAIN):
            kind = "Bounce" if domain == BOUNCE_DOMAIN else "Complaint"
            try:
                self.publish_feedback(feedback_notification(kind, recipient, message.id, str(message.source)))
            except Exception:
                log.exception("could not publish the simulated %s", kind)
