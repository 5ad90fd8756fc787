"""A fake of the FCM HTTP v1 send endpoint that the real ``firebase_admin`` SDK talks to.

Error bodies use Google's ``google.rpc.Status`` shape with an ``FcmError`` detail, because that
detail's ``errorCode`` is what firebase-admin maps to ``UnregisteredError``,
``SenderIdMismatchError``, ``QuotaExceededError`` and friends.
"""

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath

from notifications.fakes._util import LimitExceeded, ProviderLimits, control_routes, merge_into_struct, utcnow

DEFAULT_PROJECT_ID = "opshub-dev"
DEFAULT_ACCESS_TOKEN = "fake-fcm-access-token"

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
TargetKind = Literal["token", "fid", "topic", "condition"]
_TARGETS: tuple[TargetKind, ...] = ("token", "fid", "topic", "condition")


class FcmBehaviour(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Tokens here are device registration tokens (or FIDs, which firebase-admin 7.7 prefers)."""

    unregistered: set[str] = msgspec.field(default_factory=set)
    sender_id_mismatch: set[str] = msgspec.field(default_factory=set)
    invalid: set[str] = msgspec.field(default_factory=set)
    fail_next: int = 0
    fail_status: Literal[429, 500, 503] = 503
    # Seconds for a Retry-After header on transient failures (real FCM sends one on 429/503).
    # firebase-admin 7.x ignores it: its default HttpxRetry has respect_retry_after_header=False,
    # retries only 500/503 (4 retries, backoff 0s, 1s, 2s, 4s) and never retries 429.
    retry_after: int | None = None
    # Provider limit, off unless set: sends per second for the project, counted in 1-second
    # windows of the fake's clock. Above it: HTTP 429 RESOURCE_EXHAUSTED (QUOTA_EXCEEDED) with a
    # Retry-After header of ``limit_retry_after`` seconds (None: until the window is over, 1).
    project_rate_per_second: int | None = None
    limit_retry_after: int | None = None
    # Seconds a send takes to answer; lets the concurrency counter see requests in flight.
    api_latency: float = 0.0


class FcmMessage(msgspec.Struct, kw_only=True):
    """An accepted send, flattened so tests can assert on the fields we care about."""

    name: str
    project_id: str
    target_kind: TargetKind
    target: str
    notification: dict[str, Any] | None
    data: dict[str, str] | None
    android_collapse_key: str | None
    android_ttl: str | None
    android_priority: str | None
    apns_headers: dict[str, str] | None
    validate_only: bool
    received_at: datetime
    message: dict[str, Any]


class RpcStatus(msgspec.Struct):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] = msgspec.field(default_factory=list)


class RpcErrorBody(msgspec.Struct):
    error: RpcStatus


class SendRequest(msgspec.Struct):
    """What firebase-admin POSTs. It only includes ``validate_only`` when dry_run=True."""

    message: dict[str, Any]
    validate_only: bool = False


class FcmApiError(Exception):
    def __init__(
        self,
        http_status: int,
        status: str,
        message: str,
        fcm_code: str | None = None,
        extra_details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        details = [{"@type": _FCM_ERROR_TYPE, "errorCode": fcm_code}] if fcm_code else []
        self.body = RpcErrorBody(RpcStatus(http_status, message, status, details + (extra_details or [])))
        self.http_status = http_status
        self.retry_after = retry_after


def unregistered() -> FcmApiError:
    return FcmApiError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")


def sender_id_mismatch() -> FcmApiError:
    return FcmApiError(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")


def invalid_argument(message: str, field: str) -> FcmApiError:
    violation = {"@type": _BAD_REQUEST_TYPE, "fieldViolations": [{"field": field, "description": message}]}
    return FcmApiError(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", [violation])


def transient(http_status: int, retry_after: int | None) -> FcmApiError:
    if http_status == 429:
        return FcmApiError(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
            "QUOTA_EXCEEDED",
            retry_after=retry_after,
        )
    if http_status == 500:
        return FcmApiError(500, "INTERNAL", "Internal error encountered.", "INTERNAL", retry_after=retry_after)
    return FcmApiError(
        503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE", retry_after=retry_after
    )


class FcmFake:
    def __init__(
        self,
        project_id: str = DEFAULT_PROJECT_ID,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        behaviour: FcmBehaviour | None = None,
    ) -> None:
        self.project_id = project_id
        self.access_token = access_token
        self.behaviour = behaviour or FcmBehaviour()
        self.messages: list[FcmMessage] = []
        # Every request including rejected ones: lets retry tests count SDK attempts.
        self.attempts = 0
        # The project's send quota (configured in ``behaviour``) and what it counted. A test may
        # replace ``limits.clock`` (epoch seconds) to move the fake's time with its own.
        self.limits = ProviderLimits()

    # -- controls ------------------------------------------------------------------------------
    def reset(self) -> None:
        self.messages.clear()
        self.attempts = 0
        self.behaviour = FcmBehaviour()
        self.limits.reset()

    def configure(self, **changes: Any) -> FcmBehaviour:
        self.behaviour = merge_into_struct(self.behaviour, changes)
        return self.behaviour

    def mark_unregistered(self, *tokens: str) -> None:
        self.behaviour.unregistered.update(tokens)

    def mark_sender_id_mismatch(self, *tokens: str) -> None:
        self.behaviour.sender_id_mismatch.update(tokens)

    def mark_invalid(self, *tokens: str) -> None:
        self.behaviour.invalid.update(tokens)

    def fail_next(self, count: int, status: Literal[429, 500, 503] = 503, retry_after: int | None = None) -> None:
        self.configure(fail_next=count, fail_status=status, retry_after=retry_after)

    def delivered_to(self, target: str) -> list[FcmMessage]:
        return [m for m in self.messages if m.target == target and not m.validate_only]

    # -- the API -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def limited(self, project_id: str, authorization: str | None, raw_body: bytes) -> AsyncIterator[None]:
        """Admit one send under the project's quota for the duration of the block.

        Raises the 429 RESOURCE_EXHAUSTED :class:`FcmApiError` (with Retry-After) above the quota.
        Requests FCM would refuse for their credentials or project are not counted: ``send``
        answers those.
        """
        if authorization != f"Bearer {self.access_token}" or project_id != self.project_id:
            yield
            return
        behaviour = self.behaviour
        try:
            with self.limits.admit(
                project_id,
                _peek_target(raw_body),
                rate_per_second=behaviour.project_rate_per_second,
                max_concurrent=None,
                retry_after=behaviour.limit_retry_after,
            ):
                if behaviour.api_latency > 0:
                    await asyncio.sleep(behaviour.api_latency)
                yield
        except LimitExceeded as exc:
            self.attempts += 1
            raise transient(429, exc.retry_after) from None

    def send(self, project_id: str, authorization: str | None, raw_body: bytes) -> FcmMessage:
        self.attempts += 1
        if authorization != f"Bearer {self.access_token}":
            raise FcmApiError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if project_id != self.project_id:
            raise FcmApiError(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}' (or it may not exist).",
            )
        if self.behaviour.fail_next > 0:
            self.behaviour.fail_next -= 1
            raise transient(self.behaviour.fail_status, self.behaviour.retry_after)
        try:
            request = msgspec.json.decode(raw_body, type=SendRequest)
        except msgspec.DecodeError as exc:
            raise FcmApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from exc
        message = request.message
        targets = [key for key in _TARGETS if message.get(key)]
        if len(targets) != 1:
            raise invalid_argument("Exactly one of token, fid, topic or condition is required.", "message")
        kind = targets[0]
        target = str(message[kind])
        if kind in ("token", "fid"):
            self._check_device(target, kind)
        data = message.get("data")
        if data is not None and not all(isinstance(v, str) for v in data.values()):
            raise invalid_argument("Invalid value at 'message.data': values must be strings.", "message.data")

        android: dict[str, Any] = message.get("android") or {}
        apns: dict[str, Any] = message.get("apns") or {}
        # Dry runs get FCM's fixed fake id, real sends a fresh "0:<micros>%<hex>" style id.
        message_id = (
            "fake_message_id" if request.validate_only else f"0:{time.time_ns() // 1000}%{secrets.token_hex(8)}"
        )
        record = FcmMessage(
            name=f"projects/{project_id}/messages/{message_id}",
            project_id=project_id,
            target_kind=kind,
            target=target,
            notification=message.get("notification"),
            data=data,
            android_collapse_key=android.get("collapse_key"),
            android_ttl=android.get("ttl"),
            android_priority=android.get("priority"),
            apns_headers=apns.get("headers"),
            validate_only=request.validate_only,
            received_at=utcnow(),
            message=message,
        )
        self.messages.append(record)
        return record

    def _check_device(self, target: str, kind: str) -> None:
        if target in self.behaviour.invalid:
            raise invalid_argument("The registration token is not a valid FCM registration token", f"message.{kind}")
        if target in self.behaviour.unregistered:
            raise unregistered()
        if target in self.behaviour.sender_id_mismatch:
            raise sender_id_mismatch()


def _peek_target(raw_body: bytes) -> str:
    """The token (or fid, topic, condition) a send is for, without validating the request."""
    try:
        body = msgspec.json.decode(raw_body)
    except msgspec.DecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return ""
    return next((str(message[key]) for key in _TARGETS if message.get(key)), "")


def _error_response(exc: FcmApiError) -> Response[bytes]:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    return Response(
        msgspec.json.encode(exc.body), status_code=exc.http_status, media_type="application/json", headers=headers
    )


def fcm_router(fake: FcmFake, path: str = "/fcm") -> Router:
    @post("/v1/projects/{project_id:str}/messages:send", status_code=200)
    async def send(request: Request[Any, Any, Any], project_id: FromPath[str]) -> Response[bytes]:
        authorization, raw_body = request.headers.get("authorization"), await request.body()
        try:
            async with fake.limited(project_id, authorization, raw_body):
                record = fake.send(project_id, authorization, raw_body)
        except FcmApiError as exc:
            return _error_response(exc)
        return Response(msgspec.json.encode({"name": record.name}), media_type="application/json")

    @get("/_fake/messages")
    async def list_messages() -> list[FcmMessage]:
        return fake.messages

    return Router(
        path=path,
        route_handlers=[
            send,
            list_messages,
            *control_routes(fake, fake.limits),
        ],
    )
