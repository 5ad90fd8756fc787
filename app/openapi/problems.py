"""The OpenAPI document tells the truth about errors and unknown fields.

Litestar documents a handler's success answer and a 400 in its own JSON shape. Every operation can
also answer problems (RFC 9457, ``application/problem+json``) from layers the handler never sees:
authentication and role checks, the rate limiter, the idempotency store, the body-size guard, and a
database that is briefly unreachable. ``document_problems`` adds each of those to every operation
it applies to, computed from what the handler declares (access rule, methods, path parameters), so
a generated client and schemathesis know every status code before they meet it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.datastructures import UploadFile
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.response import Redirect, Template
from litestar.typing import FieldDefinition

from app.auth.roles import OWN_AUTH_KEY, PUBLIC_KEY
from app.errors import PROBLEM_MEDIA_TYPE, ProblemDetail
from app.security.ratelimit import RULES
from app.web.pages import PAGE_KEY

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PATH_PARAMETER = re.compile(r"\{[^}]+\}")

DESCRIPTIONS = {
    400: "The request is malformed or a parameter is invalid (the problem names the field).",
    401: "No valid credentials: the token or session is missing, expired or revoked.",
    403: "The caller's role or site may not do this.",
    404: "Nothing by that id on the caller's site.",
    409: "The resource changed meanwhile (stale version), the slot is taken, or this Idempotency-Key is in flight.",
    413: "The body is larger than the hub accepts.",
    415: "The uploaded file is not of a kind this operation takes.",
    422: "The request is well-formed but breaks a rule (or reuses an Idempotency-Key with another body).",
    429: "Too many requests: wait for Retry-After seconds.",
    503: "The database or Redis is briefly unreachable: try again.",
    507: "The server has no room to store this upload.",
}


def answers_pages(handler: HTTPRouteHandler) -> bool:
    """Pages, and the signed links' pages: they answer their refusals as HTML."""
    returns = handler.parsed_fn_signature.return_type
    return bool(handler.opt.get(PAGE_KEY)) or returns.is_subclass_of(Template) or returns.is_subclass_of(Redirect)


def _is_public(handler: HTTPRouteHandler) -> bool:
    return bool(handler.opt.get(PUBLIC_KEY))


def _rate_limited(methods: set[str], path: str) -> bool:
    # A rule's pattern is written for real paths: try it on the template with each parameter filled in.
    concrete = PATH_PARAMETER.sub("x", path)
    return any(rule.methods & methods and rule.path.match(concrete) for rule in RULES)


def _takes_upload(handler: HTTPRouteHandler) -> bool:
    data = handler.parsed_data_field
    media_type = getattr(data.kwarg_definition, "media_type", None) if data is not None else None
    return str(getattr(media_type, "value", media_type) or "").startswith("multipart/")


def problem_statuses(handler: HTTPRouteHandler, path: str) -> set[int]:
    """Every problem status this operation can answer, whatever its handler does itself."""
    methods = {str(method) for method in handler.http_methods}
    # 422: a rule the request breaks (an unknown category, a report of more than a year), query or body.
    statuses = {400, 422, 503}
    if not _is_public(handler) or handler.opt.get(OWN_AUTH_KEY):
        # Role-checked, or checked by the route itself (a Twilio signature, a camera's or device's key).
        statuses |= {401, 403}
    elif methods & WRITE_METHODS:
        # Open to anyone, but a password or a refresh token is checked.
        statuses.add(401)
    if PATH_PARAMETER.search(path):
        statuses.add(404)
    if methods & WRITE_METHODS:
        statuses |= {404, 409, 413}
    if _rate_limited(methods, path):
        statuses.add(429)
    if _takes_upload(handler):
        statuses |= {415, 507}
    return statuses


def _page_responses(handler: HTTPRouteHandler, path: str) -> dict[int, ResponseSpec]:
    """A page answers its refusals as pages, and sends a caller who is not signed in to sign in."""
    statuses = problem_statuses(handler, path) - {401, 413, 415, 507}
    if set(map(str, handler.http_methods)) & WRITE_METHODS:
        statuses.add(403)  # a form whose CSRF token is missing or wrong
    responses = {
        status: ResponseSpec(data_container=str, media_type="text/html", description=DESCRIPTIONS[status])
        for status in statuses
    }
    if handler.opt.get(PAGE_KEY):
        responses[303] = ResponseSpec(data_container=None, description="Not signed in: to the sign-in page.")
    return responses


