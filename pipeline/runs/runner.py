"""Chain the stages over a survey: discover → decode → embed → classify → bursts → store.

Frames are decoded in a thread pool (Pillow releases the GIL) one batch ahead of the model, so
decoding overlaps inference; each classified batch is written as one atomic Parquet part, and
the tables are rebuilt at checkpoints and at the end. A killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from pipeline import __version__
from pipeline.config import RunOptions
from pipeline.errors import StoreError
from pipeline.interop.megadetector import DetectorViews, detector_views
from pipeline.runs.scoring import DETECTOR_COLUMN, classify_batch
from pipeline.runs.spark_engine import classify_on_spark
from pipeline.schema import FRAME_RESULTS, ImageStatus, RunKind, RunStatus, TimeFlag
from pipeline.stages.classify import Classifier, ZeroShotImageNet
from pipeline.stages.decode import DecodedFrame, decode_frame
from pipeline.stages.discover import discover_frames, read_deployments
from pipeline.stages.embed import Backbone, load_backbone
from pipeline.store import store
from pipeline.training.head import TrainedHead, load_model

PREFETCH_BATCHES = 2


@dataclass
class RunSummary:
    """What a run did; printed at its end and stored in the runs table."""

    run_id: str
    frames_found: int = 0
    frames_skipped: int = 0
    frames_done: int = 0
    frames_failed: int = 0
    frames_missing: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    time_flags: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def problems(self) -> int:
        """Count of things `--strict` refuses: failed frames, bad times, warnings."""
        bad_times = sum(n for flag, n in self.time_flags.items() if flag != TimeFlag.OK)
        return self.frames_failed + bad_times + len(self.warnings)

    def lines(self) -> list[str]:
        rate = self.frames_done / self.seconds if self.seconds else 0.0
        out = [
            f"run {self.run_id}: {self.frames_found} frames found, {self.frames_skipped} already "
            f"done, {self.frames_done} classified, {self.frames_failed} failed "
            f"({rate:.1f} frames/s)",
        ]
        out += [f"  failed: {n} × {reason}" for reason, n in self.failure_reasons.most_common()]
        out += [
            f"  capture time {flag}: {n} frame(s)"
            for flag, n in sorted(self.time_flags.items())
            if flag != TimeFlag.OK
        ]
        out += [f"  warning: {w}" for w in self.warnings]
        if self.table_rows:
            out.append(
                "  store: " + ", ".join(f"{k} {v}" for k, v in sorted(self.table_rows.items()))
            )
        return out


def _decode_ahead(
    frames: pa.Table, options: RunOptions, pool: ThreadPoolExecutor
) -> Iterator[tuple[pa.Table, list[DecodedFrame]]]:
    """Yield (batch rows, decoded frames), decoding up to PREFETCH_BATCHES batches ahead."""
    views = options.view_options()
    working_side = views.working_side if views.tiled else None
    pending: deque[tuple[pa.Table, list[Future[DecodedFrame]]]] = deque()
    for start in range(0, frames.num_rows, options.batch_size):
        batch = frames.slice(start, options.batch_size)
        futures = [
            pool.submit(decode_frame, p, options.input_size, working_side=working_side)
            for p in batch.column("file_path").to_pylist()
        ]
        pending.append((batch, futures))
        if len(pending) > PREFETCH_BATCHES:
            rows, futs = pending.popleft()
            yield rows, [f.result() for f in futs]
    while pending:
        rows, futs = pending.popleft()
        yield rows, [f.result() for f in futs]


def classify_locally(
    frames: pa.Table,
    deployments: dict[str, dict[str, Any]],
    options: RunOptions,
    backbone: Backbone,
    classifier: Classifier,
    run_id: str,
) -> Iterator[pa.Table]:
    """The local engine: yield FRAME_RESULTS parts, one per batch, decoding a batch ahead."""
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        for rows, decoded in _decode_ahead(frames, options, pool):
            yield classify_batch(
                rows,
                decoded,
                deployments,
                backbone,
                classifier,
                run_id,
                pad_to=options.batch_size,
                tta_flip=options.tta_flip,
                views=options.view_options(),
                burst_gap_seconds=options.burst_gap_seconds,
                infobar=options.infobar_preset(),
            )


def _run_record(
    options: RunOptions,
    summary: RunSummary,
    status: RunStatus,
    started: datetime,
    backbone: Backbone | None,
    classifier: Classifier | None,
) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "kind": RunKind.PIPELINE.value,
        "status": status.value,
        "started_at": started.isoformat(),
        "finished_at": None if status == RunStatus.RUNNING else datetime.now(UTC).isoformat(),
        "images_root": str(Path(options.images_root).absolute()),
        "model_name": classifier.name if classifier else None,
        "backbone": backbone.name if backbone else options.backbone,
        "weights_sha256": backbone.weights_sha256 if backbone else None,
        "leopard_threshold": options.threshold,
        "options_json": options.to_json(),
        "frames_done": summary.frames_done,
        "frames_failed": summary.frames_failed,
        "frames_skipped": summary.frames_skipped,
        "uncia_version": __version__,
    }


def run_survey(
    options: RunOptions,
    log: TextIO = sys.stderr,
    backbone: Backbone | None = None,
) -> RunSummary:
    """Classify every new frame of a survey and rebuild the store; return the summary.

    `backbone` may be given already loaded (to reuse one across runs); by default it is
    loaded from the options. One run at a time writes to an output folder.

    Raises InputError for a bad deployments table or images root, ModelError when the
    backbone cannot be loaded, and StoreError when another run is writing to the same folder;
    bad frames never raise, they become failure rows. Raises StoreError, too, when the
    folder holds the demo survey, or frames another backbone, model, views or threshold scored
    (unless `options.force`), or cannot be written (a file, read-only, a full disk).
    """
    with store.writer_lock(Path(options.out_dir)):
        return _run_survey_locked(options, log, backbone)


def _run_survey_locked(options: RunOptions, log: TextIO, backbone: Backbone | None) -> RunSummary:
    t0 = time.monotonic()
    started = datetime.now(UTC)
    out_dir = Path(options.out_dir)
    deployments = read_deployments(options.deployments)  # a bad row refuses the table
    discovery = discover_frames(
        options.images_root, set(deployments.column("deploymentID").to_pylist())
    )
    run_id = store.new_run_id(started)
    summary = RunSummary(run_id=run_id, frames_found=discovery.frames.num_rows)
    summary.warnings.extend(discovery.warnings)
    writers = store.writers(out_dir)
    if any(w["kind"] != RunKind.PIPELINE for w in writers):
        raise StoreError(
            f"{out_dir} holds the simulated demo survey; write a real survey to another --out"
        )

    previous = store.latest_frames(out_dir)
    # Whole-frame scoring decodes no working frame to cut the boxes' crops from.
    detector = detector_views(out_dir) if options.view_options().tiled else {}
    rescore = _detector_boxes_since_scored(discovery.frames, previous, detector, writers)
    frames = discovery.frames.filter(pc.or_(_changed_or_new(discovery.frames, previous), rescore))
    frames = _with_detector_boxes(frames, detector)
    summary.frames_skipped = discovery.frames.num_rows - frames.num_rows
    again = int(pc.sum(rescore).as_py() or 0)
    if again:
        print(
            f"{again} frame(s) to score again: MegaDetector boxes were imported since their "
            "run; a crop of each box is one more view (docs/views.md)",
            file=log,
        )
    missing = _missing_frames(previous, discovery.frames, Path(options.images_root), run_id)

    backbone = backbone or _load_backbone(options)
    classifier: Classifier = (
        TrainedHead(load_model(options.model_dir), backbone)
        if options.model_dir is not None
        else ZeroShotImageNet(backbone)
    )
    if not options.force:
        _refuse_another_model(out_dir, writers, options, backbone, classifier)
    print(
        f"uncia {__version__} run {run_id}: {frames.num_rows} frame(s) to classify with "
        f"{classifier.name} on {backbone.name} ({backbone.precision} on {backbone.device}, weights "
        f"{backbone.weights_sha256[:12]}), options {options.to_json()}",
        file=log,
    )
    store.write_run_deployments(out_dir, run_id, deployments)
    store.write_run_record(
        out_dir, _run_record(options, summary, RunStatus.RUNNING, started, backbone, classifier)
    )
    by_id = {d["deploymentID"]: d for d in deployments.to_pylist()}
    status = RunStatus.FAILED
    try:
        if missing.num_rows:
            store.write_frame_part(out_dir, run_id, missing)
            summary.frames_missing = missing.num_rows
            summary.warnings.append(
                f"{missing.num_rows} frame(s) of the store are no longer under "
                f"{options.images_root} (deleted or moved): recorded as missing"
            )
        last_checkpoint = time.monotonic()
        bar = tqdm(
            total=frames.num_rows,
            unit="frame",
            disable=not options.progress,
            file=log,
            smoothing=0.1,
        )
        if options.engine == "spark":
            parts = classify_on_spark(frames, by_id, options, run_id, log=log)
        else:
            parts = classify_locally(frames, by_id, options, backbone, classifier, run_id)
        with bar:
            for part in parts:
                store.write_frame_part(out_dir, run_id, part)
                _count(summary, part)
                bar.update(part.num_rows)
                if time.monotonic() - last_checkpoint > options.checkpoint_seconds:
                    store.finalize(out_dir, options.burst_options())
                    last_checkpoint = time.monotonic()
        status = RunStatus.FINISHED
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the CLI
        status = RunStatus.INTERRUPTED
        raise
    finally:
        summary.seconds = time.monotonic() - t0
        store.write_run_record(
            out_dir, _run_record(options, summary, status, started, backbone, classifier)
        )
        summary.table_rows = store.finalize(out_dir, options.burst_options())
    duplicates = store.duplicate_content(out_dir)
    if duplicates:
        summary.warnings.append(duplicate_content_warning(duplicates))
    return summary


def _refuse_another_model(
    out_dir: Path,
    writers: list[dict[str, Any]],
    options: RunOptions,
    backbone: Backbone,
    classifier: Classifier,
) -> None:
    """Raise StoreError when frames of `out_dir` were scored differently from this run: one
    store holds one model's scores, read against one threshold (`--force` mixes them; later
    runs then compare with the forced one, the latest writer)."""
    now = {
        "backbone": backbone.name,
        "model": classifier.name,
        "weights": backbone.weights_sha256,
        "views": options.views,
        "threshold": options.threshold,
    }
    for record in writers[-1:]:
        try:
            recorded = json.loads(record["options_json"] or "{}")
        except json.JSONDecodeError:
            recorded = {}
        before = {
            "backbone": record["backbone"],
            "model": record["model_name"],
            "weights": record["weights_sha256"],
            "views": recorded.get("views"),
            # The options' own value: the runs table keeps the threshold as a float32.
            "threshold": recorded.get("threshold", record["leopard_threshold"]),
        }
        differ = [k for k, v in before.items() if v is not None and not _same(v, now[k])]
        if differ:
            what = ", ".join(f"{k} {before[k]} (this run: {now[k]})" for k in differ)
            raise StoreError(
                f"{out_dir} holds frames run {record['run_id']} scored with another {what}; "
                "one store keeps one model's scores: use a new --out, or --force to mix them"
            )


def _same(before: Any, now: Any) -> bool:
    if isinstance(before, float) and isinstance(now, float):
        return math.isclose(before, now, rel_tol=1e-6)
    return bool(before == now)


def _changed_or_new(frames: pa.Table, previous: pa.Table) -> pa.Array:
    """A mask of `frames` to classify: new, failed last time, or changed on disk since (another
    size or modification time: the same path, another photograph)."""
    done = {
        image_id: (size, mtime)
        for image_id, size, mtime, status in zip(
            *(
                previous.column(c).to_pylist()
                for c in ("image_id", "file_size", "file_mtime_ns", "status")
            ),
            strict=True,
        )
        if status == ImageStatus.OK
    }
    mask = []
    for image_id, size, mtime in zip(
        *(frames.column(c).to_pylist() for c in ("image_id", "file_size", "file_mtime_ns")),
        strict=True,
    ):
        old = done.get(image_id)
        # A frame classified before mtimes were kept (None) is compared by size alone.
        same = old is not None and old[0] == size and (old[1] is None or old[1] == mtime)
        mask.append(not same)
    return pa.array(mask, pa.bool_())


def _detector_boxes_since_scored(
    frames: pa.Table,
    previous: pa.Table,
    detector: dict[str, DetectorViews],
    writers: list[dict[str, Any]],
) -> pa.Array:
    """A mask of `frames` to score again: frames scored before their detector boxes were
    imported (`uncia import megadetector` after the run), so the boxes become views now."""
    started = {w["run_id"]: _utc(w["started_at"]) for w in writers if w["started_at"] is not None}
    scored = {
        image_id: started.get(run_id)
        for image_id, run_id, status in zip(
            *(previous.column(c).to_pylist() for c in ("image_id", "run_id", "status")),
            strict=True,
        )
        if status == ImageStatus.OK
    }
    mask = []
    for image_id in frames.column("image_id").to_pylist():
        views, when = detector.get(image_id), scored.get(image_id)
        mask.append(views is not None and when is not None and views.imported_at > when)
    return pa.array(mask, pa.bool_())


def _utc(value: datetime | str) -> datetime:
    """A run record's time (a datetime from the runs table, ISO text from a record file)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _with_detector_boxes(frames: pa.Table, detector: dict[str, DetectorViews]) -> pa.Table:
    """`frames` with their imported detector boxes (scoring.DETECTOR_COLUMN), when any."""
    if not detector:
        return frames
    boxes = [
        [list(b) for b in detector[i].boxes] if i in detector else None
        for i in frames.column("image_id").to_pylist()
    ]
    return frames.append_column(DETECTOR_COLUMN, pa.array(boxes, pa.list_(pa.list_(pa.float64()))))


