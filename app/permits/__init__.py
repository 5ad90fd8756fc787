"""Permits: types per site, apply, approval chains, the gate (docs/permits.md)."""
