"""PynamoDB models: one table, keyed by ``pk``/``sk`` (see docs/architecture.md).

Partitions:

- ``EV#<integration>#<event_id>``: ``META`` (:class:`Event`), ``P#o-<id>`` (organizer
  :class:`Participant`, canonical copy), ``S#<signup_id>`` (:class:`SignupRef`).
- ``CH#<chat_id>``: ``META`` (:class:`Chat`), ``P#<participant_key>`` (one
  :class:`Participant` per organizer and signup: *all recipients in one query*),
  ``M#<iso time>#<message id>`` (:class:`MessageLog`, metadata only).
- ``MSG#<message id>``: ``TO#<participant_key>`` (:class:`Delivery`),
  ``B#<batch>`` (:class:`BatchClaim`).
- ``KEY#<sha256>`` (:class:`ApiKey`), ``SUP#<address hash>`` (``META``:
  :class:`Suppression`, ``SCORE``: :class:`BounceScore`, ``LIFT``:
  :class:`SuppressionLift`), ``SUPI#<integration>`` (:class:`SuppressionEntry`),
  ``LIM#...`` (:class:`Counter`: rate limits, bounce-once-a-day), ``REF#<hash>``
  (:class:`ThreadRef`: client Message-ID -> Muster message), ``PT#<thread id>``
  (:class:`PrivateThread`: an organizer's private thread with one participant).

Real addresses are stored only on :class:`Participant` (``email``); everything else
holds ``address_hash``.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection, TableConnection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.settings import get_settings


class _Meta:
    table_name = "muster-dev"
    region = "us-east-1"


class DueIndex(GlobalSecondaryIndex["Chat"]):
    """Sparse index of chats with a pending open/close: the sweeper's work list."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_bucket = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class AddressIndex(GlobalSecondaryIndex["Participant"]):
    """Participant records by address hash: suppression and org-wide blocks."""

    class Meta:
        index_name = "address"
        projection = KeysOnlyProjection()

    address_hash = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class PhoneIndex(GlobalSecondaryIndex["Participant"]):
    """Participant records by phone hash (sparse): inbound texts, STOP, SMS bounces."""

    class Meta:
        index_name = "phone"
        projection = KeysOnlyProjection()

    phone_hash = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class SesIdIndex(GlobalSecondaryIndex["Delivery"]):
    """Delivered copies by SES MessageId: SES rewrites Message-ID, replies cite it."""

    class Meta:
        index_name = "ses_id"
        projection = AllProjection()

    ses_message_id = UnicodeAttribute(hash_key=True)


class Base(Model):
    Meta = _Meta  # type: ignore[assignment]
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    @classmethod
    def _get_connection(cls) -> TableConnection:
        """PynamoDB's connection for this model, calling DynamoDB through the one
        botocore client every model shares.

        PynamoDB gives each model class a connection of its own, and each builds its
        own botocore client on first use, in a session of its own: ~0.1 s a client
        (botocore reads its endpoint and service JSON again for each session). A
        relayed message touches about ten models, so a container's first message
        paid a second or more; one client is thread-safe and serves them all."""
        connection = super()._get_connection()
        inner = connection.connection
        if inner._client is None:
            inner._client = shared_client()
        return connection


class TimeslotMap(MapAttribute[str, Any]):
    id = UnicodeAttribute()
    starts_at = UTCDateTimeAttribute()
    ends_at = UTCDateTimeAttribute()
    chat_enabled = BooleanAttribute(null=True)


