"""Decode mail text under declared charsets that may be wrong, unknown or hostile (R5, R9).

Only real mail charsets are honoured: a fixed allowlist (with the aliases mail
clients send) maps each label to a Python codec. Any other label -- ``utf-7``,
``unicode-escape``, ``raw-unicode-escape``, ``rot13``, ``base64`` ... which
Python would happily accept and which can produce lone surrogates or decode
escape sequences -- is treated as unknown, and the text is decoded by the
fallback chain utf-8, cp1252, latin-1 (latin-1 never fails).

A byte-order mark wins over the declared charset. UTF-16 without a BOM is
recognised by its zero bytes. ``sniff_text`` decides whether undeclared bytes
are text at all (for attachments typed ``application/octet-stream``).
Nothing here returns a string with lone surrogates: ``no_surrogates`` is the
last step of every decode, so encoding the result as UTF-8 can never raise.
"""

from __future__ import annotations

import codecs
import re

FALLBACKS: tuple[str, ...] = ("utf-8", "cp1252")

_ASCII_LABELS = frozenset(
    {
        "usascii",
        "ascii",
        "ansix341968",
        "iso646us",
        "csascii",
        "us",
        "646",
        "iso646irv1991",
        "ibm367",
        "cp367",
        "isoir6",
        "unknown8bit",
        "xunknown",
        "unknown",
        "default",
        "xuserdefined",
    }
)


def _table() -> dict[str, str]:
    table: dict[str, str] = {}

    def add(codec: str, *labels: str) -> None:
        for label in labels:
            table[label] = codec

    add("utf-8", "utf8", "unicode11utf8", "unicode20utf8", "xunicode20utf8")
    add("utf-16", "utf16", "ucs2", "unicode", "csunicode", "iso10646ucs2", "unicodefeff")
    add("utf-16-le", "utf16le", "unicodelittleunmarked")
    add("utf-16-be", "utf16be", "unicodebigunmarked", "unicodefffe")
    add("utf-32", "utf32", "ucs4", "iso10646ucs4")
    add("utf-32-le", "utf32le")
    add("utf-32-be", "utf32be")
    latin = {1: 1, 2: 2, 3: 3, 4: 4, 9: 5, 10: 6, 13: 7, 14: 8, 15: 9, 16: 10}
    for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16):
        add(f"iso8859-{n}", f"iso8859{n}", f"csisolatin{n}")
        if n in latin:
            add(f"iso8859-{n}", f"latin{latin[n]}", f"l{latin[n]}", f"isolatin{latin[n]}")
    add("iso8859-1", "isoir100", "cp819", "ibm819")
    add("iso8859-5", "cyrillic", "isoir144", "csisolatincyrillic")
    add("iso8859-6", "arabic", "iso88596i", "iso88596e", "asmo708", "ecma114")
    add("iso8859-7", "greek", "greek8", "isoir126", "ecma118", "elot928")
    add("iso8859-8", "hebrew", "iso88598i", "iso88598e", "visual", "logical", "isoir138")
    add("cp874", "windows874", "cp874", "tis620", "iso885911", "iso8859-11", "dos874")
    for n in range(1250, 1259):
        add(f"cp{n}", f"windows{n}", f"cp{n}", f"xcp{n}", f"mscp{n}")
    add("cp1252", "ansi", "winlatin1")
    add("koi8-r", "koi8r", "koi8", "cskoi8r", "koi")
    add("koi8-u", "koi8u", "koi8ru")
    add("cp866", "cp866", "ibm866", "866", "csibm866")
    add("cp437", "cp437", "ibm437", "437", "cspc8codepage437")
    add("cp850", "cp850", "ibm850", "850")
    add("cp852", "cp852", "ibm852", "852")
    add("mac-roman", "macintosh", "mac", "macroman", "xmacroman", "csmacintosh")
    add("mac-cyrillic", "xmaccyrillic", "maccyrillic", "xmacukrainian")
    # Chinese: gb2312 and gbk are decoded as their superset gb18030, as browsers do.
    add(
        "gb18030",
        "gb2312",
        "csgb2312",
        "chinese",
        "gbk",
        "cp936",
        "ms936",
        "windows936",
        "xgbk",
        "gb18030",
        "euccn",
        "xeuccn",
        "isoir58",
        "gb231280",
        "csiso58gb231280",
    )
    add("hz", "hzgb2312", "hz")
    add("big5hkscs", "big5", "csbig5", "xxbig5", "big5hkscs", "cnbig5")
    add("cp950", "cp950", "windows950", "ms950")
    # Japanese: Shift_JIS as Microsoft's superset cp932, as mail clients send it.
    add("cp932", "shiftjis", "sjis", "mskanji", "xsjis", "csshiftjis", "windows31j", "cp932", "mscp932", "xmscp932")
    add("euc-jp", "eucjp", "xeucjp", "cseucpkdfmtjapanese", "ujis")
    add("iso2022-jp", "iso2022jp", "csiso2022jp")
    add("iso2022-jp-1", "iso2022jp1")
    add("iso2022-jp-2", "iso2022jp2", "csiso2022jp2")
    add("iso2022-jp-3", "iso2022jp3")
    add("iso2022-jp-ext", "iso2022jpext")
    # Korean: EUC-KR and ks_c_5601-1987 (Outlook) as the superset cp949.
    add(
        "cp949",
        "euckr",
        "cseuckr",
        "ksc56011987",
        "ksc5601",
        "ksc56011989",
        "windows949",
        "cp949",
        "uhc",
        "isoir149",
        "korean",
        "csksc56011987",
    )
    add("iso2022-kr", "iso2022kr", "csiso2022kr")
    return table


