"""HTML sanitizing cost (issue 14; prints figures, not a test):
``.venv/bin/python bench/sanitize.py [--reps N] [--json PATH]``.

A 200 KB HTML mail (a newsletter-like table layout: inline styles, remote
images, a tracking pixel, links, a quoted reply with addresses) is rendered the
way the relay renders it (``parse_inbound`` + ``anonymize``) twice per
repetition, interleaved: once as shipped, once with ``sanitize_html`` replaced
by the identity (the render before issue 14). The figure is the ratio of the
medians, measured in the same run. ``sanitize_html`` alone is broken down into
its passes (nh3, the rewrite, nh3 again). The same ratio is given for a typical
reply: Outlook 2010's from the real-client corpus (3 KB of HTML).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.relay import parts, remote, sanitize  # noqa: E402
from chalicelib.relay.anonymize import ChatContext, Person, anonymize  # noqa: E402
from chalicelib.relay.parse import parse_inbound  # noqa: E402
from tests.fixtures.emails.loader import load_eml  # noqa: E402

CHAT = ChatContext(
    chat_id="k3x9q", relay_address="k3x9q@relay.example.org", list_name="Bench", subject_prefix="[Bench]"
)
PEOPLE = [Person(f"p{n}", f"Person {n}.", (f"person{n}@example.org",)) for n in range(50)]


def newsletter(target: int = 200 * 1024) -> str:
    row = (
        '<tr><td style="padding:12px;font-family:Arial,sans-serif;font-size:14px;color:#333333" bgcolor="#ffffff">'
        '<img src="https://cdn.example.com/img/{n}.png" alt="Item {n}" width="560" height="200" style="display:block">'
        '<h2 style="margin:8px 0;color:#1F497D">Shift update {n}</h2>'
        "<p>Volunteers for slot {n}: please arrive ten minutes early, bring water and sunscreen, "
        'and check in with <a href="mailto:person{m}@example.org">person{m}@example.org</a> at the gate. '
        'Details on <a href="https://example.com/shifts/{n}?utm_source=mail">the shift page</a>.</p>'
        "</td></tr>\n"
    )
    head = (
        "<html><head><style>p{{margin:0}}</style><title>Update</title></head><body>"
        '<table width="600" cellpadding="0" cellspacing="0" border="0" align="center">\n'
    ).format()
    rows = []
    size = len(head)
    n = 0
    while size < target:
        rows.append(row.format(n=n, m=n % 50))
        size += len(rows[-1])
        n += 1
    tail = (
        '</table><img src="https://x.us1.list-manage.com/track/open.php?u=1" width="1" height="1">'
        "<blockquote>On Monday person1@example.org wrote: see you there</blockquote></body></html>\n"
    )
    return head + "".join(rows) + tail


def raw_mail(document: str) -> bytes:
    return (
        "From: Person Zero <person0@example.org>\r\nTo: k3x9q@relay.example.org\r\nSubject: Update\r\n"
        "Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + document
    ).encode()


def render(raw: bytes) -> bytes:
    return anonymize(
        parse_inbound(raw),
        author=PEOPLE[0],
        people=PEOPLE,
        chat=CHAT,
        message_id="<m-1.k3x9q@relay.example.org>",
        in_reply_to=None,
        references=[],
        date=datetime(2026, 1, 1, tzinfo=UTC),
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    document = newsletter()
    raw = raw_mail(document)
    reply = load_eml("client_html_ms_outlook_2010.eml", SENDER="person0@example.org")
    shipped: list[float] = []
    without: list[float] = []
    reply_shipped: list[float] = []
    reply_without: list[float] = []
    render(raw)  # warm up: imports, nh3 cleaners
    for _ in range(args.reps):
        shipped.append(timed(lambda: render(raw)))
        reply_shipped.append(min(timed(lambda: render(reply)) for _ in range(5)))
        with mock.patch.object(parts, "sanitize_html", lambda text, mode="block": text):
            without.append(timed(lambda: render(raw)))
            reply_without.append(min(timed(lambda: render(reply)) for _ in range(5)))

    fragment = sanitize._cleaner("block", False).clean(document)
    rewritten = remote.rewrite(fragment, "block")
    passes = {
        "nh3 lenient": [timed(lambda: sanitize._cleaner("block", False).clean(document)) for _ in range(args.reps)],
        "rewrite": [timed(lambda: remote.rewrite(fragment, "block")) for _ in range(args.reps)],
        "nh3 strict": [timed(lambda: sanitize._cleaner("block", True).clean(rewritten)) for _ in range(args.reps)],
        "sanitize_html": [timed(lambda: sanitize.sanitize_html(document, "block")) for _ in range(args.reps)],
    }
    figures = {
        "html_bytes": len(document.encode()),
        "render_ms_sanitized": statistics.median(shipped) * 1000,
        "render_ms_unsanitized": statistics.median(without) * 1000,
        "ratio": statistics.median(shipped) / statistics.median(without),
        "reply_ms_sanitized": statistics.median(reply_shipped) * 1000,
        "reply_ms_unsanitized": statistics.median(reply_without) * 1000,
        "reply_ratio": statistics.median(reply_shipped) / statistics.median(reply_without),
        **{f"{k}_ms": statistics.median(v) * 1000 for k, v in passes.items()},
    }
    print(f"HTML mail: {figures['html_bytes'] / 1024:.0f} KB, {args.reps} repetitions, medians")
    print(f"  render without sanitizing  {figures['render_ms_unsanitized']:8.1f} ms  (1.00x)")
    print(f"  render with sanitizing     {figures['render_ms_sanitized']:8.1f} ms  ({figures['ratio']:.2f}x)")
    for name in passes:
        print(f"    {name:<22} {figures[name + '_ms']:8.1f} ms")
    print("Outlook 2010 reply (corpus):")
    print(f"  render without sanitizing  {figures['reply_ms_unsanitized']:8.2f} ms  (1.00x)")
    print(f"  render with sanitizing     {figures['reply_ms_sanitized']:8.2f} ms  ({figures['reply_ratio']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
