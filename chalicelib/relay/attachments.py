"""Which parts are text, whatever their declared type (R5).

A part is text -- decoded, scrubbed and re-emitted as UTF-8 -- when any of these
says so:

- its type: ``text/*``, and application types that are text (``application/ics``
  as Google sends invites, ``json``, ``xml``, ``*+xml``, ``*+json``, ``csv``,
  ``vcard``, ``rtf`` ...);
- its file extension (``invite.ics``, ``card.vcf``, ``.txt``, ``.csv``,
  ``.json``, ``.xml``, ``.html`` ... typed ``application/octet-stream``);
- sniffing, unless the type names an opaque format (PDF, images, archives,
  office documents): a BOM, UTF-16 by its zero bytes, ``BEGIN:VCALENDAR`` /
  ``BEGIN:VCARD``, or valid UTF-8 without control bytes.

Calendar, vCard and LDIF content is unfolded before scrubbing (RFC 5545, 6350
and 2849 fold long lines, which can split an address) and folded again after.
"""

from __future__ import annotations

import re

TEXT_APPLICATION_SUBTYPES = frozenset(
    {
        "ics",
        "x-ics",
        "calendar",
        "x-vcalendar",
        "vcalendar",
        "vcard",
        "x-vcard",
        "directory",
        "json",
        "x-json",
        "xml",
        "x-xml",
        "csv",
        "x-csv",
        "tab-separated-values",
        "rtf",
        "x-rtf",
        "javascript",
        "x-javascript",
        "ecmascript",
        "x-sh",
        "x-shellscript",
        "sql",
        "x-sql",
        "yaml",
        "x-yaml",
        "toml",
        "x-toml",
        "x-tex",
        "x-latex",
        "x-ldif",
        "ldif",
        "mbox",
        "x-www-form-urlencoded",
        "x-httpd-php",
        "x-perl",
        "x-python",
        "x-ruby",
        "x-subrip",
        "x-ndjson",
        "ndjson",
        "jsonl",
        "x-desktop",
        "x-ini",
        "x-config",
        "x-patch",
        "x-diff",
        "x-empty",
        "text",
        "plain",
    }
)
TEXT_EXTENSIONS = frozenset(
    {
        "ics",
        "ical",
        "icalendar",
        "ifb",
        "vcs",
        "vcf",
        "vcard",
        "ldif",
        "ldi",
        "txt",
        "text",
        "asc",
        "csv",
        "tsv",
        "tab",
        "json",
        "jsonl",
        "ndjson",
        "xml",
        "html",
        "htm",
        "xhtml",
        "shtml",
        "md",
        "markdown",
        "rst",
        "rtf",
        "log",
        "ini",
        "cfg",
        "conf",
        "yaml",
        "yml",
        "toml",
        "svg",
        "sql",
        "js",
        "mjs",
        "css",
        "tex",
        "srt",
        "vtt",
        "eml",
        "mbox",
        "mime",
        "msg822",
        "sh",
        "bat",
        "ps1",
        "py",
        "rb",
        "pl",
        "php",
        "c",
        "h",
        "java",
        "kml",
        "gpx",
        "opml",
        "rss",
        "atom",
        "properties",
        "env",
        "diff",
        "patch",
        "nfo",
        "me",
        "readme",
    }
)
FOLDED_SUBTYPES = frozenset(
    {"calendar", "ics", "x-ics", "x-vcalendar", "vcalendar", "vcard", "x-vcard", "directory", "x-ldif", "ldif"}
)
FOLDED_EXTENSIONS = frozenset({"ics", "ical", "icalendar", "ifb", "vcs", "vcf", "vcard", "ldif", "ldi"})
OPAQUE_MAINTYPES = frozenset({"image", "audio", "video", "font", "model"})
OPAQUE_APPLICATION_SUBTYPES = frozenset(
    {
        "pdf",
        "zip",
        "x-zip-compressed",
        "gzip",
        "x-gzip",
        "x-tar",
        "x-bzip2",
        "x-xz",
        "x-7z-compressed",
        "x-rar-compressed",
        "vnd.rar",
        "msword",
        "ms-excel",
        "vnd.ms-excel",
        "ms-powerpoint",
        "vnd.ms-powerpoint",
        "postscript",
        "java-archive",
        "x-msdownload",
        "x-dosexec",
        "wasm",
        "vnd.ms-outlook",
        "x-iso9660-image",
        "x-apple-diskimage",
    }
)
_CARD_RE = re.compile(r"\A\ufeff?\s*BEGIN:(?:VCALENDAR|VCARD)\b", re.IGNORECASE)
_FOLD_RE = re.compile(r"\r?\n[ \t]")
FOLD_OCTETS = 75


def extension(filename: str | None) -> str:
    """The lower-cased extension of ``filename`` ("" if none)."""
    if not filename:
        return ""
    _stem, dot, ext = filename.strip().strip(" .").rpartition(".")
    return ext.lower() if dot and 0 < len(ext) <= 12 else ""


def declared_text(maintype: str, subtype: str, ext: str) -> bool:
    """Text by declared type or file extension."""
    if maintype == "text":
        return True
    if maintype == "application" and (subtype in TEXT_APPLICATION_SUBTYPES or subtype.endswith(("+xml", "+json"))):
        return True
    return ext in TEXT_EXTENSIONS


def may_sniff(maintype: str, subtype: str) -> bool:
    """Whether undeclared content of this type may be sniffed as text."""
    if maintype in OPAQUE_MAINTYPES:
        return False
    if subtype in OPAQUE_APPLICATION_SUBTYPES or subtype.startswith(("vnd.openxmlformats", "vnd.oasis")):
        return False
    return not subtype.startswith("vnd.ms-")


def is_folded(subtype: str, ext: str, text: str) -> bool:
    """Calendar/vCard/LDIF content, whose lines are folded."""
    return subtype in FOLDED_SUBTYPES or ext in FOLDED_EXTENSIONS or bool(_CARD_RE.match(text[:200]))


def unfold(text: str) -> str:
    """Content lines joined again (RFC 5545 3.1, RFC 6350 3.2, RFC 2849)."""
    return _FOLD_RE.sub("", text)


def _fold_line(line: str) -> list[str]:
    if line.isascii():
        if len(line) <= FOLD_OCTETS:
            return [line]
        step = FOLD_OCTETS - 1  # a continuation line starts with a space
        return [line[:FOLD_OCTETS]] + [" " + line[i : i + step] for i in range(FOLD_OCTETS, len(line), step)]
    out: list[str] = []
    current: list[str] = []
    size = 0
    for ch in line:
        n = len(ch.encode("utf-8", "replace"))
        if size + n > FOLD_OCTETS:
            out.append("".join(current))
            current, size = [" "], 1
        current.append(ch)
        size += n
    out.append("".join(current))
    return out


def fold(text: str) -> str:
    """Content lines folded at 75 octets, never inside a UTF-8 sequence; CRLF line ends."""
    lines = [piece for line in text.splitlines() for piece in _fold_line(line)]
    return "\r\n".join(lines) + ("\r\n" if text.endswith(("\n", "\r")) else "")
