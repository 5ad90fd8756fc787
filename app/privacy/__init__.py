"""Privacy: see docs/privacy.md."""
