"""Start every fake inside the current event loop (tests) or as a process (``__main__``)."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from litestar.types import ASGIApp

from notifications.fakes.app import FakeHub, build_app
from notifications.fakes.fcm_server import DEFAULT_ACCESS_TOKEN, DEFAULT_PROJECT_ID, FcmFake
from notifications.fakes.razorpay_server import (
    DEFAULT_KEY_ID,
    DEFAULT_KEY_SECRET,
    DEFAULT_WEBHOOK_SECRET,
    RazorpayFake,
)
from notifications.fakes.smtp_server import SmtpFake
from notifications.fakes.twilio_server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioFake


class _EmbeddedServer(uvicorn.Server):
    """uvicorn would install SIGINT/SIGTERM handlers and re-raise them on exit; inside a test
    runner or our CLI the owner of the loop handles signals, so do nothing here."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class RunningFakes:
    hub: FakeHub
    http_url: str
    smtp_host: str
    smtp_port: int

    @property
    def twilio_url(self) -> str:
        """Base URL replacing ``https://api.twilio.com`` (paths start with /2010-04-01)."""
        return f"{self.http_url}/twilio"

    @property
    def fcm_url(self) -> str:
        """Base URL replacing ``https://fcm.googleapis.com`` (paths start with /v1)."""
        return f"{self.http_url}/fcm"

    @property
    def razorpay_url(self) -> str:
        """Base URL replacing ``https://api.razorpay.com`` (paths start with /v1)."""
        return f"{self.http_url}/razorpay"

    @property
    def razorpay(self) -> RazorpayFake:
        return self.hub.razorpay

    @property
    def dashboard_url(self) -> str:
        return f"{self.http_url}/_fake/"

    @property
    def twilio(self) -> TwilioFake:
        return self.hub.twilio

    @property
    def fcm(self) -> FcmFake:
        return self.hub.fcm

    @property
    def smtp(self) -> SmtpFake:
        return self.hub.smtp

    def reset(self) -> None:
        self.hub.reset()

    def env(self) -> dict[str, str]:
        """The env vars that point opshub's real SDK clients at these fakes."""
        return {
            "TWILIO_BASE_URL": self.twilio_url,
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "FCM_BASE_URL": self.fcm_url,
            "FCM_PROJECT_ID": self.fcm.project_id,
            "FCM_ACCESS_TOKEN": self.fcm.access_token,
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
            "RAZORPAY_BASE_URL": self.razorpay_url,
            "RAZORPAY_KEY_ID": self.razorpay.key_id,
            "RAZORPAY_KEY_SECRET": self.razorpay.key_secret,
            "RAZORPAY_WEBHOOK_SECRET": self.razorpay.webhook_secret,
        }


@contextlib.asynccontextmanager
async def serve_asgi(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn in the current loop; yields ``http://host:port``."""
    # Binding the socket ourselves makes port 0 work and tells us the real port up front.
    # The protocol must be named: asyncio sets TCP_NODELAY on accepted sockets only when
    # proto == IPPROTO_TCP, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # don't let uvicorn reconfigure the host process's logging
        log_level="warning",
        access_log=False,
    )
    server = _EmbeddedServer(config)
    serve_task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{bound_port}")
    try:
        async with asyncio.timeout(startup_timeout):
            while not server.started:
                if serve_task.done():
                    serve_task.result()  # surfaces the startup error
                    raise RuntimeError("uvicorn exited during startup")
                await asyncio.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serve_task
        sock.close()


@contextlib.asynccontextmanager
async def running_fakes(
    *,
    host: str = "127.0.0.1",
    http_port: int = 0,
    smtp_port: int = 0,
    twilio_account_sid: str = DEFAULT_ACCOUNT_SID,
    twilio_auth_token: str = DEFAULT_AUTH_TOKEN,
    fcm_project_id: str = DEFAULT_PROJECT_ID,
    fcm_access_token: str = DEFAULT_ACCESS_TOKEN,
    razorpay_key_id: str = DEFAULT_KEY_ID,
    razorpay_key_secret: str = DEFAULT_KEY_SECRET,
    razorpay_webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    razorpay_webhook_url: str | None = None,
) -> AsyncIterator[RunningFakes]:
    """Serve all fakes on ``host`` (port 0 = any free port) until the block exits."""
    hub = FakeHub(
        twilio=TwilioFake(twilio_account_sid, twilio_auth_token),
        fcm=FcmFake(fcm_project_id, fcm_access_token),
        smtp=SmtpFake(),
        razorpay=RazorpayFake(razorpay_key_id, razorpay_key_secret, razorpay_webhook_secret),
    )
    hub.razorpay.configure(webhook_url=razorpay_webhook_url)
    async with serve_asgi(build_app(hub), host=host, port=http_port) as http_url:
        bound_smtp_port = await hub.smtp.start(host, smtp_port)
        try:
            yield RunningFakes(hub=hub, http_url=http_url, smtp_host=host, smtp_port=bound_smtp_port)
        finally:
            await hub.smtp.aclose()
