"""Readers are not tracked (issue 14), in a real browser, over the twin.

An HTML mail with a remote image and an open pixel goes in through the twin's
SMTP; a reader's copy is opened in the twin's web mailbox with remote images
*allowed* (``?images=show``, what a mail client does when its reader asks for
them). The images point at a local HTTP server on a free port: it must get no
request, and the placeholder must show. A control message written straight
into the outbox (not relayed by Muster) proves that page does load remote
images, so the zero is Muster's doing. A screenshot goes to docs/.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from infra.twin.client import chat_message
from tests.e2e.conftest import ATTENDEES, REAL_ADDRESSES, ChatWorld, free_port
from tests.e2e.test_mailbox import chromium, dump_dom

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs"
# A 1x1 transparent GIF.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


class ImageHost:
    """A stand-in for a sender's image server: records every request it gets."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(GIF)))
                self.end_headers()
                self.wfile.write(GIF)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, marker: str) -> list[str]:
        return [p for p in self.paths if marker in p]


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    host.thread.start()
    try:
        yield host
    finally:
        host.httpd.shutdown()
        host.httpd.server_close()


def screenshot(url: str, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="muster-chromium-") as profile:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=900,1250",
             f"--screenshot={path}", url],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert path.stat().st_size > 1000


def test_the_mailbox_with_remote_images_on_loads_what_a_raw_mail_points_at(
    chat_world: ChatWorld, image_host: ImageHost
) -> None:
    """The control: the same page, on a message Muster did not relay, fetches its image."""
    folder = chat_world.twin.config.outbox / "control@remote.example"
    folder.mkdir()
    try:
        (folder / "control.eml").write_bytes(
            b"From: x@remote.example\r\nSubject: control\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n"
            + f'<p>control</p><img src="{image_host.url("/control.gif")}" width="40" height="40">\r\n'.encode()
        )
        url = f"{chat_world.twin.config.mailbox_url}/m/{quote(folder.name)}/control.eml"
        dump_dom(url)
        assert image_host.hits("/control.gif") == []  # the mailbox's default policy blocks it
        dump_dom(url + "?images=show")
        assert image_host.hits("/control.gif"), "the browser did not load a plain remote image"
    finally:
        shutil.rmtree(folder)


def test_a_relayed_copy_shows_a_placeholder_and_the_browser_requests_nothing(
    chat_world: ChatWorld, image_host: ImageHost
) -> None:
    twin = chat_world.twin
    first, last, email = ATTENDEES["ann"]
    subject = f"Stand map {uuid.uuid4().hex[:6]}"
    html = (
        "<html><body><p>Here is where we stand on <b>Saturday</b>:</p>"
        f'<p><img src="{image_host.url("/photo.gif?who=" + email)}" alt="Stand map" width="320" height="200"></p>'
        f'<table><tr><td background="{image_host.url("/bg.gif")}" style="background-image:url({image_host.url("/css.gif")})">'
        "Bring water.</td></tr></table>"
        f'<img src="{image_host.url("/pixel.gif")}" width="1" height="1" alt="">'
        "</body></html>"
    )
    twin.client.send(
        chat_message(f"{first} {last} <{email}>", chat_world.address, subject, "Here is where we stand.\n", html=html),
        email,
        [chat_world.address],
    )
    ben = ATTENDEES["ben"][2]
    copy = twin.client.wait_for_copies(
        1, timeout=30, match=lambda c: c.to == ben and subject in str(c.message["Subject"])
    )[0]

    url = f"{twin.config.mailbox_url}/m/{quote(ben)}/{quote(copy.path.name)}?images=show"
    page = dump_dom(url)

    assert "[image: Stand map, 127.0.0.1]" in page  # the placeholder, inside the message frame
    assert "Bring water." in page
    assert image_host.paths == [], f"the browser fetched {image_host.paths}"
    for address in REAL_ADDRESSES:
        if address != ben:  # the page names whose mailbox it is
            assert address not in page, f"{address} shows in the mailbox"
    screenshot(url, DOCS / "remote-content.png")
    assert image_host.paths == []
