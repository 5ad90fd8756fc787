"""The guard console on a slow link: what it weighs and how soon a guard sees it.

Run from the repository root::

    .venv/bin/python bench/console_load.py            # 5 loads per condition
    .venv/bin/python bench/console_load.py --loads 9

Method
------
* A private redis-server and a fresh SQLite database, migrated and seeded with the demo site exactly as
  ``make run`` does (``app.launcher migrate`` and ``seed``); the real web process (uvicorn, as the
  Procfile runs it) on a free local port.
* Debian's chromium through Playwright, signed in as the demo guard through the sign-in form.
* **Weight**: every script and stylesheet the console can load (the ones its page loads at once,
  their module imports, and the QR scanner loaded when the camera is opened), each gzipped at level 6
  as the server sends it; and what the first load actually transferred (Resource Timing
  ``encodedBodySize``), with the browser cache disabled.
* **Time to a usable console** on a throttled link (Chrome DevTools network conditions: 1.6 Mbps down,
  750 kbps up, 150 ms round trip; cache disabled), per load: first contentful paint, and "console
  ready": the page sets ``document.body.dataset.ready`` once its first data (expected visitors,
  waiting visitors, inside now) is on screen. The median and the worst of ``--loads`` loads.
* **Baselines, in the same run**: the same console unthrottled, and the sign-in page on the same
  throttled link (one HTML document and one stylesheet: the floor any page on that link sits on).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ws_fanout import free_port, hub_command  # noqa: E402

STATIC = ROOT / "app" / "web" / "static"
THROTTLE = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_IMPORT = re.compile(r"""(?:import|export)\s[^'"]*?from\s*["'](\./[^"']+)["']|import\(\s*["'](\./[^"']+)["']\s*\)""")


def module_closure(entry: str) -> set[str]:
    """The entry module and everything it imports, statically or dynamically (paths under static/)."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        relative = pending.pop()
        if relative in seen:
            continue
        seen.add(relative)
        text = (STATIC / relative).read_text(encoding="utf-8")
        for match in _IMPORT.finditer(text):
            target = match.group(1) or match.group(2)
            pending.append(os.path.normpath(str(Path(relative).parent / target)))
    return seen


def console_assets(page_html: str) -> set[str]:
    """Scripts and stylesheets the console page references, with their module imports, plus the scanner."""
    referenced = set(re.findall(r'(?:src|href)="/static/([^"?]+\.(?:js|css))', page_html))
    assets: set[str] = set()
    for relative in referenced:
        assets |= module_closure(relative) if relative.endswith(".js") else {relative}
    assets.add("vendor/jsqr/jsQR.js")  # loaded when the guard opens the camera scanner
    return assets


def gzip_size(relative: str) -> int:
    return len(gzip.compress((STATIC / relative).read_bytes(), compresslevel=6))


def prepare(tmp: Path, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OPSHUB_ENV": "dev",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite'}",
        "OPSHUB_VAR_DIR": str(tmp / "var"),
        "OPSHUB_REDIS_PREFIX": "consolebench:",
    }
    for step in ("migrate", "seed"):
        subprocess.run([sys.executable, "-m", "app.launcher", step], cwd=ROOT, env=env, check=True)
    return env


async def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the web process did not start") from None
            await asyncio.sleep(0.1)


async def one_load(context: Any, path: str, throttled: bool, ready_selector: str | None) -> dict[str, float]:
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    if throttled:
        await cdp.send("Network.emulateNetworkConditions", THROTTLE)
    started = time.perf_counter()
    await page.goto(path, wait_until="commit")
    if ready_selector:
        await page.wait_for_selector(ready_selector, state="attached", timeout=60_000)
    else:
        await page.wait_for_load_state("load")
    ready_ms = (time.perf_counter() - started) * 1000
    await page.wait_for_load_state("load")
    timing = await page.evaluate(
        """() => {
            const paint = performance.getEntriesByName('first-contentful-paint')[0];
            const resources = performance.getEntriesByType('resource')
                .filter(r => /\\.(js|css)$/.test(new URL(r.name).pathname));
            return {
                fcp: paint ? paint.startTime : NaN,
                transferred: resources.reduce((sum, r) => sum + (r.encodedBodySize || 0), 0),
                files: resources.length,
            };
        }"""
    )
    await page.close()
    return {
        "ready_ms": ready_ms,
        "fcp_ms": timing["fcp"],
        "transferred": timing["transferred"],
        "files": timing["files"],
    }


def summary(rows: list[dict[str, float]], key: str) -> str:
    values = [row[key] for row in rows]
    return f"{statistics.median(values):.0f} | {max(values):.0f}"


async def run(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    from app.devredis import PrivateRedis
    from app.seed import DEMO_PASSWORD

    chromium = os.environ.get("OPSHUB_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="opshub-console-bench-"))
    redis = PrivateRedis(tmp / "redis")
    env = prepare(tmp, redis.start())
    port = free_port()
    server = subprocess.Popen(hub_command(port), cwd=ROOT, env=env)  # noqa: ASYNC220 - readiness awaited below
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_for_port(port, server)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 800})
            login = await context.new_page()
            await login.goto("/login?next=/guard")
            await login.fill("#username", "guard1@demo.opshub.test")
            await login.fill("#password", DEMO_PASSWORD)
            await login.click("button[type=submit]")
            await login.wait_for_url("**/guard")
            html = await login.content()
            await login.close()

            assets = sorted(console_assets(html))
            sizes = {relative: gzip_size(relative) for relative in assets}
            ready = "body[data-ready]"
            throttled = [await one_load(context, "/guard", True, ready) for _ in range(args.loads)]
            unthrottled = [await one_load(context, "/guard", False, ready) for _ in range(args.loads)]
            floor = [await one_load(context, "/login", True, None) for _ in range(args.loads)]
            await browser.close()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    total = sum(sizes.values())
    lines = [
        f"opshub guard console load: {os.cpu_count()} CPUs, {args.loads} loads per condition",
        "",
        "Weight (gzip level 6, every script and stylesheet the console can load):",
        "| file | gzip bytes |",
        "|---|---:|",
        *(f"| {relative} | {size:,} |" for relative, size in sorted(sizes.items(), key=lambda kv: -kv[1])),
        f"| **all {len(sizes)} files** | **{total:,}** ({total / 1024:.1f} KiB; target under 150 KB) |",
        f"first load transferred {throttled[0]['transferred']:,.0f} bytes of scripts and styles"
        f" in {throttled[0]['files']:.0f} files (the scanner is fetched only when the camera opens)",
        "",
        "Time (ms), median | worst:",
        "| condition | first contentful paint | console ready |",
        "|---|---:|---:|",
        f"| /guard, throttled 1.6 Mbps / 150 ms RTT | {summary(throttled, 'fcp_ms')}"
        f" | {summary(throttled, 'ready_ms')} |",
        f"| baseline: /guard, unthrottled | {summary(unthrottled, 'fcp_ms')} | {summary(unthrottled, 'ready_ms')} |",
        f"| baseline: /login, throttled (network floor) | {summary(floor, 'fcp_ms')} | {summary(floor, 'ready_ms')} |",
        "target: console ready under 2,000 ms throttled",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
