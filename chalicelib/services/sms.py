"""Texts to Muster (issue 12): two-way SMS → SNS → here.

One deployment number serves every chat. An inbound text is, in this order:

1. **seen once** (R8): ``SMSIN#<inboundMessageId>`` is written with a
   conditional put before anything else, and holds where the text was routed,
   so a duplicate SNS delivery takes the same way again and the relay's own
   idempotency (keyed on the inbound id and the chat) relays it once;
2. a **carrier or courtesy keyword** (the whole message, any case; never
   relayed): STOP and its synonyms opt the number out everywhere and confirm
   once, START undoes it, HELP answers with the organization's name and how to
   stop, MUTE/UNMUTE act on the current chat, CHATS lists the sender's chats
   with short numbers;
3. a **bot keyword** (``_bot_answer``: ``services/bot.py``, the keyword bot and the ride board);
4. a **chat message**: ``#2 <text>`` posts to chat 2 of the CHATS list, anything
   else to the sender's most recently active open chat. The text becomes a small
   RFC 5322 message from the participant (their address, or for an SMS-only
   person the pseudo address their record is keyed by), stored at
   ``inbound/sms-<id>`` and handed to the relay as an SES-shaped job: the same
   admission (removed, blocked, rate limits, window), rendering, scrubbing
   (every participant's address and phone number) and fan-out as mail.

A refusal the relay would answer by mail (chat closed, not in this chat, …) is
answered by text, at most once a day per number; an unknown number gets one
polite notice a day. Nothing here logs a number: only its keyed hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cached_property
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.expressions.update import Action

from chalicelib import clock
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import SendFailed
from chalicelib.adapters.sms import Texter
from chalicelib.models import Chat, ChatStats, Counter, Participant, SmsInbound
from chalicelib.observability import logger, metrics
from chalicelib.relay import sms as core
from chalicelib.relay.outcomes import Outcome
from chalicelib.services import sms_optout
from chalicelib.services.admission import Job
from chalicelib.services.roster import is_active, relay_address
from chalicelib.services.sms_copies import texter
from chalicelib.settings import Settings, get_settings

RECORD_DAYS = 14
PASS = {"status": "PASS"}
# The carrier authenticated the number; the SNS topic is ours (its policy admits
# only End User Messaging SMS), so the text counts as authenticated mail.
RECEIPT = {k: PASS for k in ("spfVerdict", "dkimVerdict", "dmarcVerdict", "spamVerdict", "virusVerdict")}
NOTICES = {
    Outcome.CHAT_CLOSED: "That chat is closed, so your text was not shared.",
    Outcome.CHAT_NOT_OPEN: "That chat is not open yet, so your text was not shared.",
    Outcome.NOT_A_PARTICIPANT: "You are not in that chat, so your text was not shared.",
    Outcome.SENDER_INACTIVE: "Your signup for that shift is no longer active, so your text was not shared.",
    Outcome.SENDER_REMOVED: "An organizer removed you from that chat, so your text was not shared.",
    Outcome.RATE_LIMITED: "You have sent many texts to that chat this hour; please wait a little.",
    Outcome.TOO_LARGE: "Your text is too long to share.",
}


def _bot_answer(chat_id: str, participant_key: str, text: str) -> str | None:
    """The keyword bot (``services/bot.py``): a str is the private reply (sent
    back by text; the message is not relayed), None means "not a bot keyword"
    and the text is relayed. The whole text is the command."""
    from chalicelib.services import bot  # bot -> rides -> private -> fanout: only when a text arrives

    return bot.answer(chat_id, participant_key, text, "sms")


@dataclass(frozen=True)
class ChatRef:
    number: int  # the short number in CHATS and "#n"
    chat: Chat
    record: Participant  # the sender's record in it
    last_active: datetime


@dataclass(frozen=True)
class Inbound:
    origin: str  # E.164
    text: str
    inbound_id: str

    @classmethod
    def of(cls, message: dict[str, Any]) -> Inbound | None:
        origin, text, inbound_id = (
            message.get("originationNumber"),
            message.get("messageBody"),
            message.get("inboundMessageId"),
        )
        if (
            not isinstance(origin, str)
            or not isinstance(text, str)
            or not isinstance(inbound_id, str)
            or not inbound_id
        ):
            return None
        return cls(origin.strip(), text, inbound_id.strip())


class SmsInboundService:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        sender: Texter | None = None,
        store: MailStore | None = None,
        relay: Any = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._sender = sender
        self._store = store
        self._relay = relay

    @cached_property
    def sender(self) -> Texter:
        return self._sender or texter(self.settings)

    @cached_property
    def store(self) -> MailStore:
        return self._store or MailStore(bucket=self.settings.mail_bucket, region=self.settings.region)

    @cached_property
    def relay(self) -> Any:
        from chalicelib.services.relay import RelayService

        return self._relay or RelayService(self.settings, store=self.store)

    # -- entry --------------------------------------------------------------------

    def handle(self, message: dict[str, Any], context: Any = None) -> str:
        """One inbound text (the SNS message of two-way SMS); returns what was done."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self.relay._idempotency.register_lambda_context(context)
        inbound = Inbound.of(message)
        if inbound is None:
            logger.warning("inbound text without number, body or id; ignored")
            return "ignored"
        digest = core.phone_hash(self.settings.secret, inbound.origin)
        first, record = self._seen(inbound, digest)
        action = self._handle(inbound, digest, record, first)
        metrics.add_metric(name=f"SmsInbound_{action.split(':')[0]}", unit="Count", value=1)
        logger.info("inbound text handled", extra={"action": action, "phone_hash": digest, "duplicate": not first})
        return action

    def _seen(self, inbound: Inbound, digest: str) -> tuple[bool, SmsInbound]:
        """Claim the inbound id (True: first time); the record says when it came."""
        record = SmsInbound(
            f"SMSIN#{inbound.inbound_id}",
            "META",
            phone_hash=digest,
            action="new",
            at=clock.now(),
            expires=timedelta(days=RECORD_DAYS),
        )
        try:
            record.save(condition=SmsInbound.pk.does_not_exist())
            return True, record
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        return False, SmsInbound.get(f"SMSIN#{inbound.inbound_id}", "META", consistent_read=True)

    def _mark(self, record: SmsInbound, action: str, chat_id: str | None = None) -> None:
        actions: list[Action] = [SmsInbound.action.set(action)]
        if chat_id:
            actions.append(SmsInbound.chat_id.set(chat_id))
        record.update(actions=actions)

    def _handle(self, inbound: Inbound, digest: str, record: SmsInbound, first: bool) -> str:
        chats = self.chats_of(digest)
        word = core.keyword(inbound.text)
        if word is not None:
            return self._keyword(word, inbound, digest, chats, record, first)
        if not chats:
            if first:
                self._mark(record, "unknown")
            if self._once_a_day(f"unknown#{digest}", record.at):
                self._reply(
                    inbound.origin,
                    f"{self.settings.organization_name}: this number is not in any chat. "
                    "If you signed up for a shift, ask its organizer to add your mobile number. Reply STOP to opt out.",
                )
            return "unknown"
        if sms_optout.opted_out(digest):
            # They texted after STOP: carriers expect START first. Their text is not shared.
            if self._once_a_day(f"stopped#{digest}", record.at):
                self._reply(inbound.origin, "You opted out of texts. Reply START to get them again.")
            return "stopped"
        # The way this text goes is decided once and kept (a duplicate goes the same way).
        target, text = self._route(inbound.text, chats, record)
        if target is None:
            if first:  # a duplicate delivery answers nothing twice
                self._reply(inbound.origin, f"There is no chat {text}. " + self._list_text(chats))
            return "unknown_chat"
        if first or record.action == "new":
            answer = _bot_answer(target.chat.chat_id, target.record.participant_key, text)
            if answer is not None:
                self._mark(record, "bot", target.chat.chat_id)
                self._reply(inbound.origin, answer)
                return "bot"
            self._mark(record, "relay", target.chat.chat_id)
        elif record.action != "relay":
            return record.action  # a duplicate of something already answered
        outcome = self._relay_text(inbound, target, text, record.at)
        if outcome.may_bounce and self._once_a_day(f"notice#{digest}", record.at):
            self._reply(inbound.origin, NOTICES.get(outcome, "Your text was not shared."))
        return f"relay:{outcome.value}"

    # -- routing ---------------------------------------------------------------------

    def chats_of(self, digest: str) -> list[ChatRef]:
        """The sender's chats, numbered by shift start (stable while they last)."""
        found: dict[str, Participant] = {}
        for p in sms_optout.records(digest):
            if not p.pk.startswith("CH#"):
                continue
            current = found.get(p.pk)
            if current is None or (current.role != "organizer" and p.role == "organizer"):
                found[p.pk] = p
        if not found:
            return []
        metas = {c.pk: c for c in Chat.batch_get([(pk, "META") for pk in found])}
        stats = {s.pk: s for s in ChatStats.batch_get([(pk, "STATS") for pk in found])}
        epoch = datetime.fromtimestamp(0, UTC)
        ordered = sorted(metas.values(), key=lambda c: (c.starts_at, c.chat_id))
        refs = []
        for n, chat in enumerate(ordered, start=1):
            st = stats.get(chat.pk)
            last = (st.last_message_at if st is not None else None) or chat.opened_at or epoch
            refs.append(ChatRef(n, chat, found[chat.pk], last))
        return refs

    @staticmethod
    def _current(chats: list[ChatRef]) -> ChatRef | None:
        """The most recently active chat the sender is active in (open ones first)."""
        mine = [c for c in chats if is_active(c.record)] or chats
        if not mine:
            return None
        return max(mine, key=lambda c: (c.chat.state == "open", c.last_active, c.chat.starts_at))

    def _route(self, text: str, chats: list[ChatRef], record: SmsInbound) -> tuple[ChatRef | None, str]:
        ref = core.chat_reference(text)
        if record.chat_id:  # decided when this text was first seen
            target = next((c for c in chats if c.chat.chat_id == record.chat_id), None)
            return target, ref[1] if ref else text
        if ref is not None:
            number, body = ref
            return next((c for c in chats if c.number == number), None), body if any(
                c.number == number for c in chats
            ) else f"#{number}"
        return self._current(chats), text

    # -- keywords --------------------------------------------------------------------

    def _keyword(
        self, word: str, inbound: Inbound, digest: str, chats: list[ChatRef], record: SmsInbound, first: bool
    ) -> str:
        org = self.settings.organization_name
        if first:
            self._mark(record, f"keyword:{word.lower()}")
        if word == "STOP":
            # Idempotent; the confirmation goes once (the first STOP since the last START).
            if sms_optout.stop(digest, "stop", record.at):
                self._reply(
                    inbound.origin, f"{org}: you will get no more texts from any chat. Reply START to undo.", force=True
                )
            return "keyword:stop"
        if word == "START":
            if sms_optout.start(digest):
                self._reply(inbound.origin, f"{org}: texts are back on. Reply STOP to opt out, HELP for help.")
            return "keyword:start"
        if not first:
            return f"keyword:{word.lower()}"  # a duplicate: answered already
        if word == "HELP":
            self._reply(
                inbound.origin,
                f"{org}: texts here reach your volunteer shift chats; numbers stay hidden. CHATS lists your chats, "
                "#2 <text> writes to chat 2, MUTE pauses the current chat. Reply STOP to opt out. Msg & data rates may apply.",
                force=True,
            )
            return "keyword:help"
        if word == "CHATS":
            self._reply(inbound.origin, self._list_text(chats) if chats else f"{org}: you are in no chat right now.")
            return "keyword:chats"
        current = self._current(chats)
        if current is None:
            self._reply(inbound.origin, f"{org}: you are in no chat right now.")
            return f"keyword:{word.lower()}"
        muted = word == "MUTE"
        for p in sms_optout.records(digest):
            if p.pk == current.chat.pk:
                p.update(actions=[Participant.muted.set(muted)])
        title = core.short_title(current.chat.title)
        self._reply(
            inbound.origin,
            f"{title}: muted; you get no messages from this chat. Reply UNMUTE to follow it again."
            if muted
            else f"{title}: unmuted; you get its messages again.",
        )
        return f"keyword:{word.lower()}"

    def _list_text(self, chats: list[ChatRef]) -> str:
        current = self._current(chats)
        lines = [
            f"#{c.number} {core.short_title(c.chat.title)} {c.chat.starts_at:%a %d %b}"
            + (" (closed)" if c.chat.state in {"closed", "disabled"} else "")
            + (" <- current" if current is not None and c.chat.chat_id == current.chat.chat_id else "")
            for c in chats
        ]
        return "Your chats:\n" + "\n".join(lines) + "\nText #2 <message> to write to chat 2."

    # -- relaying ---------------------------------------------------------------------

    def _relay_text(self, inbound: Inbound, target: ChatRef, text: str, at: datetime) -> Outcome:
        chat, person = target.chat, target.record
        identity = person.email or core.pseudo_address(person.phone or inbound.origin)
        recipient = relay_address(chat, self.settings)
        ses_id = f"sms-{inbound.inbound_id}"
        raw = core.inbound_mail(
            sender=identity,
            recipient=recipient,
            text=text,
            message_id=inbound.inbound_id,
            date=format_datetime(at),
            relay_domain=self.settings.relay_domain,
        )
        self.store.put(f"inbound/{ses_id}", raw)
        job = Job(
            ses_message_id=ses_id,
            chat_key=chat.chat_id,
            recipient=recipient,
            envelope_sender=identity,
            receipt=RECEIPT,
            headers=[],  # the relay reads the stored message
            timestamp=at.isoformat(),
            sms=True,
        )
        return Outcome(self.relay._once(job=job))

    # -- replies -----------------------------------------------------------------------

    def _once_a_day(self, what: str, at: datetime) -> bool:
        try:
            Counter(f"LIM#sms#{what}#{at:%Y-%m-%d}", "ONCE", hits=1, expires=timedelta(days=2)).save(
                condition=Counter.pk.does_not_exist()
            )
            return True
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    def _reply(self, to: str, text: str, *, force: bool = False) -> None:
        """A reply to the sender (never relayed). Not after STOP, except its
        confirmation and HELP (``force``), as carriers allow."""
        if not force and sms_optout.opted_out(core.phone_hash(self.settings.secret, to)):
            return
        try:
            self.sender.send(to=to, body=text)
            metrics.add_metric(name="SmsReplies", unit="Count", value=1)
        except SendFailed as exc:
            if exc.kind != "permanent":
                raise  # SNS retries the delivery; the reply's guards keep it single
            logger.warning("reply text refused", extra={"code": exc.code})


def chat_by_id(chat_id: str) -> Chat | None:
    try:
        return Chat.get(f"CH#{chat_id}", "META")
    except DoesNotExist:
        return None
