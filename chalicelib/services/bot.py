"""The keyword bot (issue 12, item 5): an event's keywords and the ride board,
answered privately to the asker, on their channel.

:func:`answer` is the one entry for every channel: the SMS inbound path passes
the whole text, the mail path (:meth:`Bot.answer_mail`, called by the relay
before it renders anything) the subject or the first non-empty body line. It
returns ``None`` for an ordinary message (the caller relays it) or the private
answer (the caller sends it to the asker only and does not relay). Its side
effects (ride entries, matches, pair introductions) are idempotent, so a retried
message changes nothing twice.

By mail, the answer goes from the chat's relay address (as "Muster"), threaded
to the asker's message, under a claim ``BOT#<message id>``/``ONCE`` written
before the send: SES redelivering the message (or Lambda retrying the handler)
finds the claim and sends nothing again. A send that fails for a reason worth
retrying releases the claim and raises, so the whole message is retried; a
permanent refusal is logged and kept. The relay records the message as
``bot_answered`` (R9).

Organizers' answers are scrubbed of every participant's address (and of any
other address) before they go out, like any chat text (R5).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.models import Chat, Counter, Event, Participant
from chalicelib.observability import logger, metrics
from chalicelib.relay import bot as words
from chalicelib.relay.addresses import transport_address
from chalicelib.relay.names import display_name
from chalicelib.relay.parse import InboundMail
from chalicelib.relay.template import list_unsubscribe_headers, personalize
from chalicelib.services.copies import chat_context
from chalicelib.services.fanout import FanOut
from chalicelib.services.links import mute_url
from chalicelib.services.rides import RideBoard
from chalicelib.services.roster import participants
from chalicelib.settings import Settings, get_settings

Channel = Literal["email", "sms"]
CLAIM_DAYS = 8  # longer than SES retries and the inbound idempotency window (7 days)


def keywords_of(chat: Chat) -> dict[str, str]:
    """The chat's event's keywords (upper case) and answers."""
    try:
        event = Event.get(f"EV#{chat.integration}#{chat.event_id}", "META")
    except DoesNotExist:
        return {}
    return {str(k).upper(): str(v) for k, v in (event.keywords or {}).items()}


def command_of(chat: Chat, text: str) -> tuple[words.Command, dict[str, str]] | None:
    """The command ``text`` is in this chat (with the event's keywords), or None."""
    keywords = keywords_of(chat)
    command = words.parse_command(text, keywords)
    return (command, keywords) if command is not None else None


def answer(
    chat_id: str,
    participant_key: str,
    text: str,
    channel: Channel,
    *,
    settings: Settings | None = None,
    fanout: FanOut | None = None,
) -> str | None:
    """The private answer to ``text`` from ``participant_key`` in chat ``chat_id``,
    or None when it is not a bot command (the caller relays it as usual)."""
    try:
        chat = Chat.get(f"CH#{chat_id}", "META")
    except DoesNotExist:
        return None
    found = command_of(chat, text)
    if found is None:
        return None
    return respond(chat, participant_key, found[0], found[1], channel, settings=settings, fanout=fanout)


def respond(
    chat: Chat,
    participant_key: str,
    command: words.Command,
    keywords: dict[str, str],
    channel: Channel,
    *,
    settings: Settings | None = None,
    fanout: FanOut | None = None,
) -> str:
    """Carry out a parsed command (idempotently) and word its answer."""
    s = settings or get_settings()
    metrics.add_metric(name=f"BotCommand_{type(command).__name__}", unit="Count", value=1)
    logger.info("bot command", extra={"chat_id": chat.chat_id, "command": type(command).__name__, "channel": channel})
    if isinstance(command, words.Keyword):
        return _scrubbed(chat, keywords.get(command.key, ""), s)
    board = RideBoard(s, fanout)
    if isinstance(command, words.RideOffer | words.RideNeed):
        return board.post(chat, participant_key, command)
    if isinstance(command, words.RideCancel):
        return board.cancel(chat, participant_key)
    if isinstance(command, words.RideList):
        return board.listing(chat)
    return words.usage_answer(command.problem)


def _scrubbed(chat: Chat, text: str, s: Settings) -> str:
    """An organizer's answer with every address replaced (participants' by their names)."""
    people = [
        (display_name(p.first_name, p.last_name, organizer=p.role == "organizer"), (p.email,))
        for p in participants(chat.chat_id)
    ]
    return words.scrub_answer(text, people, relay_domain=s.relay_domain)


class Bot:
    """The mail side: is this inbound mail a command? Then answer it privately, once."""

    def __init__(self, settings: Settings, mailer: Mailer, fanout: FanOut | None = None) -> None:
        self.settings = settings
        self.mailer = mailer
        self.fanout = fanout

    @staticmethod
    def command_of_mail(chat: Chat, mail: InboundMail) -> tuple[str, words.Command, dict[str, str]] | None:
        """The command in the subject (tags and prefixes aside) or the first body line."""
        keywords: dict[str, str] | None = None
        for text in words.mail_candidates(mail.subject, words.body_text(mail.message)):
            if keywords is None and words.could_be_keyword(text):
                keywords = keywords_of(chat)  # one read, only for a one-word subject or line
            command = words.parse_command(text, keywords or {})
            if command is not None:
                return words.label(command), command, keywords or {}
        return None

    def answer_mail(
        self,
        *,
        chat: Chat,
        author: Participant,
        found: tuple[str, words.Command, dict[str, str]],
        mail: InboundMail,
        message_id: str,
        muster_id: str,
        now: datetime,
    ) -> bool:
        """Carry out the command and mail the answer to its author, once.
        True if the answer was sent now (False: sent before, or refused for good)."""
        said, command, keywords = found
        text = respond(
            chat, author.participant_key, command, keywords, "email", settings=self.settings, fanout=self.fanout
        )
        claim = Counter(f"BOT#{message_id}", "ONCE")
        claim.expires = timedelta(days=CLAIM_DAYS)  # type: ignore[assignment]
        try:
            claim.save(condition=Counter.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False  # answered already (a redelivery or a retry)
            raise
        ctx = chat_context(chat, self.settings)
        raw = words.render_answer(
            chat=ctx, command=said, answer=text, message_id=muster_id, date=now, in_reply_to=mail.message_id
        )
        link = mute_url(self.settings, chat.chat_id, author.participant_key)
        raw = personalize(raw, mute_url=link, list_unsubscribe_headers=list_unsubscribe_headers(link))
        to = transport_address(author.email)
        try:
            if to is None:
                raise SendFailed("NeedsSmtpUtf8", "permanent")
            self.mailer.send_raw(sender=ctx.relay_address, recipient=to, raw=raw)
        except SendFailed as exc:
            if exc.kind == "permanent":
                logger.warning("bot answer refused", extra={"chat_id": chat.chat_id, "code": exc.code})
                return False
            claim.delete()  # worth another try: the whole message is retried
            raise
        metrics.add_metric(name="BotAnswersSent", unit="Count", value=1)
        return True
