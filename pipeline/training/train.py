"""`uncia train`: fit a leopard head on cached backbone embeddings of labelled frames.

Frames are split by group (deployment, or burst) into a held-out test set and grouped
cross-validation folds; a class-weighted logistic regression is scored out-of-fold to calibrate
its probabilities and to pick the threshold that reaches the target recall, then refitted on
every training frame. The model folder holds the head, the threshold and the metrics.

With `views` other than whole, each frame is a bag of views (pipeline/stages/views.py) and the
head is fitted by multiple-instance learning: every view of a negative frame is negative, the
view of a positive frame that the head scores highest is its positive, and a frame scores its
best view.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
from scipy.optimize import minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from pipeline import __version__
from pipeline.errors import ConfigError, InputError
from pipeline.schema import TRAINING_FRAMES, BurstAggregation, FrameSource, Split, ViewMode
from pipeline.stages.embed import BACKBONES, RUNTIMES, Backbone, load_backbone
from pipeline.stages.tracks import best_view_per_frame
from pipeline.stages.views import (
    DEFAULT_GRIDS,
    DEFAULT_MOTION_REGIONS,
    DEFAULT_OVERLAP,
    DEFAULT_WORKING_SIDE,
    ViewOptions,
    format_grids,
)
from pipeline.store.embedding_cache import Embedded, EmbeddingCache, embed_files
from pipeline.store.store import atomic_write_parquet
from pipeline.store.view_cache import EmbeddedViews, ViewEmbeddingCache, embed_views
from pipeline.training.head import HeadParameters, TrainedModel, save_model
from pipeline.training.labels import (
    assign_label_bursts,
    positive_mask,
    read_extra_frames,
    read_labelled_frames,
)
from pipeline.training.metrics import burst_summary, burst_table, summarize, threshold_for_recall
from pipeline.training.splits import grouped_folds, grouped_holdout

DEFAULT_POSITIVE = ("snow_leopard", "leopard")
GROUP_BY_CHOICES = ("deployment", "burst")
CACHE_DIR_NAME = ".uncia-cache"
EXTRA_NEGATIVE_LABEL = "other"
_ABSENT_CLASS_LOGIT = -30.0  # a class a fold never saw gets (almost) no probability
# Multiple-instance learning: the first fit takes every view of a positive frame as positive,
# each later fit that frame's best view under the previous head, until the choice settles.
MIL_FITS = 4
VIEW_SETTINGS = ("views", "tile_grid", "tile_overlap", "working_side", "motion_regions")


@dataclass(frozen=True)
class TrainOptions:
    """Everything `uncia train` needs; see docs/cli.md and docs/training.md."""

    images_root: Path
    out_dir: Path
    labels: Path | None = None
    backbone: str = "resnet50"
    weights: Path | None = None
    positive: tuple[str, ...] = DEFAULT_POSITIVE
    multiclass: bool = False
    cache_dir: Path | None = None  # default: out_dir/../.uncia-cache
    flip: bool = True
    extra_positive: tuple[Path, ...] = ()
    extra_negative: tuple[Path, ...] = ()
    extra_weight: float = 1.0
    target_recall: float = 0.95
    group_by: str = "deployment"
    test_fraction: float = 0.2
    folds: int = 5
    c: float = 0.1
    burst_gap_seconds: float = 60.0
    seed: int = 0
    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    progress: bool = True
    views: str = ViewMode.WHOLE.value
    tile_grid: str = format_grids(DEFAULT_GRIDS)
    tile_overlap: float = DEFAULT_OVERLAP
    working_side: int = DEFAULT_WORKING_SIDE
    motion_regions: int = DEFAULT_MOTION_REGIONS

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if self.view_options().tiled and self.multiclass:
            raise ConfigError("--multiclass needs --views whole: a view has no class of its own")
        if self.group_by not in GROUP_BY_CHOICES:
            raise ConfigError(f"group-by must be deployment or burst, got {self.group_by!r}")
        if not self.positive or not all(p.strip() for p in self.positive):
            raise ConfigError("--positive needs at least one non-empty label")
        if not 0.0 < self.target_recall <= 1.0:
            raise ConfigError(f"target recall must be within (0, 1], got {self.target_recall}")
        if not 0.0 <= self.test_fraction <= 0.5:
            raise ConfigError(f"test fraction must be within 0..0.5, got {self.test_fraction}")
        if self.folds < 2:
            raise ConfigError(f"folds must be at least 2, got {self.folds}")
        if self.c <= 0 or self.extra_weight <= 0:
            raise ConfigError("--c and --extra-weight must be positive")
        if self.burst_gap_seconds < 0:
            raise ConfigError(f"burst gap must be >= 0 seconds, got {self.burst_gap_seconds}")
        if not 1 <= self.batch_size <= 4096 or not 1 <= self.workers <= 256:
            raise ConfigError("batch size must be 1..4096 and workers 1..256")

    @property
    def resolved_cache_dir(self) -> Path:
        """The embedding cache folder: --cache, else a `.uncia-cache` beside the model folder."""
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        return Path(self.out_dir).absolute().parent / CACHE_DIR_NAME

    def view_options(self) -> ViewOptions:
        """The views frames are cut into; raises ConfigError for bad view settings."""
        return ViewOptions(
            mode=self.views,  # type: ignore[arg-type]
            grids=self.tile_grid,  # type: ignore[arg-type]
            overlap=self.tile_overlap,
            working_side=self.working_side,
            motion_regions=self.motion_regions,
        )

    def run_views(self) -> dict[str, Any]:
        """The `uncia run` options (RunOptions fields) that cut frames as this training did:
        the model card's `views`, which `uncia run --model` takes as its defaults."""
        return self.view_options().as_run_options()

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)


