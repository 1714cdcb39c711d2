"""Per-reader threading headers (R10): pure, cheap, per copy.

SES replaces the Message-ID of every copy it sends, so each reader holds each
message under *their* copy's id (``<SES id@email.amazonses.com>``), or, for what
they wrote themselves, under their own client's Message-ID. A reader's client
threads a reply only if the reply cites an id that client has seen. So each
copy's

- ``In-Reply-To`` is the id under which *this reader* holds the parent, or the
  parent's Muster id when they hold none (they joined later, their copy bounced,
  the lookup was beyond the bound);
- ``References`` is the ancestry, oldest first: for each ancestor its Muster id
  (stable for everyone: References-based threaders still group the thread when a
  lookup misses) and then this reader's id for it, ending with the copy's own
  Muster id, so that even a root copy carries the id every later reply cites
  (as bugzilla.mozilla.org does for the same SES behaviour).

References is bounded: the first id (the root) and the newest ones are kept
(RFC 5322 section 3.6.4's advice), and the header is folded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

MAX_REFERENCES = 24
_ID = re.compile(r"^<[!-;=?-~]{1,250}>$")  # printable ASCII without < and >


def ses_id_domain(region: str) -> str:
    """The domain SES gives the Message-IDs it sets (``email.amazonses.com`` in us-east-1)."""
    return "email.amazonses.com" if region == "us-east-1" else f"{region}.amazonses.com"


def reader_headers(
    *,
    own: str,
    ancestors: Sequence[str],
    reader_ids: Mapping[str, str],
    relay_domain: str,
) -> tuple[str | None, list[str]]:
    """``(In-Reply-To, References)`` for one reader's copy.

    ``own`` and ``ancestors`` (oldest first, the parent last) are Muster message
    ids; ``reader_ids`` maps an ancestor to the Message-ID under which this
    reader holds it (only the ancestors that were looked up and found).
    """

    def muster(message_id: str) -> str:
        return f"<{message_id}@{relay_domain}>"

    def held(message_id: str) -> str | None:
        found = reader_ids.get(message_id)
        return found if found and _ID.match(found) else None

    references: list[str] = []
    for ancestor in ancestors:
        references.append(muster(ancestor))
        if (mine := held(ancestor)) is not None:
            references.append(mine)
    references.append(muster(own))
    references = list(dict.fromkeys(references))
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    parent = ancestors[-1] if ancestors else None
    in_reply_to = None if parent is None else held(parent) or muster(parent)
    return in_reply_to, references


def header_block(in_reply_to: str | None, references: Sequence[str]) -> bytes:
    """The two header fields as raw bytes, References folded one id per line."""
    lines = []
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}\r\n")
    if references:
        lines.append("References: " + "\r\n ".join(references) + "\r\n")
    return "".join(lines).encode("ascii")