class Event(Base):
    integration = UnicodeAttribute()
    event_id = UnicodeAttribute()
    title = UnicodeAttribute()
    timezone = UnicodeAttribute()
    chat_enabled = BooleanAttribute(null=True)
    open_before_hours = NumberAttribute(null=True)
    close_after_hours = NumberAttribute(null=True)
    close_after_set = BooleanAttribute(default=False)
    timeslots = ListAttribute(of=TimeslotMap, default=list)
    organizer_ids = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    default_delivery = UnicodeAttribute(null=True)  # each | digest; null: the deployment's rule
    moderation = UnicodeAttribute(null=True)  # none | first_post | all (R15); null: none
    report_threshold = NumberAttribute(null=True)  # distinct reporters that hold an author; null: the deployment's
    sender_messages_per_hour = NumberAttribute(null=True)  # R12 per-chat limits; null: the deployment's
    chat_copies_per_hour = NumberAttribute(null=True)
    keywords = JSONAttribute(null=True)  # issue 12: {"WHERE": "Meet at the library steps", ...} (keys upper case)
    invite_url = UnicodeAttribute(null=True)  # Bring a Friend: an https template with {ref} (issue 11)
    cancelled = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    next_steps_json = UnicodeAttribute(null=True)  # issue 11: [{"id","label","url"}] as JSON
    debrief_after_hours = NumberAttribute(null=True)  # issue 11: the post-shift debrief
    debrief_text = UnicodeAttribute(null=True)


class SignupRef(Base):
    """Where a signup lives (its chat); the person is on the chat's Participant."""

    timeslot_id = UnicodeAttribute()
    status = UnicodeAttribute()
    referred_by = UnicodeAttribute(null=True)
    referrer = UnicodeAttribute(null=True)  # the referring signup's id, when referred_by was a valid ref
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class Chat(Base):
    chat_id = UnicodeAttribute()
    integration = UnicodeAttribute()
    event_id = UnicodeAttribute()
    timeslot_id = UnicodeAttribute()
    title = UnicodeAttribute()
    timezone = UnicodeAttribute()
    relay_local = UnicodeAttribute()
    state = UnicodeAttribute()  # scheduled | open | closed | disabled
    closed_reason = UnicodeAttribute(null=True)  # window | organizer | cancelled | removed
    starts_at = UTCDateTimeAttribute()
    ends_at = UTCDateTimeAttribute()
    opens_at = UTCDateTimeAttribute()
    closes_at = UTCDateTimeAttribute(null=True)
    scheduled_open_at = UTCDateTimeAttribute(null=True)
    scheduled_close_at = UTCDateTimeAttribute(null=True)
    opened_at = UTCDateTimeAttribute(null=True)
    closed_at = UTCDateTimeAttribute(null=True)
    due_bucket = UnicodeAttribute(null=True)
    due_at = UTCDateTimeAttribute(null=True)
    kickoff_pending = BooleanAttribute(null=True)  # opened, kickoff not yet queued
    default_delivery = UnicodeAttribute(null=True)  # each | digest (from the event); null: the deployment's rule
    moderation = UnicodeAttribute(null=True)  # none | first_post | all (from the event)
    moderation_hold = BooleanAttribute(null=True)  # an organizer holds every message (controls/API)
    report_threshold = NumberAttribute(null=True)  # from the event; null: the deployment's
    sender_messages_per_hour = NumberAttribute(null=True)  # R12, from the event; null: the deployment's
    chat_copies_per_hour = NumberAttribute(null=True)
    debrief_at = UTCDateTimeAttribute(null=True)  # issue 11: ends_at + the event's debrief after_hours
    scheduled_debrief_at = UTCDateTimeAttribute(null=True)
    debrief_state = UnicodeAttribute(null=True)  # posted | skipped_<why>: set once, with the claim
    debrief_pending = BooleanAttribute(null=True)  # claimed, not yet queued
    invite_url = UnicodeAttribute(null=True)  # from the event (Bring a Friend)
    version = VersionAttribute()
    due_index = DueIndex()


