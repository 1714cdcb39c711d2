"""System mail: bounces (R6) and kickoff (R1, R11)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import MUTE_URL_PLACEHOLDER_TEXT, list_unsubscribe_headers, personalize
from chalicelib.relay.compose import render_bounce, render_kickoff
from chalicelib.relay.outcomes import Outcome
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, RELAY_ADDRESS, WHEN


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _bounce(outcome: Outcome) -> EmailMessage:
    return _parse(
        render_bounce(
            to_address="sam@example.net",
            outcome=outcome,
            relay_address=RELAY_ADDRESS,
            chat_label="Canvass – Sat 10:00",
            opens_at=datetime(2024, 12, 12, 10, 0, tzinfo=UTC),
            message_id="<b-1@relay.example.org>",
            date=WHEN,
            from_address="noreply@relay.example.org",
        )
    )


@pytest.mark.parametrize("outcome", [o for o in Outcome if o.may_bounce])
def test_given_a_bounceable_outcome_then_a_polite_auto_replied_notice(outcome: Outcome) -> None:
    bounce = _bounce(outcome)

    assert bounce["Auto-Submitted"] == "auto-replied"
    assert bounce["To"] == "sam@example.net"
    assert outcome.bounce_text.split(",")[0] in bounce.get_content().replace("\r\n", "\n")
    assert bounce["Subject"] == "Your message to a Muster chat was not shared"


def test_given_a_chat_not_open_yet_then_the_bounce_says_when_it_opens() -> None:
    assert "opens on Thu 12 Dec 2024 10:00 UTC" in _bounce(Outcome.CHAT_NOT_OPEN).get_content()


@pytest.mark.parametrize("outcome", [o for o in Outcome if not o.may_bounce])
def test_given_an_unanswerable_outcome_then_no_bounce_is_rendered(outcome: Outcome) -> None:
    with pytest.raises(ValueError):
        _bounce(outcome)


def test_given_a_notice_then_it_quotes_nothing_the_sender_wrote() -> None:
    # The renderer takes no subject or body of the original: a forged sender
    # cannot make Muster's domain carry their text (R6).
    assert "original_subject" not in inspect.signature(render_bounce).parameters
    assert "Parking" not in _bounce(Outcome.CHAT_CLOSED).as_string()


def test_given_a_kickoff_then_it_explains_the_chat_and_personalizes_like_relayed_mail() -> None:
    rendered = render_kickoff(
        chat=CHAT,
        recipient_name="Jane D.",
        shift_label="Canvass, Sat 14 Dec 10:00–12:00 (America/New_York)",
        organizer=False,
        message_id="<k-1@relay.example.org>",
        date=WHEN,
    )
    assert MUTE_URL_PLACEHOLDER_TEXT.encode() in rendered
    kickoff = _parse(personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL)))

    text = " ".join(kickoff.get_content().split())
    assert "Canvass, Sat 14 Dec 10:00–12:00 (America/New_York)" in text
    assert 'You appear to the others as "Jane D."' in text
    assert RELAY_ADDRESS in text and MUTE_URL in text
    assert kickoff["From"].addresses[0].addr_spec == RELAY_ADDRESS
    assert kickoff["Reply-To"] == RELAY_ADDRESS
    assert kickoff["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert kickoff["Auto-Submitted"] == "auto-generated"
    assert "As an organizer" not in text


def test_given_an_organizer_kickoff_then_it_says_how_to_remove_someone() -> None:
    rendered = render_kickoff(
        chat=CHAT, recipient_name="Olu O. (organizer)", shift_label="Canvass", organizer=True,
        message_id="<k-2@relay.example.org>", date=WHEN,
    )
    text = _parse(rendered).get_content()
    assert "organizer of this shift" in text
    assert "cancel or block their signup" in text
