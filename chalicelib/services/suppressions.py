"""Suppressions (R11, issue 10): what SES tells us about an address, and what an
integration may see and undo of it.

Bounce scoring follows GNU Mailman's model. A hard bounce (SES ``Permanent``)
or a complaint suppresses the address at once. A soft bounce (``Transient``,
``Undetermined``) adds ``soft_bounce_score`` (0.5) to the address's score; at
``bounce_score_limit`` (5) the address is suppressed; a score whose last bounce
is older than ``bounce_decay_days`` (7) starts again from zero. Unlike Mailman 2
every distinct bounce counts, not at most one a day.

Items (all keyed by the address *hash*, never the address):

- ``SUP#<hash>``/``META`` (:class:`Suppression`): exists while suppressed;
  reason and since are set once (``if_not_exists``), and ``integrations`` names
  the ``SUPI#`` partitions that list it.
- ``SUP#<hash>``/``SCORE`` (:class:`BounceScore`): one conditional UpdateItem
  per notification. Two variants, each guarded by its own condition: *continue*
  (``ADD score``, only while the last bounce is within the decay window) and
  *reset* (``SET score``, only when there is no score or it is stale). Both also
  require that the notification's SES feedback id is not yet in
  ``feedback_ids``, so an SNS redelivery counts once, and two concurrent
  notifications can never both reset, nor one add to a stale score.
- ``SUP#<hash>``/``LIFT`` (:class:`SuppressionLift`): who lifted it last, when.
- ``SUPI#<integration>``/``<hash>#<event>#<participant key>``
  (:class:`SuppressionEntry`): the integration's own records whose address is
  suppressed, written at suppress time, so ``GET /suppressions`` is one Query.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from chalicelib import clock
from chalicelib.errors import BadRequest, NotFound
from chalicelib.models import (
    BounceScore,
    Chat,
    Participant,
    SignupRef,
    Suppression,
    SuppressionEntry,
    SuppressionLift,
)
from chalicelib.observability import logger, metrics
from chalicelib.relay.addresses import address_hash
from chalicelib.settings import Settings, get_settings

SOFT_BOUNCE_TYPES = frozenset({"Transient", "Undetermined"})
PAGE_DEFAULT, PAGE_MAX = 50, 100


# -- which of an integration's records hold an address ---------------------------


@dataclass(frozen=True)
class Record:
    """One of an integration's own records (its ids only)."""

    integration: str
    event_id: str
    participant_key: str  # o-<organizer id> | s-<signup id>

    @property
    def kind(self) -> str:
        return "organizer" if self.participant_key.startswith("o-") else "signup"

    @property
    def id(self) -> str:
        return self.participant_key[2:]


def _records(keys: Iterable[tuple[str, str]]) -> list[Record]:
    """The integration records behind participant keys (``EV#…`` canonical
    organizers name their integration; chat copies name it on their chat)."""
    found: dict[tuple[str, str, str], Record] = {}
    chat_keys: list[tuple[str, str]] = []
    for pk, sk in keys:
        if not sk.startswith("P#"):
            continue
        if pk.startswith("EV#"):
            _, integration, event_id = pk.split("#", 2)
            record = Record(integration, event_id, sk[2:])
            found[(record.integration, record.event_id, record.participant_key)] = record
        elif pk.startswith("CH#"):
            chat_keys.append((pk, sk))
    if chat_keys:
        chats = {c.pk: c for c in Chat.batch_get({(pk, "META") for pk, _ in chat_keys})}
        for pk, sk in chat_keys:
            chat = chats.get(pk)
            if chat is not None:
                record = Record(chat.integration, chat.event_id, sk[2:])
                found[(record.integration, record.event_id, record.participant_key)] = record
    return sorted(found.values(), key=lambda r: (r.integration, r.event_id, r.participant_key))


def _participant_keys(digest: str) -> list[tuple[str, str]]:
    return [(k.pk, k.sk) for k in Participant.address_index.query(digest)]


