"""The worker process: arq's worker, run as `python -m workers` (the Procfile's `worker`).

arq's own CLI can only run arq's `Worker`; ours differs in one way. redis-py gives up a WATCHed pipeline
when its connection drops (the watch is lost with the connection) and raises `WatchError` instead of
retrying, and arq lets that out of its poll loop, so a Redis restart that lands on a cron's enqueue or a
job's start ended the worker. Here the poll goes on: the cron run it missed is re-derived by the next
tick (every cron re-derives its work from the database), and the job it was starting is still queued.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, cast

from arq.logs import default_log_config
from arq.typing import WorkerSettingsBase
from arq.worker import Worker, get_kwargs
from redis.exceptions import WatchError

from workers.main import WorkerSettings

logger = logging.getLogger(__name__)


class ResilientWorker(Worker):
    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except WatchError:
            # Raised inside the job's pipeline, after arq took a slot for it: give the slot back.
            self.job_counter -= 1
            self.sem.release()
            raise

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except WatchError:
            logger.warning("Redis dropped a watched connection; polling again")


def create_worker(**overrides: Any) -> ResilientWorker:
    # WorkerSettings is the class arq's CLI takes; arq types that as a protocol it does not declare.
    return ResilientWorker(**{**get_kwargs(cast(type[WorkerSettingsBase], WorkerSettings)), **overrides})


def main() -> None:
    logging.config.dictConfig(default_log_config(verbose=False))
    create_worker().run()
