"""Relay inbound mail to a chat (R3-R12).

Envelope and header rules, in short:

- The SES receipt rule stores the raw MIME at ``inbound/<SES messageId>`` and then
  invokes us with the verdicts and the headers. Each (SES message, chat) is
  handled once (Powertools idempotency keyed on the *chat*, so two spellings of
  one chat address in one message are one job), whatever SES retries.
- Every id derives from the inbound message: the Muster message id is the SES
  receipt time plus a digest of (SES id, chat), so a retried invocation redoes
  the same work under the same ids instead of new work (R8). The message log
  entry is written *before* the fan-out in state ``relaying`` and finished
  after it, together with the chat's counters, in one transaction: a retry
  finds the entry and either returns its outcome or resumes the fan-out, whose
  batches and copies are claimed per recipient (see fanout).
- What can be decided from SES's verdicts and the headers SES sends is decided
  before the raw mail is downloaded or parsed; header sizes and MIME part counts
  are capped before any full parse (R12).
- The chat comes from the recipient's local part (case-insensitive, ``+tag``
  ignored); the sender is the header From, matched by address hash among that
  chat's participants (one query returns them all). A From that is not exactly
  one well-formed address is refused, never guessed. A local part ending in a
  private thread's id (:mod:`chalicelib.services.private`) names that thread of
  its chat: the same path, but only its two members may post, the copy goes to
  the other one only, under the thread's own address and subject prefix.
- :func:`chalicelib.relay.policy.authorize` decides; rate limits and caps come
  from counters here. Every decision is an :class:`Outcome`, logged (metadata
  only) and counted; a render failure too (R9). A polite notice goes only to an
  address that authenticated, at most once a day per receiving address, and
  quotes nothing the sender wrote (R6).
- A relayed message is anonymized once and stored at ``outbound/<id>.eml``; its
  recipients go to SQS in batches (see :mod:`chalicelib.services.fanout`).
  Attachments over the inline budget are stored once before that, at
  ``files/<id>/<n>``, and each copy carries a signed link instead
  (:mod:`chalicelib.services.files`).
- Threading: inbound In-Reply-To/References are mapped to Muster's own
  Message-IDs through our own id format, the SES MessageId of each delivered copy
  (SES rewrites Message-ID) and the author's client Message-ID.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.adapters import aws
from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import Mailer
from chalicelib.models import Chat, ChatStats, MessageLog, MessageMeta, Participant, PrivateThread, transactions
from chalicelib.observability import logger, metrics, traced
from chalicelib.relay import anonymize
from chalicelib.relay.addresses import normalize_address, relay_local_part
from chalicelib.relay.names import display_name
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import verdicts_from_ses
from chalicelib.services import files, kpis, signals
from chalicelib.services.admission import Admission, Decision, Job
from chalicelib.services.bot import Bot
from chalicelib.services.copies import chat_context
from chalicelib.services.fanout import FanOut
from chalicelib.services.moderation import Moderation, hold_reason
from chalicelib.services.notices import Notices
from chalicelib.services.private import (
    pair_recipients,
    private_context,
)
from chalicelib.services.roster import chat_id_from_local, participants, recipients
from chalicelib.services.threads import Threads
from chalicelib.settings import Settings, get_settings

LOG_DAYS = 90

__all__ = ["Decision", "Job", "RelayService"]


class RelayService(Admission):
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: MailStore | None = None,
        fanout: FanOut | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or MailStore(bucket=self.settings.mail_bucket, region=self.settings.region)
        self.fanout = fanout or FanOut(self.settings)
        self.mailer = mailer or Mailer(configuration_set=self.settings.configuration_set)
        self.threads = Threads(self.settings.relay_domain)
        self.notices = Notices(self.settings, self.mailer)

    # -- entry -----------------------------------------------------------------

    def handle_ses_event(self, event: dict[str, Any], context: Any = None) -> list[str]:
        """One SES receipt event; one outcome per (message, chat)."""
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            self._idempotency.register_lambda_context(context)
        outcomes: list[str] = []
        for record in event.get("Records", []):
            ses = record.get("ses", {})
            mail, receipt = ses.get("mail", {}), ses.get("receipt", {})
            seen: set[str] = set()
            for recipient in receipt.get("recipients") or mail.get("destination") or []:
                local = relay_local_part(recipient, self.settings.relay_domain)
                if local is None:
                    continue  # a Cc to some other domain: not ours to handle
                chat_key = chat_id_from_local(local)
                if chat_key in seen:
                    continue  # the same chat spelled twice: one job (R8)
                seen.add(chat_key)
                job = Job(
                    ses_message_id=str(mail.get("messageId", "")),
                    chat_key=chat_key,
                    recipient=normalize_address(recipient),
                    envelope_sender=str(mail.get("source") or ""),
                    receipt=receipt,
                    headers=list(mail.get("headers") or []),
                    timestamp=str(mail.get("timestamp") or ""),
                    headers_truncated=bool(mail.get("headersTruncated")),
                )
                outcomes.append(self._once(job=job))
        return outcomes

    @cached_property
    def _idempotency(self) -> Any:
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

        return IdempotencyConfig(event_key_jmespath="[ses_message_id, chat_key]", expires_after_seconds=7 * 86400)

    @cached_property
    def _once(self) -> Callable[..., str]:
        """``relay_one`` behind Powertools idempotency keyed on (SES id, chat)."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function

        layer = DynamoDBPersistenceLayer(
            table_name=self.settings.idempotency_table_name, boto3_client=aws.client("dynamodb")
        )

        @idempotent_function(data_keyword_argument="job", persistence_store=layer, config=self._idempotency)
        def once(job: Job) -> str:
            return self.relay_one(job).value

        return once

    # -- one message to one chat -------------------------------------------------

    def relay_one(self, job: Job) -> Outcome:
        with traced("relay") as annotate:
            outcome = self._relay_one(job)
            annotate("outcome", outcome.value)
            return outcome

    def relay_approved(self, job: Job) -> Outcome:
        """Relay a held message an organizer approved (R15): decided afresh (the
        author may have been removed since), never held again, and fanned out
        once however many approvals race (the log leaves ``held`` on one
        conditional write)."""
        with traced("relay_approved") as annotate:
            outcome = self._relay_one(job, approved=True)
            annotate("outcome", outcome.value)
            return outcome

    @cached_property
    def moderation(self) -> Moderation:
        return Moderation(self.settings, mailer=self.mailer, store=self.store)

    def _log_key(self, job: Job, chat: Chat | None) -> tuple[str, str]:
        when = job.received_at
        pk = f"CH#{chat.chat_id}" if chat else f"UNROUTED#{when:%Y-%m-%d}"
        return pk, f"M#{when.isoformat()}#{job.message_id}"

    def _relay_one(self, job: Job, *, approved: bool = False) -> Outcome:
        started = time.monotonic()
        chat, pair = self._route(job.chat_key)
        pk, sk = self._log_key(job, chat)
        try:
            done = MessageLog.get(pk, sk, consistent_read=True)
        except DoesNotExist:
            done = None
        if approved and done is None:
            return Outcome.CHAT_NOT_FOUND  # nothing was held under this id
        if done is not None and not (approved and done.outcome == Outcome.HELD.value):
            # A retry of work that got this far: finish it, never redo it.
            if done.state == "relaying" and chat is not None:
                self._resume(job, done, chat, pair)
            return Outcome(done.outcome)

        now = clock.now()
        decision = self._decide(job, chat, now, pair)
        outcome = decision.outcome
        if outcome is Outcome.RELAYED and pair is None and not approved:
            outcome = self._ask_bot(job, decision, now)  # issue 12: answered privately, not relayed
        rendered: anonymize.Rendered | None = None
        ancestors: list[str] = []
        if outcome is Outcome.RELAYED:
            assert chat is not None
            # Lookups first, outside the render's guard: a DynamoDB hiccup there
            # must retry, not become a rejection.
            ancestors = self.threads.ancestors(decision.mail, chat.chat_id)
            try:
                rendered = self._render(job, decision, now)
            except Exception:
                logger.exception("render failed", extra={"chat_id": job.chat_key})
                outcome = Outcome.RENDER_FAILED
        hold = None
        if outcome is Outcome.RELAYED and not approved:
            assert chat is not None and decision.author is not None
            # A private conversation has an organizer on its other side: never held.
            hold = hold_reason(chat, decision.author) if pair is None else None
            outcome = Outcome.HELD if hold else outcome
        people = self._recipients(decision.people, decision.author, pair) if outcome is Outcome.RELAYED else []
        if outcome is Outcome.RELAYED:
            assert chat is not None
            outcome = self._limits(decision.sender_hash or "", chat, len(people), now)
        log = MessageLog(
            pk,
            sk,
            message_id=job.message_id,
            chat_id=chat.chat_id if chat else None,
            outcome=outcome.value,
            state="relaying" if outcome is Outcome.RELAYED else "done",
            sender_hash=decision.sender_hash,
            author_key=decision.author.participant_key if decision.author else None,
            size=decision.mail.size,
            recipients=len(people) if outcome is Outcome.RELAYED else 0,
            ses_message_id=job.ses_message_id,
            received_at=now,
            expires=timedelta(days=LOG_DAYS),
        )
        if outcome is Outcome.RELAYED:
            assert chat is not None and rendered is not None and decision.author is not None
            log.parent_id = ancestors[-1] if ancestors else None
            log.rendered_size = len(rendered.message)
            self._store(job, decision, rendered, ancestors)
            if not self._save_log(log, approved):
                return Outcome.HELD  # another approval is relaying it
            self._fan_out(job, chat, decision.author.participant_key, people, len(rendered.message), ancestors, pair)
            self._finish(log, chat, now, private=pair is not None)
            self._trust(chat, decision.author)
            metrics.add_metric(name="FanOutSize", unit="Count", value=len(people))
        elif outcome is Outcome.HELD:
            assert chat is not None and rendered is not None and decision.author is not None and hold
            self.moderation.hold(
                job=asdict(job),
                message_id=job.message_id,
                chat=chat,
                author=decision.author,
                people=decision.people,
                rendered=rendered.message,
                reason=hold,
                now=now,
            )
            log.save()
        else:
            if outcome.may_bounce and not job.sms:  # a text's notice goes back by text (services/sms.py)
                log.bounced = self.notices.send(
                    outcome,
                    verdicts=verdicts_from_ses(job.receipt),
                    mail=decision.mail,
                    envelope_sender=job.envelope_sender,
                    chat=chat,
                    chat_address=job.recipient,
                    notice_id=self.threads.muster_id(f"notice-{job.message_id}"),
                    now=now,
                )
            if not self._save_log(log, approved):
                return Outcome.HELD
        name = {Outcome.RELAYED: "Relayed", Outcome.HELD: "Held", Outcome.BOT_ANSWERED: "BotAnswered"}.get(
            outcome, f"Rejected_{outcome.value}"
        )
        metrics.add_metric(name=name, unit="Count", value=1)
        metrics.add_metric(name="RelayLatency", unit="Milliseconds", value=(time.monotonic() - started) * 1000)
        logger.info(
            "inbound handled",
            extra={
                "outcome": outcome.value,
                "chat_id": chat.chat_id if chat else None,
                "sender_hash": decision.sender_hash,
                "size": decision.mail.size,
                "recipients": len(people),
            },
        )
        return outcome

    @cached_property
    def bot(self) -> Bot:
        return Bot(self.settings, self.mailer, self.fanout)

    def _ask_bot(self, job: Job, d: Decision, now: datetime) -> Outcome:
        """A keyword or ride command (subject or first line) is answered to its
        author alone, once, and never relayed; it counts against the sender's
        hourly limit like a post (R12). RELAYED: not a command."""
        assert d.chat is not None and d.author is not None
        found = self.bot.command_of_mail(d.chat, d.mail)
        if found is None:
            return Outcome.RELAYED
        limited = self._limits(d.sender_hash or "", d.chat, 1, now)
        if limited is not Outcome.RELAYED:
            return limited
        self.bot.answer_mail(
            chat=d.chat,
            author=d.author,
            found=found,
            mail=d.mail,
            message_id=job.message_id,
            muster_id=self.threads.muster_id(f"bot-{job.message_id}"),
            now=now,
        )
        return Outcome.BOT_ANSWERED

    def settle_held(self, job: Job, outcome: Outcome) -> bool:
        """A held message's log entry ends as ``outcome`` (declined or expired): R9's
        recorded reason. False if it was not held any more."""
        chat, _ = self._route(job.chat_key)
        pk, sk = self._log_key(job, chat)
        try:
            MessageLog(pk, sk).update(
                actions=[MessageLog.outcome.set(outcome.value)], condition=MessageLog.outcome == Outcome.HELD.value
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        metrics.add_metric(name=f"Rejected_{outcome.value}", unit="Count", value=1)
        return True

    @staticmethod
    def _save_log(log: MessageLog, approved: bool) -> bool:
        """Save the log entry; an approved message's only while it is still held
        (False: another approval got there first)."""
        if not approved:
            log.save()
            return True
        try:
            log.save(condition=MessageLog.outcome == Outcome.HELD.value)
            return True
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise

    @staticmethod
    def _trust(chat: Chat, author: Participant) -> None:
        """First-post moderation holds a person until one of their posts was shared."""
        if chat.moderation == "first_post" and not author.trusted and author.role != "organizer":
            author.update(actions=[Participant.trusted.set(True)])

    def _render(self, job: Job, d: Decision, now: datetime) -> anonymize.Rendered:
        """The one anonymized copy (pure: every failure here is the message's)."""
        assert d.chat is not None and d.author is not None

        def person(p: Participant) -> anonymize.Person:
            return anonymize.Person(
                key=p.participant_key,
                display_name=display_name(p.first_name, p.last_name, organizer=p.role == "organizer"),
                addresses=(p.email,) if p.email else (),
                phones=(p.phone,) if p.phone else (),
            )

        return anonymize.render(
            d.mail,
            author=person(d.author),
            people=[person(p) for p in d.people],
            chat=self._context(d.chat, d.pair),
            message_id=self.threads.muster_id(job.message_id),
            # Each reader's copy gets its own In-Reply-To and References (fanout).
            in_reply_to=None,
            references=[],
            date=now,
            files=files.links(self.settings, job.message_id, now),
        )

    def _store(self, job: Job, d: Decision, rendered: anonymize.Rendered, ancestors: list[str]) -> None:
        """Store the linked files, the rendered message and what threading needs
        to know of it (every key derives from the message: a retry rewrites the same)."""
        assert d.chat is not None and d.author is not None
        files.store(self.store, job.message_id, rendered.files)
        if rendered.files:
            metrics.add_metric(name="AttachmentsLinked", unit="Count", value=len(rendered.files))
        self.store.put(f"outbound/{job.message_id}.eml", rendered.message)
        self.threads.remember(
            job.message_id,
            chat_id=d.chat.chat_id,
            author_key=d.author.participant_key,
            author_hash=d.author.address_hash,
            client_id=d.mail.message_id,
            ancestors=ancestors,
        )

    def _fan_out(
        self,
        job: Job,
        chat: Chat,
        author_key: str,
        people: list[Participant],
        size: int,
        ancestors: list[str],
        pair: PrivateThread | None = None,
    ) -> None:
        self.fanout.relay(
            chat,
            job.message_id,
            f"outbound/{job.message_id}.eml",
            author_key,
            [p.participant_key for p in people],
            size,
            ancestors=ancestors,
            context=private_context(chat, pair, self.settings) if pair is not None else None,
        )

    def _context(self, chat: Chat, pair: PrivateThread | None) -> anonymize.ChatContext:
        """The chat's addressing, or the private thread's (its address, its prefix)."""
        return private_context(chat, pair, self.settings) if pair is not None else chat_context(chat, self.settings)

    @staticmethod
    def _recipients(
        people: list[Participant], author: Participant | None, pair: PrivateThread | None
    ) -> list[Participant]:
        """Everyone else in the chat, or in a private thread the other member only."""
        if pair is not None:
            return pair_recipients(pair, people, author) if author is not None else []
        return recipients(people, exclude_hash=author.address_hash if author else None)

    def _resume(self, job: Job, log: MessageLog, chat: Chat, pair: PrivateThread | None = None) -> None:
        """Queue a relayed message's fan-out again and finish its log entry.

        The rendered copy is in S3; recipients are read afresh (someone who muted
        since is skipped), and every copy is claimed once, so nobody gets two."""
        people = participants(chat.chat_id)
        author = next((p for p in people if p.participant_key == log.author_key), None)
        exclude = author.address_hash if author else log.sender_hash
        targets = (
            self._recipients(people, author, pair) if pair is not None else recipients(people, exclude_hash=exclude)
        )
        try:
            ancestors = [str(a) for a in MessageMeta.get(f"MSG#{job.message_id}", "META").ancestors]
        except DoesNotExist:
            ancestors = []
        self._fan_out(job, chat, log.author_key or "", targets, int(log.rendered_size or 0), ancestors, pair)
        self._finish(log, chat, log.received_at, private=pair is not None)
        metrics.add_metric(name="RelaysResumed", unit="Count", value=1)

    @property
    def _transactions(self) -> Connection:
        return transactions()

    def _finish(self, log: MessageLog, chat: Chat, now: datetime, *, private: bool = False) -> None:
        """Mark the log entry relayed and count it in the chat's stats: one
        transaction, conditional on the entry still relaying, so a retry that
        gets here again counts nothing twice."""
        actions: list[Action] = [
            ChatStats.messages.add(1),
            ChatStats.last_message_at.set(now),
            ChatStats.first_message_at.set(ChatStats.first_message_at | now),
        ]
        if now > chat.ends_at:
            actions.append(ChatStats.after_event.add(1))
        try:
            with TransactWrite(connection=self._transactions) as tx:
                tx.update(
                    MessageLog(log.pk, log.sk),
                    actions=[MessageLog.state.set("done")],
                    condition=MessageLog.state == "relaying",
                )
                tx.update(ChatStats(f"CH#{chat.chat_id}", "STATS"), actions=actions)
                # Issue 11: the KPIs and the MessageRelayed event, exactly once with the fact.
                if not private:
                    tx.update(
                        kpis.relayed_item(chat.chat_id),
                        actions=kpis.relayed_actions(log.author_key or "", now, after_event=now > chat.ends_at),
                    )
                tx.save(signals.item(signals.relayed(log, chat, now, private=private), now))
        except TransactWriteError as exc:
            reasons = [r.code for r in (exc.cancellation_reasons or []) if r]
            if "ConditionalCheckFailed" not in reasons:
                raise
