"""Permits: types and their declared fields, applying, the approval chain (two approvers in order,
any-of a group, four eyes), rejection with a reason, send-back and resubmission, each step recorded
and told to the applicant through NOTIFY, cancellation and revocation, dues for move-out, attachments."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from uuid import UUID

import pytest

from app.auth.roles import Role
from app.errors import Conflict, Forbidden, InvalidInput
from app.permits import dues, service, types
from app.permits.lifecycle import Status
from realtime.topics import site_topic, unit_topic, user_topic
from schema.jsonvalue import as_dict
from schema.notifications import Notification
from schema.permits import PermitStep
from tests.support.permits import (
    FIT_OUT_VALUES,
    FROM,
    PLAIN_PDF,
    T0,
    UNTIL,
    fit_out_input,
    jpeg,
    pdf_with,
    pdf_with_compressed_objects,
    principal,
    submitted_fit_out,
    topic_events,
)
from tests.support.world import World


async def _notes_to(person_id: UUID, site_id: UUID) -> list[dict[str, Any]]:
    rows = (
        await Notification.select()
        .where((Notification.site == site_id) & (Notification.category == "permit"))
        .order_by(Notification.created_at)
    )
    return [r for r in rows if str(person_id) in as_dict(r["audience"]).get("person_ids", [])]


async def _steps(permit_id: UUID) -> list[tuple[int, int | None, str, UUID | None]]:
    rows = await PermitStep.select().where(PermitStep.permit == permit_id).order_by(PermitStep.version)
    return [(r["round"], r["step"], r["action"], r["actor"]) for r in rows]


# ------------------------------------------------------------------------------ types


async def test_a_site_gets_the_six_default_types_with_their_fields(client: Any, world: World) -> None:
    response = await client.get("/api/permits/types", headers=world.headers("occupant"))
    assert response.status_code == 200, response.text
    page = response.json()
    kinds = {t["kind"] for t in page["items"]}
    assert kinds == set(types.KINDS) and page["total"] == 6
    fit_out = next(t for t in page["items"] if t["code"] == "fit_out")
    assert [s["role"] for s in fit_out["chain"]] == ["fm_admin", "site_admin"]
    assert {a["key"] for a in fit_out["attachments"]} == {"drawing", "insurance"}
    assert next(t for t in page["items"] if t["code"] == "move_out")["requires_dues_cleared"] is True
    # Reading again does not add them twice.
    again = await client.get("/api/permits/types", headers=world.headers("fm_admin"))
    assert again.json()["total"] == 6


async def test_types_are_edited_by_staff_and_checked(client: Any, world: World) -> None:
    listed = (await client.get("/api/permits/types", headers=world.headers("fm_admin"))).json()["items"]
    vendor = next(t for t in listed if t["code"] == "vendor_access")
    body = {k: vendor[k] for k in ("kind", "name", "fields", "attachments", "declarations", "chain", "max_days")}
    body["fields"] = [*body["fields"], {"key": "shift", "label": "Shift", "type": "choice"}]
    bad = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("fm_admin"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "fields[2].choices", bad.text
    body["fields"][-1]["choices"] = ["day", "night"]
    body["chain"] = [{"label": "Security head", "role": "guard", "person_ids": [str(world.people["guard"])]}]
    both = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("fm_admin"))
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "chain[0]", both.text
    body["chain"] = [{"label": "Security head", "person_ids": [str(world.people["occupant"])]}]
    not_staff = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("fm_admin"))
    assert not_staff.status_code == 422
    assert not_staff.json()["errors"][0]["field"] == "chain[0].person_ids[0]", not_staff.text
    body["chain"] = [{"label": "Security head", "person_ids": [str(world.people["guard"])]}]
    ok = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("fm_admin"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["fields"][-1]["choices"] == ["day", "night"]
    refused = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("occupant"))
    assert refused.status_code == 403
    created = await client.post(
        "/api/permits/types",
        json={**body, "code": "lift_booking", "name": "Lift booking"},
        headers=world.headers("fm_admin"),
    )
    assert created.status_code == 201, created.text
    twice = await client.post(
        "/api/permits/types",
        json={**body, "code": "lift_booking", "name": "Lift booking"},
        headers=world.headers("fm_admin"),
    )
    assert twice.status_code == 409


def test_values_are_checked_against_the_declared_fields() -> None:
    fields = types.DEFAULT_TYPES["working_at_height"].fields
    ok = types.validate_values(fields, {"height_m": 12, "equipment": "scaffold", "harness": True}, complete=True)
    assert ok == {"height_m": 12, "equipment": "scaffold", "harness": True}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"height_m": 1, "equipment": "scaffold", "harness": True}, "values.height_m"),
        ({"height_m": "tall", "equipment": "scaffold", "harness": True}, "values.height_m"),
        ({"height_m": True, "equipment": "scaffold", "harness": True}, "values.height_m"),
        ({"height_m": 12, "equipment": "crane", "harness": True}, "values.equipment"),
        ({"height_m": 12, "equipment": "scaffold", "harness": False}, "values.harness"),
        ({"height_m": 12, "equipment": "scaffold"}, "values.harness"),
        ({"height_m": 12, "equipment": "scaffold", "harness": True, "colour": "red"}, "values.colour"),
    ]
    for values, field in cases:
        with pytest.raises(InvalidInput) as refused:
            types.validate_values(fields, values, complete=True)
        assert refused.value.errors is not None and refused.value.errors[0].field == field, (values, refused.value)
    # A draft may be incomplete, but what it holds must be right.
    assert types.validate_values(fields, {"height_m": 3}, complete=False) == {"height_m": 3}
    with pytest.raises(InvalidInput):
        types.validate_values(fields, {"height_m": 1}, complete=False)
    text = types.DEFAULT_TYPES["fit_out"].fields
    with pytest.raises(InvalidInput) as control:
        types.validate_values(text, {"contractor": "Sharma\x00 Interiors"}, complete=False)
    assert control.value.errors is not None and control.value.errors[0].field == "values.contractor"


# ------------------------------------------------------------------------------ applying


async def test_an_occupant_applies_attaches_and_submits_over_http(client: Any, world: World) -> None:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    body = {
        "type": "fit_out",
        "title": "Kitchen remodel",
        "unit_id": str(world.unit_ids[0]),
        "valid_from": start.isoformat(),
        "valid_until": (start + dt.timedelta(days=2)).isoformat(),
        "values": {"scope_of_work": "Counter and tiles", "contractor": "Sharma Interiors"},
        "declarations": ["hours"],
        "people": [{"name": "Ravi Kumar", "phone": "98123 45678"}],
    }
    headers = world.headers("occupant")
    created = await client.post("/api/permits", json=body, headers=headers)
    assert created.status_code == 201, created.text
    permit = created.json()
    assert permit["status"] == "draft" and permit["reference"].startswith("P-")
    assert permit["people"][0]["phone"] == "+919812345678" and permit["people"][0]["phone_hint"] == "…5678"
    assert set(permit["missing"]) == {
        "values.debris",
        "attachments.drawing",
        "declarations.structure",
        "declarations.damage",
    }
    early = await client.post(f"/api/permits/{permit['id']}/submit", json={}, headers=headers)
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "values.debris", early.text
    edited = await client.put(
        f"/api/permits/{permit['id']}",
        json={
            **{k: v for k, v in body.items() if k != "type"},
            "values": {**body["values"], "debris": "contractor removes daily"},
            "declarations": ["hours", "structure", "damage"],
            "version": permit["version"],
        },
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    no_drawing = await client.post(f"/api/permits/{permit['id']}/submit", json={}, headers=headers)
    assert no_drawing.status_code == 422 and no_drawing.json()["errors"][0]["field"] == "attachments.drawing"
    wrong_slot = await client.post(
        f"/api/permits/{permit['id']}/attachments",
        files={"file": ("d.jpg", jpeg(), "image/jpeg")},
        data={"slot": "passport"},
        headers=headers,
    )
    assert wrong_slot.status_code == 422 and wrong_slot.json()["errors"][0]["field"] == "slot"
    uploaded = await client.post(
        f"/api/permits/{permit['id']}/attachments",
        files={"file": ("d.pdf", PLAIN_PDF, "application/pdf")},
        data={"slot": "drawing"},
        headers=headers,
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["media_type"] == "application/pdf"
    download = await client.get(
        f"/api/permits/{permit['id']}/attachments/{uploaded.json()['id']}", headers=world.headers("fm_admin")
    )
    assert download.status_code == 200 and download.content == PLAIN_PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]
    submitted = await client.post(f"/api/permits/{permit['id']}/submit", json={}, headers=headers)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "pending" and submitted.json()["awaiting"] == "FM manager"
    assert submitted.json()["missing"] == []


async def test_where_and_when_are_checked(world: World, other_world: World, settings: Any, redis: Any) -> None:
    occupant = principal(world, "occupant")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"unit_id": world.unit_ids[1]}, "unit_id"),  # not their unit
        ({"unit_id": other_world.unit_ids[0]}, "unit_id"),  # another site's unit
        ({"unit_id": None}, "unit_id"),
        ({"valid_until": FROM - dt.timedelta(hours=1)}, "valid_until"),
        ({"valid_until": FROM + dt.timedelta(days=91)}, "valid_until"),  # fit-out: at most 90 days
        ({"valid_from": FROM.replace(tzinfo=None)}, "valid_from"),
        ({"type": "no_such_type"}, "type"),
        ({"declarations": ["hours", "swim"]}, "declarations[1]"),
        ({"values": {**FIT_OUT_VALUES, "debris": "burn it"}}, "values.debris"),
    ]
    for overrides, field in cases:
        with pytest.raises(InvalidInput) as refused:
            await service.apply(settings, redis, occupant, fit_out_input(world, **overrides), now=T0)
        assert refused.value.errors is not None and refused.value.errors[0].field == field, (overrides, refused.value)
    with pytest.raises(InvalidInput) as past:
        await service.apply(settings, redis, occupant, fit_out_input(world), now=UNTIL + dt.timedelta(hours=1))
    assert past.value.errors is not None and past.value.errors[0].field == "valid_until"
    # Staff may apply for a common area, naming the place; a fit-out still needs its unit.
    staff = principal(world, "fm_admin")
    common = await service.apply(
        settings,
        redis,
        staff,
        service.PermitInput(
            type="hot_work",
            title="Weld the terrace railing",
            location="Tower A terrace",
            valid_from=FROM,
            valid_until=FROM + dt.timedelta(days=1),
        ),
        now=T0,
    )
    assert common.unit_id is None and common.location == "Tower A terrace"
    with pytest.raises(InvalidInput) as needs_unit:
        await service.apply(settings, redis, staff, fit_out_input(world, unit_id=None, location="Lobby"), now=T0)
    assert needs_unit.value.errors is not None and needs_unit.value.errors[0].field == "unit_id"


# ------------------------------------------------------------------------------ the chain


async def test_two_approvers_in_order_each_step_recorded_and_told(world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    assert permit.status == "pending" and permit.awaiting == "FM manager"
    assert [c.state for c in permit.chain] == ["awaiting", "waiting"]
    fm, site_admin, occupant = (
        principal(world, "fm_admin"),
        principal(world, "site_admin"),
        principal(world, "occupant"),
    )
    # The second approver cannot go first; the applicant cannot decide at all.
    with pytest.raises(Forbidden, match="step 1 \\(FM manager\\) is decided by someone else"):
        await service.decide(settings, redis, site_admin, permit.id, service.DecisionInput(decision="approve"), now=T0)
    with pytest.raises(Forbidden):
        await service.decide(settings, redis, occupant, permit.id, service.DecisionInput(decision="approve"), now=T0)
    later = T0 + dt.timedelta(minutes=20)
    first = await service.decide(settings, redis, fm, permit.id, service.DecisionInput(decision="approve"), now=later)
    assert first.status == "pending" and first.awaiting == "Site admin"
    assert [(c.state, c.by) for c in first.chain] == [("approved", fm.person_id), ("awaiting", None)]
    assert first.chain[0].at == later
    with pytest.raises(Forbidden):
        await service.decide(settings, redis, fm, permit.id, service.DecisionInput(decision="approve"), now=later)
    last = T0 + dt.timedelta(hours=2)
    done = await service.decide(
        settings, redis, site_admin, permit.id, service.DecisionInput(decision="approve"), now=last
    )
    assert done.status == "approved" and done.decided_at == last and done.awaiting is None
    assert await _steps(permit.id) == [
        (1, None, "submitted", occupant.person_id),
        (1, 0, "approved", fm.person_id),
        (1, 1, "approved", site_admin.person_id),
    ]
    detail = await service.get_permit(settings, occupant, permit.id)
    assert [(s.action, s.actor_name, s.at) for s in detail.steps][1:] == [
        ("approved", "Fm Admin", later),
        ("approved", "Site Admin", last),
    ]
    # The applicant heard of each step (not of their own submission); each approver of the step awaiting them.
    told = [n["title"] for n in await _notes_to(occupant.person_id, world.site_id)]
    assert told == [f"Permit {permit.reference}: step 1 of 2 approved", f"Permit {permit.reference} approved"]
    awaited = await Notification.select(Notification.title, Notification.audience).where(
        (Notification.site == world.site_id) & Notification.title.like("%awaits your approval")
    )
    assert sorted(as_dict(a["audience"])["roles"][0] for a in awaited) == ["fm_admin", "site_admin"]
    # Live: the control room's queue, the applicant, the unit, and the gate once it is approved.
    control = [e["data"]["action"] for e in await topic_events(redis, settings, site_topic(world.site_id, "control"))]
    assert control == ["submitted", "approved", "approved"]
    mine = await topic_events(redis, settings, user_topic(occupant.person_id))
    assert [e["data"]["status"] for e in mine if e["type"] == "permit.changed"] == ["pending", "pending", "approved"]
    assert len(await topic_events(redis, settings, unit_topic(world.unit_ids[0]))) == 3
    gate = await topic_events(redis, settings, site_topic(world.site_id, "gate"))
    assert [e["data"]["status"] for e in gate] == ["approved"]


async def test_one_person_holding_both_roles_cannot_approve_both_steps(world: World, settings: Any, redis: Any) -> None:
    await world.add_person("both", frozenset({Role.FM_ADMIN, Role.SITE_ADMIN}))
    permit = await submitted_fit_out(world, settings, redis)
    both = principal(world, "both")
    await service.decide(settings, redis, both, permit.id, service.DecisionInput(decision="approve"), now=T0)
    with pytest.raises(Forbidden, match="you approved step 1 already"):
        await service.decide(settings, redis, both, permit.id, service.DecisionInput(decision="approve"), now=T0)
    view = await service.get_permit(settings, both, permit.id)
    assert view.permit.allowed == []  # staff, but not for the step they already decided; nothing to revoke yet


async def test_rejection_needs_a_reason_and_tells_it(client: Any, world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    headers = world.headers("fm_admin")
    silent = await client.post(f"/api/permits/{permit.id}/decision", json={"decision": "reject"}, headers=headers)
    assert silent.status_code == 422 and silent.json()["errors"][0]["field"] == "reason"
    rejected = await client.post(
        f"/api/permits/{permit.id}/decision",
        json={"decision": "reject", "reason": "Structural wall in the drawing", "version": permit.version},
        headers=headers,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "Structural wall in the drawing"
    again = await client.post(
        f"/api/permits/{permit.id}/decision", json={"decision": "approve"}, headers=world.headers("site_admin")
    )
    assert again.status_code == 409
    told = await _notes_to(world.people["occupant"], world.site_id)
    assert told[-1]["title"] == f"Permit {permit.reference} rejected"
    assert "Structural wall in the drawing" in told[-1]["body"]
    steps = await _steps(permit.id)
    assert steps[-1] == (1, 0, "rejected", world.people["fm_admin"])
    resubmit = await client.post(f"/api/permits/{permit.id}/submit", json={}, headers=world.headers("occupant"))
    assert resubmit.status_code == 409  # rejected is final: a new application is a new permit


async def test_send_back_then_resubmission_starts_the_chain_again(world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    fm, site_admin, occupant = (
        principal(world, "fm_admin"),
        principal(world, "site_admin"),
        principal(world, "occupant"),
    )
    await service.decide(settings, redis, fm, permit.id, service.DecisionInput(decision="approve"), now=T0)
    back = await service.decide(
        settings,
        redis,
        site_admin,
        permit.id,
        service.DecisionInput(decision="send_back", reason="Add the contractor's insurance"),
        now=T0,
    )
    assert back.status == "changes_requested" and back.decision_reason == "Add the contractor's insurance"
    assert back.allowed == [] and "approve" not in back.allowed
    mine = await service.get_permit(settings, occupant, permit.id)
    assert mine.permit.allowed == ["edit", "upload", "submit", "cancel"]
    told = await _notes_to(occupant.person_id, world.site_id)
    assert told[-1]["title"] == f"Permit {permit.reference}: changes requested"
    await service.add_attachment(settings, occupant, permit.id, "insurance", pdf_with(b""), now=T0)
    again = await service.submit(
        settings, redis, occupant, permit.id, service.VersionInput(version=back.version), now=T0
    )
    assert again.status == "pending" and again.round == 2 and again.awaiting == "FM manager"
    assert [c.state for c in again.chain] == ["awaiting", "waiting"]  # round 1's approval does not carry over
    assert again.decision_reason is None  # the reason stays in the history (the sent_back step's note)
    await service.decide(settings, redis, fm, permit.id, service.DecisionInput(decision="approve"), now=T0)
    done = await service.decide(
        settings, redis, site_admin, permit.id, service.DecisionInput(decision="approve"), now=T0
    )
    assert done.status == "approved" and done.round == 2
    assert [(r, s, a) for r, s, a, _ in await _steps(permit.id)] == [
        (1, None, "submitted"),
        (1, 0, "approved"),
        (1, 1, "sent_back"),
        (2, None, "resubmitted"),
        (2, 0, "approved"),
        (2, 1, "approved"),
    ]


async def test_a_stale_version_is_refused(world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    await service.decide(
        settings, redis, principal(world, "fm_admin"), permit.id, service.DecisionInput(decision="approve"), now=T0
    )
    with pytest.raises(Conflict) as stale:
        await service.decide(
            settings,
            redis,
            principal(world, "site_admin"),
            permit.id,
            service.DecisionInput(decision="approve", version=permit.version),
            now=T0,
        )
    assert stale.value.extra == {"status": "pending", "version": permit.version + 1}


async def _any_of_group_type(client: Any, world: World, people: list[str]) -> None:
    listed = (await client.get("/api/permits/types", headers=world.headers("fm_admin"))).json()["items"]
    vendor = next(t for t in listed if t["code"] == "vendor_access")
    body = {k: vendor[k] for k in ("kind", "name", "fields", "attachments", "declarations", "max_days")}
    body["chain"] = [{"label": "Duty officers", "person_ids": [str(world.people[p]) for p in people]}]
    response = await client.put(f"/api/permits/types/{vendor['id']}", json=body, headers=world.headers("fm_admin"))
    assert response.status_code == 200, response.text


async def _vendor_permit(world: World, settings: Any, redis: Any) -> service.PermitView:
    occupant = principal(world, "occupant")
    draft = await service.apply(
        settings,
        redis,
        occupant,
        service.PermitInput(
            type="vendor_access",
            title="AC servicing",
            unit_id=world.unit_ids[0],
            valid_from=FROM,
            valid_until=FROM + dt.timedelta(hours=8),
            values={"vendor": "CoolAir", "purpose": "Service two split ACs"},
            declarations=["escort"],
            people=[service.PersonInput(name="Anil", phone="+919800000001")],
        ),
        now=T0,
    )
    return await service.submit(settings, redis, occupant, draft.id, service.VersionInput(), now=T0)


async def test_any_of_a_named_group_decides_and_only_one_wins(
    client: Any, world: World, settings: Any, redis: Any
) -> None:
    await world.add_person("officer_a", frozenset({Role.GUARD}))
    await world.add_person("officer_b", frozenset({Role.TECHNICIAN}))
    await _any_of_group_type(client, world, ["officer_a", "officer_b"])
    permit = await _vendor_permit(world, settings, redis)
    # Neither staff by role nor anyone outside the group decides this step.
    with pytest.raises(Forbidden):
        await service.decide(
            settings, redis, principal(world, "fm_admin"), permit.id, service.DecisionInput(decision="approve"), now=T0
        )
    queue = await client.get("/api/permits?awaiting_me=true", headers=world.headers("officer_b"))
    assert [p["id"] for p in queue.json()["items"]] == [str(permit.id)], queue.text
    assert queue.json()["items"][0]["allowed"] == ["approve", "reject", "send_back"]
    # Both officers approve at the same moment: exactly one decision is recorded.
    results = await asyncio.gather(
        *(
            client.post(
                f"/api/permits/{permit.id}/decision", json={"decision": "approve"}, headers=world.headers(officer)
            )
            for officer in ("officer_a", "officer_b")
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    assert [a for _, _, a, _ in await _steps(permit.id)] == ["submitted", "approved"]
    assert (await client.get("/api/permits?awaiting_me=true", headers=world.headers("officer_a"))).json()["total"] == 0


async def test_cancel_and_revoke(world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    fm, site_admin, occupant = (
        principal(world, "fm_admin"),
        principal(world, "site_admin"),
        principal(world, "occupant"),
    )
    with pytest.raises(Forbidden):
        await service.cancel(settings, redis, fm, permit.id, service.ReasonInput(), now=T0)
    await service.decide(settings, redis, fm, permit.id, service.DecisionInput(decision="approve"), now=T0)
    await service.decide(settings, redis, site_admin, permit.id, service.DecisionInput(decision="approve"), now=T0)
    with pytest.raises(InvalidInput):
        await service.revoke(settings, redis, fm, permit.id, service.ReasonInput(), now=T0)
    revoked = await service.revoke(
        settings, redis, fm, permit.id, service.ReasonInput(reason="Work outside permitted hours"), now=T0
    )
    assert revoked.status == "revoked"
    told = await _notes_to(occupant.person_id, world.site_id)
    assert told[-1]["title"] == f"Permit {permit.reference} revoked"
    with pytest.raises(Conflict):
        await service.cancel(settings, redis, occupant, permit.id, service.ReasonInput(), now=T0)
    other = await submitted_fit_out(world, settings, redis)
    cancelled = await service.cancel(
        settings, redis, occupant, other.id, service.ReasonInput(reason="Postponed"), now=T0
    )
    assert cancelled.status == "cancelled"
    with pytest.raises(Conflict):
        await service.decide(settings, redis, fm, other.id, service.DecisionInput(decision="approve"), now=T0)


# ------------------------------------------------------------------------------ who sees what


async def test_who_sees_a_permit(client: Any, world: World, other_world: World, settings: Any, redis: Any) -> None:
    permit = await submitted_fit_out(world, settings, redis)
    await world.add_person("flatmate", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[0], "tenant")])
    await world.add_person("neighbour", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "owner")])
    for name, status in (
        ("occupant", 200),
        ("flatmate", 200),
        ("neighbour", 404),
        ("guard", 404),
        ("technician", 404),
        ("fm_admin", 200),
        ("site_admin", 200),
    ):
        response = await client.get(f"/api/permits/{permit.id}", headers=world.headers(name))
        assert response.status_code == status, (name, response.text)
    flatmate = (await client.get(f"/api/permits/{permit.id}", headers=world.headers("flatmate"))).json()["permit"]
    assert flatmate["people"][0]["phone"] is None and flatmate["people"][0]["phone_hint"] == "…5678"
    assert (await client.get("/api/permits", headers=world.headers("neighbour"))).json()["total"] == 0
    assert (await client.get("/api/permits", headers=world.headers("flatmate"))).json()["total"] == 1
    assert (await client.get(f"/api/permits/{permit.id}", headers=other_world.headers("fm_admin"))).status_code == 404
    # The flatmate sees it but is not its applicant: no edits, no cancellation.
    cancel = await client.post(f"/api/permits/{permit.id}/cancel", json={}, headers=world.headers("flatmate"))
    assert cancel.status_code == 403


# ------------------------------------------------------------------------------ dues for move-out


async def _move_out(world: World, settings: Any, redis: Any) -> service.PermitView:
    occupant = principal(world, "occupant")
    draft = await service.apply(
        settings,
        redis,
        occupant,
        service.PermitInput(
            type="move_out",
            title="Moving to Pune",
            unit_id=world.unit_ids[0],
            valid_from=FROM,
            valid_until=FROM + dt.timedelta(days=1),
            values={"trucks": 2},
            declarations=["keys"],
        ),
        now=T0,
    )
    return await service.submit(settings, redis, occupant, draft.id, service.VersionInput(), now=T0)


async def test_move_out_needs_dues_cleared_before_approval(world: World, settings: Any, redis: Any) -> None:
    fm = principal(world, "fm_admin")
    approve = service.DecisionInput(decision="approve")
    # A site that does not bill through the hub: nobody can say; the approver confirms by hand, and the
    # history says so.
    unknown = await _move_out(world, settings, redis)
    assert unknown.requires_dues_cleared
    with pytest.raises(InvalidInput) as unconfirmed:
        await service.decide(settings, redis, fm, unknown.id, approve, now=T0)
    assert unconfirmed.value.errors is not None and unconfirmed.value.errors[0].field == "dues_confirmed"
    confirmed = await service.decide(
        settings, redis, fm, unknown.id, service.DecisionInput(decision="approve", dues_confirmed=True), now=T0
    )
    assert confirmed.status == "approved"
    detail = await service.get_permit(settings, fm, unknown.id)
    assert detail.steps[-1].detail == {"dues": "confirmed_by_approver"}

    async def outstanding(site_id: UUID, unit_id: UUID) -> dues.DuesStatus:
        return dues.DuesStatus.OUTSTANDING

    async def cleared(site_id: UUID, unit_id: UUID) -> dues.DuesStatus:
        return dues.DuesStatus.CLEARED

    previous = dues.register_dues_checker(outstanding)
    try:
        owing = await _move_out(world, settings, redis)
        with pytest.raises(Conflict, match="dues outstanding"):
            await service.decide(
                settings, redis, fm, owing.id, service.DecisionInput(decision="approve", dues_confirmed=True), now=T0
            )
        dues.register_dues_checker(cleared)
        paid = await service.decide(settings, redis, fm, owing.id, approve, now=T0)
        assert paid.status == "approved"
        assert (await service.get_permit(settings, fm, owing.id)).steps[-1].detail == {"dues": "cleared_per_billing"}
    finally:
        dues.register_dues_checker(previous)


async def test_move_out_asks_billing_whether_the_units_dues_are_cleared(
    world: World, settings: Any, redis: Any
) -> None:
    """Billing's ledger answers for a site that bills through the hub: an unpaid invoice (not yet due
    counts too) refuses the final approval; once it is paid the approval goes through on billing's word."""
    from app.billing.payments import ManualPayment, record_manual
    from tests.support import billing

    fm = principal(world, "fm_admin")
    approve = service.DecisionInput(decision="approve")
    await billing.configure(world)
    issued = await billing.monthly_run(world)
    invoice = next(i for i in issued.issued if i.unit_id == world.unit_ids[0])
    assert await dues.dues_status(world.site_id, world.unit_ids[0]) is dues.DuesStatus.OUTSTANDING
    owing = await _move_out(world, settings, redis)
    with pytest.raises(Conflict, match="dues outstanding"):
        await service.decide(
            settings, redis, fm, owing.id, service.DecisionInput(decision="approve", dues_confirmed=True), now=T0
        )
    await record_manual(fm, ManualPayment(unit_id=world.unit_ids[0], amount_minor=invoice.total_minor, method="cash"))
    assert await dues.dues_status(world.site_id, world.unit_ids[0]) is dues.DuesStatus.CLEARED
    paid = await service.decide(settings, redis, fm, owing.id, approve, now=T0)
    assert paid.status == "approved"
    assert (await service.get_permit(settings, fm, owing.id)).steps[-1].detail == {"dues": "cleared_per_billing"}


