"""Shared helpers of the issue 11 tests (next steps, announcements, debrief)."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from tests.integration.world import World, event_body, signup_body

STEPS = [
    {"id": "petition", "label": "Sign the petition", "url": "https://act.example.org/petition?src=muster&x=1"},
    {"id": "next-shift", "label": "Pick your next shift", "url": "https://events.example.org/e/42"},
]
TARGETS = {s["id"]: s["url"] for s in STEPS}


def texts(raw: bytes) -> dict[str, str]:
    """Each text part of a mail, decoded: {"plain": ..., "html": ...}."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    out: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            out.setdefault(part.get_content_subtype(), "")
            out[part.get_content_subtype()] += str(part.get_content())  # type: ignore[attr-defined]
    return out


def step_links(world: World, raw: bytes, subtype: str = "plain") -> list[str]:
    base = re.escape(world.settings.public_url + "/n/")
    return re.findall(base + r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", texts(raw).get(subtype, ""))


def path_of(world: World, url: str) -> str:
    assert url.startswith(world.settings.public_url)
    return url[len(world.settings.public_url) :]


def click(world: World, url: str, method: str = "GET") -> Any:
    return world.call(method, path_of(world, url), key=None)


def open_with_steps(
    world: World, statuses: tuple[str, ...] = ("registered", "confirmed"), organizers: int = 1, **extra: Any
) -> dict[str, Any]:
    body = event_body(start_in_hours=10, organizers=organizers, **extra.pop("chat", {}))
    body["next_steps"] = STEPS
    body.update(extra)
    response = world.put_event("e1", body)
    assert response.status_code in (200, 201), response.body
    for n, status in enumerate(statuses):
        assert world.put_signup("e1", f"s{n}", signup_body(n, status)).status_code == 201
    world.drain()
    world.kickoffs = len(world.sent())
    return world.chat("e1", "t1")


def reply(frm: str, to: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = "Re: hello"
    msg["Message-ID"] = f"<{abs(hash((frm, body)))}@people.example>"
    for k, v in headers.items():
        msg[k.replace("_", "-")] = v
    msg.set_content(body)
    return msg.as_bytes()
