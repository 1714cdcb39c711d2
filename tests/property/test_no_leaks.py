"""Property tests for R5: no real address survives the relay, in any form.

Participants with random addresses (random case too) are injected into every
header, text and HTML bodies (mailto:, entity- and URL-encoded, long zero-padded
entities, entities of percent-escapes, soft hyphens and zero-width characters,
fullwidth forms, +tag variants), quoted-reply lines, attachment names (plain,
RFC 2231, RFC 2047), attachment content, every text-like attachment type
(``application/ics``, ``text/x-vcalendar``, a ``.vcf`` as octet-stream, UTF-16
text with and without BOM) and OpenPGP key parts, with random transfer
encodings. Participants' names equal or contain the mute-URL placeholders. No
personalized outbound copy may contain any address, raw or decoded, and every
copy keeps exactly Muster's headers with the mute URL only in its footers. The
daily digest that embeds several such copies for one reader (and lists their
authors and subjects) is held to the same standard, and so are attachments that
leave the message for a download link (issue 14): the note each copy carries, and
each stored file's bytes and its name as S3 would serve it. A second property
fuzzes the pipeline with hostile bytes.
"""

from __future__ import annotations

import base64
import html
import quopri
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from email import policy
from email.parser import BytesParser
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.relay.anonymize import (
    MUTE_URL_PLACEHOLDER_HTML,
    MUTE_URL_PLACEHOLDER_TEXT,
    FileLinks,
    Person,
    anonymize,
    list_unsubscribe_headers,
    personalize,
    render,
)
from chalicelib.relay.digest import DigestMessage, render_digest
from chalicelib.relay.parse import parse_inbound
from tests.fixtures.emails import hostile
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.loader import fixture_names, load_eml
from tests.fixtures.emails.remote import html_parts, loads
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, RELAY_DOMAIN, WHEN, relay

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
local_parts = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALNUM),
    st.text(alphabet=_ALNUM + "._+-", max_size=14),
).filter(lambda s: ".." not in s and not s.endswith("."))
labels = st.text(alphabet=_ALNUM, min_size=1, max_size=10)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6),
).filter(lambda d: not d.endswith(RELAY_DOMAIN))
addresses = st.builds(lambda lp, d: f"{lp}@{d}", local_parts, domains)


@dataclass(frozen=True)
class Scenario:
    people: list[Person]
    stranger: str
    seed: int

    @property
    def real(self) -> list[str]:
        return [a for p in self.people for a in p.addresses] + [self.stranger]


