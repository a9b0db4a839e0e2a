"""`uncia localize`: box, heat map and crop for every frame of a store above the leopard threshold.

Reads DIR/parquet/detections.parquet and runs.parquet, explains each frame with the backbone and
classifier that scored it (or `target_class`), and writes DIR/localizations/heatmaps/*.png,
DIR/localizations/crops/*.jpg and DIR/parquet/localizations.parquet (LOCALIZATIONS), each
atomically. Re-running skips frames already localized with the same method and target.
`--method megadetector` runs no model: it crops each frame's best imported MegaDetector animal
box (`uncia import megadetector`, the detector_boxes table) the way the other methods crop
theirs, and writes a failure row for a frame without a usable box.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import ImageOps

from pipeline.errors import ConfigError, StoreError
from pipeline.interop.megadetector import (
    ANIMAL_BOX_TARGET,
    DetectorBox,
    detector_boxes_for_localization,
)
from pipeline.runs.spark_engine import spark_session
from pipeline.schema import LOCALIZATIONS, LocalizeMethod, conform
from pipeline.stages.decode import DecodedFrame, decode_frame, open_image, read_regular_file
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.stages.imagenet import SNOW_LEOPARD_CLASS
from pipeline.stages.localize import (
    Explanation,
    GradCamOptions,
    ImageNetTarget,
    LimeOptions,
    Target,
    gradcam_explain,
    lime_explain,
    score_function,
)
from pipeline.store.store import (
    LOCALIZATIONS_DIR,
    StorePaths,
    atomic_write_bytes,
    atomic_write_parquet,
    first_row,
    new_run_id,
    writer_lock,
)
from pipeline.training.head import HeadTarget, load_model

CROP_MAX_SIDE = 640
HEATMAP_WIDTH = 480
PIXEL_EPSILON = 1e-6
CROP_PADDING = 0.05  # of the box's size, each side: a little context helps a person judge it


@dataclass(frozen=True)
class LocalizeOptions:
    """What `uncia localize` does. `threshold` None: the latest run's leopard threshold;
    `target_class` None: the class the frame's classifier scores (ImageNet 289 zero-shot, or a
    trained head's positive classes); `box_fraction` None: the method's default; `input_size`
    None: 320 px for Grad-CAM (a 10x10 map, not 7x7), the backbone's input size for LIME."""

    data_dir: Path
    method: str = LocalizeMethod.LIME.value
    threshold: float | None = None
    target_class: tuple[int, ...] | None = None
    samples: int = LimeOptions().samples
    box_fraction: float | None = None
    input_size: int | None = None
    device: str = "auto"
    limit: int | None = None
    engine: str = "local"
    spark_master: str = "local[2]"

    def __post_init__(self) -> None:
        if self.engine not in ("local", "spark"):
            raise ConfigError(f"engine must be local or spark, got {self.engine!r}")
        if self.method not in {m.value for m in LocalizeMethod}:
            raise ConfigError(
                f"unknown method {self.method!r}: choose lime, gradcam or megadetector"
            )
        if self.method == LocalizeMethod.MEGADETECTOR:
            given = [
                flag
                for flag, value in (
                    ("--target-class", self.target_class),
                    ("--box-fraction", self.box_fraction),
                    ("--input-size", self.input_size),
                )
                if value is not None
            ]
            if self.engine != "local":
                given.append("--engine spark")
            if given:
                raise ConfigError(
                    f"{', '.join(given)}: not for --method megadetector, which takes the "
                    "imported detector's boxes as they are (no model runs)"
                )
        if self.input_size is not None and not 64 <= self.input_size <= 1024:
            raise ConfigError(f"input size must be 64..1024 pixels, got {self.input_size}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")


def localizations_path(data_dir: Path) -> Path:
    return StorePaths(Path(data_dir)).table("localizations")


def read_localizations(data_dir: Path) -> pa.Table:
    """The localizations table of a store (empty when `uncia localize` never ran there)."""
    path = localizations_path(data_dir)
    return pq.read_table(path) if path.exists() else LOCALIZATIONS.empty_table()


