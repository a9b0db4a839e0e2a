"""Decisions written from the dashboard survive SIGKILL: the real `uncia serve`, real POSTs.

A client clicks through a known list of review decisions (confirm / reject / relabel of a
burst) and match decisions (accept / reject of a crop pair) by posting what the browser posts
to /_dash-update-component. The server is killed with SIGKILL at random points (at least 5
times): at a random moment of the stream, just as a decision's temporary file appears (mid
write) and just as its file lands (written, answer not sent yet). After each kill the store
must read cleanly and hold exactly the acknowledged decisions (plus, at most, the one in
flight); the client then restarts the server and re-sends what was not acknowledged, as a
person would click again. At the end the decisions equal those of an uninterrupted run: the
same decisions in the same order, none twice, none lost, no temporary file left.

"Equal" compares what was decided (burst, frame, decision, label, reviewer, score, model; pair,
decision, reviewer), never the wall-clock times or random ids each write stamps.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.schema import LOCALIZATIONS, MATCHES, conform
from pipeline.store.matches import latest_decisions, record_match_review
from pipeline.store.matches import reviews_dir as match_reviews_dir
from pipeline.store.reviews import read_reviews, record_review, reviews_dir
from pipeline.store.store import StorePaths, atomic_write_parquet, remove_stale_temporaries

REVIEWERS = ("Bayara", "Koustubh", "Tserendorj")
RELABELS = ("ibex", "livestock", "empty")
REVIEW_FIELDS = ("burst_id", "image_id", "decision", "label", "reviewer", "score", "model_name")
MIN_KILLS = 5
KILL_MODES = ("timer", "mid-write", "after-write", "timer", "after-write")
N_DECISIONS = 48


@dataclass(frozen=True)
class Decision:
    kind: str  # "review" or "match"
    key: str  # burst_id, or "query_id|candidate_id"
    decision: str
    label: str | None = None
    reviewer: str = "local"  # match decisions carry the signed-in user: "local" without auth


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("decisions") / "demo"
    build_demo_survey(out, DemoOptions(n_stations=3, n_years=1, seed=3))
    propose_pairs(out, [p.split("|") for p in known_pairs(out)])
    return out


def known_pairs(demo: Path) -> list[str]:
    """The 4 crop pairs decided on: neighbours among the 8 best bursts' frames, as the review
    list names them (smaller id first)."""
    con = duckdb.connect(str(demo / "uncia.duckdb"), read_only=True)
    ids = [
        r[0]
        for r in con.execute(
            "SELECT b.best_image_id FROM bursts b JOIN detections d "
            "ON d.image_id = b.best_image_id ORDER BY b.score DESC LIMIT 8"
        ).fetchall()
    ]
    con.close()
    return ["|".join(sorted((ids[i], ids[i + 1]))) for i in range(4)]


def propose_pairs(data: Path, pairs: list[list[str]]) -> None:
    """Crops and proposed matches for `pairs`, as `uncia localize` and `identify` write them:
    the dashboard records decisions on proposed pairs only."""
    frames = sorted({i for pair in pairs for i in pair})
    crops = [
        {"image_id": i, "run_id": "loc", "method": "gradcam", "target": "leopard",
         "crop_path": f"localizations/crops/{i}.jpg", "heatmap_path": None}
        for i in frames
    ]  # fmt: skip
    proposed = [
        {"query_id": a, "candidate_id": b, "rank": 1, "score": 1.0, "inliers": 20,
         "mirrored": False, "proposed": True}
        for a, b in pairs
    ]  # fmt: skip
    paths = StorePaths(data)
    atomic_write_parquet(
        conform(pa.Table.from_pylist(crops, schema=LOCALIZATIONS), LOCALIZATIONS),
        paths.table("localizations"),
    )
    atomic_write_parquet(
        conform(pa.Table.from_pylist(proposed, schema=MATCHES), MATCHES), paths.table("matches")
    )


def fresh_copy(demo: Path, target: Path) -> Path:
    """A copy of the demo store without any decision (each run starts from the same store)."""
    shutil.copytree(demo, target)
    return target


def known_decisions(demo: Path, seed: int = 6) -> tuple[list[Decision], dict[str, tuple]]:
    """N_DECISIONS decisions on 8 bursts and 4 crop pairs; each changes its burst or pair."""
    con = duckdb.connect(str(demo / "uncia.duckdb"), read_only=True)
    bursts = con.execute(
        "SELECT b.burst_id, b.best_image_id, b.score, d.model_name FROM bursts b "
        "JOIN detections d ON d.image_id = b.best_image_id ORDER BY b.score DESC LIMIT 8"
    ).fetchall()
    con.close()
    shown = {b[0]: (b[1], b[2], b[3]) for b in bursts}
    pairs = known_pairs(demo)
    rng = random.Random(seed)
    current: dict[str, tuple] = {}
    out: list[Decision] = []
    while len(out) < N_DECISIONS:
        if rng.random() < 0.65:
            burst = rng.choice(list(shown))
            decision = rng.choice(("confirm", "reject", "relabel"))
            label = rng.choice(RELABELS) if decision == "relabel" else None
            d = Decision("review", burst, decision, label, rng.choice(REVIEWERS))
        else:
            d = Decision("match", rng.choice(pairs), rng.choice(("accept", "reject")))
        state = (d.decision, d.label, d.reviewer)
        if current.get(d.key) == state:
            continue  # restating the current decision stores nothing; keep the list all-new
        current[d.key] = state
        out.append(d)
    return out, shown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`uncia serve` in a child process; killed with SIGKILL, restarted on a fresh port."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        for _ in range(3):  # another process may take the free port first: try another
            if self.start():
                return
        raise AssertionError(f"the server did not start:\n{log.read_text()}")

    def start(self) -> bool:
        self.port = free_port()
        command = [sys.executable, "-m", "cli.main", "serve", "--data", str(self.data)]
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port), "--tiles", "none"], stdout=fh, stderr=fh
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                status, deps = self.request("GET", "/_dash-dependencies")
                if status == 200:
                    self.dependencies = json.loads(deps)
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        return False

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def payload(server: Server, d: Decision) -> dict[str, Any]:
    """The body a browser posts for a click on the decision's button."""
    if d.kind == "match":
        clicked = "individuals-accept" if d.decision == "accept" else "individuals-reject"
        return {
            "output": "individuals-status.children",
            "outputs": {"id": "individuals-status", "property": "children"},
            "inputs": [
                {"id": "individuals-accept", "property": "n_clicks", "value": 1},
                {"id": "individuals-reject", "property": "n_clicks", "value": 1},
            ],
            "state": [{"id": "individuals-pair", "property": "value", "value": d.key}],
            "changedPropIds": [f"{clicked}.n_clicks"],
        }
    (dep,) = [x for x in server.dependencies if "review-button" in json.dumps(x["inputs"])]
    output = dep["output"]
    multi = [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True))
             for p in output[2:-2].split("...")]  # fmt: skip
    button = {"burst": d.key, "decision": d.decision, "type": "review-button"}
    # The gallery's one "Relabel as" dropdown: what it holds rides along with every click.
    assert [s["id"] for s in dep["state"]] == ["relabel-choice", "reviewer-name"]
    return {
        "output": output,
        "outputs": multi,
        "inputs": [[{"id": button, "property": "n_clicks", "value": 1}]],
        "state": [
            {"id": "relabel-choice", "property": "value", "value": d.label or RELABELS[0]},
            {"id": "reviewer-name", "property": "value", "value": d.reviewer},
        ],
        "changedPropIds": [json.dumps(button, sort_keys=True, separators=(",", ":")) + ".n_clicks"],
    }


