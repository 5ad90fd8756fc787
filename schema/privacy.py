"""Tables of the privacy module (migrations: see schema/piccolo_migrations/README.md)."""
