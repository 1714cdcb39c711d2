"""R10 with a real mail client's threader: notmuch, over the local twin.

SES replaces the Message-ID of every copy it sends, so each reader holds each
message under an id of their own: their copy's SES id, or, for what they wrote,
their own client's Message-ID (kept in Sent). Replies are written the way three
kinds of client write them, citing the ids the replier holds:

- Gmail / Thunderbird: In-Reply-To and References (parent's References + its id)
- iOS Mail: References only
- Outlook: In-Reply-To only

Then every reader's mailbox (received copies plus their own sent mail) goes into
a Maildir, ``notmuch new`` indexes it, and notmuch must show one thread holding
all of that reader's messages, each reply citing the reader's own copy of its
parent in In-Reply-To.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from infra.twin.client import Copy, chat_message, event_body, signup_body, wait_for
from tests.e2e.conftest import Twin

pytestmark = pytest.mark.e2e

# Their own people (and event), so nothing other e2e tests do (a mute, a block) changes who reads what.
ORGANIZER = {"id": "o-thr", "first_name": "Orla", "last_name": "Ortiz", "email": "orla@org.example"}
ATTENDEES = {
    "gil": ("Gil", "Grant", "gil@threads.example"),
    "hal": ("Hal", "Hart", "hal@threads.example"),
    "ivy": ("Ivy", "Ito", "ivy@threads.example"),
}
PEOPLE = {"orla": (ORGANIZER["first_name"], ORGANIZER["last_name"], ORGANIZER["email"]), **ATTENDEES}

# (message, author, parent, client style): root <- gmail <- ios, root <- outlook
CONVERSATION = [
    ("root", "gil", None, "none"),
    ("gmail", "hal", "root", "gmail"),
    ("ios", "ivy", "gmail", "ios"),
    ("outlook", "orla", "root", "outlook"),
]
PARENT = {name: parent for name, _, parent, _ in CONVERSATION}
_MSG_ID = re.compile(r"<[^<>\s]+>")


def notmuch() -> str:
    path = shutil.which("notmuch") or ""
    if not path:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("notmuch is required in CI: run `make system-deps` (infra/twin/system-deps.sh)")
        pytest.skip("notmuch is not installed (run `make system-deps`); CI always runs this test")
    return path


@dataclass
class ThreadWorld:
    twin: Twin
    address: str


@pytest.fixture(scope="module")
def thread_world(twin: Twin) -> ThreadWorld:
    client = twin.client
    event_id = "e2e-threading"
    before = len(client.outbox())
    client.put_event(event_id, event_body("Tool library", 10, [ORGANIZER]))
    for n, (first, last, email) in enumerate(ATTENDEES.values(), 1):
        client.put_signup(event_id, f"thr{n}", signup_body(first, last, email))
    chat = client.chat(event_id, "t1")
    assert chat["state"] == "open", chat
    emails = {p[2] for p in PEOPLE.values()}
    client.wait_for_copies(len(emails), since=before, timeout=30, match=lambda c: c.to in emails)  # kickoffs
    return ThreadWorld(twin, chat["address"])


@dataclass
class Mailbox:
    """What one reader's mail client holds: message name -> raw bytes as stored."""

    who: str
    raw: dict[str, bytes] = field(default_factory=dict)

    def parsed(self, name: str) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw[name])  # type: ignore[return-value]

    def id_of(self, name: str) -> str:
        return str(self.parsed(name)["Message-ID"]).strip()


def ids(value: object) -> list[str]:
    return _MSG_ID.findall(str(value or ""))


def reply_headers(parent: EmailMessage, style: str) -> dict[str, str]:
    """The threading headers each kind of client writes, from the copy it holds."""
    parent_id = str(parent["Message-ID"]).strip()
    references = " ".join([*ids(parent["References"]), parent_id])
    if style == "gmail":
        return {"In-Reply-To": parent_id, "References": references}
    if style == "ios":
        return {"References": references}
    if style == "outlook":
        return {"In-Reply-To": parent_id}
    return {}


def wait_copies(world: ThreadWorld, token: str, count: int) -> list[Copy]:
    def found() -> list[Copy]:
        return [c for c in world.twin.client.outbox() if token.encode() in c.raw]

    wait_for(lambda: found() if len(found()) >= count else None, 30, what=f"{count} copies of {token}")
    time.sleep(0.7)  # a duplicate or a copy to the author would show up by now
    return found()


