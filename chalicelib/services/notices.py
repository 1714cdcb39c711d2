"""Polite notices (R6, R12): why a message was not shared, and never backscatter.

A notice goes only to an address that authenticated (the envelope sender with
SPF pass, or the From with an aligned DKIM signature: ``policy.notice_recipient``),
at most once a day per *receiving* address (so rotating From addresses cannot
aim more at a victim), quotes nothing the sender wrote, and is never sent to an
address SES cannot deliver to.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PutError

from chalicelib.adapters.mail import Mailer, SendFailed
from chalicelib.models import Chat, Counter
from chalicelib.observability import logger, metrics
from chalicelib.relay import compose
from chalicelib.relay.addresses import address_hash, normalize_address, transport_address
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import InboundMail, Verdicts
from chalicelib.relay.policy import notice_recipient
from chalicelib.services.copies import chat_context, chat_label
from chalicelib.settings import Settings


class Notices:
    def __init__(self, settings: Settings, mailer: Mailer) -> None:
        self.settings = settings
        self.mailer = mailer

    def send(
        self,
        outcome: Outcome,
        *,
        verdicts: Verdicts,
        mail: InboundMail,
        envelope_sender: str,
        chat: Chat | None,
        chat_address: str,
        notice_id: str,
        now: datetime,
    ) -> bool:
        """Send the notice for ``outcome`` if R6 allows one; True if sent."""
        authenticated = notice_recipient(verdicts, mail, envelope_sender)
        to = transport_address(normalize_address(authenticated)) if authenticated else None
        if not to:
            return False  # nobody authenticated, or an address SES cannot send to
        marker = Counter(f"LIM#notice#{address_hash(self.settings.secret, to)}#{now:%Y%m%d}", "ONCE")
        marker.expires = timedelta(days=2)  # type: ignore[assignment]
        try:
            marker.save(condition=Counter.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        noreply = f"muster-noreply@{self.settings.relay_domain}"
        raw = compose.render_bounce(
            to_address=to,
            outcome=outcome,
            relay_address=chat_address if chat is None else chat_context(chat, self.settings).relay_address,
            chat_label=chat_label(chat) if chat else None,
            opens_at=chat.opens_at if chat else None,
            message_id=notice_id,
            date=now,
            from_address=noreply,
        )
        try:
            self.mailer.send_raw(sender=noreply, recipient=to, raw=raw)
            metrics.add_metric(name="Bounced", unit="Count", value=1)
            return True
        except SendFailed as exc:
            logger.warning("notice not sent", extra={"code": exc.code, "outcome": outcome.value})
            return False
