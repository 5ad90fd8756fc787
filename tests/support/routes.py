"""Walks the app's OpenAPI schema and its route handlers, for the suite-wide route tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute

from app.auth.roles import OWN_AUTH_KEY, Role, allowed_roles, is_framework_handler
from app.web.pages import PAGE_KEY

PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /api/units/{unit_id}
    allowed: frozenset[Role] | None  # None: public
    operation: dict[str, Any]
    own_auth: str | None = None  # public to the role guard; the route checks this credential itself
    page: bool = False  # a page: refusals are HTML pages and sign-in redirects, not problem details

    @property
    def path_params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def json_body_schema(self) -> dict[str, Any] | None:
        content = self.operation.get("requestBody", {}).get("content", {})
        body = content.get("application/json")
        return body.get("schema") if body else None

    @property
    def is_multipart(self) -> bool:
        return "multipart/form-data" in self.operation.get("requestBody", {}).get("content", {})

    def url(self, values: dict[str, str]) -> str:
        return PARAM.sub(lambda m: values[m.group(1)], self.path)


def _declared_access(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    declared: dict[tuple[str, str], dict[str, Any]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        openapi_path = PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for handler in route.route_handlers:
            if is_framework_handler(handler):
                continue
            for method in handler.http_methods:
                declared[(method.upper(), openapi_path)] = {
                    "allowed": allowed_roles(handler.opt),
                    "own_auth": handler.opt.get(OWN_AUTH_KEY),
                    "page": bool(handler.opt.get(PAGE_KEY)),
                }
    return declared


def operations(app: Litestar) -> list[Operation]:
    schema = app.openapi_schema.to_schema()
    declared = _declared_access(app)
    result = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            key = (method.upper(), path)
            if key not in declared:
                raise AssertionError(f"{key} is in the OpenAPI schema but no handler declares its access")
            result.append(Operation(method.upper(), path, operation=operation, **declared[key]))
    return sorted(result, key=lambda o: (o.path, o.method))
