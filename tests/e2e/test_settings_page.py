"""The footer link's chat settings page in a real (headless) browser, over the
twin: what a reader (or a link scanner) sees on GET, and that a GET changes
nothing. A screenshot of it goes to docs/ for the README."""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from infra.twin.client import chat_message
from tests.e2e.conftest import ATTENDEES, REAL_ADDRESSES, ChatWorld
from tests.e2e.test_mailbox import chromium, dump_dom

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs"


def send(world: ChatWorld, who: str, subject: str) -> None:
    first, last, email = ATTENDEES[who]
    world.twin.client.send(
        chat_message(f"{first} {last} <{email}>", world.address, subject, "Hi!\n"), email, [world.address]
    )


def screenshot(url: str, path: Path, size: str = "720,900") -> None:
    with tempfile.TemporaryDirectory(prefix="muster-chromium-") as profile:
        result = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                f"--window-size={size}",
                f"--screenshot={path}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert path.stat().st_size > 1000


def test_the_footer_link_shows_the_readers_settings_and_a_get_changes_nothing(chat_world: ChatWorld) -> None:
    twin = chat_world.twin
    ben = ATTENDEES["ben"][2]
    first = f"Settings {uuid.uuid4().hex[:6]}"
    send(chat_world, "ann", first)
    copy = twin.client.wait_for_copies(
        1, timeout=30, match=lambda c: c.to == ben and first in str(c.message["Subject"])
    )[0]
    link = str(copy.message["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    assert link.startswith(twin.config.api_url + "/mute/")
    assert link in copy.raw.decode("ascii", "replace").replace("=\r\n", "")  # the same link is in the footer

    page = dump_dom(link)
    assert "<form" in page and 'method="post"' in page.lower()
    for words in ("Mute", "digest", "Leave"):
        assert words in page, words
    for address in REAL_ADDRESSES:
        assert address not in page, f"{address} shows on the settings page"
    screenshot(link, DOCS / "chat-settings.png")

    # The browser's GETs (and a link scanner's) muted nothing: Ben still gets mail.
    second = f"Still here {uuid.uuid4().hex[:6]}"
    send(chat_world, "ann", second)
    twin.client.wait_for_copies(1, timeout=30, match=lambda c: c.to == ben and second in str(c.message["Subject"]))

    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    refused = dump_dom(tampered)
    assert "<form" not in refused
