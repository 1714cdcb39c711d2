"""R7: automatic mail, delivery reports and loops, which are never relayed and
never answered."""

from __future__ import annotations

import re

from chalicelib.relay import headers as h
from chalicelib.relay.addresses import domain_of, normalize_address
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail

_NULL_SENDERS = frozenset({"", "<>", "mailer-daemon", "postmaster"})
_REPORT_TYPES = frozenset({"delivery-status", "disposition-notification"})
_REPORT_CONTENT = frozenset({"message/delivery-status", "message/disposition-notification", "message/feedback-report"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)"
    r"|auto:|autoreply|vacation(?: reply| response)?\b|abwesenheitsnotiz"
    r"|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica)",
    re.IGNORECASE,
)


def is_null_sender(envelope_sender: str | None) -> bool:
    """No address to answer: empty, ``<>``, mailer-daemon or postmaster."""
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


def loop_or_auto_reason(mail: InboundMail, envelope_sender: str | None, relay_domain: str) -> Outcome | None:
    """R7: the reason this mail must be neither relayed nor answered, or None."""
    if _is_delivery_report(mail):
        return Outcome.DELIVERY_REPORT
    if is_null_sender(envelope_sender):
        return Outcome.NULL_SENDER
    own = relay_domain.strip().lower()
    if _is_own_domain(mail.from_address, own) or _is_own_domain(envelope_sender, own):
        return Outcome.LOOP
    if any(own in v.lower() for v in mail.header_all(h.X_LOOP)):
        return Outcome.LOOP
    if _is_auto_reply(mail):
        return Outcome.AUTO_REPLY
    return None