def _entry(digest: str, record: Record, reason: str, at: datetime) -> SuppressionEntry:
    return SuppressionEntry(
        f"SUPI#{record.integration}",
        f"{digest}#{record.event_id}#{record.participant_key}",
        event_id=record.event_id,
        participant_key=record.participant_key,
        reason=reason,
        at=at,
    )


def _flag(keys: Iterable[tuple[str, str]], suppressed: bool) -> int:
    changed = 0
    for pk, sk in keys:
        try:
            Participant(pk, sk).update(
                actions=[Participant.suppressed.set(suppressed)], condition=Participant.pk.exists()
            )
            changed += 1
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
    return changed


# -- suppressing ---------------------------------------------------------------------


def suppress_hash(digest: str, reason: str, now: datetime | None = None) -> int:
    """Stop mailing the address with hash ``digest`` everywhere; returns how many
    chat records changed. Idempotent: reason and since stay those of the first
    suppression."""
    now = now or clock.now()
    keys = _participant_keys(digest)
    records = _records(keys)
    integrations = {r.integration for r in records}
    meta = Suppression(f"SUP#{digest}", "META")
    actions: list[Action] = [Suppression.reason.set(Suppression.reason | reason), Suppression.at.set(Suppression.at | now)]
    if integrations:
        actions.append(Suppression.integrations.add(integrations))
    meta.update(actions=actions)
    changed = _flag(keys, True)
    with SuppressionEntry.batch_write() as batch:
        for record in records:
            batch.save(_entry(digest, record, meta.reason, meta.at))
    metrics.add_metric(name="Suppressed", unit="Count", value=1)
    logger.info("address suppressed", extra={"address_hash": digest, "reason": reason, "records": changed})
    return changed


def suppress(address: str, reason: str, settings: Settings | None = None, now: datetime | None = None) -> int:
    settings = settings or get_settings()
    return suppress_hash(address_hash(settings.secret, address), reason, now)


def suppressed_reason(digest: str) -> str | None:
    try:
        return Suppression.get(f"SUP#{digest}", "META", consistent_read=True).reason
    except DoesNotExist:
        return None


def remember(digest: str, pk: str, participant_key: str) -> None:
    """A record was just written for an address that is already suppressed:
    list it for its integration too (services/events.py calls this)."""
    try:
        meta = Suppression.get(f"SUP#{digest}", "META", consistent_read=True)
    except DoesNotExist:
        return
    for record in _records([(pk, f"P#{participant_key}")]):
        _entry(digest, record, meta.reason, meta.at).save()
        meta.update(actions=[Suppression.integrations.add({record.integration})])


# -- bounce scores ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    score: float
    counted: bool  # False: this notification was counted before (a redelivery)
    suppressed: bool


def soft_bounce(digest: str, feedback_id: str, settings: Settings | None = None, now: datetime | None = None) -> Scored:
    """Add one soft bounce to the address's score, once per ``feedback_id``;
    suppress the address when the score reaches the limit."""
    s = settings or get_settings()
    now = now or clock.now()
    cutoff = now - timedelta(days=s.bounce_decay_days)
    expires = now + timedelta(days=s.bounce_decay_days + 1)
    fresh = ~BounceScore.feedback_ids.contains(feedback_id)
    continue_ = (
        [
            BounceScore.score.add(s.soft_bounce_score),
            BounceScore.feedback_ids.add({feedback_id}),
            BounceScore.last_bounce_at.set(now),
            BounceScore.expires.set(expires),
        ],
        (BounceScore.last_bounce_at >= cutoff) & fresh,
    )
    reset = (
        [
            BounceScore.score.set(s.soft_bounce_score),
            BounceScore.feedback_ids.set({feedback_id}),
            BounceScore.last_bounce_at.set(now),
            BounceScore.expires.set(expires),
        ],
        BounceScore.last_bounce_at.does_not_exist() | ((BounceScore.last_bounce_at < cutoff) & fresh),
    )
    item = BounceScore(f"SUP#{digest}", "SCORE")
    counted = False
    for _ in range(5):
        current = _score_item(digest)
        if current is not None and feedback_id in (current.feedback_ids or set()):
            item = current
            break  # a redelivery: counted already
        live = current is not None and current.last_bounce_at is not None and current.last_bounce_at >= cutoff
        for actions, condition in (continue_, reset) if live else (reset, continue_):
            try:
                item.update(actions=actions, condition=condition)  # type: ignore[arg-type]
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                continue
            counted = True
            break
        if counted:
            break
    else:
        raise RuntimeError("bounce score kept changing under us")
    score = float(item.score or 0)
    suppressed = score >= s.bounce_score_limit
    if suppressed and (counted or suppressed_reason(digest) is None):
        # Also on a redelivery: the first delivery may have failed right here.
        suppress_hash(digest, "soft_bounces", now)
    metrics.add_metric(name="SoftBounces", unit="Count", value=1 if counted else 0)
    logger.info("soft bounce", extra={"address_hash": digest, "score": score, "counted": counted})
    return Scored(score=score, counted=counted, suppressed=suppressed)


