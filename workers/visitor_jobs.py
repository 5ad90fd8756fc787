"""arq jobs and crons of the visitors module; `workers.main` collects FUNCTIONS and CRON_JOBS."""

from __future__ import annotations

from typing import Any

FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = []
