"""The twin's one-thread HTTP server (``infra.twin.oneloop``) against werkzeug's.

Both serve the same echo app over real loopback sockets. For every request below, the
app must see the same WSGI environ (the keys werkzeug's ``make_environ`` sets, and the
body) and the client the same answer (status, headers, body; ``Date`` aside), and the
protocol cases each server handles its own way are checked on the one-thread server:
pipelined and byte-by-byte requests, ``Expect: 100-continue``, chunked bodies,
``Connection: close`` and HTTP/1.0, malformed requests, and an app that raises.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from infra.twin import oneloop

ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "RAW_URI",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
)


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """What the app saw, as JSON; ``/boom`` raises, ``/empty`` answers 204."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed")
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/empty":
        start_response("204 No Content", [])
        return [b""]
    seen = {k: environ.get(k) for k in ENVIRON_KEYS}
    seen["headers"] = sorted((k, v) for k, v in environ.items() if k.startswith("HTTP_"))
    seen["body"] = body.decode("latin-1")
    content = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(content)))])
    return [content]


@contextmanager
def serving(server: Any) -> Iterator[int]:
    """Run ``server`` in a thread; its port while it serves."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join(10)
        assert not thread.is_alive()


def one_loop(app: Callable[..., Iterable[bytes]] = echo) -> Any:
    return serving(oneloop.OneLoopServer("127.0.0.1", 0, app))


def werkzeug_server() -> Any:
    from werkzeug.serving import make_server

    from infra.twin.motoserver import keep_alive_handler

    return serving(make_server("127.0.0.1", 0, echo, threaded=True, request_handler=keep_alive_handler()))


def exchange(port: int, data: bytes, *, pieces: int = 1, answers: int = 1) -> list[bytes]:
    """Send ``data`` (in ``pieces``), read ``answers`` whole answers (by Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            sock.sendall(data[i : i + step])
            if pieces > 1:
                time.sleep(0.001)
        return read_answers(sock, answers, bodies=not data.startswith(b"HEAD"))


def read_answers(sock: socket.socket, count: int, *, bodies: bool = True) -> list[bytes]:
    buf = b""
    out: list[bytes] = []
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length" and bodies:
                    length = int(value)
            if head.startswith("HTTP/1.1 100"):
                out.append(buf[: end + 4])
                buf = buf[end + 4 :]
                continue
            if len(buf) >= end + 4 + length:
                out.append(buf[: end + 4 + length])
                buf = buf[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            out.append(buf)
            break
        buf += chunk
    return out


def split(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, body


REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: dynamodb.us-east-1.amazonaws.com\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
    b'Content-Type: application/x-amz-json-1.0\r\nContent-Length: 17\r\n\r\n{"TableName":"t"}',
    b"PUT /bucket/k%2Fa%20b%C3%A9?x-id=PutObject&a=1%202 HTTP/1.1\r\nHost: s3.localhost\r\nContent-Length: 3\r\n\r\nabc",
    b"GET //double/slash HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET http://example.test:81/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /h HTTP/1.1\r\nHost: localhost\r\nX-Dup: 1\r\nX-Dup: 2\r\nUnder_Score: dropped\r\nX-Space:   padded  \r\n"
    b"X-Folded: a\r\n  b\r\n\r\n",
    b"DELETE /empty HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n",
]


@pytest.mark.parametrize("raw", REQUESTS, ids=lambda r: r.split(b"\r\n", 1)[0].decode()[:40])
def test_the_app_sees_and_the_client_gets_what_werkzeug_gives(raw: bytes) -> None:
    with werkzeug_server() as wport:
        (expected,) = exchange(wport, raw)
    with one_loop() as port:
        (got,) = exchange(port, raw)
    e_status, e_headers, e_body = split(expected)
    g_status, g_headers, g_body = split(got)
    assert g_status == e_status
    ignore = {"date", "server", "connection"}
    assert {k: v for k, v in g_headers.items() if k not in ignore} == {
        k: v for k, v in e_headers.items() if k not in ignore
    }
    # The echoed environ names the port it was served on: compare without it.
    if e_body.startswith(b"{"):
        e_seen, g_seen = json.loads(e_body), json.loads(g_body)
        assert e_seen.pop("SERVER_PORT") == str(wport)
        assert g_seen.pop("SERVER_PORT") == str(port)
        assert g_seen == e_seen
    else:
        assert g_body == e_body


def test_pipelined_and_trickled_requests_are_answered_in_order_on_one_connection() -> None:
    first = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    second = b"GET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    with one_loop() as port:
        for pieces in (1, len(first + second)):  # one segment, then a byte at a time
            answers = exchange(port, first + second, pieces=pieces, answers=2)
            assert [split(a)[0] for a in answers] == ["HTTP/1.1 200 OK"] * 2
            seen = [json.loads(split(a)[2]) for a in answers]
            assert [(s["PATH_INFO"], s["body"], s["QUERY_STRING"]) for s in seen] == [
                ("/a", "hello", ""),
                ("/b", "", "x=1"),
            ]


def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    with one_loop() as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PUT /k HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        (interim,) = read_answers(sock, 1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        (answer,) = read_answers(sock, 1)
        assert json.loads(split(answer)[2])["body"] == "data"


def test_a_chunked_body_reaches_the_app_decoded() -> None:
    raw = (
        b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    with one_loop() as port:
        for pieces in (1, 9):
            (answer,) = exchange(port, raw, pieces=pieces)
            seen = json.loads(split(answer)[2])
            assert seen["body"] == "hello, world"
            assert seen["CONTENT_LENGTH"] is None


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_malformed_request_gets_400_and_the_connection_closes(raw: bytes) -> None:
    with one_loop() as port:
        answers = exchange(port, raw, answers=2)  # the answer, then the end of the stream
        assert split(answers[0])[0] == "HTTP/1.1 400 Bad Request"
        assert answers[1] == b""
        (after,) = exchange(port, REQUESTS[0])  # and the server goes on
        assert split(after)[0] == "HTTP/1.1 200 OK"


def test_a_header_block_without_end_is_refused_past_its_limit() -> None:
    with one_loop() as port:
        answers = exchange(port, b"GET / HTTP/1.1\r\nX: " + b"a" * (oneloop.MAX_HEADER_BYTES + 10), answers=2)
        assert split(answers[0])[0] == "HTTP/1.1 400 Bad Request"


@pytest.mark.parametrize(
    "raw",
    [b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", b"GET / HTTP/1.0\r\nHost: h\r\n\r\n"],
)
def test_close_is_honoured(raw: bytes) -> None:
    with one_loop() as port:
        answers = exchange(port, raw, answers=2)
        status, headers, _ = split(answers[0])
        assert status == "HTTP/1.1 200 OK"
        assert headers["connection"] == "close"
        assert answers[1] == b""


def test_an_answer_without_a_length_gets_one_and_the_connection_stays_usable() -> None:
    def unsized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no ", b"length"]

    with one_loop(unsized) as port:
        first, second = exchange(port, REQUESTS[0] * 2, answers=2)
        assert split(first) == split(second)
        assert split(first)[1]["content-length"] == "9"
        assert split(first)[2] == b"no length"


def test_an_app_that_raises_gets_500_and_the_server_goes_on() -> None:
    with one_loop() as port:
        first, second = exchange(port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n" + REQUESTS[0], answers=2)
        assert split(first)[0] == "HTTP/1.1 500 Internal Server Error"
        assert split(second)[0] == "HTTP/1.1 200 OK"


def test_many_clients_at_once_each_get_their_own_answers() -> None:
    """32 threads x 20 requests over kept connections: every answer is the asker's."""
    errors: list[str] = []

    def client(n: int, port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for i in range(20):
                body = f"{n}-{i}".encode()
                sock.sendall(b"POST /m HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                (answer,) = read_answers(sock, 1)
                if json.loads(split(answer)[2])["body"] != body.decode():
                    errors.append(f"{n}-{i}")

    with one_loop() as port:
        threads = [threading.Thread(target=client, args=(n, port)) for n in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
