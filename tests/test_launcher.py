"""`make run`'s launcher from nothing: migrated, seeded, web and worker up, /ready ok, a demo login works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.devredis import free_port
from app.seed import DEMO_LOGINS

ROOT = Path(__file__).resolve().parent.parent


def test_launcher_serves_ready_and_a_demo_login(tmp_dir: Path) -> None:
    port = free_port()
    # A fresh SQLite file and a private Redis, as on a fresh clone (no DATABASE_URL, no REDIS_URL).
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"OPSHUB_VAR_DIR": str(tmp_dir / "var"), "PORT": str(port), "OPSHUB_REDIS_PREFIX": "opshub:"})
    process = subprocess.Popen(
        [sys.executable, "-m", "app.launcher", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{base}/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready is not None and ready.json() == {
            "status": "ok",
            "database": True,
            "redis": True,
            "realtime_shards": [{"shard": "default", "up": True}],  # realtime on REDIS_URL, the default
        }
        _, username, password = DEMO_LOGINS[0]
        login = httpx.post(f"{base}/api/auth/login", json={"username": username, "password": password}, timeout=10)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        site = httpx.get(f"{base}/api/site", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        assert site["slug"] == "demo" and site["unit_count"] == 200
        # Every module has something to show: bookable resources of each kind, complaint categories.
        auth = {"Authorization": f"Bearer {token}"}
        resources = httpx.get(f"{base}/api/slots/resources?limit=500", headers=auth, timeout=10).json()["items"]
        assert {r["category"] for r in resources} == {"amenity", "ev_connector", "parking_slot", "valet"}
        categories = httpx.get(f"{base}/api/complaints/config/categories", headers=auth, timeout=10).json()["items"]
        assert {c["code"] for c in categories} >= {"plumbing", "electrical", "lift"}
        # A fit-out waiting for the FM manager, a vendor approved for today, staff on the roster.
        queue = httpx.get(f"{base}/api/permits?awaiting_me=true", headers=auth, timeout=10).json()["items"]
        assert [p["type_code"] for p in queue] == ["fit_out"]
        today = httpx.get(f"{base}/api/permits/gate/today", headers=auth, timeout=10).json()["items"]
        assert [p["people"][0]["name"] for p in today] == ["Anil (CoolAir)"]
        board = httpx.get(f"{base}/api/attendance/board", headers=auth, timeout=10).json()
        assert {row["name"] for row in board["items"]} >= {"Guard 1", "Lakshmi", "Technician 1"}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            output = process.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0].decode(errors="replace")
    assert "opshub is starting at" in output
    assert "worker.1 started" in output, output[-2000:]
    # The private redis-server is stopped on exit.
    assert "redis-server" not in subprocess.run(["pgrep", "-af", str(tmp_dir)], capture_output=True, text=True).stdout
