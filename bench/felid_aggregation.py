"""`python -m bench.felid_aggregation`: can a better frame-score aggregation of views make
tiled zero-shot felid recall at 1% false positives at least double whole-frame's on the cats of
../shared/data/camera-traps (issue 12), without fitting to those 53 cats?

Step 1 (cached under bench/work/felid-aggregation/): every view of every picture is cut and
embedded by the project's own code (pipeline/training/train.py `embed_labelled`, which cuts
with pipeline/stages/views.py and caches like `uncia evaluate`), and each view's 1000 ImageNet
logits are kept: whole-frame mode; the whole view, 2x2, 3x2, 4x3 (the default) and 5x4 tiles
and the burst motion crops of a 960-px working frame; 3x2 and 4x3 tiles of a 480-px one. The
same for the 20 frames of ../shared/data/snow-leopard-dev (read in place, never copied).
Step 2 (offline, seconds): frame-score aggregations of those views (max over views of a class
score, of the felid-class mass, multi-scale, agreement of overlapping tiles, whole-frame
gating, noisy-or, logit averaging, per-view-kind temperatures), each measured by cat AP and
recall at 0.5/1/2% false positives by frame and by visit; chosen by leave-one-deployment-
group-out; the whole-vs-tiled ratio's spread by a bootstrap over deployments; and the
development frames at each aggregation's threshold. Figures: bench/results/felid_aggregation.json.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `uncia` sets it, before torch loads

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.__main__ import machine_info, write_json_atomically
from bench.cats_vs_rest import CAMERA_TRAPS, CATS, picture_rows, write_labels
from pipeline.training.labels import visit_ids
from pipeline.training.metrics import average_precision, recall_at_false_positive_rate

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "felid-aggregation"
RESULTS = ROOT / "bench" / "results" / "felid_aggregation.json"
SNOW_LEOPARD_DEV = CAMERA_TRAPS.parent / "snow-leopard-dev"

# ImageNet-1k felids: tabby, tiger cat, Persian, Siamese, Egyptian cat, cougar, lynx, leopard,
# snow leopard, jaguar, lion, tiger, cheetah.
FELID_CLASSES = tuple(range(281, 294))
SNOW_LEOPARD = 289
# View sets cut and embedded once: (name, ViewOptions fields or None for whole-frame mode).
VIEW_SETS: dict[str, dict[str, Any] | None] = {
    "whole_mode": None,
    "w960": {
        "mode": "tiles+motion",
        "grids": ((2, 2), (3, 2), (4, 3), (5, 4)),
        "working_side": 960,
    },
    "w480": {"mode": "tiles", "grids": ((3, 2), (4, 3)), "working_side": 480},
}
RATES = (0.005, 0.01, 0.02)


# ---------------------------------------------------------------- step 1: cut, embed, cache


def collect(work: Path, workers: int = 1) -> None:
    """Embed every view set of both datasets (project code, project caches) and store each
    view's logits with its frame, kind and box under `work`. Skips what is stored already."""
    # torch and the model load only when something is to be embedded: the offline step and
    # the tests need neither.
    from pipeline.stages.embed import load_backbone
    from pipeline.stages.views import ViewOptions
    from pipeline.training.labels import read_labelled_frames
    from pipeline.training.train import embed_labelled

    work.mkdir(parents=True, exist_ok=True)
    backbone = None
    rows = picture_rows()
    datasets = {
        "cats": (CAMERA_TRAPS, write_labels(work / "cats.csv", rows)),
        "dev": (SNOW_LEOPARD_DEV, SNOW_LEOPARD_DEV / "labels.csv"),
    }
    for data, (root, labels) in datasets.items():
        frames = read_labelled_frames(root, labels)
        for name, fields in VIEW_SETS.items():
            target = work / f"{data}-{name}.npz"
            if target.exists():
                continue
            if backbone is None:
                backbone = load_backbone("efficientnet_lite0", device="cpu", runtime="auto")
            t0 = time.monotonic()
            views = ViewOptions(**fields) if fields is not None else None
            embedded = embed_labelled(
                frames,
                backbone,
                work / ".uncia-cache",
                False,
                60.0,
                batch_size=32,
                workers=workers,
                views=views,
            )
            ok = ~np.isnan(embedded.features).any(axis=1)
            logits = np.full((len(ok), 1000), np.nan, dtype=np.float32)
            logits[ok] = backbone.imagenet_logits(embedded.features[ok])
            table = embedded.frames
            n = table.num_rows
            kinds = embedded.kinds if embedded.kinds is not None else np.array(["whole"] * n)
            boxes = (
                embedded.boxes
                if embedded.boxes is not None
                else np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1))
            )
            moving = embedded.moving if embedded.moving is not None else np.zeros(len(ok), bool)
            np.savez_compressed(
                target,
                logits=logits,
                bag=embedded.bags,
                kinds=np.asarray(kinds, dtype=str),
                boxes=boxes,
                moving=moving,
                bursts=np.array(json.dumps([list(b) for b in embedded.bursts])),
            )
            meta = {
                "relative_path": table.column("relative_path").to_pylist(),
                "label": table.column("label").to_pylist(),
                "deployment": table.column("deployment").to_pylist(),
                "captured_at": [
                    None if t is None else t.isoformat()
                    for t in table.column("captured_at").to_pylist()
                ],
                "burst_id": table.column("burst_id").to_pylist(),
                "failure": table.column("failure").to_pylist(),
                "backbone": f"{backbone.name} ({backbone.runtime}, {backbone.precision})",
            }
            (work / f"{data}-{name}.json").write_text(json.dumps(meta) + "\n")
            print(
                f"{data} {name}: {len(ok)} views of {n} frames in {time.monotonic() - t0:.0f} s",
                flush=True,
            )


