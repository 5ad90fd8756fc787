"""Visitors: see docs/visitors.md."""
