"""Each of the dashboard's caches can be turned off (bench/caches_bench.py measures what each
saves), and the page a browser opens is the same without them: the real app on a real demo
store, posted the requests the browser posts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import pytest

from dashboard import Settings, create_app
from dashboard.app import page_layout
from dashboard.context import Caches
from dashboard.serving.page_views import starting_values
from dashboard.serving.warmup import stop_background_work
from pipeline.runs.demo import DemoOptions
from pipeline.store.store import StorePaths
from tests.helpers import dash_payload, read_callbacks

DEMO_OPTIONS = DemoOptions(n_stations=8, n_years=1, seed=5)  # the module's demo_dir (conftest.py)
NONE = Caches(
    gaps=False,
    shared_gaps=False,
    operating_nights=False,
    page_views=False,
    callback_cache=False,
    warmer=False,
)


def _opening_answers(app: dash.Dash, threshold: float) -> list[dict[str, Any]]:
    """The answers to the callbacks the page posts when it opens, at `threshold`."""
    ctx = app.server.extensions["uncia_context"]
    values = {f"{i}.{p}": v for (i, p), v in starting_values(page_layout(ctx)).items()}
    values["threshold.value"] = threshold
    client = app.server.test_client()
    answers = []
    for dep in read_callbacks(app):
        if dep.get("prevent_initial_call"):
            continue
        response = client.post("/_dash-update-component", json=dash_payload(dep, values))
        assert response.status_code == 200
        answers.append(response.get_json()["response"])
    return answers


@pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")
def test_the_page_is_the_same_with_every_cache_off(demo_dir: Path) -> None:
    settings = Settings(data_dir=demo_dir, tiles="none", gap_days=3)
    off = create_app(settings, NONE)
    ctx = off.server.extensions["uncia_context"]
    without = [_opening_answers(off, t) for t in (0.5, 0.8)]
    assert len(without[0]) == 5 and without[0] != without[1]
    # Nothing was kept: no warmer, no answers, no gaps in memory or on disk, no tables.
    assert "uncia_warmer" not in off.server.extensions
    assert ctx.views.hits == ctx.views.misses == 0
    assert not ctx.store.gaps._tables
    assert not StorePaths(demo_dir).dashboard_cache.exists()
    with ctx.store.connect() as con:
        kept = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'memory'"
        ).fetchall()
    assert kept == [(0,)]
    on = create_app(settings)
    try:
        assert [_opening_answers(on, t) for t in (0.5, 0.8)] == without
        assert [_opening_answers(on, t) for t in (0.5, 0.8)] == without  # now from the caches
        on_ctx = on.server.extensions["uncia_context"]
        assert len(on_ctx.views._answers) >= 8 and on_ctx.store.gaps._tables
    finally:
        stop_background_work(on)
    ctx.store.close()
    with ctx.store.connect() as con:  # closing drops the snapshot; the next cursor opens one
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] >= 1
