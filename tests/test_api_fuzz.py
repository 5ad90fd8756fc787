"""schemathesis over the whole OpenAPI document, with a token of every role, against the real server.

Each role's run is the schemathesis CLI in a subprocess (so its blocking HTTP client never stalls
the loop that serves it), with a fixed seed and a bounded number of examples per operation. A run
fails on any server error, or on a status code, content type, header or body that the document
does not describe. It takes minutes, so `make test` skips it and `make fuzz` (which `.ci/run` calls
once) runs it; `OPSHUB_FUZZ_EXAMPLES` raises the bound for a longer run (README: "Fuzzing the API").
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from notifications.fakes import running_fakes
from tests.support.servers import FAST, InProcessServer
from tests.support.world import build_world

pytestmark = pytest.mark.skipif(os.environ.get("OPSHUB_FUZZ") != "1", reason="run by `make fuzz`")

ROLES = ("fm_admin", "guard", "occupant", "technician", "platform_admin")
EXAMPLES = int(os.environ.get("OPSHUB_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("OPSHUB_FUZZ_SEED", "20261203"))
# Every check. negative_data_rejection holds because JSON bodies are decoded strictly and dates in query
# strings must be dates (app.input_guard). positive_data_acceptance holds because the document carries what
# the decoder enforces inside lists and dict keys, and upload parts are never null (app.openapi.problems);
# tests/schemathesis.toml lists the answers a valid request may still get (a rule broken, a state refused).
CHECKS = os.environ.get("OPSHUB_FUZZ_CHECKS", "all")
EXCLUDED_CHECKS = os.environ.get("OPSHUB_FUZZ_EXCLUDED_CHECKS", "")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    # Online payments start an order at the provider while the request waits: the fake Razorpay answers.
    async with running_fakes() as fakes:
        running = InProcessServer(
            msgspec.structs.replace(
                settings,
                razorpay_base_url=fakes.razorpay_url,
                razorpay_key_id=fakes.razorpay.key_id,
                razorpay_key_secret=fakes.razorpay.key_secret,
            ),
            FAST,
        )
        await running.start()
        yield running
        await running.stop()


def schemathesis_command(base_url: str, token: str, report: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/schema/openapi.json",
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        *(["--exclude-checks", EXCLUDED_CHECKS] if EXCLUDED_CHECKS else []),
        "--phases",
        os.environ.get("OPSHUB_FUZZ_PHASES", "examples,coverage,fuzzing"),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--warnings",
        "off",
        # Signing out would revoke the very token the rest of the run uses (tests/test_auth.py covers both).
        "--exclude-path-regex",
        "^/api/auth/logout",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]


async def _fuzz_as(server: InProcessServer, token: str, report: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *schemathesis_command(server.http_url, token, report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output, _ = await process.communicate()
    return int(process.returncode or 0), output.decode(errors="replace")


@pytest.mark.timeout(900)
async def test_every_operation_answers_within_its_document_for_every_role(
    server: InProcessServer, settings: Any, tmp_path: Path
) -> None:
    # One site per role, so one role's writes never change what another's run meets; the runs go at
    # once (the machine's cores generate the cases, the one server answers them all).
    worlds = [await build_world(settings) for _ in ROLES]
    runs = await asyncio.gather(
        *(
            _fuzz_as(server, world.token(role), tmp_path / f"{role}.xml")
            for world, role in zip(worlds, ROLES, strict=True)
        )
    )
    failed = {role: text[-60000:] for role, (code, text) in zip(ROLES, runs, strict=True) if code != 0}
    assert not failed, "schemathesis found problems:\n" + "\n".join(f"== as {r}\n{t}" for r, t in failed.items())
