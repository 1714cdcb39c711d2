"""Header names the relay reads or writes, and the part-level safelist (R5)."""

from __future__ import annotations

FROM = "From"
TO = "To"
REPLY_TO = "Reply-To"
SUBJECT = "Subject"
DATE = "Date"
MESSAGE_ID = "Message-ID"
IN_REPLY_TO = "In-Reply-To"
REFERENCES = "References"
MIME_VERSION = "MIME-Version"

LIST_ID = "List-Id"
LIST_POST = "List-Post"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
LIST_UNSUBSCRIBE_POST_VALUE = "List-Unsubscribe=One-Click"

AUTO_SUBMITTED = "Auto-Submitted"
PRECEDENCE = "Precedence"
X_LOOP = "X-Loop"
X_AUTOREPLY = "X-Autoreply"
X_AUTORESPOND = "X-Autorespond"
X_AUTO_RESPONSE_SUPPRESS = "X-Auto-Response-Suppress"

CONTENT_TYPE = "Content-Type"
CONTENT_TRANSFER_ENCODING = "Content-Transfer-Encoding"
CONTENT_DISPOSITION = "Content-Disposition"
CONTENT_ID = "Content-ID"
CONTENT_LANGUAGE = "Content-Language"

# Content headers that may describe an outbound part. Parts are rebuilt fresh:
# the relay derives these values from the inbound part (after cleaning), and
# every other inbound header -- Received, DKIM-Signature, X-*, Message-ID,
# Return-Path, Cc, Bcc, Sender, Reply-To, Thread-Index, Content-Description,
# Content-Location ... -- is dropped. Lower-case for case-insensitive checks.
SAFELIST: frozenset[str] = frozenset(
    h.lower()
    for h in (
        CONTENT_TYPE,
        CONTENT_TRANSFER_ENCODING,
        CONTENT_DISPOSITION,
        CONTENT_ID,
        CONTENT_LANGUAGE,
        MIME_VERSION,
    )
)

# Headers whose presence (with a non-"no" value where it applies) marks
# automatic mail (R7).
AUTO_REPLY_MARKERS: tuple[str, ...] = (X_AUTOREPLY, X_AUTORESPOND)
