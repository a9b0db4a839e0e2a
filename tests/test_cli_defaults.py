"""Every `uncia` command the way its docs show it first: only its required arguments, through
the installed command, on a folder or store made the way a user makes one. tests/test_docs.py
fails when a command has no `test_uncia_<command>_with_only_its_required_arguments` here.

The commands run offline (a dead proxy, an empty torch hub cache), as on a field laptop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cli.main import build_parser
from dashboard.serving.auth import verify_password
from pipeline.interop.coco import validate_coco_camera_traps
from pipeline.interop.megadetector_validate import validate_batch_results
from pipeline.stages.infobar import tesseract_available
from tests.helpers import (
    UNCIA,
    announced_port,
    deployment,
    drawn_frame,
    open_store,
    uncia,
    write_deployments,
)
from tests.train_fixtures import plain_jpeg, spotted_jpeg

pytestmark = pytest.mark.model
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
T0 = datetime(2024, 3, 1, 5, 0, 0)
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: connections are refused at once
N_DEPLOYMENTS, SURVEYED = 5, ("CAM-1",)
LEOPARDS_PER_DEPLOYMENT = EMPTY_PER_DEPLOYMENT = 2


@dataclass(frozen=True)
class Survey:
    images: Path  # ROOT/<deploymentID>/*.JPG: what `uncia run` reads
    deployments: Path
    labelled: Path  # ROOT/<label>/<deploymentID>/*.JPG: what `uncia train` reads without --labels


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Our environment without a network or a torch hub cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    env.update(
        TORCH_HOME=str(tmp_path_factory.mktemp("torch-home")),
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
    )
    return env


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> Survey:
    """Five cameras, each with a burst of spotted-coat frames and an empty burst an hour later;
    the labelled tree holds all five, the survey to classify the first two."""
    base = tmp_path_factory.mktemp("defaults")
    seed = 0
    for d in range(N_DEPLOYMENTS):
        dep = f"CAM-{d + 1}"
        frames = [("snow_leopard", spotted_jpeg)] * LEOPARDS_PER_DEPLOYMENT + [
            ("empty", plain_jpeg)
        ] * EMPTY_PER_DEPLOYMENT
        for i, (label, make) in enumerate(frames):
            seed += 1
            when = T0 + timedelta(days=d, hours=int(label == "empty"), seconds=2 * i)
            picture = make(seed, when)
            folders = [base / "labelled" / label / dep]
            if dep in SURVEYED:
                folders.append(base / "images" / dep)
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"IMG_{i:04d}.JPG").write_bytes(picture)
    csv = write_deployments(base / "deployments.csv", [deployment(d) for d in SURVEYED])
    return Survey(base / "images", csv, base / "labelled")


@pytest.fixture(scope="module")
def model(survey: Survey, offline: dict[str, str]) -> tuple[Path, str]:
    """`uncia train` with the offline backbone; the model folder and what it printed."""
    model_dir = survey.labelled.parent / "models" / "leopard"
    trained = uncia(
        "train", "--images", survey.labelled, "--out", model_dir,
        "--backbone", "efficientnet_lite0", env=offline,
    )  # fmt: skip
    return model_dir, trained.stdout


@pytest.fixture(scope="module")
def zero_shot_store(survey: Survey, offline: dict[str, str]) -> Path:
    """The store README.md's first `uncia run` writes."""
    out = survey.images.parent / "runs" / "zero-shot"
    uncia(
        "run", survey.images, "--deployments", survey.deployments, "--out", out,
        "--backbone", "efficientnet_lite0", env=offline,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def model_store(survey: Survey, model: tuple[Path, str], offline: dict[str, str]) -> Path:
    """A store scored by the trained head (docs/training.md): the model picks the backbone."""
    out = survey.images.parent / "runs" / "with-model"
    uncia(
        "run", survey.images, "--deployments", survey.deployments, "--out", out,
        "--model", model[0], env=offline,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def localized(model_store: Path, offline: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return uncia("localize", "--data", model_store, env=offline)


def _documented_defaults(command: str) -> dict[str, str]:
    """Option → its default cell in docs/cli.md's table for `command`."""
    section = DOCS.read_text().split(f"## `uncia {command}")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, flags=re.M)
    return {name.split()[0]: default.strip() for name, default in rows}


def _is_documented_value(cell: str, value: Any) -> bool | None:
    """Whether the docs' default cell says `value`; None when the cell is prose, not a value."""
    text = cell.strip("`")
    if text == "off":
        return value is False or value is None
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return isinstance(value, int | float) and float(text) == value
    if re.fullmatch(r"[\w\[\].+-]+", text) and cell.startswith("`"):
        return text == value
    return None


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("uncia: error: "), result.stderr
    return lines[0]


def test_uncia_run_with_only_its_required_arguments(
    survey: Survey, offline: dict[str, str], tmp_path: Path
) -> None:
    """The default backbone is ResNet50; offline, without its weights, one line says what to do."""
    result = uncia(
        "run", survey.images, "--deployments", survey.deployments, "--out", tmp_path / "out",
        env=offline, check=False,
    )  # fmt: skip
    line = _one_error_line(result)
    assert "no resnet50 weights" in line and "--backbone efficientnet_lite0" in line
    assert "--weights FILE" in line


def test_uncia_run_as_the_readme_shows_it_records_the_documented_defaults(
    zero_shot_store: Path,
) -> None:
    con = open_store(zero_shot_store)
    (run,) = con.execute(
        "SELECT kind, status, model_name, leopard_threshold, options_json, frames_done FROM runs"
    ).fetchall()
    kind, status, model_name, threshold, options_json, frames_done = run
    assert (kind, status, model_name) == ("pipeline", "finished", "zeroshot-imagenet-289")
    assert threshold == pytest.approx(0.15)  # the zero-shot default with tiles (views.md)
    assert frames_done == len(SURVEYED) * (LEOPARDS_PER_DEPLOYMENT + EMPTY_PER_DEPLOYMENT)
    options = json.loads(options_json)
    dests = {
        name: action.dest for action in _parser_of("run")._actions for name in action.option_strings
    }
    checked = set()
    for option, cell in _documented_defaults("run").items():
        if option not in dests or option == "--backbone":  # --backbone was given
            continue
        matches = _is_documented_value(cell, options.get(dests[option]))
        if matches is not None:
            assert matches, f"{option}: docs say {cell}, the run used {options[dests[option]]!r}"
            checked.add(option)
    assert checked >= {"--threshold", "--batch-size", "--burst-gap", "--event-gap", "--engine"}
    assert checked >= {"--views", "--tile-grid", "--tile-overlap", "--working-side", "--runtime"}
    assert len(checked) == 22  # every default the table gives as a value, not as prose
    bursts = con.execute("SELECT n_frames FROM bursts ORDER BY start_time").fetchall()
    assert bursts == [(LEOPARDS_PER_DEPLOYMENT,), (EMPTY_PER_DEPLOYMENT,)] * len(SURVEYED)


def test_uncia_train_with_only_its_required_arguments(
    survey: Survey, offline: dict[str, str], tmp_path: Path
) -> None:
    result = uncia(
        "train", "--images", survey.labelled, "--out", tmp_path / "m", env=offline, check=False
    )
    line = _one_error_line(result)
    assert "no resnet50 weights" in line and "--backbone efficientnet_lite0" in line


def test_uncia_train_reads_the_tree_with_the_documented_defaults(
    model: tuple[Path, str],
) -> None:
    model_dir, printed = model
    n_frames = N_DEPLOYMENTS * (LEOPARDS_PER_DEPLOYMENT + EMPTY_PER_DEPLOYMENT)
    assert f"{n_frames} frame(s), 0 skipped; embeddings: 0 from cache" in printed
    card = json.loads((model_dir / "model.json").read_text())
    assert card["positive_labels"] == ["snow_leopard"]  # of the default snow_leopard, leopard
    assert card["classes"] == ["not_snow_leopard", "snow_leopard"]
    assert card["target_recall"] == 0.95 and card["backbone"] == "efficientnet_lite0"
    frames = pq.read_table(model_dir / "training_frames.parquet").to_pylist()
    assert {f["deployment"] for f in frames} == {f"CAM-{d + 1}" for d in range(N_DEPLOYMENTS)}
    assert {f["split"] for f in frames if f["deployment"] == frames[0]["deployment"]} < {
        "train",
        "test",
    }  # a camera is never on both sides
    assert any((model_dir.parent / ".uncia-cache").iterdir())  # the cache sits beside the model


def test_uncia_evaluate_with_only_its_required_arguments(
    survey: Survey, model: tuple[Path, str], offline: dict[str, str]
) -> None:
    model_dir, _ = model
    out = model_dir.parent / "report"
    result = uncia(
        "evaluate", "--model", model_dir, "--images", survey.labelled, "--out", out, env=offline
    )
    n_frames = N_DEPLOYMENTS * (LEOPARDS_PER_DEPLOYMENT + EMPTY_PER_DEPLOYMENT)
    # The default cache beside REPORT_DIR is the one training filled beside MODEL_DIR.
    assert f"embeddings: {n_frames} from cache, 0 decoded" in result.stdout
    report = json.loads((out / "report.json").read_text())
    card = json.loads((model_dir / "model.json").read_text())
    assert report["threshold"] == pytest.approx(card["threshold"])  # the model's
    assert report["data"]["frames"] == n_frames
    for name in ("report.html", "pr_curve.png", "frames.parquet"):
        assert (out / name).stat().st_size > 0


def test_uncia_localize_with_only_its_required_arguments(
    zero_shot_store: Path,
    model_store: Path,
    localized: subprocess.CompletedProcess[str],
    offline: dict[str, str],
) -> None:
    """The default threshold is the latest run's: 0.15 zero-shot, the model's with --model."""
    zero_shot = uncia("localize", "--data", zero_shot_store, env=offline)
    assert "localized 0 frame(s) at score >= 0.15 (0 failed" in zero_shot.stdout

    con = open_store(model_store)
    ((threshold, model_name),) = con.execute(
        "SELECT leopard_threshold, model_name FROM runs"
    ).fetchall()
    assert threshold != pytest.approx(0.15)
    ((above,),) = con.execute(
        "SELECT count(*) FROM detections WHERE score >= $t", {"t": threshold}
    ).fetchall()
    assert above == len(SURVEYED) * LEOPARDS_PER_DEPLOYMENT
    assert f"localized {above} frame(s) at score >= {threshold:g} (0 failed" in localized.stdout
    rows = pq.read_table(model_store / "parquet" / "localizations.parquet").to_pylist()
    assert {(r["method"], r["target"]) for r in rows} == {("lime", f"model:{model_name}")}
    assert all((model_store / r["crop_path"]).is_file() for r in rows)


def test_uncia_identify_with_only_its_required_arguments(
    model_store: Path, localized: subprocess.CompletedProcess[str], offline: dict[str, str]
) -> None:
    result = uncia("identify", "--data", model_store, env=offline)
    crops = len(SURVEYED) * LEOPARDS_PER_DEPLOYMENT
    assert f"matched {crops} crop(s)" in result.stdout
    individuals = pq.read_table(model_store / "parquet" / "individuals.parquet").to_pylist()
    assert len(individuals) == crops
    assert all(i["individualID"].startswith("ind-") for i in individuals)
    assert (model_store / "parquet" / "matches.parquet").is_file()


def test_uncia_serve_with_only_its_required_arguments(
    zero_shot_store: Path, offline: dict[str, str]
) -> None:
    """Port 8050 on loopback, no authentication, waitress; Ctrl-C stops it with status 0."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8050))
        except OSError:
            pytest.skip("port 8050, serve's default, is taken by another program")
    proc = subprocess.Popen(
        [str(UNCIA), "serve", "--data", str(zero_shot_store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=offline,
        # A shell running the suite in the background may ignore SIGINT for its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        assert announced_port(proc, r"no authentication; waitress server") == 8050
        with urllib.request.urlopen("http://127.0.0.1:8050/", timeout=30) as page:
            assert page.status == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err.strip().endswith("uncia: dashboard stopped"), err


def test_uncia_demo_with_only_its_required_arguments(tmp_path: Path) -> None:
    """60 stations in the Tost mountains, four years, about 5% leopard frames, marked demo."""
    out = tmp_path / "demo"
    result = uncia("demo", "--out", out)
    assert result.stdout.startswith(f"simulated demo survey written to {out}")
    con = open_store(out)
    ((stations, years),) = con.execute(
        "SELECT count(DISTINCT locationID), count(DISTINCT year(deploymentStart)) FROM deployments"
    ).fetchall()
    ((share,),) = con.execute("SELECT avg((score >= 0.5)::INT) FROM detections").fetchall()
    assert (stations, years) == (60, 4) and 0.03 < share < 0.08
    assert con.execute("SELECT kind FROM runs").fetchall() == [("demo",)]


def test_uncia_hash_password_with_only_its_required_arguments() -> None:
    """No terminal: the password comes twice from standard input; user NAME, role viewer."""
    result = uncia("hash-password", stdin="correct horse battery\ncorrect horse battery\n")
    entry = result.stdout.strip().splitlines()
    assert entry[0] == "[users.NAME]" and entry[2] == 'role = "viewer"'
    encoded = re.fullmatch(r'password = "(.+)"', entry[1])
    assert encoded and verify_password("correct horse battery", encoded.group(1))
    assert not verify_password("wrong horse battery", encoded.group(1))


@pytest.fixture(scope="module")
def exported(zero_shot_store: Path, offline: dict[str, str]) -> Path:
    """docs/cli.md's `uncia export camtrap-dp` of the first run's store."""
    package = zero_shot_store.parent / "package"
    result = uncia(
        "export", "camtrap-dp", "--data", zero_shot_store, "--out", package,
        "--contributor", "Survey team", "--utc-offset", "+07:00", env=offline,
    )  # fmt: skip
    (package / "printed.txt").write_text(result.stdout)
    return package


def test_uncia_export_with_only_its_required_arguments(
    zero_shot_store: Path, exported: Path, offline: dict[str, str]
) -> None:
    """Frames without an EXIF UTC offset: one line asks for --utc-offset; with it and a
    contributor, an `uncia run` store is a Camtrap DP package with 0 validation errors."""
    bare = uncia(
        "export", "camtrap-dp", "--data", zero_shot_store, "--out", zero_shot_store.parent / "x",
        check=False, env=offline,
    )  # fmt: skip
    assert bare.returncode == 2 and "give --utc-offset" in _one_error_line(bare)
    text = (exported / "media.csv").read_text()
    assert text.count("\n") == 1 + len(SURVEYED) * 4 and "+07:00" in text
    assert (exported / "printed.txt").read_text().strip().endswith("checked offline): 0 errors")


def test_an_uncia_run_store_exports_valid_megadetector_and_coco_files(
    zero_shot_store: Path, tmp_path: Path, offline: dict[str, str]
) -> None:
    """A real run's store: MegaDetector batch output that passes the validator and re-imports
    to the same boxes (into a copy: the fixture's store is shared), and valid COCO Camera
    Traps with a sequence per burst."""
    md = uncia("export", "megadetector", "--data", zero_shot_store, "--out", tmp_path / "md.json",
               env=offline)  # fmt: skip
    assert md.stdout.strip().endswith("0 errors"), md.stdout
    data = json.loads((tmp_path / "md.json").read_text())
    assert validate_batch_results(data).valid and len(data["images"]) == len(SURVEYED) * 4
    sent = {(im["file"], d["conf"], tuple(d["bbox"])) for im in data["images"]
            for d in im["detections"] or []}  # fmt: skip
    store = tmp_path / "store"
    shutil.copytree(zero_shot_store, store, ignore=shutil.ignore_patterns("*.lock"))
    uncia("import", "megadetector", tmp_path / "md.json", "--data", store, env=offline)
    back = pq.read_table(store / "parquet" / "detector_boxes.parquet").to_pylist()
    assert all(r["image_id"] for r in back)
    assert {(r["file"], r["conf"], (r["bbox_x"], r["bbox_y"], r["bbox_width"], r["bbox_height"]))
            for r in back if r["conf"] is not None} == sent  # fmt: skip

    coco = uncia("export", "coco", "--data", zero_shot_store, "--out", tmp_path / "coco.json",
                 env=offline)  # fmt: skip
    assert coco.stdout.strip().endswith("0 errors"), coco.stdout
    cct = json.loads((tmp_path / "coco.json").read_text())
    assert validate_coco_camera_traps(cct) == [] and len(cct["images"]) == len(SURVEYED) * 4
    assert len(cct["annotations"]) == len(cct["images"])


def test_an_uncia_run_store_passes_megadetectors_own_validator(
    zero_shot_store: Path, tmp_path: Path, offline: dict[str, str]
) -> None:
    """The export of a real run's store, checked by the `megadetector` package itself
    (tests/test_megadetector_package.py shows it refuses broken files)."""
    validator = pytest.importorskip(
        "megadetector.postprocessing.validate_batch_results",
        reason="the megadetector package is not installed (`make install-dev` installs it)",
    )
    uncia("export", "megadetector", "--data", zero_shot_store, "--out", tmp_path / "md.json",
          env=offline)  # fmt: skip
    result = validator.validate_batch_results(str(tmp_path / "md.json"))["validation_results"]
    assert result["errors"] == [], result
    assert len(json.loads((tmp_path / "md.json").read_text())["images"]) == len(SURVEYED) * 4


@pytest.mark.skipif(not tesseract_available(), reason="no tesseract (make test installs it)")
def test_uncia_infobar_with_only_its_required_arguments(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    """The reconyx preset reads the top bar of a frame drawn here and agrees with its EXIF."""
    when = datetime(2024, 3, 1, 18, 5, 7)
    (tmp_path / "frames").mkdir()
    drawn_frame(tmp_path / "frames" / "a.jpg", "2024-03-01 6:05:07 PM  M 1/3", when)
    result = uncia("infobar", tmp_path / "frames", "--out", tmp_path / "t.csv", env=offline)
    assert "1 ok; against EXIF: 1 agree" in result.stdout
    assert "2024-03-01T18:05:07" in (tmp_path / "t.csv").read_text()


def test_uncia_import_with_only_its_required_arguments(
    exported: Path, tmp_path: Path, offline: dict[str, str]
) -> None:
    """The exported package comes back: its deployments and media, times from media.csv."""
    result = uncia("import", "camtrap-dp", exported, "--out", tmp_path / "store", env=offline)
    assert result.stdout.startswith("imported 1 deployment(s), 4 media")
    images = pq.read_table(tmp_path / "store" / "parquet" / "images.parquet").to_pylist()
    assert {i["utc_offset_minutes"] for i in images} == {420}
    assert all(i["captured_at"] is not None for i in images)


def _parser_of(command: str) -> Any:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sub.choices[command]
