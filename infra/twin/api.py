"""The Chalice API, served in-process by Chalice's own local server (what
``chalice local`` runs), with every request taking the twin's container lock."""

from __future__ import annotations

import threading
from typing import Any

from chalice import Chalice
from chalice.cli.factory import CLIFactory
from chalice.local import LocalChalice, LocalDevServer

from infra.twin.config import ROOT, STAGE
from infra.twin.lambdas import CONTAINER_LOCK


class TwinChalice(LocalChalice):
    """``chalice local``'s app class (thread-local ``current_request``), with one
    request or invocation at a time, as in a single Lambda container."""

    def __call__(self, event: Any, context: Any) -> Any:
        with CONTAINER_LOCK:
            return super().__call__(event, context)


class ApiServer:
    def __init__(self, app: Chalice, host: str, port: int) -> None:
        config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name=STAGE)
        app.__class__ = TwinChalice
        self.server = LocalDevServer(app, config, host, port)
        self.server.server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.server.serve_forever, name="twin-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server.server_close()
