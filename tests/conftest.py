"""Test environment: real databases and a real Redis, isolated per run.

- No DATABASE_URL: a fresh SQLite file in a temporary directory.
- DATABASE_URL=postgresql://...: a fresh database is created on that server for this run
  and dropped afterwards, so parallel or repeated runs never see each other's rows.
- No REDIS_URL: a private redis-server is started. With REDIS_URL, that server, with a
  per-run key prefix so nothing of another run is touched.

Each process that runs tests (pytest itself, or each pytest-xdist worker) gets an environment of its own,
configured before collection imports anything that builds the engine.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.browser import browser, phone_page  # noqa: F401 - fixtures for page tests
from tests.support.environment import TestEnvironment

ENVIRONMENT = TestEnvironment.from_os(run_id=secrets.token_hex(4), tmp=Path(tempfile.mkdtemp(prefix="opshub-test-")))


def pytest_configure(config: pytest.Config) -> None:
    # Before collection imports any test module, so before anything builds the engine.
    if _runs_tests(config):
        ENVIRONMENT.prepare()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _runs_tests(session.config):
        ENVIRONMENT.teardown()


def _runs_tests(config: pytest.Config) -> bool:
    """False in pytest-xdist's controller (`make test` runs `-n`): it only hands tests out, and each of its
    workers prepares a database and a Redis of its own."""
    return hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)


# Tests that assert a wall-clock latency or rate of real processes (a walk-in's alerts within 2 s while an
# announcement runs, a provider's requests per second, a crash and restart against deadlines). `make test`
# runs them after the rest, on their own: beside another test process they would measure the machine.
SERIAL_MODULES = {
    "test_notify_scale.py",
    "test_notify_crash.py",
    "test_notify_lanes.py",
    "test_notify_provider_limits.py",
    "test_consoles_e2e.py",
}
SERIAL_TESTS = {"test_walk_in_shows_pending_with_its_age_and_the_answer_within_2s"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # The pages' tests talk to the database only through the API, which the other tests cover on both
        # databases; `.ci/run` runs them once, on SQLite, and deselects them with `not browser` on PostgreSQL.
        if {"browser", "phone_page"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
        if item.path.name in SERIAL_MODULES or getattr(item, "originalname", item.name) in SERIAL_TESTS:
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="session")
def test_environment() -> TestEnvironment:
    return ENVIRONMENT


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    from app.config import load_settings

    return load_settings()


@pytest.fixture(scope="session", autouse=True)
async def database_pool(settings) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """The tests' own loop gets a connection pool, as a server's loop does (app.db.open_database)."""
    from app.db import close_database, open_database

    started = await open_database(settings)
    yield
    if started:
        await close_database()


@pytest.fixture(scope="session")
async def redis(settings):  # type: ignore[no-untyped-def]
    from app.redis import create_redis

    client = create_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def app(settings):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator:  # type: ignore[no-untyped-def]
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def world(settings):  # type: ignore[no-untyped-def]
    """A fresh site with two towers, units and one person per role."""
    from tests.support.world import build_world

    return await build_world(settings)


@pytest.fixture
async def other_world(settings):  # type: ignore[no-untyped-def]
    """A second, unrelated site, for cross-site checks."""
    from tests.support.world import build_world

    return await build_world(settings)


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


os.environ.setdefault("OPSHUB_ENV", "test")
