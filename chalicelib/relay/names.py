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


def clean_name(s: str | None) -> str:
    """A name safe for any header: decoded, no control chars, no structure chars."""
    if not s:
        return ""
    s = decode_encoded_words(str(s))
    chars = []
    for ch in s:
        cat = unicodedata.category(ch)
        if cat in _DROP_CATEGORIES:
            # A line break between two words still separates them.
            chars.append(" " if ch in "\r\n\t\u2028\u2029\x0b\x0c\x85" else "")
        else:
            chars.append(ch)
    s = _BREAKING.sub("", "".join(chars))
    s = _SPACE.sub(" ", s).strip()
    return s[:MAX_NAME_LENGTH].strip()


def display_name(first: str | None, last: str | None, *, organizer: bool = False) -> str:
    """``Jane D.``, ``Jane`` without a last name, ``Jane D. (organizer)`` for organizers."""
    first_clean = clean_name(first)
    last_clean = clean_name(last)
    name = first_clean or FALLBACK_NAME
    initial = next((ch for ch in last_clean if ch.isalnum()), "")
    if first_clean and initial:
        name = f"{name} {initial.upper()}."
    if organizer:
        name = f"{name} {ORGANIZER_TAG}"
    return name
