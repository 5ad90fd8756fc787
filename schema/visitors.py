"""Tables of the visitors module (migrations: see schema/piccolo_migrations/README.md)."""
