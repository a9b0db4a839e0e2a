"""`python -m bench.caches_bench` (`make bench-caches`): what each of the dashboard's caches
saves, measured side by side in one run.

On the store of bench/dashboard_bench.py (10 million frames, 500 cameras, 5 years), the real
app (`create_app`) answers the requests a browser posts to /_dash-update-component, through
Flask's test client, the page's callbacks posted at once from threads as the browser does.
Each layer is timed in the situation it exists for, with every cache on and with every cache
on but that one (`dashboard.context.Caches`), in interleaved repetitions (with, without,
without, with, ...) on a fresh app each time, so that other work on the machine weighs on both
sides alike. A control row compares two all-on sides: its ratio is the noise of the run.

Situations:
- change: a visitor changes the threshold to a value nobody asked for (new queries);
- repeat: a second visitor asks for the view the first one just drew;
- open: the page opened on a server that has been up a few seconds (warmed, when it warms);
- restart: the page opened the moment a new server process starts on a store that an earlier
  process (another `--workers` process, or before a restart) has already seen.

Prints a table (layer, situation, with, without, ratio of p50 and p95) and writes
bench/results/caches.json atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dash

from bench.dashboard_bench import WORK, build_store
from bench.load_bench import dash_payload
from dashboard import Settings, create_app
from dashboard.app import page_layout
from dashboard.context import ALL_CACHES, Caches
from dashboard.serving.page_views import starting_values
from dashboard.serving.warmup import stop_background_work
from pipeline.store.store import StorePaths, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "caches.json"
ALL_ON = ALL_CACHES
WARM_TIMEOUT_S = 300.0
# Thresholds a visitor changes to: none of them is the page's opening 0.5.
THRESHOLDS = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.45, 0.4]


@dataclass(frozen=True)
class Case:
    """One row of the table: `layer` timed in `situation`, with `with_` and `without` caches."""

    layer: str
    situation: str
    without: Caches
    with_: Caches = ALL_ON
    gap_days: int | None = None
    why: str = ""


CASES = [
    Case(
        "gaps in memory (GapCache)",
        "change",
        Caches(gaps=False),
        gap_days=7,
        why="gap_days 7; without: each callback reads the shared gap file",
    ),
    Case(
        "gaps in memory and shared",
        "change",
        Caches(gaps=False, shared_gaps=False),
        gap_days=7,
        why="gap_days 7; without: each callback computes the gaps",
    ),
    Case(
        "gaps in memory, folder read-only",
        "change",
        Caches(gaps=False, shared_gaps=False),
        with_=Caches(shared_gaps=False),
        gap_days=7,
        why="gap_days 7, no shared file on either side (a data folder it cannot write)",
    ),
    Case(
        "shared gaps (DIR/work/dashboard)",
        "restart",
        Caches(shared_gaps=False, warmer=False),
        with_=Caches(warmer=False),
        gap_days=7,
        why="gap_days 7, no warmer on either side: the first visitor pays",
    ),
    Case(
        "materialized operating nights",
        "change",
        Caches(operating_nights=False),
        why="default settings (no gap guessing)",
    ),
    Case(
        "materialized operating nights",
        "change",
        Caches(operating_nights=False),
        gap_days=7,
        why="gap_days 7",
    ),
    Case("page views (PageViews)", "open", Caches(page_views=False), why="the warmer warms"),
    Case("store warmer (StoreWarmer)", "open", Caches(warmer=False)),
    Case(
        "callback cache (CallbackCache)",
        "repeat",
        Caches(callback_cache=False),
        why="PageViews still answers",
    ),
    Case(
        "callback cache and page views",
        "repeat",
        Caches(callback_cache=False, page_views=False),
    ),
    Case("none: all on both sides (noise)", "change", ALL_ON),
]


@dataclass
class Samples:
    with_: list[float] = field(default_factory=list)
    without: list[float] = field(default_factory=list)


class Browser:
    """Posts a page's callbacks the way the browser does: all at once, one thread each."""

    def __init__(self, app: dash.Dash) -> None:
        self.app = app
        client = app.server.test_client()
        deps = client.get("/_dash-dependencies").get_json()
        ctx = app.server.extensions["uncia_context"]
        self.values = {
            f"{cid}.{prop}": value
            for (cid, prop), value in starting_values(page_layout(ctx)).items()
        }
        # What the page posts when it opens: every server callback not held back.
        self.opening = [
            d
            for d in deps
            if not d.get("prevent_initial_call") and not d.get("clientside_function")
        ]
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.opening)))

    def bodies(self, changed: str | None = None, **values: Any) -> list[bytes]:
        merged = {**self.values, **values}
        bodies = []
        for d in self.opening:
            first = d["inputs"][0]
            bodies.append(dash_payload(d, merged, changed or f"{first['id']}.{first['property']}"))
        return bodies

    def post(self, bodies: list[bytes]) -> float:
        """Seconds until every answer is in; fails on any answer but 200."""

        def one(body: bytes) -> int:
            response = self.app.server.test_client().post(
                "/_dash-update-component", data=body, content_type="application/json"
            )
            return response.status_code

        started = time.perf_counter()
        statuses = list(self.pool.map(one, bodies))
        seconds = time.perf_counter() - started
        if any(s != 200 for s in statuses):
            raise RuntimeError(f"callbacks answered {statuses}")
        return seconds

    def close(self) -> None:
        self.pool.shutdown()