def send(server: Server, d: Decision) -> bool:
    """Post one decision; True when the server answered that it stored it (acknowledged)."""
    try:
        status, body = server.request("POST", "/_dash-update-component", payload(server, d))
    except (OSError, http.client.HTTPException):
        return False  # killed while the request was in flight: no answer
    assert status == 200, body
    response = json.loads(body)["response"]
    if d.kind == "match":
        assert response["individuals-status"]["children"].startswith(f"local: {d.decision} ")
    else:
        assert response["review-alert"]["children"] == [] and response["reviews-version"]["data"]
    return True


def review_history(data: Path) -> list[tuple]:
    return [tuple(r[f] for f in REVIEW_FIELDS)
            for r in read_reviews(data, latest_only=False).to_pylist()]  # fmt: skip


def match_history(data: Path) -> list[tuple]:
    folder = match_reviews_dir(data)
    if not any(folder.glob("*.parquet")):
        return []
    return duckdb.execute(
        "SELECT query_id, candidate_id, decision, reviewer FROM read_parquet(?, filename = true) "
        "ORDER BY decided_at, filename",
        [str(folder / "*.parquet")],
    ).fetchall()


def expected(decisions: list[Decision], shown: dict[str, tuple]) -> tuple[list, list]:
    reviews, matches = [], []
    for d in decisions:
        if d.kind == "review":
            image, score, model = shown[d.key]
            label = {"confirm": "snow_leopard", "reject": "not_leopard"}.get(d.decision, d.label)
            reviews.append((d.key, image, d.decision, label, d.reviewer, score, model))
        else:
            query, candidate = d.key.split("|")
            matches.append((query, candidate, d.decision, d.reviewer))
    return reviews, matches


