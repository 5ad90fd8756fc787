"""Piccolo's entry point: the engine comes from DATABASE_URL (SQLite under var/ when unset)."""

from piccolo.conf.apps import AppRegistry

from app.db import build_engine

DB = build_engine()

APP_REGISTRY = AppRegistry(apps=["schema.piccolo_app"])
