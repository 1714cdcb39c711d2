"""Parse inbound mail robustly and spot automatic mail and loops (R7).

``parse_inbound`` never raises: mail comes from the open internet and any byte
sequence must end in a recorded outcome, not a crashed Lambda (R9).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from chalicelib.relay import headers as h
from chalicelib.relay.addresses import domain_of, normalize_address
from chalicelib.relay.outcomes import Outcome

MSG_ID_RE = re.compile(r"<[^<>\s]+>")
_ADDR_SPEC_RE = re.compile(r"[^\s<>\"(),;:@]+@[^\s<>\"(),;:@]+")
MAX_SUBJECT_LENGTH = 300
UNKNOWN = "PROCESSING_FAILED"


@dataclass(frozen=True)
class Verdicts:
    """SES receipt verdicts: "PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"."""

    spf: str
    dkim: str
    dmarc: str
    spam: str
    virus: str


def _status(receipt: Mapping[str, Any], field: str) -> str:
    value = receipt.get(field)
    if isinstance(value, Mapping):
        status = value.get("status")
        if isinstance(status, str) and status:
            return status.strip().upper()
    return UNKNOWN


def verdicts_from_ses(receipt: Mapping[str, Any]) -> Verdicts:
    """Read the verdicts from an SES receipt notification's ``receipt`` object.

    A missing verdict reads as PROCESSING_FAILED, which never counts as a pass.
    """
    return Verdicts(
        spf=_status(receipt, "spfVerdict"),
        dkim=_status(receipt, "dkimVerdict"),
        dmarc=_status(receipt, "dmarcVerdict"),
        spam=_status(receipt, "spamVerdict"),
        virus=_status(receipt, "virusVerdict"),
    )


@dataclass(frozen=True)
class InboundMail:
    message: EmailMessage
    size: int
    from_address: str | None
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    defects: tuple[str, ...]

    def header(self, name: str) -> str:
        """A header's (first) value as text, '' if absent or unreadable."""
        return header_text(self.message, name)

    def header_all(self, name: str) -> tuple[str, ...]:
        try:
            values = self.message.get_all(name) or []
        except Exception:
            return ()
        return tuple(_to_text(v) for v in values)


def _to_text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return ""


def header_text(msg: EmailMessage, name: str) -> str:
    """A header's first value as text, '' if absent or unreadable; never raises."""
    try:
        value = msg.get(name)
    except Exception:
        return ""
    return "" if value is None else _to_text(value)


def _raw_header(msg: EmailMessage, name: str) -> str:
    """The undecoded header text (so encoded words cannot smuggle brackets)."""
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return value if isinstance(value, str) else _to_text(value)
    return ""


def _first_address(msg: EmailMessage) -> str | None:
    try:
        header = msg.get(h.FROM)
        addresses = getattr(header, "addresses", ()) if header is not None else ()
        for address in addresses:
            spec = address.addr_spec
            if spec and "@" in spec:
                return normalize_address(spec)
    except Exception:
        addresses = ()
    match = _ADDR_SPEC_RE.search(_raw_header(msg, h.FROM))
    return normalize_address(match.group(0)) if match else None


def _msg_ids(msg: EmailMessage, name: str) -> tuple[str, ...]:
    return tuple(MSG_ID_RE.findall(_raw_header(msg, name)))


def _empty_message() -> EmailMessage:
    return EmailMessage(policy=policy.default)


def parse_inbound(raw: bytes) -> InboundMail:
    """Parse raw MIME into an :class:`InboundMail`. Never raises.

    A totally unusable input still returns an object (with no From); the caller
    decides that it is MALFORMED.
    """
    defects: list[str] = []
    try:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        message = parsed if isinstance(parsed, EmailMessage) else _empty_message()
    except Exception as exc:
        defects.append(f"unparseable: {type(exc).__name__}")
        message = _empty_message()
    try:
        for part in message.walk():
            defects.extend(type(d).__name__ for d in part.defects)
    except Exception as exc:
        defects.append(f"unwalkable: {type(exc).__name__}")
    message_ids = _msg_ids(message, h.MESSAGE_ID)
    return InboundMail(
        message=message,
        size=len(raw),
        from_address=_first_address(message),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_msg_ids(message, h.IN_REPLY_TO),
        references=_msg_ids(message, h.REFERENCES),
        subject=clean_subject(header_text(message, h.SUBJECT)),
        defects=tuple(defects),
    )


def clean_subject(subject: str) -> str:
    """One line of printable text: no CR/LF or other control characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in subject)
    return " ".join(text.split())[:MAX_SUBJECT_LENGTH]


# --- R7: automatic mail, delivery reports and loops -------------------------

_NULL_SENDERS = frozenset({"", "<>", "mailer-daemon", "postmaster"})
_REPORT_TYPES = frozenset({"delivery-status", "disposition-notification"})
_REPORT_CONTENT = frozenset(
    {"message/delivery-status", "message/disposition-notification", "message/feedback-report"}
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)"
    r"|auto:|autoreply|vacation(?: reply| response)?\b|abwesenheitsnotiz"
    r"|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica)",
    re.IGNORECASE,
)


def _is_null_sender(envelope_sender: str | None) -> bool:
    sender = normalize_address(envelope_sender or "")
    local = sender.split("@", 1)[0]
    return sender in _NULL_SENDERS or local in {"mailer-daemon", "postmaster"}


def _is_delivery_report(mail: InboundMail) -> bool:
    msg = mail.message
    try:
        if msg.get_content_type() == "multipart/report":
            return True
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type in _REPORT_TYPES:
            return True
        return any(part.get_content_type() in _REPORT_CONTENT for part in msg.walk())
    except Exception:
        return False


def _is_own_domain(addr: str | None, relay_domain: str) -> bool:
    domain = domain_of(addr or "")
    own = relay_domain.strip().lower()
    return bool(domain) and (domain == own or domain.endswith("." + own))


def _is_auto_reply(mail: InboundMail) -> bool:
    auto_submitted = mail.header(h.AUTO_SUBMITTED).split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    precedence = mail.header(h.PRECEDENCE).strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return True
    if any(mail.header(name) for name in h.AUTO_REPLY_MARKERS):
        return True
    # X-Auto-Response-Suppress is deliberately ignored: Outlook sets it on ordinary
    # human mail too. Vacation responders that set no header at all still say so
    # in the subject, so the subject is a marker on its own.
    return bool(_AUTO_SUBJECT_RE.match(mail.subject))


def loop_or_auto_reason(
    mail: InboundMail, envelope_sender: str | None, relay_domain: str
) -> Outcome | None:
    """R7: the reason this mail must be neither relayed nor answered, or None."""
    if _is_delivery_report(mail):
        return Outcome.DELIVERY_REPORT
    if _is_null_sender(envelope_sender):
        return Outcome.NULL_SENDER
    own = relay_domain.strip().lower()
    if _is_own_domain(mail.from_address, own) or _is_own_domain(envelope_sender, own):
        return Outcome.LOOP
    if any(own in v.lower() for v in mail.header_all(h.X_LOOP)):
        return Outcome.LOOP
    if _is_auto_reply(mail):
        return Outcome.AUTO_REPLY
    return None
