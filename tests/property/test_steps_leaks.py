"""Property tests for R5 in Muster's issue 11 mail: organizer announcements and the
post-shift debrief.

- An announcement's text and subject come from the integration, and an organizer
  may well paste addresses into them: every participant's address, in every
  spelling the scrubber knows, and a stranger's, must be gone from each copy,
  which keeps exactly Muster's headers (From: the organizer's display name at the
  relay address) and gets each reader's next-step links and controls spliced in.
- The debrief names nobody; its prompt and the next steps' labels are hostile
  (placeholder stems, CR/LF, encoded words, a reader's address as a label): the
  copy is well formed, the mute link lands only in its footers, every next-step
  link is the signed one, and no participant's address appears.
"""

from __future__ import annotations

import random
from email import policy
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.relay.anonymize import CopyTemplate, Person, list_unsubscribe_headers, personalize
from chalicelib.relay.compose import render_debrief
from chalicelib.relay.placeholders import (
    CONTROLS_PLACEHOLDER_TEXT,
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
)
from chalicelib.relay.stewardmail import attendee_controls
from chalicelib.services.announcements import render_announcement
from chalicelib.services.nextsteps import ATTRIBUTION_NOTE, with_next_steps
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, WHEN
from tests.property.test_no_leaks import TOP_HEADERS, Scenario, _disguise, addresses, names, scenarios

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEP_URL = "https://muster.example.org/n/bjF8ZGV2fGNoYXR8cGV0aXRpb258LQ.c2lnbmF0dXJl"
REPORT_URL = "https://muster.example.org/c/report-token"
HOSTILE = st.sampled_from(
    [
        "Sign the petition",
        MUTE_URL_PLACEHOLDER_TEXT,
        MUTE_URL_PLACEHOLDER_HTML,
        CONTROLS_PLACEHOLDER_TEXT,
        "MUSTERMUTE" + MUTE_URL_PLACEHOLDER_TEXT + "URL",
        "Line one\r\nBcc: victim@evil.example",
        "=?utf-8?b?c3RlcEBldmlsLmV4YW1wbGU=?=",
        '<script>alert(1)</script> & "quotes"',
    ]
)


@st.composite
def announcements(draw: st.DrawFn) -> tuple[Scenario, str, str]:
    sc = draw(scenarios())
    rng = random.Random(sc.seed)
    lines = [draw(HOSTILE), draw(names).format(i=7)]
    for address in sc.real:
        lines.append(f"Write to {_disguise(address, rng)} or {address.upper()} (<{address}>).")
    rng.shuffle(lines)
    subject = f"{draw(HOSTILE)} {_disguise(rng.choice(sc.real), rng)}"
    return sc, "\n".join(lines), subject


@SETTINGS
@given(announcements(), HOSTILE)
def test_given_addresses_in_an_announcement_then_no_copy_carries_one(
    case: tuple[Scenario, str, str], label: str
) -> None:
    sc, text, subject = case
    author = Person("o-org", "Olive O. (organizer)", sc.people[0].addresses)
    people = [author, *sc.people[1:]]
    assert sc.real[0] in text.lower() or sc.real[0].upper() in text

    rendered = render_announcement(
        chat=CHAT, author=author, people=people, subject=subject, text=text, message_id="ab" * 16, date=WHEN
    )
    template = CopyTemplate.of(rendered)
    assert template.has_controls
    controls = with_next_steps(attendee_controls(REPORT_URL), [(label, STEP_URL)], ATTRIBUTION_NOTE)
    out = template.render(
        mute_url=MUTE_URL,
        list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL),
        controls_text=controls[0],
        controls_html=controls[1],
    )

    assert find_leaks(out, sc.real) == []
    message = BytesParser(policy=policy.default).parsebytes(out)
    # Exactly Muster's headers (a root message: no In-Reply-To/References; one text part).
    want = (TOP_HEADERS - {"in-reply-to", "references"}) | {"content-transfer-encoding"}
    assert {k.lower() for k in message} == want
    assert b"MUSTERMUTEURL" not in out and out.partition(b"\r\n\r\n")[0].count(MUTE_URL.encode()) == 1
    sender = message["From"].addresses[0]  # type: ignore[union-attr]
    assert sender.addr_spec == CHAT.relay_address and sender.display_name == "Olive O. (organizer)"
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert STEP_URL in body and REPORT_URL in body and ATTRIBUTION_NOTE in body
    assert body.count(MUTE_URL) == 1 and body.index(MUTE_URL) < body.index(STEP_URL)  # steps: the reader's footer


@SETTINGS
@given(st.lists(addresses, min_size=2, max_size=4, unique_by=str.lower), HOSTILE, HOSTILE, st.integers(0, 3))
def test_given_hostile_prompts_and_labels_the_debrief_is_well_formed_and_names_nobody(
    people: list[str], prompt: str, label: str, steps: int
) -> None:
    links = [(f"{label} {n}", f"{STEP_URL}{n}") for n in range(steps)]
    raw = render_debrief(
        chat=CHAT,
        shift_label=f"Canvass {label}",
        prompt=f"How did it go? {prompt}",
        message_id=f"<debrief-k3x9q.s-1@{CHAT.relay_domain}>",
        date=WHEN,
        next_steps=links,
        steps_note=ATTRIBUTION_NOTE,
    )
    out = personalize(raw, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))

    assert find_leaks(out, people) == []
    message = BytesParser(policy=policy.default).parsebytes(out)
    assert message["From"].addresses[0].addr_spec == CHAT.relay_address  # type: ignore[union-attr]
    assert message["Bcc"] is None and b"MUSTERMUTEURL" not in out
    head = out.partition(b"\r\n\r\n")[0]
    assert head.count(MUTE_URL.encode()) == 1  # List-Unsubscribe only
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    markup = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert text.count(MUTE_URL) == 1 and text.rstrip().endswith(MUTE_URL)
    assert markup.count(f'href="{MUTE_URL.replace("&", "&amp;")}"') == 1
    for _, url in links:
        assert url in text and f'href="{url}"' in markup
