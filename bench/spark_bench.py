"""Local engine vs. Spark `local[2]` on the same frames, side by side in one run.

    python -m bench.spark_bench [--frames 600] [--backbone efficientnet_lite0]

Both engines run `pipeline.runs.runner.run_survey` on the same generated 1920×1080 JPEGs into fresh
output folders. Spark's session start and first model load per worker are measured apart
(a warm-up run on a few frames) from its processing throughput. Results go to
bench/results/spark.json.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.config import resolve_run_options
from pipeline.runs.runner import run_survey
from pipeline.store.store import atomic_write_text

WORK = Path(__file__).resolve().parent / "work" / "spark"
RESULTS = Path(__file__).resolve().parent / "results" / "spark.json"


def make_survey(n_frames: int, deployments: int = 4) -> tuple[Path, Path]:
    """Write `n_frames` textured 1920×1080 JPEGs with EXIF times (cached between runs)."""
    root = WORK / f"images-{n_frames}"
    csv = WORK / f"deployments-{n_frames}.csv"
    if csv.exists():
        return root, csv
    rng = np.random.default_rng(11)
    t0 = datetime(2024, 1, 15, 6, 0)
    for i in range(n_frames):
        dep = f"D{i % deployments}"
        folder = root / dep
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (68, 120, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((1920, 1080), Image.Resampling.BICUBIC)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = (t0 + timedelta(seconds=37 * i)).strftime("%Y:%m:%d %H:%M:%S")
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=88, exif=exif)
        (folder / f"{i:06d}.jpg").write_bytes(buf.getvalue())
    rows = ["deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd"]
    rows += [f"D{d},L{d},43.1{d},100.6{d},2024-01-01,2024-12-31" for d in range(deployments)]
    csv.write_text("\n".join(rows) + "\n")
    return root, csv


def run_engine(root: Path, csv: Path, out: Path, **options: Any) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    resolved = resolve_run_options(
        {
            "images_root": root,
            "deployments": csv,
            "out_dir": out,
            "progress": False,
            "checkpoint_seconds": 1e9,
            **options,
        },
        env={},
    )
    t0 = time.perf_counter()
    summary = run_survey(resolved, log=io.StringIO())
    return time.perf_counter() - t0, summary.frames_done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    # mapInArrow skips pandas; PySpark warns about pandas 3 regardless.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")

    root, csv = make_survey(args.frames)
    warm_root, warm_csv = make_survey(64)
    common = {"backbone": args.backbone, "batch_size": args.batch_size}

    t_local, n_local = run_engine(root, csv, WORK / "out-local", **common)
    # Spark: session start and one model load per Python worker, then the measured run.
    t_start, _ = run_engine(warm_root, warm_csv, WORK / "out-warm", engine="spark", **common)
    t_spark, n_spark = run_engine(root, csv, WORK / "out-spark", engine="spark", **common)

    local_fps, spark_fps = n_local / t_local, n_spark / t_spark
    overhead = local_fps / spark_fps - 1.0
    result = {
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "frames": args.frames,
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "local_frames_per_second": round(local_fps, 2),
        "spark_local2_frames_per_second": round(spark_fps, 2),
        "spark_overhead": round(overhead, 3),
        "spark_overhead_target": 0.30,
        "spark_warmup_seconds": round(t_start, 1),
        "spark_end_to_end_frames_per_second": round(n_spark / (t_spark + t_start), 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(result, indent=2) + "\n", RESULTS)
    print(
        f"local engine      {local_fps:7.2f} frames/s\n"
        f"spark local[2]    {spark_fps:7.2f} frames/s (warm workers)\n"
        f"spark overhead    {overhead:+.0%} (target <= +30%)\n"
        f"spark warm-up     {t_start:7.1f} s (session start + model load per worker)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
