"""R12: what an inbound message may cost, checked on the raw bytes before the
``email`` package parses it: header block sizes, field sizes and counts, MIME
part counts. One linear scan (:func:`precheck`); over a cap the message is
refused as TOO_COMPLEX instead of parsed (a 200 KB Subject of encoded words
took over a gigabyte, 300,000 empty parts 26 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from functools import lru_cache

from chalicelib.relay.outcomes import Outcome

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
def long_field_re(max_field_bytes: int) -> re.Pattern[bytes]:
    """A field (with its continuation lines) longer than ``max_field_bytes``."""
    return re.compile(rb"^[!-9;-~]*:(?:[^\n]|\n[ \t]){%d}" % max_field_bytes, re.MULTILINE)


@dataclass(frozen=True)
class Limits:
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
    limits: Limits
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
        if long_field_re(limits.max_field_bytes).search(text, start, end):
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


def _scan(raw: bytes, limits: Limits) -> _Scan:
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


def make_limits(
    max_header_bytes: int,
    max_field_bytes: int,
    max_header_fields: int,
    max_parts: int,
    max_total_header_bytes: int | None,
    max_mime_tokens: int | None,
    max_dash_lines: int | None,
) -> Limits:
    return Limits(
        max_header_bytes=max_header_bytes,
        max_field_bytes=max_field_bytes,
        max_header_fields=max_header_fields,
        max_parts=max_parts,
        max_total_header_bytes=max(max_total_header_bytes or MAX_TOTAL_HEADER_BYTES, max_header_bytes),
        max_mime_tokens=max_mime_tokens or MAX_MIME_TOKENS,
        max_dash_lines=max(max_dash_lines or MAX_DASH_LINES, max_parts),
    )


DEFAULT_LIMITS = make_limits(MAX_HEADER_BYTES, MAX_FIELD_BYTES, MAX_HEADER_FIELDS, MAX_PARTS, None, None, None)


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
    limits = make_limits(
        max_header_bytes,
        max_field_bytes,
        max_header_fields,
        max_parts,
        max_total_header_bytes,
        max_mime_tokens,
        max_dash_lines,
    )
    return None if complexity(raw, limits) is None else Outcome.TOO_COMPLEX


def complexity(raw: bytes, limits: Limits | None = None) -> str | None:
    """Which cap ``raw`` is over (a short reason for logs), or None."""
    try:
        _scan(raw, limits or DEFAULT_LIMITS)
    except _TooComplex as exc:
        return str(exc)
    except Exception as exc:  # pragma: no cover - the scan is plain byte work
        return f"unscannable: {type(exc).__name__}"
    return None
