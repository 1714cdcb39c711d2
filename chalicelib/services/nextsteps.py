"""Next steps (issue 11): the event's calls to action, their signed links, and clicks.

Every next-step link Muster writes (kickoff, debrief, organizer announcements) is
``<public url>/n/<token>`` (:mod:`chalicelib.relay.steptokens`): bound to this
deployment, the chat and the step id, and -- only when the deployment sets
``MUSTER_ATTRIBUTE_CLICKS`` -- the reader. The target URL is never in the token:
:func:`resolve` looks it up from the event by step id, so the redirect can only
lead where the integration said.

A counted click is one atomic ADD on ``KPI#<integration>``/
``D#<day>#CH#<chat>#L#<step>`` (:func:`count_click`, the one place a click is
counted); :func:`clicks` reads a date range back with one Query, never a scan.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock
from chalicelib.models import Chat, ClickCount, Event
from chalicelib.observability import logger, metrics
from chalicelib.relay.steptokens import read_step, sign_step
from chalicelib.services import signals
from chalicelib.settings import Settings, get_settings

ATTRIBUTION_NOTE = "Clicks on these links are counted per person for the organizers."
COUNT_NOTE = "Clicks on these links are counted (not who clicked) for the organizers."


@dataclass(frozen=True)
class Step:
    id: str
    label: str
    url: str


@dataclass(frozen=True)
class Resolved:
    chat: Chat
    step: Step
    reader: str | None  # a participant key, only when clicks are attributed


def steps_of(event: Event | None) -> list[Step]:
    """The event's next steps, in order."""
    if event is None or not event.next_steps_json:
        return []
    return [Step(str(s["id"]), str(s["label"]), str(s["url"])) for s in json.loads(event.next_steps_json)]


def dump_steps(steps: list[dict[str, str]]) -> str | None:
    return json.dumps(steps, separators=(",", ":")) if steps else None


def load_event(chat: Chat) -> Event | None:
    try:
        return Event.get(f"EV#{chat.integration}#{chat.event_id}", "META")
    except DoesNotExist:
        return None


def step_url(settings: Settings, chat_id: str, step_id: str, reader_key: str | None) -> str:
    """One reader's signed link to one next step (the reader only if clicks are attributed)."""
    token = sign_step(
        settings.secret,
        deployment=settings.deployment,
        chat_id=chat_id,
        step_id=step_id,
        reader=reader_key if settings.attribute_clicks else None,
    )
    return f"{settings.public_url}/n/{token}"


def step_lines(
    settings: Settings, chat_id: str, steps: list[dict[str, str]], reader_key: str | None
) -> list[tuple[str, str]]:
    """(label, signed URL) for each step (``{"id", "label"}``) of one reader's copy."""
    return [(s["label"], step_url(settings, chat_id, s["id"], reader_key)) for s in steps]


def with_next_steps(controls: tuple[str, str], steps: list[tuple[str, str]], note: str) -> tuple[str, str]:
    """An announcement copy's per-reader footer lines (text, HTML): its next steps
    (signed links, and how clicks are counted) before the reader's controls."""
    if not steps:
        return controls
    from chalicelib.relay.parse import clean_subject
    from chalicelib.relay.placeholders import strip_placeholders

    labels = [(strip_placeholders(clean_subject(label)) or "Next step", url) for label, url in steps]
    text = "\n".join(["", "Next steps:", *(f"{label}:\n{url}" for label, url in labels), f"({note})"])
    items = "".join(
        f'<li><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></li>' for label, url in labels
    )
    markup = f'<div style="margin-top:8px"><strong>Next steps</strong><ul style="margin:4px 0">{items}</ul>' + (
        f"<small>{html.escape(note)}</small></div>"
    )
    return text + ("\n" + controls[0] if controls[0] else ""), markup + controls[1]


def footer_note(settings: Settings) -> str:
    """The one line under next steps that says how clicks are counted."""
    return ATTRIBUTION_NOTE if settings.attribute_clicks else COUNT_NOTE


def resolve(token: str, settings: Settings | None = None) -> Resolved | None:
    """The chat, step (with its URL, from the event) and reader of a genuine token;
    None for a tampered or foreign token, an unknown chat, or a step the event no
    longer lists."""
    s = settings or get_settings()
    claims = read_step(s.secret, token, deployment=s.deployment)
    if claims is None:
        return None
    try:
        chat = Chat.get(f"CH#{claims.chat_id}", "META")
    except DoesNotExist:
        return None
    step = next((x for x in steps_of(load_event(chat)) if x.id == claims.step_id), None)
    if step is None:
        return None
    return Resolved(chat, step, claims.reader)


def _sk(day: date, chat_id: str, step_id: str) -> str:
    return f"D#{day.isoformat()}#CH#{chat_id}#L#{step_id}"


def count_click(resolved: Resolved, now: datetime | None = None) -> None:
    """Count one click: the one place a click is counted (integration events hook in here).

    ``resolved.reader`` (a participant key) is set only when the deployment
    attributes clicks; the NextStepClicked event may then carry the signup id."""
    now = now or clock.now()
    chat = resolved.chat
    ClickCount(f"KPI#{chat.integration}", _sk(now.date(), chat.chat_id, resolved.step.id)).update(
        actions=[ClickCount.clicks.add(1), ClickCount.event_id.set(chat.event_id)]
    )
    reader = resolved.reader or ""
    signals.next_step_clicked(
        chat,
        resolved.step.id,
        click_id=uuid.uuid4().hex,  # each click is a fact of its own; the count above is not retried
        at=now,
        signup_id=reader[2:] if reader.startswith("s-") else None,  # only when clicks are attributed
    )
    metrics.add_metric(name="NextStepClicks", unit="Count", value=1)
    logger.info("next step clicked", extra={"chat_id": chat.chat_id, "step_id": resolved.step.id})


def clicks(integration: str, start: date, end: date, event_id: str | None = None) -> dict[str, dict[str, int]]:
    """chat id -> step id -> clicks on days ``start`` to ``end`` (inclusive, UTC),
    optionally of one event only: one Query on the sort key, no scan."""
    out: dict[str, dict[str, int]] = {}
    if end < start:
        return out
    condition = ClickCount.sk.between(f"D#{start.isoformat()}#", f"D#{end.isoformat()}#\uffff")
    filt = ClickCount.event_id == event_id if event_id is not None else None
    for item in ClickCount.query(f"KPI#{integration}", condition, filter_condition=filt):
        _, _day, ch, chat_id, link, step_id = (item.sk.split("#", 5) + [""] * 6)[:6]
        if ch != "CH" or link != "L" or not step_id or "#" in step_id:
            continue  # another counter in the KPI partition
        per_chat = out.setdefault(chat_id, {})
        per_chat[step_id] = per_chat.get(step_id, 0) + int(item.clicks or 0)
    return out
