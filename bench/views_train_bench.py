"""`python -m bench.views_train_bench`: does looking at views (pipeline/stages/views.py) help
zero-shot scoring and trained heads on real frames? Figures: bench/results/views_train.json.

(a) Zero-shot (efficientnet_lite0, ImageNet class 289 for snow leopards; summed cat classes are
not used: the cats are scored by class 289 too) with `uncia evaluate --compare-views`: whole
frame, tiles, tiles+motion side by side, on ../shared/data/snow-leopard-dev (18 leopard frames,
2 empty, one visit) and on ../shared/data/camera-traps (cats against the rest, each picture once,
bench/cats_vs_rest.py).
(b) `uncia train` on camera-traps cats against the rest, a head on whole frames next to a head
on views (multiple-instance learning), on one grouped split (deployments held out) and over
grouped k-fold cross-validation (every picture scored by heads that never saw its deployment).
(c) The cats heads of (b), trained on every camera-trap picture, on the snow-leopard frames
(out of domain: indicative only).
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `uncia` sets it, before torch loads

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.__main__ import machine_info, write_json_atomically
from bench.cats_vs_rest import CAMERA_TRAPS, CATS, picture_rows, write_labels

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "views-train"
RESULTS = ROOT / "bench" / "results" / "views_train.json"
SNOW_LEOPARD_DEV = CAMERA_TRAPS.parent / "snow-leopard-dev"
HEADS = ("whole", "tiles")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.views_train_bench", description=__doc__)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--folds", type=int, default=5, help="outer cross-validation folds")
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--heads",
        default=",".join(HEADS),
        help="view modes to train heads on, comma-separated (whole,tiles,tiles+motion)",
    )
    parser.add_argument("--skip-cv", action="store_true", help="only the single split")
    return parser.parse_args(argv)


def _compact(block: dict[str, Any]) -> dict[str, Any]:
    """The figures of one compare-views mode, rounded."""

    def r(x: Any) -> Any:
        return round(x, 4) if isinstance(x, float) else x

    return {
        "threshold": r(block["threshold"]),
        **{
            f"{level}_{k}": r(block[level][k])
            for level in ("frame", "visit")
            for k in ("n", "positives", "average_precision", "recall", "recall_at_1pct_fp")
        },
        "best_view_of_positives": block["best_view_of_positives"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.stages.embed import load_backbone
    from pipeline.training.evaluate import EvaluateOptions, evaluate
    from pipeline.training.evaluate_views import view_block
    from pipeline.training.splits import grouped_folds, grouped_holdout
    from pipeline.training.train import TrainOptions, train_model

    args = parse_args(argv)
    if not CAMERA_TRAPS.is_dir() or not SNOW_LEOPARD_DEV.is_dir():
        print(f"{CAMERA_TRAPS} or {SNOW_LEOPARD_DEV} is absent", file=sys.stderr)
        return 2
    heads = tuple(args.heads.split(","))
    started, load_before = time.time(), os.getloadavg()[0]
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    cache = work / ".uncia-cache"
    log = open(work / "log.txt", "a")  # noqa: SIM115 - one log for the whole measurement
    backbone = load_backbone("efficientnet_lite0", device="cpu", runtime="auto")
    quiet: dict[str, Any] = {"progress": False, "cache_dir": cache}
    rows = picture_rows()
    groups = [r["deployment"] for r in rows]
    truth = np.array([r["label"] in CATS for r in rows])
    all_csv = write_labels(work / "all.csv", rows)
    results: dict[str, Any] = {
        "backbone": f"{backbone.name} ({backbone.runtime}, {backbone.precision})",
        "camera_traps": {
            "pictures": len(rows),
            "cats": int(truth.sum()),
            "deployments": len(set(groups)),
        },
    }

    def step(name: str) -> None:
        print(f"[{time.time() - started:7.1f} s] {name}", flush=True)

    def zero_shot(images: Path, labels: Path, positive: tuple[str, ...], out: str) -> dict:
        done = evaluate(
            EvaluateOptions(
                images_root=images,
                labels=labels,
                out_dir=work / out,
                zero_shot=True,
                backbone="efficientnet_lite0",
                positive=positive,
                compare_views=True,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        return {m: _compact(b) for m, b in done.report["compare_views"].items()}

    def train(labels: Path, out: str, views: str, **extra: Any) -> Path:
        t0 = time.monotonic()
        summary = train_model(
            TrainOptions(
                images_root=CAMERA_TRAPS,
                labels=labels,
                out_dir=work / out,
                backbone="efficientnet_lite0",
                positive=CATS,
                views=views,
                **extra,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        print(f"  trained {out} ({views}) in {time.monotonic() - t0:.0f} s", flush=True)
        return summary.model_dir

    def scored(model: Path, images: Path, labels: Path, out: str, **extra: Any) -> dict:
        done = evaluate(
            EvaluateOptions(
                images_root=images,
                labels=labels,
                out_dir=work / out,
                model_dir=model,
                compare_views=True,
                **extra,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        report = done.report
        return {
            "views": report["model"]["views"]["views"],
            "threshold": round(report["threshold"], 4),
            "on_own_views": _compact(report["compare_views"][report["model"]["views"]["views"]]),
            "compare_views": {m: _compact(b) for m, b in report["compare_views"].items()},
        }

    # (a) zero-shot, three view modes side by side
    step("(a) zero-shot on snow-leopard-dev")
    results["zero_shot_snow_leopard_dev"] = zero_shot(
        SNOW_LEOPARD_DEV, SNOW_LEOPARD_DEV / "labels.csv", ("snow_leopard",), "zs-dev"
    )
    step("(a) zero-shot on camera-traps")
    results["zero_shot_camera_traps_cats"] = zero_shot(CAMERA_TRAPS, all_csv, CATS, "zs-cats")

    # (b1) one grouped split: heads on whole frames and on views, tested on unseen deployments
    test = grouped_holdout(groups, truth.astype(int).tolist(), args.test_fraction, args.seed)
    train_csv = write_labels(
        work / "train.csv", [r for r, t in zip(rows, test, strict=True) if not t]
    )
    test_csv = write_labels(work / "test.csv", [r for r, t in zip(rows, test, strict=True) if t])
    split: dict[str, Any] = {
        "train_pictures": int((~test).sum()),
        "test_pictures": int(test.sum()),
        "test_cats": int(truth[test].sum()),
        "test_deployments": len(set(np.array(groups)[test])),
    }
    for views in heads:
        step(f"(b) split: head on {views}")
        model = train(train_csv, f"split-{views}", views)
        split[f"head_{views}"] = scored(model, CAMERA_TRAPS, test_csv, f"split-{views}-report")
    results["trained_split"] = split

    # (b2) grouped k-fold: every picture scored by heads that never saw its deployment
    if not args.skip_cv:
        fold = grouped_folds(groups, truth.astype(int).tolist(), args.folds, args.seed)
        pooled: dict[str, list[pa.Table]] = {v: [] for v in heads}
        per_fold: list[dict[str, Any]] = []
        for k in range(int(fold.max()) + 1):
            fold_train = write_labels(
                work / f"cv{k}-train.csv", [r for r, f in zip(rows, fold, strict=True) if f != k]
            )
            fold_test = write_labels(
                work / f"cv{k}-test.csv", [r for r, f in zip(rows, fold, strict=True) if f == k]
            )
            row: dict[str, Any] = {"fold": k, "pictures": int((fold == k).sum())}
            for views in heads:
                step(f"(b) fold {k}: head on {views}")
                model = train(fold_train, f"cv{k}-{views}", views, test_fraction=0.0)
                out = f"cv{k}-{views}-report"
                row[views] = scored(model, CAMERA_TRAPS, fold_test, out)["on_own_views"]
                pooled[views].append(pq.read_table(work / out / "frames.parquet"))
            per_fold.append(row)
        cv: dict[str, Any] = {"folds": len(per_fold), "per_fold": per_fold}
        for views in heads:
            table = pa.concat_tables(pooled[views])
            table = table.filter(pa.compute.is_valid(table.column("score")))
            positive = table.column("positive").to_numpy(zero_copy_only=False).astype(bool)
            score = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
            flagged = table.column("flagged").to_numpy(zero_copy_only=False).astype(bool)
            block = view_block(positive, score, 0.5)
            cv[f"head_{views}"] = {
                "pooled_ap": round(block["average_precision"], 4),
                "pooled_recall_at_1pct_fp": round(block["recall_at_1pct_fp"], 4),
                "pooled_recall_at_own_thresholds": round(float(flagged[positive].mean()), 4),
                "pooled_false_positives_at_own_thresholds": int(flagged[~positive].sum()),
                "mean_fold_ap": round(
                    float(np.mean([r[views]["frame_average_precision"] for r in per_fold])), 4
                ),
                "mean_fold_recall_at_1pct_fp": round(
                    float(np.mean([r[views]["frame_recall_at_1pct_fp"] or 0.0 for r in per_fold])),
                    4,
                ),
            }
        results["trained_cross_validation"] = cv

    # (c) cats heads trained on every camera-trap picture, on the snow-leopard frames
    out_of_domain: dict[str, Any] = {}
    for views in heads:
        step(f"(c) cats head on {views}, all pictures, on snow-leopard-dev")
        model = train(all_csv, f"all-{views}", views, test_fraction=0.0)
        out_of_domain[f"head_{views}"] = scored(
            model,
            SNOW_LEOPARD_DEV,
            SNOW_LEOPARD_DEV / "labels.csv",
            f"all-{views}-dev",
            positive=("snow_leopard",),
        )
    results["cats_heads_on_snow_leopard_dev"] = out_of_domain

    results["finished_at"] = datetime.now().isoformat(timespec="seconds")
    results["seconds"] = round(time.time() - started, 1)
    results["load_average_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    results["machine"] = machine_info()
    print(json.dumps(results, indent=2))
    write_json_atomically(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