def _missing_frames(
    previous: pa.Table, frames: pa.Table, images_root: Path, run_id: str
) -> pa.Table:
    """Rows (FRAME_RESULTS) marking frames of the store whose file lay under `images_root` and
    is gone now; frames of other roots written into the same store are left alone."""
    root = str(images_root.absolute()).rstrip(os.sep) + os.sep
    found = set(frames.column("image_id").to_pylist())
    rows = [
        {
            "image_id": row["image_id"],
            "run_id": run_id,
            "deploymentID": row["deploymentID"],
            "file_path": row["file_path"],
            "relative_path": row["relative_path"],
            "time_flag": TimeFlag.MISSING.value,
            "status": ImageStatus.MISSING.value,
            "failure": "missing: the file is no longer under the images root",
        }
        for row in previous.to_pylist()
        if row["status"] != ImageStatus.MISSING
        and row["image_id"] not in found
        and row["file_path"].startswith(root)
    ]
    return pa.Table.from_pylist(rows, schema=FRAME_RESULTS)


def duplicate_content_warning(duplicates: list[store.DuplicateContent]) -> str:
    """One summary line for frames whose identical bytes lie in more than one deployment."""
    deployments = sorted({d for dup in duplicates for d in dup.deployments})
    example = duplicates[0].files
    return (
        f"duplicate content in {len(deployments)} deployments ({', '.join(deployments[:5])}"
        f"{', …' if len(deployments) > 5 else ''}): {len(duplicates)} frame(s) are the same "
        f"file in more than one deployment, e.g. {' = '.join(example[:3])}; every copy is kept "
        "and counted where it lies, so check the card copies"
    )


def _count(summary: RunSummary, part: pa.Table) -> None:
    for row in part.select(["status", "failure", "time_flag"]).to_pylist():
        if row["status"] == ImageStatus.OK:
            summary.frames_done += 1
        else:
            summary.frames_failed += 1
            summary.failure_reasons[_reason_kind(row["failure"])] += 1
        summary.time_flags[row["time_flag"]] += 1


def _reason_kind(failure: str | None) -> str:
    """Group failures by their kind (the text before the first colon)."""
    return (failure or "unknown").split(":", 1)[0]


def _load_backbone(options: RunOptions) -> Backbone:
    return load_backbone(
        options.backbone,
        weights=options.weights,
        device=options.device,
        precision=options.precision,
        runtime=options.runtime,
    )
