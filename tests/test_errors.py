"""Unexpected errors become problem details; a transaction PostgreSQL rolled back to break a deadlock or a
serialization conflict is a 503 with Retry-After, since nothing was saved and sending again works."""

from __future__ import annotations

import pytest
from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from litestar import get
from litestar.testing import create_async_test_client

from app.errors import EXCEPTION_HANDLERS, PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE


@get("/deadlock", sync_to_thread=False)
def deadlock() -> None:
    raise DeadlockDetectedError("deadlock detected")


@get("/serialization", sync_to_thread=False)
def serialization() -> None:
    raise SerializationError("could not serialize access due to concurrent update")


@get("/bug", sync_to_thread=False)
def bug() -> None:
    raise RuntimeError("a bug")


@pytest.mark.parametrize("path", ["/deadlock", "/serialization"])
async def test_a_rolled_back_transaction_asks_the_client_to_send_again(path: str) -> None:
    async with create_async_test_client([deadlock, serialization], exception_handlers=EXCEPTION_HANDLERS) as client:
        response = await client.get(path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE_BASE + "try-again" and problem["instance"] == path


async def test_any_other_unexpected_error_is_a_500_problem_without_its_text() -> None:
    async with create_async_test_client([bug], exception_handlers=EXCEPTION_HANDLERS) as client:
        response = await client.get("/bug")
    assert response.status_code == 500
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE_BASE + "internal-error"
    assert "a bug" not in response.text