class Participant(Base):
    participant_key = UnicodeAttribute()  # o-<organizer id> | s-<signup id>
    role = UnicodeAttribute()  # organizer | attendee
    status = UnicodeAttribute()  # organizer | registered | confirmed | ... | blocked
    first_name = UnicodeAttribute()
    last_name = UnicodeAttribute(null=True)
    email = UnicodeAttribute()  # the only place a real address is stored
    address_hash = UnicodeAttribute()
    muted = BooleanAttribute(default=False)
    left = BooleanAttribute(default=False)  # left the chat: muted, and no kickoff on a new signup
    delivery = UnicodeAttribute(null=True)  # each | digest; null: the chat's default
    suppressed = BooleanAttribute(default=False)
    removed = BooleanAttribute(null=True)  # removed from this chat by an organizer (R15)
    blocked = BooleanAttribute(null=True)  # blocked across the deployment (mirrors a Block item)
    held = BooleanAttribute(null=True)  # every further post held for moderation (reports, R15)
    trusted = BooleanAttribute(null=True)  # had a post relayed (first_post moderation)
    updated_at = UTCDateTimeAttribute()
    address_index = AddressIndex()
    # SMS (issue 12): the number is stored here only, like the address; found by its hash.
    phone = UnicodeAttribute(null=True)  # E.164
    phone_hash = UnicodeAttribute(null=True)
    channel = UnicodeAttribute(null=True)  # email (null) | sms | both
    sms_stopped = BooleanAttribute(null=True)  # the number opted out (STOP) or failed for good
    phone_index = PhoneIndex()


class MessageLog(Base):
    """One inbound message's outcome. Metadata only: never bodies or addresses."""

    message_id = UnicodeAttribute()
    chat_id = UnicodeAttribute(null=True)
    outcome = UnicodeAttribute()
    state = UnicodeAttribute(default="done")  # relaying (fan-out under way) | done
    sender_hash = UnicodeAttribute(null=True)
    author_key = UnicodeAttribute(null=True)
    size = NumberAttribute(default=0)
    rendered_size = NumberAttribute(null=True)  # bytes of the anonymized copy (batch sizing)
    recipients = NumberAttribute(default=0)
    parent_id = UnicodeAttribute(null=True)
    ses_message_id = UnicodeAttribute(null=True)
    received_at = UTCDateTimeAttribute()
    bounced = BooleanAttribute(default=False)
    expires = TTLAttribute(null=True)


class Delivery(Base):
    """One copy of one message to one participant (R8, R9, R10)."""

    chat_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    status = UnicodeAttribute()  # sending (claimed) | sent | failed
    batch = UnicodeAttribute(null=True)  # the delivery batch that claimed it
    reason = UnicodeAttribute(null=True)
    ses_message_id = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)
    ses_index = SesIdIndex()


def claim_condition(model: Any, batch: str) -> Any:
    """A copy record (:class:`Delivery`, :class:`SmsCopy`) may be claimed by
    ``batch`` when nobody has it, or a crash of this very batch left its claim."""
    return model.pk.does_not_exist() | ((model.status == "sending") & (model.batch == batch))


def claim_once(record: Any, batch: str) -> bool:
    """Save ``record`` (status ``sending``, ``batch``) under :func:`claim_condition`:
    True if it is now ours, False if it is someone else's or done (R8)."""
    from pynamodb.exceptions import PutError

    try:
        record.save(condition=claim_condition(type(record), batch))
        return True
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


class BatchClaim(Base):
    """Lease on one SQS recipient batch; a duplicate delivery finds it and stops."""

    state = UnicodeAttribute()  # working | done
    lease_until = NumberAttribute()
    attempts = NumberAttribute(default=1)
    expires = TTLAttribute(null=True)


class ApiKey(Base):
    integration = UnicodeAttribute()
    name = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked = BooleanAttribute(default=False)


class Suppression(Base):
    """``SUP#<address hash>``/``META``: exists while the address is suppressed."""

    reason = UnicodeAttribute()  # hard_bounce | complaint | soft_bounces
    at = UTCDateTimeAttribute()
    integrations = UnicodeSetAttribute(null=True)  # whose SUPI# partitions list it (lifted from there too)


class Counter(Base):
    hits = NumberAttribute(default=0)
    expires = TTLAttribute(null=True)


class MessageMeta(Base):
    """``MSG#<message id>``/``META``: what threading needs to know of a relayed
    message (R10). No addresses: the author's key, the author's own client
    Message-ID (only ever cited back to the author), and the Muster ids of its
    ancestors, oldest first."""

    chat_id = UnicodeAttribute()
    author_key = UnicodeAttribute()
    author_hash = UnicodeAttribute(null=True)  # the client id goes back only to this address
    client_message_id = UnicodeAttribute(null=True)
    ancestors = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    expires = TTLAttribute(null=True)


