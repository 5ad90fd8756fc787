"""Request bodies checked before the framework decodes them: one place for every JSON and multipart body.

Two inputs made the decoders raise instead of refusing: JSON nested about 1,000 deep (msgspec's
recursion limit) and a multipart field without a filename whose bytes are not in its charset (the
multipart parser decodes text fields itself). Both were 500s reachable from outside, login included.
This middleware reads the body once, refuses those with a 400 problem naming the field, and hands the
same bytes on, so no endpoint can forget the check.

It also holds JSON bodies to their declared types strictly. Litestar converts the decoded body with
msgspec's lax rules (its parameters come from query strings), which take `0` for `false` and `"5"` for
`5`; a client sending those has a bug the API should name, not guess around.
"""

from __future__ import annotations

import codecs
import re
import weakref
from itertools import accumulate
from typing import Any, Final

import msgspec
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from app.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, FieldError, ProblemDetail

# No request body of the hub nests deeper than a handful of levels; 32 leaves room and stays far below
# the decoder's own limit.
MAX_JSON_DEPTH: Final = 32
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = b"[]{}"
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in _BRACKETS)
# No integer of the hub's bodies comes near this; beyond it a browser cannot even hold the number exactly,
# and the databases refuse what does not fit 64 bits.
MAX_JSON_INTEGER: Final = 2**53
_LONG_INTEGER: Final = re.compile(rb"-?\d{16,}")
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
_strict_types: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


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


def _field_at(path: str) -> str:
    """msgspec's `$.items[0].name` as the problem's field, `items.0.name`; the root is the body."""
    field = re.sub(r"\[(\d+)\]", r".\1", path.removeprefix("$")).lstrip(".")
    return field or "body"


def strict_body_error(body: bytes, declared: Any) -> FieldError | None:
    """Why a body that Litestar's lax conversion would take is not of its declared types, if it is not.

    A body that neither accepts is left to Litestar, whose messages for it are the API's already.
    """
    try:
        msgspec.json.decode(body, type=declared, strict=True)
    except msgspec.ValidationError as strict_error:
        try:
            msgspec.json.decode(body, type=declared, strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        message, _, where = str(strict_error).partition(" - at `")
        return FieldError(field=_field_at(where.rstrip("`")), message=message, source="body")
    except msgspec.DecodeError:
        return None
    return None


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
            declared = _declared_body_type(scope.get("route_handler"))
            if error is None and body and declared is not _NO_STRICT_TYPE:
                error = strict_body_error(body, declared)
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
