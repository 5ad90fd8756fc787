"""Point the real twilio / firebase-admin SDKs at the fake servers, without network access.

Only the destination changes: request building, auth headers, retries and error mapping are
the SDKs' own code paths. Production uses these when ``TWILIO_BASE_URL`` / ``FCM_BASE_URL``
are set.

* Twilio: every resource URL is built as ``https://<product>.twilio.com/...`` from hard-coded
  domain base URLs (``twilio/rest/api/ApiBase.py``), so the supported hook is the
  ``http_client`` argument: a subclass of ``AsyncTwilioHttpClient`` that rewrites the origin.
* firebase-admin: ``_MessagingService.__init__`` formats ``FCM_URL``
  (``https://fcm.googleapis.com/v1/projects/{0}/messages:send``) into the per-app instance
  attribute ``_fcm_url``; ``send``/``send_each``/``send_each_async`` all read that attribute.
  There is no public override (no FCM emulator env var exists), so we set it on the app's
  own service instance - never the class attribute, which would redirect every app in
  the process. Credentials come from a ``credentials.Base`` yielding a static token.
"""

import asyncio
import base64
from typing import Any
from urllib.parse import urlsplit

import firebase_admin
import google.auth.credentials
import httpx
from firebase_admin import credentials, messaging
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from notifications.channels.twilio_messaging import HeaderKeepingTwilioHttpClient
from notifications.fakes.fcm_server import DEFAULT_ACCESS_TOKEN

# --------------------------------------------------------------------------------------------
# firebase-admin
# --------------------------------------------------------------------------------------------


class StaticAccessToken(google.auth.credentials.Credentials):
    """A google-auth credential that is always valid and never contacts Google.

    ``expiry`` stays ``None`` so google-auth treats the token as non-expiring and never calls
    ``refresh`` before a request; firebase-admin only forces a refresh after an HTTP 401.
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def refresh(self, request: Any) -> None:
        # Nothing to refresh; a 401 from the fake then surfaces as UnauthenticatedError.
        return None


class StaticTokenCredential(credentials.Base):
    """firebase-admin credential wrapping :class:`StaticAccessToken`."""

    def __init__(self, token: str = DEFAULT_ACCESS_TOKEN) -> None:
        self._credential = StaticAccessToken(token)

    def get_credential(self) -> google.auth.credentials.Credentials:
        return self._credential


def point_messaging_at(app: firebase_admin.App, base_url: str) -> None:
    """Redirect ``app``'s messaging service (sync and async sends) to ``base_url``."""
    service = messaging._get_messaging_service(app)
    # Fail loudly if a firebase-admin upgrade renames the attributes we rely on, instead of
    # silently sending to the real FCM.
    for attribute in ("_fcm_url", "_fcm_topic_url"):
        if not isinstance(getattr(service, attribute, None), str):
            raise RuntimeError(
                f"firebase_admin {firebase_admin.__version__}: messaging service has no {attribute}; "
                "update notifications.fakes.sdk_wiring"
            )
    root = f"{base_url.rstrip('/')}/v1/projects/{app.project_id}"
    service._fcm_url = f"{root}/messages:send"
    service._fcm_topic_url = f"{root}/registrations"
    _keep_connections_alive(service)


# send_each_async sends up to 500 requests at once. Real FCM multiplexes them over one
# HTTP/2 connection; the local fake speaks plain HTTP/1.1, where every request needs its
# own connection and httpcore's pool re-scans all connections for every queued request
# (quadratic: 500 requests took seconds). Bounding requests in flight before the pool keeps
# both the connections and the queue small.
FAKE_CONNECTIONS = 8


class _BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            response = await self._inner.handle_async_request(request)
            # Read the body while holding the slot, so the connection is free when we let go.
            body = await response.aread()
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, extensions=response.extensions
            )

    async def aclose(self) -> None:
        await self._inner.aclose()


