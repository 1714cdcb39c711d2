"""A one-thread HTTP/1.1 server for a WSGI app that applies requests one at a time.

The twin's moto applies one request at a time (``motoserver.Serialized``); with
werkzeug's development server each kept-alive connection also had a thread of its own
(~40 under load: four workers with eight send threads each, and the pollers), and every
request paid for that: a thread waking to read, then queuing for the GIL and for
moto's lock behind the others. Here one thread does it all with ``selectors``: it reads
whatever the sockets hold, and each time a request is complete (headers, and a body to
its ``Content-Length`` or its last chunk) it runs the app and writes the whole answer
in one ``send``. A client that sends slowly holds nobody up, as before.

The WSGI environ is the one werkzeug's server builds (``werkzeug.serving.
WSGIRequestHandler.make_environ``) for the requests the twin makes: the same keys and
the same decoding of the path. ``Expect: 100-continue`` is answered at once; a chunked
body is decoded; anything this server cannot read (a malformed request line or header
block, a bad length) gets ``400`` and the connection is closed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import selectors
import socket
import sys
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_HEADER_BYTES = 64 * 1024
SEND_TIMEOUT = 30.0  # seconds a client may take to read an answer before it is dropped
SERVER_SOFTWARE = "Werkzeug (muster twin, one thread)"

log = logging.getLogger("werkzeug")


def with_length(method: str, status: str, headers: list[tuple[str, str]], content: bytes) -> list[tuple[str, str]]:
    """``headers``, with the body's ``Content-Length`` added when the answer has a
    body and does not say its length: a kept-alive connection needs it."""
    bodiless = method == "HEAD" or status[:3] in {"204", "304"} or status[:1] == "1"
    if bodiless or any(name.lower() == "content-length" for name, _ in headers):
        return headers
    return [*headers, ("Content-Length", str(len(content)))]


class BadRequest(Exception):
    pass


def _dance(value: str) -> str:
    """werkzeug's ``_wsgi_encoding_dance``: text as WSGI's latin-1 'bytes in a str'."""
    return value.encode().decode("latin1")


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Request line and header fields of one header block (without its blank line)."""
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0][:80]!r}")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and fields:  # an obsolete folded line continues the last field
            name, value = fields[-1]
            fields[-1] = (name, value + line)  # as http.client's parser and werkzeug join it
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(f"bad header line {line[:80]!r}")
        fields.append((name, value.lstrip(" \t")))  # trailing blanks stay, as http.client keeps them
    return parts[0], parts[1], parts[2], fields


def environ_for(
    method: str,
    target: str,
    version: str,
    fields: list[tuple[str, str]],
    body: bytes,
    server: tuple[str, int],
    peer: tuple[str, int],
) -> dict[str, Any]:
    """The environ werkzeug's ``make_environ`` builds for this request."""
    if target.startswith("//"):  # as http.server's parse_request: "//x" is "/x", not a host
        target = "/" + target.lstrip("/")
    url = urlsplit(target)
    path = f"/{url.netloc}{url.path}" if not url.scheme and url.netloc else url.path
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _dance(unquote(path)),
        "QUERY_STRING": _dance(url.query),
        "REQUEST_URI": _dance(target),
        "RAW_URI": _dance(target),
        "REMOTE_ADDR": peer[0],
        "REMOTE_PORT": peer[1],
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": version,
    }
    for name, value in fields:
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        value = value.replace("\r\n", "")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
            if key in environ:
                value = f"{environ[key]},{value}"
        environ[key] = value
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        environ["wsgi.input_terminated"] = True
        environ.pop("CONTENT_LENGTH", None)
    if url.scheme and url.netloc:
        environ["HTTP_HOST"] = url.netloc
    return environ