def frames_to_localize(data_dir: Path, threshold: float | None) -> tuple[pa.Table, float]:
    """Detections at or above the threshold (latest score per frame) and the threshold used.

    Raises StoreError when DIR holds no detections table."""
    paths = StorePaths(Path(data_dir))
    detections = paths.table("detections")
    if not detections.exists():
        raise StoreError(f"{data_dir} holds no detections (run `uncia run` first)")
    con = duckdb.connect()
    if threshold is None:
        runs = paths.table("runs")
        row = (
            first_row(
                con,
                "SELECT leopard_threshold FROM read_parquet(?) ORDER BY started_at DESC LIMIT 1",
                [str(runs)],
            )
            if runs.exists()
            else None
        )
        threshold = float(row[0]) if row else 0.5
    table = con.sql(
        """
        SELECT d.image_id, d.run_id, d.file_path, d.score, d.backbone, d.model_name,
               r.options_json
        FROM read_parquet(?) d
        LEFT JOIN read_parquet(?) r USING (run_id)
        WHERE d.score >= ?
        QUALIFY row_number() OVER (PARTITION BY d.image_id ORDER BY d.run_id DESC) = 1
        ORDER BY d.image_id
        """,
        params=[str(detections), str(paths.table("runs")), threshold],
    ).to_arrow_table()
    return table, threshold


def _model_for(
    backbone_name: str, model_name: str, options_json: str | None, options: LocalizeOptions
) -> tuple[Backbone, Target]:
    run_options: dict[str, Any] = json.loads(options_json) if options_json else {}
    backbone = load_backbone(backbone_name, run_options.get("weights"), options.device)
    if options.target_class is not None:
        return backbone, ImageNetTarget(backbone, options.target_class)
    if model_name.startswith("zeroshot") or not run_options.get("model_dir"):
        return backbone, ImageNetTarget(backbone, SNOW_LEOPARD_CLASS)
    return backbone, HeadTarget(load_model(run_options["model_dir"]))