# ---------------------------------------------------------------- step 2: aggregations, offline

_GRID_SIZES = {
    (0.571, 0.571): "2x2",
    (0.4, 0.571): "3x2",
    (0.308, 0.4): "4x3",
    (0.25, 0.308): "5x4",
}


class Views:
    """Every cached view of one dataset: per row its frame, type (whole_mode, whole960, 2x2,
    3x2, 4x3, 5x4, motion, whole480, 3x2@480, 4x3@480), box, logits and probabilities."""

    def __init__(self, work: Path, data: str) -> None:
        frames: list[int] = []
        types: list[str] = []
        boxes, logits, moving = [], [], []
        self.bursts: list[list[int]] = []
        for name in VIEW_SETS:
            z = np.load(work / f"{data}-{name}.npz")
            ok = ~np.isnan(z["logits"]).any(axis=1)
            for kind, box in zip(z["kinds"][ok], z["boxes"][ok], strict=True):
                if name == "whole_mode":
                    types.append("whole_mode")
                elif kind == "whole":
                    types.append(f"whole{name[1:]}")
                elif kind == "motion":
                    types.append("motion")
                else:
                    grid = _GRID_SIZES[(round(float(box[2]), 3), round(float(box[3]), 3))]
                    types.append(grid if name == "w960" else f"{grid}@480")
            frames += z["bag"][ok].tolist()
            boxes.append(z["boxes"][ok])
            logits.append(z["logits"][ok])
            moving.append(z["moving"][ok])
            if name == "w960":
                self.bursts = json.loads(str(z["bursts"]))
        meta = json.loads((work / f"{data}-whole_mode.json").read_text())
        self.meta = meta
        self.n = len(meta["label"])
        self.frame = np.array(frames)
        self.type = np.array(types)
        self.box = np.concatenate(boxes).astype(np.float64)
        self.logits = np.concatenate(logits).astype(np.float64)
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        p = np.exp(shifted)
        p /= p.sum(axis=1, keepdims=True)
        self.prob = p
        self.score = {"felid": p[:, FELID_CLASSES].sum(axis=1), "p289": p[:, SNOW_LEOPARD]}
        failed = set(np.flatnonzero([f is not None for f in meta["failure"]]).tolist())
        self.ok = np.array([i not in failed for i in range(self.n)])