# ------------------------------------------------------------------------------ attachments


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (pdf_with(b"5 0 obj << /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >> endobj"), "active content"),
        (pdf_with(b"5 0 obj << /S /J#61vaScript /JS (x) >> endobj"), "active content"),
        (pdf_with(b"5 0 obj << /S /Launch /F (cmd.exe) >> endobj"), "active content"),
        (pdf_with_compressed_objects(b"<< /Names << /EmbeddedFiles 6 0 R >> >>"), "active content"),
        (pdf_with(b"trailer << /Encrypt 9 0 R >>"), "password-protected"),
        (b"%PDF-1.4\n1 0 obj << >> endobj\n", "is not a PDF"),
        (b"<html><script>alert(1)</script></html>", "JPEG, PNG or WebP"),
    ],
)
async def test_attachments_refuse_active_or_unknown_files(
    world: World, settings: Any, redis: Any, content: bytes, message: str
) -> None:
    occupant = principal(world, "occupant")
    draft = await service.apply(settings, redis, occupant, fit_out_input(world), now=T0)
    with pytest.raises(InvalidInput, match=message):
        await service.add_attachment(settings, occupant, draft.id, "drawing", content, now=T0)


async def test_a_plain_pdf_with_compressed_objects_is_taken(world: World, settings: Any, redis: Any) -> None:
    occupant = principal(world, "occupant")
    draft = await service.apply(settings, redis, occupant, fit_out_input(world), now=T0)
    kept = await service.add_attachment(
        settings, occupant, draft.id, "drawing", pdf_with_compressed_objects(b"<< /Type /Font >>"), now=T0
    )
    assert kept.media_type == "application/pdf"
    photo = await service.add_attachment(settings, occupant, draft.id, "insurance", jpeg(), now=T0)
    assert photo.media_type == "image/jpeg"
    assert {a.slot for a in (await service.get_permit(settings, occupant, draft.id)).permit.attachments} == {
        "drawing",
        "insurance",
    }


def test_status_names_are_the_documented_ones() -> None:
    assert [str(s) for s in Status] == [
        "draft",
        "pending",
        "changes_requested",
        "approved",
        "rejected",
        "cancelled",
        "revoked",
    ]
    assert UNTIL > FROM
