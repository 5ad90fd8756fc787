"""Per-run databases and Redis for the test suite (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from app.devredis import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TestEnvironment:
    run_id: str
    tmp: Path
    given_database_url: str | None
    given_redis_url: str | None
    database_url: str = ""
    redis_url: str = ""
    created_pg_database: str | None = None
    private_redis: PrivateRedis | None = field(default=None, repr=False)

    @classmethod
    def from_os(cls, run_id: str, tmp: Path) -> TestEnvironment:
        return cls(
            run_id=run_id,
            tmp=tmp,
            given_database_url=os.environ.get("DATABASE_URL") or None,
            given_redis_url=os.environ.get("REDIS_URL") or None,
        )

    @property
    def is_postgres(self) -> bool:
        return bool(self.given_database_url and self.given_database_url.startswith("postgres"))

    def prepare(self) -> None:
        if self.is_postgres:
            assert self.given_database_url is not None
            self.created_pg_database = f"opshub_test_{self.run_id}"
            asyncio.run(_pg_admin(self.given_database_url, f'CREATE DATABASE "{self.created_pg_database}"'))
            # A commit returns before its WAL reaches the disk: atomicity and isolation are unchanged (what
            # the suite tests), only a crash of the server itself could lose the last commits of a throwaway
            # database. Most of the suite's time on PostgreSQL was waiting for those flushes.
            asyncio.run(
                _pg_admin(
                    self.given_database_url,
                    f'ALTER DATABASE "{self.created_pg_database}" SET synchronous_commit = off',
                )
            )
            self.database_url = urlunparse(
                urlparse(self.given_database_url)._replace(path=f"/{self.created_pg_database}")
            )
        else:
            self.database_url = f"sqlite:///{self.tmp / 'opshub-test.sqlite'}"
        if self.given_redis_url:
            self.redis_url = self.given_redis_url
        else:
            self.private_redis = PrivateRedis(self.tmp / "redis")
            self.redis_url = self.private_redis.start()
        os.environ.update(
            {
                "OPSHUB_ENV": "test",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "OPSHUB_REDIS_PREFIX": f"opshub-test-{self.run_id}:",
                "OPSHUB_VAR_DIR": str(self.tmp / "var"),
                # Small pools: each loop (the tests', the test client's, every in-process server's and
                # every worker process's) has one of its own (app.db.LoopPooledPostgresEngine).
                "OPSHUB_DATABASE_POOL_SIZE": "4",
                # Every test calls from one address: the real request limits are shown by
                # tests/test_rate_limits.py on an app of its own, the suite runs them 20x wider.
                "OPSHUB_RATE_LIMIT_SCALE": "20",
            }
        )
        # Migrations run in a child process exactly as the release step does.
        subprocess.run([sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, check=True, env=os.environ)

    def teardown(self) -> None:
        if self.private_redis is not None:
            self.private_redis.stop()
        if self.created_pg_database and self.given_database_url:
            try:
                asyncio.run(
                    _pg_admin(
                        self.given_database_url, f'DROP DATABASE IF EXISTS "{self.created_pg_database}" WITH (FORCE)'
                    )
                )
            except Exception as exc:  # a failed clean-up must not hide the test result
                print(f"warning: could not drop {self.created_pg_database}: {exc}", file=sys.stderr)


async def _pg_admin(dsn: str, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
