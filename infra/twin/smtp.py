"""SES receiving, played by an SMTP listener (aiosmtpd).

Like an SES receipt rule with an S3 action followed by a Lambda action: accept
mail for the relay domain only, store the raw MIME in the mail bucket under
``inbound/<messageId>``, then invoke ``inbound_email`` asynchronously with an
SES-shaped event. The SMTP reply is 250 as soon as the message is stored (SES
invokes the Lambda with ``InvocationType=Event``), 550 for recipients at other
domains, 552 for messages over the size limit.

A test can set the receipt verdicts per message with a header that the twin
strips before storing::

    X-Muster-Local-Verdicts: spf=FAIL, dkim=FAIL, dmarc=FAIL, spam=FAIL, virus=FAIL
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from infra.twin.config import MAX_MESSAGE_BYTES
from infra.twin.lambdas import function_arn, iso_millis
from infra.twin.mime import remove_header

log = logging.getLogger("twin.smtp")

VERDICT_HEADER = "X-Muster-Local-Verdicts"
VERDICT_KEYS = ("spf", "dkim", "dmarc", "spam", "virus")


def ses_message_id() -> str:
    """SES's receipt ids are 20+ lowercase letters and digits."""
    return secrets.token_hex(20)


def split_verdicts(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Remove every ``X-Muster-Local-Verdicts`` header from the message; return
    the message and the verdicts it asked for (PASS unless given)."""
    verdicts = dict.fromkeys(VERDICT_KEYS, "PASS")
    body, values = remove_header(raw, VERDICT_HEADER)
    for value in values:
        for part in re.split(rb"[,;\s]+", value):
            key, _, status = part.decode("ascii", "replace").partition("=")
            if key.strip().lower() in verdicts and status.strip():
                verdicts[key.strip().lower()] = status.strip().upper()
    return body, verdicts


def ses_stored_copy(
    raw: bytes, mail_from: str, recipients: list[str], verdicts: dict[str, str], when: datetime
) -> bytes:
    """What SES writes to S3: the message with its own trace headers on top."""
    spf, dkim, dmarc = (verdicts[k].lower() for k in ("spf", "dkim", "dmarc"))
    nl = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    added = [
        f"Return-Path: <{mail_from}>",
        f"Received: from localhost (twin-smtp [127.0.0.1]) by inbound-smtp.us-east-1.amazonaws.com"
        f" with SMTP id {secrets.token_hex(10)} for {recipients[0] if recipients else 'unknown'};"
        f" {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"X-SES-Spam-Verdict: {verdicts['spam']}",
        f"X-SES-Virus-Verdict: {verdicts['virus']}",
        f"Authentication-Results: amazonses.com; spf={spf} smtp.mailfrom={mail_from}; dkim={dkim}; dmarc={dmarc}",
    ]
    return nl.join(h.encode("utf-8", "replace") for h in added) + nl + raw


def _text(value: Any) -> str:
    try:
        return str(make_header(decode_header(str(value))))
    except Exception:
        return str(value)


def _addresses(msg: Message, name: str) -> list[str] | None:
    values = msg.get_all(name)
    if not values:
        return None
    return [_text(v) for v in values]


def top_header_block(raw: bytes) -> bytes:
    """The bytes up to and including the first empty line (or all of ``raw``)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    return raw[: match.end()] if match else raw


def raw_headers(head: bytes) -> list[dict[str, str]]:
    """``[{"name", "value"}]`` for each field of a header block, values unfolded as sent."""
    fields: list[list[str]] = []
    for line in head.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append([name.strip(), value.strip()])
    return [{"name": name, "value": value} for name, value in fields]


def common_headers(msg: Message, mail_from: str, message_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"returnPath": mail_from, "messageId": msg.get("Message-ID", f"<{message_id}@twin>")}
    for header, key in (
        ("From", "from"),
        ("To", "to"),
        ("Cc", "cc"),
        ("Bcc", "bcc"),
        ("Sender", "sender"),
        ("Reply-To", "replyTo"),
    ):
        values = _addresses(msg, header)
        if values is not None:
            out[key] = values
    if msg.get("Date"):
        out["date"] = _text(msg["Date"])
    if msg.get("Subject") is not None:
        out["subject"] = _text(msg["Subject"])
    return out


def ses_event(
    *, message_id: str, stored: bytes, mail_from: str, recipients: list[str], verdicts: dict[str, str], when: datetime
) -> dict[str, Any]:
    """The SES receipt notification a Lambda action gets (its content is in S3).

    Like SES, it lists the top-level header block only, each field's value as
    sent (unfolded, encoded words left alone, UTF-8 kept as text: RFC 6532), and
    reads nothing past the header block.
    """
    head = top_header_block(stored)
    msg = message_from_bytes(head)
    headers = raw_headers(head)
    ts = iso_millis(when)
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": ts,
                        "source": mail_from,
                        "messageId": message_id,
                        "destination": list(recipients),
                        "headersTruncated": False,
                        "headers": headers,
                        "commonHeaders": common_headers(msg, mail_from, message_id),
                    },
                    "receipt": {
                        "timestamp": ts,
                        "processingTimeMillis": 1,
                        "recipients": list(recipients),
                        "spamVerdict": {"status": verdicts["spam"]},
                        "virusVerdict": {"status": verdicts["virus"]},
                        "spfVerdict": {"status": verdicts["spf"]},
                        "dkimVerdict": {"status": verdicts["dkim"]},
                        "dmarcVerdict": {"status": verdicts["dmarc"]},
                        "action": {
                            "type": "Lambda",
                            "functionArn": function_arn("inbound_email"),
                            "invocationType": "Event",
                        },
                    },
                },
            }
        ]
    }


