"""Parse inbound mail robustly and spot automatic mail and loops (R7).

``parse_inbound`` never raises: mail comes from the open internet and any byte
sequence must end in a recorded outcome, not a crashed Lambda (R9). Nor does it
let the input choose its cost: :func:`precheck` bounds header sizes and MIME
part counts in one linear scan before the ``email`` package sees a byte (R12).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from email import policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesParser
from functools import lru_cache
from typing import Any

from chalicelib.relay import headers as h
from chalicelib.relay.addresses import domain_of, normalize_address
from chalicelib.relay.outcomes import Outcome

MSG_ID_RE = re.compile(r"<[^<>\s]+>")
MAX_SUBJECT_LENGTH = 300
UNKNOWN = "PROCESSING_FAILED"

# --- R12: complexity caps, checked on the raw bytes before the full parse ----
#
# Why: the stdlib parser is far from linear on hostile input. Measured (py3.11):
# a 200 KB Subject of encoded words needs 1.1 GB and 1.2 s to read (the Lambda
# has 512 MB); 300,000 empty MIME parts take 20 s; 500 parts whose Content-Type
# carries 80 parameters take 4.6 s to parse and 8 s to render; a
# message/delivery-status body of 100,000 blank-line blocks, 5 s. Real mail
# stays far below every cap:
MAX_HEADER_BYTES = 128 * 1024
"""Top-level header block. Real blocks reach ~50 KB (long Received/ARC/DKIM
chains from mailing lists); typical is 2-10 KB."""
MAX_FIELD_BYTES = 32 * 1024
"""One unfolded field, in any header block. The longest real fields are
References of long threads (clients trim them; ~70 bytes per id) and To/Cc of
large reply-alls; a few KB. Parsing cost per field grows faster than linearly."""
MAX_HEADER_FIELDS = 1000
"""Fields in the top-level block; real mail has 20-150."""
MAX_PARTS = 1000
"""MIME parts (delimiter lines of declared boundaries, blocks of a
delivery-status body). The renderer keeps at most 500 parts
(anonymize.MAX_PARTS); 1,000 parts parse in ~0.1 s."""
MAX_TOTAL_HEADER_BYTES = 1024 * 1024
"""All header blocks together: the top level, every part and every attached
message. Forwarding ten messages as attachments brings ~100-500 KB; at the cap
the worst case (encoded-word Subjects in attached messages) renders in ~1 s."""
MAX_MIME_TOKENS = 8000
"""``;``, ``(`` and encoded-word openers in Content-* fields, summed over all
parts: the parser's cost follows them (~0.1 ms each, for every access). A real
part has 1-4 (RFC 2231 continuations of a long file name: ~20)."""
MAX_DASH_LINES = 50_000
"""Lines that start with ``--``: past the part cap each one is checked in
Python, so they are bounded too (only megabytes of ``--`` comment lines in an
unencoded attachment come near)."""


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


# --- R12: the linear pre-parse check ----------------------------------------

# A header line as the stdlib's feedparser sees one (``headerRE``): a field
# name and colon, a continuation (leading space or tab), or a Unix From line.
_BLOCK_RE = re.compile(rb"(?:(?:[!-9;-~]*:|[ \t]|From )[^\n]*\n)*")
_CONTENT_FIELD_RE = re.compile(rb"^content-[!-9;-~]*:[^\n]*\n(?:[ \t][^\n]*\n)*", re.IGNORECASE | re.MULTILINE)
_CONTENT_TYPE = b"content-type:"
# A plain media type, which Python reads exactly as written (lower-cased).
# Anything else (comments, quotes, encoded words: Python decodes
# ``=?utf-8?q?message?=/rfc822`` to message/rfc822) counts as every type.
_PLAIN_TYPE_RE = re.compile(rb"[ \t\n]*([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)[ \t\n]*(?:;|$)", re.IGNORECASE)


@lru_cache(maxsize=8)
def _long_field_re(max_field_bytes: int) -> re.Pattern[bytes]:
    """A field (with its continuation lines) longer than ``max_field_bytes``."""
    return re.compile(rb"^[!-9;-~]*:(?:[^\n]|\n[ \t]){%d}" % max_field_bytes, re.MULTILINE)


@dataclass(frozen=True)
class _Limits:
    max_header_bytes: int
    max_field_bytes: int
    max_header_fields: int
    max_parts: int
    max_total_header_bytes: int
    max_mime_tokens: int
    max_dash_lines: int


class _TooComplex(Exception):
    pass


@dataclass
class _Scan:
    """One pass over line-ending-normalized bytes (CRLF and lone CR become LF)."""

    text: bytes
    limits: _Limits
    top_end: int = 0
    header_bytes: int = 0
    tokens: int = 0
    content_types: list[tuple[int, int]] = field(default_factory=list)
    digest: bool = False  # part bodies may be messages (multipart/digest)
    paragraph_blocks: bool = False  # a body is parsed as header blocks (delivery-status)

    def block(self, start: int) -> tuple[int, bool]:
        """Check the header block at ``start``: its end and whether a message follows it."""
        text, limits = self.text, self.limits
        match = _BLOCK_RE.match(text, start)
        end = match.end() if match else start
        if end == start:
            return end, False
        self.header_bytes += end - start
        if self.header_bytes > limits.max_total_header_bytes:
            raise _TooComplex("header bytes")
        if _long_field_re(limits.max_field_bytes).search(text, start, end):
            raise _TooComplex("header field")
        message_follows = False
        for content in _CONTENT_FIELD_RE.finditer(text, start, end):
            value = content.group(0)
            self.tokens += value.count(b";") + value.count(b"(") + value.count(b"=?")
            if self.tokens > limits.max_mime_tokens:
                raise _TooComplex("mime tokens")
            if value[: len(_CONTENT_TYPE)].lower() != _CONTENT_TYPE:
                continue
            self.content_types.append(content.span())
            if len(self.content_types) > 2 * limits.max_parts:
                raise _TooComplex("parts")
            plain = _PLAIN_TYPE_RE.match(value, len(_CONTENT_TYPE))
            media = plain.group(1).lower() if plain else None
            message_follows |= media is None or media.startswith(b"message/")
            self.digest |= media is None or media == b"multipart/digest"
            self.paragraph_blocks |= media is None or media == b"message/delivery-status"
        return end, message_follows

    def blocks(self, start: int, *, part: bool) -> int:
        """The header block at ``start`` and those of the messages nested in it; the end."""
        message_follows = part and self.digest
        while True:
            end, nested = self.block(start)
            if not (nested or message_follows) or self.text[end : end + 1] != b"\n":
                return end
            start, message_follows = end + 1, False


def _boundaries(scan: _Scan) -> set[bytes] | None:
    """Every boundary the stdlib reads from the Content-Type fields, None if unsure.

    Python's own header code decides, field by field (comments, quoting,
    RFC 2231 and encoded words all change the result). The fields are within
    the size, token and count caps by now.
    """
    found: set[bytes] = set()
    try:
        for start, end in scan.content_types:
            msg = BytesParser(policy=policy.default).parsebytes(scan.text[start:end] + b"\n", headersonly=True)
            boundary = msg.get_boundary()
            if boundary is not None:
                found.add(boundary.encode("utf-8", "surrogateescape"))
    except Exception:
        return None
    return found


def _delimiters(scan: _Scan, starts: list[int]) -> int:
    """How many of these ``--`` lines delimit a declared boundary (an upper bound)."""
    boundaries = _boundaries(scan)
    if boundaries is None:
        return len(starts)
    text, count = scan.text, 0
    for start in starts:
        content = text[start + 2 : text.find(b"\n", start)].rstrip(b" \t")
        if content in boundaries or (content.endswith(b"--") and content[:-2] in boundaries):
            count += 1
    return count


def _scan(raw: bytes, limits: _Limits) -> _Scan:
    """Raise :class:`_TooComplex` if ``raw`` is over a cap; the scan's findings otherwise.

    Linear: C-speed finds and regexes over the bytes, header blocks never
    overlap (so each byte is matched once), and Python-level loops are bounded
    by the caps themselves.
    """
    scan = _Scan(raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\n", limits)
    text = scan.text
    scan.top_end = 0 if text.startswith(b"\n") else (text.find(b"\n\n") + 1 or len(text))
    if scan.top_end > limits.max_header_bytes:
        raise _TooComplex("header block")
    top = scan.top_end
    fields = text.count(b"\n", 0, top) - text.count(b"\n ", 0, top) - text.count(b"\n\t", 0, top)
    if fields > limits.max_header_fields:
        raise _TooComplex("header fields")
    if text.count(b"\n--") + text.startswith(b"--") > limits.max_dash_lines:
        raise _TooComplex("dash lines")
    # Header blocks: the top level, after every line that starts with "--" (a
    # superset of the delimiter lines) and in every attached message.
    scanned = scan.blocks(0, part=False)
    starts = [0] if text.startswith(b"--") else []
    pos = text.find(b"\n--")
    while pos >= 0:
        starts.append(pos + 1)
        line_end = text.find(b"\n", pos + 1)
        if line_end + 1 >= scanned:
            scanned = scan.blocks(line_end + 1, part=True)
        pos = text.find(b"\n--", max(line_end, scanned - 1))
    parts = _delimiters(scan, starts) if len(starts) > limits.max_parts else len(starts)
    if scan.paragraph_blocks:
        # A delivery-status body is parsed as one header block per paragraph,
        # and each empty line starts one: 2 * count("\n\n") bounds them.
        parts += 2 * text.count(b"\n\n")
        if parts > limits.max_parts:
            raise _TooComplex("parts")
        for match in re.finditer(rb"\n\n+", text):
            scan.block(match.end())
    if parts > limits.max_parts:
        raise _TooComplex("parts")
    return scan


def _limits(
    max_header_bytes: int,
    max_field_bytes: int,
    max_header_fields: int,
    max_parts: int,
    max_total_header_bytes: int | None,
    max_mime_tokens: int | None,
    max_dash_lines: int | None,
) -> _Limits:
    return _Limits(
        max_header_bytes=max_header_bytes,
        max_field_bytes=max_field_bytes,
        max_header_fields=max_header_fields,
        max_parts=max_parts,
        max_total_header_bytes=max(max_total_header_bytes or MAX_TOTAL_HEADER_BYTES, max_header_bytes),
        max_mime_tokens=max_mime_tokens or MAX_MIME_TOKENS,
        max_dash_lines=max(max_dash_lines or MAX_DASH_LINES, max_parts),
    )


_DEFAULT_LIMITS = _limits(MAX_HEADER_BYTES, MAX_FIELD_BYTES, MAX_HEADER_FIELDS, MAX_PARTS, None, None, None)


def precheck(
    raw: bytes,
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_field_bytes: int = MAX_FIELD_BYTES,
    max_header_fields: int = MAX_HEADER_FIELDS,
    max_parts: int = MAX_PARTS,
    max_total_header_bytes: int | None = None,
    max_mime_tokens: int | None = None,
    max_dash_lines: int | None = None,
) -> Outcome | None:
    """R12: ``Outcome.TOO_COMPLEX`` if ``raw`` is over a header or part cap, else None.

    Pure, linear in ``len(raw)`` and safe on any bytes: run it before anything
    parses untrusted mail. The caps and their reasons are the module constants.
    """
    limits = _limits(
        max_header_bytes, max_field_bytes, max_header_fields, max_parts,
        max_total_header_bytes, max_mime_tokens, max_dash_lines,
    )
    return None if complexity(raw, limits) is None else Outcome.TOO_COMPLEX


def complexity(raw: bytes, limits: _Limits | None = None) -> str | None:
    """Which cap ``raw`` is over (a short reason for logs), or None."""
    try:
        _scan(raw, limits or _DEFAULT_LIMITS)
    except _TooComplex as exc:
        return str(exc)
    except Exception as exc:  # pragma: no cover - the scan is plain byte work
        return f"unscannable: {type(exc).__name__}"
    return None


def _top_headers(raw: bytes, limits: _Limits) -> EmailMessage:
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
    if _long_field_re(limits.max_field_bytes).search(head):
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
    limits = _limits(max_header_bytes, max_field_bytes, max_header_fields, max_parts, None, None, None)
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


def loop_or_auto_reason(
    mail: InboundMail, envelope_sender: str | None, relay_domain: str
) -> Outcome | None:
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
