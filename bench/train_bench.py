"""`python -m bench.train_bench`: how long `uncia train` takes on 50,000 frames whose embeddings are
already cached, run twice, and what the cache saves on frames that must be embedded first.

(a) 50,000 small generated JPEG files in 200 deployments, their 1280-d "embeddings" generated
with structure (a leopard direction, a per-camera offset, noise; about 5% leopards; mirror
images included) and written into a real embedding cache under the files' content sha256: the
full `train_model` (hashing, cache read, bursts, grouped splits, 5-fold calibration, final fit,
model folder) runs twice and must decode nothing. (b) 256 generated 640×480 JPEG frames, really
embedded by efficientnet_lite0: the first training embeds them, the second reads the cache.
Results: printed, and written to bench/results/train.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "train"
RESULTS = ROOT / "bench" / "results" / "train.json"
DIM = 1280
T0 = datetime(2024, 1, 1, 0, 0, 0)


def _tiny_jpeg(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=50
    )
    return buffer.getvalue()


def make_frames(
    root: Path, n: int, deployments: int, seed: int
) -> tuple[Path, list[dict[str, Any]]]:
    """n small distinct JPEGs under root/<dep>/, a labels.csv, and per-frame metadata."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.05
    rows: list[dict[str, Any]] = []
    for i in range(n):
        dep = f"DEP-{i % deployments:03d}"
        rows.append(
            {
                "file": f"{dep}/IMG_{i:06d}.JPG",
                "label": "snow_leopard" if positive[i] else "empty",
                "deployment": dep,
                # bursts of three frames, 2 s apart, an hour between bursts
                "time": T0
                + timedelta(hours=i // (3 * deployments), seconds=2 * ((i // deployments) % 3)),
            }
        )
    marker = root / f".complete-{n}-{deployments}-{seed}"
    if not marker.exists():
        for dep in {r["deployment"] for r in rows}:
            (root / dep).mkdir(parents=True, exist_ok=True)
        for row in rows:
            (root / row["file"]).write_bytes(_tiny_jpeg(rng))
        marker.touch()
    labels = root.parent / f"labels-{n}.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label", "deployment"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("file", "label", "deployment")} for r in rows)
    return labels, rows


def fill_cache(cache_dir: Path, backbone: Any, root: Path, rows: list[dict], seed: int) -> None:
    """Write generated embeddings for every file (and its mirror image) into a real cache."""
    from pipeline.schema import EMBEDDINGS
    from pipeline.store.embedding_cache import EmbeddingCache, sha256_of

    cache = EmbeddingCache(
        cache_dir, backbone.name, backbone.weights_sha256, backbone.input_size, backbone.precision
    )
    if cache.parts():
        return
    rng = np.random.default_rng(seed)
    leopard = rng.normal(0, 1, DIM).astype(np.float32)
    cameras = {r["deployment"] for r in rows}
    offset = {d: rng.normal(0, 0.6, DIM).astype(np.float32) for d in sorted(cameras)}
    n = len(rows)
    for start in range(0, n, 10_000):
        chunk = rows[start : start + 10_000]
        base = rng.normal(0, 1, (len(chunk), DIM)).astype(np.float32)
        base += np.stack([offset[r["deployment"]] for r in chunk])
        base += 0.12 * np.outer([r["label"] == "snow_leopard" for r in chunk], leopard)
        features = np.maximum(base + 1.0, 0.0)  # pooled ReLU features are non-negative
        mirrored = np.maximum(features + rng.normal(0, 0.2, features.shape), 0.0).astype(np.float32)
        shas = [sha256_of(str(root / r["file"])) for r in chunk]
        for flip, values in ((False, features), (True, mirrored)):
            flat = pa.array(values.reshape(-1))
            table = pa.table(
                {
                    "content_sha256": shas,
                    "flip": [flip] * len(chunk),
                    "backbone": [backbone.name] * len(chunk),
                    "weights_sha256": [backbone.weights_sha256] * len(chunk),
                    "input_size": pa.array([backbone.input_size] * len(chunk), pa.int32()),
                    "features": pa.FixedSizeListArray.from_arrays(flat, DIM).cast(
                        pa.list_(pa.float32())
                    ),
                    "failure": pa.nulls(len(chunk), pa.string()),
                    "width": pa.array([16] * len(chunk), pa.int32()),
                    "height": pa.array([16] * len(chunk), pa.int32()),
                    "exif_datetime": [r["time"].strftime("%Y:%m:%d %H:%M:%S") for r in chunk],
                    "exif_offset": pa.nulls(len(chunk), pa.string()),
                }
            )
            cache.add(table.cast(EMBEDDINGS))


