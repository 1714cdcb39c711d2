"""Byte-level header surgery that leaves the rest of a message untouched."""

from __future__ import annotations

import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, rest starting with the blank line)."""
    match = _HEADER_END.search(raw)
    return (raw[: match.start()], raw[match.start() :]) if match else (raw, b"")


def remove_header(raw: bytes, name: str) -> tuple[bytes, list[bytes]]:
    """Drop every ``name`` header (with its folded lines); return the message
    and the removed values (unfolded, stripped)."""
    wanted = name.lower().encode()
    head, rest = split_head(raw)
    if wanted not in head.lower():
        return raw, []
    kept: list[bytes] = []
    removed: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the previous header
            if dropping:
                removed[-1] += b" " + line.strip()
            else:
                kept.append(line)
            continue
        field, _, value = line.partition(b":")
        dropping = field.strip().lower() == wanted
        if dropping:
            removed.append(value.strip())
        else:
            kept.append(line)
    return b"".join(kept) + rest, removed


def set_header(raw: bytes, name: str, value: str) -> tuple[bytes, list[bytes]]:
    """Replace every ``name`` header with one ``name: value`` at the top."""
    body, removed = remove_header(raw, name)
    nl = b"\r\n" if b"\r\n" in body[:4000] else b"\n"
    return f"{name}: {value}".encode() + nl + body, removed
