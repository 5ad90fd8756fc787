"""Real web processes for end-to-end tests: uvicorn in the test's loop, or as a subprocess.

Both serve the whole app (HTTP and ``/ws``) on a free port, on the suite's database and Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from app.devredis import free_port
from realtime.config import RealtimeSettings
from realtime.hub import Hub
from realtime.server_protocol import UVICORN_WS, LeanWebSocketProtocol

ROOT = Path(__file__).resolve().parents[2]
FAST = RealtimeSettings(
    history_max_len=200,
    history_max_age_seconds=120,
    send_queue_max=64,
    heartbeat_seconds=0.5,
    idle_timeout_seconds=2.0,
    presence_ttl_seconds=2.0,
    close_timeout_seconds=2.0,
)
FAST_ENV = {
    "OPSHUB_RT_HEARTBEAT_SECONDS": "0.5",
    "OPSHUB_RT_IDLE_TIMEOUT_SECONDS": "5",
    "OPSHUB_RT_PRESENCE_TTL_SECONDS": "2",
}


# ---------------------------------------------------------------------------- servers


class InProcessServer:
    """A uvicorn server running the real app in the test's event loop."""

    def __init__(self, settings: Any, realtime: RealtimeSettings) -> None:
        from app.main import create_app

        self.app = create_app(settings)
        self.app.state.realtime_settings = realtime
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.http_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            ws=LeanWebSocketProtocol,
            ws_per_message_deflate=False,
            # As the Procfile runs it: X-Forwarded-For believed only from configured proxies (none by
            # default), not uvicorn's own default of 127.0.0.1, which every test client is.
            forwarded_allow_ips=settings.forwarded_allow_ips,
            lifespan="on",
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.state.realtime
        return hub

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "in-process server failed to start"
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


class SubprocessServer:
    """`uvicorn app.main:create_app --factory` as a separate web process on the same Redis and database."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.env = {**os.environ, **FAST_ENV, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; readiness is awaited below
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ws",
                UVICORN_WS,
                "--ws-per-message-deflate",
                "false",
                "--forwarded-allow-ips",
                self.env.get("OPSHUB_FORWARDED_ALLOW_IPS", ""),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "web process exited during start-up"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError("web process did not start")

    async def stop(self) -> None:
        """SIGTERM, as a deployment does: uvicorn closes websockets with 1012, then the lifespan ends."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            for _ in range(200):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.process.kill()
        self.process = None
