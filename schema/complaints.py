"""Tables of the complaints module (migrations: see schema/piccolo_migrations/README.md)."""
