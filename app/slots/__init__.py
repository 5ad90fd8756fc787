"""Slots: see docs/slots.md."""