@dataclass(frozen=True, eq=False)
class LabelledEmbeddings:
    """Labelled frames (TRAINING_FRAMES columns but split/fold/score) and their features.

    Whole frames: one feature row per frame (NaN for frames that failed) and `bag` None.
    Views: one row per view, `bag` giving each row's frame (failed frames have no row),
    `kinds` and `boxes` what and where each view is.
    """

    frames: pa.Table
    features: np.ndarray  # (N, D) or (M, D)
    flipped: np.ndarray | None
    hits: int
    decoded: int
    bag: np.ndarray | None = None  # int64 (M,)
    kinds: np.ndarray | None = None  # str (M,) ViewKind values
    boxes: np.ndarray | None = None  # float32 (M, 4) fractions of the frame
    # The bursts motion crops came from: frame indices in capture order (pipeline/stages/tracks.py)
    bursts: tuple[tuple[int, ...], ...] = ()
    moving: np.ndarray | None = None  # bool (M,): motion regions that move now

    @property
    def bags(self) -> np.ndarray:
        """Each feature row's frame (row i is frame i for whole frames)."""
        return self.bag if self.bag is not None else np.arange(len(self.features))


def embed_labelled(
    frames: pa.Table,
    backbone: Backbone,
    cache_dir: Path | None,
    flips: bool,
    burst_gap_seconds: float,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = False,
    log: TextIO = sys.stderr,
    views: ViewOptions | None = None,
) -> LabelledEmbeddings:
    """Embed LABELLED `frames` through the cache; add content hashes, capture times, bursts.

    With tiled `views`, every view of each frame is embedded (pipeline/store/view_cache.py).
    """
    if views is not None and views.tiled:
        return _embed_labelled_views(
            frames,
            backbone,
            cache_dir,
            flips,
            burst_gap_seconds,
            views,
            batch_size,
            workers,
            progress,
            log,
        )
    cache = (
        EmbeddingCache(
            cache_dir,
            backbone.name,
            backbone.weights_sha256,
            backbone.input_size,
            backbone.precision,
            backbone.runtime,
        )
        if cache_dir is not None
        else None
    )
    embedded = embed_files(
        frames.column("file_path").to_pylist(),
        backbone,
        cache,
        flips=flips,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        log=log,
    )
    out = _with_embedding_columns(frames, embedded, burst_gap_seconds)
    return LabelledEmbeddings(
        out, embedded.features, embedded.flipped, embedded.hits, embedded.decoded
    )


