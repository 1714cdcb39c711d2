"""Plain data the renderer takes: the participants and the chat (no AWS, no models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RemoteContent = Literal["block", "allow"]
REMOTE_CONTENT_MODES: tuple[RemoteContent, ...] = ("block", "allow")


@dataclass(frozen=True)
class Person:
    """A participant: ``key`` is opaque; ``addresses`` are real and only used to scrub."""

    key: str
    display_name: str
    addresses: tuple[str, ...]
    phones: tuple[str, ...] = ()  # E.164, only used to scrub (issue 12)


@dataclass(frozen=True)
class ChatContext:
    chat_id: str
    relay_address: str
    list_name: str
    subject_prefix: str
    # Remote images in HTML: "block" (a placeholder with a link) or "allow";
    # trackers are dropped either way (chalicelib/relay/sanitize.py).
    remote_content: RemoteContent = "block"

    @property
    def relay_domain(self) -> str:
        return self.relay_address.rpartition("@")[2].strip().lower()
