"""R5 for the organizer controls (issue 10): an organizer's copy carries control
lines and a steward notice quotes an excerpt; neither may carry an address, and
the control lines land only in the footer slots, whatever the sender wrote."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.relay import stewardmail
from chalicelib.relay.anonymize import CopyTemplate, anonymize
from chalicelib.relay.parse import parse_inbound
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, WHEN
from tests.property.test_no_leaks import SETTINGS, Scenario, build_hostile_mail, scenarios

CONTROL_URL = "https://relay.example.org/c/Y29udHJvbA.c2lnbmF0dXJl"


def _rendered(sc: Scenario) -> bytes:
    return anonymize(
        parse_inbound(build_hostile_mail(sc)),
        author=sc.people[0],
        people=sc.people,
        chat=CHAT,
        message_id="<m-9.k3x9q@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )


@SETTINGS
@given(scenarios(), st.booleans())
def test_organizer_and_attendee_copies_carry_controls_and_no_address(sc: Scenario, organizer: bool) -> None:
    rendered = _rendered(sc)
    template = CopyTemplate.of(rendered)
    assert template.has_controls
    author = sc.people[0].display_name
    if organizer:
        controls = [
            stewardmail.Control(a, f"{CONTROL_URL}{n}")
            for n, a in enumerate(("remove", "block", "private", "hold", "close"))
        ]
        text, markup = stewardmail.organizer_controls(author, controls)
    else:
        text, markup = stewardmail.attendee_controls(CONTROL_URL)
    out = template.render(mute_url=MUTE_URL, list_unsubscribe_headers={}, controls_text=text, controls_html=markup)

    assert find_leaks(out, sc.real) == []
    assert b"MUSTERMUTEURL" not in out
    message = BytesParser(policy=policy.default).parsebytes(out)
    texts = [
        p.get_content() for p in message.walk() if p.get_content_type() == "text/plain" and p.get_filename() is None
    ]
    footer = [t for t in texts if "via Muster" in t]
    assert footer, "the text footer is there"
    # the control lines sit in the footer, after the mute link
    for t in footer:
        assert t.index(MUTE_URL) < t.index(CONTROL_URL)
        assert ("Organizer controls" in t) == organizer
        assert t.count(CONTROL_URL) == (5 if organizer else 1)


@SETTINGS
@given(scenarios())
def test_the_excerpt_a_steward_notice_quotes_carries_no_address(sc: Scenario) -> None:
    excerpt = stewardmail.excerpt(_rendered(sc))
    assert excerpt
    assert find_leaks(excerpt.encode("utf-8"), sc.real) == []
