"""End-to-end fixtures: the local twin as a subprocess, on free ports, with its
own state directory (never the developer's .local)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.twin.client import Copy, TwinClient, event_body, signup_body
from infra.twin.config import ROOT, TwinConfig

READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def twin_env(state_dir: Path, *, duplicates: bool = True, **extra: str) -> dict[str, str]:
    # The test session sets MUSTER_*/AWS_* for in-process tests; the twin gets a clean slate.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSTER_", "AWS_", "POWERTOOLS_"))}
    ports = {
        name: str(free_port())
        for name in ("MUSTER_API_PORT", "MUSTER_SMTP_PORT", "MUSTER_AWS_PORT", "MUSTER_SES_PORT", "MUSTER_MAILBOX_PORT")
    }
    # Tests: every SES receipt and SQS batch is delivered twice at once (docs/local-twin.md).
    env.update(
        ports,
        MUSTER_TWIN_DIR=str(state_dir),
        MUSTER_TWIN_DUPLICATES="1" if duplicates else "0",
        PYTHONUNBUFFERED="1",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@dataclass
class Twin:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    config: TwinConfig
    log_path: Path
    client: TwinClient

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a twin command (``python -m infra.twin.clock ...``) with this twin's environment."""
        return subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=True
        )

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"the twin exited ({self.process.returncode}):\n{self.log()[-4000:]}"


def start_twin(state_dir: Path, *, duplicates: bool = True, **extra: str) -> Twin:
    state_dir.mkdir(parents=True, exist_ok=True)
    env = twin_env(state_dir, duplicates=duplicates, **extra)
    log_path = state_dir / "twin.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.twin"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    config = TwinConfig.from_env(env)
    ready = state_dir / "twin.json"
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the twin did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    return Twin(process, env, config, log_path, TwinClient(config))


def stop_twin(twin: Twin) -> int:
    if twin.process.poll() is None:
        twin.process.send_signal(signal.SIGINT)
        try:
            return twin.process.wait(15)
        except subprocess.TimeoutExpired:
            twin.process.kill()
            twin.process.wait(5)
            return -9
    return twin.process.returncode


@pytest.fixture(scope="package")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    handle = start_twin(tmp_path_factory.mktemp("twin"))
    try:
        yield handle
    finally:
        code = stop_twin(handle)
        assert code == 0, f"the twin did not stop cleanly ({code}):\n{handle.log()[-4000:]}"


# -- one chat shared by the relay and mailbox tests ---------------------------------

ORGANIZER = {"id": "o1", "first_name": "Olivia", "last_name": "Organizer", "email": "olivia@org.example"}
ATTENDEES = {
    "ann": ("Ann", "Avery", "ann@people.example"),
    "ben": ("Ben", "Brooks", "ben@people.example"),
    "cat": ("Cat", "Chen", "cat@people.example"),
}
REAL_ADDRESSES = [ORGANIZER["email"], *(p[2] for p in ATTENDEES.values())]


@dataclass
class ChatWorld:
    twin: Twin
    event_id: str
    address: str
    kickoffs: list[Copy]

    def email(self, who: str) -> str:
        return ORGANIZER["email"] if who == "olivia" else ATTENDEES[who][2]


@pytest.fixture(scope="package")
def chat_world(twin: Twin) -> ChatWorld:
    client = twin.client
    event_id = "e2e-food-bank"
    before = len(client.outbox())
    client.put_event(event_id, event_body("Food bank", 10, [ORGANIZER]))
    for n, (first, last, email) in enumerate(ATTENDEES.values(), 1):
        client.put_signup(event_id, f"s{n}", signup_body(first, last, email))
    chat = client.chat(event_id, "t1")
    assert chat["state"] == "open", chat
    kickoffs = client.wait_for_copies(4, since=before, timeout=30)
    return ChatWorld(twin, event_id, chat["address"], kickoffs)
