"""`uncia serve` and app.py as a team runs them: binding, a fresh server's first requests, clean
stops on SIGTERM and Ctrl-C, worker processes that share the port and are replaced when they
die, and callback answers that follow a new checkpoint (the callback cache)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli.main import build_parser
from cli.serve import settings_from_args
from dashboard import Settings, create_app
from dashboard.serving.server import make_server
from pipeline.runs.demo import DemoOptions
from pipeline.schema import RUN_TABLES
from pipeline.store import store
from tests.helpers import (
    PASSWORDS,
    announced_port,
    basic_auth,
    dash_payload,
    free_port,
    process_state,
    read_callbacks,
)

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = DemoOptions(n_stations=8, n_years=1, seed=5)  # the module's demo_dir (conftest.py)


def test_serve_binds_loopback_unless_told_otherwise(demo_dir: Path) -> None:
    args = build_parser().parse_args(["serve", "--data", str(demo_dir)])
    host = settings_from_args(args, env={}).host
    assert host == "127.0.0.1" and Settings(data_dir=demo_dir).host == "127.0.0.1"
    server = make_server(create_app(Settings(data_dir=demo_dir, tiles="none")), host, 0)
    try:
        assert server.name == "waitress"
        assert server.host == "127.0.0.1"
    finally:
        server.close()


def test_a_fresh_server_answers_parallel_first_requests_for_its_scripts(demo_dir: Path) -> None:
    """A new --workers process may first be asked for the page's scripts, all at once, by a
    browser whose HTML another process served: every one must load (Dash used to answer 500
    to those that came while its first request was still registering the scripts)."""
    settings = Settings(data_dir=demo_dir, tiles="none")
    page = create_app(settings).server.test_client().get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="(/_dash-component-suites/[^"]+)"', page)
    assert len(scripts) >= 5
    server = make_server(create_app(settings), "127.0.0.1", 0)
    threading.Thread(target=server.run, daemon=True).start()

    def fetch(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=30) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        with ThreadPoolExecutor(len(scripts)) as pool:
            statuses = list(pool.map(fetch, scripts))
    finally:
        server.close()
    assert statuses == [200] * len(scripts)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("command", [["-m", "cli.main", "serve"], ["app.py"]])
def test_uncia_serve_and_app_py_stop_cleanly(
    demo_dir: Path, stop: signal.Signals, command: list[str]
) -> None:
    """docker stop / systemd (SIGTERM) and Ctrl-C end the server with status 0 once requests
    and the store warmer are done; a thread left inside DuckDB at exit aborted the process."""
    proc = subprocess.Popen(
        [sys.executable, *command, "--data", str(demo_dir),
         "--port", str(free_port()), "--tiles", "none"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell running the suite in the background may ignore SIGINT for its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        port = announced_port(proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as ok:
            assert ok.status == 200
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err.strip().endswith("uncia: dashboard stopped"), err
    assert "terminate called" not in err and "Traceback" not in err


def test_uncia_serve_workers_share_the_port_and_replace_a_dead_one(
    demo_dir: Path, users_file: Path
) -> None:
    """--workers 2: two waitress processes answer on one port; a worker killed is replaced;
    SIGTERM to the parent stops every worker."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--data", str(demo_dir),
         "--port", str(free_port()), "--tiles", "none", "--auth-file", str(users_file),
         "--workers", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip

    def workers() -> set[int]:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return {int(c) for c in children}

    def answers(n: int) -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/", headers=basic_auth("bob", PASSWORDS["bob"])
        )
        for _ in range(n):
            with urllib.request.urlopen(request, timeout=30) as ok:
                assert ok.status == 200 and "Server" not in ok.headers
        return True

    try:
        port = announced_port(proc, r"waitress server, 2 processes")
        assert answers(4)
        first = workers()
        assert len(first) == 2
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (now := workers()) == first or len(now) < 2:
            assert time.monotonic() < deadline, now
            time.sleep(0.2)
        assert victim not in now and len(now) == 2
        assert answers(4)  # the new worker builds its app; requests keep being answered
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    for pid in first | now:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in process_state(pid)


def test_cached_callback_answers_follow_a_new_checkpoint(demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "survey"
    tables = {name: pq.read_table(store.StorePaths(demo_dir).table(name)) for name in RUN_TABLES}
    store.write_tables(data, tables)
    app = create_app(Settings(data_dir=data, tiles="none"))
    client = app.server.test_client()
    (header,) = [d for d in read_callbacks(app) if "run-info" in d["output"]]
    payload = dash_payload(header, {"data-version.data": "v"})
    first = client.post("/_dash-update-component", json=payload).get_data(as_text=True)
    assert client.post("/_dash-update-component", json=payload).get_data(as_text=True) == first
    runs = tables["runs"]
    renamed = runs.set_column(
        runs.schema.get_field_index("backbone"), "backbone", pa.array(["checkpoint-two"])
    )
    store.write_tables(data, {**tables, "runs": renamed})  # same request body, new store
    after = client.post("/_dash-update-component", json=payload).get_data(as_text=True)
    assert "checkpoint-two" in after and "checkpoint-two" not in first
