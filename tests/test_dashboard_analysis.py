"""Effort, layers, verified counts, reviews and timelines on the hand-made survey of
test_dashboard_queries, where every answer can be counted on a calendar.

Frames exist only at burst times, so with gap_days = 7: deployment A (all of 2023, frames on
10 Feb, 15 and 16 Jul) worked 5 days (1 Jan, 10 Feb, 15 Jul, 16 Jul, 31 Dec); C (1–10 Mar,
one frame on 5 Mar, silences of 3 and 4 days) worked all 10; B (1 Nov 2023 – 31 Mar 2024,
frames 20 Dec, 5 Jan, 10 Mar) worked 5.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.data import analysis
from dashboard.data.analysis import EffortRules
from dashboard.data.store import Store
from dashboard.filters import Filters, Season
from dashboard.species import LABEL_GROUPS, Layer
from pipeline.errors import ConfigError
from pipeline.schema import IMAGES, RUN_TABLES, conform
from pipeline.store import store
from pipeline.store.reviews import read_reviews, record_review, reviews_dir, training_labels_csv
from tests.dashboard_fixtures import (
    A_CELL_R7,
    BURST_ROWS,
    deployments_table,
    write_survey,
)

GAP = 30.0
B_CELL_R7 = next(r["h3_r7"] for r in deployments_table().to_pylist() if r["locationID"] == "B")


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    return write_survey(tmp_path / "survey")


def summary_of(
    data: Path, filters: Filters, gap_days: int = 7, layer: Layer = Layer.LEOPARD, min_nights=0
) -> dict[str, dict[str, Any]]:
    store = Store(data)
    with store.connect() as con:
        analysis.attach(con, analysis.camera_gaps(con, gap_days), store.verdicts(con))
        table = analysis.layer_summary(con, filters, GAP, layer, min_nights)
    return {r["hexagon"]: r for r in table.to_pylist()}


def test_silent_stretches_are_taken_out_of_the_trap_nights(survey: Path) -> None:
    f = Filters(resolution=7, threshold=0.5)
    with_gaps = summary_of(survey, f)
    assert with_gaps[A_CELL_R7]["trap_nights"] == 5 + 10
    assert with_gaps[B_CELL_R7]["trap_nights"] == 5
    # the relative abundance index: 4 events (A: 3, C: 1) per 15 trap-nights
    assert with_gaps[A_CELL_R7]["events_per_100_trap_nights"] == pytest.approx(100 * 4 / 15)
    no_gaps = summary_of(survey, f, gap_days=365)
    assert no_gaps[A_CELL_R7]["trap_nights"] == 365 + 10


def add_images(data: Path, extra: list[dict[str, Any]]) -> None:
    tables = {n: pq.read_table(store.StorePaths(data).table(n)) for n in RUN_TABLES}
    base = tables["images"].to_pylist()[0]
    rows = [{**base, **e} for e in extra]
    images = pa.concat_tables([tables["images"], conform(pa.Table.from_pylist(rows), IMAGES)])
    store.write_tables(data, {**tables, "images": images})


def test_frames_with_a_time_problem_do_not_prove_the_camera_worked(survey: Path) -> None:
    june = datetime(2023, 6, 1, 12)
    add_images(
        survey,
        [
            {
                "image_id": "bad",
                "deploymentID": "A-2023",
                "captured_at": june,
                "time_flag": "unparseable",
            }
        ],
    )
    f = Filters(resolution=7)
    assert summary_of(survey, f)[A_CELL_R7]["trap_nights"] == 15
    add_images(survey, [{"image_id": "good", "deploymentID": "A-2023", "captured_at": june}])
    assert summary_of(survey, f)[A_CELL_R7]["trap_nights"] == 16


def test_little_effort_is_marked_and_left_out_of_the_test(survey: Path) -> None:
    f = Filters(resolution=7)
    with Store(survey).connect() as con:
        analysis.attach(con, analysis.camera_gaps(con, 7), None)
        table = analysis.layer_summary(con, f, GAP, Layer.LEOPARD, min_trap_nights=10)
    judged = {r["hexagon"]: r for r in analysis.with_significance(table, EffortRules()).to_pylist()}
    assert judged[B_CELL_R7]["enough_effort"] is False
    assert judged[B_CELL_R7]["hotspot"] == "too little effort" and judged[B_CELL_R7]["gi_z"] is None
    # 4 events at 2 cameras are below the default minimum (10 and 10): Gi* is withheld
    assert judged[A_CELL_R7]["hotspot"] == "not tested" and judged[A_CELL_R7]["gi_z"] is None
    reason = analysis.gi_withheld_reason(table, EffortRules())
    assert reason == (
        "Gi* not tested: 4 event(s) at 2 camera(s) with enough effort; "
        "the test needs at least 10 events and 10 cameras"
    )
    small = EffortRules(min_gi_events=4, min_gi_cameras=2)
    assert analysis.gi_withheld_reason(table, small) is None
    tested = {r["hexagon"]: r for r in analysis.with_significance(table, small).to_pylist()}
    assert tested[A_CELL_R7]["hotspot"] == "not significant"  # two hexagons: nothing to test


def test_other_species_layers_count_by_top1_label(tmp_path: Path) -> None:
    data = write_survey(tmp_path / "s")
    tables = {n: pq.read_table(store.StorePaths(data).table(n)) for n in RUN_TABLES}
    rows = tables["detections"].to_pylist()
    for row in rows:
        if row["captured_at"] == datetime(2023, 7, 16, 20, 0):
            row["top5_labels"] = ["ibex", "ram", "hare", "ox", "alp"]
        if row["captured_at"] == datetime(2024, 3, 10, 3, 0):
            row["top5_labels"] = ["ox", "ibex", "ram", "hare", "alp"]
    detections = conform(pa.Table.from_pylist(rows), RUN_TABLES["detections"])
    store.write_tables(data, {**tables, "detections": detections})
    f = Filters(resolution=7)
    prey = summary_of(data, f, layer=Layer.PREY)
    livestock = summary_of(data, f, layer=Layer.LIVESTOCK)
    assert prey[A_CELL_R7]["events"] == 1 and prey[B_CELL_R7]["events"] == 0
    assert livestock[B_CELL_R7]["events"] == 1 and livestock[A_CELL_R7]["events"] == 0
    assert sum(r["events"] for r in summary_of(data, f, layer=Layer.PEOPLE).values()) == 0
    assert group_of("bighorn") is Layer.PREY and group_of("snow leopard") is None


def test_verified_only_counts_confirmed_bursts_whatever_their_score(survey: Path) -> None:
    low_b = next(b for b in BURST_ROWS if b["deploymentID"] == "B-2023" and b["score"] == 0.4)
    high_a = next(b for b in BURST_ROWS if b["score"] == 0.9)
    for b, decision in ((low_b, "confirm"), (high_a, "reject")):
        record_review(
            survey,
            burst_id=b["burst_id"],
            image_id=b["best_image_id"],
            decision=decision,
            reviewer="Bayara",
        )
    verified = summary_of(survey, Filters(resolution=7, verified_only=True))
    assert verified[B_CELL_R7]["events"] == 1 and verified[A_CELL_R7]["events"] == 0
    machine = summary_of(survey, Filters(resolution=7))
    assert machine[A_CELL_R7]["events"] == 4  # machine view ignores the reviews


def test_reviews_are_append_only_and_become_training_labels(survey: Path) -> None:
    b = BURST_ROWS[0]
    first = datetime(2026, 1, 1, 10, tzinfo=UTC)
    record_review(
        survey,
        burst_id=b["burst_id"],
        image_id=b["best_image_id"],
        decision="confirm",
        reviewer="Bayara",
        now=first,
    )
    record_review(
        survey,
        burst_id=b["burst_id"],
        image_id=b["best_image_id"],
        decision="relabel",
        label="ibex",
        reviewer="Koustubh",
        now=first.replace(hour=11),
    )
    assert len(list(reviews_dir(survey).glob("*.parquet"))) == 2
    history = read_reviews(survey, latest_only=False)
    assert history.column("reviewer").to_pylist() == ["Bayara", "Koustubh"]
    latest = read_reviews(survey).to_pylist()
    assert [(r["decision"], r["label"], r["reviewer"]) for r in latest] == [
        ("relabel", "ibex", "Koustubh")
    ]
    store.write_tables(
        survey, {n: pq.read_table(store.StorePaths(survey).table(n)) for n in RUN_TABLES}
    )  # a pipeline checkpoint
    assert read_reviews(survey).num_rows == 1
    with Store(survey).connect() as con:
        images = con.sql(
            "SELECT image_id, deploymentID, relative_path FROM images"
        ).to_arrow_table()
    rows = list(csv.DictReader(io.StringIO(training_labels_csv(read_reviews(survey), images))))
    assert rows == [{"file": f"A-2023/{b['best_image_id']}.jpg", "label": "ibex"}]
    with pytest.raises(ConfigError):
        record_review(survey, burst_id="x", image_id="y", decision="relabel", reviewer="B")
    with pytest.raises(ConfigError):
        record_review(survey, burst_id="x", image_id="y", decision="confirm", reviewer=" ")


def test_diel_timeline_and_review_candidates(survey: Path) -> None:
    with Store(survey).connect() as con:
        analysis.attach(con, analysis.camera_gaps(con, 7), None)
        f = Filters(resolution=7)
        diel = {r["hour"]: r["events"] for r in analysis.diel_activity(con, f, GAP).to_pylist()}
        winter = analysis.diel_activity(con, Filters(resolution=7, season=Season.WINTER), GAP)
        timeline = analysis.operation_timeline(con, f, A_CELL_R7).to_pylist()
        candidates = analysis.review_candidates(con, f, A_CELL_R7, 10).to_pylist()
    assert {h: n for h, n in diel.items() if n} == {3: 1, 4: 1, 6: 2, 20: 1, 22: 1}
    assert sum(winter.column("events").to_pylist()) == 5  # not the July one
    a_down = [
        (r["start"].isoformat(), r["end"].isoformat())
        for r in timeline
        if r["deploymentID"] == "A-2023" and r["kind"] == "down"
    ]
    assert a_down == [
        ("2023-01-02", "2023-02-09"),
        ("2023-02-11", "2023-07-14"),
        ("2023-07-17", "2023-12-30"),
    ]
    assert not [r for r in timeline if r["deploymentID"] == "C-2023" and r["kind"] == "down"]
    assert [c["score"] for c in candidates] == sorted(
        (c["score"] for c in candidates), reverse=True
    )
    assert pytest.approx(candidates[0]["score"]) == 0.99 and len(candidates) == 5


@pytest.mark.parametrize("cache_key", [None, "g7"])
def test_trap_nights_from_spans_equal_counting_nights_one_by_one(
    survey: Path, cache_key: str | None
) -> None:
    """Per-deployment trap-nights summed from month spans match a count of single nights for
    windows that cut spans anywhere and seasons that wrap the new year."""
    windows = [
        (None, None, list(range(1, 13))),
        (date(2023, 2, 5), date(2023, 3, 5), list(range(1, 13))),
        (date(2023, 11, 15), date(2024, 1, 20), [11, 12, 1]),
        (None, date(2023, 3, 5), [2, 3]),
        (date(2023, 3, 3), None, [3, 11, 12, 1, 2]),
    ]
    counted = 0
    with Store(survey).connect() as con:
        analysis.attach(con, analysis.camera_gaps(con, 7), None, cache_key=cache_key)
        for start, end, months in windows:
            params = {"start": start, "end": end, "months": months}
            one_by_one = con.sql(
                f"WITH {analysis._NIGHTS} SELECT deploymentID, count(*) FROM nights "
                "GROUP BY 1 ORDER BY 1",
                params=params,
            ).fetchall()
            from_spans = con.sql(
                f"WITH {analysis._NIGHTS_PER_DEPLOYMENT} SELECT deploymentID, trap_nights "
                "FROM nights_per_deployment ORDER BY 1",
                params=params,
            ).fetchall()
            assert from_spans == one_by_one
            counted += sum(n for _, n in one_by_one)
    assert counted > 30  # the windows hold nights to count


def group_of(label: str | None) -> Layer | None:
    """The group an ImageNet label belongs to, None when it is in no group."""
    for layer, labels in LABEL_GROUPS.items():
        if label in labels:
            return layer
    return None
