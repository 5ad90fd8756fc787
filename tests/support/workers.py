"""Real `arq` worker processes for tests: started with the test run's database and Redis, pointed at
the local fakes, and stopped without ever hanging the suite."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from notifications.service import cancel_notification
from schema.notifications import Notification
from tests.support.notify import TEMPLATE_SID

ROOT = Path(__file__).resolve().parents[2]


def worker_env(fakes: Any, **overrides: str) -> dict[str, str]:
    """The test run's environment (database, Redis, key prefix) plus the fakes; rates off unless given."""
    return {
        **os.environ,
        **fakes.env(),
        "OPSHUB_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
        "OPSHUB_NOTIFY_RATE_SMS": "0",
        "OPSHUB_NOTIFY_RATE_WHATSAPP": "0",
        "OPSHUB_NOTIFY_RATE_PUSH": "0",
        "OPSHUB_LOG_LEVEL": "WARNING",
        **overrides,
    }


async def start_worker(env: dict[str, str], log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arq", "workers.main.WorkerSettings", cwd=ROOT, env=env, stdout=log, stderr=log
    )


async def stop_worker(worker: asyncio.subprocess.Process, log_path: Path) -> None:
    """SIGTERM and wait; a worker that cannot exit (a leaked non-daemon thread) fails the test rather
    than hanging CI. Exiting may take up to SQLite's busy timeout (30 s) while a connection waits."""
    if worker.returncode is not None:
        return
    worker.terminate()
    try:
        await asyncio.wait_for(worker.wait(), 60)
    except TimeoutError:
        worker.kill()
        await worker.wait()
        tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-3000:]
        raise AssertionError(f"the worker did not exit within 60 s of SIGTERM; its log ends:\n{tail}") from None


def log_of(log_path: Path, index: int) -> Path:
    """Where worker `index` of :func:`workers` writes its output."""
    return log_path if index == 0 else log_path.with_name(f"{log_path.stem}.{index}{log_path.suffix}")


@asynccontextmanager
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
        for index, worker in enumerate(started):
            await stop_worker(worker, log_of(log_path, index))
        for log in logs:
            log.close()


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float, what: str, poll: float = 0.1) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


async def cancel_other_sites_notifications(site_id: UUID) -> None:
    """Earlier tests leave notifications that no worker ever sent; a worker started now would send them
    all first. Cancel them the way an FM admin would, so the test measures its own."""
    rows = await Notification.select(Notification.id, Notification.site).where(
        Notification.status.not_in(["completed", "cancelled"]) & (Notification.site != site_id)
    )
    for row in rows:
        await cancel_notification(row["site"], row["id"])
