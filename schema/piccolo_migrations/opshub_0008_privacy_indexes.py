from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-22T11:08:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "privacy unique and lookup indexes"

# Frozen copy: later table changes must not alter what this migration does.
INDEXES: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("uq_retention_setting_site_class", "retention_setting", ("site", "class_name"), True),
    ("ix_audit_event_site_subject_at", "audit_event", ("site", "subject_id", "at"), False),
    ("ix_audit_event_site_actor_at", "audit_event", ("site", "actor_id", "at"), False),
    ("ix_data_rights_request_site_status", "data_rights_request", ("site", "status"), False),
    ("ix_retention_run_site_ran_at", "retention_run", ("site", "ran_at"), False),
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for name, table, columns, unique in INDEXES:
            cols = ", ".join(f'"{c}"' for c in columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            await engine.run_ddl(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{table}" ({cols})')

    async def drop_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for name, *_ in INDEXES:
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