def _with_embedding_columns(
    frames: pa.Table, embedded: Embedded | EmbeddedViews, burst_gap_seconds: float
) -> pa.Table:
    """The labelled frames with what embedding them found: content hash, capture time, burst
    and failure."""
    times, bursts = assign_label_bursts(
        frames.column("deployment").to_pylist(), embedded.exif_datetime, burst_gap_seconds
    )
    return (
        frames.append_column("content_sha256", pa.array(embedded.content_sha256, pa.string()))
        .append_column("captured_at", pa.array(times, TRAINING_FRAMES.field("captured_at").type))
        .append_column("burst_id", pa.array(bursts, pa.string()))
        .append_column("failure", pa.array(embedded.failure, pa.string()))
    )


def _embed_labelled_views(
    frames: pa.Table,
    backbone: Backbone,
    cache_dir: Path | None,
    flips: bool,
    burst_gap_seconds: float,
    views: ViewOptions,
    batch_size: int,
    workers: int,
    progress: bool,
    log: TextIO,
) -> LabelledEmbeddings:
    embedded = embed_views(
        frames.column("file_path").to_pylist(),
        frames.column("deployment").to_pylist(),
        backbone,
        ViewEmbeddingCache(cache_dir, backbone, views) if cache_dir is not None else None,
        views,
        flips=flips,
        burst_gap_seconds=burst_gap_seconds,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        log=log,
    )
    out = _with_embedding_columns(frames, embedded, burst_gap_seconds)
    return LabelledEmbeddings(
        out,
        embedded.features,
        embedded.flipped,
        embedded.hits,
        embedded.decoded,
        bag=embedded.frame,
        kinds=embedded.kinds,
        boxes=embedded.boxes,
        bursts=embedded.bursts,
        moving=embedded.moving,
    )


def skip_reasons(frames: pa.Table) -> list[str | None]:
    """Why each frame is left out: its decoding failure, or being a byte-identical copy of an
    earlier frame (which would otherwise sit on both sides of a split); None to keep it."""
    seen: dict[str, str] = {}
    reasons: list[str | None] = []
    for sha, failure, rel in zip(
        frames.column("content_sha256").to_pylist(),
        frames.column("failure").to_pylist(),
        frames.column("relative_path").to_pylist(),
        strict=True,
    ):
        if failure is not None:
            reasons.append(failure)
        elif sha in seen:
            reasons.append(f"duplicate: same bytes as {seen[sha]}")
        else:
            seen[sha] = rel
            reasons.append(None)
    return reasons


@dataclass(frozen=True, eq=False)
class FitResult:
    head: HeadParameters
    threshold: float
    split: list[str]  # Split value per frame
    fold: np.ndarray  # -1 outside the training folds
    score: np.ndarray  # out-of-fold score (train), final head's score (test), NaN (skipped)
    metrics: dict[str, Any]


