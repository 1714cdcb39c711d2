"""Chat messages to people who follow by text (issue 12): the SMS half of a
delivery batch, called by :mod:`chalicelib.services.fanout` with the batch's
SMS readers.

Exactly once per (message, reader) like mail: a conditional **claim**
(``MSG#<message id>``/``SMS#<participant key>``: absent, or a ``sending`` claim
of this same batch) before the send, the service's MessageId recorded right
after it. A ``both`` person has a mail claim and a text claim, so gets both.

The text is made once per batch from the relay's one anonymized copy (addresses
and phone numbers already scrubbed there): the text part, quoted history and
signatures trimmed, ``Jane D. (Canvass Mon): <text>``, attachments as
``(photo: <link>)``, cut at ``MUSTER_SMS_MAX_SEGMENTS`` with a short signed link
to a page with the whole message. Segments and cost are recorded per copy and in
metrics. Throttling keeps the claim and sends the batch back to SQS (retried
like an SES throttle); a permanent refusal records the copy failed and opts the
number out; a deployment-wide error parks the batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from pynamodb.expressions.update import Action

from chalicelib.adapters.blobs import MailStore
from chalicelib.adapters.mail import SendFailed
from chalicelib.adapters.sms import Texter
from chalicelib.models import Participant, SmsCopy, SmsSent, claim_once
from chalicelib.observability import logger, metrics
from chalicelib.relay import sms as core
from chalicelib.services import files, ledger, sms_optout
from chalicelib.settings import Settings, get_settings

RECORD_DAYS = 90
LINK_DAYS = 14  # the bucket's retention of outbound copies and files
ATTACHMENT_BASE = 1000  # file indexes of SMS attachment links (the renderer's start at 0)


def texter(settings: Settings) -> Texter:
    return Texter(
        origination_identity=settings.sms_origination_identity,
        configuration_set=settings.sms_configuration_set,
        endpoint_url=settings.sms_endpoint_url,
        region=settings.region,
    )


def link(settings: Settings, message_id: str, index: int, now: datetime) -> str:
    expires = int((now + timedelta(days=LINK_DAYS)).timestamp())
    return f"{settings.public_url}/t/{core.sign_link(settings.secret, message_id=message_id, index=index, expires_at=expires)}"


def attachment_key(message_id: str, n: int) -> str:
    return files.key(message_id, ATTACHMENT_BASE + n)


@dataclass
class SmsResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # not started before the deadline
    halted: str | None = None
    segments: int = 0


class SmsCopies:
    def __init__(
        self, settings: Settings | None = None, *, sender: Texter | None = None, store: MailStore | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self._sender = sender
        self._store = store

    @cached_property
    def sender(self) -> Texter:
        return self._sender or texter(self.settings)

    @cached_property
    def store(self) -> MailStore:
        return self._store or MailStore(bucket=self.settings.mail_bucket)

    # -- the text ---------------------------------------------------------------

    def relay_text(self, rendered: bytes, *, message_id: str, author: str, chat_title: str, now: datetime) -> str:
        """The SMS copy of a relayed message (the same for every reader)."""
        source = core.source_of(rendered)
        shown: list[tuple[str, str]] = []
        for n, a in enumerate(source.attachments, start=1):
            # Stored under a key derived from the message: every batch writes the same.
            self.store.put(
                attachment_key(message_id, n), a.data, a.content_type, disposition=files.content_disposition(a.name)
            )
            shown.append((core.attachment_kind(a.content_type), link(self.settings, message_id, n, now)))
        text = source.text or ("" if shown else "(no text)")
        return core.render_text(
            author=author,
            chat_title=chat_title,
            text=text,
            attachments=shown,
            max_segments=self.settings.sms_max_segments,
            more_link=link(self.settings, message_id, 0, now),
        )

    def kickoff_text(self, *, chat_title: str, shift_label: str) -> str:
        return (
            f"{self.settings.organization_name}: you're in the chat for {shift_label}. Texts you send here go to "
            "everyone in it; numbers and addresses stay hidden. Reply CHATS for your chats, HELP for help, "
            "STOP to opt out."
        )

    # -- sending -----------------------------------------------------------------

    @staticmethod
    def _claim(message_id: str, batch: str, p: Participant, chat_id: str, now: datetime) -> bool:
        record = SmsCopy(
            f"MSG#{message_id}",
            f"SMS#{p.participant_key}",
            chat_id=chat_id,
            participant_key=p.participant_key,
            status="sending",
            batch=batch,
            at=now,
            expires=timedelta(days=RECORD_DAYS),
        )
        return claim_once(record, batch)

    def deliver(
        self,
        *,
        message_id: str,
        batch: str,
        chat_id: str,
        readers: list[Participant],
        text: str,
        now: datetime,
        deadline: float | None = None,
    ) -> SmsResult:
        result = SmsResult()
        info = core.count_segments(text)
        price = core.cost(info.count, self.settings.sms_price_per_segment)
        for i, p in enumerate(readers):
            if result.halted:
                break
            if deadline is not None and time.time() >= deadline:
                result.left = [q.participant_key for q in readers[i:]]
                break
            if not p.phone or not self._claim(message_id, batch, p, chat_id, now):
                result.skipped += 1
                continue
            try:
                sms_id = self.sender.send(
                    to=p.phone, body=text, context={"message": message_id, "reader": p.participant_key}
                )
            except SendFailed as exc:
                if exc.kind == "permanent":
                    result.failed += 1
                    self._record(message_id, p, status="failed", reason=exc.code)
                    sms_optout.stop(p.phone_hash or "", "permanent_failure", now)
                    logger.warning(
                        "permanent text failure",
                        extra={"message_id": message_id, "participant": p.participant_key, "code": exc.code},
                    )
                else:
                    result.retry.append(p.participant_key)
                    if exc.kind == "deployment":
                        result.halted = exc.code
                continue
            self._record(
                message_id, p, status="sent", sms_id=sms_id, segments=info.count, encoding=info.encoding, cost=price
            )
            SmsSent(
                f"SMSOUT#{sms_id}",
                "META",
                phone_hash=p.phone_hash or "",
                message_id=message_id,
                participant_key=p.participant_key,
                expires=timedelta(days=RECORD_DAYS),
            ).save()
            result.sent += 1
            result.segments += info.count
        if result.sent:
            metrics.add_metric(name="SmsSent", unit="Count", value=result.sent)
            metrics.add_metric(name="SmsSegments", unit="Count", value=result.segments)
            metrics.add_metric(
                name="SmsCostMicroUSD",
                unit="Count",
                value=round(result.segments * self.settings.sms_price_per_segment * 1e6),
            )
        if result.failed:
            metrics.add_metric(name="SmsFailed", unit="Count", value=result.failed)
        return result

    @staticmethod
    def _record(
        message_id: str,
        p: Participant,
        *,
        status: str,
        sms_id: str | None = None,
        reason: str | None = None,
        segments: int = 0,
        encoding: str | None = None,
        cost: float = 0,
    ) -> None:
        actions: list[Action] = [SmsCopy.status.set(status), SmsCopy.segments.set(segments), SmsCopy.cost.set(cost)]
        if sms_id:
            actions.append(SmsCopy.sms_message_id.set(sms_id))
        if reason:
            actions.append(SmsCopy.reason.set(reason))
        if encoding:
            actions.append(SmsCopy.encoding.set(encoding))
        # As a mail copy's record: a lost one would repeat the text.
        ledger.with_retries(
            lambda: SmsCopy(f"MSG#{message_id}", f"SMS#{p.participant_key}").update(actions=actions), (Exception,)
        )
