"""Piccolo app that owns opshub's tables and migrations."""

import os

from piccolo.conf.apps import AppConfig, table_finder

CURRENT_DIRECTORY = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="opshub",
    migrations_folder_path=os.path.join(CURRENT_DIRECTORY, "piccolo_migrations"),
    table_classes=table_finder(
        modules=[
            "schema.tables",
            "schema.notifications",
            "schema.visitors",
            "schema.complaints",
            "schema.slots",
            "schema.privacy",
            "schema.billing",
            "schema.permits",
            "schema.attendance",
            "schema.amc",
            "schema.places",
            "schema.reports",
        ],
        exclude_imported=True,
    ),
    migration_dependencies=[],
    commands=[],
)
