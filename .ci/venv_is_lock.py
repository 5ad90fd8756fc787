"""Fail unless the running venv is exactly requirements.lock (run by .ci/run after `make venv`).

Two checks: installing the lock again would install nothing (``pip install --dry-run
--require-hashes``), and the venv holds no distribution the lock does not have (what pip
installed came from the lock alone; in a fresh clone's venv this holds by construction, a
local venv may still hold what an older lock had: `make clean` drops it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"pip {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    report = json.loads(pip("install", "--dry-run", "--require-hashes", "--quiet", "--report", "-", "-r", str(LOCK)))
    more = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report["install"])
    locked = {
        canonical(line.split("==")[0]) for line in LOCK.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line)
    }
    installed = {canonical(line.split("==")[0]) for line in pip("freeze", "--all", "--exclude-editable").split()}
    unlocked = sorted(installed - locked)
    if more or unlocked:
        sys.exit(f"the venv is not requirements.lock: would still install {more}; installed but not locked {unlocked}")
    print(f"venv == requirements.lock ({len(locked)} distributions)")


if __name__ == "__main__":
    main()
