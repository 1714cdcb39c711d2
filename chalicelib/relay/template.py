"""Per-recipient copies of a rendered message: bytes only, no re-parsing (R11).

Where the mute URL goes -- the splice rule
------------------------------------------
A placeholder is replaced by the recipient's mute URL only at a *footer slot*:

- never inside the top-level header block (everything before the first empty
  line), so no header can ever change;
- the text placeholder only where it stands alone on its line right after a
  line that ends in ``placeholders.TEXT_SLOT_LEAD`` (the text footer and the kickoff);
- the HTML placeholder only as the whole value of ``<a href="...">`` (in
  quoted-printable ``<a href=3D"...">``), which is how the HTML footer writes it;
- the control placeholders (R15: the report link, or the organizer controls)
  only alone on their line, the text one right after a text mute slot's line,
  the HTML one right after a line that ends in ``>`` (the footer's ``<br>``).

Every other occurrence stays as it is. Two things make that rule robust: the
renderer strips the placeholder stem from every input (names, subjects,
filenames, bodies; see :mod:`chalicelib.relay.placeholders`), and content the
renderer cannot strip -- base64 attachments -- cannot contain the slot lead
(``:``, spaces, quotes and ``<`` are not base64 characters).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import quoprimime

from chalicelib.relay import headers as h
from chalicelib.relay.placeholders import (
    CONTROLS_PLACEHOLDER_HTML,
    CONTROLS_PLACEHOLDER_TEXT,
    HTML_SLOT_LEAD,
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
    PLACEHOLDER_STEM,
    TEXT_SLOT_LEAD,
)

_PH_TEXT = MUTE_URL_PLACEHOLDER_TEXT.encode("ascii")
_PH_HTML = MUTE_URL_PLACEHOLDER_HTML.encode("ascii")
_PH_CTRL_TEXT = CONTROLS_PLACEHOLDER_TEXT.encode("ascii")
_PH_CTRL_HTML = CONTROLS_PLACEHOLDER_HTML.encode("ascii")
_ANY_PLACEHOLDER = re.compile(re.escape(PLACEHOLDER_STEM.encode("ascii")) + b"(?:TEXT|HTML|CTRLT|CTRLH)PLACEHOLDERXXXX")
# Slot kinds, in the order CopyTemplate.render fills them.
TEXT, HTML, CTRL_TEXT, CTRL_HTML = 0, 1, 2, 3
_TEXT_LEAD = TEXT_SLOT_LEAD.rstrip("\n").encode("ascii")
_TEXT_LEADS = (_TEXT_LEAD + b"\r\n", _TEXT_LEAD + b"\n")
_HTML_LEADS = (HTML_SLOT_LEAD.replace("=", "=3D").encode("ascii"), HTML_SLOT_LEAD.encode("ascii"))  # QP, raw


def _body_start(rendered: bytes) -> int:
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := rendered.find(sep)) >= 0]
    return min(ends) if ends else len(rendered)


def _line_alone(rendered: bytes, start: int, end: int) -> bool:
    after = rendered[end : end + 2]
    return rendered[start - 1 : start] == b"\n" and (after == b"\r\n" or after[:1] == b"\n")


def _slot_kind(rendered: bytes, start: int, end: int) -> int | None:
    """The kind of footer slot at ``rendered[start:end]``, or None if it is not one."""
    found = rendered[start:end]
    if found == _PH_TEXT:
        return TEXT if _is_slot(rendered, start, end, False) else None
    if found == _PH_HTML:
        return HTML if _is_slot(rendered, start, end, True) else None
    if not _line_alone(rendered, start, end):
        return None
    if found == _PH_CTRL_TEXT:
        for eol in (b"\r\n", b"\n"):
            mute = start - len(eol) - len(_PH_TEXT)
            if rendered[mute:start] == _PH_TEXT + eol and _is_slot(rendered, mute, mute + len(_PH_TEXT), False):
                return CTRL_TEXT
        return None
    if found == _PH_CTRL_HTML:
        return CTRL_HTML if rendered[:start].rstrip(b"\r\n").endswith(b">") else None
    return None


def qp_block(text: str) -> bytes:
    """``text`` (lines, any Unicode) as quoted-printable UTF-8 body lines, CRLF-ended."""
    if not text:
        return b""
    latin = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
    return quoprimime.body_encode(latin, maxlinelen=76, eol="\r\n").encode("ascii")


def _is_slot(rendered: bytes, start: int, end: int, is_html: bool) -> bool:
    if is_html:
        return any(rendered.endswith(lead, 0, start) for lead in _HTML_LEADS) and rendered[end : end + 1] == b'"'
    after = rendered[end : end + 2]
    return any(rendered.endswith(lead, 0, start) for lead in _TEXT_LEADS) and (after == b"\r\n" or after[:1] == b"\n")


def _qp_url(url: str) -> bytes:
    """``url`` as quoted-printable body text, soft-wrapped into short lines."""
    if not url.isascii() or not url.isprintable() or " " in url or not url:
        raise ValueError("mute URL must be printable ASCII without spaces")
    chunks: list[str] = []
    current = ""
    for ch in url:
        token = "=3D" if ch == "=" else ch
        if len(current) + len(token) > 40:
            chunks.append(current)
            current = ""
        current += token
    chunks.append(current)
    return "=\r\n".join(chunks).encode("ascii")


def _header_line(name: str, value: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,76}", name):
        raise ValueError(f"bad header name {name!r}")
    if not value.isascii() or not value.isprintable() or len(value) > 900:
        raise ValueError(f"bad header value for {name}")
    return f"{name}: {value.strip()}\r\n".encode("ascii")


@dataclass(frozen=True)
class CopyTemplate:
    """A rendered message split once at its footer slots (see the module docstring).

    Fan-out builds every recipient's copy from the same pieces with a single
    ``join``: one allocation the size of the message per copy, no re-parsing and
    no intermediate copies (a 10 MB message stays 10 MB per copy in flight).
    """

    pieces: tuple[bytes, ...]
    slots: tuple[int, ...]  # for each gap between pieces: its kind (TEXT, HTML, CTRL_TEXT, CTRL_HTML)

    @classmethod
    def of(cls, rendered: bytes) -> CopyTemplate:
        pieces: list[bytes] = []
        slots: list[int] = []
        last = 0
        for m in _ANY_PLACEHOLDER.finditer(rendered, _body_start(rendered)):
            start, end = m.span()
            kind = _slot_kind(rendered, start, end)
            if kind is None:
                continue
            pieces.append(rendered[last:start])
            slots.append(kind)
            last = end
        pieces.append(rendered[last:] if last else rendered)
        return cls(pieces=tuple(pieces), slots=tuple(slots))

    @property
    def has_controls(self) -> bool:
        return CTRL_TEXT in self.slots or CTRL_HTML in self.slots

    def render(
        self,
        *,
        mute_url: str,
        list_unsubscribe_headers: Mapping[str, str],
        thread_headers: bytes = b"",
        controls_text: str = "",
        controls_html: str = "",
    ) -> bytes:
        """One recipient's copy: per-recipient headers first (List-Unsubscribe, and
        this reader's threading headers, already formatted by
        :func:`chalicelib.relay.threadheaders.header_block`), the mute URL in every
        footer, and this reader's control lines (plain text and HTML, as written by
        :mod:`chalicelib.relay.stewardmail`) at the control slots."""
        fill = {
            TEXT: _qp_url(mute_url),
            HTML: _qp_url(html.escape(mute_url, quote=True)),
            CTRL_TEXT: qp_block(controls_text).rstrip(b"\r\n"),
            CTRL_HTML: qp_block(controls_html).rstrip(b"\r\n"),
        }
        parts = [b"".join(_header_line(k, v) for k, v in list_unsubscribe_headers.items()), thread_headers]
        for piece, kind in zip(self.pieces, (*self.slots, None), strict=True):
            parts.append(piece)
            if kind is not None:
                parts.append(fill[kind])
        return b"".join(parts)


def personalize(rendered: bytes, *, mute_url: str, list_unsubscribe_headers: Mapping[str, str]) -> bytes:
    """One recipient's copy of ``rendered`` (see :class:`CopyTemplate`, which
    fan-out prepares once per batch)."""
    return CopyTemplate.of(rendered).render(mute_url=mute_url, list_unsubscribe_headers=list_unsubscribe_headers)


def list_unsubscribe_headers(one_click_url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for one recipient's one-click mute URL."""
    value = f"<{one_click_url}>" + (f", <mailto:{mailto}>" if mailto else "")
    return {h.LIST_UNSUBSCRIBE: value, h.LIST_UNSUBSCRIBE_POST: h.LIST_UNSUBSCRIBE_POST_VALUE}
