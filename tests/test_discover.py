"""Reading the deployments table and walking the images root."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.stages.discover import discover_frames, image_id_for, read_deployments
from tests.helpers import deployment, jpeg_bytes, write_deployments


def test_deployments_table_gets_h3_cells_and_naive_times(tmp_path: Path) -> None:
    csv = write_deployments(
        tmp_path / "d.csv",
        [deployment("A", deploymentStart="2024-01-01T08:00:00+08:00", clockOffsetSeconds=-120)],
    )
    table = read_deployments(csv)
    row = table.to_pylist()[0]
    assert row["deploymentStart"] == datetime(2024, 1, 1, 8, 0)  # wall clock kept
    assert row["clockOffsetSeconds"] == -120
    assert row["h3_r5"].startswith("85") and row["h3_r9"].startswith("89")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"latitude": 143.0}, "out of range"),
        ({"latitude": 100.7, "longitude": 43.1}, "look swapped"),
        ({"deploymentEnd": "2023-01-01"}, "before deploymentStart"),
        ({"deploymentStart": "yesterday"}, "not an ISO 8601"),
        ({"latitude": "north"}, "not a number"),
    ],
)
def test_bad_deployment_rows_name_line_and_problem(
    tmp_path: Path, change: dict, message: str
) -> None:
    csv = write_deployments(tmp_path / "d.csv", [deployment("A"), deployment("B", **change)])
    with pytest.raises(InputError, match=message) as info:
        read_deployments(csv)
    assert "line 3" in str(info.value)


def test_duplicate_and_missing_columns_are_refused(tmp_path: Path) -> None:
    csv = write_deployments(tmp_path / "d.csv", [deployment("A"), deployment("A")])
    with pytest.raises(InputError, match="appears twice"):
        read_deployments(csv)
    (tmp_path / "e.csv").write_text("deploymentID,latitude\nA,1\n")
    with pytest.raises(InputError, match="missing column"):
        read_deployments(tmp_path / "e.csv")


def test_discovery_lists_nested_frames_and_unknown_folders(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "A" / "DCIM" / "100 späce").mkdir(parents=True)
    (root / "A" / "DCIM" / "100 späce" / "IMG 1.JPG").write_bytes(jpeg_bytes())
    (root / "A" / "b.png").write_bytes(b"not really")
    (root / "A" / "notes.txt").write_text("field notes")
    (root / "Z").mkdir()
    (root / "Z" / "x.jpg").write_bytes(jpeg_bytes())
    os.symlink(root / "A", root / "A" / "loop")  # a symlink loop must not hang the walk

    found = discover_frames(root, {"A"})
    rows = found.frames.to_pylist()
    assert [(r["deploymentID"], r["relative_path"]) for r in rows] == [
        ("A", "DCIM/100 späce/IMG 1.JPG"),
        ("A", "b.png"),
        ("Z", "x.jpg"),
    ]
    assert [r["known_deployment"] for r in rows] == [True, True, False]
    assert rows[0]["image_id"] == image_id_for("A", "DCIM/100 späce/IMG 1.JPG")
    assert any("'Z' is not in the deployments table" in w for w in found.warnings)


def test_missing_root_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        discover_frames(tmp_path / "nope", set())
