"""`uncia train`, `uncia evaluate` and `uncia run --model` end to end: generated JPEGs, the real
offline efficientnet_lite0, real files in the model, report and store folders."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import deployment, open_store, write_deployments
from tests.train_fixtures import Survey, make_survey
from tests.train_fixtures import uncia_in_process as uncia

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Survey:
    return make_survey(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def trained(survey: Survey, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Train twice into the same model folder; return it and both runs' stdout."""
    models = tmp_path_factory.mktemp("models")
    args = [
        "train",
        "--images",
        survey.root,
        "--labels",
        survey.labels,
        "--out",
        models / "m1",
        "--backbone",
        "efficientnet_lite0",
        "--folds",
        "3",
        "--no-progress",
    ]
    first = uncia(*args).stdout
    second = uncia(*args).stdout
    return models / "m1", [first, second]


def test_second_training_run_decodes_nothing(
    trained: tuple[Path, list[str]], survey: Survey
) -> None:
    model_dir, (first, second) = trained
    assert f"0 from cache, {survey.n_frames} decoded" in first
    assert f"{survey.n_frames} from cache, 0 decoded" in second
    parts = list(
        (model_dir.parent / ".uncia-cache").glob("efficientnet_lite0-*-224px-*/part-*.parquet")
    )
    assert parts  # the default cache sits beside the model folder
    cached = pq.read_table(parts[0])
    assert set(cached.column("flip").to_pylist()) == {False, True}  # mirror images cached too
    # Same frames and options: the same training-set hash, so the same model name.
    names = [re.search(r"model (head-[0-9a-f]{12})", out).group(1) for out in (first, second)]
    assert names[0] == names[1]


def test_model_folder_holds_head_threshold_backbone_and_metrics(
    trained: tuple[Path, list[str]], survey: Survey
) -> None:
    model_dir, _ = trained
    card = json.loads((model_dir / "model.json").read_text())
    assert card["name"] == f"head-{card['training_set_sha256'][:12]}"
    assert card["backbone"] == "efficientnet_lite0" and len(card["weights_sha256"]) == 64
    assert card["classes"] == ["not_snow_leopard", "snow_leopard"]
    assert card["positive_labels"] == ["snow_leopard"]
    assert 0.0 < card["threshold"] < 1.0 and card["target_recall"] == 0.95
    assert set(card["calibration"]) == {"a", "b"}
    validation = card["metrics"]["validation"]["frame"]
    assert validation["recall"] >= 0.95  # the threshold was chosen for it
    with np.load(model_dir / "head.npz", allow_pickle=False) as head:
        assert head["coef"].shape == (1, 1280) and head["mean"].shape == (1280,)
    frames = pq.read_table(model_dir / "training_frames.parquet").to_pylist()
    assert len(frames) == survey.n_frames
    by_split: dict[str, set[str]] = {"train": set(), "test": set()}
    bursts: dict[str, set[str]] = {"train": set(), "test": set()}
    for row in frames:
        by_split[row["split"]].add(row["deployment"])
        bursts[row["split"]].add(row["burst_id"])
    assert by_split["test"] and not by_split["train"] & by_split["test"]
    assert not bursts["train"] & bursts["test"]
    assert all(
        len({r["burst_id"] for r in frames if r["deployment"] == d}) == 3
        for d in survey.deployments
    )


