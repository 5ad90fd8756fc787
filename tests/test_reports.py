"""The report framework (issue #20): every report's CSV reconciles with the seeded month counted
independently, for each filter; the role rule scopes rows in every view and export; XLSX is typed."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from decimal import Decimal
from typing import Any
from uuid import UUID

import openpyxl

from app.billing.collections import bucket_of
from app.reports.framework import catalogue, nearest_rank
from schema.tables import Building, Unit
from tests.support.reports import Seeded, seed_month
from tests.support.world import World

IN_MONTH = {"from": "2026-11-01", "to": "2026-11-30"}
PART = {"from": "2026-11-10", "to": "2026-11-19"}


async def export(
    client: Any, world: World, name: str, params: dict[str, str], who: str = "fm_admin"
) -> list[dict[str, str]]:
    response = await client.get(f"/api/reports/{name}/export", params=params, headers=world.headers(who))
    assert response.status_code == 200, (name, params, response.text)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.text)))


def within(moment: dt.datetime | dt.date, first: str, last: str) -> bool:
    day = moment.date() if isinstance(moment, dt.datetime) else moment
    return dt.date.fromisoformat(first) <= day <= dt.date.fromisoformat(last)


async def towers(world: World) -> dict[Any, str]:
    codes = {b["id"]: b["code"] for b in await Building.select().where(Building.site == world.site_id)}
    return {u["id"]: codes[u["building"]] for u in await Unit.select().where(Unit.site == world.site_id)}


async def test_every_report_reconciles_with_the_seeded_month_for_each_filter(client: Any, world: World) -> None:
    seeded: Seeded = await seed_month(world)
    tower_of = await towers(world)
    tech = world.people["technician"]

    # visitors: rows per filter, then the summary by type (count, p50/p90 approval, overstays)
    visits = seeded.visits
    cases: list[tuple[dict[str, str], list[dict[str, Any]]]] = [
        (IN_MONTH, visits),
        (PART, [v for v in visits if within(v["created_at"], PART["from"], PART["to"])]),
        ({"tower": "B"}, [v for v in visits if tower_of[v["unit"]] == "B"]),
        ({"category": "delivery"}, [v for v in visits if v["kind"] == "delivery"]),
        ({"status": "inside"}, [v for v in visits if v["status"] == "inside"]),
        ({"person": str(world.people["guard"])}, visits),
        ({"person": str(tech)}, []),
    ]
    for params, expected in cases:
        rows = await export(client, world, "visitors", params)
        assert sorted(r["id"] for r in rows) == sorted(str(v["id"]) for v in expected), ("visitors", params)
    summary = {r["type"]: r for r in await export(client, world, "visitors", {**IN_MONTH, "by": "type"})}
    for kind in ("guest", "delivery", "daily_help"):
        mine = [v for v in visits if v["kind"] == kind]
        times = sorted(v["ms"] for v in mine if v["ms"] is not None)
        assert int(summary[kind]["visits"]) == len(mine)
        assert int(summary[kind]["overstays"]) == sum(v["overstay"] for v in mine)
        p90 = nearest_rank(times, 90)
        assert summary[kind]["approval_p90_seconds"] == (
            str((Decimal(p90) / 1000).quantize(Decimal("0.01"))) if p90 is not None else ""
        )
    rungs = {r["rung"]: int(r["visits"]) for r in await export(client, world, "visitors", {"by": "rung"})}
    expected_rungs = Counter(str(v["rung"]) if v["rung"] is not None else "" for v in visits)
    assert rungs == dict(expected_rungs)

    # complaints and SLA
    complaints = seeded.complaints
    now = dt.datetime.now(dt.UTC)
    for params, expected in [
        (IN_MONTH, complaints),
        (PART, [c for c in complaints if within(c["created_at"], PART["from"], PART["to"])]),
        ({"tower": "A"}, [c for c in complaints if c["unit"] is not None and tower_of[c["unit"]] == "A"]),
        ({"category": "electrical"}, [c for c in complaints if c["category"] == "electrical"]),
        ({"status": "resolved"}, [c for c in complaints if c["status"] == "resolved"]),
        ({"person": str(tech)}, [c for c in complaints if c["assignee"] == tech]),
    ]:
        rows = await export(client, world, "complaints", params)
        assert sorted(r["id"] for r in rows) == sorted(str(c["id"]) for c in expected), ("complaints", params)
    by_category = {r["category"]: r for r in await export(client, world, "complaints", {"by": "category"})}
    for code in ("plumbing", "electrical"):
        mine = [c for c in complaints if c["category"] == code]
        live = [c for c in mine if c["status"] != "cancelled"]
        breached = sum(
            1 for c in live if (c["responded"] or c["resolved"] or now) > c["created_at"] + dt.timedelta(minutes=60)
        )
        assert int(by_category[code]["complaints"]) == len(mine)
        assert int(by_category[code]["response_breached"]) == breached
        rated = [c["rating"] for c in mine if c["rating"] is not None]
        assert int(by_category[code]["ratings"]) == len(rated)
    by_level = {
        r["escalation_level"]: int(r["complaints"])
        for r in await export(client, world, "complaints", {"by": "escalation_level"})
    }
    assert by_level == {str(k): v for k, v in Counter(c["escalation_level"] for c in complaints).items()}

    # bookings and utilisation
    bookings = seeded.bookings
    for params, expected_count in [
        (IN_MONTH, len(bookings)),
        (PART, sum(within(b["starts_at"], PART["from"], PART["to"]) for b in bookings)),
        ({"tower": "B"}, sum(tower_of[b["unit"]] == "B" for b in bookings)),
        ({"category": "pool"}, sum(b["resource"] == "pool" for b in bookings)),
        ({"status": "no_show"}, sum(b["status"] == "no_show" for b in bookings)),
        ({"person": str(world.people["occupant"])}, sum(b["unit"] == world.unit_ids[0] for b in bookings)),
    ]:
        assert len(await export(client, world, "bookings", params)) == expected_count, ("bookings", params)
    per_resource = {r["resource"]: r for r in await export(client, world, "bookings", {"by": "resource"})}
    for code in ("gym", "pool"):
        mine = [b for b in bookings if b["resource"] == code]
        held = sum(b["minutes"] for b in mine if b["status"] != "cancelled") / 60
        assert int(per_resource[code]["bookings"]) == len(mine)
        assert per_resource[code]["held_hours"] == f"{held:.2f}"
        assert int(per_resource[code]["no_shows"]) == sum(b["status"] == "no_show" for b in mine)

    # notifications and delivery
    deliveries = seeded.deliveries
    for params, expected_count in [
        (IN_MONTH, len(deliveries)),
        (PART, sum(within(d["created_at"], PART["from"], PART["to"]) for d in deliveries)),
        ({"category": "sms"}, sum(d["channel"] == "sms" for d in deliveries)),
        ({"status": "failed"}, sum(d["status"] == "failed" for d in deliveries)),
        ({"person": str(world.people["neighbour"])}, 5),
    ]:
        assert len(await export(client, world, "notifications", params)) == expected_count, ("notifications", params)
    per_channel = {r["channel"]: r for r in await export(client, world, "notifications", {"by": "channel"})}
    for channel in ("push", "sms", "email", "in_app", "whatsapp"):
        counts = Counter(d["status"] for d in deliveries if d["channel"] == channel)
        row = per_channel[channel]
        assert int(row["sent"]) == counts["sent"] + counts["delivered"]
        for status in ("delivered", "failed", "suppressed", "deferred", "digested"):
            assert int(row[status]) == counts[status], (channel, status)
    failed = {
        r["provider_code"]: int(r["failed"])
        for r in await export(client, world, "notifications", {"by": "provider_code"})
    }
    assert failed.get("30006", 0) == sum(d["status"] == "failed" for d in deliveries)

    # billing and collections
    invoices = seeded.invoices
    today = dt.datetime.now(dt.UTC).date()
    for params, expected_count in [
        (IN_MONTH, len(invoices)),
        (PART, sum(within(i["issue_date"], PART["from"], PART["to"]) for i in invoices)),
        ({"tower": "A"}, sum(tower_of[i["unit"]] == "A" for i in invoices)),
        ({"status": "paid"}, sum(i["status"] == "paid" for i in invoices)),
        ({"category": "2026-11"}, len(invoices)),
    ]:
        assert len(await export(client, world, "billing", params)) == expected_count, ("billing", params)
    ageing = {r["ageing"]: r for r in await export(client, world, "billing", {"by": "ageing"})}
    expected_ageing: dict[str, int] = Counter()
    for invoice in invoices:
        owed = invoice["total"] - invoice["settled"]
        if owed:
            expected_ageing[bucket_of((today - invoice["due_date"]).days)] += owed
    for bucket, owed in expected_ageing.items():
        assert ageing[bucket]["outstanding"] == f"{owed / 100:.2f}", bucket
    totals = await export(client, world, "billing", {"by": "status"})
    assert sum(float(r["billed"]) for r in totals) == sum(i["total"] for i in invoices) / 100
    assert round(sum(float(r["collected"]) for r in totals), 2) == sum(i["settled"] for i in invoices) / 100

    # permits: turnaround per step
    steps = seeded.steps
    for params, expected_count in [
        (IN_MONTH, sum(within(s["at"], IN_MONTH["from"], IN_MONTH["to"]) for s in steps)),
        (PART, sum(within(s["at"], PART["from"], PART["to"]) for s in steps)),
        ({"tower": "B"}, sum(tower_of[s["unit"]] == "B" for s in steps)),  # no date: December's steps too
        ({"category": "hot-work"}, sum(s["type"] == "hot-work" for s in steps)),
        ({"status": "approved"}, sum(s["action"] == "approved" for s in steps)),
        ({"person": str(world.people["fm_admin"])}, sum(s["actor"] == world.people["fm_admin"] for s in steps)),
    ]:
        assert len(await export(client, world, "permits", params)) == expected_count, ("permits", params)
    per_step = {r["step"]: r for r in await export(client, world, "permits", {"by": "step"})}
    for label in ("FM", "Security"):
        gaps = sorted(s["turnaround"] for s in steps if s["label"] == label)
        assert int(per_step[label]["steps"]) == len(gaps)
        assert int(per_step[label]["turnaround_p50_minutes"]) == nearest_rank(gaps, 50)
        assert int(per_step[label]["turnaround_p90_minutes"]) == nearest_rank(gaps, 90)

    # AMC
    amc = seeded.amc_visits
    for params, expected_count in [
        (IN_MONTH, len(amc)),
        (PART, sum(within(v["due_on"], PART["from"], PART["to"]) for v in amc)),
        ({"tower": "A"}, sum(v["building"] == world.building_ids[0] for v in amc)),
        ({"category": "lift"}, sum(v["kind"] == "lift" for v in amc)),
        ({"status": "done"}, sum(v["status"] == "done" for v in amc)),
        ({"person": str(tech)}, sum(v["by"] == tech for v in amc)),
    ]:
        assert len(await export(client, world, "amc", params)) == expected_count, ("amc", params)
    per_kind = {r["category"]: r for r in await export(client, world, "amc", {"by": "category"})}
    for kind in ("lift", "dg_set"):
        mine = [v for v in amc if v["kind"] == kind]
        assert int(per_kind[kind]["on_time"]) == sum(v["on_time"] for v in mine)
        assert int(per_kind[kind]["overdue"]) == sum(v["status"] == "scheduled" for v in mine)  # all past grace
        assert int(per_kind[kind]["contract_expiring"]) == (
            len(mine) if 0 <= (dt.date(2026, 12, 20) - today).days <= 30 else 0
        )

    # attendance: present, late, absent per person and shift
    for params in (IN_MONTH, PART, {**IN_MONTH, "person": str(tech)}, {**IN_MONTH, "status": "late"}):
        rows = await export(client, world, "attendance", params)
        expected = [
            (member["name"], day.isoformat(), status)
            for member in seeded.staff
            if "person" not in params or str(member["person"]) == params["person"]
            for day, status in member["days"]
            if within(day, params["from"], params["to"]) and params.get("status", status) == status
        ]
        assert sorted((r["person"], r["day"], r["status"]) for r in rows) == sorted(expected), params
    per_person = {r["person"]: r for r in await export(client, world, "attendance", {**IN_MONTH, "by": "person"})}
    for member in seeded.staff:
        counted = Counter(status for _, status in member["days"])
        for status in ("present", "late", "absent"):
            assert int(per_person[member["name"]][status]) == counted[status]


async def test_a_filter_a_report_does_not_take_is_refused_by_name(client: Any, world: World) -> None:
    refused = await client.get("/api/reports/notifications", params={"tower": "A"}, headers=world.headers("fm_admin"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0] == {
        "field": "tower",
        "message": refused.json()["errors"][0]["message"],
        "source": "query",
    }
    bad_by = await client.get("/api/reports/visitors", params={"by": "colour"}, headers=world.headers("fm_admin"))
    assert bad_by.status_code == 422 and bad_by.json()["errors"][0]["field"] == "by"
    backwards = await client.get(
        "/api/reports/visitors", params={"from": "2026-11-02", "to": "2026-11-01"}, headers=world.headers("fm_admin")
    )
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "to"
    too_far = await client.get("/api/reports/visitors", params={"to": "9999-12-31"}, headers=world.headers("fm_admin"))
    assert too_far.status_code == 422 and too_far.json()["errors"][0]["field"] == "to"
    not_a_date = await client.get("/api/reports/visitors", params={"from": "soon"}, headers=world.headers("fm_admin"))
    assert not_a_date.status_code == 422 and not_a_date.json()["errors"][0]["field"] == "from"
    site = await client.get(
        "/api/reports/visitors", params={"site": str(world.site_id)}, headers=world.headers("fm_admin")
    )
    assert site.status_code == 422 and site.json()["errors"][0]["field"] == "site"


async def test_roles_see_only_their_rows_in_every_report_view_and_export(
    client: Any, world: World, other_world: World
) -> None:
    seeded = await seed_month(world, size=12)
    await seed_month(other_world, size=4)
    own_unit = world.unit_ids[0]
    unit_labels = {u["id"]: u["label"] for u in await Unit.select().where(Unit.site == world.site_id)}
    listed = await client.get("/api/reports", headers=world.headers("occupant"))
    assert {r["name"] for r in listed.json()["items"]} == {"visitors", "complaints", "bookings", "billing", "permits"}
    for name in ("visitors", "complaints", "bookings", "billing", "permits"):
        own = await export(client, world, name, {}, who="occupant")
        assert {r["unit"] for r in own} <= {unit_labels[own_unit]}, name
        for params in ({"tower": "B"}, {"person": str(world.people["neighbour"])}, {"tower": "A"}):
            if name in ("billing", "bookings") and "person" in params:
                continue
            rows = await export(client, world, name, params, who="occupant")
            assert {r["unit"] for r in rows} <= {unit_labels[own_unit]}, (name, params)
        summary = await export(client, world, name, {"by": "tower"}, who="occupant")
        first_measure = catalogue()[name].measures[0].name
        assert sum(int(r[first_measure]) for r in summary) == len(own), name
        page = await client.get(f"/api/reports/{name}", params={"limit": 500}, headers=world.headers("occupant"))
        assert {r["unit"] for r in page.json()["items"]} <= {unit_labels[own_unit]}, name
        xlsx = await client.get(
            f"/api/reports/{name}/export", params={"format": "xlsx"}, headers=world.headers("occupant")
        )
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True).active
        header = [c.value for c in next(sheet.iter_rows(max_row=1))]
        at = [c.label for c in catalogue()[name].columns].index("Unit")
        assert {row[at] for row in sheet.iter_rows(min_row=2, values_only=True)} <= {unit_labels[own_unit]}, header
    mine = sum(c["unit"] == own_unit for c in seeded.complaints)
    assert len(await export(client, world, "complaints", {}, who="occupant")) == mine
    for name in ("notifications", "amc", "attendance"):
        refused = await client.get(f"/api/reports/{name}", headers=world.headers("occupant"))
        assert refused.status_code == 403, name

    # a technician: only complaints assigned to them, visits they completed, their own duties
    tech = world.people["technician"]
    rows = await export(client, world, "complaints", {}, who="technician")
    assert len(rows) == sum(c["assignee"] == tech for c in seeded.complaints)
    assert {r["technician"] for r in rows} <= {"Technician"}
    assert len(await export(client, world, "amc", {}, who="technician")) == sum(
        v["by"] == tech for v in seeded.amc_visits
    )
    duties = await export(client, world, "attendance", IN_MONTH, who="technician")
    assert duties and {r["person"] for r in duties} == {"Technician"}
    assert (await client.get("/api/reports/visitors", headers=world.headers("technician"))).status_code == 403

    # FM staff: their own site only; a platform admin: every site, or the one named
    fm_total = len(await export(client, world, "complaints", {}))
    assert fm_total == len(seeded.complaints)
    everywhere = len(await export(client, world, "complaints", {}, who="platform_admin"))
    assert everywhere >= fm_total + 4
    one = await export(client, world, "complaints", {"site": str(other_world.site_id)}, who="platform_admin")
    assert len(one) == 4


async def test_xlsx_has_typed_cells_a_frozen_header_and_widths(client: Any, world: World) -> None:
    await seed_month(world, size=8)
    response = await client.get(
        "/api/reports/billing/export", params={"format": "xlsx"}, headers=world.headers("fm_admin")
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["A"].width >= 10
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Number", "Issue date", "Due date"]
    first = [c.value for c in sheet[2]]
    assert isinstance(first[1], dt.datetime) and isinstance(first[7], float)
    assert sheet.max_row == 9
    visits = await client.get(
        "/api/reports/visitors/export", params={"format": "xlsx"}, headers=world.headers("fm_admin")
    )
    rows = list(openpyxl.load_workbook(io.BytesIO(visits.content)).active.iter_rows(min_row=2, values_only=True))
    assert all(isinstance(r[2], int) and isinstance(r[13], bool) for r in rows)


async def test_an_export_job_tells_its_progress_and_its_link_expires_with_the_file(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    from app.reports import jobs
    from realtime import history
    from realtime.topics import user_topic

    seeded = await seed_month(world, size=24)
    asked = await client.post(
        "/api/reports/complaints/jobs", json={"format": "xlsx", "from": "2026-11-01"}, headers=world.headers("fm_admin")
    )
    assert asked.status_code == 202, asked.text
    job_id = asked.json()["id"]
    assert asked.json()["status"] == "pending" and asked.json()["download_url"] is None
    other = await client.get(f"/api/reports/jobs/{job_id}", headers=world.headers("site_admin"))
    assert other.status_code == 404
    refused = await client.post("/api/reports/complaints/jobs", json={"tower": "A"}, headers=world.headers("guard"))
    assert refused.status_code == 403
    bad = await client.post("/api/reports/notifications/jobs", json={"tower": "A"}, headers=world.headers("fm_admin"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "tower"

    topic = user_topic(world.people["fm_admin"])
    before = (await history.read_since(redis, settings, topic, None)).position.seq
    built = await jobs.build(settings, redis, UUID(job_id), batch=5, progress_every=10)
    assert built is not None and built.status == "ready" and built.rows == len(seeded.complaints)
    events = [json_frame(f) for _, f in (await history.read_since(redis, settings, topic, before)).entries]
    progress = [e["data"]["rows"] for e in events if e["type"] == "report.export.progress"]
    assert progress == [10, 20]
    ready = [e["data"] for e in events if e["type"] == "report.export.ready"]
    assert len(ready) == 1 and ready[0]["rows"] == len(seeded.complaints)
    link = ready[0]["download_url"].split("://", 1)[1].split("/", 1)[1]
    got = await client.get(f"/{link}")
    assert got.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(got.content)).active
    assert sheet.max_row == len(seeded.complaints) + 1
    assert isinstance(sheet["B2"].value, dt.datetime)
    tampered = await client.get(f"/{link[:-4]}beef")
    assert tampered.status_code == 404
    status = await client.get(f"/api/reports/jobs/{job_id}", headers=world.headers("fm_admin"))
    assert status.json()["status"] == "ready" and status.json()["download_url"]

    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.report_file_ttl_seconds + 1)
    assert await jobs.expire_files(settings, now=later) >= 1
    from app.privacy.exports import archive_path

    assert not archive_path(settings, f"reports/{world.site_id}/{job_id}.xlsx").exists()
    gone = await client.get(f"/{link}")
    assert gone.status_code == 410


def json_frame(frame: str) -> dict[str, Any]:
    import json

    return dict(json.loads(frame))


async def test_a_weekly_report_arrives_by_email_with_its_attachment_unless_consent_was_withdrawn(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    from app.auth.roles import Role
    from app.reports import schedules
    from notifications import fanout, sender
    from notifications.categories import Category, Channel
    from notifications.fakes import running_fakes
    from notifications.preferences import ConsentChange, change_consent
    from schema.notifications import Delivery, Notification
    from tests.support.notify import pipeline

    seeded = await seed_month(world, size=24)
    await world.add_person("fm_two", frozenset({Role.FM_ADMIN}))
    for who in ("fm_admin", "fm_two"):
        made = await client.post(
            "/api/reports/subscriptions",
            json={"report": "complaints", "frequency": "weekly"},
            headers=world.headers(who),
        )
        assert made.status_code == 201, made.text
        assert made.json()["by"] == "category" and made.json()["format"] == "xlsx"
    again = await client.post(
        "/api/reports/subscriptions",
        json={"report": "complaints", "frequency": "weekly"},
        headers=world.headers("fm_admin"),
    )
    assert again.status_code == 409
    wrong = await client.post(
        "/api/reports/subscriptions",
        json={"report": "complaints", "frequency": "weekly", "by": "colour"},
        headers=world.headers("fm_admin"),
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "by"
    await change_consent(
        site_id=world.site_id,
        person_id=world.people["fm_two"],
        changes=[ConsentChange(Channel.EMAIL, Category.REPORT, granted=False)],
        source="app",
        policy_version="test",
    )

    monday = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)  # the controlled clock: the week of 23-29 Nov ended
    async with running_fakes() as fakes, pipeline(settings, redis, fakes) as ctx:
        # (the cron sends every site's subscriptions: other tests' may be in the database too)
        assert await schedules.run(ctx.settings, now=monday) >= 2
        await schedules.run(ctx.settings, now=monday + dt.timedelta(hours=1))  # sent once a period
        sent = await Notification.select().where(
            (Notification.site == world.site_id) & (Notification.category == "report")
        )
        assert len(sent) == 2
        for notification in sent:
            for channel in await fanout.expand(ctx, notification["id"]):
                await sender.send_pending(ctx, notification["id"], channel)
        ids = [n["id"] for n in sent]
        mine = await Delivery.select().where(
            (Delivery.person == world.people["fm_admin"]) & Delivery.notification.is_in(ids)
        )
        assert [(d["status"], d["reason"]) for d in mine] == [("sent", None)]
        emails = list(fakes.smtp.emails)
    assert [e.rcpt_tos for e in emails] == [[world.emails["fm_admin"]]]
    email = emails[0]
    assert email.subject == "Complaints and SLA: 23 Nov to 29 Nov 2026"
    assert len(email.attachments) == 1
    attachment = email.attachments[0]
    assert attachment.filename == "complaints-2026-11-23-to-2026-11-29.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.content)).active
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    week = [c for c in seeded.complaints if within(c["created_at"], "2026-11-23", "2026-11-29")]
    assert {k: v[1] for k, v in rows.items()} == dict(Counter(c["category"] for c in week))
    withdrawn = await Delivery.select().where(
        (Delivery.person == world.people["fm_two"]) & Delivery.notification.is_in(ids)
    )
    assert [(d["channel"], d["status"], d["reason"]) for d in withdrawn] == [("email", "suppressed", "no_consent")]
    listed = await client.get("/api/reports/subscriptions", headers=world.headers("fm_admin"))
    assert listed.json()["items"][0]["last_period_end"] == "2026-11-29"
    gone = await client.delete(
        f"/api/reports/subscriptions/{listed.json()['items'][0]['id']}", headers=world.headers("fm_admin")
    )
    assert gone.status_code == 204


async def test_the_control_rooms_delivery_figures_are_the_reports(client: Any, world: World) -> None:
    from app.dashboard import service as dashboard

    await seed_month(world, size=8)
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    board = await dashboard.delivery_funnel(world.site_id, now, days=20)
    params = {"from": "2026-11-10", "to": "2026-11-30", "by": "channel"}
    report = {r["channel"]: r for r in await export(client, world, "notifications", params)}
    assert {c.channel for c in board.channels} == set(report)
    for channel in board.channels:
        row = report[channel.channel]
        assert (channel.requested, channel.sent, channel.delivered, channel.failed) == (
            int(row["rows"]),
            int(row["sent"]),
            int(row["delivered"]),
            int(row["failed"]),
        )
        assert (channel.suppressed, channel.deferred) == (int(row["suppressed"]), int(row["deferred"]))
    reasons = {
        r["reason"]: int(r["suppressed"])
        for r in await export(client, world, "notifications", {**params, "by": "reason", "category": "sms"})
        if int(r["suppressed"])
    }
    assert next(c for c in board.channels if c.channel == "sms").suppressed_by_reason == reasons


async def test_a_persons_reports_are_in_their_data_export_and_erased_with_them(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    from app.people.directory import directory_for
    from app.privacy.registry import PersonScope, load_registries
    from app.reports import jobs
    from schema.reports import ReportExport, ReportSubscription

    headers = world.headers("fm_admin")
    made = await client.post(
        "/api/reports/subscriptions", json={"report": "visitors", "frequency": "monthly"}, headers=headers
    )
    assert made.status_code == 201
    asked = await client.post("/api/reports/visitors/jobs", json={"format": "csv"}, headers=headers)
    built = await jobs.build(settings, redis, UUID(asked.json()["id"]))
    assert built is not None and built.status == "ready"
    section = load_registries()[0]["reports"]
    scope = PersonScope(
        site_id=world.site_id,
        person_id=world.people["fm_admin"],
        settings=settings,
        directory=directory_for(settings),
        redis=redis,
    )
    assert sorted(r["record"] for r in await section.export(scope)) == ["report_export", "scheduled_report"]
    row = await ReportExport.select().where(ReportExport.id == UUID(asked.json()["id"])).first()
    from app.privacy.exports import archive_path

    assert row is not None and archive_path(settings, row["file_key"]).exists()
    outcome = await section.erase(scope)
    assert outcome.erased == 2 and not archive_path(settings, row["file_key"]).exists()
    assert await ReportSubscription.count().where(ReportSubscription.person == world.people["fm_admin"]) == 0


async def test_the_control_rooms_complaint_trend_and_approval_times_are_the_reports(client: Any, world: World) -> None:
    from app.dashboard import service as dashboard

    await seed_month(world)
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)

    approvals = await dashboard.approval_times(world.site_id, now, days=20)
    params = {"from": "2026-11-10", "to": "2026-11-30"}
    by_approval = {r["approval"]: r for r in await export(client, world, "visitors", {**params, "by": "approval"})}
    approved = by_approval["approved"]  # the seeded walk-ins are all approved
    assert approvals.count == int(approved["visits"]) > 0
    assert approvals.by_decision == {"approved": approvals.count}
    for board_ms, figure in ((approvals.p50_ms, "approval_p50_seconds"), (approvals.p90_ms, "approval_p90_seconds")):
        assert board_ms is not None
        assert (Decimal(board_ms) / 1000).quantize(Decimal("0.01")) == Decimal(approved[figure])

    trend = await dashboard.complaint_trend(world.site_id, now, days=20)
    zone = await dashboard.site_zone(world.site_id)
    start = dt.datetime.combine(trend.days[0].date, dt.time(), tzinfo=zone)
    rows = await export(client, world, "complaints", {"from": str(start.astimezone(dt.UTC).date()), "to": "2026-11-30"})
    raised: Counter[dt.date] = Counter()
    outcome: Counter[tuple[dt.date, str]] = Counter()
    for row in rows:
        created = dt.datetime.fromisoformat(row["created_at"])
        if start <= created <= now:
            day = created.astimezone(zone).date()
            raised[day] += 1
            outcome[day, row["sla"]] += 1
    assert sum(raised.values()) > 0 and any(outcome[key] for key in outcome if key[1] == "breached")
    for entry in trend.days:
        assert (entry.raised, entry.met, entry.breached) == (
            raised[entry.date],
            outcome[entry.date, "met"],
            outcome[entry.date, "breached"],
        ), entry.date
