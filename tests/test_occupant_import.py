"""Bulk import (CSV and XLSX) and export of the occupant listing.

The headline case: a 1,000-row file with 3 bad rows reports exactly those 3 (line and
column) and imports 997; importing the same file again changes nothing at all.
"""

from __future__ import annotations

import csv
import io
import time
from typing import Any
from uuid import UUID

import openpyxl
import pytest

from app.auth.roles import Role
from app.occupants import importer
from app.people.directory import directory_for
from schema.tables import ContactPoint, Occupancy, Person, PersonRole, Unit, Vehicle
from tests.support.world import World

COLUMNS = list(importer.COLUMNS)
PROBLEM = "application/problem+json"
BAD_LINES = {11: "primary_mobile", 500: "unit", 1001: "relation"}


async def add_units(world: World, count: int) -> list[str]:
    """Extra units, so a thousand occupants spread over realistic flats."""
    units = [
        Unit(site=world.site_id, building=world.building_ids[i % 2], label=f"{'AB'[i % 2]}-{1000 + i}", floor=i // 20)
        for i in range(count)
    ]
    await Unit.insert(*units)
    return [u.label for u in units]


def thousand_rows(labels: list[str], salt: int = 0) -> list[dict[str, str]]:
    """1,000 occupants in the formats an FM team types; 3 of them wrong (see BAD_LINES)."""
    rows = []
    for i in range(1000):
        line = i + 2  # the header is line 1
        number = f"{salt * 10_000 + i:08d}"
        phone = (f"+91 98{number}", f"098{number[:4]} {number[4:]}", f"98{number}")[i % 3]
        rows.append(
            {
                "full_name": f"Resident {salt}-{i}",
                "unit": labels[i % len(labels)],
                "relation": ("owner", "tenant", "allottee", "family")[i % 4],
                "primary_mobile": phone,
                "secondary_mobile": f"97{number}" if i % 5 == 0 else "",
                "email": f"resident{salt}.{i}@example.test" if i % 2 == 0 else "",
                "vehicle_plates": f"KA01AB{i:04d};ka-02 cd {i:04d}" if i % 7 == 0 else "",
                "role": "occupant" if i % 3 == 0 else "",
            }
        )
        if line == 11:
            rows[-1]["primary_mobile"] = "12345"
        elif line == 500:
            rows[-1]["unit"] = "Z-999"
        elif line == 1001:
            rows[-1]["relation"] = "landlord"
    return rows


def good_rows(labels: list[str], count: int) -> list[dict[str, str]]:
    """The first ``count`` rows of the thousand that are valid."""
    rows = [row for line, row in enumerate(thousand_rows(labels), start=2) if line not in BAD_LINES]
    return rows[:count]


def to_csv(rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def to_xlsx(rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(columns)
    for row in rows:
        # Excel users type mobiles as numbers: the importer must cope with numeric cells.
        sheet.append(
            [int(v) if c == "primary_mobile" and v.isdigit() else v for c, v in ((c, row[c]) for c in columns)]
        )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def upload(
    client: Any,
    world: World,
    content: bytes,
    name: str = "occupants.csv",
    *,
    dry_run: bool = False,
    who: str = "fm_admin",
) -> Any:
    return await client.post(
        "/api/occupants/import",
        params={"dry_run": "true"} if dry_run else None,
        files={"file": (name, content, "text/csv" if name.endswith(".csv") else "application/octet-stream")},
        headers=world.headers(who),
    )


async def snapshot(site_id: UUID) -> dict[str, Any]:
    """Everything an import could change for a site: row counts and every person's updated_at."""
    people = await Person.select(Person.id, Person.full_name, Person.updated_at).where(Person.site == site_id)
    return {
        "people": sorted((str(p["id"]), p["full_name"], p["updated_at"]) for p in people),
        "roles": await PersonRole.count().where(PersonRole.site == site_id),
        "contacts": await ContactPoint.count().where(ContactPoint.site == site_id),
        "vehicles": await Vehicle.count().where(Vehicle.site == site_id),
        "links": sorted(
            (str(r["id"]), r["relation"], r["is_active"])
            for r in await Occupancy.select(Occupancy.id, Occupancy.relation, Occupancy.is_active).where(
                Occupancy.site == site_id
            )
        ),
    }


def error_positions(result: dict[str, Any]) -> dict[int, str]:
    return {e["line"]: e["field"] for e in result["errors"]}


async def occupant_count(site_id: UUID) -> int:
    return await PersonRole.count().where((PersonRole.site == site_id) & (PersonRole.role == Role.OCCUPANT.value))


# ---------------------------------------------------------------- the headline case


async def test_thousand_rows_three_bad_then_reimport_changes_nothing(client: Any, world: World) -> None:
    labels = await add_units(world, 250)
    content = to_csv(thousand_rows(labels))
    before = await occupant_count(world.site_id)

    started = time.perf_counter()
    response = await upload(client, world, content)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    result = response.json()
    print(f"\n1,000-row CSV import took {elapsed:.2f}s")
    assert elapsed < 20, "the import must use bulk queries, not one round trip per row"
    assert error_positions(result) == BAD_LINES
    assert len(result["errors"]) == 3
    assert (result["rows"], result["created"], result["updated"], result["unchanged"], result["failed"]) == (
        1000,
        997,
        0,
        0,
        3,
    )
    assert await occupant_count(world.site_id) == before + 997

    first = await snapshot(world.site_id)
    started = time.perf_counter()
    again = (await upload(client, world, content)).json()
    print(f"1,000-row CSV re-import (all unchanged) took {time.perf_counter() - started:.2f}s")
    assert (again["created"], again["updated"], again["unchanged"], again["failed"]) == (0, 0, 997, 3)
    assert error_positions(again) == BAD_LINES
    assert await snapshot(world.site_id) == first


async def test_imported_values_are_normalised_and_linked(client: Any, world: World, settings: Any) -> None:
    labels = await add_units(world, 10)
    rows = good_rows(labels, 10)
    assert (await upload(client, world, to_csv(rows))).json()["created"] == 10
    directory = directory_for(settings)
    [person_id] = await directory.find_by_phone("+91 9800000000", world.site_id)
    view = (await client.get(f"/api/occupants/{person_id}", headers=world.headers("fm_admin"))).json()
    assert view["full_name"] == "Resident 0-0"
    assert view["primary_mobile"] == "+919800000000"
    assert view["secondary_mobile"] == "+919700000000"
    assert view["email"] == "resident0.0@example.test"
    assert view["vehicle_plates"] == ["KA01AB0000", "KA02CD0000"]
    assert [(u["unit_label"], u["relation"], u["is_active"]) for u in view["units"]] == [(labels[0], "owner", True)]
    assert view["units"][0]["started_on"] is not None


async def test_xlsx_import_matches_csv(client: Any, world: World) -> None:
    labels = await add_units(world, 250)
    rows = thousand_rows(labels, salt=1)
    started = time.perf_counter()
    result = (await upload(client, world, to_xlsx(rows), "occupants.xlsx")).json()
    print(f"\n1,000-row XLSX import took {time.perf_counter() - started:.2f}s")
    assert error_positions(result) == BAD_LINES
    assert (result["created"], result["failed"]) == (997, 3)
    # The same people as CSV: nothing to change, whichever format came first.
    first = await snapshot(world.site_id)
    again = (await upload(client, world, to_csv(rows))).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 997)
    assert await snapshot(world.site_id) == first


# ---------------------------------------------------------------- re-import updates


async def test_reimport_updates_changed_rows_only(client: Any, world: World, settings: Any) -> None:
    labels = await add_units(world, 20)
    rows = good_rows(labels, 40)
    assert (await upload(client, world, to_csv(rows))).json()["created"] == 40
    directory = directory_for(settings)
    renamed_id = (await directory.find_by_phone(rows[1]["primary_mobile"], world.site_id))[0]
    rephoned_id = (await directory.find_by_email(rows[2]["email"], world.site_id))[0]
    moved_id = (await directory.find_by_phone(rows[3]["primary_mobile"], world.site_id))[0]
    before = {p["id"]: p["updated_at"] for p in await Person.select(Person.id, Person.updated_at)}

    rows[1]["full_name"] = "Renamed Resident"
    rows[2]["primary_mobile"] = "+91 91234 56789"  # matched by email, new phone
    rows[3]["unit"] = f"{labels[5]};{labels[6]}"  # moved, and a second flat
    rows[3]["relation"] = "tenant;owner"
    rows[7]["vehicle_plates"] = "MH12ZZ0001"  # had two plates
    result = (await upload(client, world, to_csv(rows))).json()
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (0, 4, 36, 0)

    views = {
        pid: (await client.get(f"/api/occupants/{pid}", headers=world.headers("fm_admin"))).json()
        for pid in (renamed_id, rephoned_id, moved_id)
    }
    assert views[renamed_id]["full_name"] == "Renamed Resident"
    assert views[rephoned_id]["primary_mobile"] == "+919123456789"
    assert await directory.find_by_phone(rows[2]["primary_mobile"], world.site_id) == [rephoned_id]
    moved_units = {(u["unit_label"], u["relation"], u["is_active"]) for u in views[moved_id]["units"]}
    assert moved_units == {(labels[5], "tenant", True), (labels[6], "owner", True), (labels[3], "family", False)}
    after = {p["id"]: p["updated_at"] for p in await Person.select(Person.id, Person.updated_at)}
    touched = {pid for pid in before if after[pid] != before[pid]}
    assert len(touched) == 4 and {renamed_id, rephoned_id, moved_id} <= touched


async def test_absent_optional_columns_leave_values_alone(client: Any, world: World) -> None:
    labels = await add_units(world, 5)
    rows = good_rows(labels, 10)
    await upload(client, world, to_csv(rows))
    before = await snapshot(world.site_id)
    slim = [{k: r[k] for k in ("full_name", "unit", "relation", "primary_mobile")} for r in rows]
    result = (await upload(client, world, to_csv(slim, ["full_name", "unit", "relation", "primary_mobile"]))).json()
    assert (result["updated"], result["unchanged"]) == (0, 10)
    assert await snapshot(world.site_id) == before


async def test_dry_run_validates_without_writing(client: Any, world: World) -> None:
    labels = await add_units(world, 50)
    content = to_csv(thousand_rows(labels)[:100])
    before = await snapshot(world.site_id)
    result = (await upload(client, world, content, dry_run=True)).json()
    assert result["dry_run"] is True
    assert (result["created"], result["failed"]) == (99, 1)
    assert error_positions(result) == {11: "primary_mobile"}
    assert await snapshot(world.site_id) == before


# ---------------------------------------------------------------- row-level problems


async def test_duplicates_within_the_file_fail_on_the_later_line(client: Any, world: World) -> None:
    labels = await add_units(world, 5)
    rows = thousand_rows(labels)[:6]
    rows[3]["primary_mobile"] = rows[0]["primary_mobile"].replace(" ", "")  # same number, other spelling
    rows[4]["email"] = rows[2]["email"].upper()
    result = (await upload(client, world, to_csv(rows))).json()
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(5, "primary_mobile"), (6, "email")]
    assert "line 2" in result["errors"][0]["message"]
    assert "line 4" in result["errors"][1]["message"]
    assert (result["created"], result["failed"]) == (4, 2)


async def test_row_errors_name_line_and_column(client: Any, world: World) -> None:
    base = {c: "" for c in COLUMNS}
    ok = {**base, "full_name": "Ok Person", "unit": "A-101", "relation": "owner", "primary_mobile": "9811111111"}
    rows = [
        ok,
        {**ok, "primary_mobile": "9811111112", "role": "guard"},
        {**ok, "primary_mobile": "9811111113", "role": "janitor"},
        {**ok, "primary_mobile": "", "email": ""},
        {**ok, "primary_mobile": "9811111114", "secondary_mobile": "+91 98111 11114"},
        {**ok, "primary_mobile": "9811111115", "email": "not-an-email"},
        {**ok, "primary_mobile": "9811111116", "vehicle_plates": "X"},
        {**ok, "primary_mobile": "9811111117", "full_name": "  "},
        {**ok, "primary_mobile": "9811111118", "unit": "A-101;B-101", "relation": "owner;tenant;family"},
        {**ok, "primary_mobile": "9811111119", "unit": "a-101;A-101"},
        {**ok, "primary_mobile": "9811111120", "unit": "b-102;A-102", "relation": "Tenant;OWNER"},
    ]
    result = (await upload(client, world, to_csv(rows))).json()
    assert [(e["line"], e["field"]) for e in result["errors"]] == [
        (3, "role"),
        (4, "role"),
        (5, "primary_mobile"),
        (6, "secondary_mobile"),
        (7, "email"),
        (8, "vehicle_plates"),
        (9, "full_name"),
        (10, "relation"),
        (11, "unit"),
    ]
    assert (result["created"], result["failed"]) == (2, 9)
    page = (
        await client.get("/api/occupants", params={"phone": "9811111120"}, headers=world.headers("fm_admin"))
    ).json()
    assert {(u["unit_label"], u["relation"]) for u in page["items"][0]["units"]} == {
        ("B-102", "tenant"),
        ("A-102", "owner"),
    }


async def test_rows_matching_staff_or_deactivated_people_are_refused(client: Any, world: World) -> None:
    base = {"full_name": "X", "unit": "A-101", "relation": "owner", "primary_mobile": "", "email": ""}
    rows = [
        {**base, "email": world.emails["guard"]},  # a staff account
        {**base, "email": world.emails["occupant"]},  # an occupant: will be deactivated first
    ]
    occupant = world.people["occupant"]
    assert (
        await client.post(f"/api/occupants/{occupant}/deactivate", headers=world.headers("fm_admin"))
    ).status_code == 200
    result = (await upload(client, world, to_csv(rows, list(base)))).json()
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(2, "email"), (3, "email")]
    assert "staff" in result["errors"][0]["message"]
    assert "deactivated" in result["errors"][1]["message"]
    assert (await Person.select(Person.full_name).where(Person.id == occupant).first())["full_name"] == "Occupant"


async def test_phone_and_email_of_different_people_is_an_error(client: Any, world: World) -> None:
    await world.add_person(
        "a", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "owner")], mobile="+919822222222"
    )
    row = {"full_name": "Mix", "unit": "A-101", "relation": "owner", "primary_mobile": "9822222222"}
    row["email"] = world.emails["occupant"]
    result = (await upload(client, world, to_csv([row], list(row)))).json()
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(2, "email")]


async def test_same_person_matched_twice_fails_on_the_later_line(client: Any, world: World) -> None:
    await world.add_person(
        "b", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[1], "owner")], mobile="+919833333333"
    )
    rows = [
        {"full_name": "B", "unit": "A-102", "relation": "owner", "primary_mobile": "9833333333", "email": ""},
        {
            "full_name": "B again",
            "unit": "A-102",
            "relation": "owner",
            "primary_mobile": "",
            "email": world.emails["b"],
        },
    ]
    result = (await upload(client, world, to_csv(rows, list(rows[0])))).json()
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(3, "email")]
    assert "line 2" in result["errors"][0]["message"]


# ---------------------------------------------------------------- file-level problems


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b"full_name,unit,relation,primary_mobile,shoe_size\r\nA,A-101,owner,9800000001,9\r\n", 422, "shoe_size"),
        (b"full_name,relation,primary_mobile\r\nA,owner,9800000001\r\n", 422, "unit"),
        (b"full_name,unit,relation\r\nA,A-101,owner\r\n", 422, "primary_mobile"),
        (b"full_name,unit,unit,relation,email\r\n", 422, "unit"),
        (b"", 422, "file"),
        (b"\n\n  \n", 422, "file"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, 415, "file"),  # an old .xls
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 415, "file"),
        ("full_name,unit\r\nRenée,A-101\r\n".encode("latin-1"), 415, "file"),
        (b"PK\x03\x04not really a zip", 415, "file"),
    ],
)
async def test_file_level_problems_are_one_4xx_problem(
    client: Any, world: World, content: bytes, status: int, field: str
) -> None:
    response = await upload(client, world, content)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == status
    assert field in {e["field"] for e in problem["errors"]}


