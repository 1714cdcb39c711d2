"""The twin's KPI page (issue 11): ``/kpis?integration=&from=&to=&event_id=`` on the
mailbox server, drawn as inline SVG on the server (no script, no CDN, nothing
remote: the mailbox's Content Security Policy holds).

The figures are ``services.kpis.report`` -- the same function ``GET /kpis`` and
``make kpis`` use. Every drawn value carries ``data-kpi`` and ``data-value`` so a
browser test can read what the chart shows.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

BAR = "#3b6ea5"
BAR2 = "#9db7d5"
WIDTH = 640


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:g}"


def hbars(title: str, rows: list[tuple[str, str, float, str]], scale: float) -> str:
    """Horizontal bars: (kpi key, label, value, shown text), ``scale`` the full width's value."""
    height = 28 * len(rows) + 10
    parts = [
        f'<svg role="img" aria-label="{_e(title)}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">'
    ]
    for n, (key, label, value, shown) in enumerate(rows):
        y = 5 + 28 * n
        length = 0 if scale <= 0 else max(0.0, min(1.0, value / scale)) * 360
        parts.append(
            f'<g class="bar" data-kpi="{_e(key)}" data-value="{_e(value)}">'
            f'<text x="0" y="{y + 16}" font-size="13">{_e(label)}</text>'
            f'<rect x="200" y="{y}" width="{length:.1f}" height="20" fill="{BAR}"></rect>'
            f'<text class="value" x="{200 + length + 6:.1f}" y="{y + 16}" font-size="13">{_e(shown)}</text></g>'
        )
    parts.append("</svg>")
    return f"<section><h2>{_e(title)}</h2>{''.join(parts)}</section>"


def vbars(title: str, rows: list[tuple[str, str, float]]) -> str:
    """Vertical bars with labels under them: (kpi key, label, value)."""
    top = max([v for _, _, v in rows] + [1.0])
    step = max(24, min(110, (WIDTH - 40) // max(len(rows), 1)))
    height = 200
    parts = [f'<svg role="img" aria-label="{_e(title)}" width="{WIDTH}" height="{height + 40}">']
    for n, (key, label, value) in enumerate(rows):
        h = value / top * height * 0.8
        x = 20 + n * step
        parts.append(
            f'<g class="bar" data-kpi="{_e(key)}" data-value="{_e(value)}">'
            f'<rect x="{x}" y="{height - h:.1f}" width="{step - 8}" height="{h:.1f}" fill="{BAR2 if n % 2 else BAR}"></rect>'
            f'<text class="value" x="{x}" y="{height - h - 4:.1f}" font-size="12">{_e(_num(value))}</text>'
            f'<text x="{x}" y="{height + 16}" font-size="11">{_e(label)}</text></g>'
        )
    parts.append("</svg>")
    return f"<section><h2>{_e(title)}</h2>{''.join(parts)}</section>"


def render(report: dict[str, Any], chats: list[dict[str, Any]], integration: str) -> str:
    """The page's body (HTML) for one report and its chat rows."""
    shares = [
        ("share_with_messages", "With a message", report["share_with_messages"]),
        ("share_after_event", "After the event", report["share_after_event"]),
        ("mute_rate", "Muted", report["mute_rate"]),
        ("leave_rate", "Left", report["leave_rate"]),
        ("share_referred_posted", "Referred who posted", report["share_referred_posted"]),
    ]
    spread = [
        ("messages_per_chat.median", "msgs median", report["messages_per_chat"]["median"] or 0.0),
        ("messages_per_chat.p90", "msgs p90", report["messages_per_chat"]["p90"] or 0.0),
        ("posters_per_chat.median", "posters median", report["posters_per_chat"]["median"] or 0.0),
        ("posters_per_chat.p90", "posters p90", report["posters_per_chat"]["p90"] or 0.0),
    ]
    first = report["first_message_seconds"]
    waits = [
        (
            "first_message_minutes.median",
            "Median",
            (first["median"] or 0.0) / 60,
            f"{(first['median'] or 0) / 60:.1f} min",
        ),
        ("first_message_minutes.p90", "p90", (first["p90"] or 0.0) / 60, f"{(first['p90'] or 0) / 60:.1f} min"),
    ]
    per_day = Counter(str(c["opened_on"]) for c in chats)
    days = [(f"chats_opened.{d}", d[5:], float(n)) for d, n in sorted(per_day.items())]
    clicks = [
        (f"next_step_clicks.{c['step_id']}", c["step_id"], float(c["clicks"]), str(c["clicks"]))
        for c in report["next_step_clicks"]
    ]
    counts = [
        ("chats_opened", "Chats opened"),
        ("chats_with_messages", "With a message"),
        ("chats_after_event", "With a message after the event"),
        ("members", "People sent a kickoff"),
        ("referrals", "Referred signups"),
        ("referred_posted", "Referred who posted"),
    ]
    table = "".join(
        f'<tr><th>{_e(label)}</th><td data-kpi="{key}" data-value="{_e(report[key])}">{_e(report[key])}</td></tr>'
        for key, label in counts
    )
    scope = f"{report['from']} to {report['to']}" + (f", event {report['event_id']}" if report.get("event_id") else "")
    parts = [
        f"<p class=muted>Integration <b>{_e(integration)}</b>, chats that opened {_e(scope)} (UTC). "
        "The figures GET /kpis returns.</p>",
        f'<table class="hdr" style="max-width:480px">{table}</table>',
        hbars("Shares of chats and people", [(k, label, v, _pct(v)) for k, label, v in shares], 1.0),
        vbars("Messages and posters per chat", spread),
        hbars("Time from opening to the first message", waits, max([w[2] for w in waits] + [1.0])),
        vbars("Chats opened per day", days) if days else "<p>No chat opened in this range.</p>",
        hbars("Next-step clicks per link", clicks, max([c[2] for c in clicks] + [1.0]))
        if clicks
        else "<p>No next-step clicks.</p>",
    ]
    return "".join(parts)


def page(query: str, default_integration: str = "local") -> tuple[int, str]:
    """(status, HTML body) for ``/kpis?...``: 400 with the reason for a bad range."""
    from chalicelib import clock
    from chalicelib.services import kpis

    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    integration = params.get("integration") or default_integration
    try:
        start, end = kpis.parse_range(params.get("from"), params.get("to"), clock.now().date())
    except kpis.RangeError as err:
        return 400, f"<p>{_e(err)}</p>"
    k = kpis.kpis(integration, start, end, params.get("event_id") or None)
    return 200, render(kpis.report(k), kpis.chat_rows(k), integration)
