"""Process-wide test setup. Loaded by pytest before any test module, so before torch."""

import os
import tempfile

# The same setting `uncia` (cli/main.py) and `python -m bench` make before torch loads:
# idle OpenMP threads sleep instead of spinning. libgomp reads it once, when torch loads it, so
# the in-process CLI tests get it only if it is set here, before the first test module imports
# torch. Without it, Grad-CAM on a busy 2-core machine measured 2.7 s a frame instead of 0.09 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# `uncia run` keeps OpenVINO's converted models in a cache; the suite's goes to one folder of
# the machine's temporary directory (converted once, reused by later runs), not the home folder.
os.environ.setdefault(
    "UNCIA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "uncia-test-cache")
)

# Fixtures every test module may use (and the only place they are defined).
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from dashboard.serving.auth import hash_password  # noqa: E402
from pipeline.runs.demo import DemoOptions, build_demo_survey  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import PASSWORDS  # noqa: E402

DEMO_OPTIONS = DemoOptions(n_stations=12, n_years=2, seed=3)


@pytest.fixture(scope="module")
def demo_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated demo survey of the module's own (module-level DEMO_OPTIONS, else 12
    stations over 2 years), built once per module: a module's tests may write decisions in it."""
    out = tmp_path_factory.mktemp("demo")
    build_demo_survey(out, getattr(request.module, "DEMO_OPTIONS", DEMO_OPTIONS))
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright, one per module."""
    # Playwright loads only for the browser tests that ask for it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "users.toml"
    path.write_text(
        f'[users.alice]\npassword = "{hash_password(PASSWORDS["alice"])}"\nrole = "reviewer"\n'
        f'[users.bob]\npassword = "{hash_password(PASSWORDS["bob"])}"\nrole = "viewer"\n'
    )
    path.chmod(0o600)
    return path