def _score_item(digest: str) -> BounceScore | None:
    try:
        return BounceScore.get(f"SUP#{digest}", "SCORE", consistent_read=True)
    except DoesNotExist:
        return None


def live_score(digest: str, settings: Settings, now: datetime) -> tuple[float, datetime | None]:
    """The score as it stands now (a stale one counts as zero) and the last bounce."""
    item = _score_item(digest)
    if item is None or item.last_bounce_at is None:
        return 0.0, None
    if item.last_bounce_at < now - timedelta(days=settings.bounce_decay_days):
        return 0.0, item.last_bounce_at
    return float(item.score or 0), item.last_bounce_at


def handle_feedback(notification: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """An SES event-publishing (or feedback) notification, via SNS: one result per
    recipient (``hard_bounce``, ``complaint``, ``soft_bounce``, or
    ``soft_bounce_duplicate`` for a redelivered notification)."""
    s = settings or get_settings()
    kind = notification.get("eventType") or notification.get("notificationType") or ""
    mail = notification.get("mail") or {}
    results: list[str] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        # SES gives every notification a feedback id; a hand-made one without it
        # is keyed by the message it is about (still the same on redelivery).
        feedback_id = str(bounce.get("feedbackId") or f"mail:{mail.get('messageId', '')}:{bounce.get('timestamp', '')}")
        hard = bounce.get("bounceType") not in SOFT_BOUNCE_TYPES
        for r in bounce.get("bouncedRecipients") or []:
            address = str(r.get("emailAddress") or "")
            if not address:
                continue
            digest = address_hash(s.secret, address)
            if hard:
                suppress_hash(digest, "hard_bounce")
                results.append("hard_bounce")
            else:
                scored = soft_bounce(digest, feedback_id, s)
                results.append("soft_bounce" if scored.counted else "soft_bounce_duplicate")
    elif kind == "Complaint":
        for r in (notification.get("complaint") or {}).get("complainedRecipients") or []:
            address = str(r.get("emailAddress") or "")
            if address:
                suppress_hash(address_hash(s.secret, address), "complaint")
                results.append("complaint")
    return results


# -- what an integration sees and undoes ----------------------------------------------


@dataclass(frozen=True)
class State:
    suppressed: bool
    reason: str | None
    since: datetime | None
    score: float
    last_bounce_at: datetime | None
    lifted_at: datetime | None
    records: list[Record]


def _owned(integration: str, digest: str) -> list[Record]:
    """This integration's records with this address; 404 if it has none (so
    nothing is told about an address the integration does not hold)."""
    mine = [r for r in _records(_participant_keys(digest)) if r.integration == integration]
    if not mine:
        raise NotFound("none of your organizers or signups has this address", "email")
    return mine


def _state(digest: str, records: list[Record], settings: Settings, now: datetime) -> State:
    try:
        meta: Suppression | None = Suppression.get(f"SUP#{digest}", "META", consistent_read=True)
    except DoesNotExist:
        meta = None
    try:
        lift: SuppressionLift | None = SuppressionLift.get(f"SUP#{digest}", "LIFT", consistent_read=True)
    except DoesNotExist:
        lift = None
    score, last = live_score(digest, settings, now)
    return State(
        suppressed=meta is not None,
        reason=meta.reason if meta else None,
        since=meta.at if meta else None,
        score=score,
        last_bounce_at=last,
        lifted_at=lift.at if lift else None,
        records=records,
    )


class SuppressionService:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()

    def _digest(self, address: str) -> str:
        return address_hash(self.settings.secret, address)

    def _signup_digest(self, integration: str, event_id: str, signup_id: str) -> str:
        from chalicelib.services.chats import chat_id_for

        try:
            ref = SignupRef.get(f"EV#{integration}#{event_id}", f"S#{signup_id}", consistent_read=True)
            chat_id = chat_id_for(integration, event_id, ref.timeslot_id, self.settings.secret)
            return Participant.get(f"CH#{chat_id}", f"P#s-{signup_id}", consistent_read=True).address_hash
        except DoesNotExist:
            raise NotFound(f"no signup '{signup_id}' in event '{event_id}'", "signup_id") from None

    # -- by address ----------------------------------------------------------------

    def state(self, integration: str, address: str) -> State:
        digest = self._digest(address)
        return _state(digest, _owned(integration, digest), self.settings, clock.now())

    def lift(self, integration: str, address: str) -> State:
        digest = self._digest(address)
        return self._lift(integration, digest, _owned(integration, digest))

    # -- by signup -----------------------------------------------------------------

    def signup_state(self, integration: str, event_id: str, signup_id: str) -> State:
        digest = self._signup_digest(integration, event_id, signup_id)
        return _state(digest, _owned(integration, digest), self.settings, clock.now())

    def lift_signup(self, integration: str, event_id: str, signup_id: str) -> State:
        digest = self._signup_digest(integration, event_id, signup_id)
        return self._lift(integration, digest, _owned(integration, digest))

    def _lift(self, integration: str, digest: str, records: list[Record]) -> State:
        """Clear the suppression, the score and every record's flag; record who and when."""
        now = clock.now()
        try:
            meta: Suppression | None = Suppression.get(f"SUP#{digest}", "META", consistent_read=True)
        except DoesNotExist:
            meta = None
        score = _score_item(digest)
        if meta is None and score is None:
            return _state(digest, records, self.settings, now)  # nothing to lift
        # The marker goes first: from here on, new records of this address are not suppressed.
        if meta is not None:
            meta.delete()
        if score is not None:
            score.delete()
        SuppressionLift(f"SUP#{digest}", "LIFT", by=integration, at=now, reason=meta.reason if meta else None).save()
        changed = _flag(_participant_keys(digest), False)
        listed = {integration, *((meta.integrations or set()) if meta else set())}
        with SuppressionEntry.batch_write() as batch:
            for owner in listed:
                for entry in SuppressionEntry.query(f"SUPI#{owner}", SuppressionEntry.sk.startswith(f"{digest}#")):
                    batch.delete(entry)
        metrics.add_metric(name="SuppressionsLifted", unit="Count", value=1)
        logger.info(
            "suppression lifted",
            extra={"address_hash": digest, "integration": integration, "records": changed},
        )
        return _state(digest, records, self.settings, now)

    # -- the integration's page --------------------------------------------------

    def page(self, integration: str, limit: int = PAGE_DEFAULT, cursor: str | None = None) -> tuple[list[SuppressionEntry], str | None]:
        """A page of this integration's suppressed records, and the next page's cursor."""
        start = {"pk": {"S": f"SUPI#{integration}"}, "sk": {"S": _read_cursor(cursor)}} if cursor else None
        result = SuppressionEntry.query(f"SUPI#{integration}", limit=limit, last_evaluated_key=start)
        items = list(result)
        last = result.last_evaluated_key
        return items, _make_cursor(last["sk"]["S"]) if last and len(items) == limit else None


def _make_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> str:
    try:
        sk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sk = ""
    if sk.count("#") < 2 or len(sk) > 400:
        raise BadRequest("'cursor' is not a cursor this API gave out", "cursor", code="invalid_cursor")
    return sk
