"""Observability: structured logs with a request id, and Prometheus metrics (docs/observability.md).

- ``logs``: the JSON (or text) log format of every process, and the ids each line carries;
- ``asgi``: the outermost ASGI layer, which gives every request its id and times it;
- ``jobs``: carries a request's id into the arq jobs it enqueues;
- ``metrics``: the metric families, process-local ones and those read at scrape time;
- ``routes``: ``GET /metrics``, for the metrics token or a platform admin.
"""
