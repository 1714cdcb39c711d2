"""What the twin's moto (``infra.twin.motoserver``) changes in moto: each change makes
a call cheaper or keeps a long run from growing, none changes an answer. ``apply()``
makes them all, in the moto server's process, before its app exists.

The server applies requests one at a time (``motoserver.Serialized``); several of
the changes below rely on that.

First: moto remembers every model instance it ever created
(``BaseModel.instances_tracked``, for ``/moto-api/data.json``), including each
SQS message copy a receive makes and each DynamoDB item version; in a long run
that is a leak (1.2 GB after ~1,000 relayed copies) and slows every garbage
collection. The twin never reads ``data.json``, so tracking is turned off.

Second: moto's ``transact_write_items`` deep-copies each table a transaction
touches, once per item, to roll back on failure: O(table size) per item, which
made a 49-copy fan-out take longer the more the table held (the first
``bench/twin.py`` run after grouped claims fell to 4 copies/s). The twin's moto
snapshots only the items a transaction names and restores those on failure.

Third: moto finds the backend of every request by listing its own package
directory and calling ``isdir`` on each of its ~200 entries, then trying a few
hundred URL patterns; the answer depends only on the request's host (the twin
signs every request, so the host is the service's), so it is remembered, as are the
method names of each response class (``inspect.getmembers`` on every request).

Fourth: moto's ``Table.query`` sorts every item of the table on every Query (to
pick out the one partition it names), and scans the whole table for an index
Query: O(table) per call, where DynamoDB reads only the partition. As the chat
partitions filled with delivery records, each roster read cost more (the soak's
latency grew x2.75 first-to-last). The twin's moto hands ``query`` the named
partition (or, for an index, the items whose index key matches) and lets moto's
own code do the rest: the same range conditions, order, paging and filters.

Fifth: moto writes each response by walking the operation's output shape, member by
member, through an attribute picker; for a DynamoDB item every attribute value is a
ten-member structure, so a Query answering 50 participants spent 85 % of its time
there (~30 ms). The twin's moto writes a DynamoDB ``AttributeValue`` (already in
wire form) straight to JSON, with the same conversions moto applies (strings,
base64 for binaries, nested maps and lists), and leaves every other shape to moto.

Sixth: moto parses a condition expression with a tokenizer in Python up to three
times per item it writes (to validate it, in the transaction, in the write): 75 % of a
claim transaction's time. The twin's moto remembers each parsed condition by its
text, names and values (the tree is only read afterwards) - the same expression
over the same values, as every copy claim of one batch is.

Seventh: moto checks the 400 KB item limit by re-summing every stored attribute on
each attribute it stores, and a Query sums each result's size twice for its page
limit: an item's size is now kept from when it was built and forgotten when an
update changes it in place (``cached_item_sizes``). Eighth: random request and SES
message ids are drawn with one ``choices`` call, not one call per character.
Ninth: a Query's results are not
deep-copied before the response reads them (projections and filters build new items):
~20 % of a roster read. Tenth: a request goes to moto's
handler without Flask's request context (``direct_dispatch``).

``tests/unit/test_twin_moto.py`` checks that the fourth to seventh and the ninth
answer exactly as moto does (the seventh's refusals of items over 400 KB included),
that the eighth draws from the same alphabets, and that the tenth answers every
service the twin uses as Flask did.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any


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

    # Each request also listed its response class's methods with inspect.getmembers.
    import moto.core.responses as responses

    responses.method_names_from_class = cache(responses.method_names_from_class)  # type: ignore[assignment]


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


def partition_queries() -> None:
    """``Table.query`` sorts and filters the partition it names, not the whole table."""
    import inspect

    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)

    def candidates(table: Table, arguments: dict[str, Any]) -> list[Any] | None:
        hash_key, index_name = arguments.get("hash_key"), arguments.get("index_name")
        if index_name is None:
            if hash_key is None:
                return None
            partition = table.items.get(hash_key)
            if partition is None:
                return []
            return list(partition.values()) if table.range_key_attr else [partition]
        conditions = arguments.get("hash_key_conditions")
        if not conditions:
            return None
        attr, value = conditions[0]
        every: Iterable[Any] = (
            item for part in table.items.values() for item in (part.values() if table.range_key_attr else [part])
        )
        return [item for item in every if (key := item.attrs.get(attr)) is not None and key == value]

    # ``Table.query`` deep-copies its results before projecting and filtering them
    # (~40 % of moto's time for a roster read, ~20 % of the read with the client's);
    # both build new items rather than change them, and the response only reads
    # them. During a Query, ``table.copy.deepcopy`` of the result list is a list
    # copy; every other deepcopy in that module is moto's own.
    import copy as real_copy
    import types

    from moto.dynamodb.models import table as table_module

    querying = threading.local()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if getattr(querying, "on", False) and type(value) is list:
            return list(value)
        return real_copy.deepcopy(value, memo)

    table_module.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=real_copy.copy)  # type: ignore[assignment]

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        found = candidates(self, signature.bind(self, *args, **kwargs).arguments)
        querying.on = True
        try:
            if found is None:
                return original(self, *args, **kwargs)
            # One request at a time (Serialized), so shadowing the method on the instance is safe.
            self.all_items = lambda: found  # type: ignore[method-assign]
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.all_items
        finally:
            querying.on = False

    Table.query = query  # type: ignore[method-assign]


ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def fast_attribute_values() -> None:
    """DynamoDB's ``AttributeValue`` is written to JSON directly, not member by member."""
    import base64

    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure

    def blob(value: str | bytes) -> str:
        return base64.b64encode(value.encode("utf-8") if isinstance(value, str) else value).decode("ascii")

    def wire(value: Any) -> dict[str, Any] | None:
        """``value`` as moto's serializer would write it, or None when it isn't plainly an AttributeValue."""
        if not isinstance(value, dict) or not value.keys() <= ATTRIBUTE_VALUE_MEMBERS:
            return None
        out: dict[str, Any] = {}
        for kind, member in value.items():
            if member is None:
                continue
            if kind in ("S", "N"):
                out[kind] = member if member in ({}, []) else str(member)
            elif kind == "B":
                out[kind] = blob(member)
            elif kind in ("SS", "NS"):
                out[kind] = [x if x in ({}, []) or x is None else str(x) for x in member]
            elif kind == "BS":
                out[kind] = [blob(x) for x in member]
            elif kind == "M":
                inner = {name: wire(x) for name, x in member.items()}
                if any(x is None for x in inner.values()):
                    return None
                out[kind] = inner
            elif kind == "L":
                items = [wire(x) for x in member]
                if any(x is None for x in items):
                    return None
                out[kind] = items
            else:
                out[kind] = member
        return out

    def serialize_structure(self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and self.operation_model.service_model.service_name == "dynamodb":
            written = wire(value)
            if written is not None:
                serialized[self.get_serialized_name(shape, key)] = written
                return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def remember_conditions(size: int = 4096) -> None:
    """A condition expression is parsed once per (text, names, values), not per use."""
    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = ConditionExpressionParser.parse
    parsed: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}

    def parse(self: ConditionExpressionParser) -> Any:
        key = (
            str(self.condition_expression),
            json.dumps(self.expression_attribute_names, sort_keys=True),
            json.dumps(self.expression_attribute_values, sort_keys=True, default=repr),
        )
        hit = parsed.get(key)
        if hit is None:
            tree = original(self)  # a malformed expression raises, and is parsed (and refused) again next time
            if len(parsed) >= size:
                parsed.clear()
            parsed[key] = hit = (tree, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            return tree
        tree, names, values = hit
        # moto's responses read these after parsing, to refuse unused names and values.
        self.expr_attr_names_found.extend(names)
        self.expr_attr_values_found.extend(values)
        return tree

    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


def cached_item_sizes() -> None:
    """An item's size, computed once, not on every write and every Query.

    moto checks DynamoDB's 400 KB item limit on every attribute it stores, by summing
    the sizes of all the attributes stored before it (O(attributes^2) per item
    written), and a Query adds up each result's size, recursively, twice (for the
    1 MB page limit): about half of moto's time for a 50-participant roster read.
    Here an item built from its attributes keeps the sum it checked (the same checks,
    in the same order, so the same refusals), and ``size()`` is remembered until an
    update changes the item in place (moto's two update paths forget it; every other
    write builds a new item).
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.parsing.executors import UpdateExpressionExecutor

    limit = 405000  # LimitedSizeDict's
    size = Item.size

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        self.attrs = held = LimitedSizeDict()
        total = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            total += bytesize(key) + typed.size()
            if total > limit:
                raise ItemSizeTooLarge
            dict.__setitem__(held, key, typed)
        self._twin_size = total

    def cached_size(self: Any) -> int:
        known: int | None = self.__dict__.get("_twin_size")
        if known is None:
            known = self._twin_size = size(self)
        return known

    execute = UpdateExpressionExecutor.execute
    attribute_updates = Item.update_with_attribute_updates

    def execute_and_forget(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            execute(self, *args, **kwargs)
        finally:
            self.item.__dict__.pop("_twin_size", None)

    def attribute_updates_and_forget(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            attribute_updates(self, *args, **kwargs)
        finally:
            self.__dict__.pop("_twin_size", None)

    Item.__init__ = init  # type: ignore[method-assign]
    Item.size = cached_size  # type: ignore[method-assign]
    UpdateExpressionExecutor.execute = execute_and_forget  # type: ignore[method-assign]
    Item.update_with_attribute_updates = attribute_updates_and_forget  # type: ignore[method-assign]


def cheap_random_ids() -> None:
    """Request ids and SES message ids drawn with one ``choices`` call each.

    moto draws every random id one character at a time (a 52-character request id on
    every answer, a 56-character message id per SES send): ~10 % of the SES
    process's time. Same alphabets, same lengths, same generator."""
    import string

    import moto.ses.utils as ses_utils
    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.moto_random import HEX_CHARS, MotoRandom

    def get_random_hex(self: MotoRandom, length: int = 8) -> str:
        return "".join(str(c) for c in self.choices(HEX_CHARS, k=length))

    def get_random_string(
        self: MotoRandom, length: int = 20, include_digits: bool = True, lower_case: bool = False
    ) -> str:
        pool = string.ascii_letters + (string.digits if include_digits else "")
        text = "".join(self.choices(pool, k=length))
        return text.lower() if lower_case else text

    def random_hex(length: int) -> str:
        return "".join(mock_random.choices(string.ascii_lowercase, k=length))

    MotoRandom.get_random_hex = get_random_hex  # type: ignore[method-assign]
    MotoRandom.get_random_string = get_random_string  # type: ignore[method-assign]
    ses_utils.random_hex = random_hex


def direct_dispatch() -> None:
    """A request goes to moto's handler without Flask's request context around it.

    moto's server wraps each backend in a Flask app whose every view is the same
    adapter (``convert_to_flask_response``): it hands the request to moto and makes
    a response of moto's answer. Flask's machinery around it (request context,
    session, before/after hooks, response finalizing) was ~30 % of a request's time
    in moto. The twin matches the URL with the same app's rules and runs that
    adapter's steps itself, and adds the headers Flask-CORS adds to a request without
    an Origin; whatever else (no matching rule, another kind of view, a browser's
    CORS request or preflight) goes through Flask as before."""
    from botocore.exceptions import ClientError
    from flask import Response
    from moto.core.request import normalize_request
    from moto.core.utils import convert_to_flask_response
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import BackendRequest, DomainDispatcherApplication
    from werkzeug.exceptions import HTTPException

    cors: dict[int, list[tuple[str, str]]] = {}

    def cors_headers(app: Any) -> list[tuple[str, str]]:
        """What the app's after-request hooks (Flask-CORS) add to an answer to a
        request without an Origin: the same for every such request, so found once."""
        if id(app) not in cors:
            with app.test_request_context("/", method="GET"):
                bare = Response()
                before = set(bare.headers.items())
                cors[id(app)] = [kv for kv in app.process_response(bare).headers.items() if kv not in before]
        return cors[id(app)]

    def call(self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.get_application(environ)
        if "HTTP_ORIGIN" in environ or environ.get("REQUEST_METHOD") == "OPTIONS":
            return app(environ, start_response)
        try:
            endpoint, _ = app.url_map.bind_to_environ(environ).match()
        except HTTPException:
            return app(environ, start_response)
        view = app.view_functions.get(endpoint)
        if type(view) is not convert_to_flask_response:
            return app(environ, start_response)
        request = normalize_request(BackendRequest(environ))
        # convert_to_flask_response.__call__, with this request for Flask's.
        try:
            recorder._record_request(request)
            result = view.callback(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        if request.method == "HEAD" and "content-length" in headers:
            response.headers["Content-Length"] = headers["content-length"]
        for name, value in cors_headers(app):
            response.headers.add(name, value)
        return response(environ, start_response)

    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]


def apply() -> None:
    """Every change above, once per process."""
    stop_tracking_instances()
    remember_backends()
    cheap_transactions()
    partition_queries()
    fast_attribute_values()
    remember_conditions()
    cached_item_sizes()
    cheap_random_ids()
    direct_dispatch()