def _save_pictures(
    data_dir: Path,
    stem: str,
    file_path: str,
    pixels: np.ndarray,
    explanation: Explanation,
) -> tuple[str, str]:
    """Write the heat-map PNG and the crop JPEG named `stem`; return their paths relative to DIR.

    `stem` is `<image_id>-<run_id>`: a later run with another method or target writes pictures
    of its own box and leaves the earlier row's pictures as they were."""
    heat_rel = Path(LOCALIZATIONS_DIR) / "heatmaps" / f"{stem}.png"
    crop_rel, (width, height) = save_crop(data_dir, stem, file_path, explanation.box)
    x, y, w, h = explanation.box
    out_w = HEATMAP_WIDTH
    out_h = max(1, round(HEATMAP_WIDTH * height / width))
    base = cv2.resize(pixels, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.resize(explanation.heatmap, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    blended = (0.55 * base + 0.45 * colour).astype(np.uint8)
    cv2.rectangle(
        blended,
        (round(x * out_w), round(y * out_h)),
        (round((x + w) * out_w) - 1, round((y + h) * out_h) - 1),
        (255, 255, 255),
        2,
    )
    ok, png = cv2.imencode(".png", np.ascontiguousarray(blended[..., ::-1]))
    if not ok:
        raise StoreError(f"cannot encode the heat map {stem}")
    atomic_write_bytes(png.tobytes(), data_dir / heat_rel)
    return str(heat_rel), crop_rel


def crop_pixel_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[int, int, int, int]:
    """The pixels (left, top, right, bottom) a crop of `box` takes from a `width` x `height`
    upright frame: the box plus CROP_PADDING of its size each side, inside the frame."""
    x, y, w, h = box
    pad_x, pad_y = w * CROP_PADDING, h * CROP_PADDING
    left, top = max(0.0, x - pad_x) * width, max(0.0, y - pad_y) * height
    right, bottom = min(1.0, x + w + pad_x) * width, min(1.0, y + h + pad_y) * height
    # Edges a rounding error short of a pixel (19.999999 for 20) are that pixel.
    left, top = int(left + PIXEL_EPSILON), int(top + PIXEL_EPSILON)
    return left, top, max(left + 1, round(right)), max(top + 1, round(bottom))


def _boxed(
    row: dict[str, Any],
    target_score: float,
    box: tuple[float, float, float, float],
    crop_path: str,
    started: float,
    heatmap_path: str | None = None,
) -> dict[str, Any]:
    """A LOCALIZATIONS row of a frame that got its box: `row`'s keys plus the box and files."""
    x, y, w, h = box
    return {
        **row,
        "target_score": target_score,
        "box_x": x,
        "box_y": y,
        "box_width": w,
        "box_height": h,
        "heatmap_path": heatmap_path,
        "crop_path": crop_path,
        "seconds": time.perf_counter() - started,
    }


def save_crop(
    data_dir: Path, stem: str, file_path: str, box: tuple[float, float, float, float]
) -> tuple[str, tuple[int, int]]:
    """Write the crop JPEG of `box` (crop_pixel_box of the full-resolution upright frame, at
    most CROP_MAX_SIDE px) named `stem`; return its path relative to DIR and the frame's size.

    The one crop convention of every method, so `uncia identify` treats their crops alike."""
    crop_rel = Path(LOCALIZATIONS_DIR) / "crops" / f"{stem}.jpg"
    with open_image(read_regular_file(file_path)) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    crop = upright.crop(crop_pixel_box(box, *upright.size))
    crop.thumbnail((CROP_MAX_SIDE, CROP_MAX_SIDE))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=90)
    atomic_write_bytes(buffer.getvalue(), data_dir / crop_rel)
    return str(crop_rel), upright.size


def run_localize(options: LocalizeOptions) -> dict[str, Any]:
    """Localize the store's frames above the threshold; return a summary (counts, threshold).

    A frame that cannot be decoded gets a row with `failure`; the run goes on. Holds the
    store's writer lock (StoreError while another command writes): it rewrites
    `localizations.parquet` from what it read at its start.
    """
    with writer_lock(Path(options.data_dir)):
        return _run_localize_locked(options)


def _run_localize_locked(options: LocalizeOptions) -> dict[str, Any]:
    data_dir = Path(options.data_dir)
    frames, threshold = frames_to_localize(data_dir, options.threshold)
    existing = read_localizations(data_dir)
    run_id = new_run_id()
    rows: list[dict[str, Any]] = []
    done = 0
    skipped = 0
    failed = 0
    groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    if options.method == LocalizeMethod.MEGADETECTOR:  # no model: the imported boxes
        rows, done, failed, skipped = _localize_from_detector(
            data_dir, frames, existing, run_id, options
        )
    else:
        for frame in frames.to_pylist():
            key = (frame["backbone"], frame["model_name"], frame["options_json"])
            groups.setdefault(key, []).append(frame)
    for (backbone_name, model_name, options_json), members in groups.items():
        backbone, target = _model_for(backbone_name, model_name, options_json, options)
        already = {
            r["image_id"]
            for r in existing.to_pylist()
            if r["method"] == options.method and r["target"] == target.name and not r["failure"]
        }
        todo = [m for m in members if m["image_id"] not in already]
        skipped += len(members) - len(todo)
        if options.limit is not None:
            todo = todo[: max(0, options.limit - done)]
        explain = _explain_on_spark if options.engine == "spark" else _explain_locally
        for frame, decoded, explanation, start in explain(todo, backbone, target, options):
            row: dict[str, Any] = {
                "image_id": frame["image_id"],
                "run_id": run_id,
                "method": options.method,
                "target": target.name,
                "score": frame["score"],
            }
            if decoded.pixels is None or explanation is None:
                rows.append({**row, "failure": decoded.failure})
                failed += 1
                continue
            try:
                heat_rel, crop_rel = _save_pictures(
                    data_dir,
                    f"{frame['image_id']}-{run_id}",
                    frame["file_path"],
                    decoded.pixels,
                    explanation,
                )
            except OSError as exc:  # the file vanished or broke since `uncia run`
                rows.append({**row, "failure": f"cannot crop: {exc}"})
                failed += 1
                continue
            rows.append(
                _boxed(row, explanation.score, explanation.box, crop_rel, start, heat_rel)
            )
            done += 1
    if rows:
        new = pa.Table.from_pylist(rows, schema=LOCALIZATIONS)
        keep = {(r["image_id"], r["method"], r["target"]) for r in rows}
        old = [
            r for r in existing.to_pylist() if (r["image_id"], r["method"], r["target"]) not in keep
        ]
        merged = pa.concat_tables([pa.Table.from_pylist(old, schema=LOCALIZATIONS), new])
        atomic_write_parquet(conform(merged, LOCALIZATIONS), localizations_path(data_dir))
    return {
        "threshold": threshold,
        "frames_above_threshold": frames.num_rows,
        "localized": done,
        "failed": failed,
        "skipped_already_done": skipped,
        "failures": dict(Counter(r["failure"] for r in rows if r.get("failure")).most_common()),
        "run_id": run_id,
    }


def _localize_from_detector(
    data_dir: Path, frames: pa.Table, existing: pa.Table, run_id: str, options: LocalizeOptions
) -> tuple[list[dict[str, Any]], int, int, int]:
    """`--method megadetector`: each frame's best imported animal box becomes its
    localization (crop, no heat map); a frame without one gets a failure row saying why.
    Returns the rows and the counts localized, failed, skipped."""
    if not StorePaths(data_dir).table("detector_boxes").exists():
        raise StoreError(
            f"{data_dir} holds no MegaDetector boxes (run `uncia import megadetector` first)"
        )
    boxes = detector_boxes_for_localization(data_dir)
    already = {
        r["image_id"]
        for r in existing.to_pylist()
        if r["method"] == options.method and r["target"] == ANIMAL_BOX_TARGET and not r["failure"]
    }
    todo = [f for f in frames.to_pylist() if f["image_id"] not in already]
    skipped = frames.num_rows - len(todo)
    if options.limit is not None:
        todo = todo[: max(0, options.limit)]
    rows: list[dict[str, Any]] = []
    done = failed = 0
    for frame in todo:
        start = time.perf_counter()
        found = boxes.get(frame["image_id"]) or DetectorBox(
            None, None, "no imported MegaDetector result lists this frame"
        )
        row: dict[str, Any] = {
            "image_id": frame["image_id"],
            "run_id": run_id,
            "method": options.method,
            "target": ANIMAL_BOX_TARGET,
            "score": frame["score"],
        }
        if found.box is None:
            rows.append({**row, "failure": found.failure})
            failed += 1
            continue
        try:
            crop_rel, _ = save_crop(
                data_dir, f"{frame['image_id']}-{run_id}", frame["file_path"], found.box
            )
        except (OSError, ValueError) as exc:  # unreadable now, or not a picture
            rows.append({**row, "failure": f"cannot crop: {exc}"})
            failed += 1
            continue
        rows.append(_boxed(row, found.conf, found.box, crop_rel, start))
        done += 1
    return rows, done, failed, skipped


_Explained = tuple[dict[str, Any], DecodedFrame, Explanation | None, float]


def _explain_locally(
    frames: list[dict[str, Any]], backbone: Backbone, target: Target, options: LocalizeOptions
) -> Iterator[_Explained]:
    """The local engine: decode and explain each frame in this process."""
    for frame in frames:
        start = time.perf_counter()
        decoded = decode_frame(frame["file_path"], _input_size(options, backbone))
        if decoded.pixels is None:
            yield frame, decoded, None, start
            continue
        yield frame, decoded, _explain(decoded.pixels, backbone, target, options), start


def _explain_on_spark(
    frames: list[dict[str, Any]], backbone: Backbone, target: Target, options: LocalizeOptions
) -> Iterator[_Explained]:
    """The Spark engine: workers run `localize_partition` (the same `_explain`); the driver
    decodes each frame once more only to draw its heat map and crop."""
    # pyspark is the optional [spark] extra: imported only when the Spark engine runs.
    from pyspark.sql.pandas.types import from_arrow_schema

    if not isinstance(target, ImageNetTarget):
        raise ConfigError(
            "--engine spark localizes ImageNet classes only: give --target-class, or use the "
            "local engine for a trained head"
        )
    if not frames:
        return
    spark = spark_session(options.spark_master, batch_size=8)
    cfg = LocalizeWorkerConfig(
        backbone=backbone.name,
        weights=backbone.weights_source if backbone.name == "resnet50" else None,
        device=options.device,
        method=options.method,
        target_classes=target.classes,
        samples=options.samples,
        input_size=options.input_size,
        box_fraction=options.box_fraction,
    )
    todo = pa.Table.from_pylist(
        [{"image_id": f["image_id"], "file_path": f["file_path"]} for f in frames]
    )
    partitions = max(1, min(len(frames), spark.sparkContext.defaultParallelism))
    result = (
        spark.createDataFrame(todo)
        .repartition(partitions)
        .mapInArrow(partial(localize_partition, cfg=cfg), from_arrow_schema(LOCALIZED_BOXES))
        .toArrow()
    )
    by_id = {r["image_id"]: r for r in result.to_pylist()}
    for frame in frames:
        start = time.perf_counter()
        decoded = decode_frame(frame["file_path"], _input_size(options, backbone))
        found = by_id.get(frame["image_id"])
        if decoded.pixels is None or found is None or found["failure"]:
            failure = (found or {}).get("failure") or decoded.failure or "not localized"
            yield frame, DecodedFrame(None, None, None, None, None, None, failure), None, start
            continue
        side = SHIPPED_HEATMAP_SIDE
        heatmap = np.asarray(found["heatmap"], dtype=np.float32).reshape(side, side)
        box = (found["box_x"], found["box_y"], found["box_width"], found["box_height"])
        yield (
            frame,
            decoded,
            Explanation(options.method, heatmap, box, found["target_score"]),
            start,
        )


GRADCAM_INPUT_SIZE = 320


def _input_size(options: LocalizeOptions, backbone: Backbone) -> int:
    """Grad-CAM's map is the input side / 32: a larger input gives a finer map and box."""
    if options.input_size is not None:
        return options.input_size
    return GRADCAM_INPUT_SIZE if options.method == LocalizeMethod.GRADCAM else backbone.input_size


def _explain(
    pixels: np.ndarray, backbone: Backbone, target: Target, options: LocalizeOptions
) -> Explanation:
    if options.method == LocalizeMethod.GRADCAM:
        gradcam = (
            GradCamOptions()
            if options.box_fraction is None
            else GradCamOptions(box_fraction=options.box_fraction)
        )
        return gradcam_explain(pixels[None], backbone, target, gradcam)[0]
    lime = LimeOptions(samples=options.samples)
    if options.box_fraction is not None:
        lime = LimeOptions(samples=options.samples, box_fraction=options.box_fraction)
    return lime_explain(pixels, score_function(backbone, target), lime)


@dataclass(frozen=True)
class LocalizeWorkerConfig:
    """What an engine's worker needs to localize frames; small and picklable."""

    backbone: str
    weights: str | None
    device: str
    method: str
    target_classes: tuple[int, ...]
    samples: int = LimeOptions().samples
    input_size: int | None = None
    box_fraction: float | None = None


LOCALIZED_BOXES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("target_score", pa.float32()),
        pa.field("box_x", pa.float32()),
        pa.field("box_y", pa.float32()),
        pa.field("box_width", pa.float32()),
        pa.field("box_height", pa.float32()),
        pa.field("heatmap", pa.list_(pa.float32())),  # flattened, SHIPPED_HEATMAP_SIDE square
        pa.field("failure", pa.string()),
    ]
)
# Heat maps travel back from workers at this side: enough for the picture, a few KB a frame.
SHIPPED_HEATMAP_SIDE = 64

