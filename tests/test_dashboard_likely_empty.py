"""Bursts an imported MegaDetector run called likely empty: the review gallery puts them last
and badges them (the query, the gallery callback, and the badge in a real Chromium).

The hand-made survey of the dashboard tests, with a MegaDetector results file imported into it
by `uncia import megadetector`'s function.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash import html

from dashboard import Settings, create_app
from dashboard.context import build_context
from dashboard.data import analysis
from dashboard.data.queries import latest_boxes
from dashboard.data.store import Store
from dashboard.filters import Filters
from dashboard.views import hotspots as callbacks
from dashboard.views.review import show_gallery
from pipeline.interop.megadetector import import_megadetector
from tests.browser import CHROMIUM, open_page, serve_app
from tests.dashboard_fixtures import WHOLE_YEAR_R7 as CONTROLS
from tests.dashboard_fixtures import cell, write_survey

C_TOP = "img-C-2023-20230305T040000"  # the top-scoring burst (0.99): MegaDetector saw nothing
A_BEST = "img-A-2023-20230210T060000"  # 0.9: MegaDetector found an animal
B_TOP = "img-B-2023-20231220T220000"  # 0.95: MegaDetector could not read it


def _results(path: Path) -> Path:
    box = {"category": "1", "conf": 0.92, "bbox": [0.2, 0.3, 0.1, 0.1]}
    weak = {"category": "1", "conf": 0.05, "bbox": [0.6, 0.3, 0.1, 0.1]}
    path.write_text(json.dumps({
        "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt",
                 "detector_metadata": {"typical_detection_threshold": 0.2}},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": [
            {"file": f"C-2023/{C_TOP}.jpg", "detections": [weak]},
            {"file": f"A-2023/{A_BEST}.jpg", "detections": [box, weak]},
            {"file": f"B-2023/{B_TOP}.jpg", "failure": "Failure image access",
             "detections": None},
        ],
    }))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = write_survey(tmp_path_factory.mktemp("likely-empty") / "survey")
    imported = import_megadetector(_results(out.parent / "md.json"), out)
    assert (imported.matched, imported.likely_empty, imported.failures) == (3, 1, 1)
    return out


def _candidates(store: Path, boxes: Path | None) -> list[dict[str, Any]]:
    with Store(store).connect() as con:
        analysis.attach(con, analysis.camera_gaps(con, 7), None)
        return analysis.review_candidates(con, Filters(resolution=7), None, 10, boxes).to_pylist()


def test_likely_empty_bursts_come_last_and_say_how_many_frames(survey: Path) -> None:
    before = _candidates(survey, None)
    after = _candidates(survey, Store(survey).table("detector_boxes"))
    assert before[0]["best_image_id"] == C_TOP and not any(r["likely_empty"] for r in before)
    assert after[-1]["best_image_id"] == C_TOP
    assert (after[-1]["likely_empty"], after[-1]["detector_seen"]) == (True, 1)
    # The others keep their order; a box or a failure is not "likely empty".
    assert [r["burst_id"] for r in after[:-1]] == [r["burst_id"] for r in before[1:]]
    flags = {r["best_image_id"]: (r["likely_empty"], r["detector_seen"]) for r in after}
    assert flags[A_BEST] == (False, 1) and flags[B_TOP] == (False, 0)


def test_without_an_import_the_gallery_is_as_before(tmp_path: Path) -> None:
    out = write_survey(tmp_path / "survey")
    result = show_gallery(build_context(Settings(data_dir=out, tiles="none")), None, "v1", None,
                          **CONTROLS)  # fmt: skip
    assert "likely empty" not in result["title"]
    assert not [c for c in result["cards"] if "likely empty" in str(c)]


def _badges(card: Any) -> list[html.Span]:
    found = []
    stack = [card]
    while stack:
        node = stack.pop()
        if isinstance(node, html.Span) and node.className == "likely-empty":
            found.append(node)
        children = getattr(node, "children", None)
        stack.extend(children if isinstance(children, list) else [children] if children else [])
    return found


def test_the_gallery_badges_the_likely_empty_burst_and_puts_it_last(survey: Path) -> None:
    ctx = build_context(Settings(data_dir=survey, tiles="none"))
    result = show_gallery(ctx, None, "v1", None, **CONTROLS)
    assert "1 MegaDetector called likely empty last" in result["title"]
    cards = result["cards"]
    badged = [i for i, card in enumerate(cards) if _badges(card)]
    assert badged == [len(cards) - 1]
    assert C_TOP in str(cards[-1].children[0])  # the last card is the C burst's thumbnail
    (badge,) = _badges(cards[-1])
    assert badge.title == (
        "MegaDetector (imported run) saw 1 of this burst's 3 frame(s) and found no animal "
        "above its threshold in any: reviewed last"
    )


def test_a_detector_views_box_is_drawn_and_says_it_is_megadetectors(tmp_path: Path) -> None:
    """A frame whose best view was an imported MegaDetector box (`view` = detector): the
    dashboard draws that box on its thumbnail, and its tooltip names the detector."""
    box = {"view": "detector", "view_box_x": 0.41, "view_box_y": 0.2, "view_box_width": 0.07,
           "view_box_height": 0.1}  # fmt: skip
    out = write_survey(tmp_path / "survey", views={A_BEST: box})
    with Store(out).connect() as con:
        boxes = latest_boxes(con, Store(out).table("localizations"), [A_BEST])
    assert (boxes[A_BEST].method, boxes[A_BEST].target) == ("view", "detector")
    ctx = build_context(Settings(data_dir=out, tiles="none"))
    cards = callbacks.show_detections(ctx, cell("A"), "v1", **CONTROLS)["cards"]
    (card,) = [c for c in cards if A_BEST in str(c.children[0])]
    outline = card.children[0].children[1]
    assert outline.style["left"] == "41.00%" and "MegaDetector's box" in outline.title


@pytest.fixture(scope="module")
def page(survey: Path, browser: Any) -> Iterator[Any]:
    server, url = serve_app(create_app(Settings(data_dir=survey, tiles="none")))
    try:
        with open_page(browser, url) as opened:
            yield opened
    finally:
        server.shutdown()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make browser)")
def test_the_badge_shows_in_the_browser_on_the_last_card(page: Any) -> None:
    page.wait_for_selector("#review-gallery .review-card .likely-empty", timeout=20_000)
    cards = page.locator("#review-gallery .review-card")
    last = cards.nth(cards.count() - 1)
    badge = last.locator(".likely-empty")
    assert badge.inner_text() == "likely empty" and badge.is_visible()
    assert "saw 1 of this burst's 3 frame(s)" in badge.get_attribute("title")
    assert page.locator("#review-gallery .likely-empty").count() == 1
    assert "likely empty last" in page.locator("#review-title").inner_text()
