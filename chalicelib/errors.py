"""Domain errors and their one mapping to HTTP (R13).

Services raise :class:`ApiError` subclasses; the API middleware turns them into
``{"error": {"code", "message", "field"}}`` with the status given here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status:
            self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Gone(ApiError):
    status, code = 410, "gone"


class NotFound(ApiError):
    status, code = 404, "not_found"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status, code = 422, "validation_error"


class ChatNotOpen(ApiError):
    """A chat action (an announcement, a private conversation) on a chat that is not open."""

    status, code = 409, "chat_not_open"


class NotAnOrganizer(ApiError):
    """An organizer-only action by someone who is not an organizer of the chat."""

    status, code = 422, "not_an_organizer"


def _loc(loc: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    return ".".join(parts) or None


def from_validation(exc: ValidationError) -> Unprocessable:
    """The first problem, precisely: which field, and why."""
    first = exc.errors(include_url=False, include_context=False)[0]
    kind = first["type"]
    field = _loc(tuple(first["loc"]))
    if kind == "extra_forbidden":
        return Unprocessable(f"unknown field '{field}'", field, code="unknown_field")
    if kind == "missing":
        return Unprocessable(f"'{field}' is required", field, code="missing_field")
    message = str(first["msg"]).removeprefix("Value error, ")
    return Unprocessable(message, field)
