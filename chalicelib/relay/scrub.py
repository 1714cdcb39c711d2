"""Find and replace email addresses in text and HTML (R5).

Addresses hide in many spellings: mixed case, ``mailto:`` links, URL-encoding
(``jane%40example.org``), HTML entities (``jane&#64;example.org``,
``&commat;``) and, in HTML, tags inside the address (``jane@exa<wbr>mple.org``).
The scrubber matches on a *decoded view* of the text and maps every match back to
its span in the original, so one pass handles all spellings without decoding and
re-encoding the whole document.

Known participants' addresses become their display names; every other
address-looking token becomes ``[address hidden]``; addresses at the relay domain
(the chat address, Muster's own Content-IDs) are kept.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping

HIDDEN = "[address hidden]"
# The lookbehind lets a match start only where a run of local-part characters
# starts; without it a long run with no "@" is rescanned from every position
# (quadratic: a 100 KB base64 data: URI would take minutes).
_LOCAL = r"(?<![\w.+-])[\w.+-]+"
_DOMAIN = r"[\w-]+(?:\.[\w-]+)+"
GENERIC_ADDRESS = _LOCAL + "@" + _DOMAIN
_GENERIC_RE = re.compile(GENERIC_ADDRESS)
_ESCAPE = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?|%[0-9A-Fa-f]{2}"
_ESCAPE_RE = re.compile(_ESCAPE)
_ESCAPE_OR_TAG_RE = re.compile(_ESCAPE + r"|<[^<>]{0,2000}>")
_BYTES_ADDRESS_RE = re.compile(rb"(?<![A-Za-z0-9._+-])[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _decode_escape(token: str) -> str:
    if token.startswith("%"):
        return chr(int(token[1:], 16))
    if token.startswith("<"):
        return ""  # a tag renders as nothing between two halves of an address
    return html.unescape(token)


class Scrubber:
    """Replaces addresses in text; build once per message, use for every part."""

    def __init__(self, names: Mapping[str, str], keep_domain: str) -> None:
        self._names = {addr.lower(): name for addr, name in names.items() if addr}
        self._keep_domain = keep_domain.lower()
        # Addresses the generic pattern cannot match whole (quotes, odd characters)
        # are matched literally first; the rest are found by the generic pattern and
        # looked up, so the cost does not grow with the number of participants.
        odd = sorted(
            (a for a in self._names if not _GENERIC_RE.fullmatch(a)), key=len, reverse=True
        )
        alternatives = [re.escape(a) + r"(?![\w-]|\.[\w-])" for a in odd]
        alternatives.append(GENERIC_ADDRESS)
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)
        by_domain: dict[str, list[str]] = {}
        for addr in self._names:
            by_domain.setdefault(addr.rpartition("@")[2], []).append(addr)
        self._by_domain = by_domain

    def replacement(self, token: str) -> str | None:
        """What an address-looking token becomes; None to keep it."""
        key = token.lower()
        name = self._names.get(key)
        if name is not None:
            return name
        # "jane@example.org.pdf": a known address followed by a file extension.
        stem, dot, ext = key.rpartition(".")
        if dot and stem in self._names and 0 < len(ext) <= 5 and ext.isalnum():
            return self._names[stem] + token[len(stem) :]
        domain = key.rpartition("@")[2]
        if domain == self._keep_domain or domain.endswith("." + self._keep_domain):
            return None
        return HIDDEN

    def scrub(self, text: str, *, is_html: bool = False) -> str:
        """``text`` with every address replaced (HTML-escaped names when ``is_html``)."""
        text = self._scrub_view(text, _ESCAPE_RE, is_html)
        if is_html:
            text = self._scrub_view(text, _ESCAPE_OR_TAG_RE, is_html)
        return text

    def _render(self, token: str, is_html: bool) -> str | None:
        new = self.replacement(token)
        if new is None or not is_html:
            return new
        return html.escape(new, quote=True)

    def _scrub_view(self, text: str, hide_re: re.Pattern[str], is_html: bool) -> str:
        if "@" not in text and "%40" not in text and "&" not in text:
            return text
        # Decoded view: escapes (and tags) decoded; marks map view offsets back.
        pieces: list[str] = []
        marks: list[tuple[int, int, int, int]] = []  # view start, orig start, view len, orig len
        view_pos = 0
        orig_pos = 0
        for m in hide_re.finditer(text):
            start, end = m.span()
            plain = text[orig_pos:start]
            pieces.append(plain)
            view_pos += len(plain)
            decoded = _decode_escape(m.group(0))
            pieces.append(decoded)
            marks.append((view_pos, start, len(decoded), end - start))
            view_pos += len(decoded)
            orig_pos = end
        pieces.append(text[orig_pos:])
        view = "".join(pieces) if marks else text
        if "@" not in view:
            return text
        starts = [mark[0] for mark in marks]

        def to_orig(pos: int, is_end: bool) -> int:
            probe = pos - 1 if is_end else pos
            i = bisect_right(starts, probe) - 1
            if i < 0:
                return pos
            v_start, o_start, v_len, o_len = marks[i]
            if probe < v_start + v_len:
                return o_start + o_len if is_end else o_start
            return pos - (v_start + v_len) + (o_start + o_len)

        out: list[str] = []
        last = 0
        for m in self._pattern.finditer(view):
            new = self._render(m.group(0), is_html)
            if new is None:
                continue
            o_start = to_orig(m.start(), False)
            o_end = to_orig(m.end(), True)
            if o_start < last:
                continue
            out.append(text[last:o_start])
            out.append(new)
            last = o_end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def binary_mentions_known(self, data: bytes) -> bool:
        """Whether a participant's address appears literally in binary content."""
        if not self._names or b"@" not in data:
            return False
        for m in _BYTES_ADDRESS_RE.finditer(data):
            token = m.group(0).decode("ascii").lower()
            for addr in self._by_domain.get(token.rpartition("@")[2], ()):
                if token.endswith(addr):
                    return True
        return False


def scrubber_for(
    people: Iterable[tuple[str, Iterable[str]]], *, keep_domain: str
) -> Scrubber:
    """A scrubber mapping each (display name, addresses) pair's addresses to the name."""
    names: dict[str, str] = {}
    for name, addresses in people:
        for addr in addresses:
            names[addr.strip().lower()] = name
    return Scrubber(names, keep_domain)
