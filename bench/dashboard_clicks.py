"""`python -m bench.dashboard_clicks`: click-to-update times of the dashboard in a real browser.

The demo survey (`uncia demo`, 60 stations over 4 years) is served by the real `uncia serve`
and driven in Debian's headless Chromium at 1440×900. Each user action is repeated `--repeats`
times and timed from the input event to the moment every panel it changes has its answer on
screen: the page counts the dashboard's callback requests (a wrapped `fetch`), and an action
is done when each callback it must trigger has answered, no request is still in flight, the
page shows the new content (e.g. the hexagon's id in every title), and two animation frames
have been drawn. Median and p95 per action, against the 1 s target, are printed as a table and
written to bench/results/dashboard_clicks.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.store.store import StorePaths, atomic_write_text

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "dashboard_clicks.json"
WORK = ROOT / "work" / "dashboard-clicks-demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TARGET_S = 1.0
TIMEOUT_S = 30.0

# Counts the page's callback requests: which outputs answered when, and how many are pending.
TRACK_CALLBACKS = """
(() => {
  window.__dash = {pending: 0, done: []};
  const plain = window.fetch.bind(window);
  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : input.url;
    if (!url.includes("_dash-update-component")) return plain(input, init);
    let output = "";
    try { output = JSON.parse(init.body).output; } catch (e) {}
    window.__dash.pending += 1;
    const finish = () => {
      window.__dash.pending -= 1;
      window.__dash.done.push({output: output, t: performance.now()});
    };
    return plain(input, init).then(
      (response) => response.clone().text().then(() => { finish(); return response; }),
      (error) => { finish(); throw error; });
  };
})();
"""

# Resolves once every output named in `outputs` answered after `since`, nothing is pending and
# `ready` (a JS expression) holds, after two more animation frames (what the user then sees).
SETTLED = """([since, outputs, ready]) => {
  const d = window.__dash;
  if (d.pending > 0) return false;
  const answered = d.done.filter((x) => x.t >= since).map((x) => x.output).join(" ");
  if (!outputs.every((o) => answered.includes(o))) return false;
  return !!eval(ready);
}"""

MAP = "#hotspot-map .js-plotly-plot"
MAP_READY = f"""() => {{
  const g = document.querySelector('{MAP}');
  const sub = g && g._fullLayout && g._fullLayout.map && g._fullLayout.map._subplot;
  return !!(sub && sub.map && sub.map.loaded() && g.data && g.data[0].locations.length
    && document.querySelector('#review-gallery .review-card')
    && document.querySelector('#timeline .js-plotly-plot'));
}}"""


def _percentiles(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "median_s": round(statistics.median(ordered), 3),
        "p95_s": round(p95, 3),
        "max_s": round(ordered[-1], 3),
        "n": len(ordered),
        "under_target": p95 < TARGET_S,
    }


@contextlib.contextmanager
def uncia_serve(data_dir: Path, workers: int = 1) -> Iterator[str]:
    """The real `uncia serve` on a free loopback port; yields its URL once it listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "cli.main", "serve", "--data", str(data_dir),
               "--port", str(port), "--tiles", "none", "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT.parent, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "Uncia dashboard on ...": listening
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _cpu_seconds_of_children() -> float:
    """CPU seconds (user + system) used so far by every process this one started, however
    deep: the `uncia serve` server and Chromium's processes (Linux /proc). On a machine that
    others load too, a click's CPU seconds say what it costs whatever the wait for a core."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    me = os.getpid()

    def descends(pid: int) -> bool:
        while pid in parents and pid > 1:
            pid = parents[pid]
            if pid == me:
                return True
        return False

    return sum(t for pid, t in ticks.items() if descends(pid)) / os.sysconf("SC_CLK_TCK")


def _now(page: Any) -> float:
    return float(page.evaluate("() => performance.now()"))


def timed(
    page: Any, act: Callable[[], None], outputs: list[str], ready: str = "true"
) -> tuple[float, float]:
    """Seconds from `act()` (an input event) to the settled page (see SETTLED), and the CPU
    seconds the server and the browser spent meanwhile."""
    since = _now(page)
    cpu = _cpu_seconds_of_children()
    started = time.perf_counter()
    act()
    page.wait_for_function(
        SETTLED, arg=[since, outputs, ready], polling="raf", timeout=TIMEOUT_S * 1000
    )
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return time.perf_counter() - started, _cpu_seconds_of_children() - cpu


def _hexagon_points(page: Any, n: int) -> list[tuple[str, float, float]]:
    """Up to `n` hexagons of the map with the screen point to click each (inside the map)."""
    return [
        (str(c), float(x), float(y))
        for c, x, y in page.evaluate(
            f"""(n) => {{
          const g = document.querySelector('{MAP}');
          const map = g._fullLayout.map._subplot.map;
          const box = map.getContainer().getBoundingClientRect();
          const out = [];
          for (const f of g.data[0].geojson.features) {{
            const ring = f.geometry.coordinates[0];
            const lng = ring.slice(0, -1).reduce((a, p) => a + p[0], 0) / (ring.length - 1);
            const lat = ring.slice(0, -1).reduce((a, p) => a + p[1], 0) / (ring.length - 1);
            const p = map.project([lng, lat]);
            if (p.x > 40 && p.y > 40 && p.x < box.width - 40 && p.y < box.height - 40)
              out.push([f.id, box.left + p.x + 6, box.top + p.y + 9]);
          }}
          return out.slice(0, n);
        }}""",
            n,
        )
    ]


HEXAGON_OUTPUTS = [
    "detections.children",
    "diel.figure",
    "timeline.figure",
    "event-series.figure",
    "review-gallery.children",
]


def _title_has(cell: str) -> str:
    return f"""(() => {{
      const t = (sel) => {{ const g = document.querySelector(sel);
        return g && g.layout && g.layout.title ? String(g.layout.title.text) : ''; }};
      return document.querySelector('#detections-title').innerText.includes('{cell}')
        && document.querySelector('#review-title').innerText.includes('{cell}')
        && t('#diel .js-plotly-plot').includes('{cell}')
        && t('#timeline .js-plotly-plot').includes('{cell}')
        && t('#event-series .js-plotly-plot').includes('{cell}')
        && document.querySelector('{MAP}').getAttribute('data-selected-hexagon') === '{cell}';
    }})()"""


def _radio(page: Any, component: str, value: str) -> Callable[[], None]:
    return lambda: page.locator(f"#{component} input[value='{value}']").check()


def measure(url: str, repeats: int) -> dict[str, Any]:
    """Time each action `repeats` times on one page of a fresh browser at `url`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[float]] = {
        "hexagon click": [],
        "season change": [],
        "date change": [],
        "review key": [],
        "resolution change": [],
        "year-over-year toggle": [],
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.add_init_script(TRACK_CALLBACKS)
        page.goto(url)
        page.wait_for_function(MAP_READY, timeout=120_000)
        page.wait_for_function("() => window.__dash.pending === 0", timeout=60_000)
        reviewer = page.locator("#reviewer-name")
        reviewer.fill("bench")
        reviewer.press("Enter")
        reviewer.blur()  # Escape (used below to clear the selection) is ignored in an input

        cpu: dict[str, list[float]] = {name: [] for name in samples}

        def record(name: str, act: Callable[[], None], outputs: list[str], ready: str = "true"):
            try:
                seconds, cpu_s = timed(page, act, outputs, ready)
            except PlaywrightTimeout:
                # Counted, not hidden: a click never answered is a sample of TIMEOUT_S.
                print(f"{name}: no answer in {TIMEOUT_S} s", file=sys.stderr)
                seconds, cpu_s = TIMEOUT_S, float("nan")
                page.keyboard.press("Escape")
            samples[name].append(seconds)
            cpu[name].append(cpu_s)

        # A hexagon click: frames, activity, camera operation, series, gallery and the outline.
        page.locator("#hotspot-map").scroll_into_view_if_needed()
        points = _hexagon_points(page, repeats)
        for cell, x, y in (points * repeats)[:repeats]:
            page.keyboard.press("Escape")  # start from no selection
            page.wait_for_function("() => window.__dash.pending === 0")
            # The pointer comes to the hexagon first, as a hand's does: Plotly picks the point
            # under it on mouse moves (at most every 50 ms), and a click at once after a jump
            # would pick the hexagon hovered before.
            page.mouse.move(x, y)
            page.wait_for_timeout(300)
            click = lambda x=x, y=y: page.mouse.click(x, y)  # noqa: E731
            record("hexagon click", click, HEXAGON_OUTPUTS, _title_has(cell))
        page.keyboard.press("Escape")
        page.wait_for_function("() => window.__dash.pending === 0")

        # Filters: the season (all <-> winter), then the end date (typed, as a user would).
        summary = "document.querySelector('#map-summary').innerText"
        for i in range(repeats):
            season = _radio(page, "season", "winter" if i % 2 == 0 else "all")
            record("season change", season, ["hotspot-map.figure"], f"{summary}.length > 0")
        end_input = page.locator("input.dash-datepicker-end-date")
        last = end_input.input_value()
        for i in range(repeats):
            day = f"{int(last[:4]) - 1 - (i % 2)}{last[4:]}"

            def type_date(day: str = day) -> None:
                end_input.fill(day)
                end_input.press("Tab")  # the picker takes a typed date on Tab

            record("date change", type_date, ["hotspot-map.figure"])

        # Resolution 6 <-> 7 and the year-over-year map on and off.
        for i in range(repeats):
            resolution = _radio(page, "resolution", "7" if i % 2 == 0 else "6")
            record("resolution change", resolution, ["hotspot-map.figure"])
        for i in range(repeats):
            mode = _radio(page, "map-mode", "change" if i % 2 == 0 else "rate")
            record("year-over-year toggle", mode, ["hotspot-map.figure"])

        # A review key on the focused card: the decision shows and focus moves to the next card.
        cards = page.locator("#review-gallery .review-card")
        for i in range(repeats):
            card = cards.nth(i % max(1, cards.count() - 1))
            card.focus()
            burst = card.get_attribute("data-burst")
            key = "c" if i % 2 == 0 else "x"
            decision = "confirm" if key == "c" else "reject"
            ready = f"""(() => {{
              const c = document.querySelector(
                '#review-gallery .review-card[data-burst="{burst}"]');
              return !!(c && c.querySelector('.decision.{decision}')
                && document.activeElement !== c
                && document.activeElement.classList.contains('review-card'));
            }})()"""
            press = lambda key=key: page.keyboard.press(key)  # noqa: E731
            record("review key", press, ["review-gallery.children"], ready)
        browser.close()
    return {
        name: {**_percentiles(s), "cpu_s_median": round(statistics.median(cpu[name]), 3)}
        for name, s in samples.items()
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"| action | median (s) | p95 (s) | n | under {TARGET_S:g} s | CPU s (median) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        ok = "yes" if r["under_target"] else "**no**"
        lines.append(
            f"| {name} | {r['median_s']:.2f} | {r['p95_s']:.2f} | {r['n']} | {ok} | "
            f"{r['cpu_s_median']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", type=Path, default=WORK, help="demo survey folder (built once)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not Path(CHROMIUM).exists():
        print(f"skipped: no {CHROMIUM} (make browser)")
        return 0
    if not StorePaths(args.data).duckdb.exists():
        build_demo_survey(args.data, DemoOptions())
    load_before = os.getloadavg()[0]
    with uncia_serve(args.data) as url:
        results = measure(url, args.repeats)
    load_after = os.getloadavg()[0]
    print(table(results))
    print(
        f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    out = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min": [round(load_before, 1), round(load_after, 1)],
        },
        "survey": "uncia demo (60 stations, 4 years)",
        "server": "uncia serve --workers 1",
        "browser": "Debian chromium, headless, 1440x900",
        "target_s": TARGET_S,
        "actions": results,
    }
    atomic_write_text(json.dumps(out, indent=2), RESULTS)
    print(f"written to {RESULTS}")
    return 0 if all(r["under_target"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
