"""`python -m bench.load_bench`: a bounded load test of the dashboard on loopback.

Serves the demo survey with `uncia serve` (waitress, a users file, so authentication is in the
path) on 127.0.0.1, then 50 simulated browsers for 60 s: each polls the refresh interval every
5 s and, after a think time, changes a control and posts every callback that control triggers,
concurrently, as the page does. Payloads are built from the app's own /_dash-dependencies.
Prints requests/s, latency percentiles and errors; writes bench/results/load.json atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "load"
RESULTS = ROOT / "bench" / "results" / "load.json"
HOST = "127.0.0.1"  # loopback only, by design: this tool never targets another machine
REQUEST_TIMEOUT_S = 30.0
REFRESH_S = 5.0
TARGET_P95_MS = 500.0

# A control the user changes → values it takes (as the page's components send them).
CONTROL_VALUES: dict[str, list[Any]] = {
    "threshold.value": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "resolution.value": [5, 6, 7, 8],
    "season.value": ["all", "winter", "mating", "summer"],
    "period.value": ["week", "month"],
    "date-range.start_date": [None, "2021-06-01", "2022-01-01", "2023-03-15"],
    "date-range.end_date": [None, "2023-12-31", "2024-06-30"],
}
DEFAULTS: dict[str, Any] = {
    "threshold.value": 0.5,
    "resolution.value": 6,
    "season.value": "all",
    "period.value": "month",
    "month-start.value": 11,
    "month-end.value": 3,
    "date-range.start_date": None,
    "date-range.end_date": None,
    "data-version.data": "v",
    "refresh.n_intervals": 1,
}


def dash_payload(dependency: dict[str, Any], values: dict[str, Any], changed: str) -> bytes:
    """The JSON body the browser posts to /_dash-update-component for one callback."""
    output = dependency["output"]
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    outputs = [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]

    def with_values(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

    body = {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": with_values(dependency["inputs"]),
        "state": with_values(dependency["state"]),
        "changedPropIds": [changed],
    }
    return json.dumps(body).encode()


def _plain(dependency: dict[str, Any]) -> bool:
    """Server callbacks with plain ids that only read (writes need a button with a pattern id)."""
    ids = [i["id"] for i in dependency["inputs"] + dependency["state"]]
    return not dependency.get("clientside_function") and all(
        isinstance(i, str) and not i.startswith("{") for i in ids
    )


class Connection:
    """One keep-alive HTTP/1.1 connection to HOST:port, reopened after an error."""

    def __init__(self, port: int, auth: str) -> None:
        self.port = port
        self.auth = auth
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()  # one request at a time; more wait, as in a browser

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        async with self.lock:
            try:
                return await self._request(method, path, body)
            except BaseException:
                await self.close()  # a half-read answer must not be read by the next request
                raise

    async def _request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Authorization: Basic {self.auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while size := int((await self.reader.readline()).strip() or b"0", 16):
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


@dataclass
class Tally:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def all_latencies(self) -> list[float]:
        return sorted(x for values in self.latencies_ms.values() for x in values)


async def _timed(conn: Connection, name: str, body: bytes, tally: Tally) -> None:
    start = time.perf_counter()
    try:
        status, _ = await asyncio.wait_for(
            conn.request("POST", "/_dash-update-component", body), REQUEST_TIMEOUT_S
        )
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        tally.errors[f"{name}: {type(exc).__name__}"] += 1
        return
    tally.latencies_ms[name].append((time.perf_counter() - start) * 1000)
    if status not in (200, 204):
        tally.errors[f"{name}: HTTP {status}"] += 1


async def _browser(
    port: int,
    auth: str,
    deps: list[dict[str, Any]],
    hexagons: list[str],
    stop_at: float,
    think_s: tuple[float, float],
    seed: int,
    tally: Tally,
) -> None:
    """One open page: a refresh poll every REFRESH_S, and control changes after think times."""
    rng = random.Random(seed)
    pool = [Connection(port, auth) for _ in range(6)]  # a browser's connections per host
    values = {**DEFAULTS, "selected-hexagon.data": rng.choice(hexagons) if hexagons else None}
    refresh = [d for d in deps if any(i["id"] == "refresh" for i in d["inputs"])]
    next_refresh = time.monotonic() + rng.uniform(0, REFRESH_S)
    next_action = time.monotonic() + rng.uniform(0, think_s[1])
    try:
        while (now := time.monotonic()) < stop_at:
            if now >= next_refresh:
                for dep in refresh:
                    body = dash_payload(dep, values, "refresh.n_intervals")
                    await _timed(pool[0], "refresh", body, tally)
                next_refresh += REFRESH_S
            if now >= next_action:
                control = rng.choice(list(CONTROL_VALUES))
                values[control] = rng.choice(CONTROL_VALUES[control])
                if hexagons and rng.random() < 0.3:
                    values["selected-hexagon.data"] = rng.choice(hexagons)
                fired = [
                    d
                    for d in deps
                    if any(f"{i['id']}.{i['property']}" == control for i in d["inputs"])
                ]
                await asyncio.gather(
                    *(
                        _timed(
                            pool[k % len(pool)],
                            _callback_name(d["output"]),
                            dash_payload(d, values, control),
                            tally,
                        )
                        for k, d in enumerate(fired)
                    )
                )
                next_action = time.monotonic() + rng.uniform(*think_s)
            await asyncio.sleep(max(0.01, min(next_refresh, next_action) - time.monotonic()))
    finally:
        for conn in pool:
            await conn.close()


def _callback_name(output: str) -> str:
    return output.strip(".").split(".")[0]


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _prepare_data(data_dir: Path) -> None:
    from pipeline.runs.demo import build_demo_survey
    from pipeline.store.store import StorePaths

    if not StorePaths(data_dir).duckdb.exists():
        print(f"building the demo survey in {data_dir} (once)", flush=True)
        build_demo_survey(data_dir)


def _hexagons(data_dir: Path) -> list[str]:
    import duckdb

    from pipeline.store.store import StorePaths

    with duckdb.connect(str(StorePaths(data_dir).duckdb), read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT h3_r6 FROM deployments WHERE h3_r6 IS NOT NULL ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


async def _run_load(
    port: int,
    auth: str,
    users: int,
    duration_s: float,
    think_s: tuple[float, float],
    deps: list[dict[str, Any]],
    hexagons: list[str],
) -> tuple[Tally, float]:
    tally = Tally()
    start = time.monotonic()
    await asyncio.gather(
        *(
            _browser(port, auth, deps, hexagons, start + duration_s, think_s, seed, tally)
            for seed in range(users)
        )
    )
    return tally, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated browsers (50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--think-min", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--think-max", type=float, default=15.0, help="seconds (15)")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads (8)")
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (2: one per core here)"
    )
    parser.add_argument("--data", type=Path, default=WORK / "demo", help="store to serve")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = parser.parse_args(argv)
    if not (1 <= args.users <= 500 and 1 <= args.duration <= 600):
        parser.error("--users must be 1–500 and --duration 1–600 s")

    _prepare_data(args.data)
    from dashboard.serving.auth import hash_password

    password = secrets.token_urlsafe(18)
    users_file = WORK / "users.toml"
    users_file.parent.mkdir(parents=True, exist_ok=True)
    users_file.write_text(f'[users.bench]\npassword = "{hash_password(password)}"\n')
    users_file.chmod(0o600)
    auth = base64.b64encode(f"bench:{password}".encode()).decode()
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "serve",
        "--data",
        str(args.data),
        "--host",
        HOST,
        "--port",
        str(port),
        "--tiles",
        "none",
        "--auth-file",
        str(users_file),
        "--threads",
        str(args.threads),
        "--workers",
        str(args.workers),
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline().strip()
        print(banner, flush=True)
        deps = asyncio.run(_dependencies(port, auth))
        hexagons = _hexagons(args.data)
        print(
            f"{args.users} browsers for {args.duration:.0f} s on {HOST}:{port}, "
            f"{len(deps)} read callbacks, think {args.think_min}–{args.think_max} s",
            flush=True,
        )
        tally, elapsed = asyncio.run(
            _run_load(
                port,
                auth,
                args.users,
                args.duration,
                (args.think_min, args.think_max),
                deps,
                hexagons,
            )
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies = tally.all_latencies()
    requests = len(latencies) + sum(1 for k in tally.errors if "HTTP" not in k)
    result = {
        "what": "dashboard callbacks under load (bench/load_bench.py)",
        "server": banner.split("; ")[-1].rstrip(")") if banner else "unknown",
        "users": args.users,
        "duration_s": round(elapsed, 1),
        "think_s": [args.think_min, args.think_max],
        "threads": args.threads,
        "workers": args.workers,
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "per_callback_p95_ms": {
            name: round(_percentile(sorted(v), 0.95), 1)
            for name, v in sorted(tally.latencies_ms.items())
        },
        "per_callback_requests": {n: len(v) for n, v in sorted(tally.latencies_ms.items())},
        "target_p95_ms": TARGET_P95_MS,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_atomically(args.out, result)
    print(
        f"{requests} requests in {elapsed:.1f} s = {result['requests_per_s']} req/s; "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms; "
        f"errors {result['errors']}  → {args.out}"
    )
    for name, p95 in result["per_callback_p95_ms"].items():
        print(f"  {name:<28} {result['per_callback_requests'][name]:>6} requests  p95 {p95} ms")
    ok = result["errors"] == 0 and result["p95_ms"] < TARGET_P95_MS
    return 0 if ok else 1


async def _dependencies(port: int, auth: str) -> list[dict[str, Any]]:
    """Wait for the server, then read the page's callbacks from /_dash-dependencies."""
    deadline = time.monotonic() + 60
    while True:
        conn = Connection(port, auth)
        try:
            await conn.request("GET", "/_dash-layout")
            status, body = await conn.request("GET", "/_dash-dependencies")
            if status == 200:
                return [d for d in json.loads(body) if _plain(d)]
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)
        finally:
            await conn.close()


if __name__ == "__main__":
    sys.exit(main())
