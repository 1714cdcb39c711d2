"""Find and replace email addresses in text and HTML, and spot them in binaries (R5).

Text: normalize, then scrub. The scrubber matches on a normalized *view* of the
text (:class:`~chalicelib.relay.normalize.View`: entities of any length,
percent-escapes, entities of percent-escapes, NFKC compatibility forms and
invisible characters all decoded) and maps every match back to its span in the
original, so one pass handles every spelling. HTML is scrubbed twice: first
without removing tags (addresses inside ``href`` values), then with tags
removed from the view (``bob@exa<wbr>mple.com``).

Known participants' addresses (also ``+tag`` variants) become their display
names; every other address-looking token becomes ``[address hidden]``; only
addresses at exactly the relay domain (the chat address, Muster's own
Content-IDs) are kept -- ``bob@example.com.<relay domain>`` is not.

Binaries: :meth:`Scrubber.binary_mentions_known` finds participants' addresses
in opaque bytes -- any case, ``+tag`` variants, ASCII and UTF-16LE/BE -- with a
constant number of set lookups per address-like token, so the cost is linear in
the attachment size whatever the number of participants.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping

from chalicelib.relay.normalize import ENCODED_WORD_RE, MAY_SPELL_ADDRESS, View, decoded_words
from chalicelib.relay.placeholders import strip_placeholders

HIDDEN = "[address hidden]"
HIDDEN_TEXT = "[encoded text hidden]"
MAX_WORD_DEPTH = 8  # encoded words decoded inside encoded words, at most
FALLBACK_NAME = "Participant"
# The lookbehind lets a match start only where a run of local-part characters
# starts; without it a long run with no "@" is rescanned from every position
# (quadratic: a 100 KB base64 data: URI would take minutes).
_LOCAL = r"(?<![\w.+-])[\w.+-]+"
_DOMAIN = r"[\w-]+(?:\.[\w-]+)+"
GENERIC_ADDRESS = _LOCAL + "@" + _DOMAIN
_GENERIC_RE = re.compile(GENERIC_ADDRESS)

# Binary content: RFC 5322 atext in the local part, ASCII, UTF-16LE and UTF-16BE.
_ATEXT = rb"A-Za-z0-9!#$%&'*+/=?^_`{|}~.-"
_DTEXT = rb"A-Za-z0-9-"
_BYTES_ADDRESS_RE = re.compile(
    rb"(?<![" + _ATEXT + rb"])([" + _ATEXT + rb"]+)@([" + _DTEXT + rb"]+(?:\.[" + _DTEXT + rb"]+)+)"
)
_UTF16LE_ADDRESS_RE = re.compile(
    rb"(?<![" + _ATEXT + rb"]\x00)((?:[" + _ATEXT + rb"]\x00)+)@\x00"
    rb"((?:[" + _DTEXT + rb"]\x00)+(?:\.\x00(?:[" + _DTEXT + rb"]\x00)+)+)"
)
_UTF16BE_ADDRESS_RE = re.compile(
    rb"(?<!\x00[" + _ATEXT + rb"])((?:\x00[" + _ATEXT + rb"])+)\x00@"
    rb"((?:\x00[" + _DTEXT + rb"])+(?:\x00\.(?:\x00[" + _DTEXT + rb"])+)+)"
)
_MAX_TAG = 1024  # a "+tag" longer than this is not looked behind


class _KnownIndex:
    """Participants' addresses by domain, for suffix/prefix lookups in binary tokens."""

    def __init__(self, addresses: Iterable[str]) -> None:
        self.locals: dict[str, frozenset[str]] = {}
        self.local_lengths: dict[str, tuple[int, ...]] = {}
        by_domain: dict[str, set[str]] = {}
        for addr in addresses:
            local, at, domain = addr.rpartition("@")
            if at and local and domain and addr.isascii():
                by_domain.setdefault(domain, set()).add(local)
        for domain, locals_ in by_domain.items():
            self.locals[domain] = frozenset(locals_)
            self.local_lengths[domain] = tuple(sorted({len(x) for x in locals_}))
        self.domain_lengths = tuple(sorted({len(d) for d in by_domain}))

    def mentions(self, local: str, domain: str) -> bool:
        """Whether ``local@domain`` (lower-case) spells a known address.

        Bytes around an address in a binary often look like address characters,
        so a known address counts when it is a *suffix* of the token's local part
        (or of the part before any ``+``) and a *prefix* of its domain.
        """
        for n in self.domain_lengths:
            if n > len(domain):
                break
            known = self.locals.get(domain[:n])
            if known is None:
                continue
            lengths = self.local_lengths[domain[:n]]
            candidates = [local]
            plus = local.find("+", max(0, len(local) - _MAX_TAG))
            while plus >= 0:
                candidates.append(local[:plus])
                plus = local.find("+", plus + 1)
            for candidate in candidates:
                for m in lengths:
                    if m > len(candidate):
                        break
                    if candidate[-m:] in known:
                        return True
        return False