class ThreadRef(Base):
    chat_id = UnicodeAttribute()
    message_id = UnicodeAttribute()
    expires = TTLAttribute(null=True)


_CLIENT_LOCK = threading.Lock()


@cache
def transactions() -> Connection:
    """The PynamoDB connection for transactions (TransactWrite needs one outside a
    model); its botocore client is the one every model uses (:func:`shared_client`)."""
    return Connection(region=_Meta.region)


def shared_client() -> Any:
    """The container's one DynamoDB client, built by PynamoDB (its retry and timeout
    settings) on first use. botocore clients are safe to share between threads;
    building one is not, hence the lock."""
    with _CLIENT_LOCK:
        return transactions().client


def bind(table_name: str | None = None, region: str | None = None) -> None:
    """Point every model at the configured table (and drop cached connections).

    PynamoDB caches its connection on the class; the endpoint (AWS_ENDPOINT_URL)
    or the table can change between tests and in the local twin.
    """
    settings = get_settings()
    _Meta.table_name = table_name or settings.table_name
    _Meta.region = region or settings.region
    transactions.cache_clear()
    for model in ALL_MODELS:
        model._connection = None
        for index in model._indexes.values():
            index._connection = None  # type: ignore[attr-defined]


def _index(name: str, keys: tuple[tuple[str, str], ...], projection: str) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": a, "KeyType": k} for a, k in keys],
        "Projection": {"ProjectionType": projection},
    }


# The table's shape, in CreateTable's words. infra/ declares the same table for
# CloudFormation; tests/integration/test_package.py keeps the two in step.
TABLE_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": "S"}
        for name in ("pk", "sk", "due_bucket", "due_at", "address_hash", "ses_message_id", "phone_hash")
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        _index("due", (("due_bucket", "HASH"), ("due_at", "RANGE")), "KEYS_ONLY"),
        _index("address", (("address_hash", "HASH"), ("pk", "RANGE")), "KEYS_ONLY"),
        _index("ses_id", (("ses_message_id", "HASH"),), "ALL"),
        _index("phone", (("phone_hash", "HASH"), ("pk", "RANGE")), "KEYS_ONLY"),
    ],
}


class Rejection(Base):
    """An input Muster refused (an invalid integration event, say): kept so
    nothing vanishes silently. Holds the reason and ids, never the payload."""

    source = UnicodeAttribute()
    kind = UnicodeAttribute()
    reason = UnicodeAttribute()
    ref = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


class ChatStats(Base):
    """Activity counters of one chat (``CH#<id>``/``STATS``), kept apart from the
    versioned :class:`Chat` so relaying never races a window change (R14 KPIs)."""

    messages = NumberAttribute(default=0)
    after_event = NumberAttribute(default=0)
    first_message_at = UTCDateTimeAttribute(null=True)
    last_message_at = UTCDateTimeAttribute(null=True)


ALL_MODELS: tuple[type[Base], ...] = (
    Event,
    SignupRef,
    Chat,
    Participant,
    MessageLog,
    Delivery,
    BatchClaim,
    ApiKey,
    Suppression,
    Counter,
    ThreadRef,
    MessageMeta,
    Rejection,
    ChatStats,
)


# -- daily digests (issue 9): ``DIG#<chat_id>#<participant_key>`` partitions ------


