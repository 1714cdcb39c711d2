"""Property tests for R5 in the keyword bot and the ride board (issue 12).

- A bot answer by mail (:func:`chalicelib.relay.bot.render_answer`) carries an
  organizer's keyword answer, scrubbed (:func:`chalicelib.relay.bot.scrub_answer`):
  answers written with participants' addresses (plain, upper case, in
  ``mailto:`` links, next to Muster's placeholders) show none of them.
- Whatever a participant writes as a ride command, the place the board keeps
  and shows to others (listings, answers, the pair's intro) carries no address,
  and the answer's subject names the command, never the asker's words.
- A ride pair's intro with hostile display names and places shows no address.
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.relay import bot
from chalicelib.relay.anonymize import list_unsubscribe_headers, personalize
from chalicelib.relay.compose import render_private_intro
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import MUTE_URL, WHEN
from tests.property.test_no_leaks import addresses, names
from tests.property.test_private_leaks import _pair_context, hostile_names

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RELAY = "muster.test"


def _spellings(address: str) -> st.SearchStrategy[str]:
    return st.sampled_from([address, address.upper(), f"mailto:{address}", f"<{address}>", f"({address})"])


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, list[tuple[str, tuple[str, ...]]], list[str]]:
    """An organizer's answer with some of the chat's addresses in it, the chat's people."""
    pool = draw(st.lists(addresses, min_size=1, max_size=5, unique_by=str.lower))
    people = [(draw(names).format(i=i), (a,)) for i, a in enumerate(pool)]
    words = draw(st.lists(st.one_of(st.sampled_from(["Meet", "at", "the", "steps,", "ask", "or", "call", "\n"]),
                                    st.sampled_from(pool).flatmap(_spellings)), min_size=1, max_size=12))  # fmt: skip
    return " ".join(words)[: bot.MAX_ANSWER], people, pool


@SETTINGS
@given(answers(), st.sampled_from(["WHERE", "PARKING", "T2"]))
def test_given_addresses_in_a_keyword_answer_then_the_answer_mail_shows_none(
    case: tuple[str, list[tuple[str, tuple[str, ...]]], list[str]], key: str
) -> None:
    text, people, real = case
    ctx = _pair_context("o-org", "s-p1")
    answer = bot.scrub_answer(text, people, relay_domain=RELAY)
    raw = bot.render_answer(
        chat=ctx, command=key, answer=answer, message_id=f"<bot-1@{RELAY}>", date=WHEN, in_reply_to=f"<x@{RELAY}>"
    )
    out = personalize(raw, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
    assert find_leaks(out, real) == []
    message = BytesParser(policy=policy.default).parsebytes(out)
    assert message["From"].addresses[0].addr_spec == ctx.relay_address  # type: ignore[union-attr]
    assert MUTE_URL in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


ride_texts = st.builds(
    lambda verb, seats, glue, place: f"RIDE {verb} {seats}{glue}{place}",
    st.sampled_from(["OFFER", "NEED", "offer", "need"]),
    st.sampled_from(["", "2 ", "3 seats "]),
    st.sampled_from(["from ", "", "FROM  "]),
    st.one_of(
        addresses,
        addresses.map(lambda a: f"Main St {a}"),
        addresses.map(lambda a: a.replace("@", " @ ")),
        st.text(min_size=1, max_size=70),
    ),
)


@SETTINGS
@given(ride_texts, st.lists(addresses, min_size=1, max_size=3))
def test_given_any_ride_command_then_no_address_is_kept_or_shown(text: str, real: list[str]) -> None:
    command = bot.parse_command(text, ())
    place = command.place if isinstance(command, bot.RideOffer | bot.RideNeed) else None
    if place is not None:
        assert "@" not in place and sum(ch.isdigit() for ch in place) < 7
        shown = [
            bot.board_answer([(place, 2)], [(place, 1)]),
            bot.offer_answer(2, 1, place, [bot.Match("Ann1 A.", f"canvass-private-x@{RELAY}")]),
            bot.need_answer(place, []),
        ]
        assert all("@" not in s.replace(f"canvass-private-x@{RELAY}", "") for s in shown)
    if command is not None:
        ctx = _pair_context("o-org", "s-p1")
        raw = bot.render_answer(
            chat=ctx, command=bot.label(command), answer="ok", message_id=f"<bot-2@{RELAY}>", date=WHEN
        )
        addresses_in_text = [w for w in (w.strip("<>()") for w in text.split()) if w.strip("@") and "@" in w[1:-1]]
        assert find_leaks(raw, [*real, *addresses_in_text]) == []


@SETTINGS
@given(hostile_names, hostile_names, st.one_of(addresses, st.text(min_size=1, max_size=60)), st.booleans())
def test_given_hostile_names_and_places_then_a_ride_intro_shows_no_address(
    offerer: tuple[str, str | None], needer: tuple[str, str | None], place: str, to_offerer: bool
) -> None:
    ctx = _pair_context("s-p0", "s-p1")
    raw = render_private_intro(
        chat=ctx,
        organizer_name=offerer[0],
        participant_name=needer[0],
        to_organizer=to_offerer,
        shift_label="Canvass, Sat 14 Dec 2024 10:00\u201312:00 (America/New_York)",
        message_id=f"<intro-x.1@{ctx.relay_domain}>",
        date=WHEN,
        ride_place=place,
    )
    out = personalize(raw, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
    carried = [a for _, a in (offerer, needer) if a]
    if "@" in place:
        carried.append(place)
    assert find_leaks(out, carried) == []
    text = BytesParser(policy=policy.default).parsebytes(out).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "ride board matched you" in text and "Only the two of you receive messages" in text
