"""The outermost ASGI layer: every HTTP request and websocket gets a request id, and requests are timed.

It wraps the whole application (``observe``), outside Litestar's routing and exception handling, so a
404, a 401 from authentication and a 500 are seen like any answer. The id is the caller's
``X-Request-ID`` when it is sane (``logs.sane_request_id``), else a new one; it is set as the context's
``request_id`` (every log line of the request, the jobs it enqueues, the websocket session it opens)
and returned in the ``X-Request-ID`` response header (on a websocket, in the accept).

Each HTTP request ends with one ``opshub.access`` line (method, route template, status, duration) and an
observation in the latency histogram. Both name the route's path template (``/api/visitors/{pass_id}``),
never the raw path: that keeps the metric's label set bounded and tokens in paths out of the logs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

from app.observability.logs import REQUEST_ID_HEADER, new_request_id, request_id_var, sane_request_id
from app.observability.metrics import HTTP_REQUEST_SECONDS

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("opshub.access")
UNMATCHED_ROUTE: Final = "<unmatched>"
_HEADER_NAME: Final = REQUEST_ID_HEADER.encode()


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == _HEADER_NAME:
            return sane_request_id(value.decode("latin-1"))
    return None


def route_label(scope: Scope) -> str:
    """The matched route's path template; ``<unmatched>`` when no route matched (a 404)."""
    template = scope.get("path_template")
    return str(template) if template else UNMATCHED_ROUTE


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or new_request_id()
        token = request_id_var.set(request_id)
        header = (_HEADER_NAME, request_id.encode())
        try:
            if kind == "websocket":
                await self._websocket(scope, receive, send, header)
            else:
                await self._http(scope, receive, send, header)
        finally:
            request_id_var.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes]) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes]) -> None:
        started = time.perf_counter()
        status = 500  # what the server answers if the application fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method, route = scope.get("method", "GET"), route_label(scope)
            HTTP_REQUEST_SECONDS.labels(method=method, route=route, status=str(status)).observe(seconds)
            if access_logger.isEnabledFor(logging.INFO):
                access_logger.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)},
                )


def observe(app: Litestar) -> Litestar:
    """Put the observer around the whole application (outside routing and its exception handling)."""
    handler: Any = app.asgi_handler
    app.asgi_handler = RequestObserver(handler)
    return app
