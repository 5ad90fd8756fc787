"""Request bodies checked before the framework decodes them: one place for every JSON and multipart body.

Two inputs made the decoders raise instead of refusing: JSON nested about 1,000 deep (msgspec's
recursion limit) and a multipart field without a filename whose bytes are not in its charset (the
multipart parser decodes text fields itself). Both were 500s reachable from outside, login included.
This middleware reads the body once, refuses those with a 400 problem naming the field, and hands the
same bytes on, so no endpoint can forget the check.

`refuse_lax_json_body` holds JSON bodies to their declared types strictly. Litestar converts the decoded
body with msgspec's lax rules (its parameters come from query strings), which take `0` for `false` and
`"5"` for `5`; a client sending those has a bug the API should name, not guess around. A missing member
is named as the field at fault, not as the body. It is the app's `before_request` hook, so it runs after
the route's guards: a caller without the role hears 403 whatever the body.
"""

from __future__ import annotations

import codecs
import datetime as dt
import re
from itertools import accumulate
from typing import Any, Final, get_args

import msgspec
from litestar import Litestar, Request
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from app.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, FieldError, ProblemDetail
from app.text import decoder_message

# No request body of the hub nests deeper than a handful of levels; 32 leaves room and stays far below
# the decoder's own limit.
MAX_JSON_DEPTH: Final = 32
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)
# No integer of the hub's bodies comes near this; beyond it a browser cannot even hold the number exactly,
# and the databases refuse what does not fit 64 bits.
MAX_JSON_INTEGER: Final = 2**53
# An integer token: not the fraction or exponent of a number (`3.9643873429107496e+16` holds none).
_LONG_INTEGER: Final = re.compile(rb"(?<![\d.eE+-])-?\d{16,}(?![\d.eE])")
# '[' and '{' open a level, ']' and '}' close one.
_STEP: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """How deeply the body's arrays and objects nest (brackets inside strings do not count)."""
    return _depth(_STRING.sub(b"", body))


