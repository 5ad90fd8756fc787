"""The websocket endpoint ``/ws``: authentication, the client protocol, and the hub's lifespan.

The route is declared PUBLIC because it authenticates itself: the access token comes as
``?token=`` or as the subprotocol pair ``bearer, <token>``, or, from the hub's own pages, the session
cookie (accepted only with an ``Origin`` of this host, so another site's page cannot ride on it).
A refused token still gets a proper websocket close code (4001/4003/4004) instead of a bare HTTP 403,
so a client knows whether to log in again or just refresh.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import msgspec
from litestar import Litestar, websocket
from litestar.connection import WebSocket

from app.auth.principal import Principal
from app.auth.roles import PUBLIC, STAFF, Role
from app.auth.tokens import AuthError, authenticate_access_token
from app.observability.logs import ws_session_var
from app.web.sessions import SESSION_COOKIE, load_session
from realtime.config import load_realtime_settings
from realtime.connection import Connection
from realtime.hub import Hub
from realtime.topics import Topic, TopicError, authorize, parse_topic, personal_topics
from schema.events import (
    ClientMessage,
    CloseCode,
    Console,
    ErrorReply,
    Ping,
    Pong,
    PresenceSnapshot,
    Refresh,
    Subscribe,
    TokenRefreshed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    client_message_decoder,
)

logger = logging.getLogger("opshub.realtime")

BEARER_SUBPROTOCOL: Final = "bearer"
GATE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
CONSOLE_ROLES: Final = STAFF | {Role.GUARD}
AUTH_CLOSE: Final[dict[str, tuple[int, str]]] = {
    "missing": (CloseCode.UNAUTHORIZED, "token missing"),
    "invalid": (CloseCode.UNAUTHORIZED, "token invalid"),
    "revoked": (CloseCode.TOKEN_REVOKED, "token revoked"),
    "expired": (CloseCode.TOKEN_EXPIRED, "token expired"),
}


def query_parameters(socket: WebSocket[Any, Any, Any]) -> dict[str, str]:
    """The query string's parameters (the first value of each), parsed for this call only:
    ``socket.query_params`` would keep them, token and all, for the connection's whole life."""
    raw: bytes = socket.scope.get("query_string") or b""
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        parameters.setdefault(name, value)
    return parameters


