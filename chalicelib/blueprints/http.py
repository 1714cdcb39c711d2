"""The HTTP edge: bearer-key authentication and R13's single error shape.

Authentication runs as Chalice middleware (so ``chalice local`` and API Gateway
behave the same, and refusals share the error shape). Views are wrapped by
:func:`endpoint`, which parses and validates the body and maps every domain error
to ``{"error": {"code", "message", "field"}}`` with its status -- never a 500 for
bad input.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from chalice import Response
from chalice.app import Request

from chalicelib.errors import (
    ApiError,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    from_validation,
)
from chalicelib.observability import logger
from chalicelib.vocab import EXTERNAL_ID

if TYPE_CHECKING:
    from pydantic import BaseModel

    from chalicelib.schemas import Strict

MAX_BODY = 256 * 1024
PUBLIC_PREFIXES = ("/openapi.json", "/mute/", "/c/", "/files/", "/n/", "/t/")
JSON = {"Content-Type": "application/json"}

M = TypeVar("M", bound="Strict")


def error_response(err: ApiError) -> Response:
    headers: dict[str, str | list[str]] = dict(JSON)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="muster"'
    return Response(body=json.dumps(err.body()), status_code=err.status, headers=headers)


def json_response(model: BaseModel | dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(model) if isinstance(model, dict) else model.model_dump_json()
    return Response(body=body, status_code=status, headers=dict(JSON))


# Chalice answers some mistakes itself (unknown method, bad Accept); give those
# the same shape as ours.
_FRAMEWORK_CODES = {405: "method_not_allowed", 415: "unsupported_media_type", 400: "bad_request"}


def _normalize(response: Response) -> Response:
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
        code = _FRAMEWORK_CODES.get(response.status_code, "error")
        err = ApiError(str(body.get("Message", "")), None, code=code, status=response.status_code)
        response.body = json.dumps(err.body())
        response.headers = {**(response.headers or {}), **JSON}
    return response


def make_auth_middleware(
    authenticate: Callable[[str | None], str],
) -> Callable[[Request, Callable[[Request], Response]], Response]:
    def middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
        path = event.path or ""
        if not path.startswith(PUBLIC_PREFIXES):
            try:
                integration = authenticate(event.headers.get("authorization"))
            except ApiError as err:
                return error_response(err)
            event.context.setdefault("authorizer", {})["integration"] = integration
        return _normalize(get_response(event))

    return middleware


def integration_of(request: Request) -> str:
    return str(request.context["authorizer"]["integration"])


def parse_body(request: Request, model: type[M]) -> M:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json", "Content-Type")
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY:
        raise PayloadTooLarge(f"the body may be at most {MAX_BODY} bytes")
    from pydantic import ValidationError

    try:
        # Strict, from the JSON itself: no type is coerced (R13, README "Integration API").
        return model.from_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise BadRequest(f"the body is not valid JSON: {first['msg']}", code="invalid_json") from None
        if first["type"] == "model_type" and not first["loc"]:
            raise BadRequest("the body must be a JSON object", code="invalid_json") from None
        raise


def check_ids(**ids: str) -> None:
    for name, value in ids.items():
        if not EXTERNAL_ID.fullmatch(value or ""):  # not match: "$" would allow a trailing newline
            raise BadRequest(
                f"'{name}' must be 1-100 letters, digits or . _ : - and start with a letter or digit",
                name,
                code="invalid_id",
            )


def is_validation_error(exc: Exception) -> bool:
    from pydantic import ValidationError

    return isinstance(exc, ValidationError)


def decode_path(params: dict[str, str]) -> dict[str, str]:
    """Path parameters arrive percent-encoded (API Gateway and Chalice's local
    gateway alike: ``/events/a%3Ab`` gives ``a%3Ab``). Decode them exactly once, so
    ``%3A`` is ``:`` and ``%253A`` stays an invalid ``%3A``."""
    decoded = {}
    for name, value in params.items():
        try:
            decoded[name] = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest(f"'{name}' is not percent-encoded UTF-8", name, code="invalid_id") from None
    return decoded


def endpoint(view: Callable[..., Response]) -> Callable[..., Response]:
    """Map every error a view can raise to R13's shape and status."""

    @functools.wraps(view)
    def wrapper(**kwargs: str) -> Response:
        try:
            kwargs = decode_path(kwargs)
            check_ids(**{k: v for k, v in kwargs.items() if k.endswith("_id")})
            return view(**kwargs)
        except ApiError as err:
            return error_response(err)
        except Exception as exc:
            if is_validation_error(exc):
                return error_response(from_validation(exc))  # type: ignore[arg-type]
            logger.exception("unhandled error in API view")
            return error_response(ApiError("something went wrong on our side", code="internal_error", status=500))

    return wrapper
