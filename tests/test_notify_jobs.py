"""The notification jobs as a worker runs them: arq gives every job a copy of the worker's context, and a
send job that finds its sender slot taken leaves."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis

from notifications import fanout
from notifications.audience import Audience
from notifications.categories import Category, Channel
from notifications.lanes import Lane
from notifications.service import NotificationRequest, create_notification
from schema.notifications import Delivery
from tests.support.notify import add_recipients, notify_queue, pipeline
from workers.notify_jobs import PartsHere, enqueue_retry, notify_expand_part


@pytest.fixture
async def jobs(settings: Any) -> AsyncIterator[ArqRedis]:
    async with notify_queue(settings) as pool:
        yield pool


@pytest.fixture
async def fakes() -> Any:
    from notifications.fakes import running_fakes

    async with running_fakes() as running:
        running.twilio.configure(callbacks_enabled=False)
        yield running


async def announcement(world: Any, people: list[Any]) -> Any:
    request = NotificationRequest(
        title="Lift",
        body="Lift B is back in service",
        category=Category.ANNOUNCEMENT,
        audience=Audience(person_ids=[p.person_id for p in people]),
        channels=[Channel.SMS],
    )
    notification_id, _ = await create_notification(site_id=world.site_id, request=request)
    return notification_id


async def queued(pool: ArqRedis, function: str, notification_id: Any) -> list[Any]:
    return [job for job in await pool.queued_jobs() if job.function == function and job.args[0] == str(notification_id)]


async def test_a_worker_expands_one_part_at_a_time_and_hands_the_others_back(  # type: ignore[no-untyped-def]
    world, settings, redis, fakes, jobs
) -> None:
    """Two parts' jobs start at once in one worker, each with its own copy of the worker's context, as arq
    runs them: one is expanded, the other goes back to the queue for a worker with a core to spare. (A count
    kept in a job's own copy was never seen by the other: one worker expanded every part at once.)"""
    people = await add_recipients(world, 240)
    async with pipeline(settings, redis, fakes, notify_expansion_part_size=100) as ctx:
        notification_id = await announcement(world, people)
        planned = await fanout.plan(ctx, notification_id)
        assert planned is not None and len(planned.todo) >= 2
        worker = {"redis": jobs, "notify": ctx, "settings": ctx.settings, "parts_here": PartsHere()}
        first, second = await asyncio.gather(
            notify_expand_part({**worker}, str(notification_id), 0, Lane.BULK),
            notify_expand_part({**worker}, str(notification_id), 1, Lane.BULK),
        )
    assert (first, second) == (1, 0)  # the first expanded (its one channel), the second handed back
    handed_back = [job for job in await queued(jobs, "notify_expand_part", notification_id) if job.args[1] == 1]
    assert len(handed_back) == 1
    assert handed_back[0].score > handed_back[0].enqueue_time.timestamp() * 1000  # it waits a moment in the queue
    written = await Delivery.select(Delivery.person).where(Delivery.notification == notification_id)
    assert 0 < len(written) < len(people)  # one part's rows, not both


async def test_rows_due_when_a_sender_lets_go_of_its_slot_get_a_send_job_at_once(  # type: ignore[no-untyped-def]
    world, settings, redis, fakes, jobs
) -> None:
    """A part expanded on another worker wrote rows after this sender's last claim found none; the send job
    that part asked for found this sender's slot taken and left. Letting go, the sender asks for a send now,
    where before the rows waited for the tick's sweep, a claim lease later."""
    people = await add_recipients(world, 3)
    async with pipeline(settings, redis, fakes) as ctx:
        notification_id = await announcement(world, people)
        await fanout.expand(ctx, notification_id)  # pending SMS rows, due now, that nobody is sending
        worker = {"redis": jobs, "notify": ctx, "settings": ctx.settings}
        await enqueue_retry(worker, notification_id, str(Channel.SMS))
        asked = await queued(jobs, "notify_send", notification_id)
        assert [job.args[1] for job in asked] == [str(Channel.SMS)]
        assert asked[0].score <= (ctx.clock() + dt.timedelta(seconds=1)).timestamp() * 1000  # now, not later

        # Rows waiting for a backoff still get their job at the time they come due, not now.
        later = ctx.clock() + dt.timedelta(seconds=60)
        await Delivery.update({Delivery.next_attempt_at: later}).where(Delivery.notification == notification_id)
        await enqueue_retry(worker, notification_id, str(Channel.SMS))
        retries = [job for job in await queued(jobs, "notify_send", notification_id) if job not in asked]
        assert len(retries) == 1 and retries[0].score >= later.timestamp() * 1000 - 1