def assert_readable(data: Path) -> None:
    """Every visible file of both decision folders is a whole Parquet file; readers work."""
    for folder in (reviews_dir(data), match_reviews_dir(data)):
        visible = (
            [p for p in folder.glob("*") if not p.name.startswith(".")] if folder.exists() else []
        )
        assert all(p.suffix == ".parquet" for p in visible), visible
        for p in visible:
            assert pq.read_table(p).num_rows == 1
    read_reviews(data)
    latest_decisions(data)


def temporaries(data: Path) -> list[Path]:
    folders = (reviews_dir(data), match_reviews_dir(data))
    return [p for f in folders if f.exists() for p in f.iterdir() if p.name.endswith(".tmp")]


def latest_reviews(data: Path) -> dict[str, tuple]:
    return {
        r["burst_id"]: tuple(r[f] for f in REVIEW_FIELDS) for r in read_reviews(data).to_pylist()
    }


class Killer:
    """Kills the server in another thread: after a random delay, or when the n-th new
    temporary file (mid write) or decision file (written, answer not yet sent) appears."""

    def __init__(self, server: Server, mode: str, rng: random.Random) -> None:
        self.server, self.mode = server, mode
        self.folders = [reviews_dir(server.data), match_reviews_dir(server.data)]
        self.nth = rng.randint(1, 3)
        self.delay = rng.uniform(0.05, 0.4)
        self.before = self.names()
        self.done = threading.Event()  # the client has nothing left to send: kill now
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def names(self) -> set[str]:
        found: set[str] = set()
        for folder in self.folders:
            if folder.exists():
                found.update(os.listdir(folder))
        return found

    def watch(self) -> None:
        deadline = time.monotonic() + 30
        if self.mode == "timer":
            self.done.wait(self.delay)
        else:
            suffix = ".tmp" if self.mode == "mid-write" else ".parquet"
            seen: set[str] = set()
            while time.monotonic() < deadline and not self.done.is_set():
                seen |= {n for n in self.names() - self.before if n.endswith(suffix)}
                if len(seen) >= self.nth:
                    break
                time.sleep(0.0005)
        self.server.kill()


def run_decisions(data: Path, decisions: list[Decision], log: Path) -> None:
    """Send every decision to one server that is never interrupted."""
    server = Server(data, log)
    try:
        for d in decisions:
            assert send(server, d), log.read_text()
    finally:
        server.stop()