def _keep_connections_alive(service: Any) -> None:
    wrapper = getattr(service, "_async_client", None)
    transports = getattr(wrapper, "_mounts", None)
    if not isinstance(transports, dict):
        raise RuntimeError(
            f"firebase_admin {firebase_admin.__version__}: messaging async client has no _mounts; "
            "update notifications.fakes.sdk_wiring"
        )
    # The retry transports firebase-admin mounts wrap an httpx transport; the bounded one goes inside
    # them, so firebase-admin's retries still run. (Without one to wrap, fail as above.)
    retrying = [t for t in transports.values() if hasattr(t, "_wrapped_transport")]
    if not retrying:
        raise RuntimeError(
            f"firebase_admin {firebase_admin.__version__}: messaging transports have no _wrapped_transport; "
            "update notifications.fakes.sdk_wiring"
        )
    limits = httpx.Limits(max_connections=FAKE_CONNECTIONS, max_keepalive_connections=FAKE_CONNECTIONS)
    for transport in retrying:
        transport._wrapped_transport = _BoundedTransport(
            httpx.AsyncHTTPTransport(retries=0, limits=limits), FAKE_CONNECTIONS
        )


def firebase_app_for_fake(
    base_url: str,
    project_id: str,
    *,
    access_token: str = DEFAULT_ACCESS_TOKEN,
    name: str | None = None,
    http_timeout: float = 10.0,
) -> firebase_admin.App:
    """A firebase-admin App whose messaging goes to the fake FCM at ``base_url``.

    Idempotent per (base_url, project_id): an app of the same name is reused, because
    firebase-admin refuses to initialise two apps with one name.
    """
    app_name = name or f"fake-fcm:{project_id}@{base_url}"
    try:
        app = firebase_admin.get_app(app_name)
    except ValueError:
        app = firebase_admin.initialize_app(
            StaticTokenCredential(access_token),
            {"projectId": project_id, "httpTimeout": http_timeout},
            name=app_name,
        )
    point_messaging_at(app, base_url)
    return app


async def aclose_firebase_app(app: firebase_admin.App) -> None:
    """Delete an App from async code (works for real apps too).

    ``firebase_admin.delete_app`` closes the messaging service's httpx client with
    ``asyncio.run(...)``, which raises inside a running loop. So close that client in this
    loop first (httpx ``aclose`` is idempotent) and run ``delete_app`` in a worker thread. An app
    that never sent has no messaging service: none is made just to be closed (making one needs
    credentials, which a real app without them only looks for then).
    """
    services = getattr(app, "_services", None) or {}
    service = services.get(messaging._MESSAGING_ATTRIBUTE)
    if service is not None:
        await service._async_client.aclose()
    await asyncio.to_thread(firebase_admin.delete_app, app)


# --------------------------------------------------------------------------------------------
# twilio
# --------------------------------------------------------------------------------------------


class RedirectingAsyncTwilioHttpClient(HeaderKeepingTwilioHttpClient):
    """The SDK's own aiohttp client, sending ``https://*.twilio.com`` requests to ``base_url``
    (and, like production's, remembering each response's headers for the adapter).

    Must be constructed inside a running event loop: like its parent it creates an
    ``aiohttp.ClientSession``, which needs one.
    """

    def __init__(self, base_url: str, *, timeout: float | None = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https" or not (host == "twilio.com" or host.endswith(".twilio.com")):
            return url
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        headers = dict(headers or {})
        if auth is not None:
            # The parent hands aiohttp a BasicAuth object, deprecated since aiohttp 3.14 (one
            # DeprecationWarning per request); sending the identical header avoids that path.
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        response: TwilioResponse = await super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        return response


def twilio_client_for_fake(base_url: str, account_sid: str, auth_token: str) -> TwilioClient:
    """An async-capable ``twilio.rest.Client`` talking to the fake Twilio at ``base_url``.

    Use the ``*_async`` methods (``client.messages.create_async``); close with
    ``await client.http_client.close()``. Call from inside a running event loop.
    """
    return TwilioClient(account_sid, auth_token, http_client=RedirectingAsyncTwilioHttpClient(base_url))
