"""`python -m bench.load_bench` end to end, tiny: it serves on loopback, loads, stops by itself,
and writes its figures atomically."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.runs.demo import DemoOptions, build_demo_survey

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")
def test_load_bench_reports_figures_and_stops(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    build_demo_survey(data, DemoOptions(n_stations=6, n_years=1, seed=2))
    out = tmp_path / "results" / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load_bench",
            "--users",
            "3",
            "--duration",
            "4",
            "--think-min",
            "0.5",
            "--think-max",
            "1",
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "127.0.0.1" in result.stdout and "waitress server" in result.stdout, result.stderr
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0, figures["error_kinds"]
    assert figures["requests"] > 5 and figures["requests_per_s"] > 0
    assert figures["p95_ms"] >= figures["p50_ms"] > 0
    assert "hotspot-map" in figures["per_callback_p95_ms"]
    assert [p.name for p in out.parent.iterdir()] == ["load.json"]  # no temporary left behind
