"""The product KPIs (R14, issue 11), kept on write: no scan anywhere.

Mobilize saw messages in about half the shifts that had a chat, and about a third
of the threads went on after the event. Each chat has one counter item,
``CH#<chat>``/``KPI`` (:class:`~chalicelib.models.ChatKpi`), updated atomically
where each fact happens:

- the chat opens (``chats._after_open``): ids, ``opened_at`` (the first opening;
  ``if_not_exists``), and its listing ``KPI#<integration>``/``OPEN#<day>#CH#<chat>``
  (:class:`~chalicelib.models.KpiDay`) under the day it first opened;
- a kickoff is queued (``fanout.kickoff``): the people in ``members``;
- a message is relayed (``relay._finish``): ``ADD messages 1``, the author in
  ``posters``, ``after_event`` when past the shift's end, ``first_message_at``
  (``if_not_exists``) -- in the transaction that marks the log entry done on the
  condition that it was still relaying, so a retried relay counts nothing twice;
- mute, leave (``people``): the person in ``muted``/``left``;
- a referral is attributed (``referrals``): the new signup in ``referred``.

Sets of participant keys make every "distinct" count idempotent: adding a key
twice counts it once. ``GET /kpis`` is one Query of the integration's partition
over the day range (filtered by event) plus BatchGets of the chats' items.

Statistics: the median is the middle value (the mean of the two middle ones for
an even count); p90 is the nearest-rank 90th percentile (the value at rank
ceil(0.9 n) of the sorted values). Rates are over the chats in range: muted (ever)
/ members, left / members, referred who posted / referred.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pynamodb.expressions.update import Action

from chalicelib.models import Chat, ChatKpi, KpiDay

MAX_DAYS = 366
# The listing's sort key prefix. The partition also holds the next-steps click counters
# (``D#<day>#CH#<chat>#L#<step>``, services/nextsteps.py): a prefix of its own keeps them apart.
OPEN = "OPEN#"


def _item(chat_id: str) -> ChatKpi:
    return ChatKpi(f"CH#{chat_id}", "KPI")


# -- on write -----------------------------------------------------------------------


def opened(chat: Chat, now: datetime) -> datetime:
    """The chat opened (again): keep its first opening and list it under that day."""
    item = _item(chat.chat_id)
    item.update(
        actions=[
            ChatKpi.integration.set(chat.integration),
            ChatKpi.event_id.set(chat.event_id),
            ChatKpi.timeslot_id.set(chat.timeslot_id),
            ChatKpi.ends_at.set(chat.ends_at),
            ChatKpi.opened_at.set(ChatKpi.opened_at | now),
        ]
    )
    first = item.opened_at or now
    KpiDay(
        f"KPI#{chat.integration}",
        f"{OPEN}{first:%Y-%m-%d}#CH#{chat.chat_id}",
        chat_id=chat.chat_id,
        event_id=chat.event_id,
        timeslot_id=chat.timeslot_id,
    ).save()
    return first


def joined(chat_id: str, keys: Iterable[str]) -> None:
    """These people were sent (queued) the kickoff."""
    wanted = set(keys)
    if wanted:
        _item(chat_id).update(actions=[ChatKpi.members.add(wanted)])


def relayed_actions(author_key: str, now: datetime, *, after_event: bool) -> list[Action]:
    """What one relayed message adds (for the relay's finishing transaction)."""
    actions: list[Action] = [
        ChatKpi.messages.add(1),
        ChatKpi.posters.add({author_key}),
        ChatKpi.first_message_at.set(ChatKpi.first_message_at | now),
    ]
    if after_event:
        actions.append(ChatKpi.after_event.add(1))
    return actions


def relayed_item(chat_id: str) -> ChatKpi:
    return _item(chat_id)


def _add(chat_id: str, attribute: str, key: str) -> ChatKpi:
    item = _item(chat_id)
    item.update(actions=[getattr(ChatKpi, attribute).add({key})])
    return item


def muted(chat_id: str, key: str) -> ChatKpi:
    return _add(chat_id, "muted", key)


def left(chat_id: str, key: str) -> ChatKpi:
    item = _item(chat_id)
    item.update(actions=[ChatKpi.left.add({key}), ChatKpi.muted.add({key})])
    return item


def referred(chat_id: str, key: str) -> ChatKpi:
    return _add(chat_id, "referred", key)


# -- on read ------------------------------------------------------------------------


def _clicks(integration: str, start: date, end: date, event_id: str | None) -> dict[str, dict[str, int]]:
    """Next-step clicks, chat id -> step id -> clicks (issue 11 item 4).

    The one seam to the next-steps service (branch ``steps``):
    ``chalicelib.services.nextsteps.clicks``. Until it is merged there is nothing
    to count."""
    try:
        from chalicelib.services import nextsteps  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return {}
    return dict(nextsteps.clicks(integration, start, end, event_id))


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(0.9 * len(ordered)), 1) - 1])


