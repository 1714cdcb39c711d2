"""Display names (R4): cleaned so header injection and spoofed roles are impossible."""

from __future__ import annotations

import re
import unicodedata
from email.header import decode_header, make_header

MAX_NAME_LENGTH = 64
FALLBACK_NAME = "Participant"
ORGANIZER_TAG = "(organizer)"

# Characters that would end or restructure a display name in a header, plus the
# brackets a sender could use to fake a role tag like "(organizer)".
_BREAKING = re.compile(r"[<>\"@,;:\\()\[\]]")
_SPACE = re.compile(r"\s+")
# Control, format (bidi overrides, zero-width), line/paragraph separators, surrogates.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def decode_encoded_words(s: str) -> str:
    """RFC 2047 encoded words decoded; the input unchanged if they are malformed."""
    if "=?" not in s:
        return s
    try:
        return str(make_header(decode_header(s)))
    except Exception:
        return s


def _drop(s: str) -> str:
    """Control and format characters gone (a line break becomes a space), spaces collapsed."""
    chars = []
    for ch in s:
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            # A line break between two words still separates them.
            chars.append(" " if ch in "\r\n\t\u2028\u2029\x0b\x0c\x85" else "")
        else:
            chars.append(ch)
    return _SPACE.sub(" ", "".join(chars)).strip()


def _clean(s: str) -> str:
    return _SPACE.sub(" ", _BREAKING.sub("", _drop(s))).strip()


def clean_plain(s: str | None, limit: int = MAX_NAME_LENGTH) -> str:
    """:func:`clean_name` without its one exception: no brackets at all, so no role tag."""
    if not s:
        return ""
    return _clean(decode_encoded_words(str(s)))[:limit].strip()


def _tagged(name: str) -> str:
    """``name (organizer)``, the name shortened so the tag always fits."""
    base = name[: MAX_NAME_LENGTH - len(ORGANIZER_TAG) - 1].strip()
    return f"{base} {ORGANIZER_TAG}"


def clean_name(s: str | None) -> str:
    """A name safe for any header: decoded, no control chars, no structure chars.

    The one exception is a trailing `` (organizer)`` tag, which is kept as it is:
    names reach here from :func:`display_name`, which never lets a person's own
    text carry brackets, so only Muster writes that tag. Keeping it means one
    display form everywhere (From, footers, the kickoff): ``Olivia O. (organizer)``.
    """
    if not s:
        return ""
    text = _drop(decode_encoded_words(str(s)))
    suffix = " " + ORGANIZER_TAG
    if text.endswith(suffix):
        base = _clean(text[: -len(suffix)])
        if base:
            return _tagged(base)
    return _clean(text)[:MAX_NAME_LENGTH].strip()


def without_tag(name: str) -> str:
    """``Olivia O.`` for ``Olivia O. (organizer)``: the name to greet someone by."""
    suffix = " " + ORGANIZER_TAG
    return name[: -len(suffix)].rstrip() if name.endswith(suffix) else name


def display_name(first: str | None, last: str | None, *, organizer: bool = False) -> str:
    """``Jane D.``, ``Jane`` without a last name, ``Jane D. (organizer)`` for organizers.

    A person's own text never carries brackets (so never a role tag): only
    ``organizer=True`` adds one. The result is what :func:`clean_name` returns
    for it, so cleaning it again anywhere keeps it as it is.
    """
    first_clean = clean_plain(first)
    last_clean = clean_plain(last)
    name = first_clean or FALLBACK_NAME
    initial = next((ch for ch in last_clean if ch.isalnum()), "")
    if first_clean and initial:
        name = f"{name} {initial.upper()}."
    name = name[:MAX_NAME_LENGTH].strip()
    return _tagged(name) if organizer else name
