"""Bursts, burst scores and independent events."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from pipeline.errors import ConfigError
from pipeline.stages.bursts import (
    BurstOptions,
    assign_bursts,
    independent_events_sql,
    summarize_bursts,
)

T0 = datetime(2024, 2, 1, 6, 0, 0)


def frames(spec: list[tuple[str, float | None, float]]) -> pa.Table:
    """(deploymentID, seconds after T0 or None, score) → a frame table."""
    return pa.table(
        {
            "image_id": [f"img{i:03d}" for i in range(len(spec))],
            "deploymentID": [d for d, _, _ in spec],
            "locationID": [f"loc-{d}" for d, _, _ in spec],
            "captured_at": pa.array(
                [None if s is None else T0 + timedelta(seconds=s) for _, s, _ in spec],
                pa.timestamp("us"),
            ),
            "score": pa.array([p for _, _, p in spec], pa.float32()),
        }
    )


def test_frames_within_the_gap_share_a_burst_per_deployment() -> None:
    table = frames(
        [
            ("A", 0, 0.1),
            ("A", 50, 0.2),
            ("A", 100, 0.3),
            ("A", 200, 0.4),
            ("B", 10, 0.5),
            ("A", None, 0.6),
            ("A", None, 0.7),
        ]
    )
    out = assign_bursts(table, BurstOptions(burst_gap_seconds=60))
    ids = out.column("burst_id").to_pylist()
    assert ids[0] == ids[1] == ids[2] == "A/20240201T060000"  # chained gaps of 50 s
    assert ids[3] == "A/20240201T060320"
    assert ids[4] == "B/20240201T060010"  # another camera never joins A's burst
    assert ids[5] != ids[6] and "untimed" in ids[5]  # no time: a burst of its own
    assert out.column("score").to_pylist() == table.column("score").to_pylist()


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("max", 0.8), ("mean", 0.5), ("noisy_or", 1 - 0.8 * 0.5 * 0.2)],
)
def test_burst_score_aggregations(aggregation: str, expected: float) -> None:
    options = BurstOptions(aggregation=aggregation)  # type: ignore[arg-type]
    table = assign_bursts(frames([("A", 0, 0.2), ("A", 1, 0.5), ("A", 2, 0.8)]), options)
    (burst,) = summarize_bursts(table, options).to_pylist()
    assert burst["score"] == pytest.approx(expected, abs=1e-6)
    assert burst["n_frames"] == 3 and burst["best_image_id"] == "img002"
    assert burst["end_time"] - burst["start_time"] == timedelta(seconds=2)


def test_independent_events_follow_the_gap_rule() -> None:
    # Leopard bursts at 0, 20 min (chained), 75 min, and a weak one at 200 min.
    spec = [
        ("A", 0, 0.9),
        ("A", 20 * 60, 0.8),
        ("A", 75 * 60, 0.7),
        ("A", 200 * 60, 0.3),
        ("B", 0, 0.95),
    ]
    options = BurstOptions()
    bursts = summarize_bursts(assign_bursts(frames(spec), options), options)
    assert count_independent_events(bursts, threshold=0.5, event_gap_minutes=30) == 3
    assert count_independent_events(bursts, threshold=0.2, event_gap_minutes=30) == 4
    assert count_independent_events(bursts, threshold=0.5, event_gap_minutes=60) == 2
    assert count_independent_events(bursts, threshold=0.99, event_gap_minutes=30) == 0


def test_negative_gaps_are_refused() -> None:
    with pytest.raises(ConfigError):
        BurstOptions(burst_gap_seconds=-1)


def count_independent_events(bursts: pa.Table, threshold: float, event_gap_minutes: float) -> int:
    """Count independent leopard events among `bursts` at score `threshold` (the dashboard's
    independent_events_sql, over an Arrow table)."""
    con = duckdb.connect()
    con.register("bursts", bursts)
    sql = independent_events_sql(
        "(SELECT * FROM bursts WHERE score >= $threshold)", event_gap_minutes
    )
    (n,) = con.execute(
        f"SELECT count(*) FILTER (WHERE starts_event) FROM ({sql})", {"threshold": threshold}
    ).fetchall()[0]
    return int(n)
