"""Large attachments as links (issue 14) through the local twin: a 6 MB attachment
in over real SMTP, small copies in the outbox, and the link fetched over real HTTP
from the twin's API, which redirects to the twin's S3 (moto) for the exact bytes."""

from __future__ import annotations

import random
import re
import uuid
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest

from infra.twin.client import chat_message, event_body, signup_body, wait_for
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
ORGANIZER = {"id": "fo1", "first_name": "Fay", "last_name": "Organizer", "email": "fay@org.example"}
PEOPLE = {"gus": ("Gus", "Grant", "gus@people.example"), "hal": ("Hal", "Hughes", "hal@people.example")}
LINK_RE = re.compile(r"https?://[^\s\"<>]+/files/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


def test_a_6_mb_attachment_over_smtp_arrives_as_a_link_that_downloads_the_exact_bytes(twin: Twin) -> None:
    client = twin.client
    event_id = f"e2e-files-{uuid.uuid4().hex[:6]}"
    client.put_event(event_id, event_body("Map day", 10, [ORGANIZER]))
    for n, (first, last, email) in enumerate(PEOPLE.values(), 1):
        client.put_signup(event_id, f"f{n}", signup_body(first, last, email))
    chat = client.chat(event_id, "t1")
    assert chat["state"] == "open", chat

    marker = f"maps-{uuid.uuid4().hex[:6]}"
    data = random.Random(marker).randbytes(6 * MIB)
    first, last, email = PEOPLE["gus"]
    msg: EmailMessage = chat_message(
        f"{first} {last} <{email}>", chat["address"], f"Route maps {marker}", "Maps attached.\n"
    )
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="route-maps.pdf")
    assert len(msg.as_bytes()) > 8 * MIB
    client.send(msg, email, [chat["address"]])

    def arrived() -> list | None:  # type: ignore[type-arg]
        got = [c for c in client.outbox() if marker in str(c.message["Subject"] or "")]
        return got if len(got) >= 2 else None

    copies = wait_for(arrived, 120, what="the two copies of the 6 MB message")
    assert sorted(c.to for c in copies) == sorted([ORGANIZER["email"], PEOPLE["hal"][2]])
    links = set()
    for copy in copies:
        assert len(copy.raw) < 32 * 1024, len(copy.raw)
        assert email.encode() not in copy.raw.lower()
        texts = [p.get_content() for p in copy.message.walk() if p.get_content_type() == "text/plain"]
        assert any("route-maps.pdf (6.0 MB)" in t for t in texts)
        links |= {m for t in texts for m in LINK_RE.findall(t)}
    (link,) = links
    assert link.startswith(twin.config.api_url + "/files/")

    # The API answers 302 to a presigned URL on the twin's moto; urllib follows it.
    response = client.request("GET", link, auth=False, timeout=60)
    assert response.status == 200
    assert response.body == data

    # Without following: the redirect itself, pointing at the twin's S3.
    import http.client

    parts = urlsplit(link)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    conn.request("GET", parts.path)
    raw = conn.getresponse()
    assert raw.status == 302
    assert (raw.getheader("Location") or "").startswith(twin.config.aws_url + "/")
    conn.close()

    # A tampered link: 403 and nothing downloaded.
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    refused = client.request("GET", tampered, auth=False, headers={"Accept": "application/json"})
    assert refused.status == 403 and refused.json()["error"]["code"] == "invalid_link"
    assert data[:1024] not in refused.body