def class_setup(
    labels: list[str], positive: tuple[str, ...], multiclass: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (classes, positive classes): binary `not_<positive>`/`<positive>`, or every label.

    The positive class is the one `positive` label present ("positive" when several are).
    Raises InputError when no label is one of `positive`.
    """
    present = [p for p in positive if p in set(labels)]
    if not present:
        found = ", ".join(sorted(set(labels))[:12])
        raise InputError(
            f"no frame is labelled {' or '.join(positive)}; choose the positive class with "
            f"--positive LABEL (labels found: {found})"
        )
    if multiclass:
        return tuple(sorted(set(labels))), tuple(present)
    name = present[0] if len(present) == 1 else "positive"
    return (f"not_{name}", name), (name,)


def encode_classes(
    labels: list[str], classes: tuple[str, ...], positive: tuple[str, ...], multiclass: bool
) -> np.ndarray:
    """Class index of each label (-1 for a label outside `classes` in multi-class mode)."""
    if not multiclass:
        return positive_mask(labels, positive).astype(np.int64)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(label, -1) for label in labels], dtype=np.int64)


def standardization(*blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over the rows of all `blocks` (float64 sums,
    chunk by chunk, so no float64 copy of a large matrix is made)."""
    count, total, squares = 0, None, None
    for block in blocks:
        for start in range(0, len(block), 8192):
            chunk = block[start : start + 8192].astype(np.float64)
            total = chunk.sum(axis=0) if total is None else total + chunk.sum(axis=0)
            sq = np.einsum("ij,ij->j", chunk, chunk)
            squares = sq if squares is None else squares + sq
            count += len(chunk)
    assert total is not None and squares is not None and count
    mean = total / count
    scale = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    scale[scale < 1e-6] = 1.0
    return mean, scale


def fit_logistic(
    z: np.ndarray, y: np.ndarray, weight: np.ndarray, n_classes: int, c: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced L2 logistic regression on standardized features `z`; return (coef,
    intercept), coef with one row for two classes and one row per class otherwise. A class
    absent from `y` gets a row that gives it (almost) no probability."""
    present = np.unique(y)
    if present.size < 2:
        raise InputError("a training fold holds a single class; add frames or deployments")
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(z, y, sample_weight=weight)
    coef_, intercept_ = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
    if n_classes == 2:
        return coef_, intercept_
    coef = np.zeros((n_classes, z.shape[1]))
    intercept = np.full(n_classes, _ABSENT_CLASS_LOGIT)
    binary = present.size == 2  # scikit-learn gives one row for two classes: split it in two
    coef[present] = np.vstack([-coef_[0], coef_[0]]) / 2 if binary else coef_
    intercept[present] = np.array([-1.0, 1.0]) * intercept_[0] / 2 if binary else intercept_
    return coef, intercept


def calibrate(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Platt scaling (a, b) for binary logits (N,), temperature for multi-class logits (N, K)."""
    if logits.ndim == 1:
        platt = LogisticRegression(C=1e4, max_iter=1000)
        platt.fit(logits.reshape(-1, 1), y)
        return {"a": float(platt.coef_[0, 0]), "b": float(platt.intercept_[0])}

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(y.size), y].mean())

    best = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return {"temperature": float(np.exp(best.x))}


