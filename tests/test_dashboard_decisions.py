"""The decision views' callbacks and exporters called as plain functions on the demo survey:
map modes and layers, verified counts after a review, the gallery, and every export read back.
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import h3
import pytest

from dashboard import Settings
from dashboard.context import DashboardContext, build_context
from dashboard.exports.report import find_chromium
from dashboard.ids import InsightIds
from dashboard.views import downloads, insights, review
from dashboard.views import hotspots as callbacks
from pipeline.store.reviews import read_reviews
from tests.helpers import CONTROLS, texts

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")


@pytest.fixture
def ctx(demo_dir: Path) -> DashboardContext:
    return build_context(
        Settings(
            data_dir=demo_dir,
            tiles="none",
            min_trap_nights=420,
            public_min_cameras=2,
            min_gi_cameras=5,  # 12 stations: test Gi* on the 9 cameras with enough effort
        )
    )


def names(figure: Any) -> list[str]:
    return [t["name"] for t in figure["data"]]


def test_map_modes_show_rate_effort_significance_and_change(ctx: DashboardContext) -> None:
    rate = callbacks.update_map(ctx, "v", map_mode="rate", **CONTROLS)
    assert rate["alert"] == []
    # 420 trap-nights is more than some demo hexagons have: they are grey, not cold
    assert "too little effort" in names(rate["figure"])
    low = rate["figure"]["data"][names(rate["figure"]).index("too little effort")]["locations"]
    assert {r["hexagon"] for r in rate["rows"] if r["enough_effort"] == "no"} == set(low)
    assert "with too little effort" in rate["summary"]
    sig = callbacks.update_map(ctx, "v", map_mode="significance", **CONTROLS)
    assert set(names(sig["figure"])) <= {"hot", "cold", "not significant", "too little effort"}
    assert {r["hotspot"] for r in sig["rows"]} <= {
        "hot",
        "cold",
        "not significant",
        "too little effort",
    }
    change = callbacks.update_map(ctx, "v", map_mode="change", year_a=2021, year_b=2022, **CONTROLS)
    assert change["alert"] == [] and change["figure"]["data"]
    bad = callbacks.update_map(ctx, "v", map_mode="sideways", **CONTROLS)
    assert "unknown map mode" in texts(bad["alert"])


def test_gi_star_is_withheld_below_the_minimum_and_the_page_says_why(demo_dir: Path) -> None:
    # The default minimum of 10 cameras: 9 of the 12 stations have 420 trap-nights.
    ctx = build_context(Settings(data_dir=demo_dir, tiles="none", min_trap_nights=420))
    reason = "the test needs at least 10 events and 10 cameras"
    sig = callbacks.update_map(ctx, "v", map_mode="significance", **CONTROLS)
    assert "hot" not in names(sig["figure"]) and "not tested" in names(sig["figure"])
    assert {r["hotspot"] for r in sig["rows"]} == {"not tested", "too little effort"}
    assert all(r["gi_q"] is None for r in sig["rows"])
    assert "at 9 camera(s) with enough effort" in sig["summary"] and reason in sig["summary"]
    notes = [a["text"] for a in sig["figure"]["layout"].get("annotations", [])]
    assert any(reason in n for n in notes)  # on the map itself, not only in the line above
    rate = callbacks.update_map(ctx, "v", **CONTROLS)  # the default map says it too
    assert not [n for n in names(rate["figure"]) if n.startswith("Gi*")]
    assert any(reason in a["text"] for a in rate["figure"]["layout"]["annotations"])


def test_hot_spots_are_outlined_over_the_rate_colours(ctx: DashboardContext) -> None:
    rate = callbacks.update_map(ctx, "v", **CONTROLS)  # the default: events per 100 nights
    hot = {r["hexagon"] for r in rate["rows"] if r["hotspot"] == "hot"}
    fill = rate["figure"]["data"][0]
    assert fill["name"] == "Events per 100 trap-nights"
    assert fill["colorbar"]["title"]["text"]  # a numeric colour bar beside the map
    outlines = [t for t in rate["figure"]["data"] if t["name"].startswith("Gi* hot spot")]
    if not hot:
        assert outlines == []
        return
    (outline,) = outlines
    # one closed ring of 7 points per hot hexagon, separated by None; the fill stays the rate
    assert outline["type"] == "scattermap" and outline["lon"].count(None) == len(hot)
    assert set(fill["locations"]) >= hot


def test_the_first_views_drawn_at_once_all_succeed(demo_dir: Path) -> None:
    # A page load fires every callback in parallel threads on a store nobody has read yet.
    fresh = build_context(Settings(data_dir=demo_dir, tiles="none"))
    calls = [
        lambda: callbacks.update_map(fresh, "v", **CONTROLS),
        lambda: callbacks.update_series(fresh, "v", "month", **CONTROLS),
        lambda: insights.update_insights(fresh, "v", None, None, None, **CONTROLS),
        lambda: review.show_gallery(fresh, None, "v", None, **CONTROLS),
    ] * 2
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        results = list(pool.map(lambda call: call(), calls))
    assert [r["alert"] for r in results] == [[]] * len(calls)


def test_layers_count_other_animals_from_zero_shot_labels(ctx: DashboardContext) -> None:
    leopard = callbacks.update_map(ctx, "v", **CONTROLS)
    prey = callbacks.update_map(ctx, "v", layer="prey", **CONTROLS)
    livestock = callbacks.update_map(ctx, "v", layer="livestock", **CONTROLS)
    # the demo's background triggers carry ibex, ram and ox labels, far more than leopards
    assert sum(prey["figure"]["data"][0]["z"]) > sum(leopard["figure"]["data"][0]["z"]) > 0
    assert sum(livestock["figure"]["data"][0]["z"]) > 0
    assert "ibex & prey events by zero-shot labels" in prey["summary"]
    series = callbacks.update_series(ctx, "v", "month", layer="prey", **CONTROLS)
    assert series["figure"]["layout"]["title"]["text"].startswith("Ibex & wild prey")


def test_confirming_a_burst_counts_it_in_the_verified_view(ctx: DashboardContext) -> None:
    cell = callbacks.update_map(ctx, "v", **CONTROLS)["rows"][0]["hexagon"]
    gallery = review.show_gallery(ctx, cell, "v", None, **CONTROLS)
    assert cell in gallery["title"] and gallery["cards"]
    first = gallery["cards"][0]
    burst = first.to_plotly_json()["props"]["data-burst"]
    scores = [float(texts(c).split("score ")[1].split()[0]) for c in gallery["cards"]]
    assert scores == sorted(scores, reverse=True)
    before = callbacks.update_map(ctx, "v", verified="verified", map_mode="events", **CONTROLS)
    assert sum(before["figure"]["data"][0]["z"]) == 0  # nothing reviewed yet
    trigger = {"type": InsightIds.REVIEW_BUTTON, "burst": burst, "decision": "confirm"}
    out = review.record_decision(ctx, trigger, None, "Bayara")
    assert out["alert"] == [] and out["reviews"]
    after = callbacks.update_map(
        ctx, "v", verified="verified", reviews=out["reviews"], map_mode="events", **CONTROLS
    )
    assert sum(after["figure"]["data"][0]["z"]) == 1
    shown = review.show_gallery(ctx, cell, "v", out["reviews"], **CONTROLS)
    assert "verified in review by Bayara: confirm (snow_leopard)" in texts(shown["cards"][0])
    assert read_reviews(ctx.settings.data_dir).column("burst_id").to_pylist() == [burst]


def test_every_export_reads_back(ctx: DashboardContext, tmp_path: Path) -> None:
    shown = callbacks.update_map(ctx, "v", **CONTROLS)["rows"]
    content, name = downloads.build_export(ctx, "csv", False, **CONTROLS)
    (tmp_path / name).write_bytes(content)
    back = duckdb.sql(f"SELECT hexagon, events FROM read_csv('{tmp_path / name}')").fetchall()
    assert sorted(back) == sorted((r["hexagon"], r["events"]) for r in shown)
    content, name = downloads.build_export(ctx, "gpkg", False, **CONTROLS)
    (tmp_path / name).write_bytes(content)
    frame = gpd.read_file(tmp_path / name)
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(shown)
    first = frame.iloc[0]
    assert (
        h3.latlng_to_cell(first.geometry.centroid.y, first.geometry.centroid.x, 6)
        == first["hexagon"]
    )
    geojson = json.loads(downloads.build_export(ctx, "geojson", False, **CONTROLS)[0])
    assert len(geojson["features"]) == len(shown)
    html_doc = downloads.build_export(ctx, "html", False, **{**CONTROLS, "threshold": 0.7})[
        0
    ].decode()
    assert "score ≥ 0.70" in html_doc and "Getis-Ord Gi*" in html_doc and "<svg" in html_doc
    assert "src=" not in html_doc and "href=" not in html_doc  # nothing fetched from elsewhere
    if find_chromium():
        assert downloads.build_export(ctx, "pdf", False, **CONTROLS)[0][:5] == b"%PDF-"


def test_public_export_is_coarser_and_drops_thinly_watched_cells(ctx: DashboardContext) -> None:
    content, name = downloads.build_export(ctx, "csv", True, **CONTROLS)
    assert "public" in name
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert rows and all(h3.get_resolution(r["hexagon"]) == 5 for r in rows)
    assert all(int(r["cameras"]) >= 2 for r in rows)
    assert "gi_z" not in rows[0]
    fine = callbacks.update_map(ctx, "v", **CONTROLS)["rows"]
    assert sum(int(r["events"]) for r in rows) <= sum(r["events"] for r in fine)
