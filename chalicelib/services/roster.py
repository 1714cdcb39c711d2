"""Who is in a chat (R3, R8): the participant reads every service shares.

Kept apart from :mod:`chalicelib.services.chats` (windows and schedules) and
:mod:`chalicelib.services.fanout` (delivery) so that neither imports the other
for these reads: the services form a one-way chain, ``events -> chats ->
fanout -> roster``.

A chat holds one record per role a person has: an organizer who also signs up
for the shift has an organizer record and a signup record with the same
address. R8 wants each person once, so recipients are *people*, keyed by the
normalized address hash, with the organizer record winning (it carries the
role tag and outlives the signup).
"""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.models import Chat, Participant
from chalicelib.settings import Settings, get_settings
from chalicelib.vocab import ACTIVE_STATUSES


def chat_id_from_local(local: str) -> str:
    """The chat id of a relay address's local part (``<slug>-<id>``): the last 16 characters."""
    return local.rsplit("-", 1)[-1]


def relay_address(chat: Chat, settings: Settings | None = None) -> str:
    return f"{chat.relay_local}@{(settings or get_settings()).relay_domain}"


def is_active(p: Participant) -> bool:
    """R3 and R15: an organizer or an active signup, not removed from the chat
    and not blocked across the deployment."""
    if p.removed or p.blocked:
        return False
    return p.role == "organizer" or p.status in ACTIVE_STATUSES


def participants(chat_id: str) -> list[Participant]:
    """All of a chat's participant records in one query (R3 filtering is the caller's)."""
    return list(Participant.query(f"CH#{chat_id}", Participant.sk.startswith("P#"), consistent_read=True))


def _rank(p: Participant) -> tuple[int, int, str]:
    return (0 if p.role == "organizer" else 1, 0 if is_active(p) else 1, p.participant_key)


def canonical(people: Iterable[Participant]) -> dict[str, Participant]:
    """The one record that stands for each person (by address hash): an organizer
    record before a signup, an active record before an inactive one, then the
    lowest key, so every reader of the same records picks the same one."""
    chosen: dict[str, Participant] = {}
    for p in people:
        current = chosen.get(p.address_hash)
        if current is None or _rank(p) < _rank(current):
            chosen[p.address_hash] = p
    return chosen


def email_reachable(p: Participant) -> bool:
    """Follows by mail (``email`` or ``both``) and the address is not suppressed."""
    return p.channel != "sms" and bool(p.email) and not p.suppressed


def sms_reachable(p: Participant) -> bool:
    """Follows by text (``sms`` or ``both``) and the number did not opt out (STOP)."""
    return p.channel in {"sms", "both"} and bool(p.phone) and not p.sms_stopped


def reachable(p: Participant) -> bool:
    """Active, not muted, and reachable on a channel: this record may receive chat messages."""
    return is_active(p) and not p.muted and (email_reachable(p) or sms_reachable(p))


def recipients(people: Iterable[Participant], *, exclude_hash: str | None = None) -> list[Participant]:
    """The people who receive chat mail: one record per address, reachable ones only,
    never anyone with ``exclude_hash`` (the author, under any of their roles)."""
    return sorted(
        (p for h, p in canonical(people).items() if h != exclude_hash and reachable(p)),
        key=lambda p: p.participant_key,
    )
