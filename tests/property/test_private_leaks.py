"""Property tests for R5 in private two-person threads (issue 10).

A private thread's message takes the chat's render with the pair's context
(:func:`chalicelib.services.private.private_context`): its own address, List-Id
and ``[Private: ...]`` prefix. Both directions -- organizer to participant and
back -- are fuzzed with the hostile mail of ``test_no_leaks`` (addresses of
both members and of every other participant of the chat, in every header,
body, encoding and attachment): no real address may survive in any byte of
the copy, which keeps exactly Muster's headers and is addressed from the pair.
The intro each member gets is fuzzed with hostile display names (addresses,
encoded words, mute placeholders) and held to the same standard.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.models import Chat, PrivateThread
from chalicelib.relay.anonymize import Person, anonymize, list_unsubscribe_headers, personalize
from chalicelib.relay.compose import render_private_intro
from chalicelib.relay.parse import parse_inbound
from chalicelib.services.private import private_context, thread_id_for, thread_local
from chalicelib.settings import get_settings
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import MUTE_URL, WHEN
from tests.property.test_no_leaks import Scenario, addresses, assert_copy_well_formed, build_hostile_mail, names

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Scenario, bool]:
    """A chat of 2-5 people (the organizer first, the participant second, the
    rest other participants), a stranger, and which side writes."""
    pool = draw(st.lists(addresses, min_size=3, max_size=6, unique_by=str.lower))
    count = draw(st.integers(min_value=2, max_value=len(pool) - 1))
    people = [Person(key=f"s-p{i}", display_name=draw(names).format(i=i), addresses=(pool[i],)) for i in range(count)]
    people[0] = Person("o-org", people[0].display_name + " (organizer)", people[0].addresses)
    return Scenario(people, pool[-1], draw(st.integers(min_value=0, max_value=2**32))), draw(st.booleans())


def _pair_context(organizer: str, participant: str):  # type: ignore[no-untyped-def]
    settings = get_settings()
    chat = Chat(
        "CH#k3x9qabcdefghijk",
        "META",
        chat_id="k3x9qabcdefghijk",
        title="Canvass",
        timezone="America/New_York",
        relay_local="canvass-k3x9qabcdefghijk",
        starts_at=datetime(2024, 12, 14, 15, 0, tzinfo=UTC),
        ends_at=datetime(2024, 12, 14, 17, 0, tzinfo=UTC),
    )
    thread_id = thread_id_for(chat.chat_id, organizer, participant, settings.secret)
    thread = PrivateThread(
        f"PT#{thread_id}",
        "META",
        thread_id=thread_id,
        chat_id=chat.chat_id,
        organizer_key=organizer,
        participant_key=participant,
        relay_local=thread_local(chat, thread_id),
        created_at=WHEN,
    )
    return private_context(chat, thread, settings)


@SETTINGS
@given(pairs())
def test_given_addresses_injected_everywhere_when_either_side_writes_then_none_survives(
    pair: tuple[Scenario, bool],
) -> None:
    sc, organizer_writes = pair
    organizer, participant = sc.people[0], sc.people[1]
    author, reader = (organizer, participant) if organizer_writes else (participant, organizer)
    # build_hostile_mail writes From the first person: put the author there.
    ordered = Scenario([author, *(p for p in sc.people if p is not author)], sc.stranger, sc.seed)
    raw = build_hostile_mail(ordered)
    assert author.addresses[0].lower() in raw.decode("utf-8").lower()  # the mail really carries them
    assert reader.addresses[0].lower() in raw.decode("utf-8").lower() or len(sc.real) > 2
    ctx = _pair_context(organizer.key, participant.key)

    rendered = anonymize(
        parse_inbound(raw),
        author=author,
        people=sc.people,  # every participant of the chat is scrubbed, not just the pair
        chat=ctx,
        message_id=f"<18f000aa{sc.seed:08x}@{ctx.relay_domain}>",
        # What deliver splices per reader (relay/threadheaders.py), here fixed.
        in_reply_to=f"<18f000aa00000001@{ctx.relay_domain}>",
        references=[f"<18f000aa00000000@{ctx.relay_domain}>", f"<18f000aa00000001@{ctx.relay_domain}>"],
        date=WHEN,
    )
    out = personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))

    assert find_leaks(out, sc.real) == []
    assert_copy_well_formed(out)
    message = BytesParser(policy=policy.default).parsebytes(out)
    for header in ("From", "To", "Reply-To"):
        assert message[header].addresses[0].addr_spec == ctx.relay_address  # type: ignore[union-attr]
    assert message["List-Post"] == f"<mailto:{ctx.relay_address}>"
    assert str(message["Subject"]).lstrip("Re: ").startswith("[Private: Canvass")


def _b64_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


# (display name, the address it carries or None)
hostile_names = st.one_of(
    names.map(lambda n: (n.format(i=1), None)),
    addresses.map(lambda a: (a, a)),
    addresses.map(lambda a: (f"Ann <{a}>", a)),
    addresses.map(lambda a: (_b64_word(a), a)),
    addresses.map(lambda a: (f"Olive {a.upper()} (organizer)", a)),
)


@SETTINGS
@given(pairs(), hostile_names, hostile_names)
def test_given_hostile_names_when_the_intro_is_rendered_then_no_address_shows(
    pair: tuple[Scenario, bool], organizer: tuple[str, str | None], participant: tuple[str, str | None]
) -> None:
    sc, to_organizer = pair
    ctx = _pair_context(sc.people[0].key, sc.people[1].key)
    carried = [a for _, a in (organizer, participant) if a]

    def intro(organizer_name: str, participant_name: str) -> bytes:
        raw = render_private_intro(
            chat=ctx,
            organizer_name=organizer_name,
            participant_name=participant_name,
            to_organizer=to_organizer,
            shift_label="Canvass, Sat 14 Dec 2024 10:00\u201312:00 (America/New_York)",
            message_id=f"<intro-x.{sc.seed}@{ctx.relay_domain}>",
            date=WHEN,
        )
        return personalize(raw, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))

    out = intro(organizer[0], participant[0])

    assert find_leaks(out, [*sc.real, *carried]) == []
    message = BytesParser(policy=policy.default).parsebytes(out)
    assert message["From"].addresses[0].addr_spec == ctx.relay_address  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Only the two of you receive messages sent to this address." in text
    assert MUTE_URL in text and b"MUSTERMUTEURL" not in out
    # Not even with its "@" dropped (as name cleaning would): such a name is not
    # shown (unless the same text is there with harmless names too).
    neutral = intro(*(n if a is None else "Participant" for n, a in (organizer, participant))).decode().lower()
    for address in carried:
        squeezed = address.replace("@", "").lower()
        assert squeezed not in text.lower() or squeezed in neutral