class DigestDueIndex(GlobalSecondaryIndex["DigestDue"]):
    """The same sparse ``due`` index as :class:`DueIndex`, under its own bucket
    (``due_bucket = "digest"``), so the sweeper never sees digest work."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_bucket = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class DigestDue(Base):
    """``DIG#<chat>#<participant>``/``DUE``: when this person's next digest goes.

    On the ``due`` index only while messages wait (sparse); the digest job
    finds its work with one Query, never a scan."""

    chat_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    due_bucket = UnicodeAttribute(null=True)  # "digest" while due; removed after sending
    due_at = UTCDateTimeAttribute(null=True)
    due_index = DigestDueIndex()


class DigestEntry(Base):
    """``DIG#<chat>#<participant>``/``M#<message id>``: one relayed message owed
    to one digest reader. Message ids start with their receipt time, so the
    partition lists them in order. ``digest`` stays set after sending (a
    tombstone until the TTL), so a retried fan-out cannot owe it again."""

    chat_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    message_id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    digest = UnicodeAttribute(null=True)  # null: pending; else "<day>#<part>", "skipped", "missing"
    expires = TTLAttribute(null=True)


class DigestClaim(Base):
    """``DIG#<chat>#<participant>``/``D#<digest day>#<part>``: the claim taken
    with a conditional write before a digest is sent (R8): a duplicate or
    concurrent run finds it and sends nothing."""

    state = UnicodeAttribute()  # sending | sent | failed
    lease_until = NumberAttribute()
    messages = ListAttribute(of=UnicodeAttribute, default=list)  # type: ignore[arg-type]
    ses_message_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


ALL_MODELS = (*ALL_MODELS, DigestDue, DigestEntry, DigestClaim)


# -- stewardship (issue 10, R15) ----------------------------------------------------


class Block(Base):
    """``BLK#<address hash>``/``META``: a person blocked across the deployment.
    Their participant records carry ``blocked`` too (set through the address
    index), and every new record for that address is born blocked."""

    integration = UnicodeAttribute()  # who blocked them (the API lists its own blocks)
    block_id = UnicodeAttribute()  # opaque, for the API
    actor = UnicodeAttribute()
    via = UnicodeAttribute()  # control | api
    at = UTCDateTimeAttribute()


class BlockRef(Base):
    """``BLOCKS#<integration>``/``<block id>``: an integration's blocks, listable
    without a scan, holding its own ids of the person (never an address)."""

    address_hash = UnicodeAttribute()
    event_id = UnicodeAttribute(null=True)
    signup_id = UnicodeAttribute(null=True)
    organizer_id = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()


class ActionRecord(Base):
    """``ACT#<integration>``/``<iso time>#<digest>``: one steward action (who, when,
    which control or key, on what). Never an address."""

    action = UnicodeAttribute()
    chat_id = UnicodeAttribute(null=True)
    event_id = UnicodeAttribute(null=True)
    timeslot_id = UnicodeAttribute(null=True)
    target = UnicodeAttribute(null=True)  # participant key, message id or block id
    actor = UnicodeAttribute()  # o-<organizer id> | api:<key name>
    via = UnicodeAttribute()  # control | api | system
    detail = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


class HeldDueIndex(GlobalSecondaryIndex["HeldMessage"]):
    """The sparse ``due`` index again, bucket ``held``: moderation expiries."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_bucket = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class HeldMessage(Base):
    """``CH#<chat>``/``HELD#<message id>``: a message held for moderation.
    The SES job that carried it is in S3 (``held/<message id>.json``)."""

    message_id = UnicodeAttribute()
    chat_id = UnicodeAttribute()
    author_key = UnicodeAttribute()
    reason = UnicodeAttribute()  # all | first_post | hold | reported
    state = UnicodeAttribute()  # held | approved | rejected | expired
    excerpt = UnicodeAttribute(null=True)  # anonymized, short
    held_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    decided_at = UTCDateTimeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    due_bucket = UnicodeAttribute(null=True)  # "held" while undecided
    due_at = UTCDateTimeAttribute(null=True)
    expires = TTLAttribute(null=True)
    due_index = HeldDueIndex()


class Report(Base):
    """``CH#<chat>``/``REP#<message id>#<reporter key>``: one abuse report. The
    reporter stays private: the API shows counts and reasons only."""

    message_id = UnicodeAttribute()
    author_key = UnicodeAttribute()
    reporter_key = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()


class ReportTally(Base):
    """``CH#<chat>``/``REPT#<author key>``: the distinct reporters of one author."""

    reporters = UnicodeSetAttribute(null=True)


ALL_MODELS = (*ALL_MODELS, Block, BlockRef, ActionRecord, HeldMessage, Report, ReportTally)
# -- bounce scores and suppressions through the API (issue 10) ----------------------


