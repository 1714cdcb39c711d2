"""Parse inbound mail robustly (R6: exactly one From; R9: never raises).

``parse_inbound`` never raises: mail comes from the open internet and any byte
sequence must end in a recorded outcome, not a crashed Lambda (R9). Nor does it
let the input choose its cost: :func:`precheck` bounds header sizes and MIME
part counts in one linear scan before the ``email`` package sees a byte (R12).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from email import policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from chalicelib.relay import headers as h
from chalicelib.relay.addresses import normalize_address
from chalicelib.relay.caps import (  # noqa: F401  (precheck, complexity: re-exported)
    DEFAULT_LIMITS,
    MAX_FIELD_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADER_FIELDS,
    MAX_PARTS,
    Limits,
    complexity,
    long_field_re,
    make_limits,
    precheck,
)

MSG_ID_RE = re.compile(r"<[^<>\s]+>")
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
    """What the relay knows about one inbound message.

    ``from_address`` is set only for a From header with exactly one well-formed
    address; ``from_problem`` says why a From header that is present was refused
    (R6: never guessed). ``too_complex`` marks mail over a :func:`precheck` cap:
    its body was never parsed, and its headers only when the top-level block is
    itself within the caps.
    """

    message: EmailMessage
    size: int
    from_address: str | None
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    defects: tuple[str, ...]
    from_problem: str | None = None
    too_complex: bool = False

    @property
    def from_invalid(self) -> bool:
        return self.from_problem is not None

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


# --- R6: exactly one well-formed From address -------------------------------

# Defects that concern only the display name of an otherwise clean mailbox:
# "Jane Q. Public <jane@example.org>" is obsolete syntax (RFC 5322 obs-phrase)
# that clients still send.
_BENIGN_FROM_DEFECTS = frozenset({"period in 'phrase'", "comment found without atom"})
_FOLD_RE = re.compile(r"\r\n|\r|\n")


def _from_header(value: str) -> tuple[AddressHeader | None, bool]:
    """The From value parsed as a header, and whether its bytes were UTF-8.

    BytesParser keeps non-ASCII bytes as surrogate escapes, which the header
    parser flags as undecodable. RFC 6532 allows UTF-8 in headers, so the bytes
    are decoded as UTF-8 first; anything else is read byte by byte (latin-1),
    which keeps the ASCII structure (``<``, ``@``, ``,``) exactly where it was.
    """
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        text, utf8 = value, True
    else:
        try:
            text, utf8 = data.decode("utf-8"), True
        except UnicodeDecodeError:
            text, utf8 = data.decode("latin-1"), False
    parsed = policy.default.header_factory(h.FROM, _FOLD_RE.sub("", text))
    return (parsed if isinstance(parsed, AddressHeader) else None), utf8


def _from_problem(header: AddressHeader, utf8: bool) -> str | None:
    for defect in getattr(header, "defects", ()):
        name = type(defect).__name__
        if name == "NonASCIILocalPartDefect" and utf8:
            continue  # an RFC 6532 address
        if name == "ObsoleteHeaderDefect" and str(defect) in _BENIGN_FROM_DEFECTS:
            continue
        return f"defect: {name}"
    if len(header.groups) != 1 or len(header.addresses) != 1:
        return "not exactly one address"
    if header.groups[0].display_name is not None:
        return "group"
    address = header.addresses[0]
    if not address.username or not address.domain:
        return "address without a domain"
    if not utf8 and not address.addr_spec.isascii():
        return "address not in UTF-8"
    return None


def read_from(msg: EmailMessage) -> tuple[str | None, str | None]:
    """The normalized From address, or why the From header is refused (R6).

    ``(None, None)``: no From header at all (the caller's MALFORMED). Refused:
    more than one From field, a group or more than one address, an address
    without a domain, or any parse defect except the benign ones above. Python
    alone would read ``ann@x.example <mallory@evil.example>`` as ann, while
    clients and DMARC take mallory: the first address is never guessed.
    """
    try:
        values = [v for k, v in msg.raw_items() if k.lower() == h.FROM.lower()]
    except Exception:
        return None, "unreadable"
    if not values:
        return None, None
    if len(values) > 1:
        return None, "more than one From field"
    try:
        header, utf8 = _from_header(values[0] if isinstance(values[0], str) else _to_text(values[0]))
    except Exception:
        return None, "unparseable"
    if header is None:
        return None, "unparseable"
    problem = _from_problem(header, utf8)
    if problem is not None:
        return None, problem
    return normalize_address(header.addresses[0].addr_spec), None


def _msg_ids(msg: EmailMessage, name: str) -> tuple[str, ...]:
    return tuple(MSG_ID_RE.findall(_raw_header(msg, name)))


def _empty_message() -> EmailMessage:
    return EmailMessage(policy=policy.default)


def _top_headers(raw: bytes, limits: Limits) -> EmailMessage:
    """Only the top-level header block, if it is within its own caps; else nothing.

    Mail refused for its parts still has readable headers, so R6/R7 (From,
    automatic mail, delivery reports) are decided on them rather than guessed.
    """
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\n"
    top_end = 0 if text.startswith(b"\n") else (text.find(b"\n\n") + 1 or len(text))
    head = text[:top_end]
    fields = head.count(b"\n") - head.count(b"\n ") - head.count(b"\n\t")
    if top_end > limits.max_header_bytes or fields > limits.max_header_fields:
        return _empty_message()
    if long_field_re(limits.max_field_bytes).search(head):
        return _empty_message()
    parsed = BytesParser(policy=policy.default).parsebytes(head + b"\n", headersonly=True)
    return parsed if isinstance(parsed, EmailMessage) else _empty_message()


def parse_inbound(
    raw: bytes,
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_field_bytes: int = MAX_FIELD_BYTES,
    max_header_fields: int = MAX_HEADER_FIELDS,
    max_parts: int = MAX_PARTS,
) -> InboundMail:
    """Parse raw MIME into an :class:`InboundMail`. Never raises.

    A totally unusable input still returns an object (with no From); the caller
    decides that it is MALFORMED. Mail over a :func:`precheck` cap is never
    parsed in full: it comes back with ``too_complex`` set and only its
    top-level headers (none if that block is itself over a cap).
    """
    limits = make_limits(max_header_bytes, max_field_bytes, max_header_fields, max_parts, None, None, None)
    defects: list[str] = []
    reason = complexity(raw, limits)
    try:
        parsed = BytesParser(policy=policy.default).parsebytes(raw) if reason is None else _top_headers(raw, limits)
        message = parsed if isinstance(parsed, EmailMessage) else _empty_message()
    except Exception as exc:
        defects.append(f"unparseable: {type(exc).__name__}")
        message = _empty_message()
    if reason is not None:
        defects.append(f"too complex: {reason}")
    try:
        for part in message.walk():
            defects.extend(type(d).__name__ for d in part.defects)
    except Exception as exc:
        defects.append(f"unwalkable: {type(exc).__name__}")
    from_address, from_problem = read_from(message)
    if from_problem:
        defects.append(f"from: {from_problem}")
    message_ids = _msg_ids(message, h.MESSAGE_ID)
    return InboundMail(
        message=message,
        size=len(raw),
        from_address=from_address,
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_msg_ids(message, h.IN_REPLY_TO),
        references=_msg_ids(message, h.REFERENCES),
        subject=clean_subject(header_text(message, h.SUBJECT)),
        defects=tuple(defects),
        from_problem=from_problem,
        too_complex=reason is not None,
    )


def parse_ses_headers(headers: Iterable[Mapping[str, Any]], *, size: int) -> InboundMail:
    """An :class:`InboundMail` from the SES event's ``mail.headers`` alone.

    For mail too large to fetch: R6/R7 are decided on the headers SES sent.
    Goes through :func:`parse_inbound`, so the same caps apply (a 200 KB Subject
    is TOO_COMPLEX here too, not a gigabyte of header objects).
    """
    lines = []
    for item in headers:
        name = _to_text(item.get("name") or "")
        if not name:
            continue
        line = f"{name}: {_to_text(item.get('value') or '')}"
        lines.append(line.replace("\r", " ").replace("\n", " "))
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")
    return replace(parse_inbound(raw), size=size)


def clean_subject(subject: str) -> str:
    """One line of printable text: no CR/LF or other control characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in subject)
    return " ".join(text.split())[:MAX_SUBJECT_LENGTH]