def _real_frames(root: Path, n: int) -> Path:
    from tests.train_fixtures import plain_jpeg, spotted_jpeg

    rows = []
    for i in range(n):
        dep = f"CAM-{i % 8}"
        (root / dep).mkdir(parents=True, exist_ok=True)
        leopard = i % 10 == 0
        name = f"{dep}/IMG_{i:04d}.JPG"
        maker = spotted_jpeg if leopard else plain_jpeg
        path = root / name
        if not path.exists():
            path.write_bytes(maker(i, T0 + timedelta(minutes=i), size=640))
        rows.append({"file": name, "label": "snow_leopard" if leopard else "empty"})
    labels = root.parent / f"labels-real-{n}.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    import shutil

    import torch

    from pipeline.stages.embed import load_backbone
    from pipeline.training.train import TrainOptions, train_model

    parser = argparse.ArgumentParser(prog="python -m bench.train_bench", description=__doc__)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--real-frames", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    backbone = load_backbone("efficientnet_lite0", device="cpu")
    log = io.StringIO()
    results: dict[str, Any] = {
        "machine": {
            "cpu_count": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "backbone": backbone.name,
        "precision": backbone.precision,
    }

    # (a) 50,000 frames, embeddings already cached.
    images = WORK / "frames"
    t0 = time.monotonic()
    labels, rows = make_frames(images, args.frames, args.deployments, args.seed)
    cache_dir = WORK / f"cache-{args.frames}"
    fill_cache(cache_dir, backbone, images, rows, args.seed)
    results["setup_seconds"] = round(time.monotonic() - t0, 1)
    runs = []
    for attempt in (1, 2):
        t0 = time.monotonic()
        summary = train_model(
            TrainOptions(
                images_root=images,
                labels=labels,
                out_dir=WORK / "model-cached",
                backbone=backbone.name,
                cache_dir=cache_dir,
                progress=False,
            ),
            log=log,
            backbone=backbone,
        )
        runs.append(
            {
                "run": attempt,
                "seconds": round(time.monotonic() - t0, 2),
                "frames": summary.frames,
                "cache_hits": summary.cache_hits,
                "decoded": summary.decoded,
                "test_frame_ap": summary.metrics["test"]["frame"]["average_precision"],
                "test_frame_recall": summary.metrics["test"]["frame"]["recall"],
            }
        )
        print(f"(a) cached embeddings, run {attempt}: {runs[-1]}", flush=True)
    results["cached_50k"] = runs

    # (b) Real frames: the first training embeds them (and their mirror images), the second
    # reads the cache.
    real_root = WORK / "real" / "images"
    real_labels = _real_frames(real_root, args.real_frames)
    real_cache = WORK / "real" / "cache"
    shutil.rmtree(real_cache, ignore_errors=True)
    real: list[dict[str, Any]] = []
    for run in ("cold", "warm"):
        t0 = time.monotonic()
        summary = train_model(
            TrainOptions(
                images_root=real_root,
                labels=real_labels,
                out_dir=WORK / "real" / "model",
                backbone=backbone.name,
                cache_dir=real_cache,
                progress=False,
            ),
            log=log,
            backbone=backbone,
        )
        real.append(
            {
                "run": run,
                "seconds": round(time.monotonic() - t0, 2),
                "frames": summary.frames,
                "cache_hits": summary.cache_hits,
                "decoded": summary.decoded,
            }
        )
        print(f"(b) {args.real_frames} generated 640x480 frames, {run}: {real[-1]}", flush=True)
    results["real_frames"] = real
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
