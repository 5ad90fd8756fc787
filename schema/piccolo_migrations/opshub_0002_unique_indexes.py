from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-22T02:54:19:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite unique indexes"

# Frozen copy: later table changes must not alter what this migration does.
COMPOSITE_UNIQUE_INDEXES: dict[str, tuple[str, ...]] = {
    "building": ("site", "code"),
    "unit": ("site", "label"),
    "person_role": ("person", "role"),
    "technician_skill": ("person", "skill"),
    "occupancy": ("person", "unit"),
    "contact_point": ("person", "kind", "label"),
    "vehicle": ("person", "plate_index"),
    "resource": ("site", "code"),
}


def index_name(table: str, columns: tuple[str, ...]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="opshub", description=DESCRIPTION)

    async def create_indexes() -> None:
        # SQLite cannot ALTER TABLE ... ADD CONSTRAINT; a unique index works on both engines.
        engine = engine_finder()
        assert engine is not None
        for table, columns in COMPOSITE_UNIQUE_INDEXES.items():
            cols = ", ".join(f'"{c}"' for c in columns)
            await engine.run_ddl(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{index_name(table, columns)}" ON "{table}" ({cols})'
            )

    async def drop_indexes() -> None:
        engine = engine_finder()
        assert engine is not None
        for table, columns in COMPOSITE_UNIQUE_INDEXES.items():
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{index_name(table, columns)}"')

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
