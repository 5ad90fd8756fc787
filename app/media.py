"""Media types the hub answers with, named once.

Litestar appends ``; charset=utf-8`` to every ``text/*`` type it sends, so a route that named the
charset itself answered ``text/csv; charset=utf-8; charset=utf-8``. Routes name the bare type.
"""

from __future__ import annotations

from typing import Final

CSV: Final = "text/csv"
