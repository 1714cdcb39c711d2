"""The product KPIs of R14, from the chats' own counters.

Mobilize saw messages in about half the shifts that had a chat, and about a third
of the threads went on after the event. ``kpis()`` gives the same two shares for
this deployment: of the chats that opened, how many carried at least one relayed
message, and how many carried one after their shift ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.models import Base, Chat, ChatStats


@dataclass(frozen=True)
class Kpis:
    chats_opened: int
    with_messages: int
    after_event: int

    @property
    def share_with_messages(self) -> float:
        return self.with_messages / self.chats_opened if self.chats_opened else 0.0

    @property
    def share_after_event(self) -> float:
        return self.after_event / self.chats_opened if self.chats_opened else 0.0


def kpis() -> Kpis:
    """One scan of chat and stats items (an operator report, not a hot path)."""
    opened: set[str] = set()
    messages: dict[str, ChatStats] = {}
    condition = Base.sk.is_in("META", "STATS") & Base.pk.startswith("CH#")
    for item in Chat.scan(condition, attributes_to_get=["pk", "sk", "opened_at"]):
        if item.sk == "META" and item.opened_at is not None:
            opened.add(item.pk)
    for stats in ChatStats.scan(condition & (Base.sk == "STATS")):
        messages[stats.pk] = stats
    return Kpis(
        chats_opened=len(opened),
        with_messages=sum(1 for pk in opened if pk in messages and messages[pk].messages > 0),
        after_event=sum(1 for pk in opened if pk in messages and messages[pk].after_event > 0),
    )