def document_problems(app: Litestar) -> None:
    """Add the problem answers to every handler in the document (a handler's own responses win)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            responses: dict[int, ResponseSpec] = dict(handler.responses or {})
            if answers_pages(handler):
                for status, spec in _page_responses(handler, route.path).items():
                    responses.setdefault(status, spec)
            else:
                for status in sorted(problem_statuses(handler, route.path)):
                    responses.setdefault(
                        status,
                        ResponseSpec(
                            data_container=ProblemDetail,
                            media_type=PROBLEM_MEDIA_TYPE,
                            description=DESCRIPTIONS[status],
                            generate_examples=False,
                        ),
                    )
            handler.responses = responses


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Structs document what their decoder enforces.

    - Structs that refuse unknown fields say so: ``additionalProperties: false``.
    - Constraints on list items and on dict keys and values (weekdays 0..6, codes matching a pattern,
      a visitor kind as a key), which Litestar leaves out, are put back from msgspec's own types, and so
      are bounds of zero on a field (``ge=0``), which Litestar drops as falsy.
    - An upload part is a file or absent, never ``null``: a multipart form cannot send null.
    """

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                schema.additional_properties = False
            for field in info.fields:
                prop = (schema.properties or {}).get(field.encode_name)
                if isinstance(prop, Schema):
                    schema.properties[field.encode_name] = constrain(prop, field.type)  # type: ignore[index]
        return schema


def _bounds(info: msgspec.inspect.Type) -> dict[str, Any]:
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return {
            key: value
            for key, value in {
                "minimum": info.ge,
                "maximum": info.le,
                "exclusive_minimum": info.gt,
                "exclusive_maximum": info.lt,
                "multiple_of": info.multiple_of,
            }.items()
            if value is not None
        }
    if isinstance(info, msgspec.inspect.StrType):
        return {
            key: value
            for key, value in {
                "min_length": info.min_length,
                "max_length": info.max_length,
                "pattern": info.pattern,
            }.items()
            if value is not None
        }
    return {}


def scalar_schema(info: msgspec.inspect.Type) -> Schema | None:
    """The schema of a constrained scalar or a fixed set of values; None when there is nothing to add."""
    if isinstance(info, msgspec.inspect.Metadata):  # a Meta with a description wraps the constrained type
        return scalar_schema(info.type)
    if isinstance(info, msgspec.inspect.IntType):
        return Schema(type=OpenAPIType.INTEGER, **_bounds(info)) if _bounds(info) else None
    if isinstance(info, msgspec.inspect.FloatType):
        return Schema(type=OpenAPIType.NUMBER, **_bounds(info)) if _bounds(info) else None
    if isinstance(info, msgspec.inspect.StrType):
        return Schema(type=OpenAPIType.STRING, **_bounds(info)) if _bounds(info) else None
    if isinstance(info, msgspec.inspect.EnumType):
        values = [member.value for member in info.cls]
        if all(isinstance(value, str) for value in values):
            return Schema(type=OpenAPIType.STRING, enum=values)
    if isinstance(info, msgspec.inspect.LiteralType) and all(isinstance(v, str) for v in info.values):
        return Schema(type=OpenAPIType.STRING, enum=list(info.values))
    return None


def _is_upload(info: msgspec.inspect.Type) -> bool:
    return isinstance(info, msgspec.inspect.CustomType) and issubclass(info.cls, UploadFile)


def constrain(prop: Schema, info: msgspec.inspect.Type) -> Schema:
    """Add what msgspec enforces on a field's items, keys and values to Litestar's schema of it."""
    if isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    if isinstance(info, msgspec.inspect.UnionType):
        members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(members) != 1:
            return prop
        if _is_upload(members[0]):
            upload = next((s for s in prop.one_of or () if isinstance(s, Schema) and s.format), None)
            return upload or prop
        prop.one_of = [
            constrain(s, members[0]) if isinstance(s, Schema) and s.type != OpenAPIType.NULL else s
            for s in prop.one_of or ()
        ] or None
        return prop
    bounds = _bounds(info)
    if bounds and prop.type is not None:
        # Litestar drops a bound that is falsy (ge=0, gt=0.0): msgspec's own is the truth.
        for bound, limit in bounds.items():
            setattr(prop, bound, limit)
        return prop
    if isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.FrozenSetType):
        item = scalar_schema(info.item_type)
        if item is not None and (prop.items is None or isinstance(prop.items, Schema)):
            prop.items = item
    elif isinstance(info, msgspec.inspect.DictType):
        key_schema = scalar_schema(info.key_type)
        if key_schema is not None:
            prop.property_names = key_schema
        value_schema = scalar_schema(info.value_type)
        if value_schema is not None and (
            prop.additional_properties is None or isinstance(prop.additional_properties, Schema)
        ):
            prop.additional_properties = value_schema
    return prop


def allow_header_hook(app: Litestar) -> Any:
    """A ``before_send`` hook that makes an OPTIONS answer's ``Allow`` list every method of the path.

    Litestar builds a path's OPTIONS handler when the first handler for the path registers; when a
    second controller adds methods to the same path, the answer still lists only the first one's.
    """
    methods: dict[str, str] = {}
    for route in app.routes:
        allowed = ", ".join(sorted(getattr(route, "methods", ())))
        methods[route.path] = methods[getattr(route, "path_format", route.path)] = allowed

    async def fix_allow(message: Any, scope: Any) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allowed = methods.get(scope.get("path_template", ""))
        if allowed:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
            message["headers"] = [*headers, (b"allow", allowed.encode())]

    return fix_allow
