"""Hostile MIME through the pure relay core, as production runs it (issue 14, item 7).

A hypothesis strategy builds hostile mail: deep nesting, up to 10,000 parts, huge
and numerous headers, very long lines, bad transfer encodings, mixed and bogus
charsets, bare CR and bare LF, broken boundaries and encoded-word abuse, with the
participants' addresses planted in headers, bodies and encoded words. Each input
(at most 1 MB) goes through ``parse_inbound`` (which runs ``caps`` first, as
production does), ``authorize`` with every verdict passing and an active sender,
and, when relayed, ``anonymize`` and ``personalize``. The properties:

- nothing raises;
- no participant address survives in a rendered copy (``find_leaks``: raw and
  every decoded view);
- no input takes more than ``BOUND_SECONDS`` (2 s), measured per example with
  ``time.perf_counter`` (hypothesis's own deadline is off). This guards against
  pathological blowup, not speed, and the machine may be shared: an example over
  2 s is timed again against the stdlib's own parse and serialize of the same
  bytes in the same process, and passes only if it stays within ``RATIO`` (10x)
  of that and under ``HARD_SECONDS`` (a Lambda's 60 s). Quadratic work of ours
  shows up as a ratio far above 10 on the inputs this strategy makes.

Known gap, kept visible as a strict xfail: an RFC 2047 encoded word in a *body*
(``=?utf-8?b?...?=``) is passed through undecoded, so the address it encodes
reaches readers in that form (mail clients do not decode encoded words in
bodies; the leak checker does).

The short run (``FUZZ_EXAMPLES``, 100) is part of ``make test``; the long one is
``bench/mime_fuzz.py`` (figures in docs/performance.md).
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chalicelib.relay.anonymize import Person, anonymize, list_unsubscribe_headers, personalize
from chalicelib.relay.outcomes import Outcome
from chalicelib.relay.parse import Verdicts, parse_inbound
from chalicelib.relay.policy import ChatWindow, SenderInfo, authorize
from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.scenario import CHAT, MUTE_URL, RELAY_DOMAIN, WHEN

MAX_INPUT = 1024 * 1024
BOUND_SECONDS = 2.0
RATIO = 10.0
HARD_SECONDS = 60.0
FUZZ_EXAMPLES = int(os.environ.get("MUSTER_FUZZ_EXAMPLES", "100"))

AUTHOR = Person("p-a", "Alice A.", ("alice.a@example.com",))
PEOPLE = [
    AUTHOR,
    Person("p-b", "Bob B.", ("Bob.Builder+shifts@Example.org",)),
    Person("p-c", "Chloé C.", ("chloe@xn--bcher-kva.example",)),
]
ADDRESSES = [a for p in PEOPLE for a in p.addresses]
PASS = Verdicts(spf="PASS", dkim="PASS", dmarc="PASS", spam="PASS", virus="PASS")

EOLS = [b"\r\n", b"\n", b"\r"]
CHARSETS = [
    "utf-8",
    "iso-8859-1",
    "windows-1252",
    "koi8-r",
    "iso-2022-jp",
    "utf-16",
    "utf-7",
    "x-unknown",
    "",
    "us-ascii",
]
CTES = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus"]
TYPES = [
    "text/plain",
    "text/html",
    "application/octet-stream",
    "text/calendar",
    "image/png",
    "message/rfc822",
    "application/pgp-keys",
    "text/x-vcard",
]


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


@st.composite
def planted_text(draw: st.DrawFn, header: bool = False) -> bytes:
    """A body line or header value, possibly carrying a participant address in
    some form (plain, mailto:, angle brackets, upper case; encoded words only in
    headers, see the known gap above)."""
    noise = draw(st.text(max_size=40))
    if not draw(st.booleans()):
        return _b(noise)
    addr = draw(st.sampled_from(ADDRESSES))
    forms = ["plain", "mailto", "angle", "upper"] + (["ew-b", "ew-q"] if header else [])
    form = draw(st.sampled_from(forms))
    if form == "mailto":
        addr = f'<a href="mailto:{addr}">x</a>'
    elif form == "angle":
        addr = f"Someone <{addr}>"
    elif form == "ew-b":
        addr = f"=?utf-8?b?{base64.b64encode(addr.encode()).decode()}?="
    elif form == "ew-q":
        addr = "=?iso-8859-1?q?" + addr.replace("@", "=40").replace(".", "=2E") + "?="
    elif form == "upper":
        addr = addr.upper()
    return _b(f"{noise} {addr} {noise[:5]}")


@st.composite
def encoded_word_abuse(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["many", "nested", "badb64", "unknown", "huge", "unterminated"]))
    n = draw(st.integers(1, 3000)) if kind == "many" else 1
    if kind == "many":
        return b" ".join(b"=?utf-8?q?a=C3=A9?=" for _ in range(n))
    if kind == "nested":
        inner = base64.b64encode(b"=?utf-8?b?" + base64.b64encode(ADDRESSES[1].encode()) + b"?=").decode()
        return _b(f"=?utf-8?b?{inner}?=")
    if kind == "badb64":
        return b"=?utf-8?b?@@@!!!====?= =?utf-8?b?QWxpY2U?="
    if kind == "unknown":
        return b"=?x-klingon?q?Qapla=27?= =?utf-7?b?K0FHRS0?="
    if kind == "huge":
        return b"=?utf-8?b?" + base64.b64encode(b"\xe2\x80\x8b" * draw(st.integers(1000, 60_000))) + b"?="
    return b"=?utf-8?q?never closed"


@st.composite
def headers(draw: st.DrawFn, eol: bytes) -> bytes:
    lines = []
    count = draw(st.sampled_from([0, 3, 50, 2000]))
    for i in range(count):
        lines.append(b"X-H" + str(i).encode() + b": " + draw(planted_text(header=True)))
    if draw(st.booleans()):
        # one huge header, folded or not
        size = draw(st.sampled_from([1000, 40_000, 200_000]))
        fold = draw(st.booleans())
        chunk = b"a" * 70
        value = (eol + b" ").join([chunk] * (size // 70)) if fold else b"b" * size
        lines.append(b"X-Huge: " + value)
    lines.append(b"Subject: " + draw(st.one_of(planted_text(header=True), encoded_word_abuse())))
    if draw(st.booleans()):
        lines.append(b"Reply-To: " + draw(planted_text(header=True)))
        lines.append(b"Cc: =?utf-8?b?" + base64.b64encode(ADDRESSES[2].encode()) + b"?=")
    return eol.join(lines)


@dataclass
class Leaf:
    ctype: str
    charset: str
    cte: str
    body: bytes
    name: bytes | None


@st.composite
def leaf(draw: st.DrawFn) -> Leaf:
    charset = draw(st.sampled_from(CHARSETS))
    cte = draw(st.sampled_from(CTES))
    lines = draw(st.lists(planted_text(), max_size=6))
    if draw(st.integers(0, 9)) == 0:
        lines.append(b"L" * draw(st.sampled_from([5000, 120_000])))  # one very long line
    body = b"\n".join(lines)
    if cte == "base64":
        body = draw(st.sampled_from([base64.b64encode(body), base64.b64encode(body)[:-3] + b"!*", b"%%%not base64"]))
    elif cte == "quoted-printable":
        body = body.replace(b"@", b"=40") + draw(st.sampled_from([b"", b"=ZZ=\n=", b"=" * 10]))
    elif charset == "utf-16":
        body = body.decode("utf-8", "replace").encode("utf-16")
    elif charset in ("windows-1252", "koi8-r"):
        body = body + bytes(range(128, 256))
    name = draw(st.one_of(st.none(), planted_text(header=True)))
    return Leaf(draw(st.sampled_from(TYPES)), charset, cte, body, name)


def render_leaf(p: Leaf, eol: bytes) -> bytes:
    ctype = p.ctype.encode() + (b"; charset=" + p.charset.encode() if p.charset else b"")
    head = [b"Content-Type: " + ctype, b"Content-Transfer-Encoding: " + p.cte.encode()]
    if p.name is not None:
        head.append(b'Content-Disposition: attachment; filename="' + p.name.replace(b'"', b"") + b'"')
    return eol.join(head) + eol + eol + p.body.replace(b"\n", eol)


@dataclass
class Node:
    subtype: str
    boundary: bytes
    close: bool
    children: list[Node | Leaf]


def trees() -> st.SearchStrategy[Node | Leaf]:
    boundary = st.sampled_from([b"b1", b"b1", b"==_x", b"", b'"quoted', b"a" * 80, b"--", b"b1 b2"])

    def extend(children: st.SearchStrategy[Node | Leaf]) -> st.SearchStrategy[Node | Leaf]:
        return st.builds(
            Node,
            st.sampled_from(["mixed", "alternative", "related", "digest"]),
            boundary,
            st.booleans(),
            st.lists(children, min_size=0, max_size=4),
        )

    return st.recursive(leaf(), extend, max_leaves=12)


def render(tree: Node | Leaf, eol: bytes) -> bytes:
    if isinstance(tree, Leaf):
        return render_leaf(tree, eol)
    b = tree.boundary
    out = [b"Content-Type: multipart/" + tree.subtype.encode() + b'; boundary="' + b + b'"', b""]
    for child in tree.children:
        out += [b"--" + b, render(child, eol)]
    if tree.close:
        out.append(b"--" + b + b"--")
    return eol.join(out)


def deep_bytes(depth: int, same: bool, eol: bytes) -> bytes:
    """Nesting far deeper than any client makes (same or distinct boundaries)."""
    opening = b""
    for i in range(depth):
        bnd = b"d" if same else b"d" + str(i).encode()
        opening += b'Content-Type: multipart/mixed; boundary="' + bnd + b'"' + eol + eol + b"--" + bnd + eol
    return opening + b"Content-Type: text/plain" + eol + eol + _b(ADDRESSES[1]) + eol


def many_parts_bytes(n: int, eol: bytes) -> bytes:
    part = b"--m" + eol + b"Content-Type: text/plain" + eol + eol + b"x " + _b(ADDRESSES[1]) + eol
    return b'Content-Type: multipart/mixed; boundary="m"' + eol + eol + part * n + b"--m--" + eol


@st.composite
def deep(draw: st.DrawFn, eol: bytes) -> bytes:
    return deep_bytes(draw(st.sampled_from([50, 200, 1000])), draw(st.booleans()), eol)


@st.composite
def many_parts(draw: st.DrawFn, eol: bytes) -> bytes:
    return many_parts_bytes(draw(st.sampled_from([999, 1001, 10_000])), eol)


@st.composite
def hostile_mime(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from(EOLS))
    mixed_eols = draw(st.integers(0, 4)) == 0
    sender = draw(
        st.sampled_from(
            [
                b"From: Alice <alice.a@example.com>",
                b"From: =?utf-8?b?" + base64.b64encode(b"Bob.Builder+shifts@Example.org") + b"?= <alice.a@example.com>",
                b'From: "alice.a@example.com" <alice.a@example.com>',
                b"From: alice.a@example.com",
            ]
        )
    )
    top = [sender, b"To: " + CHAT.relay_address.encode(), b"MIME-Version: 1.0", draw(headers(eol))]
    # The heavy shapes are rarer here; each also has a fixed case below (EXTREMES).
    shape = draw(st.sampled_from(["tree"] * 6 + ["deep", "many"]))
    body = render(draw(trees()), eol) if shape == "tree" else draw(deep(eol) if shape == "deep" else many_parts(eol))
    raw = eol.join(top) + eol + body
    if mixed_eols:
        raw = raw.replace(b"\n\n", b"\r\r\n", 3).replace(b"\r\n", b"\n", 5)
    return raw[:MAX_INPUT]


# -- the pipeline, as production runs it --------------------------------------------


@dataclass
class Result:
    outcome: Outcome
    seconds: float
    out: bytes | None


def pipeline(raw: bytes) -> Result:
    started = time.perf_counter()
    mail = parse_inbound(raw)  # caps.complexity first, then the full parse
    now = WHEN + timedelta(hours=1)
    outcome = authorize(
        verdicts=PASS,
        mail=mail,
        envelope_sender="alice.a@example.com",
        relay_domain=RELAY_DOMAIN,
        chat=ChatWindow("open", datetime(2024, 12, 1, tzinfo=UTC), None),
        sender=SenderInfo(active=True),
        max_bytes=10 * 1024 * 1024,
        now=now,
    )
    out = None
    if outcome is Outcome.RELAYED:
        rendered = anonymize(
            mail,
            author=AUTHOR,
            people=PEOPLE,
            chat=CHAT,
            message_id="<fz@relay.example.org>",
            in_reply_to=None,
            references=[],
            date=now,
        )
        out = personalize(rendered, mute_url=MUTE_URL, list_unsubscribe_headers=list_unsubscribe_headers(MUTE_URL))
    return Result(outcome, time.perf_counter() - started, out)


def stdlib_seconds(raw: bytes) -> float:
    """The stdlib's parse and serialize of the same bytes: the yardstick when
    the machine is too busy for the absolute bound."""
    from email import policy
    from email.parser import BytesParser

    started = time.perf_counter()
    with contextlib.suppress(Exception):  # the stdlib gives up on some of these; its time still counts
        BytesParser(policy=policy.default).parsebytes(raw).as_bytes()
    return time.perf_counter() - started


def within_bound(result: Result, raw: bytes) -> tuple[bool, str]:
    if result.seconds <= BOUND_SECONDS:
        return True, ""
    base = stdlib_seconds(raw)
    ok = result.seconds <= min(HARD_SECONDS, max(BOUND_SECONDS, RATIO * base))
    return ok, f"{len(raw)} bytes took {result.seconds:.2f} s ({result.outcome}); the stdlib took {base:.2f} s"


def check(raw: bytes) -> Result:
    assert len(raw) <= MAX_INPUT
    result = pipeline(raw)
    ok, why = within_bound(result, raw)
    if not ok:
        # One slow run can be the machine (another process, a first import on a
        # cold worker); work that really is slow is slow again.
        ok, why = within_bound(pipeline(raw), raw)
    assert ok, why
    if result.out is not None:
        assert find_leaks(result.out, ADDRESSES) == []
    return result


# No shrinking: a hostile input is up to 1 MB and shrinking one costs minutes;
# hypothesis still prints the failing example (and keeps it in its database).
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(hostile_mime())
def test_hostile_mime_never_raises_leaks_or_blows_up(raw: bytes) -> None:
    check(raw)


def _nested(depth: int) -> bytes:
    word = ADDRESSES[1].encode()
    for _ in range(depth):
        word = b"=?utf-8?b?" + base64.b64encode(word) + b"?="
    return word


HEAD = b"From: Alice <alice.a@example.com>\r\nTo: k3x9q@relay.example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
EXTREMES = {
    "10k parts": (HEAD + many_parts_bytes(10_000, b"\r\n"), Outcome.TOO_COMPLEX),
    "999 parts": (HEAD + many_parts_bytes(999, b"\r\n"), Outcome.RELAYED),
    "depth 1000, one boundary": (HEAD + deep_bytes(1000, True, b"\n"), None),
    "depth 1000, distinct boundaries": (HEAD + deep_bytes(1000, False, b"\r"), None),
    "200 KB header": (
        HEAD.replace(b"Subject: x", b"Subject: " + b"y" * 200_000) + b"\r\nbody\r\n",
        Outcome.TOO_COMPLEX,
    ),
    "3000 encoded words": (
        HEAD.replace(b"Subject: x", b"Subject: " + b" ".join([b"=?utf-8?q?a=C3=A9?="] * 3000)) + b"\r\nbody\r\n",
        None,
    ),
    "1 MB line": (HEAD + b"\r\n" + b"z" * (MAX_INPUT - 200), Outcome.RELAYED),
    "an encoded word inside an encoded word in the Subject": (
        HEAD.replace(
            b"Subject: x",
            b"Subject: =?utf-8?b?"
            + base64.b64encode(b"=?utf-8?b?" + base64.b64encode(ADDRESSES[1].encode()) + b"?=")
            + b"?=",
        )
        + b"\r\nhi\r\n",
        Outcome.RELAYED,
    ),
    "an encoded word that does not decode, in a body": (HEAD + b"\r\nx =?utf-8?b?A?= y\r\n", Outcome.RELAYED),
    "an address in encoded words nested 30 deep, in a body": (HEAD + b"\r\n" + _nested(30) + b"\r\n", Outcome.RELAYED),
    "bare CR everywhere": (HEAD.replace(b"\r\n", b"\r") + b"\r" + _b(ADDRESSES[1]) + b"\r", Outcome.RELAYED),
    "bare LF everywhere": (HEAD.replace(b"\r\n", b"\n") + b"\n" + _b(ADDRESSES[2]) + b"\n", Outcome.RELAYED),
}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_the_extreme_shapes_hold_the_same_properties(name: str) -> None:
    """Each promised extreme, built directly (whatever hypothesis happens to draw)."""
    raw, expected = EXTREMES[name]
    result = check(raw)
    if expected is not None:
        assert result.outcome is expected


@pytest.mark.parametrize(
    "body",
    [
        b"=?utf-8?b?" + base64.b64encode(ADDRESSES[1].encode()) + b"?=",
        # split over two adjacent words (they decode as one text)
        b"see =?utf-8?b?"
        + base64.b64encode(ADDRESSES[1][:4].encode())
        + b"?= =?utf-8?q?"
        + ADDRESSES[1][4:].replace("@", "=40").encode()
        + b"?= today",
    ],
)
def test_an_address_in_an_encoded_word_in_a_body_is_scrubbed(body: bytes) -> None:
    # Encoded words belong in headers, yet a reader (or a checker) that decodes
    # one in a body must not find an address in it.
    result = check(HEAD + b"\r\n" + body + b"\r\n")
    assert result.outcome is Outcome.RELAYED


def test_a_body_with_an_encoded_word_that_does_not_decode_reaches_readers_whole() -> None:
    # Scrubbing it once recursed until Python gave up, and the renderer dropped
    # the whole part as unreadable.
    result = check(HEAD + b"\r\nMeet at =?utf-8?b?A?= gate 9\r\n")
    assert result.outcome is Outcome.RELAYED and result.out is not None
    message = email.message_from_bytes(result.out, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Meet at =?utf-8?b?A?= gate 9" in text and "could not be read" not in text