names = st.sampled_from(
    [
        "Person {i}.",
        MUTE_URL_PLACEHOLDER_TEXT,
        MUTE_URL_PLACEHOLDER_HTML,
        MUTE_URL_PLACEHOLDER_TEXT + " {i}.",
        "P {i} " + MUTE_URL_PLACEHOLDER_HTML,
        "MUSTERMUTE" + MUTE_URL_PLACEHOLDER_TEXT + "URL",
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    pool = draw(st.lists(addresses, min_size=3, max_size=7, unique_by=str.lower))
    count = draw(st.integers(min_value=1, max_value=min(4, len(pool) - 1)))
    people = [Person(key=f"p{i}", display_name=draw(names).format(i=i), addresses=(pool[i],)) for i in range(count)]
    extra = pool[count:-1]
    if extra:  # someone with two addresses
        people[0] = Person("p0", people[0].display_name, (pool[0], *extra))
    return Scenario(people, pool[-1], draw(st.integers(min_value=0, max_value=2**32)))


def _vary_case(addr: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.4 else ch for ch in addr)


def _entities(addr: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return "".join(f"&#{ord(c)};" for c in addr)
    if style == 1:
        return "".join(f"&#x{ord(c):x};" for c in addr)
    if style == 2:
        return addr.replace("@", "&commat;")
    return addr.replace("@", "&#64;").replace(".", "&period;")


def _disguise(addr: str, rng: random.Random) -> str:
    """One of the spellings the scrubber must normalize (hostile.SPELLINGS or +tag)."""
    if rng.random() < 0.15:
        return hostile.plus_variant(addr, rng.choice(["x", "shifts", "a.b"]))
    return hostile.random_spelling(addr, rng)


def _text_attachments(pick: Callable[[], str], rng: random.Random) -> list[str]:
    """Text-like attachments under the types clients really use, and a key."""
    csv = f"name,email\r\nA,{pick()}\r\nB,{pick()}\r\n"
    utf16 = rng.choice(
        [
            ("application/octet-stream", "export.txt", csv.encode("utf-16")),
            ("text/plain; charset=utf-16le", "export.txt", csv.encode("utf-16-le")),
            ("application/octet-stream", "export.csv", csv.encode("utf-16-be")),
            ("text/plain", "export.txt", csv.encode("utf-16")),
        ]
    )
    key_type, key_name = rng.choice(
        [
            ("application/pgp-keys", "OpenPGP_0x1234.asc"),
            ("application/octet-stream", "key.asc"),
            ("text/plain", "pub.asc"),
        ]
    )
    return [
        hostile.attachment(
            rng.choice(["application/ics", "text/calendar"]), "invite.ics", hostile.ics(pick(), pick()).encode()
        ),
        hostile.part("text/x-vcalendar; charset=utf-8", hostile.ics(pick(), pick()), cte="8bit"),
        hostile.attachment("application/octet-stream", "contact.vcf", hostile.vcard(pick()).encode()),
        hostile.attachment(*utf16),
        hostile.attachment(key_type, key_name, hostile.armored_key("Someone", pick()).encode()),
    ]


def _encode_body(text: str, rng: random.Random) -> tuple[str, str]:
    cte = rng.choice(["7bit", "quoted-printable", "base64"])
    data = text.encode("utf-8")
    if cte == "base64":
        return cte, base64.encodebytes(data).decode("ascii")
    if cte == "quoted-printable":
        return cte, quopri.encodestring(data).decode("ascii")
    return "8bit", text


def _b64_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _q_word(text: str) -> str:
    return "=?utf-8?q?" + "".join(f"={b:02X}" for b in text.encode()) + "?="


def build_hostile_mail(sc: Scenario) -> bytes:
    rng = random.Random(sc.seed)
    real = sc.real

    def pick() -> str:
        return _vary_case(rng.choice(real), rng)

    author = _vary_case(sc.people[0].addresses[0], rng)
    a, b, c = pick(), pick(), pick()
    headers = [
        f"Return-Path: <{pick()}>",
        f"Received: from mx.example.net by inbound.example for <{pick()}>; Fri, 13 Dec 2024",
        f"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; i=@{pick()}; b=abc",
        f'From: "Someone {pick()}" <{author}>',
        f"Sender: {pick()}",
        f"To: {a},\r\n\t{b}",
        f"Cc: {_b64_word('Friend')} <{c}>, {pick()}",
        f"Reply-To: {pick()}",
        f"Subject: Re: ask {pick()} or {_b64_word(pick())} or {_q_word(pick())}",
        f"X-Original-To: {pick()}",
        f"X-Forwarded-For: {pick()} {pick()}",
        f"Message-ID: <{pick()}>",
        f"In-Reply-To: <{pick()}>",
        f"References: <{pick()}>\r\n <{pick()}>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="OUTER"',
    ]
    plain = (
        f"Hi all, write to {pick()} or <{pick()}> (mailto:{pick()}).\n"
        f"Also {_disguise(pick(), rng)}, {_disguise(pick(), rng)} and {_disguise(pick(), rng)}.\n"
        f"{rng.choice([MUTE_URL_PLACEHOLDER_TEXT, MUTE_URL_PLACEHOLDER_HTML])}\n\n"
        f"On Mon, Dec 9, 2024 at 9:00 AM Someone <{pick()}> wrote:\n"
        f"> From: {pick()} [mailto:{pick()}]\n> Sent: Monday\n> To: {pick()}; {pick()}\n"
        f"> url https://example.net/u?email={quote(pick())}\n"
    )
    html = (
        f'<html><body><p>Hi <a href="mailto:{pick()}?subject=x">{_entities(pick(), rng)}</a>'
        f" and {pick().replace('@', '%40')} and &lt;{pick()}&gt;</p>"
        f'<blockquote>On Monday <a href="MAILTO:{quote(pick(), safe="")}">x</a> wrote: '
        f"{_entities(pick(), rng)}</blockquote>"
        f'<p>{_disguise(pick(), rng)} <a href="mailto:{_disguise(pick(), rng)}">{_disguise(pick(), rng)}</a></p>'
        f"</body></html>\n"
    )
    plain_cte, plain_body = _encode_body(plain, rng)
    html_cte, html_body = _encode_body(html, rng)
    name_plain = f"notes {pick()}.txt"
    name_2231 = quote(f"sheet {pick()}.csv", safe="")
    name_2047 = _b64_word(f"scan {pick()}.pdf")
    binary = bytes(rng.randrange(256) for _ in range(64))
    if rng.random() < 0.5:
        # Binary content is only checked for participants' addresses (documented
        # in anonymize.py): a stranger's address in a PDF cannot be told apart from
        # any other bytes, and dropping every binary with an "@" would drop most.
        known = _vary_case(rng.choice([addr for person in sc.people for addr in person.addresses]), rng)
        if rng.random() < 0.3:
            known = hostile.plus_variant(known)
        binary += known.encode(rng.choice(["ascii", "utf-16-le", "utf-16-be"]))
    parts = [
        "--OUTER",
        'Content-Type: multipart/alternative; boundary="ALT"',
        "",
        "--ALT",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Transfer-Encoding: {plain_cte}",
        f"X-Part-Header: {pick()}",
        "",
        plain_body,
        "--ALT",
        "Content-Type: text/html; charset=utf-8",
        f"Content-Transfer-Encoding: {html_cte}",
        "",
        html_body,
        "--ALT--",
        "--OUTER",
        f'Content-Type: text/plain; name="{name_plain}"',
        f'Content-Disposition: attachment; filename="{name_plain}"',
        f"Content-Description: {pick()}",
        "",
        f"contact,{pick()}\n",
        "--OUTER",
        "Content-Type: application/octet-stream",
        f"Content-Disposition: attachment; filename*=utf-8''{name_2231}",
        "Content-Transfer-Encoding: base64",
        "",
        base64.encodebytes(binary).decode("ascii"),
        "--OUTER",
        f'Content-Type: application/pdf; name="{name_2047}"',
        f'Content-Disposition: attachment; filename="{name_2047}"',
        f"Content-ID: <{pick()}>",
        "Content-Transfer-Encoding: base64",
        "",
        base64.encodebytes(b"%PDF-1.4 harmless").decode("ascii"),
        *(f"--OUTER\r\n{p}" for p in _text_attachments(pick, rng)),
        "--OUTER--",
        "",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(parts)).encode("utf-8")


@SETTINGS
@given(scenarios())
def test_given_addresses_injected_everywhere_when_relayed_then_none_survives(sc: Scenario) -> None:
    raw = build_hostile_mail(sc)
    # Sanity: the generator really planted the addresses (the test can fail).
    assert sc.people[0].addresses[0].lower() in raw.decode("utf-8").lower()

    out = relay(raw, sc.people)

    assert find_leaks(out, sc.real) == []
    assert_copy_well_formed(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_given_every_attachment_linked_then_neither_the_notes_nor_the_stored_files_leak(sc: Scenario) -> None:
    from email.message import EmailMessage

    from chalicelib.services.files import content_disposition

    raw = build_hostile_mail(sc)
    rendered = render(
        parse_inbound(raw),
        author=sc.people[0],
        people=sc.people,
        chat=CHAT,
        message_id="<m-2.k3x9q@relay.example.org>",
        in_reply_to="<m-1.k3x9q@relay.example.org>",
        references=["<m-0.k3x9q@relay.example.org>", "<m-1.k3x9q@relay.example.org>"],
        date=WHEN,
        files=FileLinks(limit=0, url=lambda n: f"https://muster.example.org/files/tok{n}.sig", expires=WHEN),
    )
    out = personalize(rendered.message, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))

    assert rendered.files  # the generator always attaches a PDF and a notes file
    assert find_leaks(out, sc.real) == []
    assert_copy_well_formed(out)
    assert out.count(b"muster.example.org/files/tok") >= 2 * len(rendered.files)  # text and HTML notes
    for f in rendered.files:
        # What S3 stores and serves: the bytes, the type and the download name.
        served = EmailMessage()
        served.set_content(f.data, *f.content_type.split("/"), cte="base64")
        served["Content-Disposition"] = content_disposition(f.filename)
        assert find_leaks(served.as_bytes(), sc.real) == [], f.filename
        assert f.filename in out.decode("utf-8", "replace") or f.filename.startswith("attachment-")


TOP_HEADERS = {
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-type",
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "list-id",
    "list-post",
    "x-loop",
    "x-auto-response-suppress",
}


def assert_copy_well_formed(out: bytes) -> None:
    """Exactly Muster's headers; the mute URL only in List-Unsubscribe and the footers."""
    message = BytesParser(policy=policy.default).parsebytes(out)
    assert {k.lower() for k in message} == TOP_HEADERS
    assert message["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert b"MUSTERMUTEURL" not in out
    head = out.partition(b"\r\n\r\n")[0]
    assert head.count(MUTE_URL.encode()) == 1  # List-Unsubscribe
    in_text = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        content = part.get_payload(decode=True) or b""
        if part.get_content_type() == "text/html":
            in_text += content.count(html.escape(MUTE_URL).encode())
        else:
            in_text += content.count(MUTE_URL.encode())
    assert 1 <= in_text <= 2  # the text footer and/or the HTML footer


def _stored_copy(raw: bytes, sc: Scenario, n: int) -> bytes:
    """The anonymized copy relay stores at ``outbound/<id>.eml`` (placeholders in)."""
    return anonymize(
        parse_inbound(raw),
        author=sc.people[n % len(sc.people)],
        people=sc.people,
        chat=CHAT,
        message_id=f"<18f{n:03x}aa0000{sc.seed % 4096:04x}@{RELAY_DOMAIN}>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.integers(min_value=1, max_value=2), st.sampled_from(fixture_names()))
def test_given_addresses_injected_everywhere_when_digested_then_none_survives(
    sc: Scenario, count: int, fixture: str
) -> None:
    rng = random.Random(sc.seed)
    raws = [build_hostile_mail(Scenario(sc.people, sc.stranger, sc.seed + n)) for n in range(count)]
    filled = {key: _vary_case(rng.choice(sc.real), rng) for key in ("ALICE", "BOB", "CAROL", "DAVE", "ERIN")}
    raws.append(load_eml(fixture, **filled, SENDER=sc.people[0].addresses[0]))
    stored = [_stored_copy(raw, sc, n) for n, raw in enumerate(raws)]

    out = render_digest(
        chat=CHAT,
        messages=[DigestMessage(c, ancestors=("18f000aa0000abcd",) if n else ()) for n, c in enumerate(stored)],
        timezone="America/New_York",
        day=date(2024, 12, 13),
        mute_url=MUTE_URL,
        message_id=f"<digest-{sc.seed}@{RELAY_DOMAIN}>",
        sent_at=WHEN,
        digest_hour=18,
    )

    assert find_leaks(out, sc.real) == []
    assert_digest_well_formed(out, len(stored))


def assert_digest_well_formed(out: bytes, count: int) -> None:
    """One listing, ``count`` embedded copies that keep Muster's Message-IDs, the
    reader's mute URL in every footer and no placeholder anywhere."""
    assert b"MUSTERMUTEURL" not in out
    message = BytesParser(policy=policy.default).parsebytes(out)
    assert message["List-Unsubscribe"] == f"<{MUTE_URL}>"
    assert message["Auto-Submitted"] == "auto-generated"
    listing_part, digest_part = message.get_payload()
    assert digest_part.get_content_type() == "multipart/digest"
    embedded = digest_part.get_payload()
    assert [p.get_content_type() for p in embedded] == ["message/rfc822"] * count
    for n, part in enumerate(embedded):
        (copy,) = part.get_payload()
        assert copy["Message-ID"] == f"<18f{n:03x}aa0000{_seed_of(message)}@{RELAY_DOMAIN}>"
        text = b"".join(
            p.get_payload(decode=True) or b""
            for p in copy.walk()
            if not p.is_multipart() and p.get_content_type() in ("text/plain", "text/html")
        )
        assert MUTE_URL.encode() in text or html.escape(MUTE_URL).encode() in text
    listing = listing_part.get_content()
    assert listing.count("\n1. ") + listing.count("\n 1. ") == 1 and MUTE_URL in listing


_SPLITTERS = (
    "<script>x</script>",
    "<!-- x -->",
    "<style>p{}</style>",
    "<b></b>",
    "<iframe>x</iframe>",
    "<title>x</title>",
    "<noscript></noscript>",
    "<wbr>",
    "<object></object>",
    "<svg></svg>",
)


def _split_by_markup(addr: str, rng: random.Random) -> str:
    """``addr`` with markup the sanitizer removes inside it: scrubbing before
    sanitizing alone would miss the address the sanitizer joins back."""
    cut = rng.randrange(1, len(addr))
    return addr[:cut] + rng.choice(_SPLITTERS) + addr[cut:]


def build_html_attributes_mail(sc: Scenario) -> bytes:
    """Addresses in every attribute the sanitizer keeps (alt, title, href, style,
    src, srcset, background), in the URLs that become placeholders, in trackers,
    and split by markup the sanitizer drops."""
    rng = random.Random(sc.seed)

    def pick() -> str:
        return _vary_case(rng.choice(sc.real), rng)

    def spelled() -> str:
        return rng.choice([pick, lambda: _entities(pick(), rng), lambda: quote(pick(), safe="@")])()

    document = (
        "<html><head><title>" + pick() + "</title></head><body>"
        f'<p title="{spelled()}" style="font-family:\'{pick()}\';color:red">Hi {_split_by_markup(pick(), rng)}</p>'
        f'<img src="https://img.example/{quote(pick(), safe="@")}/a.png" alt="{spelled()}" title="{spelled()}">'
        f'<img srcset="https://img.example/b.png?u={pick()} 1x" alt="x">'
        f'<img src="https://x.list-manage.com/track/open.php?e={pick()}" width="1" height="1">'
        f'<img src="cid:{pick()}" alt="{spelled()}">'
        f'<table background="https://img.example/{pick()}.png"><tr><td title="{spelled()}">t</td></tr></table>'
        f'<a href="mailto:{spelled()}" title="{pick()}">m</a> <a href="https://{pick()}@web.example/?to={pick()}">w</a>'
        f'<video poster="https://img.example/{pick()}.png"></video>'
        f"<p>{_split_by_markup(pick(), rng)} and {_disguise(pick(), rng)}</p>"
        "</body></html>\n"
    )
    cte, body = _encode_body(document, rng)
    return (
        f"From: Someone <{sc.people[0].addresses[0]}>\r\nTo: k3x9q@{RELAY_DOMAIN}\r\nSubject: attrs\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}"
    ).encode()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from(["block", "allow"]))
def test_given_addresses_in_html_attributes_when_sanitized_then_none_survives_and_block_loads_nothing(
    sc: Scenario, mode: str
) -> None:
    raw = build_html_attributes_mail(sc)
    mail = parse_inbound(raw)
    rendered = anonymize(
        mail,
        author=sc.people[0],
        people=sc.people,
        chat=replace(CHAT, remote_content=mode),  # type: ignore[arg-type]
        message_id="<m-3.k3x9q@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    out = personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers={})

    assert find_leaks(out, sc.real) == []
    documents = html_parts(BytesParser(policy=policy.default).parsebytes(out))  # type: ignore[arg-type]
    assert len(documents) == 1
    assert html.escape(MUTE_URL) in documents[0]
    seen = loads(documents[0])
    assert seen.scripts == []
    if mode == "block":
        assert seen.remote == []
    assert not any("list-manage" in u for u in seen.remote)


def _seed_of(message: object) -> str:
    seed = int(str(message["Message-ID"]).split("-", 1)[1].split("@", 1)[0])  # type: ignore[index]
    return f"{seed % 4096:04x}"


@SETTINGS
@given(scenarios(), st.sampled_from(fixture_names()))
def test_given_real_client_fixtures_with_random_participants_then_none_survives(sc: Scenario, name: str) -> None:
    rng = random.Random(sc.seed)
    real = sc.real
    filled = {key: _vary_case(rng.choice(real), rng) for key in ("ALICE", "BOB", "CAROL", "DAVE", "ERIN")}
    filled["SENDER"] = sc.people[0].addresses[0]

    out = relay(load_eml(name, **filled), sc.people)

    assert find_leaks(out, real) == []


def _mangle(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            del buf[pos : pos + rng.randrange(1, 200)]
        elif op == 1:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif op == 2:
            buf[pos:pos] = rng.choice([b"\r\n--", b"=?utf-8?b?", b"\n\n", b"boundary=", b"=\n", b"\x00"])
        elif buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _pipeline(raw: bytes) -> bytes:
    author = Person("p0", "Person 0.", ("alice.a@example.com",))
    rendered = anonymize(
        parse_inbound(raw),
        author=author,
        people=[author],
        chat=CHAT,
        message_id="<fuzz@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=WHEN,
    )
    return personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers={})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_given_arbitrary_bytes_then_parse_and_anonymize_never_raise(raw: bytes) -> None:
    out = _pipeline(raw)

    assert b"\r\nFrom: " in out and b"<k3x9q@relay.example.org>" in out
    assert b"List-Id: " in out and MUTE_URL.split("?")[0].encode() in out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(fixture_names()), st.integers(min_value=0, max_value=2**32))
def test_given_mangled_real_mail_then_the_pipeline_never_raises_nor_leaks(name: str, seed: int) -> None:
    raw = _mangle(load_eml(name), random.Random(seed))

    out = _pipeline(raw)

    assert "alice.a@example.com" not in out.decode("utf-8", "replace").lower()
