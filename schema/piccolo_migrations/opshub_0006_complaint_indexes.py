from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-22T11:06:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "complaints: unique and lookup indexes"

# Frozen copy: later table changes must not alter what this migration does.
# uq_complaint_escalation_complaint_level is what makes re-running the escalation cron harmless.
INDEXES: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("uq_complaint_category_site_code", "complaint_category", ("site", "code"), True),
    ("uq_complaint_sla_rule_category_priority", "complaint_sla_rule", ("category", "priority"), True),
    ("uq_complaint_escalation_complaint_level", "complaint_escalation", ("complaint", "level"), True),
    ("ix_complaint_site_status", "complaint", ("site", "status"), False),
    ("ix_complaint_category", "complaint", ("category",), False),
    ("ix_complaint_assignee_status", "complaint", ("assignee", "status"), False),
    ("ix_complaint_transition_complaint_created", "complaint_transition", ("complaint", "created_at"), False),
    ("ix_technician_shift_site_weekday", "technician_shift", ("site", "weekday"), False),
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
