"""Log lines as one JSON object each, on stderr, carrying the ids of what the line is about.

Every process (web, worker) calls ``configure_logging`` once at start-up. The ids come from context
variables set by whoever starts a unit of work: ``app.observability.asgi`` for a request or websocket
(``request_id``), ``realtime.gateway`` for a websocket session (``ws_session``), and
``app.observability.jobs`` for an arq job (``job_id``, and the ``request_id`` of the request that
enqueued it). A line may also name them itself (``logger.info(..., extra={"ws_session": ...})``), for work
done on behalf of a session outside its task.

``OPSHUB_LOG_FORMAT=text`` gives one human-readable line instead, for a developer's terminal.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import sys
from contextvars import ContextVar
from typing import Any, Final, Literal, TextIO

import msgspec

request_id_var: ContextVar[str | None] = ContextVar("opshub_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("opshub_job_id", default=None)
ws_session_var: ContextVar[str | None] = ContextVar("opshub_ws_session", default=None)

REQUEST_ID_HEADER: Final = "x-request-id"
# What we take from a client or proxy: short, and nothing that could break a log line or a header.
_SANE_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
CONTEXT_FIELDS: Final = ("request_id", "job_id", "ws_session")
_CONTEXT_VARS: Final = {"request_id": request_id_var, "job_id": job_id_var, "ws_session": ws_session_var}
# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Loggers that libraries give handlers of their own: their lines go through ours instead, once.
_ADOPTED_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "arq", "litestar")
# Libraries that log every outgoing HTTP request at INFO (Twilio's with its parameters: phone numbers and
# message text): only their warnings are wanted.
_QUIET_LOGGERS: Final = ("twilio", "httpx", "httpcore")
_encoder = msgspec.json.Encoder(enc_hook=str)


def new_request_id() -> str:
    return secrets.token_hex(16)


def sane_request_id(value: str | None) -> str | None:
    """The caller's request id if it is one we can carry safely, else None."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return None


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in CONTEXT_FIELDS:
        value = record.__dict__.get(name) or _CONTEXT_VARS[name].get()
        if value:
            fields[name] = str(value)
    return fields


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, the context ids, any ``extra=`` fields, and exc_info/stack_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context_of(record))
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in line and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        try:
            return _encoder.encode(line).decode()
        except (TypeError, ValueError, OverflowError):
            return _encoder.encode(
                {k: v if isinstance(v, str | int | float | bool) else repr(v) for k, v in line.items()}
            ).decode()


class TextFormatter(logging.Formatter):
    """The human format: time, level, logger, the context ids in brackets, the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = _context_of(record)
        record.__dict__["context"] = " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]" if context else ""
        try:
            return super().format(record)
        finally:
            record.__dict__.pop("context", None)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (a test run swaps it), like logging's last resort."""

    _opshub = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock (Handler.handle holds it)
        super().emit(record)


LogFormat = Literal["json", "text"]


def configure_logging(level: str, log_format: LogFormat = "json") -> logging.Handler:
    """One handler on the root logger, replacing the one an earlier call installed (handlers others added,
    a test runner's say, stay). Library loggers with handlers of their own are routed through it, and
    libraries that log each outgoing HTTP request are held to warnings."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_opshub", False):
            root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in _ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers.clear()
        adopted.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