def dechunk(data: bytes | bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``start``: (body, end) once its last chunk and
    trailers are in, None while more is to come."""
    body = bytearray()
    at = start
    while True:
        eol = data.find(b"\r\n", at)
        if eol < 0:
            return None
        try:
            size = int(bytes(data[at:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        if size < 0:
            raise BadRequest("bad chunk size")
        if size == 0:
            end = data.find(b"\r\n\r\n", eol)  # trailers, if any, end with a blank line
            if end < 0:
                return None
            return bytes(body), end + 4
        if len(data) < eol + 2 + size + 2:
            return None
        body += data[eol + 2 : eol + 2 + size]
        at = eol + 2 + size + 2


class Connection:
    def __init__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.sock = sock
        self.peer = peer
        self.buffer = bytearray()
        self.continued = False  # "100 Continue" sent for the request being read


class OneLoopServer:
    """``serve_forever()`` until ``shutdown()``; the app is called in this one thread."""

    def __init__(self, host: str, port: int, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.listener = socket.create_server((host, port), backlog=128, reuse_port=False)
        self.listener.setblocking(False)
        self.server_address = self.listener.getsockname()[:2]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stopping = False

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from a signal handler or another thread)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def serve_forever(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self.selector.select():
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        self._wake_r.recv(64)
                    else:
                        self._readable(key.data)
        finally:
            for key in list(self.selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self.selector.close()
            self._wake_w.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, say: the client retries, the loop goes on
                log.exception("accept failed")
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, Connection(sock, peer[:2]))

    def _close(self, conn: Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

    def _readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(256 * 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.buffer += data
        try:
            while self._one(conn):
                pass
        except BadRequest:
            self._send(conn, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self._close(conn)
        except OSError:
            self._close(conn)

    def _one(self, conn: Connection) -> bool:
        """Answer the first request in the buffer if it is complete; True if one was."""
        buf = conn.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise BadRequest("header block too large")
            return False
        method, target, version, fields = parse_head(bytes(buf[:end]))
        lowered = {name.lower(): value for name, value in fields}
        start = end + 4
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            done = dechunk(buf, start)
            if done is None:
                self._continue(conn, lowered)
                return False
            body, stop = done
        else:
            try:
                length = int(lowered.get("content-length") or 0)
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            if length < 0:
                raise BadRequest("bad Content-Length")
            if len(buf) < start + length:
                self._continue(conn, lowered)
                return False
            body, stop = bytes(buf[start : start + length]), start + length
        del buf[:stop]
        conn.continued = False
        environ = environ_for(method, target, version, fields, body, self.server_address, conn.peer)
        close = version == "HTTP/1.0" or lowered.get("connection", "").lower() == "close"
        self._answer(conn, environ, method, close)
        if close:
            self._close(conn)
            return False
        return bool(buf)

    def _continue(self, conn: Connection, lowered: dict[str, str]) -> None:
        if not conn.continued and lowered.get("expect", "").lower() == "100-continue":
            conn.continued = True
            self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _answer(self, conn: Connection, environ: dict[str, Any], method: str, close: bool) -> None:
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            answer[:] = [status, headers]
            return lambda data: None  # the apps here never write through it

        try:
            result = self.app(environ, start_response)
            try:
                content = b"".join(result)
            finally:
                closer = getattr(result, "close", None)
                if closer is not None:
                    closer()
            status, headers = answer
        except Exception:
            # As werkzeug's server does: log it, answer 500, keep serving.
            log.exception("error on request %s %s", method, environ.get("RAW_URI", ""))
            status, headers, content = "500 Internal Server Error", [("Content-Length", "0")], b""
        if log.isEnabledFor(logging.INFO):  # werkzeug's access line (the twin's MUSTER_TWIN_LOG=DEBUG)
            log.info(
                '%s - - "%s %s %s" %s -',
                conn.peer[0],
                method,
                environ["RAW_URI"],
                environ["SERVER_PROTOCOL"],
                status[:3],
            )
        lines = [f"HTTP/1.1 {status}", f"Server: {SERVER_SOFTWARE}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in with_length(method, status, headers, content)]
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._send(conn, head + (b"" if method == "HEAD" else content))

    @staticmethod
    def _send(conn: Connection, data: bytes) -> None:
        """The whole answer, now (a client on loopback reads it at once)."""
        conn.sock.settimeout(SEND_TIMEOUT)
        try:
            conn.sock.sendall(data)
        finally:
            conn.sock.setblocking(False)
