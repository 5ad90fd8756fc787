"""Complaints: see docs/complaints.md."""
