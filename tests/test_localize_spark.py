"""`uncia localize --engine spark` gives the same boxes as the local engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.runs.localize_run import LocalizeOptions, localizations_path, run_localize
from tests.helpers import deployment, uncia, write_deployments
from tests.localize_fixtures import coat_jpeg

pytest.importorskip("pyspark", reason="the spark extra is not installed")
pytestmark = [
    pytest.mark.spark,
    pytest.mark.model,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17"),
]


def test_spark_localize_matches_local(tmp_path: Path) -> None:
    folder = tmp_path / "images" / "CAM-A"
    folder.mkdir(parents=True)
    for i, seed in enumerate([21, 22, 23]):
        (folder / f"IMG_{i:04d}.JPG").write_bytes(coat_jpeg(i, seed))
    csv = write_deployments(tmp_path / "deployments.csv", [deployment("CAM-A")])
    out = tmp_path / "out"
    uncia("run", tmp_path / "images", "--deployments", csv, "--out", out,
          "--backbone", "efficientnet_lite0", "--no-progress")  # fmt: skip
    local_dir = tmp_path / "local"
    shutil.copytree(out, local_dir)

    common = {"method": "gradcam", "threshold": 0.0, "target_class": (288, 289, 290)}
    local = run_localize(LocalizeOptions(data_dir=local_dir, **common))
    spark = run_localize(LocalizeOptions(data_dir=out, engine="spark", **common))
    assert local["localized"] == spark["localized"] == 3 and spark["failed"] == 0

    def boxes(d: Path) -> list[tuple]:
        rows = pq.read_table(localizations_path(d)).to_pylist()
        return sorted(
            (r["image_id"], r["box_x"], r["box_y"], r["box_width"], r["box_height"]) for r in rows
        )

    for a, b in zip(boxes(local_dir), boxes(out), strict=True):
        assert a[0] == b[0]
        assert a[1:] == pytest.approx(b[1:], abs=1e-3)
    for r in pq.read_table(localizations_path(out)).to_pylist():
        assert (out / r["heatmap_path"]).exists() and (out / r["crop_path"]).exists()