def requested_token(socket: WebSocket[Any, Any, Any], query: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The access token, and the subprotocol to accept ("bearer" when the token came as one)."""
    offered: list[str] = list(socket.scope.get("subprotocols") or [])
    if BEARER_SUBPROTOCOL in offered:
        index = offered.index(BEARER_SUBPROTOCOL)
        return (offered[index + 1] if index + 1 < len(offered) else None), BEARER_SUBPROTOCOL
    return query.get("token"), None


async def _refuse(socket: WebSocket[Any, Any, Any], subprotocol: str | None, code: int, reason: str) -> None:
    # Accept first: a close before accept would be an HTTP 403 without our code.
    await socket.accept(subprotocols=subprotocol)
    await socket.close(code, reason)


def same_origin(socket: WebSocket[Any, Any, Any]) -> bool:
    """A cookie rides along with any page's websocket: only the hub's own pages may use it."""
    origin = socket.headers.get("origin")
    host = socket.headers.get("host")
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


async def authenticate_browser_session(socket: WebSocket[Any, Any, Any]) -> Principal:
    """The principal of the page's session cookie (``app.web.sessions``), for pages of this origin only."""
    state = socket.app.state
    if not same_origin(socket):
        raise AuthError("invalid")
    found = await load_session(state.settings, state.redis, socket.cookies.get(SESSION_COOKIE))
    if found is None:
        raise AuthError("revoked")
    digest, session = found
    return session.principal(digest, state.settings, int(time.time()))


@websocket("/ws", opt=PUBLIC, name="realtime-gateway")
async def realtime_gateway(socket: WebSocket[Any, Any, Any]) -> None:
    """Realtime events; the protocol is described in docs/realtime.md."""
    state = socket.app.state
    hub: Hub = state.realtime
    query = query_parameters(socket)
    token, subprotocol = requested_token(socket, query)
    try:
        if token is None and SESSION_COOKIE in socket.cookies:
            principal = await authenticate_browser_session(socket)
        else:
            principal = await authenticate_access_token(state.settings, state.redis, token)
    except AuthError as exc:
        await _refuse(socket, subprotocol, *AUTH_CLOSE[exc.reason])
        return
    except Exception:
        logger.warning("websocket authentication failed", exc_info=True)
        await _refuse(socket, subprotocol, CloseCode.TRY_AGAIN_LATER, "try again later")
        return
    del token  # this frame lives as long as the connection; the token need not
    gate = query.get("gate")
    auto = query.get("auto", "1")
    del query
    if (gate is not None and not GATE_NAME.match(gate)) or auto not in ("0", "1"):
        await _refuse(socket, subprotocol, CloseCode.BAD_REQUEST, "invalid gate or auto parameter")
        return
    if gate is not None and not principal.has_any(CONSOLE_ROLES):
        await _refuse(socket, subprotocol, CloseCode.FORBIDDEN, "only guards and staff run gate consoles")
        return
    if not hub.available:
        await _refuse(socket, subprotocol, CloseCode.TRY_AGAIN_LATER, "try again later")
        return
    await socket.accept(subprotocols=subprotocol)
    await Session(socket, hub, principal, gate=gate, auto=auto == "1").run()


class Session:
    """The client protocol on one accepted connection; runs in the websocket handler task (the reader)."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], hub: Hub, principal: Principal, *, gate: str | None, auto: bool
    ) -> None:
        connection_id = secrets.token_urlsafe(9)
        console = None
        if gate is not None:
            console = Console(gate=gate, person_id=principal.person_id, connection_id=connection_id, since=time.time())
        self.socket = socket
        self.hub = hub
        self.auto = auto
        self.connection = Connection(
            socket,
            principal,
            connection_id=connection_id,
            settings=hub.realtime,
            console=console,
            on_forget=hub.forget,
        )

    async def run(self) -> None:
        connection, hub = self.connection, self.hub
        # Every line logged in this task from here on names the session (and the upgrade's request id).
        # The task is the connection's own and ends with it, so the variable needs no reset.
        ws_session_var.set(connection.id)
        if logger.isEnabledFor(logging.DEBUG):
            gate = connection.console.gate if connection.console is not None else None
            logger.debug(
                "realtime session opened", extra={"person_id": str(connection.principal.person_id), "gate": gate}
            )
        try:
            # The welcome is every client's first message, so it is queued before the hub knows the
            # connection: once attached, a heartbeat ping could otherwise get there first.
            personal = await self._welcome()
            hub.attach(connection)
            connection.start()
            await self._open(personal)
            # Read here rather than in a helper coroutine: a suspended frame per connection is memory.
            receive = self.socket.receive
            while (message := await receive())["type"] != "websocket.disconnect":
                await self._receive(message)
        except asyncio.CancelledError:
            if not connection.aborting:
                raise
            # We cancelled ourselves: the peer stopped reading and its close frame cannot go out.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception:
            logger.exception("realtime connection %s failed", connection.id)
            connection.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await hub.detach(connection)
            code, reason = connection.closing or (CloseCode.NORMAL, "")
            logger.debug("realtime session closed (%s %s)", code, reason, extra={"close_code": code})

    async def _welcome(self) -> list[str]:
        connection, principal = self.connection, self.connection.principal
        personal = await personal_topics(principal)
        connection.send(
            Welcome(
                connection_id=connection.id,
                person_id=principal.person_id,
                site_id=principal.site_id,
                roles=sorted(principal.roles),
                expires_at=principal.expires_at,
                heartbeat_seconds=self.hub.realtime.heartbeat_seconds,
                personal_topics=personal,
                gate=connection.console.gate if connection.console else None,
            )
        )
        return personal

    async def _open(self, personal: list[str]) -> None:
        connection, principal = self.connection, self.connection.principal
        if self.auto:
            for name in personal:  # allowed by construction
                await self._subscribe_topic(parse_topic(name), None, None)
        if connection.console is not None:
            await self.hub.presence.join(principal.site_id, connection.console)

    async def _receive(self, message: Mapping[str, Any]) -> None:
        connection = self.connection
        connection.last_seen = time.monotonic()
        if connection.closing is not None:
            return
        raw: str | bytes = message.get("text") or message.get("bytes") or b""
        try:
            request: ClientMessage = client_message_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            connection.send(ErrorReply(code="bad_request", message=str(exc)))
            return
        await self._handle(request)

    async def _handle(self, request: ClientMessage) -> None:
        connection = self.connection
        if isinstance(request, Subscribe):
            await self._subscribe(request)
        elif isinstance(request, Unsubscribe):
            self.hub.unsubscribe(connection, request.topic)
            connection.send(Unsubscribed(topic=request.topic))
        elif isinstance(request, Ping):
            connection.send(Pong(id=request.id))
        elif isinstance(request, Refresh):
            await self._refresh(request.token)
        # Pong: answering our ping is all it does (last_seen is already updated).

    async def _subscribe(self, request: Subscribe) -> None:
        connection = self.connection
        try:
            topic = await authorize(connection.principal, request.topic)
        except TopicError as exc:
            connection.send(ErrorReply(code=exc.code, message=exc.message, topic=request.topic))
            return
        await self._subscribe_topic(topic, request.last_seq, request.epoch)

    async def _subscribe_topic(self, topic: Topic, last_seq: int | None, epoch: str | None) -> None:
        connection = self.connection
        subscribed = await self.hub.subscribe(connection, topic.name, last_seq, epoch)
        if subscribed and topic.kind == "site_control":
            # The control room starts from the full list, then applies presence.changed events.
            consoles = await self.hub.presence.snapshot(topic.object_id)
            connection.send(PresenceSnapshot(site_id=topic.object_id, consoles=consoles))

    async def _refresh(self, token: str) -> None:
        connection, state = self.connection, self.socket.app.state
        try:
            principal = await authenticate_access_token(state.settings, state.redis, token)
        except AuthError as exc:
            if exc.reason == "revoked":
                connection.close(CloseCode.TOKEN_REVOKED, "token revoked")
            else:
                connection.send(ErrorReply(code="refresh_failed", message=f"token {exc.reason}"))
            return
        current = connection.principal
        if principal.person_id != current.person_id or principal.site_id != current.site_id:
            connection.send(ErrorReply(code="refresh_failed", message="the token belongs to another person"))
            return
        if connection.console is not None and not principal.has_any(CONSOLE_ROLES):
            connection.close(CloseCode.FORBIDDEN, "no longer allowed to run a gate console")
            return
        connection.principal = principal
        connection.schedule_expiry()
        # Roles or occupancies may have changed since the last token: check every subscription again.
        for name in list(connection.positions):
            try:
                await authorize(principal, name)
            except TopicError:
                self.hub.unsubscribe(connection, name)
                connection.send(Unsubscribed(topic=name, reason="forbidden"))
        connection.send(TokenRefreshed(expires_at=principal.expires_at))


@asynccontextmanager
async def realtime_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs the hub for the web process; ``app.state.realtime_settings`` overrides the environment (tests)."""
    hub = Hub(app.state.redis, app.state.settings, app.state.get("realtime_settings") or load_realtime_settings())
    app.state.realtime = hub
    await hub.start()
    # Every event loops over thousands of connections, so a full garbage collection that also
    # walks the ~10^5 objects of imported modules shows up as a latency spike for all of them.
    # Objects alive after start-up are moved out of the collector's way (they still die by refcount).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        await hub.stop()
