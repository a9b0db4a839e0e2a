"""The page's kept views: one computation per data state and inputs, and a warmer that answers
them exactly as the browser opening the page asks (checked in headless Chromium)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dashboard import Settings, create_app
from dashboard.app import page_layout
from dashboard.data.store import data_state
from dashboard.ids import Ids
from dashboard.serving.page_views import PageViews, starting_values
from dashboard.serving.warmup import stop_background_work
from pipeline.runs.demo import DemoOptions
from pipeline.store.matches import record_match_review
from pipeline.store.reviews import record_review
from tests.browser import (
    CHROMIUM,
    open_page,
    serve_app,
)

DEMO_OPTIONS = DemoOptions(n_stations=10, n_years=2, seed=5)  # the module's demo_dir (conftest.py)


def test_a_view_is_computed_once_per_data_state_and_inputs(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def view(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return {"figure": {"n": len(calls)}}

    views = PageViews(lambda: data_state(tmp_path))
    answer = views.register("view", view, {"a": ("x", "value")})
    first = answer(a=1)
    assert answer(a=1) is first and answer(a=2) is not first
    assert len(calls) == 2 and (views.hits, views.misses) == (1, 2)
    record_review(
        tmp_path, burst_id="b1", image_id="i1", decision="confirm", reviewer="ann"
    )  # another reviewer's decision: a new data state
    assert answer(a=1) is not first and len(calls) == 3


def test_callers_asking_together_wait_for_one_computation(tmp_path: Path) -> None:
    together = threading.Barrier(4)
    calls = 0

    def slow(**kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.3)  # the others ask meanwhile
        return calls

    views = PageViews(lambda: data_state(tmp_path))
    answer = views.register("slow", slow, {})

    def ask(_: int) -> int:
        together.wait()
        return int(answer())

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(4)))
    assert results == [1, 1, 1, 1] and calls == 1
    assert (views.hits, views.misses) == (3, 1)


def test_data_state_follows_review_and_match_decisions(tmp_path: Path) -> None:
    (tmp_path / "reviews").mkdir()
    before = data_state(tmp_path)
    record_review(tmp_path, burst_id="b", image_id="i", decision="reject", reviewer="bo")
    after_review = data_state(tmp_path)
    record_match_review(tmp_path, "q", "c", "accept", "bo")
    assert len({before, after_review, data_state(tmp_path)}) == 3


def test_starting_values_are_the_layouts(demo_dir: Path) -> None:
    app = create_app(Settings(data_dir=demo_dir, tiles="none"))
    try:
        ctx = app.server.extensions["uncia_context"]
        values = starting_values(page_layout(ctx))
    finally:
        stop_background_work(app)
    assert values[(Ids.RESOLUTION, "value")] == ctx.settings.default_resolution
    assert values[(Ids.SEASON, "value")] == "all"
    assert values[(Ids.VERSION, "data")] == ctx.store.version()
    assert values[(Ids.SELECTED, "data")] is None


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser)")
@pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")
def test_the_first_visitor_gets_the_views_the_warmer_drew(
    demo_dir: Path,
    browser: Any,
) -> None:
    """Every view the opening page asks for was answered by the warmer before (no miss)."""
    app = create_app(Settings(data_dir=demo_dir, tiles="none"))
    warmer = app.server.extensions["uncia_warmer"]
    views = warmer.views
    deadline = time.monotonic() + 60
    while warmer.warmed_version is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    warmed = views.misses
    # map, series, diel + timeline, review gallery, individuals per hexagon
    assert warmed == len(views.views) == 5
    server, url = serve_app(app)
    try:
        with open_page(browser, url) as page:
            page.wait_for_selector("#review-gallery .review-card")
    finally:
        server.shutdown()
        stop_background_work(app)
    assert (views.hits, views.misses) == (5, warmed)