def run_notmuch(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTMUCH_")}
    env["NOTMUCH_CONFIG"] = str(config)
    result = subprocess.run([notmuch(), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"notmuch {' '.join(args)}: {result.stderr}"
    return result.stdout


def index(mailbox: Mailbox, root: Path) -> Path:
    """A Maildir of everything ``mailbox`` holds, indexed by ``notmuch new``; returns the config."""
    maildir = root / "mail"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n, (name, raw) in enumerate(mailbox.raw.items()):
        (maildir / "cur" / f"{n}.{name}.muster:2,S").write_bytes(raw)
    config = root / "notmuch-config"
    first, last, email = PEOPLE[mailbox.who]
    config.write_text(
        f"[database]\npath={maildir}\n\n"
        f"[user]\nname={first} {last}\nprimary_email={email}\n\n"
        "[new]\ntags=\nignore=\n\n"
        "[search]\nexclude_tags=\n\n"
        "[maildir]\nsynchronize_flags=false\n",
        encoding="utf-8",
    )
    run_notmuch(config, "new", "--quiet")
    return config


def notmuch_parents(config: Path) -> dict[str, str | None]:
    """Message-ID (with brackets) -> its parent in notmuch's thread tree (None at the top)."""
    parents: dict[str, str | None] = {}

    def walk(nodes: list[Any], parent: str | None) -> None:
        for message, replies in nodes:
            mid = f"<{message['id']}>"
            parents[mid] = parent
            walk(replies, mid)

    for thread in json.loads(run_notmuch(config, "show", "--format=json", "--entire-thread=true", "*")):
        walk(thread, None)
    return parents


def test_each_reader_sees_one_thread_with_replies_citing_their_own_copies(
    thread_world: ThreadWorld, tmp_path: Path
) -> None:
    notmuch()  # skip (locally) or fail (CI) before doing any work
    client = thread_world.twin.client
    marker = uuid.uuid4().hex[:8]
    boxes = {who: Mailbox(who) for who in PEOPLE}
    author_of: dict[str, str] = {}

    for name, author, parent, style in CONVERSATION:
        first, last, email = PEOPLE[author]
        box = boxes[author]
        if parent is None:
            subject, headers = f"Who brings the folding tables? {marker}", {}
        else:
            held = box.parsed(parent)
            subject, headers = f"Re: {held['Subject']}", reply_headers(held, style)
        token = f"tok-{marker}-{name}"
        msg = chat_message(
            f"{first} {last} <{email}>", thread_world.address, subject, f"Message {name}.\n{token}\n", headers=headers
        )
        client.send(msg, email, [thread_world.address])
        box.raw[name] = msg.as_bytes()  # the client's Sent folder: its own Message-ID
        author_of[name] = author

        others = sorted(p[2] for who, p in PEOPLE.items() if who != author)
        copies = wait_copies(thread_world, token, len(others))
        assert sorted(c.to for c in copies) == others, f"{name}: copies went to {sorted(c.to for c in copies)}"
        for copy in copies:
            reader = next(who for who, p in PEOPLE.items() if p[2] == copy.to)
            boxes[reader].raw[name] = copy.raw

    report: list[str] = []
    failures: list[str] = []
    for who, box in boxes.items():
        config = index(box, tmp_path / who)
        threads = run_notmuch(config, "search", "--output=threads", "*").split()
        messages = run_notmuch(config, "search", "--output=messages", "*").split()
        held_ids = {name: box.id_of(name) for name in box.raw}
        line = f"{who}: {len(threads)} thread(s), {len(messages)}/{len(held_ids)} messages"
        if len(threads) != 1 or len(messages) != len(held_ids):
            failures.append(line)

        parents = notmuch_parents(config)
        for name, parent in PARENT.items():
            if parent is None or author_of[name] == who:
                continue  # the root, or the reader's own reply (their client wrote it)
            cited = str(box.parsed(name)["In-Reply-To"] or "").strip()
            expected = held_ids[parent]
            whose = "own client id" if author_of[parent] == who else "own SES copy"
            ok = cited == expected
            line += f"; {name} In-Reply-To {'=' if ok else '!='} {parent} ({whose})"
            if not ok:
                failures.append(
                    f"{who}'s copy of {name} cites {cited or 'nothing'}, not {expected} ({parent}, {whose})"
                )
            if parents.get(held_ids[name]) != expected:
                failures.append(
                    f"{who}: notmuch puts {name} under {parents.get(held_ids[name])}, not {parent} ({expected})"
                )
        report.append(line)

    print("notmuch per reader:", *report, sep="\n")  # shown with -s / -rP
    assert not failures, "\n".join(["notmuch per reader:", *report, "failures:", *failures])
