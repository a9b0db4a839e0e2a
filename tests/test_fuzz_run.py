"""Property: `uncia run` over any deployments-table cells and run options ends in a result or a
one-line error, never a traceback (issue #15).

Hypothesis writes hostile tables (nan, inf, 1e30, year 9999, '43,2', ../ ids, decomposed
Unicode, control characters, random text) and option values (nan gaps, odd grids, extreme
sizes), and runs the real command line in this process on a two-frame survey.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cli.main import main
from tests.helpers import DEPLOYMENT_COLUMNS, jpeg_bytes

pytestmark = pytest.mark.model

HOSTILE_CELLS = [
    "", " ", "nan", "NaN", "inf", "-inf", "1e30", "-1e11", "1.5", "43,2", "60", "-120",
    "9999-12-31", "0001-01-01", "2024-01-01", "2024-12-31T23:59:59+08:00", "0000-00-00",
    "../A", "A/B", ".", "..", "A\x00", "A\tB", "Caf\u00e9", unicodedata.normalize("NFD", "Café"),
    "=1+2", "\ufeffA", "A", "43.1", "100.7", "-90", "180.0001",
]  # fmt: skip
CELL = st.one_of(st.sampled_from(HOSTILE_CELLS), st.text(max_size=8))
GOOD_ROW = {
    "deploymentID": "A",
    "locationID": "a",
    "locationName": "Station A",
    "latitude": "43.1",
    "longitude": "100.7",
    "deploymentStart": "2024-01-01",
    "deploymentEnd": "9999-12-31",
    "cameraID": "cam",
    "clockOffsetSeconds": "60",
}
FLOAT_TEXT = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e30", "0.5", "60", "1e-300"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "--burst-gap": FLOAT_TEXT,
        "--event-gap": FLOAT_TEXT,
        "--threshold": FLOAT_TEXT,
        "--checkpoint-seconds": FLOAT_TEXT,
        "--tile-overlap": FLOAT_TEXT,
        "--views": st.sampled_from(["tiles+motion", "tiles", "whole"]),
        "--tile-grid": st.one_of(
            st.sampled_from(["4x3", "1x1", "13x1", "0x2", "2x2,3x2"]), st.text(max_size=6)
        ),  # fmt: skip
        "--working-side": st.integers(-10, 10_000).map(str),
        "--motion-regions": st.integers(-2, 10).map(str),
        "--input-size": st.sampled_from(["16", "64", "224", "5000"]),
        "--aggregation": st.sampled_from(["max", "mean", "noisy_or"]),
    },
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "images"
    (root / "A").mkdir(parents=True)
    (root / "A" / "1.jpg").write_bytes(jpeg_bytes(160, 120, when=datetime(2024, 5, 1, 6)))
    (root / "A" / "2.jpg").write_bytes(jpeg_bytes(160, 120, when=datetime(9999, 12, 31, 23, 59)))
    return root


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cells=st.dictionaries(st.sampled_from(DEPLOYMENT_COLUMNS), CELL, max_size=4),
    second_row=st.booleans(),
    options=OPTIONS,
)
# The red team's crashers, always tried: a nan offset, a nan burst gap.
@example(cells={"clockOffsetSeconds": "nan"}, second_row=False, options={})
@example(cells={}, second_row=True, options={"--burst-gap": "nan"})
def test_any_table_and_options_end_in_a_result_or_one_line(
    images: Path, cells: dict[str, str], second_row: bool, options: dict[str, str]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="uncia-fuzz-"))
    try:
        table = work / "deployments.csv"
        rows = [{**GOOD_ROW, **cells}] + ([GOOD_ROW | {"deploymentID": "B"}] if second_row else [])
        with table.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=DEPLOYMENT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        argv = ["run", str(images), "--deployments", str(table), "--out", str(work / "out"),
                "--backbone", "efficientnet_lite0", "--runtime", "torch",
                "--no-progress"]  # fmt: skip
        for name, value in options.items():
            argv += [f"{name}={value}"]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse refusing a value: usage and one error line
                code = exc.code
        err = stderr.getvalue()
        assert "Traceback" not in err
        # Every option given is one `uncia run` has: a usage error about an unknown one would
        # pass for "one line" while testing nothing (as on a version without those options).
        assert "unrecognized arguments" not in err
        if code == 0:
            assert "frames found" in stdout.getvalue()
        else:
            assert code == 2, err
            last = err.strip().splitlines()[-1]
            assert last.startswith(("uncia: error:", "usage: uncia run")) or ": error: " in last
            assert len([ln for ln in err.splitlines() if "error:" in ln]) == 1, err
    finally:
        shutil.rmtree(work, ignore_errors=True)
