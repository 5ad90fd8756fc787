"""Hot reads use the index meant for them, with or without the planner's statistics.

- The ledger's scans by status read partial indexes of the rows in that status (migration 0021), so an
  audience's ``pending`` rows are written to neither of them.
- A batch's contact points are found by person (migration 0022), not by reading every contact point of the
  site.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, cast
from uuid import uuid4

import pytest

from app.db import _sqlite_update_sql, any_of, current_engine, is_sqlite
from app.privacy.registry import RetentionRun
from schema.notifications import Delivery, Notification

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
SCANS = {
    # notifications.digest.release_due
    "ix_delivery_deferred_due": (
        "SELECT d.id FROM delivery d JOIN notification n ON n.id = d.notification "
        "WHERE d.status = 'deferred' AND d.defer_until <= {} ORDER BY d.site, d.person, d.defer_until LIMIT 100"
    ),
    # notifications.ledger.in_doubt
    "ix_delivery_sending_claimed": (
        "SELECT id FROM delivery WHERE status = 'sending' AND claimed_at < {} ORDER BY claimed_at LIMIT 100"
    ),
}


async def _plan(sql: str, *params: Any) -> str:
    if is_sqlite():
        rows = await Delivery.raw("EXPLAIN QUERY PLAN " + sql, *params)
        return "\n".join(str(row["detail"]) for row in rows)
    engine: Any = current_engine()
    async with engine.pool.acquire() as connection, connection.transaction():
        # An empty table is cheaper to read whole: the planner must show which index it would use.
        await connection.execute("SET LOCAL enable_seqscan = off")
        rows = await connection.fetch("EXPLAIN " + sql.format(*(f"${i}" for i in range(1, len(params) + 1))), *params)
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("index", sorted(SCANS))
async def test_each_scan_by_status_reads_its_partial_index(index: str) -> None:
    assert index in await _plan(SCANS[index], NOW)


async def test_a_batch_of_contact_points_is_found_by_person_not_by_reading_the_whole_site(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read of app.people.directory.Directory.chosen_contacts_for, for a batch of 200 people of a site of
    1,000, as it stands after their import. Without migration 0022, SQLite read it through the index on
    ``site`` alone, every contact point of the site, with or without statistics.

    PostgreSQL chooses by its statistics and the table's size: for a small site it may rightly read the site's
    rows, and on an unknown one the plan depended on what earlier tests had left in the statistics. There the
    test asserts the index the planner needs at a township's scale (10,000 people: 27 ms a batch through
    ``site``, 1.2 ms through this index, docs/performance.md); that it has the statistics to choose it after
    an import is the test below."""
    from app.people import service
    from app.people.directory import directory_for

    if not is_sqlite():
        rows = await Delivery.raw(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'contact_point' "
            "AND indexname = 'ix_contact_point_site_person_kind'"
        )
        assert rows and re.search(r"\(site, person, kind\)", rows[0]["indexdef"]), rows
        return
    monkeypatch.setattr(service, "REFRESH_STATISTICS_FROM", 20)
    people = await service.create_people(directory_for(world.settings), world.site_id, _imported(1000, 1))
    person_in, people_param = any_of("person", people[:200])
    read = (
        'SELECT "person", "kind", "label", "value_index", "status", "value_encrypted" FROM "contact_point" '
        f"WHERE site = {{}} AND {person_in} AND kind IN ({{}})"
    )
    with_statistics = await _plan(read, world.site_id, *people_param, "mobile")
    await _forget_statistics("contact_point")
    for plan in (with_statistics, await _plan(read, world.site_id, *people_param, "mobile")):
        assert "ix_contact_point_site_person_kind" in plan, plan
        assert not re.search(r"contact_point_site\b", plan), plan


def _imported(count: int, first: int) -> list[Any]:
    from app.auth.roles import Role
    from app.people.service import NewPerson

    return [
        NewPerson(
            full_name=f"Imported {first + i}",
            roles=frozenset({Role.OCCUPANT}),
            primary_mobile=f"+9198{first + i:08d}",
            email=f"imported{first + i}@example.test",
        )
        for i in range(count)
    ]


async def _ledger_indexes() -> dict[str, str]:
    """The ledger's indexes by name, with their definitions (the primary key's left out)."""
    if is_sqlite():
        rows = await Delivery.raw("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'delivery'")
        definitions = {row["name"]: str(row["sql"] or "") for row in rows}
    else:
        rows = await Delivery.raw(
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'delivery'"
        )
        definitions = {row["name"]: row["sql"] for row in rows}
    primary_key = ("sqlite_autoindex_delivery_1", "delivery_pkey")
    return {name: sql for name, sql in definitions.items() if name not in primary_key}


async def test_the_ledger_keeps_only_the_indexes_its_reads_use() -> None:
    """Every index is another tree each insert or status change writes. Each one here has a reader:
    claims (notification, channel, status), expansion's re-run (the unique key), a person's feed and export
    (person, channel, created_at), retention and reports by site and period (site, created_at), the digest
    cron, recovery, a digest's items. Not provider_id (migration 0023): no query reads by it, and its random
    keys made each outcome write scatter over the whole index. Not site alone (migration 0024): its readers
    ask for a period."""
    assert set(await _ledger_indexes()) == {
        "ix_delivery_site_created",
        "uq_delivery_notification_person_channel",
        "ix_delivery_notification_channel_status",
        "ix_delivery_person_channel_created",
        "ix_delivery_digest",
        "ix_delivery_deferred_due",
        "ix_delivery_sending_claimed",
    }


async def test_the_ledger_is_read_by_site_and_period_through_its_index(world: Any) -> None:
    """Every read of the ledger by site asks for a period: retention (created before the cutoff) and the
    notifications report, whose summary is the control room's delivery funnel (created in these days). Both
    read ``(site, created_at)`` (migration 0024), where the index on ``site`` alone read every row the site
    ever had."""
    import datetime as dt

    from app.reports.catalogue import NOTIFICATIONS
    from app.reports.framework import make_query, scope_for_site
    from notifications.personal_data import _old_final_rows

    retention = RetentionRun(site_id=world.site_id, cutoff=NOW, settings=world.settings, redis=cast(Any, None))
    report = make_query(
        NOTIFICATIONS,
        scope_for_site(world.site_id, world.site_id),
        date_from=dt.date(2026, 11, 29),
        date_to=dt.date(2026, 12, 6),
        now=NOW,
    )
    assert NOTIFICATIONS.source is not None
    for condition in (_old_final_rows(retention), NOTIFICATIONS.source.where(report)):
        plan = await _plan(str(Delivery.select(Delivery.id).where(condition)))
        assert "ix_delivery_site_created" in plan, plan


async def test_a_sites_deletion_takes_its_ledger_rows_though_their_site_is_no_foreign_key(world: Any) -> None:
    """A ledger row's site is its notification's (migration 0024): on PostgreSQL not a constraint of its own,
    which every inserted row looked up again. Deleting a site still deletes its rows, through its notifications
    and its people."""
    import secrets

    from schema.tables import Person, Site

    if not is_sqlite():
        constraints = await Delivery.raw(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'delivery'::regclass AND contype = 'f'"
        )
        assert {row["conname"] for row in constraints} == {"delivery_notification_fkey", "delivery_person_fkey"}
    site = Site(name="Closing", slug=f"closing-{secrets.token_hex(4)}")
    await site.save()
    person = Person(site=site.id, full_name="Leaving Occupant")
    await person.save()
    notification = Notification(site=site.id, kind="announcement", category="announcement", title="Bye", body="-")
    await notification.save()
    for channel in ("push", "sms"):
        await Delivery(
            site=site.id, notification=notification.id, person=person.id, channel=channel, status="sent"
        ).save()
    assert await Delivery.count().where(Delivery.site == site.id) == 2
    await Site.delete().where(Site.id == site.id)
    assert await Delivery.count().where(Delivery.site == site.id) == 0


async def test_a_claims_renewal_and_outcomes_find_their_rows_by_id_not_by_the_index_of_sending_rows() -> None:
    """A batch's outcome (notifications.ledger, through app.db.update_each) and its claim's renewal know their
    rows' ids, and are fenced by the claim: its token and the status ``sending``. Written as the bare column,
    that status let PostgreSQL read the rows through the partial index of ``sending`` rows, which until a
    vacuum keeps an entry for every row ever claimed: each batch then visited every row claimed before it.
    (The planner may read a small table whole; here it must show an index.)"""
    from notifications.ledger import _CLAIMED

    if is_sqlite():
        outcome = _sqlite_update_sql("delivery", ["id"], "status = 'sent'", _CLAIMED, 1).replace("?", "{}")
        ids: list[Any] = [f'[["{uuid4()}"]]']
    else:
        outcome = (
            "UPDATE \"delivery\" SET status = 'sent' FROM unnest({}::uuid[]) AS o(id) "
            f'WHERE "delivery".id = o.id AND {_CLAIMED}'
        )
        ids = [[uuid4() for _ in range(500)]]
    id_in, id_params = any_of("id", [uuid4() for _ in range(500)])
    renewal = f"UPDATE delivery SET claimed_at = {{}} WHERE {id_in} AND {_CLAIMED}"
    for plan in (await _plan(outcome, *ids, "token"), await _plan(renewal, NOW, *id_params, "token")):
        assert "ix_delivery_sending_claimed" not in plan, plan
    # The hazard itself: the same fence on the bare column reads that index.
    bare = f"UPDATE delivery SET claimed_at = {{}} WHERE {id_in} AND claim_token = {{}} AND status = 'sending'"
    if not is_sqlite():
        assert "ix_delivery_sending_claimed" in await _plan(bare, NOW, *id_params, "token")


async def test_a_batch_update_on_sqlite_finds_each_row_by_id_where_its_condition_has_an_index() -> None:
    """app.db.update_each hands SQLite a batch's rows as JSON. Unless they are materialized first, SQLite
    takes JSON's table function for cheap and joins it inside: where the condition has an index of its own
    (``site = ?``), it read every row of the site by it and the whole JSON again for each (3,000 rows took
    7 s in test_db). The rows must be the outer loop, each finding its row by the primary key."""
    if not is_sqlite():
        pytest.skip("PostgreSQL's statement joins unnest(arrays), whose rows it counts")
    update = _sqlite_update_sql(
        "national_dnd_entry", ["id", "phone_index"], "phone_index = o.phone_index", "site = {}", 1
    )
    plan = await _plan(update.replace("?", "{}"), '[["a", "b"]]', str(uuid4()))
    assert "SCAN o" in plan and re.search(
        r"SEARCH national_dnd_entry USING INDEX sqlite_autoindex\S* \(id=\?\)", plan
    ), plan
    assert "national_dnd_entry_site" not in plan, plan


async def test_no_index_covers_every_row_by_status() -> None:
    definitions = await _ledger_indexes()
    assert "ix_delivery_status_defer_until" not in definitions
    for name in SCANS:
        assert "WHERE" in definitions[name].upper(), definitions[name]


async def _times_analyzed(table: str) -> int:
    """How often ``table``'s statistics were read (PostgreSQL); on SQLite, 1 when it has any, else 0."""
    if is_sqlite():
        if not await _sqlite_has_statistics():
            return 0
        rows = await Delivery.raw("SELECT COUNT(*) AS n FROM sqlite_stat1 WHERE tbl = {}", table)
        return 1 if rows[0]["n"] else 0
    rows = await Delivery.raw(
        "SELECT analyze_count + autoanalyze_count AS n FROM pg_stat_user_tables WHERE relname = {}", table
    )
    return int(rows[0]["n"])


async def _sqlite_has_statistics() -> bool:
    """sqlite_stat1 exists once anything has been analyzed in the database."""
    return bool(await Delivery.raw("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"))


async def _forget_statistics(table: str) -> None:
    if is_sqlite():
        if await _sqlite_has_statistics():
            await Delivery.raw("DELETE FROM sqlite_stat1 WHERE tbl = {}", table)
    else:
        await Delivery.raw("SELECT pg_stat_clear_snapshot()")


async def test_a_bulk_import_of_people_refreshes_the_statistics_the_pipeline_plans_with(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import of many people has the planner's statistics read again at once (app.db.refresh_statistics):
    without them both databases read a batch's contact points by site, every contact point of it. One
    person added at the desk does not pay for an ANALYZE."""
    from app.people import service
    from app.people.directory import directory_for

    monkeypatch.setattr(service, "REFRESH_STATISTICS_FROM", 20)
    directory = directory_for(world.settings)

    await _forget_statistics("contact_point")
    before = await _times_analyzed("contact_point")
    await service.create_people(directory, world.site_id, _imported(5, 1))
    await _forget_statistics("contact_point")
    assert await _times_analyzed("contact_point") == before, "a few people: no ANALYZE"

    await service.create_people(directory, world.site_id, _imported(25, 100))
    assert await _times_analyzed("contact_point") > before
    assert await _times_analyzed("person") > 0


async def test_an_occupant_import_refreshes_the_statistics_after_its_transaction(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The occupant import writes in chunks inside one transaction; the statistics are read again once it has
    committed, counting every person it created (inside it, SQLite's ANALYZE would wait for the import's own
    write lock, and PostgreSQL's would not see the new rows)."""
    import csv
    import io

    from app.occupants import importer
    from app.people import service
    from app.people.directory import directory_for

    monkeypatch.setattr(service, "REFRESH_STATISTICS_FROM", 20)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["full_name", "unit", "relation", "primary_mobile"])
    for i in range(25):
        writer.writerow([f"Resident {i}", "A-101", "owner", f"97{40_000_000 + i:08d}"])

    await _forget_statistics("contact_point")
    before = await _times_analyzed("contact_point")
    result = await importer.import_occupants(
        directory_for(world.settings), world.site_id, buffer.getvalue().encode(), max_bytes=100_000
    )
    assert (result.created, result.failed) == (25, 0)
    assert await _times_analyzed("contact_point") > before
