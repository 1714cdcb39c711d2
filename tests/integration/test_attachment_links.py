"""Large attachments as links (issue 14), in process against moto: a message whose
attachments pass ``attachment_link_above`` goes out small, with a signed link in
every copy; the link downloads the exact bytes without an API key; a tampered link
is refused, an expired one too; a retried relay stores each file once."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests

from chalicelib.models import MessageLog
from tests.integration.world import World

MIB = 1024 * 1024
AUTHOR = "ann0@people.example"
OTHERS = ["olive0@org.example", "ann1@people.example", "ann2@people.example"]
LINK_RE = re.compile(r"https?://[^\s\"<>]+/files/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")


@pytest.fixture
def chat(world: World) -> dict[str, Any]:
    return world.open_chat(["registered", "confirmed", "attended"])


def blob(n: int, seed: int = 14) -> bytes:
    return random.Random(seed).randbytes(n)


def with_attachment(to: str, subject: str, data: bytes, filename: str = "route-maps.pdf") -> bytes:
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = f"Ann Zero <{AUTHOR}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="people.example")
    msg.set_content("Maps for Saturday attached.\n")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return msg.as_bytes()


def post(world: World, chat: dict[str, Any], subject: str, data: bytes, **kw: Any) -> Any:
    return world.receive(with_attachment(chat["address"], subject, data, **kw), sender=AUTHOR, to=[chat["address"]])


def copies(world: World, subject: str) -> list[Any]:
    return [s for s in world.relayed() if subject in str(s.message["Subject"])]


def link_in(raw: bytes) -> str:
    msg = copy_message(raw)
    texts = [p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain"]
    links = {m for t in texts for m in LINK_RE.findall(t)}
    (link,) = links
    return link


def copy_message(raw: bytes) -> EmailMessage:
    from email.parser import BytesParser

    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def path_of(world: World, link: str) -> str:
    assert link.startswith(world.settings.public_url + "/files/")
    return link.removeprefix(world.settings.public_url)


def download(world: World, link: str, accept: str = "*/*") -> Any:
    """GET the link through the API, without an API key, as a mail reader would."""
    return world.client.http.get(path_of(world, link), headers={"Accept": accept})


def files_versions(world: World) -> list[str]:
    s3 = boto3.client("s3")
    got = s3.list_object_versions(Bucket=world.settings.mail_bucket, Prefix="files/")
    return [v["Key"] for v in got.get("Versions", [])]


def test_a_6_mb_attachment_goes_out_as_one_link_that_downloads_the_exact_bytes_until_it_expires(
    world: World, chat: dict
) -> None:
    data = blob(6 * MIB)
    assert post(world, chat, "Maps 6 MB", data) == {"outcomes": ["relayed"]}
    world.drain()

    got = copies(world, "Maps 6 MB")
    assert sorted(c.to for c in got) == sorted(OTHERS)
    links = set()
    for c in got:
        assert len(c.raw) < 32 * 1024, len(c.raw)  # kilobytes, not 8 MB of base64
        msg = copy_message(c.raw)
        assert [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"] == []
        assert data[:4096] not in c.raw
        text = "\n".join(p.get_content() for p in msg.walk() if p.get_content_type() == "text/plain")
        assert "route-maps.pdf (6.0 MB)" in text
        html = "\n".join(p.get_content() for p in msg.walk() if p.get_content_type() == "text/html")
        assert "route-maps.pdf</a>" in html
        links.add(link_in(c.raw))
    (link,) = links  # rendered once: the same link in every copy
    (log,) = [m for m in MessageLog.scan() if m.outcome == "relayed"]
    assert log.rendered_size < 32 * 1024

    # The link, without an API key: a redirect to a short-lived S3 URL with the exact bytes.
    response = download(world, link)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert world.settings.mail_bucket in location and "X-Amz-Signature=" in location
    assert "X-Amz-Expires=300" in location
    fetched = requests.get(location, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert "route-maps.pdf" in fetched.headers.get("Content-Disposition", "")

    # Tampered: refused, no redirect, R13's shape (or a page for a browser).
    body, _, sig = link.rpartition("/")[2].partition(".")
    base = link.rpartition("/")[0]
    forged = [
        f"{base}/{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",  # signature changed
        f"{base}/{body[:-2]}x{body[-1]}.{sig}",  # payload changed
        f"{base}/{sig}",  # no payload
        f"{base}/{'A' * 600}.{sig}",  # far too long
    ]
    for bad in forged:
        response = download(world, bad)
        assert response.status_code == 403, bad
        assert "Location" not in response.headers
        error = json.loads(response.body)["error"]
        assert error["code"] == "invalid_link" and error["field"] == "token" and error["message"]
    page = download(world, forged[0], accept="text/html,application/xhtml+xml")
    assert page.status_code == 403 and page.headers["Content-Type"].startswith("text/html")
    assert b"Link not valid" in page.body
    # A mute link is signed with the same secret but opens no file.
    mute = str(got[0].message["List-Unsubscribe"]).strip("<>")
    assert download(world, f"{base}/{mute.rsplit('/', 1)[-1]}").status_code == 403

    # Expired: still good on day 13, refused after day 14.
    world.advance(13 * 24)
    assert download(world, link).status_code == 302
    world.advance(1 * 24 + 1)
    response = download(world, link)
    assert response.status_code == 410
    assert json.loads(response.body)["error"]["code"] == "link_expired"
    assert "Location" not in response.headers


def test_a_4_mb_attachment_stays_inline(world: World, chat: dict) -> None:
    data = blob(4 * MIB)
    post(world, chat, "Maps 4 MB", data)
    world.drain()

    got = copies(world, "Maps 4 MB")
    assert len(got) == 3
    for c in got:
        (pdf,) = [p for p in copy_message(c.raw).iter_attachments() if p.get_content_type() == "application/pdf"]
        assert pdf.get_content() == data and pdf.get_filename() == "route-maps.pdf"
        assert b"/files/" not in c.raw
    assert files_versions(world) == []


def test_a_retried_relay_stores_each_file_once_and_sends_each_copy_once(world: World, chat: dict) -> None:
    boto3.client("s3").put_bucket_versioning(
        Bucket=world.settings.mail_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    from tests.integration.test_exactly_once import fail_first

    # The fan-out fails after the files and the copy were stored; Lambda retries.
    fail_first(world, "chalicelib.services.relay.RelayService._fan_out")
    with pytest.raises(RuntimeError):
        post(world, chat, "Maps retry", blob(6 * MIB))
    assert world.retry() == {"outcomes": ["relayed"]}
    assert world.retry() == {"outcomes": ["relayed"]}
    world.drain()

    assert len(files_versions(world)) == 1  # one file, written once
    got = copies(world, "Maps retry")
    assert Counter(c.to for c in got) == Counter(OTHERS)
    (link,) = {link_in(c.raw) for c in got}
    assert requests.get(download(world, link).headers["Location"], timeout=30).content == blob(6 * MIB)

    # Once the bucket's lifecycle rule removed the file, the link says so (no dead redirect).
    s3 = boto3.client("s3")
    for v in s3.list_object_versions(Bucket=world.settings.mail_bucket, Prefix="files/")["Versions"]:
        s3.delete_object(Bucket=world.settings.mail_bucket, Key=v["Key"], VersionId=v["VersionId"])
    response = download(world, link)
    assert response.status_code == 410 and "Location" not in response.headers


def test_the_budget_is_a_setting(world: World, chat: dict) -> None:
    with world.settings_override(MUSTER_ATTACHMENT_LINK_ABOVE=str(100 * 1024)):
        post(world, chat, "Maps 300 KB", blob(300 * 1024))
        post(world, chat, "Maps 90 KB", blob(90 * 1024))
        world.drain()
    linked, inline = copies(world, "Maps 300 KB"), copies(world, "Maps 90 KB")
    assert len(linked) == 3 and all(len(c.raw) < 32 * 1024 for c in linked)
    assert urlsplit(link_in(linked[0].raw)).path.startswith("/files/")
    assert len(inline) == 3 and all(b"/files/" not in c.raw and len(c.raw) > 90 * 1024 for c in inline)