def _frames_of(views: Views, types: Sequence[str]) -> list[np.ndarray]:
    """Per frame, the row indices of its views of `types` (in row order)."""
    rows = np.flatnonzero(np.isin(views.type, list(types)))
    order = rows[np.argsort(views.frame[rows], kind="stable")]
    cuts = np.searchsorted(views.frame[order], np.arange(views.n + 1))
    return [order[cuts[i] : cuts[i + 1]] for i in range(views.n)]


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of box `a` with each box of `b` (left, top, width, height)."""
    w = np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]) - np.maximum(a[0], b[:, 0])
    h = np.minimum(a[1] + a[3], b[:, 1] + b[:, 3]) - np.maximum(a[1], b[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


Reducer = Callable[[Views, np.ndarray, str], float]


def _max(v: Views, rows: np.ndarray, score: str) -> float:
    return float(v.score[score][rows].max())


def _mean(v: Views, rows: np.ndarray, score: str) -> float:
    return float(v.score[score][rows].mean())


def _noisy_or(v: Views, rows: np.ndarray, score: str) -> float:
    return float(1.0 - np.prod(1.0 - v.score[score][rows]))


def _logit_mean(v: Views, rows: np.ndarray, score: str) -> float:
    """Average the views' 1000 logits, then softmax."""
    mean = v.logits[rows].mean(axis=0)
    p = np.exp(mean - mean.max())
    p /= p.sum()
    return float(p[list(FELID_CLASSES)].sum() if score == "felid" else p[SNOW_LEOPARD])


def _class_max(v: Views, rows: np.ndarray, score: str) -> float:
    """Each class's best probability over the views, then the class sum (a jaguar called
    'jaguar' in one tile and 'leopard' in another counts both)."""
    if score == "p289":
        return _max(v, rows, score)
    return float(v.prob[rows][:, list(FELID_CLASSES)].max(axis=0).sum())


def _top2(v: Views, rows: np.ndarray, score: str, geometric: bool) -> float:
    """The best view and the best other view overlapping it agree: their mean (or geometric
    mean). A frame with one view keeps it."""
    s = v.score[score][rows]
    best = int(np.argmax(s))
    others = np.delete(np.arange(len(rows)), best)
    if not len(others):
        return float(s[best])
    touching = others[_overlap(v.box[rows[best]], v.box[rows[others]]) > 0]
    second = float(s[touching].max()) if len(touching) else 0.0
    return float(np.sqrt(s[best] * second) if geometric else (s[best] + second) / 2)


def _gated(v: Views, rows: np.ndarray, score: str, power: float) -> float:
    """The best view times the frame's whole-view felid mass to `power` (the whole view is
    the first row of the frame: whole_mode or whole960)."""
    wholes = rows[np.char.startswith(v.type[rows], "whole")]
    gate = float(v.score["felid"][wholes].max()) if len(wholes) else 1.0
    return float(v.score[score][rows].max() * gate**power)


REDUCERS: dict[str, Reducer] = {
    "max": _max,
    "mean": _mean,
    "noisy_or": _noisy_or,
    "logit_mean": _logit_mean,
    "class_max": _class_max,
    "top2_mean": lambda v, r, s: _top2(v, r, s, False),
    "top2_geo": lambda v, r, s: _top2(v, r, s, True),
    "gate_whole": lambda v, r, s: _gated(v, r, s, 1.0),
    "gate_whole_sqrt": lambda v, r, s: _gated(v, r, s, 0.5),
}
VIEW_CHOICES: dict[str, tuple[str, ...]] = {
    "whole (mode)": ("whole_mode",),
    "whole 960": ("whole960",),
    "4x3 (default)": ("whole960", "4x3"),
    "4x3 + motion": ("whole960", "4x3", "motion"),
    "4x3 tiles only": ("4x3",),
    "2x2": ("whole960", "2x2"),
    "3x2": ("whole960", "3x2"),
    "5x4": ("whole960", "5x4"),
    "2x2+3x2": ("whole960", "2x2", "3x2"),
    "2x2+4x3": ("whole960", "2x2", "4x3"),
    "2x2+3x2+4x3": ("whole960", "2x2", "3x2", "4x3"),
    "2x2+3x2+4x3+5x4": ("whole960", "2x2", "3x2", "4x3", "5x4"),
    "2x2+3x2+4x3 + motion": ("whole960", "2x2", "3x2", "4x3", "motion"),
    "3x2 @480": ("whole480", "3x2@480"),
    "4x3 @480": ("whole480", "4x3@480"),
    "whole (mode) + 4x3": ("whole_mode", "4x3"),
}
KIND_TYPES = ("whole960", "2x2", "3x2", "4x3", "5x4", "motion")
BASELINE = "whole (mode)"


