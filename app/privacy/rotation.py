"""Key rotation for encrypted columns, without downtime.

``OPSHUB_DATA_ENCRYPTION_KEYS`` lists keys (32 bytes, url-safe base64, as Fernet's) newest first: the
first encrypts, all of them decrypt (app.security.crypto). To rotate: put a new key first and deploy
(new writes use it, old data stays readable), run the re-encrypt job (``privacy_reencrypt``), then drop
the old key. The same job rewrites values of the earlier format (Fernet) in the current one (AES-GCM).

The job finds every encrypted column by convention: a column whose name ends in ``_encrypted``
in any table of the Piccolo app, so columns other modules add are covered without registering.
It walks each table by id in batches, re-encrypts only values the newest key cannot already
decrypt, and updates a row only if the value is still the one it read: safe to re-run, safe to
run while the app writes.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from uuid import UUID

from piccolo.columns import Column
from piccolo.conf.apps import Finder
from piccolo.table import Table

from app.security.crypto import PiiCipher

logger = logging.getLogger("opshub.privacy.rotation")
SUFFIX: Final = "_encrypted"


def encrypted_columns() -> list[tuple[type[Table], Column]]:
    app_config = Finder().get_app_config("opshub")
    found: list[tuple[type[Table], Column]] = []
    for table in app_config.table_classes:
        for column in table._meta.columns:
            if column._meta.name.endswith(SUFFIX):
                found.append((table, column))
    return sorted(found, key=lambda pair: (pair[0]._meta.tablename, pair[1]._meta.name))


async def reencrypt_all(cipher: PiiCipher, *, batch_size: int = 500, site_id: UUID | None = None) -> dict[str, int]:
    """Re-encrypt every encrypted value under the newest key; returns rows rotated per table.column
    (and ``table.column:unreadable`` for values no configured key decrypts, which are left as they are).

    ``site_id`` limits the work to one site's rows (tables with a ``site`` column)."""
    rotated: dict[str, int] = {}
    for table, column in encrypted_columns():
        name = f"{table._meta.tablename}.{column._meta.name}"
        pk = table._meta.primary_key
        site_column: Any = getattr(table, "site", None)
        if site_id is not None and site_column is None:
            continue
        count = unreadable = 0
        last: Any = None
        while True:
            query = table.select(pk, column).where(column.is_not_null()).order_by(pk).limit(batch_size)
            if last is not None:
                query = query.where(pk > last)
            if site_id is not None:
                query = query.where(site_column == site_id)
            rows = await query
            if not rows:
                break
            for row in rows:
                old = row[column._meta.name]
                try:
                    new = cipher.rotate_if_needed(old) if old else None
                except ValueError:
                    # No configured key reads it (a key was dropped too early): report it, go on.
                    unreadable += 1
                    continue
                if new is None:
                    continue
                done = (
                    await table.update({column: new}).where((pk == row[pk._meta.name]) & (column == old)).returning(pk)
                )
                count += len(done)
            last = rows[-1][pk._meta.name]
        rotated[name] = count
        if unreadable:
            rotated[f"{name}:unreadable"] = unreadable
            logger.error("%d values of %s cannot be decrypted with any configured key", unreadable, name)
        logger.info("re-encrypted %d values of %s", count, name)
    return rotated
