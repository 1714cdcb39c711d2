"""moto's server in a process of its own: ``python -m infra.twin.motoserver HOST PORT``.

The same WSGI app ``python -m moto.server`` serves, with one difference: requests
are applied one at a time. moto's backends are plain Python objects with no
locking, so two concurrent conditional writes to one DynamoDB item could both
pass their condition; DynamoDB applies each write to an item atomically, and
the twin's concurrent (and deliberately duplicated) handlers rely on that. moto
is CPU-bound Python under one GIL, so serializing costs almost nothing.

Second difference: moto remembers every model instance it ever created
(``BaseModel.instances_tracked``, for ``/moto-api/data.json``), including each
SQS message copy a receive makes and each DynamoDB item version; in a long run
that is a leak (1.2 GB after ~1,000 relayed copies) and slows every garbage
collection. The twin never reads ``data.json``, so tracking is turned off.

Third: moto's ``transact_write_items`` deep-copies each table a transaction
touches, once per item, to roll back on failure: O(table size) per item, which
made a 49-copy fan-out take longer the more the table held (the first
``bench/twin.py`` run after grouped claims fell to 4 copies/s). The twin's moto
snapshots only the items a transaction names and restores those on failure.

Fourth: moto finds the backend of every request by listing its own package
directory and calling ``isdir`` on each of its ~200 entries, then trying a few
hundred URL patterns; the answer depends only on the request's host (the twin
signs every request, so the host is the service's), so it is remembered.

Each request is logged only at DEBUG (``MUSTER_TWIN_LOG=DEBUG``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any


class Serialized:
    """WSGI middleware: one request at a time, body consumed under the lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            body = self.app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()


def stop_tracking_instances() -> None:
    """moto's ``BaseModel.__new__`` appends every instance to a class list; don't."""
    from moto.core.common_models import BaseModel

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign,assignment]


def remember_backends() -> None:
    """Resolve each host to its moto backend once, not on every request."""
    from functools import cache

    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment,return-value]
    resolve = DomainDispatcherApplication.get_backend_for_host

    @cache
    def by_host(app: DomainDispatcherApplication, host: str) -> Any:
        return resolve(app, host)

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        return None if host is None else by_host(self, host)

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def cheap_transactions() -> None:
    """Roll back a failed TransactWriteItems from item snapshots, not table copies."""
    import copy as copy_module

    import moto.dynamodb.models as ddb
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = ddb.DynamoDBBackend.transact_write_items
    inside = threading.local()

    class Shim:
        """moto's module-level ``copy``: tables are not copied inside a transaction."""

        @staticmethod
        def deepcopy(value: Any, *args: Any) -> Any:
            if getattr(inside, "on", False) and isinstance(value, Table):
                return value
            return copy_module.deepcopy(value, *args)

        copy = staticmethod(copy_module.copy)

    ddb.copy = Shim  # type: ignore[assignment]

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.has_range_key and table.range_key_attr in key else None
            if table.has_range_key and r is None:
                continue
            previous = table.get_item(h, r)
            saved.append((table, h, r, copy_module.deepcopy(previous)))
        inside.on = True
        try:
            original(self, transact_items)
        except Exception:
            for table, h, r, previous in reversed(saved):
                if r is not None:
                    if previous is None:
                        table.items.get(h, {}).pop(r, None)
                    else:
                        table.items[h][r] = previous
                elif previous is None:
                    table.items.pop(h, None)
                else:
                    table.items[h] = previous
            raise
        finally:
            inside.on = False

    ddb.DynamoDBBackend.transact_write_items = transact  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    host, port = args[0], int(args[1])
    level = os.environ.get("MUSTER_TWIN_LOG", "INFO").upper()
    logging.basicConfig(level=logging.WARNING, format="moto %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.INFO if level == "DEBUG" else logging.WARNING)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    stop_tracking_instances()
    remember_backends()
    cheap_transactions()
    app = Serialized(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the twin stops us (Ctrl-C reaches the whole group)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