class BounceScore(Base):
    """``SUP#<address hash>``/``SCORE``: the address's soft-bounce score (GNU
    Mailman's model). Updated with one conditional UpdateItem per notification:
    ``feedback_ids`` holds the SES feedback ids counted since the last reset, so
    a redelivered notification counts once; a score whose last bounce is older
    than the decay starts again from zero. The TTL drops stale scores."""

    score = NumberAttribute(default=0)
    last_bounce_at = UTCDateTimeAttribute(null=True)
    feedback_ids = UnicodeSetAttribute(null=True)
    expires = TTLAttribute(null=True)


class SuppressionLift(Base):
    """``SUP#<address hash>``/``LIFT``: who lifted the address's suppression last, and when."""

    by = UnicodeAttribute()  # the integration
    at = UTCDateTimeAttribute()
    reason = UnicodeAttribute(null=True)  # what was lifted


class SuppressionEntry(Base):
    """``SUPI#<integration>``/``<address hash>#<event id>#<participant key>``:
    one of an integration's own records whose address is suppressed, written at
    suppress time (and when a record is written for an address already
    suppressed). ``GET /suppressions`` is one Query of the integration's
    partition: no scan, and nothing of another integration's."""

    event_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()  # o-<organizer id> | s-<signup id>
    reason = UnicodeAttribute()
    at = UTCDateTimeAttribute()


ALL_MODELS = (*ALL_MODELS, BounceScore, SuppressionLift, SuppressionEntry)
# -- private two-person threads (issue 10): ``PT#<thread_id>`` partitions ----------


class PrivateThread(Base):
    """``PT#<thread_id>``/``META``: an organizer's private conversation with one
    participant of a chat. The thread id (and so the pair's relay address) is an
    HMAC of the chat and both keys: the same pair always gets the same thread and
    nobody can guess one. No addresses: the two members are participant keys of
    the chat, read afresh on every message (R3)."""

    thread_id = UnicodeAttribute()
    chat_id = UnicodeAttribute()
    organizer_key = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    relay_local = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    intro_pending = BooleanAttribute(null=True)  # created, intros not yet queued
    about = UnicodeAttribute(null=True)  # null: an organizer's; "ride": a ride-board pair (issue 12)
    place = UnicodeAttribute(null=True)  # a ride pair's place, as the offer named it


ALL_MODELS = (*ALL_MODELS, PrivateThread)
# -- the ride board (issue 12): ``CH#<chat>``/``RIDE#<participant key>`` ------------


class RideEntry(Base):
    """One person's ride offer or need in a chat (one at a time). An offer is
    open while ``seats_left`` > 0, a need while ``matched`` is empty; a match is one
    transaction on both entries (the offer's seat and the need's counterpart), so
    concurrent askers never take a seat twice. No addresses: participant keys."""

    chat_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    kind = UnicodeAttribute()  # offer | need
    place = UnicodeAttribute()  # as written (checked by relay.bot.place_problem)
    place_key = UnicodeAttribute()  # case- and whitespace-folded
    seats = NumberAttribute(default=0)  # offered (offers only)
    seats_left = NumberAttribute(default=0)
    matched = UnicodeSetAttribute(null=True)  # the counterparts' participant keys
    created_at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


ALL_MODELS = (*ALL_MODELS, RideEntry)


# -- next steps, announcements (issue 11) ----------------------------------------------


class ClickCount(Base):
    """``KPI#<integration>``/``D#<yyyy-mm-dd>#CH#<chat id>#L#<step id>``: clicks on
    one next step of one chat on one day (UTC), counted with an atomic ADD. A date
    range of an integration is one Query on the sort key: no scan."""

    clicks = NumberAttribute(default=0)
    event_id = UnicodeAttribute()


class Announcement(Base):
    """``MSG#<message id>``/``ANN``: an organizer's announcement into one chat,
    claimed once (conditional put) so a retried POST finds it instead of sending
    again. ``at`` fixes the message's log key (``M#<at>#<id>``) for every retry."""

    chat_id = UnicodeAttribute()
    author_key = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


ALL_MODELS = (*ALL_MODELS, ClickCount, Announcement)


