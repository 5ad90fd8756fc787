"""Real ids of the report framework in a test world, for the cross-site access test."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from schema.reports import ReportExport, ReportSubscription
from tests.support.world import World


async def resource_ids(world: World) -> dict[str, str]:
    job = ReportExport(
        site=world.site_id,
        person=world.people["fm_admin"],
        report="complaints",
        format="csv",
        params={"format": "csv"},
        created_at=dt.datetime.now(dt.UTC),
    )
    await job.save()
    subscription = ReportSubscription(
        site=world.site_id,
        person=world.people["fm_admin"],
        report="complaints",
        frequency="weekly",
        created_at=dt.datetime.now(dt.UTC),
    )
    await subscription.save()
    return {"job_id": str(job.id), "subscription_id": str(subscription.id)}


async def seed_person_data(world: World, person_id: UUID) -> None:
    """Give `person_id` data in this module, for the privacy module's export and erasure tests: a scheduled
    report and an export job of theirs (no file: what a file holds is the report's, not the person's)."""
    now = dt.datetime.now(dt.UTC)
    await ReportSubscription(
        site=world.site_id, person=person_id, report="visitors", frequency="monthly", created_at=now
    ).save()
    await ReportExport(
        site=world.site_id, person=person_id, report="visitors", format="csv", params={}, created_at=now
    ).save()
