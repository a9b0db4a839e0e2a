"""The simulated demo survey has the structure the dashboard is meant to reveal."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.runs.demo import TOST_BOUNDS, DemoOptions, build_demo_survey
from tests.helpers import open_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    build_demo_survey(out, DemoOptions(n_stations=55, n_years=2, seed=3))
    return out


def test_demo_is_marked_simulated_and_sits_in_tost(demo: Path) -> None:
    con = open_store(demo)
    assert con.execute("SELECT kind FROM runs").fetchall() == [("demo",)]
    n, lat_min, lat_max, lng_min, lng_max = con.execute(
        "SELECT count(DISTINCT locationID), min(latitude), max(latitude), min(longitude), "
        "max(longitude) FROM deployments"
    ).fetchall()[0]
    assert n >= 50
    assert TOST_BOUNDS["lat"][0] <= lat_min and lat_max <= TOST_BOUNDS["lat"][1]
    assert TOST_BOUNDS["lng"][0] <= lng_min and lng_max <= TOST_BOUNDS["lng"][1]


def test_demo_has_about_five_percent_leopard_frames_in_winter_hotspots(demo: Path) -> None:
    con = open_store(demo)
    (share,) = con.execute("SELECT avg((score >= 0.5)::INT) FROM detections").fetchall()[0]
    assert 0.02 < share < 0.09
    winter, summer = con.execute(
        "SELECT avg((score >= 0.5)::INT) FILTER (WHERE month(captured_at) IN (1, 2, 3)), "
        "avg((score >= 0.5)::INT) FILTER (WHERE month(captured_at) IN (7, 8, 9)) FROM detections"
    ).fetchall()[0]
    assert winter > 1.5 * summer  # the mating season stands out
    top, bottom = con.execute(
        "WITH s AS (SELECT locationID, avg((score >= 0.5)::INT) AS r FROM detections "
        "GROUP BY 1) SELECT max(r), median(r) FROM s"
    ).fetchall()[0]
    assert top > 4 * bottom  # hotspots, not a uniform spread


def test_demo_keeps_failures_as_rows(demo: Path) -> None:
    con = open_store(demo)
    (failed,) = con.execute("SELECT count(*) FROM images WHERE status = 'failed'").fetchall()[0]
    assert failed > 0


def test_demo_identifies_simulated_individuals_on_leopard_frames_only(demo: Path) -> None:
    """The individuals table, as `uncia identify` writes it, every row flagged simulated; each
    individual is a leopard frame's, and residents keep to their ridges (few hexagons each)."""
    con = open_store(demo)
    individuals = str(demo / "parquet" / "individuals.parquet")
    rows, statuses, named, distinct, not_leopard = con.execute(
        f"""SELECT count(*), list(DISTINCT status), bool_and(i.individualID LIKE 'simulated-%'),
                   count(DISTINCT i.individualID),
                   count(*) FILTER (WHERE x.top5_labels[1] <> 'snow leopard')
            FROM read_parquet('{individuals}') i JOIN detections x USING (image_id)"""
    ).fetchall()[0]
    assert rows > 100 and statuses == ["simulated"] and named
    assert 3 <= distinct <= 9 and not_leopard == 0
    (sightings_match,) = con.execute(
        f"""SELECT bool_and(sightings = n) FROM read_parquet('{individuals}')
            JOIN (SELECT individualID, count(*) AS n FROM read_parquet('{individuals}')
                  GROUP BY 1) USING (individualID)"""
    ).fetchall()[0]
    assert sightings_match
