"""System mail: bounces (R6) and kickoff (R1, R11)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay.anonymize import (
    MUTE_URL_PLACEHOLDER_TEXT,
    list_unsubscribe_headers,
    personalize,
    set_envelope_headers,
)
from chalicelib.relay.compose import MAX_KICKOFF_MEMBERS, render_bounce, render_kickoff
from chalicelib.relay.names import display_name
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.placeholders import TEXT_SLOT_LEAD
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
    kickoff = _parse(
        personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
    )

    text = " ".join(kickoff.get_content().split())
    assert "Canvass, Sat 14 Dec 10:00–12:00 (America/New_York)" in text
    assert 'You appear to the others as "Jane D."' in text
    assert RELAY_ADDRESS in text and MUTE_URL in text
    assert kickoff["From"].addresses[0].addr_spec == RELAY_ADDRESS
    assert kickoff["Reply-To"] == RELAY_ADDRESS
    assert kickoff["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert kickoff["Auto-Submitted"] == "auto-generated"
    assert "As an organizer" not in text


def _kickoff(
    recipient_name: str = "Jane D.", *, organizer: bool = False, members: tuple[str, ...] = ()
) -> EmailMessage:
    rendered = render_kickoff(
        chat=CHAT,
        recipient_name=recipient_name,
        shift_label="Canvass",
        organizer=organizer,
        message_id="<k-2@relay.example.org>",
        date=WHEN,
        members=members,
    )
    return _parse(personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL)))


def _text(message: EmailMessage) -> str:
    return str(message.get_content()).replace("\r\n", "\n")


def test_given_an_organizer_kickoff_then_it_says_how_to_remove_someone() -> None:
    text = _text(_kickoff("Olu O. (organizer)", organizer=True))
    assert "organizer of this shift" in text
    assert "organizer controls" in text and "remove or block its author" in text


def test_given_an_organizer_then_the_kickoff_shows_the_name_as_the_others_see_it() -> None:
    name = display_name("Olivia", "Organizer", organizer=True)
    text = " ".join(_text(_kickoff(name, organizer=True)).split())

    assert name == "Olivia O. (organizer)"
    assert text.startswith("Hello Olivia O.,")
    assert 'You appear to the others as "Olivia O. (organizer)"' in text
    assert "Olivia O. organizer" not in text


def test_given_members_then_the_kickoff_lists_their_names_and_never_addresses() -> None:
    members = (
        display_name("Olivia", "Organizer", organizer=True),
        display_name("Ann", "Avery"),
        "ann@people.example",  # a caller's mistake: never shown, not even cleaned up
        "Ben B. <ben@people.example>",
        "=?utf-8?q?cat=40people=2Eexample?=",
        display_name("Zoë", "Zed"),
    )
    kickoff = _kickoff(members=members)
    text = _text(kickoff)

    assert "Who is in the chat:\n  - Olivia O. (organizer)\n  - Ann A.\n  - Zoë Z.\n\n" in text
    raw = kickoff.as_string().lower()
    for leaked in ("people.example", "peopleexample", "ann@", "ben b", "cat@", "catpeople"):
        assert leaked not in text.lower() and leaked not in raw, leaked


def test_given_no_members_then_the_kickoff_has_no_empty_list() -> None:
    assert "Who is in the chat" not in _text(_kickoff())


def test_given_a_big_chat_then_the_kickoff_names_some_and_counts_the_rest() -> None:
    members = tuple(display_name(f"P{n}", "Q") for n in range(MAX_KICKOFF_MEMBERS + 7))
    text = _text(_kickoff(members=members))

    assert f"  - P{MAX_KICKOFF_MEMBERS - 1} Q.\n  ... and 7 more\n" in text
    assert f"P{MAX_KICKOFF_MEMBERS} Q." not in text


def test_given_a_kickoff_then_it_says_how_to_follow_the_chat_with_the_footer_link() -> None:
    text = _text(_kickoff())
    follow = " ".join(text.split())

    assert "daily digest" in follow and "mute" in follow and "leave" in follow
    # The per-recipient link stands alone on the line right after the slot lead.
    assert text.endswith(f"{TEXT_SLOT_LEAD}{MUTE_URL}\n")


def test_given_an_organizer_name_in_from_then_parsers_keep_the_brackets() -> None:
    # A relayed copy's From, as a mail client reads it: unquoted, "(organizer)"
    # would be a comment and disappear.
    message = EmailMessage(policy=policy.SMTP)
    message.set_content("hi\n")
    set_envelope_headers(
        message,
        from_name=display_name("Olivia", "Organizer", organizer=True),
        chat=CHAT,
        subject="hi",
        message_id="<m-1@relay.example.org>",
        date=WHEN,
    )
    parsed = _parse(message.as_bytes())

    assert parsed["From"].addresses[0].display_name == "Olivia O. (organizer)"
    assert b'From: "Olivia O. (organizer)" <' in message.as_bytes()
