"""Suppressions (R11, issue 10): suppressing an address everywhere, and what an
integration may see and undo of it. SES feedback and the bounce score that
leads here are services/bounces.py.

Items (all keyed by the address *hash*, never the address):

- ``SUP#<hash>``/``META`` (:class:`Suppression`): exists while suppressed;
  reason and since are set once (``if_not_exists``), and ``integrations`` names
  the ``SUPI#`` partitions that list it.
- ``SUP#<hash>``/``SCORE`` (:class:`BounceScore`): the soft-bounce score
  (written by services/bounces.py; read and cleared here).
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
    actions: list[Action] = [
        Suppression.reason.set(Suppression.reason | reason),
        Suppression.at.set(Suppression.at | now),
    ]
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


# -- scores (written by services/bounces.py) ---------------------------------------------


def score_item(digest: str) -> BounceScore | None:
    try:
        return BounceScore.get(f"SUP#{digest}", "SCORE", consistent_read=True)
    except DoesNotExist:
        return None


def live_score(digest: str, settings: Settings, now: datetime) -> tuple[float, datetime | None]:
    """The score as it stands now (a stale one counts as zero) and the last bounce."""
    item = score_item(digest)
    if item is None or item.last_bounce_at is None:
        return 0.0, None
    if item.last_bounce_at < now - timedelta(days=settings.bounce_decay_days):
        return 0.0, item.last_bounce_at
    return float(item.score or 0), item.last_bounce_at


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
        score = score_item(digest)
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

    def page(
        self, integration: str, limit: int = PAGE_DEFAULT, cursor: str | None = None
    ) -> tuple[list[SuppressionEntry], str | None]:
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
