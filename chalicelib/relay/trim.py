"""Talon-style trimming of a reply's quoted history and signature (issue 12: the
text of an SMS copy). Pure: stdlib only.

Cut, on the text part (or HTML's visible text without its quote containers):
``>`` lines, "On … wrote:" and its localized spellings (also wrapped over two
lines, as Android and Thunderbird do), "-----Original Message-----", Outlook's
From:/Sent: header blocks (localized too), "date, name <address>:" attributions
(Yandex, Mail.ru), and signatures (``-- ``, "Sent from my …"). A bottom-posted
reply (the quote first) keeps what follows the quote. Table-tested on real
clients' replies (``tests/fixtures/real-clients``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_WROTE = re.compile(
    r"(wrote|writes|написал[аи]?|a écrit|schrieb|escribió|ha scritto|schreef|skrev|kirjoitti)\s*:\s*$", re.IGNORECASE
)
_ATTRIBUTION_START = re.compile(r"^\s*(On|Le|Am|El|Il|Op|Den|På)\s|^\s*\d{1,4}[./-]\d{1,2}[./-]\d{2,4}", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(Original Message|Forwarded message|Исходное сообщение|Ursprüngliche Nachricht|Message d'origine)"
    r"\s*-{2,}|_{10,}\s*$|-{3,}\s*On\s.*wrote:)",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"^(--\s*|Sent from my \S.*|Sent with \S.*|Get Outlook for \S.*|Envoyé de mon \S.*|Von meinem \S.* gesendet)$",
    re.IGNORECASE,
)
_HEADER_FIRST = re.compile(r"^\s*\*?(From|De|Von|От|Van|Da|Date|Från|Fra)\s*:\*?(\s|$)", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(Sent|Date|To|Subject|Cc|On Behalf Of|Кому|Тема|Отправлено|Дата|An|Gesendet|Betreff|Envoyé|À|Objet|"
    r"Datum|Onderwerp|Aan|Verzonden|Inviato|Oggetto|A|Skickat|Ämne|Till|From)\s*:?\*?(\s|:|$)",
    re.IGNORECASE,
)
_DATED_ADDRESS_COLON = re.compile(r"\d{1,2}[:.]\d{2}.*[<@].*:\s*$")


def _is_header_block(lines: list[str], i: int) -> bool:
    if not _HEADER_FIRST.match(lines[i]):
        return False
    nxt = [line for line in lines[i + 1 : i + 5] if line.strip()]
    return any(_HEADER_NEXT.match(line) for line in nxt[:3])


def _cut_at(lines: list[str]) -> int | None:
    """The index of the first line of quoted history or a signature, if any."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if _SEPARATOR.match(line) or _SIGNATURE.match(line.rstrip()) or _is_header_block(lines, i):
            return i
        if _WROTE.search(stripped) or (_DATED_ADDRESS_COLON.search(stripped) and not stripped.startswith(">")):
            start = i
            if (
                i > 0
                and lines[i - 1].strip()
                and _ATTRIBUTION_START.match(lines[i - 1])
                and not _ATTRIBUTION_START.match(line)
            ):
                start = i - 1  # "On Mon, … Bob <" / "bob@example.com> wrote:"
            return start
        if stripped.startswith(">") and all(not x.strip() or x.lstrip().startswith(">") for x in lines[i:]):
            return i
    return None


def _clean(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def trim_reply(text: str) -> str:
    """The new text of a reply: quoted history and signatures cut (talon-style)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _cut_at(lines)
    if cut is None:
        unquoted = [line for line in lines if not line.lstrip().startswith(">")]
        return _clean(unquoted) or _clean(lines)
    head = _clean(lines[:cut])
    if head:
        return head
    # Bottom-posted: the quote came first. Keep what follows the quoted lines.
    rest = lines[cut + 1 :]
    while rest and (not rest[0].strip() or rest[0].lstrip().startswith(">") or _WROTE.search(rest[0])):
        rest.pop(0)
    after = trim_reply("\n".join(rest)) if rest else ""
    return after or _clean([line for line in lines if not line.lstrip().startswith(">")])


class _HtmlText(HTMLParser):
    """Visible text of HTML, without quoted history (blockquotes, Gmail's and
    Thunderbird's quote containers, Outlook's reply header)."""

    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr"})
    _VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr"})
    _QUOTE_CLASSES = ("gmail_quote", "moz-cite-prefix", "yahoo_quoted", "divrplyfwdmsg")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip: list[str] = []  # open tags whose content is skipped

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            if tag in self._BLOCK and not self._skip:
                self.out.append("\n")
            return
        if self._skip:
            self._skip.append(tag)
            return
        marks = " ".join((v or "") for k, v in attrs if k in {"class", "id"}).lower()
        if tag in {"blockquote", "style", "script", "head", "title"} or any(c in marks for c in self._QUOTE_CLASSES):
            self._skip.append(tag)
            return
        if tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            self._skip.pop()
            return
        if tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    lines = [line.strip().replace("\u200e", "") for line in "".join(parser.out).split("\n")]
    return "\n".join(line for line in lines if line)
