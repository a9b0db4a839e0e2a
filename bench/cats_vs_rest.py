"""`python -m bench.cats_vs_rest`: zero-shot against a trained head on the real photographs in
../shared/data/camera-traps, cats (leopard cat, jaguar, leopard, ocelot, cougar, …) against
everything else, with every split grouped by station / source folder.

Each picture counts once (byte copies and re-tagged copies of one picture are merged, using
labels.csv `duplicate_of` / `same_picture_as`); `unknown` and `unidentified` frames are left
out. Two figures: one grouped train/test split through `uncia train` + `uncia evaluate`, and
grouped k-fold cross-validation pooled over every picture.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CAMERA_TRAPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "camera-traps"
CATS = ("leopard_cat", "jaguar", "leopard", "ocelot", "cougar", "wildcat", "bobcat", "caracal")
UNLABELLED = {"unknown", "unidentified"}


def _deployment(file: str) -> str:
    """Station for camtrapR and the jaguar cameras; the source folder for the rest."""
    parts = file.split("/")
    station = re.search(r"(Station[A-C])", file)
    if parts[0] == "jniedballa-camtrapR" and station:
        return f"camtrapR/{station.group(1)}"
    if "/Jaguar/" in file:
        return "animl/Jaguar/" + parts[-1].split("_")[0]
    return "/".join(parts[:-1])


def picture_rows(root: Path = CAMERA_TRAPS) -> list[dict[str, str]]:
    """One row (file, label, deployment) per distinct labelled picture."""
    with (root / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    key = {f"{r['source_repo']}:{r['path_in_source']}": r["file"] for r in rows}
    parent = {r["file"]: r["file"] for r in rows}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in rows:
        for ref in (r["duplicate_of"], r["same_picture_as"]):
            for one in filter(None, (s.strip() for s in ref.split(";"))):
                if one in key:
                    parent[find(r["file"])] = find(key[one])
    clusters: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        clusters.setdefault(find(r["file"]), []).append(r)
    out = []
    for members in clusters.values():
        known = [m for m in members if m["label"] not in UNLABELLED]
        if not known or len({m["label"] for m in known}) > 1:
            continue
        first = sorted(known, key=lambda m: m["file"])[0]
        out.append(
            {
                "file": first["file"],
                "label": first["label"],
                "deployment": _deployment(first["file"]),
            }
        )
    return sorted(out, key=lambda r: r["file"])


def write_labels(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label", "deployment"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    f, b = report["frame"], report["burst"]["max"]
    pick = ("precision", "recall", "f1", "average_precision")
    return {
        "threshold": report["threshold"],
        "frames": {k: f[k] for k in pick} | f["confusion"],
        "bursts_max": {k: b[k] for k in pick} | b["confusion"],
        "bursts_noisy_or_ap": report["burst"]["noisy_or"]["average_precision"],
        "bursts_mean_ap": report["burst"]["mean"]["average_precision"],
        "review_open_fraction": report["review"]["frame_level"]["open_fraction"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.stages.embed import load_backbone
    from pipeline.training.evaluate import EvaluateOptions, build_report, evaluate
    from pipeline.training.metrics import confusion
    from pipeline.training.splits import grouped_folds, grouped_holdout
    from pipeline.training.train import TrainOptions, train_model

    parser = argparse.ArgumentParser(prog="python -m bench.cats_vs_rest", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("bench/work/cats"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not CAMERA_TRAPS.is_dir():
        print(f"{CAMERA_TRAPS} is absent", file=sys.stderr)
        return 2
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    cache = work / ".uncia-cache"
    rows = picture_rows()
    groups = [r["deployment"] for r in rows]
    truth = np.array([r["label"] in CATS for r in rows])
    backbone = load_backbone("efficientnet_lite0", device="cpu")
    quiet = {"progress": False, "cache_dir": cache}
    log = open(work / "log.txt", "w")  # noqa: SIM115 - one log for the whole measurement
    results: dict[str, Any] = {
        "pictures": len(rows),
        "cats": int(truth.sum()),
        "deployments": len(set(groups)),
    }

    # 1. One grouped train/test split, through the same functions as the CLI.
    test = grouped_holdout(groups, truth.astype(int).tolist(), args.test_fraction, args.seed)
    train_csv = write_labels(
        work / "train.csv", [r for r, t in zip(rows, test, strict=True) if not t]
    )
    test_csv = write_labels(work / "test.csv", [r for r, t in zip(rows, test, strict=True) if t])
    for run in ("cold", "warm"):
        t0 = time.monotonic()
        trained = train_model(
            TrainOptions(
                images_root=CAMERA_TRAPS,
                labels=train_csv,
                out_dir=work / "model",
                backbone="efficientnet_lite0",
                positive=CATS,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        results[f"train_{run}"] = {
            "seconds": round(time.monotonic() - t0, 2),
            "decoded": trained.decoded,
            "cache_hits": trained.cache_hits,
        }
    split: dict[str, Any] = {
        "train_pictures": int((~test).sum()),
        "test_pictures": int(test.sum()),
        "test_cats": int(truth[test].sum()),
        "test_deployments": sorted(set(np.array(groups)[test])),
    }
    for name, extra in (
        ("zero_shot", {"zero_shot": True, "backbone": "efficientnet_lite0"}),
        ("trained", {"model_dir": work / "model"}),
    ):
        done = evaluate(
            EvaluateOptions(
                images_root=CAMERA_TRAPS,
                labels=test_csv,
                out_dir=work / f"report-{name}",
                positive=CATS,
                **extra,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        split[name] = _figures(done.report)
    results["split"] = split

    # 2. Grouped k-fold cross-validation: every picture scored by a head that never saw its
    # deployment, next to zero-shot on the same pictures. Per fold (each head at its own
    # threshold), and pooled over the folds (raw ranking across heads: AP only indicative).
    fold = grouped_folds(groups, truth.astype(int).tolist(), args.folds, args.seed)
    per_fold: list[dict[str, Any]] = []
    pooled: dict[str, list[pa.Table]] = {"trained": [], "zero_shot": []}
    for k in range(int(fold.max()) + 1):
        fold_train = write_labels(
            work / f"cv{k}-train.csv", [r for r, f in zip(rows, fold, strict=True) if f != k]
        )
        fold_test = write_labels(
            work / f"cv{k}-test.csv", [r for r, f in zip(rows, fold, strict=True) if f == k]
        )
        train_model(
            TrainOptions(
                images_root=CAMERA_TRAPS,
                labels=fold_train,
                out_dir=work / f"cv{k}-model",
                backbone="efficientnet_lite0",
                positive=CATS,
                test_fraction=0.0,
                **quiet,
            ),
            log=log,
            backbone=backbone,
        )
        row: dict[str, Any] = {"fold": k, "pictures": int((fold == k).sum())}
        for name, extra in (
            ("zero_shot", {"zero_shot": True, "backbone": "efficientnet_lite0"}),
            ("trained", {"model_dir": work / f"cv{k}-model"}),
        ):
            out = work / f"cv{k}-report-{name}"
            done = evaluate(
                EvaluateOptions(
                    images_root=CAMERA_TRAPS,
                    labels=fold_test,
                    out_dir=out,
                    positive=CATS,
                    **extra,
                    **quiet,
                ),
                log=log,
                backbone=backbone,
            )
            row[name] = _figures(done.report)
            pooled[name].append(pq.read_table(out / "frames.parquet"))
        per_fold.append(row)
    summary: dict[str, Any] = {"folds": len(per_fold), "per_fold": per_fold}
    for name in ("zero_shot", "trained"):
        for level in ("frames", "bursts_max"):
            for metric in ("average_precision", "precision", "recall", "f1"):
                values = [r[name][level][metric] for r in per_fold]
                values = [v if v is not None else 0.0 for v in values]
                summary[f"{name}_{level}_{metric}_mean"] = round(float(np.mean(values)), 4)
        table = pa.concat_tables(pooled[name]).filter(pa.compute.field("score").is_valid())
        flagged = table.column("flagged").to_numpy(zero_copy_only=False).astype(bool)
        positive = table.column("positive").to_numpy(zero_copy_only=False).astype(bool)
        counts = confusion(positive, flagged)
        tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
        summary[f"{name}_pooled_at_own_thresholds"] = counts | {
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None,
        }
        info = {
            "name": name,
            "kind": name,
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "positive_labels": list(CATS),
        }
        summary[f"{name}_pooled_ap"] = build_report(table, 0.5, info)["frame"]["average_precision"]
    results["cross_validation"] = summary
    print(json.dumps(results, indent=2))
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
