"""The twin runs like Lambda: moto in its own process, handlers in worker
processes, and (in these tests) every SES receipt and SQS batch delivered twice
at the same time, with each copy still going out once."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter

import pytest

from infra.twin.client import chat_message, wait_for
from tests.e2e.conftest import ATTENDEES, ChatWorld, Twin

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def test_moto_and_every_worker_are_processes_of_their_own(twin: Twin) -> None:
    info = json.loads((twin.config.state_dir / "twin.json").read_text())
    main, moto, ses, workers = info["pid"], info["moto_pid"], info["ses_pid"], info["worker_pids"]
    assert main == twin.process.pid
    assert moto != main and alive(moto) and parent(moto) == main
    assert ses not in (main, moto) and alive(ses) and parent(ses) == main  # SES: a moto process of its own
    assert len(set(workers)) == info["workers"] >= 2
    assert all(alive(w) for w in workers)
    # Forked from the fork server (a child of the twin), never from the twin itself.
    assert {parent(parent(w)) for w in workers} == {main}
    assert main not in {parent(w) for w in workers}
    assert info["duplicates"] is True
    assert os.path.exists(twin.config.moto_log)


def test_a_post_delivered_twice_at_once_still_reaches_each_reader_once(chat_world: ChatWorld) -> None:
    twin = chat_world.twin
    marker = f"twice-{uuid.uuid4().hex[:6]}"
    first, last, email = ATTENDEES["cat"]
    twin.client.send(
        chat_message(f"{first} {last} <{email}>", chat_world.address, marker, "Twice?\n"), email, [chat_world.address]
    )

    def copies() -> Counter[str] | None:
        got = Counter(c.to for c in twin.client.outbox() if marker in str(c.message["Subject"] or ""))
        return got if sum(got.values()) >= 3 else None

    wait_for(copies, 60, what=f"3 copies of {marker}")
    time.sleep(2)  # a second copy from the other delivery would be here by now
    got = copies()
    assert got == Counter({chat_world.email(w): 1 for w in ("olivia", "ann", "ben")}), got
    # The second delivery of each batch found the first's lease (and said so).
    assert "being delivered elsewhere" in twin.log() or "DuplicateBatches" in twin.log()
