"""The environment is the locked one: every installed distribution has the exact version of
requirements.lock (what `make demo`, `make test` and the Dockerfile install), and the lock
agrees with pyproject.toml's ranges. docs/dependencies.md says how to refresh it."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REFRESH = "run `make lock` to refresh the lock (docs/dependencies.md), or `make clean test`"


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: Flask, flask and FLASK are one


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
            assert match, f"requirements.lock: not an exact name==version pin: {line!r}"
            assert _name(match[1]) not in pins, f"requirements.lock pins {match[1]} twice"
            pins[_name(match[1])] = match[2]
    return pins


def _requirements() -> list[Requirement]:
    extras = PROJECT["optional-dependencies"]
    return [Requirement(r) for r in PROJECT["dependencies"] + sum(extras.values(), [])]


def test_lock_pins_every_dependency_inside_its_range() -> None:
    locked = _locked()
    for requirement in _requirements():
        version = locked.get(_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock; {REFRESH}"
        assert requirement.specifier.contains(version), (
            f"requirements.lock has {requirement.name}=={version}, outside pyproject.toml's "
            f"{requirement}; {REFRESH}"
        )


def test_installed_versions_are_the_locked_ones() -> None:
    """A fresh clone's `make test` installs the lock; a drifted environment fails here."""
    locked = _locked()
    unlocked, different = [], []
    for dist in importlib.metadata.distributions():
        name = _name(dist.metadata["Name"])
        if name in {_name(PROJECT["name"]), "pip"}:  # the project itself and its installer
            continue
        if name not in locked:
            unlocked.append(f"{name}=={dist.version}")
        elif locked[name] != dist.version:
            different.append(f"{name} {dist.version} (locked {locked[name]})")
    assert not different, f"installed versions differ from the lock: {different}; {REFRESH}"
    assert not unlocked, f"installed but not locked: {unlocked}; {REFRESH}"
