"""In a real Chromium: frames a person labelled in Timelapse show as verified in the review
gallery, with where the word came from; "Human-verified only" counts them on the map as the
hand count says; the occupancy download is `uncia export occupancy` of the same view, and the
public version refuses it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from dashboard import Settings, create_app
from dashboard.ids import InsightIds
from dashboard.views.downloads import EXPORT_LABELS, ExportFormat
from pipeline.interop.timelapse import import_timelapse
from pipeline.interop.timelapse_store import store_timelapse_labels
from pipeline.store.reviews import read_reviews
from tests.browser import BROWSER_MARKS, Z_SUM, open_page, serve_app
from tests.verified_fixtures import (
    VERIFIED_EVENTS,
    build_verified_survey,
    burst_of,
    write_timelapse_csv,
)

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("verified-browser")
    store = build_verified_survey(root / "store")
    csv_file = write_timelapse_csv(root / "tost.csv")
    result = import_timelapse(csv_file, root / "labels")
    store_timelapse_labels(result.frame_labels, store, csv_file.name)
    # 20 trap-nights a station: enough effort for the map to fill every hexagon.
    settings = Settings(data_dir=store, tiles="none", min_trap_nights=10)
    server, url = serve_app(create_app(settings))
    yield url, store
    server.shutdown()


@pytest.fixture(scope="module")
def page(served: tuple[str, Path], browser: Any) -> Iterator[Any]:
    with open_page(browser, served[0], accept_downloads=True) as page:
        yield page


def card(page: Any, store: Path, station: str, d: int) -> str:
    """The selector of the gallery card of `station`'s burst of day `d`, once it is shown."""
    selector = f'#{InsightIds.GALLERY} [data-burst="{burst_of(store, station, d)}"]'
    page.wait_for_selector(selector, timeout=20_000)
    return selector


def card_text(page: Any, store: Path, station: str, d: int) -> str:
    selector = card(page, store, station, d)
    return page.evaluate(f"() => document.querySelector('{selector}').innerText")


def test_imported_labels_show_as_verified_and_a_review_overrides_them(page: Any, served) -> None:
    _, store = served
    imported = "verified: imported from Timelapse (tost.csv)"
    assert f"{imported}: confirm (snow_leopard)" in card_text(page, store, "B", 3)
    assert f"{imported}: relabel (empty)" in card_text(page, store, "A", 9)
    assert f"{imported}: relabel (empty)" in card_text(page, store, "B", 12)
    assert "not reviewed" in card_text(page, store, "A", 8)
    page.get_by_text("Independent events (raw counts)", exact=True).click()
    page.wait_for_function(f"() => ({Z_SUM})() === 7", timeout=15_000)  # machine: by hand
    page.get_by_text("Human-verified only").click()
    # By hand: A d5, B d3 and B d15 (B d12 is empty in Timelapse).
    before = sum(VERIFIED_EVENTS.values()) - 1
    page.wait_for_function(f"() => ({Z_SUM})() === {before}", timeout=15_000)
    # A review in the dashboard, later than the import, overrides it: B d12 becomes a leopard.
    page.click(f"{card(page, store, 'B', 12)} button[data-decision='confirm']")
    page.wait_for_function(f"() => ({Z_SUM})() === {sum(VERIFIED_EVENTS.values())}",
                           timeout=15_000)  # fmt: skip
    page.wait_for_function(
        f"() => document.querySelector('{card(page, store, 'B', 12)}').innerText"
        ".includes('verified in review by local: confirm (snow_leopard)')",
        timeout=15_000,
    )
    assert [r["burst_id"] for r in read_reviews(store).to_pylist()] == [burst_of(store, "B", 12)]


def download(page: Any, fmt: ExportFormat, folder: Path) -> Path:
    with page.expect_download(timeout=30_000) as info:
        page.get_by_text(EXPORT_LABELS[fmt], exact=True).click()
    target = folder / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_occupancy_download_equals_the_cli_export(page: Any, served, tmp_path: Path) -> None:
    _, store = served
    page.fill(f"#{InsightIds.OCCASION_DAYS}", "5")
    zipped = download(page, ExportFormat.OCCUPANCY, tmp_path)
    archive = zipfile.ZipFile(io.BytesIO(zipped.read_bytes()))
    cli = tmp_path / "cli"
    verified = "view_counted_from,human-verified" in archive.read("provenance.csv").decode()
    args = ["--verified-only"] if verified else ["--threshold", "0.5"]
    assert main(["export", "occupancy", "--data", str(store), "--out", str(cli),
                 "--occasion-days", "5", "--gap-days", "0", *args]) == 0  # fmt: skip
    for member in ("detection_history.csv", "effort.csv"):
        assert archive.read(member).decode() == (cli / member).read_text()
    page.get_by_text("Public version (coarser hexagons").click()
    page.get_by_text(EXPORT_LABELS[ExportFormat.SECR], exact=True).click()
    page.wait_for_function(
        f"() => document.querySelector('#{InsightIds.EXPORT_ALERT}').innerText"
        ".includes('not offered in the public version')",
        timeout=15_000,
    )
    page.get_by_text("Public version (coarser hexagons").click()
