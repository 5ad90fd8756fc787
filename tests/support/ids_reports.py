"""Real ids of the report framework in a test world, for the cross-site access test."""

from __future__ import annotations

import datetime as dt

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
