"""Abuse reports (R15): one per reporter and message, the organizers told (never
who reported), and the author's further posts held at the chat's threshold of
distinct reporters."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.errors import Forbidden, NotFound
from chalicelib.models import (
    Chat,
    MessageMeta,
    Participant,
    Report,
    ReportTally,
)
from chalicelib.relay import stewardmail
from chalicelib.services.copies import chat_context
from chalicelib.services.links import control_url
from chalicelib.services.moderation import name_of
from chalicelib.services.roster import email_reachable, participants, recipients
from chalicelib.services.steward_base import REASON_CHARS, Result, StewardBase, _digest


class Reports(StewardBase):
    # -- reports ---------------------------------------------------------------

    def report(self, chat: Chat, message_id: str, reporter_key: str, reason: str | None) -> Result:
        """One person reports one message: recorded once per reporter, the
        organizers told (never who reported), and the author's further posts
        held at the chat's threshold of distinct reporters."""
        try:
            meta = MessageMeta.get(f"MSG#{message_id}", "META")
        except DoesNotExist:
            raise NotFound("this message is no longer known", "message_id") from None
        if meta.chat_id != chat.chat_id:
            raise Forbidden("this link does not belong to that chat")
        reporter = self._maybe(chat.chat_id, reporter_key)
        if reporter is None or reporter.removed or reporter.blocked:
            raise Forbidden("only people in this chat can report its messages")
        if reporter.address_hash == meta.author_hash or reporter_key == meta.author_key:
            return Result(False, "This is your own message.")
        reason = " ".join((reason or "").split())[:REASON_CHARS] or None
        now = clock.now()
        new = True
        try:
            Report(
                f"CH#{chat.chat_id}",
                f"REP#{message_id}#{reporter_key}",
                message_id=message_id,
                author_key=meta.author_key,
                reporter_key=reporter_key,
                reason=reason,
                at=now,
            ).save(condition=Report.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            # Reported before: finish what that report started (a crash may have
            # stopped it). Every step below is idempotent; the stored reason wins.
            new = False
            reason = Report.get(f"CH#{chat.chat_id}", f"REP#{message_id}#{reporter_key}", consistent_read=True).reason
        tally = ReportTally(f"CH#{chat.chat_id}", f"REPT#{meta.author_key}")
        tally.update(actions=[ReportTally.reporters.add({reporter_key})])  # a set: adding twice counts once
        count = len(tally.reporters or ())
        if new:
            self.record(
                chat.integration, "report", actor="attendee", via="control", chat=chat, target=message_id, detail=reason
            )
        author = self._maybe(chat.chat_id, meta.author_key)
        threshold = int(chat.report_threshold or self.settings.report_threshold)
        held_now = False
        if author is not None and author.role != "organizer" and count >= threshold:
            held_now = self._flag(author, "held", True)
            if held_now:
                self.record(
                    chat.integration,
                    "auto_hold",
                    actor="system",
                    via="system",
                    chat=chat,
                    target=author.participant_key,
                    detail=f"{count} reporters",
                )
        self._notify_report(
            chat, message_id, reporter_key, author, count, reason, held_now, now
        )  # once per organizer (claimed)
        if not new:
            return Result(False, "You already reported this message. Thank you.", {"reporters": count})
        return Result(
            True, "Thank you. The organizers have been told; nobody learns who reported it.", {"reporters": count}
        )

    def _notify_report(
        self,
        chat: Chat,
        message_id: str,
        reporter_key: str,
        author: Participant | None,
        count: int,
        reason: str | None,
        held_now: bool,
        now: datetime,
    ) -> int:
        try:
            quoted = stewardmail.excerpt(self.store.get(f"outbound/{message_id}.eml"))
        except Exception:
            quoted = None
        who = name_of(author) if author else "someone who left"
        intro = [
            f"Someone in the chat reported a message from {who} "
            f"({count} {'person has' if count == 1 else 'different people have'} reported {who} in this chat).",
            f"Their reason: {reason}" if reason else "They gave no reason.",
        ]
        if held_now:
            intro.append(f"From now on, {who}'s messages in this chat wait for an organizer's approval.")
        ctx = chat_context(chat, self.settings)
        sent = 0
        people = participants(chat.chat_id)
        for organizer in (p for p in recipients(people) if p.role == "organizer" and email_reachable(p)):
            links = []
            if author is not None and author.role != "organizer":
                links = [
                    (
                        f"Remove {who} from this chat",
                        control_url(
                            self.settings,
                            action="remove",
                            chat_id=chat.chat_id,
                            actor=organizer.participant_key,
                            target=author.participant_key,
                        ),
                    ),
                    (
                        f"Block {who} from every chat",
                        control_url(
                            self.settings,
                            action="block",
                            chat_id=chat.chat_id,
                            actor=organizer.participant_key,
                            target=author.participant_key,
                        ),
                    ),
                ]
            raw = stewardmail.render_steward_notice(
                to_address=organizer.email,
                to_name=name_of(organizer),
                chat=ctx,
                subject=f"A message from {who} was reported",
                intro=intro,
                quoted=quoted,
                links=links,
                message_id=f"<report-{message_id}.{_digest(reporter_key)}.{organizer.participant_key}@{self.settings.relay_domain}>",
                date=now,
            )
            sent += self.moderation.send_once(
                f"report-{message_id}-{_digest(reporter_key)}", organizer, raw, ctx.relay_address, chat.chat_id
            )
        return sent

    @staticmethod
    def reports(chat: Chat) -> list[Report]:
        return list(Report.query(f"CH#{chat.chat_id}", Report.sk.startswith("REP#")))
