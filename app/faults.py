"""Named fault points for the fault tests (issue 16): off unless ``OPSHUB_FAULT_KILL_AT`` names one.

``kill_point("visitors.ladder.claimed")`` SIGKILLs the process there when the variable holds that
name, so a test can stop a real worker at an exact step of its work and then restart it. Never
active in production.
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "OPSHUB_FAULT_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(KILL_AT_ENV) == name and os.environ.get("OPSHUB_ENV") != "production":
        os.kill(os.getpid(), signal.SIGKILL)
