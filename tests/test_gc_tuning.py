"""The worker tunes its garbage collector for throughput once it has started (workers.gc_tuning)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from workers.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parent.parent

_STARTUP_SCRIPT = """
import asyncio, gc, json
from app.config import get_settings
from app.redis import create_redis
from workers.main import startup, shutdown

async def main():
    before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    ctx = {"redis": create_redis(get_settings())}
    await startup(ctx)
    after = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    await shutdown(ctx)
    await ctx["redis"].aclose()
    print(json.dumps({"before": before, "after": after}))

asyncio.run(main())
"""


def test_a_worker_s_startup_freezes_what_it_made_and_collects_young_objects_less_often() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _STARTUP_SCRIPT],
        cwd=ROOT,
        env={**os.environ, "OPSHUB_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"]["threshold"] == [700, 10, 10]  # CPython's defaults, until startup
    assert seen["before"]["frozen"] == 0
    assert seen["after"]["threshold"] == [YOUNG_THRESHOLD, *OLDER_THRESHOLDS]
    # Startup's own objects (modules, settings, clients) are out of the collector's walks: many thousands.
    assert seen["after"]["frozen"] > 50_000
