"""The personal-data audit log: who read or changed whose data, when, and through which endpoint;
site admins search and export it; nothing in the API edits or deletes it."""

from __future__ import annotations

import csv
import io
from typing import Any

from schema.privacy import AuditEvent
from tests.support.world import World


async def test_reads_and_changes_are_recorded_with_actor_and_endpoint(client: Any, world: World) -> None:
    occupant = world.people["occupant"]
    read = await client.get(f"/api/occupants/{occupant}", headers=world.headers("fm_admin"))
    assert read.status_code == 200
    changed = await client.patch(
        f"/api/occupants/{occupant}", json={"primary_mobile": "+919812345670"}, headers=world.headers("fm_admin")
    )
    assert changed.status_code == 200, changed.text
    mine = await client.get("/api/me/data", headers=world.headers("occupant"))
    assert mine.status_code == 200
    rows = await AuditEvent.select().where(AuditEvent.subject_id == occupant).order_by(AuditEvent.at)
    seen = {(r["actor_id"], r["action"], r["data"], r["method"], r["route"]) for r in rows}
    fm = world.people["fm_admin"]
    assert (fm, "read", "contact_points", "GET", "/api/occupants/{occupant_id}") in seen
    assert (fm, "write", "contact_points", "PATCH", "/api/occupants/{occupant_id}") in seen
    assert (occupant, "read", "contact_points", "GET", "/api/me/data") in seen
    assert (occupant, "read", "profile", "GET", "/api/me/data") in seen
    # One row per subject, action and data per request, and no personal value in any of them.
    keys = [(r["actor_id"], r["action"], r["data"], r["method"], r["route"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(seen)
    assert all("9812345670" not in str(r) for r in rows)


async def test_search_filters_by_person_actor_and_dates_and_exports_csv(client: Any, world: World) -> None:
    occupant, guard = world.people["occupant"], world.people["guard"]
    await client.get(f"/api/occupants/{occupant}", headers=world.headers("fm_admin"))
    await client.get("/api/me/data", headers=world.headers("guard"))
    admin = world.headers("site_admin")

    by_person = (await client.get(f"/api/privacy/audit?person_id={occupant}", headers=admin)).json()
    assert by_person["total"] >= 1 and {i["subject_id"] for i in by_person["items"]} == {str(occupant)}
    by_actor = (await client.get(f"/api/privacy/audit?actor_id={guard}", headers=admin)).json()
    assert {i["subject_id"] for i in by_actor["items"]} == {str(guard)}
    assert {i["actor_id"] for i in by_actor["items"]} == {str(guard)}
    first = by_person["items"][-1]["at"]
    future = await client.get(f"/api/privacy/audit?person_id={occupant}&since=2099-01-01T00:00:00Z", headers=admin)
    assert future.json()["total"] == 0
    past = await client.get("/api/privacy/audit", params={"person_id": str(occupant), "until": first}, headers=admin)
    assert past.json()["total"] == 0
    bad = await client.get("/api/privacy/audit?since=yesterday", headers=admin)
    assert bad.status_code == 400

    exported = await client.get(f"/api/privacy/audit/export.csv?person_id={occupant}", headers=admin)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == by_person["total"]
    assert {r["route"] for r in rows} >= {"/api/occupants/{occupant_id}"}
    # Only site admins see the log, and only their own site's.
    assert (await client.get("/api/privacy/audit", headers=world.headers("fm_admin"))).status_code == 403


async def test_the_audit_log_cannot_be_edited_or_deleted_through_the_api(client: Any, app: Any, world: World) -> None:
    await client.get("/api/me/data", headers=world.headers("occupant"))
    row = await AuditEvent.select(AuditEvent.id).where(AuditEvent.subject_id == world.people["occupant"]).first()
    assert row is not None
    for who in ("site_admin", "platform_admin"):
        headers = world.headers(who)
        for method in ("PUT", "PATCH", "DELETE"):
            for path in ("/api/privacy/audit", f"/api/privacy/audit/{row['id']}", "/api/privacy/audit/export.csv"):
                response = await client.request(method, path, headers=headers, json={"action": "read"})
                assert response.status_code in (404, 405), (method, path, response.status_code)
    # No route of the whole API writes to the audit path except GET.
    schema = app.openapi_schema.to_schema()
    for path, item in schema["paths"].items():
        if "/audit" in path:
            assert set(item) <= {"get"}, (path, set(item))
    assert await AuditEvent.exists().where(AuditEvent.id == row["id"])