def _depth(outside_strings: bytes) -> int:
    brackets = outside_strings.translate(None, delete=_NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def json_body_error(body: bytes) -> FieldError | None:
    """Why the JSON body must not reach the decoder: nesting too deep or an integer out of range."""
    outside_strings = _STRING.sub(b"", body)
    if _depth(outside_strings) > MAX_JSON_DEPTH:
        return FieldError(field="body", message=f"nests deeper than {MAX_JSON_DEPTH} levels", source="body")
    for match in _LONG_INTEGER.finditer(outside_strings):
        if abs(int(match.group())) > MAX_JSON_INTEGER:
            return FieldError(field="body", message=f"holds an integer beyond ±{MAX_JSON_INTEGER}", source="body")
    return None


_NO_STRICT_TYPE: Final = object()
# Per route handler (they live as long as their app; Litestar's generated OPTIONS handlers take no weak
# references).
_strict_types: dict[Any, Any] = {}


def _declared_body_type(route_handler: Any) -> Any:
    """The type a route handler takes its JSON body as, or _NO_STRICT_TYPE when msgspec cannot hold it
    strictly (no body, or a type only Litestar's own decoders know)."""
    if route_handler is None:
        return _NO_STRICT_TYPE
    if route_handler not in _strict_types:
        declared: Any = _NO_STRICT_TYPE
        field = route_handler.parsed_data_field if isinstance(route_handler, BaseRouteHandler) else None
        if field is not None and field.annotation is not Any:
            try:
                msgspec.json.Decoder(field.annotation, strict=True)
                declared = field.annotation
            except TypeError:
                pass
        _strict_types[route_handler] = declared
    return _strict_types[route_handler]


_MISSING: Final = re.compile(r"Object missing required field `([^`]+)`")


def _field_at(path: str, message: str) -> str:
    """msgspec's `$.items[0].name` as the problem's field, `items[0].name` (the API's way everywhere); a
    missing member is named itself; the root is the body."""
    field = path.removeprefix("$").lstrip(".")
    if missing := _MISSING.match(message):
        field = f"{field}.{missing.group(1)}" if field else missing.group(1)
    return field or "body"


KEY_IN: Final = "key` in `"


def strict_body_error(body: bytes, declared: Any) -> FieldError | None:
    """Why a JSON body is not of its declared types, naming the field; None when it is, or when it is
    not JSON at all (the framework answers that with its own 400)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    try:
        msgspec.convert(_integral_numbers_as_ints(decoded), declared, strict=True)
    except msgspec.ValidationError as error:
        message, _, where = str(error).partition(" - at `")
        if where.startswith(KEY_IN):  # a dict's key: "... - at `key` in `$.config.overstay_minutes`"
            where, message = where.removeprefix(KEY_IN), f"{message} (a key)"
        return FieldError(field=_field_at(where.rstrip("`"), message), message=decoder_message(message), source="body")
    return None


def _integral_numbers_as_ints(value: Any) -> Any:
    """`173.0` as `173`: JSON Schema (so the OpenAPI document) calls a number without a fraction an
    integer, and a client's JSON library may write it so. A float is still refused where an int is due."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_JSON_INTEGER:
        return int(value)
    if isinstance(value, list):
        return [_integral_numbers_as_ints(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral_numbers_as_ints(item) for key, item in value.items()}
    return value


_TIMES: Final = (dt.datetime, dt.date, dt.time)
_time_queries: dict[Any, dict[str, Any]] = {}


def _declared_time_queries(route_handler: Any) -> dict[str, Any]:
    """The route's query parameters declared as a date, a time or a moment, by name."""
    if route_handler not in _time_queries:
        found: dict[str, Any] = {}
        if isinstance(route_handler, BaseRouteHandler):
            for name, field in route_handler.parsed_fn_signature.parameters.items():
                kinds = [t for t in (field.annotation, *get_args(field.annotation)) if t in _TIMES]
                kwarg = field.kwarg_definition
                if kinds and name != "data" and getattr(kwarg, "header", None) is None:
                    found[getattr(kwarg, "query", None) or name] = kinds[0]
        _time_queries[route_handler] = found
    return _time_queries[route_handler]


def lax_time_query_error(request: Request[Any, Any, Any]) -> FieldError | None:
    """A date or time in the query string must be written as one (ISO 8601): Litestar's lax conversion
    would read `0.5` as half a second after 1970."""
    for name, kind in _declared_time_queries(request.route_handler).items():
        for value in request.query_params.getall(name, []):
            try:
                msgspec.convert(value, kind, strict=True)
            except msgspec.ValidationError as error:
                return FieldError(field=name, message=str(error).partition(" - at `")[0], source="query")
    return None


async def refuse_lax_json_body(request: Request[Any, Any, Any]) -> None:
    """The app's before_request hook: a JSON body not strictly of its route's declared types, or a date
    in the query string that is not written as one, is a 400 problem naming the field (the route's
    guards have let the caller through already)."""
    if (query_error := lax_time_query_error(request)) is not None:
        raise ValidationException(
            detail=f"{query_error.field}: {query_error.message}",
            extra=[{"key": query_error.field, "message": query_error.message, "source": "query"}],
        )
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return
    declared = _declared_body_type(request.route_handler)
    if declared is _NO_STRICT_TYPE:
        return
    body = await request.body()
    error = strict_body_error(body, declared) if body else None
    if error is not None:
        raise ValidationException(
            detail=f"{error.field}: {error.message}",
            extra=[{"key": error.field, "message": error.message, "source": "body"}],
        )


def assert_every_route_holds_bodies_strictly(app: Litestar) -> None:
    """Litestar runs only the innermost layer's before_request: a controller or route with a hook of its
    own would silently skip the strict pass."""
    skipping = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if isinstance(handler, HTTPRouteHandler) and handler.resolve_before_request() is not refuse_lax_json_body
    ]
    if skipping:
        raise RuntimeError("routes whose before_request replaces refuse_lax_json_body: " + ", ".join(skipping))


def undecodable_text_field(body: bytes, boundary: bytes) -> FieldError | None:
    """The first multipart field without a filename whose bytes are not text in its charset."""
    first: FieldError | None = None
    try:
        # The whole form is parsed (leaving the parser early counts as a truncated form).
        with PushMultipartParser(boundary) as parser:
            segment: MultipartSegment | None = None
            data = bytearray()
            for part in (part for chunk in (body, b"") for part in parser.parse(chunk)):
                if isinstance(part, MultipartSegment):
                    segment, data = part, bytearray()
                elif part:
                    if segment is not None and not segment.filename:
                        data.extend(part)
                elif segment is not None:
                    if not segment.filename and first is None:
                        first = _decode_error(segment, bytes(data))
                    segment = None
    except (ParserError, ParserLimitReached):
        return None  # the framework's parser refuses a malformed form with its own 400
    return first


def _decode_error(segment: MultipartSegment, data: bytes) -> FieldError | None:
    charset = segment.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        return FieldError(field=segment.name, message=f"has an unknown charset {charset!r}", source="body")
    try:
        data.decode(charset)
    except UnicodeDecodeError:
        return FieldError(field=segment.name, message=f"is not valid {charset} text", source="body")
    return None


def _boundary(content_type: str) -> bytes | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).encode("latin-1") if match else None


def _problem_messages(status: int, error: FieldError) -> list[dict[str, Any]]:
    title = "Bad Request" if status == 400 else "Content Too Large"
    body = msgspec.json.encode(
        ProblemDetail(
            type=PROBLEM_TYPE_BASE + ("invalid-input" if status == 400 else "http-413"),
            title=title,
            status=status,
            detail=f"{error.field}: {error.message}",
            errors=[error],
        )
    )
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


class InputGuardMiddleware:
    """Reads JSON and multipart bodies (up to the body limit), refuses the undecodable, passes the rest on."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1").strip().lower()
        media_type = content_type.split(";", 1)[0].strip()
        is_json = media_type == "application/json" or media_type.endswith("+json")
        boundary = _boundary(content_type) if media_type == "multipart/form-data" else None
        if not is_json and boundary is None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                for answer in _problem_messages(
                    413, FieldError(field="body", message=f"is larger than {self.max_body_bytes} bytes", source="body")
                ):
                    await send(answer)  # type: ignore[arg-type]
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        error: FieldError | None = None
        if is_json:
            error = json_body_error(body)
        elif boundary is not None:
            error = undecodable_text_field(body, boundary)
        if error is not None:
            for answer in _problem_messages(400, error):
                await send(answer)  # type: ignore[arg-type]
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
