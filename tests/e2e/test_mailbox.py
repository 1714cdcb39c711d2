"""The web mailbox in a real (headless) browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from urllib.parse import quote

import pytest

from infra.twin.client import chat_message, wait_for
from tests.e2e.conftest import ATTENDEES, REAL_ADDRESSES, ChatWorld

pytestmark = pytest.mark.e2e


def chromium() -> str:
    path = shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium") or ""
    if not path:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("chromium is required in CI: run `make system-deps` (infra/twin/system-deps.sh)")
        pytest.skip("chromium is not installed (run `make system-deps`); CI always runs this test")
    return path


def dump_dom(url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="muster-chromium-") as profile:
        result = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def test_the_mailbox_shows_recipients_and_anonymized_messages(chat_world: ChatWorld) -> None:
    twin = chat_world.twin
    first, last, email = ATTENDEES["cat"]
    subject = f"Sunscreen {uuid.uuid4().hex[:6]}"
    html = f"<p>Bring <b>sunscreen</b>!</p><script>document.title='pwned'</script><img src='http://example.com/{email}.png'>"
    twin.client.send(
        chat_message(f"{first} {last} <{email}>", chat_world.address, subject, "Bring sunscreen!\n", html=html),
        email,
        [chat_world.address],
    )
    ben = ATTENDEES["ben"][2]
    copy = twin.client.wait_for_copies(
        1, timeout=30, match=lambda c: c.to == ben and subject in str(c.message["Subject"])
    )[0]

    index = dump_dom(twin.config.mailbox_url + "/")
    for address in (ben, ATTENDEES["ann"][2]):
        assert address in index  # the recipient list

    listing = dump_dom(f"{twin.config.mailbox_url}/r/{quote(ben)}")
    assert subject in listing
    assert "Cat C." in listing  # the display name, not the person
    assert email not in listing

    page = dump_dom(f"{twin.config.mailbox_url}/m/{quote(ben)}/{quote(copy.path.name)}")
    assert subject in page and "Cat C." in page
    for address in REAL_ADDRESSES:
        if address != ben:  # the page names whose mailbox it is
            assert address not in page, f"{address} shows in the mailbox"
    assert "pwned" not in page.split("<iframe")[0]  # no script ran in the page
    assert "<script" not in page.split("<iframe")[0].lower()
    wait_for(lambda: twin.process.poll() is None or None, 1, what="the twin to be alive")