def fixed_scores(v: Views) -> dict[str, np.ndarray]:
    """Every unfitted aggregation's frame scores: `score|views|reducer` -> (N,) (NaN failed)."""
    out: dict[str, np.ndarray] = {}
    for choice, types in VIEW_CHOICES.items():
        per_frame = _frames_of(v, types)
        for score in ("felid", "p289"):
            for name, reduce in REDUCERS.items():
                if name == "class_max" and score == "p289":
                    continue
                if len(types) == 1 and name not in ("max",):
                    continue  # one view: every reducer is the view's score
                values = np.full(v.n, np.nan)
                for i, rows in enumerate(per_frame):
                    if len(rows) and v.ok[i]:
                        values[i] = reduce(v, rows, score)
                out[f"{score}|{choice}|{name}"] = values
    return out


def kind_maxima(v: Views, score: str) -> np.ndarray:
    """(N, kinds) each frame's best log-odds per view kind (KIND_TYPES; whole960 for absent
    motion: a frame without a burst has no motion crop)."""
    out = np.full((v.n, len(KIND_TYPES)), np.nan)
    for k, kind in enumerate(KIND_TYPES):
        for i, rows in enumerate(_frames_of(v, (kind,))):
            if len(rows):
                out[i, k] = _logit(v.score[score][rows]).max()
    missing = np.isnan(out)
    out[missing] = np.broadcast_to(out[:, :1], out.shape)[missing]
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Weights (with bias last) of an L2-regularized logistic regression, by Newton steps."""
    X = np.column_stack([x, np.ones(len(x))])
    w = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[-1] = 1e-6
    for _ in range(50):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (p - y) + reg * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fitted_scores(
    km: np.ndarray, truth: np.ndarray, train: np.ndarray, kinds: Sequence[int]
) -> dict[str, np.ndarray]:
    """Aggregations fitted on the `train` frames, scored on all: per-kind Platt scaling (each
    view kind's best log-odds mapped by its own a*x+b, then the max over kinds: a temperature
    and a bias per kind) and a logistic stack of the per-kind maxima."""
    x = km[:, list(kinds)]
    platt = np.empty_like(x)
    for j in range(x.shape[1]):
        a, b = _fit_logistic(x[train, j : j + 1], truth[train].astype(float))
        platt[:, j] = a * x[:, j] + b
    w = _fit_logistic(x[train], truth[train].astype(float))
    return {"kind_platt_max": platt.max(axis=1), "kind_stack": x @ w[:-1] + w[-1]}


def _recall_at(truth: np.ndarray, scores: np.ndarray, rate: float) -> tuple[float, int, float]:
    """Recall at false-positive rate `rate` (pipeline/training/metrics.py: a positive counts
    when it scores above the (allowed+1)-th best negative), how many negatives that allows
    above, and that threshold."""
    negatives = np.sort(scores[~truth])[::-1]
    allowed = int(np.floor(rate * negatives.size + 1e-9))
    recall = recall_at_false_positive_rate(truth, scores, rate)
    return float(recall or 0.0), allowed, float(negatives[min(allowed, negatives.size - 1)])


def figures(truth: np.ndarray, scores: np.ndarray, visits: Sequence[str]) -> dict[str, Any]:
    """AP and recall at RATES, by frame and by visit (a visit scores its best frame)."""
    keep = ~np.isnan(scores)
    truth, scores = truth[keep], scores[keep]
    kept_visits = [v for v, k in zip(visits, keep, strict=True) if k]
    out: dict[str, Any] = {"frame_ap": round(float(average_precision(truth, scores) or 0), 4)}
    for rate in RATES:
        recall, allowed, _ = _recall_at(truth, scores, rate)
        out[f"frame_recall_at_{rate:g}"] = round(recall, 4)
        out[f"negatives_above_at_{rate:g}"] = allowed
    names = sorted(set(kept_visits))
    index = {v: i for i, v in enumerate(names)}
    vs = np.full(len(names), -np.inf)
    vt = np.zeros(len(names), bool)
    for v, t, s in zip(kept_visits, truth, scores, strict=True):
        vs[index[v]] = max(vs[index[v]], s)
        vt[index[v]] |= t
    out["visit_ap"] = round(float(average_precision(vt, vs) or 0), 4)
    out["visit_recall_at_0.01"] = round(_recall_at(vt, vs, 0.01)[0], 4)
    out["visits"] = f"{int(vt.sum())} of {len(names)}"
    return out


def _choose(
    candidates: dict[str, np.ndarray], truth: np.ndarray, train: np.ndarray, rate: float
) -> str:
    """The candidate with the best recall at `rate` false positives on `train`, AP breaking
    ties, then the name (deterministic)."""

    def key(name: str) -> tuple[float, float, str]:
        s = candidates[name][train]
        ok = ~np.isnan(s)
        t = truth[train][ok]
        return (
            -_recall_at(t, s[ok], rate)[0],
            -float(average_precision(t, s[ok]) or 0.0),
            name,
        )

    return min(candidates, key=key)


def grouped_selection(
    fixed: dict[str, np.ndarray],
    km: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    score: str,
    rate: float = 0.01,
    baseline: str = BASELINE,
) -> dict[str, Any]:
    """Leave one group out: choose the aggregation (and fit the fitted ones) on the other
    groups, take its threshold at `rate` false positives on their negatives, and count the
    held-out group's cats and negatives above it; the same for the whole-frame `baseline`."""
    kinds = list(range(len(KIND_TYPES)))
    flagged = {"chosen": np.zeros(len(truth), bool), "baseline": np.zeros(len(truth), bool)}
    chosen: dict[str, int] = {}
    names = [k for k in fixed if k.startswith(f"{score}|")]
    for g in sorted(set(groups)):
        test = groups == g
        train = ~test & ~np.isnan(fixed[f"{score}|{BASELINE}|max"])
        candidates = {k: fixed[k] for k in names}
        fitted = fitted_scores(km, truth, train, kinds)
        candidates |= {f"{score}|fitted|{k}": s for k, s in fitted.items()}
        best = _choose(candidates, truth, train, rate)
        chosen[best] = chosen.get(best, 0) + 1
        for label, name in (("chosen", best), ("baseline", f"{score}|{baseline}|max")):
            s = candidates[name]
            _, _, threshold = _recall_at(truth[train], s[train], rate)
            flagged[label][test] = s[test] > threshold
    ok = ~np.isnan(fixed[f"{score}|{BASELINE}|max"])
    out: dict[str, Any] = {
        "groups": len(set(groups)),
        "baseline_views": baseline,
        "chosen_aggregations": chosen,
    }
    for label, f in flagged.items():
        out[label] = {
            "cats_flagged": int(f[ok & truth].sum()),
            "cats": int((ok & truth).sum()),
            "recall": round(float(f[ok & truth].mean()), 4),
            "negatives_flagged": int(f[ok & ~truth].sum()),
            "negatives": int((ok & ~truth).sum()),
        }
    base = out["baseline"]["recall"]
    out["ratio"] = round(out["chosen"]["recall"] / base, 3) if base else None
    return out


