"""Errors as RFC 9457 problem details, naming the field at fault.

Domain code raises ``AppError`` subclasses; Litestar's own HTTP errors (bad JSON,
validation, body too large, 404/405) and anything unexpected are rendered in the same
shape, so a client never sees an HTML page or a bare 500 string.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from app.text import decoder_message

logger = logging.getLogger("opshub.errors")
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://opshub.dev/problems/"


# Where the field at fault was sent: Litestar's own names (ParamType) and "body".
FieldSource = Literal["body", "query", "path", "header", "cookie"]
# The request body as a whole, when it is missing or not the object the route takes.
BODY_FIELD = "body"
BODY_MISSING = "the request body is missing"
# Litestar's words for a multipart text part (no filename) where the route takes an upload.
NOT_A_FILE_MESSAGE = "Unsupported type: <class 'str'>"
NOT_A_FILE = "must be a file (a form part with a filename)"


class FieldError(msgspec.Struct, frozen=True, omit_defaults=True):
    field: str
    message: str
    source: str | None = None


class ProblemDetail(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    # Extension members for specific problems (e.g. allowed transitions, next free times).
    extra: dict[str, Any] | None = None


class AppError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra
        self.headers = headers or {}


class InvalidInput(AppError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"

    @classmethod
    def for_field(cls, field: str, message: str, *, source: FieldSource = "body") -> InvalidInput:
        return cls(f"{field}: {message}", errors=[FieldError(field=field, message=message, source=source)])

    @classmethod
    def for_query(cls, parameter: str, message: str) -> InvalidInput:
        """A query parameter at fault: the problem says ``source: "query"`` as Litestar's own checks do."""
        return cls.for_field(parameter, message, source="query")


class Unauthenticated(AppError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(AppError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(AppError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class TooManyRequests(AppError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"


# Page routes answer errors with HTML (app.web.pages sets this); API routes keep problem details.
PageErrorRenderer = Callable[[Request[Any, Any, Any], Exception], "Response[Any] | None"]
_page_error_renderer: list[PageErrorRenderer] = []


def set_page_error_renderer(renderer: PageErrorRenderer) -> None:
    _page_error_renderer[:] = [renderer]


def _page_answer(request: Request[Any, Any, Any], exc: Exception) -> Response[Any] | None:
    return _page_error_renderer[0](request, exc) if _page_error_renderer else None


def problem_response(problem: ProblemDetail, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def handle_app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    if (page := _page_answer(request, exc)) is not None:
        return page
    return problem_response(
        ProblemDetail(
            type=PROBLEM_TYPE_BASE + exc.slug,
            title=exc.title,
            status=exc.status,
            detail=exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            extra=exc.extra,
        ),
        headers=exc.headers,
    )


def _field_error(item: dict[str, Any]) -> FieldError:
    """One of Litestar's validation messages, in our words. Litestar names the body ``data`` (the handler's
    argument) and reports a missing body as the KeyError of that argument (``'data'``)."""
    key, source = str(item.get("key") or BODY_FIELD), item.get("source")
    message = decoder_message(str(item["message"]))
    if message == NOT_A_FILE_MESSAGE:
        message = NOT_A_FILE  # a form part without a filename where a file is due
    if key == "data" and source in (None, "body"):
        key, source = BODY_FIELD, "body"
        if message == "'data'":
            message = BODY_MISSING
    # Litestar's ParamType is a str Enum: its value ("query"), not its name.
    source = getattr(source, "value", source)
    return FieldError(field=key, message=message, source=None if source is None else str(source))


def _field_errors(extra: Any) -> list[FieldError] | None:
    if not isinstance(extra, list):
        return None
    errors = [_field_error(item) for item in extra if isinstance(item, dict) and "message" in item]
    return errors or None


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if (page := _page_answer(request, exc)) is not None:
        return page
    status = exc.status_code
    slug = "invalid-input" if isinstance(exc, ValidationException) else f"http-{status}"
    detail = exc.detail
    errors = _field_errors(exc.extra)
    if errors and detail.startswith("Validation failed"):
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem_response(
        ProblemDetail(
            type=PROBLEM_TYPE_BASE + slug,
            title=_title_for(status),
            status=status,
            detail=detail,
            instance=request.url.path,
            errors=errors,
        ),
        headers=exc.headers,
    )


def is_transient_database_conflict(exc: BaseException) -> bool:
    """PostgreSQL rolled the transaction back to break a deadlock or a serialization conflict.

    Nothing of the request was written, and the same request is likely to succeed when sent again.
    """
    try:
        from asyncpg.exceptions import TransactionRollbackError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(exc, TransactionRollbackError)


def is_lost_connection(exc: BaseException) -> bool:
    """A server the request needs went away (PostgreSQL or Redis restarted, a connection cut, a port refusing).

    The transaction did not commit, or its commit's answer was lost; the pool replaces broken
    connections by itself, so the same request (with the same Idempotency-Key) is worth sending again.
    """
    try:
        from asyncpg.exceptions import CannotConnectNowError, InterfaceError, PostgresConnectionError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - both are dependencies
        return False
    lost = (
        PostgresConnectionError,
        CannotConnectNowError,
        InterfaceError,
        RedisConnectionError,
        RedisTimeoutError,
        ConnectionError,
        TimeoutError,
    )
    return isinstance(exc, lost) or (isinstance(exc, OSError) and exc.errno in _CONNECT_ERRNOS)


_CONNECT_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH}
)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_lost_connection(exc):
        logger.warning("lost a connection on %s %s: %r", request.method, request.url.path, exc)
        return problem_response(
            ProblemDetail(
                type=PROBLEM_TYPE_BASE + "try-again",
                title="Service Unavailable",
                status=503,
                detail="A server this request needs could not be reached; the change was not confirmed. Send it again.",
                instance=request.url.path,
            ),
            headers={"Retry-After": "2"},
        )
    if is_transient_database_conflict(exc):
        logger.warning("transient database conflict on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            ProblemDetail(
                type=PROBLEM_TYPE_BASE + "try-again",
                title="Service Unavailable",
                status=503,
                detail="A concurrent change got in the way; nothing was saved. Send the request again.",
                instance=request.url.path,
            ),
            headers={"Retry-After": "1"},
        )
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if (page := _page_answer(request, exc)) is not None:
        return page
    return problem_response(
        ProblemDetail(
            type=PROBLEM_TYPE_BASE + "internal-error",
            title="Internal server error",
            status=HTTP_500_INTERNAL_SERVER_ERROR,
            detail="An unexpected error occurred; it has been logged.",
            instance=request.url.path,
        )
    )


def _title_for(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AppError: handle_app_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
