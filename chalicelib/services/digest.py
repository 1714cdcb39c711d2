"""Daily digests: one mail a day per reader and chat instead of every copy (issue 9).

Who gets digests (:func:`wants_digest`): the person's own choice
(``Participant.delivery``: the settings page behind every footer link, or the
API), else the chat's default (``Chat.default_delivery``, from the event), else
``digest`` when the chat has more than ``MUSTER_DIGEST_ABOVE`` recipients (0
turns that off), else every message.

Data (all in the ``DIG#<chat id>#<participant key>`` partition, no addresses):

- ``M#<message id>`` (:class:`~chalicelib.models.DigestEntry`): a relayed
  message owed to this reader. Fan-out writes it (:meth:`DigestService.defer`,
  conditional on it not existing) instead of sending a copy. After the digest
  went out it stays as a tombstone (``digest`` set, TTL 30 days), so a retried
  fan-out cannot owe the message again.
- ``DUE`` (:class:`~chalicelib.models.DigestDue`): when the next digest goes,
  on the sparse ``due`` index under ``due_bucket = "digest"`` (the sweeper
  queries ``"due"``). The job finds its work with one Query: no scan.
- ``D#<digest day>#<part>`` (:class:`~chalicelib.models.DigestClaim`): the
  claim, a conditional write *before* the send, like fan-out's per-copy claim.

When: a message deferred before ``MUSTER_DIGEST_HOUR`` (default 18) in the
chat's time zone is due at that hour today, otherwise at that hour tomorrow.
The ``digest`` function runs every 15 minutes and sends every digest that is
due, so a digest leaves within 15 minutes of the hour; "that day's messages"
are the ones that arrived since the previous digest. The digest day (the claim's
key, and the date the mail shows) is the local date of the due time.

Exactly once (R8): a duplicate or concurrent run finds the claim and sends
nothing; a claim left ``sending`` by a crash lapses after ``LEASE_SECONDS``
and the next run sends those same messages (a crash can repeat at most the
digest in flight). After the send the claim records the SES id, then the
entries are marked; a run that finds a finished claim only finishes the
marking. A digest is at most ``MAX_MESSAGES`` messages and ``MAX_BYTES``; more
go in part 2, 3, ... the same run.

Nothing lost (R9): a throttled send releases its claim and stays due (the next
run retries); a deployment-wide SES error (permissions, a paused account) stops
the run, releases the claim and raises, so the invocation fails (alarm) and the
next run retries; only a refusal of this recipient is recorded as failed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_time
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.adapters import aws
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.models import Chat, DigestClaim, DigestDue, DigestEntry, MessageMeta, Participant
from chalicelib.observability import logger, metrics, traced
from chalicelib.relay.addresses import transport_address
from chalicelib.relay.digest import DigestMessage, render_digest
from chalicelib.services.links import mute_url
from chalicelib.services.pacing import SendPacer
from chalicelib.services.referrals import invite_link
from chalicelib.services.roster import email_reachable, reachable
from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from chalicelib.relay.context import ChatContext

Delivery = Literal["each", "digest"]
DELIVERY_MODES: tuple[str, ...] = ("each", "digest")
DIGEST = "digest"  # the due_bucket of digest work on the `due` index
ENTRY_DAYS = 30
CLAIM_DAYS = 90
# Longer than the digest function's timeout (infra: 300 s): a claim that old
# belongs to a run that died.
LEASE_SECONDS = 600
MAX_MESSAGES = 50
MAX_BYTES = 16 * 1024 * 1024  # per digest; SES v2 takes 40 MB
MAX_PARTS = 10  # per reader and run; the rest goes on in the next run
WORKERS = 4  # digests in flight per run (each up to MAX_BYTES, ~4x that in memory)
SOURCE_CACHE_BYTES = 64 * 1024 * 1024
PENDING_PAGE = 100  # entries read per request when looking for any pending one


class DigestsParked(Exception):
    """SES refused the deployment's sends: the run stopped, nothing is lost."""


