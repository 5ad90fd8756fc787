"""The private names of other libraries the code relies on: each is listed in docs/dependencies.md,
and each breaks a test when an upgrade renames or changes it.

The first test finds every use of another library's private name (``x._name`` on something that is
not ``self``/``cls``, ``getattr(x, "_name")``, ``from lib._module import ...``) in the tree and fails
when one is not in docs/dependencies.md. The others exercise, through the private names themselves,
the uses that no other test covers (the rest are named in docs/dependencies.md).
"""

from __future__ import annotations

import ast
import asyncio
import re
import signal
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from firebase_admin import messaging
from packaging.requirements import Requirement

from app.web.i18n import LOCALES_DIR, script_strings, translations
from notifications.fakes.runner import serve_asgi
from notifications.fakes.sdk_wiring import _BoundedTransport, aclose_firebase_app, firebase_app_for_fake
from realtime.connection import _resume

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "dependencies.md").read_text()
OUR_PACKAGES = ("app", "realtime", "notifications", "workers", "schema", "bench", "tests")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str) -> bool:
    return module.split(".")[0] in {*OUR_PACKAGES, "piccolo_conf"}


def private_names_of_other_libraries() -> dict[str, list[str]]:
    """Private names used in the tree that the tree does not define itself, with where."""
    defined: set[str] = set()
    used: list[tuple[str, str]] = []
    files = [path for package in OUR_PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    for path in [*files, ROOT / "piccolo_conf.py"]:
        where = path.relative_to(ROOT).as_posix()
        defined.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif isinstance(node, ast.alias) and node.asname:
                defined.add(node.asname)
            elif isinstance(node, ast.Attribute):
                own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if own and isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                elif not own and _private(node.attr):
                    used.append((node.attr, f"{where}:{node.lineno}"))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
            ):
                used.append((node.args[1].value, f"{where}:{node.lineno}"))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.ImportFrom) and (node.level or _ours(node.module or "")):
                    continue
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
                for module in modules:
                    if not _ours(module):
                        used += [(part, f"{where}:{node.lineno}") for part in module.split(".")[1:] if _private(part)]
                used += [(name, f"{where}:{node.lineno}") for name in names if _private(name)]
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
            ):
                defined.update(c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant))
    found: dict[str, list[str]] = defaultdict(list)
    for name, where in used:
        if name not in defined:
            found[name].append(where)
    return dict(found)


def test_every_private_name_of_another_library_is_listed_in_docs_dependencies() -> None:
    found = private_names_of_other_libraries()
    # The scan sees the uses this file exercises (a scan that finds nothing would pass vacuously).
    assert {
        "_fcm_url",
        "_wrapped_transport",
        "_catalog",
        "_asyncio_future_blocking",
        "_register_atexit",
    } <= found.keys()
    unlisted = {name: where for name, where in found.items() if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", DOC)}
    assert not unlisted, f"list these in docs/dependencies.md (what, why, pin, the test that breaks): {unlisted}"


def test_the_exact_pins_are_the_ones_docs_dependencies_explains() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set()
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            pins.add(f"{requirement.name.lower()}=={specifiers[0].version}")
    listed = set(re.findall(r"^\| `([a-z0-9-]+==[0-9][^`]*)` \|", DOC, flags=re.MULTILINE))
    assert pins and listed == pins


def test_the_tests_docs_dependencies_names_exist() -> None:
    """A test renamed or removed would leave a use listed with nothing guarding it."""
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b(?!\.py)", DOC))
    defined = {
        node.name
        for path in (ROOT / "tests").glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert len(named) > 10 and not named - defined, f"docs/dependencies.md names missing tests: {named - defined}"
    for path in set(re.findall(r"`(tests/[a-z0-9_/]+\.py)", DOC)):
        assert (ROOT / path).is_file(), path


# ------------------------------------------------------------------ asyncio: _asyncio_future_blocking


async def test_resume_takes_over_the_future_a_hand_started_coroutine_yielded() -> None:
    """realtime.connection starts a send by hand (``coroutine.send(None)``) and, when it yields a
    future, finishes it in a task. The yielded future carries asyncio's ``_asyncio_future_blocking``
    flag; awaiting it again while the flag is set is refused ("await wasn't used with future")."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    finished: list[str] = []

    async def send() -> None:
        finished.append(await future)

    coroutine = send()
    waiting_on = coroutine.send(None)
    assert waiting_on is future and future._asyncio_future_blocking is True
    task = asyncio.create_task(_resume(coroutine, waiting_on))
    await asyncio.sleep(0)
    assert not task.done()
    future.set_result("written")
    await asyncio.wait_for(task, 5)
    assert finished == ["written"]


# ------------------------------------------------------------------ uvicorn: Server.capture_signals


async def _lifespan_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def test_an_embedded_uvicorn_leaves_the_processs_signal_handlers_alone() -> None:
    """The fakes' uvicorn overrides ``uvicorn.Server.capture_signals``, the hook ``serve`` installs
    its SIGINT/SIGTERM handlers with; were the hook renamed, uvicorn's handlers would be in place."""
    handled = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in handled}
    async with serve_asgi(_lifespan_only):  # type: ignore[arg-type]
        assert {sig: signal.getsignal(sig) for sig in handled} == before
    assert {sig: signal.getsignal(sig) for sig in handled} == before


# ------------------------------------------------------------------ firebase-admin: the FCM wiring


async def test_the_fcm_wiring_sets_firebase_admins_private_attributes() -> None:
    """notifications/fakes/sdk_wiring.py redirects a real firebase-admin App to the fake FCM through
    the messaging service's private attributes, and bounds its connections by swapping the retry
    transport's ``_wrapped_transport``."""
    app = firebase_app_for_fake("http://127.0.0.1:9/fcm", "private-internals", name="private-internals")
    try:
        service = messaging._get_messaging_service(app)
        root = "http://127.0.0.1:9/fcm/v1/projects/private-internals"
        assert (service._fcm_url, service._fcm_topic_url) == (f"{root}/messages:send", f"{root}/registrations")
        transports = list(service._async_client._mounts.values())
        assert transports and all(isinstance(t._wrapped_transport, _BoundedTransport) for t in transports)
        # aclose_firebase_app finds the service where firebase-admin keeps it, to close it in this loop.
        assert app._services[messaging._MESSAGING_ATTRIBUTE] is service
    finally:
        await aclose_firebase_app(app)
    assert service._async_client.async_client.is_closed


# ------------------------------------------------------------------ babel: Translations._catalog


def test_the_pages_translations_are_filled_into_babels_catalog() -> None:
    """app/web/i18n.py fills a babel ``Translations`` through its ``_catalog`` (there is no compile
    step to a .mo file) and hands page scripts that same dict."""
    with (LOCALES_DIR / "hi" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="hi")
    expected = {m.id: m.string for m in catalog if isinstance(m.id, str) and m.id and m.string and not m.fuzzy}
    assert len(expected) > 10
    hindi = translations("hi")
    assert {key: hindi._catalog[key] for key in expected} == expected
    message, text = next(iter(expected.items()))
    assert hindi.gettext(message) == text
    assert script_strings("hi") == expected