_WORKER_MODELS: dict[tuple[str, str | None, str], Backbone] = {}


def localize_partition(
    batches: Iterable[pa.RecordBatch], cfg: LocalizeWorkerConfig
) -> Iterator[pa.RecordBatch]:
    """Engine map function (Spark `mapInArrow`): batches of (image_id, file_path) in, batches of
    LOCALIZED_BOXES out. The model is loaded once per worker process; pictures are not written
    here (the driver or a later pass makes crops from the boxes)."""
    key = (cfg.backbone, cfg.weights, cfg.device)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS[key] = load_backbone(cfg.backbone, cfg.weights, cfg.device)
    backbone = _WORKER_MODELS[key]
    target = ImageNetTarget(backbone, cfg.target_classes)
    options = LocalizeOptions(
        data_dir=Path("."),
        method=cfg.method,
        samples=cfg.samples,
        input_size=cfg.input_size,
        box_fraction=cfg.box_fraction,
    )
    for batch in batches:
        rows = []
        for frame in batch.to_pylist():
            decoded = decode_frame(frame["file_path"], _input_size(options, backbone))
            if decoded.pixels is None:
                rows.append({"image_id": frame["image_id"], "failure": decoded.failure})
                continue
            explanation = _explain(decoded.pixels, backbone, target, options)
            x, y, w, h = explanation.box
            rows.append(
                {
                    "image_id": frame["image_id"],
                    "target_score": explanation.score,
                    "box_x": x,
                    "box_y": y,
                    "box_width": w,
                    "box_height": h,
                    "heatmap": cv2.resize(
                        explanation.heatmap.astype(np.float32),
                        (SHIPPED_HEATMAP_SIDE, SHIPPED_HEATMAP_SIDE),
                        interpolation=cv2.INTER_AREA,
                    ).ravel(),
                }
            )
        yield from pa.Table.from_pylist(rows, schema=LOCALIZED_BOXES).to_batches()
