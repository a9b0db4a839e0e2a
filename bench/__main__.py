"""`python -m bench`: frames/s of (a) the loop a user would write, (b) Uncia's pipeline and
(c) Uncia's model alone, measured in one run on generated 4000x3000 camera-trap-sized JPEGs.

Figures are printed and written to bench/results/latest.json; docs/benchmarks.md explains them.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

# OpenMP threads that finish a layer early sleep instead of spinning, leaving the cores to the
# decoding threads: b gains ~10% on 2 cores, c is unchanged (measured). libgomp reads this
# once, when torch loads it, so it must be set before `import torch`; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import io
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

from pipeline.errors import UnciaError, WeightsNotFoundError
from pipeline.stages.classify import ZeroShotImageNet
from pipeline.stages.decode import decode_frame
from pipeline.stages.embed import (
    BACKBONES,
    Backbone,
    build_backbone,
    load_backbone,
    locate_weights,
    untrained_network,
)

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results" / "latest.json"
FRAME_WIDTH, FRAME_HEIGHT = 4000, 3000
JPEG_QUALITY = 90
SENSOR_NOISE = 5.0  # gives ~3.2 MB files (0.26 bytes/pixel), like real 12 Mpx trail cameras
DEPLOYMENT = "BENCH01"
GENERATOR = f"v1-{FRAME_WIDTH}x{FRAME_HEIGHT}-q{JPEG_QUALITY}-noise{SENSOR_NOISE}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--frames", type=int, default=192, help="frames for (b) and (c)")
    parser.add_argument(
        "--baseline-frames", type=int, default=64, help="frames for (a), the slow plain loop"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads for (b)")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet50")
    parser.add_argument("--weights", type=Path, help="state-dict file (default: hub cache)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best is kept")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if min(args.frames, args.baseline_frames, args.batch_size, args.workers, args.repeats) < 1:
        parser.error("counts must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------
# Frames


def make_frame(seed: int, taken: datetime) -> bytes:
    """A 4000x3000 JPEG with texture at several scales plus sensor noise, and EXIF time.

    Real camera-trap files are mostly 0.1-0.3 bytes/pixel; the noise level puts these at about
    0.26, and JPEG decoding time grows with the bytes, so this is not an easy case.
    """
    rng = np.random.default_rng(seed)
    small_w, small_h = FRAME_WIDTH // 4, FRAME_HEIGHT // 4
    texture = np.zeros((small_h, small_w, 3), np.float32)
    for cell, weight in ((2, 0.25), (8, 0.35), (32, 0.4)):
        coarse = rng.integers(0, 256, (small_h // cell + 1, small_w // cell + 1, 3), np.uint8)
        resized = Image.fromarray(coarse).resize((small_w, small_h), Image.Resampling.BICUBIC)
        texture += weight * np.asarray(resized, np.float32)
    full = Image.fromarray(texture.astype(np.uint8)).resize(
        (FRAME_WIDTH, FRAME_HEIGHT), Image.Resampling.BICUBIC
    )
    noisy = np.asarray(full, np.float32) + SENSOR_NOISE * rng.standard_normal(
        (FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.float32
    )
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=JPEG_QUALITY, exif=exif
    )
    return buffer.getvalue()


def write_frame(path: Path, index: int) -> None:
    """Write frame `index` of the burst sequence to `path`, atomically."""
    taken = datetime(2024, 3, 1, 6, 0, 0) + timedelta(minutes=10 * (index // 3), seconds=index % 3)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(make_frame(index, taken))
    os.replace(temporary, path)  # an interrupted generation leaves no half-written frame


def ensure_frames(count: int, workers: int) -> tuple[Path, Path, list[Path]]:
    """Generate `count` frames (reusing those cached in bench/work) and lay them out as a
    one-deployment survey. Returns (images root, deployments.csv, frame paths).

    Frames come in bursts of three, one second apart, as a camera trap takes them.
    """
    cache = WORK / f"frames-{GENERATOR}"
    cache.mkdir(parents=True, exist_ok=True)
    cached = [cache / f"RCNX{i:04d}.JPG" for i in range(count)]
    missing = [i for i, path in enumerate(cached) if not path.is_file()]
    if missing:
        print(f"generating {len(missing)} {FRAME_WIDTH}x{FRAME_HEIGHT} JPEGs in {cache} ...")
        # Separate processes: generating takes ~0.6 GB per frame in flight, which must not
        # count in this process's peak RSS.
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(write_frame, [cached[i] for i in missing], missing))

    # The runner reads a whole images root: give it exactly these frames, as hard links.
    root = WORK / "throughput-survey"
    shutil.rmtree(root, ignore_errors=True)
    folder = root / DEPLOYMENT / "DCIM" / "100RECNX"
    folder.mkdir(parents=True)
    paths = [folder / path.name for path in cached]
    for source, link in zip(cached, paths, strict=True):
        try:
            os.link(source, link)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(source, link)
    deployments = WORK / "throughput-deployments.csv"
    deployments.write_text(
        "deploymentID,locationID,latitude,longitude,deploymentStart,deploymentEnd\n"
        f"{DEPLOYMENT},bench-location,43.1,100.7,2024-01-01,2024-12-31\n"
    )
    return root, deployments, paths


# ---------------------------------------------------------------------------------------------
# Models


def load_models(args: argparse.Namespace) -> tuple[Backbone, nn.Module, str]:
    """Return (Uncia's backbone, the stock fp32 network for the baseline, weights note).

    The baseline is the network exactly as its library builds it (BatchNorm layers and all),
    with the same weights as Uncia's: real ones from --weights or the hub cache, else (resnet50
    only, whose weights cannot be downloaded offline) the same random ones, for timing only.
    """
    try:
        path, source = locate_weights(args.backbone, args.weights, download=False)
    except WeightsNotFoundError as exc:
        if args.backbone != "resnet50" or args.weights is not None:
            raise
        print(f"note: {exc}")
        torch.manual_seed(0)
        baseline = untrained_network(args.backbone).eval()
        fast = build_backbone(
            args.backbone,
            copy.deepcopy(baseline),
            weights_sha256="none",
            weights_source="random init",
            device="cpu",
            precision=args.precision,
        )
        return fast, baseline, "random, timing only (no ImageNet weights here: pass --weights FILE)"
    fast = load_backbone(args.backbone, path, "cpu", args.precision, download=False)
    baseline = untrained_network(args.backbone)
    baseline.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    note = f"real: {source} (sha256 {fast.weights_sha256[:12]})"
    return fast, baseline.eval(), note


# ---------------------------------------------------------------------------------------------
# The three measurements


def user_loop(paths: Sequence[Path], network: nn.Module, mean: Any, std: Any, batch: int) -> int:
    """(a) What a user writes first: full decode, torchvision transforms, fp32, batch 32."""
    prepare = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    done = 0
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            images = [prepare(Image.open(p).convert("RGB")) for p in paths[start : start + batch]]
            logits = network(torch.stack(images))
            logits.softmax(dim=1)
            done += len(images)
    return done


def decode_ahead(
    paths: Sequence[Path], batch: int, pool: ThreadPoolExecutor, prefetch: int = 2
) -> Iterator[list[np.ndarray]]:
    """Yield batches of decoded pixels while the pool already decodes the next `prefetch`
    batches: the model works on batch k while batch k+1 is being decoded."""
    pending: deque[list[Future[Any]]] = deque()
    for start in range(0, len(paths), batch):
        pending.append([pool.submit(decode_frame, p) for p in paths[start : start + batch]])
        if len(pending) > prefetch:
            yield [f.result().pixels for f in pending.popleft()]
    while pending:
        yield [f.result().pixels for f in pending.popleft()]


def uncia_loop(paths: Sequence[Path], backbone: Backbone, batch: int, workers: int) -> int:
    """(b) without the runner's bookkeeping: threaded draft decode overlapped with the model."""
    classifier = ZeroShotImageNet(backbone)
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for pixels in decode_ahead(paths, batch, pool):
            ok = [p for p in pixels if p is not None]
            classifier.score(backbone.embed(np.stack(ok)))
            done += len(ok)
    return done