def bootstrap_ratio(
    scores: dict[str, np.ndarray],
    baseline: np.ndarray,
    truth: np.ndarray,
    groups: np.ndarray,
    draws: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Resample deployments with replacement; per candidate the spread of its recall at 1% FP
    over the baseline's (draws where the baseline finds no cat are left out)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    members = {g: np.flatnonzero(groups == g) for g in names}
    ratios: dict[str, list[float]] = {k: [] for k in scores}
    for _ in range(draws):
        rows = np.concatenate([members[names[j]] for j in rng.integers(0, len(names), len(names))])
        t = truth[rows]
        if t.all() or not t.any():
            continue
        base = _recall_at(t, baseline[rows], 0.01)[0]
        if base == 0:
            continue
        for k, s in scores.items():
            ratios[k].append(_recall_at(t, s[rows], 0.01)[0] / base)
    out = {}
    for k, r in ratios.items():
        a = np.array(r)
        out[k] = {
            "median": round(float(np.median(a)), 3),
            "p05": round(float(np.quantile(a, 0.05)), 3),
            "p95": round(float(np.quantile(a, 0.95)), 3),
            "share_at_least_2": round(float((a >= 2).mean()), 3),
            "draws": len(a),
        }
    return out


def dev_figures(dev: Views, dev_fixed: dict[str, np.ndarray], neg_max: dict[str, float]) -> dict:
    """Per aggregation on the development frames: leopard frames above the highest non-cat
    camera-trap picture and both empty frames (the most any threshold that flags none of them
    keeps), the empties' scores, and leopards at 0.15 (the default threshold today)."""
    truth = np.array([label == "snow_leopard" for label in dev.meta["label"]])
    out = {}
    for k, s in dev_fixed.items():
        ceiling = max(neg_max[k], float(s[~truth].max()))
        out[k] = {
            "leopards_above_all_negatives": int((s[truth] > ceiling).sum()),
            "leopards_at_0.15": int((s[truth] >= 0.15).sum()),
            "empties": [round(float(x), 4) for x in s[~truth]],
            "highest_non_cat_picture": round(neg_max[k], 4),
        }
    return out


def _source(deployment: str) -> str:
    first = deployment.split("/")[0]
    return "animl/Jaguar" if deployment.startswith("animl/Jaguar") else first


# Tiles carry more detail than the 224-px whole view only where a 4x3 tile (a 3.25th of the
# frame's width) is wider than 224 px.
FULL_RESOLUTION_SIDE = 730


def _pixel_sizes(files: Sequence[str]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for file in files:
        try:
            with Image.open(CAMERA_TRAPS / file) as image:
                out.append(image.size)
        except OSError:
            out.append(None)
    return out


def study(
    fixed: dict[str, np.ndarray],
    kms: dict[str, np.ndarray],
    truth: np.ndarray,
    groups: np.ndarray,
    sources: np.ndarray,
    visits: Sequence[str],
    keep: np.ndarray,
    draws: int,
    seed: int,
) -> dict[str, Any]:
    """The figures of every aggregation on the pictures `keep` (readable ones): in-sample,
    chosen by leave-one-group-out (deployments; sources), and the bootstrap spread."""
    idx = np.flatnonzero(keep)
    fx = {k: s[idx] for k, s in fixed.items()}
    km = {k: m[idx] for k, m in kms.items()}
    t, g, src = truth[idx], groups[idx], sources[idx]
    vis = [visits[i] for i in idx]
    out: dict[str, Any] = {
        "pictures": len(idx),
        "cats": int(t.sum()),
        "negatives": int((~t).sum()),
        "deployments": len(set(g)),
        "cat_deployments": len(set(g[t])),
    }
    in_sample = {k: figures(t, s, vis) for k, s in fx.items()}
    for score, m in km.items():  # fitted on every picture: in-sample, optimistic
        for k, s in fitted_scores(m, t, np.ones(len(t), bool), range(len(KIND_TYPES))).items():
            in_sample[f"{score}|fitted (in-sample)|{k}"] = figures(t, s, vis)
    for score in km:
        base = in_sample[f"{score}|{BASELINE}|max"]["frame_recall_at_0.01"]
        for k, f in in_sample.items():
            if k.startswith(f"{score}|"):
                f["ratio_at_0.01"] = round(f["frame_recall_at_0.01"] / base, 3) if base else None
    out["in_sample"] = in_sample
    out["leave_one_deployment_out"] = {
        score: grouped_selection(fx, km[score], t, g, score) for score in km
    }
    out["leave_one_source_out"] = {
        score: grouped_selection(fx, km[score], t, src, score) for score in km
    }
    out["bootstrap_over_deployments"] = {
        score: bootstrap_ratio(
            {k: s for k, s in fx.items() if k.startswith(f"{score}|")},
            fx[f"{score}|{BASELINE}|max"],
            t,
            g,
            draws,
            seed,
        )
        for score in km
    }
    # The whole view of the 960-px working frame, as a second whole-frame baseline: what a
    # tiled run scores as its whole view (`--views whole` decodes at a smaller scale).
    second = "whole 960"
    out["against_whole_960"] = {
        score: {
            "in_sample_ratio_at_0.01": {
                k: round(f["frame_recall_at_0.01"] / base, 3) if base else None
                for k, f in in_sample.items()
                if k.startswith(f"{score}|")
                for base in [in_sample[f"{score}|{second}|max"]["frame_recall_at_0.01"]]
            },
            "leave_one_deployment_out": grouped_selection(fx, km[score], t, g, score, 0.01, second),
            "leave_one_source_out": grouped_selection(fx, km[score], t, src, score, 0.01, second),
            "bootstrap_over_deployments": bootstrap_ratio(
                {k: s for k, s in fx.items() if k.startswith(f"{score}|")},
                fx[f"{score}|{second}|max"],
                t,
                g,
                draws,
                seed,
            ),
        }
        for score in km
    }
    return out


def analyse(work: Path, draws: int, seed: int) -> dict[str, Any]:
    cats, dev = Views(work, "cats"), Views(work, "dev")
    truth = np.array([label in CATS for label in cats.meta["label"]])
    groups = np.array(cats.meta["deployment"])
    sources = np.array([_source(d) for d in groups])
    visits = visit_ids(
        cats.meta["deployment"],
        [None if t is None else datetime.fromisoformat(t) for t in cats.meta["captured_at"]],
        cats.meta["burst_id"],
    )
    fixed = fixed_scores(cats)
    kms = {score: kind_maxima(cats, score) for score in ("felid", "p289")}
    ok = ~np.isnan(fixed[f"felid|{BASELINE}|max"])
    sizes = _pixel_sizes(cats.meta["relative_path"])
    full = np.array([s is not None and max(s) >= FULL_RESOLUTION_SIDE for s in sizes])
    results: dict[str, Any] = {
        "backbone": cats.meta["backbone"],
        "sources": sorted(set(sources)),
        "cats_by_long_side": {
            f">= {FULL_RESOLUTION_SIDE} px": int((truth & ok & full).sum()),
            f"< {FULL_RESOLUTION_SIDE} px": int((truth & ok & ~full).sum()),
            "100 x 75 px thumbnails": sum(
                bool(t) and s == (100, 75) for t, s in zip(truth, sizes, strict=True)
            ),
        },
        "negatives_by_long_side": {
            f">= {FULL_RESOLUTION_SIDE} px": int((~truth & ok & full).sum()),
            f"< {FULL_RESOLUTION_SIDE} px": int((~truth & ok & ~full).sum()),
        },
    }
    subsets = {"all": ok, "full_resolution": ok & full}
    for name, keep in subsets.items():
        results[name] = study(fixed, kms, truth, groups, sources, visits, keep, draws, seed)
    # Tiles only where they add detail: pictures under FULL_RESOLUTION_SIDE keep their
    # whole-frame score (a rule from geometry, not fitted).
    results["tiles_only_where_they_add_detail"] = {
        f"{score}|{name}": figures(
            truth[ok],
            np.where(full, fixed[f"{score}|{name}"], fixed[f"{score}|{BASELINE}|max"])[ok],
            [visits[i] for i in np.flatnonzero(ok)],
        )
        for score in ("felid", "p289")
        for name in ("4x3 (default)|max", "2x2+3x2+4x3|mean", "4x3 (default)|gate_whole")
    }
    dev_fixed = fixed_scores(dev)
    neg_max = {k: float(np.nanmax(s[~truth])) for k, s in fixed.items()}
    results["dev"] = dev_figures(dev, {k: dev_fixed[k] for k in fixed if k in dev_fixed}, neg_max)
    results["cat_size_proxy"] = cat_size_proxy(cats, truth)
    return results


def cat_size_proxy(v: Views, truth: np.ndarray) -> dict[str, int]:
    """Where each cat's felid mass peaks: on the whole frame or on tiles of which grid (a
    proxy for how much of the frame the cat fills, no boxes being labelled)."""
    order = ("whole960", "2x2", "3x2", "4x3", "5x4")
    per_frame = _frames_of(v, order)
    counts = dict.fromkeys(order, 0)
    for i in np.flatnonzero(truth & v.ok):
        rows = per_frame[i]
        counts[str(v.type[rows[np.argmax(v.score["felid"][rows])]])] += 1
    return counts


def summary_table(results: dict[str, Any], subset: str, score: str, names: Sequence[str]) -> str:
    """A markdown table of the in-sample figures and the bootstrap spread for `names`."""
    lines = [
        "| aggregation | cat AP | recall at 0.5% / 1% / 2% FP | x whole at 1% (bootstrap 5-95%) "
        "| visit AP, recall at 1% | dev leopards above every negative |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        f = results[subset]["in_sample"][f"{score}|{name}"]
        b = results[subset]["bootstrap_over_deployments"][score].get(f"{score}|{name}")
        d = results["dev"].get(f"p289|{name}")
        spread = f" ({b['p05']}-{b['p95']})" if b else ""
        lines.append(
            f"| {name} | {f['frame_ap']} | {f['frame_recall_at_0.005']} / "
            f"{f['frame_recall_at_0.01']} / {f['frame_recall_at_0.02']} | "
            f"{f['ratio_at_0.01']}{spread} | {f['visit_ap']}, {f['visit_recall_at_0.01']} | "
            f"{d['leopards_above_all_negatives'] if d else '-'} |"
        )
    return "\n".join(lines)


SHOWN = (f"{BASELINE}|max", "whole 960|max", "4x3 (default)|max", "4x3 + motion|max")


def compact(results: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """The figures worth committing: per subset and score the baselines, the default, each
    reducer's best view choice and the `top` aggregations by in-sample recall at 1% FP (all
    of them stay in the full json under bench/work)."""
    out = {k: v for k, v in results.items() if k not in ("all", "full_resolution", "dev")}
    keep_dev: set[str] = set()
    for subset in ("all", "full_resolution"):
        block = results[subset]
        small = {
            k: v
            for k, v in block.items()
            if k not in ("in_sample", "bootstrap_over_deployments", "against_whole_960")
        }
        small["against_whole_960"] = {}
        small["in_sample"], small["bootstrap_over_deployments"] = {}, {}
        for score in ("felid", "p289"):
            figs = {k: v for k, v in block["in_sample"].items() if k.startswith(f"{score}|")}

            def rank(k: str, figs: dict[str, Any] = figs) -> tuple[float, float]:
                return (-figs[k]["frame_recall_at_0.01"], -figs[k]["frame_ap"])

            names = [f"{score}|{n}" for n in SHOWN]
            names += sorted(figs, key=rank)[:top]
            for reducer in [*REDUCERS, "kind_platt_max", "kind_stack"]:
                mine = [k for k in figs if k.endswith(f"|{reducer}")]
                if mine:
                    names.append(min(mine, key=rank))
            names = list(dict.fromkeys(n for n in names if n in figs))
            small["in_sample"] |= {n: figs[n] for n in names}
            boot = block["bootstrap_over_deployments"][score]
            small["bootstrap_over_deployments"] |= {n: boot[n] for n in names if n in boot}
            second = block["against_whole_960"][score]
            small["against_whole_960"][score] = {
                "in_sample_ratio_at_0.01": {
                    n: second["in_sample_ratio_at_0.01"][n]
                    for n in names
                    if n in second["in_sample_ratio_at_0.01"]
                },
                "leave_one_deployment_out": second["leave_one_deployment_out"],
                "leave_one_source_out": second["leave_one_source_out"],
                "bootstrap_over_deployments": {
                    n: second["bootstrap_over_deployments"][n]
                    for n in names
                    if n in second["bootstrap_over_deployments"]
                },
            }
            keep_dev.update(f"p289|{n.split('|', 1)[1]}" for n in names)
        out[subset] = small
    out["dev"] = {k: v for k, v in results["dev"].items() if k in keep_dev}
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.felid_aggregation", description=__doc__)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="decoding threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.draws < 10 or args.workers < 1:
        print("--draws must be at least 10 and --workers at least 1", file=sys.stderr)
        return 2
    if not CAMERA_TRAPS.is_dir() or not SNOW_LEOPARD_DEV.is_dir():
        print(f"{CAMERA_TRAPS} or {SNOW_LEOPARD_DEV} is absent", file=sys.stderr)
        return 2
    started = time.time()
    collect(args.work.absolute(), args.workers)
    results = analyse(args.work.absolute(), args.draws, args.seed)
    results["finished_at"] = datetime.now().isoformat(timespec="seconds")
    results["seconds"] = round(time.time() - started, 1)
    results["machine"] = machine_info()
    for subset in ("all", "full_resolution"):
        block = results[subset]
        for score in ("felid", "p289"):
            ranked = sorted(
                (k.split("|", 1)[1] for k in block["in_sample"] if k.startswith(f"{score}|")),
                key=lambda k: -block["in_sample"][f"{score}|{k}"]["frame_recall_at_0.01"],
            )
            print(
                f"\n{subset} ({block['cats']} cats, {block['negatives']} negatives), {score}: "
                "top 10 in-sample by recall at 1% FP (chosen on these cats: optimistic)"
            )
            top = [*SHOWN, *ranked[:10]]
            print(summary_table(results, subset, score, top))
            for how in ("leave_one_deployment_out", "leave_one_source_out"):
                print(f"{how}: {json.dumps(block[how][score])}")
    full = args.work.absolute() / "results-full.json"
    write_json_atomically(full, results)
    write_json_atomically(args.out, compact(results))
    print(f"wrote {full}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