def test_evaluate_writes_consistent_json_and_self_contained_html(
    trained: tuple[Path, list[str]], survey: Survey, tmp_path: Path
) -> None:
    model_dir, _ = trained
    out = tmp_path / "report"
    uncia(
        "evaluate",
        "--model",
        model_dir,
        "--images",
        survey.root,
        "--labels",
        survey.labels,
        "--out",
        out,
        "--cache",
        model_dir.parent / ".uncia-cache",
        "--no-progress",
    )
    report = json.loads((out / "report.json").read_text())
    frame = report["frame"]
    c = frame["confusion"]
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == survey.n_frames == report["data"]["frames"]
    assert c["tp"] + c["fn"] == len(survey.leopard_files)
    assert frame["recall"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    assert frame["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    assert frame["average_precision"] > 0.9  # spotted coats against plain ground: easy
    assert report["data"]["bursts"] == survey.n_bursts
    assert set(report["burst"]) == {"max", "mean", "noisy_or"}
    for block in report["burst"].values():
        assert block["n"] == survey.n_bursts and block["positives"] == len(survey.deployments)
    review = report["review"]["frame_level"]
    assert review["to_open"] == c["tp"] + c["fp"]
    assert review["saved_fraction"] == pytest.approx(1 - review["to_open"] / survey.n_frames)
    assert [d["deployment"] for d in report["per_deployment"]] == survey.deployments
    assert sum(d["n"] for d in report["per_deployment"]) == survey.n_frames
    assert report["data"]["seen_in_training"] > 0  # evaluated on its own training frames
    html = (out / "report.html").read_text()
    png = (out / "pr_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html
    assert "were used to train" in html  # the optimism warning
    assert not re.search(r"(src|href)=\"(?!data:)", html)  # nothing outside the file
    frames = pq.read_table(out / "frames.parquet")
    assert frames.num_rows == survey.n_frames


def test_zero_shot_baseline_gets_the_same_report(
    trained: tuple[Path, list[str]], survey: Survey, tmp_path: Path
) -> None:
    out = tmp_path / "zero"
    cache = trained[0].parent / ".uncia-cache"  # the embeddings are the same: no decoding
    result = uncia(
        "evaluate",
        "--zero-shot",
        "--backbone",
        "efficientnet_lite0",
        "--images",
        survey.root,
        "--labels",
        survey.labels,
        "--out",
        out,
        "--positive",
        "snow_leopard",
        "--cache",
        cache,
        "--no-progress",
    )
    assert "zeroshot-imagenet-289" in result.stdout
    assert f"{survey.n_frames} from cache, 0 decoded" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["kind"] == "zero-shot" and report["threshold"] == 0.5
    assert report["frame"]["n"] == survey.n_frames and report["data"]["seen_in_training"] is None
    assert (out / "report.html").exists() and (out / "pr_curve.png").exists()


def test_run_with_model_records_the_head_and_its_threshold(
    trained: tuple[Path, list[str]], survey: Survey, tmp_path: Path
) -> None:
    model_dir, _ = trained
    card = json.loads((model_dir / "model.json").read_text())
    csv = write_deployments(tmp_path / "d.csv", [deployment(d) for d in survey.deployments])
    out = tmp_path / "store"
    # No --backbone: the model brings its own (efficientnet_lite0) and its threshold.
    uncia(
        "run",
        survey.root,
        "--deployments",
        csv,
        "--out",
        out,
        "--model",
        model_dir,
        "--tta-flip",
        "--no-progress",
    )
    con = open_store(out)
    rows = con.execute(
        "SELECT file_path, score, model_name, top5_labels FROM detections"
    ).fetchall()
    assert len(rows) == survey.n_frames
    assert {r[2] for r in rows} == {card["name"]}
    leopards = {str(survey.root / f) for f in survey.leopard_files}
    spotted = [score for path, score, _, _ in rows if path in leopards]
    plain = [score for path, score, _, _ in rows if path not in leopards]
    assert min(spotted) > max(plain)
    assert set(rows[0][3]) == {"snow_leopard", "not_snow_leopard"}
    (run,) = con.execute("SELECT model_name, leopard_threshold, options_json FROM runs").fetchall()
    assert run[0] == card["name"] and run[1] == pytest.approx(card["threshold"], rel=1e-6)
    assert json.loads(run[2])["tta_flip"] is True


def test_labels_without_the_positive_class_are_one_clear_line(
    survey: Survey, tmp_path: Path
) -> None:
    result = uncia(
        "train",
        "--images",
        survey.root,
        "--labels",
        survey.labels,
        "--out",
        tmp_path / "m",
        "--backbone",
        "efficientnet_lite0",
        "--positive",
        "ibex",
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--positive" in lines[0] and "snow_leopard" in lines[0]
