"""Every message SES would have sent, as files:
``<twin dir>/outbox/<envelope recipient>/<timestamp>-<SES message id>.eml``,
plus one JSON line per copy in ``<twin dir>/outbox.jsonl``.

moto runs in a process of its own and has no HTTP endpoint that lists sent mail
(moto 5.2: ``sent_messages`` lives in its memory; ``/moto-api/data.json`` dumps
every tracked model of every service, which grows with the run). So the copies
are captured where they are sent: every process that runs handlers (each worker
"container", and the API's process) registers two botocore event hooks on its
default boto3 session before any client exists. ``before-parameter-build``
keeps a SES v2 ``SendEmail``'s parameters, ``after-call`` writes the copy once
moto answered 200 with its MessageId. The production code path (the app's
``Mailer`` and its client) is untouched; a send moto refuses writes nothing.

The envelope recipient is ``Destination.ToAddresses[0]`` (relay-domain addresses
are skipped). Like SES, the twin replaces each message's Message-ID with
``<SES MessageId@email.amazonses.com>``; ``outbox.jsonl`` keeps the one the app
set (``sent_message_id``). Several processes append to ``outbox.jsonl``: each
line is one ``write`` on an ``O_APPEND`` file, so lines never interleave.

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
    """Writes each captured copy (thread-safe; several processes may share the directory)."""

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
        self.written = 0
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, ses_id: str, raw: bytes, destinations: list[str], source: str) -> Path | None:
        recipient = envelope_recipient(destinations, self.relay_domain)
        if recipient is None:
            log.warning("SES message %s has no recipient outside @%s", ses_id, self.relay_domain)
            return None
        # SES replaces the Message-ID of everything it sends with its own.
        raw, original = set_header(raw, "Message-ID", f"<{ses_id}@{SES_MESSAGE_ID_DOMAIN}>")
        folder = self.directory / folder_name(recipient)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}-{ses_id}.eml"
        tmp = folder / f".{path.name}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, path)  # readers never see half a message
        line = json.dumps(
            {
                "to": recipient,
                "path": str(path),
                "ses_message_id": ses_id,
                "sent_message_id": original[0].decode("ascii", "replace") if original else None,
                "at": time.time(),
            }
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)  # one write per line: processes never interleave
            finally:
                os.close(fd)
            self.written += 1
        domain = recipient.rpartition("@")[2]
        if self.publish_feedback is not None and domain in (BOUNCE_DOMAIN, COMPLAINT_DOMAIN):
            kind = "Bounce" if domain == BOUNCE_DOMAIN else "Complaint"
            try:
                self.publish_feedback(feedback_notification(kind, recipient, ses_id, source))
            except Exception:
                log.exception("could not publish the simulated %s", kind)
        return path


_PARAMS_KEY = "muster_twin_send"


def capture(outbox: Outbox, session: Any = None) -> None:
    """Write every successful SES v2 ``SendEmail`` made through ``session``
    (boto3's default session) to ``outbox``. Call before any client exists."""
    import boto3

    if session is None:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION

    def keep(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context[_PARAMS_KEY] = params

    def sent(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        params = context.get(_PARAMS_KEY)
        if params is None or getattr(http_response, "status_code", 500) >= 300 or not parsed.get("MessageId"):
            return
        raw_data = params.get("Content", {}).get("Raw", {}).get("Data")
        if raw_data is None:  # a formatted (non-raw) send: the app never does this
            simple = params.get("Content", {}).get("Simple", {})
            raw_data = f"Subject: {simple.get('Subject', {}).get('Data', '')}\n\n{simple}"
        raw = raw_data.encode("utf-8", "surrogateescape") if isinstance(raw_data, str) else bytes(raw_data)
        destination = params.get("Destination", {})
        addresses = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destination.get(key, [])]
        try:
            outbox.write(str(parsed["MessageId"]), raw, addresses, str(params.get("FromEmailAddress", "")))
        except Exception:
            log.exception("could not write a sent copy to the outbox")

    session.events.register("before-parameter-build.sesv2.SendEmail", keep, unique_id="muster-twin-keep")
    session.events.register("after-call.sesv2.SendEmail", sent, unique_id="muster-twin-sent")
