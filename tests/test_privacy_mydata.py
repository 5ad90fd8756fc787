"""My data: a person views and corrects their profile and contact points, sees their consents and
their history, and grants or withdraws in one call."""

from __future__ import annotations

from typing import Any

from notifications.categories import Category, Channel
from schema.notifications import ConsentEvent
from schema.tables import ContactPoint
from tests.support.privacy import make_subject
from tests.support.world import World


async def test_view_and_correct_my_data(client: Any, world: World, settings: Any) -> None:
    subject = await make_subject(world)
    headers = world.headers(subject.key)
    mine = await client.get("/api/me/data", headers=headers)
    assert mine.status_code == 200, mine.text
    data = mine.json()
    assert data["full_name"] == subject.name and data["roles"] == ["occupant"]
    assert [u["unit_id"] for u in data["units"]] == [str(world.unit_ids[0])]
    assert {c["value"] for c in data["contact_points"]} == {subject.mobile, subject.secondary_mobile, subject.email}
    assert [v["plate"] for v in data["vehicles"]] == [subject.plate]
    assert (
        len(data["consents"]) == len(Channel) * len(Category)
        and data["links"]["consent_history"] == "/api/me/consent-history"
    )

    corrected = await client.patch(
        "/api/me/data",
        json={
            "full_name": "Zephyrine Q. Quayle",
            "email": "Zeph.New@Example.test",
            "secondary_mobile": None,
            "vehicle_plates": ["ka 05 mn 4321"],
            "timezone": "Asia/Dubai",
        },
        headers=headers,
    )
    assert corrected.status_code == 200, corrected.text
    after = corrected.json()
    assert after["full_name"] == "Zephyrine Q. Quayle" and after["timezone"] == "Asia/Dubai"
    assert {c["value"] for c in after["contact_points"]} == {subject.mobile, "zeph.new@example.test"}
    assert [v["plate"] for v in after["vehicles"]] == ["KA05MN4321"]
    # Stored encrypted, found by blind index.
    stored = await ContactPoint.select(ContactPoint.value_encrypted).where(ContactPoint.person == subject.person_id)
    assert all("zeph.new" not in r["value_encrypted"] for r in stored)

    bad = await client.patch("/api/me/data", json={"primary_mobile": "12"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "primary_mobile"
    zone = await client.patch("/api/me/data", json={"timezone": "Mars/Olympus"}, headers=headers)
    assert zone.status_code == 422 and zone.json()["errors"][0]["field"] == "timezone"
    # Somebody else's identifying email is refused.
    taken = await client.patch("/api/me/data", json={"email": world.emails["guard"]}, headers=headers)
    assert taken.status_code == 409


async def test_staff_correct_their_own_data_too(client: Any, world: World) -> None:
    response = await client.patch(
        "/api/me/data", json={"primary_mobile": "+919812300001"}, headers=world.headers("guard")
    )
    assert response.status_code == 200, response.text
    assert "+919812300001" in {c["value"] for c in response.json()["contact_points"]}


async def test_withdraw_and_grant_in_one_call_with_history(client: Any, world: World) -> None:
    headers = world.headers("occupant")
    person = world.people["occupant"]
    withdrawn = await client.post("/api/me/consents", json={"granted": False}, headers=headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert all(not p["enabled"] for p in withdrawn.json())
    events = await ConsentEvent.count().where(ConsentEvent.person == person)
    assert events == len(Channel) * len(Category)
    again = await client.post("/api/me/consents", json={"granted": False}, headers=headers)
    assert again.status_code == 200
    assert (
        await ConsentEvent.count().where(ConsentEvent.person == person) == events
    )  # nothing changed: nothing recorded
    granted = await client.post(
        "/api/me/consents",
        json={"granted": True, "channels": ["push", "in_app"], "categories": ["visitor", "complaint"], "source": "web"},
        headers=headers,
    )
    state = {(p["channel"], p["category"]): p["enabled"] for p in granted.json()}
    assert state[("push", "visitor")] and state[("in_app", "complaint")]
    assert not state[("sms", "visitor")] and not state[("push", "promotional")]
    mine = (await client.get("/api/me/data", headers=headers)).json()
    assert mine["consent_history"][0]["granted"] is True and mine["consent_history"][0]["source"] == "web"
    history = await client.get("/api/me/consent-history?limit=100", headers=headers)
    assert history.json()["total"] == len(Channel) * len(Category) + 4
    empty = await client.post("/api/me/consents", json={"granted": True, "channels": []}, headers=headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "channels"