# -- SMS (issue 12): ``SMS#<phone hash>`` and ``SMSIN#<inbound id>`` partitions ----------


class SmsCopy(Base):
    """``MSG#<message id>``/``SMS#<participant key>``: one text message copy (R8),
    claimed before the send like :class:`Delivery` (a ``both`` person has both)."""

    chat_id = UnicodeAttribute()
    participant_key = UnicodeAttribute()
    status = UnicodeAttribute()  # sending | sent | failed
    batch = UnicodeAttribute(null=True)
    sms_message_id = UnicodeAttribute(null=True)
    segments = NumberAttribute(default=0)
    encoding = UnicodeAttribute(null=True)
    cost = NumberAttribute(default=0)
    reason = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


class SmsOptOut(Base):
    """``SMS#<phone hash>``/``STOP``: exists while the number opted out (STOP) or
    its texts fail permanently; texts stop from every chat, mail goes on."""

    reason = UnicodeAttribute()  # stop | permanent_failure
    at = UTCDateTimeAttribute()


class SmsInbound(Base):
    """``SMSIN#<inbound message id>``/``META``: an inbound text seen (R8) and where
    it was routed, so a duplicate SNS delivery takes the same way once more."""

    phone_hash = UnicodeAttribute()
    action = UnicodeAttribute()  # relay | keyword | notice | ignored
    chat_id = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()
    expires = TTLAttribute(null=True)


class SmsSent(Base):
    """``SMSOUT#<sms message id>``/``META``: which copy a delivery event is about."""

    phone_hash = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    participant_key = UnicodeAttribute(null=True)
    expires = TTLAttribute(null=True)


ALL_MODELS = (*ALL_MODELS, SmsCopy, SmsOptOut, SmsInbound, SmsSent)
# -- insight (issue 11): KPIs kept on write, the outbox of integration events ------


class ChatKpi(Base):
    """``CH#<chat>``/``KPI``: one chat's product counters, updated atomically
    (ADD) where each fact happens. Sets hold participant keys (never
    addresses), so adding a key twice counts it once."""

    integration = UnicodeAttribute(null=True)
    event_id = UnicodeAttribute(null=True)
    timeslot_id = UnicodeAttribute(null=True)
    opened_at = UTCDateTimeAttribute(null=True)  # the first opening (kept on a reopen)
    ends_at = UTCDateTimeAttribute(null=True)
    messages = NumberAttribute(null=True)
    after_event = NumberAttribute(null=True)
    first_message_at = UTCDateTimeAttribute(null=True)
    posters = UnicodeSetAttribute(null=True)
    members = UnicodeSetAttribute(null=True)  # everyone who was sent the kickoff
    muted = UnicodeSetAttribute(null=True)
    left = UnicodeSetAttribute(null=True)
    referred = UnicodeSetAttribute(null=True)  # signups attributed to a referrer


class KpiDay(Base):
    """``KPI#<integration>``/``OPEN#<yyyy-mm-dd>#CH#<chat>``: the chat, listed under
    the day it first opened. ``GET /kpis`` is one Query of this partition."""

    chat_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    timeslot_id = UnicodeAttribute()


class SignalDueIndex(GlobalSecondaryIndex["Signal"]):
    """The sparse ``due`` index, bucket ``signals``: integration events to put."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due_bucket = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class Signal(Base):
    """``SIG#<idempotency key>``/``OUT``: one integration event waiting for
    EventBridge (the outbox). Keyed by its idempotency key, so the same fact
    written twice is one item."""

    detail_type = UnicodeAttribute()
    detail = UnicodeAttribute()  # JSON
    attempts = NumberAttribute(default=0)
    put_at = UTCDateTimeAttribute(null=True)  # when EventBridge took it (then off the index until the TTL)
    due_bucket = UnicodeAttribute(null=True)  # "signals" while owed, "signals-dead" after MAX_ATTEMPTS
    due_at = UTCDateTimeAttribute(null=True)
    expires = TTLAttribute(null=True)
    due_index = SignalDueIndex()


ALL_MODELS = (*ALL_MODELS, ChatKpi, KpiDay, Signal)
