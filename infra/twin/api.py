"""The Chalice API, served in-process by Chalice's own local server (what
``chalice local`` runs), with every request taking the twin's container lock.

Chalice's local gateway imitates API Gateway's answers to a path no route
matches (a 403 ``{"message": "Missing Authentication Token"}``, or an
"Authorization header requires 'Credential'..." one when a bearer key is sent) and
its HTTP server answers an unknown method with a 501 HTML page. Here both answer
in R13's shape like every other error: an unknown path is a 404 ``not_found``, and
any method a route lacks (TRACE, QUERY, ...) reaches the app, whose 405
``method_not_allowed`` lists the route's methods in ``Allow``. :class:`ApiTestClient`
gives ``chalice.test.Client`` users (tests/integration/world.py) the same gateway.
(In AWS, API Gateway's gateway responses do this: infra/template.json.)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from chalice import Chalice
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalChalice, LocalDevServer, LocalGateway, RouteMatcher
from chalice.test import Client, TestHTTPClient, TestLambdaClient

from chalicelib.errors import NotFound
from infra.twin.config import ROOT, STAGE
from infra.twin.lambdas import CONTAINER_LOCK


class TwinChalice(LocalChalice):
    """``chalice local``'s app class (thread-local ``current_request``), with one
    request or invocation at a time, as in a single Lambda container."""

    def __call__(self, event: Any, context: Any) -> Any:
        with CONTAINER_LOCK:
            return super().__call__(event, context)


def no_route(method: str, path: str) -> dict[str, Any]:
    """A Lambda-proxy response: R13's 404 for a path no route matches."""
    err = NotFound(
        f"no {method} {path.split('?')[0][:200]} here; the API is described at /openapi.json", code="not_found"
    )
    return {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "body": json.dumps(err.body()),
    }


class R13Gateway(LocalGateway):
    """Chalice's local API Gateway, answering an unknown path with R13's 404."""

    def __init__(self, app_object: Chalice, config: Config) -> None:
        super().__init__(app_object, config)
        self._routes = RouteMatcher(list(app_object.routes))

    def handle_request(self, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            self._routes.match_route(path)
        except ValueError:
            return no_route(method, path)
        return super().handle_request(method, path, headers, body)


class R13RequestHandler(ChaliceRequestHandler):
    def __init__(
        self, request: Any, client_address: Any, server: HTTPServer, app_object: Chalice, config: Config
    ) -> None:
        self.local_gateway = R13Gateway(app_object, config)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>; every method goes to the gateway, so a
        # method no route has gets the app's 405 rather than a 501 page.
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def _send_http_response_with_body(self, code: int, headers: Any, body: str | bytes) -> None:
        if self.command == "HEAD":  # headers only, or the connection's next response is garbled
            self._send_http_response_no_body(code, headers)
            return
        super()._send_http_response_with_body(code, headers, body)


class _SharedEnvironment:
    """``chalice.test`` swaps ``os.environ`` for a copy with the stage's variables
    around each invocation and puts the saved one back afterwards. Two invocations
    at once (tests run handlers concurrently, as Lambda does) interleave those swaps,
    and the later "restore" can leave the stage's copy in place for good. Here the
    first invocation in swaps, the last one out restores; the ones in between add
    the same stage's variables to the swapped copy."""

    _lock = threading.Lock()
    _depth = 0
    _saved: Any = None

    @contextlib.contextmanager
    def _patched_env_vars(self, environment_variables: dict[str, str]) -> Iterator[None]:
        cls = _SharedEnvironment
        with cls._lock:
            if cls._depth == 0:
                cls._saved = os.environ
                patched = os.environ.copy()
                patched.update(environment_variables)
                os.environ = patched  # type: ignore[assignment]  # noqa: B003 - as chalice.test does: a copy, swapped in
            else:
                os.environ.update(environment_variables)
            cls._depth += 1
        try:
            yield
        finally:
            with cls._lock:
                cls._depth -= 1
                if cls._depth == 0:
                    os.environ = cls._saved  # noqa: B003 - the saved one back
                    cls._saved = None


class _R13TestHTTPClient(_SharedEnvironment, TestHTTPClient):
    def __init__(self, app: Chalice, config: Config) -> None:
        super().__init__(app, config)
        self._local_gateway = R13Gateway(app, config)


class _TestLambdaClient(_SharedEnvironment, TestLambdaClient):
    pass


class ApiTestClient(Client):
    """``chalice.test.Client`` whose HTTP side uses :class:`R13Gateway`, and whose
    HTTP and Lambda sides may be called from several threads at once."""

    @property
    def http(self) -> TestHTTPClient:
        if self._http_client is None:
            self._http_client = _R13TestHTTPClient(self._app, self._chalice_config)
        return self._http_client

    @property
    def lambda_(self) -> TestLambdaClient:
        if self._lambda_client is None:
            self._lambda_client = _TestLambdaClient(self._app, self._chalice_config)
        return self._lambda_client


class ApiServer:
    def __init__(self, app: Chalice, host: str, port: int) -> None:
        config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name=STAGE)
        app.__class__ = TwinChalice
        self.server = LocalDevServer(app, config, host, port, handler_cls=R13RequestHandler)
        self.server.server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.server.serve_forever, name="twin-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server.server_close()