class _Halt(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def effective_delivery(p: Participant, chat: Chat, chat_size: int, settings: Settings) -> Delivery:
    """How ``p`` follows ``chat``: their choice, the chat's default, then the size rule."""
    for choice in (p.delivery, getattr(chat, "default_delivery", None)):
        if choice in DELIVERY_MODES:
            return choice  # type: ignore[return-value]
    if settings.digest_above and chat_size > settings.digest_above:
        return "digest"
    return "each"


def wants_digest(p: Participant, chat: Chat, chat_size: int, settings: Settings) -> bool:
    """Whether ``p`` gets this chat as a daily digest instead of every copy."""
    return effective_delivery(p, chat, chat_size, settings) == "digest"


def next_digest_at(now: datetime, timezone: str, hour: int) -> datetime:
    """The first ``hour``:00 in ``timezone`` after ``now`` (today's, or tomorrow's
    once it has passed), in UTC."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), day_time(hour), tzinfo=zone)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), day_time(hour), tzinfo=zone)
    return at.astimezone(now.tzinfo)


def digest_pk(chat_id: str, participant_key: str) -> str:
    return f"DIG#{chat_id}#{participant_key}"


@dataclass
class DigestRun:
    due: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    busy: int = 0
    later: int = 0
    messages: int = 0
    errors: int = 0
    halted: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int | str | None]:
        return {
            k: getattr(self, k)
            for k in ("due", "sent", "failed", "skipped", "busy", "later", "messages", "errors", "halted")
        }


@dataclass(frozen=True)
class _Reader:
    """One reader's digest work in one run: what every part of it shares."""

    chat: Chat
    person: Participant
    pk: str
    day: date
    now: datetime
    deadline: float | None
    sources: _Sources
    result: DigestRun


class _Sources:
    """Stored copies and their ancestry, read once per run (many readers share them)."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self._blobs: OrderedDict[str, bytes | None] = OrderedDict()
        self._size = 0
        self._ancestors: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def copy(self, message_id: str) -> bytes | None:
        with self._lock:
            if message_id in self._blobs:
                self._blobs.move_to_end(message_id)
                return self._blobs[message_id]
        try:
            data: bytes | None = self.store.get(f"outbound/{message_id}.eml")
        except Exception as exc:
            if aws.error_code(exc) not in {"NoSuchKey", "404", "NotFound"}:
                raise
            data = None  # expired (the bucket keeps outbound mail 14 days)
        with self._lock:
            if message_id not in self._blobs:
                self._blobs[message_id] = data
                self._size += len(data or b"")
                while self._size > SOURCE_CACHE_BYTES and len(self._blobs) > 1:
                    _, old = self._blobs.popitem(last=False)
                    self._size -= len(old or b"")
        return data

    def ancestors(self, message_id: str) -> tuple[str, ...]:
        with self._lock:
            if message_id in self._ancestors:
                return self._ancestors[message_id]
        try:
            found = tuple(str(a) for a in MessageMeta.get(f"MSG#{message_id}", "META").ancestors)
        except DoesNotExist:
            found = ()
        with self._lock:
            self._ancestors[message_id] = found
        return found


class DigestService:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        mailer: Mailer | None = None,
        store: MailStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)
        self.store = store or MailStore(bucket=self.settings.mail_bucket)

    # -- the fan-out side --------------------------------------------------------

    def defer(self, chat: Chat, message_id: str, people: list[Participant]) -> None:
        """Owe ``message_id`` to each of ``people`` in their next digest.

        Idempotent: a retried fan-out finds the entries (even ones already sent
        in a digest) and owes nothing twice."""
        if not people:
            return
        now = clock.now()
        due_at = next_digest_at(now, chat.timezone, self.settings.digest_hour)

        def one(p: Participant) -> None:
            pk = digest_pk(chat.chat_id, p.participant_key)
            entry = DigestEntry(
                pk,
                f"M#{message_id}",
                chat_id=chat.chat_id,
                participant_key=p.participant_key,
                message_id=message_id,
                at=now,
                expires=timedelta(days=ENTRY_DAYS),
            )
            try:
                entry.save(condition=DigestEntry.pk.does_not_exist())
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
            # After the entry: a run that clears the due item then finds the entry.
            self._schedule(pk, chat.chat_id, p.participant_key, due_at)

        unique = list({p.participant_key: p for p in people}.values())
        if len(unique) <= 2:
            for p in unique:
                one(p)
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(unique))) as pool:
                for future in [pool.submit(one, p) for p in unique]:
                    future.result()
        metrics.add_metric(name="DigestDeferred", unit="Count", value=len(unique))

    @staticmethod
    def _schedule(pk: str, chat_id: str, participant_key: str, due_at: datetime) -> None:
        """Put the reader on the ``due`` index at ``due_at``, unless they are due sooner."""
        try:
            DigestDue(pk, "DUE").update(
                actions=[
                    DigestDue.chat_id.set(chat_id),
                    DigestDue.participant_key.set(participant_key),
                    DigestDue.due_bucket.set(DIGEST),
                    DigestDue.due_at.set(due_at),
                ],
                condition=DigestDue.due_at.does_not_exist() | (DigestDue.due_at > due_at),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    # -- the job -----------------------------------------------------------------

    @cached_property
    def pacer(self) -> SendPacer:
        rate = self.settings.max_send_rate or self.mailer.max_send_rate(self.settings.send_rate_fallback)
        return SendPacer(rate)

    def run(self, now: datetime | None = None, *, deadline: float | None = None) -> DigestRun:
        """Send every digest that is due; start none after ``deadline`` (epoch seconds)."""
        with traced("digest") as annotate:
            result = self._run(now or clock.now(), deadline)
            annotate("digests_sent", str(result.sent))
        if result.sent:
            metrics.add_metric(name="DigestsSent", unit="Count", value=result.sent)
            metrics.add_metric(name="DigestMessages", unit="Count", value=result.messages)
        if result.failed:
            metrics.add_metric(name="DigestsFailed", unit="Count", value=result.failed)
        if result.halted:
            metrics.add_metric(name="SendsHalted", unit="Count", value=1)
            logger.error("SES refused the deployment's sends; digests parked", extra={"code": result.halted})
            raise DigestsParked(f"SES {result.halted}: digests stay due and go on the next run")
        if result.errors:
            raise RuntimeError(f"{result.errors} digests failed unexpectedly; they stay due")
        return result

    def _run(self, now: datetime, deadline: float | None) -> DigestRun:
        result = DigestRun()
        keys = [item.pk for item in DigestDue.due_index.query(DIGEST, DigestDue.due_at <= now)]
        result.due = len(keys)
        if not keys:
            return result
        sources = _Sources(self.store)
        chats: dict[str, Chat | None] = {}
        work = deque(dict.fromkeys(keys))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if result.halted or not work:
                        return
                    if deadline is not None and time.time() >= deadline:
                        result.later += len(work)
                        work.clear()
                        return
                    pk = work.popleft()
                try:
                    self._reader(pk, now, deadline, sources, chats, result)
                except _Halt as halt:
                    with lock:
                        result.halted = halt.code
                except Exception:
                    logger.exception("digest failed", extra={"digest": pk.split("#", 2)[1]})
                    result.add(errors=1)

        workers = max(1, min(WORKERS, self.settings.send_concurrency, len(work)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
        return result

    def _chat(self, chat_id: str, chats: dict[str, Chat | None]) -> Chat | None:
        if chat_id not in chats:
            try:
                chats[chat_id] = Chat.get(f"CH#{chat_id}", "META")
            except DoesNotExist:
                chats[chat_id] = None
        return chats[chat_id]

    @staticmethod
    def _pending(pk: str, limit: int | None = None) -> list[DigestEntry]:
        return list(
            DigestEntry.query(
                pk,
                DigestEntry.sk.startswith("M#"),
                filter_condition=DigestEntry.digest.does_not_exist(),
                consistent_read=True,
                limit=limit,
                # PynamoDB pages by ``limit`` by default: with the filter that would be
                # one request per tombstone before the first pending entry.
                page_size=None if limit is None else PENDING_PAGE,
            )
        )

    @staticmethod
    def _mark(pk: str, message_ids: Iterable[str], tag: str) -> None:
        for message_id in message_ids:
            try:
                DigestEntry(pk, f"M#{message_id}").update(
                    actions=[DigestEntry.digest.set(tag)], condition=DigestEntry.pk.exists()
                )
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise

    def _settle(self, due: DigestDue, now: datetime, chat: Chat | None) -> None:
        """Take the reader off the index; back on it if messages arrived meanwhile."""
        try:
            DigestDue(due.pk, "DUE").update(
                actions=[DigestDue.due_bucket.remove(), DigestDue.due_at.remove()],
                condition=DigestDue.due_at == due.due_at,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return  # moved by someone else: theirs to finish
        if chat is not None and self._pending(due.pk, limit=1):
            when = next_digest_at(now, chat.timezone, self.settings.digest_hour)
            self._schedule(due.pk, due.chat_id, due.participant_key, when)

    def _reader(
        self,
        pk: str,
        now: datetime,
        deadline: float | None,
        sources: _Sources,
        chats: dict[str, Chat | None],
        result: DigestRun,
    ) -> None:
        try:
            due = DigestDue.get(pk, "DUE", consistent_read=True)
        except DoesNotExist:
            return
        if due.due_bucket != DIGEST or due.due_at is None or due.due_at > now:
            return  # done by a concurrent run (the index lags the table)
        chat = self._chat(due.chat_id, chats)
        try:
            person: Participant | None = Participant.get(
                f"CH#{due.chat_id}", f"P#{due.participant_key}", consistent_read=True
            )
        except DoesNotExist:
            person = None
        if chat is None or person is None or not reachable(person) or not email_reachable(person):
            # Muted, left, suppressed or no longer signed up: owed nothing (R3).
            pending = self._pending(pk)
            self._mark(pk, (e.message_id for e in pending), "skipped")
            self._settle(due, now, None)
            result.add(skipped=1)
            return
        day = due.due_at.astimezone(ZoneInfo(chat.timezone)).date()
        reader = _Reader(chat, person, pk, day, now, deadline, sources, result)
        for part in range(1, MAX_PARTS + 1):
            outcome = self._part(reader, part)
            if outcome == "empty":
                self._settle(due, now, chat)
                return
            if outcome in ("busy", "later"):
                result.add(**{outcome: 1})
                return
        result.add(later=1)  # more parts than one run sends: the next run goes on

    def _part(self, r: _Reader, part: int) -> str:
        """One digest mail: "sent", "failed", "done" (finished earlier), "empty",
        "busy" (another run has it) or "later" (retry next run)."""
        pk, day, now = r.pk, r.day, r.now
        sk = f"D#{day.isoformat()}#{part}"
        tag = f"{day.isoformat()}#{part}"
        try:
            claim: DigestClaim | None = DigestClaim.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            claim = None
        stamp = int(now.timestamp())
        if claim is not None:
            if claim.state in ("sent", "failed"):
                self._mark(pk, [str(m) for m in claim.messages], tag)  # a run that stopped before marking
                return "done"
            if claim.lease_until >= stamp:
                return "busy"
            ids = [str(m) for m in claim.messages]  # a run that died: the same messages again
        else:
            ids = [e.message_id for e in self._pending(pk)[:MAX_MESSAGES]]
            if not ids:
                return "empty"
        lease = stamp + LEASE_SECONDS
        try:
            DigestClaim(
                pk, sk, state="sending", lease_until=lease, messages=ids, at=now, expires=timedelta(days=CLAIM_DAYS)
            ).save(
                condition=DigestClaim.pk.does_not_exist()
                | ((DigestClaim.state == "sending") & (DigestClaim.lease_until < stamp))
            )
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return "busy"
            raise
        try:
            return self._send(r, sk, tag, ids, lease, part)
        except Exception:  # _Halt too: nothing went out, the next run takes it
            self._release(pk, sk, lease)
            raise

    def _send(self, r: _Reader, sk: str, tag: str, ids: list[str], lease: int, part: int) -> str:
        chat, person, pk, day, sources, result = r.chat, r.person, r.pk, r.day, r.sources, r.result
        messages: list[DigestMessage] = []
        kept: list[str] = []
        missing: list[str] = []
        total = 0
        for message_id in ids:
            data = sources.copy(message_id)
            if data is None:
                missing.append(message_id)
                continue
            if kept and total + len(data) > MAX_BYTES:
                break  # the rest stays pending: the next part
            messages.append(DigestMessage(data, sources.ancestors(message_id)))
            kept.append(message_id)
            total += len(data)
        if missing:
            logger.warning("digest messages no longer stored", extra={"count": len(missing)})
            self._mark(pk, missing, "missing")
        if not kept:
            self._finish(pk, sk, state="failed", ses_id=None, reason="missing", kept=[])
            return "done"

        ctx = self._context(chat)
        raw = render_digest(
            chat=ctx,
            messages=messages,
            timezone=chat.timezone,
            day=day,
            mute_url=mute_url(self.settings, chat.chat_id, person.participant_key),
            message_id=self._digest_id(chat.chat_id, person.participant_key, day, part),
            sent_at=clock.now(),
            digest_hour=self.settings.digest_hour,
            part=part,
            invite_url=invite_link(
                self.settings, chat.invite_url, chat.integration, chat.event_id, person.participant_key
            ),
        )
        if not self.pacer.acquire(r.deadline):
            self._release(pk, sk, lease)
            return "later"
        to = transport_address(person.email)
        try:
            if to is None:
                raise SendFailed("NeedsSmtpUtf8", "permanent")  # SES cannot send to it
            ses_id = self.mailer.send_raw(sender=ctx.relay_address, recipient=to, raw=raw)
        except SendFailed as exc:
            if exc.kind == "permanent":
                logger.warning(
                    "permanent digest failure",
                    extra={"chat_id": chat.chat_id, "participant": person.participant_key, "code": exc.code},
                )
                self._finish(pk, sk, state="failed", ses_id=None, reason=exc.code, kept=kept)
                self._mark(pk, kept, tag)
                result.add(failed=1)
                return "failed"
            self._release(pk, sk, lease)
            if exc.kind == "deployment":
                raise _Halt(exc.code) from exc
            return "later"
        self._finish(pk, sk, state="sent", ses_id=ses_id, reason=None, kept=kept)
        self._mark(pk, kept, tag)
        result.add(sent=1, messages=len(kept))
        return "sent"

    @staticmethod
    def _finish(pk: str, sk: str, *, state: str, ses_id: str | None, reason: str | None, kept: list[str]) -> None:
        DigestClaim(pk, sk).update(
            actions=[
                DigestClaim.state.set(state),
                DigestClaim.messages.set(kept),  # type: ignore[arg-type]
                DigestClaim.ses_message_id.set(ses_id) if ses_id else DigestClaim.ses_message_id.remove(),
                DigestClaim.reason.set(reason) if reason else DigestClaim.reason.remove(),
            ]
        )

    @staticmethod
    def _release(pk: str, sk: str, lease: int) -> None:
        """Give up our claim at once (nothing was sent): lease 0, so the next run
        takes it over with the same messages."""
        try:
            DigestClaim(pk, sk).update(
                actions=[DigestClaim.lease_until.set(0)],
                condition=(DigestClaim.state == "sending") & (DigestClaim.lease_until == lease),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def _digest_id(self, chat_id: str, participant_key: str, day: date, part: int) -> str:
        digest = hashlib.sha256(f"{chat_id}\x1f{participant_key}\x1f{day}\x1f{part}".encode()).hexdigest()[:24]
        return f"<digest-{digest}@{self.settings.relay_domain}>"

    def _context(self, chat: Chat) -> ChatContext:
        # Imported here: fan-out imports this module (it defers digest readers).
        from chalicelib.services.copies import chat_context

        return chat_context(chat, self.settings)
