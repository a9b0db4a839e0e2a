"""The store warmer prepares each new snapshot off the request path (real store, real DuckDB)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dashboard import create_app
from dashboard.app import page_layout
from dashboard.context import build_context
from dashboard.data import analysis
from dashboard.data.store import Store
from dashboard.serving.warmup import StoreWarmer, stop_background_work
from dashboard.settings import Settings
from pipeline.runs.demo import DemoOptions
from pipeline.schema import RUN_TABLES
from pipeline.store import store

DEMO_OPTIONS = DemoOptions(n_stations=8, n_years=1, seed=5)  # the module's demo_dir (conftest.py)


def test_warmer_prepares_each_new_store_version_once(demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    app = create_app(Settings(data_dir=data, tiles="none"))  # registers the page's views
    stop_background_work(app)  # this test drives its own warmer
    ctx = app.server.extensions["uncia_context"]
    warmer = StoreWarmer(ctx.store.version, ctx.views, lambda: page_layout(ctx), interval_s=60)
    first = ctx.store.version()
    assert warmer.warm_once() is True
    assert warmer.warmed_version == first
    gaps = ctx.store.gaps
    assert len(gaps._tables) == 1  # the snapshot's camera gaps are ready before any visitor
    answered = ctx.views.hits + ctx.views.misses
    assert answered >= len(ctx.views.views) == 5  # and the page's opening views (with individuals)
    assert warmer.warm_once() is False  # nothing new: no work
    assert ctx.views.hits + ctx.views.misses == answered
    tables = {name: pq.read_table(store.StorePaths(data).table(name)) for name in RUN_TABLES}
    store.write_tables(data, tables)  # a checkpoint replaces the store
    assert ctx.store.version() != first
    misses = ctx.views.misses
    assert warmer.warm_once() is True
    assert len(gaps._tables) == 2
    assert ctx.views.misses == misses + 5  # the new snapshot's views, drawn anew


def test_warmer_waits_quietly_for_a_store(tmp_path: Path) -> None:
    ctx = build_context(Settings(data_dir=tmp_path / "empty", tiles="none"))
    warmer = StoreWarmer(ctx.store.version, ctx.views, lambda: page_layout(ctx), interval_s=60)
    assert warmer.warm_once() is False and warmer.warmed_version is None


def test_concurrent_first_views_compute_a_snapshots_gaps_once(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page load posts several callbacks at once; only one computes the camera gaps."""
    calls: list[int] = []
    real = analysis.camera_gaps

    def counted(con: Any, gap_days: int, *outages: Any) -> Any:
        calls.append(gap_days)
        time.sleep(0.2)  # widen the window in which the others arrive
        return real(con, gap_days, *outages)

    monkeypatch.setattr(analysis, "camera_gaps", counted)
    ctx = build_context(Settings(data_dir=demo_dir, tiles="none"))
    cache = analysis.GapCache()
    version = ctx.store.version()
    results: list[Any] = []

    def view() -> None:
        with ctx.store.connect() as con:
            results.append(cache.get(con, version, 7))

    threads = [threading.Thread(target=view) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 5
    assert all(r.equals(results[0]) for r in results)


@pytest.fixture
def gap_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The gap_days of every camera_gaps computation from here on."""
    calls: list[int] = []
    real = analysis.camera_gaps

    def counted(con: Any, gap_days: int, *outages: Any) -> Any:
        calls.append(gap_days)
        return real(con, gap_days, *outages)

    monkeypatch.setattr(analysis, "camera_gaps", counted)
    return calls


@pytest.fixture
def reader(demo_dir: Path) -> Store:
    return Store(demo_dir)


def test_processes_share_a_snapshots_gaps_through_the_data_folder(
    reader: Store, gap_calls: list[int], tmp_path: Path
) -> None:
    """Two GapCaches stand for two --workers processes (or a restart): one computes."""
    folder = tmp_path / "work" / "dashboard"
    version = reader.version()
    with reader.connect() as con:
        first = analysis.GapCache(shared_folder=folder).get(con, version, 7)
        second = analysis.GapCache(shared_folder=folder).get(con, version, 7)
        analysis.GapCache(shared_folder=folder).get(con, version, 3)  # another gap rule
    assert gap_calls == [7, 3]
    assert second.equals(first) and first.num_rows > 0
    assert len(list(folder.glob("gaps-*.parquet"))) == 2
    assert not list(folder.glob(".*.tmp"))


def test_shared_gaps_are_recomputed_when_unreadable_and_kept_for_four_snapshots(
    reader: Store, gap_calls: list[int], tmp_path: Path
) -> None:
    folder = tmp_path / "shared"
    with reader.connect() as con:
        expected = analysis.camera_gaps(con, 7)
        for n in range(6):  # six store versions
            analysis.GapCache(shared_folder=folder).get(con, f"version-{n}", 7)
        kept = list(folder.glob("gaps-*.parquet"))
        assert len(kept) == analysis.GapCache.KEEP_SHARED
        for path in kept:
            path.write_bytes(b"not parquet")
        again = analysis.GapCache(shared_folder=folder).get(con, "version-5", 7)
    assert again.equals(expected)
    assert len(gap_calls) == 1 + 6 + 1  # the reference, six versions, the unreadable file


def test_a_data_folder_it_cannot_write_means_computing_in_process(
    reader: Store, gap_calls: list[int], tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with reader.connect() as con:
        table = analysis.GapCache(shared_folder=blocked / "dashboard").get(con, reader.version(), 7)
    assert gap_calls == [7] and table.num_rows > 0
