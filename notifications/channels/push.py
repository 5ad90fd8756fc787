"""Push through Firebase Cloud Messaging (firebase-admin's async API).

One delivery row is one person; a person may have several devices, so each row becomes
one message per token. The delivery id is the notification tag / collapse id, so if a
send is ever repeated after a crash, the device replaces the first rather than showing two.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings

import firebase_admin
from firebase_admin import exceptions as fcm_errors
from firebase_admin import messaging

from notifications.categories import Channel
from notifications.channels.base import Outcome, Outgoing, Recipient, parse_retry_after

FCM_BATCH_LIMIT = 500  # send_each accepts at most 500 messages per call
DEAD_TOKEN_ERRORS = (messaging.UnregisteredError, messaging.SenderIdMismatchError)
TRANSIENT_ERRORS = (
    messaging.QuotaExceededError,
    fcm_errors.ResourceExhaustedError,  # HTTP 429 without FCM's QUOTA_EXCEEDED detail
    fcm_errors.UnavailableError,
    fcm_errors.InternalError,
    fcm_errors.DeadlineExceededError,
)


class PushAdapter:
    channel = Channel.PUSH

    def __init__(self, app: firebase_admin.App) -> None:
        self._app = app

    def _message(self, message: Outgoing, recipient: Recipient, token: str) -> messaging.Message:
        urgent = message.urgency == "critical"
        tag = str(recipient.delivery_id)
        data = {**message.data, "delivery_id": tag, "category": message.category}
        ttl = dt.timedelta(seconds=message.ttl_seconds)
        with warnings.catch_warnings():
            # firebase-admin 7.7 warns on `token` in favour of `fid`; FCM v1 still names it token.
            warnings.simplefilter("ignore", DeprecationWarning)
            return messaging.Message(
                token=token,
                notification=messaging.Notification(title=message.title, body=message.body),
                data=data,
                android=messaging.AndroidConfig(
                    collapse_key=message.collapse_key,
                    priority="high" if urgent else "normal",
                    ttl=ttl,
                    notification=messaging.AndroidNotification(tag=message.collapse_key or tag),
                ),
                apns=messaging.APNSConfig(
                    headers={
                        "apns-priority": "10" if urgent else "5",
                        "apns-collapse-id": (message.collapse_key or tag)[:64],
                        "apns-expiration": str(int(dt.datetime.now(dt.UTC).timestamp() + message.ttl_seconds)),
                    }
                ),
            )

    async def send(self, message: Outgoing, recipients: list[Recipient]) -> list[Outcome]:
        pairs = [(index, token) for index, r in enumerate(recipients) for token in r.push_tokens]
        # Per recipient (by position), the result of each of their tokens.
        results: list[list[tuple[str, Exception | str]]] = [[] for _ in recipients]
        for start in range(0, len(pairs), FCM_BATCH_LIMIT):
            chunk = pairs[start : start + FCM_BATCH_LIMIT]
            try:
                batch = await messaging.send_each_async(
                    [self._message(message, recipients[index], token) for index, token in chunk], app=self._app
                )
            except Exception as exc:  # the whole call failed (network): every message in it is transient
                for index, token in chunk:
                    results[index].append((token, exc))
                continue
            for (index, token), response in zip(chunk, batch.responses, strict=True):
                results[index].append((token, response.message_id if response.success else response.exception))
        return [_outcome(r, token_results) for r, token_results in zip(recipients, results, strict=True)]

    async def aclose(self) -> None:
        await asyncio.sleep(0)


def _outcome(recipient: Recipient, results: list[tuple[str, Exception | str]]) -> Outcome:
    if not recipient.push_tokens:
        return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code="no_device")
    accepted = [res for _, res in results if isinstance(res, str)]
    dead = tuple(token for token, res in results if isinstance(res, DEAD_TOKEN_ERRORS))
    if accepted:
        return Outcome(
            delivery_id=recipient.delivery_id, status="sent", provider_id=accepted[0][-64:], dead_tokens=dead
        )
    if dead and len(dead) == len(results):
        return Outcome(
            delivery_id=recipient.delivery_id,
            status="failed",
            provider_code="UNREGISTERED",
            effect="dead_tokens",
            dead_tokens=dead,
        )
    errors = [res for _, res in results if isinstance(res, Exception) and not isinstance(res, DEAD_TOKEN_ERRORS)]
    if any(_transient(e) for e in errors):
        waits = [w for w in (_retry_after(e) for e in errors) if w is not None]
        return Outcome(
            delivery_id=recipient.delivery_id,
            status="retry",
            provider_code=_code(errors[0]),
            dead_tokens=dead,
            # Every device of the person is tried again together: after the longest wait FCM asked for.
            retry_after_seconds=max(waits) if waits else None,
        )
    return Outcome(delivery_id=recipient.delivery_id, status="failed", provider_code=_code(errors[0]), dead_tokens=dead)


def _transient(error: Exception) -> bool:
    """Worth trying again: FCM's own transient answers, and any failure with no HTTP answer at all.

    firebase-admin turns a connection that dropped before its response (a keep-alive connection the server
    had just closed, a reset) into ``UnknownError`` with no ``http_response``. The message may or may not
    have arrived; a repeat carries the same tag (the delivery id), so a device shows it once. Marked failed,
    it was a message lost for good on a blip of the network."""
    if not isinstance(error, fcm_errors.FirebaseError):
        return True
    return isinstance(error, TRANSIENT_ERRORS) or error.http_response is None


def _retry_after(error: Exception) -> float | None:
    """FCM's Retry-After (on 429 and 503), from the HTTP response firebase-admin's error carries."""
    if not isinstance(error, fcm_errors.FirebaseError):
        return None
    response = error.http_response
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("Retry-After")
    return parse_retry_after(value if isinstance(value, str) else None)


def _code(error: Exception) -> str:
    if isinstance(error, fcm_errors.FirebaseError):
        return str(error.code)
    return type(error).__name__
