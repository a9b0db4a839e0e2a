"""`uncia evaluate`: score labelled frames with a trained model (or the zero-shot ImageNet
baseline) and report frame- and burst-level precision, recall, F1 and average precision,
per deployment, with the review work a threshold saves; JSON for machines, HTML for people.

Frames are scored on the views `uncia run` would use (a model's own, or `--views`);
`--compare-views` adds whole frame, tiles and tiles+motion side by side.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.errors import ConfigError
from pipeline.schema import EVALUATED_FRAMES, BurstAggregation, Split, ViewMode
from pipeline.stages.classify import Classifier, ZeroShotImageNet
from pipeline.stages.embed import BACKBONES, RUNTIMES, Backbone, load_backbone
from pipeline.stages.views import ZERO_SHOT_THRESHOLDS, ViewOptions, format_grids
from pipeline.store.store import atomic_write_bytes, atomic_write_parquet, atomic_write_text
from pipeline.training.evaluate_views import ModeScores, compare_views, score_labelled
from pipeline.training.head import TrainedHead, TrainedModel, load_model
from pipeline.training.labels import positive_mask, read_labelled_frames
from pipeline.training.metrics import burst_summary, burst_table, pr_curve, summarize
from pipeline.training.report_html import pr_curve_png, render_report
from pipeline.training.train import CACHE_DIR_NAME, DEFAULT_POSITIVE, skip_reasons

ZERO_SHOT_THRESHOLD = ZERO_SHOT_THRESHOLDS[ViewMode.WHOLE]  # `uncia run --views whole`'s


@dataclass(frozen=True)
class EvaluateOptions:
    """Everything `uncia evaluate` needs; see docs/cli.md."""

    images_root: Path
    out_dir: Path
    labels: Path | None = None
    model_dir: Path | None = None
    zero_shot: bool = False
    backbone: str | None = None  # zero-shot: default resnet50; with a model: the model's
    weights: Path | None = None
    positive: tuple[str, ...] | None = None  # default: the model's, else snow_leopard, leopard
    threshold: float | None = None  # default: the model's, else 0.5
    tta_flip: bool = False
    cache_dir: Path | None = None  # default: out_dir/../.uncia-cache
    burst_gap_seconds: float = 60.0
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    progress: bool = True
    # None: the model's (its card's `views`), whole frames for the zero-shot baseline.
    views: str | None = None
    tile_grid: str | None = None
    tile_overlap: float | None = None
    working_side: int | None = None
    motion_regions: int | None = None
    compare_views: bool = False

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        self.view_options(None)  # validates the view settings
        if (self.model_dir is None) == (not self.zero_shot):
            raise ConfigError("give exactly one of --model DIR and --zero-shot")
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be within 0..1, got {self.threshold}")
        if self.burst_gap_seconds < 0:
            raise ConfigError(f"burst gap must be >= 0 seconds, got {self.burst_gap_seconds}")

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        return Path(self.out_dir).absolute().parent / CACHE_DIR_NAME

    def view_options(self, card_views: dict[str, Any] | None) -> ViewOptions:
        """The views frames are scored on: these options, else the model card's `views`
        (RunOptions fields), else whole frames. Raises ConfigError for bad settings."""
        given = {
            "views": self.views,
            "tile_grid": self.tile_grid,
            "tile_overlap": self.tile_overlap,
            "working_side": self.working_side,
            "motion_regions": self.motion_regions,
        }
        merged = {**(card_views or {}), **{k: v for k, v in given.items() if v is not None}}
        defaults = ViewOptions()
        return ViewOptions(
            mode=merged.get("views", ViewMode.WHOLE.value),
            grids=merged.get("tile_grid", format_grids(defaults.grids)),
            overlap=merged.get("tile_overlap", defaults.overlap),
            working_side=merged.get("working_side", defaults.working_side),
            motion_regions=merged.get("motion_regions", defaults.motion_regions),
        )


def build_report(
    frames: pa.Table, threshold: float, model: dict[str, Any], classes: list[str] | None = None
) -> dict[str, Any]:
    """The whole report from scored frames (columns deployment, burst_id, label, positive,
    score, and `predicted` for a multi-class head). Pure: no disk, no model."""
    truth = frames.column("positive").to_numpy(zero_copy_only=False).astype(bool)
    scores = frames.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    deployments = frames.column("deployment").to_pylist()
    bursts = frames.column("burst_id").to_pylist()
    labels = frames.column("label").to_pylist()
    frame = summarize(truth, scores, threshold)
    burst: dict[str, Any] = {}
    curves: dict[str, Any] = {"frame": pr_curve(truth, scores)}
    for aggregation in BurstAggregation:
        table = burst_table(bursts, deployments, truth, scores, aggregation)
        burst[aggregation.value] = burst_summary(table, threshold)
        curves[f"burst_{aggregation.value}"] = pr_curve(
            table.column("positive").to_numpy(zero_copy_only=False),
            table.column("score").to_numpy(zero_copy_only=False),
        )
    n = len(labels)
    review = {
        "frames": n,
        "frame_level": _review(n, frame["flagged"], frame["confusion"]["fn"]),
        "burst_level_max": _review(
            n, burst["max"]["frames_in_flagged_bursts"], burst["max"]["confusion"]["fn"]
        ),
    }
    per_deployment = []
    for dep in sorted(set(deployments)):
        mask = np.array([d == dep for d in deployments])
        per_deployment.append(
            {"deployment": dep, **summarize(truth[mask], scores[mask], threshold)}
        )
    per_label = {
        label: {
            "frames": int(np.sum(mask := np.array([lab == label for lab in labels]))),
            "flagged": int(np.sum(scores[mask] >= threshold)),
        }
        for label in sorted(set(labels))
    }
    report: dict[str, Any] = {
        "uncia_version": __version__,
        "model": model,
        "threshold": threshold,
        "frame": frame,
        "burst": burst,
        "review": review,
        "per_deployment": per_deployment,
        "per_label": per_label,
        "pr_curves": curves,
    }
    if classes is not None and "predicted" in frames.column_names:
        report["class_confusion"] = _class_confusion(
            labels, frames.column("predicted").to_pylist(), classes
        )
    return report


def _review(frames: int, to_open: int, missed: int) -> dict[str, Any]:
    fraction = to_open / frames if frames else None
    return {
        "to_open": int(to_open),
        "open_fraction": fraction,
        "saved_fraction": None if fraction is None else 1.0 - fraction,
        "positives_missed": int(missed),
    }


def _class_confusion(labels: list[str], predicted: list[str], classes: list[str]) -> dict[str, Any]:
    rows = sorted(set(labels))
    matrix = [
        [
            sum(1 for a, p in zip(labels, predicted, strict=True) if a == r and p == c)
            for c in classes
        ]
        for r in rows
    ]
    return {"labels": rows, "classes": classes, "matrix": matrix}


@dataclass
class EvaluateSummary:
    out_dir: Path
    report: dict[str, Any]
    cache_hits: int
    decoded: int

    def lines(self) -> list[str]:
        r = self.report
        f, b = r["frame"], r["burst"]["max"]
        return [
            f"report for {r['model']['name']} written to {self.out_dir} (report.html, "
            f"report.json): {r['data']['frames']} frame(s) scored, {r['data']['skipped']} "
            f"skipped; embeddings: {self.cache_hits} from cache, {self.decoded} decoded",
            f"  frames at threshold {r['threshold']:.4f}: precision {_fmt(f['precision'])} "
            f"recall {_fmt(f['recall'])} F1 {_fmt(f['f1'])} AP {_fmt(f['average_precision'])}",
            f"  bursts (max): precision {_fmt(b['precision'])} recall {_fmt(b['recall'])} "
            f"F1 {_fmt(b['f1'])} AP {_fmt(b['average_precision'])}",
            f"  review: open {r['review']['frame_level']['to_open']} of "
            f"{r['review']['frames']} frame(s)",
        ] + [
            f"  views {mode}: frames AP {_fmt(v['frame']['average_precision'])} recall "
            f"{_fmt(v['frame']['recall'])} (threshold {v['threshold']:.4f}) recall at 1% FP "
            f"{_fmt(v['frame']['recall_at_1pct_fp'])}; visits AP "
            f"{_fmt(v['visit']['average_precision'])} recall {_fmt(v['visit']['recall'])} "
            f"recall at 1% FP {_fmt(v['visit']['recall_at_1pct_fp'])}"
            for mode, v in r.get("compare_views", {}).items()
        ]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def evaluate(
    options: EvaluateOptions, log: TextIO = sys.stderr, backbone: Backbone | None = None
) -> EvaluateSummary:
    """Score the labelled frames, write report.json, report.html, pr_curve.png and
    frames.parquet into `options.out_dir`; return the summary.

    Raises InputError for unusable labels and ModelError for a model folder that cannot be
    read or does not fit the backbone.
    """
    frames = read_labelled_frames(options.images_root, options.labels)
    model: TrainedModel | None = load_model(options.model_dir) if options.model_dir else None
    name = options.backbone or (model.backbone if model else "resnet50")
    backbone = backbone or load_backbone(
        name, options.weights, options.device, options.precision, runtime=options.runtime
    )
    classifier: Classifier = TrainedHead(model, backbone) if model else ZeroShotImageNet(backbone)
    positives = options.positive or (model.positive_labels if model else DEFAULT_POSITIVE)
    views = options.view_options(model.card.get("views") if model else None)
    modes = list(ViewMode) if options.compare_views else [views.mode]
    modes = sorted(modes, key=list(ViewMode).index)  # whole, tiles, tiles+motion

    def threshold_of(mode: ViewMode) -> float:
        if options.threshold is not None:
            return options.threshold
        return model.threshold if model else ZERO_SHOT_THRESHOLDS[mode]

    threshold = threshold_of(views.mode)
    print(
        f"uncia {__version__} evaluate: {frames.num_rows} labelled frame(s) with {classifier.name} "
        f"on {backbone.name}, positive = {', '.join(positives)}, views "
        f"{', '.join(m.value for m in modes)}, threshold {threshold:.4f}",
        file=log,
    )
    scored_frames = score_labelled(
        frames,
        backbone,
        classifier,
        modes,
        views,
        options.resolved_cache_dir,
        options.tta_flip,
        options.burst_gap_seconds,
        options.batch_size,
        options.workers,
        options.progress,
        log,
    )
    everything = scored_frames.frames
    primary = scored_frames.modes[views.mode]
    reasons = skip_reasons(everything)
    keep = np.array([r is None for r in reasons])
    labels = everything.column("label").to_pylist()
    truth = positive_mask(labels, positives)
    score = np.where(keep, primary.score, np.nan)
    kept = everything.filter(pa.array(keep))
    scored = kept.append_column("positive", pa.array(truth[keep])).append_column(
        "score", pa.array(score[keep], pa.float64())
    )
    classes = None
    if model is not None and model.card.get("multiclass"):
        classes = list(model.head.classes)
        predicted = [
            t[0] if t else None for t, k in zip(primary.top_labels, keep, strict=True) if k
        ]
        scored = scored.append_column("predicted", pa.array(predicted, pa.string()))
    model_info = {
        "name": classifier.name,
        "kind": "trained" if model else "zero-shot",
        "backbone": backbone.name,
        "weights_sha256": backbone.weights_sha256,
        "positive_labels": list(positives),
        "tta_flip": options.tta_flip,
        "model_dir": str(options.model_dir) if options.model_dir else None,
        "views": views.as_run_options(),
    }
    report = build_report(scored, threshold, model_info, classes)
    if options.compare_views:
        report["compare_views"] = compare_views(
            scored,
            truth[keep],
            {m: _kept(s, keep) for m, s in scored_frames.modes.items()},
            {m: threshold_of(m) for m in modes},
        )
    report["data"] = {
        "images_root": str(Path(options.images_root).absolute()),
        "labels": str(options.labels) if options.labels else None,
        "frames": int(keep.sum()),
        "skipped": int((~keep).sum()),
        "skip_reasons": _reason_counts(reasons),
        "deployments": len(set(scored.column("deployment").to_pylist())),
        "bursts": len(set(scored.column("burst_id").to_pylist())),
        "seen_in_training": _seen_in_training(options.model_dir, scored),
    }
    report["options"] = json.loads(json.dumps(asdict(options), default=str))
    _write(options.out_dir, report, everything, truth, score, threshold, reasons, primary.view)
    return EvaluateSummary(Path(options.out_dir), report, scored_frames.hits, scored_frames.decoded)


def _kept(scores: ModeScores, keep: np.ndarray) -> ModeScores:
    return ModeScores(
        scores.score[keep],
        [v for v, k in zip(scores.view, keep, strict=True) if k],
        [t for t, k in zip(scores.top_labels, keep, strict=True) if k],
    )


def _reason_counts(reasons: list[str | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in reasons:
        if r is not None:
            kind = r.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _seen_in_training(model_dir: Path | None, scored: pa.Table) -> int | None:
    """How many evaluated frames (by content) the model was trained on; None for zero-shot."""
    if model_dir is None:
        return None
    path = Path(model_dir) / "training_frames.parquet"
    if not path.exists():
        return None
    trained = pq.read_table(path, columns=["content_sha256", "split"])
    used = trained.filter(pc.equal(trained.column("split"), Split.TRAIN.value))
    seen = set(used.column("content_sha256").to_pylist())
    return sum(1 for sha in scored.column("content_sha256").to_pylist() if sha in seen)


def _write(
    out_dir: Path,
    report: dict[str, Any],
    frames: pa.Table,
    truth: np.ndarray,
    score: np.ndarray,
    threshold: float,
    reasons: list[str | None],
    views: list[str | None],
) -> None:
    out = Path(out_dir)
    table = (
        frames.set_column(
            frames.schema.get_field_index("failure"), "failure", pa.array(reasons, pa.string())
        )
        .append_column("positive", pa.array(truth))
        .append_column("score", pa.array(score.astype(np.float32), mask=np.isnan(score)))
        .append_column(
            "flagged",
            pa.array([None if np.isnan(s) else bool(s >= threshold) for s in score], pa.bool_()),
        )
        .append_column(
            "view",
            pa.array(
                [v if not np.isnan(s) else None for v, s in zip(views, score, strict=True)],
                pa.string(),
            ),
        )
    )
    atomic_write_parquet(
        table.select(EVALUATED_FRAMES.names).cast(EVALUATED_FRAMES), out / "frames.parquet"
    )
    png = pr_curve_png(report)
    atomic_write_bytes(png, out / "pr_curve.png")
    atomic_write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", out / "report.json")
    atomic_write_text(render_report(report, png), out / "report.html")
