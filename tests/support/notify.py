"""Helpers for notification tests: recipients with contacts and devices, and a pipeline wired to the fakes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import msgspec
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from app.auth.roles import Role
from app.config import Settings
from app.people.directory import directory_for
from app.people.service import NewPerson, UnitLink, create_people
from notifications.context import NotifyContext
from notifications.fakes import RunningFakes
from notifications.providers import build_providers
from schema.tables import Device
from tests.support.world import World

TEMPLATE_SID = "HX" + "0" * 32


@dataclass(frozen=True)
class Recipient:
    person_id: UUID
    mobile: str
    email: str
    token: str


async def add_recipients(world: World, count: int, *, start: int = 0, unit: UUID | None = None) -> list[Recipient]:
    """`count` occupants of `unit` (the world's first unit), each with a mobile, an email and one device."""
    # Valid Indian mobiles (10 digits from 9): phonenumbers must accept them, as a real one would be.
    serial = 9_000_000_000 + secrets.randbelow(890_000) * 1000 + start
    specs = [(f"+91{serial + i}", f"r{serial + i}@example.test", f"tok-{secrets.token_hex(12)}") for i in range(count)]
    ids = await create_people(
        directory_for(world.settings),
        world.site_id,
        [
            NewPerson(
                full_name=f"Recipient {i}",
                roles=frozenset({Role.OCCUPANT}),
                primary_mobile=mobile,
                email=email,
                unit_links=[UnitLink(unit_id=unit or world.unit_ids[0], relation="tenant")],
            )
            for i, (mobile, email, _) in enumerate(specs)
        ],
    )
    for start_index in range(0, count, 500):
        await Device.insert(
            *[
                Device(site=world.site_id, person=pid, platform="android", push_token=token)
                for pid, (_, _, token) in list(zip(ids, specs, strict=True))[start_index : start_index + 500]
            ]
        )
    return [Recipient(pid, m, e, t) for pid, (m, e, t) in zip(ids, specs, strict=True)]


def settings_for_fakes(settings: Settings, fakes: RunningFakes, **overrides: object) -> Settings:
    env = fakes.env()
    return msgspec.structs.replace(
        settings,
        twilio_base_url=fakes.twilio_url,
        twilio_account_sid=env["TWILIO_ACCOUNT_SID"],
        twilio_auth_token=env["TWILIO_AUTH_TOKEN"],
        fcm_base_url=fakes.fcm_url,
        fcm_project_id=env["FCM_PROJECT_ID"],
        fcm_access_token=env["FCM_ACCESS_TOKEN"],
        smtp_host=fakes.smtp_host,
        smtp_port=fakes.smtp_port,
        whatsapp_template_sid=TEMPLATE_SID,
        **{"notify_rate_sms": 0.0, "notify_rate_whatsapp": 0.0, "notify_rate_email": 0.0, **overrides},
    )


@asynccontextmanager
async def pipeline(
    settings: Settings, redis: Redis, fakes: RunningFakes, **overrides: object
) -> AsyncIterator[NotifyContext]:
    wired = settings_for_fakes(settings, fakes, **overrides)
    providers = build_providers(wired, redis)
    try:
        yield NotifyContext(settings=wired, redis=redis, directory=directory_for(wired), providers=providers)
    finally:
        await providers.aclose()


NOTIFY_JOB_FUNCTIONS = ("notify_expand", "notify_expand_part", "notify_send")


@asynccontextmanager
async def notify_queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    """The workers' arq queue, as the web app enqueues into it; notification jobs a test leaves there are
    removed on the way out (a later test runs a real worker on the same queue)."""
    from workers.main import queue_name

    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url), default_queue_name=queue_name(settings))
    try:
        yield pool
    finally:
        for job in await pool.queued_jobs():
            if job.function in NOTIFY_JOB_FUNCTIONS:
                await pool.zrem(queue_name(settings), job.job_id)
                await pool.delete(job_key_prefix + job.job_id)
        await pool.aclose()