def _wait_warm(app: dash.Dash) -> None:
    warmer = app.server.extensions.get("uncia_warmer")
    deadline = time.monotonic() + WARM_TIMEOUT_S
    while warmer is not None and warmer.warmed_version is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the store warmer did not finish")
        time.sleep(0.05)


def measure(store_dir: Path, case: Case, caches: Caches, repeat: int) -> list[float]:
    """Seconds of `case.situation` on a fresh app with `caches` (several samples where the
    situation allows: later changes and repeats)."""
    settings = Settings(data_dir=store_dir, tiles="none", gap_days=case.gap_days)
    app = create_app(settings, caches)
    browser = Browser(app)
    try:
        if case.situation == "restart":
            return [browser.post(browser.bodies())]
        _wait_warm(app)
        opened = browser.post(browser.bodies())
        if case.situation == "open":
            return [opened]
        samples = []
        for k in range(3):
            threshold = THRESHOLDS[(3 * repeat + k) % len(THRESHOLDS)]
            change = browser.bodies("threshold.value", **{"threshold.value": threshold})
            changed = browser.post(change)
            if case.situation == "change":
                samples.append(changed)
            else:  # repeat: a second visitor asks for the same view
                samples.append(browser.post(change))
        return samples
    finally:
        browser.close()
        stop_background_work(app)
        app.server.extensions["uncia_context"].store.close()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50_ms": round(1000 * statistics.median(ordered), 1), "p95_ms": round(1000 * p95, 1)}


def run_case(store_dir: Path, case: Case, repeats: int) -> Samples:
    """Interleaved: with, without, then without, with, ... on fresh apps."""
    samples = Samples()
    for r in range(repeats):
        sides = [("with_", case.with_), ("without", case.without)]
        for side, caches in sides if r % 2 == 0 else sides[::-1]:
            getattr(samples, side).extend(measure(store_dir, case, caches, r))
    return samples


def row(case: Case, samples: Samples) -> dict[str, Any]:
    with_, without = _percentiles(samples.with_), _percentiles(samples.without)
    return {
        "layer": case.layer,
        "situation": case.situation,
        "gap_days": case.gap_days,
        "note": case.why,
        "with": with_,
        "without": without,
        "ratio_p50": round(without["p50_ms"] / max(with_["p50_ms"], 0.1), 2),
        "ratio_p95": round(without["p95_ms"] / max(with_["p95_ms"], 0.1), 2),
        "n": [len(samples.with_), len(samples.without)],
        "samples_ms": {
            "with": [round(1000 * s, 1) for s in samples.with_],
            "without": [round(1000 * s, 1) for s in samples.without],
        },
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'layer':34} {'situation':9} {'with p50/p95 ms':>17} {'without p50/p95 ms':>19} "
        f"{'ratio p50/p95':>14}"
    ]
    for r in rows:
        w, wo = r["with"], r["without"]
        layer = r["layer"] + (f" (gap_days {r['gap_days']})" if r["gap_days"] else "")
        lines.append(
            f"{layer:34.34} {r['situation']:9} {w['p50_ms']:>8.0f}/{w['p95_ms']:<8.0f} "
            f"{wo['p50_ms']:>9.0f}/{wo['p95_ms']:<9.0f} "
            f"{r['ratio_p50']:>6.2f}/{r['ratio_p95']:<6.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cameras", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=6, help="fresh apps per side and layer")
    parser.add_argument("--store", type=Path, default=WORK)
    parser.add_argument("--only", default="", help="run only the layers whose name has this")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    logging.getLogger("dashboard.serving.thumbnails").setLevel(logging.ERROR)
    build = build_store(args.store, args.rows, args.cameras, args.years)
    print(f"store: {build}", flush=True)
    # Shared gap files of earlier runs would make the first "with" side of a restart cheaper
    # than a store no process has seen; start clean, then let the first app write them.
    shutil.rmtree(StorePaths(args.store).dashboard_cache, ignore_errors=True)
    rows = []
    for case in CASES:
        if args.only and args.only not in case.layer:
            continue
        if case.situation == "restart":  # an earlier process has seen this store
            measure(args.store, Case(case.layer, "open", ALL_ON, gap_days=case.gap_days), ALL_ON, 0)
        started = time.perf_counter()
        rows.append({**row(case, run_case(args.store, case, args.repeats)),
                     "caches_with": asdict(case.with_), "caches_without": asdict(case.without)})
        print(table(rows[-1:]).splitlines()[1], f"({time.perf_counter() - started:.0f} s)",
              flush=True)  # fmt: skip
    print(table(rows))
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
        },
        "store": {"rows": args.rows, "cameras": args.cameras, "years": args.years},
        "repeats": args.repeats,
        "cases": rows,
    }
    atomic_write_text(json.dumps(result, indent=2, default=str), args.results)
    print(f"written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