def fit_head(
    frames: pa.Table,
    features: np.ndarray,
    flipped: np.ndarray | None,
    options: TrainOptions,
    bag: np.ndarray | None = None,
) -> FitResult:
    """Split, cross-validate, calibrate, choose the threshold and fit the final head.

    `frames` needs label, deployment, burst_id, source and `skip` (a reason, or null); feature
    rows of skipped frames are ignored. `features` (and `flipped`, their mirror images) hold
    one row per frame, or with `bag` (each row's frame) one row per view: then the head is
    fitted by multiple-instance learning and a frame scores its best view. Raises InputError
    when the labels cannot be split.
    """
    labels = frames.column("label").to_pylist()
    skip = np.array([r is not None for r in frames.column("skip").to_pylist()])
    survey = np.array([s == FrameSource.SURVEY for s in frames.column("source").to_pylist()])
    group_column = "deployment" if options.group_by == "deployment" else "burst_id"
    groups = np.array(frames.column(group_column).to_pylist(), dtype=object)
    kept = [lab for lab, s in zip(labels, skip, strict=True) if not s]
    classes, positive_classes = class_setup(kept, options.positive, options.multiclass)
    y = encode_classes(labels, classes, options.positive, options.multiclass)
    truth = positive_mask(labels, options.positive)
    usable = survey & ~skip
    n = len(labels)
    bag = np.arange(n) if bag is None else np.asarray(bag, dtype=np.int64)
    one_view_each = len(bag) == n and bool(np.all(bag == np.arange(n)))

    test = np.zeros(n, dtype=bool)
    test[usable] = grouped_holdout(
        groups[usable], truth[usable].astype(int), options.test_fraction, options.seed
    )
    dev = usable & ~test
    if not truth[dev].any() or truth[dev].all():
        raise InputError(
            "the training frames hold only one class once the test deployments are held out; "
            "lower --test-fraction or label more deployments"
        )
    fold = np.full(n, -1, dtype=np.int64)
    fold[dev] = grouped_folds(groups[dev], y[dev], options.folds, options.seed)
    extra = ~survey & ~skip

    trained_on = (dev | extra)[bag]
    mean, scale = standardization(
        features[trained_on], *([flipped[trained_on]] if flipped is not None else [])
    )
    mean32, scale32 = mean.astype(np.float32), scale.astype(np.float32)
    z = (features - mean32) / scale32
    z_flipped = (flipped - mean32) / scale32 if flipped is not None else None
    y_row = y[bag]
    # A view stands for its frame's class, except the views of a positive frame that are not
    # its chosen one (MIL): a frame label says "somewhere in here", not "everywhere".
    positive_row = np.isin(y_row, [classes.index(c) for c in positive_classes])

    def training_rows(
        mask: np.ndarray, chosen: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = (mask | extra)[bag] & (~positive_row | chosen)
        x = [z[rows]]
        targets = [y_row[rows]]
        weight = [np.where(extra[bag][rows], options.extra_weight, 1.0)]
        if z_flipped is not None:
            x.append(z_flipped[rows])
            targets.append(y_row[rows])
            weight.append(weight[0])
        return np.concatenate(x), np.concatenate(targets), np.concatenate(weight)

    def fit_frames(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head fitted on the frames of `mask` (and the extra frames), by MIL on views."""
        chosen = np.ones(len(bag), dtype=bool)  # first fit: every view of a positive frame
        for _ in range(1 if one_view_each else MIL_FITS):
            coef, intercept = fit_logistic(
                *training_rows(mask, chosen), len(classes), options.c, options.seed
            )
            if one_view_each:
                break
            logits = z.astype(np.float64) @ coef[0] + intercept[0]
            candidates = (mask | extra)[bag] & positive_row
            best = best_view_per_frame(logits[candidates], bag[candidates], n)
            now = np.zeros(len(bag), dtype=bool)
            now[np.flatnonzero(candidates)[best[best >= 0]]] = True
            if np.array_equal(now, chosen):
                break
            chosen = now
        return coef, intercept

    def frame_logits(coef: np.ndarray, intercept: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits of the frames of `mask`, in order: their best view's (binary heads)."""
        rows = mask[bag]
        logits = z[rows].astype(np.float64) @ coef.T + intercept
        if one_view_each:
            return logits[:, 0] if logits.shape[1] == 1 else logits
        best = best_view_per_frame(logits[:, 0], bag[rows], n)
        return logits[best[mask], 0]

    def head_from(coef: np.ndarray, intercept: np.ndarray, calibration: dict) -> HeadParameters:
        return HeadParameters(classes, positive_classes, mean, scale, coef, intercept, calibration)

    binary = len(classes) == 2
    oof_logits = np.zeros((n,) if binary else (n, len(classes)))
    for k in range(int(fold.max()) + 1):
        held = fold == k
        coef, intercept = fit_frames(dev & ~held)
        oof_logits[held] = frame_logits(coef, intercept, held)
    calibration = calibrate(oof_logits[dev], y[dev])
    final = head_from(*fit_frames(dev), calibration)
    score = np.full(n, np.nan)
    score[dev] = final.leopard_score(final.probabilities_from_logits(oof_logits[dev]))
    threshold = threshold_for_recall(truth[dev], score[dev], options.target_recall)
    if test.any():
        score[test] = final.leopard_score(
            final.probabilities_from_logits(frame_logits(final.coef, final.intercept, test))
        )

    split = [
        Split.TEST.value if t else Split.TRAIN.value if u else Split.SKIPPED.value
        for t, u in zip(test, usable | extra, strict=True)
    ]
    bursts = frames.column("burst_id").to_pylist()
    deployments = frames.column("deployment").to_pylist()
    metrics: dict[str, Any] = {}
    for name, mask in (("validation", dev), ("test", test)):
        if not mask.any():
            metrics[name] = None
            continue
        picked = np.flatnonzero(mask)
        table = burst_table(
            [bursts[i] for i in picked],
            [deployments[i] for i in picked],
            truth[mask],
            score[mask],
            BurstAggregation.MAX,
        )
        metrics[name] = {
            "frame": summarize(truth[mask], score[mask], threshold),
            "burst_max": burst_summary(table, threshold),
        }
    return FitResult(final, threshold, split, fold, score, metrics)


def training_set_sha256(frames: pa.Table, backbone: Backbone, options: TrainOptions) -> str:
    """A hash of what the head was fitted on: contents, labels, sources and splits, the backbone
    and the options that change the fit. Same frames and options, same hash (and model name)."""
    rows = sorted(
        zip(
            frames.column("content_sha256").to_pylist(),
            frames.column("label").to_pylist(),
            frames.column("source").to_pylist(),
            frames.column("split").to_pylist(),
            strict=True,
        ),
        key=lambda r: tuple(str(x) for x in r),
    )
    fit_options = {
        k: v
        for k, v in asdict(options).items()
        if k
        in {
            "positive",
            "multiclass",
            "flip",
            "extra_weight",
            "target_recall",
            "group_by",
            "test_fraction",
            "folds",
            "c",
            "burst_gap_seconds",
            "seed",
        }
    }
    if options.view_options().tiled:  # whole-frame heads keep the names they always had
        fit_options["views"] = options.run_views()
    payload = json.dumps(
        {
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "options": fit_options,
            "frames": rows,
        },
        default=str,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class TrainSummary:
    """What a training run did; printed at its end."""

    model_dir: Path
    name: str = ""
    frames: int = 0
    skipped: int = 0
    cache_hits: int = 0
    decoded: int = 0
    threshold: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"model {self.name} written to {self.model_dir}: {self.frames} frame(s), "
            f"{self.skipped} skipped; embeddings: {self.cache_hits} from cache, "
            f"{self.decoded} decoded ({self.seconds:.1f} s)",
            f"  threshold {self.threshold:.4f}",
        ]
        for name, block in self.metrics.items():
            if block:
                f, b = block["frame"], block["burst_max"]
                out.append(
                    f"  {name}: frames AP {_fmt(f['average_precision'])} precision "
                    f"{_fmt(f['precision'])} recall {_fmt(f['recall'])}; bursts (max) AP "
                    f"{_fmt(b['average_precision'])} recall {_fmt(b['recall'])}"
                )
        return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def train_model(
    options: TrainOptions, log: TextIO = sys.stderr, backbone: Backbone | None = None
) -> TrainSummary:
    """Read the labels, embed (through the cache), fit, and write the model folder.

    Raises InputError for labels that cannot be used and ModelError for a backbone that
    cannot be loaded.
    """
    t0 = time.monotonic()
    survey = read_labelled_frames(options.images_root, options.labels)
    survey_labels = survey.column("label").to_pylist()
    class_setup(survey_labels, options.positive, options.multiclass)  # fail before the model
    present = [p for p in options.positive if p in set(survey_labels)]
    views = options.view_options()
    backbone = backbone or load_backbone(
        options.backbone,
        options.weights,
        options.device,
        options.precision,
        runtime=options.runtime,
    )
    print(
        f"uncia {__version__} train: {survey.num_rows} labelled frame(s), {backbone.name} "
        f"({backbone.precision} on {backbone.device}), cache {options.resolved_cache_dir}, "
        f"options {options.to_json()}",
        file=log,
    )
    frames = pa.concat_tables(
        [
            survey,
            read_extra_frames(options.extra_positive, present[0], FrameSource.EXTRA_POSITIVE),
            read_extra_frames(
                options.extra_negative, EXTRA_NEGATIVE_LABEL, FrameSource.EXTRA_NEGATIVE
            ),
        ]
    )
    embedded = embed_labelled(
        frames,
        backbone,
        options.resolved_cache_dir,
        options.flip,
        options.burst_gap_seconds,
        options.batch_size,
        options.workers,
        options.progress,
        log,
        views=views,
    )
    reasons = skip_reasons(embedded.frames)
    table = embedded.frames.append_column("skip", pa.array(reasons, pa.string()))
    result = fit_head(table, embedded.features, embedded.flipped, options, embedded.bag)

    out = (
        embedded.frames.set_column(
            embedded.frames.schema.get_field_index("failure"),
            "failure",
            pa.array(reasons, pa.string()),
        )
        .append_column("split", pa.array(result.split, pa.string()))
        .append_column("fold", pa.array(result.fold.astype(np.int32), mask=result.fold < 0))
        .append_column(
            "score",
            pa.array(result.score.astype(np.float32), mask=np.isnan(result.score)),
        )
    )
    out = out.select(TRAINING_FRAMES.names).cast(TRAINING_FRAMES)
    digest = training_set_sha256(out, backbone, options)
    card = _model_card(options, backbone, out, result, digest)
    model_dir = Path(options.out_dir)
    atomic_write_parquet(out, model_dir / "training_frames.parquet")
    save_model(model_dir, TrainedModel(head=result.head, card=card))
    return TrainSummary(
        model_dir=model_dir,
        name=card["name"],
        frames=out.num_rows,
        skipped=sum(r is not None for r in reasons),
        cache_hits=embedded.hits,
        decoded=embedded.decoded,
        threshold=result.threshold,
        metrics=result.metrics,
        seconds=time.monotonic() - t0,
    )


def _model_card(
    options: TrainOptions, backbone: Backbone, frames: pa.Table, result: FitResult, digest: str
) -> dict[str, Any]:
    split = frames.column("split").to_pylist()
    used = [s != Split.SKIPPED for s in split]
    labels = [lab for lab, u in zip(frames.column("label").to_pylist(), used, strict=True) if u]
    return {
        "name": f"head-{digest[:12]}",
        "kind": "logistic-regression",
        "created_at": datetime.now(UTC).isoformat(),
        "uncia_version": __version__,
        "backbone": backbone.name,
        "weights_sha256": backbone.weights_sha256,
        "input_size": backbone.input_size,
        "feature_dim": backbone.feature_dim,
        "positive_labels": [p for p in options.positive if p in set(labels)],
        "multiclass": options.multiclass,
        "threshold": result.threshold,
        "target_recall": options.target_recall,
        "training_set_sha256": digest,
        "views": options.run_views(),
        "options": {
            k: v
            for k, v in json.loads(options.to_json()).items()
            if k not in {"progress", "workers", "batch_size"}
        },
        "data": {
            "frames": len(split),
            "train": split.count(Split.TRAIN.value),
            "test": split.count(Split.TEST.value),
            "skipped": split.count(Split.SKIPPED.value),
            "labels": {lab: labels.count(lab) for lab in sorted(set(labels))},
            "deployments": len(set(frames.column("deployment").to_pylist())),
        },
        "metrics": result.metrics,
    }
