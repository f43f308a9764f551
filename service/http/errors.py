"""Every error the HTTP API answers with, mapped in one place.

Responses are JSON ``{"error": {"code", "message"}}`` with a stable code. ``ApiError`` is a
client error a handler raises on purpose; a ``GroundworkError`` from below maps by its family
(bad input 4xx, missing model, broken index or unreachable database 503), with ``Retry-After``
when it is transient; a database driver's outage error (``index.db.storage_error``) maps as
the database family; anything else is a bug, logged with its traceback and answered 500 with
the request id.
"""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from index.db import DatabaseDriverError, storage_error
from index.errors import GroundworkError, IndexProblem, InputRejected, ModelUnavailable, StorageUnavailable
from index.models import MAX_ID
from service.http.api_models import ApiError, ErrorResponse, error_body
from service.http.logging_setup import current_request
from service.jobs import PathNotAllowed

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "request_too_large", 415: "unsupported_media_type",
    422: "unprocessable", 429: "rate_limited", 500: "internal_error", 503: "unavailable",
}

# Most specific first. 5xx messages stay generic (the detail, which may name files or hosts, is logged).
_FAMILIES: tuple[tuple[type[GroundworkError], int, str | None], ...] = (
    (PathNotAllowed, 403, None),
    (InputRejected, 400, None),
    (StorageUnavailable, 503, "the database is unavailable; retry later"),
    (ModelUnavailable, 503, "a model this request needs is not available"),
    (IndexProblem, 503, "the search indexes are unavailable; an admin can rebuild them (groundwork reindex)"),
)

# For the OpenAPI schema of every route.
ERROR_RESPONSES = {
    status: ResponseSpec(ErrorResponse, description=description)
    for status, description in (
        (400, "Invalid request (code says which check failed)"), (401, "Missing, invalid or revoked API key"),
        (403, "The key's role does not allow this"), (404, "No such object, or not visible to this key"),
        (413, "Body larger than max_request_bytes / max_upload_bytes"), (429, "Rate limit exceeded; see Retry-After"),
    )
}


def error_response(status: int, code: str, message: str, headers: dict | None = None, details: dict | None = None) -> Response:
    return Response(content=error_body(code, message, details), status_code=status, headers=headers, media_type="application/json")


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def check_id(value: int, what: str) -> int:
    """Ids outside the database's range are missing, not a server error."""
    if value < 1 or value > MAX_ID:  # past it an id names no row: 404, never a driver error
        raise not_found(what)
    return value


def handle_http_error(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, headers, exc.details)
    status = exc.status_code
    if isinstance(exc, ValidationException):
        problems = exc.extra if isinstance(exc.extra, list) else []
        first = problems[0] if problems else {}
        where = first.get("key") if isinstance(first, dict) else None
        what = first.get("message") if isinstance(first, dict) else None
        message = f"invalid request: {what}" + (f" (at {where})" if where else "") if what else f"invalid request: {exc.detail}"
        return error_response(400, "invalid_request", message, headers)
    if status >= 500:
        log.error("server error %s: %s", status, exc.detail)
        return error_response(status, _STATUS_CODES.get(status, "internal_error"), "internal error", headers)
    return error_response(status, _STATUS_CODES.get(status, "client_error"), str(exc.detail), headers)


def handle_groundwork_error(request: Request, exc: GroundworkError) -> Response:
    for family, status, public_message in _FAMILIES:
        if isinstance(exc, family):
            break
    else:
        return handle_unexpected(request, exc)
    headers = None
    if exc.transient:
        headers = {"Retry-After": str(request.app.state.services.settings.unavailable_retry_after_s)}
    if status >= 500:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(status, exc.code, public_message or str(exc), headers)


def handle_database_error(request: Request, exc: DatabaseDriverError) -> Response:
    """A database that is down, restarting or unreachable is the storage family's 503, not a bug."""
    translated = storage_error(exc)
    if translated is None:
        return handle_unexpected(request, exc)
    return handle_groundwork_error(request, translated)


def handle_recursion_error(request: Request, exc: RecursionError) -> Response:
    """The backstop behind the nesting check of request bodies (``json_depth``): input nested
    deeper than any decoder copes with is the client's error, never a 500."""
    log.warning("recursion limit reached on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(400, "too_deeply_nested", "the request is nested too deeply")


def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    ctx = current_request.get()
    reference = f" (request id {ctx.request_id})" if ctx else ""
    return error_response(500, "internal_error", f"internal error{reference}")


EXCEPTION_HANDLERS = {HTTPException: handle_http_error, GroundworkError: handle_groundwork_error, DatabaseDriverError: handle_database_error,
                      RecursionError: handle_recursion_error, Exception: handle_unexpected}
