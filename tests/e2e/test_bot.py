"""Issue 12 over the twin: a keyword answered by mail, and one full ride match by
mail (SMTP in, answers and intros in the outbox, the pair's address carrying a
reply), with no address in any copy but the envelope's own."""

from __future__ import annotations

import re

import pytest

from infra.twin.client import Copy, chat_message, event_body, signup_body
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e
ORGANIZER = {"id": "o12", "first_name": "Pia", "last_name": "Park", "email": "pia@org.example"}
PEOPLE = {
    "gil": ("Gil", "Green", "gil@people.example"),
    "hal": ("Hal", "Hart", "hal@people.example"),
}
REAL = [ORGANIZER["email"], *(p[2] for p in PEOPLE.values())]
PAIR = re.compile(r"[a-z0-9-]+-private-[a-z2-7]{20}@[a-z0-9-]+(?:\.[a-z0-9-]+)+")


def text_of(copy: Copy) -> str:
    body = copy.message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


def no_real_address(copy: Copy) -> None:
    raw = copy.raw.lower()
    for real in REAL:
        assert real.encode() not in raw, (real, copy.path.name)


def test_a_keyword_and_a_ride_match_by_mail(twin: Twin) -> None:
    client = twin.client
    body = event_body("Get out the vote", 10, [ORGANIZER])
    body["keywords"] = {"where": "Meet at the library steps"}
    client.put_event("e2e-rides", body)
    for n, (first, last, email) in enumerate(PEOPLE.values(), 1):
        client.put_signup("e2e-rides", f"r{n}", signup_body(first, last, email))
    address = client.chat("e2e-rides", "t1")["address"]
    client.wait_for_copies(3, timeout=30, match=lambda c: address in str(c.message["Reply-To"]))
    gil, hal = PEOPLE["gil"][2], PEOPLE["hal"][2]

    before = len(client.outbox())
    client.send(chat_message(f"Hal <{hal}>", address, "Where?", "Sent from my phone"), hal, [address])
    (answer,) = client.wait_for_copies(1, since=before, timeout=30)
    assert answer.to == hal and "Meet at the library steps" in text_of(answer)
    assert answer.message["From"].addresses[0].addr_spec == address
    no_real_address(answer)

    before = len(client.outbox())
    client.send(chat_message(f"Gil <{gil}>", address, "hi all", "RIDE OFFER 2 from Downtown\n\nGil"), gil, [address])
    client.wait_for_copies(1, since=before, timeout=30)
    client.send(chat_message(f"Hal <{hal}>", address, "Re: ride need from downtown", ""), hal, [address])
    # Gil's answer, Hal's answer, and the pair's two intros; nobody else gets anything.
    copies = client.wait_for_copies(4, since=before, timeout=30)
    assert sorted(c.to for c in copies) == sorted([gil, gil, hal, hal])
    for copy in copies:
        no_real_address(copy)
    hal_answer = next(c for c in copies if c.to == hal and c.message["From"].addresses[0].addr_spec == address)
    pair = PAIR.search(text_of(hal_answer))
    assert pair and "Matched: Gil G. (offers a ride)" in text_of(hal_answer)
    intros = [c for c in copies if c.message["From"].addresses[0].addr_spec == pair.group(0)]
    assert sorted(c.to for c in intros) == sorted([gil, hal])
    assert all(str(c.message["Subject"]).startswith("[Ride: Get out the vote") for c in intros)

    before = len(client.outbox())
    client.send(chat_message(f"Hal <{hal}>", pair.group(0), "Pickup", "Corner of 5th at 9?"), hal, [pair.group(0)])
    (relayed,) = client.wait_for_copies(1, since=before, timeout=30)
    assert relayed.to == gil and relayed.message["From"].addresses[0].display_name == "Hal H."
    assert "Corner of 5th at 9?" in text_of(relayed)
    no_real_address(relayed)
