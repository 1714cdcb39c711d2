"""What the organizer controls cost per copy (issue 10; prints figures, not a test):
``.venv/bin/python bench/controls.py [--reps N]``.

Fan-out builds each copy from the rendered message with one ``CopyTemplate.render``
(header lines, the mute URL in the footers). Since issue 10 each copy also gets its
reader's control lines: an attendee one signed report link, an organizer five
signed controls. This renders the same 20 KB message for a reader three ways,
interleaved in one run: without control lines (the baseline, the render before
issue 10), as an attendee, as an organizer; the figures are ratios of medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.relay.anonymize import ChatContext, CopyTemplate, Person, anonymize  # noqa: E402
from chalicelib.relay.parse import parse_inbound  # noqa: E402
from chalicelib.services.links import copy_controls, mute_url  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402

CHAT = ChatContext(
    chat_id="k3x9qk3x9qk3x9qk",
    relay_address="bench-k3x9q@relay.example.org",
    list_name="Bench",
    subject_prefix="[Bench]",
)
PEOPLE = [Person(f"s-p{n}", f"Person {n}.", (f"person{n}@example.org",)) for n in range(50)]


def message() -> bytes:
    body = "\n".join(f"Line {n}: who can drive from the station on Saturday morning?" for n in range(300))
    raw = (
        "From: Person 0 <person0@example.org>\r\nTo: bench-k3x9q@relay.example.org\r\nSubject: Rides\r\n"
        "Message-ID: <a@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    )
    return anonymize(
        parse_inbound(raw.encode()),
        author=PEOPLE[0],
        people=PEOPLE,
        chat=CHAT,
        message_id="<m1@relay.example.org>",
        in_reply_to=None,
        references=(),
        date=datetime(2026, 12, 1, tzinfo=UTC),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3000)
    args = parser.parse_args()
    settings = Settings.from_env({"MUSTER_STAGE": "dev"})
    template = CopyTemplate.of(message())
    link = mute_url(settings, CHAT.chat_id, "s-p1")
    headers = {"List-Unsubscribe": f"<{link}>"}

    def plain() -> bytes:
        return template.render(mute_url=link, list_unsubscribe_headers=headers)

    def reader(organizer: bool) -> bytes:
        text, html = copy_controls(
            settings,
            chat_id=CHAT.chat_id,
            reader_key="o-o1" if organizer else "s-p1",
            reader_is_organizer=organizer,
            message_id="18f0aa0000abcdef",
            author_key="s-p0",
            author_name="Person 0.",
            author_is_organizer=False,
            chat_held=False,
            expires_at=2_000_000_000,
        )
        return template.render(mute_url=link, list_unsubscribe_headers=headers, controls_text=text, controls_html=html)

    runs = {
        "no controls (before)": plain,
        "attendee (report link)": lambda: reader(False),
        "organizer (5 controls)": lambda: reader(True),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    sizes = {name: len(fn()) for name, fn in runs.items()}
    for _ in range(args.reps):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["no controls (before)"])
    print(f"one copy of a {sizes['no controls (before)']:,}-byte message, {args.reps} reps each, medians:")
    for name in runs:
        median = statistics.median(times[name])
        print(f"  {name:26s} {median * 1e6:8.1f} µs  {sizes[name]:7,} bytes  ratio {median / base:5.2f}x")


if __name__ == "__main__":
    main()
