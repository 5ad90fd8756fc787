from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-22T11:05:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "visitors: unique and lookup indexes"

# Frozen copy: later table changes must not alter what this migration does.
# (name, table, columns, unique, partial WHERE clause or None)
INDEXES: list[tuple[str, str, tuple[str, ...], bool, str | None]] = [
    # A 6-digit code identifies at most one active pass of a site.
    ("uq_visitor_pass_site_active_code", "visitor_pass", ("site", "code_hash"), True, "status = 'active'"),
    ("uq_visitor_approval_step_approval_step", "visitor_approval_step", ("approval", "step"), True, None),
    ("uq_visitor_message_pass_channel", "visitor_message", ("visitor_pass", "channel"), True, None),
    ("uq_visitor_daily_count_site_day_kind_source", "visitor_daily_count", ("site", "day", "kind", "source"), True,
     None),
    ("ix_visitor_visit_site_status", "visitor_visit", ("site", "status"), False, None),
    ("ix_visitor_approval_status_next_step_at", "visitor_approval", ("status", "next_step_at"), False, None),
    ("ix_visitor_pass_site_status_valid_until", "visitor_pass", ("site", "status", "valid_until"), False, None),
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for name, table, columns, unique, where in INDEXES:
            cols = ", ".join(f'"{c}"' for c in columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            partial = f" WHERE {where}" if where else ""
            await engine.run_ddl(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{table}" ({cols}){partial}')

    async def drop_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for name, *_ in INDEXES:
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
