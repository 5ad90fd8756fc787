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


def run(settings: Settings) -> int:
    from app.devredis import PrivateRedis
    from app.seed import DEMO_LOGINS, DEMO_SITE_SLUG

    private_redis: PrivateRedis | None = None
    env = dict(os.environ)
    # Procfile commands (uvicorn, arq) live beside this interpreter, in the project's venv.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not settings.redis_url:
        private_redis = PrivateRedis(Path(settings.var_dir) / "redis")
        env["REDIS_URL"] = private_redis.start()
        print(f"opshub: started a private redis-server at {env['REDIS_URL']}")
    try:
        subprocess.run([sys.executable, "-m", "app.launcher", "migrate"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run([sys.executable, "-m", "app.launcher", "seed"], cwd=ROOT, env=env, check=True)
        del seeded
        url = f"http://{settings.host}:{settings.port}"
        print(
            f"\nopshub is starting at {url}  (API docs: {url}/schema/swagger, readiness: {url}/ready)\n"
            f"Demo site '{DEMO_SITE_SLUG}'. Logins (username / password):"
        )
        for role, username, password in DEMO_LOGINS:
            print(f"  {role:<14} {username:<36} {password}")
        print()
        env.setdefault("HOST", settings.host)
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
