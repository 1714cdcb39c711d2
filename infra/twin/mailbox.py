"""A small web mailbox over the outbox (stdlib ``http.server``).

``/`` lists recipients, ``/r/<recipient>`` their messages, ``/m/<recipient>/<file>``
one message: headers, the text part, and the HTML part rendered in a sandboxed
``<iframe srcdoc>`` (no scripts, no forms, no same-origin) under a Content
Security Policy that blocks every remote load. Everything else is escaped.

``/kpis?integration=&from=&to=&event_id=`` draws the KPIs (infra/twin/kpipage.py).

``/m/...?images=show`` relaxes the policy for images only (``http:``/``https:``),
as a mail client does when its reader clicks "load remote images": what then
loads is whatever Muster left loadable in the copy (tests/e2e/test_remote_content.py).
"""

from __future__ import annotations

import html
import logging
import threading
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

log = logging.getLogger("twin.mailbox")

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self' about:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# What a client that loads remote images allows (still no scripts, frames or fonts).
CSP_IMAGES_SHOWN = CSP.replace("img-src data:", "img-src data: http: https:")
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#23395d;color:#fff;padding:10px 18px}header a{color:#fff;text-decoration:none}
main{padding:14px 18px;max-width:1100px}table{border-collapse:collapse;width:100%;background:#fff}
td,th{padding:6px 10px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}pre{white-space:pre-wrap;background:#fff;padding:10px;border:1px solid #e3e6ea}
iframe{width:100%;height:480px;border:1px solid #e3e6ea;background:#fff}.muted{color:#6b7380}
.hdr td:first-child{white-space:nowrap;color:#6b7380;width:1%}
"""


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        "<header><a href='/'><b>Muster local twin</b> &middot; outbox</a> &middot; <a href='/phone'>phone</a></header>"
        f"<main>{body}</main></body></html>"
    ).encode()


def _parse(path: Path) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())  # type: ignore[return-value]


def _header(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except Exception:
        return str(msg.get_all(name, [""])[0])


def _part_text(part: EmailMessage | None) -> str:
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except Exception:
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")


class Mailbox:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def recipients(self) -> list[tuple[str, int]]:
        if not self.outbox.is_dir():
            return []
        out = []
        for folder in sorted(self.outbox.iterdir()):
            if folder.is_dir():
                out.append((folder.name, sum(1 for f in folder.iterdir() if f.suffix == ".eml")))
        return out

    def folder(self, name: str) -> Path | None:
        """The recipient folder called ``name``, only if it is one (no traversal)."""
        names = {f.name: f for f in self.outbox.iterdir() if f.is_dir()} if self.outbox.is_dir() else {}
        return names.get(name)

    def message(self, folder: str, name: str) -> Path | None:
        base = self.folder(folder)
        if base is None:
            return None
        files = {f.name: f for f in base.iterdir() if f.suffix == ".eml"}
        return files.get(name)

    # -- pages ------------------------------------------------------------------------

    def index(self) -> bytes:
        rows = "".join(
            f"<tr><td><a href='/r/{quote(name)}'>{html.escape(name)}</a></td><td>{count}</td></tr>"
            for name, count in self.recipients()
        )
        if not rows:
            rows = "<tr><td colspan='2' class='muted'>Nothing sent yet.</td></tr>"
        return _page(
            "Outbox",
            f"<h2>Recipients</h2><table id='recipients'><tr><th>Recipient</th><th>Messages</th></tr>{rows}</table>"
            f"<p class='muted'>Files: {html.escape(str(self.outbox))}</p>",
        )

    def listing(self, folder: str) -> bytes | None:
        base = self.folder(folder)
        if base is None:
            return None
        rows = []
        for path in sorted((f for f in base.iterdir() if f.suffix == ".eml"), reverse=True):
            msg = _parse(path)
            rows.append(
                f"<tr><td class='muted'>{html.escape(_header(msg, 'Date'))}</td>"
                f"<td>{html.escape(_header(msg, 'From'))}</td>"
                f"<td><a href='/m/{quote(folder)}/{quote(path.name)}'>{html.escape(_header(msg, 'Subject') or '(no subject)')}</a></td></tr>"
            )
        body = "".join(rows) or "<tr><td colspan='3' class='muted'>No messages.</td></tr>"
        return _page(
            folder,
            f"<h2>Mail to {html.escape(folder)}</h2><table id='messages'><tr><th>Date</th><th>From</th><th>Subject</th></tr>{body}</table>",
        )

    def show(self, folder: str, name: str, *, images: bool = False) -> bytes | None:
        path = self.message(folder, name)
        if path is None:
            return None
        msg = _parse(path)
        headers = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in msg.items())
        text = _part_text(msg.get_body(preferencelist=("plain",)))  # type: ignore[arg-type]
        html_part = _part_text(msg.get_body(preferencelist=("html",)))  # type: ignore[arg-type]
        frame = (
            # sandbox="" : no scripts, no forms, no top navigation, opaque origin.
            f"<h3>HTML part</h3><iframe sandbox='' referrerpolicy='no-referrer' srcdoc=\"{html.escape(html_part, quote=True)}\"></iframe>"
            if html_part
            else ""
        )
        return _page(
            _header(msg, "Subject") or name,
            f"<p><a href='/r/{quote(folder)}'>&larr; {html.escape(folder)}</a> &middot; "
            f"<a href='/raw/{quote(folder)}/{quote(name)}'>raw</a> &middot; "
            + (
                f"<a href='/m/{quote(folder)}/{quote(name)}'>block remote images</a>"
                if images
                else f"<a href='/m/{quote(folder)}/{quote(name)}?images=show'>load remote images</a>"
            )
            + "</p>"
            f"<h2 id='subject'>{html.escape(_header(msg, 'Subject') or '(no subject)')}</h2>"
            f"<p id='from'>From: {html.escape(_header(msg, 'From'))}</p>"
            f"<h3>Headers</h3><table class='hdr'>{headers}</table>"
            f"<h3>Text part</h3><pre id='text'>{html.escape(text) or '<span class=muted>(none)</span>'}</pre>{frame}",
        )

    def raw(self, folder: str, name: str) -> bytes | None:
        path = self.message(folder, name)
        return None if path is None else path.read_bytes()


class _Handler(BaseHTTPRequestHandler):
    mailbox: Mailbox
    sms: Any = None  # infra.twin.sms.TwinSms: the phone page, POST /sms, the SMS API
    server_version = "MusterTwinMailbox/1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", csp: str = CSP) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        parts = [unquote(p) for p in path.split("/") if p]
        images = "images=show" in query.split("&")
        csp = CSP
        try:
            body: bytes | None
            content_type = "text/html; charset=utf-8"
            if not parts:
                body = self.mailbox.index()
            elif parts[0] == "r" and len(parts) == 2:
                body = self.mailbox.listing(parts[1])
            elif parts[0] == "m" and len(parts) == 3:
                body = self.mailbox.show(parts[1], parts[2], images=images)
                csp = CSP_IMAGES_SHOWN if images else CSP
            elif parts[0] == "phone" and len(parts) == 1 and self.sms is not None:
                from infra.twin.sms import phone_page

                body = _page("Phone", phone_page(self.sms.backend))
                csp = CSP.replace("form-action 'none'", "form-action 'self'")  # its form sends a text
            elif parts[0] == "raw" and len(parts) == 3:
                body = self.mailbox.raw(parts[1], parts[2])
                content_type = "text/plain; charset=utf-8"
            elif parts == ["kpis"]:  # issue 11: the KPIs as charts (infra/twin/kpipage.py)
                from infra.twin.kpipage import page

                status, text = page(query)
                self._send(status, _page("KPIs", text))
                return
            else:
                body = None
        except Exception:
            log.exception("mailbox page failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _page("Error", "<p>Could not show this page.</p>"))
            return
        if body is None:
            self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>No such page.</p>"))
        else:
            self._send(HTTPStatus.OK, body, content_type, csp)

    def do_POST(self) -> None:
        """The twin's SMS service (issue 12): infra/twin/sms.py."""
        if self.sms is None:
            self._send(HTTPStatus.NOT_FOUND, _page("Not found", "<p>No such page.</p>"))
            return
        try:
            status, body, content_type, extra = self.sms.post(self)
        except Exception:
            log.exception("SMS request failed")
            status, body, content_type, extra = 500, b"error", "text/plain", {}
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class MailboxServer:
    def __init__(self, outbox: Path, host: str, port: int, sms: Any = None) -> None:
        handler = type("MailboxHandler", (_Handler,), {"mailbox": Mailbox(outbox), "sms": sms})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="twin-mailbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
