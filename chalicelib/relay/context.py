"""Plain data the renderer takes: the participants and the chat (no AWS, no models)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """A participant: ``key`` is opaque; ``addresses`` are real and only used to scrub."""

    key: str
    display_name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ChatContext:
    chat_id: str
    relay_address: str
    list_name: str
    subject_prefix: str

    @property
    def relay_domain(self) -> str:
        return self.relay_address.rpartition("@")[2].strip().lower()
