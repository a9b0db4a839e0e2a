"""Readers (the dashboard) never fail and never see a partial file while a run writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb

from pipeline.runs.demo import DemoOptions, build_demo_survey
from tests.helpers import open_store

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.stages.bursts import BurstOptions
    from pipeline.runs.demo import DemoOptions, build_demo_survey
    from pipeline.store import store
    out = Path(sys.argv[1])
    for seed in range(2, 8):  # each pass adds a survey's worth of parts, then rebuilds
        # another first year each pass: new deployments, so the store only ever grows
        build_demo_survey(out, DemoOptions(n_stations=6, n_years=1, seed=seed,
                                           first_year=2000 + seed))
        store.finalize(out, BurstOptions())
    """
)


def test_queries_during_writes_never_fail_nor_go_backwards(tmp_path: Path) -> None:
    out = tmp_path / "store"
    build_demo_survey(out, DemoOptions(n_stations=6, n_years=1, seed=1))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out)])
    seen: list[int] = []
    errors: list[str] = []
    deadline = time.monotonic() + 240
    try:
        while writer.poll() is None and time.monotonic() < deadline:
            try:
                con = open_store(out)
                (n,) = con.execute("SELECT count(*) FROM detections").fetchall()[0]
                # A torn Parquet file fails to read: the footer is written last.
                duckdb.sql(
                    f"SELECT count(*) FROM read_parquet('{out}/parquet/*.parquet', "
                    "union_by_name = true)"
                ).fetchall()
                con.close()
                seen.append(n)
            except (duckdb.Error, OSError) as exc:  # pragma: no cover - the failure we guard
                errors.append(repr(exc))
            time.sleep(0.02)
    finally:
        writer.wait(timeout=240)
    assert writer.returncode == 0
    assert errors == []
    assert len(seen) > 20 and len(set(seen)) > 2  # we really read while it wrote
    assert seen == sorted(seen)  # snapshots only ever grow
