"""requirements.lock is what gets installed, and it agrees with pyproject.toml.

``make run``, ``make test`` and CI install from the lock with ``pip --require-hashes`` (see the
Makefile); these tests keep the three in step: the lock against pyproject.toml's ranges and exact
pins, the lock's hashes, and the running venv against the lock. A venv that was installed before
the lock last changed fails the last of them: ``make venv`` brings it up to date.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    hashes: tuple[str, ...]
    line: int


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Locked]:
    """Each requirement of a pip requirements file with its continuation lines' hashes."""
    entries: dict[str, Locked] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        first = index
        logical = line
        while logical.endswith("\\"):
            logical = logical[:-1] + " " + lines[index].strip()
            index += 1
        spec, *options = logical.split(" --")
        requirement = Requirement(spec.strip())
        pins = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(requirement.specifier) == 1 and not requirement.url, (
            f"requirements.lock:{first}: {spec.strip()!r} is not one exact version"
        )
        hashes = tuple(HASH.findall(logical))
        assert len(hashes) == len(options), f"requirements.lock:{first}: only sha256 hashes may follow {spec.strip()!r}"
        name = canonical(requirement.name)
        assert name not in entries, f"requirements.lock:{first}: {name} is locked twice"
        entries[name] = Locked(name, pins[0].version, hashes, first)
    return entries


LOCKED = parse_lock(LOCK.read_text())


def project_requirements() -> list[Requirement]:
    """This checkout's own dependencies with the dev extra (not the installed metadata, which may
    describe another checkout), as ``pip install -e '.[dev]'`` would ask for them."""
    project = PYPROJECT["project"]
    return [Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def closure() -> dict[str, tuple[str, ...]]:
    """Every distribution this interpreter needs for opshub[dev] (markers evaluated here), with
    the chain of requirements that brings it in."""
    needed: dict[str, tuple[str, ...]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(requirement, ("opshub[dev]",)) for requirement in project_requirements()]
    while pending:
        requirement, via = pending.pop()
        if not applies(requirement, frozenset()):
            continue
        name = canonical(requirement.name)
        extras = frozenset(requirement.extras)
        needed.setdefault(name, (*via, str(requirement)))
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # reported by the test that needs it installed
        for child in distribution.requires or []:
            parsed = Requirement(child)
            if parsed.marker is None or applies(parsed, extras):
                pending.append((parsed, (*via, str(requirement))))
    return needed


def test_every_locked_package_is_one_exact_version_with_hashes() -> None:
    assert LOCKED, "requirements.lock has no requirement"
    unhashed = [f"{e.name}=={e.version} (line {e.line})" for e in LOCKED.values() if not e.hashes]
    assert not unhashed, f"locked without a hash: {unhashed}"


def test_the_lock_is_for_this_python() -> None:
    # The lock is resolved for one interpreter (`make lock` passes --python-version 3.11).
    assert "--python-version 3.11" in (ROOT / "Makefile").read_text()
    assert sys.version_info[:2] == (3, 11), "requirements.lock is resolved for Python 3.11"


def test_the_lock_satisfies_pyproject() -> None:
    """A dependency added or re-ranged in pyproject.toml without `make lock` fails here."""
    wanted = [*project_requirements(), *(Requirement(r) for r in PYPROJECT["build-system"]["requires"])]
    wanted.append(Requirement("pip"))  # `make lock` locks the installer too
    problems = []
    for requirement in wanted:
        if not applies(requirement, frozenset({"dev"})):
            continue
        locked = LOCKED.get(canonical(requirement.name))
        if locked is None:
            problems.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked.version, prereleases=True):
            problems.append(f"{requirement} does not allow the locked {locked.name}=={locked.version}")
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_pyprojects_exact_pins_are_the_locked_versions() -> None:
    pins = {
        canonical(r.name): next(iter(r.specifier)).version
        for r in project_requirements()
        if len(r.specifier) == 1 and next(iter(r.specifier)).operator == "=="
    }
    assert pins, "pyproject.toml pins the libraries whose internals we use (docs/dependencies.md)"
    assert {name: LOCKED[name].version for name in pins} == pins


def test_the_running_venv_has_exactly_the_locked_versions_of_everything_opshub_needs() -> None:
    """What the suite runs on is what the lock installs: every distribution in opshub[dev]'s
    closure is installed, locked, and at the locked version."""
    problems = []
    needed = closure()
    assert {"litestar", "uvicorn", "websockets", "pytest", "anyio"} <= needed.keys()
    for name, via in sorted(needed.items()):
        chain = " -> ".join(via)
        locked = LOCKED.get(name)
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed ({chain})")
            continue
        if locked is None:
            problems.append(f"{name}=={installed} is installed but not locked ({chain})")
        elif installed != locked.version:
            problems.append(f"{name}=={installed} is installed, the lock has {locked.version} ({chain})")
    assert not problems, "run `make venv` (or `make lock` if pyproject.toml changed):\n" + "\n".join(problems)


def test_markers_are_evaluated_for_this_interpreter() -> None:
    """The walk above skips what this interpreter does not need, e.g. a back-port for older Pythons."""
    assert not applies(Requirement('tomli>=1.1; python_version < "3.11"'), frozenset())
    assert applies(Requirement('watchfiles>=0.13; extra == "standard"'), frozenset({"standard"}))
    assert not applies(Requirement('watchfiles>=0.13; extra == "standard"'), frozenset())
