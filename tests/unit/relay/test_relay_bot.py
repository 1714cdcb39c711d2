"""The keyword bot's pure part (issue 12): which text is which command, table tested."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from chalicelib.relay import bot
from chalicelib.relay.bot import Keyword, RideCancel, RideList, RideNeed, RideOffer, RideUsage
from chalicelib.relay.context import ChatContext

KEYWORDS = ["Where", "PARKING", "t2"]

TABLE: list[tuple[str, bot.Command | None]] = [
    # keywords: whole message, any case, trimmed, trailing punctuation tolerated
    ("WHERE", Keyword("WHERE")),
    ("where", Keyword("WHERE")),
    ("  Where?  ", Keyword("WHERE")),
    ("where?!", Keyword("WHERE")),
    ("parking.", Keyword("PARKING")),
    ("T2", Keyword("T2")),
    ("where is it", None),
    ("wherever", None),
    ("", None),
    ("   ", None),
    ("?", None),
    ("Hi all, see you there", None),
    # the ride board
    ("RIDE OFFER 3 from Downtown", RideOffer(3, "Downtown")),
    ("ride offer 3 downtown", RideOffer(3, "downtown")),
    ("Ride Offer 2 seats from Main St.", RideOffer(2, "Main St")),
    ("RIDE OFFER 1 seat from  Oak   Park", RideOffer(1, "Oak Park")),
    ("RIDE NEED from Downtown", RideNeed("Downtown")),
    ("ride need downtown!", RideNeed("downtown")),
    ("RIDE NEED A RIDE FROM Eastside", RideNeed("Eastside")),
    ("ride need from Straße 5", RideNeed("Straße 5")),
    ("RIDE CANCEL", RideCancel()),
    ("ride cancel.", RideCancel()),
    ("RIDES", RideList()),
    ("rides?", RideList()),
    ("RIDE LIST", RideList()),
    ("RIDE", RideUsage("")),
    ("ride?", RideUsage("")),
    ("RIDE OFFER from Downtown", RideUsage("Say how many seats and where from.")),
    ("RIDE OFFER 0 from Downtown", RideUsage("Offer between 1 and 20 seats.")),
    ("RIDE OFFER 21 from Downtown", RideUsage("Offer between 1 and 20 seats.")),
    ("RIDE NEED", RideUsage("Say how many seats and where from.")),
    ("RIDE NEED from ann@example.org", RideUsage("Please name the place without an address or a link.")),
    ("RIDE NEED from https://maps.example/x", RideUsage("Please name the place without an address or a link.")),
    ("RIDE OFFER 2 from 555-123-4567", RideUsage("Please name the place without a phone number.")),
    ("RIDE OFFER 2 from +1 (555) 123 4567", RideUsage("Please name the place without a phone number.")),
    (
        "RIDE OFFER 2 from <b>x</b>",
        RideUsage("Please name the place with letters, digits and simple punctuation only."),
    ),
    ("RIDE NEED from " + "x" * 61, RideUsage("Please name the place in 1 to 60 characters.")),
    # sentences that start like a command are ordinary messages
    ("Ride home tonight, anyone?", None),
    ("Rides are arranged by Olive", None),
    ("riding together?", None),
    ("RIDE " + "x" * 300, None),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_parse_command(text: str, expected: bot.Command | None) -> None:
    assert bot.parse_command(text, KEYWORDS) == expected


def test_reserved_words_are_not_keywords_and_keys_are_shaped() -> None:
    assert {
        "STOP",
        "START",
        "HELP",
        "MUTE",
        "UNMUTE",
        "CHATS",
        "RIDE",
        "RIDES",
        "UNSUBSCRIBE",
        "STOPALL",
    } <= bot.RESERVED
    assert bot.could_be_keyword("where?") and bot.could_be_keyword(" T2 ")
    assert (
        not bot.could_be_keyword("w") and not bot.could_be_keyword("two words") and not bot.could_be_keyword("x" * 21)
    )


@pytest.mark.parametrize(
    ("subject", "stripped"),
    [
        ("WHERE", "WHERE"),
        ("Re: WHERE", "WHERE"),
        ("RE: [Canvass Mon 10:00] where?", "where?"),
        ("Re: Re[2]: AW: [x] [y] Fwd: RIDES", "RIDES"),
        ("[Canvass Mon 10:00]", ""),
        ("A word", "A word"),
    ],
)
def test_strip_subject(subject: str, stripped: str) -> None:
    assert bot.strip_subject(subject) == stripped


@pytest.mark.parametrize(
    ("subject", "body", "candidates"),
    [
        ("Re: [Chat] WHERE", "", ["WHERE"]),
        ("WHERE", "\n\n-- \nAnn Avery\n555 123 4567\n", ["WHERE"]),
        ("WHERE", "Sent from my iPhone", ["WHERE"]),
        ("Re: WHERE", "On Mon, Ann wrote:\n> Where do we meet?\n", ["WHERE"]),
        # a mail with something to say is a chat message under any subject
        ("Rides", "Who can drive from the station?", ["Who can drive from the station?"]),
        ("hello", "\n \n  RIDES \nmore\n", ["RIDES"]),
        ("hello", "RIDE OFFER 3 from Downtown\n\nsee you all\nGil", ["RIDE OFFER 3 from Downtown"]),
        ("hello", "Rides\nWho can drive?\nI have a car.\nAnd a bike.", []),
        ("hello", "Rides\n" + "x" * 81, []),
        ("", "", []),
    ],
)
def test_mail_candidates(subject: str, body: str, candidates: list[str]) -> None:
    assert bot.mail_candidates(subject, body) == candidates


def test_body_text_reads_plain_or_html() -> None:
    plain = EmailMessage()
    plain.set_content("WHERE\n\n-- \nAnn")
    assert bot.first_line(bot.body_text(plain)) == "WHERE"
    html = EmailMessage()
    html.set_content(
        "<html><head><style>p{}</style></head><body><p>Parking</p><p>thanks</p></body></html>", subtype="html"
    )
    assert bot.first_line(bot.body_text(html)) == "Parking"


def test_places_match_case_and_whitespace_insensitively() -> None:
    assert bot.place_key(" Down  Town ") == bot.place_key("down town") == "down town"


def test_board_and_answers_name_places_and_seats_only() -> None:
    text = bot.board_answer([("Downtown", 2), ("Eastside", 1)], [("Downtown", 1)])
    assert text.startswith("Offered: 2 seats from Downtown; 1 seat from Eastside. Needed: 1 from Downtown.")
    assert bot.board_answer([], []).startswith("The ride board is empty.")
    match = bot.Match(name="Ann1 A.", address="canvass-private-abc@muster.test")
    offer = bot.offer_answer(2, 1, "Downtown", [match])
    assert "2 seats from Downtown, 1 seat still free" in offer and "Matched: Ann1 A. (needs a ride)" in offer
    assert "is full" in bot.offer_answer(1, 0, "Downtown", [match])
    assert "Matched: Ann1 A. (offers a ride)" in bot.need_answer("Downtown", [match])
    assert "on the board" in bot.need_answer("Downtown", [])


def test_rendered_answer_is_threaded_from_the_chat_and_quotes_no_asker_text() -> None:
    chat = ChatContext(
        chat_id="c", relay_address="canvass-c@muster.test", list_name="Canvass", subject_prefix="[Canvass]"
    )
    raw = bot.render_answer(
        chat=chat,
        command=bot.label(RideOffer(2, "ann@example.org")),
        answer="Meet at the library steps",
        message_id="<bot-1@muster.test>",
        date=datetime(2026, 12, 2, tzinfo=UTC),
        in_reply_to="<asker-1@people.example>",
    )
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["From"] == "Muster <canvass-c@muster.test>" and message["To"] == "canvass-c@muster.test"
    assert message["Subject"] == "Re: [Canvass] RIDE OFFER"
    assert message["In-Reply-To"] == "<asker-1@people.example>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert b"ann@example.org" not in raw
    unthreaded = bot.render_answer(
        chat=chat, command="WHERE", answer="x", message_id="<bot-2@muster.test>", date=datetime(2026, 12, 2, tzinfo=UTC),
        in_reply_to="not an id",
    )  # fmt: skip
    assert b"In-Reply-To" not in unthreaded
