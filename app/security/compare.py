"""Constant-time comparison of a secret with what a caller sent.

``hmac.compare_digest`` raises ``TypeError`` for a ``str`` holding non-ASCII characters, so a
signature such as ``é`` in a link was a 500 instead of "wrong". Every comparison of a secret with
input goes through ``safe_equals``, which compares UTF-8 bytes and never raises.
"""

from __future__ import annotations

import hmac


def _as_bytes(value: str | bytes) -> bytes:
    # surrogatepass: a lone surrogate (possible from a decoded query string) still has bytes.
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def safe_equals(expected: str | bytes, given: str | bytes) -> bool:
    """Whether ``given`` equals ``expected``, in time that does not depend on where they differ."""
    return hmac.compare_digest(_as_bytes(expected), _as_bytes(given))
