"""Tables of the slots module (migrations: see schema/piccolo_migrations/README.md)."""
