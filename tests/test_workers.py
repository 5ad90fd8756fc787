"""The arq worker: settings resolve, and maintenance jobs do their work through a real arq run."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from typing import Any

import pytest
from arq import create_pool
from arq.worker import Worker
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from schema.tables import RefreshToken
from tests.support.world import World
from workers import maintenance
from workers.main import WorkerSettings, queue_name, redis_settings
from workers.process import ResilientWorker


async def _token(world: World, expires_at: dt.datetime) -> RefreshToken:
    token = RefreshToken(
        site=world.site_id,
        person=world.people["occupant"],
        token_hash=secrets.token_hex(32),
        family_id=uuid.uuid4(),
        expires_at=expires_at,
    )
    await token.save()
    return token


async def test_purge_keeps_recent_tokens_and_deletes_old_ones(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    old = await _token(world, now - dt.timedelta(days=30))
    recent = await _token(world, now - dt.timedelta(days=1))
    live = await _token(world, now + dt.timedelta(days=1))
    deleted = await maintenance.purge_expired_refresh_tokens({}, now=now)
    assert deleted >= 1
    remaining = {row["id"] for row in await RefreshToken.select(RefreshToken.id)}
    assert old.id not in remaining
    assert {recent.id, live.id} <= remaining


async def test_job_runs_through_a_real_arq_worker(world: World, settings: Any) -> None:
    old = await _token(world, dt.datetime.now(dt.UTC) - dt.timedelta(days=60))
    # A queue of its own: other tests enqueue notification jobs on the run's queue.
    queue = f"{queue_name(settings)}:maintenance-test"
    pool = await create_pool(redis_settings(settings), default_queue_name=queue)
    try:
        job = await pool.enqueue_job("purge_expired_refresh_tokens")
        assert job is not None
        worker = Worker(
            functions=WorkerSettings.functions,
            redis_pool=pool,
            queue_name=queue,
            burst=True,
            poll_delay=0.05,
            on_startup=WorkerSettings.on_startup,
            on_shutdown=WorkerSettings.on_shutdown,
        )
        try:
            await worker.main()
        finally:
            # The worker's own shutdown hook is for a process's last moments (it stops every SQLite
            # connection in the process, the suite's too); close only what its startup opened here.
            notify = worker.ctx.get("notify")
            if notify is not None:
                await notify.providers.aclose()
        assert worker.jobs_complete == 1 and worker.jobs_failed == 0
        assert await job.result(timeout=5) >= 1
    finally:
        await pool.aclose()
    assert not await RefreshToken.exists().where(RefreshToken.id == old.id)


class _DropsOnce:
    """Raises what redis-py raises when a WATCHed connection drops (the watch dies with it), once."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.raised = False

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.raised:
            self.raised = True
            raise WatchError("A ConnectionError occurred on while watching one or more keys")
        return await self.original(*args, **kwargs)


async def _burst(worker_class: type[Worker], pool: Any, queue: str) -> Worker:
    worker = worker_class(
        functions=WorkerSettings.functions,
        redis_pool=pool,
        queue_name=queue,
        burst=True,
        poll_delay=0.05,
        max_jobs=2,
    )
    await worker.main()
    return worker


@pytest.mark.parametrize("where", ["cron enqueue", "job start"])
async def test_a_redis_drop_while_watching_does_not_end_the_worker(
    settings: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A Redis restart that lands on a watched pipeline (a cron's enqueue in the heartbeat, or a job's
    start) raises WatchError out of arq's poll loop: arq's worker dies of it, ours polls again and the job
    still runs, with its slot given back."""
    queue = f"{queue_name(settings)}:watch-test-{secrets.token_hex(3)}"
    pool = await create_pool(redis_settings(settings), default_queue_name=queue)
    try:
        for worker_class in (Worker, ResilientWorker):
            job = await pool.enqueue_job("purge_expired_refresh_tokens", _queue_name=queue)
            assert job is not None
            if where == "cron enqueue":
                drop = _DropsOnce(Worker.heart_beat)
                monkeypatch.setattr(Worker, "heart_beat", lambda self, _drop=drop: _drop(self))
            else:
                drop = _DropsOnce(Pipeline.immediate_execute_command)
                monkeypatch.setattr(
                    Pipeline, "immediate_execute_command", lambda self, *a, _drop=drop, **k: _drop(self, *a, **k)
                )
            if worker_class is Worker:
                with pytest.raises(WatchError):
                    await _burst(worker_class, pool, queue)
                await pool.delete(queue)
            else:
                worker = await _burst(worker_class, pool, queue)
                assert drop.raised and worker.jobs_complete == 1 and worker.jobs_failed == 0
                assert worker.job_counter == 0
                for _ in range(2 + 1):  # arq's semaphore holds max_jobs + 1: no slot lost to the dropped start
                    await asyncio.wait_for(worker.sem.acquire(), timeout=1)
            monkeypatch.undo()
    finally:
        await pool.aclose()