# Store (S3 put) and invoke (the inbound Lambda) are the twin's, injected.
StoreFn = Callable[[str, bytes], None]
InvokeFn = Callable[[str, dict[str, Any]], None]


class SesReceiving:
    """aiosmtpd handler: RCPT policy, then store + async invoke on DATA."""

    def __init__(self, relay_domain: str, store: StoreFn, invoke: InvokeFn, *, workers: int = 2) -> None:
        self.relay_domain = relay_domain.lower()
        self.store = store
        self.invoke = invoke
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ses-invoke")
        self.accepted = 0
        self.refused = 0
        self.last_accept: dict[str, float] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local, at, domain = address.rpartition("@")
        if not at or not local or domain.lower() != self.relay_domain:
            self.refused += 1
            return f"550 5.1.1 <{address}>: recipient rejected (this twin receives mail for @{self.relay_domain} only)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_MESSAGE_BYTES:
            self.refused += 1
            return "552 5.3.4 Message size exceeds fixed maximum message size"
        mail_from = envelope.mail_from or ""
        recipients = list(envelope.rcpt_tos)
        body, verdicts = split_verdicts(raw)
        when = datetime.now(UTC)
        message_id = ses_message_id()
        stored = ses_stored_copy(body, mail_from, recipients, verdicts, when)
        try:
            await server.loop.run_in_executor(None, self.store, f"inbound/{message_id}", stored)
        except Exception:
            log.exception("could not store inbound message in S3")
            return "451 4.3.0 Temporary failure storing the message; try again"
        event = ses_event(
            message_id=message_id,
            stored=stored,
            mail_from=mail_from,
            recipients=recipients,
            verdicts=verdicts,
            when=when,
        )
        self.accepted += 1
        self.last_accept[message_id] = time.time()
        self.pool.submit(self._invoke, message_id, event)
        return f"250 2.0.0 Ok: queued as {message_id}"

    def _invoke(self, message_id: str, event: dict[str, Any]) -> None:
        try:
            self.invoke(message_id, event)
        except Exception:
            log.exception("inbound_email crashed for %s (the twin keeps running)", message_id)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class SmtpServer:
    def __init__(self, handler: SesReceiving, host: str, port: int) -> None:
        self.handler = handler
        self.controller = Controller(
            handler,
            hostname=host,
            port=port,
            data_size_limit=MAX_MESSAGE_BYTES,
            decode_data=False,
            enable_SMTPUTF8=True,
            server_hostname="inbound-smtp.twin.muster.test",
            ready_timeout=10.0,
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        try:
            self.controller.stop()
        finally:
            self.handler.close()