def uncia_runner(
    root: Path, deployments: Path, backbone: Backbone, args: argparse.Namespace
) -> int | None:
    """(b) `pipeline.runs.runner.run_survey` end to end (discovery, decode, model, store), or None
    when this checkout has no runner."""
    try:
        from pipeline.config import RunOptions
        from pipeline.runs.runner import run_survey
    except ImportError:
        return None
    WORK.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    try:
        options = RunOptions(
            images_root=root,
            deployments=deployments,
            out_dir=out,
            backbone=backbone.name,
            batch_size=args.batch_size,
            workers=args.workers,
            device=backbone.device,
            precision=backbone.precision,
            progress=False,
            views="whole",  # this bench times whole-frame scoring; bench.views_bench tiles
        )
        summary = run_survey(options, log=io.StringIO(), backbone=backbone)
        return summary.frames_done
    finally:
        shutil.rmtree(out, ignore_errors=True)


def decode_only(paths: Sequence[Path], workers: int) -> int:
    """Decoding alone, in the same thread pool: what each frame costs before the model."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(decode_frame, paths):
            pass
    return len(paths)


def model_only(pixels: np.ndarray, backbone: Backbone, batch: int) -> int:
    """(c) The limit: the same backbone and scoring on frames already decoded in memory."""
    classifier = ZeroShotImageNet(backbone)
    for start in range(0, len(pixels), batch):
        classifier.score(backbone.embed(pixels[start : start + batch]))
    return len(pixels)


def timed(work: Callable[[], int | None]) -> tuple[float, int, float] | None:
    """Run `work`; return (frames/s, frames, CPU ms per frame), or None when it reports None.

    CPU time (all threads) per frame is less disturbed than wall time when other processes
    share the machine, and shows the work each frame costs.
    """
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    frames = work()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    if frames is None:
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return frames / seconds, frames, 1000 * cpu / frames


# ---------------------------------------------------------------------------------------------
# Report


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpuinfo = handle.read()
        model = next(
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpuinfo = ""
    return {
        "cpu": model,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "avx512_bf16": "avx512_bf16" in cpuinfo,
        "amx": "amx_tile" in cpuinfo,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out, indent=2)
        out.write("\n")
    os.replace(temporary, path)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class Measurements:
    """Every repeat of every measurement, keyed "a", "b", "b_loop", "c", "decode"."""

    fps: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    rss_after_first: dict[str, float] = field(default_factory=dict)  # peak RSS only grows

    def best(self) -> dict[str, float]:
        return {key: max(values) for key, values in self.fps.items() if values}


def measure(
    plans: dict[str, Callable[[], int | None]],
    warm_ups: dict[str, Callable[[], object]],
    repeats: int,
) -> Measurements:
    """Run each plan `repeats` times, interleaved so that background load hits all alike.

    A plan's warm-up runs once, untimed, just before its first run: oneDNN builds its kernels
    for each new shape on first use, and warming the baseline last keeps its memory out of
    the peak RSS read after Uncia's runs.
    """
    result = Measurements()
    for repeat in range(repeats):
        for key, work in plans.items():
            if repeat == 0 and key in warm_ups:
                warm_ups[key]()
            outcome = timed(work)
            if outcome is None:
                continue
            fps, frames, cpu_ms = outcome
            result.fps.setdefault(key, []).append(fps)
            result.cpu_ms.setdefault(key, []).append(cpu_ms)
            result.frames[key] = frames
            result.rss_after_first.setdefault(key, round(peak_rss_mib(), 1))
            print(
                f"  repeat {repeat + 1}: {key:6s} {fps:6.1f} frames/s ({cpu_ms:.0f} CPU ms/frame)"
            )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = time.time(), os.getloadavg()[0]
    root, deployments, frames = ensure_frames(args.frames, args.workers)
    file_mb = sum(p.stat().st_size for p in frames) / len(frames) / 1e6
    try:
        backbone, baseline, weights_note = load_models(args)
    except UnciaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(frames)} frames {FRAME_WIDTH}x{FRAME_HEIGHT} ({file_mb:.1f} MB each), "
        f"{args.backbone} {backbone.precision} channels_last, batch {args.batch_size}, "
        f"{args.workers} decode threads, {torch.get_num_threads()} torch threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}\n"
        f"weights: {weights_note}"
    )
    if load_before > 0.5:
        print(
            f"warning: load average {load_before:.1f} before starting: other processes "
            "share the CPU, figures will be low and noisy"
        )
    decoded = [decode_frame(p) for p in frames]  # (c)'s input, decoded once
    pixels = np.stack([d.pixels for d in decoded if d.pixels is not None])
    if len(pixels) != len(frames):
        failure = next(d.failure for d in decoded if d.pixels is None)
        print(f"error: a generated frame fails to decode: {failure}", file=sys.stderr)
        return 2

    baseline_frames = frames[: args.baseline_frames]
    mean, std = backbone.mean, backbone.std
    runs = measure(
        {
            "c": lambda: model_only(pixels, backbone, args.batch_size),
            "decode": lambda: decode_only(frames, args.workers),
            "b": lambda: uncia_runner(root, deployments, backbone, args),
            "b_loop": lambda: uncia_loop(frames, backbone, args.batch_size, args.workers),
            "a": lambda: user_loop(baseline_frames, baseline, mean, std, args.batch_size),
        },
        {
            "c": lambda: model_only(pixels[: args.batch_size], backbone, args.batch_size),
            "a": lambda: user_loop(
                baseline_frames[: args.batch_size], baseline, mean, std, args.batch_size
            ),
        },
        args.repeats,
    )
    if "b" not in runs.fps:
        print("note: no pipeline.runs.runner.run_survey here: (b) is the decode+model loop")
        runs.fps["b"], runs.cpu_ms["b"] = runs.fps["b_loop"], runs.cpu_ms["b_loop"]
        runs.frames["b"] = runs.frames["b_loop"]

    best = runs.best()
    ratio_ba, ratio_bc = best["b"] / best["a"], best["b"] / best["c"]
    # Decoding and the model share the cores: with no waste at all, b/c would be this.
    model_cpu, decode_cpu = min(runs.cpu_ms["c"]), min(runs.cpu_ms["decode"])
    bound_bc = model_cpu / (model_cpu + decode_cpu)
    print(
        f"(a) plain loop, full decode, fp32:        {best['a']:6.1f} frames/s\n"
        f"(b) Uncia pipeline (run_survey):          {best['b']:6.1f} frames/s\n"
        f"    decode+model loop without the store:  {best['b_loop']:6.1f} frames/s\n"
        f"(c) model only, frames in memory:         {best['c']:6.1f} frames/s\n"
        f"    decoding only:                        {best['decode']:6.1f} frames/s\n"
        f"b/a = {ratio_ba:.2f} (target >= 5)   b/c = {ratio_bc:.2f} (target >= 0.7; CPU cost "
        f"predicts {bound_bc:.2f}: {model_cpu:.0f} ms model + {decode_cpu:.0f} ms decode)\n"
        f"peak RSS {runs.rss_after_first.get('b_loop', 0):.0f} MiB through b, "
        f"{peak_rss_mib():.0f} MiB with a; weights: {weights_note}"
    )
    write_json_atomically(
        args.out,
        {
            "finished_at": datetime.now().isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 1),
            "frames_per_second": {key: round(value, 2) for key, value in best.items()},
            "ratios": {"b_over_a": round(ratio_ba, 2), "b_over_c": round(ratio_bc, 2)},
            "targets": {"b_over_a": 5.0, "b_over_c": 0.7},
            "b_over_c_predicted_from_cpu": round(bound_bc, 2),
            "all_repeats": {k: [round(v, 2) for v in vs] for k, vs in runs.fps.items()},
            "cpu_ms_per_frame_best": {k: round(min(vs), 1) for k, vs in runs.cpu_ms.items()},
            "frames": runs.frames,
            "frame_size": [FRAME_WIDTH, FRAME_HEIGHT],
            "mean_file_mb": round(file_mb, 2),
            "jpeg_quality": JPEG_QUALITY,
            "backbone": args.backbone,
            "precision": backbone.precision,
            "memory_format": "channels_last",
            "weights": weights_note,
            "batch_size": args.batch_size,
            "decode_workers": args.workers,
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "peak_rss_mib_after_first_run_of": runs.rss_after_first,
            "uncia_peak_rss_mib": runs.rss_after_first.get("b_loop"),
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "machine": machine_info(),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
