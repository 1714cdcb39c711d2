"""A normalized view of text for finding addresses, mapped back to the original (R5).

Addresses hide in many spellings: HTML entities (``&#64;``, ``&#00000064;``,
``&commat;``), percent-encoding (``%40``), entities of percent-escapes
(``&#37;40``), invisible characters inside the address (soft hyphen, zero-width
space/joiners, word joiner, BOM, bidi marks), compatibility spellings
(``ｂｏｂ＠example.com``, which NFKC folds to ASCII), control characters such as
NUL (``b\x00o\x00b\x00@`` is UTF-16 read as a single-byte charset) and, in
HTML, tags between two halves (``bob@exa<wbr>mple.com``).

:class:`View` decodes all of these into one plain string -- repeatedly, until
nothing changes or :data:`MAX_ROUNDS` rounds have run, so an entity that decodes
to a percent-escape is decoded too -- and remembers, round by round, which span
of the previous text each decoded token came from. A match in the view maps
back to a span of the original text, so the scrubber replaces the original
bytes without decoding and re-encoding the whole document.

:func:`decoded_words` decodes RFC 2047 encoded words (``=?utf-8?b?...?=``),
which belong in headers but can be written into a body.
"""

from __future__ import annotations

import binascii
import html
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

from chalicelib.relay.charsets import decode_bytes

MAX_ROUNDS = 4

# Format characters (Cf: soft hyphen, zero-width space/joiners, word joiner,
# BOM, bidi controls ...) plus the fillers and variation selectors that render
# as nothing but are not Cf.
_INVISIBLE_RE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_ENTITY = r"&#[0-9]{1,32};?|&#[xX][0-9a-fA-F]{1,32};?|&[A-Za-z][A-Za-z0-9]{1,31};?"
_PERCENT = r"(?:%[0-9A-Fa-f]{2})+"
_NON_ASCII = r"[^\x00-\x7f]+"
_TAG = r"<[^<>]{0,2000}>"
_CONTROL = r"[\x00-\x08\x0b\x0e-\x1f\x7f]+"  # NUL and friends render as nothing
TEXT_TOKENS = re.compile(f"{_ENTITY}|{_PERCENT}|{_CONTROL}|{_NON_ASCII}")
HTML_TOKENS = re.compile(f"{_ENTITY}|{_PERCENT}|{_CONTROL}|{_NON_ASCII}|{_TAG}")
_TEXT_ESCAPES = re.compile(f"{_ENTITY}|{_PERCENT}|{_CONTROL}")
_HTML_ESCAPES = re.compile(f"{_ENTITY}|{_PERCENT}|{_CONTROL}|{_TAG}")
# Characters whose presence means an address could be spelled here at all:
# "@" itself, escapes, and the compatibility forms of "@", "%" and "&".
MAY_SPELL_ADDRESS = re.compile("[@&%\ufe6b\uff20\ufe6a\uff05\ufe60\uff06]")


def remove_invisible(text: str) -> str:
    """``text`` without invisible characters (before cleaning turns them into spaces)."""
    return text if text.isascii() else _INVISIBLE_RE.sub("", text)


def normalize_chars(text: str) -> str:
    """NFKC without invisible characters (``ｂｏｂ\u00ad＠x`` -> ``bob@x``)."""
    if text.isascii():
        return text
    text = _INVISIBLE_RE.sub("", text)
    return _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", text))


def needs_char_normalization(text: str) -> bool:
    """Whether NFKC or invisible-character removal would change ``text``."""
    if text.isascii():
        return False
    return not unicodedata.is_normalized("NFKC", text) or _INVISIBLE_RE.search(text) is not None


def _decode(token: str) -> str:
    first = token[0]
    if first < " " or first == "\x7f":
        return ""  # control characters between two halves of an address
    if first == "<":
        return ""  # a tag renders as nothing between two halves of an address
    if first == "%":
        data = bytes.fromhex(token.replace("%", ""))
        try:
            return normalize_chars(data.decode("utf-8"))
        except UnicodeDecodeError:
            return normalize_chars(data.decode("latin-1"))
    if first == "&":
        return normalize_chars(html.unescape(token))
    return normalize_chars(token)


@dataclass(frozen=True)
class _Layer:
    """One decoding round: (view start, previous start, view length, previous length) per token."""

    starts: list[int]
    marks: list[tuple[int, int, int, int]]

    def to_previous(self, pos: int, is_end: bool) -> int:
        probe = pos - 1 if is_end else pos
        i = bisect_right(self.starts, probe) - 1
        if i < 0:
            return pos
        v_start, p_start, v_len, p_len = self.marks[i]
        if probe < v_start + v_len:
            return p_start + p_len if is_end else p_start
        return pos - (v_start + v_len) + (p_start + p_len)


def _round(text: str, tokens: re.Pattern[str]) -> tuple[str, _Layer] | None:
    pieces: list[str] = []
    marks: list[tuple[int, int, int, int]] = []
    view_pos = 0
    prev_pos = 0
    for m in tokens.finditer(text):
        token = m.group(0)
        decoded = _decode(token)
        if decoded == token:
            continue
        start, end = m.span()
        plain = text[prev_pos:start]
        pieces.append(plain)
        view_pos += len(plain)
        pieces.append(decoded)
        marks.append((view_pos, start, len(decoded), end - start))
        view_pos += len(decoded)
        prev_pos = end
    if not marks:
        return None
    pieces.append(text[prev_pos:])
    return "".join(pieces), _Layer([mark[0] for mark in marks], marks)


class View:
    """``original`` decoded to a fixed point; ``to_original`` maps view offsets back."""

    def __init__(self, original: str, *, tags: bool = False) -> None:
        self.text = original
        self._layers: list[_Layer] = []
        for _ in range(MAX_ROUNDS):
            if needs_char_normalization(self.text):
                tokens = HTML_TOKENS if tags else TEXT_TOKENS
            else:
                tokens = _HTML_ESCAPES if tags else _TEXT_ESCAPES
            result = _round(self.text, tokens)
            if result is None:
                break
            self.text, layer = result
            self._layers.append(layer)

    def to_original(self, pos: int, *, is_end: bool) -> int:
        """The original offset of view offset ``pos`` (a start, or an exclusive end).

        A position inside a decoded token maps to that token's start (or end),
        so a replacement always covers whole escapes.
        """
        for layer in reversed(self._layers):
            pos = layer.to_previous(pos, is_end)
        return pos


# An RFC 2047 encoded word; its text has no "?" or whitespace, so no backtracking.
ENCODED_WORD_RE = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")


def decoded_words(text: str) -> str:
    """``text`` with its encoded words decoded, as a reader's client would
    decode a header: whitespace between adjacent words dropped, the bytes of
    adjacent words of one charset decoded together (a character may be split
    between them) under the mail-charset allowlist (``charsets.decode_bytes``:
    ``idna``, ``rot13`` and other codecs no mail uses fall back to utf-8, cp1252,
    latin-1). A word that does not decode stays as written. Stricter than the stdlib's ``decode_header``,
    which puts spaces between parts of different charsets, and linear."""
    pieces: list[str | tuple[bytes, str]] = []
    pos = 0
    for m in ENCODED_WORD_RE.finditer(text):
        gap = text[pos : m.start()]
        if gap and not (gap.isspace() and pieces and isinstance(pieces[-1], tuple)):
            pieces.append(gap)
        charset, kind, data = m.group(1).partition("*")[0].lower(), m.group(2).lower(), m.group(3)
        try:
            if kind == "q":
                raw = binascii.a2b_qp(data.encode("ascii", "replace"), header=True)
            else:
                raw = binascii.a2b_base64(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            pieces.append(m.group(0))
        else:
            last = pieces[-1] if pieces else None
            if isinstance(last, tuple) and last[1] == charset:
                pieces[-1] = (last[0] + raw, charset)
            else:
                pieces.append((raw, charset))
        pos = m.end()
    pieces.append(text[pos:])
    return "".join(p if isinstance(p, str) else decode_bytes(*p) for p in pieces)
