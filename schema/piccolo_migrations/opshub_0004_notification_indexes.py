from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-22T03:07:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification unique and lookup indexes"

# Frozen copy: later table changes must not alter what this migration does.
# The delivery ledger's uniqueness is what makes every send idempotent.
INDEXES: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("uq_delivery_notification_person_channel", "delivery", ("notification", "person", "channel"), True),
    ("ix_delivery_notification_channel_status", "delivery", ("notification", "channel", "status"), False),
    ("ix_delivery_status_defer_until", "delivery", ("status", "defer_until"), False),
    ("ix_delivery_person_channel_created", "delivery", ("person", "channel", "created_at"), False),
    ("uq_notification_preference_person_channel_category", "notification_preference",
     ("person", "channel", "category"), True),
    ("uq_national_dnd_entry_site_phone_index", "national_dnd_entry", ("site", "phone_index"), True),
    ("uq_notification_site_idempotency_key", "notification", ("site", "idempotency_key"), True),
    ("ix_consent_event_person_created", "consent_event", ("person", "created_at"), False),
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
