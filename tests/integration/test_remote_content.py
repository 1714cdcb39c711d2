"""Readers are not tracked (issue 14) through the whole in-process relay:
SES receipt -> inbound_email -> render -> SQS -> deliver -> SES, against moto.

Real clients' HTML replies (Gmail, Outlook 2010 from the corpus) carrying a
remote image and an open pixel: under the default ``block`` no copy holds a
remote URL any client would fetch by itself, only a placeholder link; under
``allow`` the image loads and the pixel still does not. Every copy keeps its
own mute link in the HTML footer.
"""

from __future__ import annotations

import html
from typing import Any

import pytest

from tests.fixtures.emails.leakcheck import find_leaks
from tests.fixtures.emails.loader import load_eml
from tests.fixtures.emails.remote import html_parts, loads
from tests.integration.world import Sent, World

FIXTURES = ("client_html_gmail_remote_image.eml", "client_html_ms_outlook_2010_tracked.eml")
ACTIVE = ("registered", "confirmed", "attended")


def addr(name: str) -> str:
    return f"{name}@people.example"


def post(world: World, chat: dict[str, Any], name: str) -> list[Sent]:
    before = len(world.relayed())
    sender = addr("ann0")
    raw = load_eml(
        name,
        SENDER=sender, RELAY=chat["address"], ALICE=addr("ann1"), BOB=addr("ann2"),
        CAROL="olive0@org.example", DAVE="stranger@else.example", ERIN="erin@else.example",
    )  # fmt: skip
    assert world.receive(raw, sender=sender, to=[chat["address"]]) == {"outcomes": ["relayed"]}
    world.drain()
    copies = world.relayed()[before:]
    assert len(copies) == 3  # ann1, ann2 and the organizer
    return copies


def the_html(copy: Sent) -> str:
    parts = html_parts(copy.message)
    assert len(parts) == 1
    return parts[0]


def mute_link_in_footer(copy: Sent) -> bool:
    url = str(copy.message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    return f'<a href="{html.escape(url)}">Mute, leave or get a daily digest</a>' in the_html(copy)


@pytest.mark.parametrize("name", FIXTURES)
def test_given_the_default_deployment_then_no_copy_loads_remote_content(world: World, name: str) -> None:
    chat = world.open_chat(ACTIVE)
    copies = post(world, chat, name)

    for copy in copies:
        document = the_html(copy)
        seen = loads(document)
        assert seen.remote == [], copy.to
        assert seen.scripts == []
        assert "[image: " in document
        assert "list-manage.com" not in document and "t.example.net" not in document
        assert mute_link_in_footer(copy), copy.to
        assert find_leaks(copy.raw, [addr(f"ann{n}") for n in range(3)] + ["olive0@org.example"]) == []
    assert len({str(c.message["List-Unsubscribe"]) for c in copies}) == 3  # one mute link per reader


def test_given_a_deployment_that_allows_remote_content_then_images_load_and_pixels_do_not(world: World) -> None:
    with world.settings_override(MUSTER_REMOTE_CONTENT="allow"):
        chat = world.open_chat(ACTIVE)
        copies = post(world, chat, FIXTURES[0])

    for copy in copies:
        assert loads(the_html(copy)).remote == ["https://photos.example.com/shifts/map.png"]
        assert "list-manage.com" not in the_html(copy)
        assert mute_link_in_footer(copy)