# Phone numbers (R5, issue 12): a run of digits with the separators people type
# (spaces, dots, dashes, slashes, parentheses), optionally after "+".
# A number starts where no word goes on into it, or at its "+" right after a
# letter: an attachment name loses the ":" of "tel:+1202..." to the name rules.
_PHONE_RE = re.compile(r"(?:(?<![\w+])|(?<=[^\W\d_])(?=\+))\+?\(?\d[\d \t.()/\u00a0-]{5,28}\d(?![\w])")
_PHONE_TAIL = 7  # digits every spelling of a number ends with
_DIGITS_RE = re.compile(r"\d+")
_SEVEN_DIGITS_RE = re.compile(r"(?:\d\D{0,3}){7}")
_TOKEN_TAIL_RE = re.compile(r"[^\s<>]*")
_SPACE_RE = re.compile(r"\s+")


class _Phones:
    """Known participants' numbers (E.164) and the spellings that name them:
    the international form (``+1…``, ``001…``, ``0111…``) and a national one
    (the number without a country code of up to 3 digits, after an optional
    trunk ``0`` or ``1``)."""

    def __init__(self, numbers: Mapping[str, str]) -> None:
        self.names: dict[str, str] = {}
        self.by_tail: dict[str, list[str]] = {}
        for number, name in numbers.items():
            digits = re.sub(r"\D", "", number)
            if len(digits) >= _PHONE_TAIL:
                self.names[digits] = name
                self.by_tail.setdefault(digits[-_PHONE_TAIL:], []).append(digits)

    def name(self, token: str) -> str | None:
        digits = re.sub(r"\D", "", token)
        tries = [digits]
        for prefix in ("00", "011", "0", "1"):
            if digits.startswith(prefix):
                tries.append(digits[len(prefix) :])
        for d in tries:
            if len(d) < _PHONE_TAIL:
                continue
            for known in self.by_tail.get(d[-_PHONE_TAIL:], ()):
                if known.endswith(d) and len(known) - len(d) <= 3:
                    return self.names[known]
        return None

    def named_spans(self, token: str) -> list[tuple[int, int, str]]:
        """The known numbers in a run of digits and separators: ``(start, end,
        name)`` within ``token``. The whole run if it names one; otherwise the
        longest runs of whole digit groups that do, left to right, so a number
        next to other figures ("call 415-555-0101 5 pm", "415 555 0101 2025550143")
        is still found."""
        name = self.name(token)
        if name is not None:
            return [(0, len(token), name)]
        groups = [(g.start(), g.end()) for g in _DIGITS_RE.finditer(token)]
        found: list[tuple[int, int, str]] = []
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                start, end = groups[i][0], groups[j - 1][1]
                while start > 0 and token[start - 1] in "+(":
                    start -= 1
                name = self.name(token[start:end])
                if name is not None:
                    if token.count("(", start, end) > token.count(")", start, end) and token[end : end + 1] == ")":
                        end += 1
                    found.append((start, end, name))
                    i = j
                    break
            else:
                i += 1
        return found


