"""`migrate` on several replicas at once applies migrations once (issue 21, the deployment guide).

On PostgreSQL every `python -m app.launcher migrate` takes a session advisory lock first: while one
holds it the others wait (seen in pg_locks), then run and find nothing to do.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.db import MIGRATION_LOCK_KEY
from tests.support.faults import wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the lock is PostgreSQL's (SQLite is one local file: one process migrates it)",
)


async def test_replicas_that_all_migrate_at_boot_wait_for_the_one_that_holds_the_lock(settings: Any) -> None:
    holder = await asyncpg.connect(settings.database_url)
    replicas: list[asyncio.subprocess.Process] = []
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)  # a replica migrating now
        for _ in range(2):
            replicas.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "app.launcher",
                    "migrate",
                    cwd=ROOT,
                    env=os.environ,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            )

        async def both_waiting() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(waiting == 2)

        await wait_until(both_waiting, 30, "both replicas to wait for the migration lock")
        assert all(r.returncode is None for r in replicas)
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        for replica in replicas:
            _, errors = await asyncio.wait_for(replica.communicate(), 60)
            assert replica.returncode == 0, errors.decode(errors="replace")[-2000:]
    finally:
        for replica in replicas:
            if replica.returncode is None:
                replica.kill()
                await replica.wait()
        await holder.close()
