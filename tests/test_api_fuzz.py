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

import pytest

from tests.support.servers import FAST, InProcessServer

pytestmark = pytest.mark.skipif(os.environ.get("OPSHUB_FUZZ") != "1", reason="run by `make fuzz`")

ROLES = ("fm_admin", "guard", "occupant", "technician", "platform_admin")
EXAMPLES = int(os.environ.get("OPSHUB_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("OPSHUB_FUZZ_SEED", "20261203"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "allow_header_conformance",
    )
)


@pytest.fixture(scope="module")
async def server(settings: Any) -> AsyncIterator[InProcessServer]:
    running = InProcessServer(settings, FAST)
    await running.start()
    yield running
    await running.stop()


def schemathesis_command(base_url: str, token: str, report: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{base_url}/schema/openapi.json",
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
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


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ROLES)
async def test_every_operation_answers_within_its_document(
    server: InProcessServer, world: Any, role: str, tmp_path: Path
) -> None:
    command = schemathesis_command(server.http_url, world.token(role), tmp_path / "junit.xml")
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"}
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"schemathesis as {role} found problems:\n{text[-20000:]}"
