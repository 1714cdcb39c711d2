"""moto's server in a process of its own: ``python -m infra.twin.motoserver HOST PORT``.

The same WSGI app ``python -m moto.server`` serves, with one difference: requests
are applied one at a time. moto's backends are plain Python objects with no
locking, so two concurrent conditional writes to one DynamoDB item could both
pass their condition; DynamoDB applies each write to an item atomically, and
the twin's concurrent (and deliberately duplicated) handlers rely on that. moto
is CPU-bound Python under one GIL, so serializing costs almost nothing.

The HTTP side is :mod:`infra.twin.oneloop`: one thread reads every connection and
runs each complete request in turn, connections kept alive. With werkzeug's threaded
development server (``MUSTER_MOTO_SERVER=werkzeug``, kept for comparison) each
kept-alive connection had a thread, ~40 under load, and each request paid for the
hand-offs between them: ~35 % more server CPU per SES ``SendEmail`` and ~25 % per
``GetItem`` (``docs/performance.md``). On that path, each request's body is read to
its Content-Length before the request waits for the lock, werkzeug's blanket
``Connection: close`` is dropped for delimited bodies, and plain header blocks are
read without the email package's parser.

What the twin changes in moto itself (every change makes it cheaper, none changes an
answer) is :mod:`infra.twin.motopatches`.

``tests/unit/test_twin_moto.py`` checks that the header reader reads every block as
the email parser does and that a client keeps its connection over requests of every
kind; ``tests/unit/test_twin_oneloop.py`` that the one-thread server gives the app the
environ, and the client the answers, werkzeug's does.

Each request is logged only at DEBUG (``MUSTER_TWIN_LOG=DEBUG``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from infra.twin.oneloop import OneLoopServer, with_length


class Serialized:
    """WSGI middleware: one request at a time (its body already read, see ``keep_alive_handler``).

    With ``MUSTER_MOTO_STATS`` set to a path, it counts each operation's requests,
    the seconds they held the lock and the CPU seconds they used, and writes them there as JSON when the
    server stops (``bench/twin.py`` reads them to say what bounds the twin).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], stats: dict[str, list[float]] | None = None) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.stats = stats

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        answer: list[Any] = []

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer[:] = [status, headers, exc_info]
            return lambda data: None  # moto never writes through start_response's callable

        with self.lock:
            started = time.perf_counter()
            cpu = time.thread_time()
            body = self.app(environ, remember)
            try:
                content = b"".join(body)
                status, headers, exc_info = answer
                headers = with_length(environ.get("REQUEST_METHOD", ""), status, headers, content)
                start_response(status, headers, exc_info)
                return [content]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                if self.stats is not None:
                    entry = self.stats.setdefault(operation(environ), [0, 0.0, 0.0])
                    entry[0] += 1
                    entry[1] += time.perf_counter() - started
                    entry[2] += time.thread_time() - cpu


def operation(environ: dict[str, Any]) -> str:
    """``dynamodb Query``, ``sqs ReceiveMessage``, ``s3 PUT``...: what a request asks of which service."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    service = auth.split("Credential=", 1)[1].split("/")[3] if "Credential=" in auth and auth.count("/") >= 4 else "?"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service} {target.rsplit('.', 1)[-1]}"
    if service == "s3":
        return f"s3 {environ.get('REQUEST_METHOD', '?')}"
    return f"{service} {environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '').split('/')[1:3]}"


def keep_alive_handler() -> type:
    """moto's request handler, keeping HTTP/1.1 connections open between requests."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAlive(MotoRequestHandler):  # type: ignore[misc,valid-type]
        protocol_version = "HTTP/1.1"
        delimited = False  # this request's body was read to its Content-Length
        connection_stream: Any = None

        def setup(self) -> None:
            super().setup()
            # werkzeug writes the headers and the body separately: without this,
            # Nagle holds the body until the client's delayed ACK (~40 ms a call).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def make_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().make_environ()
            self.delimited = False
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                try:
                    length = max(0, int(self.headers.get("Content-Length") or 0))
                except ValueError:
                    return environ  # left as werkzeug has it; the connection closes
                # The whole body is read here, before the request queues for moto's
                # lock: a client still sending it never holds up the others.
                body = self.rfile.read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                self.delimited = len(body) == length
                # After answering, werkzeug reads whatever the socket holds until it
                # goes quiet ("the connection closes anyway"): on a kept connection
                # that is the client's next request. It gets an empty stream instead;
                # the real one is back for the next request line (run_wsgi).
                self.connection_stream, self.rfile = self.rfile, io.BytesIO()
            return environ

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "connection" and value.lower() == "close" and self.delimited:
                return  # werkzeug's blanket "close": this request's body is delimited, keep the connection
            super().send_header(keyword, value)

        def run_wsgi(self) -> None:
            try:
                super().run_wsgi()
            finally:
                if self.connection_stream is not None:
                    self.rfile, self.connection_stream = self.connection_stream, None
            if not self.delimited:
                self.close_connection = True

    return KeepAlive


def fast_header_parsing() -> None:
    """The HTTP server reads request headers without the email package's parser.

    ``http.server`` parses each request's header block with ``email.parser`` (a feed
    parser built per request): ~0.1 ms, a tenth of a request's time outside moto.
    Well-formed ``Name: value`` lines are stored exactly as that parser stores them;
    anything else (folded lines, a line without a colon, a name the parser would
    refuse) goes to the parser as before."""
    import http.client
    import re

    read_headers = http.client._read_headers  # type: ignore[attr-defined]
    name_re = re.compile(r"[\041-\071\073-\176]+")

    def fast(fp: Any, _class: type = http.client.HTTPMessage) -> Any:
        lines = read_headers(fp)  # the last line ends the block: blank, or b"" at the end of the stream
        message = _class()
        for raw in lines[:-1] if lines and lines[-1] in (b"\r\n", b"\n", b"") else lines:
            line = raw.decode("iso-8859-1")
            name, colon, value = line.partition(":")
            if not colon or not name_re.fullmatch(name) or "\r" in line.rstrip("\r\n"):
                import email.parser

                return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
            message._headers.append((name, value.lstrip(" \t").rstrip("\r\n")))
        message.set_payload("")  # the parser's empty body
        return message

    http.client.parse_headers = fast


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    host, port = args[0], int(args[1])
    level = os.environ.get("MUSTER_TWIN_LOG", "INFO").upper()
    logging.basicConfig(level=logging.WARNING, format="moto %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.INFO if level == "DEBUG" else logging.WARNING)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    from infra.twin import motopatches

    motopatches.apply()
    fast_header_parsing()
    stats_path = os.environ.get("MUSTER_MOTO_STATS")
    stats: dict[str, list[float]] | None = {} if stats_path else None
    app = Serialized(DomainDispatcherApplication(create_backend_app), stats)
    if os.environ.get("MUSTER_MOTO_SERVER", "oneloop") == "oneloop":
        server: Any = OneLoopServer(host, port, app)
    else:
        server = make_server(host, port, app, threaded=True, request_handler=keep_alive_handler())
        server.daemon_threads = True

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin stops us (Ctrl-C reaches the whole group)
    server.serve_forever()
    if stats_path and stats is not None:
        with open(f"{stats_path}.{port}", "w", encoding="utf-8") as out:
            json.dump(stats, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
