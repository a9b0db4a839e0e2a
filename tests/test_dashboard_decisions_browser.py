"""The decision views in a real headless Chromium: season and significance map modes, a click
on a hexagon into the review gallery, a keyboard confirmation that the verified view counts,
and every export downloaded and read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import pytest

from dashboard import Settings, create_app
from dashboard.views.downloads import EXPORT_LABELS, ExportFormat
from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.store.reviews import read_reviews
from tests.browser import (
    BROWSER_MARKS,
    GRAPH,
    MAP_READY,
    Z_SUM,
    click_first_hexagon,
    open_page,
    serve_app,
)

pytestmark = BROWSER_MARKS
TRACE_NAMES = f"() => document.querySelector('{GRAPH}').data.map(t => t.name)"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("demo")
    build_demo_survey(data, DemoOptions(n_stations=12, n_years=2, seed=3))
    # Three cards drawn at first in each gallery, so that "Show all" has more to show here.
    settings = Settings(
        data_dir=data, tiles="none", min_trap_nights=420, detections_shown=3, review_bursts_shown=3
    )
    server, url = serve_app(create_app(settings))
    yield url, data
    server.shutdown()


@pytest.fixture(scope="module")
def page(served: tuple[str, Path], browser: Any) -> Iterator[Any]:
    with open_page(browser, served[0], accept_downloads=True) as page:
        yield page


def test_season_filter_and_significance_and_effort_modes(page: Any) -> None:
    months = (
        "() => document.querySelector('#event-series .js-plotly-plot').data[0].x"
        ".map(d => Number(String(d).slice(5, 7)))"
    )
    page.get_by_text("Winter (Nov–Mar)").click()
    page.wait_for_function(
        f"() => {{ const m = ({months})(); return m.length && m.every(x => x >= 11 || x <= 3); }}",
        timeout=15_000,
    )
    page.wait_for_function(
        "() => document.querySelector('#map-summary').innerText.includes('Winter')",
        timeout=15_000,
    )
    page.get_by_text("Hot / cold spots (Gi*)").click()
    page.wait_for_function(
        f"() => ({TRACE_NAMES})().every(n => ['hot', 'cold', 'not significant', 'not tested', "
        "'too little effort', 'Selected hexagon'].includes(n))",
        timeout=15_000,
    )
    page.get_by_text("Events per 100 trap-nights").click()
    page.wait_for_function(f"() => ({TRACE_NAMES})().includes('too little effort')", timeout=15_000)
    page.get_by_text("Independent events (raw counts)", exact=True).click()
    page.get_by_text("All year", exact=True).click()
    page.wait_for_function(f"() => ({TRACE_NAMES})()[0] === 'Hexagons'", timeout=15_000)


def test_click_a_hexagon_into_the_gallery_and_confirm_by_keyboard(
    page: Any, served: tuple[str, Path]
) -> None:
    page.wait_for_function(MAP_READY)
    cell = click_first_hexagon(page)
    page.wait_for_function(
        f"() => document.querySelector('#review-title').innerText.includes('{cell}')",
        timeout=15_000,
    )
    card = page.locator("#review-gallery .review-card").first
    burst = card.get_attribute("data-burst")
    card.focus()
    page.keyboard.press("c")
    page.wait_for_function(
        "() => document.querySelector('#review-gallery .review-card')"
        ".innerText.includes('confirm (snow_leopard)')",
        timeout=15_000,
    )
    # focus moved on to the second card by itself: x rejects that one
    second = page.locator("#review-gallery .review-card").nth(1).get_attribute("data-burst")
    page.wait_for_function(
        f"() => document.activeElement.getAttribute('data-burst') === '{second}'", timeout=15_000
    )
    page.keyboard.press("x")
    page.wait_for_function(
        "() => document.querySelectorAll('#review-gallery .review-card')[1]"
        ".innerText.includes('reject (not_leopard)')",
        timeout=15_000,
    )
    # Relabel: the gallery's one "Relabel as" choice, then l on the third card.
    page.locator("#relabel-choice").click()
    page.locator(".dash-dropdown-options label", has_text="livestock").click()
    third = page.locator("#review-gallery .review-card").nth(2)
    third_burst = third.get_attribute("data-burst")
    third.focus()
    page.keyboard.press("l")
    page.wait_for_function(
        "() => document.querySelectorAll('#review-gallery .review-card')[2]"
        ".innerText.includes('relabel (livestock)')",
        timeout=15_000,
    )
    latest = {
        r["burst_id"]: (r["decision"], r["label"]) for r in read_reviews(served[1]).to_pylist()
    }
    assert latest == {
        burst: ("confirm", "snow_leopard"),
        second: ("reject", "not_leopard"),
        third_burst: ("relabel", "livestock"),
    }
    # Three cards each at first; "Show all" draws the rest, and folds them again.
    cards, more = "#review-gallery .review-card", page.locator("#review-more")
    assert page.locator(cards).count() == 3 and more.is_visible()
    total = int(more.inner_text().split()[2])  # "Show all N bursts"
    more.click()
    page.wait_for_function(f"() => document.querySelectorAll('{cards}').length === {total}")
    assert more.inner_text() == "Show only the first 3"
    more.click()
    page.wait_for_function(f"() => document.querySelectorAll('{cards}').length === 3")
    frames, more = "#detections .detection", page.locator("#detections-more")
    assert page.locator(frames).count() == 3
    total = int(more.inner_text().split()[2])  # "Show all N frames"
    more.click()
    page.wait_for_function(f"() => document.querySelectorAll('{frames}').length === {total}")
    more.click()  # folded again for the tests after this one
    page.wait_for_function(f"() => document.querySelectorAll('{frames}').length === 3")
    page.get_by_text("Human-verified only").click()
    page.wait_for_function(f"() => ({Z_SUM})() === 1", timeout=15_000)
    page.get_by_text("All machine detections").click()
    page.wait_for_function(f"() => ({Z_SUM})() > 1", timeout=15_000)


def download(page: Any, fmt: ExportFormat, folder: Path) -> Path:
    with page.expect_download(timeout=30_000) as info:
        page.get_by_text(EXPORT_LABELS[fmt], exact=True).click()
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_every_export_downloads_and_reads_back(page: Any, tmp_path: Path) -> None:
    hexagons = page.evaluate(f"() => document.querySelector('{GRAPH}').data[0].locations.length")
    csv_file = download(page, ExportFormat.CSV, tmp_path)
    assert duckdb.sql(f"SELECT count(*) FROM read_csv('{csv_file}')").fetchall() == [(hexagons,)]
    gpkg = gpd.read_file(download(page, ExportFormat.GPKG, tmp_path))
    assert len(gpkg) == hexagons and gpkg.crs.to_epsg() == 4326
    geojson = json.loads(download(page, ExportFormat.GEOJSON, tmp_path).read_text())
    assert len(geojson["features"]) == hexagons
    report = download(page, ExportFormat.HTML, tmp_path).read_text()
    assert "Methods" in report and "Simulated data" in report
    assert download(page, ExportFormat.PDF, tmp_path).read_bytes()[:5] == b"%PDF-"
    labels = download(page, ExportFormat.LABELS, tmp_path).read_text().splitlines()
    assert labels[0] == "file,label" and labels[1].endswith(",snow_leopard")
    page.get_by_text("Public version").click()
    public = download(page, ExportFormat.CSV, tmp_path)
    assert "public" in public.name
    fewer = duckdb.sql(f"SELECT count(*) FROM read_csv('{public}')").fetchall()[0][0]
    assert fewer < hexagons