async def test_more_than_ten_thousand_rows_is_refused(client: Any, world: World) -> None:
    lines = ["full_name,unit,relation,primary_mobile"] + ["A,A-101,owner,9800000001"] * 10_001
    response = await upload(client, world, "\n".join(lines).encode())
    assert response.status_code == 422
    assert "10000 rows" in response.json()["detail"]
    assert await occupant_count(world.site_id) == 1


async def test_too_large_upload_is_413(client: Any, world: World, settings: Any) -> None:
    response = await upload(client, world, b"full_name\n" + b"x" * settings.max_request_body_bytes)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_missing_or_wrong_upload_is_4xx(client: Any, world: World) -> None:
    headers = world.headers("fm_admin")
    no_file = await client.post("/api/occupants/import", headers=headers)
    assert 400 <= no_file.status_code < 500
    assert no_file.headers["content-type"].startswith(PROBLEM)
    as_json = await client.post("/api/occupants/import", json={"file": "x"}, headers=headers)
    assert 400 <= as_json.status_code < 500
    other_field = await client.post("/api/occupants/import", files={"other": ("a.csv", b"x")}, headers=headers)
    assert 400 <= other_field.status_code < 500


async def test_semicolon_csv_and_formula_guard(client: Any, world: World) -> None:
    content = b"full_name;unit;relation;primary_mobile\r\n'=Sneaky;A-101;owner;9844444444\r\n"
    assert (await upload(client, world, content)).json()["created"] == 1
    page = (
        await client.get("/api/occupants", params={"phone": "9844444444"}, headers=world.headers("fm_admin"))
    ).json()
    assert page["items"][0]["full_name"] == "=Sneaky"
    exported = (await client.get("/api/occupants/export.csv", headers=world.headers("fm_admin"))).text
    assert "'=Sneaky" in exported


