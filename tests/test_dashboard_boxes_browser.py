"""Localization boxes and the individuals map in a real headless Chromium: a clicked hexagon's
frames carry the box outline where the localizer put it, and the "individuals" map mode draws
its hexagons on the WebGL map.

The demo survey gets a localizations table and an individuals table written here, as
`uncia localize` and `uncia identify` write them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dashboard.data.queries import individuals_in_view
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.views.insights import MODE_LABELS, MapMode
from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.schema import INDIVIDUALS, LOCALIZATIONS
from pipeline.store.store import StorePaths, atomic_write_parquet
from tests.browser import (
    BROWSER_MARKS,
    GRAPH,
    MAP_READY,
    click_first_hexagon,
    open_page,
    serve_demo,
)

pytestmark = BROWSER_MARKS
BOX = (0.25, 0.2, 0.5, 0.6)  # x, y, width, height of the upright frame
THRESHOLD = 0.5  # the demo run's leopard threshold, where the page starts


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("demo")
    build_demo_survey(data, DemoOptions(n_stations=12, n_years=2, seed=3))
    paths = StorePaths(data)
    frames = [
        r for r in pq.read_table(paths.table("detections")).to_pylist() if r["score"] >= THRESHOLD
    ]
    x, y, w, h = BOX
    boxes = [
        {"image_id": r["image_id"], "run_id": "20250101T000000Z-aaaaaa", "method": "gradcam",
         "target": "imagenet:289", "score": r["score"], "target_score": 0.8, "box_x": x,
         "box_y": y, "box_width": w, "box_height": h}
        for r in frames
    ]  # fmt: skip
    atomic_write_parquet(
        pa.Table.from_pylist(boxes, schema=LOCALIZATIONS), paths.table("localizations")
    )
    # Two individuals per camera location, each seen at every other frame there.
    individuals = [
        {"image_id": r["image_id"], "individualID": f"ind-{r['locationID']}-{n % 2}",
         "sightings": 1, "status": "proposed"}
        for n, r in enumerate(frames)
    ]  # fmt: skip
    atomic_write_parquet(
        pa.Table.from_pylist(individuals, schema=INDIVIDUALS), paths.table("individuals")
    )
    server, url = serve_demo(data)
    yield url, data
    server.shutdown()


@pytest.fixture
def page(browser: Any, served: tuple[str, Path]) -> Iterator[Any]:  # noqa: F811 (the fixture)
    with open_page(browser, served[0]) as page:
        yield page


def test_clicked_hexagons_frames_show_the_box_where_the_localizer_put_it(page: Any) -> None:
    cell = click_first_hexagon(page)
    page.wait_for_selector("#detections .thumb .box", timeout=15_000)
    assert cell in page.locator("#detections-title").inner_text()
    thumb = page.locator("#detections .thumb").first
    thumb.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelector('#detections .thumb img').naturalWidth > 0", timeout=15_000
    )
    image = thumb.locator("img").bounding_box()
    box = thumb.locator(".box").bounding_box()
    x, y, w, h = BOX
    assert box["x"] == pytest.approx(image["x"] + x * image["width"], abs=1.5)
    assert box["y"] == pytest.approx(image["y"] + y * image["height"], abs=1.5)
    assert box["width"] == pytest.approx(w * image["width"], abs=1.5)
    assert box["height"] == pytest.approx(h * image["height"], abs=1.5)
    # The whole picture shows (no 4:3 crop hides part of the frame the box refers to).
    natural = page.evaluate(
        "() => { const i = document.querySelector('#detections .thumb img');"
        " return i.naturalHeight / i.naturalWidth; }"
    )
    assert image["height"] / image["width"] == pytest.approx(natural, abs=0.01)
    assert "Grad-CAM" in thumb.locator(".box").get_attribute("title")
    # Every frame listed was localized, so each card carries one outline.
    cards = page.locator("#detections figure").count()
    assert page.locator("#detections .thumb .box").count() == cards > 0
    # The review gallery shows the same frames' boxes.
    page.wait_for_function(
        f"() => document.querySelector('#review-title').innerText.includes('{cell}')",
        timeout=15_000,
    )
    assert page.locator("#review-gallery .review-card .thumb .box").count() > 0


def purple_pixels(page: Any) -> int:
    """Pixels of the map canvas in the individuals' purples (neither background nor reds)."""
    page.mouse.move(1, 1)  # no hover label over the map
    shot = page.locator("#hotspot-map canvas.maplibregl-canvas").screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((b > g + 40) & (r > g + 10)).sum())


def test_individuals_mode_draws_its_hexagons(page: Any, served: tuple[str, Path]) -> None:
    data = served[1]
    with Store(data).connect() as con:
        expected = individuals_in_view(
            con, StorePaths(data).table("individuals"), Filters(resolution=6, threshold=THRESHOLD)
        ).to_pylist()
    assert purple_pixels(page) == 0  # the events map has no purple
    page.get_by_text(MODE_LABELS[MapMode.INDIVIDUALS], exact=True).click()
    page.wait_for_function(
        f"() => document.querySelector('{GRAPH}').data[0].name === 'Individuals'", timeout=15_000
    )
    page.wait_for_function(MAP_READY, timeout=15_000)
    drawn = page.evaluate(
        f"""() => {{ const t = document.querySelector('{GRAPH}').data[0];
                     return Object.fromEntries(t.locations.map((c, i) => [c, t.z[i]])); }}"""
    )
    assert {c: n for c, n in drawn.items() if n} == {
        r["hexagon"]: r["individuals"] for r in expected
    }
    assert (
        "distinct individual(s), minimum known alive" in page.locator("#map-summary").inner_text()
    )
    page.wait_for_timeout(500)  # let MapLibre paint the new colours
    assert purple_pixels(page) > 200
