"""The dashboard under hostile requests and files (issue #15, findings 11, 12, 14-18, 21).

A real `uncia serve` (waitress) answers DNS-rebinding Host/Origin headers, a symlink among the
crops, malformed callback bodies, unknown component files and a 5 MB body; the decoder and the
thumbnails share one allow-list of formats and one pixel limit; match decisions stick to
proposed pairs; every CSV export escapes formula cells.
"""

from __future__ import annotations

import csv
import http.client
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from dashboard import Settings, create_app
from dashboard.data.store import Store
from dashboard.exports import hotspots_csv
from dashboard.serving.thumbnails import ThumbnailService
from dashboard.views.individuals import decide_match
from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.stages.decode import MAX_PIXELS, decode_frame
from pipeline.store import matches
from pipeline.store.reviews import training_labels_csv
from pipeline.training.labels import read_labelled_frames
from tests.helpers import announced_port, free_port, jpeg_bytes, png_with_claimed_size

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[1]
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """`uncia serve --data data` (a relative folder) over a small demo store whose crops folder
    holds a real crop and a symlink to /etc/passwd. Yields (port, data folder, server log)."""
    base = tmp_path_factory.mktemp("served")
    data = base / "data"
    build_demo_survey(data, DemoOptions(n_stations=3, n_years=1, seed=2))
    crops = data / "localizations" / "crops"
    crops.mkdir(parents=True)
    (crops / "real.jpg").write_bytes(jpeg_bytes(64, 48))
    (crops / "passwd.jpg").symlink_to("/etc/passwd")
    log = base / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--data", "data",
             "--port", str(free_port()), "--tiles", "none"],
            cwd=base, stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    try:
        yield announced_port(proc), data, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def ask(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    """One request over a fresh connection, headers exactly as given (Host included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host="Host" in (headers or {}))
        for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.read(), answer.getheader("Content-Type") or ""
    finally:
        conn.close()


def test_rebound_host_and_foreign_origin_are_refused(served: tuple[int, Path, Path]) -> None:
    # Finding 11: with no authentication on loopback, a review posted with Host/Origin:
    # attacker.example (DNS rebinding) was stored.
    port, _, _ = served
    assert ask(port, "GET", "/")[0] == 200
    assert ask(port, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    assert ask(port, "GET", "/", headers={"Host": "attacker.example"})[0] == 400
    post = b'{"output": "x.y", "inputs": [], "changedPropIds": []}'
    rebound = {"Host": f"attacker.example:{port}", "Content-Type": "application/json"}
    assert ask(port, "POST", "/_dash-update-component", post, rebound)[0] == 400
    foreign = {"Origin": "http://attacker.example", "Content-Type": "application/json"}
    assert ask(port, "POST", "/_dash-update-component", post, foreign)[0] == 403


def test_crops_are_served_from_a_relative_data_folder_but_no_symlink_out(
    served: tuple[int, Path, Path],
) -> None:
    # Finding 18: with a relative --data every picture was 404 (resolved against the package).
    # Finding 12: a symlink among the crops to /etc/passwd was served as image/jpeg.
    port, _, _ = served
    status, body, kind = ask(port, "GET", "/localization-pictures/crops/real.jpg")
    assert (status, kind, body[:2]) == (200, "image/jpeg", b"\xff\xd8")
    status, body, _ = ask(port, "GET", "/localization-pictures/crops/passwd.jpg")
    assert status == 404 and b"root:" not in body


def test_no_symlink_out_of_the_crops_with_an_absolute_data_folder(
    served: tuple[int, Path, Path],
) -> None:
    # Finding 12 on its own (an absolute data folder, where pictures were always found): the
    # real crop is served, the symlink to /etc/passwd is not.
    _, data, _ = served
    client = create_app(Settings(data_dir=data.resolve(), tiles="none")).server.test_client()
    real = client.get("/localization-pictures/crops/real.jpg")
    assert (real.status_code, real.data[:2]) == (200, b"\xff\xd8")
    passwd = client.get("/localization-pictures/crops/passwd.jpg")
    assert passwd.status_code == 404 and b"root:" not in passwd.data


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b"[]", b'{"output": 5}', b'{"output": "a.b", "inputs": 5}',
     b'{"output": "no-such.children", "inputs": []}'],
)  # fmt: skip
def test_malformed_callback_bodies_are_client_errors(
    served: tuple[int, Path, Path], body: bytes
) -> None:
    # Finding 21: these answered 500 with a traceback in the log.
    port, _, _ = served
    status, _, _ = ask(
        port, "POST", "/_dash-update-component", body, {"Content-Type": "application/json"}
    )
    assert status in (400, 404)


@pytest.mark.parametrize(
    "path", ["/_dash-component-suites/nope/x.js", "/_dash-component-suites/dash/nothere.js"]
)
def test_unknown_component_files_are_404(served: tuple[int, Path, Path], path: str) -> None:
    port, _, _ = served
    assert ask(port, "GET", path)[0] == 404


def test_a_5_mb_body_gets_413_not_a_reset(served: tuple[int, Path, Path]) -> None:
    port, _, _ = served
    big = b"x" * (5 * 1024 * 1024)
    status, body, _ = ask(
        port, "POST", "/_dash-update-component", big, {"Content-Type": "application/json"}
    )
    assert status == 413 and b"Too Large" in body


def test_zz_the_server_logged_no_traceback(served: tuple[int, Path, Path]) -> None:
    """After the requests above (tests run in file order): still up, no traceback logged."""
    port, _, log = served
    assert ask(port, "GET", "/")[0] == 200
    assert "Traceback" not in log.read_text()


def test_only_allowed_formats_are_decoded_in_runs_and_thumbnails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 14: every Pillow plugin sniffed the files: PostScript named .jpg went to
    # Ghostscript, in `uncia run` and in /thumbnail/<id>. PPM stands in for "decodable but not
    # allowed" (Pillow reads it without Ghostscript).
    eps, ppm = tmp_path / "eps.jpg", tmp_path / "ppm.jpg"
    eps.write_bytes(EPS)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(buf, "PPM")
    ppm.write_bytes(buf.getvalue())
    for path in (eps, ppm):
        assert decode_frame(path).failure == "not an image: cannot identify image file"
    data = tmp_path / "store"
    build_demo_survey(data, DemoOptions(n_stations=2, n_years=1, seed=4))
    thumbnails = ThumbnailService(Store(data), 64, (tmp_path,))
    with caplog.at_level(logging.WARNING, logger="dashboard.serving.thumbnails"):
        thumb = thumbnails._render(ppm, simulated=False)
    assert thumb.mimetype == "image/png"  # the "unreadable image" placeholder
    assert "cannot identify image file" in caplog.text


def test_one_pixel_limit_for_runs_and_thumbnails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Finding 15: the run allowed 250 Mpx and the thumbnails 179 Mpx (Pillow's default), so a
    # 150-225 Mpx PNG took a run to 3.9 GB and was "unreadable" in the dashboard only. Both
    # now refuse past MAX_PIXELS (100 Mpx) before decoding, with the same words.
    assert MAX_PIXELS == 100_000_000
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_with_claimed_size(12_000, 10_000))
    limit = f"exceeds limit of {MAX_PIXELS:,}"
    assert decode_frame(bomb).failure == f"decompression bomb: 120,000,000 pixels {limit}"
    data = tmp_path / "store"
    build_demo_survey(data, DemoOptions(n_stations=2, n_years=1, seed=4))
    thumbnails = ThumbnailService(Store(data), 64, (tmp_path,))
    with caplog.at_level(logging.WARNING, logger="dashboard.serving.thumbnails"):
        thumb = thumbnails._render(bomb, simulated=False)
    assert thumb.mimetype == "image/png"  # the "unreadable image" placeholder
    assert f"120,000,000 pixels {limit}" in caplog.text


def test_match_decisions_only_for_proposed_pairs(tmp_path: Path) -> None:
    # Finding 16: any "a|b" posted to the accept/reject callback was recorded, and
    # `uncia identify` then joined the two frames into one individual.
    data = tmp_path / "store"
    build_demo_survey(data, DemoOptions(n_stations=2, n_years=1, seed=5))
    answer = decide_match(Store(data), "frame-a|frame-b", "accept")
    assert "not a proposed match" in answer
    folder = matches.reviews_dir(data)
    assert not folder.exists() or not any(folder.glob("*.parquet"))


def test_csv_exports_escape_formula_cells(tmp_path: Path) -> None:
    # Finding 17: the "Reviews as training labels" CSV wrote =1+2/… from a folder name.
    reviews = pa.table({"image_id": ["i1"], "label": ["snow_leopard"]})
    images = pa.table(
        {"image_id": ["i1"], "deploymentID": ["=1+2"], "relative_path": ["@x/-y.jpg"]}
    )
    text = training_labels_csv(reviews, images)
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=1+2/@x/-y.jpg", "snow_leopard"]
    # ... and `uncia train --labels` reads the path it names back.
    (tmp_path / "labels.csv").write_text(text)
    frames = read_labelled_frames(tmp_path, tmp_path / "labels.csv")
    assert frames.column("relative_path").to_pylist() == ["=1+2/@x/-y.jpg"]

    table = pa.table({"hexagon": ["+cmd|' /C calc'!A0", "862a1072fffffff"], "events": [-1, 2]})
    rows = list(csv.reader(io.StringIO(hotspots_csv(table).decode())))
    assert rows[1] == ["'+cmd|' /C calc'!A0", "-1"] and rows[2] == ["862a1072fffffff", "2"]