# ---------------------------------------------------------------- export


async def test_export_round_trips_unchanged(client: Any, world: World) -> None:
    labels = await add_units(world, 30)
    rows = good_rows(labels, 120)
    rows[5]["unit"], rows[5]["relation"] = f"{labels[1]};{labels[2]}", "owner;tenant"
    await upload(client, world, to_csv(rows))
    response = await client.get("/api/occupants/export.csv", headers=world.headers("fm_admin"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    exported = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(exported[0]) == COLUMNS
    assert len(exported) == 120 + 1  # and the world's own occupant
    assert {r["role"] for r in exported} == {"occupant"}

    before = await snapshot(world.site_id)
    result = (await upload(client, world, response.content)).json()
    assert (result["created"], result["updated"], result["unchanged"], result["failed"]) == (0, 0, 121, 0)
    assert await snapshot(world.site_id) == before


async def test_export_is_scoped_and_filtered(client: Any, world: World, other_world: World) -> None:
    await other_world.add_person("stranger", frozenset({Role.OCCUPANT}), units=[(other_world.unit_ids[0], "owner")])
    await world.add_person("tenant_b", frozenset({Role.OCCUPANT}), units=[(world.unit_ids[4], "tenant")])
    headers = world.headers("fm_admin")
    everything = (await client.get("/api/occupants/export.csv", headers=headers)).text
    assert other_world.emails["stranger"] not in everything
    assert world.emails["occupant"] in everything and world.emails["tenant_b"] in everything
    tenants = (await client.get("/api/occupants/export.csv", params={"relation": "tenant"}, headers=headers)).text
    assert world.emails["tenant_b"] in tenants and world.emails["occupant"] not in tenants


# ---------------------------------------------------------------- sites and roles


async def test_import_never_touches_another_site(client: Any, world: World, other_world: World) -> None:
    rows = [{"full_name": "Shared", "unit": "A-101", "relation": "owner", "primary_mobile": "9855555555"}]
    content = to_csv(rows, list(rows[0]))
    assert (await upload(client, other_world, content)).json()["created"] == 1
    before_other = await snapshot(other_world.site_id)
    # The same phone on this site is a different person: created here, the other site untouched.
    assert (await upload(client, world, content)).json()["created"] == 1
    assert await snapshot(other_world.site_id) == before_other
    # A unit label only exists per site: B-104 of the other site is not this site's.
    await Unit.update({Unit.label: "B-999"}).where((Unit.site == other_world.site_id) & (Unit.label == "B-104"))
    row = {"full_name": "Nobody", "unit": "B-999", "relation": "owner", "primary_mobile": "9855555556"}
    result = (await upload(client, world, to_csv([row], list(row)))).json()
    assert error_positions(result) == {2: "unit"}


@pytest.mark.parametrize("role", ["occupant", "guard", "technician", "platform_admin"])
async def test_only_staff_import_and_export(client: Any, world: World, role: str) -> None:
    rows = [{"full_name": "X", "unit": "A-101", "relation": "owner", "primary_mobile": "9866666666"}]
    assert (await upload(client, world, to_csv(rows, list(rows[0])), who=role)).status_code == 403
    assert (await client.get("/api/occupants/export.csv", headers=world.headers(role))).status_code == 403
    assert await occupant_count(world.site_id) == 1


async def test_site_admin_may_import(client: Any, world: World) -> None:
    rows = [{"full_name": "X", "unit": "A-101", "relation": "owner", "primary_mobile": "9866666667"}]
    assert (await upload(client, world, to_csv(rows, list(rows[0])), who="site_admin")).json()["created"] == 1


async def test_importer_is_callable_without_http(world: World, settings: Any) -> None:
    rows = [{"full_name": "Direct", "unit": "a-101", "relation": "family", "primary_mobile": "9877777777"}]
    directory = directory_for(settings)
    result = await importer.import_occupants(directory, world.site_id, to_csv(rows, list(rows[0])), max_bytes=10_000)
    assert (result.created, result.failed) == (1, 0)
    again = await importer.import_occupants(directory, world.site_id, to_csv(rows, list(rows[0])), max_bytes=10_000)
    assert again.unchanged == 1
