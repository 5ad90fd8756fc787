"""Faults for the fault tests: a TCP proxy whose connections can be cut, a real arq worker process
to start and kill, and small waiting helpers.

The proxy stands between a process and a server it depends on (PostgreSQL, say), so a test can
make the server look restarted to that process without touching the server itself, which the
rest of the suite keeps using: every proxied connection is cut at once, new ones are refused
for a while (nothing listens on the port), then let through again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import redis

from app.devredis import free_port, redis_server_binary
from notifications.service import cancel_notification
from realtime.client import ClientClosed, RealtimeClient
from schema.events import Event, Resync
from schema.notifications import Notification
from tests.support.notify import TEMPLATE_SID

ROOT = Path(__file__).resolve().parent.parent.parent


class TcpProxy:
    def __init__(
        self, target_host: str, target_port: int, port: int | None = None, listen_host: str = "127.0.0.1"
    ) -> None:
        self.listen_host = listen_host  # a bridge address makes the target reachable from network namespaces
        self.target_host = target_host
        self.target_port = target_port
        self.port = port or free_port()
        self.accepted = 0
        self.cut_connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.listen_host, self.port, reuse_address=True)

    async def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def cut_all(self) -> int:
        """Abort every proxied connection, both sides, as a server that died would leave them."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        self._writers.clear()
        self.cut_connections += len(writers) // 2
        return len(writers) // 2

    async def outage(self, seconds: float) -> None:
        """A restart as the clients see it: every connection cut, the port refusing, then back."""
        await self.stop_listening()
        self.cut_all()
        await asyncio.sleep(seconds)
        self.cut_all()  # anything that slipped in while the listener was closing
        await self.start()

    async def aclose(self) -> None:
        await self.stop_listening()
        self.cut_all()
        for task in list(self._pipes):
            task.cancel()
        if self._pipes:
            await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        pipes = [
            asyncio.create_task(self._pipe(client_reader, server_writer)),
            asyncio.create_task(self._pipe(server_reader, client_writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for writer in (client_writer, server_writer):
                self._writers.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(every)


class RestartableRedis:
    """A private redis-server on a fixed port that a test may stop and start again.

    Nothing is persisted, as with the hub's own private Redis: a restart loses every key (the
    realtime histories, arq's queue), which is the hard case.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                *("--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"),
                *("--dir", str(self.data_dir), "--loglevel", "warning", "--maxclients", "20000"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"redis-server exited (port {self.port} taken?)"
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
            raise TimeoutError("redis-server did not start")
        finally:
            client.close()

    def kill(self) -> None:
        """As a crash or an OOM kill: no goodbye to the clients, every key gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# ---------------------------------------------------------------------------- a real worker process


def worker_env(fakes: Any, **extra: str) -> dict[str, str]:
    """A worker's environment: this run's database and Redis, the provider fakes, no send rate limits."""
    return {
        **os.environ,
        **fakes.env(),
        "OPSHUB_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
        "OPSHUB_NOTIFY_RATE_SMS": "0",
        "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
        "OPSHUB_NOTIFY_RATE_PUSH": "0",
        "OPSHUB_NOTIFY_CLAIM_LEASE_SECONDS": "2",
        "OPSHUB_LOG_LEVEL": "WARNING",
        **extra,
    }


async def start_worker(env: dict[str, str], log: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers", cwd=ROOT, env=env, stdout=log, stderr=log
    )


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.terminate()
        try:
            await asyncio.wait_for(worker.wait(), 60)
        except TimeoutError:
            worker.kill()
            await worker.wait()


def log_of(log_path: Path, index: int) -> Path:
    """Where worker `index` of :func:`workers` writes its output."""
    return log_path if index == 0 else log_path.with_name(f"{log_path.stem}.{index}{log_path.suffix}")


@contextlib.asynccontextmanager
async def workers(
    env: dict[str, str], log_path: Path, count: int = 1
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """`count` worker processes, each with a log file of its own (:func:`log_of`), stopped on the way out."""
    logs = [log_of(log_path, index).open("ab") for index in range(count)]
    started: list[asyncio.subprocess.Process] = []
    try:
        for log in logs:
            started.append(await start_worker(env, log))
        yield started
    finally:
        for worker in started:
            await stop_worker(worker)
        for log in logs:
            log.close()


async def cancel_other_notifications(site_id: UUID) -> None:
    """Earlier tests leave notifications no worker sent; a worker started here would send them
    first. Cancel them as an FM admin would, so the test measures its own."""
    rows = await Notification.select(Notification.id, Notification.site).where(
        Notification.status.not_in(["completed", "cancelled"]) & (Notification.site != site_id)
    )
    for row in rows:
        await cancel_notification(row["site"], row["id"])


# ---------------------------------------------------------------------------- realtime clients


class Recorder:
    """Everything one realtime client receives, in order, until stopped."""

    def __init__(self, client: RealtimeClient) -> None:
        self.client = client
        self.messages: list[Any] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(ClientClosed):
            while True:
                self.messages.append(await self.client.recv())

    def events(self, topic: str) -> list[Event]:
        return [m for m in self.messages if isinstance(m, Event) and m.topic == topic]

    def last_seq(self, topic: str) -> int | None:
        events = self.events(topic)
        return events[-1].seq if events else None

    def gaps(self, topic: str) -> list[str]:
        """What went missing without the client being told: within an epoch every seq follows the
        one before; a new epoch starts only after a resync naming it."""
        found: list[str] = []
        epoch: str | None = None
        last: int | None = None
        for message in self.messages:
            if getattr(message, "topic", None) != topic:
                continue
            if isinstance(message, Resync):
                epoch, last = message.epoch, message.seq
            elif isinstance(message, Event):
                if epoch is not None and message.epoch != epoch:
                    found.append(f"silent epoch change to {message.epoch} at seq {message.seq}")
                elif last is not None and message.seq != last + 1:
                    found.append(f"seq {message.seq} after {last}")
                epoch, last = message.epoch, message.seq
        return found

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.client.close()
