"""`uncia run` and the store under hostile and careless input (issue #15, findings 1-10, 20).

Each test reproduces a red-team failure in the real command: far-future times, a FIFO named
.jpg, nan offsets, an unwritable --out, SIGTERM, a demo or another model mixed into a store, an
unlocked `uncia localize`, stale resume, decomposed Unicode folders, sloppy tables.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.store import store
from tests.helpers import (
    deployment,
    jpeg_bytes,
    open_store,
    uncia,
    uncia_run_command,
    write_deployments,
)

pytestmark = pytest.mark.model
T0 = datetime(2024, 5, 1, 6, 0)
CAFE_TABLE = "Caf\u00e9"  # é as one character, as typed into a table
CAFE_FOLDER = unicodedata.normalize("NFD", CAFE_TABLE)  # e + combining accent, as macOS copies
# The offline backbone, named: a refusal must come from the input, never from missing weights.
LITE = ("--backbone", "efficientnet_lite0")


def one_error_line(result: subprocess.CompletedProcess[str], started: bool = False) -> str:
    """The single `uncia: error:` line of a refused command (exit 2, no traceback); when the
    run had `started`, it follows the run's opening line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 + started and lines[-1].startswith("uncia: error:"), result.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """A survey with a "still running" deployment (end 9999-12-31, clock offset +60 s), a frame
    dated 9999-12-31 23:59:59, a FIFO named .jpg, a folder in decomposed Unicode and a table
    row without a folder; run once. Returns (root, table, out, the run's stdout)."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "images"
    (root / "A").mkdir(parents=True)
    (root / "A" / "dated.jpg").write_bytes(jpeg_bytes(320, 240, when=T0, seed=1))
    (root / "A" / "edge.jpg").write_bytes(
        jpeg_bytes(320, 240, when=datetime(9999, 12, 31, 23, 59, 59))
    )
    os.mkfifo(root / "A" / "pipe.jpg")
    (root / CAFE_FOLDER).mkdir()
    (root / CAFE_FOLDER / "x.jpg").write_bytes(jpeg_bytes(320, 240, when=T0, seed=2))
    table = write_deployments(
        base / "d.csv",
        [
            deployment("A", deploymentEnd="9999-12-31", clockOffsetSeconds=60),
            deployment(CAFE_TABLE, lat=43.3),
            deployment("NO-FOLDER", lat=43.4),
        ],
    )
    out = base / "out"
    proc = subprocess.run(
        uncia_run_command(root, table, out), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return root, table, out, proc.stdout


def test_far_future_times_and_offsets_do_not_stop_a_run(
    hostile: tuple[Path, Path, Path, str],
) -> None:
    # Finding 1: end 9999-12-31 with any dated frame, and 9999-12-31 23:59:59 + 60 s, used to
    # raise OverflowError (traceback, exit 1, every re-run crashing on the same frame).
    _, _, out, _ = hostile
    rows = dict(
        open_store(out)
        .execute("SELECT relative_path, time_flag FROM images WHERE deploymentID = 'A'")
        .fetchall()
    )
    assert rows == {"dated.jpg": "ok", "edge.jpg": "unparseable"}


def test_a_fifo_named_jpg_is_skipped_not_waited_on(hostile: tuple[Path, Path, Path, str]) -> None:
    # Finding 2: the decoder blocked forever on the FIFO; only regular files are frames.
    _, _, _, stdout = hostile
    assert "A/pipe.jpg: not a regular file; skipped" in stdout


def test_decomposed_unicode_folder_matches_its_table_row(
    hostile: tuple[Path, Path, Path, str],
) -> None:
    # Finding 10: a macOS copy's "Cafe + accent" folder failed every frame against "Café".
    _, _, out, stdout = hostile
    rows = (
        open_store(out)
        .execute("SELECT deploymentID, status FROM images WHERE relative_path = 'x.jpg'")
        .fetchall()
    )
    assert rows == [(CAFE_TABLE, "ok")]
    assert "not in the deployments table" not in stdout
    # Finding 20: a deployment without a folder is said, not passed over.
    assert "deployment 'NO-FOLDER' has no folder" in stdout


@pytest.mark.parametrize("offset", ["nan", "inf", "1e30", "-1e11", "1.5"])
def test_unusable_clock_offsets_refuse_the_table(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path, offset: str
) -> None:
    # Findings 1 and 3 (nan/inf/1e30 crashed the reader, -1e11 overflowed per frame) and 20
    # (1.5 was cut to 1).
    root, _, _, _ = hostile
    table = write_deployments(tmp_path / "d.csv", [deployment("A", clockOffsetSeconds=offset)])
    line = one_error_line(
        uncia("run", *LITE, root, "--deployments", table, "--out", tmp_path / "o", check=False)
    )
    assert "line 2 clockOffsetSeconds" in line


@pytest.mark.parametrize(
    "option", [("--burst-gap", "nan"), ("--event-gap", "inf"), ("--checkpoint-seconds", "nan")]
)
def test_nan_and_inf_options_are_refused_before_any_frame(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path, option: tuple[str, str]
) -> None:
    # Finding 3: --burst-gap nan passed validation and failed in DuckDB after every frame.
    root, table, _, _ = hostile
    out = tmp_path / "o"
    line = one_error_line(
        uncia("run", *LITE, root, "--deployments", table, "--out", out, *option, check=False)
    )
    assert option[1] in line and not out.exists()


def test_out_on_a_file_or_a_read_only_place_is_one_line(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    # Finding 4: traceback and exit 1 instead of the documented one line and exit 2.
    root, table, _, _ = hostile
    a_file = tmp_path / "out.txt"
    a_file.write_text("not a folder")
    if os.geteuid() == 0:  # root writes through any mode bits; /sys refuses even root
        read_only = Path("/sys/uncia-test-out")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        read_only = locked / "out"
    for out in (a_file, read_only):
        result = uncia("run", *LITE, root, "--deployments", table, "--out", out, check=False)
        line = one_error_line(result)
        assert f"cannot write to {out}" in line


def _limit_file_size() -> None:
    # A disk that fills up: writes past 40 KiB fail with EFBIG (Python ignores SIGXFSZ).
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_a_full_disk_is_one_line_and_leaves_no_temporaries(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    # Finding 4: a full disk left `.uncia.duckdb.*.tmp.wal`, which the cleanup never removed.
    root, table, _, _ = hostile
    out = tmp_path / "o"
    proc = subprocess.run(
        [*uncia_run_command(root, table, out), "--runtime", "torch"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    line = one_error_line(proc, started=True)
    assert f"cannot write to {out}" in line
    assert sorted(p.name for p in out.rglob(".*.tmp*")) == []


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_sigterm_and_sigint_record_the_run_as_interrupted(
    tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    # Finding 5: SIGTERM (docker stop) exited 143 silently and left the run "running"
    # forever; SIGINT recorded "failed".
    root = tmp_path / "images"
    (root / "A").mkdir(parents=True)
    for i in range(60):
        when = T0 + timedelta(seconds=20 * i)
        (root / "A" / f"{i:03d}.jpg").write_bytes(jpeg_bytes(640, 480, when=when, seed=i))
    table = write_deployments(tmp_path / "d.csv", [deployment("A")])
    out = tmp_path / "out"
    proc = subprocess.Popen(
        uncia_run_command(root, table, out, "--batch-size", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not list(out.glob("work/frames/*/part-*.parquet")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"uncia: {word}; re-run the same command to resume" in stderr
    assert "Traceback" not in stderr
    (record,) = [json.loads(p.read_text()) for p in (out / "work" / "runs").glob("*.json")]
    assert record["status"] == "interrupted"
    assert open_store(out).execute("SELECT status FROM runs").fetchall() == [("interrupted",)]


def test_demo_and_real_surveys_never_share_a_store(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    # Finding 6: `uncia demo --out` on a real store merged 234,825 simulated frames into it.
    root, table, out, _ = hostile
    before = sorted(p.name for p in out.rglob("*"))
    assert "holds a real survey" in one_error_line(uncia("demo", "--out", out, check=False))
    assert sorted(p.name for p in out.rglob("*")) == before
    demo = tmp_path / "demo"
    build_demo_survey(demo, DemoOptions(n_stations=2, n_years=1, seed=1))
    result = uncia("run", *LITE, root, "--deployments", table, "--out", demo, check=False)
    line = one_error_line(result)
    assert "holds the simulated demo survey" in line


def test_another_model_or_views_needs_force(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    # Finding 7: a second run with another backbone, model or views scored new frames its
    # own way into the same map, exit 0.
    root, table, out, _ = hostile
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    # Another threshold alone (an option every version of `uncia run` has) is another map.
    line = one_error_line(
        uncia("run", *LITE, root, "--deployments", table, "--out", copy, "--threshold", "0.9",
              "--no-progress", check=False)
    )  # fmt: skip
    assert "(this run: 0.9)" in line and "--force" in line
    line = one_error_line(
        uncia("run", root, "--deployments", table, "--out", copy, "--backbone",
              "efficientnet_lite0", "--views", "whole", "--no-progress", check=False)
    )  # fmt: skip
    assert "views tiles+motion (this run: whole)" in line and "--force" in line
    assert "threshold 0.15 (this run: 0.5)" in line
    uncia("run", root, "--deployments", table, "--out", copy, "--backbone",
          "efficientnet_lite0", "--views", "whole", "--no-progress", "--force")  # fmt: skip


def test_localize_takes_the_writer_lock(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path
) -> None:
    # Finding 8: `uncia localize` took no lock, so two of them (or one beside a run) lost rows.
    _, _, out, _ = hostile
    with store.writer_lock(out):
        result = uncia("localize", "--data", out, check=False)
    assert "another run is writing to" in one_error_line(result)


def test_resume_reads_a_replaced_file_again_and_marks_a_deleted_one_missing(
    tmp_path: Path,
) -> None:
    # Finding 9: resume keyed frames by path only: a replaced photo kept its old hash, time
    # and score; a deleted one stayed in the store silently.
    root = tmp_path / "images"
    (root / "A").mkdir(parents=True)
    for i in range(3):
        (root / "A" / f"{i}.jpg").write_bytes(jpeg_bytes(320, 240, when=T0, seed=i))
    table = write_deployments(tmp_path / "d.csv", [deployment("A")])
    out = tmp_path / "out"
    run = uncia_run_command(root, table, out)
    subprocess.run(run, check=True, capture_output=True, timeout=300)
    sha = "SELECT relative_path, content_sha256, status, captured_at FROM images ORDER BY 1"
    before = {r[0]: r[1:] for r in open_store(out).execute(sha).fetchall()}

    later = T0 + timedelta(days=3)
    (root / "A" / "1.jpg").write_bytes(jpeg_bytes(400, 300, when=later, seed=9))
    (root / "A" / "2.jpg").unlink()
    second = subprocess.run(run, check=True, capture_output=True, text=True, timeout=300)
    assert "2 already done" not in second.stdout
    assert "1 already done, 1 classified" in second.stdout
    assert "1 frame(s) of the store are no longer under" in second.stdout
    after = {r[0]: r[1:] for r in open_store(out).execute(sha).fetchall()}
    assert after["0.jpg"] == before["0.jpg"]
    assert after["1.jpg"][0] != before["1.jpg"][0] and after["1.jpg"][2] == later
    assert after["2.jpg"][1] == "missing"
    assert open_store(out).execute(
        "SELECT count(*) FROM detections JOIN images USING (image_id) WHERE relative_path = '2.jpg'"
    ).fetchall() == [(0,)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "deploymentID;locationID;latitude;longitude;deploymentStart;deploymentEnd\n"
            "A;a;43.1;100.7;2024-01-01;2024-12-31\n",
            "not ; or tabs",
        ),
        (
            "deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd,latitude\n"
            "A,a,43.1,100.7,2024-01-01,2024-12-31,0\n",
            "latitude appear more than once",
        ),
        (
            # ... beside a good row: the old reader dropped the bad one and ran on, exit 0.
            "deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd\n"
            "A,a,43,2,100.7,2024-01-01,2024-12-31\nB,b,43.1,100.7,2024-01-01,2024-12-31\n",
            "line 2: more cells than the header has columns",
        ),
        (
            "deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd\n"
            "A,a,43.1,100.7,2024-01-01,2024-12-31\n../B,b,43.1,100.7,2024-01-01,2024-12-31\n",
            "line 3: deploymentID '../B' cannot be a folder name",
        ),
    ],
)
def test_sloppy_tables_are_refused_with_their_reason(
    hostile: tuple[Path, Path, Path, str], tmp_path: Path, text: str, message: str
) -> None:
    # Finding 20: a semicolon table reported six missing columns with no hint, a duplicated
    # header was taken from its last copy, '43,2' lost a row and the run went on with exit 0,
    # and an id with / or ../ passed without a word.
    root, _, _, _ = hostile
    (tmp_path / "d.csv").write_text(text)
    result = uncia("run", *LITE, root, "--deployments", tmp_path / "d.csv", "--out", tmp_path / "o",
                   check=False)  # fmt: skip
    assert message in one_error_line(result)
