"""R5 for phone numbers (issue 12): participants' numbers, in every common
spelling, in every position of a message (subject, text, HTML text and links,
quoted lines, attachment names, a text attachment's content; next to other
figures, as in "call 415-555-0101 5 pm"), never survive the
relay: neither in the mail copy nor in the SMS copy made from it. Reuses
test_no_leaks' address strategies, so addresses and numbers are mixed."""

from __future__ import annotations

import html
import random
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.relay.anonymize import Person, list_unsubscribe_headers, personalize, render
from chalicelib.relay.parse import parse_inbound
from chalicelib.relay.sms import count_segments, render_text, source_of
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, WHEN
from tests.property.test_no_leaks import addresses

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# NANP numbers: +1 NXX NXX XXXX (N: 2-9).
_N = st.sampled_from("23456789")
_D = st.sampled_from("0123456789")
numbers = st.builds(
    lambda a, b, c, d, e, f: f"+1{a}{''.join(b)}{c}{''.join(d)}{''.join(e)}" + f,
    _N,
    st.lists(_D, min_size=2, max_size=2),
    _N,
    st.lists(_D, min_size=2, max_size=2),
    st.lists(_D, min_size=3, max_size=3),
    _D,
)


def spell(e164: str, rng: random.Random) -> str:
    """One of the ways people write a number."""
    n = e164[2:]
    a, b, c = n[:3], n[3:6], n[6:]
    forms = [
        e164,
        f"+1 {a} {b} {c}",
        f"+1 ({a}) {b}-{c}",
        f"({a}) {b}-{c}",
        f"({a}){b}-{c}",
        f"{a}-{b}-{c}",
        f"{a}.{b}.{c}",
        f"1-{a}-{b}-{c}",
        f"{a} {b} {c}",
        n,
        f"001 {a} {b} {c}",
        f"tel:{e164}",
        "".join(chr(0xFF10 + int(ch)) if ch.isdigit() else ch for ch in f"{a}-{b}-{c}"),  # full-width digits
        f"{a}\u200b{b}\u200b{c}",  # zero-width spaces
    ]
    return rng.choice(forms)


def beside(spelled: str, rng: random.Random) -> str:
    """A spelling with other figures next to it, as people write: "5 pm",
    a house number, an order number, a second number."""
    figure = lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))  # noqa: E731
    before = rng.choice(["", "", f"{figure()} ", f"{figure()} {figure()} "])
    after = rng.choice(["", "", f" {figure()}", f" {figure()} pm", f" {figure()} {figure()}"])
    return f"{before}{spelled}{after}"


def spell_html(e164: str, rng: random.Random) -> str:
    plain = spell(e164, rng)
    if rng.random() < 0.5:
        return "".join(f"&#{ord(ch)};" for ch in plain)
    return f"<a href='tel:{e164}'>{html.escape(plain)}</a>"


def digits_of(text: str) -> str:
    import unicodedata

    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text))


def leaked(text: str, phones: list[str]) -> list[str]:
    d = digits_of(text)
    return [p for p in phones if p[2:] in d]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Person], list[str], int]:
    pool = draw(st.lists(addresses, min_size=2, max_size=4, unique_by=str.lower))
    phones = draw(st.lists(numbers, min_size=len(pool), max_size=len(pool), unique=True))
    people = [
        Person(key=f"p{i}", display_name=f"Person {i}.", addresses=(pool[i],), phones=(phones[i],))
        for i in range(len(pool))
    ]
    return people, pool, draw(st.integers(min_value=0, max_value=2**32))


def _mail(people: list[Person], rng: random.Random) -> bytes:
    phones = [p.phones[0] for p in people]
    pick = lambda: rng.choice(phones)  # noqa: E731
    m = EmailMessage()
    m["From"] = people[0].addresses[0]
    m["To"] = CHAT.relay_address
    m["Subject"] = f"Call {spell(pick(), rng)} tonight"
    text = (
        f"Hi all, ring me on {beside(spell(pick(), rng), rng)} or text {spell(pick(), rng)}.\n"
        f"Room {beside(spell(pick(), rng), rng)}\n"
        f"> On Monday, someone at {spell(pick(), rng)} wrote:\n> call {spell(pick(), rng)}\n"
    )
    m.set_content(text)
    m.add_alternative(f"<p>Ring {spell_html(pick(), rng)} or {spell_html(pick(), rng)}</p>", subtype="html")
    m.add_attachment(
        f"BEGIN:VCARD\nTEL:{spell(pick(), rng)}\nEND:VCARD\n".encode(),
        maintype="text",
        subtype="vcard",
        filename=f"contact {spell(pick(), rng)}.vcf",
    )
    return m.as_bytes()


@SETTINGS
@given(cases())
def test_no_participants_number_survives_in_mail_or_sms_copies(case: tuple[list[Person], list[str], int]) -> None:
    people, pool, seed = case
    rng = random.Random(seed)
    raw = _mail(people, rng)
    rendered = render(
        parse_inbound(raw),
        author=people[0],
        people=people[1:],
        chat=CHAT,
        message_id="<m1@relay.example.org>",
        in_reply_to=None,
        references=[],
        date=WHEN,
    )
    copy = personalize(rendered.message, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
    phones = [p.phones[0] for p in people]
    assert find_leaks(copy, pool) == []
    message = BytesParser(policy=policy.default).parsebytes(copy)
    assert isinstance(message, EmailMessage)
    texts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        texts.append(str(part.get_filename() or ""))
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode("utf-8", "replace"))
            texts.append(html.unescape(payload.decode("utf-8", "replace")))
    for text in texts:
        assert leaked(text, phones) == [], text
    # The SMS copy is made from the mail copy: the same guarantee, in every cut.
    source = source_of(copy)
    for segments in (1, 3):
        sms = render_text(
            author="Person 0.",
            chat_title="Canvass",
            text=source.text,
            attachments=[("file", "https://m.example/t/x")],
            max_segments=segments,
            more_link="https://m.example/t/y",
        )
        assert leaked(sms, phones) == [] and count_segments(sms).count <= max(segments, 1) + 1
        assert not any(a.lower() in sms.lower() for a in pool)
    assert leaked(source.full_text, phones) == []
