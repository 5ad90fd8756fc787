"""Process launcher: `python -m app.launcher {migrate|seed|run}`.

`run` is what `make run` does: start a private Redis when REDIS_URL is unset, apply
migrations, seed the demo site into an empty database, then run the Procfile's web and
worker processes together under honcho until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from app.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


async def _migrate() -> None:
    from app.db import apply_migrations

    await apply_migrations()


async def _seed(settings: Settings) -> bool:
    from app.db import close_database, open_database
    from app.seed import seed_demo_site_if_empty

    await open_database()
    try:
        return await seed_demo_site_if_empty(settings)
    finally:
        await close_database()


def migrate() -> None:
    asyncio.run(_migrate())


def start_provider_fakes(settings: Settings, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The local Twilio/FCM/SMTP/Razorpay fakes, so the demo sends and charges nothing real and shows what it did."""
    import httpx

    from app.devredis import free_port

    port, smtp_port = free_port(), free_port()
    fcm_token = settings.fcm_access_token or "local-fcm-token"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notifications.fakes",
            "--port",
            str(port),
            "--smtp-port",
            str(smtp_port),
            "--twilio-account-sid",
            settings.twilio_account_sid,
            "--twilio-auth-token",
            settings.twilio_auth_token,
            "--fcm-project-id",
            settings.fcm_project_id,
            "--fcm-access-token",
            fcm_token,
            "--razorpay-key-id",
            settings.razorpay_key_id,
            "--razorpay-key-secret",
            settings.razorpay_key_secret,
            "--razorpay-webhook-secret",
            settings.razorpay_webhook_secret,
            "--razorpay-webhook-url",
            settings.public_link("/api/webhooks/razorpay"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/_fake/state", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.terminate()
        raise RuntimeError("the provider fakes did not start")
    env.update(
        {
            # A stand-in for an approved WhatsApp template, so out-of-window messages can go.
            "OPSHUB_WHATSAPP_TEMPLATE_SID": settings.whatsapp_template_sid or "HX" + "d" * 32,
            "TWILIO_BASE_URL": f"{base}/twilio",
            "FCM_BASE_URL": f"{base}/fcm",
            "FCM_ACCESS_TOKEN": fcm_token,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "RAZORPAY_BASE_URL": f"{base}/razorpay",
        }
    )
    return process, f"{base}/_fake/"


def public_url_env(settings: Settings) -> dict[str, str]:
    """Pin the web process's public URL for every child process.

    honcho gives each Procfile process its own PORT (web: PORT, worker: PORT + 100), so a worker that
    derived the URL from its own PORT would hand out links to a port nothing listens on."""
    return {"OPSHUB_PUBLIC_URL": settings.public_url}


def run(settings: Settings) -> int:
    from app.devredis import PrivateRedis
    from app.seed import DEMO_LOGINS, DEMO_SITE_SLUG

    private_redis: PrivateRedis | None = None
    fakes: subprocess.Popen[bytes] | None = None
    env = dict(os.environ)
    # Procfile commands (uvicorn, arq) live beside this interpreter, in the project's venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not settings.redis_url:
        private_redis = PrivateRedis(Path(settings.var_dir) / "redis")
        env["REDIS_URL"] = private_redis.start()
        print(f"opshub: started a private redis-server at {env['REDIS_URL']}")
    try:
        subprocess.run([sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, env=env, check=True)
        subprocess.run([sys.executable, "-m", "app.launcher", "seed"], cwd=ROOT, env=env, check=True)
        dashboard = None
        if settings.start_fakes and not (
            settings.twilio_base_url or settings.fcm_base_url or settings.razorpay_base_url
        ):
            fakes, dashboard = start_provider_fakes(settings, env)
        url = settings.public_url.rstrip("/")
        print(
            f"\nopshub is starting at {url}  (API docs: {url}/schema/swagger, readiness: {url}/ready)\n"
            f"Demo site '{DEMO_SITE_SLUG}'. Logins (username / password):"
        )
        for role, username, password in DEMO_LOGINS:
            print(f"  {role:<14} {username:<36} {password}")
        if dashboard:
            print(
                "Nothing leaves this machine: SMS, WhatsApp, push, email and payments go to local fakes; "
                f"see {dashboard}"
            )
        print()
        env.setdefault("HOST", settings.host)
        env.update(public_url_env(settings))
        return subprocess.call(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "-f",
                str(ROOT / "Procfile"),
                "-p",
                str(settings.port),
                "web",
                "worker",
            ],
            cwd=ROOT,
            env=env,
        )
    except KeyboardInterrupt:
        return 0
    finally:
        if fakes is not None:
            fakes.terminate()
            fakes.wait(timeout=10)
        if private_redis is not None:
            private_redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.launcher")
    parser.add_argument("command", choices=["migrate", "seed", "run", "check-config"])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc.code, file=sys.stderr)
        return 2
    if args.command == "check-config":
        print("configuration ok")
        return 0
    if args.command == "migrate":
        migrate()
        return 0
    if args.command == "seed":
        created = asyncio.run(_seed(settings))
        print("opshub: demo site seeded" if created else "opshub: database already has data; not seeding")
        return 0
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