_LABELS = _table()
_LABEL_JUNK = re.compile(r"[^a-z0-9]")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SURROGATES = re.compile("[\ud800-\udfff]")
# Control bytes that do not occur in text (tab, LF, FF, CR and ESC for ISO-2022 do).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_BINARY_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_CARD_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*BEGIN:(?:VCALENDAR|VCARD)\b", re.IGNORECASE)


def mail_codec(charset: str | None) -> str | None:
    """The Python codec for a declared mail charset, or None (unknown, ASCII, or not allowed)."""
    if not charset:
        return None
    label = _LABEL_JUNK.sub("", str(charset).strip().strip("\"'").lower())
    if not label or label in _ASCII_LABELS:
        return None
    return _LABELS.get(label)


def no_surrogates(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD (so UTF-8 encoding cannot fail)."""
    if text.isascii() or not _SURROGATES.search(text):
        return text
    return _SURROGATES.sub("\ufffd", text)


def _bom_codec(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None


def utf16_order(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when ``data`` looks like UTF-16 text without a BOM, else None.

    Latin-script UTF-16 has a zero in (nearly) every other byte; one parity
    full of zeros and the other nearly free of them is hard to hit by chance.
    """
    if len(data) < 4:
        return None
    sample = data[:65536]
    half = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.4 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.4 * half and odd <= 0.05 * half:
        return "utf-16-be"
    return None


def _try(data: bytes, codec: str) -> str | None:
    if codec in ("utf-16-le", "utf-16-be") and len(data) % 2:
        data = data[:-1]  # a stray last byte (truncated mail) must not lose the text
    try:
        return data.decode(codec)
    except (LookupError, UnicodeDecodeError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes under a declared charset that may be wrong, unknown or missing.

    A BOM wins; then the declared charset if it is on the allowlist (UTF-16
    without a BOM by its zero bytes), or UTF-16 recognised by its zero bytes if
    none is declared; then utf-8, cp1252 and latin-1.
    """
    candidates: list[str] = []
    bom = _bom_codec(data)
    if bom:
        candidates.append(bom)
    codec = mail_codec(charset)
    if codec in ("utf-16", "utf-32") and not bom:
        codec = (utf16_order(data) or "utf-16-le") if codec == "utf-16" else "utf-32-le"
    if codec:
        candidates.append(codec)
    elif not bom:
        order = utf16_order(data)
        if order:
            candidates.append(order)
    candidates += FALLBACKS
    for candidate in candidates:
        text = _try(data, candidate)
        if text is not None:
            return no_surrogates(text)
    return data.decode("latin-1")


def looks_binary(text: str) -> bool:
    """Whether decoded text holds control characters that text does not."""
    return _BINARY_CHARS.search(text) is not None


def sniff_text(data: bytes) -> str | None:
    """Undeclared bytes decoded as text, or None if they look binary.

    Text is: anything with a Unicode BOM that decodes without control characters,
    an iCalendar or vCard object, or valid UTF-8 without control bytes. UTF-16
    without a BOM is only read as text when the type or name says text
    (:func:`decode_bytes`): binaries are full of zero bytes.
    """
    if not data:
        return None
    bom = _bom_codec(data)
    if bom:
        text = _try(data, bom)
        return None if text is None or _BINARY_CHARS.search(text) else no_surrogates(text)
    if _CARD_START.match(data[:4096]):
        return decode_bytes(data, None)
    if _BINARY_BYTES.search(data):
        return None
    text = _try(data, "utf-8")
    return None if text is None else no_surrogates(text)