def test_decisions_from_the_dashboard_survive_sigkill(demo: Path, tmp_path: Path) -> None:
    decisions, shown = known_decisions(demo)
    want_reviews, want_matches = expected(decisions, shown)
    reference = fresh_copy(demo, tmp_path / "reference")
    # The uninterrupted run goes on beside the killed one (its own server and store).
    pool = ThreadPoolExecutor(max_workers=1)
    uninterrupted = pool.submit(run_decisions, reference, decisions, tmp_path / "reference.log")

    data = fresh_copy(demo, tmp_path / "killed")
    rng = random.Random(20261127)
    acked = kills = answers_lost = half_written = 0
    while acked < len(decisions):
        server = Server(data, tmp_path / "killed.log")
        killer = Killer(server, KILL_MODES[kills], rng) if kills < len(KILL_MODES) else None
        while acked < len(decisions) and send(server, decisions[acked]):
            acked += 1
        if killer is None:
            # A lost answer makes a reviewer click again: the latest decisions, re-sent, are
            # acknowledged and stored no second time.
            for kind in ("review", "match"):
                assert send(server, next(d for d in reversed(decisions) if d.kind == kind))
            server.stop()
            break
        killer.done.set()
        killer.thread.join()
        kills += 1
        # What a reader sees right after the kill: whole files only, and exactly the
        # acknowledged decisions, or those and the one in flight when it had landed.
        assert_readable(data)
        got_reviews, got_matches = review_history(data), match_history(data)
        landed = [
            n
            for n in (acked, acked + 1)
            if (got_reviews, got_matches) == expected(decisions[:n], shown)
        ]
        assert landed, f"after kill {kills} ({killer.mode}) at decision {acked}"
        answers_lost += landed[0] > acked
        half_written += bool(temporaries(data))
    assert kills >= MIN_KILLS and acked == len(decisions)
    assert answers_lost >= 1, "no kill fell between a decision's write and its answer"
    uninterrupted.result()
    pool.shutdown()
    assert review_history(reference) == want_reviews
    assert match_history(reference) == want_matches

    assert review_history(data) == want_reviews  # the same decisions, in order: none twice
    assert match_history(data) == want_matches
    assert latest_reviews(data) == latest_reviews(reference)
    assert latest_decisions(data) == latest_decisions(reference)
    assert len(list(reviews_dir(data).glob("*.parquet"))) == len(want_reviews)
    assert len(list(match_reviews_dir(data).glob("*.parquet"))) == len(want_matches)
    assert temporaries(data) == []  # the writers after the kills removed the killed ones'
    print(
        f"{kills} kills: {half_written} left a half-written file, {answers_lost} a stored "
        "decision whose answer was lost"
    )


def test_restating_the_current_decision_stores_nothing(tmp_path: Path) -> None:
    """Idempotency in the writers themselves: a decision equal to the current one of its burst
    (or pair) is not stored again; a change, and a change back, are."""

    def review(decision: str, reviewer: str, label: str | None = None) -> dict:
        return record_review(
            tmp_path, burst_id="N1/20240303T040000", image_id="f1", decision=decision,
            reviewer=reviewer, label=label,
        )  # fmt: skip

    first = review("relabel", "Bayara", "ibex")
    again = review("relabel", "Bayara", "ibex")
    assert again == first
    review("relabel", "Zed", "ibex")
    review("relabel", "Bayara", "ibex")
    review("relabel", "Bayara", "empty")
    history = read_reviews(tmp_path, latest_only=False).to_pylist()
    assert [(r["reviewer"], r["label"]) for r in history] == [
        ("Bayara", "ibex"), ("Zed", "ibex"), ("Bayara", "ibex"), ("Bayara", "empty")
    ]  # fmt: skip
    path = record_match_review(tmp_path, "a", "b", "accept", "local")
    assert record_match_review(tmp_path, "b", "a", "accept", "local") == path  # either order
    record_match_review(tmp_path, "a", "b", "reject", "local")
    record_match_review(tmp_path, "a", "b", "accept", "local")
    assert len(match_history(tmp_path)) == 3 and latest_decisions(tmp_path) == {
        frozenset(("a", "b")): "accept"
    }
    # A writer killed mid-write leaves a hidden temporary file; the next writer removes it.
    stale = reviews_dir(tmp_path) / ".20240303T040000Z-dead.parquet.x1y2.tmp"
    stale.write_bytes(b"PAR1 half a file")
    assert len(read_reviews(tmp_path, latest_only=False)) == 4  # readers never see it
    review("confirm", "Bayara")
    assert not stale.exists()
    # ... and a pipeline run's start-up clean-up leaves the decision folders to their writers.
    in_flight = match_reviews_dir(tmp_path) / ".20240303T040000Z-live.parquet.x1y2.tmp"
    in_flight.write_bytes(b"being written")
    remove_stale_temporaries(tmp_path)
    assert in_flight.exists()
