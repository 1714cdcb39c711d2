"""A small client for a running twin, over real HTTP (urllib) and real SMTP
(smtplib): used by ``make demo``, tests/e2e and bench/twin.py."""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, TypeVar

from infra.twin.config import TwinConfig

T = TypeVar("T")


class TwinError(RuntimeError):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Copy:
    """One message in the outbox."""

    to: str
    path: Path
    ses_message_id: str
    at: float
    sent_message_id: str | None = None  # the Message-ID the app set (SES replaced it)

    @property
    def raw(self) -> bytes:
        return self.path.read_bytes()

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


def iso_in(hours: float, now: datetime | None = None) -> str:
    return ((now or datetime.now(UTC)) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TwinError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class TwinClient:
    def __init__(self, config: TwinConfig | None = None, api_key: str | None = None) -> None:
        self.config = config or TwinConfig.from_env()
        self._key = api_key

    @property
    def api_key(self) -> str:
        if self._key is None:
            try:
                self._key = self.config.api_key_file.read_text(encoding="ascii").strip()
            except OSError:
                raise TwinError(f"no API key at {self.config.api_key_file}: is the twin running (make dev)?") from None
        return self._key

    # -- HTTP ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url_or_path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout: float = 15.0,
    ) -> Response:
        url = url_or_path if url_or_path.startswith("http") else self.config.api_url + url_or_path
        data: bytes | None = None
        h = dict(headers or {})
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        elif body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if auth:
            h.setdefault("Authorization", f"Bearer {self.api_key}")
        req = urllib.request.Request(url, data=data, method=method, headers=h)  # noqa: S310 - our own twin
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
                return Response(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers.items()), err.read())

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.request(method, path, body)
        if resp.status >= 300:
            raise TwinError(f"{method} {path} -> {resp.status}: {resp.body[:500]!r}")
        return resp.json()

    def put_event(self, event_id: str, body: dict[str, Any]) -> Any:
        return self.ok("PUT", f"/events/{event_id}", body)

    def put_signup(self, event_id: str, signup_id: str, body: dict[str, Any]) -> Any:
        return self.ok("PUT", f"/events/{event_id}/signups/{signup_id}", body)

    def chat(self, event_id: str, timeslot_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"/events/{event_id}/timeslots/{timeslot_id}/chat"))

    # -- SMTP ------------------------------------------------------------------------

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(self.config.host, self.config.smtp_port, timeout=30)

    def send(self, raw: bytes | EmailMessage, sender: str, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        """Send over SMTP; returns refused recipients (smtplib raises if all are)."""
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        with self.smtp() as s:
            return s.sendmail(sender, recipients, data)

    # -- outbox ------------------------------------------------------------------------

    def outbox(self) -> list[Copy]:
        try:
            lines = self.config.outbox_log.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line being written
            out.append(
                Copy(
                    item["to"],
                    Path(item["path"]),
                    item["ses_message_id"],
                    float(item["at"]),
                    item.get("sent_message_id"),
                )
            )
        return out

    def inbox(self, address: str) -> list[Copy]:
        return [c for c in self.outbox() if c.to == address.lower()]

    def wait_for_copies(
        self, count: int, since: int = 0, timeout: float = 20.0, match: Callable[[Copy], bool] | None = None
    ) -> list[Copy]:
        def check() -> list[Copy] | None:
            copies = [c for c in self.outbox()[since:] if match is None or match(c)]
            return copies if len(copies) >= count else None

        return wait_for(check, timeout, what=f"{count} message(s) in the outbox")


def event_body(
    title: str,
    starts_in_hours: float,
    organizers: list[dict[str, str]],
    *,
    length_hours: float = 3,
    timezone: str = "America/New_York",
    timeslot_id: str = "t1",
    now: datetime | None = None,
) -> dict[str, Any]:
    return {
        "title": title,
        "timezone": timezone,
        "chat": {"enabled": True, "open_before_hours": 48, "close_after_hours": 24},
        "organizers": organizers,
        "timeslots": [
            {
                "id": timeslot_id,
                "starts_at": iso_in(starts_in_hours, now),
                "ends_at": iso_in(starts_in_hours + length_hours, now),
                "chat_enabled": True,
            }
        ],
    }


def signup_body(
    first: str, last: str, email: str, timeslot_id: str = "t1", status: str = "confirmed"
) -> dict[str, Any]:
    return {
        "timeslot_id": timeslot_id,
        "status": status,
        "person": {"first_name": first, "last_name": last, "email": email},
    }


def chat_message(
    sender: str, to: str, subject: str, text: str, *, html: str | None = None, headers: dict[str, str] | None = None
) -> EmailMessage:
    # Like a mail client: CRLF, and long msg-id headers (In-Reply-To, References)
    # kept as they are, not folded into RFC 2047 encoded words.
    msg = EmailMessage(policy=policy.SMTP.clone(max_line_length=998))
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "example.org")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg
