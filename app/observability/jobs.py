"""A request's id travels with the arq jobs it enqueues, and a job's log lines carry both ids.

The job payload (arq pickles a dict) gets one more key, ``ORIGIN_KEY``, holding the ``request_id`` of the
context that enqueued it: the web process's pool and the worker's own (for the jobs a job enqueues) use
``job_serializer``, so no job function's signature changes. A payload without the key (an older
enqueuer, a cron) is still a valid job, and arq's own deserializer ignores the key.

On the worker, ``on_job_start`` runs in the job's task before the job function's task is created (which
copies the context), so ``job_id`` and ``request_id`` are on every line the job logs, arq's own included.
It reads the payload again by the job's id: arq does not hand the hook the payload.
"""

from __future__ import annotations

import pickle
from typing import Any, Final

from arq.constants import job_key_prefix

from app.observability.logs import job_id_var, request_id_var

ORIGIN_KEY: Final = "opshub_request_id"


def serialize_job(data: dict[str, Any]) -> bytes:
    request_id = request_id_var.get()
    if request_id is not None:
        data = {**data, ORIGIN_KEY: request_id}
    return pickle.dumps(data)


def deserialize_job(raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = pickle.loads(raw)
    return data


def origin_of(raw: bytes | None) -> str | None:
    """The request id a job payload carries, if any."""
    if not raw:
        return None
    try:
        data = pickle.loads(raw)
    except Exception:
        return None
    origin = data.get(ORIGIN_KEY) if isinstance(data, dict) else None
    return origin if isinstance(origin, str) else None


async def on_job_start(ctx: dict[str, Any]) -> None:
    """arq's hook: this job's id, and the id of the request that enqueued it, for every log line it writes."""
    job_id = ctx.get("job_id")
    job_id_var.set(str(job_id) if job_id is not None else None)
    origin = None
    if job_id is not None:
        try:
            origin = origin_of(await ctx["redis"].get(job_key_prefix + str(job_id)))
        except Exception:
            origin = None  # the id is for the logs; the job runs regardless
    request_id_var.set(origin)