def _splice(text: str, replacements: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, new)`` span replaced, in order; a span
    that starts inside one already replaced is skipped."""
    out: list[str] = []
    last = 0
    for start, end, new in replacements:
        if start < last:
            continue
        out.append(text[last:start])
        out.append(new)
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


class Scrubber:
    """Replaces addresses in text; build once per message, use for every part."""

    def __init__(self, names: Mapping[str, str], keep_domain: str, phones: Mapping[str, str] | None = None) -> None:
        self._phones = _Phones(
            {n: strip_placeholders(name).strip() or FALLBACK_NAME for n, name in (phones or {}).items()}
        )
        self._names = {
            addr.lower(): strip_placeholders(name).strip() or FALLBACK_NAME for addr, name in names.items() if addr
        }
        self._keep_domain = keep_domain.lower()
        # Addresses the generic pattern cannot match whole (quotes, odd characters)
        # are matched literally first; the rest are found by the generic pattern and
        # looked up, so the cost does not grow with the number of participants.
        odd = sorted((a for a in self._names if not _GENERIC_RE.fullmatch(a)), key=len, reverse=True)
        alternatives = [re.escape(a) + r"(?![\w-]|\.[\w-])" for a in odd]
        alternatives.append(GENERIC_ADDRESS)
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)
        self._known = _KnownIndex(self._names)

    def _known_name(self, key: str) -> str | None:
        name = self._names.get(key)
        if name is not None:
            return name
        local, _, domain = key.rpartition("@")
        plus = local.find("+")
        while plus > 0:  # "bob+shifts@example.com" is bob
            name = self._names.get(f"{local[:plus]}@{domain}")
            if name is not None:
                return name
            plus = local.find("+", plus + 1)
        return None

    def replacement(self, token: str) -> str | None:
        """What an address-looking token becomes; None to keep it."""
        key = token.lower()
        name = self._known_name(key)
        if name is not None:
            return name
        # "jane@example.org.pdf": a known address followed by a file extension.
        stem, dot, ext = key.rpartition(".")
        if dot and 0 < len(ext) <= 5 and ext.isalnum():
            name = self._known_name(stem)
            if name is not None:
                return name + token[len(stem) :]
        if key.rpartition("@")[2] == self._keep_domain:
            return None
        return HIDDEN

    def scrub(self, text: str, *, is_html: bool = False) -> str:
        """``text`` with every address replaced (HTML-escaped names when ``is_html``)."""
        return self._scrub(text, is_html=is_html, depth=0)

    def _scrub(self, text: str, *, is_html: bool, depth: int) -> str:
        if "=?" in text:
            text = self._scrub_encoded_words(text, is_html=is_html, depth=depth)
        text = self._scrub_view(text, tags=False, is_html=is_html)
        if is_html:
            text = self._scrub_view(text, tags=True, is_html=is_html)
        if self._phones.names:
            text = self._scrub_phones(text, tags=False, is_html=is_html)
            if is_html:
                text = self._scrub_phones(text, tags=True, is_html=is_html)
        return text

    def _scrub_encoded_words(self, text: str, *, is_html: bool, depth: int) -> str:
        """RFC 2047 encoded words belong in headers, but a body can carry them
        too ("=?utf-8?b?YW5u...?="), and a reader who decodes one must not find
        an address or a number in it. Each token holding encoded words (up to
        whitespace; adjacent words are one text, as in a header) is decoded;
        if that names anyone, the token becomes its scrubbed decoded text,
        otherwise it stays as written. Linear in the text. Words inside words
        are decoded up to ``MAX_WORD_DEPTH`` levels (no client nests them at
        all); a token still holding encoded words below that is hidden."""
        return _splice(text, self._encoded_word_replacements(text, is_html=is_html, depth=depth))

    def _encoded_word_replacements(self, text: str, *, is_html: bool, depth: int) -> Iterator[tuple[int, int, str]]:
        last = 0  # end of the previous token
        pos = 0
        while True:
            m = ENCODED_WORD_RE.search(text, pos)
            if m is None:
                break
            start = m.start()
            while start > last and not text[start - 1].isspace() and text[start - 1] not in "<>":
                start -= 1
            end = _TOKEN_TAIL_RE.match(text, m.end()).end()  # type: ignore[union-attr]
            while True:  # adjacent words, whitespace between them
                gap = _SPACE_RE.match(text, end)
                nxt = ENCODED_WORD_RE.match(text, gap.end()) if gap else None  # type: ignore[union-attr]
                if nxt is None:
                    break
                end = _TOKEN_TAIL_RE.match(text, nxt.end()).end()  # type: ignore[union-attr]
            pos = end
            token = text[start:end]
            decoded = decoded_words(token)
            if decoded == token:
                continue  # no word in it decodes: the passes after this one see it all
            if not (MAY_SPELL_ADDRESS.search(decoded) or _SEVEN_DIGITS_RE.search(decoded) or "=?" in decoded):
                continue
            if depth >= MAX_WORD_DEPTH and ENCODED_WORD_RE.search(decoded):
                scrubbed = HIDDEN_TEXT
            else:
                scrubbed = self._scrub(decoded, is_html=False, depth=depth + 1)  # "=?": a word inside a word
                if scrubbed == decoded:
                    continue
            yield start, end, html.escape(scrubbed, quote=True) if is_html else scrubbed
            last = end

    def _scrub_phones(self, text: str, *, tags: bool, is_html: bool) -> str:
        """Participants' phone numbers, in any common spelling, become their names."""
        view = View(text, tags=tags)
        return _splice(
            text,
            (
                (
                    view.to_original(m.start() + start, is_end=False),
                    view.to_original(m.start() + end, is_end=True),
                    html.escape(name, quote=True) if is_html else name,
                )
                for m in _PHONE_RE.finditer(view.text)
                for start, end, name in self._phones.named_spans(m.group(0))
            ),
        )

    def _render(self, token: str, is_html: bool) -> str | None:
        new = self.replacement(token)
        if new is None or not is_html:
            return new
        return html.escape(new, quote=True)

    def _scrub_view(self, text: str, *, tags: bool, is_html: bool) -> str:
        if not MAY_SPELL_ADDRESS.search(text):
            return text
        view = View(text, tags=tags)
        if "@" not in view.text:
            return text
        return _splice(
            text,
            (
                (view.to_original(m.start(), is_end=False), view.to_original(m.end(), is_end=True), new)
                for m in self._pattern.finditer(view.text)
                if (new := self._render(m.group(0), is_html)) is not None
            ),
        )

    def binary_mentions_known(self, data: bytes) -> bool:
        """Whether a participant's address appears in binary content.

        Any case, ``+tag`` variants, ASCII or UTF-16 (LE or BE, either alignment).
        """
        if not self._known.locals:
            return False
        searches = []
        if b"@" in data:
            searches.append((_BYTES_ADDRESS_RE, False))
        if b"@\x00" in data:
            searches.append((_UTF16LE_ADDRESS_RE, True))
        if b"\x00@" in data:
            searches.append((_UTF16BE_ADDRESS_RE, True))
        for pattern, wide in searches:
            for m in pattern.finditer(data):
                local, domain = m.group(1), m.group(2)
                if wide:
                    local, domain = local.replace(b"\x00", b""), domain.replace(b"\x00", b"")
                if self._known.mentions(local.lower().decode("ascii"), domain.lower().decode("ascii")):
                    return True
        return False


def scrubber_for(
    people: Iterable[tuple[str, Iterable[str]]],
    *,
    keep_domain: str,
    phones: Iterable[tuple[str, Iterable[str]]] = (),
) -> Scrubber:
    """A scrubber mapping each (display name, addresses) pair's addresses to the
    name, and each (display name, E.164 numbers) pair's numbers too."""
    names: dict[str, str] = {}
    for name, addresses in people:
        for addr in addresses:
            names[addr.strip().lower()] = name
    numbers = {number: name for name, numbers_ in phones for number in numbers_}
    return Scrubber(names, keep_domain, numbers)
