"""Threading (R10): which Muster message a reply answers.

Muster's Message-IDs are ``<message id@relay domain>``. A reply's In-Reply-To
(or last Reference) is resolved through our own id format, the ``ses_id`` index
(SES replaces the Message-ID of every copy it sends, and readers reply citing
that) or the author's own client Message-ID (``REF#``). Foreign ids are dropped;
ids that are not printable ASCII are never looked up or stored.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.models import Delivery, MessageMeta, ThreadRef
from chalicelib.relay.parse import InboundMail

AMAZONSES = ".amazonses.com"
REF_DAYS = 90
CHAIN = 20
_OWN_ID = re.compile(r"^[0-9a-f]{8,40}$")


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def usable_id(msg_id: str) -> bool:
    """A cited Message-ID we may look up and store: printable ASCII only."""
    return msg_id.isascii() and msg_id.isprintable() and len(msg_id) <= 250


class Threads:
    def __init__(self, relay_domain: str) -> None:
        self.relay_domain = relay_domain.lower()

    def muster_id(self, message_id: str) -> str:
        return f"<{message_id}@{self.relay_domain}>"

    def own(self, msg_id: str) -> str | None:
        """The Muster message id inside one of our own Message-IDs, else None."""
        local, _, domain = msg_id.strip("<>").rpartition("@")
        if domain.lower() != self.relay_domain or not _OWN_ID.match(local):
            return None
        return local

    def resolve(self, msg_id: str, chat_id: str) -> str | None:
        """Our own message id for a cited Message-ID, or None if it is foreign."""
        if not usable_id(msg_id):
            return None
        own = self.own(msg_id)
        if own is not None:
            return own
        inner = msg_id.strip("<>")
        local, _, domain = inner.rpartition("@")
        if domain.lower() == self.relay_domain:
            return None  # a kickoff, a notice, or nothing of ours
        if domain.lower().endswith(AMAZONSES):
            for copy in Delivery.ses_index.query(local, limit=1):
                if copy.chat_id == chat_id and not copy.pk.startswith("MSG#kickoff-"):
                    return copy.pk.removeprefix("MSG#")
            return None
        try:
            ref = ThreadRef.get(f"REF#{_short_hash(inner)}", "META")
        except DoesNotExist:
            return None
        return ref.message_id if ref.chat_id == chat_id else None

    def ancestors(self, mail: InboundMail, chat_id: str) -> list[str]:
        """The Muster ids a reply descends from, oldest first, its parent last
        (empty for a new thread). The parent's own ancestry is stored with it,
        so a client that cites only the parent (iOS Mail, Outlook) still gets
        the whole chain."""
        parent = self.resolve(mail.in_reply_to[0], chat_id) if mail.in_reply_to else None
        cited = [local for ref in mail.references if usable_id(ref) and (local := self.own(ref))]
        if parent is None and mail.references and mail.references[-1] not in mail.in_reply_to:
            parent = self.resolve(mail.references[-1], chat_id)
        if parent is None:
            return []
        try:
            meta = MessageMeta.get(f"MSG#{parent}", "META")
            known = [str(a) for a in meta.ancestors] if meta.chat_id == chat_id else cited
        except DoesNotExist:
            known = cited
        return list(dict.fromkeys([a for a in known if a != parent] + [parent]))[-CHAIN:]

    def remember(
        self,
        message_id: str,
        *,
        chat_id: str,
        author_key: str,
        author_hash: str,
        client_id: str | None,
        ancestors: list[str],
    ) -> None:
        """What later replies and every reader's copy need to know of this message."""
        usable = client_id if client_id and usable_id(client_id) else None
        MessageMeta(
            f"MSG#{message_id}",
            "META",
            chat_id=chat_id,
            author_key=author_key,
            author_hash=author_hash,
            client_message_id=usable,
            ancestors=ancestors,
            expires=timedelta(days=REF_DAYS),
        ).save()
        if usable:
            # The author's own client cites this id when they reply to their sent copy.
            ThreadRef(
                f"REF#{_short_hash(usable.strip('<>'))}",
                "META",
                chat_id=chat_id,
                message_id=message_id,
                expires=timedelta(days=REF_DAYS),
            ).save()