@dataclass(frozen=True)
class ChatRow:
    chat_id: str
    event_id: str
    timeslot_id: str
    opened_on: str
    opened_at: datetime | None
    messages: int
    after_event: int
    posters: frozenset[str]
    first_message_seconds: float | None
    members: frozenset[str]
    muted: frozenset[str]
    left: frozenset[str]
    referred: frozenset[str]
    clicks: dict[str, int] = field(default_factory=dict)

    @property
    def referred_posted(self) -> int:
        return len(self.referred & self.posters)


@dataclass(frozen=True)
class Kpis:
    start: date
    end: date
    event_id: str | None
    chats: list[ChatRow]

    @property
    def chats_opened(self) -> int:
        return len(self.chats)

    @property
    def with_messages(self) -> int:
        return sum(1 for c in self.chats if c.messages > 0)

    @property
    def after_event(self) -> int:
        return sum(1 for c in self.chats if c.after_event > 0)

    @property
    def share_with_messages(self) -> float:
        return self.with_messages / self.chats_opened if self.chats_opened else 0.0

    @property
    def share_after_event(self) -> float:
        return self.after_event / self.chats_opened if self.chats_opened else 0.0

    @property
    def members(self) -> int:
        return sum(len(c.members) for c in self.chats)

    @property
    def mute_rate(self) -> float:
        return sum(len(c.muted) for c in self.chats) / self.members if self.members else 0.0

    @property
    def leave_rate(self) -> float:
        return sum(len(c.left) for c in self.chats) / self.members if self.members else 0.0

    @property
    def referrals(self) -> int:
        return sum(len(c.referred) for c in self.chats)

    @property
    def referred_posted(self) -> int:
        return sum(c.referred_posted for c in self.chats)

    @property
    def share_referred_posted(self) -> float:
        return self.referred_posted / self.referrals if self.referrals else 0.0

    def spread(self, what: str) -> tuple[float | None, float | None]:
        if what == "messages":
            values = [float(c.messages) for c in self.chats]
        elif what == "posters":
            values = [float(len(c.posters)) for c in self.chats]
        else:
            values = [c.first_message_seconds for c in self.chats if c.first_message_seconds is not None]
        return median(values), p90(values)

    @property
    def step_clicks(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for c in self.chats:
            for step, n in c.clicks.items():
                total[step] = total.get(step, 0) + n
        return dict(sorted(total.items()))


class RangeError(ValueError):
    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.field = field_name


def parse_range(raw_from: str | None, raw_to: str | None, today: date) -> tuple[date, date]:
    """``from``/``to`` as YYYY-MM-DD (default: the 30 days up to today), at most 366 days."""

    def day(raw: str | None, name: str, default: date) -> date:
        if raw is None:
            return default
        try:
            if len(raw) != 10:
                raise ValueError
            return date.fromisoformat(raw)
        except ValueError:
            raise RangeError(f"'{name}' must be a date as YYYY-MM-DD", name) from None

    end = day(raw_to, "to", today)
    start = day(raw_from, "from", end - timedelta(days=29))
    if start > end:
        raise RangeError("'from' is after 'to'", "from")
    if (end - start).days + 1 > MAX_DAYS:
        raise RangeError(f"the range may span at most {MAX_DAYS} days", "from")
    return start, end


def _row(day: KpiDay, item: ChatKpi | None, clicks: dict[str, int]) -> ChatRow:
    opened_at = item.opened_at if item else None
    first = item.first_message_at if item else None
    return ChatRow(
        chat_id=day.chat_id,
        event_id=day.event_id,
        timeslot_id=day.timeslot_id,
        opened_on=day.sk[len(OPEN) : len(OPEN) + 10],
        opened_at=opened_at,
        messages=int(item.messages or 0) if item else 0,
        after_event=int(item.after_event or 0) if item else 0,
        posters=frozenset(item.posters or ()) if item else frozenset(),
        first_message_seconds=(first - opened_at).total_seconds() if first and opened_at else None,
        members=frozenset(item.members or ()) if item else frozenset(),
        muted=frozenset(item.muted or ()) if item else frozenset(),
        left=frozenset(item.left or ()) if item else frozenset(),
        referred=frozenset(item.referred or ()) if item else frozenset(),
        clicks=clicks,
    )


def kpis(integration: str, start: date, end: date, event_id: str | None = None) -> Kpis:
    """The integration's KPIs over the chats that first opened from ``start`` to
    ``end`` (UTC days, inclusive), optionally of one event: a Query, no scan."""
    condition = KpiDay.event_id == event_id if event_id else None
    days = list(
        KpiDay.query(
            f"KPI#{integration}",
            KpiDay.sk.between(f"{OPEN}{start.isoformat()}", f"{OPEN}{end.isoformat()}#\uffff"),
            filter_condition=condition,
        )
    )
    items: dict[str, ChatKpi] = {}
    keys = [(f"CH#{d.chat_id}", "KPI") for d in days]
    for offset in range(0, len(keys), 100):
        for item in ChatKpi.batch_get(keys[offset : offset + 100]):
            items[item.pk[3:]] = item
    clicks = _clicks(integration, start, end, event_id)
    rows = [_row(d, items.get(d.chat_id), dict(clicks.get(d.chat_id, {}))) for d in days]
    return Kpis(start=start, end=end, event_id=event_id, chats=rows)


def report(k: Kpis) -> dict[str, object]:
    """The API's ``GET /kpis`` body and ``make kpis``' figures: one function for both."""

    def spread(what: str) -> dict[str, float | None]:
        mid, high = k.spread(what)
        return {"median": mid, "p90": high}

    return {
        "from": k.start.isoformat(),
        "to": k.end.isoformat(),
        "event_id": k.event_id,
        "chats_opened": k.chats_opened,
        "chats_with_messages": k.with_messages,
        "share_with_messages": k.share_with_messages,
        "chats_after_event": k.after_event,
        "share_after_event": k.share_after_event,
        "messages_per_chat": spread("messages"),
        "posters_per_chat": spread("posters"),
        "first_message_seconds": spread("first"),
        "members": k.members,
        "mute_rate": k.mute_rate,
        "leave_rate": k.leave_rate,
        "referrals": k.referrals,
        "referred_posted": k.referred_posted,
        "share_referred_posted": k.share_referred_posted,
        "next_step_clicks": [{"step_id": s, "clicks": n} for s, n in k.step_clicks.items()],
    }


def chat_rows(k: Kpis) -> list[dict[str, object]]:
    return [
        {
            "chat_id": c.chat_id,
            "event_id": c.event_id,
            "timeslot_id": c.timeslot_id,
            "opened_on": c.opened_on,
            "opened_at": c.opened_at.isoformat() if c.opened_at else None,
            "messages": c.messages,
            "after_event": c.after_event,
            "posters": len(c.posters),
            "first_message_seconds": c.first_message_seconds,
            "members": len(c.members),
            "muted": len(c.muted),
            "left": len(c.left),
            "referrals": len(c.referred),
            "referred_posted": c.referred_posted,
            "next_step_clicks": sum(c.clicks.values()),
        }
        for c in k.chats
    ]


def text(k: Kpis) -> str:
    """``make kpis``: the same figures as ``GET /kpis``, for a terminal."""
    r = report(k)
    lines = [f"{key}: {value}" for key, value in r.items() if key != "next_step_clicks"]
    clicks = r["next_step_clicks"]
    assert isinstance(clicks, list)
    lines += [f"next_step_clicks[{c['step_id']}]: {c['clicks']}" for c in clicks]
    return "\n".join(lines) + "\n"
